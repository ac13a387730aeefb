"""Hybrid search: fusion, the BM25 index, filters, grouping, highlights, migration.

Everything runs with the deterministic FakeEmbedder (a hashed bag of words), so
rankings and highlights can be predicted from shared words.
"""

from __future__ import annotations

import json
import math
import random
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from semsearch.errors import UsageError
from semsearch.index import Index
from semsearch.query import MODES, Hit, check_query, lexical
from semsearch.query import searcher as search
from semsearch.query.fusion import Fusion, fuse
from semsearch.query.options import DEFAULT_FUSION
from semsearch.storage.schema import SCHEMA_VERSION
from semsearch.storage.store import Store
from tests.fakes import FakeEmbedder

# --------------------------------------------------------------------------- helpers


def article(path: Path, title: str, paragraphs: list[str], date: str | None = None) -> Path:
    """Write an article: the seed format when dated, else plain text (title, blank lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if date is not None:
        body = f" date {date} 1\n{title}\n" + "\n".join(paragraphs) + "\n"
    else:
        body = f"{title}\n\n" + "\n\n".join(paragraphs) + "\n"
    path.write_text(body, encoding="utf-8")
    return path


def counts(folder: Path) -> tuple[int, int]:
    """(passages, rows of the FTS5 index) of the index in ``folder``."""
    store = Store.open(str(folder))
    try:
        return store.passage_count(), store.lexical_count()
    finally:
        store.close()


def dates(hits: list[Hit]) -> list[str]:
    """The hits' dates, sorted (an undated hit shows as "None")."""
    return sorted(str(h.date) for h in hits)


def assert_whole_sentences(hit: Hit) -> None:
    for a, b in hit.highlights:
        assert 0 <= a < b <= len(hit.text), (hit.text, hit.highlights)
        assert a == 0 or hit.text[a - 2 : a] == ". ", (hit.text, a)
        assert b == len(hit.text) or hit.text[b - 1] in ".!?", (hit.text, b)
        assert hit.text[a:b] == hit.text[a:b].strip()


# --------------------------------------------------------------------------- fusion


def test_rrf_gives_the_hand_computed_order_and_scores() -> None:
    dense = [(1, 0.9), (2, 0.8)]
    lex = [(2, 5.0), (3, 4.0)]
    fused = fuse(dense, lex, Fusion(method="rrf", alpha=0.5, rrf_c=60.0))
    assert [i for i, _ in fused] == [2, 1, 3]
    scores = dict(fused)
    assert scores[2] == pytest.approx(1 / 61 + 1 / 62)
    assert scores[1] == pytest.approx(1 / 61)
    assert scores[3] == pytest.approx(1 / 62)


def test_rrf_ignores_score_values_and_ties_keep_dense_order() -> None:
    # Same ranks, wildly different scores: the same fused ranking.
    a = fuse([(1, 0.9), (2, 0.1)], [(3, 100.0)], Fusion(method="rrf", alpha=0.5))
    b = fuse([(1, 0.2), (2, 0.19)], [(3, 1.5)], Fusion(method="rrf", alpha=0.5))
    assert a == b
    # 1 (dense rank 1) and 3 (lexical rank 1) tie at 1/61: dense order first.
    assert [i for i, _ in a] == [1, 3, 2]
    assert a[0][1] == pytest.approx(a[1][1])


def test_rrf_alpha_weights_the_two_rankings() -> None:
    fused = dict(fuse([(1, 0.9)], [(2, 3.0)], Fusion(method="rrf", alpha=0.8)))
    assert fused[1] == pytest.approx(1.6 / 61)
    assert fused[2] == pytest.approx(0.4 / 61)


def test_convex_fusion_alpha_half_ties_keep_dense_order() -> None:
    dense = [(1, 0.9), (2, 0.8)]
    lex = [(2, 5.0), (3, 4.0)]
    fused = fuse(dense, lex, Fusion(method="convex", alpha=0.5))
    # min-max: dense 1 -> 1, 2 -> 0; lexical 2 -> 1, 3 -> 0.
    assert fused == [(1, pytest.approx(0.5)), (2, pytest.approx(0.5)), (3, pytest.approx(0.0))]
    assert [i for i, _ in fused] == [1, 2, 3]


def test_convex_fusion_alpha_08() -> None:
    dense = [(1, 0.9), (2, 0.8)]
    lex = [(2, 5.0), (3, 4.0)]
    fused = fuse(dense, lex, Fusion(method="convex", alpha=0.8))
    assert [i for i, _ in fused] == [1, 2, 3]
    assert [s for _, s in fused] == [pytest.approx(0.8), pytest.approx(0.2), pytest.approx(0.0)]
    # alpha 0.2 favours the lexical ranking instead.
    fused = fuse(dense, lex, Fusion(method="convex", alpha=0.2))
    assert [i for i, _ in fused] == [2, 1, 3]
    assert dict(fused)[2] == pytest.approx(0.8)


def test_convex_fusion_minmax_in_between_values() -> None:
    dense = [(1, 0.9), (2, 0.7), (3, 0.5)]
    lex = [(3, 10.0), (1, 6.0), (4, 2.0)]
    fused = dict(fuse(dense, lex, Fusion(method="convex", alpha=0.5)))
    assert fused[1] == pytest.approx(0.5 * 1.0 + 0.5 * 0.5)
    assert fused[2] == pytest.approx(0.5 * 0.5 + 0.0)
    assert fused[3] == pytest.approx(0.5 * 0.0 + 0.5 * 1.0)
    assert fused[4] == pytest.approx(0.0)


def test_candidates_past_the_depth_are_scored_with_the_bounds_of_the_top() -> None:
    """Only the top ``depth`` of each ranking sets the min-max bounds; a candidate
    past it is normalised with those bounds and clipped to 0..1."""
    dense = [(1, 0.9), (2, 0.7), (3, 0.5), (4, 0.3), (5, 0.2)]
    lex = [(3, 10.0), (1, 6.0), (4, 2.0), (6, 1.0)]
    fused = dict(fuse(dense, lex, Fusion(method="convex", alpha=0.5), depth=2))
    assert fused[1] == pytest.approx(0.5 * 1.0 + 0.5 * 0.0)  # dense 0.9..0.7, lex 10..6
    assert fused[2] == pytest.approx(0.0)
    assert fused[3] == pytest.approx(0.5 * 0.0 + 0.5 * 1.0)  # dense 0.5 < 0.7: clipped
    assert fused[4] == fused[5] == fused[6] == pytest.approx(0.0)
    # the scores of the first candidates do not depend on how many follow them
    for cut in (2, 3, 5):
        shorter = dict(fuse(dense[:cut], lex[:cut], Fusion(method="convex", alpha=0.5), depth=2))
        assert all(shorter[i] == pytest.approx(fused[i]) for i in shorter)
    rrf = dict(fuse(dense, lex, Fusion(method="rrf", alpha=0.5), depth=2))
    assert rrf[4] == rrf[5] == rrf[6] == 0.0  # ranks past the depth count for nothing
    assert rrf[3] == pytest.approx(1 / 61)
    assert rrf[1] == pytest.approx(1 / 61 + 1 / 62)


