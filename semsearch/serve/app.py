"""The HTTP API over one `Service` (FastAPI): JSON under ``/api``, ``/health``, the docs.

Every answer is JSON. A good request gets exactly what the command line prints
for the same question (``/api/search`` is `semsearch query --json`'s object).
A bad one gets a 4xx status and ``{"error": "<one line>"}``: the line the
command line prints for a bad argument (400), an unknown passage (404), a
missing or wrong token (401), a ``Host`` that is not this server (421); an index
that cannot answer (damaged, locked) is a 503 with its line, and anything
unexpected a 500 whose line says so, the traceback going to the server log
only. One log line per request goes to the ``semsearch.serve`` logger.

The API is read-only: GET only, plus ``POST /login`` that turns the token into
a cookie for the page. ``/docs`` is a self-contained page generated from the
OpenAPI schema (``/openapi.json``), since the default one loads Swagger UI from
a CDN and the machines that run semsearch are often offline.
"""

from __future__ import annotations

import html
import logging
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection

from .. import __version__
from ..errors import SemsearchError
from ..help import OPTION_HELP
from . import page
from .security import LOOPBACK_HOSTS, TOKEN_COOKIE, Security
from .service import DEFAULT_K, MAX_CONTEXT, MAX_K, MAX_QUERY_CHARS, Service, error_status

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("semsearch.serve")

MAX_LOGIN_BODY = 8192  # bytes of a POST /login form
MAX_LOGGED_PATH = 300  # characters of a request's path and query in the log
_REDACTED_PARAMS = frozenset({"token", "access_token"})  # never logged, even if sent by mistake


class ErrorBody(BaseModel):
    """What every refused request gets."""

    error: str


def create_app(
    service: Service,
    *,
    token: str | None = None,
    allowed_hosts: Iterable[str] | None = LOOPBACK_HOSTS,
    cors_origins: Sequence[str] = (),
) -> FastAPI:
    """The app over ``service``: the API under ``/api``, ``/health``, ``/docs``, ``POST /login``
    and the search page at ``/``.

    ``token`` (``None``: none asked) guards every ``/api`` request; ``allowed_hosts`` are the
    ``Host`` names answered (``None``: any); ``cors_origins`` are the web origins allowed to
    read the API from a browser (none by default).
    """
    security = Security(token, allowed_hosts)
    app = FastAPI(
        title="semsearch",
        version=__version__,
        summary="Semantic search over your own folders of articles.",
        description=_API_DESCRIPTION,
        docs_url=None,
        redoc_url=None,
    )
    app.state.security = security
    app.state.service = service
    _install_errors(app)
    _install_routes(app, service, security)
    page.install(app, service)
    _schema_without_422(app)
    app.add_middleware(_Guard, security=security)
    if cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET"],
            allow_headers=["Authorization"],
        )
    return app


_API_DESCRIPTION = f"""\
Every endpoint answers JSON. A good request gets the object the command line prints for
the same question (`/api/search` is what `semsearch query --json` prints). A bad one gets
a 4xx status and `{{"error": "<one line>"}}`, the line the command line prints.

When the server was started with a token (`--token` or `SEMSEARCH_TOKEN`), every `/api`
request must carry it: `Authorization: Bearer TOKEN`. `/health` stays open.

Limits: `k` from 1 to {MAX_K}, a query of at most {MAX_QUERY_CHARS:,} characters, `context`
from 0 to {MAX_CONTEXT}. The API is read-only.
"""

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "A bad parameter; the line says which and why."},
    401: {"model": ErrorBody, "description": "The server has a token and the request lacks it."},
    503: {"model": ErrorBody, "description": "The index cannot answer (damaged, locked, gone)."},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "The index holds no passage with this id."}
}

# the parameters, described once for the schema and /docs
Since = Annotated[str | None, Query(description=OPTION_HELP["since"])]
Until = Annotated[str | None, Query(description=OPTION_HELP["until"])]
PathGlob = Annotated[str | None, Query(description=OPTION_HELP["path"])]
K = Annotated[int, Query(description=f"How many passages to return, 1 to {MAX_K}.")]
PassageId = Annotated[
    int, Path(alias="id", description="A passage id: the `passage_id` of a hit of `/api/search`.")
]


