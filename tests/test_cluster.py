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
from typing import Literal

import numpy as np
import pytest

from semsearch import Index
from semsearch.cluster import check_address, connect
from semsearch.errors import ClusterError, UsageError
from tests.cli_helpers import assert_one_line_error, run_faked
from tests.conftest import BBC, ROOT, SEEDS
from tests.fakes import FakeEmbedder
from tests.loopback import only_loopback

pytest.importorskip("ray")

# Ray's processes listen on the machine's address; in `make test`'s namespace of loopback
# only (tests/loopback.py) they listen on 127.0.0.1, as every server in the tests must.
needs_loopback = pytest.mark.skipif(
    not only_loopback(),
    reason="starts Ray, whose servers would listen on this machine's address: run through "
    "`make test` or `python tests/loopback.py python -m pytest`",
)


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
    code, out, err = run_faked(
        "index", str(docs), "--index", str(tmp_path / "ix"), "--ray", address
    )
    assert_one_line_error(code, out, err, "--ray")
    assert not (tmp_path / "ix").exists()  # nothing was written


def test_workers_need_ray(tmp_path: Path) -> None:
    docs = _articles(tmp_path / "docs", 2)
    code, out, err = run_faked(
        "index", str(docs), "--index", str(tmp_path / "ix"), "--workers", "2"
    )
    assert_one_line_error(code, out, err, "--workers", "--ray")


def test_without_ray_installed_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray: ImportError
    docs = _articles(tmp_path / "docs", 2)
    code, out, err = run_faked(
        "index", str(docs), "--index", str(tmp_path / "ix"), "--ray", "local:2"
    )
    assert_one_line_error(code, out, err, "pip install 'semsearch[ray]'")
    assert not (tmp_path / "ix").exists()


def test_no_running_cluster_is_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
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


@needs_loopback
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