def test_ids_in_only_one_list() -> None:
    only_dense = fuse([(7, 0.3)], [], Fusion(method="convex", alpha=0.5))
    assert only_dense == [(7, pytest.approx(0.5))]  # a single score normalises to 1
    only_lex = fuse([], [(8, 2.0), (9, 1.0)], Fusion(method="convex", alpha=0.5))
    assert only_lex == [(8, pytest.approx(0.5)), (9, pytest.approx(0.0))]
    rrf = fuse([], [(8, 2.0), (9, 1.0)], Fusion(method="rrf", alpha=0.5))
    assert rrf == [(8, pytest.approx(1 / 61)), (9, pytest.approx(1 / 62))]


@pytest.mark.parametrize("method", ["rrf", "convex"])
def test_empty_lists_fuse_to_nothing(method: str) -> None:
    assert fuse([], [], Fusion(method=method)) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "max"},
        {"method": ""},
        {"alpha": 1.5},
        {"alpha": -0.1},
        {"scale": 0.0},
        {"scale": float("inf")},
        {"shift": float("nan")},
    ],
)
def test_fusion_rejects_bad_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Fusion(**kwargs)  # type: ignore[arg-type]


def test_calibrated_fusion_is_a_logistic_of_the_mix() -> None:
    f = Fusion(alpha=0.6, scale=8.0, shift=0.4)
    assert f.independent and not Fusion(method="convex", alpha=0.5).independent
    assert f.mix(0.5, 3.0, 10.0) == pytest.approx(0.6 * 0.5 + 0.4 * 0.3)
    assert f.score(0.5, 3.0, 10.0) == pytest.approx(1 / (1 + math.exp(-8.0 * (0.42 - 0.4))))
    # the mix at ``shift`` scores one half; more of either score scores more
    assert f.score(0.4 / 0.6, 0.0, 10.0) == pytest.approx(0.5)
    assert f.score(0.5, 4.0, 10.0) > f.score(0.5, 3.0, 10.0) > f.score(0.4, 3.0, 10.0)
    # no term (zero bound): the lexical share is 0; far below the shift: 0, not an overflow
    assert f.mix(0.5, 0.0, 0.0) == pytest.approx(0.3)
    assert Fusion(scale=1e6).score(-1.0, 0.0, 1.0) == 0.0
    assert 0.0 < f.score(-1.0, 0.0, 1.0) < f.score(1.0, 10.0, 10.0) < 1.0
    with pytest.raises(ValueError, match="calibrated"):
        fuse([(1, 0.5)], [], f)


# --------------------------------------------------------------------------- query terms


def test_stop_words_are_dropped_from_queries() -> None:
    assert lexical.query_terms("What is the river flooding in the town?") == [
        "river",
        "flooding",
        "town",
    ]
    assert lexical.query_terms("Rain rain RAIN") == ["rain"]


def test_a_query_of_only_stop_words_still_searches() -> None:
    assert lexical.query_terms("The Who") == ["the", "who"]
    assert lexical.match_expression("the who") == '"the" OR "who"'


def test_match_expression_quotes_every_term() -> None:
    expr = lexical.match_expression('say "hello" AND (x OR')
    assert expr == '"say" OR "hello" OR "x"'
    assert lexical.match_expression("!!! ??? ...") is None
    assert lexical.query_terms("--- ***") == []


@pytest.fixture
def fts_db() -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(":memory:")
    db.execute(
        f"CREATE VIRTUAL TABLE passages_fts USING fts5(body, tokenize='{lexical.FTS_TOKENIZER}')"
    )
    rows = [
        (1, "Greeting\nShe said hello to the crowd and waved."),
        (2, "Weather\nRain fell on the town for three days."),
        (3, "Chess\nThe champion offered a draw near the end."),
    ]
    db.executemany("INSERT INTO passages_fts(rowid, body) VALUES (?, ?)", rows)
    yield db
    db.close()


@pytest.mark.parametrize(
    "query",
    [
        'say "hello" AND (x OR',
        '"hello',
        "hello*",
        "NEAR(hello crowd)",
        "body:hello",
        "^hello -crowd",
        "hello'; DROP TABLE passages_fts; --",
    ],
)
def test_fts_syntax_in_a_query_is_plain_text(fts_db: sqlite3.Connection, query: str) -> None:
    found = lexical.search(fts_db, query, 5)
    assert found and found[0][0] == 1
    assert all(score > 0 for _, score in found)
    assert fts_db.execute("SELECT count(*) FROM passages_fts").fetchone()[0] == 3


def test_lexical_search_ranks_and_restricts(fts_db: sqlite3.Connection) -> None:
    assert [i for i, _ in lexical.search(fts_db, "rain town", 5)] == [2]
    assert [i for i, _ in lexical.search(fts_db, "the", 5, allowed=[2, 3])] in ([2, 3], [3, 2])
    assert lexical.search(fts_db, "rain", 5, allowed=[1, 3]) == []
    assert lexical.search(fts_db, "rain", 5, allowed=[]) == []
    assert lexical.search(fts_db, "!!!", 5) == []
    # stemming: "waving" finds "waved"
    assert [i for i, _ in lexical.search(fts_db, "waving", 5)] == [1]


def _bm25_by_hand(db: sqlite3.Connection, terms: list[str], rowid: int) -> float:
    """FTS5's bm25() written out: the formula `lexical.bound` bounds."""
    rows = db.execute("SELECT rowid, body FROM passages_fts").fetchall()
    tokens = {r: re.findall(r"\w+", body.lower()) for r, body in rows}
    avgdl = sum(len(t) for t in tokens.values()) / len(tokens)
    stem = {"rain": "rain", "town": "town", "crowd": "crowd", "the": "the"}
    score = 0.0
    for term in terms:
        word = stem[term]
        holding = sum(1 for t in tokens.values() if word in t)
        idf = max(math.log((len(tokens) - holding + 0.5) / (holding + 0.5)), lexical.MIN_IDF)
        f = tokens[rowid].count(word)
        norm = 1 - lexical.B + lexical.B * len(tokens[rowid]) / avgdl
        score += idf * f * (lexical.K1 + 1) / (f + lexical.K1 * norm)
    return score


def test_bm25_constants_are_those_of_fts5(fts_db: sqlite3.Connection) -> None:
    """The bound rests on FTS5's formula and parameters: check them against bm25()."""
    for query, rowid in (("rain town", 2), ("crowd", 1), ("rain the", 2), ("the", 3)):
        got = dict(lexical.search(fts_db, query, 5))[rowid]
        assert got == pytest.approx(_bm25_by_hand(fts_db, lexical.query_terms(query), rowid))


