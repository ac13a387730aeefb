"""The search page at ``/``: server-rendered HTML over `Service`, with a small script on top.

Routes (all ``GET``, none in the OpenAPI schema):

- ``/?q=&mode=&since=&until=&path=&k=`` the page with the results of a query
  (a plain form ``GET``: it works without JavaScript); ``&fragment=1`` returns
  only the results' HTML, which ``static/page.js`` fetches as the user types, so
  there is one renderer, this module;
- ``/similar/{id}`` the passages most like a stored one ("more like this");
- ``/passage/{id}`` a passage in its document, its neighbours around it;
- ``/static/page.css`` and ``/static/page.js``, read from the package.

Every value shown is escaped; data comes only from `Service` (the dicts the
API returns); no request value is ever used as a file path (the static files
are a fixed table). A bad value is the library's one-line message with status
400, an unknown passage a 404 page, an index that cannot answer a 503. When
the app has a ``state.security`` (the server's token check) and a request is
not authorized, the page is a token form posting to ``/login`` instead.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from ..errors import SemsearchError, UsageError
from ..query import MODES, display_path
from .service import DEFAULT_K, MAX_CONTEXT, MAX_K, error_status

if TYPE_CHECKING:
    from .service import Service

# The files under static/ that are served, and their types: a fixed table, so a
# request names one of these or gets a 404, never a path.
STATIC_TYPES = {
    "page.css": "text/css; charset=utf-8",
    "page.js": "text/javascript; charset=utf-8",
}
STATIC_CACHE = "public, max-age=86400"  # URLs carry the content's hash (?v=...)
PAGE_CACHE = "no-store"  # results change with every commit of the index
CONTEXT = 2  # neighbours each side on a passage's page
FILTERS = ("since", "until", "path")
_STATUS_TITLES = {400: "bad request", 404: "not found"}  # a page's title for an error


def esc(value: object) -> str:
    """``value`` as text safe in HTML content and in quoted attributes."""
    return html.escape("" if value is None else str(value), quote=True)


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str

    @property
    def version(self) -> str:
        return self.etag.strip('"')


def load_assets() -> dict[str, Asset]:
    """The static files, read once from the package."""
    folder = resources.files(__package__ or "semsearch.serve").joinpath("static")
    assets = {}
    for name, media_type in STATIC_TYPES.items():
        body = folder.joinpath(name).read_bytes()
        digest = hashlib.sha256(body).hexdigest()[:12]
        assets[name] = Asset(body, media_type, f'"{digest}"')
    return assets


# ---------------------------------------------------------------------------
# the request's values


@dataclass(frozen=True)
class Ask:
    """The values of a search, as given (strings; the library checks them)."""

    q: str = ""
    mode: str = "hybrid"
    since: str = ""
    until: str = ""
    path: str = ""
    k: str = ""

    @classmethod
    def of(cls, params: Mapping[str, str]) -> Ask:
        return cls(
            q=params.get("q", ""),
            mode=params.get("mode", "") or "hybrid",
            since=params.get("since", "").strip(),
            until=params.get("until", "").strip(),
            path=params.get("path", "").strip(),
            k=params.get("k", "").strip(),
        )

    @property
    def filters(self) -> dict[str, str]:
        """The filters that are on, by name."""
        return {name: getattr(self, name) for name in FILTERS if getattr(self, name)}

    def number(self) -> int:
        """``k`` as a number (`DEFAULT_K` when not given); `UsageError` if it is not one."""
        if not self.k:
            return DEFAULT_K
        k = whole_number(self.k)
        if k is None:
            raise UsageError(
                f"k must be a whole number from 1 to {MAX_K} (got {shown_value(self.k)})"
            )
        return k

    def query_string(self, **changes: str) -> str:
        """This search's URL query (empty values and the default mode left out)."""
        values = {
            "q": self.q,
            "mode": "" if self.mode == "hybrid" else self.mode,
            **{name: getattr(self, name) for name in FILTERS},
            "k": self.k,
        }
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v})


