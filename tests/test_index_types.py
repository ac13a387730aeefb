"""Vector index types (flat, HNSW, IVF, IVF-PQ), alone and under an `Index`.

The vectors-level tests build each type from clustered synthetic unit vectors
(points gather around topics, as sentence embeddings do; uniform random
vectors would have no neighbours worth finding) stored under non-sequential
ids, and compare every answer with exact numpy brute force over the same
vectors. The Index-level tests index folders of small articles with the
FakeEmbedder and check that adding, editing, deleting, converting and
filtering keep SQLite and FAISS in step.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt
import pytest

from semsearch.errors import IndexCorruptError, UsageError
from semsearch.index import Index
from semsearch.storage import shards, vectors
from semsearch.storage.store import Store
from tests.conftest import read_manifest as manifest
from tests.fakes import FakeEmbedder

KINDS = ("flat", "hnsw", "ivf", "ivfpq", "ivfpq-disk")
IVF_KINDS = ("ivf", "ivfpq", "ivfpq-disk")
DIM = 64
N = 3000
K = 10
# IVF-PQ's candidates are re-scored from its exact vectors (it was 0.5 from its codes alone)
MIN_RECALL = {"hnsw": 0.9, "ivf": 0.9, "ivfpq": 0.9, "ivfpq-disk": 0.9}

Floats = npt.NDArray[np.float32]
Ids = npt.NDArray[np.int64]


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run FAISS on one thread: results do not depend on it, and on a busy machine
    OpenMP k-means on every core is many times slower than on one."""
    monkeypatch.setattr(vectors, "_threads_for", lambda work: faiss.omp_set_num_threads(1))


# --------------------------------------------------------------------------- synthetic data


class Data:
    """Clustered unit vectors under scattered int64 ids, and queries drawn like them."""

    def __init__(self, n: int = N, dim: int = DIM, clusters: int = 50, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        centres = rng.standard_normal((clusters, dim))
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        sigma = 0.6 / np.sqrt(dim)  # noise of norm ~0.6 around unit centres

        def draw(count: int) -> tuple[Floats, npt.NDArray[np.int64]]:
            labels = rng.integers(0, clusters, count)
            points = centres[labels] + sigma * rng.standard_normal((count, dim))
            points /= np.linalg.norm(points, axis=1, keepdims=True)
            return points.astype(np.float32), labels

        self.x, self.labels = draw(n)
        self.queries, self.query_labels = draw(100)
        # non-sequential, non-contiguous ids, as SQLite hands them out after deletions
        self.ids: Ids = np.sort(rng.choice(10**9, n, replace=False)).astype(np.int64) + 17
        rng.shuffle(self.ids)
        self.row = {int(i): r for r, i in enumerate(self.ids)}

    def rows(self, ids: Ids) -> npt.NDArray[np.int64]:
        return np.asarray([self.row[int(i)] for i in ids], dtype=np.int64)


@pytest.fixture(scope="module")
def data() -> Data:
    return Data()


_TRAINED: dict[tuple[str, bytes], vectors.IVFIndex] = {}


def build(kind: str, ids: Ids, x: Floats) -> vectors.VectorIndex:
    """An index of ``kind`` holding exactly ``ids`` -> ``x`` (IVF types trained on them).

    IVF types are built with `IVFIndex.build` once per data set and handed out as
    copies (training IVF-PQ is the slow part of this file)."""
    if kind == "ivfpq-disk":  # trained once per data set, filled anew each time
        key = (kind, hashlib.sha1(ids.tobytes() + x.tobytes()).digest())
        if key not in _TRAINED:
            _TRAINED[key] = vectors.DiskIVFIndex.build(kind, ids, x)
        trained = _TRAINED[key]._trained  # type: ignore[attr-defined]
        disk = vectors.DiskIVFIndex(
            shards.empty(trained), trained, vectors.ExactVectors.create(ids[:0], x[:0])
        )
        disk.add(ids, x)
        return disk
    if kind in IVF_KINDS:
        key = (kind, hashlib.sha1(ids.tobytes() + x.tobytes()).digest())
        if key not in _TRAINED:
            _TRAINED[key] = vectors.IVFIndex.build(kind, ids, x)
        exact = vectors.ExactVectors.create(ids, x) if kind == "ivfpq" else None
        return vectors.IVFIndex(faiss.clone_index(_TRAINED[key]._index), kind, exact=exact)
    index = vectors.create(kind, x.shape[1])
    index.add(ids, x)
    return index


def exact(ids: Ids, x: Floats, queries: Floats, k: int) -> tuple[Floats, Ids]:
    """Brute-force top-k (scores, ids) by inner product."""
    scores = queries @ x.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), ids[order]


def recall(found: Ids, truth: Ids) -> float:
    return float(
        np.mean(
            [
                len(set(f[f >= 0].tolist()) & set(t.tolist())) / len(t)
                for f, t in zip(found, truth, strict=True)
            ]
        )
    )


def valid(found: Ids) -> npt.NDArray[np.int64]:
    """How many real hits (id >= 0) each result row holds."""
    return (found >= 0).sum(axis=1)


def assert_same_ranking(found: Ids, truth_ids: Ids, truth_scores: Floats) -> None:
    """Identical ids in identical order, except where brute force itself has a tie."""
    for row, (f, t, s) in enumerate(zip(found, truth_ids, truth_scores, strict=True)):
        for pos in np.flatnonzero(f != t):
            tied = np.flatnonzero(np.abs(s - s[pos]) < 1e-6)
            assert f[pos] in t[tied], f"query {row}, rank {pos + 1}: {f.tolist()} != {t.tolist()}"