def test_idfs_count_the_passages_holding_each_term(fts_db: sqlite3.Connection) -> None:
    assert lexical.idfs(fts_db, "rain crowds") == [
        pytest.approx(math.log(2.5 / 1.5)),  # 1 passage of 3 holds each
        pytest.approx(math.log(2.5 / 1.5)),
    ]
    # "the" is in every passage: FTS5 floors its idf
    assert lexical.idfs(fts_db, "the") == [lexical.MIN_IDF]
    assert lexical.idfs(fts_db, "zebra") == [pytest.approx(math.log(3.5 / 0.5))]
    assert lexical.idfs(fts_db, "!!!") == []
    assert lexical.bound(fts_db, "!!!") == 0.0
    assert lexical.bound(fts_db, "rain crowds") == pytest.approx(2.2 * 2 * math.log(2.5 / 1.5))


def test_no_passage_reaches_the_bound() -> None:
    """Even a passage repeating every query term, short or long, scores below the bound."""
    db = sqlite3.connect(":memory:")
    db.execute(
        f"CREATE VIRTUAL TABLE passages_fts USING fts5(body, tokenize='{lexical.FTS_TOKENIZER}')"
    )
    rng = random.Random(7)
    words = [f"w{i}" for i in range(30)]
    rows = [" ".join(rng.choices(words, k=rng.randint(1, 40))) for _ in range(200)]
    rows += ["w1 " * 500, "w1 w2", "w1"]  # saturated, short, shortest
    db.executemany("INSERT INTO passages_fts(rowid, body) VALUES (?, ?)", enumerate(rows, 1))
    for query in ("w1", "w1 w2", "w3 w4 w5 w6", " ".join(words)):
        top = lexical.search(db, query, 300)
        assert top
        assert max(s for _, s in top) < lexical.bound(db, query)
    db.close()


def test_scores_of_gives_the_search_scores_and_zero_without_a_term(
    fts_db: sqlite3.Connection,
) -> None:
    found = dict(lexical.search(fts_db, "rain crowd", 5))
    assert set(found) == {1, 2}
    assert lexical.scores_of(fts_db, "rain crowd", [2, 3, 1, 99]) == {
        1: found[1],
        2: found[2],
        3: 0.0,  # holds neither word
        99: 0.0,  # no such passage
    }
    assert lexical.scores_of(fts_db, "!!!", [1]) == {1: 0.0}
    assert lexical.scores_of(fts_db, "rain", []) == {}


# --------------------------------------------------------------------------- small index


@pytest.fixture
def small(tmp_path: Path, corpus: Path) -> Iterator[Index]:
    index = Index.open(tmp_path / "index", create=True, embedder=FakeEmbedder())
    index.add([corpus])
    yield index
    index.close()


def test_query_with_fts_syntax_through_the_index(small: Index) -> None:
    hits = small.search('rain "river" AND (x OR', k=5, mode="lexical")
    assert hits
    assert "river" in hits[0].text.lower()
    assert small.search('"', k=3, mode="lexical") == []


def test_query_without_word_characters_gives_no_results(small: Index) -> None:
    assert small.search("!!! ???", k=5, mode="lexical") == []
    assert small.search("...", k=5, mode="lexical") == []


def test_stop_word_query_searches_in_lexical_mode(small: Index) -> None:
    hits = small.search("the", k=10, mode="lexical", collapse=False)
    assert len(hits) == 3  # a.txt's two passages (title) and b.txt's first (text)
    for h in hits:
        assert "the" in (h.title + " " + h.text).lower().split()


# --------------------------------------------------------------------------- BM25 follows changes


def test_lexical_index_follows_adds_updates_and_deletions(tmp_path: Path, corpus: Path) -> None:
    folder = tmp_path / "index"
    target = corpus / "d.txt"
    article(target, "Strange mineral", ["Miners found zanzibarite deep under the hills."])
    index = Index.open(folder, create=True, embedder=FakeEmbedder())
    try:
        index.add([corpus])
        passages, fts = counts(folder)
        assert passages == fts == 6
        hits = index.search("zanzibarite", k=5, mode="lexical")
        assert [h.path for h in hits] == [str(target)]

        # Edit: the rare word goes, a new one comes.
        article(target, "Strange mineral", ["Miners found quokkalite deep under the hills."])
        index.add([corpus])
        assert index.search("zanzibarite", k=5, mode="lexical") == []
        hits = index.search("quokkalite", k=5, mode="lexical")
        assert [h.text for h in hits] == ["Miners found quokkalite deep under the hills."]
        passages, fts = counts(folder)
        assert passages == fts == 6

        # Deletion: the file goes, and so do its words.
        target.unlink()
        index.add([corpus])
        assert index.search("quokkalite", k=5, mode="lexical") == []
        assert index.search("mineral", k=5, mode="lexical") == []
        passages, fts = counts(folder)
        assert passages == fts == 5
    finally:
        index.close()

    # Reopening (no embedder needed for lexical search).
    with Index.open(folder) as reopened:
        hits = reopened.search("sourdough bakery", k=5, mode="lexical")
        assert hits and hits[0].title == "New bakery opens"

    # Rebuild keeps them in step.
    with Index.open(folder, create=True, embedder=FakeEmbedder()) as again:
        again.add([corpus], rebuild=True)
        passages, fts = counts(folder)
        assert passages == fts == 5
        hits = again.search("sourdough bakery", k=5, mode="lexical")
        assert hits and hits[0].title == "New bakery opens"


def test_lexical_search_matches_the_title(small: Index) -> None:
    # "retires" only appears in the title of b.txt; both its passages carry it.
    hits = small.search("retires", k=5, mode="lexical", collapse=False)
    assert {h.title for h in hits} == {"Chess champion retires"}
    assert len(hits) == 2


# --------------------------------------------------------------------------- filters

SINCE, UNTIL = "2024-06-10", "2024-06-30"
QUERY = "river flood rain weather"
FLOOD_VOCAB = [
    *("river", "flood", "rain", "water", "storm", "levee", "bank", "town", "residents"),
    *("rescue", "overflow", "torrent", "downpour", "evacuate", "sandbag", "forecast"),
    *("surge", "deluge", "drainage", "weather"),
]
IN_RANGE = {
    "2024-06-10": (
        "Chess tournament opens",
        "Grandmasters from nine countries played despite the weather.",
    ),
    "2024-06-15": ("Violin maker honoured", "The luthier varnished a cello in mild weather."),
    "2024-06-22": (
        "Comet seen over desert",
        "Astronomers photographed the comet; the weather was clear.",
    ),
    "2024-06-30": ("Bakery wins prize", "Judges praised croissants baked whatever the weather."),
}
SUB_DOCS = [
    ("Tomato seedlings", "Tomato seedlings want sun, compost and a little rain.", "2022-03-10"),
    ("Pruning roses", "Prune roses in late winter before rain softens the stems.", "2022-04-10"),
    ("Beekeeping tips", "Bees stay in the hive when rain is near.", "2022-05-10"),
    ("Mulching beds", "Mulch keeps rain from washing soil off the beds.", "2022-06-10"),
    ("Orchard care", "Apple trees need rain in spring and pruning in autumn.", None),
]


