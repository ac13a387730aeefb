"""A query and its options, defined once: the CLI, the library and a server check them here.

`Query` is the one place the search options are defined; `check_query` turns
what a caller gave into one, or raises `UsageError` with the message every
front end shows.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from typing import Literal

from ..errors import UsageError
from .fusion import Fusion
from .rerank import Rerank, check_rerank

Mode = Literal["dense", "lexical", "hybrid"]
MODES: tuple[Mode, ...] = ("dense", "lexical", "hybrid")
DEFAULT_MODE: Mode = "hybrid"
# Calibrated fusion (see fusion), chosen and fitted on SciFact's train queries by
# benchmarks/tune_fusion.py (results/tune_fusion.md): alpha 0.45 had the best nDCG@10 of
# 0.20-0.80 (0.7447, against 0.7368 for the min-max fusion it replaces); scale and shift
# are the logistic fitted to the relevance of the top 10 articles of each train query.
DEFAULT_FUSION = Fusion()  # method="calibrated", alpha=0.45, scale=13.96, shift=0.56
# The top of each ranking that hybrid search fuses, whatever k. With the calibrated fusion
# it sets no score (each passage has its own), only which passages can be found: on
# SciFact's train queries nDCG@10 is 0.7447 at 50, 100, 200 and 400 alike, Recall@100
# 0.9431, 0.9545, 0.9578 and 0.9578. For the min-max and rank fusions it is also the top
# that sets the scores (there nDCG@10 0.7346 at 100, 0.7368 at 400, 0.7371 at 800).
HYBRID_DEPTH = 400

# Limits on what a caller may ask (the CLI, the library and any server share them):
MAX_K = 10_000  # results per query; more is refused (past what the index holds, k is clamped)
MAX_QUERY_CHARS = 10_000  # the model reads a few hundred words; more is almost surely a mistake
MAX_PATH_CHARS = 4_096  # a --path glob (PATH_MAX); keeps SQLite's GLOB within its 50 KB limit


@dataclass(frozen=True)
class Query:
    """A checked query and its options."""

    text: str
    k: int = 5
    mode: Mode = DEFAULT_MODE
    min_score: float | None = None
    since: str | None = None
    until: str | None = None
    path: str | None = None
    by_article: bool = False
    collapse: bool = True
    highlight: bool = False
    fusion: Fusion = DEFAULT_FUSION
    correct: bool = True  # search for close known words in place of unknown ones (spelling)
    rerank: Rerank | None = None  # a second stage over the first ranking's top (see rerank)

    @property
    def filtered(self) -> bool:
        return self.since is not None or self.until is not None or self.path is not None


def _check_date(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return _dt.date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        raise UsageError(f"{name} must be a date like 2024-12-31 (got {value!r})") from None


def check_mode(mode: str | None) -> Mode:
    """The search mode to use (the default for None); raises `UsageError` for an unknown one."""
    for known in MODES:
        if (mode or DEFAULT_MODE) == known:
            return known
    raise UsageError(f"mode must be one of {', '.join(MODES)} (got {mode!r})")


def check_text(text: object, what: str = "query") -> str:
    """``text`` stripped, if it can be searched for; raises `UsageError` otherwise.

    Refuses non-strings, empty or blank text, text longer than `MAX_QUERY_CHARS`,
    and text that is not valid Unicode (lone surrogates, which is what bytes
    that are not UTF-8 become in ``sys.argv``). NUL characters are read as spaces.
    """
    if not isinstance(text, str):
        raise UsageError(f"the {what} must be text (got {type(text).__name__})")
    _check_utf8(text, what)
    text = text.replace("\x00", " ").strip()
    if not text:
        raise UsageError(f"the {what} is empty: give some words to search for")
    if len(text) > MAX_QUERY_CHARS:
        raise UsageError(
            f"the {what} is {len(text):,} characters long; at most {MAX_QUERY_CHARS:,} are "
            "searched for: shorten it to the words that matter"
        )
    return text


def _check_utf8(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(
            f"the {what} is not valid UTF-8 text (it holds bytes or lone surrogates that are "
            "not characters): give it as UTF-8"
        ) from None


def check_k(k: object) -> int:
    """``k`` if it is a usable number of results (1 to `MAX_K`); raises `UsageError` otherwise."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UsageError(f"k must be a whole number of at least 1 (got {k!r})")
    if k > MAX_K:
        raise UsageError(f"k must be at most {MAX_K:,} (got {k:,}): ask for fewer results")
    return k


def check_query(
    query: str,
    k: int = 5,
    min_score: float | None = None,
    *,
    mode: str | None = None,
    since: str | None = None,
    until: str | None = None,
    path: str | None = None,
    by_article: bool = False,
    collapse: bool = True,
    highlight: bool = False,
    fusion: Fusion | None = None,
    correct: bool = True,
    rerank: bool | str | Rerank | None = None,
    rerank_depth: int | None = None,
) -> Query:
    """A `Query`; raises `UsageError` for anything unusable (see `check_text`, `check_k`)."""
    text = check_text(query)
    k = check_k(k)
    checked = check_mode(mode)
    if min_score is not None and (
        isinstance(min_score, bool)
        or not isinstance(min_score, (int, float))
        or not math.isfinite(min_score)
    ):
        raise UsageError(f"min-score must be a finite number (got {min_score!r})")
    low = 0.0 if checked == "hybrid" else -1.0  # hybrid: 0..1; dense: cosine -1..1
    if min_score is not None and checked != "lexical" and not low <= min_score <= 1.0:
        raise UsageError(
            f"min-score is between {low:g} and 1 for {checked} scores (got {min_score}); "
            "only lexical (BM25) scores go above 1"
        )
    second = check_rerank(rerank, rerank_depth)
    if second is not None and checked == "lexical":
        raise UsageError(
            "rerank re-scores with the model's vectors, which lexical mode does not use: "
            "use mode hybrid (the default) or dense"
        )
    since, until = _check_date("since", since), _check_date("until", until)
    if since and until and since > until:
        raise UsageError(f"since ({since}) is after until ({until}): nothing can match")
    if path is not None:
        if not path.strip():
            raise UsageError("path must be a glob such as 'news/2024/*'")
        _check_utf8(path, "path glob")
        if len(path) > MAX_PATH_CHARS:
            raise UsageError(
                f"the path glob is {len(path):,} characters long; at most {MAX_PATH_CHARS:,} "
                "are allowed: shorten it (* matches any run of characters)"
            )
    return Query(
        text=text,
        k=k,
        mode=checked,
        min_score=min_score,
        since=since,
        until=until,
        path=path,
        by_article=by_article,
        collapse=collapse,
        highlight=highlight,
        fusion=fusion or DEFAULT_FUSION,
        correct=bool(correct),
        rerank=second,
    )


