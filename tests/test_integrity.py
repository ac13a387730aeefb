"""Damage is noticed, never silent; writes are durable; a failed write leaves the index as it was.

Fast tests with the fake embedder. The ONNX query model files (content-addressed
names, verification, an interrupted rebuild with another model) are tested with
the real model in tests/test_integrity_model.py.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import semsearch.storage.vectors
from semsearch.embed import export
from semsearch.errors import IndexCorruptError, IndexWriteError
from semsearch.index import Index
from semsearch.storage import integrity
from semsearch.storage.integrity import id_checksum
from semsearch.storage.store import Store
from semsearch.storage.vectors import FlatIndex
from tests.cli_helpers import assert_one_line_error, run
from tests.conftest import read_manifest as manifest
from tests.fakes import FakeEmbedder

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ["river flood rain", "chess champion match", "bakery bread", "school hill"]
MODES = ("dense", "lexical", "hybrid")


# --------------------------------------------------------------------------- helpers


def results(index_dir: Path) -> dict[tuple[str, str], list[tuple[int, float]]]:
    """What every query gives in every mode, read by a fresh Index."""
    with Index.open(index_dir, embedder=FakeEmbedder()) as index:
        return searches(index)


def searches(index: Index) -> dict[tuple[str, str], list[tuple[int, float]]]:
    return {
        (q, mode): [(h.passage_id, round(h.score, 5)) for h in index.search(q, k=10, mode=mode)]
        for q in QUERIES
        for mode in MODES
    }


def sql(index_dir: Path, *statements: str, params: tuple[Any, ...] = ()) -> None:
    """Change the database as another tool would (foreign keys off: sqlite3's default)."""
    con = sqlite3.connect(index_dir / "semsearch.db")
    try:
        for statement in statements:
            con.execute(statement, params)
        con.commit()
    finally:
        con.close()


def vector_file(index_dir: Path) -> Path:
    """The committed generation's vector file."""
    return index_dir / f"vectors.{manifest(index_dir)['generation']:06d}.faiss"


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x40]))


def add_articles(folder: Path, count: int, words: int = 5) -> None:
    for n in range(count):
        body = " ".join(f"word{n}x{i}" for i in range(words))
        (folder / f"extra{n:03d}.txt").write_text(
            f"Harbour story {n}\n\nShips returned to harbour {n}: {body}.\n", encoding="utf-8"
        )


def assert_refused_naming_rebuild(index_dir: Path) -> None:
    """Every query mode refuses the index with one error that names --rebuild."""
    for mode in MODES:
        with (
            pytest.raises(IndexCorruptError, match="--rebuild"),
            Index.open(index_dir, embedder=FakeEmbedder()) as index,
        ):
            index.search("river", mode=mode)


# --------------------------------------------------------------------------- id checksums


def test_the_id_checksum_tells_apart_sets_of_equal_sum_and_xor() -> None:
    assert 1 + 6 == 2 + 5 and 1 ^ 6 == 2 ^ 5
    assert id_checksum(np.array([1, 6])) != id_checksum(np.array([2, 5]))
    assert id_checksum(np.array([6, 1, 9])) == id_checksum(np.array([1, 9, 6]))  # order-free
    assert 0 <= id_checksum(np.arange(1000)) < 2**63