MAX_NUMBER_DIGITS = 30  # longer runs of digits are no k, id or context (int() refuses 4,301)


def whole_number(raw: str) -> int | None:
    """``raw`` as a whole number if it is one as the API reads it (ASCII digits only:
    ``str.isdigit`` also takes ``²``, which ``int`` refuses), else ``None``."""
    if raw.isascii() and raw.isdigit() and len(raw) <= MAX_NUMBER_DIGITS:
        return int(raw)
    return None


def shown_value(raw: str, limit: int = 60) -> str:
    """``repr(raw)`` cut to ``limit`` characters, for a one-line message."""
    shown = repr(raw)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def url(base: str, query: str) -> str:
    return f"{base}?{query}" if query else base


# ---------------------------------------------------------------------------
# rendering: pure functions of the Service's dicts


def highlighted(text: str, spans: Sequence[Sequence[int]]) -> str:
    """``text`` escaped, each highlight span (``[start, end]``) in ``<mark>``."""
    parts = []
    pos = 0
    for a, b in sorted((int(s[0]), int(s[1])) for s in spans if len(s) == 2):
        a, b = max(a, pos), min(b, len(text))
        if b <= a:
            continue
        parts.append(esc(text[pos:a]))
        parts.append(f"<mark>{esc(text[a:b])}</mark>")
        pos = b
    parts.append(esc(text[pos:]))
    return "".join(parts)


def shown_path(item: Mapping[str, Any]) -> str:
    """A hit's file as the command line shows it (relative when shorter), with its record key
    and its page (PDF) or chapter (EPUB)."""
    path = display_path(item.get("abspath") or "", item.get("path") or "")
    if item.get("key"):
        path += f"#{item['key']}"
    if item.get("page"):
        path += f" p.{item['page']}"
    return path


def paragraph_label(item: Mapping[str, Any]) -> str:
    label = f"¶ {item['paragraph']}"
    if item.get("pieces", 1) > 1:
        label += f" (part {item['piece']} of {item['pieces']})"
    return label


def score_title(scores: Mapping[str, Any] | None) -> str:
    names = {"dense": "cosine", "lexical": "BM25", "fused": "fused"}
    shown = [
        f"{names.get(k, k)} {v:.4f}"
        for k, v in (scores or {}).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    ]
    return ", ".join(shown)


def meta_line(item: Mapping[str, Any], score: bool = True) -> str:
    bits = []
    if item.get("date"):
        bits.append(f'<time datetime="{esc(item["date"])}">{esc(item["date"])}</time>')
    bits.append(f'<span class="path">{esc(shown_path(item))}</span>')
    bits.append(f'<span class="para">{esc(paragraph_label(item))}</span>')
    if score and "score" in item:
        bits.append(
            f'<span class="score" title="{esc(score_title(item.get("scores")))}">'
            f"score {item['score']:.4g}</span>"
        )
    return '<p class="meta">' + ' <span aria-hidden="true">·</span> '.join(bits) + "</p>"


def also_in(sources: Sequence[Mapping[str, Any]]) -> str:
    if not sources:
        return ""
    links = ", ".join(
        f'<a href="/passage/{int(s["passage_id"])}">{esc(s.get("title") or shown_path(s))}</a>'
        f' <span class="path">({esc(shown_path(s))}, {esc(paragraph_label(s))})</span>'
        for s in sources
    )
    return f'<p class="also">Also in: {links}</p>'


def hit_html(hit: Mapping[str, Any], ask: Ask) -> str:
    pid = int(hit["passage_id"])
    title = hit.get("title") or shown_path(hit)
    like = url(f"/similar/{pid}", ask.query_string(q="", mode="", k=""))
    return (
        f'<li class="hit" id="hit-{pid}">'
        f'<h2><a class="hit-link" href="/passage/{pid}">{esc(title)}</a></h2>'
        f"{meta_line(hit)}"
        f'<p class="text">{highlighted(hit.get("text", ""), hit.get("highlights") or [])}</p>'
        f"{also_in(hit.get('also_in') or [])}"
        f'<p class="actions"><a href="/passage/{pid}">in its document</a>'
        f' <a class="like" href="{esc(like)}">more like this</a></p>'
        "</li>"
    )


