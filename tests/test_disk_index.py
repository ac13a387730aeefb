"""IVF shards merged on disk, and the index type built on them (``ivfpq-disk``).

- shards of one trained index, filled apart under their global ids and merged
  into inverted lists on disk, answer exactly as one index filled in one go
  (flat-coded lists), whatever the shards' sizes and however their ids are
  spread; IVF-PQ lists re-scored from the exact vectors find >= 0.99 of the
  true top 10;
- an ``ivfpq-disk`` index filled by workers (``map_shards``) equals one filled
  here; a save writes the next generation beside the committed one and never
  changes it; a moved index folder still opens; faiss's own prints never reach
  stdout (a `--json` reader); a missing lists file is one line of error; a disk
  too full for the lists refuses before writing and leaves the index as it was;
  ``auto`` turns to it past its limit.

The index-level behaviour every type shares (adding, editing, deleting,
filtering, converting) is in tests/test_index_types.py, which runs it too.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt
import pytest

from semsearch.errors import IndexCorruptError, IndexWriteError
from semsearch.index import Index
from semsearch.storage import shards, vectors
from tests.cli_helpers import assert_one_line_error
from tests.conftest import ROOT
from tests.fakes import FakeEmbedder

DIM = 64
K = 10
Floats = npt.NDArray[np.float32]
Ids = npt.NDArray[np.int64]


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vectors, "_threads_for", lambda work: faiss.omp_set_num_threads(1))


def clustered(n: int, seed: int = 3, clusters: int = 40) -> Floats:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[rng.integers(0, clusters, n)] + 0.6 / np.sqrt(DIM) * rng.standard_normal((n, DIM))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def data() -> tuple[Ids, Floats, Floats]:
    x = clustered(6000)
    rng = np.random.default_rng(11)
    ids = np.sort(rng.choice(10**12, len(x), replace=False)).astype(np.int64) + 5  # sparse
    return ids, x, clustered(60, seed=99)


def brute(ids: Ids, x: Floats, queries: Floats, k: int = K) -> Ids:
    scores = queries @ x.T
    return ids[np.argsort(-scores, axis=1, kind="stable")[:, :k]]


def recall(found: Ids, truth: Ids) -> float:
    pairs = zip(found, truth, strict=True)
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in pairs]))


def every_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every list probed: a test of what the lists hold, not of how many are probed."""
    monkeypatch.setattr(vectors.DiskIVFIndex, "nprobe", property(lambda self: self.nlist))


def saved(tmp_path: Path, ids: Ids, x: Floats) -> str:
    """An ivfpq-disk index of ``ids`` -> ``x`` saved as generation 1 in ``tmp_path``."""
    path = str(tmp_path / "vectors.000001.faiss")
    vectors.DiskIVFIndex.build("ivfpq-disk", ids, x).save(path)
    return path


