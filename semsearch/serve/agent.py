"""The MCP server: semsearch's answers as tools for LLM agents, over stdio.

``semsearch mcp --index DIR`` runs `run_stdio`: it opens the index (a missing
or damaged one raises before anything is served), builds the server with
`build_server` over one `Service`, and serves the Model Context Protocol on
stdin/stdout until the client closes stdin. Four tools, read-only:

- ``search`` the passages that answer a question (the object of
  ``semsearch query --json`` as structured content);
- ``get_passage`` one passage with its neighbours, to read before quoting;
- ``similar`` the passages most like a given one (its stored vector);
- ``index_info`` what the index holds and how fresh it is.

Every answer is text an agent can cite (one block per passage: number, title,
date, file, paragraph, score, passage_id, then the passage) plus the same
JSON dict that `Service` returns, as structured content. A bad argument comes
back as a tool error (``isError``) whose text is the library's one line, the
line the command line prints; the server goes on serving.

stdout is the protocol: nothing else is written there (the SDK points file
descriptor 1 at stderr while it serves; status lines go to stderr). The query
model loads on the first ``search``; the other tools read SQLite only.
This module imports the MCP SDK: import it only to serve.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field, ValidationError

from .. import __version__
from ..errors import SemsearchError
from ..help import OPTION_HELP
from ..query import MODES
from .service import DEFAULT_K, MAX_CONTEXT, MAX_K, MAX_QUERY_CHARS, Service

NAME = "semsearch"

INSTRUCTIONS = (
    "semsearch searches the user's own indexed notes and articles by meaning (and by "
    "keywords). Call `search` with the user's question in plain words; read a promising "
    "result in context with `get_passage` before quoting it; use `similar` to find more "
    "passages like a good result; `index_info` tells what the index holds and when it "
    "was last updated. Cite passages by title, date, file and paragraph, as the results "
    "give them."
)

SEARCH_DESCRIPTION = (
    "Search the user's indexed notes and articles for the passages that best answer a "
    "question. Use it whenever the user asks about something their own documents may "
    "cover. Write the query as a natural-language question or as keywords (names, "
    "terms); mode 'hybrid' (default) combines meaning and exact words, 'dense' meaning "
    "only, 'lexical' exact words only (best for names, codes, rare terms). Narrow by date "
    "with since/until and by file with path. Returns passages best first, each with its "
    "title, date, file, paragraph, score and passage_id: cite title, date, file and "
    "paragraph; pass passage_id to get_passage or similar."
)
GET_PASSAGE_DESCRIPTION = (
    "Read one passage (a passage_id from search or similar) in its document, with the "
    "passages just before and after it. Use it to read a result in context before "
    "quoting or summarising it, or to follow an argument across paragraphs."
)
SIMILAR_DESCRIPTION = (
    "Find more passages like a given one (a passage_id from search): the passages "
    "nearest in meaning, from other articles or the same one; the passage itself and its "
    "near-identical copies are left out. Use it to gather more evidence on a topic once "
    "one good result is found."
)
INDEX_INFO_DESCRIPTION = (
    "What the index holds and how fresh it is: the folders indexed, how many documents, "
    "passages and files, the embedding model, and when it was created and last updated. "
    "Use it when the user asks what can be searched, or to explain an empty result."
)

_READ_ONLY = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)

# Parameters. Limits are published in the schema but checked by the library, so that a
# bad value gets the library's one line (the command line's), not a validator's report.
Query = Annotated[
    str,
    Field(
        description="The question or keywords, e.g. 'who attends the parade' "
        f"(at most {MAX_QUERY_CHARS} characters).",
        json_schema_extra={"minLength": 1, "maxLength": MAX_QUERY_CHARS},
    ),
]
K = Annotated[
    int,
    Field(
        description=f"How many passages to return, 1 to {MAX_K}.",
        json_schema_extra={"minimum": 1, "maximum": MAX_K},
    ),
]
Mode = Annotated[
    str,
    Field(description=OPTION_HELP["mode"], json_schema_extra={"enum": list(MODES)}),
]
Since = Annotated[str | None, Field(description=OPTION_HELP["since"])]
Until = Annotated[str | None, Field(description=OPTION_HELP["until"])]
PathGlob = Annotated[str | None, Field(description=OPTION_HELP["path"])]
RerankFlag = Annotated[bool, Field(description=OPTION_HELP["rerank"])]
PassageId = Annotated[int, Field(description="A passage_id from the results of search or similar.")]
Neighbours = Annotated[
    int,
    Field(
        description=f"How many passages to show before and after it, 0 to {MAX_CONTEXT}.",
        json_schema_extra={"minimum": 0, "maximum": MAX_CONTEXT},
    ),
]


# --------------------------------------------------------------------------- formatting


def citation(hit: dict[str, Any], number: int | None = None) -> str:
    """The line that names a passage: ``[1] Title (2025-08-28) — file, paragraph 4 —
    score 0.734 — passage_id 123`` (no number, score or date where there is none)."""
    head = f"[{number}] " if number is not None else ""
    title = hit.get("title") or "(untitled)"
    date = f" ({hit['date']})" if hit.get("date") else ""
    where = _where(hit)
    score = f" — score {hit['score']:.3f}" if "score" in hit else ""
    return f"{head}{title}{date} — {where}{score} — passage_id {hit['passage_id']}"


def _where(hit: dict[str, Any]) -> str:
    """``file, paragraph N`` (``file#key`` for a JSON Lines record, ``file p.N`` for a
    page of a PDF; the piece of a split paragraph)."""
    file = hit.get("abspath") or hit.get("path") or ""
    if hit.get("key"):
        file = f"{file}#{hit['key']}"
    if hit.get("page"):  # a PDF's page, an EPUB's chapter
        file = f"{file} p.{hit['page']}"
    where = f"{file}, paragraph {hit['paragraph']}"
    if int(hit.get("pieces") or 1) > 1:
        where += f" (part {hit['piece']} of {hit['pieces']})"
    return where


def format_hits(data: dict[str, Any]) -> list[str]:
    """One text block per result of a `Service.search` or `Service.similar` answer; a
    single block saying so when there is none."""
    results = data.get("results") or []
    if not results:
        return [
            f"No passages found for {data.get('query', '')!r}. Try other words, "
            "mode 'lexical' for exact names, or looser filters (since, until, path)."
        ]
    blocks = []
    if data.get("corrected_query"):
        blocks.append(f"showing results for: {data['corrected_query']}")
    for number, hit in enumerate(results, 1):
        block = f"{citation(hit, int(hit.get('rank') or number))}\n{hit.get('text', '')}"
        also = hit.get("also_in") or []
        if also:
            others = "; ".join(_where(src) for src in also)
            block += f"\n(the same passage is also in: {others})"
        blocks.append(block)
    return blocks


def format_passage(data: dict[str, Any]) -> str:
    """A `Service.passage` answer as one text: the passage's citation, then its
    neighbours and itself in reading order, each headed by paragraph and passage_id."""
    target = data["passage"]
    doc = data["document"]
    lines = [
        citation(target),
        f"passage {data['position']} of {doc['passages']} in this document; "
        "the passages around it in reading order:",
    ]
    shown = [*data.get("before", []), target, *data.get("after", [])]
    for p in shown:
        mark = " (this passage)" if p["passage_id"] == target["passage_id"] else ""
        lines.append(f"\n[paragraph {p['paragraph']} — passage_id {p['passage_id']}{mark}]")
        lines.append(str(p.get("text", "")))
    return "\n".join(lines)


def format_info(data: dict[str, Any]) -> str:
    """A `Service.info` answer as a few lines."""
    roots = ", ".join(data.get("roots") or []) or "(none)"
    return "\n".join(
        [
            f"index {data['path']}",
            f"indexed: {roots}",
            ", ".join(_count(data[n], n[:-1]) for n in ("documents", "passages", "files")),
            f"model {data['model']} ({data.get('backend', 'torch')}, dimension "
            f"{data['dimension']})",
            f"created {data.get('created_at') or '?'}, last updated "
            f"{data.get('updated_at') or '?'} (generation {data.get('generation', 0)})",
        ]
    )


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}" + ("" if n == 1 else "s")


def _answer(
    ask: Callable[[], dict[str, Any]], show: Callable[[dict[str, Any]], str | list[str]]
) -> CallToolResult:
    """The tool result of ``ask()``: ``show``'s text (one block per string) and the dict
    as structured content; a library error as a tool error holding its one line."""
    try:
        data = ask()
    except SemsearchError as exc:
        return CallToolResult(content=[TextContent(type="text", text=str(exc))], is_error=True)
    shown = show(data)
    texts = [shown] if isinstance(shown, str) else list(shown)
    return CallToolResult(
        content=[TextContent(type="text", text=t) for t in texts], structured_content=data
    )


# --------------------------------------------------------------------------- the server


class _Server(MCPServer[Any]):
    """`MCPServer` whose argument errors are one line, as the library's are."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError) and not isinstance(exc, UnexpectedToolError):
                raise ToolError(bad_arguments(cause)) from cause
            raise


