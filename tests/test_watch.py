"""`update.watch`: an index kept fresh while its folders change (`Watcher`, `index --watch`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import semsearch.update.plan
from semsearch.errors import IndexLockedError, SourceError
from semsearch.index import Index
from semsearch.ingest import SourceFile
from semsearch.storage.lock import WriteLock
from semsearch.update.watch import Commit, Watcher, is_temp_name
from tests.cli_helpers import assert_one_line_error, run
from tests.fakes import FakeEmbedder

ROOT = Path(__file__).resolve().parent.parent
QUIET = 0.2  # seconds of calm before a batch commits (1 s by default)


def wait_for(condition: Callable[[], bool], seconds: float = 20.0) -> bool:
    """Poll ``condition`` every 50 ms for at most ``seconds`` (and 2,000 polls)."""
    deadline = time.monotonic() + seconds
    for _ in range(2000):
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return condition()


def article(title: str, body: str) -> str:
    return f"{title}\n\n{body}\n"


class Recorder:
    """What a watcher told: its commits and its problem lines."""

    def __init__(self) -> None:
        self.commits: list[Commit] = []
        self.problems: list[str] = []
        self._lock = threading.Lock()

    def commit(self, c: Commit) -> None:
        with self._lock:
            self.commits.append(c)

    def problem(self, line: str) -> None:
        with self._lock:
            self.problems.append(line)


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "river.txt").write_text(
        article("River floods the town", "Heavy rain made the river burst its banks."),
        encoding="utf-8",
    )
    return folder


@pytest.fixture
def index(notes: Path) -> Iterator[Index]:
    """An index of ``notes`` kept inside it (not hidden: only the watcher's filter keeps its
    writes from triggering it)."""
    with Index.open(notes / "idx", create=True, embedder=FakeEmbedder()) as opened:
        opened.add([notes])
        yield opened


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def watcher(index: Index, notes: Path, recorder: Recorder) -> Iterator[Watcher]:
    w = Watcher(
        index,
        [notes],
        quiet_seconds=QUIET,
        max_wait_seconds=2.0,
        retry_seconds=0.2,
        on_commit=recorder.commit,
        on_problem=recorder.problem,
    )
    w.start()
    assert wait_for(lambda: w.running)
    time.sleep(0.5)  # watchfiles is watching once its first (empty) batch came
    yield w
    w.stop()


def texts(index: Index, query: str) -> list[str]:
    return [h.text for h in index.search(query, k=5)]


def indexed(index: Index) -> set[str]:
    return {os.path.basename(f.abspath) for f in index.files()}


def test_add_modify_delete_are_picked_up(
    watcher: Watcher, index: Index, notes: Path, recorder: Recorder
) -> None:
    (notes / "bees.txt").write_text(
        article("Bees", "Honey bees dance to show where flowers are."), encoding="utf-8"
    )
    assert wait_for(lambda: "bees.txt" in indexed(index))
    assert any("dance" in t for t in texts(index, "honey bees dance"))

    (notes / "bees.txt").write_text(
        article("Bees", "Bumblebees hum loudly in the clover."), encoding="utf-8"
    )
    assert wait_for(lambda: any("clover" in t for t in texts(index, "bumblebees clover")))
    assert not any("dance" in t for t in texts(index, "honey bees dance"))

    (notes / "bees.txt").unlink()
    assert wait_for(lambda: "bees.txt" not in indexed(index))
    assert not any("clover" in t for t in texts(index, "bumblebees clover"))
    assert indexed(index) == {"river.txt"}
    assert recorder.commits, "each change is told to on_commit"
    assert recorder.commits[-1].report.files_removed[0].endswith("bees.txt")
    assert recorder.commits[-1].generation == index.info().generation
    assert recorder.problems == []


def test_new_folder_and_deleted_folder(watcher: Watcher, index: Index, notes: Path) -> None:
    sub = notes / "2024" / "may"
    sub.mkdir(parents=True)
    (sub / "a.md").write_text(article("Parade", "Leaders attend the parade."), encoding="utf-8")
    (sub / "b.txt").write_text(article("Harbour", "Boats return to the harbour."), encoding="utf-8")
    assert wait_for(lambda: {"a.md", "b.txt"} <= indexed(index))
    # the watched folder stays the root of files found in a folder inside it
    assert [r.root for r in index.roots()] == [os.path.realpath(notes)]

    import shutil

    shutil.rmtree(notes / "2024")
    assert wait_for(lambda: indexed(index) == {"river.txt"})


def test_files_keep_the_spelling_they_were_indexed_with(
    tmp_path: Path, notes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`semsearch index notes --watch` run from notes' parent: paths stay `notes/...`, and
    watching costs no commit until something changes."""
    monkeypatch.chdir(tmp_path)
    with Index.open("idx", create=True, embedder=FakeEmbedder()) as idx:
        idx.add(["notes"])
        generation = idx.info().generation
        with Watcher(idx, ["notes"], quiet_seconds=QUIET):
            time.sleep(6 * QUIET)  # its catch-up re-plan has run
            assert idx.info().generation == generation
            (notes / "sub").mkdir()
            (notes / "sub" / "x.txt").write_text(article("X", "Some words."), encoding="utf-8")
            (notes / "y.txt").write_text(article("Y", "Other words."), encoding="utf-8")
            assert wait_for(lambda: idx.info().files == 3)
        paths = sorted(f.path for f in idx.files())
        assert paths == [
            os.path.join("notes", "river.txt"),
            os.path.join("notes", "sub", "x.txt"),
            os.path.join("notes", "y.txt"),
        ]


