"""Lexical (BM25) search over the same passages, with SQLite FTS5.

The FTS5 table lives in the index database and is kept in step by triggers on
the passages table, so it changes in the very transaction that changes the
passages and the manifest: it cannot drift from them. Its text is the article
title and the passage. Its tokenizer is chosen per index (`TOKENIZERS`,
``--lexical``; `language.choose_tokenizer` for ``auto``): ``porter`` (English:
FTS5's Porter stemmer does the stemming, and English stop words are dropped
from the query, FTS5 having no stop-word list of its own), ``unicode61`` (words
of any language, accents folded, no stemming) or ``trigram`` (any substring of
three characters, for scripts written without spaces: see `split_terms`).
Every function here reads which one the table has from its schema.

Why FTS5 rather than bm25s: measured on SciFact test (title + text, k1=1.2,
b=0.75), FTS5 gave nDCG@10 0.682 and bm25s 0.686; on Cranfield 0.361 and 0.373.
bm25s cannot update an index in place (every change rebuilds it, and its files
would need their own atomic swap), while FTS5 follows every add and delete
inside the SQLite transaction for free. The small quality gap did not pay for
that.
"""

from __future__ import annotations

import math
import re
import sqlite3
from collections import OrderedDict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

# Common English function words; dropped from queries only (see module doc).
STOP_WORDS = frozenset(
    {
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
    }
)

_WORD = re.compile(r"\w+", re.UNICODE)

# The tokenizers an index's lexical table may use (`--lexical`), and what FTS5 is told for
# each. Accents are folded by the word tokenizers; FTS5's trigram tokenizer folds them only
# from SQLite 3.45 (`trigram_spec`), and ignores case.
TOKENIZERS = ("porter", "unicode61", "trigram")
LEXICAL_CHOICES = ("auto", *TOKENIZERS)
DEFAULT_TOKENIZER = "porter"  # what an index without a recorded tokenizer has
FTS_TOKENIZER = "porter unicode61 remove_diacritics 2"
TRIGRAM_MIN = 3  # FTS5's trigram tokenizer matches strings of at least 3 characters
SQLITE_MAX_INT = 2**63 - 1
# FTS5's bm25() with its default parameters: a term found f times in a passage of length
# D adds idf * f * (K1 + 1) / (f + K1 * (1 - B + B * D / avgdl)), with
# idf = log((N - n + 0.5) / (n + 0.5)) over N passages, n of which hold the term, and at
# least MIN_IDF (FTS5's floor for terms in more than half of the passages).
K1 = 1.2
B = 0.75
MIN_IDF = 1e-6


def trigram_spec() -> str:
    """FTS5's trigram tokenizer, folding accents where this SQLite can (3.45 and later)."""
    if sqlite3.sqlite_version_info >= (3, 45, 0):
        return "trigram remove_diacritics 1"
    return "trigram"


def fts_spec(tokenizer: str) -> str:
    """The ``tokenize=`` argument of the FTS5 table for one of `TOKENIZERS`."""
    if tokenizer == "porter":
        return FTS_TOKENIZER
    if tokenizer == "unicode61":
        return "unicode61 remove_diacritics 2"
    if tokenizer == "trigram":
        return trigram_spec()
    raise ValueError(f"unknown lexical tokenizer {tokenizer!r}")


_TOKENIZE = re.compile(r"tokenize\s*=\s*['\"]\s*(\w+)", re.IGNORECASE)


def table_tokenizer(db: sqlite3.Connection) -> str:
    """Which of `TOKENIZERS` the index's FTS5 table was made with (read from its schema)."""
    row = db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'passages_fts'"
    ).fetchone()
    found = _TOKENIZE.search(row[0]) if row and row[0] else None
    words = found.group(1).lower() if found else DEFAULT_TOKENIZER
    return words if words in TOKENIZERS else DEFAULT_TOKENIZER


def _words(query: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(query)]


def _has_no_space_letter(word: str) -> bool:
    from .language import no_space_letter  # (language imports this module)

    return any(no_space_letter(c) for c in word)


