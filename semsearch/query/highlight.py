"""Highlights: the sentence(s) of each hit that best match the query.

Each sentence of a hit (of more than one sentence) gets a score and
`pick_highlights` keeps the best one, and a second one within a small margin:

- lexical mode: how many of the query's terms the sentence holds;
- dense and hybrid, with a model whose word-piece vectors are at hand (the
  bundled one, and any model exported or loaded with sentence-transformers):
  the cosine of the sentence's and the query's weighted mean word-piece vectors
  (`embed.words`) plus ``LEXICAL_WEIGHT`` times the share of the query's terms
  it holds. This costs a lookup instead of running the model on every sentence,
  which cost 20 times the search itself; `benchmarks/highlights.py` measures
  how often both pick the same sentence;
- any other embedder: each sentence embedded (all in one batch) against the
  query's vector.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ..embed import Embedder, HasWordVectors
from ..ingest.passages import _SENTENCE_END
from . import lexical
from .hits import Hit, with_highlights
from .options import Query

# Weight of the share of query terms a sentence holds, beside the word-vector cosine;
# chosen on BBC title queries (benchmarks/highlights.py), checked on the natural ones.
LEXICAL_WEIGHT = 0.5
MARGIN = 0.05  # a second sentence scoring this close to the best is highlighted too


def highlight(
    embedder: Embedder | None,
    q: Query,
    qvec: npt.NDArray[np.float32] | None,
    hits: list[Hit],
    passage_prefix: str = "",
) -> list[Hit]:
    """The sentence(s) of each passage that best match the query, as spans of its text
    (``passage_prefix``: the index's, put before each sentence the model embeds)."""
    spans = [sentence_spans(h.text) for h in hits]
    # a passage of one sentence has nothing to choose from: only the others are scored
    sentences = [
        h.text[a:b] for h, ss in zip(hits, spans, strict=True) if len(ss) > 1 for a, b in ss
    ]
    scores = sentence_scores(embedder, q, qvec, sentences, passage_prefix) if sentences else []
    out = []
    pos = 0
    for h, ss in zip(hits, spans, strict=True):
        if len(ss) > 1:
            mine = scores[pos : pos + len(ss)]
            pos += len(ss)
        else:
            mine = [0.0] * len(ss)
        out.append(with_highlights(h, pick_highlights(ss, mine)))
    return out


def sentence_scores(
    embedder: Embedder | None,
    q: Query,
    qvec: npt.NDArray[np.float32] | None,
    sentences: Sequence[str],
    passage_prefix: str = "",
) -> list[float]:
    """How well each sentence matches the query (comparable within one query only)."""
    terms = lexical.query_terms(q.text)
    overlap = [_term_overlap(s, terms) for s in sentences]
    if qvec is None or embedder is None:  # lexical mode: words only
        return [float(n) for n in overlap]
    words = embedder.word_vectors() if isinstance(embedder, HasWordVectors) else None
    if words is not None:
        vecs = words.embed([q.text, *sentences])
        cosines = vecs[1:] @ vecs[0]
        share = LEXICAL_WEIGHT / max(1, len(terms))
        return [float(c) + share * n for c, n in zip(cosines, overlap, strict=True)]
    vecs = embedder.embed([passage_prefix + s for s in sentences])
    return [float(x) for x in vecs @ qvec.reshape(-1)]


def pick_highlights(
    spans: Sequence[tuple[int, int]], scores: Sequence[float], margin: float = MARGIN
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
    """How many ``terms`` begin (up to their first 5 letters) a word of ``sentence``."""
    lowered = sentence.lower()
    return sum(1 for t in terms if _head_pattern(t[:5]).search(lowered) is not None)


@functools.lru_cache(maxsize=4096)
def _head_pattern(head: str) -> re.Pattern[str]:
    """``head`` at the start of a word (after a non-word character or the text's start)."""
    return re.compile(r"(?<!\w)" + re.escape(head))