# --------------------------------------------------------------------------- vectors: search


@pytest.mark.parametrize("kind", KINDS)
def test_search_agrees_with_brute_force(data: Data, kind: str) -> None:
    index = build(kind, data.ids, data.x)
    assert index.kind == kind
    assert index.count == N and index.dimension == DIM
    assert np.array_equal(np.sort(index.ids()), np.sort(data.ids))

    scores, found = index.search(data.queries, K)
    true_scores, truth = exact(data.ids, data.x, data.queries, K)
    assert found.shape == (len(data.queries), K)
    assert (valid(found) == K).all()
    if kind == "flat":
        assert np.array_equal(found[:, 0], truth[:, 0])
        assert_same_ranking(found, truth, true_scores)
        assert np.allclose(scores, true_scores, atol=1e-5)
        return
    measured = recall(found, truth)
    assert measured >= MIN_RECALL[kind], f"{kind}: recall@{K} = {measured:.3f}"
    # scores are (close to) the cosines of the ids returned, best first
    cosines = np.einsum(
        "qd,qkd->qk", data.queries, data.x[data.rows(found.ravel()).reshape(found.shape)]
    )
    assert np.allclose(scores, cosines, atol=1e-5 if kind != "ivfpq" else 0.15)
    assert (np.diff(scores, axis=1) <= 1e-6).all()


@pytest.mark.parametrize("kind", KINDS)
def test_removed_ids_never_come_back_and_adding_after_removal_works(data: Data, kind: str) -> None:
    index = build(kind, data.ids, data.x)
    rng = np.random.default_rng(1)
    gone = data.ids[rng.choice(N, 300, replace=False)]  # 10%: below HNSW compaction
    assert index.remove(gone) == 300
    assert index.remove(gone) == 0  # already gone
    assert index.remove(np.array([5], dtype=np.int64)) == 0  # never there
    assert index.count == N - 300
    live = np.setdiff1d(data.ids, gone)
    assert np.array_equal(np.sort(index.ids()), live)

    # queries sitting on the removed vectors: their ids must not come back
    gone_x = data.x[data.rows(gone)]
    found = index.search(gone_x, K)[1]
    assert not np.isin(found, gone).any()
    assert (valid(found) == K).all()
    truth = exact(live, data.x[data.rows(live)], data.queries, K)[1]
    found = index.search(data.queries, K)[1]
    assert not np.isin(found, gone).any()
    measured = recall(found, truth)
    assert measured >= MIN_RECALL.get(kind, 1.0), (
        f"{kind}: recall@{K} after removal = {measured:.3f}"
    )

    # add after remove: the same vectors under new ids
    fresh = gone + 2 * 10**9
    index.add(fresh, gone_x)
    assert index.count == N
    assert np.array_equal(np.sort(index.ids()), np.sort(np.concatenate([live, fresh])))
    found = index.search(gone_x, K)[1]
    assert not np.isin(found, gone).any()
    if kind == "ivfpq":
        hit = np.mean([f in row for f, row in zip(fresh, found, strict=True)])
        assert hit >= 0.9, f"ivfpq: a re-added vector is in its own top-{K} {hit:.0%} of the time"
    else:
        assert np.array_equal(found[:, 0], fresh)


@pytest.mark.parametrize("kind", KINDS)
def test_save_and_load_give_the_same_results(data: Data, kind: str, tmp_path: Path) -> None:
    index = build(kind, data.ids, data.x)
    index.remove(data.ids[:200])  # HNSW keeps these as tombstones
    path = str(tmp_path / "vectors.000001.faiss")
    index.save(path)
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]
    scores, found = index.search(data.queries, K)
    allowed = data.ids[200:260]
    filtered = index.search(data.queries, K, allowed)[1]

    for mmap in (False, True) if kind in IVF_KINDS else (False,):
        loaded = vectors.load(kind, path, mmap=mmap)
        assert loaded.kind == kind
        assert loaded.count == N - 200 and loaded.dimension == DIM
        assert np.array_equal(np.sort(loaded.ids()), np.sort(data.ids[200:]))
        s, f = loaded.search(data.queries, K)
        assert np.array_equal(f, found), f"mmap={mmap}"
        assert np.allclose(s, scores, atol=1e-6)
        assert np.array_equal(loaded.search(data.queries, K, allowed)[1], filtered)
        assert np.allclose(
            loaded.reconstruct(data.ids[200:205]), index.reconstruct(data.ids[200:205])
        )


def test_load_refuses_unknown_missing_and_damaged_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        vectors.create("annoy", DIM)
    with pytest.raises(IndexCorruptError):
        vectors.load("annoy", str(tmp_path / "x.faiss"))
    for kind in KINDS:
        with pytest.raises(IndexCorruptError):
            vectors.load(kind, str(tmp_path / "missing.faiss"))
    damaged = tmp_path / "damaged.faiss"
    damaged.write_bytes(b"IxM2" + b"\0" * 20)
    for kind in KINDS:
        with pytest.raises(IndexCorruptError):
            vectors.load(kind, str(damaged), mmap=kind in IVF_KINDS)


# ------------------------------------------------------------------ vectors: HNSW tombstones