def _flood_date(i: int) -> str | None:
    if i % 6 == 0:
        return None
    if i == 1:
        return "2024-06-09"  # the day before the range
    if i == 2:
        return "2024-07-01"  # the day after it
    return f"2023-{i % 12 + 1:02d}-{i % 28 + 1:02d}"


@pytest.fixture(scope="module")
def sixty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    """60 articles: 51 on floods (dated outside the range or undated), 4 unrelated
    articles dated inside the range, and 5 unrelated ones under sub/."""
    root = tmp_path_factory.mktemp("sixty")
    articles = root / "articles"
    for i in range(51):
        rng = random.Random(i)
        words = rng.sample(FLOOD_VOCAB, 10)
        text = f"Report {i} says " + " ".join(words) + "."
        article(
            articles / "main" / f"flood{i:02d}.txt", f"Flood report {i}", [text], _flood_date(i)
        )
    for n, (date, (title, text)) in enumerate(IN_RANGE.items()):
        article(articles / "main" / f"other{n}.txt", title, [text], date)
    for n, (title, text, date) in enumerate(SUB_DOCS):
        article(articles / "sub" / f"garden{n}.txt", title, [text], date)
    index = Index.open(root / "index", create=True, embedder=FakeEmbedder())
    index.add([articles])
    assert index.info().documents == 60
    yield index
    index.close()


@pytest.mark.parametrize("mode", MODES)
def test_unfiltered_the_in_range_articles_rank_low(sixty: Index, mode: str) -> None:
    """The premise of the filter tests: without a filter, none would be in the top 10."""
    hits = sixty.search(QUERY, k=10, mode=mode)
    assert len(hits) == 10
    assert not any(h.date is not None and SINCE <= h.date <= UNTIL for h in hits)


@pytest.mark.parametrize("mode", MODES)
def test_date_filter_is_applied_before_ranking(sixty: Index, mode: str) -> None:
    hits = sixty.search(QUERY, k=3, mode=mode, since=SINCE, until=UNTIL)
    assert len(hits) == 3
    assert all(h.date is not None and SINCE <= h.date <= UNTIL for h in hits)
    assert [h.rank for h in hits] == [1, 2, 3]

    hits = sixty.search(QUERY, k=10, mode=mode, since=SINCE, until=UNTIL)
    assert len(hits) == 4
    assert {h.title for h in hits} == {title for title, _ in IN_RANGE.values()}
    assert dates(hits) == sorted(IN_RANGE)


@pytest.mark.parametrize("mode", MODES)
def test_since_and_until_alone_are_inclusive(sixty: Index, mode: str) -> None:
    hits = sixty.search(QUERY, k=100, mode=mode, since="2024-06-09")
    assert dates(hits) == sorted([*IN_RANGE, "2024-06-09", "2024-07-01"])
    hits = sixty.search(QUERY, k=100, mode=mode, since="2024-01-01", until="2024-06-10")
    assert dates(hits) == ["2024-06-09", "2024-06-10"]


@pytest.mark.parametrize("mode", MODES)
def test_path_filter_is_applied_before_ranking(sixty: Index, mode: str) -> None:
    hits = sixty.search(QUERY, k=3, mode=mode, path="*/sub/*")
    assert len(hits) == 3
    assert all("/sub/" in h.path for h in hits)
    hits = sixty.search(QUERY, k=10, mode=mode, path="*/sub/*")
    assert {h.title for h in hits} == {title for title, _, _ in SUB_DOCS}
    assert len(hits) == 5


def test_path_and_date_filters_combine(sixty: Index) -> None:
    hits = sixty.search(QUERY, k=10, mode="dense", path="*/sub/*", since="2022-04-01")
    assert {h.title for h in hits} == {"Pruning roses", "Beekeeping tips", "Mulching beds"}


def test_undated_articles_never_pass_a_date_filter(sixty: Index) -> None:
    everything = sixty.search(QUERY, k=100, mode="dense", collapse=False)
    assert len(everything) == 60
    undated = sum(1 for h in everything if h.date is None)
    assert undated == 10  # 9 flood reports and one orchard
    for kwargs in ({"since": "1900-01-01"}, {"until": "2100-12-31"}):
        hits = sixty.search(QUERY, k=100, mode="dense", collapse=False, **kwargs)
        assert len(hits) == 50
        assert all(h.date is not None for h in hits)


