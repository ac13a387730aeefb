"""A second ranking stage (``--rerank``): re-score the top of the first ranking.

No cross-encoder or reranker ships its weights in the package registry (README,
"Quality"), so the methods here work from what the index already holds: the
query's vector, the stored vectors of the candidates, their BM25 scores. Each
idea was measured on SciFact's *train* queries before its test figure was
looked at (``benchmarks/tune_rerank.py``); the ones kept are in `METHODS`.

``prf``
    Rocchio pseudo-relevance feedback on the query vector. The top
    ``feedback`` passages of the first ranking are taken as relevant; the
    query vector moves towards their mean (``q + beta * mean``, made unit
    length again), and every one of the top ``depth`` candidates gets its
    cosine with that vector, fused again with its BM25 score in hybrid mode
    (by the query's own fusion). It costs one small matrix product: the
    candidates' vectors are read from the vector index, nothing is embedded.

Passages below the reranked top keep their first-stage order, after it, with
scores no higher than the lowest reranked one (a ranking by score is the
ranking shown, as `semsearch eval` and trec_eval read it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from ..errors import UsageError

RerankMethod = Literal["prf"]
METHODS: tuple[RerankMethod, ...] = ("prf",)
# What `--rerank` with no method uses: the best of `METHODS` on SciFact's train queries
# (benchmarks/results/tune_rerank.md), all available offline.
BEST_METHOD: RerankMethod = "prf"
DEFAULT_DEPTH = 50
MAX_DEPTH = 1_000  # each reranked candidate's vector is read: keep a query's cost bounded
# Rocchio's settings, chosen on SciFact train (benchmarks/tune_rerank.py): the top 3
# passages, half the weight of the query.
FEEDBACK = 3
BETA = 0.5


@dataclass(frozen=True)
class Rerank:
    """A checked second stage: which method, over how many first-stage candidates."""

    method: RerankMethod = BEST_METHOD
    depth: int = DEFAULT_DEPTH
    feedback: int = FEEDBACK
    beta: float = BETA


# The words a query string or a form may give for rerank (the API: ?rerank=true), read the
# same by every front end; any other word is a method's name.
_YES = frozenset({"true", "yes", "on", "1", "best"})
_NO = frozenset({"false", "no", "off", "0", "none", ""})


def check_rerank(rerank: bool | str | Rerank | None, depth: object = None) -> Rerank | None:
    """The second stage asked for: None for none (False, or ``"false"``, ``"none"``, ``""``),
    `BEST_METHOD` for True (or ``"true"``, ``"best"``), else the named method (a `Rerank`
    as it is, checked); raises `UsageError` for an unknown method or a bad setting."""
    if isinstance(rerank, Rerank):
        _check_setting(rerank)
        if depth is not None:
            rerank = replace(rerank, depth=_check_depth(depth))
        return rerank
    word = rerank.strip().lower() if isinstance(rerank, str) else None
    if rerank is None or rerank is False or word in _NO:
        if depth is not None:
            raise UsageError(
                "rerank-depth applies to a reranked search: ask for rerank too (--rerank)"
            )
        return None
    if rerank is True or word in _YES:
        method: str = BEST_METHOD
    elif isinstance(rerank, str):
        method = rerank.strip().lower()
    else:
        raise UsageError(f"rerank must be true or a method name (got {rerank!r})")
    for known in METHODS:
        if method == known:
            return Rerank(method=known, depth=_check_depth(depth))
    raise UsageError(
        f"rerank method must be one of {', '.join(METHODS)} (got {rerank!r}); "
        "rerank alone (--rerank, rerank=true) uses the best one"
    )


def _check_setting(setting: Rerank) -> None:
    """A `Rerank` built by hand (benchmarks/tune_rerank.py) is checked as the options are:
    its feedback slices the candidates (0 or less would silently use none, or all but
    the last ones) and its method picks the code that runs."""
    if setting.method not in METHODS:
        raise UsageError(
            f"rerank method must be one of {', '.join(METHODS)} (got {setting.method!r})"
        )
    _check_depth(setting.depth)
    fb = setting.feedback
    if isinstance(fb, bool) or not isinstance(fb, int) or fb < 1:
        raise UsageError(f"rerank feedback must be a whole number of at least 1 (got {fb!r})")
    beta = setting.beta
    if isinstance(beta, bool) or not isinstance(beta, int | float) or not 0 <= beta < float("inf"):
        raise UsageError(f"rerank beta must be a number of at least 0 (got {beta!r})")


def _check_depth(depth: object) -> int:
    if depth is None:
        return DEFAULT_DEPTH
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise UsageError(f"rerank-depth must be a whole number of at least 1 (got {depth!r})")
    if depth > MAX_DEPTH:
        raise UsageError(
            f"rerank-depth must be at most {MAX_DEPTH:,} (got {depth:,}): the top 50 "
            "(the default) holds what reranking can lift"
        )
    return depth


def rocchio(
    qvec: npt.NDArray[np.float32], feedback: npt.NDArray[np.float32], beta: float
) -> npt.NDArray[np.float32]:
    """The query vector moved towards the mean of ``feedback`` (rows), unit length."""
    q = qvec.reshape(-1).astype(np.float32)
    if len(feedback) == 0 or beta == 0.0:
        return q
    moved = q + np.float32(beta) * feedback.mean(axis=0, dtype=np.float32)
    norm = float(np.linalg.norm(moved))
    return q if norm == 0.0 else (moved / np.float32(norm)).astype(np.float32)


def reorder(
    ranked: Sequence[tuple[int, float]], ids: Sequence[int], values: npt.NDArray[np.float64]
) -> list[tuple[int, float]]:
    """``ranked`` with its first ``len(ids)`` passages (``ids``, in ranked order) re-scored
    by ``values`` and sorted by them, the rest after in their order, each score no higher
    than the one before it (ties broken as the first stage broke them)."""
    order = np.argsort(-values, kind="stable")
    head = [(ids[j], float(values[j])) for j in order.tolist()]
    out = head
    last = head[-1][1] if head else np.inf
    for i, s in ranked[len(ids) :]:
        last = s if s < last else float(np.nextafter(last, -np.inf))
        out.append((i, last))
    return out
