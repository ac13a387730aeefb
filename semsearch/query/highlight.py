"""Highlights: the sentence(s) of each hit that best match the query."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ..embed import Embedder
from ..ingest.passages import _SENTENCE_END
from . import lexical
from .hits import Hit, with_highlights
from .options import Query

_NON_WORD = re.compile(r"\W+")


def highlight(
    embedder: Embedder | None, q: Query, qvec: npt.NDArray[np.float32] | None, hits: list[Hit]
) -> list[Hit]:
    """The sentence(s) of each passage that best match the query, as spans of its text."""
    spans = [sentence_spans(h.text) for h in hits]
    if qvec is not None:
        sentences = [h.text[a:b] for h, ss in zip(hits, spans, strict=True) for a, b in ss]
        assert embedder is not None
        vecs = embedder.embed(sentences)
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
        out.append(with_highlights(h, pick_highlights(ss, mine)))
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
    if len(order) > 1 and scores[order[1]] >= scores[best] - margin:
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


def _term_overlap(sentence: str, terms: Sequence[str]) -> int:
    words = {w.lower() for w in _NON_WORD.split(sentence) if w}
    return sum(1 for t in terms if any(w.startswith(t[:5]) for w in words))


