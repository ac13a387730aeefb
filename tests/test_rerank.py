"""The second ranking stage (semsearch.query.rerank): checking, Rocchio feedback, the reranked
order in the library, and --rerank on the CLI, in eval and in the HTTP API."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from semsearch.errors import UsageError
from semsearch.index import Index
from semsearch.query import check_query, rerank
from semsearch.query.fusion import Fusion
from semsearch.serve.app import create_app
from semsearch.serve.service import Service
from tests import fake_cli
from tests.cli_helpers import assert_one_line_error, index_articles, run_faked
from tests.fake_cli import NamedFake
from tests.test_eval import make_dataset

WORDS = [
    "river", "flood", "bank", "water", "rain", "storm", "wind", "coast", "harbour", "ship",
    "sail", "boat", "crew", "dock",
]  # fmt: skip


def article(n: int) -> str:
    """A title and three paragraphs, each a different mix of `WORDS` (deterministic)."""
    rng = np.random.default_rng(n)
    paras = [" ".join(rng.choice(WORDS, size=9)) + "." for _ in range(3)]
    return f"Report {n}\n\n" + "\n\n".join(paras) + "\n"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    articles = {f"r{n}.txt": article(n) for n in range(40)}
    return index_articles(tmp_path_factory.mktemp("rerank"), articles)


@pytest.fixture
def index(built: Path) -> Iterator[Index]:
    with Index.open(built / "ix", embedder=NamedFake()) as opened:
        yield opened


QUERY = "flood water on the river bank"


# --------------------------------------------------------------------------- checking


@pytest.mark.parametrize(("given", "method"), [
    ("true", "prf"), ("Yes", "prf"), ("best", "prf"), ("prf", "prf"),
    ("false", None), ("none", None), ("", None), ("off", None),
])  # fmt: skip
def test_words_for_rerank_mean_the_same_in_every_front_end(
    given: str, method: str | None
) -> None:
    second = check_query("x", rerank=given).rerank
    assert (second and second.method) == method


def test_rerank_alone_is_the_best_method_at_depth_50() -> None:
    assert check_query("x", rerank=True).rerank == rerank.Rerank("prf", 50)
    assert check_query("x", rerank="best").rerank == rerank.Rerank(rerank.BEST_METHOD, 50)
    assert check_query("x", rerank=" PRF ", rerank_depth=7).rerank == rerank.Rerank("prf", 7)
    assert check_query("x").rerank is None and check_query("x", rerank=False).rerank is None


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"rerank": "cross-encoder"}, "rerank method must be one of prf"),
        ({"rerank": True, "rerank_depth": 0}, "at least 1"),
        ({"rerank": True, "rerank_depth": True}, "at least 1"),
        ({"rerank": True, "rerank_depth": 1001}, "at most 1,000"),
        ({"rerank_depth": 20}, r"ask for rerank too \(--rerank\)"),
        ({"rerank": True, "mode": "lexical"}, "use mode hybrid"),
        ({"rerank": 3}, "true or a method name"),
    ],
)
def test_bad_rerank_options_are_refused(options: dict[str, object], needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        check_query("x", **options)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the pieces


def test_rocchio_moves_the_query_towards_the_feedback_and_keeps_unit_length() -> None:
    q = np.array([1.0, 0.0, 0.0], np.float32)
    fb = np.array([[0.0, 1.0, 0.0], [0.0, 0.6, 0.8]], np.float32)
    moved = rerank.rocchio(q, fb, 0.5)
    expected = np.array([1.0, 0.4, 0.2]) / np.linalg.norm([1.0, 0.4, 0.2])
    assert np.allclose(moved, expected, atol=1e-6)
    assert np.array_equal(rerank.rocchio(q, fb, 0.0), q)
    assert np.array_equal(rerank.rocchio(q, fb[:0], 0.5), q)


def test_reorder_sorts_the_head_and_keeps_the_rest_below_it_in_order() -> None:
    ranked = [(1, 0.9), (2, 0.8), (3, 0.7), (4, 0.65), (5, 0.1)]
    out = rerank.reorder(ranked, [1, 2, 3], np.array([0.2, 0.5, 0.3]))
    assert [i for i, _ in out] == [2, 3, 1, 4, 5]
    scores = [s for _, s in out]
    assert scores[:3] == [0.5, 0.3, 0.2]
    assert all(a > b for a, b in itertools.pairwise(scores))  # strictly: no ties
    assert scores[4] == 0.1  # already below: kept as it was


# --------------------------------------------------------------------------- the library


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_rerank_only_reorders_the_top_depth(index: Index, mode: str) -> None:
    plain = index.search(QUERY, k=20, mode=mode, collapse=False)  # type: ignore[arg-type]
    again = index.search(
        QUERY, k=20, mode=mode, collapse=False, rerank=True, rerank_depth=10  # type: ignore[arg-type]
    )
    assert {h.passage_id for h in plain[:10]} == {h.passage_id for h in again[:10]}
    assert [h.passage_id for h in plain[10:]] == [h.passage_id for h in again[10:]]
    # the head did move: without this, a rerank that did nothing passed
    assert [h.passage_id for h in plain[:10]] != [h.passage_id for h in again[:10]]
    scores = [h.score for h in again]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("method", ["rrf", "convex"])
def test_rerank_of_a_fusion_of_ranks_only_reorders_the_top_depth(index: Index, method: str) -> None:
    """`Searcher._rerank_by_ranks` (rrf, min-max): no other test reached it."""
    fusion = Fusion(method=method)  # type: ignore[arg-type]
    plain = index.search(QUERY, k=20, collapse=False, fusion=fusion)
    again = index.search(QUERY, k=20, collapse=False, fusion=fusion, rerank=True, rerank_depth=10)
    assert {h.passage_id for h in plain[:10]} == {h.passage_id for h in again[:10]}
    assert [h.passage_id for h in plain[:10]] != [h.passage_id for h in again[:10]]
    assert [h.passage_id for h in plain[10:]] == [h.passage_id for h in again[10:]]
    scores = [h.score for h in again]
    assert scores == sorted(scores, reverse=True)


def test_rerank_on_an_hnsw_index_reads_the_same_vectors(built: Path, index: Index) -> None:
    # the candidates' vectors come from VectorIndex.reconstruct, whose code differs by kind
    code, _, err = run_faked(
        "index", str(built / "docs"), "--index", str(built / "hnsw"), "-q", "--index-type", "hnsw"
    )
    assert code == 0, err
    with Index.open(built / "hnsw", embedder=NamedFake()) as graph:
        assert graph.info().index_type == "hnsw"
        for mode in ("dense", "hybrid"):
            got = graph.search(QUERY, k=10, mode=mode, rerank=True)  # type: ignore[arg-type]
            want = index.search(QUERY, k=10, mode=mode, rerank=True)  # type: ignore[arg-type]
            assert [(h.path, h.paragraph, h.piece) for h in got] == [
                (h.path, h.paragraph, h.piece) for h in want
            ]
            assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-5)


def test_depth_one_changes_nothing(index: Index) -> None:
    plain = index.search(QUERY, k=15, collapse=False)
    again = index.search(QUERY, k=15, collapse=False, rerank=True, rerank_depth=1)
    assert [h.passage_id for h in again] == [h.passage_id for h in plain]


def test_dense_rerank_ranks_by_the_cosine_with_the_feedback_query(index: Index) -> None:
    """Worked out here from the stored vectors, without the module's own helpers."""
    depth = 12
    with index.snapshot() as snap:
        first = snap.search(QUERY, k=depth, mode="dense", collapse=False)
        ids = [h.passage_id for h in first]
        vecs = snap.vectors(ids)
        qvec = snap.embedder.embed([QUERY])[0]
    moved = qvec + 0.5 * vecs[:3].mean(axis=0)
    moved /= np.linalg.norm(moved)
    expected = [ids[j] for j in np.argsort(-(vecs @ moved), kind="stable")]
    got = index.search(
        QUERY, k=depth, mode="dense", collapse=False, rerank="prf", rerank_depth=depth
    )
    assert [h.passage_id for h in got] == expected
    assert expected != ids  # the feedback did move something, or this test shows nothing
    assert got[0].score == pytest.approx(float(np.max(vecs @ moved)), abs=1e-5)


