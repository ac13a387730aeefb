"""The query pipeline: check the query, embed it, retrieve, attach the passages."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .embedder import Embedder
from .errors import UsageError
from .store import Store
from .vectors import VectorIndex


@dataclass(frozen=True)
class Hit:
    """One search result: a passage, its score and where it comes from."""

    rank: int  # 1 = best
    score: float  # cosine similarity of query and passage, -1..1
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_query(query: str, k: int, min_score: float | None = None) -> str:
    """The query with white space trimmed; raises `UsageError` for an unusable one."""
    if not isinstance(query, str) or not query.strip():
        raise UsageError("the query is empty: give some words to search for")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UsageError(f"k must be a whole number of at least 1 (got {k!r})")
    if min_score is not None and not -1.0 <= min_score <= 1.0:
        raise UsageError(f"min-score is a cosine similarity between -1 and 1 (got {min_score})")
    return query.strip()


def dense_search(
    store: Store,
    vectors: VectorIndex,
    embedder: Embedder,
    query: str,
    k: int,
    min_score: float | None = None,
) -> list[Hit]:
    """The ``k`` passages whose vectors are nearest the query's, best first."""
    qvec = embedder.embed([query])
    scores, ids = vectors.search(qvec, k)
    found = [
        (float(s), int(i))
        for s, i in zip(scores[0], ids[0], strict=True)
        if i >= 0 and (min_score is None or s >= min_score) and np.isfinite(s)
    ]
    rows = store.passages(i for _, i in found)
    hits: list[Hit] = []
    for score, pid in found:
        row = rows.get(pid)
        if row is None:  # removed by a writer since the vectors were read
            continue
        hits.append(
            Hit(
                rank=len(hits) + 1,
                score=round(min(score, 1.0), 6),
                text=row.text,
                title=row.title,
                date=row.date,
                path=row.path,
                paragraph=row.paragraph + 1,
                passage_id=pid,
                piece=row.piece + 1,
                pieces=row.pieces,
                start=row.start,
                end=row.end,
                key=row.key,
                fields=row.fields,
            )
        )
    return hits
