"""Bounds and bad input: huge k, text that is not text, hostile queries and filters.

Everything a caller can pass to a query is either used as asked or refused
with one `UsageError` (exit 2 on the command line) before any slow work; no
argument sizes an allocation or reaches SQLite or FAISS unchecked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from semsearch.errors import UsageError
from semsearch.index import Index
from semsearch.query import MAX_K, MAX_PATH_CHARS, MAX_QUERY_CHARS, check_query, lexical
from semsearch.query.highlight import pick_highlights
from semsearch.storage import vectors
from semsearch.storage.store import Store
from tests.cli_helpers import assert_one_line_error, run
from tests.conftest import ROOT
from tests.fakes import FakeEmbedder

MODES = ("dense", "lexical", "hybrid")
HUGE_K = (MAX_K + 1, 5_000_000_000_000_000_000, 2**64)


def write_articles(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"a{i:03}.txt").write_text(
            f"Article {i}\n\nThe river number {i} floods the valley. "
            f"Bakers sell bread {i} at dawn.\n\nA chess player wins game {i}.\n",
            encoding="utf-8",
        )
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of 20 articles (40 passages), built once with the fake embedder."""
    root = tmp_path_factory.mktemp("bounds")
    folder = root / "index"
    with Index.open(folder, create=True, embedder=FakeEmbedder()) as index:
        index.add([write_articles(root / "articles", 20)])
    return folder


@pytest.fixture
def idx(built: Path) -> Iterator[Index]:
    index = Index.open(built, embedder=FakeEmbedder())
    yield index
    index.close()


# --------------------------------------------------------------------------- k


@pytest.mark.parametrize("k", HUGE_K)
def test_k_above_the_limit_is_a_usage_error_naming_it(k: int) -> None:
    with pytest.raises(UsageError, match="at most 10,000"):
        check_query("river", k)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("k", HUGE_K)
def test_huge_k_is_refused_in_every_mode_and_in_search_many(idx: Index, mode: str, k: int) -> None:
    """Was an OverflowError from SQLite's LIMIT (lexical, hybrid) or from HNSW's efSearch."""
    with pytest.raises(UsageError, match="at most 10,000"):
        idx.search("river", k=k, mode=mode)
    with pytest.raises(UsageError, match="at most 10,000"):
        idx.search_many(["river", "bread"], k=k, mode=mode)


@pytest.mark.parametrize("mode", MODES)
def test_k_up_to_the_limit_is_clamped_to_what_the_index_holds(idx: Index, mode: str) -> None:
    hits = idx.search("river", k=MAX_K, mode=mode, collapse=False)
    passages = idx.info().passages
    if mode == "lexical":  # BM25 returns only the passages holding the word
        assert len(hits) == 20
    else:
        assert len(hits) == passages == 40
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    # a path filter and k = MAX_K: every passage of the one matching file
    hits = idx.search("river", k=MAX_K, mode=mode, path="*a007.txt", collapse=False)
    assert {h.path.rsplit("/", 1)[-1] for h in hits} == {"a007.txt"}
    assert len(hits) == (1 if mode == "lexical" else 2)


@pytest.fixture(scope="module", params=["flat", "hnsw", "ivf"])
def typed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """320 articles (640 passages: enough to train IVF) in an index of each type."""
    root = tmp_path_factory.mktemp(f"typed-{request.param}")
    folder = root / "index"
    with Index.open(
        folder, create=True, embedder=FakeEmbedder(), index_type=request.param
    ) as index:
        index.add([write_articles(root / "articles", 320)])
        assert index.info().index_type == request.param
    return folder


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_every_index_type_answers_k_at_the_limit_with_a_path_filter(typed: Path, mode: str) -> None:
    """`-k 1000000000 --path 'a*'` on HNSW or IVF allocated k-sized arrays: k is now at most
    MAX_K, and at MAX_K with or without a filter the answer is what the index holds."""
    with Index.open(typed, embedder=FakeEmbedder()) as index:
        with pytest.raises(UsageError, match="at most 10,000"):
            index.search("river", k=1_000_000_000, path="*a0*", mode=mode)
        hits = index.search("river", k=MAX_K, path="*a00*", mode=mode, collapse=False)
        assert sorted(h.path.rsplit("/", 1)[-1] for h in hits) == sorted(
            f"a{i:03}.txt" for i in range(10) for _ in range(2)
        )
        everything = index.search("river", k=MAX_K, mode=mode, collapse=False)
        exact = index.info().index_type == "flat"
    assert len({h.passage_id for h in everything}) == len(everything)
    if exact:
        assert len(everything) == 640
    else:  # approximate: a graph walk or a few clusters find most, not all
        assert len(everything) >= 500