def _equal_sum_and_xor_swap(ids: set[int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """Two held ids and two free ones with the same sum and xor."""
    for a, b in itertools.combinations(sorted(ids), 2):
        for c in range(1, a + b):
            d = a + b - c
            if c < d and not {c, d} & ids and c ^ d == a ^ b:
                return (a, b), (c, d)
    raise AssertionError(f"no swap for {sorted(ids)}")


def test_passage_ids_changed_with_the_same_sum_and_xor_are_noticed(
    tmp_path: Path, corpus: Path
) -> None:
    """The old checksum (sum and xor) took {1, 6} for {2, 5}: hits then vanished silently."""
    index_dir = tmp_path / "idx"
    add_articles(corpus, 6)
    with Index.open(index_dir, create=True, embedder=FakeEmbedder()) as index:
        index.add([corpus])
        for n in (1, 3):  # gaps among the ids, which are never reused
            (corpus / f"extra{n:03d}.txt").unlink()
        index.add([corpus])
    ids = {int(i) for i in np.asarray(Store.open(str(index_dir)).passage_id_array())}
    (a, b), (c, d) = _equal_sum_and_xor_swap(ids)
    assert id_checksum(np.array(sorted(ids)), version=1) == id_checksum(
        np.array(sorted(ids - {a, b} | {c, d})), version=1
    )
    sql(
        index_dir,
        f"UPDATE passages SET id = {c} WHERE id = {a}",
        f"UPDATE passages SET id = {d} WHERE id = {b}",
    )
    assert_refused_naming_rebuild(index_dir)
    with Index.open(index_dir, embedder=FakeEmbedder()) as index:
        assert any("passages have no vector" in p for p in index.check().problems)


def test_an_index_with_the_old_id_checksum_still_opens_and_is_upgraded(
    index_dir: Path, corpus: Path
) -> None:
    before = results(index_dir)
    ids = Store.open(str(index_dir)).passage_id_array()
    old = id_checksum(ids, version=1)
    sql(
        index_dir,
        "DELETE FROM manifest WHERE key IN ('id_checksum_version', 'checksums', 'file_count', "
        "'document_count')",
        f"UPDATE manifest SET value = '{old}' WHERE key = 'id_checksum'",
    )
    assert results(index_dir) == before
    (corpus / "d.txt").write_text("Harbour news\n\nShips are back.\n", encoding="utf-8")
    with Index.open(index_dir, embedder=FakeEmbedder()) as index:
        index.add([corpus])
        assert index.check().problems == []
    m = manifest(index_dir)
    assert m["id_checksum_version"] == 2
    assert m["id_checksum"] == id_checksum(Store.open(str(index_dir)).passage_id_array())
    assert (m["file_count"], m["document_count"]) == (4, 4)


# --------------------------------------------------------------------------- the manifest

MANIFEST_DAMAGE = {
    "dimension not JSON": "UPDATE manifest SET value = 'garbage{' WHERE key = 'dimension'",
    "every value not JSON": "UPDATE manifest SET value = 'x' || value || '}'",
    "generation a string": "UPDATE manifest SET value = '\"abc\"' WHERE key = 'generation'",
    "index type unknown": "UPDATE manifest SET value = '\"zzz\"' WHERE key = 'index_type'",
    "chunking of the wrong type": (
        'UPDATE manifest SET value = \'{"max_tokens": "lots", "unit": 3}\' WHERE key = \'chunking\''
    ),
    "chunking a list": "UPDATE manifest SET value = '[1, 2]' WHERE key = 'chunking'",
    "dimension missing": "DELETE FROM manifest WHERE key = 'dimension'",
    "checksums of the wrong type": "UPDATE manifest SET value = '[]' WHERE key = 'checksums'",
}


@pytest.mark.parametrize("kind", MANIFEST_DAMAGE)
def test_a_damaged_manifest_is_one_line_naming_rebuild(
    index_dir: Path, corpus: Path, kind: str
) -> None:
    before = results(index_dir)
    sql(index_dir, MANIFEST_DAMAGE[kind])
    (corpus / "d.txt").write_text("Harbour news\n\nShips are back.\n", encoding="utf-8")
    where = ["--index", str(index_dir)]
    for args in (
        ["info", *where],
        *(["query", "river", "--mode", mode, *where] for mode in MODES),
        ["index", str(corpus), *where],
    ):
        assert_one_line_error(*run(*args), "--rebuild", exit_code=2)
    assert_refused_naming_rebuild(index_dir)
    code, out, err = run("check", *where)
    assert code == 1 and out == "" and "manifest" in err, (out, err)
    # What the message says to do works.
    with Index.open(index_dir, create=True, embedder=FakeEmbedder()) as index:
        index.add([corpus], rebuild=True)
        assert index.check().problems == []
    (corpus / "d.txt").unlink()
    with Index.open(index_dir, create=True, embedder=FakeEmbedder()) as index:
        index.add([corpus])
    assert results(index_dir) == before


# --------------------------------------------------------------------------- damaged files


def test_a_deleted_files_row_is_noticed_not_answered_around(index_dir: Path) -> None:
    """Deleting a file's row (foreign keys off) left its passages unreachable: hits vanished."""
    sql(index_dir, "DELETE FROM files WHERE id = (SELECT min(id) FROM files)")
    assert_refused_naming_rebuild(index_dir)
    code, _, err = run("check", "--index", str(index_dir))
    assert code == 1
    lines = err.strip().splitlines()
    assert any("documents point at rows of files that are gone" in x for x in lines), err
    assert all(x.startswith("error: ") and "--rebuild" in x for x in lines), err


def test_a_byte_flipped_in_the_vector_header_is_noticed_on_open(index_dir: Path) -> None:
    flip_byte(vector_file(index_dir), 200)  # inside the first vectors
    assert_refused_naming_rebuild(index_dir)


def test_a_byte_flipped_deep_in_the_vectors_is_found_by_check(tmp_path: Path) -> None:
    """Past the header the open check (size, first 64 KiB, ids) cannot see it: check does."""
    folder = tmp_path / "articles"
    folder.mkdir()
    add_articles(folder, 60)
    index_dir = tmp_path / "idx"
    embedder = FakeEmbedder(dimension=384)
    with Index.open(index_dir, create=True, embedder=embedder) as index:
        index.add([folder])
        assert index.check().ok
    path = vector_file(index_dir)
    assert path.stat().st_size > integrity.HEAD_BYTES + 4096
    flip_byte(path, integrity.HEAD_BYTES + 2048)
    with Index.open(index_dir, embedder=embedder) as index:
        report = index.check()
        assert report.problems == [f"{path.name} differs from the file written (sha256)"]
        with pytest.raises(IndexCorruptError, match=re.escape(path.name) + ".*--rebuild"):
            report.raise_for_problems()
    code, out, _ = run("check", "--index", str(index_dir), "--json")
    assert code == 1
    assert json.loads(out)["problems"] == report.problems


def test_vectors_replaced_by_random_ones_with_the_same_ids_are_noticed(index_dir: Path) -> None:
    """A valid FAISS file of the same size and ids but other vectors gave wrong answers."""
    path = vector_file(index_dir)
    original = FlatIndex.load(str(path))
    ids = original.ids()
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(len(ids), original.dimension)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    fake = FlatIndex.create(original.dimension)
    fake.add(ids, vecs)
    size = path.stat().st_size
    fake.save(str(path))
    assert path.stat().st_size == size
    assert_refused_naming_rebuild(index_dir)
    with Index.open(index_dir, embedder=FakeEmbedder()) as index:
        assert f"{path.name} differs from the file written (sha256)" in index.check().problems


def test_the_lexical_index_out_of_step_is_found_by_check(index_dir: Path) -> None:
    sql(index_dir, "DELETE FROM passages_fts_content WHERE id = (SELECT min(id) FROM passages)")
    with Index.open(index_dir, embedder=FakeEmbedder()) as index:
        problems = index.check().problems
    assert any("lexical index" in p for p in problems), problems


def test_a_damaged_hnsw_removed_ids_file_is_noticed_on_open(tmp_path: Path, corpus: Path) -> None:
    index_dir = tmp_path / "idx"
    with Index.open(index_dir, create=True, embedder=FakeEmbedder(), index_type="hnsw") as index:
        index.add([corpus])
        add_articles(corpus, 10)
        index.add([corpus])
        for n in range(2):
            (corpus / f"extra{n:03d}.txt").unlink()
        index.add([corpus])
        assert index.check().ok
    (removed,) = index_dir.glob("vectors.*.removed.i64")
    assert removed.name in manifest(index_dir)["checksums"]
    data = bytearray(removed.read_bytes())
    data[0:8] = (10**9).to_bytes(8, "little")  # an id that was never removed
    removed.write_bytes(bytes(data))
    assert_refused_naming_rebuild(index_dir)


def _zeroed_page_copies(index_dir: Path, tmp_path: Path) -> Iterator[tuple[int, Path]]:
    data = (index_dir / "semsearch.db").read_bytes()
    page = int.from_bytes(data[16:18], "big")
    for number in range(len(data) // page):
        copy = tmp_path / f"page{number}"
        copy.mkdir()
        for f in index_dir.iterdir():
            (copy / f.name).write_bytes(f.read_bytes())
        damaged = bytearray(data)
        damaged[number * page : (number + 1) * page] = bytes(page)
        (copy / "semsearch.db").write_bytes(bytes(damaged))
        yield number, copy


def test_a_zeroed_database_page_is_never_a_traceback_and_never_silent(
    index_dir: Path, tmp_path: Path
) -> None:
    """Some pages (the lexical index's) gave raw sqlite3 errors on hybrid and lexical queries;
    others were not noticed at all. Every one is now an error naming --rebuild or, when a
    query can still answer, a problem `semsearch check` reports."""
    raw = []
    for number, copy in _zeroed_page_copies(index_dir, tmp_path):
        for mode in MODES:
            try:
                with Index.open(copy, embedder=FakeEmbedder()) as index:
                    index.search("river flood", mode=mode)
            except IndexCorruptError as exc:
                assert "--rebuild" in str(exc)
            except Exception as exc:  # what the test is about: anything else is a traceback
                raw.append((number, mode, repr(exc)))
        code, out, err = run("check", "--index", str(copy))
        assert code == 1 and out == "", (number, out, err)
        assert all(x.startswith("error: ") for x in err.strip().splitlines()), (number, err)
    assert raw == []


# --------------------------------------------------------------------------- semsearch check


def test_check_of_a_sound_index_says_ok_in_one_line(index_dir: Path) -> None:
    code, out, err = run("check", "--index", str(index_dir))
    assert (code, out, err) == (0, "ok: 5 passages, 2 files checked\n", "")
    code, out, _ = run("check", "--index", str(index_dir), "--json")
    data = json.loads(out)
    assert code == 0 and data["ok"] is True and data["problems"] == []
    assert data["passages"] == 5
    assert data["files_checked"] == ["semsearch.db", vector_file(index_dir).name]


def test_check_lists_one_line_per_problem(index_dir: Path) -> None:
    sql(
        index_dir,
        "DELETE FROM files WHERE id = (SELECT min(id) FROM files)",
        "UPDATE manifest SET value = '\"abc\"' WHERE key = 'created_at' OR key = 'backend'",
    )
    flip_byte(vector_file(index_dir), 300)
    sql(index_dir, "UPDATE manifest SET value = '12' WHERE key = 'backend'")
    code, out, err = run("check", "--index", str(index_dir))
    lines = err.strip().splitlines()
    assert code == 1 and out == ""
    assert len(lines) == 4, lines  # the file, the foreign key, the count, the manifest
    assert all(x.startswith("error: ") and "--rebuild" in x for x in lines), lines
    with Index.open(index_dir, embedder=FakeEmbedder()) as index:
        report = index.check()
    assert len(report.problems) == 4 and not report.ok
    assert report.to_dict()["problems"] == report.problems


def test_check_of_an_index_too_damaged_to_open(index_dir: Path) -> None:
    (index_dir / "semsearch.db").write_bytes(b"garbage" * 1000)
    code, out, _ = run("check", "--index", str(index_dir), "--json")
    assert code == 1
    (problem,) = json.loads(out)["problems"]
    assert "--rebuild" in problem
    assert_one_line_error(*run("check", "--index", str(index_dir)), "--rebuild", exit_code=1)


def test_check_without_an_index_is_an_error(tmp_path: Path) -> None:
    assert_one_line_error(
        *run("check", "--index", str(tmp_path / "none")), "semsearch index", exit_code=2
    )


# --------------------------------------------------------------------------- write failures

FULL = "database or disk is full"


def _full(*args: Any, **kwargs: Any) -> Any:
    raise sqlite3.OperationalError(FULL)


def _enospc(*args: Any, **kwargs: Any) -> Any:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _faiss_short_write(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError(
        "Error in void faiss::write_index(const Index*, IOWriter*, int) at index_write.cpp:499: "
        "Error: 'ret == (size * 4)' failed: write error in x.tmp-1: 4014 != 155136 "
        "(No space left on device)"
    )


class _FailingCommit:
    """A connection whose COMMIT of a write transaction fails as on a full disk."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._writing = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def execute(self, statement: str, *args: Any) -> Any:
        if statement == "BEGIN IMMEDIATE":
            self._writing = True
        if statement == "COMMIT" and self._writing:
            self._writing = False
            self._db.execute("SELECT 1")  # the statement itself fails:
            raise sqlite3.OperationalError(FULL)
        return self._db.execute(statement, *args)


def _patch_faiss_write(patch: pytest.MonkeyPatch, index: Index) -> None:
    import faiss

    patch.setattr(faiss, "write_index", _faiss_short_write)


def _patch_commit(patch: pytest.MonkeyPatch, index: Index) -> None:
    store = index._store
    assert store is not None
    # this thread's connection (the store keeps one per thread) fails its COMMIT
    patch.setattr(store._local, "db", _FailingCommit(store.db))


STEPS: dict[str, Callable[[pytest.MonkeyPatch, Index], None]] = {
    "file row": lambda p, _: p.setattr(Store, "upsert_file", _full),
    "passage rows": lambda p, _: p.setattr(Store, "insert_passages", _full),
    "manifest": lambda p, _: p.setattr(Store, "_write_manifest", _full),
    "vector file (faiss)": _patch_faiss_write,
    "vector file (fsync)": lambda p, _: p.setattr(integrity, "fsync_path", _enospc),
    "vector file (rename)": lambda p, _: p.setattr(os, "replace", _enospc),
    "checksums": lambda p, _: p.setattr(integrity, "sha256_file", _enospc),
    "commit": _patch_commit,
}


@pytest.mark.parametrize("step", STEPS)
def test_a_full_disk_at_any_step_is_one_error_and_the_index_is_as_it_was(
    index_dir: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    before = results(index_dir)
    names = sorted(os.listdir(index_dir))
    add_articles(corpus, 30)
    index = Index.open(index_dir, embedder=FakeEmbedder())
    assert searches(index) == before
    with monkeypatch.context() as patch:
        STEPS[step](patch, index)
        with pytest.raises(IndexWriteError) as caught:
            index.add([corpus])
    message = str(caught.value)
    assert message.startswith("no space left on device while writing "), message
    assert "; the index is as it was: free some disk space" in message, message
    assert str(index_dir) in message
    # Nothing changed on disk, the same Index still answers from the old contents...
    assert results(index_dir) == before
    assert searches(index) == before
    assert not [n for n in os.listdir(index_dir) if ".tmp-" in n]
    assert index.check().problems == []
    # ... and the next run, with space again, succeeds.
    report = index.add([corpus])
    assert report.documents_added == 30
    assert index.search("ships returned to harbour 7", k=1)[0].title == "Harbour story 7"
    assert index.check().problems == []
    assert set(names) - set(os.listdir(index_dir)) <= {n for n in names if n.startswith("vectors")}


def test_a_full_disk_while_writing_hnsw_removed_ids(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index_dir = tmp_path / "idx"
    add_articles(corpus, 10)
    index = Index.open(index_dir, create=True, embedder=FakeEmbedder(), index_type="hnsw")
    index.add([corpus])
    before = searches(index)
    (corpus / "extra000.txt").unlink()
    with monkeypatch.context() as patch:
        patch.setattr(semsearch.storage.vectors, "durable_replace", _enospc)  # its first rename
        with pytest.raises(
            IndexWriteError,
            match=r"^no space left on device while writing "
            r"vectors\.000002\.removed\.i64",
        ):
            index.add([corpus])
    assert searches(index) == before
    index.add([corpus])
    assert index.info().documents == 12 and index.check().ok


def test_a_write_failure_through_the_cli_is_one_line(index_dir: Path, corpus: Path) -> None:
    """A deletion needs no model, so the real command runs here on the fake-built index."""
    before = results(index_dir)
    (corpus / "c.txt").unlink()
    original = Store.delete_files
    Store.delete_files = _full  # type: ignore[method-assign]
    try:
        line = assert_one_line_error(
            *run("index", str(corpus), "--index", str(index_dir)), exit_code=2
        )
    finally:
        Store.delete_files = original  # type: ignore[method-assign]
    assert re.fullmatch(
        r"error: no space left on device while writing semsearch\.db in .*; the index is as "
        r"it was: free some disk space, then run the command again",
        line,
    ), line
    assert results(index_dir) == before


_LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over the limit, write(2) fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, resource.RLIM_INFINITY))
sys.argv = ["semsearch", *{args!r}]
from semsearch.cli import main
main()
"""


@pytest.mark.parametrize("what", ["vectors", "database"])
def test_a_file_size_limit_in_a_real_process(tmp_path: Path, corpus: Path, what: str) -> None:
    """RLIMIT_FSIZE makes writes past the limit fail for real, in the real command: FAISS's
    (the new vector file) or SQLite's (its write-ahead log at COMMIT). A deletion needs no
    model, so the command runs on a fake-built index."""
    if what == "vectors":
        add_articles(corpus, 200)  # a vector file past the limit
    index_dir = tmp_path / "idx"
    with Index.open(index_dir, create=True, embedder=FakeEmbedder()) as index:
        index.add([corpus])
    before = results(index_dir)
    (corpus / "c.txt").unlink()
    limit = 34_000  # above SQLite's 32 KiB shared-memory file, which it sizes on open
    needle = {
        "vectors": r"file too large while writing vectors\.000002\.faiss",
        "database": r"a disk I/O error while writing semsearch\.db",
    }[what]
    assert (vector_file(index_dir).stat().st_size > limit) == (what == "vectors")
    code = _LIMITED.format(limit=limit, args=["index", str(corpus), "--index", str(index_dir)])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    line = assert_one_line_error(done.returncode, done.stdout, done.stderr, exit_code=2)
    assert re.search(needle + r" in .*; the index is as it was: ", line), line
    assert results(index_dir) == before
    with Index.open(index_dir, embedder=FakeEmbedder()) as index:
        index.add([corpus])
        assert index.check().ok
        assert index.info().files == (202 if what == "vectors" else 2)


# --------------------------------------------------------------------------- durable renames


def test_every_rename_in_the_package_goes_through_the_durable_helper() -> None:
    """A rename not followed by an fsync of its folder can be lost in a power cut while the
    manifest that names the file survives."""
    found = []
    for source in sorted((ROOT / "semsearch").rglob("*.py")):
        for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\bos\.(replace|rename|renames)\(|shutil\.move\(", line):
                found.append(f"{source.name}:{number}")
    (helper,) = found
    assert helper.startswith("integrity.py:")
    start = integrity.durable_replace.__code__.co_firstlineno
    assert start < int(helper.split(":")[1]) < start + 15


@pytest.fixture
def disk_events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """("rename", target) and ("fsync", path) in the order they happen."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(source: Any, target: Any, **kwargs: Any) -> None:
        real_replace(source, target, **kwargs)
        events.append(("rename", os.path.abspath(os.fspath(target))))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


def assert_renames_durable(events: list[tuple[str, str]]) -> int:
    """Each rename is followed by an fsync of its folder before the next SQLite COMMIT."""
    renames = 0
    for n, (kind, target) in enumerate(events):
        if kind != "rename":
            continue
        renames += 1
        later = events[n + 1 :]
        end = next((i for i, e in enumerate(later) if e == ("sql", "COMMIT")), len(later))
        assert ("fsync", os.path.dirname(target)) in later[:end], (target, events)
    return renames


def test_durable_replace_syncs_the_file_then_both_folders(
    tmp_path: Path, disk_events: list[tuple[str, str]]
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    source = tmp_path / "a" / "f.tmp"
    source.write_text("x", encoding="utf-8")
    integrity.durable_replace(str(source), str(tmp_path / "b" / "f"))
    assert disk_events == [
        ("fsync", str(source)),
        ("rename", str(tmp_path / "b" / "f")),
        ("fsync", str(tmp_path / "b")),
        ("fsync", str(tmp_path / "a")),
    ]


def test_every_rename_of_a_run_is_durable_before_its_commit(
    index_dir: Path, corpus: Path, disk_events: list[tuple[str, str]]
) -> None:
    """Vector files, HNSW removed ids, the folder a damaged index is set aside into."""

    def traced(index: Index) -> Index:
        assert index._store is not None
        index._store.db.set_trace_callback(lambda s: disk_events.append(("sql", s.strip())))
        return index

    add_articles(corpus, 10)
    with traced(Index.open(index_dir, embedder=FakeEmbedder(), index_type="hnsw")) as index:
        index.add([corpus])
        (corpus / "extra000.txt").unlink()
        index.add([corpus])  # the HNSW removed-ids file
    assert any(t.endswith(".removed.i64") for k, t in disk_events if k == "rename")
    (index_dir / "semsearch.db").write_bytes(b"garbage" * 1000)
    with Index.open(index_dir, create=True, embedder=FakeEmbedder()) as index:
        index.add([corpus], rebuild=True)  # sets the damaged files aside first
    assert any("/damaged-" in t for k, t in disk_events if k == "rename")
    assert ("sql", "COMMIT") in disk_events
    assert assert_renames_durable(disk_events) >= 6


# --------------------------------------------------------------------------- the query model files


def _fake_export(folder: Path, onnx: bytes = b"onnx graph " * 5000) -> dict[str, Any]:
    """Files and a manifest entry shaped like a real export (usable() never parses them)."""
    tok = b'{"model": "fake tokenizer"}'
    sha, tok_sha = (hashlib.sha256(b).hexdigest() for b in (onnx, tok))
    entry = {
        "file": export.model_file_name(sha),
        "tokenizer": export.tokenizer_file_name(tok_sha),
        "size": len(onnx),
        "max_tokens": 256,
        "dimension": 384,
        "pooling": "mean",
        "cosine": 1.0,
        "sha256": sha,
        "tokenizer_sha256": tok_sha,
    }
    (folder / entry["file"]).write_bytes(onnx)
    (folder / entry["tokenizer"]).write_bytes(tok)
    return entry


def _cache_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, bytes]:
    """A cache entry as the previous version wrote it (fixed names, no tokenizer hash)."""
    monkeypatch.setenv("SEMSEARCH_CACHE", str(tmp_path / "cache"))
    entry = tmp_path / "cache" / "exports" / "key1"
    entry.mkdir(parents=True)
    onnx = b"onnx graph " * 5000
    (entry / "query-model.onnx").write_bytes(onnx)
    (entry / "query-tokenizer.json").write_bytes(b'{"model": "fake tokenizer"}')
    recorded = {
        "file": "query-model.onnx",
        "tokenizer": "query-tokenizer.json",
        "size": len(onnx),
        "max_tokens": 256,
        "dimension": 384,
        "pooling": "mean",
        "cosine": 1.0,
    }
    data = {"query_model": recorded, "sha256": hashlib.sha256(onnx).hexdigest()}
    (entry / "query-model.json").write_text(json.dumps(data), encoding="utf-8")
    return entry, onnx


def test_a_cached_export_is_shared_in_under_content_names_durably(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, disk_events: list[tuple[str, str]]
) -> None:
    entry, onnx = _cache_entry(tmp_path, monkeypatch)
    folder = tmp_path / "index"
    folder.mkdir()
    model = export.from_cache("key1", str(folder))
    assert model is not None
    sha = hashlib.sha256(onnx).hexdigest()
    assert (model.file, model.sha256) == (f"query-model-{sha[:16]}.onnx", sha)
    assert model.tokenizer.startswith("query-tokenizer-") and len(model.tokenizer_sha256) == 64
    assert (folder / model.file).read_bytes() == onnx
    assert (folder / model.file).samefile(entry / "query-model.onnx")  # a hard link, no copy
    assert not (folder / "query-model.onnx").exists()
    assert assert_renames_durable(disk_events) >= 2
    assert export.usable(str(folder), model.as_dict()) == model
    # the cache's file is verified first: a damaged entry is refused and forgotten
    flip_byte(entry / "query-model.onnx", 1000)
    assert export.from_cache("key1", str(tmp_path)) is None
    assert not (entry / "query-model.json").exists()
    assert not list(tmp_path.glob("query-*"))


def test_a_damaged_query_model_file_is_never_used(tmp_path: Path) -> None:
    """Checked by size only, a same-size file of another model (an interrupted rebuild) or a
    flipped bit was used for every query."""
    entry = _fake_export(tmp_path)
    assert export.usable(str(tmp_path), entry) is not None
    onnx = tmp_path / entry["file"]
    flip_byte(onnx, len(onnx.read_bytes()) // 2)
    assert export.usable(str(tmp_path), entry) is None
    flip_byte(onnx, len(onnx.read_bytes()) // 2)  # flipped back: whole again
    assert export.usable(str(tmp_path), entry) is not None
    (tmp_path / entry["tokenizer"]).write_bytes(b"garbage{" * 5)
    assert export.usable(str(tmp_path), entry) is None


def test_the_onnx_file_is_hashed_once_per_file_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = _fake_export(tmp_path)
    hashed: list[str] = []
    real = integrity.sha256_file
    monkeypatch.setattr(
        integrity, "sha256_file", lambda p: hashed.append(os.path.basename(p)) or real(p)
    )
    onnx_hashes = lambda: hashed.count(entry["file"])  # noqa: E731
    assert export.usable(str(tmp_path), entry) is not None
    assert onnx_hashes() == 1  # no record yet: hashed, and recorded
    assert (tmp_path / f"{entry['file']}.verified").is_file()
    for _ in range(3):
        assert export.usable(str(tmp_path), entry) is not None
    assert onnx_hashes() == 1
    assert hashed.count(entry["tokenizer"]) == 4  # the small tokenizer: every time
    os.utime(tmp_path / entry["file"])  # any write changes mtime and ctime
    assert export.usable(str(tmp_path), entry) is not None
    assert onnx_hashes() == 2


def test_a_query_model_entry_of_an_older_index_is_read_by_its_recorded_name(
    tmp_path: Path,
) -> None:
    (tmp_path / "query-model.onnx").write_bytes(b"onnx" * 100)
    (tmp_path / "query-tokenizer.json").write_bytes(b"{}")
    old = {
        "file": "query-model.onnx",
        "tokenizer": "query-tokenizer.json",
        "size": 400,
        "max_tokens": 256,
        "dimension": 384,
        "pooling": "mean",
        "cosine": 1.0,
    }
    model = export.usable(str(tmp_path), old)
    assert model is not None and model.file == "query-model.onnx" and model.sha256 == ""
    assert export.usable(str(tmp_path), {**old, "size": 401}) is None


def test_a_rebuild_with_a_custom_embedder_leaves_no_query_model(
    index_dir: Path, corpus: Path
) -> None:
    """A custom embedder has no export: the previous model's entry stayed in the manifest,
    and a query opened without that embedder embedded with the previous model."""
    entry = _fake_export(index_dir)
    (index_dir / "query-model.onnx").write_bytes(b"older export")  # older, fixed name
    sql(
        index_dir,
        "INSERT OR REPLACE INTO manifest(key, value) VALUES ('query_model', ?)",
        params=(json.dumps(entry),),
    )
    with Index.open(index_dir, create=True, embedder=FakeEmbedder()) as index:
        index.add([corpus], rebuild=True)
        assert index.check().ok
    assert manifest(index_dir)["query_model"] is None
    assert list(index_dir.glob("query-*")) == []