def local_map(calls: list[int]) -> Callable[[Callable[[Any], Any], Sequence[Any]], list[Any]]:
    """A `Runner.map` that runs here and counts the jobs it was given."""

    def run(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        calls.append(len(items))
        return [fn(item) for item in items]

    return run


def test_shards_merged_on_disk_answer_as_one_index_filled_at_once(
    data: tuple[Ids, Floats, Floats], tmp_path: Path
) -> None:
    ids, x, queries = data
    trained = shards.train("flat", x[:2000], 32)
    whole = shards.empty(trained)
    whole.add_with_ids(x, ids)

    # three shards of unequal sizes, their ids interleaved, not in blocks
    order = np.random.default_rng(5).permutation(len(ids))
    cuts = [order[:700], order[700:4100], order[4100:]]
    parts = [shards.from_bytes(shards.fill_job((trained, ids[c], x[c]))) for c in cuts]
    merged = shards.merge_to_disk(
        shards.empty(trained), [p.invlists for p in parts], str(tmp_path / "lists.ivfdata")
    )
    assert merged.ntotal == len(ids)
    assert isinstance(faiss.downcast_InvertedLists(merged.invlists), faiss.OnDiskInvertedLists)
    for nprobe in (4, 32):
        whole.nprobe = merged.nprobe = nprobe
        s1, i1 = whole.search(queries, K)
        s2, i2 = merged.search(queries, K)
        assert np.array_equal(i1, i2) and np.array_equal(s1, s2)
    assert set(i2.ravel().tolist()) <= set(ids.tolist())  # global ids, never shifted
    whole.nprobe = 32
    assert recall(whole.search(queries, K)[1], brute(ids, x, queries)) == 1.0


def test_ivfpq_disk_filled_by_workers_equals_one_filled_here_and_finds_the_true_top(
    data: tuple[Ids, Floats, Floats], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids, x, queries = data
    monkeypatch.setattr(shards, "JOB_ROWS", 1000)
    calls: list[int] = []
    by_workers = vectors.DiskIVFIndex.build("ivfpq-disk", ids, x, map_shards=local_map(calls))
    here = vectors.DiskIVFIndex.build("ivfpq-disk", ids, x)
    assert calls == [6]  # 6,000 vectors in jobs of 1,000
    for made, name in ((by_workers, "a"), (here, "b")):
        (tmp_path / name).mkdir()
        made.save(str(tmp_path / name / "vectors.000001.faiss"))
    a = vectors.load("ivfpq-disk", str(tmp_path / "a" / "vectors.000001.faiss"))
    b = vectors.load("ivfpq-disk", str(tmp_path / "b" / "vectors.000001.faiss"))
    sa, ia = a.search(queries, K)
    sb, ib = b.search(queries, K)
    assert np.array_equal(ia, ib) and np.allclose(sa, sb, atol=1e-6)
    exact_scores = np.take_along_axis(queries @ x.T, np.searchsorted(ids, ia), axis=1)
    assert np.allclose(sa, exact_scores, atol=1e-5)  # re-scored: exact scores, not PQ's

    # The PQ codes lose what the re-scoring gives back: what the probed lists hold, it
    # finds. Probing every list, >= 0.99 of the true top 10; probing the default few, as
    # much as IVF-Flat lists of the same training find there.
    truth = brute(ids, x, queries)
    flat = shards.empty(shards.train("flat", x, a.nlist))  # the same k-means: same sample
    flat.add_with_ids(x, ids)
    flat.nprobe = a.nprobe
    assert recall(ia, truth) >= recall(flat.search(queries, K)[1], truth) - 0.01
    every_list(monkeypatch)
    assert recall(a.search(queries, K)[1], truth) >= 0.99


def _digest(folder: Path, generation: int) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.iterdir()
        if p.name.startswith(f"vectors.{generation:06d}.")
    }


def test_a_save_writes_the_next_generation_beside_the_committed_one(
    data: tuple[Ids, Floats, Floats], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    every_list(monkeypatch)  # what is checked is which vectors the lists hold
    ids, x, queries = data
    first = saved(tmp_path, ids[:5000], x[:5000])
    before = _digest(tmp_path, 1)
    assert set(before) == {
        "vectors.000001.faiss",
        "vectors.000001.ivfdata",
        "vectors.000001.trained.faiss",
        "vectors.000001.exact.npy",
        "vectors.000001.exact-ids.npy",
    }
    old = vectors.load("ivfpq-disk", first)
    old_answer = old.search(queries, K)[1]

    writer = vectors.load("ivfpq-disk", first)
    writer.add(ids[5000:], x[5000:])
    writer.remove(ids[:300])
    live_ids, live_x = ids[300:], x[300:]
    between = writer.search(queries, K)[1]  # before the save: the lists on disk + the new ones
    writer.save(str(tmp_path / "vectors.000002.faiss"))

    assert _digest(tmp_path, 1) == before  # the committed generation untouched
    assert np.array_equal(old.search(queries, K)[1], old_answer)  # its readers unaffected
    new = vectors.load("ivfpq-disk", str(tmp_path / "vectors.000002.faiss"))
    assert new.count == len(live_ids)
    assert np.array_equal(np.sort(new.ids()), np.sort(live_ids))
    truth = brute(live_ids, live_x, queries)
    for found in (between, new.search(queries, K)[1], writer.search(queries, K)[1]):
        assert not set(found.ravel().tolist()) & set(ids[:300].tolist())
        assert recall(found, truth) >= 0.99
    assert np.array_equal(new.reconstruct(ids[5000:5003]), x[5000:5003])


def test_a_disk_too_full_for_the_lists_is_refused_before_writing(
    data: tuple[Ids, Floats, Floats], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids, x, _ = data
    index = vectors.DiskIVFIndex.build("ivfpq-disk", ids, x)
    real = shutil.disk_usage

    def nearly_full(path: Any) -> Any:
        usage = real(path)
        return usage._replace(free=1 << 20)

    monkeypatch.setattr(shards.shutil, "disk_usage", nearly_full)
    with pytest.raises(IndexWriteError, match="not enough disk space"):
        index.save(str(tmp_path / "vectors.000001.faiss"))
    assert not (tmp_path / "vectors.000001.faiss").exists()
    assert not (tmp_path / "vectors.000001.ivfdata").exists()


def _articles(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    words = "tide harbour ferry gull pier storm lamp rope sail mast deck keel".split()  # noqa: SIM905
    for i in range(count):
        paragraphs = [" ".join(rng.choice(words, 8)) + f" item{i}x{j}." for j in range(4)]
        (folder / f"a{i:04d}.txt").write_text(
            f"Headline {i}\n\n" + "\n\n".join(paragraphs) + "\n", encoding="utf-8"
        )
    return folder


@pytest.fixture(scope="module")
def disk_index(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An ivfpq-disk index of 200 articles (800 passages) built by the CLI's fake model."""
    root = tmp_path_factory.mktemp("disk")
    docs = _articles(root / "docs", 200)
    ix = root / "ix"
    done = _fake_cli("index", str(docs), "--index", str(ix), "--index-type", "ivfpq-disk", "-q")
    assert done.returncode == 0, done.stderr
    return docs, ix


def _fake_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with the fake model in a process of its own: faiss's C-level prints would
    reach its real stdout, which an in-process runner never sees."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / "tests" / "fake_cli.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_queries_print_only_their_answer_also_from_a_moved_folder(
    disk_index: tuple[Path, Path], tmp_path: Path
) -> None:
    _, ix = disk_index
    names = sorted(p.name for p in ix.iterdir())
    assert any(n.endswith(".ivfdata") for n in names), names
    moved = tmp_path / "elsewhere"
    shutil.copytree(ix, moved)  # the lists file's recorded path now names the old folder
    for folder in (ix, moved):
        done = _fake_cli("query", "harbour ferry item7x2", "--index", str(folder), "--json")
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)  # nothing but the JSON on stdout
        assert answer["results"], answer
        assert "item7x2" in answer["results"][0]["text"]
        assert done.stderr.strip() == ""
    info = _fake_cli("info", "--index", str(moved), "--json")
    assert json.loads(info.stdout)["index_type"] == "ivfpq-disk"


def test_a_missing_lists_file_is_one_line_of_error(
    disk_index: tuple[Path, Path], tmp_path: Path
) -> None:
    _, ix = disk_index
    broken = tmp_path / "broken"
    shutil.copytree(ix, broken)
    for lists in broken.glob("*.ivfdata"):
        lists.unlink()
    done = _fake_cli("query", "harbour", "--index", str(broken))
    assert_one_line_error(done.returncode, done.stdout, done.stderr, "--rebuild")


def test_auto_turns_to_ivfpq_disk_past_its_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vectors, "AUTO_FLAT_LIMIT", 300)
    monkeypatch.setattr(vectors, "AUTO_DISK_LIMIT", 700)
    assert vectors.target_kind("auto", 700) == "ivf"
    assert vectors.target_kind("auto", 701) == "ivfpq-disk"
    docs = _articles(tmp_path / "docs", 200)  # 800 passages
    fake = FakeEmbedder(dimension=32)
    with Index.open(tmp_path / "ix", create=True, embedder=fake) as index:
        index.add(docs)
        assert index.info().index_type == "ivfpq-disk"
        text = (docs / "a0042.txt").read_text(encoding="utf-8").split("\n\n")[2].strip()
        hits = index.search(text, k=1, mode="dense", collapse=False)
        assert [h.text for h in hits] == [text]
        assert index.check().problems == []


def test_open_refuses_an_ivfpq_disk_index_whose_trained_file_is_gone(
    data: tuple[Ids, Floats, Floats], tmp_path: Path
) -> None:
    ids, x, _ = data
    path = saved(tmp_path, ids, x)
    os.unlink(tmp_path / "vectors.000001.trained.faiss")
    with pytest.raises(IndexCorruptError, match="--rebuild"):
        vectors.load("ivfpq-disk", path)


def test_an_id_removed_then_added_again_survives_the_save(
    data: tuple[Ids, Floats, Floats], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    every_list(monkeypatch)
    ids, x, _ = data
    first = saved(tmp_path, ids, x)
    writer = vectors.load("ivfpq-disk", first)
    writer.remove(ids[:2])
    writer.add(ids[:1], x[5:6])  # the same id, another vector
    assert writer.count == len(ids) - 1
    writer.save(str(tmp_path / "vectors.000002.faiss"))
    new = vectors.load("ivfpq-disk", str(tmp_path / "vectors.000002.faiss"))
    assert new.count == len(ids) - 1
    assert ids[0] in set(new.ids().tolist()) and ids[1] not in set(new.ids().tolist())
    assert np.array_equal(new.reconstruct(ids[:1]), x[5:6])
    _, found = new.search(x[5:6], 2)
    assert set(found[0].tolist()) == {ids[0], ids[5]}  # both hold x[5]


def test_other_threads_output_passes_while_faiss_prints_are_dropped(tmp_path: Path) -> None:
    """A save prints nothing of faiss's on stdout, and whatever else the process writes to
    stdout meanwhile (another thread's lines, as a stdio protocol would) comes through."""
    script = tmp_path / "talk.py"
    script.write_text(
        "import sys, threading, numpy as np\n"
        "from semsearch.storage import vectors\n"
        "x = np.random.default_rng(0).standard_normal((2000, 32)).astype('float32')\n"
        "x /= np.linalg.norm(x, axis=1, keepdims=True)\n"
        "ids = np.arange(1, 2001)\n"
        "def talk():\n"
        "    for i in range(3000):\n"
        "        print(f'line {i}', flush=True)\n"
        "t = threading.Thread(target=talk); t.start()\n"
        "for g in range(1, 4):\n"
        f"    path = {str(tmp_path)!r} + f'/vectors.{{g:06d}}.faiss'\n"
        "    vectors.DiskIVFIndex.build('ivfpq-disk', ids, x).save(path)\n"
        "    vectors.load('ivfpq-disk', path)\n"
        "t.join()\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines == [f"line {i}" for i in range(3000)]  # all of them, in order, nothing else


def test_a_truncated_lists_file_is_corruption_not_a_crash(
    disk_index: tuple[Path, Path], tmp_path: Path
) -> None:
    _, ix = disk_index
    broken = tmp_path / "short"
    shutil.copytree(ix, broken)
    (lists,) = broken.glob("*.ivfdata")
    os.truncate(lists, lists.stat().st_size // 2)
    for command in ("check", "query"):
        args = (
            (command, "--index", str(broken))
            if command == "check"
            else ("query", "harbour", "--index", str(broken))
        )
        done = _fake_cli(*args)
        assert done.returncode not in (0, -7, 135), (done.returncode, done.stderr)  # no SIGBUS
        assert "Traceback" not in done.stderr
        assert "ivfdata" in done.stdout + done.stderr


def test_a_failed_commit_leaves_no_generation_that_outlives_the_good_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prune keeps the committed generation and the one committed before it, not whatever
    number precedes it (a failed writer's partial files may hold that)."""
    docs = _articles(tmp_path / "docs", 170)
    fake = FakeEmbedder(dimension=32)
    with Index.open(tmp_path / "ix", create=True, embedder=fake, index_type="ivfpq-disk") as ix:
        ix.add(docs)
        assert ix.info().index_type == "ivfpq-disk"
        real = vectors._write
        failing = {"on": True}

        def fail_on_trained(index: Any, path: str) -> None:
            if failing["on"] and path.endswith(".trained.faiss"):
                raise IndexWriteError("no space left on device (simulated)")
            real(index, path)

        monkeypatch.setattr(vectors, "_write", fail_on_trained)
        (docs / "extra.txt").write_text("Extra\n\nA paragraph about buoys.\n", encoding="utf-8")
        with pytest.raises(IndexWriteError):
            ix.add(docs)
        failing["on"] = False
        ix.add(docs)
        names = sorted(p.name for p in (tmp_path / "ix").iterdir())
        generations = sorted({n.split(".")[1] for n in names if n.startswith("vectors.")})
        assert generations == ["000001", "000003"], names  # the partial 2 gone, 1 kept
        assert ix.check().problems == []
        hits = ix.search("A paragraph about buoys.", k=1, mode="dense", collapse=False)
        assert [h.text for h in hits] == ["A paragraph about buoys."]