def test_hnsw_tombstones_are_saved_beside_the_index_and_read_back(
    data: Data, tmp_path: Path
) -> None:
    index = build("hnsw", data.ids, data.x)
    path = str(tmp_path / "vectors.000003.faiss")
    index.save(path)
    tombstones = tmp_path / "vectors.000003.removed.i64"
    assert vectors.HNSWIndex.removed_path(path) == str(tombstones)
    assert not tombstones.exists()  # nothing removed, nothing written

    gone = data.ids[::20]
    index.remove(gone)
    index.save(path)
    assert np.array_equal(np.sort(np.fromfile(tombstones, dtype="<i8")), np.sort(gone))
    loaded = vectors.HNSWIndex.load(path)
    assert loaded.count == N - len(gone)
    assert np.array_equal(np.sort(loaded.ids()), np.setdiff1d(data.ids, gone))
    found = loaded.search(data.x[data.rows(gone)], K)[1]
    assert not np.isin(found, gone).any()
    assert (valid(found) == K).all()


def test_hnsw_compacts_once_a_quarter_is_removed(data: Data, tmp_path: Path) -> None:
    index = build("hnsw", data.ids, data.x)
    first = data.ids[: N // 5]  # 20%: kept as tombstones
    index.remove(first)
    assert len(index._removed) == len(first)
    assert index._index.ntotal == N

    second = data.ids[N // 5 : N // 5 + N // 10]  # 30% in all: past a quarter
    index.remove(second)
    gone = np.concatenate([first, second])
    live = np.setdiff1d(data.ids, gone)
    assert len(index._removed) == 0  # the graph was rebuilt from the live vectors
    assert index._index.ntotal == len(live) == index.count
    assert np.array_equal(np.sort(index.ids()), live)
    assert np.allclose(index.reconstruct(live[:20]), data.x[data.rows(live[:20])])
    found = index.search(data.x[data.rows(gone[:100])], K)[1]
    assert not np.isin(found, gone).any()
    truth = exact(live, data.x[data.rows(live)], data.queries, K)[1]
    measured = recall(index.search(data.queries, K)[1], truth)
    assert measured >= 0.9, f"hnsw recall@{K} after compaction = {measured:.3f}"

    path = str(tmp_path / "vectors.000001.faiss")
    index.save(path)
    assert not Path(vectors.HNSWIndex.removed_path(path)).exists()


def test_hnsw_save_replaces_the_tombstones_already_at_its_path(data: Data, tmp_path: Path) -> None:
    """Saving an index with no tombstones over a path that has some must not keep them:
    `load` would subtract ids the graph no longer holds from its count."""
    index = build("hnsw", data.ids, data.x)
    path = str(tmp_path / "vectors.000002.faiss")
    index.remove(data.ids[:100])
    index.save(path)
    index.remove(data.ids[100:1000])  # past a quarter: compacted, no tombstones left
    index.save(path)
    loaded = vectors.HNSWIndex.load(path)
    assert loaded.count == index.count == N - 1000
    assert np.array_equal(np.sort(loaded.ids()), np.sort(index.ids()))


# --------------------------------------------------------------------------- vectors: filters


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", [3, 40, 1500])
def test_filtered_search_returns_only_allowed_ids_and_k_of_them(
    data: Data, kind: str, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """3 and 40 allowed ids take the exact path; 1,500 (with EXACT_SUBSET lowered to
    100, as a large filter on a large index) go through the FAISS selector."""
    if size > 100:
        monkeypatch.setattr(vectors, "EXACT_SUBSET", 100)
    index = build(kind, data.ids, data.x)
    rng = np.random.default_rng(size)
    allowed = data.ids[rng.choice(N, size, replace=False)]
    found = index.search(data.queries, K, allowed)[1]
    assert np.isin(found[found >= 0], allowed).all()
    counts = valid(found)
    assert (counts == min(K, size)).all(), f"{kind}: {counts.min()} hits with {size} allowed"
    true_scores, truth = exact(allowed, data.x[data.rows(allowed)], data.queries, K)
    if size <= 100 and kind != "ivfpq":  # exact: the same ranking as brute force
        k = min(K, size)
        assert_same_ranking(found[:, :k], truth[:, :k], true_scores[:, :k])
    elif kind != "ivfpq":
        measured = recall(found, truth)
        assert measured >= 0.9, f"{kind}: filtered recall@{K} = {measured:.3f}"


@pytest.mark.parametrize("kind", KINDS)
def test_filtered_search_skips_allowed_ids_the_index_does_not_hold(data: Data, kind: str) -> None:
    """A reader's filter comes from SQLite, which may already hold the passages of a
    newer commit than the vectors it loaded: such ids must be skipped, not crash."""
    index = build(kind, data.ids, data.x)
    index.remove(data.ids[:10])
    allowed = np.concatenate([data.ids[:40], [4, 2 * 10**9 + 1]]).astype(np.int64)
    found = index.search(data.queries[:5], K, allowed)[1]
    assert np.isin(found[found >= 0], data.ids[10:40]).all()
    assert (valid(found) == K).all()


@pytest.mark.parametrize("kind", ("hnsw", "ivf", "ivfpq"))
def test_filtered_search_finds_k_when_the_filter_lies_away_from_the_query(
    data: Data, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filter matching whole topics other than the query's (a folder about something
    else): above EXACT_SUBSET it goes through the approximate search, which must still
    return k hits when k match. EXACT_SUBSET is lowered in proportion to this small
    index (2% of 1M passages ~ 60 of 3,000)."""
    monkeypatch.setattr(vectors, "EXACT_SUBSET", 60)
    index = build(kind, data.ids, data.x)
    query_topic = int(data.query_labels[0])
    other = [t for t in range(50) if t != query_topic][:2]
    allowed = data.ids[np.isin(data.labels, other)]
    assert len(allowed) > 60
    queries = data.queries[data.query_labels == query_topic]
    found = index.search(queries, K, allowed)[1]
    assert np.isin(found[found >= 0], allowed).all()
    counts = valid(found)
    assert (counts == K).all(), (
        f"{kind}: as few as {counts.min()} of {K} hits, {len(allowed)} allowed"
    )


# --------------------------------------------------------------------------- vectors: adapt


def test_auto_stays_flat_up_to_the_limit_then_becomes_ivf(
    data: Data, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vectors, "AUTO_FLAT_LIMIT", 500)
    assert vectors.target_kind("auto", 500) == "flat"
    assert vectors.target_kind("auto", 501) == "ivf"
    assert vectors.target_kind("hnsw", 10**7) == "hnsw"

    small = build("flat", data.ids[:500], data.x[:500])
    assert vectors.adapt(small, "auto") is small
    # past the limit but too few to train 16 lists of 39: still flat
    untrainable = build("flat", data.ids[:600], data.x[:600])
    assert vectors.adapt(untrainable, "auto").kind == "flat"

    big = build("flat", data.ids, data.x)
    moved = vectors.adapt(big, "auto")
    assert isinstance(moved, vectors.IVFIndex) and moved.kind == "ivf"
    assert moved.count == N
    assert np.array_equal(np.sort(moved.ids()), np.sort(data.ids))
    sample = data.ids[::37]
    assert np.allclose(moved.reconstruct(sample), data.x[data.rows(sample)], atol=1e-6)
    truth = exact(data.ids, data.x, data.queries, K)[1]
    measured = recall(moved.search(data.queries, K)[1], truth)
    assert measured >= 0.9, f"auto ivf recall@{K} = {measured:.3f}"


@pytest.mark.parametrize("source", KINDS)
@pytest.mark.parametrize("target", KINDS)
def test_adapt_converts_keeping_every_live_id_and_vector(
    data: Data, source: str, target: str
) -> None:
    ids, x = data.ids[:1000], data.x[:1000]  # enough to train IVF (39 x 16), quick
    index = build(source, ids, x)
    gone = ids[:20]
    index.remove(gone)
    made = vectors.adapt(index, target)
    assert made.kind == target
    live = np.setdiff1d(ids, gone)
    assert made.count == len(live)
    assert np.array_equal(np.sort(made.ids()), live)
    # IVF-PQ keeps the exact vectors beside its codes: every conversion is lossless
    error = np.abs(made.reconstruct(live) - data.x[data.rows(live)]).max()
    assert error < 1e-6, f"{source} -> {target}: vectors moved by {error}"
    found = made.search(data.queries, K)[1]
    assert not np.isin(found, gone).any()
    truth = exact(live, data.x[data.rows(live)], data.queries, K)[1]
    measured = recall(found, truth)
    floor = MIN_RECALL.get(target, 1.0)
    assert measured >= floor, f"{source} -> {target}: recall@{K} = {measured:.3f}"


def test_ivf_types_stay_flat_while_too_small_to_train(data: Data) -> None:
    small = build("flat", data.ids[: 39 * 16 - 1], data.x[: 39 * 16 - 1])
    for kind in IVF_KINDS:
        assert vectors.create(kind, DIM).kind == "flat"
        assert vectors.adapt(small, kind).kind == "flat"
    shrunk = build("ivf", data.ids, data.x)
    shrunk.remove(data.ids[: N - 300])
    back = vectors.adapt(shrunk, "ivf")
    assert back.kind == "flat"
    assert np.array_equal(np.sort(back.ids()), np.sort(data.ids[N - 300 :]))


def test_ivf_is_retrained_when_the_collection_outgrows_its_lists(data: Data) -> None:
    index = vectors.IVFIndex.build("ivf", data.ids[:700], data.x[:700])
    assert index._index.nlist == vectors.IVFIndex.lists_for(700)
    assert not index.needs_retraining()
    assert vectors.adapt(index, "ivf") is index

    index.add(data.ids[700:], data.x[700:])
    assert index.needs_retraining()  # 3,000 vectors in lists made for 700
    retrained = vectors.adapt(index, "ivf")
    assert retrained is not index and isinstance(retrained, vectors.IVFIndex)
    assert retrained._index.nlist == vectors.IVFIndex.lists_for(N) > 2 * index._index.nlist
    assert not retrained.needs_retraining()
    assert np.array_equal(np.sort(retrained.ids()), np.sort(data.ids))
    truth = exact(data.ids, data.x, data.queries, K)[1]
    measured = recall(retrained.search(data.queries, K)[1], truth)
    assert measured >= 0.9, f"retrained ivf recall@{K} = {measured:.3f}"


# --------------------------------------------------------------------------- Index: articles

WORDS = [
    f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ra", "su", "ti") for b in "bdfgklmnprstvz"
]


def write_articles(folder: Path, start: int, count: int) -> dict[Path, list[str]]:
    """Articles ``art<i>.txt`` of 4 paragraphs, dated 2024-<1 + i % 12>-<day>."""
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[Path, list[str]] = {}
    for i in range(start, start + count):
        rng = random.Random(i)
        paragraphs = [
            " ".join(rng.choice(WORDS) for _ in range(10)) + f" item{i}x{j}." for j in range(4)
        ]
        path = folder / f"art{i:04d}.txt"
        date = f"2024-{1 + i % 12:02d}-{1 + (i // 12) % 28:02d}"
        path.write_text(
            f" date {date} 1\nHeadline {i}\n" + "\n".join(paragraphs) + "\n", encoding="utf-8"
        )
        written[path] = paragraphs
    return written


def top(index: Index, text: str, k: int = 1, **options: Any) -> list[str]:
    return [h.text for h in index.search(text, k=k, mode="dense", collapse=False, **options)]


@pytest.fixture
def docs(tmp_path: Path) -> Iterator[tuple[Path, dict[Path, list[str]]]]:
    folder = tmp_path / "docs"
    yield folder, write_articles(folder, 0, 200)


@pytest.mark.parametrize("kind", KINDS)
def test_each_type_indexes_updates_and_searches_consistently(
    tmp_path: Path, docs: tuple[Path, dict[Path, list[str]]], kind: str
) -> None:
    folder, articles = docs
    index_dir = tmp_path / "ix"
    fake = FakeEmbedder(dimension=32)
    index = Index.open(index_dir, create=True, embedder=fake, index_type=kind)
    index.add(folder)
    assert index.info().passages == 800
    assert index.info().index_type == kind
    m = manifest(index_dir)
    assert (m["index_type"], m["index_type_requested"]) == (kind, kind)
    assert index.check().problems == []
    for paragraphs in list(articles.values())[::20]:
        assert top(index, paragraphs[1]) == [paragraphs[1]]

    # add 10 articles, edit one paragraph of one, delete another
    added = write_articles(folder, 200, 10)
    edited, deleted = folder / "art0005.txt", folder / "art0007.txt"
    old_text = articles[edited][2]
    new_text = "an entirely new paragraph about zebras and lighthouses item5x2."
    edited.write_text(
        edited.read_text(encoding="utf-8").replace(old_text, new_text), encoding="utf-8"
    )
    deleted.unlink()
    calls = len(fake.calls)
    report = index.add(folder)
    assert report.passages_embedded == 41  # 40 new + the edited paragraph
    assert sum(len(c) for c in fake.calls[calls:]) == 41
    assert index.info().passages == 800 + 40 - 4
    assert manifest(index_dir)["index_type"] == kind
    assert index.check().problems == []

    for text in [*articles[deleted], old_text]:
        hits = index.search(text, k=20, mode="dense", collapse=False)
        assert text not in [h.text for h in hits]
        assert all(Path(h.path).name != deleted.name for h in hits)
    assert top(index, new_text) == [new_text]
    for paragraphs in added.values():
        assert top(index, paragraphs[0]) == [paragraphs[0]]

    reader = Index.open(index_dir, embedder=fake)  # IVF lists memory-mapped, as for queries
    assert reader.check().problems == []
    assert top(reader, new_text) == [new_text]
    assert top(reader, articles[deleted][0], k=20) == top(index, articles[deleted][0], k=20)
    reader.close()
    index.close()


@pytest.mark.parametrize("kind", IVF_KINDS)
def test_ivf_types_stay_flat_until_big_enough_to_train(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "docs"
    write_articles(folder, 0, 100)  # 400 passages: fewer than 39 x 16
    index_dir = tmp_path / "ix"
    fake = FakeEmbedder(dimension=32)
    with Index.open(index_dir, create=True, embedder=fake, index_type=kind) as index:
        index.add(folder)
        assert index.info().index_type == "flat"
    m = manifest(index_dir)
    assert (m["index_type"], m["index_type_requested"]) == ("flat", kind)

    more = write_articles(folder, 100, 100)  # 800 passages
    with Index.open(index_dir, embedder=fake) as index:  # the type asked for is remembered
        index.add(folder)
        assert index.info().passages == 800
        assert index.check().problems == []
        text = next(iter(more.values()))[3]
        assert top(index, text) == [text]
    m = manifest(index_dir)
    assert (m["index_type"], m["index_type_requested"]) == (kind, kind)


def test_auto_becomes_ivf_past_the_limit_and_flat_again_below_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vectors, "AUTO_FLAT_LIMIT", 500)
    folder = tmp_path / "docs"
    write_articles(folder, 0, 100)
    index_dir = tmp_path / "ix"
    fake = FakeEmbedder(dimension=32)
    index = Index.open(index_dir, create=True, embedder=fake)
    index.add(folder)
    m = manifest(index_dir)
    assert (m["index_type"], m["index_type_requested"]) == ("flat", "auto")

    write_articles(folder, 100, 100)
    index.add(folder)
    assert manifest(index_dir)["index_type"] == "ivf"
    assert index.check().problems == []

    calls = len(fake.calls)
    for n in range(120):
        (folder / f"art{n:04d}.txt").unlink()
    index.add(folder)
    assert len(fake.calls) == calls  # deleting embeds nothing
    assert index.info().passages == 320
    assert manifest(index_dir)["index_type"] == "flat"
    assert index.check().problems == []
    index.close()


def test_switching_type_converts_without_embedding(
    tmp_path: Path, docs: tuple[Path, dict[Path, list[str]]]
) -> None:
    folder, articles = docs
    index_dir = tmp_path / "ix"
    fake = FakeEmbedder(dimension=32)
    with Index.open(index_dir, create=True, embedder=fake, index_type="flat") as index:
        index.add(folder)
    assert manifest(index_dir)["index_type"] == "flat"
    queries = [p[0] for p in list(articles.values())[::25]]

    for target in ("hnsw", "ivf", "ivfpq", "flat", "hnsw"):
        with Index.open(index_dir, embedder=fake, index_type=target) as index:
            calls = len(fake.calls)  # (the searches below embed their queries)
            report = index.add(folder)
            assert report.passages_embedded == 0 and report.passages_added == 0
            assert len(fake.calls) == calls, f"converting to {target} called the embedder"
            m = manifest(index_dir)
            assert (m["index_type"], m["index_type_requested"]) == (target, target)
            assert index.info().passages == 800
            assert index.check().problems == []
            for text in queries:
                assert top(index, text) == [text], target

    # the type asked for sticks: a later add without index_type keeps HNSW
    write_articles(folder, 200, 1)
    with Index.open(index_dir, embedder=fake) as index:
        index.add(folder)
        assert index.check().problems == []
    assert manifest(index_dir)["index_type"] == "hnsw"


@pytest.mark.parametrize("bad", ["annoy", "IVF", "", "hnsw32"])
def test_an_invalid_index_type_is_a_usage_error(tmp_path: Path, bad: str) -> None:
    with pytest.raises(UsageError, match="index type"):
        Index.open(
            tmp_path / "ix", create=True, embedder=FakeEmbedder(dimension=32), index_type=bad
        )
    assert not (tmp_path / "ix").exists()


@pytest.mark.parametrize("kind", ("hnsw", "ivf", "ivfpq"))
@pytest.mark.parametrize("exact_subset", [vectors.EXACT_SUBSET, 10])
def test_filtered_queries_return_k_when_k_match(
    tmp_path: Path,
    docs: tuple[Path, dict[Path, list[str]]],
    kind: str,
    exact_subset: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Filters are applied before ranking; EXACT_SUBSET=10 sends all but the smallest
    through the approximate (FAISS selector) search."""
    monkeypatch.setattr(vectors, "EXACT_SUBSET", exact_subset)
    folder, articles = docs
    index_dir = tmp_path / "ix"
    with Index.open(
        index_dir, create=True, embedder=FakeEmbedder(dimension=32), index_type=kind
    ) as index:
        index.add(folder)
        assert manifest(index_dir)["index_type"] == kind
        elsewhere = articles[folder / "art0150.txt"][0]  # a query from outside the filters
        cases: list[tuple[dict[str, str], int]] = [
            ({"path": "*/art0003.txt"}, 4),  # 4 passages match
            ({"path": "*/art00[0-2]?.txt"}, 120),
            ({"since": "2024-03-01", "until": "2024-03-31"}, 68),
            ({"since": "2024-02-01"}, 732),
        ]
        for options, matching in cases:
            for mode in ("dense", "hybrid"):
                for text in (elsewhere, articles[folder / "art0003.txt"][2]):
                    hits = index.search(text, k=K, mode=mode, collapse=False, **options)
                    assert len(hits) == min(K, matching), f"{kind} {mode} {options}"
                    for h in hits:
                        if "path" in options:
                            assert Path(h.path).match(options["path"].lstrip("*/"))
                        assert h.date is not None and options.get("since", "") <= h.date
                        assert h.date <= options.get("until", "9999")


@pytest.mark.parametrize("kind", KINDS)
def test_a_filtered_search_racing_a_commit_does_not_fail(
    tmp_path: Path,
    docs: tuple[Path, dict[Path, list[str]]],
    kind: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reader loads generation G's vectors, then reads the filter's ids from SQLite,
    which a writer may have moved on to G+1 meanwhile (new passages)."""
    folder, _ = docs
    index_dir = tmp_path / "ix"
    fake = FakeEmbedder(dimension=32)
    with Index.open(index_dir, create=True, embedder=fake, index_type=kind) as writer:
        writer.add(folder)
    reader = Index.open(index_dir, embedder=fake)
    original = Store.filter_ids
    raced = []

    def commit_first(self: Store, **filters: Any) -> Any:
        if not raced:
            raced.append(True)
            write_articles(folder, 300, 5)  # dated 2024-01..05, like the filter's matches
            with Index.open(index_dir, embedder=fake) as other:
                other.add(folder)
        return original(self, **filters)

    monkeypatch.setattr(Store, "filter_ids", commit_first)
    hits = reader.search("ka ka lo mi", k=K, mode="dense", collapse=False, since="2024-01-01")
    assert raced and len(hits) == K
    reader.close()


def test_hnsw_deletions_keep_tombstones_then_compact(
    tmp_path: Path, docs: tuple[Path, dict[Path, list[str]]]
) -> None:
    folder, articles = docs
    index_dir = tmp_path / "ix"
    fake = FakeEmbedder(dimension=32)
    index = Index.open(index_dir, create=True, embedder=fake, index_type="hnsw")
    index.add(folder)

    def tombstones() -> Path:
        return index_dir / f"vectors.{manifest(index_dir)['generation']:06d}.removed.i64"

    doomed = sorted(articles)[:20]  # 80 of 800 passages: kept as tombstones
    for path in doomed:
        path.unlink()
    index.add(folder)
    assert len(np.fromfile(tombstones(), dtype="<i8")) == 80
    assert index.info().passages == 720
    assert index.check().problems == []

    more = sorted(articles)[20:60]  # 240 of 800 in all: past a quarter, compacted
    for path in more:
        path.unlink()
    index.add(folder)
    assert not tombstones().exists()
    assert index.info().passages == 560
    assert manifest(index_dir)["index_type"] == "hnsw"
    assert index.check().problems == []
    for path in doomed[::5] + more[::10]:
        for text in articles[path][:2]:
            assert text not in top(index, text, k=20)
    kept = articles[sorted(articles)[100]][0]
    assert top(index, kept) == [kept]
    index.close()


def test_a_tombstone_file_left_by_a_crashed_writer_is_not_picked_up(
    tmp_path: Path, docs: tuple[Path, dict[Path, list[str]]]
) -> None:
    """A writer that died after writing ``vectors.<G+1>.removed.i64`` but before its
    vector file leaves that file behind; the next commit, G+1 again, must not inherit it."""
    folder, _ = docs
    index_dir = tmp_path / "ix"
    fake = FakeEmbedder(dimension=32)
    with Index.open(index_dir, create=True, embedder=fake, index_type="hnsw") as index:
        index.add(folder)
    generation = manifest(index_dir)["generation"]
    con = sqlite3.connect(index_dir / "semsearch.db")
    some_ids = [r[0] for r in con.execute("SELECT id FROM passages ORDER BY id LIMIT 8")]
    con.close()
    np.asarray(some_ids, dtype="<i8").tofile(
        index_dir / f"vectors.{generation + 1:06d}.removed.i64"
    )

    write_articles(folder, 200, 1)
    with Index.open(index_dir, embedder=fake) as index:
        index.add(folder)
    assert manifest(index_dir)["generation"] > generation  # G+1, or past the stale file
    with Index.open(index_dir, embedder=fake) as reader:
        assert reader.check().problems == []
        assert reader.info().passages == 804


# --------------------------------------------------------------------------- IVF-PQ: exact vectors


def test_ivfpq_conversions_and_retraining_give_back_the_exact_vectors(data: Data) -> None:
    """PQ codes decode to approximations (max error ~0.07 per component here, growing
    with each re-encoding); every step that reads vectors back reads the exact ones
    kept beside the codes, so retraining and round trips through other types, however
    often, leave the vectors as they were added."""
    ids, x = data.ids[:1000], data.x[:1000]
    index = vectors.IVFIndex.build("ivfpq", ids[:300], x[:300])
    index.add(ids[300:], x[300:])
    assert index.needs_retraining()  # 1,000 vectors in lists made for 300
    current: vectors.VectorIndex = index
    for target in ("ivfpq", "retrain", "flat", "ivfpq", "hnsw", "flat"):
        before = current
        if target == "retrain":  # what adapt does when the lists no longer fit
            held = current.ids()
            current = vectors.IVFIndex.build("ivfpq", held, current.reconstruct(held))
        else:
            current = vectors.adapt(current, target)
        assert current is not before
        error = np.abs(current.reconstruct(ids) - x).max()
        assert error < 1e-6, f"-> {target}: vectors moved by {error}"
    assert current.kind == "flat"
    truth = exact(ids, x, data.queries, K)
    assert_same_ranking(current.search(data.queries, K)[1], truth[1], truth[0])


def test_ivfpq_exact_vectors_follow_removals_additions_and_saves(
    data: Data, tmp_path: Path
) -> None:
    index = vectors.IVFIndex.build("ivfpq", data.ids[:2000], data.x[:2000])
    index.remove(data.ids[:300])
    index.add(data.ids[2000:], data.x[2000:])
    live = data.ids[300:]
    first = str(tmp_path / "vectors.000001.faiss")
    index.save(first)
    vec_file, id_file = vectors.ExactVectors.paths(first)
    assert Path(vec_file).name == "vectors.000001.exact.npy"
    assert Path(id_file).name == "vectors.000001.exact-ids.npy"
    assert np.load(vec_file, allow_pickle=False).shape == (len(live), DIM)
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]

    for mmap in (True, False):
        loaded = vectors.load("ivfpq", first, mmap=mmap)
        assert np.array_equal(loaded.reconstruct(live), data.x[data.rows(live)])
    # a writer's next generation: more removals and additions, over the saved files
    writer = vectors.load("ivfpq", first)
    writer.remove(data.ids[300:400])
    writer.remove(data.ids[2500:2600])  # added since the first save, in memory before it
    again = data.ids[:50] + 3 * 10**9
    writer.add(again, data.x[:50])
    live = np.concatenate([data.ids[400:2500], data.ids[2600:], again])
    want = np.concatenate([data.x[400:2500], data.x[2600:], data.x[:50]])
    assert np.array_equal(writer.reconstruct(live), want)
    second = str(tmp_path / "vectors.000002.faiss")
    writer.save(second)
    reader = vectors.load("ivfpq", second, mmap=True)
    assert reader.count == len(live)
    assert np.array_equal(np.sort(reader.ids()), np.sort(live))
    assert np.array_equal(reader.reconstruct(live), want)
    assert np.array_equal(writer.reconstruct(live), want)  # now reading the new files
    # a small filtered search is exact: brute force over the exact vectors
    allowed = live[::40]
    scores, found = reader.search(data.queries, K, allowed)
    true_scores, truth = exact(allowed, data.x[data.rows(allowed % (3 * 10**9))], data.queries, K)
    assert_same_ranking(found, truth, true_scores)
    assert np.allclose(scores, true_scores, atol=1e-5)


def test_damaged_or_mismatched_exact_vectors_are_corruption(data: Data, tmp_path: Path) -> None:
    index = vectors.IVFIndex.build("ivfpq", data.ids[:1000], data.x[:1000])
    path = str(tmp_path / "vectors.000001.faiss")
    index.save(path)
    vec_file, _ = vectors.ExactVectors.paths(path)
    good = Path(vec_file).read_bytes()
    Path(vec_file).write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(IndexCorruptError, match="exact vectors"):
        vectors.load("ivfpq", path, mmap=True)
    np.save(vec_file, data.x[:999])  # one row short
    with pytest.raises(IndexCorruptError, match="do not match"):
        vectors.load("ivfpq", path)
    Path(vec_file).unlink()  # the ids file alone
    with pytest.raises(IndexCorruptError, match="exact vectors"):
        vectors.load("ivfpq", path)


def passage_vectors(index_dir: Path) -> dict[str, Floats]:
    """embed text -> the vector the index holds for it, read back with `reconstruct`."""
    store = Store.open(str(index_dir))
    try:
        rows = store.db.execute(
            "SELECT p.id, d.title, p.text FROM passages p JOIN documents d ON d.id = p.document_id"
        ).fetchall()
        held = store.load_vectors().reconstruct(np.asarray([r[0] for r in rows], dtype=np.int64))
    finally:
        store.close()
    return {f"{title}\n{text}": held[n] for n, (_, title, text) in enumerate(rows)}


def test_an_ivfpq_index_reuses_exact_vectors_for_moved_files_and_prunes_them(
    tmp_path: Path, docs: tuple[Path, dict[Path, list[str]]]
) -> None:
    folder, _ = docs
    index_dir = tmp_path / "ix"
    fake = FakeEmbedder(dimension=32)
    with Index.open(index_dir, create=True, embedder=fake, index_type="ivfpq") as index:
        index.add(folder)
        assert manifest(index_dir)["index_type"] == "ivfpq"
        for n in range(5):  # moved and edited files: their passages' vectors are reused
            (folder / f"art{n:04d}.txt").rename(folder / f"moved{n:04d}.txt")
        edited = folder / "art0010.txt"
        edited.write_text(edited.read_text(encoding="utf-8") + "one more paragraph.\n")
        report = index.add(folder)
        assert report.passages_embedded == 1
        index.add(folder / "moved0000.txt")  # a commit that changes nothing but the vectors' age
        write_articles(folder, 200, 1)
        index.add(folder)
        index.check()
    for text, vector in passage_vectors(index_dir).items():
        assert np.abs(vector - fake.vector(text)).max() < 1e-6, text
    generation = manifest(index_dir)["generation"]
    kept = {
        f"vectors.{g:06d}.{suffix}"
        for g in (generation, generation - 1)
        for suffix in ("faiss", "exact.npy", "exact-ids.npy")
    }
    assert {p.name for p in index_dir.iterdir() if p.name.startswith("vectors.")} == kept
    # the disk cost: 4 bytes per dimension and 8 per id, beside the codes
    size = (index_dir / f"vectors.{generation:06d}.exact.npy").stat().st_size
    assert size == pytest.approx(804 * 32 * 4, abs=256)

    with Index.open(index_dir, embedder=fake, index_type="flat") as index:
        assert index.add(folder).passages_embedded == 0
        index.check()
    assert manifest(index_dir)["index_type"] == "flat"
    for text, vector in passage_vectors(index_dir).items():
        assert np.abs(vector - fake.vector(text)).max() < 1e-6, text


def _make_old_ivfpq(index_dir: Path) -> None:
    """Turn an IVF-PQ index into one written before exact vectors were kept."""
    for side in index_dir.glob("vectors.*.exact*.npy"):
        side.unlink()
    with sqlite3.connect(index_dir / "semsearch.db") as db:  # nor listed them in the manifest
        (value,) = db.execute("SELECT value FROM manifest WHERE key = 'checksums'").fetchone()
        kept = {k: v for k, v in json.loads(value).items() if ".exact" not in k}
        db.execute("UPDATE manifest SET value = ? WHERE key = 'checksums'", (json.dumps(kept),))


def test_an_old_ivfpq_index_without_exact_vectors_is_never_converted_from_its_codes(
    tmp_path: Path, docs: tuple[Path, dict[Path, list[str]]]
) -> None:
    folder, articles = docs
    index_dir = tmp_path / "ix"
    fake = FakeEmbedder(dimension=32)
    with Index.open(index_dir, create=True, embedder=fake, index_type="ivfpq") as index:
        index.add(folder)
    _make_old_ivfpq(index_dir)
    generation = manifest(index_dir)["generation"]
    with Index.open(index_dir, embedder=fake) as index:
        index.check()  # still a valid index: searched and updated as before
        text = articles[folder / "art0003.txt"][1]
        assert top(index, text) == [text]

    # converting away would read decoded codes: refused before anything is embedded
    write_articles(folder, 200, 1)
    for target in ("flat", "hnsw", "ivf", "auto"):
        with Index.open(index_dir, embedder=fake, index_type=target) as index:
            calls = len(fake.calls)
            with pytest.raises(UsageError, match=f"--rebuild --index-type {target}"):
                index.add(folder)
            assert len(fake.calls) == calls
    assert manifest(index_dir)["generation"] == generation
    assert manifest(index_dir)["index_type"] == "ivfpq"

    # a moved file is embedded again rather than given decoded vectors
    (folder / "art0001.txt").rename(folder / "moved0001.txt")
    with Index.open(index_dir, embedder=fake) as index:
        report = index.add(folder)
        assert report.passages_embedded == 4 + 4  # the new article and the moved one
        index.check()
    # grown far past its lists: kept as it is, not retrained from decoded codes
    write_articles(folder, 201, 400)
    with Index.open(index_dir, embedder=fake) as index:
        index.add(folder)
        with index.snapshot() as snap:
            held = snap.vector_index
        assert isinstance(held, vectors.IVFIndex) and held.needs_retraining()
        assert held.nlist == vectors.IVFIndex.lists_for(800)
        index.check()
    # a rebuild re-embeds everything into the type asked for
    with Index.open(index_dir, embedder=fake, index_type="flat") as index:
        index.add(folder, rebuild=True)
    assert manifest(index_dir)["index_type"] == "flat"
    for text, vector in passage_vectors(index_dir).items():
        assert np.abs(vector - fake.vector(text)).max() < 1e-6, text
