"""The query pipeline: filter, retrieve (dense, lexical or hybrid), group, highlight.

Filters are applied before ranking: the ids that pass them restrict the vector
search and the BM25 search themselves, so ``k`` results come back whenever
``k`` passages match. Grouping (one passage per article, near-duplicate
passages collapsed into one hit) fetches more candidates until it has ``k``
results or the index has no more.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ..embed import Embedder
from ..embed.prompts import NO_PROMPTS, Prompts
from ..storage.store import PassageRow
from ..storage.vectors import FloatArray, IdArray
from . import lexical, rerank
from .fusion import Fusion, fuse
from .group import group
from .highlight import highlight
from .hits import Results, Scores, scores_of
from .options import HYBRID_DEPTH, Query
from .spelling import Speller, Spelling

Candidates = list[tuple[int, float]]  # (passage id, score), best first


class Passages(Protocol):
    """What a search reads besides vectors: a `Store`, or several as one (`query.many`)."""

    def filter_ids(
        self, *, since: str | None = None, until: str | None = None, path: str | None = None
    ) -> IdArray: ...

    def passages(self, ids: Iterable[int]) -> dict[int, PassageRow]: ...

    def bm25(self, query: str, k: int, allowed: IdArray | None = None) -> Candidates: ...

    def bm25_of(self, query: str, ids: Iterable[int]) -> dict[int, float]: ...

    def bm25_bound(self, query: str) -> float: ...

    def spelling(self, query: str, speller: Speller | None = None) -> Spelling: ...


class Vectors(Protocol):
    """What a search needs of a vector index (`storage.vectors.VectorIndex` has it)."""

    @property
    def kind(self) -> str: ...

    def search(
        self, queries: FloatArray, k: int, allowed: IdArray | None = None
    ) -> tuple[FloatArray, IdArray]: ...

    def reconstruct(self, ids: IdArray) -> FloatArray: ...


@dataclass(frozen=True)
class HybridCandidates:
    """What hybrid search fuses: both rankings, and both scores of every passage in either."""

    dense_ranking: Candidates
    lexical_ranking: Candidates
    dense: dict[int, float]  # cosine by passage id, in dense order then lexical order
    lexical: dict[int, float]  # BM25 by passage id (0.0: no term of the query)
    exhausted: bool  # both rankings hold every passage they could


def _ceiling(fusion: Fusion, c: HybridCandidates, depth: int, bound: float) -> float:
    """The highest score a passage in neither ranking of ``c`` (their top ``depth``) can have.

    Its cosine is at most the dense top's last, its BM25 at most the lexical top's last
    (0 when that top holds every passage with a query word), and the calibrated score
    grows with both. -1 when the dense top holds every passage: none is outside.
    """
    if len(c.dense_ranking) < depth:
        return -1.0
    lowest_bm25 = c.lexical_ranking[-1][1] if len(c.lexical_ranking) >= depth else 0.0
    return fusion.score(c.dense_ranking[-1][1], lowest_bm25, bound)


class Searcher:
    """Runs queries against one store + vector index + embedder (or several as one)."""

    def __init__(
        self,
        store: Passages,
        vectors: Vectors,
        embedder: Embedder | None,
        speller: Speller | None = None,
        *,
        prompts: Prompts = NO_PROMPTS,
    ) -> None:
        self.store = store
        self.prompts = prompts  # the index's: before each query and each sentence embedded
        self.vectors = vectors
        self._embedder = embedder
        self._speller = speller  # keeps the vocabulary between queries (see spelling)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:  # pragma: no cover - the Index always passes one
            raise RuntimeError("dense search needs an embedder")
        return self._embedder

    def spelling(self, q: Query) -> Spelling:
        """``q``'s text with its unknown words corrected (unchanged when ``q.correct`` is off
        or no word needs it); see `query.spelling`."""
        if not q.correct or not lexical.query_terms(q.text):
            return Spelling(q.text)
        return self.store.spelling(q.text, self._speller)

    def search(
        self,
        q: Query,
        qvec: npt.NDArray[np.float32] | None = None,
        spelling: Spelling | None = None,
    ) -> Results:
        """The hits of ``q``. ``spelling`` is `spelling` (q) when the caller has it already
        (and ``qvec`` then the vector of its text)."""
        if not lexical.query_terms(q.text):
            # only punctuation or symbols: BM25 has no term to look for, and the model's
            # vector of "?!" is noise, so no mode has anything that matches
            return Results()
        fix = spelling if spelling is not None else self.spelling(q)
        corrected = fix.text if fix.changed else None
        # every retriever searches for the corrected query, the model too: see README, "Typos"
        q = replace(q, text=fix.text)
        allowed: IdArray | None = None
        if q.filtered:
            allowed = self.store.filter_ids(since=q.since, until=q.until, path=q.path)
            if len(allowed) == 0:
                return Results(corrected_query=corrected)
        if qvec is None and q.mode != "lexical":
            qvec = self.embedder.embed([self.prompts.query + q.text])
        fetch = q.k * 4 if q.by_article else q.k * 2 if q.collapse else q.k
        while True:
            candidates, exhausted, scores = self._retrieve(q, qvec, fetch, allowed)
            if q.min_score is not None:
                candidates = [(i, s) for i, s in candidates if s >= q.min_score]
            rows = self.store.passages(i for i, _ in candidates)
            hits = group(q, [(rows[i], s) for i, s in candidates if i in rows], scores)
            if len(hits) >= q.k or exhausted:
                break
            fetch *= 4
        hits = hits[: q.k]
        if q.highlight and hits:
            hits = highlight(self._embedder, q, qvec, hits, self.prompts.passage)
        return Results(hits, corrected_query=corrected)

    # --- retrieval

    def _retrieve(
        self,
        q: Query,
        qvec: npt.NDArray[np.float32] | None,
        n: int,
        allowed: IdArray | None,
    ) -> tuple[Candidates, bool, dict[int, Scores]]:
        """Up to ``n`` (id, score) candidates, best first, whether there are no more, and
        each candidate's scores by mode (`Hit.scores`)."""
        if q.mode == "dense":
            assert qvec is not None
            wanted = n if q.rerank is None else max(n, q.rerank.depth)
            dense = self._dense(qvec, wanted, allowed)
            exhausted = len(dense) < wanted
            if q.rerank is None:
                return dense, exhausted, {i: scores_of(dense=s) for i, s in dense}
            # `Hit.scores` keeps each passage's cosine with the query (as hybrid mode does);
            # the second stage's score is the hit's score, shown as fused
            cosine = dict(dense)
            dense = self._rerank(q, qvec, dense, None)[:n]
            return dense, exhausted, {i: scores_of(cosine[i], None, s) for i, s in dense}
        if q.mode == "lexical":
            lex = self.store.bm25(q.text, n, allowed)
            return lex, len(lex) < n, {i: scores_of(lexical=s) for i, s in lex}
        assert qvec is not None
        depth = max(n, HYBRID_DEPTH)
        c = self.candidates(q.text, qvec, depth, allowed)
        exhausted = c.exhausted and len(c.dense) <= n
        if q.fusion.independent:
            bound = self.store.bm25_bound(q.text)
            ids = list(c.dense)  # dense order, then lexical order: the order ties keep
            cosines = np.fromiter(c.dense.values(), dtype=np.float64, count=len(ids))
            bm25 = np.array([c.lexical[i] for i in ids], dtype=np.float64)
            values = q.fusion.scores(cosines, bm25, bound)
            order = np.argsort(-values, kind="stable")
            fused = [(ids[j], float(values[j])) for j in order.tolist()]
            first = fused
            if q.rerank is not None:  # re-scores the top of the candidates, never beyond them
                fused = self._rerank(q, qvec, fused, (c.lexical, bound))
            if q.min_score is not None and not exhausted:
                # No passage outside the candidates reaches the min-score: fetching deeper
                # would find none, and the candidates past n are all below it too.
                ceiling = _ceiling(q.fusion, c, depth, bound)
                unreachable = ceiling < q.min_score
                if q.rerank is not None:
                    # ...nor one that could join the reranked top, and be lifted there:
                    # the top's last must rank above anything a deeper fetch could bring
                    top = q.rerank.depth
                    unreachable = unreachable and len(first) >= top and first[top - 1][1] > ceiling
                exhausted = unreachable and (len(fused) <= n or fused[n][1] < q.min_score)
        else:
            fused = fuse(c.dense_ranking, c.lexical_ranking, q.fusion, depth=HYBRID_DEPTH)
            if q.rerank is not None:
                fused = self._rerank_by_ranks(q, qvec, fused, c)
        fused = fused[:n]
        return fused, exhausted, {i: scores_of(c.dense[i], c.lexical[i], s) for i, s in fused}

    def _rerank(
        self,
        q: Query,
        qvec: npt.NDArray[np.float32],
        ranked: Candidates,
        lexical_scores: tuple[dict[int, float], float] | None,
    ) -> Candidates:
        """``ranked`` with its top ``q.rerank.depth`` re-scored by the second stage (see
        `rerank`): their cosines with the feedback query, fused again with their BM25
        scores (``lexical_scores``: each passage's and the bound) when given."""
        second = q.rerank
        assert second is not None
        ids = [i for i, _ in ranked[: second.depth]]
        if not ids:
            return list(ranked)
        stored = self.vectors.reconstruct(np.asarray(ids, dtype=np.int64))
        moved = rerank.rocchio(qvec, stored[: second.feedback], second.beta)
        cosines = np.minimum(stored @ moved, 1.0).astype(np.float64)
        if lexical_scores is None:
            return rerank.reorder(ranked, ids, cosines)
        bm25_of, bound = lexical_scores
        bm25 = np.array([bm25_of[i] for i in ids], dtype=np.float64)
        return rerank.reorder(ranked, ids, q.fusion.scores(cosines, bm25, bound))

    def _rerank_by_ranks(
        self, q: Query, qvec: npt.NDArray[np.float32], fused: Candidates, c: HybridCandidates
    ) -> Candidates:
        """`_rerank` for a fusion of ranks (rrf, min-max): the top is fused again from its
        dense ranking by the feedback query and its lexical ranking."""
        second = q.rerank
        assert second is not None
        head = fused[: second.depth]
        ids = [i for i, _ in head]
        if not ids:
            return list(fused)
        dense = self._rerank(q, qvec, [(i, c.dense[i]) for i in ids], None)
        keep = set(ids)
        lex = [(i, s) for i, s in c.lexical_ranking if i in keep]
        again = dict(fuse(dense, lex, q.fusion, depth=len(ids)))
        return rerank.reorder(fused, ids, np.array([again.get(i, 0.0) for i in ids]))

    def candidates(
        self, text: str, qvec: npt.NDArray[np.float32], depth: int, allowed: IdArray | None
    ) -> HybridCandidates:
        """The top ``depth`` of each ranking, with both scores of every passage in either.

        A passage only one retriever found gets its other score too: the cosine
        from its stored vector, the BM25 from FTS5 (0 for a passage that holds
        no term of the query).
        """
        dense = self._dense_to_fuse(qvec, depth, allowed)
        lex = self.store.bm25(text, depth, allowed)
        cosines, bm25 = dict(dense), dict(lex)
        if self.vectors.kind == "ivfpq":  # its search scores come from compressed codes
            cosines = self._cosines(qvec, list(cosines))
        cosines.update(self._cosines(qvec, [i for i in bm25 if i not in cosines]))
        bm25.update(self.store.bm25_of(text, [i for i in cosines if i not in bm25]))
        return HybridCandidates(
            dense_ranking=dense,
            lexical_ranking=lex,
            dense=cosines,
            lexical=bm25,
            exhausted=len(dense) < depth and len(lex) < depth,
        )

    def _cosines(self, qvec: npt.NDArray[np.float32], ids: list[int]) -> dict[int, float]:
        """The dense score of each passage of ``ids``, from its stored vector."""
        if not ids:
            return {}
        stored = self.vectors.reconstruct(np.asarray(ids, dtype=np.int64))
        sims = stored @ qvec.reshape(-1).astype(np.float32)
        return {i: min(float(s), 1.0) for i, s in zip(ids, sims, strict=True)}

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
        keep = (ids[0] >= 0) & np.isfinite(scores[0])  # as arrays: no Python per candidate
        capped = np.minimum(scores[0][keep], 1.0).tolist()
        return list(zip(ids[0][keep].tolist(), capped, strict=True))

