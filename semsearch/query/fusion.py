"""Fusing a dense and a lexical ranking into one (hybrid search).

Two methods, both over the top ``depth`` candidates of each ranking:

- ``rrf``: reciprocal rank fusion, ``sum(w / (c + rank))`` over the ranks up
  to ``depth``; ignores scores.
- ``convex``: ``alpha * dense + (1 - alpha) * lexical`` after min-max
  normalising each list's scores to 0..1 with the lowest and highest score of
  its top ``depth`` (a passage missing from a list gets 0).

A ranking may hold more than ``depth`` candidates (a search asking for more
results than that); those past it are normalised with the same bounds and
clipped to 0..1, so they get 0 from that ranking (they score no higher than
the top ``depth``'s lowest), and rrf gives them nothing either. A passage's
fused score therefore depends on the query and the collection, never on how
many candidates were fetched: the same passage scores the same for k=5 and
k=150, and a minimum score means the same for every k.

The defaults were chosen on SciFact's *train* queries (benchmarks/tune_fusion.py)
and are reported on the test queries only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Ranking = Sequence[tuple[int, float]]  # (id, score), best first
FusionMethod = Literal["rrf", "convex"]


@dataclass(frozen=True)
class Fusion:
    """How to fuse; recorded nowhere, chosen per query."""

    method: FusionMethod = "convex"
    alpha: float = 0.5  # convex: weight of the dense score
    rrf_c: float = 60.0  # rrf: the rank constant

    def __post_init__(self) -> None:
        if self.method not in ("rrf", "convex"):
            raise ValueError(f"unknown fusion method {self.method!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError("alpha must be between 0 and 1")


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
    dense: Ranking, lexical: Ranking, fusion: Fusion = Fusion(), *, depth: int | None = None
) -> list[tuple[int, float]]:
    """One ranking from two, best first; ties keep dense order, then lexical order.

    ``depth`` (None: the whole of each ranking) is how many candidates of each
    ranking set the scores, see the module's docstring.
    """
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