def _install_routes(app: FastAPI, service: Service, security: Security) -> None:
    @app.get(
        "/api/search",
        tags=["search"],
        summary="Search the index",
        response_description="`query`, `corrected_query`, `index`, `model` and `results` "
        "(best first).",
        description="The passages that best match `q`, best first: exactly the object "
        "`semsearch query --json` prints for the same query and options.",
        responses=_ERRORS,
    )
    def search(
        q: Annotated[
            str,
            Query(
                description=f"What to search for, in your own words (at most "
                f"{MAX_QUERY_CHARS:,} characters)."
            ),
        ],
        k: K = DEFAULT_K,
        mode: Annotated[str, Query(description=OPTION_HELP["mode"])] = "hybrid",
        since: Since = None,
        until: Until = None,
        path: PathGlob = None,
        by_article: Annotated[
            bool, Query(description="Only the best passage of each article.")
        ] = False,
        highlight: Annotated[
            bool,
            Query(description="Mark each passage's best sentence(s) (`highlights` spans)."),
        ] = True,
        correct: Annotated[
            bool,
            Query(
                description="Search for the closest known word in place of a word the index "
                "does not know (a typo); `corrected_query` is then the query as searched for "
                "(null when nothing was corrected). false: the words as given."
            ),
        ] = True,
        rerank: Annotated[
            str | None,
            Query(
                description=OPTION_HELP["rerank"]
                + " true: the best method; or a method's name (prf)."
            ),
        ] = None,
        rerank_depth: Annotated[
            int | None, Query(description=OPTION_HELP["rerank_depth"] + " Default 50.")
        ] = None,
    ) -> JSONResponse:
        return JSONResponse(
            service.search(
                q,
                k,
                mode=mode,
                since=since,
                until=until,
                path=path,
                by_article=by_article,
                highlight=highlight,
                correct=correct,
                rerank=rerank,
                rerank_depth=rerank_depth,
            )
        )

    @app.get(
        "/api/passages/{id}",
        tags=["passages"],
        summary="One passage in its article",
        response_description="`passage`, `document`, `before` and `after`.",
        description="A stored passage with its article (title, date, path, paragraph, span) "
        "and up to `context` passages of the same article before and after it.",
        responses={**_ERRORS, **_NOT_FOUND},
    )
    def passage(
        passage_id: PassageId,
        context: Annotated[
            int, Query(description=f"Passages to show on each side, 0 to {MAX_CONTEXT}.")
        ] = 2,
    ) -> JSONResponse:
        return JSONResponse(service.passage(passage_id, context))

    @app.get(
        "/api/similar/{id}",
        tags=["passages"],
        summary="More like this passage",
        response_description="As `/api/search`, with `like`: the passage ids asked about.",
        description="The passages nearest in meaning to a stored one, from its stored vector "
        "(nothing is embedded); the passage itself and its near-identical copies are left out. "
        "The object `semsearch similar --id N --json` prints.",
        responses={**_ERRORS, **_NOT_FOUND},
    )
    def similar(
        passage_id: PassageId,
        k: K = DEFAULT_K,
        since: Since = None,
        until: Until = None,
        path: PathGlob = None,
        by_article: Annotated[
            bool, Query(description="Only the nearest passage of each article.")
        ] = False,
    ) -> JSONResponse:
        return JSONResponse(
            service.similar(
                passage_id, k, since=since, until=until, path=path, by_article=by_article
            )
        )

    @app.get(
        "/api/info",
        tags=["index"],
        summary="What the index holds",
        response_description="The index's counts, model, size, dates and roots.",
        description="Counts, model, size, dates and roots: what `semsearch info --json` prints.",
        responses=_ERRORS,
    )
    def info() -> JSONResponse:
        return JSONResponse(service.info())

    @app.get(
        "/health",
        tags=["index"],
        summary="Is the server up",
        response_description="The server answers from this generation of the index.",
        description='`{"status": "ok", "generation": N, "passages": N}`: the generation '
        "grows with every commit of the index. Needs no token (it tells nothing of the notes).",
        responses={503: _ERRORS[503]},
    )
    def health() -> JSONResponse:
        return JSONResponse(service.health())

    @app.post(
        "/login",
        tags=["index"],
        summary="Give the page the token",
        description="A form with the field `token` (urlencoded). The right token sets the "
        "`semsearch_token` cookie (HttpOnly, SameSite=Strict) and redirects to `/`; a wrong "
        "one redirects to `/?login=failed`. Programs send `Authorization: Bearer` instead.",
        status_code=303,
        response_class=RedirectResponse,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "properties": {"token": {"type": "string"}},
                            "required": ["token"],
                        }
                    }
                },
            }
        },
    )
    async def login(request: Request) -> RedirectResponse:
        body = await _read_limited(request, MAX_LOGIN_BODY)
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace")) if body else {}
        given = (form.get("token") or [""])[0]
        if security.token is None:
            return RedirectResponse("/", status_code=303)
        if not given or not security.check_token(given):
            return RedirectResponse("/?login=failed", status_code=303)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(TOKEN_COOKIE, given, httponly=True, samesite="strict", path="/")
        return response

    docs_page: list[str] = []  # made once, on the first request (every route is in by then)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        if not docs_page:
            docs_page.append(docs_html(app.openapi()))
        return HTMLResponse(docs_page[0])


