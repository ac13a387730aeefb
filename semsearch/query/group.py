"""Grouping ranked passages into hits: one per article, near-duplicates collapsed."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..storage.store import PassageRow
from .hits import Hit, Scores, Source, make_hit
from .options import Query


def group(
    q: Query,
    ranked: Sequence[tuple[PassageRow, float]],
    scores: Mapping[int, Scores] | None = None,
) -> list[Hit]:
    """Hits from ranked rows: by article and collapsed as ``q`` asks, at most ``q.k``;
    ``scores`` holds each passage's `Hit.scores` by id."""
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
                    Source(
                        row.title,
                        row.date,
                        row.path,
                        row.paragraph + 1,
                        row.id,
                        row.abspath,
                        row.page or None,
                    )
                )
                continue
            if len(hits) >= q.k:
                continue  # past the k-th hit only copies of the hits still matter
            shapes.append(shape)
        elif len(hits) >= q.k:
            break
        hits.append(make_hit(len(hits) + 1, score, row, (scores or {}).get(row.id)))
    return hits



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


