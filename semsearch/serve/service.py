"""`Service`: what every front end (HTTP API, search page, MCP) asks of one open `Index`.

Each method takes the values of a request, calls one library function and
returns the JSON-ready answer, the same object the command line prints for the
same question (`semsearch query --json`, `semsearch info --json`, ...). Bad
values raise `UsageError` with the message the command line prints; every
other `SemsearchError` passes through. The `Index` is thread-safe: one
`Service` serves every request, and each answer comes from the newest
committed generation when the request starts (another process's commit
included), never from a mix of two.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import PassageNotFoundError, SemsearchError, UsageError
from ..query import MAX_QUERY_CHARS, check_mode
from ..query import output as _output

if TYPE_CHECKING:
    from ..index import Index

MAX_K = 100  # results per request: a page or an agent reads a few; the library allows more
MAX_CONTEXT = 10  # neighbours each side of a passage
DEFAULT_K = 10


class Service:
    """The answers of one open `Index` (``index``), for front ends."""

    def __init__(self, index: Index, label: str | None = None) -> None:
        self.index = index
        self.label = label if label is not None else index.folder  # "index" in answers

    def search(
        self,
        q: str,
        k: int = DEFAULT_K,
        *,
        mode: str = "hybrid",
        since: str | None = None,
        until: str | None = None,
        path: str | None = None,
        by_article: bool = False,
        highlight: bool = True,
        correct: bool = True,
        rerank: bool | str | None = None,
        rerank_depth: int | None = None,
    ) -> dict[str, Any]:
        """`semsearch query --json`'s object for this query (``corrected_query``: the query as
        searched for when some of its words were typos, else None)."""
        check_k(k)
        hits = self.index.search(
            q,
            k=k,
            mode=check_mode(mode),
            since=since or None,
            until=until or None,
            path=path or None,
            by_article=by_article,
            highlight=highlight,
            correct=correct,
            rerank=rerank,
            rerank_depth=rerank_depth,
        )
        return _output.results_dict(q, self.label, self.index.model, hits)

    def similar(
        self,
        passage_id: int,
        k: int = DEFAULT_K,
        *,
        since: str | None = None,
        until: str | None = None,
        path: str | None = None,
        by_article: bool = False,
    ) -> dict[str, Any]:
        """`semsearch similar --id N --json`'s object: the passages nearest to a stored one."""
        check_k(k)
        hits = self.index.similar(
            passage_id,
            k,
            since=since or None,
            until=until or None,
            path=path or None,
            by_article=by_article,
        )
        data = _output.results_dict(
            f"like passage {passage_id}", self.label, self.index.model, hits
        )
        return {**data, "like": [passage_id]}

    def passage(self, passage_id: int, context: int = 2) -> dict[str, Any]:
        """One passage with its article and up to ``context`` neighbours each side."""
        if (
            isinstance(context, bool)
            or not isinstance(context, int)
            or not (0 <= context <= MAX_CONTEXT)
        ):
            raise UsageError(
                f"context must be a whole number from 0 to {MAX_CONTEXT} (got {context!r})"
            )
        return _output.passage_view_dict(
            self.index.passage(passage_id, context=context), self.label
        )

    def info(self) -> dict[str, Any]:
        """`semsearch info --json`'s object."""
        return self.index.info().to_dict()

    def health(self) -> dict[str, Any]:
        """``{"status": "ok", "generation": N, "passages": N}``."""
        info = self.index.info()
        return {"status": "ok", "generation": info.generation, "passages": info.passages}


def error_status(exc: SemsearchError) -> int:
    """The HTTP status of a library error, for every HTTP front end (API and page): 404 an
    unknown passage, 400 another bad value, 503 an index that cannot answer."""
    if isinstance(exc, PassageNotFoundError):
        return 404
    if isinstance(exc, UsageError):
        return 400
    return 503


def check_k(k: int) -> None:
    """Refuse a ``k`` a front end does not serve (the library's own bounds are wider)."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise UsageError(f"k must be a whole number from 1 to {MAX_K} (got {k!r})")


__all__ = [
    "DEFAULT_K",
    "MAX_CONTEXT",
    "MAX_K",
    "MAX_QUERY_CHARS",
    "Service",
    "check_k",
    "error_status",
]
