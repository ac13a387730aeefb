"""Typo tolerance: close known words for the query words the lexical index does not know.

A query word is *unknown* when the FTS5 vocabulary (an ``fts5vocab`` table over
``passages_fts``) has no row for it as the index's tokenizer reads it (with the
Porter tokenizer: its stem). With a stemmer, a word held by fewer than
`MIN_DOCS` passages also counts as unknown when none of them holds it as typed:
"goverment" stems to ``gover``, which BBC News holds once, as "governess".
For each unknown word:

1. candidates are the stems of every word one edit (Damerau-Levenshtein:
   insert, delete, substitute, swap two neighbours) from it that the
   vocabulary holds, and for words of `LONG_WORD` letters or more the terms
   of the same first letter within two edits of the word or of its stem;
2. with a stemmer the vocabulary holds stems (``parad``, ``elect``), which are
   neither words to show nor fair to compare with what was typed: each
   candidate's surface forms are read from passages that hold it, and its
   distance is the typed word's to the closest form. That also turns away
   stems that only a nonsense edit reaches ("coverment" stems to ``cover``,
   whose forms are cover, covered, ...);
3. the best candidate, fewest edits first and then most passages, is taken
   when it is within `max_edits` of the word and `MIN_DOCS` passages hold it.

The corrected query replaces the typed one for every retriever. The typed
word is not searched for as well: a word is only corrected when no passage
holds it as typed, so it could find nothing of its own, and BM25 would count
it in the query's bound (`lexical.bound`: a term no passage holds has the
highest idf), shrinking the share of every real match; a rare stem that it
shares by accident ("governess") would even outrank the correction.

Words the index knows are never changed, nor words shorter than `SHORT_WORD`
letters, words with digits, acronyms and names written with a capital inside
(``EMAs``, ``iTregs``) or capitalised in a hyphenated name, or anything when
the tokenizer is ``trigram`` (it matches substrings already, and its
vocabulary is of three-character pieces, not words).

Words are stemmed by SQLite's own tokenizer: they are read through an FTS5
table in the connection's ``temp`` schema made with the index's tokenizer, so
a word is stemmed exactly as the index stems it. Only the ``temp`` schema is
written (it belongs to the connection); the index's database is only read, in
the caller's read transaction.

Checking that a query's words are known costs one indexed ``fts5vocab``
look-up per word. Correcting one needs the whole vocabulary (reading it
through ``fts5vocab`` costs about 0.2 s on BBC News' 20,000 terms, and 0.1 ms
a term looked up one by one): `Vocabulary` holds it, and `Speller` keeps the
one of the newest generation of an index, so a program or server that asks
again pays a few milliseconds.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import unicodedata
import zlib
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field

from . import lexical

SHORT_WORD = 4  # words shorter than this are never corrected ("teh" has too many neighbours)
LONG_WORD = 8  # words this long may be two edits away from the word meant
MIN_DOCS = 3  # a correction must be held by this many passages
MAX_WORD = 40  # longer "words" (hashes, run-together text) are left alone
_CANDIDATES = 12  # stems whose surface forms are read, at most, per unknown word
_INSTANCES = 40  # occurrences of a stem read to find its surface forms
_ALPHABET = "abcdefghijklmnopqrstuvwxyz"

_VOCAB = "semsearch_vocab"  # temp fts5vocab tables over passages_fts
_INSTANCE = "semsearch_vocab_instance"
_STEM = "semsearch_stem"  # temp fts5 table with the index's tokenizer
_TOKENIZE = re.compile(r"tokenize\s*=\s*(['\"])(.*?)\1", re.IGNORECASE | re.DOTALL)
_LETTERS = re.compile(r"[^\W\d_]+")


@dataclass(frozen=True)
class Correction:
    """One word of a query replaced by a known word."""

    word: str  # as typed, lowercased
    replacement: str  # a word of the indexed text, lowercased and without accents
    term: str  # the replacement as the lexical index holds it (its stem, with Porter's)
    edits: int  # Damerau-Levenshtein distance between ``word`` and ``replacement``
    passages: int  # passages that hold ``term``


@dataclass(frozen=True)
class Spelling:
    """A query and what its unknown words were corrected to."""

    text: str  # the query with every correction made, each in the case it was typed in
    corrections: tuple[Correction, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.corrections)


def max_edits(word: str) -> int:
    """How many edits from ``word`` a correction may be: 0 (short words), 1, or 2 for long
    words."""
    if len(word) < SHORT_WORD:
        return 0
    return 2 if len(word) >= LONG_WORD else 1


def edit_distance(a: str, b: str, limit: int | None = None) -> int:
    """The Damerau-Levenshtein distance of ``a`` and ``b``, as optimal string alignment:
    each insertion, deletion, substitution, or swap of two neighbouring characters
    counts one, and no substring is edited twice ("ca" to "abc" is 3, not 2).

    With ``limit``, any distance above it is returned as ``limit + 1``.
    """
    from rapidfuzz.distance import OSA  # (imported when a word needs correcting: 20-90 ms)

    if limit is None:
        return int(OSA.distance(a, b))
    return int(OSA.distance(a, b, score_cutoff=limit))


def edits1(word: str) -> set[str]:
    """Every string one edit from ``word`` (inserting or substituting a-z or the word's own
    letters)."""
    letters = sorted(set(_ALPHABET) | set(word))
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    out = {a + b[1:] for a, b in splits if b}
    out |= {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    out |= {a + c + b[1:] for a, b in splits if b for c in letters}
    out |= {a + c + b for a, b in splits for c in letters}
    out.discard(word)
    return out


def fold(text: str) -> str:
    """``text`` lowercased and without accents, as ``unicode61 remove_diacritics`` reads it."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