def unit_vectors(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def vector_index(kind: str, n: int) -> vectors.VectorIndex:
    x = unit_vectors(n)
    ids = np.arange(n, dtype=np.int64) * 3 + 7
    if kind in ("ivf", "ivfpq"):
        return vectors.IVFIndex.build(kind, ids, x)
    index = vectors.create(kind, x.shape[1])
    index.add(ids, x)
    return index


# 2**62 columns of float32 cannot be allocated: a search that sizes its arrays by k fails.
UNALLOCATABLE_K = 2**62


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_vector_search_never_sizes_arrays_by_k(kind: str) -> None:
    """Was MemoryError/ValueError (arrays k wide) or OverflowError (HNSW efSearch = 2k)."""
    n = 1_000
    index = vector_index(kind, n)
    queries = unit_vectors(2, seed=1)
    scores, ids = index.search(queries, UNALLOCATABLE_K)
    assert ids.shape[1] <= n and scores.shape == ids.shape
    if kind != "ivf":  # IVF probes some lists only
        assert ((ids >= 0).sum(axis=1) >= n - 50).all()
    # a filter small enough for the exact path: exactly the allowed ids come back
    allowed = index.ids()[:30]
    scores, ids = index.search(queries, UNALLOCATABLE_K, allowed)
    assert ids.shape == (2, 30)
    for row in ids:
        assert sorted(row.tolist()) == sorted(allowed.tolist())


def test_an_empty_flat_index_answers_a_huge_k_with_nothing() -> None:
    index = vectors.create("flat", 16)
    scores, ids = index.search(unit_vectors(3), UNALLOCATABLE_K)
    assert ids.shape == scores.shape == (3, 0)


def test_hnsw_ef_search_grows_with_k_within_a_bound() -> None:
    hnsw = vectors.HNSWIndex
    assert hnsw.ef_search(5) == hnsw.EF_SEARCH == 128
    assert hnsw.ef_search(300) == 600
    assert hnsw.ef_search(10**18) == hnsw.EF_SEARCH_MAX
    # FAISS widens the walk to k itself: k past the cap still gets k results
    index = vector_index("hnsw", 6_000)
    ids = index.search(unit_vectors(1, seed=2), 5_000)[1]
    assert ids.shape == (1, 5_000) and (ids >= 0).all()


def test_lexical_search_takes_any_k(built: Path) -> None:
    """Was an OverflowError: SQLite's LIMIT holds a 64-bit integer."""
    store = Store.open(str(built))
    try:
        found = lexical.search(store.db, "river", 2**64)
        assert len(found) == 20
        assert found == lexical.search(store.db, "river", 20)
    finally:
        store.close()


# --------------------------------------------------------------------------- text


SURROGATES = ("\ud800", "river \udcff\udcfe", "\udcff\udcfe")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("text", SURROGATES)
def test_text_that_is_not_utf8_is_a_usage_error(idx: Index, mode: str, text: str) -> None:
    """Was a TypeError from the tokenizer (dense, hybrid) or silently no results (lexical)."""
    with pytest.raises(UsageError, match="not valid UTF-8"):
        idx.search(text, mode=mode)
    with pytest.raises(UsageError, match="not valid UTF-8"):
        idx.search_many(["river", text], mode=mode)


def test_a_query_longer_than_the_limit_is_refused(idx: Index) -> None:
    at_limit = ("river " * MAX_QUERY_CHARS)[:MAX_QUERY_CHARS]
    assert len(idx.search(at_limit, mode="lexical")) == 5
    for mode in MODES:
        with pytest.raises(UsageError, match="10,000"):
            idx.search(at_limit + "x", mode=mode)
    with pytest.raises(UsageError, match="10,000"):
        idx.search("river " * 200_000, mode="lexical")  # 1.2 MB


@pytest.mark.parametrize("mode", MODES)
def test_nul_characters_are_spaces(idx: Index, mode: str) -> None:
    """A query of NULs was searched (dense returned arbitrary passages); NUL inside a query
    now reads as a space."""
    with pytest.raises(UsageError, match="empty"):
        idx.search("\x00\x00 \x00", mode=mode)
    with_nul = idx.search("\x00river\x00floods\x00", mode=mode)
    plain = idx.search("river floods", mode=mode)
    assert [(h.passage_id, h.score) for h in with_nul] == [(h.passage_id, h.score) for h in plain]
    assert with_nul


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("text", ["?!", "... ---", "«»", "\u2603\u2603"])
def test_a_query_without_any_word_finds_nothing_in_every_mode(
    idx: Index, mode: str, text: str
) -> None:
    """Lexical mode found nothing already; dense and hybrid returned the passages nearest the
    model's vector of punctuation, which matches nothing."""
    assert idx.search(text, mode=mode) == []
    assert idx.search_many([text, "river"], mode=mode)[0] == []


FTS_OPERATORS_ALONE = ['"', "*", "NEAR(", "AND", "-", "OR NOT", "^", "(", ")"]
FTS_OPERATORS_WITH_A_WORD = [
    "river AND",
    '"river',
    "river*",
    "NEAR(river)",
    "-river",
    "river NOT",
    "body:river",
    "^river",
    "(river",
    "river OR",
    "{river}",
]


@pytest.mark.parametrize("text", FTS_OPERATORS_ALONE)
def test_fts5_operators_alone_match_nothing_lexically(idx: Index, text: str) -> None:
    assert idx.search(text, mode="lexical") == []


@pytest.mark.parametrize("mode", ["lexical", "hybrid"])
@pytest.mark.parametrize("text", FTS_OPERATORS_WITH_A_WORD)
def test_fts5_syntax_around_a_word_searches_for_the_word(idx: Index, mode: str, text: str) -> None:
    """Operators are not passed to FTS5: the query is its words (quoted), so each form
    ranks as the bare word does."""
    hits = idx.search(text, k=40, mode=mode, collapse=False)
    bare = idx.search("river", k=40, mode=mode, collapse=False)
    if mode == "lexical":
        assert [h.passage_id for h in hits] == [h.passage_id for h in bare]
        assert len(hits) == 20 and all("river" in h.text for h in hits)
    else:
        assert "river" in hits[0].text


# --------------------------------------------------------------------------- filters


def test_an_over_long_path_glob_is_a_usage_error_not_a_damaged_index(idx: Index) -> None:
    """Was IndexCorruptError ("the index database is damaged ... rebuild"): SQLite refuses
    GLOB patterns over 50,000 bytes, and the message sent users to rebuild a sound index."""
    with pytest.raises(UsageError, match="4,096"):
        idx.search("river", path="*" * 100_000)
    with pytest.raises(UsageError, match="4,096"):
        idx.search("river", path="é" * (MAX_PATH_CHARS + 1))
    # at the limit, even in four-byte characters, SQLite takes it
    assert idx.search("river", path="*" + "\U0001f600" * (MAX_PATH_CHARS - 1)) == []
    assert len(idx.search("river", path="*" * MAX_PATH_CHARS, k=3)) == 3


def test_a_path_glob_that_is_not_utf8_is_a_usage_error(idx: Index) -> None:
    with pytest.raises(UsageError, match="not valid UTF-8"):
        idx.search("river", path="\udcff*")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), "0.5", True])