def hits_html(hits: Sequence[Mapping[str, Any]], ask: Ask) -> str:
    return '<ol class="hits">' + "".join(hit_html(h, ask) for h in hits) + "</ol>"


def filters_text(ask: Ask) -> str:
    on = ask.filters
    if not on:
        return "No filters are on."
    listed = ", ".join(f"{name} {value}" for name, value in on.items())
    return f"Filters on: {listed}."


def no_results(ask: Ask, what: str) -> str:
    out = f'<p class="empty" role="status"><strong>No results</strong> {what}.</p>'
    out += f'<p class="filters-on">{esc(filters_text(ask))}'
    if ask.filters:
        plain = url("/", ask.query_string(since="", until="", path=""))
        out += f' <a href="{esc(plain)}">Search without filters</a>'
    return out + "</p>"


HINT = (
    '<p class="hint">Type a few words to search for: results are the paragraphs closest in '
    "meaning, best first. <kbd>Enter</kbd> searches, <kbd>↓</kbd> <kbd>↑</kbd> move between "
    "results, <kbd>Esc</kbd> comes back here.</p>"
)


def error_html(message: str) -> str:
    return f'<p class="error" role="alert">{esc(message)}</p>'


def results_fragment(service: Service, ask: Ask) -> tuple[str, int]:
    """The results of ``ask`` as HTML and the status: the one renderer of results."""
    if not ask.q.strip():
        return HINT, 200
    try:
        data = service.search(
            ask.q,
            ask.number(),
            mode=ask.mode,
            since=ask.since,
            until=ask.until,
            path=ask.path,
        )
    except SemsearchError as exc:
        return error_html(str(exc)), error_status(exc)
    hits = data["results"]
    if not hits:
        return no_results(ask, f"for “{esc(ask.q.strip())}”"), 200
    n = len(hits)
    corrected = data.get("corrected_query")
    asked = esc(ask.q.strip())
    summary = (
        f'<p class="summary">{n} result{"s" if n != 1 else ""} for '
        f"“{asked}”, best first ({esc(ask.mode)})</p>"
        if corrected is None
        else f'<p class="summary corrected">{n} result{"s" if n != 1 else ""}, best first '
        f"({esc(ask.mode)}): showing results for “<strong>{esc(corrected)}</strong>” "
        f"(you typed “{asked}”)</p>"
    )
    return summary + hits_html(hits, ask), 200


def similar_fragment(service: Service, passage_id: int, ask: Ask) -> tuple[str, int]:
    """The passages most like ``passage_id`` as HTML, under the passage itself."""
    try:
        original = service.passage(passage_id, 0)["passage"]
    except SemsearchError as exc:
        return error_html(str(exc)), error_status(exc)
    head = (
        '<div class="original">'
        f'<p class="summary">More like this passage of <a href="/passage/{passage_id}">'
        f"{esc(original.get('title') or shown_path(original))}</a>:</p>"
        f"{meta_line(original, score=False)}"
        f'<blockquote class="text">{esc(original.get("text", ""))}</blockquote></div>'
    )
    try:
        data = service.similar(
            passage_id, ask.number(), since=ask.since, until=ask.until, path=ask.path
        )
    except SemsearchError as exc:
        return head + error_html(str(exc)), error_status(exc)
    hits = data["results"]
    if not hits:
        return head + no_results(ask, "like it"), 200
    return head + hits_html(hits, ask), 200