def _schema_without_422(app: FastAPI) -> None:
    """Bad parameters get 400 here, not FastAPI's 422: the schema says so."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for methods in schema.get("paths", {}).values():
                for op in methods.values():
                    op.get("responses", {}).pop("422", None)
            models = schema.get("components", {}).get("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                models.pop(unused, None)
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


async def _read_limited(request: Request, limit: int) -> bytes:
    """The request body, or nothing if it is longer than ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return b""
        chunks.append(chunk)
    return b"".join(chunks)


# --------------------------------------------------------------------------- errors


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": _one_line(message)}, status_code=status, headers=headers)


def _one_line(message: str, limit: int = 500) -> str:
    line = " ".join(str(message).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def validation_line(errors: Sequence[Any]) -> str:
    """FastAPI's validation errors as one readable line naming the first bad parameter."""
    if not errors:
        return "bad request (see /docs)"
    first = errors[0]
    loc = [str(part) for part in first.get("loc", ())]
    where = loc[0] if loc else "request"
    name = loc[-1] if len(loc) > 1 else ""
    kind = first.get("type", "")
    what = f"{where} parameter {name!r}" if name else where
    if kind == "missing":
        return f"{what} is required (see /docs)"
    got = repr(first.get("input"))
    got = got if len(got) <= 60 else got[:57] + "..."
    need = _NEEDS.get(kind)
    if need:
        return f"{what} must be {need} (got {got})"
    return f"{what}: {first.get('msg', 'is not valid')} (got {got})"


_NEEDS = {
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "float_parsing": "a number",
    "string_type": "text",
}


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(SemsearchError)
    def _library_error(request: Request, exc: SemsearchError) -> JSONResponse:
        return _error(error_status(exc), str(exc))

    @app.exception_handler(RequestValidationError)
    def _bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, validation_line(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        path = request.url.path
        if exc.status_code == 404:
            message = f"no such page or endpoint: {path} (the API is described at /docs)"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {path}: the API is read-only (GET)"
        else:
            message = str(exc.detail)
        return _error(exc.status_code, message, dict(exc.headers or {}))


# --------------------------------------------------------------------------- middleware


class _Guard:
    """Refuses other hosts (421) and token-less API requests (401), answers ``HEAD`` as
    ``GET`` without the body (``curl -I``, uptime checks), turns an unexpected exception
    into a 500 line (its traceback to the log), and logs one line per request."""

    def __init__(self, app: ASGIApp, security: Security) -> None:
        self.app = app
        self.security = security

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0
        head = scope.get("method") == "HEAD"  # answered as GET is, without the body

        async def send_logged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        try:
            refusal = self._refusal(HTTPConnection(scope))
            if refusal is not None:
                await refusal(scope, receive, send_logged)
            else:
                await self.app({**scope, "method": "GET"} if head else scope, receive, send_logged)
        except Exception as exc:
            log.exception("%s %s failed", scope.get("method", ""), _logged_path(scope))
            if status:  # the answer had begun: nothing more can be sent
                raise
            message = f"internal error: {type(exc).__name__}: {exc} (the server log has details)"
            await _error(500, message)(scope, receive, send_logged)
        finally:
            ms = (time.perf_counter() - start) * 1000
            log.info("%s %s %d %.1fms", scope.get("method", ""), _logged_path(scope), status, ms)

    def _refusal(self, request: HTTPConnection) -> JSONResponse | None:
        if not self.security.host_allowed(request):
            host = request.headers.get("host", "")
            return _error(
                421,
                f"this server does not answer to the host {host!r}: use http://127.0.0.1 or "
                "http://localhost (requests naming other hosts are refused against DNS rebinding)",
            )
        path: str = request.scope.get("path", "")
        if path.startswith("/api/") and not self.security.authorized(request):
            given = bool(request.headers.get("authorization") or request.cookies.get(TOKEN_COOKIE))
            why = "the token sent is wrong" if given else "this server needs a token"
            return _error(
                401,
                f"{why}: send the header 'Authorization: Bearer TOKEN' with the token the "
                "server was started with (--token or SEMSEARCH_TOKEN)",
                {"WWW-Authenticate": "Bearer"},
            )
        return None


def _logged_path(scope: Scope) -> str:
    """The request's path and query, any token parameter blanked."""
    path: str = scope.get("path", "")
    raw: bytes = scope.get("query_string", b"")
    if not raw:
        return path
    query = raw.decode("latin-1")
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    if any(name.lower() in _REDACTED_PARAMS for name, _ in pairs):
        query = urllib.parse.urlencode(
            [(n, "***" if n.lower() in _REDACTED_PARAMS else v) for n, v in pairs]
        )
    line = f"{path}?{query}"
    if len(line) > MAX_LOGGED_PATH:
        line = f"{line[: MAX_LOGGED_PATH - 30]}... ({len(line):,} characters)"
    return line


# --------------------------------------------------------------------------- /docs


def docs_html(schema: dict[str, Any]) -> str:
    """A self-contained page describing the API from its OpenAPI ``schema`` (no external
    script, style or font)."""
    info = schema.get("info", {})
    e = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{e(info.get('title', 'API'))} API</title><style>{_DOCS_CSS}</style></head>",
        f"<body><main><h1>{e(info.get('title', 'API'))} API "
        f"<small>{e(str(info.get('version', '')))}</small></h1>",
    ]
    if info.get("summary"):
        parts.append(f"<p>{e(info['summary'])}</p>")
    parts.append(_paragraphs(info.get("description", "")))
    parts.append(
        "<p>The machine-readable schema: <a href='/openapi.json'><code>/openapi.json"
        "</code></a>.</p>"
    )
    for path, methods in schema.get("paths", {}).items():
        for method, op in methods.items():
            parts.append(_docs_operation(path, method, op))
    parts.append("</main></body></html>")
    return "\n".join(parts)


def _docs_operation(path: str, method: str, op: dict[str, Any]) -> str:
    e = html.escape
    anchor = e(op.get("operationId", f"{method}-{path}"))
    out = [
        f"<section id='{anchor}'><h2><span class='m'>{e(method.upper())}</span> "
        f"<code>{e(path)}</code></h2>"
    ]
    if op.get("summary"):
        out.append(f"<p class='s'>{e(op['summary'])}</p>")
    out.append(_paragraphs(op.get("description", "")))
    params = op.get("parameters", [])
    if params:
        out.append(
            "<table><tr><th>parameter</th><th>in</th><th>type</th><th>default</th>"
            "<th>description</th></tr>"
        )
        for p in params:
            schema = p.get("schema", {})
            kind = schema.get("type") or " or ".join(
                str(s.get("type")) for s in schema.get("anyOf", []) if s.get("type") != "null"
            )
            default = schema.get("default")
            shown = "required" if p.get("required") else ("" if default is None else default)
            if isinstance(shown, bool):
                shown = str(shown).lower()
            out.append(
                f"<tr><td><code>{e(p.get('name', ''))}</code></td><td>{e(p.get('in', ''))}</td>"
                f"<td>{e(str(kind))}</td><td>{e(str(shown))}</td>"
                f"<td>{_inline(p.get('description', ''))}</td></tr>"
            )
        out.append("</table>")
    body = op.get("requestBody", {}).get("content", {})
    for media, spec in body.items():
        fields = ", ".join(spec.get("schema", {}).get("properties", {}))
        out.append(f"<p>Body: <code>{e(media)}</code> with {e(fields)}.</p>")
    responses = op.get("responses", {})
    if responses:
        out.append("<ul class='r'>")
        for code, spec in sorted(responses.items()):
            out.append(f"<li><b>{e(str(code))}</b> {_inline(spec.get('description', ''))}</li>")
        out.append("</ul>")
    out.append("</section>")
    return "".join(out)


def _inline(text: str) -> str:
    """Escaped text with `code` spans."""
    pieces = html.escape(str(text)).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(pieces))


def _paragraphs(text: str) -> str:
    blocks = [b for b in str(text).split("\n\n") if b.strip()]
    return "".join(f"<p>{_inline(' '.join(b.split()))}</p>" for b in blocks)


_DOCS_CSS = """
body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#222;background:#fff}
main{max-width:52rem;margin:0 auto;padding:1rem}
h1 small{font-size:.6em;color:#666}
h2{font-size:1.15rem;margin:2rem 0 .3rem;border-top:1px solid #ddd;padding-top:1rem}
.m{display:inline-block;min-width:3.5em;color:#fff;background:#2a6;border-radius:3px;
padding:0 .3em;font-size:.85em;text-align:center}
.s{font-weight:600;margin:.2rem 0}
code{font:.9em ui-monospace,monospace;background:#f3f3f3;padding:0 .2em}
table{border-collapse:collapse;width:100%;font-size:.93rem;display:block;overflow-x:auto}
th,td{border:1px solid #ddd;padding:.25rem .45rem;text-align:left;vertical-align:top}
.r{font-size:.93rem}
"""


__all__ = ["ErrorBody", "create_app", "docs_html", "validation_line"]