def test_a_min_score_that_is_not_finite_is_refused(idx: Index, value: object) -> None:
    """NaN in lexical mode silently filtered out every hit; a string was a TypeError."""
    with pytest.raises(UsageError, match="finite"):
        idx.search("river", mode="lexical", min_score=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("since", ["99999-01-01", "2024-13-01", "\x00", "\udcff"])
def test_a_bad_since_is_a_usage_error(idx: Index, since: str) -> None:
    with pytest.raises(UsageError, match="since must be a date"):
        idx.search("river", since=since)


# --------------------------------------------------------------------------- highlights


def test_pick_highlights_takes_the_second_of_two_sentences_when_close() -> None:
    """`len(order) > 2` left a two-sentence passage with one highlight, however close."""
    spans = [(0, 10), (11, 20)]
    assert pick_highlights(spans, [0.90, 0.88]) == spans
    assert pick_highlights(spans, [0.70, 0.90]) == [(11, 20)]
    assert pick_highlights(spans, [0.90, 0.50]) == [(0, 10)]
    assert pick_highlights([(0, 5)], [0.1]) == [(0, 5)]


def test_a_two_sentence_passage_gets_both_sentences_highlighted(idx: Index) -> None:
    """Lexical highlights score sentences by query terms: each sentence has one."""
    (hit,) = idx.search("floods bakers", k=1, mode="lexical", path="*a003.txt", highlight=True)
    assert hit.text.count(". ") == 1
    first, second = hit.text.split(". ")
    assert [hit.text[a:b] for a, b in hit.highlights] == [first + ".", second]


# --------------------------------------------------------------------------- command line


@pytest.mark.parametrize("k", ["10001", "5000000000000000000", "18446744073709551616"])
@pytest.mark.parametrize("mode", MODES)
def test_cli_huge_k_is_one_line_exit_2(built: Path, k: str, mode: str) -> None:
    """Was an OverflowError traceback (hybrid is the default, so a plain query)."""
    code, out, err = run("query", "river", "-k", k, "--mode", mode, "--index", str(built))
    assert_one_line_error(code, out, err, "k must be at most 10,000", exit_code=2)
    assert out == ""


def test_cli_k_at_the_limit_answers(built: Path) -> None:
    code, out, err = run(
        "query", "river", "-k", str(MAX_K), "--mode", "lexical", "--json", "--index", str(built)
    )
    assert code == 0, err
    assert len(json.loads(out)["results"]) == 20


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--path", "*" * 60_000], "4,096"),
        (["--since", "99999-01-01"], "since must be a date"),
        (["--min-score", "nan", "--mode", "lexical"], "finite"),
    ],
)
def test_cli_bad_filters_are_one_line_exit_2(built: Path, args: list[str], needle: str) -> None:
    code, out, err = run("query", "river", *args, "--index", str(built))
    assert_one_line_error(code, out, err, needle, exit_code=2)


def test_cli_over_long_query_is_one_line_exit_2(built: Path) -> None:
    code, out, err = run("query", "word " * 5_000, "--mode", "lexical", "--index", str(built))
    assert_one_line_error(code, out, err, "10,000", exit_code=2)


@pytest.mark.parametrize("mode", MODES)
def test_argv_bytes_that_are_not_utf8_are_one_line_exit_2(built: Path, mode: str) -> None:
    """`semsearch query "$(printf '\\xff\\xfe')"`: a TypeError traceback from the tokenizer
    (lexical: silently nothing). A real process, since only the OS hands over raw bytes."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "semsearch",
            "query",
            b"\xff\xfe",
            "--mode",
            mode,
            "--index",
            str(built),
        ],
        capture_output=True,
        env=env,
        timeout=120,
    )
    err = done.stderr.decode("utf-8", "replace")
    assert_one_line_error(
        done.returncode, done.stdout.decode(), err, "not valid UTF-8", exit_code=2
    )