def _bigrams(word: str) -> list[str]:
    """A run of a script without spaces (``北京大学``: a whole clause, to a word tokenizer) as
    its overlapping 2-character pieces (北京 京大 大学): most Chinese words are two
    characters, so a query's pieces meet a passage's words wherever its clause is cut."""
    if len(word) <= 2:
        return [word]
    return [word[i : i + 2] for i in range(len(word) - 1)]


def split_terms(query: str, tokenizer: str = DEFAULT_TOKENIZER) -> tuple[list[str], list[str]]:
    """(terms FTS5 MATCH looks for, terms looked for as substrings instead), without repeats.

    porter: the words less English stop words (all of them when nothing else is
    left: "the who" still searches). unicode61: every word (the index need not be
    English; BM25's idf weighs common words down). trigram: every word of 3
    characters or more, matched as a substring by FTS5 (shorter words cannot be
    matched by trigrams: left out, unless the query has nothing else, ``AI``). A
    query holding Chinese, Japanese, Korean or Thai is cut into overlapping
    2-character pieces (other words kept whole) and all are looked for as
    substrings: BM25 then ranks a passage by how many of the query's pieces it
    holds and how rare they are, wherever the query's clause is cut into words.
    Substrings are found by `search` reading the passages' text (see `_scan_all`).
    """
    words = _words(query)
    if tokenizer == "porter":
        kept = [w for w in words if w not in STOP_WORDS] or words
        return list(dict.fromkeys(kept)), []
    if tokenizer != "trigram":
        return list(dict.fromkeys(words)), []
    if any(_has_no_space_letter(w) for w in words):
        pieces = [p for w in words for p in (_bigrams(w) if _has_no_space_letter(w) else [w])]
        return [], list(dict.fromkeys(pieces))
    long = [w for w in words if len(w) >= TRIGRAM_MIN]
    if long:
        return list(dict.fromkeys(long)), []
    return [], list(dict.fromkeys(words))


def query_terms(query: str, tokenizer: str = DEFAULT_TOKENIZER) -> list[str]:
    """The words of a query that BM25 should look for, in order, without repeats."""
    matched, scanned = split_terms(query, tokenizer)
    return matched + scanned


def _phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def match_expression(query: str, tokenizer: str = DEFAULT_TOKENIZER) -> str | None:
    """An FTS5 MATCH expression: any of the query's terms (BM25 ranks by how many and how rare);
    None when the query has no term FTS5 can match."""
    terms = split_terms(query, tokenizer)[0]
    if not terms:
        return None
    return " OR ".join(_phrase(t) for t in terms)


def search(
    db: sqlite3.Connection,
    query: str,
    k: int,
    allowed: Collection[int] | None = None,
    tokenizer: str | None = None,
    stats: Stats | None = None,
) -> list[tuple[int, float]]:
    """The ``k`` best (passage id, BM25 score) pairs, best first; scores are positive.

    ``allowed`` restricts the search to those passage ids (filters are applied
    before ranking, so ``k`` results come back whenever ``k`` passages match).
    ``tokenizer`` is the table's (read from its schema when not given).
    ``stats`` (several indexes' `Stats` summed) scores with those statistics in place
    of this index's own; every passage holding a term is then scored (see `_rescored`).
    """
    if k < 1:
        return []
    matched, scanned = split_terms(query, tokenizer or table_tokenizer(db))
    if not (matched or scanned):
        return []
    if allowed is not None and len(allowed) == 0:
        return []
    if not matched:
        ranked = _scan(db, scanned, allowed, stats)
        return ranked[:k]
    if stats is not None:
        pairs = sorted(_rescored(db, matched, allowed, stats).items(), key=lambda r: (-r[1], r[0]))
        return pairs[:k]
    expr = " OR ".join(_phrase(t) for t in matched)
    k = min(k, SQLITE_MAX_INT)  # LIMIT takes a 64-bit integer; no more rows exist anyway
    if allowed is None:
        rows = db.execute(
            "SELECT rowid, bm25(passages_fts) FROM passages_fts WHERE passages_fts MATCH ? "
            "ORDER BY bm25(passages_fts) LIMIT ?",
            (expr, k),
        ).fetchall()
    else:
        # The allowed ids travel with the statement (a JSON array), not in a table that
        # another query on the same connection could rewrite meanwhile. `+rowid` keeps the
        # IN away from FTS5, which would run the whole MATCH again for every id (2,000
        # allowed ids on BBC News: 564 ms, against 0.9 ms for one pass over the matches).
        rows = db.execute(
            "SELECT rowid, bm25(passages_fts) FROM passages_fts WHERE passages_fts MATCH ? "
            "AND +rowid IN (SELECT value FROM json_each(?)) ORDER BY bm25(passages_fts) LIMIT ?",
            (expr, _id_list(allowed), k),
        ).fetchall()
    return [(int(r), -float(s)) for r, s in rows]