def bad_arguments(error: ValidationError) -> str:
    """A validator's report of a tool's arguments as one line:
    ``bad arguments: k: Input should be a valid integer (got 'ten')``."""
    parts = []
    for e in error.errors():
        where = ".".join(str(x) for x in e.get("loc", ())) or "arguments"
        shown = repr(e.get("input"))
        if len(shown) > 60:  # a value can be any size: the line stays one short line
            shown = shown[:57] + "..."
        got = f" (got {shown})" if e.get("type") != "missing" else ""
        parts.append(f"{where}: {e.get('msg', 'invalid')}{got}")
    return "bad arguments: " + "; ".join(parts)


def build_server(service: Service) -> MCPServer[Any]:
    """The MCP server of ``service``: the four tools, their descriptions and schemas."""
    server = _Server(
        name=NAME,
        title="semsearch: search your own notes",
        instructions=INSTRUCTIONS,
        version=__version__,
        log_level="WARNING",  # stderr is the client's log: requests are not news
    )

    @server.tool(description=SEARCH_DESCRIPTION, annotations=_READ_ONLY)
    def search(
        query: Query,
        k: K = DEFAULT_K,
        mode: Mode = "hybrid",
        since: Since = None,
        until: Until = None,
        path: PathGlob = None,
        rerank: RerankFlag = False,
    ) -> CallToolResult:
        return _answer(
            lambda: service.search(
                query, k, mode=mode, since=since, until=until, path=path, rerank=rerank or None
            ),
            format_hits,
        )

    @server.tool(description=GET_PASSAGE_DESCRIPTION, annotations=_READ_ONLY)
    def get_passage(passage_id: PassageId, context: Neighbours = 2) -> CallToolResult:
        return _answer(lambda: service.passage(passage_id, context), format_passage)

    @server.tool(description=SIMILAR_DESCRIPTION, annotations=_READ_ONLY)
    def similar(passage_id: PassageId, k: K = DEFAULT_K) -> CallToolResult:
        return _answer(lambda: service.similar(passage_id, k), format_hits)

    @server.tool(description=INDEX_INFO_DESCRIPTION, annotations=_READ_ONLY)
    def index_info() -> CallToolResult:
        return _answer(service.info, format_info)

    return server


def _status(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_stdio(
    index_dir: str | os.PathLike[str], on_interrupt: Callable[[], None] | None = None
) -> None:
    """Serve the index in ``index_dir`` over MCP on stdin/stdout until stdin closes.

    Raises `SemsearchError` (not found, damaged, newer) before serving anything.
    ``on_interrupt`` is called on Ctrl-C (SIGINT) and must end the process itself
    (``os._exit``): the SDK reads stdin in a worker thread that no cancellation
    reaches, so unwinding would wait for the client's next line. Nothing is lost:
    the server only reads the index. Without it, Ctrl-C is Python's default.
    """
    from ..index import Index

    with Index.open(index_dir, status=_status) as index:
        index.info()  # a damaged index fails here, before the client is told anything
        server = build_server(Service(index))
        if on_interrupt is not None and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            signal.signal(signal.SIGINT, lambda _signum, _frame: on_interrupt())
        server.run("stdio")


__all__ = [
    "INSTRUCTIONS",
    "bad_arguments",
    "build_server",
    "citation",
    "format_hits",
    "format_info",
    "format_passage",
    "run_stdio",
]