@pytest.mark.parametrize("mode", MODES)
def test_a_filter_matching_nothing_returns_nothing(sixty: Index, mode: str) -> None:
    assert sixty.search(QUERY, k=5, mode=mode, since="2030-01-01") == []
    assert sixty.search(QUERY, k=5, mode=mode, path="*/nowhere/*") == []
    assert sixty.search(QUERY, k=5, mode=mode, since="2024-06-11", until="2024-06-14") == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"since": "2024-13-01"},
        {"until": "yesterday"},
        {"since": "2024-02-30"},
        {"since": "2024-06-30", "until": "2024-06-01"},
        {"path": "  "},
    ],
)
def test_bad_filters_are_usage_errors(sixty: Index, kwargs: dict[str, str]) -> None:
    with pytest.raises(UsageError):
        sixty.search(QUERY, k=3, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        check_query(QUERY, 3, **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- dense scores / modes


def test_dense_scores_are_cosines(sixty: Index) -> None:
    fake = FakeEmbedder()
    q = fake.vector(QUERY)
    hits = sixty.search(QUERY, k=20, mode="dense", collapse=False)
    assert len(hits) == 20
    for h in hits:
        want = float(np.dot(q, fake.vector(f"{h.title}\n{h.text}")))
        assert h.score == pytest.approx(want, abs=1e-5)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize(
    "fusion", [Fusion(method="rrf", alpha=0.5), Fusion(method="convex", alpha=0.8)]
)
def test_rank_fused_scores_are_the_fused_dense_and_lexical_rankings(
    sixty: Index, fusion: Fusion
) -> None:
    common = {"collapse": False, "highlight": False}
    dense = sixty.search(QUERY, k=100, mode="dense", **common)
    lex = sixty.search(QUERY, k=100, mode="lexical", **common)
    hybrid = sixty.search(QUERY, k=15, mode="hybrid", fusion=fusion, **common)
    want = fuse(
        [(h.passage_id, h.score) for h in dense],
        [(h.passage_id, h.score) for h in lex],
        fusion,
    )[:15]
    assert [h.score for h in hybrid] == pytest.approx([s for _, s in want], abs=5e-5)
    assert hybrid[0].passage_id == want[0][0]
    scores = [h.score for h in hybrid]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True)


def _bound(index: Index, query: str) -> float:
    store = Store.open(index.folder)
    try:
        return store.bm25_bound(query)
    finally:
        store.close()


@pytest.mark.parametrize("fusion", [None, Fusion(alpha=0.8, scale=4.0, shift=0.2)])
def test_a_hybrid_score_is_a_function_of_the_passages_own_scores(
    sixty: Index, fusion: Fusion | None
) -> None:
    """Each hit's fused score is `Fusion.score` of its own cosine and BM25 (0 when it
    holds no query word) and the query's bound: no other passage enters it."""
    f, words = fusion or DEFAULT_FUSION, "river flood storm"
    common = {"collapse": False, "highlight": False}
    dense = {h.passage_id: h.score for h in sixty.search(words, k=100, mode="dense", **common)}
    lex = {h.passage_id: h.score for h in sixty.search(words, k=100, mode="lexical", **common)}
    assert len(dense) == 60 > len(lex)  # some passages hold no query word
    bound = _bound(sixty, words)
    assert bound > max(lex.values())
    hybrid = sixty.search(words, k=60, mode="hybrid", fusion=fusion, **common)
    assert len(hybrid) == 60
    want = {i: f.score(dense[i], lex.get(i, 0.0), bound) for i in dense}
    for h in hybrid:
        assert h.score == pytest.approx(want[h.passage_id], abs=2e-6)
        assert h.scores == {
            "dense": pytest.approx(dense[h.passage_id], abs=2e-6),
            "lexical": pytest.approx(lex.get(h.passage_id, 0.0), abs=2e-6),
            "fused": h.score,
        }
        assert all(type(v) is float for v in h.scores.values())
    assert [h.passage_id for h in hybrid][:5] == sorted(want, key=lambda i: -want[i])[:5]
    scores = [h.score for h in hybrid]
    assert all(0.0 < s < 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True)


def test_single_mode_hits_carry_their_one_score(sixty: Index) -> None:
    dense = sixty.search(QUERY, k=3, mode="dense")
    assert all(h.scores == {"dense": h.score, "lexical": None, "fused": None} for h in dense)
    lex = sixty.search(QUERY, k=3, mode="lexical")
    assert all(h.scores == {"dense": None, "lexical": h.score, "fused": None} for h in lex)
    assert Hit.__dataclass_fields__["scores"] is not None
    assert json.loads(json.dumps(dense[0].to_dict()))["scores"]["lexical"] is None


def test_a_filter_leaves_the_scores_of_the_passages_it_keeps(sixty: Index) -> None:
    """A filter changes which passages are candidates, not what a passage scores."""
    everything = {
        h.passage_id: h.score for h in sixty.search(QUERY, k=60, mode="hybrid", collapse=False)
    }
    for options in ({"path": "*/sub/*"}, {"since": SINCE, "until": UNTIL}):
        kept = sixty.search(QUERY, k=60, mode="hybrid", collapse=False, **options)
        assert 4 <= len(kept) <= 5
        assert all(h.score == everything[h.passage_id] for h in kept)


def test_a_nonsense_query_scores_low_and_a_relevant_one_high(sixty: Index) -> None:
    """No word in common with any passage: no BM25, and only the cosine that the fake's
    hash collisions give, so every hit scores `Fusion.score(cosine, 0, ...)`, in the band
    (below 0.05) where few hits were relevant on SciFact train; a query made of one
    article's words scores past the midpoint (0.5) that min-score 0.5 keeps."""
    words = "quantum chromodynamics gluon"
    nonsense = sixty.search(words, k=5, mode="hybrid")
    dense = {h.passage_id: h.score for h in sixty.search(words, k=60, mode="dense")}
    assert len(nonsense) == 5
    for h in nonsense:
        assert h.scores["lexical"] == 0.0
        assert h.score == pytest.approx(DEFAULT_FUSION.score(dense[h.passage_id], 0, 1), abs=1e-6)
    assert max(h.score for h in nonsense) < 0.05
    assert sixty.search(words, k=5, min_score=0.5) == []
    title, text = IN_RANGE["2024-06-15"]
    relevant = sixty.search(f"{title} {text}", k=5, mode="hybrid", min_score=0.5)
    assert [h.title for h in relevant] == [title]


def test_lexical_scores_are_positive_and_non_increasing(sixty: Index) -> None:
    hits = sixty.search(QUERY, k=30, mode="lexical")
    scores = [h.score for h in hits]
    assert len(hits) == 30
    assert all(s > 0 for s in scores)
    assert scores == sorted(scores, reverse=True)


def test_unknown_mode_is_a_usage_error(small: Index) -> None:
    with pytest.raises(UsageError, match="mode"):
        small.search("river", mode="fuzzy")
    with pytest.raises(UsageError):
        check_query("river", mode="BM25")


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
@pytest.mark.parametrize("min_score", [1.5, -1.01, 12.0])
def test_min_score_out_of_range_is_a_usage_error(small: Index, mode: str, min_score: float) -> None:
    with pytest.raises(UsageError, match="min-score"):
        small.search("river", mode=mode, min_score=min_score)


def test_min_score_above_one_is_fine_for_lexical(garden: Index) -> None:
    everything = garden.search(GARDEN_QUERY, k=100, mode="lexical", collapse=False)
    cut = (everything[2].score + everything[3].score) / 2  # between two hits: no rounding edge
    assert cut > 1.0  # BM25 scores go above 1: such a min-score is no usage error
    hits = garden.search(GARDEN_QUERY, k=100, mode="lexical", collapse=False, min_score=cut)
    assert hits and all(h.score >= cut for h in hits)
    assert [h.passage_id for h in hits] == [h.passage_id for h in everything if h.score >= cut]


def test_hybrid_min_score_keeps_exactly_the_hits_above_it_unchanged(sixty: Index) -> None:
    everything = sixty.search(QUERY, k=100, mode="hybrid", collapse=False)
    scores = sorted({h.score for h in everything}, reverse=True)
    for cut in ((scores[2] + scores[3]) / 2, (scores[20] + scores[21]) / 2):
        hits = sixty.search(QUERY, k=100, mode="hybrid", collapse=False, min_score=cut)
        want = [(h.passage_id, h.score, h.scores) for h in everything if h.score >= cut]
        assert [(h.passage_id, h.score, h.scores) for h in hits] == want
        assert 3 <= len(hits) < len(everything)


# --------------------------------------------------------------------------- by article

GARDEN = {
    "compost.txt": (
        "Composting at home",
        [
            "Compost turns kitchen scraps into rich garden soil with help from worms.",
            "Turn the compost heap weekly so worms and microbes get air into the soil.",
            "Finished compost smells of forest soil and feeds every garden bed.",
        ],
    ),
    "soil.txt": (
        "Garden soil basics",
        [
            "Clay soil holds water while sandy soil drains fast in a garden.",
            "Our neighbour repainted the fence blue last summer.",
            "Test the acidity of the soil before planting blueberries.",
        ],
    ),
    "worms.txt": (
        "Earthworms",
        [
            "Earthworms tunnel through soil and leave castings behind.",
            "Robins hunt worms on wet lawns after dawn.",
        ],
    ),
    "tools.txt": (
        "Choosing tools",
        [
            "A sharp spade makes digging garden beds easier.",
            "Oil wooden handles each autumn to stop them cracking.",
            "Keep compost forks separate from hay forks.",
        ],
    ),
    "weeds.txt": (
        "Weeds",
        ["Dandelions spread by seed across the lawn.", "Mulch smothers weeds in the garden."],
    ),
    "kitchen.txt": (
        "Kitchen scraps",
        ["Save vegetable peelings in a lidded caddy.", "Eggshells add calcium to compost."],
    ),
}
GARDEN_QUERY = "compost soil garden worms"


@pytest.fixture(scope="module")
def garden(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    root = tmp_path_factory.mktemp("garden")
    for n, (name, (title, paras)) in enumerate(GARDEN.items()):
        article(root / "articles" / name, title, paras, f"2024-02-{n + 1:02d}")
    index = Index.open(root / "index", create=True, embedder=FakeEmbedder())
    index.add([root / "articles"])
    yield index
    index.close()


@pytest.mark.parametrize("mode", MODES)
def test_by_article_keeps_each_articles_best_passage(garden: Index, mode: str) -> None:
    full = garden.search(GARDEN_QUERY, k=100, mode=mode, collapse=False, highlight=False)
    # The premise: an article has several passages near the top.
    top_docs = [h.document_id for h in full[:4]]
    assert len(set(top_docs)) < len(top_docs)
    best: dict[int, Hit] = {}
    for h in full:
        best.setdefault(h.document_id, h)
    hits = garden.search(
        GARDEN_QUERY, k=3, mode=mode, by_article=True, collapse=False, highlight=False
    )
    assert len(hits) == 3
    assert len({h.document_id for h in hits}) == 3
    assert len({(h.path, h.title) for h in hits}) == 3
    assert [h.passage_id for h in hits] == [h.passage_id for h in list(best.values())[:3]]
    for h in hits:
        assert h.score == pytest.approx(best[h.document_id].score, abs=1e-6)
    assert [h.rank for h in hits] == [1, 2, 3]


@pytest.mark.parametrize("mode", MODES)
def test_by_article_returns_every_matching_article_when_k_is_large(
    garden: Index, mode: str
) -> None:
    full = garden.search(GARDEN_QUERY, k=100, mode=mode, collapse=False)
    articles = {h.document_id for h in full}
    hits = garden.search(GARDEN_QUERY, k=50, mode=mode, by_article=True)
    assert len(hits) == len(articles)
    assert {h.document_id for h in hits} == articles
    if mode != "lexical":
        assert len(articles) == len(GARDEN)


def test_by_article_with_a_small_k_refetches(garden: Index) -> None:
    # k=1..6: always k distinct articles (the first fetch of k*4 passages may hold fewer).
    for k in range(1, len(GARDEN) + 1):
        hits = garden.search(GARDEN_QUERY, k=k, mode="dense", by_article=True)
        assert len(hits) == k
        assert len({h.document_id for h in hits}) == k


# --------------------------------------------------------------------------- collapse

P = (
    "Officials from seven coastal towns approved a larger budget yesterday to repair "
    "every damaged harbour bridge before winter storms arrive."
)
P_CASE = (
    "OFFICIALS from seven coastal towns approved a larger budget, yesterday, to repair "
    "every damaged harbour-bridge before winter storms arrive!"
)
P_ONE_WORD = P.replace("yesterday", "tuesday")  # 19 of 21 distinct words shared
P_THREE_WORDS = (
    P.replace("yesterday", "tuesday").replace("larger", "smaller").replace("winter", "autumn")
)
COLLAPSE_FILES = {
    "a.txt": (
        "Harbour news",
        [P, "Fishing boats returned early in the fog.", "A cafe opened near the pier."],
    ),
    "b.txt": (
        "Council meeting",
        ["The mayor opened the session at nine.", P_CASE, "Concert tickets sold out."],
    ),
    "c.txt": (
        "Weekly roundup",
        ["Schools closed for the holiday.", "Traffic was light on the bypass.", P_ONE_WORD],
    ),
    "d.txt": ("Town bulletin", [P, "The library extends its opening hours."]),
    "e.txt": ("Other news", [P_THREE_WORDS, "Lifeguards start their season in June."]),
}
FAMILY = {("a.txt", 1), ("b.txt", 2), ("c.txt", 3), ("d.txt", 1)}
COLLAPSE_QUERY = "budget to repair the damaged harbour bridge"


@pytest.fixture(scope="module")
def dupes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    root = tmp_path_factory.mktemp("dupes")
    for name, (title, paras) in COLLAPSE_FILES.items():
        article(root / "articles" / name, title, paras, "2024-05-01")
    index = Index.open(root / "index", create=True, embedder=FakeEmbedder())
    index.add([root / "articles"])
    yield index
    index.close()


def where(path: str, paragraph: int) -> tuple[str, int]:
    return Path(path).name, paragraph


@pytest.mark.parametrize("mode", MODES)
def test_near_identical_paragraphs_collapse_into_one_hit(dupes: Index, mode: str) -> None:
    flat = dupes.search(COLLAPSE_QUERY, k=100, mode=mode, collapse=False)
    family_flat = [h for h in flat if where(h.path, h.paragraph) in FAMILY]
    assert len(family_flat) == 4
    assert all(h.also_in == [] for h in flat)

    hits = dupes.search(COLLAPSE_QUERY, k=5, mode=mode)
    # lexical: only the passages holding the query's words match (7, so 4 groups)
    assert len(hits) == min(5, len(flat) - 3)
    family = [h for h in hits if where(h.path, h.paragraph) in FAMILY]
    assert len(family) == 1, [(h.path, h.paragraph) for h in hits]
    kept = family[0]
    # The best-ranked copy is the one shown; the others, in rank order, are listed.
    assert kept.passage_id == family_flat[0].passage_id
    assert [s.passage_id for s in kept.also_in] == [h.passage_id for h in family_flat[1:]]
    places = {where(kept.path, kept.paragraph)} | {where(s.path, s.paragraph) for s in kept.also_in}
    assert places == FAMILY
    for s in kept.also_in:
        assert s.title == COLLAPSE_FILES[Path(s.path).name][0]
        assert s.date == "2024-05-01"
    # Three words in twenty changed: a different passage, shown on its own.
    assert any(h.text == P_THREE_WORDS and h.also_in == [] for h in hits)
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))