def _id_list(ids: Collection[int]) -> str:
    """Ids as a JSON array for ``json_each``."""
    return "[" + ",".join(str(int(i)) for i in ids) + "]"


@dataclass(frozen=True)
class Stats:
    """The collection statistics BM25 scores a query with: how many passages there are,
    their total length, and how many hold each of the query's terms (`query_terms` order).

    `stats` reads them from one index. Summed over several indexes (``a + b``) they
    are those of one index holding all their passages, and `search`, `scores_of` and
    `bound` given them score each index's passages as that one index would: BM25 scores
    of different indexes become comparable. Lengths are in tokens (in characters for
    terms looked for as substrings, as `_scan_all` counts them).
    """

    passages: int
    length: int
    holding: tuple[int, ...]

    def __add__(self, other: Stats) -> Stats:
        if len(self.holding) != len(other.holding):
            raise ValueError("statistics of different terms cannot be summed")
        return Stats(
            self.passages + other.passages,
            self.length + other.length,
            tuple(a + b for a, b in zip(self.holding, other.holding, strict=True)),
        )

    @property
    def idf(self) -> list[float]:
        return [_idf(self.passages, n) for n in self.holding]

    @property
    def avgdl(self) -> float:
        return self.length / self.passages if self.passages else 1.0


def _bm25(idf: Sequence[float], counts: Sequence[int], size: int, avgdl: float) -> float:
    """bm25()'s formula (see `K1`): a passage of ``size`` holding each term ``counts`` times."""
    norm = K1 * (1 - B + B * size / avgdl)
    return sum(w * f * (K1 + 1) / (f + norm) for w, f in zip(idf, counts, strict=True) if f)


@dataclass(frozen=True)
class _Scan:
    """One reading of every passage for a set of substrings: their statistics, each
    passage holding any with its length and counts, and the scores those give."""

    stats: Stats
    found: dict[int, tuple[int, list[int]]]  # passage id -> (length, count of each term)
    scores: dict[int, float]

    @property
    def idf(self) -> list[float]:
        return self.stats.idf

    def rescored(self, stats: Stats | None) -> dict[int, float]:
        """The passages' scores with ``stats`` (several indexes'), or their own."""
        if stats is None:
            return self.scores
        idf, avgdl = stats.idf, stats.avgdl
        return {i: _bm25(idf, counts, size, avgdl) for i, (size, counts) in self.found.items()}


_SCANS: OrderedDict[tuple[object, ...], _Scan] = OrderedDict()  # the latest few, by content
_SCANS_KEPT = 4


def _scan_all(db: sqlite3.Connection, terms: Sequence[str]) -> _Scan:
    """BM25 of every passage holding any of ``terms`` as a substring (pieces of CJK, words
    too short for trigrams: a trigram index cannot find strings under 3 characters), by
    reading every passage's text once (about 35 ms per 10,000 passages, see
    benchmarks/lexical_tokenizers.py).

    The score is bm25()'s formula with the term's occurrences as ``f`` and lengths
    in characters (a trigram index counts a passage's length in trigrams, about one
    per character), so `bound` holds for it as for FTS5's own scores. A query's
    search, bound and scores_of share one reading: passage ids are never reused,
    so the count and the highest id tell whether the passages changed.
    """
    path = db.execute("PRAGMA database_list").fetchone()[2]
    count, top = db.execute("SELECT count(*), max(id) FROM passages_fts_docsize").fetchone()
    key = (id(db), path, count, top, tuple(terms))
    cached = _SCANS.get(key)
    if cached is not None:
        _SCANS.move_to_end(key)
        return cached
    total = length = 0
    found: dict[int, tuple[int, list[int]]] = {}
    holding = [0] * len(terms)
    for rowid, body in db.execute("SELECT rowid, body FROM passages_fts"):
        text = str(body).lower()
        total += 1
        length += len(text)
        counts = [text.count(t) for t in terms]
        if any(counts):
            found[int(rowid)] = (len(text), counts)
            for n, f in enumerate(counts):
                holding[n] += f > 0
    stats = Stats(total, length, tuple(holding))
    idf, avgdl = stats.idf, stats.avgdl
    scores = {i: _bm25(idf, counts, size, avgdl) for i, (size, counts) in found.items()}
    scan = _Scan(stats, found, scores)
    _SCANS[key] = scan
    while len(_SCANS) > _SCANS_KEPT:
        _SCANS.popitem(last=False)
    return scan