@needs_loopback
def test_ray_workers_fill_the_shards_of_an_on_disk_index_as_a_local_run_does(
    tmp_path: Path, on_path: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ivfpq-disk through Ray: trained once by the driver, its shards filled by Ray tasks
    (jobs of 200 vectors here), merged on disk: the same answers as a local build."""
    from semsearch.storage import shards

    monkeypatch.setattr(shards, "JOB_ROWS", 200)
    docs = _articles(tmp_path / "docs", 320, "and currents")
    with Index.open(
        tmp_path / "local", create=True, embedder=FakeEmbedder(), index_type="ivfpq-disk"
    ) as ix:
        ix.add(docs)
        assert ix.info().index_type == "ivfpq-disk"
    runner = connect("local:2")
    jobs: list[int] = []
    ray_map = runner.map

    def counted(fn, items):  # type: ignore[no-untyped-def]
        jobs.append(len(items))
        return ray_map(fn, items)

    runner.map = counted  # type: ignore[method-assign]
    try:
        with Index.open(
            tmp_path / "ray", create=True, embedder=FakeEmbedder(), index_type="ivfpq-disk"
        ) as ix:
            report = ix.add(docs, runner=runner)
    finally:
        runner.close()
    assert report.passages_embedded > 624  # enough to train the lists, not flat
    assert jobs == [-(-report.passages_embedded // 200)]
    assert _contents(tmp_path / "ray") == _contents(tmp_path / "local")
    with (
        Index.open(tmp_path / "ray", embedder=FakeEmbedder()) as a,
        Index.open(tmp_path / "local", embedder=FakeEmbedder()) as b,
    ):
        assert a.info().index_type == "ivfpq-disk"
        for query in ("the 17th report on harbour tides", "ferries and gulls of article 250"):
            hits_a = [
                (h.passage_id, round(h.score, 6)) for h in a.search(query, k=10, mode="dense")
            ]
            hits_b = [
                (h.passage_id, round(h.score, 6)) for h in b.search(query, k=10, mode="dense")
            ]
            assert hits_a == hits_b and len(hits_a) == 10


@needs_loopback
@pytest.mark.slow
@pytest.mark.parametrize(("backend", "articles"), [("torch", 8), ("onnx", 2)])
def test_ray_vectors_equal_local_vectors_with_the_real_model(
    tmp_path: Path, on_path: None, backend: Literal["torch", "onnx"], articles: int
) -> None:
    """The real model, on torch and on the ONNX export (whose files travel to the workers
    as bytes): the same passages, and vectors at cosine >= 0.9999 passage by passage."""
    docs = tmp_path / "docs"
    shutil.copytree(SEEDS, docs)
    for name in sorted(os.listdir(BBC / "tech"))[:articles]:
        shutil.copy(BBC / "tech" / name, docs / name)
    with Index.open(tmp_path / "local", create=True, backend=backend) as ix:
        ix.add(docs)
    runner = connect("local:2")
    try:
        with Index.open(tmp_path / "ray", create=True, backend=backend) as ix:
            report = ix.add(docs, runner=runner)
            assert ix.info().backend == backend
    finally:
        runner.close()
    assert report.passages_embedded > 10
    assert _contents(tmp_path / "ray") == _contents(tmp_path / "local")
    a, b = _vectors(tmp_path / "local"), _vectors(tmp_path / "ray")
    assert a.keys() == b.keys()
    cosines = np.array([float(a[i] @ b[i]) for i in a])
    assert cosines.min() >= 0.9999, cosines.min()


@needs_loopback
def test_a_worker_that_dies_is_restarted_and_its_batch_retried(
    tmp_path: Path, on_path: None
) -> None:
    from tests.ray_fakes import DyingOnceFake

    docs = _articles(tmp_path / "docs", 30)
    marker = tmp_path / "died"
    runner = connect("local:2")
    try:
        with Index.open(tmp_path / "ray", create=True, embedder=DyingOnceFake(str(marker))) as ix:
            report = ix.add(docs, runner=runner)
    finally:
        runner.close()
    assert marker.exists()  # a worker did die, in the middle of its first batch
    with Index.open(tmp_path / "local", create=True, embedder=FakeEmbedder()) as ix:
        ix.add(docs)
    assert report.passages_embedded == len(_contents(tmp_path / "local"))
    a, b = _vectors(tmp_path / "local", FakeEmbedder()), _vectors(tmp_path / "ray", FakeEmbedder())
    assert a.keys() == b.keys() and all(np.allclose(a[i], b[i]) for i in a)


@needs_loopback
def test_an_error_in_a_worker_is_one_line_and_leaves_the_index(
    tmp_path: Path, on_path: None
) -> None:
    from tests.ray_fakes import FailingFake

    docs = _articles(tmp_path / "docs", 4)
    with Index.open(tmp_path / "ix", create=True, embedder=FakeEmbedder()) as ix:
        ix.add(docs)
    before = _contents(tmp_path / "ix")
    _articles(tmp_path / "docs", 8, "again")  # four more files, four changed
    runner = connect("local:2")
    try:
        with (
            Index.open(tmp_path / "ix", embedder=FailingFake()) as ix,
            pytest.raises(ClusterError) as caught,
        ):
            ix.add(docs, runner=runner)
    finally:
        runner.close()
    message = str(caught.value)
    assert "\n" not in message and "divided by zero" in message and "as it was" in message
    assert _contents(tmp_path / "ix") == before


@needs_loopback
def test_semsearch_errors_in_a_worker_come_back_as_themselves(
    tmp_path: Path, on_path: None
) -> None:
    from semsearch.errors import ModelLoadError
    from tests.ray_fakes import UnloadableFake

    docs = _articles(tmp_path / "docs", 3)
    runner = connect("local:2")
    try:
        with (
            Index.open(tmp_path / "new", create=True, embedder=UnloadableFake()) as ix,
            pytest.raises(ModelLoadError, match=r"not installed on this worker$"),
        ):
            ix.add(docs, runner=runner)
    finally:
        runner.close()
    assert not (tmp_path / "new").exists()  # no half-made index left behind


def _fake_cli(*args: str, **env: str) -> subprocess.Popen[str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "fake_cli.py"), *args],
        env={**os.environ, "PYTHONPATH": path, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@needs_loopback
def test_the_command_says_where_it_embedded_and_nothing_of_ray(tmp_path: Path) -> None:
    docs = _articles(tmp_path / "docs", 5)
    proc = _fake_cli("index", str(docs), "--index", str(tmp_path / "ix"), "--ray", "local:2")
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert err == ""  # none of Ray's logging, warnings or progress bars
    assert "embedded on Ray local:2, 2 embedding workers" in out
    assert len(_contents(tmp_path / "ix")) == 10
    info = _fake_cli("info", "--index", str(tmp_path / "ix"))
    out, err = info.communicate(timeout=60)
    assert "embedded on:  Ray local:2, 2 embedding workers (its last run)" in out, out


def _raylets() -> set[int]:
    out = subprocess.run(["pgrep", "-f", "raylet"], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


@needs_loopback
def test_killing_the_driver_leaves_the_previous_index(tmp_path: Path) -> None:
    docs = _articles(tmp_path / "docs", 6)
    index = tmp_path / "ix"
    code, _, err = run_faked("index", str(docs), "--index", str(index), "-q")
    assert code == 0, err
    before = _contents(index)
    _articles(tmp_path / "docs", 200, "and more")  # 194 new articles, 6 changed
    started = tmp_path / "started"
    raylets = _raylets()
    driver = _fake_cli(
        "index",
        str(docs),
        "--index",
        str(index),
        "--ray",
        "local:2",
        "-q",
        SEMSEARCH_FAKE_SLEEP="0.5",  # seconds per batch of 32: the run takes a while
        SEMSEARCH_FAKE_STARTED=str(started),
    )
    try:
        deadline = time.monotonic() + 120
        while not started.exists() and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert started.exists() and driver.poll() is None  # embedding on Ray, not done
        time.sleep(1.0)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == -signal.SIGKILL
    assert _contents(index) == before  # the previous commit, whole
    assert Index.check_folder(index).ok
    # the Ray instance the driver started goes with it (Ray's reaper), within a while
    deadline = time.monotonic() + 60
    while _raylets() - raylets and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _raylets() - raylets
    # and the index takes the next run (its write lock went with the driver)
    code, _, err = run_faked("index", str(docs), "--index", str(index), "-q")
    assert code == 0, err
    assert len(_contents(index)) > len(before)
