"""More like this: the passages nearest to given ones, from their stored vectors.

Nothing is embedded: the given passages' vectors are read back from the index
(their mean, normalised, when there are several: a paragraph split in pieces,
or a whole file) and searched for like a query's, with the same filters and
grouping. The given passages never come back, nor any passage near-identical
to one of them (what a search collapses into one hit: the same text elsewhere,
or nearly), so the first hit is the nearest *other* text.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..embed import normalize
from ..storage.store import PassageRow, Store
from ..storage.vectors import IdArray, VectorIndex
from .group import _near_identical, _shape, group
from .hits import Hit, scores_of
from .options import Query


def similar(
    store: Store, vectors: VectorIndex, sources: Sequence[PassageRow], q: Query
) -> list[Hit]:
    """Up to ``q.k`` hits nearest to ``sources`` (read in the caller's snapshot), best first;
    scores are cosines. ``q`` gives k, the filters, ``min_score`` and the grouping."""
    ids = np.asarray([r.id for r in sources], dtype=np.int64)
    mean = vectors.reconstruct(ids).mean(axis=0, keepdims=True)
    query = normalize(mean.astype(np.float32))
    shapes = [_shape(r.text) for r in sources]
    given = {r.id for r in sources}
    allowed: IdArray | None = None
    if q.filtered:
        allowed = store.filter_ids(since=q.since, until=q.until, path=q.path)
        if len(allowed) == 0:
            return []
    fetch = len(given) + q.k * (4 if q.by_article else 2 if q.collapse else 1)
    while True:
        scores, found = vectors.search(query, fetch, allowed)
        ranked = [
            (int(i), min(float(s), 1.0))
            for s, i in zip(scores[0], found[0], strict=True)
            if i >= 0 and np.isfinite(s)
        ]
        exhausted = len(ranked) < fetch
        ranked = [(i, s) for i, s in ranked if i not in given]
        if q.min_score is not None:
            ranked = [(i, s) for i, s in ranked if s >= q.min_score]
        rows = store.passages(i for i, _ in ranked)
        others = [
            (rows[i], s)
            for i, s in ranked
            if i in rows and not any(_near_identical(_shape(rows[i].text), t) for t in shapes)
        ]
        hits = group(q, others, {i: scores_of(dense=s) for i, s in ranked})  # cosines
        if len(hits) >= q.k or exhausted:
            return hits[: q.k]
        fetch *= 4