# --------------------------------------------------------------------------- tokenizers


def tokenizer_of(db: sqlite3.Connection, manifest_value: object = None) -> str:
    """The tokenizer of ``passages_fts`` as FTS5 takes it (``porter unicode61 ...``).

    A manifest's ``lexical_tokenizer`` (``manifest_value``: ``porter``, ``unicode61``,
    ``trigram`` or a full FTS5 tokenizer) names it when given; otherwise the table's
    own definition does, and Porter's (semsearch's first) when neither says.
    """
    if isinstance(manifest_value, str) and manifest_value.strip():
        name = manifest_value.strip()
        # the same spec the table was made with (`lexical.fts_spec`), so words are folded
        # as the index folds them ("unicode61" alone would keep accents)
        return lexical.fts_spec(name) if name in lexical.TOKENIZERS else name
    row = db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'passages_fts'"
    ).fetchone()
    if row and row[0]:
        found = _TOKENIZE.search(str(row[0]))
        if found:
            return found.group(2).strip()
    return lexical.FTS_TOKENIZER


def corrects(tokenizer: str) -> bool:
    """Whether typos are corrected for an index with this tokenizer (not for trigram, which
    matches any substring already)."""
    words = tokenizer.split()
    return bool(words) and words[0] != "trigram"


def _stems(tokenizer: str) -> bool:
    return tokenizer.split()[:1] == ["porter"]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class _Reader:
    """The temp tables that one connection reads the index's vocabulary through."""

    def __init__(self, db: sqlite3.Connection, tokenizer: str) -> None:
        self.db = db
        self.stemming = _stems(tokenizer)
        # one stemming table per tokenizer: a connection may read indexes built with others
        self.stem_table = f"{_STEM}_{zlib.crc32(tokenizer.encode()):08x}"
        for sql in (
            f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{_VOCAB} "
            "USING fts5vocab(main, 'passages_fts', 'row')",
            f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{_INSTANCE} "
            "USING fts5vocab(main, 'passages_fts', 'instance')",
            f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{self.stem_table} "
            f"USING fts5(w, tokenize={_quote(tokenizer)})",
            f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{self.stem_table}_instance "
            f"USING fts5vocab(temp, {_quote(self.stem_table)}, 'instance')",
        ):
            db.execute(sql)

    def terms_of(self, words: Sequence[str]) -> list[list[str]]:
        """Each of ``words`` (letters only) as the index's tokenizer reads it: its terms."""
        if not words:
            return []
        table = self.stem_table
        self.db.execute(f"DELETE FROM temp.{table}")
        # one row: inserting a row costs far more than a word in it
        self.db.execute(f"INSERT INTO temp.{table}(rowid, w) VALUES (1, ?)", (" ".join(words),))
        terms = [
            str(r[0])
            for r in self.db.execute(f"SELECT term FROM temp.{table}_instance ORDER BY offset")
        ]
        out: list[list[str]]
        if len(terms) == len(words):
            out = [[t] for t in terms]
        else:  # some word is not one token: read them one by one
            self.db.execute(f"DELETE FROM temp.{table}")
            self.db.executemany(
                f"INSERT INTO temp.{table}(rowid, w) VALUES (?, ?)", enumerate(words)
            )
            out = [[] for _ in words]
            for doc, term in self.db.execute(
                f"SELECT doc, term FROM temp.{table}_instance ORDER BY doc, offset"
            ):
                out[int(doc)].append(str(term))
        self.db.execute(f"DELETE FROM temp.{table}")
        return out

    def passages_holding(self, terms: Iterable[str]) -> dict[str, int]:
        """How many passages hold each of ``terms`` (only those some passage holds)."""
        wanted = sorted(set(terms))
        out: dict[str, int] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for term, docs in self.db.execute(
                f"SELECT term, doc FROM temp.{_VOCAB} WHERE term IN ({marks})", chunk
            ):
                out[str(term)] = int(docs)
        return out

    def vocabulary(self) -> dict[str, int]:
        """Every term of the index, with how many passages hold it."""
        return {str(t): int(d) for t, d in self.db.execute(f"SELECT term, doc FROM temp.{_VOCAB}")}

    def surface_forms(self, term: str) -> Counter[str]:
        """The words (folded) that the index reads as ``term``, by how often a sample of the
        passages holding it has them."""
        if not self.stemming:
            return Counter({term: 1})
        docs = sorted(
            {
                int(r[0])
                for r in self.db.execute(
                    f"SELECT doc FROM temp.{_INSTANCE} WHERE term = ? LIMIT ?",
                    (term, _INSTANCES),
                )
            }
        )
        if not docs:
            return Counter()
        marks = ",".join("?" * len(docs))
        words: Counter[str] = Counter()
        # a stem keeps the start of its word (Porter changes only the end): only words
        # that start alike can be its forms, and the tokenizer says which are
        head = term[: max(2, len(term) - 2)]
        for (body,) in self.db.execute(
            f"SELECT body FROM passages_fts WHERE rowid IN ({marks})", docs
        ):
            words.update(w for w in _LETTERS.findall(fold(str(body))) if w.startswith(head))
        if not words:
            return Counter()
        forms = list(words)
        terms = self.terms_of(forms)
        return Counter({f: words[f] for f, t in zip(forms, terms, strict=True) if t == [term]})