def passage_body(view: Mapping[str, Any]) -> str:
    """A passage's page: its document's title, its neighbours and it, marked."""
    p = view["passage"]
    doc = view["document"]
    pid = int(p["passage_id"])

    def one(item: Mapping[str, Any], current: bool) -> str:
        iid = int(item["passage_id"])
        label = esc(paragraph_label(item))
        if current:
            return (
                f'<article class="passage current" id="p-{iid}" aria-current="true">'
                f'<p class="para">{label} <span class="here">this passage</span></p>'
                f'<p class="text"><mark>{esc(item.get("text", ""))}</mark></p></article>'
            )
        return (
            f'<article class="passage" id="p-{iid}">'
            f'<p class="para"><a href="/passage/{iid}">{label}</a></p>'
            f'<p class="text">{esc(item.get("text", ""))}</p></article>'
        )

    parts = [
        f'<h1 class="doc-title">{esc(doc.get("title") or shown_path(doc))}</h1>',
        meta_line(
            {
                **doc,
                "paragraph": p["paragraph"],
                "pieces": p.get("pieces", 1),
                "piece": p.get("piece", 1),
            },
            score=False,
        ),
        f'<p class="position">Passage {int(view["position"])} of {int(doc["passages"])} '
        f'in this document · <a class="like" href="/similar/{pid}">more like this</a></p>',
    ]
    if view["before"] and int(view["position"]) > len(view["before"]) + 1:
        parts.append('<p class="gap">…</p>')
    parts += [one(b, False) for b in view["before"]]
    parts.append(one(p, True))
    parts += [one(a, False) for a in view["after"]]
    if int(view["position"]) + len(view["after"]) < int(doc["passages"]):
        parts.append('<p class="gap">…</p>')
    return '<div class="document">' + "".join(parts) + "</div>"


# ---------------------------------------------------------------------------
# the page around the fragments


def form_html(ask: Ask, autofocus: bool) -> str:
    options = "".join(
        f'<option value="{esc(m)}"{" selected" if m == ask.mode else ""}>{esc(m)}</option>'
        for m in MODES
    )
    return (
        '<form id="search" class="search" method="get" action="/" role="search">'
        '<div class="row">'
        f'<input id="q" type="search" name="q" value="{esc(ask.q)}" '
        'placeholder="Search your articles" aria-label="Search" autocomplete="off" '
        f'spellcheck="false" enterkeyhint="search"{" autofocus" if autofocus else ""}>'
        '<button type="submit">Search</button></div>'
        '<div class="filters">'
        f'<label>Mode <select name="mode">{options}</select></label>'
        f'<label>Since <input type="date" name="since" value="{esc(ask.since)}"></label>'
        f'<label>Until <input type="date" name="until" value="{esc(ask.until)}"></label>'
        f'<label class="glob">Path <input type="text" name="path" value="{esc(ask.path)}" '
        'placeholder="e.g. notes/*.md" autocomplete="off" spellcheck="false"></label>'
        "</div>"
        + (f'<input type="hidden" name="k" value="{esc(ask.k)}">' if ask.k else "")
        + "</form>"
    )


def login_html(failed: bool) -> str:
    message = '<p class="error" role="alert">wrong token</p>' if failed else ""
    return (
        '<form class="login" method="post" action="/login">'
        "<p>This server asks for its token (the one given to "
        "<code>semsearch serve --token</code>).</p>"
        f"{message}"
        '<label>Token <input type="password" name="token" autocomplete="current-password" '
        'autofocus required></label> <button type="submit">Sign in</button></form>'
    )


def document(title: str, body: str, assets: Mapping[str, Asset], footer: str = "") -> str:
    css = f"/static/page.css?v={assets['page.css'].version}"
    js = f"/static/page.js?v={assets['page.js'].version}"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        '<meta name="referrer" content="no-referrer"><link rel="icon" href="data:,">'
        f"<title>{esc(title)}</title>"
        f'<link rel="stylesheet" href="{css}"><script src="{js}" defer></script></head>'
        '<body><header class="top"><a class="brand" href="/">semsearch</a></header>'
        f'<main>{body}</main><footer class="foot">{footer}</footer></body></html>'
    )


def page_title(text: str) -> str:
    return f"{text} — semsearch" if text else "semsearch"