@pytest.mark.parametrize("mode", MODES)
def test_without_collapse_the_copies_come_back_separately(dupes: Index, mode: str) -> None:
    hits = dupes.search(COLLAPSE_QUERY, k=5, mode=mode, collapse=False)
    assert len(hits) == 5
    copies = [h for h in hits if where(h.path, h.paragraph) in FAMILY]
    assert len(copies) >= 3
    assert len({h.passage_id for h in copies}) == len(copies)
    assert all(h.also_in == [] for h in hits)
    collapsed = dupes.search(COLLAPSE_QUERY, k=5, mode=mode)
    assert sum(1 for h in collapsed if where(h.path, h.paragraph) in FAMILY) == 1


def test_collapse_returns_every_distinct_passage(dupes: Index) -> None:
    total = sum(len(paras) for _, paras in COLLAPSE_FILES.values())  # 13 passages
    distinct = total - 3  # the four copies are one hit
    hits = dupes.search(COLLAPSE_QUERY, k=distinct, mode="dense")
    assert len(hits) == distinct
    assert len(dupes.search(COLLAPSE_QUERY, k=50, mode="dense")) == distinct
    assert len({h.passage_id for h in hits}) == distinct
    assert sum(1 + len(h.also_in) for h in hits) == total


@pytest.mark.parametrize("mode", MODES)
def test_collapse_fetches_more_when_the_top_is_all_copies(tmp_path: Path, mode: str) -> None:
    same = "Volunteers cleared litter from the canal towpath on Sunday morning."
    for n in range(12):
        other = (
            f"Item {n}: the {['bakery', 'museum', 'stadium', 'library'][n % 4]} reopens soon {n}."
        )
        article(tmp_path / "articles" / f"f{n:02d}.txt", f"Digest {n}", [same, other], "2024-01-01")
    with Index.open(tmp_path / "index", create=True, embedder=FakeEmbedder()) as index:
        index.add([tmp_path / "articles"])
        query = "volunteers cleared litter canal towpath"
        flat = index.search(query, k=12, mode=mode, collapse=False)
        assert [h.text for h in flat] == [
            same
        ] * 12  # the premise: a first fetch of 12 is all copies
        hits = index.search(query, k=3, mode=mode)
        assert hits[0].text == same
        assert len(hits[0].also_in) == 11
        assert len({(s.path, s.paragraph) for s in hits[0].also_in}) == 11
        assert all(s.paragraph == 1 for s in hits[0].also_in)
        if mode == "lexical":  # only the copies hold the query's words
            assert len(hits) == 1
        else:
            assert len(hits) == 3
            assert all(h.text != same for h in hits[1:])