# --------------------------------------------------------------------------- vocabulary


@dataclass
class Vocabulary:
    """The terms of one generation of an index, with how many passages hold each."""

    passages: dict[str, int]
    by_start: dict[tuple[str, int], list[str]] = field(default_factory=dict)  # (letter, length)
    _forms: dict[str, Counter[str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not self.by_start:
            for term in sorted(self.passages):
                self.by_start.setdefault((term[:1], len(term)), []).append(term)

    def near(self, words: Sequence[str], limit: int, low: int, high: int) -> set[str]:
        """The terms of ``low``..``high`` characters starting with the first letter of
        ``words[0]`` that are within ``limit`` edits of one of ``words``."""
        from rapidfuzz import process
        from rapidfuzz.distance import OSA

        letter = words[0][:1]
        pool = [t for n in range(max(low, 1), high + 1) for t in self.by_start.get((letter, n), [])]
        out: set[str] = set()
        for word in words:
            found = process.extract(word, pool, scorer=OSA.distance, score_cutoff=limit, limit=None)
            out.update(str(choice) for choice, _score, _pos in found)
        return out

    def forms(self, reader: _Reader, term: str) -> Counter[str]:
        """`_Reader.surface_forms`, remembered (they are the same for the whole generation)."""
        found = self._forms.get(term)
        if found is None:
            found = reader.surface_forms(term)
            with self._lock:
                self._forms[term] = found
        return found


class Speller:
    """Keeps the `Vocabulary` of the newest generation of one index, for the queries that
    need it (one per `Index`; thread-safe)."""

    def __init__(self) -> None:
        self._kept: tuple[Hashable, Vocabulary] | None = None
        self._lock = threading.Lock()

    def vocabulary(self, key: Hashable, load: Callable[[], dict[str, int]]) -> Vocabulary:
        """The vocabulary of the generation ``key`` names, loaded with ``load`` once."""
        kept = self._kept
        if kept is not None and kept[0] == key:
            return kept[1]
        with self._lock:
            kept = self._kept
            if kept is not None and kept[0] == key:
                return kept[1]
            vocab = Vocabulary(load())
            self._kept = (key, vocab)
            return vocab


# --------------------------------------------------------------------------- correcting


def correct(
    db: sqlite3.Connection,
    query: str,
    tokenizer: str = lexical.FTS_TOKENIZER,
    speller: Speller | None = None,
    key: Hashable = None,
) -> Spelling:
    """``query`` with each word the lexical index does not know replaced by the closest
    word it does (see the module's doc). ``speller`` keeps the vocabulary between calls
    for the generation ``key`` names (without one, each correction reads it anew)."""
    unchanged = Spelling(query)
    if not corrects(tokenizer):
        return unchanged
    kept = _names_and_acronyms(query)
    words = [t for t in lexical.query_terms(query) if _correctable(t) and t not in kept]
    if not words:
        return unchanged
    reader = _Reader(db, tokenizer)
    read = reader.terms_of([fold(w) for w in words])
    single = {w: t[0] for w, t in zip(words, read, strict=True) if len(t) == 1}
    held = reader.passages_holding(single.values())
    vocab: Vocabulary | None = None
    fixes: dict[str, Correction] = {}
    for word, term in single.items():
        docs = held.get(term, 0)
        if docs >= MIN_DOCS:
            continue
        if vocab is None:
            load = reader.vocabulary
            vocab = (speller or Speller()).vocabulary(key, load)
        if docs and fold(word) in vocab.forms(reader, term):  # rare, but as typed
            continue
        found = _best(reader, vocab, fold(word), term)
        if found is not None:
            fixes[word] = found
    if not fixes:
        return unchanged
    return Spelling(_rewrite(query, fixes), tuple(fixes[w] for w in words if w in fixes))


def combine(query: str, spellings: Sequence[Spelling]) -> Spelling:
    """One correction of ``query`` from those of several indexes searched as one.

    A word is corrected only when every index corrects it (a word one index knows
    is a word of the collection), to the replacement most passages hold; each
    index counts its own passages, so a word held by fewer than `MIN_DOCS` in
    each but more in all may still be corrected.
    """
    if not spellings:
        return Spelling(query)
    fixes: dict[str, Correction] = {}
    for fix in spellings[0].corrections:
        others = [next((c for c in s.corrections if c.word == fix.word), None) for s in spellings]
        found = [c for c in others if c is not None]
        if len(found) == len(spellings):
            fixes[fix.word] = max(found, key=lambda c: (c.passages, -c.edits))
    if not fixes:
        return Spelling(query)
    order = [c.word for c in spellings[0].corrections if c.word in fixes]
    return Spelling(_rewrite(query, fixes), tuple(fixes[w] for w in order))


def _names_and_acronyms(query: str) -> set[str]:
    """The words of ``query`` (lower case) written as names of things, not words: with a
    capital after the first letter (``EMAs``, ``dLNs``, ``UreH``, ``iTregs``: acronyms and
    gene or product names, which a collection may never spell out) or a capitalised piece
    of a hyphenated name (``Schimmelpenning-Feuerstein-Mims``). On SciFact's test claims
    these were the corrections that were wrong ("EMAs" to "Emts", "Mims" to "Aims");
    a capitalised word on its own ("Abramovitch") is still corrected."""
    kept = set()
    for m in lexical._WORD.finditer(query):
        typed = m.group(0)
        hyphened = query[m.start() - 1 : m.start()] == "-" or query[m.end() : m.end() + 1] == "-"
        if any(c.isupper() for c in typed[1:]) or (typed[:1].isupper() and hyphened):
            kept.add(typed.lower())
    return kept


def _correctable(word: str) -> bool:
    return SHORT_WORD <= len(word) <= MAX_WORD and word.isalpha()


def _best(reader: _Reader, vocab: Vocabulary, word: str, term: str) -> Correction | None:
    """The known word closest to ``word`` (which the index reads as ``term``), if close
    enough and held by enough passages."""
    limit = max_edits(word)
    passages = vocab.passages
    edits = sorted(edits1(word))
    candidates = {t[0] for t in reader.terms_of(edits) if len(t) == 1 and t[0] in passages}
    if limit >= 2:
        low, high = min(len(word), len(term)) - limit, len(word) + limit
        candidates |= vocab.near([word, term], limit, low, high)
    candidates.discard(term)
    ranked = sorted(
        (t for t in candidates if passages[t] >= MIN_DOCS), key=lambda t: (-passages[t], t)
    )
    best: tuple[int, int, str, str] | None = None  # (edits, -passages, form, term)
    for t in ranked[:_CANDIDATES]:
        forms = vocab.forms(reader, t)
        if not forms:
            continue
        # the form closest to what was typed, the most frequent of equally close ones
        form = min(forms, key=lambda f: (edit_distance(word, f, limit), -forms[f], f))
        distance = edit_distance(word, form, limit)
        if distance > limit:
            continue
        key = (distance, -passages[t], form, t)
        if best is None or key < best:
            best = key
    if best is None:
        return None
    distance, minus_docs, form, t = best
    return Correction(word=word, replacement=form, term=t, edits=distance, passages=-minus_docs)


def _in_case_of(typed: str, word: str) -> str:
    """``word`` written as ``typed`` was: all capitals, a capital first, or as it is."""
    if len(typed) > 1 and typed.isupper():
        return word.upper()
    if typed[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def _rewrite(query: str, fixes: dict[str, Correction]) -> str:
    """``query`` with each corrected word replaced, in its case, the rest as it was."""

    def swap(m: re.Match[str]) -> str:
        fix = fixes.get(m.group(0).lower())
        return m.group(0) if fix is None else _in_case_of(m.group(0), fix.replacement)

    return lexical._WORD.sub(swap, query)