def test_rerank_with_filters_and_by_article(index: Index) -> None:
    hits = index.search(QUERY, k=5, by_article=True, path="*/r1*", rerank=True)
    assert hits and all(Path(h.path).name.startswith("r1") for h in hits)
    assert len({h.path for h in hits}) == len(hits)


# --------------------------------------------------------------------------- front ends


def q(built: Path, *args: str) -> tuple[int, str, str]:
    return run_faked("query", *args, "--index", str(built / "ix"))


def test_cli_rerank(built: Path) -> None:
    code, out, err = q(built, QUERY, "--json", "--rerank", "-k", "3")
    assert code == 0, err
    assert len(json.loads(out)["results"]) == 3
    code, out, _ = q(built, QUERY, "--json", "--rerank-method", "prf", "--rerank-depth", "5")
    assert code == 0 and json.loads(out)["results"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--rerank-method", "colbert"], "rerank method must be one of prf"),
        (["--rerank", "--rerank-depth", "0"], "at least 1"),
        (["--rerank-depth", "9"], "ask for rerank too (--rerank)"),
        (["--rerank", "--mode", "lexical"], "use mode hybrid"),
    ],
)
def test_cli_rerank_errors_are_one_line(built: Path, args: list[str], needle: str) -> None:
    code, out, err = q(built, QUERY, *args)
    assert_one_line_error(code, out, err, needle, exit_code=2)