# --------------------------------------------------------------------------- highlights

MIXED = (
    "Bakers rise early every morning. The river flooded the lower town yesterday. "
    "Chess clubs meet on Fridays."
)
RIVER_SENTENCE = "The river flooded the lower town yesterday."


@pytest.fixture(scope="module")
def notes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    root = tmp_path_factory.mktemp("notes")
    article(
        root / "articles" / "mixed.txt",
        "Mixed notes",
        [MIXED, "Swallows returned in April. Gardens bloomed early. Prices rose again."],
        "2024-04-01",
    )
    article(
        root / "articles" / "market.txt",
        "Market day",
        [
            "Stalls opened at dawn. Farmers sold apples and honey. The river breeze was cold.",
            "Crowds thinned by noon.",
        ],
        "2024-04-02",
    )
    index = Index.open(root / "index", create=True, embedder=FakeEmbedder())
    index.add([root / "articles"])
    yield index
    index.close()


@pytest.mark.parametrize("mode", MODES)
def test_highlight_is_the_sentence_sharing_the_querys_words(notes: Index, mode: str) -> None:
    hits = notes.search("river flooded lower town", k=5, mode=mode, highlight=True)
    mixed = next(h for h in hits if h.text == MIXED)
    start = MIXED.index(RIVER_SENTENCE)
    assert mixed.highlights == [(start, start + len(RIVER_SENTENCE))]
    assert hits[0].text == MIXED


@pytest.mark.parametrize("mode", MODES)
def test_highlights_are_whole_sentences_inside_the_text(notes: Index, mode: str) -> None:
    for query in ("river flooded lower town", "apples honey farmers", "swallows april", "noon"):
        hits = notes.search(query, k=10, mode=mode, highlight=True)
        assert hits
        for h in hits:
            assert 1 <= len(h.highlights) <= 2
            assert_whole_sentences(h)


def test_lexical_highlights_use_term_overlap(notes: Index) -> None:
    hits = notes.search("apples honey river", k=5, mode="lexical", highlight=True)
    market = next(h for h in hits if h.text.startswith("Stalls opened"))
    sentence = "Farmers sold apples and honey."
    a = market.text.index(sentence)
    # "apples honey" (2 terms) beats "river breeze" (1 term); the margin keeps only the best.
    assert market.highlights == [(a, a + len(sentence))]


@pytest.mark.parametrize("mode", MODES)
def test_highlight_false_gives_no_spans(notes: Index, mode: str) -> None:
    hits = notes.search("river flooded lower town", k=5, mode=mode, highlight=False)
    assert hits
    assert all(h.highlights == [] for h in hits)


# --------------------------------------------------------------------------- migration


def test_a_schema_1_index_is_upgraded_on_open(tmp_path: Path, corpus: Path) -> None:
    folder = tmp_path / "index"
    with Index.open(folder, create=True, embedder=FakeEmbedder()) as index:
        index.add([corpus])
        before = index.search("river rain", k=3, mode="dense", collapse=False)
    con = sqlite3.connect(folder / "semsearch.db")
    try:
        con.execute("DROP TRIGGER passages_fts_insert")
        con.execute("DROP TRIGGER passages_fts_delete")
        con.execute("DROP TABLE passages_fts")
        con.execute("DROP INDEX documents_date")
        con.execute("PRAGMA user_version = 1")
        con.commit()
    finally:
        con.close()

    with Index.open(folder, embedder=FakeEmbedder()) as index:
        hits = index.search("sourdough", k=5, mode="lexical")
        assert [h.text for h in hits] == ["A bakery selling sourdough bread opened downtown."]
        after = index.search("river rain", k=3, mode="dense", collapse=False)
        assert [h.passage_id for h in after] == [h.passage_id for h in before]
        hybrid = index.search("chess champion", k=2, mode="hybrid")
        assert hybrid[0].title == "Chess champion retires"

    passages, fts = counts(folder)
    assert passages == fts == 5
    con = sqlite3.connect(folder / "semsearch.db")
    try:
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    finally:
        con.close()
    assert {"passages_fts", "passages_fts_insert", "passages_fts_delete", "documents_date"} <= names

    # The triggers work after the upgrade: a new file is searchable by its words.
    article(corpus / "d.txt", "Lighthouse", ["The keeper polished the lighthouse lens."])
    with Index.open(folder, embedder=FakeEmbedder()) as index:
        index.add([corpus])
        assert [h.title for h in index.search("lighthouse", k=5, mode="lexical")] == ["Lighthouse"]
    passages, fts = counts(folder)
    assert passages == fts == 6