# ---------------------------------------------------------------------------
# the routes


def install(app: FastAPI, service: Service) -> None:
    """Add the page's routes (``/``, ``/similar/{id}``, ``/passage/{id}``, ``/static/...``)."""
    assets = load_assets()
    footer = f'Index <span class="path">{esc(service.label)}</span> · <a href="/docs">API</a>'

    def respond(body: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(body, status_code=status, headers={"Cache-Control": PAGE_CACHE})

    def full(title: str, body: str, status: int = 200) -> HTMLResponse:
        return respond(document(page_title(title), body, assets, footer), status)

    def gate(request: Request) -> Response | None:
        """The token form when the server wants a token this request has not given."""
        security = getattr(request.app.state, "security", None)
        if security is None or security.authorized(request):
            return None
        failed = request.query_params.get("login") == "failed"
        if request.query_params.get("fragment"):
            return respond(login_html(failed), 401)
        return respond(document(page_title("sign in"), login_html(failed), assets), 401)

    def search_page(ask: Ask, fragment: bool, results: tuple[str, int], title: str) -> HTMLResponse:
        body, status = results
        if fragment:
            return respond(body, status)
        content = (
            form_html(ask, autofocus=True)
            + f'<section id="results" class="results" aria-live="polite">{body}</section>'
        )
        return full(title, content, status)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home(request: Request) -> Response:
        denied = gate(request)
        if denied is not None:
            return denied
        ask = Ask.of(request.query_params)
        fragment = bool(request.query_params.get("fragment"))
        return search_page(ask, fragment, results_fragment(service, ask), ask.q.strip())

    @app.get("/similar/{passage_id}", response_class=HTMLResponse, include_in_schema=False)
    def similar(passage_id: str, request: Request) -> Response:
        denied = gate(request)
        if denied is not None:
            return denied
        ask = Ask.of(request.query_params)
        ask = Ask(since=ask.since, until=ask.until, path=ask.path, k=ask.k)
        fragment = bool(request.query_params.get("fragment"))
        pid = whole_number(passage_id)
        if pid is None:
            results = (error_html(f"there is no passage {shown_value(passage_id)}"), 404)
        else:
            results = similar_fragment(service, pid, ask)
        return search_page(ask, fragment, results, "more like this")

    @app.get("/passage/{passage_id}", response_class=HTMLResponse, include_in_schema=False)
    def passage(passage_id: str, request: Request) -> Response:
        denied = gate(request)
        if denied is not None:
            return denied
        form = form_html(Ask(), autofocus=False)
        raw = request.query_params.get("context", "")
        context = whole_number(raw) if raw else CONTEXT
        if context is None or context > MAX_CONTEXT:
            message = (
                f"context must be a whole number from 0 to {MAX_CONTEXT} (got {shown_value(raw)})"
            )
            return full("bad request", form + error_html(message), 400)
        pid = whole_number(passage_id)
        if pid is None:
            message = f"there is no passage {shown_value(passage_id)}"
            return full("not found", form + error_html(message), 404)
        try:
            view = service.passage(pid, context)
        except SemsearchError as exc:
            status = error_status(exc)
            return full(_STATUS_TITLES.get(status, "error"), form + error_html(str(exc)), status)
        title = view["document"].get("title") or shown_path(view["document"])
        return full(title, form + passage_body(view))

    def static_route(name: str) -> Callable[[Request], Response]:
        asset = assets[name]

        def serve(request: Request) -> Response:
            headers = {"Cache-Control": STATIC_CACHE, "ETag": asset.etag}
            if request.headers.get("if-none-match") == asset.etag:
                return Response(status_code=304, headers=headers)
            return Response(asset.body, media_type=asset.media_type, headers=headers)

        return serve

    for name in STATIC_TYPES:  # one route a file: a request never names a path
        app.add_api_route(
            f"/static/{name}", static_route(name), methods=["GET", "HEAD"], include_in_schema=False
        )
