"""Indexing on Ray (`semsearch index --ray local:2`): the same index as a local run.

Each test that runs Ray starts a local Ray instance of its own (a few seconds) with
two workers, as `--ray local:2` does; workers import this checkout (PYTHONPATH).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from semsearch import Index
from semsearch.cluster import LocalRunner, check_address, connect
from semsearch.errors import ClusterError, UsageError
from tests.cli_helpers import assert_one_line_error, run, run_faked
from tests.conftest import BBC, ROOT, SEEDS
from tests.fakes import FakeEmbedder

pytest.importorskip("ray")


@pytest.fixture
def on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray workers find `tests.*` (the fakes) as they find a user's own modules."""
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))


def _articles(folder: Path, n: int, words: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"a{i:03d}.txt").write_text(
            f"Article {i}\n\nThe {i}th report on harbour tides {words}.\n\n"
            f"A second paragraph of article {i} about ferries and gulls.\n",
            encoding="utf-8",
        )
    return folder


def _contents(folder: Path) -> dict[int, tuple[str, str]]:
    """passage id -> (file, text) of every passage of the index in ``folder``."""
    with Index.open(folder) as ix:
        out = {}
        for f in ix.files():
            for pid in ix.passages_of(f.path):
                hit = ix.passage(pid, context=0).passage
                out[pid] = (os.path.basename(hit.path), hit.text)
        return out


def _vectors(folder: Path, embedder: object | None = None) -> dict[int, np.ndarray]:
    with Index.open(folder, embedder=embedder) as ix, ix.snapshot() as snap:  # type: ignore[arg-type]
        ids = sorted(int(i) for i in snap.passage_ids())
        vecs = snap.vectors(ids)
        return {i: vecs[n] for n, i in enumerate(ids)}


# --------------------------------------------------------------------------- choices


@pytest.mark.parametrize("address", ["local:2", "local", "auto", "ray://head:10001"])
def test_addresses_semsearch_takes(address: str) -> None:
    assert check_address(address) == address


@pytest.mark.parametrize("address", ["lokal:2", "local:0", "ray://", "head:10001", ""])
def test_other_addresses_are_one_line_errors(tmp_path: Path, address: str) -> None:
    with pytest.raises(UsageError):
        check_address(address)
    docs = _articles(tmp_path / "docs", 2)
    code, out, err = run_faked("index", str(docs), "--index", str(tmp_path / "ix"), "--ray", address)
    assert_one_line_error(code, out, err, "--ray")
    assert not (tmp_path / "ix").exists()  # nothing was written


def test_workers_need_ray(tmp_path: Path) -> None:
    docs = _articles(tmp_path / "docs", 2)
    code, out, err = run_faked("index", str(docs), "--index", str(tmp_path / "ix"), "--workers", "2")
    assert_one_line_error(code, out, err, "--workers", "--ray")


def test_without_ray_installed_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray: ImportError
    docs = _articles(tmp_path / "docs", 2)
    code, out, err = run_faked("index", str(docs), "--index", str(tmp_path / "ix"), "--ray", "local:2")
    assert_one_line_error(code, out, err, "pip install 'semsearch[ray]'")
    assert not (tmp_path / "ix").exists()


def test_no_running_cluster_is_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    docs = _articles(tmp_path / "docs", 2)
    code, out, err = run_faked("index", str(docs), "--index", str(tmp_path / "ix"), "--ray", "auto")
    assert_one_line_error(code, out, err, "ray start --head", "--ray local:2")
    assert not (tmp_path / "ix").exists()


def test_a_run_with_nothing_to_do_never_starts_ray(tmp_path: Path) -> None:
    docs = _articles(tmp_path / "docs", 3)
    fake = FakeEmbedder()
    with Index.open(tmp_path / "ix", create=True, embedder=fake) as ix:
        ix.add(docs)
        runner = connect("auto")  # no cluster runs: starting it would fail
        report = ix.add(docs, runner=runner)
        runner.close()
    assert report.passages_embedded == 0 and report.embedded_by == ""