def _scan(
    db: sqlite3.Connection,
    terms: Sequence[str],
    allowed: Collection[int] | None,
    stats: Stats | None = None,
) -> list[tuple[int, float]]:
    """`_scan_all`'s passages (those of ``allowed`` only, when given), best first, scored
    with ``stats`` when given (see `Stats`)."""
    scores = _scan_all(db, terms).rescored(stats)
    if allowed is None:
        pairs = list(scores.items())
    else:
        pairs = [(int(i), scores[int(i)]) for i in allowed if int(i) in scores]
    pairs.sort(key=lambda r: (-r[1], r[0]))
    return pairs


def scores_of(
    db: sqlite3.Connection,
    query: str,
    ids: Iterable[int],
    tokenizer: str | None = None,
    stats: Stats | None = None,
) -> dict[int, float]:
    """The BM25 score of each of ``ids`` for ``query`` (0.0 for a passage holding no term).

    The same score `search` gives the passage, whatever else matches: FTS5's
    bm25() takes its statistics from the whole table, not from the rows asked for.
    ``stats``: as `search`'s.
    """
    wanted = sorted({int(i) for i in ids})
    out = dict.fromkeys(wanted, 0.0)
    matched, scanned = split_terms(query, tokenizer or table_tokenizer(db))
    if not wanted or not (matched or scanned):
        return out
    if not matched:
        out.update(_scan(db, scanned, wanted, stats))
        return out
    if stats is not None:
        out.update(_rescored(db, matched, wanted, stats))
        return out
    rows = db.execute(
        "SELECT rowid, bm25(passages_fts) FROM passages_fts WHERE passages_fts MATCH ? "
        "AND +rowid IN (SELECT value FROM json_each(?))",  # one pass: see `search`
        (" OR ".join(_phrase(t) for t in matched), _id_list(wanted)),
    ).fetchall()
    out.update((int(r), -float(s)) for r, s in rows)
    return out


def _idf(total: int, holding: int) -> float:
    return max(math.log((total - holding + 0.5) / (holding + 0.5)), MIN_IDF)


def _total_tokens(db: sqlite3.Connection, passages: int) -> int:
    """The tokens of every passage, all columns: what FTS5's bm25() divides by the passage
    count for the average length. Read from FTS5's averages record (row 1 of its data
    table: the row count, then each column's total, as varints); summed from the
    passages' sizes when that record is missing or counts other rows."""
    row = db.execute("SELECT block FROM passages_fts_data WHERE id = 1").fetchone()
    totals = _varints(bytes(row[0])) if row and row[0] else []
    if totals and totals[0] == passages:
        return sum(totals[1:])
    return sum(
        sum(_varints(bytes(sz))) for (sz,) in db.execute("SELECT sz FROM passages_fts_docsize")
    )


def _varints(blob: bytes) -> list[int]:
    """SQLite's varints (big-endian, 7 bits a byte, the ninth byte whole), one after another."""
    out, i = [], 0
    while i < len(blob):
        value = 0
        for n in range(9):
            byte = blob[i]
            i += 1
            if n == 8:
                value = (value << 8) | byte
                break
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        out.append(value)
    return out


def stats(db: sqlite3.Connection, query: str, tokenizer: str | None = None) -> Stats:
    """This index's `Stats` for ``query``: its passage count, their total length and how many
    hold each term `search` looks for (sum those of several indexes for theirs)."""
    matched, scanned = split_terms(query, tokenizer or table_tokenizer(db))
    if scanned:
        return _scan_all(db, scanned).stats
    return _matched_stats(db, matched)