# --------------------------------------------------------------------------- score stability

SMALL_DEPTH = 60  # HYBRID_DEPTH in these tests, so a small collection runs past it


@pytest.fixture
def small_depth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search, "HYBRID_DEPTH", SMALL_DEPTH)


STABLE_VOCAB = [f"{a}{b}" for a in ("mar", "tel", "son", "pir", "dak") for b in "aeiou"]


@pytest.fixture(scope="module", params=["flat", "hnsw"])
def three_hundred(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Index]:
    """300 one-paragraph articles over 25 words: every query word is in about a third
    of them, so the dense and the lexical rankings both run past `SMALL_DEPTH`."""
    root = tmp_path_factory.mktemp("three-hundred")
    for i in range(300):
        rng = random.Random(1000 + i)
        text = " ".join(rng.choice(STABLE_VOCAB) for _ in range(8)) + f" number{i}."
        article(root / "docs" / f"a{i:03d}.txt", f"Note {i}", [text])
    index = Index.open(
        root / f"index-{request.param}",
        create=True,
        embedder=FakeEmbedder(),
        index_type=request.param,
    )
    index.add([root / "docs"])
    assert index.info().passages == 300
    yield index
    index.close()


@pytest.mark.usefixtures("small_depth")
@pytest.mark.parametrize("fusion", [DEFAULT_FUSION, Fusion(method="convex", alpha=0.5)])
@pytest.mark.parametrize("options", [{}, {"collapse": False}, {"by_article": True}])
def test_a_hybrid_score_is_the_same_for_every_k(
    three_hundred: Index, options: dict[str, bool], fusion: Fusion
) -> None:
    query = "mara tele sono pira"
    runs = {
        k: three_hundred.search(query, k=k, mode="hybrid", fusion=fusion, **options)
        for k in (5, 80, 150)
    }
    assert [len(h) for h in runs.values()] == [5, 80, 150]
    score = {k: {h.passage_id: h.score for h in hits} for k, hits in runs.items()}
    for k in (5, 80):
        for pid, s in score[k].items():
            assert score[150][pid] == s, f"passage {pid}: {s} at k={k}, {score[150][pid]} at k=150"
    # the smaller runs are the head of the larger one (up to the order of equal scores)
    ranked = {k: [h.score for h in hits] for k, hits in runs.items()}
    assert ranked[150][:5] == ranked[5] and ranked[150][:80] == ranked[80]
    scores = [h.score for h in runs[150]]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    if fusion.method == "convex":
        assert scores[-1] == 0.0  # past the top SMALL_DEPTH of both rankings: nothing from either
    else:
        assert scores[-1] > 0.0  # every passage has its own scores, wherever it ranks


def test_a_min_score_nothing_outside_can_reach_stops_fetching(
    three_hundred: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past a min-score above what the last candidate of each ranking scores, a deeper
    fetch cannot find more (the score grows with both): one round, and the same hits as
    the whole collection ranked."""
    query = "mara tele sono pira"
    everything = three_hundred.search(query, k=300, collapse=False)
    assert len(everything) == 300
    monkeypatch.setattr(search, "HYBRID_DEPTH", SMALL_DEPTH)
    depths: list[int] = []
    real = search.Searcher.candidates

    def counting(
        self: search.Searcher, text: str, qvec: np.ndarray, depth: int, allowed: object
    ) -> search.HybridCandidates:
        depths.append(depth)
        return real(self, text, qvec, depth, allowed)  # type: ignore[arg-type]

    monkeypatch.setattr(search.Searcher, "candidates", counting)
    cut = everything[9].score
    hits = three_hundred.search(query, k=50, collapse=False, min_score=cut)
    assert [(h.passage_id, h.score) for h in hits] == [
        (h.passage_id, h.score) for h in everything if h.score >= cut
    ]
    assert depths == [SMALL_DEPTH]
    depths.clear()
    low = everything[-1].score  # every passage passes: fetching goes on to the end
    assert len(three_hundred.search(query, k=300, collapse=False, min_score=low)) == 300
    assert depths[-1] >= 300


@pytest.mark.parametrize("options", [{}, {"by_article": True}])
def test_a_calibrated_score_does_not_depend_on_the_candidate_depth(
    three_hundred: Index, options: dict[str, bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same passage scores the same whether 60 or all 300 passages of each ranking
    are candidates (min-max scores would change with the lowest candidate)."""
    query = "mara tele sono pira"
    deep = {h.passage_id: h.score for h in three_hundred.search(query, k=150, **options)}
    monkeypatch.setattr(search, "HYBRID_DEPTH", SMALL_DEPTH)
    for k in (5, 150):
        shallow = three_hundred.search(query, k=k, **options)
        assert len(shallow) == k
        assert all(deep[h.passage_id] == h.score for h in shallow)


@pytest.mark.usefixtures("small_depth")
def test_min_score_means_the_same_for_every_k(three_hundred: Index) -> None:
    query = "mara tele sono pira"
    everything = three_hundred.search(query, k=300, mode="hybrid", collapse=False)
    threshold = everything[40].score
    options = {"mode": "hybrid", "collapse": False, "min_score": threshold}
    passing = {h.passage_id: h.score for h in three_hundred.search(query, k=300, **options)}
    assert 30 < len(passing) < 80
    for k in (5, 80, 150):
        hits = three_hundred.search(query, k=k, **options)
        assert len(hits) == min(k, len(passing))
        assert all(passing[h.passage_id] == h.score for h in hits)


def test_the_default_fusion_is_the_calibrated_one_a_caller_adjusts() -> None:
    """`Fusion(alpha=...)`, as the README shows, keeps the fitted logistic."""
    from semsearch.query.options import DEFAULT_FUSION

    assert Fusion() == DEFAULT_FUSION and DEFAULT_FUSION.method == "calibrated"
    assert (DEFAULT_FUSION.alpha, DEFAULT_FUSION.scale, DEFAULT_FUSION.shift) == (0.45, 13.96, 0.56)
    mine = Fusion(alpha=0.6)
    assert (mine.scale, mine.shift) == (DEFAULT_FUSION.scale, DEFAULT_FUSION.shift)
