"""Queries: the options (defined once), retrieval, fusion, grouping and highlights.

Data flows one way: `options.check_query` makes a `Query`; `searcher.Searcher`
filters and retrieves candidates (dense from the vectors, `lexical` from
SQLite FTS5, fused by `fusion`), `group` turns them into `Hit`s and
`highlight` marks their best sentences. `similar` ranks from stored vectors
instead of a query's.
"""

from __future__ import annotations

from .hits import Hit, Results, Source, display_path, split_address
from .options import (
    DEFAULT_MODE,
    MAX_K,
    MAX_PATH_CHARS,
    MAX_QUERY_CHARS,
    MODES,
    Query,
    check_k,
    check_mode,
    check_query,
    check_text,
)

__all__ = [
    "DEFAULT_MODE",
    "MAX_K",
    "MAX_PATH_CHARS",
    "MAX_QUERY_CHARS",
    "MODES",
    "Hit",
    "Query",
    "Results",
    "Source",
    "check_k",
    "check_mode",
    "check_query",
    "check_text",
    "display_path",
    "split_address",
]
