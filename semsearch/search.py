"""The query pipeline: check, filter, retrieve (dense, lexical or hybrid), group, highlight.

Filters are applied before ranking: the ids that pass them restrict the vector
search and the BM25 search themselves, so ``k`` results come back whenever
``k`` passages match. Grouping (one passage per article, near-duplicate
passages collapsed into one hit) fetches more candidates until it has ``k``
results or the index has no more.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from . import lexical
from .embedder import Embedder
from .errors import UsageError
from .fusion import Fusion, fuse
from .passages import _SENTENCE_END
from .store import PassageRow, Store
from .vectors import IdArray, VectorIndex

MODES = ("dense", "lexical", "hybrid")
DEFAULT_MODE = "hybrid"
DEFAULT_FUSION = Fusion(method="convex", alpha=0.5)
# The top of each ranking that sets hybrid scores, whatever k (see fusion). Chosen on
# SciFact's train queries: nDCG@10 0.7346 at 100, 0.7351 at 200, 0.7368 at 400, 0.7371 at
# 800; 400 is also the depth the fusion was tuned at (evaluation asks for 100 articles).
HYBRID_DEPTH = 400


@dataclass(frozen=True)
class Source:
    """Another place a collapsed (near-identical) passage appears."""

    title: str
    date: str | None
    path: str
    paragraph: int
    passage_id: int


@dataclass(frozen=True)
class Hit:
    """One search result: a passage, its score and where it comes from."""

    rank: int  # 1 = best
    score: float  # dense: cosine -1..1; lexical: BM25 (>0); hybrid: fused 0..1
    text: str  # the passage as shown to the reader
    title: str
    date: str | None  # YYYY-MM-DD, when the article has one
    path: str  # the file, as given at index time
    paragraph: int  # 1-based paragraph number in the article, as a reader counts
    passage_id: int
    piece: int = 1  # 1-based piece of a paragraph that was split (1 of 1 when not)
    pieces: int = 1
    start: int = 0  # character span in the article
    end: int = 0
    key: str = ""  # the record id inside a JSON Lines file
    fields: dict[str, Any] = field(default_factory=dict)
    highlights: list[tuple[int, int]] = field(default_factory=list)  # spans in ``text``
    also_in: list[Source] = field(default_factory=list)  # near-identical passages elsewhere
    document_id: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Query:
    """A checked query and its options."""

    text: str
    k: int = 5
    mode: str = DEFAULT_MODE
    min_score: float | None = None
    since: str | None = None
    until: str | None = None
    path: str | None = None
    by_article: bool = False
    collapse: bool = True
    highlight: bool = False
    fusion: Fusion = DEFAULT_FUSION

    @property
    def filtered(self) -> bool:
        return self.since is not None or self.until is not None or self.path is not None


def _check_date(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return _dt.date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        raise UsageError(f"{name} must be a date like 2024-12-31 (got {value!r})") from None


def check_mode(mode: str | None) -> str:
    """The search mode to use (the default for None); raises `UsageError` for an unknown one."""
    mode = mode or DEFAULT_MODE
    if mode not in MODES:
        raise UsageError(f"mode must be one of {', '.join(MODES)} (got {mode!r})")
    return mode


def check_query(
    query: str,
    k: int = 5,
    min_score: float | None = None,
    *,
    mode: str | None = None,
    since: str | None = None,
    until: str | None = None,
    path: str | None = None,
    by_article: bool = False,
    collapse: bool = True,
    highlight: bool = False,
    fusion: Fusion | None = None,
) -> Query:
    """A `Query`; raises `UsageError` for anything unusable."""
    if not isinstance(query, str) or not query.strip():
        raise UsageError("the query is empty: give some words to search for")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UsageError(f"k must be a whole number of at least 1 (got {k!r})")
    mode = check_mode(mode)
    if min_score is not None and mode != "lexical" and not -1.0 <= min_score <= 1.0:
        raise UsageError(
            f"min-score is between -1 and 1 for {mode} scores (got {min_score}); "
            "only lexical (BM25) scores go above 1"
        )
    since, until = _check_date("since", since), _check_date("until", until)
    if since and until and since > until:
        raise UsageError(f"since ({since}) is after until ({until}): nothing can match")
    if path is not None and not path.strip():
        raise UsageError("path must be a glob such as 'news/2024/*'")
    return Query(
        text=query.strip(),
        k=k,
        mode=mode,
        min_score=min_score,
        since=since,
        until=until,
        path=path,
        by_article=by_article,
        collapse=collapse,
        highlight=highlight,
        fusion=fusion or DEFAULT_FUSION,
    )


class Searcher:
    """Runs queries against one store + vector index + embedder."""

    def __init__(self, store: Store, vectors: VectorIndex, embedder: Embedder | None) -> None:
        self.store = store
        self.vectors = vectors
        self._embedder = embedder

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:  # pragma: no cover - the Index always passes one
            raise RuntimeError("dense search needs an embedder")
        return self._embedder

    def search(self, q: Query, qvec: npt.NDArray[np.float32] | None = None) -> list[Hit]:
        allowed: IdArray | None = None
        if q.filtered:
            allowed = self.store.filter_ids(since=q.since, until=q.until, path=q.path)
            if len(allowed) == 0:
                return []
        if qvec is None and q.mode != "lexical":
            qvec = self.embedder.embed([q.text])
        fetch = q.k * 4 if q.by_article else q.k * 2 if q.collapse else q.k
        while True:
            candidates, exhausted = self._retrieve(q, qvec, fetch, allowed)
            if q.min_score is not None:
                candidates = [(i, s) for i, s in candidates if s >= q.min_score]
            rows = self.store.passages(i for i, _ in candidates)
            hits = self._group(q, [(rows[i], s) for i, s in candidates if i in rows])
            if len(hits) >= q.k or exhausted:
                break
            fetch *= 4
        hits = hits[: q.k]
        if q.highlight and hits:
            hits = self._highlight(q, qvec, hits)
        return hits

    # --- retrieval

    def _retrieve(
        self, q: Query, qvec: npt.NDArray[np.float32] | None, n: int, allowed: IdArray | None
    ) -> tuple[list[tuple[int, float]], bool]:
        """Up to ``n`` (id, score) candidates, best first, and whether there are no more."""
        if q.mode == "dense":
            assert qvec is not None
            dense = self._dense(qvec, n, allowed)
            return dense, len(dense) < n
        if q.mode == "lexical":
            lex = lexical.search(self.store.db, q.text, n, allowed)
            return lex, len(lex) < n
        assert qvec is not None
        depth = max(n, HYBRID_DEPTH)
        dense = self._dense_to_fuse(qvec, depth, allowed)
        lex = lexical.search(self.store.db, q.text, depth, allowed)
        fused = fuse(dense, lex, q.fusion, depth=HYBRID_DEPTH)
        return fused[:n], len(dense) < depth and len(lex) < depth and len(fused) <= n

    def _dense_to_fuse(
        self, qvec: npt.NDArray[np.float32], n: int, allowed: IdArray | None
    ) -> list[tuple[int, float]]:
        """The dense ranking for fusion, opening with the top `HYBRID_DEPTH` that sets scores.

        An approximate index asked for more than that may find a different top
        (HNSW widens its search with k), so the top is then asked for on its own:
        hybrid scores stay the same whatever k.
        """
        ranked = self._dense(qvec, n, allowed)
        if n <= HYBRID_DEPTH or self.vectors.kind == "flat":  # flat: exact, same top
            return ranked
        head = self._dense(qvec, HYBRID_DEPTH, allowed)
        seen = {i for i, _ in head}
        return head + [c for c in ranked if c[0] not in seen]

    def _dense(
        self, qvec: npt.NDArray[np.float32], n: int, allowed: IdArray | None
    ) -> list[tuple[int, float]]:
        scores, ids = self.vectors.search(qvec.reshape(1, -1), n, allowed)
        return [
            (int(i), min(float(s), 1.0))
            for s, i in zip(scores[0], ids[0], strict=True)
            if i >= 0 and np.isfinite(s)
        ]

    # --- grouping

    def _group(self, q: Query, ranked: Sequence[tuple[PassageRow, float]]) -> list[Hit]:
        hits: list[Hit] = []
        seen_docs: set[int] = set()
        shapes: list[tuple[frozenset[str], str]] = []  # of the hits kept, for collapsing
        for row, score in ranked:
            if q.by_article:
                if row.document_id in seen_docs:
                    continue
                seen_docs.add(row.document_id)
            if q.collapse:
                shape = _shape(row.text)
                twin = next((n for n, s in enumerate(shapes) if _near_identical(s, shape)), None)
                if twin is not None:
                    kept = hits[twin]
                    kept.also_in.append(
                        Source(row.title, row.date, row.path, row.paragraph + 1, row.id)
                    )
                    continue
                if len(hits) >= q.k:
                    continue  # past the k-th hit only copies of the hits still matter
                shapes.append(shape)
            elif len(hits) >= q.k:
                break
            hits.append(_hit(len(hits) + 1, score, row))
        return hits

    # --- highlights

    def _highlight(
        self, q: Query, qvec: npt.NDArray[np.float32] | None, hits: list[Hit]
    ) -> list[Hit]:
        """The sentence(s) of each passage that best match the query, as spans of its text."""
        spans = [sentence_spans(h.text) for h in hits]
        if qvec is not None:
            sentences = [h.text[a:b] for h, ss in zip(hits, spans, strict=True) for a, b in ss]
            vecs = self.embedder.embed(sentences)
            sims = vecs @ qvec.reshape(-1)
            scores: list[float] = [float(x) for x in sims]
        else:
            terms = lexical.query_terms(q.text)
            scores = [
                float(_term_overlap(h.text[a:b], terms))
                for h, ss in zip(hits, spans, strict=True)
                for a, b in ss
            ]
        out = []
        pos = 0
        for h, ss in zip(hits, spans, strict=True):
            mine = scores[pos : pos + len(ss)]
            pos += len(ss)
            out.append(_with_highlights(h, pick_highlights(ss, mine)))
        return out


def pick_highlights(
    spans: Sequence[tuple[int, int]], scores: Sequence[float], margin: float = 0.05
) -> list[tuple[int, int]]:
    """The best sentence, and a second one scoring within ``margin`` of it, in text order."""
    if not spans:
        return []
    order = sorted(range(len(spans)), key=lambda i: -scores[i])
    best = order[0]
    chosen = [best]
    if len(order) > 2 and scores[order[1]] >= scores[best] - margin:
        chosen.append(order[1])
    return [spans[i] for i in sorted(chosen)]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of ``text``."""
    spans = []
    pos = 0
    for m in _SENTENCE_END.finditer(text):
        spans.append((pos, m.end(1)))
        pos = m.end()
    spans.append((pos, len(text)))
    return [(a, b) for a, b in spans if b > a]