def test_a_burst_of_1000_files_costs_a_few_commits(
    watcher: Watcher, index: Index, notes: Path
) -> None:
    before = index.info().generation
    burst = notes / "burst"
    burst.mkdir()
    for i in range(1000):
        (burst / f"n{i:04}.txt").write_text(
            article(f"Note {i}", f"Number {i} says word{i}."), encoding="utf-8"
        )
    assert wait_for(lambda: index.info().files == 1001, seconds=60)
    time.sleep(3 * QUIET)  # (a straggling batch would show here)
    assert index.info().files == 1001
    commits = index.info().generation - before
    assert 1 <= commits <= 5, commits
    assert any("word777" in t for t in texts(index, "word777"))


def test_the_index_inside_the_watched_folder_does_not_trigger_itself(
    watcher: Watcher,
    index: Index,
    notes: Path,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    replans: list[object] = []
    real_add = index.add

    def counted_add(*args: Any, **kwargs: Any) -> Any:
        replans.append(args)
        return real_add(*args, **kwargs)

    monkeypatch.setattr(index, "add", counted_add)
    (notes / "one.txt").write_text(article("One", "A single new note."), encoding="utf-8")
    assert wait_for(lambda: "one.txt" in indexed(index))
    time.sleep(2 * QUIET)
    generation = index.info().generation
    commits, planned = len(recorder.commits), len(replans)
    assert planned >= 1
    time.sleep(8 * QUIET)  # several debounce periods with nothing changing
    assert index.info().generation == generation
    assert len(recorder.commits) == commits
    assert len(replans) == planned  # its own commit's writes are not even looked at
    # nothing in the index folder is, even a file of an article format
    (notes / "idx" / "stray.txt").write_text(article("Stray", "Kept in the index."), "utf-8")
    time.sleep(4 * QUIET)
    assert len(replans) == planned


def test_the_default_hidden_index_folder_does_not_loop(notes: Path, recorder: Recorder) -> None:
    with Index.open(notes / ".semsearch", create=True, embedder=FakeEmbedder()) as idx:
        idx.add([notes])
        with Watcher(idx, [notes], quiet_seconds=QUIET, on_commit=recorder.commit):
            time.sleep(0.5)
            (notes / "two.txt").write_text(article("Two", "Another note."), encoding="utf-8")
            assert wait_for(lambda: "two.txt" in indexed(idx))
            generation = idx.info().generation
            time.sleep(8 * QUIET)
            assert idx.info().generation == generation


def test_temp_files_and_other_formats_are_ignored(
    watcher: Watcher, index: Index, notes: Path, recorder: Recorder
) -> None:
    generation = index.info().generation
    for name in (".river.txt.swp", "river.txt~", "4913", ".#river.txt", "#river.txt#", "p.jpg"):
        (notes / name).write_text("scratch", encoding="utf-8")
    (notes / ".hidden").mkdir()
    (notes / ".hidden" / "x.txt").write_text(article("X", "Hidden."), encoding="utf-8")
    time.sleep(8 * QUIET)
    assert index.info().generation == generation
    assert recorder.commits == []


@pytest.mark.parametrize("name", ["a.swp", "a.txt~", "4913", ".#a.txt", "#a.txt#", "a.tmp"])
def test_temp_names(name: str) -> None:
    assert is_temp_name(name)


@pytest.mark.parametrize("name", ["a.txt", "notes.md", "1984.txt", "tilde~s.txt"])
def test_not_temp_names(name: str) -> None:
    assert not is_temp_name(name)


def test_a_file_that_cannot_be_read_is_one_line_and_others_index(
    watcher: Watcher,
    index: Index,
    notes: Path,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    locked = notes / "locked.txt"
    locked.write_text(article("Locked", "Nobody may read this."), encoding="utf-8")
    if os.geteuid() == 0:  # root reads files whatever their mode: refuse it as chmod would
        real_read = semsearch.update.plan.read_file

        def refuse(path: str, abspath: str) -> SourceFile:
            if abspath.endswith("locked.txt"):
                raise PermissionError(13, "Permission denied", abspath)
            return real_read(path, abspath)

        monkeypatch.setattr(semsearch.update.plan, "read_file", refuse)
    locked.chmod(0)
    try:
        (notes / "fine.txt").write_text(article("Fine", "Readable words."), encoding="utf-8")
        assert wait_for(lambda: "fine.txt" in indexed(index))
        assert wait_for(lambda: len(recorder.problems) >= 1)
        (notes / "fine.txt").write_text(article("Fine", "Readable again."), encoding="utf-8")
        assert wait_for(lambda: any("again" in t for t in texts(index, "readable again")))
        time.sleep(2 * QUIET)
        told = [p for p in recorder.problems if "locked.txt" in p]
        assert len(told) == 1, recorder.problems  # once, not at every commit
        assert "cannot be read" in told[0]
        assert "\n" not in told[0]
        assert "locked.txt" not in indexed(index)
        assert watcher.running
    finally:
        locked.chmod(0o644)


def test_a_record_that_cannot_be_parsed_is_one_line_and_the_rest_indexes(
    watcher: Watcher, index: Index, notes: Path, recorder: Recorder
) -> None:
    (notes / "records.jsonl").write_text(
        '{"title": "Good", "text": "A fine record about owls."}\n{not json\n', encoding="utf-8"
    )
    assert wait_for(lambda: any("owls" in t for t in texts(index, "owls")))
    assert wait_for(lambda: len(recorder.problems) >= 1)
    assert len(recorder.problems) == 1, recorder.problems
    assert "records.jsonl:2" in recorder.problems[0]
    assert "not valid JSON" in recorder.problems[0]


def test_a_busy_index_is_one_line_and_retried(
    watcher: Watcher, index: Index, notes: Path, recorder: Recorder
) -> None:
    lock = WriteLock(index.folder)
    lock.acquire()  # as another process writing would hold it
    try:
        (notes / "later.txt").write_text(article("Later", "Written while busy."), encoding="utf-8")
        assert wait_for(lambda: len(recorder.problems) >= 1)
        time.sleep(5 * 0.2)  # several retries
        assert "later.txt" not in indexed(index)
    finally:
        lock.release()
    assert wait_for(lambda: "later.txt" in indexed(index))
    busy = [p for p in recorder.problems if "another semsearch process" in p]
    assert len(busy) == 1, recorder.problems
    assert watcher.running


def test_a_watched_folder_deleted_is_removed_from_the_index(
    tmp_path: Path, notes: Path, recorder: Recorder
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "o.txt").write_text(article("Other", "Elsewhere entirely."), encoding="utf-8")
    with Index.open(tmp_path / "idx", create=True, embedder=FakeEmbedder()) as idx:
        idx.add([notes, other])
        w = Watcher(idx, [notes, other], quiet_seconds=QUIET, on_problem=recorder.problem)
        with w:
            time.sleep(0.5)
            import shutil

            shutil.rmtree(other)
            assert wait_for(lambda: indexed(idx) == {"river.txt"})
            assert wait_for(lambda: len(recorder.problems) == 1)
            assert "is gone" in recorder.problems[0]
            assert w.paths == [os.path.realpath(notes)]
            assert w.running  # the rest is still watched
            (notes / "still.txt").write_text(article("Still", "Watched."), encoding="utf-8")
            assert wait_for(lambda: "still.txt" in indexed(idx))


def test_a_watched_file(notes: Path, tmp_path: Path, recorder: Recorder) -> None:
    single = notes / "river.txt"
    with Index.open(tmp_path / "idx", create=True, embedder=FakeEmbedder()) as idx:
        idx.add([single])
        with Watcher(idx, [single], quiet_seconds=QUIET, on_problem=recorder.problem):
            time.sleep(0.5)
            single.write_text(article("River", "The river is calm today."), encoding="utf-8")
            assert wait_for(lambda: any("calm" in t for t in texts(idx, "river calm")))
            single.unlink()
            assert wait_for(lambda: idx.info().files == 0)
            assert wait_for(lambda: any("is gone" in p for p in recorder.problems))


def test_stop_returns_promptly(watcher: Watcher) -> None:
    watcher.stop(timeout=5)  # a bound, not a measure: the thread has ended within it
    assert not watcher.running


def test_stop_during_a_burst_leaves_the_index_as_last_committed(
    watcher: Watcher, index: Index, notes: Path, recorder: Recorder
) -> None:
    for i in range(300):
        (notes / f"s{i}.txt").write_text(article(f"S {i}", f"Text {i}."), encoding="utf-8")
    time.sleep(QUIET)
    watcher.stop(timeout=10)
    assert not watcher.running
    assert index.check().ok
    last = recorder.commits[-1].generation if recorder.commits else 1
    assert index.info().generation == last
    added = {os.path.basename(p) for c in recorder.commits for p in c.report.files_added}
    assert indexed(index) == {"river.txt"} | added


class SlowFake(FakeEmbedder):
    """A fake embedder that takes ``pause`` seconds per batch (a long embedding run)."""

    def __init__(self, pause: float) -> None:
        super().__init__()
        self.pause = pause

    def embed(self, texts: Sequence[str], *, batch_size: int = 32, progress: Any = None) -> Any:
        parts = []
        for start in range(0, len(texts), batch_size):
            time.sleep(self.pause)
            chunk = texts[start : start + batch_size]
            parts.append(super().embed(chunk, batch_size=batch_size))
            if progress is not None:
                progress(len(chunk))
        return np.concatenate(parts) if parts else super().embed([], batch_size=batch_size)


def test_stop_during_a_long_embedding_rolls_back_promptly(notes: Path, tmp_path: Path) -> None:
    slow = SlowFake(pause=0.1)
    with Index.open(tmp_path / "idx", create=True, embedder=slow) as idx:
        idx.add([notes])
        generation = idx.info().generation
        w = Watcher(idx, [notes], quiet_seconds=QUIET, batch_size=4).start()
        time.sleep(0.5)
        for i in range(200):  # 50 batches of 4: 5 s of embedding
            (notes / f"s{i}.txt").write_text(article(f"S {i}", f"Text {i}."), encoding="utf-8")
        assert wait_for(lambda: len(slow.calls) >= 2, seconds=20)  # embedding under way
        w.stop(timeout=10)
        assert not w.running
        assert len(slow.calls) < 50  # abandoned mid-run: the 200 files were not all embedded
        assert idx.info().generation == generation  # rolled back: the index as last committed
        assert idx.info().files == 1
        assert idx.check().ok


def test_a_renamed_file_is_one_commit_and_keeps_its_vectors(notes: Path, tmp_path: Path) -> None:
    fake = FakeEmbedder()
    recorder = Recorder()
    with Index.open(tmp_path / "idx", create=True, embedder=fake) as idx:
        idx.add([notes])
        embedded = len(fake.embedded)
        with Watcher(idx, [notes], quiet_seconds=QUIET, on_commit=recorder.commit):
            time.sleep(0.5)
            (notes / "sub").mkdir()
            (notes / "river.txt").rename(notes / "sub" / "flood.txt")
            assert wait_for(lambda: indexed(idx) == {"flood.txt"})
        assert len(recorder.commits) == 1
        assert recorder.commits[0].report.passages_embedded == 0
        assert len(fake.embedded) == embedded  # nothing went through the model again


def test_a_stream_that_never_pauses_still_commits(notes: Path, tmp_path: Path) -> None:
    recorder = Recorder()
    with Index.open(tmp_path / "idx", create=True, embedder=FakeEmbedder()) as idx:
        idx.add([notes])
        w = Watcher(
            idx, [notes], quiet_seconds=0.5, max_wait_seconds=1.0, on_commit=recorder.commit
        )
        with w:
            time.sleep(0.5)
            deadline = time.monotonic() + 10
            i = 0
            while not recorder.commits and time.monotonic() < deadline:  # a write every 0.1 s
                (notes / f"t{i}.txt").write_text(article(f"T {i}", f"Tick {i}."), encoding="utf-8")
                i += 1
                time.sleep(0.1)
            assert recorder.commits, "no commit while changes kept coming"
            assert i < 100


def test_searches_in_other_threads_go_on_while_it_commits(
    watcher: Watcher, index: Index, notes: Path
) -> None:
    """As in a server: one open Index serves queries while the watcher commits beside them."""
    errors: list[BaseException] = []
    done = threading.Event()

    def search_loop() -> None:
        for _ in range(2000):
            if done.is_set():
                return
            try:
                assert index.search("river floods", k=3)
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=search_loop) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for batch in range(3):
            for i in range(50):
                name = f"c{batch}-{i}.txt"
                (notes / name).write_text(article(name, f"Batch {batch} item {i}."), "utf-8")
            assert wait_for(lambda b=batch: index.info().files == 1 + 50 * (b + 1), seconds=30)
    finally:
        done.set()
        for t in threads:
            t.join(30)
    assert errors == []
    assert any("Batch 2 item 7" in t for t in texts(index, "batch 2 item 7"))


def test_a_path_that_does_not_exist_is_refused(index: Index, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file or folder"):
        Watcher(index, [tmp_path / "nowhere"])


def test_lock_error_is_what_a_second_writer_gets(index: Index) -> None:
    # (the watcher's retry path relies on add raising IndexLockedError, not waiting)
    with WriteLock(index.folder), pytest.raises(IndexLockedError):
        index.add([Path(index.folder).parent])


def test_index_watch_in_a_real_process(tmp_path: Path, notes: Path) -> None:
    """`semsearch index DIR --watch`: the first run, a commit per change, Ctrl-C -> 130."""
    idx = tmp_path / "idx"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, str(ROOT / "tests" / "fake_cli.py"), "index", str(notes)]
    proc = subprocess.Popen(
        [*cmd, "--index", str(idx), "--watch"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for(lambda: (idx / "semsearch.db").exists(), seconds=60)
        time.sleep(2.0)  # the first run done, watching (the watcher's catch-up costs no commit)
        (notes / "new.txt").write_text(article("New", "Fresh words appear."), encoding="utf-8")

        def shows_new() -> bool:
            with Index.open(idx, embedder=FakeEmbedder()) as reader:
                return reader.info().files == 2

        assert wait_for(shows_new, seconds=60)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in out + err
    assert f"watching {notes} (Ctrl-C stops)" in err
    assert "interrupted" in err.strip().splitlines()[-1]
    commit_lines = [line for line in out.splitlines() if "generation" in line]
    assert len(commit_lines) == 1, out
    assert "1 added" in commit_lines[0]
    assert "generation 2" in commit_lines[0]
    check = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "fake_cli.py"), "check", "--index", str(idx)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_index_watch_of_an_empty_folder_waits_for_articles(tmp_path: Path) -> None:
    """An empty folder to watch is a note, not an error; --json gives one object per commit."""
    empty = tmp_path / "empty"
    empty.mkdir()
    idx = tmp_path / "idx"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, str(ROOT / "tests" / "fake_cli.py"), "index", str(empty)]
    proc = subprocess.Popen(
        [*cmd, "--index", str(idx), "--watch", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(3.0)  # (no index appears for an empty folder: nothing to wait on)
        assert proc.poll() is None, proc.communicate()
        (empty / "first.md").write_text(article("First", "The first note."), encoding="utf-8")
        assert wait_for(lambda: (idx / "semsearch.db").exists(), seconds=60)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, (out, err)
    assert "note: no readable articles" in err
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 1, out
    assert lines[0]["generation"] == 1
    assert lines[0]["files_added"] == [str(os.path.realpath(empty / "first.md"))]


def test_index_watch_of_a_missing_path_is_one_line(tmp_path: Path) -> None:
    code, out, err = run(
        "index", str(tmp_path / "nowhere"), "--index", str(tmp_path / "i"), "--watch"
    )
    assert_one_line_error(code, out, err, "no such file or folder", exit_code=2)