# --------------------------------------------------------------------------- on Ray


def test_ray_run_equals_a_local_run_and_updates_incrementally(
    tmp_path: Path, on_path: None
) -> None:
    docs = _articles(tmp_path / "docs", 40, "and currents")
    with Index.open(tmp_path / "local", create=True, embedder=FakeEmbedder()) as ix:
        local = ix.add(docs)
    runner = connect("local:2")
    try:
        with Index.open(tmp_path / "ray", create=True, embedder=FakeEmbedder()) as ix:
            first = ix.add(docs, runner=runner)
            assert first.embedded_by == "Ray local:2, 2 embedding workers"
            assert first.passages_embedded == local.passages_embedded > 0
            assert _contents(tmp_path / "ray") == _contents(tmp_path / "local")
            before = _vectors(tmp_path / "ray", FakeEmbedder())
            assert before.keys() == _vectors(tmp_path / "local", FakeEmbedder()).keys()
            old = _contents(tmp_path / "ray")

            # one article edited, one added, one deleted: only new texts are embedded
            (docs / "a005.txt").write_text(
                "Article 5\n\nThe 5th report on harbour tides and currents.\n\n"
                "An edited paragraph about lighthouses.\n",
                encoding="utf-8",
            )
            (docs / "new.txt").write_text("New\n\nA new article on dredging.\n", encoding="utf-8")
            (docs / "a007.txt").unlink()
            second = ix.add(docs, runner=runner)
    finally:
        runner.close()
    contents = _contents(tmp_path / "ray")
    old_texts = {text for f, text in old.values() if f == "a005.txt"}
    new_texts = {text for f, text in contents.values() if f in ("a005.txt", "new.txt")}
    assert second.passages_embedded == len(new_texts - old_texts) == 2
    assert (second.documents_added, second.documents_updated, second.documents_removed) == (1, 1, 1)
    after = _vectors(tmp_path / "ray", FakeEmbedder())
    # where a fresh local run of the folder as it now is ends: the same passages, vectors
    with Index.open(tmp_path / "fresh", create=True, embedder=FakeEmbedder()) as ix:
        ix.add(docs)
    fresh = _contents(tmp_path / "fresh")
    fresh_vectors = _vectors(tmp_path / "fresh", FakeEmbedder())
    assert sorted(fresh.values()) == sorted(contents.values())
    by_passage = {where: fresh_vectors[pid] for pid, where in fresh.items()}
    for pid, where in contents.items():
        assert np.allclose(after[pid], by_passage[where], atol=1e-6)
    untouched = [pid for pid, (f, _) in old.items() if f not in ("a005.txt", "a007.txt")]
    assert untouched and all(np.array_equal(after[pid], before[pid]) for pid in untouched)
    assert not any(f == "a007.txt" for f, _ in contents.values())


@pytest.mark.slow
def test_ray_vectors_equal_local_vectors_with_the_real_model(tmp_path: Path, on_path: None) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(SEEDS, docs)
    for name in sorted(os.listdir(BBC / "tech"))[:8]:
        shutil.copy(BBC / "tech" / name, docs / name)
    with Index.open(tmp_path / "local", create=True) as ix:
        ix.add(docs)
    runner = connect("local:2")
    try:
        with Index.open(tmp_path / "ray", create=True) as ix:
            report = ix.add(docs, runner=runner)
    finally:
        runner.close()
    assert report.passages_embedded > 50
    assert _contents(tmp_path / "ray") == _contents(tmp_path / "local")
    a, b = _vectors(tmp_path / "local"), _vectors(tmp_path / "ray")
    assert a.keys() == b.keys()
    cosines = np.array([float(a[i] @ b[i]) for i in a])
    assert cosines.min() >= 0.9999, cosines.min()
