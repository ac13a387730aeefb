"""The query pipeline: filter, retrieve (dense, lexical or hybrid), group, highlight.

Filters are applied before ranking: the ids that pass them restrict the vector
search and the BM25 search themselves, so ``k`` results come back whenever
``k`` passages match. Grouping (one passage per article, near-duplicate
passages collapsed into one hit) fetches more candidates until it has ``k``
results or the index has no more.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..embed import Embedder
from ..storage.store import Store
from ..storage.vectors import IdArray, VectorIndex
from . import lexical
from .fusion import fuse
from .group import group
from .highlight import highlight
from .hits import Hit
from .options import HYBRID_DEPTH, Query


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
        if not lexical.query_terms(q.text):
            # only punctuation or symbols: BM25 has no term to look for, and the model's
            # vector of "?!" is noise, so no mode has anything that matches
            return []
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
            hits = group(q, [(rows[i], s) for i, s in candidates if i in rows])
            if len(hits) >= q.k or exhausted:
                break
            fetch *= 4
        hits = hits[: q.k]
        if q.highlight and hits:
            hits = highlight(self._embedder, q, qvec, hits)
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
            lex = self.store.bm25(q.text, n, allowed)
            return lex, len(lex) < n
        assert qvec is not None
        depth = max(n, HYBRID_DEPTH)
        dense = self._dense_to_fuse(qvec, depth, allowed)
        lex = self.store.bm25(q.text, depth, allowed)
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