_NON_WORD = re.compile(r"\W+")


def _shape(text: str) -> tuple[frozenset[str], str]:
    norm = _NON_WORD.sub(" ", text.lower()).strip()
    return frozenset(norm.split()), norm


def _near_identical(a: tuple[frozenset[str], str], b: tuple[frozenset[str], str]) -> bool:
    """Same words after normalising case and punctuation, or nearly (Jaccard >= 0.9)."""
    if a[1] == b[1]:
        return True
    words_a, words_b = a[0], b[0]
    if not words_a or not words_b:
        return False
    small, large = sorted((len(words_a), len(words_b)))
    if small / large < 0.9:
        return False
    return len(words_a & words_b) / len(words_a | words_b) >= 0.9


def _term_overlap(sentence: str, terms: Sequence[str]) -> int:
    words = {w.lower() for w in _NON_WORD.split(sentence) if w}
    return sum(1 for t in terms if any(w.startswith(t[:5]) for w in words))


def _hit(rank: int, score: float, row: PassageRow) -> Hit:
    return Hit(
        rank=rank,
        score=round(score, 6),
        text=row.text,
        title=row.title,
        date=row.date,
        path=row.path,
        paragraph=row.paragraph + 1,
        passage_id=row.id,
        piece=row.piece + 1,
        pieces=row.pieces,
        start=row.start,
        end=row.end,
        key=row.key,
        fields=row.fields,
        document_id=row.document_id,
    )


def _with_highlights(hit: Hit, spans: list[tuple[int, int]]) -> Hit:
    return replace(hit, highlights=spans)
