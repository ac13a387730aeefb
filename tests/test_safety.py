"""Crashes, locks, damaged files: the index is never left half-written or silently wrong."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import semsearch
from semsearch.errors import (
    IndexCorruptError,
    IndexLockedError,
    IndexWriteError,
    SchemaVersionError,
)
from semsearch.index import Index
from semsearch.query import Hit
from semsearch.storage.lock import WriteLock
from semsearch.storage.store import Store
from semsearch.storage.vectors import FlatIndex
from tests.fakes import FakeEmbedder

ROOT = Path(__file__).resolve().parent.parent
CRASH_WRITER = Path(__file__).resolve().parent / "crash_writer.py"
QUERIES = ["river flood rain", "chess champion match", "bakery bread", "school hill", "the"]
ALLOWED = re.compile(r"semsearch\.db(-wal|-shm)?|vectors\.\d{6}\.faiss|write\.lock")


# --------------------------------------------------------------------------- helpers


def snapshot(index_dir: Path) -> tuple[tuple[int, int, int], dict[str, list[Hit]]]:
    """Counts and search results of the index, read by a fresh Index."""
    with Index.open(index_dir, embedder=FakeEmbedder()) as index:
        info = index.info()
        results = {q: index.search(q, k=50) for q in QUERIES}
    return (info.documents, info.passages, info.files), results


def view(hits: list[Hit]) -> list[tuple[str, str, float]]:
    return sorted((h.text, h.path, round(h.score, 5)) for h in hits)


def add_many_files(folder: Path, count: int) -> None:
    for n in range(count):
        (folder / f"extra{n:03d}.txt").write_text(
            f"Extra story number {n}\n\n"
            f"The harbour committee met for meeting {n} on the pier.\n\n"
            f"Fishing boats {n} returned before the storm.\n\n"
            f"Volunteer group {n} cleaned the beach afterwards.\n",
            encoding="utf-8",
        )


def change_folder(folder: Path) -> None:
    """Changes of every kind: new files, an edited file, a deleted file."""
    add_many_files(folder, 40)
    (folder / "a.txt").write_text(
        " date 2024-01-02 7\nRiver floods the town\nThe flood water is going down.\n",
        encoding="utf-8",
    )
    (folder / "c.txt").unlink()


class Writer:
    """tests/crash_writer.py running in a subprocess."""

    def __init__(self, mode: str, index_dir: Path, folder: Path, tmp_path: Path) -> None:
        self.marker = tmp_path / f"{mode}.marker"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(CRASH_WRITER),
                mode,
                str(index_dir),
                str(folder),
                str(self.marker),
            ],
            env=env,
            cwd=str(ROOT),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_for_marker(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.marker.exists():
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                pytest.fail(
                    f"the writer exited ({self.proc.returncode}) before the marker:\n"
                    f"{out.decode()}\n{err.decode()}"
                )
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                pytest.fail("the writer never reached the marker")
            time.sleep(0.02)

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.communicate(timeout=60)
        # It was killed, not finished (it cannot finish on its own in time).
        assert self.proc.returncode == -signal.SIGKILL

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def writers() -> Iterator[list[Writer]]:
    started: list[Writer] = []
    yield started
    for w in started:
        w.cleanup()


# --------------------------------------------------------------------------- crashes


def test_sigkill_while_embedding_leaves_the_previous_index(
    tmp_path: Path, corpus: Path, index_dir: Path, writers: list[Writer]
) -> None:
    before = snapshot(index_dir)
    assert before[0] == (3, 5, 3)
    change_folder(corpus)

    writer = Writer("embed", index_dir, corpus, tmp_path)
    writers.append(writer)
    writer.wait_for_marker()

    # While it writes: readers see the committed index; another writer is refused.
    assert snapshot(index_dir) == before
    fake = FakeEmbedder()
    with pytest.raises(IndexLockedError) as caught:
        Index.open(index_dir, embedder=fake).add([corpus])
    assert f"process {writer.pid}" in str(caught.value)
    assert fake.calls == []

    writer.kill()

    assert snapshot(index_dir) == before
    with Index.open(index_dir, embedder=FakeEmbedder()) as index:
        assert index.search("harbour committee pier", k=1)[0].title != "Extra story number 0"
        # The dead writer's lock is gone with it: the next run goes through.
        report = index.add([corpus])
        assert report.documents_added == 40
        assert report.documents_updated == 1
        assert report.documents_removed == 1
        info = index.info()
        assert (info.documents, info.passages) == (42, 40 * 3 + 1 + 2)


def test_sigkill_during_the_commit_leaves_the_previous_index(
    tmp_path: Path, corpus: Path, index_dir: Path, writers: list[Writer]
) -> None:
    before = snapshot(index_dir)
    change_folder(corpus)

    writer = Writer("commit", index_dir, corpus, tmp_path)
    writers.append(writer)
    writer.wait_for_marker()
    # The new vector file is on disk, the new rows and manifest in an open transaction.
    assert "vectors.000002.faiss" in os.listdir(index_dir)
    assert snapshot(index_dir) == before

    writer.kill()

    assert snapshot(index_dir) == before
    with Index.open(index_dir, embedder=FakeEmbedder()) as index:
        report = index.add([corpus])
        assert (report.documents_added, report.documents_updated) == (40, 1)
        assert index.info().documents == 42
        assert index.search("harbour committee meeting 7 pier", k=1)[0].title == (
            "Extra story number 7"
        )
    assert snapshot(index_dir)[0] == (42, 123, 42)


def _raise_after_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Store.commit

    def commit(self: Store, index: object, manifest: dict[str, object]) -> int:
        original(self, index, manifest)  # type: ignore[arg-type]
        raise OSError("simulated crash after the vector file and manifest were written")

    monkeypatch.setattr(Store, "commit", commit)


def _raise_after_save(monkeypatch: pytest.MonkeyPatch) -> None:
    original = FlatIndex.save

    def save(self: FlatIndex, path: str) -> None:
        original(self, path)
        raise OSError("simulated crash after the vector file was written")

    monkeypatch.setattr(FlatIndex, "save", save)


@pytest.mark.parametrize("where", [_raise_after_commit, _raise_after_save])
def test_failure_after_the_new_vector_file_is_written(
    tmp_path: Path,
    corpus: Path,
    index_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    where: object,
) -> None:
    before = snapshot(index_dir)
    change_folder(corpus)
    index = Index.open(index_dir, embedder=FakeEmbedder())
    with monkeypatch.context() as patch:
        where(patch)  # type: ignore[operator]
        with pytest.raises(IndexWriteError, match=r"simulated crash.*the index is as it was"):
            index.add([corpus])
    assert "vectors.000002.faiss" in os.listdir(index_dir)  # the crash window was reached
    assert snapshot(index_dir) == before
    # The Index that failed still reads the committed contents.
    assert {q: index.search(q, k=50) for q in QUERIES} == before[1]

    report = index.add([corpus])
    assert (report.documents_added, report.documents_updated, report.documents_removed) == (
        40,
        1,
        1,
    )
    assert snapshot(index_dir)[0] == (42, 123, 42)
    assert index.search("harbour committee meeting 7 pier", k=1)[0].title == (
        "Extra story number 7"
    )


# --------------------------------------------------------------------------- the write lock


def test_a_second_writer_in_the_same_process_is_refused(corpus: Path, index_dir: Path) -> None:
    before = snapshot(index_dir)
    (corpus / "d.txt").write_text("Harbour news\n\nShips are back.\n", encoding="utf-8")
    lock = WriteLock(str(index_dir))
    lock.acquire()
    try:
        # flock belongs to an open file description: a second one is refused,
        # even in the same process.
        with pytest.raises(IndexLockedError):
            WriteLock(str(index_dir)).acquire()
        fake = FakeEmbedder()
        with pytest.raises(IndexLockedError) as caught:
            Index.open(index_dir, embedder=fake).add([corpus])
        message = str(caught.value)
        assert "another" in message and "process" in message and "writing" in message
        assert str(os.getpid()) in message
        assert fake.calls == []
        assert snapshot(index_dir) == before
    finally:
        lock.release()
    report = Index.open(index_dir, embedder=FakeEmbedder()).add([corpus])
    assert report.documents_added == 1
    assert snapshot(index_dir)[0] == (4, 6, 4)


def test_a_writer_in_another_process_is_respected(
    tmp_path: Path, corpus: Path, index_dir: Path, writers: list[Writer]
) -> None:
    (corpus / "d.txt").write_text("Harbour news\n\nShips are back.\n", encoding="utf-8")
    writer = Writer("lock", index_dir, corpus, tmp_path)
    writers.append(writer)
    writer.wait_for_marker()
    with pytest.raises(IndexLockedError) as caught:
        Index.open(index_dir, embedder=FakeEmbedder()).add([corpus])
    assert f"another semsearch process (process {writer.pid})" in str(caught.value)
    writer.kill()
    report = Index.open(index_dir, embedder=FakeEmbedder()).add([corpus])
    assert report.documents_added == 1


def test_readers_search_the_committed_index_while_a_writer_holds_the_lock(
    corpus: Path, index_dir: Path
) -> None:
    before = snapshot(index_dir)
    reader = Index.open(index_dir, embedder=FakeEmbedder())
    with WriteLock(str(index_dir)):
        assert {q: reader.search(q, k=50) for q in QUERIES} == before[1]
        assert snapshot(index_dir) == before
    # Once another Index commits, the same reader sees the new contents.
    (corpus / "d.txt").write_text("Harbour news\n\nShips are back.\n", encoding="utf-8")
    Index.open(index_dir, embedder=FakeEmbedder()).add([corpus])
    assert reader.search("ships are back", k=1)[0].title == "Harbour news"
    assert reader.info().documents == 4


# --------------------------------------------------------------------------- damaged files


def _vector_file(index_dir: Path) -> Path:
    (name,) = [n for n in os.listdir(index_dir) if n.startswith("vectors.")]
    return index_dir / name


def _sql(index_dir: Path, statement: str) -> None:
    con = sqlite3.connect(index_dir / "semsearch.db")
    try:
        con.execute(statement)
        con.commit()
    finally:
        con.close()


GARBAGE = bytes(range(256)) * 64


def damage(index_dir: Path, kind: str) -> None:
    if kind == "vectors missing":
        _vector_file(index_dir).unlink()
    elif kind == "vectors truncated":
        path = _vector_file(index_dir)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "vectors garbage":
        _vector_file(index_dir).write_bytes(GARBAGE)
    elif kind == "database garbage":
        for extra in ("semsearch.db-wal", "semsearch.db-shm"):
            (index_dir / extra).unlink(missing_ok=True)
        (index_dir / "semsearch.db").write_bytes(GARBAGE)
    elif kind == "database missing":
        for name in ("semsearch.db", "semsearch.db-wal", "semsearch.db-shm"):
            (index_dir / name).unlink(missing_ok=True)
    elif kind == "passage row deleted":
        _sql(index_dir, "DELETE FROM passages WHERE id = (SELECT max(id) FROM passages)")
    elif kind == "passage row added":
        _sql(
            index_dir,
            "INSERT INTO passages(document_id, paragraph, piece, pieces, start, end, text, "
            "embed_hash) SELECT document_id, 9, 0, 1, 0, 1, 'stray', 'x' FROM passages LIMIT 1",
        )
    elif kind == "passage id changed":
        _sql(
            index_dir,
            "UPDATE passages SET id = id + 1000 WHERE id = (SELECT max(id) FROM passages)",
        )
    else:
        raise AssertionError(kind)


DAMAGES = [
    "vectors missing",
    "vectors truncated",
    "vectors garbage",
    "database garbage",
    "database missing",
    "passage row deleted",
    "passage row added",
    "passage id changed",
]


@pytest.mark.parametrize("kind", DAMAGES)
def test_damaged_index_is_reported_and_repaired_by_rebuild(
    corpus: Path, index_dir: Path, kind: str
) -> None:
    before = snapshot(index_dir)
    damage(index_dir, kind)

    with (
        pytest.raises(IndexCorruptError, match="--rebuild"),
        Index.open(index_dir, embedder=FakeEmbedder()) as index,
    ):
        index.search("river")

    # What `semsearch index --rebuild` does.
    with Index.open(index_dir, create=True, embedder=FakeEmbedder()) as index:
        report = index.add([corpus], rebuild=True)
        assert report.passages_added == 5
    after = snapshot(index_dir)
    assert after[0] == before[0]
    assert {q: view(h) for q, h in after[1].items()} == {q: view(h) for q, h in before[1].items()}
    if kind == "database garbage":
        # The damaged database is set aside, not deleted.
        kept = list(index_dir.glob("damaged-*/semsearch.db"))
        assert len(kept) == 1 and kept[0].read_bytes() == GARBAGE


def test_index_written_by_a_newer_semsearch_is_refused(corpus: Path, index_dir: Path) -> None:
    _sql(index_dir, "PRAGMA user_version = 99")
    with pytest.raises(SchemaVersionError, match="newer"):
        Index.open(index_dir, embedder=FakeEmbedder())
    # The database is untouched by the refusal.
    con = sqlite3.connect(index_dir / "semsearch.db")
    try:
        assert con.execute("PRAGMA user_version").fetchone()[0] == 99
    finally:
        con.close()


def test_index_written_by_a_newer_semsearch_can_be_rebuilt(corpus: Path, index_dir: Path) -> None:
    """The SchemaVersionError message offers `--rebuild`: it has to work."""
    _sql(index_dir, "PRAGMA user_version = 99")
    with pytest.raises(SchemaVersionError, match="--rebuild"):
        Index.open(index_dir, embedder=FakeEmbedder())
    with Index.open(index_dir, create=True, embedder=FakeEmbedder()) as index:
        index.add([corpus], rebuild=True)
    assert snapshot(index_dir)[0] == (3, 5, 3)
    assert list(index_dir.glob("newer-*/semsearch.db"))  # the newer index is kept aside


# --------------------------------------------------------------------------- no pickle


def test_index_folder_holds_only_sqlite_and_faiss_files(tmp_path: Path, corpus: Path) -> None:
    folder = tmp_path / "idx"
    index = Index.open(folder, create=True, embedder=FakeEmbedder())
    index.add([corpus])
    (corpus / "d.txt").write_text("Harbour news\n\nShips are back.\n", encoding="utf-8")
    index.add([corpus])
    (corpus / "a.txt").unlink()
    index.add([corpus])
    index.add([corpus], rebuild=True)
    index.add([corpus])
    index.search("ships")
    assert all(ALLOWED.fullmatch(n) for n in os.listdir(folder)), os.listdir(folder)
    index.close()
    names = os.listdir(folder)
    assert all(ALLOWED.fullmatch(n) for n in names), names
    assert "semsearch.db" in names
    assert (folder / "semsearch.db").read_bytes()[:16] == b"SQLite format 3\x00"
    vector_files = [n for n in names if n.startswith("vectors.")]
    assert 1 <= len(vector_files) <= 2  # the committed generation and the one before
    for name in vector_files:
        head = (folder / name).read_bytes()[:4]
        assert not head.startswith(b"\x80")  # not a pickle
        assert head == b"IxM2"  # FAISS IndexIDMap2
    # And no pickle in the code that writes them.
    for source in Path(semsearch.__file__).parent.rglob("*.py"):
        text = source.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(import|from)\s+(pickle|cPickle|dill|joblib)\b", text, re.M)
        assert "np.save(" not in text and "allow_pickle=True" not in text
