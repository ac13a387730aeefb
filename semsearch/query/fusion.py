"""Fusing a dense and a lexical score into one (hybrid search).

The default method, ``calibrated``, gives every passage a score of its own:

    mix   = alpha * cosine + (1 - alpha) * bm25 / bound
    fused = 1 / (1 + exp(-scale * (mix - shift)))

``cosine`` is the passage's dense score, ``bm25`` its BM25 score for the query
(0 when it holds no query term) and ``bound`` the BM25 no passage reaches for
this query, ``(k1 + 1) * sum(idf)`` over the query's terms (see
`lexical.bound`): ``bm25 / bound`` is in 0..1 whatever the query's length or
the rarity of its words. So a passage's fused score depends on the query, the
passage and the collection's term counts, never on which other passages were
candidates, on k or on a minimum score. The logistic turns the mix into an
estimate of how likely a passage is relevant, fitted on SciFact's *train*
queries (benchmarks/tune_fusion.py): there, of the passages scoring about
0.5, about half were relevant.

Two older methods remain for comparison; their scores depend on the other
candidates, so they mean nothing outside one result list:

- ``rrf``: reciprocal rank fusion, ``sum(w / (c + rank))`` over the ranks up
  to ``depth``; ignores scores.
- ``convex``: ``alpha * dense + (1 - alpha) * lexical`` after min-max
  normalising each list's scores to 0..1 with the lowest and highest score of
  its top ``depth`` (a passage missing from a list gets 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Ranking = Sequence[tuple[int, float]]  # (id, score), best first
FusionMethod = Literal["calibrated", "convex", "rrf"]

METHODS: tuple[FusionMethod, ...] = ("calibrated", "convex", "rrf")


@dataclass(frozen=True)
class Fusion:
    """How to fuse (a query option: fusion changes no stored data)."""

    method: FusionMethod = "calibrated"
    # The defaults are the calibrated fusion fitted on SciFact train (see options.DEFAULT_FUSION):
    # `Fusion(alpha=0.6)` changes the mix and keeps that logistic.
    alpha: float = 0.45  # calibrated, convex: weight of the dense score; rrf: of the dense ranks
    rrf_c: float = 60.0  # rrf: the rank constant
    scale: float = 13.96  # calibrated: slope of the logistic
    shift: float = 0.56  # calibrated: the mix that scores 0.5

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown fusion method {self.method!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError("alpha must be between 0 and 1")
        if not (math.isfinite(self.scale) and self.scale > 0 and math.isfinite(self.shift)):
            raise ValueError("scale must be a positive number and shift a finite one")

    @property
    def independent(self) -> bool:
        """True when a passage's score depends on it alone, not on the other candidates."""
        return self.method == "calibrated"

    def mix(self, dense: float, lexical: float, bound: float) -> float:
        """``alpha * dense + (1 - alpha) * lexical / bound`` (the share is 0 for a zero bound)."""
        share = min(max(lexical / bound, 0.0), 1.0) if bound > 0 else 0.0
        return self.alpha * dense + (1 - self.alpha) * share

    def logistic(self, mix: float) -> float:
        """``1 / (1 + exp(-scale * (mix - shift)))``: the calibrated score of a mix."""
        z = self.scale * (mix - self.shift)
        if z < -700:  # exp would overflow; the score is 0 to double precision anyway
            return 0.0
        return 1.0 / (1.0 + math.exp(-z))

    def score(self, dense: float, lexical: float, bound: float) -> float:
        """The calibrated fused score (0..1) of a passage with these dense and BM25 scores."""
        one = self.scores(np.array([dense], np.float64), np.array([lexical], np.float64), bound)
        return float(one[0])

    def scores(
        self, dense: npt.NDArray[np.float64], lexical: npt.NDArray[np.float64], bound: float
    ) -> npt.NDArray[np.float64]:
        """`score` of many passages at once (their cosines and BM25 scores, in order)."""
        share = np.clip(lexical / bound, 0.0, 1.0) if bound > 0 else np.zeros_like(lexical)
        z = self.scale * (self.alpha * dense + (1 - self.alpha) * share - self.shift)
        with np.errstate(over="ignore"):  # far below the shift: exp overflows to inf, score 0
            out: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-z))
        return out

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _minmax(ranking: Ranking, depth: int | None = None) -> dict[int, float]:
    """Scores mapped to 0..1 by the lowest and highest of the first ``depth`` (all if None)."""
    head = list(ranking) if depth is None else list(ranking[:depth])
    if not head:
        return {}
    scores = [s for _, s in head]
    lo, hi = min(scores), max(scores)
    if hi == lo:
        return {i: 1.0 if s >= hi else 0.0 for i, s in ranking}
    return {i: min(1.0, max(0.0, (s - lo) / (hi - lo))) for i, s in ranking}


def fuse(
    dense: Ranking, lexical: Ranking, fusion: Fusion, *, depth: int | None = None
) -> list[tuple[int, float]]:
    """One ranking from two by rank or min-max fusion (``rrf``, ``convex``), best first;
    ties keep dense order, then lexical order.

    ``depth`` (None: the whole of each ranking) is how many candidates of each
    ranking set the scores: those past it get nothing from that ranking.
    """
    if fusion.independent:
        raise ValueError("calibrated fusion scores each passage: see Fusion.score")
    # every candidate once, in dense order then lexical order (the order ties keep)
    fused: dict[int, float] = dict.fromkeys([i for i, _ in dense], 0.0)
    for i, _ in lexical:
        fused.setdefault(i, 0.0)
    if fusion.method == "rrf":
        weights = (fusion.alpha * 2, (1 - fusion.alpha) * 2)  # alpha 0.5 = plain RRF
        for weight, ranking in zip(weights, (dense, lexical), strict=True):
            head = ranking if depth is None else ranking[:depth]
            for rank, (i, _) in enumerate(head, start=1):
                fused[i] += weight / (fusion.rrf_c + rank)
    else:
        d, lx = _minmax(dense, depth), _minmax(lexical, depth)
        a, b = fusion.alpha, 1 - fusion.alpha
        fused = {i: a * d.get(i, 0.0) + b * lx.get(i, 0.0) for i in fused}
    return sorted(fused.items(), key=lambda kv: -kv[1])  # stable: ties keep that order