def _matched_stats(db: sqlite3.Connection, terms: Sequence[str]) -> Stats:
    """`Stats` of terms FTS5 matches (their total length only read when there are some)."""
    total = int(db.execute("SELECT count(*) FROM passages_fts_docsize").fetchone()[0])
    holding = tuple(_holding(db, t) for t in terms)
    return Stats(total, _total_tokens(db, total) if terms else 0, holding)


def _rescored(
    db: sqlite3.Connection, terms: Sequence[str], ids: Collection[int] | None, given: Stats
) -> dict[int, float]:
    """The BM25 of the passages (of ``ids``, else all) holding any of ``terms`` (matched by
    FTS5), with the statistics ``given`` in place of the index's own.

    FTS5 tells a passage's score, not how often it holds a term, so each term is
    searched for alone: its score there is ``idf * f * (K1 + 1) / (f + norm)`` with the
    index's own idf and the norm of the passage's length (from its stored size), which
    gives ``f`` back (a whole number: rounded). The passage is then scored with
    ``given``'s idfs and average length. That reads every passage holding a term, as
    FTS5's own ranking does, plus one row of sizes for each.
    """
    own = _matched_stats(db, terms)
    idf, avgdl = own.idf, own.avgdl
    listed = None if ids is None else _id_list(ids)
    shares: dict[int, list[float]] = {}
    for n, term in enumerate(terms):
        if listed is None:
            rows = db.execute(
                "SELECT rowid, bm25(passages_fts) FROM passages_fts WHERE passages_fts MATCH ?",
                (_phrase(term),),
            ).fetchall()
        else:
            rows = db.execute(
                "SELECT rowid, bm25(passages_fts) FROM passages_fts WHERE passages_fts MATCH ? "
                "AND +rowid IN (SELECT value FROM json_each(?))",
                (_phrase(term), listed),
            ).fetchall()
        for rowid, score in rows:
            shares.setdefault(int(rowid), [0.0] * len(terms))[n] = -float(score) / idf[n]
    if not shares:
        return {}
    sizes = {
        int(i): sum(_varints(bytes(sz)))
        for i, sz in db.execute(
            "SELECT id, sz FROM passages_fts_docsize WHERE id IN (SELECT value FROM json_each(?))",
            (_id_list(shares),),
        )
    }
    out = {}
    for rowid, share in shares.items():
        size = sizes[rowid]
        norm = K1 * (1 - B + B * size / avgdl)
        counts = [round(g * norm / (K1 + 1 - g)) if g > 0 else 0 for g in share]
        out[rowid] = _bm25(given.idf, counts, size, given.avgdl)
    return out


def _holding(db: sqlite3.Connection, term: str) -> int:
    """How many passages FTS5 finds holding ``term``."""
    found = db.execute(
        "SELECT count(*) FROM passages_fts WHERE passages_fts MATCH ?", (_phrase(term),)
    ).fetchone()
    return int(found[0])


def idfs(
    db: sqlite3.Connection, query: str, tokenizer: str | None = None, stats_: Stats | None = None
) -> list[float]:
    """The idf FTS5's bm25() gives each term of ``query``, in `query_terms` order (the terms
    `search` looks for with this tokenizer); with ``stats_``, the idfs those give."""
    if stats_ is not None:
        return stats_.idf
    return stats(db, query, tokenizer).idf


def bound(
    db: sqlite3.Connection, query: str, tokenizer: str | None = None, stats: Stats | None = None
) -> float:
    """What no passage's BM25 for ``query`` reaches: ``(K1 + 1) * sum(idf)``.

    A passage holding every term of the query infinitely often would score it
    (each term's share ``f * (K1 + 1) / (f + K1 * ...)`` tends to ``K1 + 1``);
    any real passage scores less. It depends on the query and on how many
    passages hold each of its terms, never on which passages a search returns.
    0.0 when the query has no term. ``stats``: as `search`'s.
    """
    return (K1 + 1) * sum(idfs(db, query, tokenizer, stats))