def test_eval_reports_the_rerank(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "tiny")
    code, out, err = run_faked("eval", str(data), "--json", "--rerank", "--rerank-depth", "20")
    assert code == 0, err
    result = json.loads(out)
    assert result["rerank"] == "prf@20" and 0.0 <= result["metrics"]["nDCG@10"] <= 1.0
    code, out, err = run_faked("eval", str(data), "--rerank", "--mode", "lexical")
    assert_one_line_error(code, out, err, "use mode hybrid", exit_code=2)


def test_the_api_reranks_and_refuses_an_unknown_method(built: Path) -> None:
    with fake_cli.faked(), Index.open(built / "ix") as opened:
        client = TestClient(create_app(Service(opened)), base_url="http://127.0.0.1")
        plain = client.get("/api/search", params={"q": QUERY, "k": 10}).json()
        again = client.get("/api/search", params={"q": QUERY, "k": 10, "rerank": "true"})
        assert again.status_code == 200
        direct = opened.search(QUERY, k=10, rerank=True, highlight=True)
        assert [r["passage_id"] for r in again.json()["results"]] == [
            h.passage_id for h in direct
        ]
        assert len(plain["results"]) == 10
        # rerank=true was heard: the order differs from the first stage's
        assert [r["passage_id"] for r in plain["results"]] != [h.passage_id for h in direct]
        bad = client.get("/api/search", params={"q": QUERY, "rerank": "colbert"})
        assert bad.status_code == 400 and "rerank method must be one of prf" in bad.text


def test_min_score_applies_to_the_reranked_scores(index: Index) -> None:
    full = index.search(QUERY, k=30, collapse=False, rerank=True)
    middle = len(full) // 2
    cut = (full[middle].score + full[middle - 1].score) / 2  # hits show scores rounded
    kept = index.search(QUERY, k=30, collapse=False, rerank=True, min_score=cut)
    assert [h.passage_id for h in kept] == [h.passage_id for h in full if h.score >= cut]
    assert len(kept) < len(full)


@pytest.mark.parametrize(
    ("setting", "needle"),
    [
        (rerank.Rerank(feedback=0), "feedback must be a whole number of at least 1"),
        (rerank.Rerank(feedback=-1), "feedback must be a whole number of at least 1"),
        (rerank.Rerank(beta=-0.5), "beta must be a number of at least 0"),
        (rerank.Rerank(beta=float("nan")), "beta must be a number of at least 0"),
        (rerank.Rerank(method="colbert"), "rerank method must be one of prf"),  # type: ignore[arg-type]
        (rerank.Rerank(depth=0), "at least 1"),
    ],
)
def test_a_rerank_setting_given_whole_is_checked(setting: rerank.Rerank, needle: str) -> None:
    # feedback=-1 sliced the candidates' vectors to all but the last one, silently
    with pytest.raises(UsageError, match=needle):
        check_query("x", rerank=setting)


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_hit_scores_keep_the_cosine_with_the_query_after_reranking(index: Index, mode: str) -> None:
    # scores["dense"] is the passage's cosine with the query (README, --json): in dense mode
    # it held the cosine with the feedback query, and past the depth a lowered stand-in
    plain = index.search(QUERY, k=20, mode=mode, collapse=False)  # type: ignore[arg-type]
    cosine = {h.passage_id: h.scores["dense"] for h in plain}
    again = index.search(QUERY, k=20, mode=mode, collapse=False, rerank=True, rerank_depth=10)  # type: ignore[arg-type]
    assert {h.passage_id: h.scores["dense"] for h in again} == cosine
    assert all(h.scores["fused"] == round(h.score, 6) for h in again)
