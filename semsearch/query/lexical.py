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
) -> list[tuple[int, float]]:
    """The ``k`` best (passage id, BM25 score) pairs, best first; scores are positive.

    ``allowed`` restricts the search to those passage ids (filters are applied
    before ranking, so ``k`` results come back whenever ``k`` passages match).
    ``tokenizer`` is the table's (read from its schema when not given).
    """
    if k < 1:
        return []
    matched, scanned = split_terms(query, tokenizer or table_tokenizer(db))
    if not (matched or scanned):
        return []
    if allowed is not None and len(allowed) == 0:
        return []
    if not matched:
        ranked = _scan(db, scanned, allowed)
        return ranked[:k]
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
class _Scan:
    """One reading of every passage for a set of substrings: their idfs, the passages'
    scores (those holding none left out)."""

    idf: list[float]
    scores: dict[int, float]


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
    found: list[tuple[int, int, list[int]]] = []
    holding = [0] * len(terms)
    for rowid, body in db.execute("SELECT rowid, body FROM passages_fts"):
        text = str(body).lower()
        total += 1
        length += len(text)
        counts = [text.count(t) for t in terms]
        if any(counts):
            found.append((int(rowid), len(text), counts))
            for n, f in enumerate(counts):
                holding[n] += f > 0
    avgdl = length / total if total else 1.0
    idf = [_idf(total, n) for n in holding]
    scores = {}
    for rowid, size, counts in found:
        norm = K1 * (1 - B + B * size / avgdl)
        scores[rowid] = sum(
            w * f * (K1 + 1) / (f + norm) for w, f in zip(idf, counts, strict=True) if f
        )
    scan = _Scan(idf, scores)
    _SCANS[key] = scan
    while len(_SCANS) > _SCANS_KEPT:
        _SCANS.popitem(last=False)
    return scan


def _scan(
    db: sqlite3.Connection, terms: Sequence[str], allowed: Collection[int] | None
) -> list[tuple[int, float]]:
    """`_scan_all`'s passages (those of ``allowed`` only, when given), best first."""
    scores = _scan_all(db, terms).scores
    if allowed is None:
        pairs = list(scores.items())
    else:
        pairs = [(int(i), scores[int(i)]) for i in allowed if int(i) in scores]
    pairs.sort(key=lambda r: (-r[1], r[0]))
    return pairs


def scores_of(
    db: sqlite3.Connection, query: str, ids: Iterable[int], tokenizer: str | None = None
) -> dict[int, float]:
    """The BM25 score of each of ``ids`` for ``query`` (0.0 for a passage holding no term).

    The same score `search` gives the passage, whatever else matches: FTS5's
    bm25() takes its statistics from the whole table, not from the rows asked for.
    """
    wanted = sorted({int(i) for i in ids})
    out = dict.fromkeys(wanted, 0.0)
    matched, scanned = split_terms(query, tokenizer or table_tokenizer(db))
    if not wanted or not (matched or scanned):
        return out
    if not matched:
        out.update(_scan(db, scanned, wanted))
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


def idfs(db: sqlite3.Connection, query: str, tokenizer: str | None = None) -> list[float]:
    """The idf FTS5's bm25() gives each term of ``query``, in `query_terms` order (the terms
    `search` looks for with this tokenizer)."""
    matched, scanned = split_terms(query, tokenizer or table_tokenizer(db))
    if scanned:
        return _scan_all(db, scanned).idf
    if not matched:
        return []
    total = int(db.execute("SELECT count(*) FROM passages_fts_docsize").fetchone()[0])
    out = []
    for term in matched:
        holding = int(
            db.execute(
                "SELECT count(*) FROM passages_fts WHERE passages_fts MATCH ?", (_phrase(term),)
            ).fetchone()[0]
        )
        out.append(_idf(total, holding))
    return out


def bound(db: sqlite3.Connection, query: str, tokenizer: str | None = None) -> float:
    """What no passage's BM25 for ``query`` reaches: ``(K1 + 1) * sum(idf)``.

    A passage holding every term of the query infinitely often would score it
    (each term's share ``f * (K1 + 1) / (f + K1 * ...)`` tends to ``K1 + 1``);
    any real passage scores less. It depends on the query and on how many
    passages hold each of its terms, never on which passages a search returns.
    0.0 when the query has no term.
    """
    return (K1 + 1) * sum(idfs(db, query, tokenizer))
