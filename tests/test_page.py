"""The search page, rendered on the server (FastAPI's TestClient; the fake embedder)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from semsearch.index import Index
from semsearch.query import MAX_QUERY_CHARS, display_path
from semsearch.serve import page
from semsearch.serve.app import create_app
from semsearch.serve.service import Service
from tests.fakes import FakeEmbedder

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "semsearch" / "serve" / "static"
SHARED = "The committee met on Monday to discuss the budget for the new library building."


@pytest.fixture
def articles(tmp_path: Path) -> Path:
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "flood.txt").write_text(
        " date 2024-01-02 7\nRiver floods the town\n"
        "Heavy rain made the river burst its banks on Tuesday. The water rose fast.\n"
        "Residents were moved to the school on the hill.\n"
        "The mayor said the town would rebuild the bridge.\n"
        "Volunteers handed out blankets and hot soup all night.\n"
        "By Friday the river was back inside its banks.\n",
        encoding="utf-8",
    )
    (folder / "chess.txt").write_text(
        "Chess <b>champion</b> & rival\n\nThe world chess champion said she will retire.\n\n"
        "Her last match was a draw against a <script>alert(1)</script> young rival.\n",
        encoding="utf-8",
    )
    (folder / "council.txt").write_text(
        " date 2023-05-06 3\nCouncil news\n" + SHARED + "\nThe vote is next week.\n",
        encoding="utf-8",
    )
    (folder / "council-copy.txt").write_text(
        " date 2023-05-07 3\nCouncil news again\n" + SHARED + "\nNothing else happened.\n",
        encoding="utf-8",
    )
    return folder


@pytest.fixture
def service(tmp_path: Path, articles: Path) -> Iterator[Service]:
    folder = tmp_path / "idx"
    with Index.open(folder, create=True, embedder=FakeEmbedder()) as index:
        index.add([articles])
    with Index.open(folder, embedder=FakeEmbedder()) as index:
        yield Service(index)


def client_for(service: Service, security: Any = None) -> TestClient:
    app = FastAPI()
    if security is not None:
        app.state.security = security
    page.install(app, service)
    return TestClient(app)


@pytest.fixture
def client(service: Service) -> TestClient:
    return client_for(service)


def results_section(text: str) -> str:
    match = re.search(r'<section id="results"[^>]*>(.*)</section>', text, re.S)
    assert match, text
    return match.group(1)


def hit_ids(text: str) -> list[int]:
    return [int(i) for i in re.findall(r'<li class="hit" id="hit-(\d+)"', text)]


def hit_blocks(text: str) -> list[str]:
    return re.findall(r'<li class="hit".*?</li>', text, re.S)


def unescaped(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


# --- the page without a query ------------------------------------------------


def test_the_empty_page_has_a_plain_get_form_and_a_hint(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert '<form id="search" class="search" method="get" action="/"' in r.text
    assert 'name="q"' in r.text and "autofocus" in r.text
    for name in ("mode", "since", "until", "path"):
        assert f'name="{name}"' in r.text
    assert all(f'<option value="{m}"' in r.text for m in ("hybrid", "dense", "lexical"))
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in r.text
    assert "Type a few words" in results_section(r.text)
    assert hit_ids(r.text) == []


def test_nothing_refers_to_another_site(client: TestClient, service: Service) -> None:
    hit = service.search("river", 1)["results"][0]["passage_id"]
    texts = [
        client.get(u).text
        for u in ("/", "/?q=river+floods", f"/similar/{hit}", f"/passage/{hit}", "/?q=x&since=no")
    ]
    texts += [client.get(f"/static/{name}").text for name in page.STATIC_TYPES]
    texts += [p.read_text(encoding="utf-8") for p in STATIC.iterdir()]
    for text in texts:
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I), text[:200]
        assert "@import" not in text and "url(" not in text


# --- results -----------------------------------------------------------------


def test_results_come_best_first_with_what_the_api_returns(
    client: TestClient, service: Service
) -> None:
    expected = service.search("river banks rain", 10)["results"]
    r = client.get("/", params={"q": "river banks rain"})
    assert r.status_code == 200
    assert hit_ids(r.text) == [h["passage_id"] for h in expected]
    blocks = hit_blocks(r.text)
    for hit, block in zip(expected, blocks, strict=True):
        assert f'href="/passage/{hit["passage_id"]}"' in block
        assert f'href="/similar/{hit["passage_id"]}"' in block
        assert html.escape(hit["title"]) in block
        assert html.escape(display_path(hit["abspath"], hit["path"])) in block
        assert f"¶ {hit['paragraph']}" in block
        assert f"score {hit['score']:.4g}" in block
        if hit["date"]:
            assert f">{hit['date']}</time>" in block
        text = re.search(r'<p class="text">(.*?)</p>', block, re.S)
        assert text and html.unescape(re.sub(r"<[^>]+>", "", text.group(1))) == hit["text"]
        marked = [html.unescape(m) for m in re.findall(r"<mark>(.*?)</mark>", text.group(1))]
        assert marked == [hit["text"][a:b] for a, b in hit["highlights"]]
    assert any(h["highlights"] for h in expected)  # the test saw a highlight


def test_mode_and_k_reach_the_search(client: TestClient, service: Service) -> None:
    expected = service.search("river banks", 2, mode="lexical")["results"]
    r = client.get("/", params={"q": "river banks", "mode": "lexical", "k": "2"})
    assert hit_ids(r.text) == [h["passage_id"] for h in expected]
    assert '<option value="lexical" selected>' in r.text
    assert "(lexical)" in r.text


def test_filters_reach_the_search(client: TestClient, service: Service) -> None:
    ask = {"since": "2023-05-07", "until": "2024-12-31", "path": "*/council*"}
    expected = service.search("committee budget", 10, **ask)["results"]
    assert expected  # the filter leaves something
    r = client.get("/", params={"q": "committee budget", **ask})
    assert hit_ids(r.text) == [h["passage_id"] for h in expected]
    for value in ask.values():
        assert f'value="{value}"' in r.text  # the form shows them
    # "more like this" keeps the filters
    assert (
        "/similar/{}?since=2023-05-07&amp;until=2024-12-31&amp;path=%2A%2Fcouncil%2A".format(
            expected[0]["passage_id"]
        )
        in r.text
    )


def test_a_collapsed_duplicate_shows_where_else_it_is(client: TestClient, service: Service) -> None:
    hits = service.search(SHARED, 3)["results"]
    first = hits[0]
    assert first["also_in"], "the two council files share a paragraph"
    other = first["also_in"][0]
    block = hit_blocks(client.get("/", params={"q": SHARED}).text)[0]
    also = re.search(r'<p class="also">(.*?)</p>', block, re.S)
    assert also and "Also in:" in also.group(1)
    assert f'href="/passage/{other["passage_id"]}"' in also.group(1)
    assert html.escape(display_path(other["abspath"], other["path"])) in also.group(1)


def test_every_text_is_escaped(client: TestClient) -> None:
    r = client.get("/", params={"q": 'chess <img src=x onerror="alert(2)"> rival'})
    assert r.status_code == 200
    assert "<script>" not in r.text and "<img" not in r.text and "<b>" not in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    assert "Chess &lt;b&gt;champion&lt;/b&gt; &amp; rival" in r.text
    assert 'value="chess &lt;img src=x onerror=&quot;alert(2)&quot;&gt; rival"' in r.text


def test_the_fragment_is_the_results_section_alone(client: TestClient) -> None:
    full = client.get("/", params={"q": "river banks"})
    part = client.get("/", params={"q": "river banks", "fragment": "1"})
    assert part.status_code == 200
    assert "<html" not in part.text and "<form" not in part.text
    assert part.text == results_section(full.text)
    assert hit_ids(part.text)
    assert part.headers["cache-control"] == "no-store"


def test_nothing_found_says_so_and_names_the_filters(client: TestClient) -> None:
    r = client.get("/", params={"q": "river", "since": "2100-01-01", "path": "*.txt"})
    assert r.status_code == 200
    section = unescaped(results_section(r.text))
    assert "No results" in section
    assert "since 2100-01-01" in section and "path *.txt" in section
    assert hit_ids(r.text) == []
    assert 'href="/?q=river">Search without filters' in r.text


def test_nothing_found_without_filters_says_none_are_on(client: TestClient) -> None:
    r = client.get("/", params={"q": "zebra", "mode": "lexical"})
    assert r.status_code == 200
    assert "No results" in r.text and "No filters are on." in r.text


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "31/12/2024"}, "since must be a date like 2024-12-31 (got '31/12/2024')"),
        ({"until": "2024-02-30"}, "until"),
        ({"mode": "fuzzy"}, "mode must be one of dense, lexical, hybrid (got 'fuzzy')"),
        ({"k": "0"}, "k must be a whole number from 1 to 100 (got 0)"),
        ({"k": "many"}, "k must be a whole number from 1 to 100 (got 'many')"),
        ({"q": "x" * (MAX_QUERY_CHARS + 1)}, f"at most {MAX_QUERY_CHARS:,} are searched for"),
    ],
)
def test_a_bad_value_is_one_line_in_the_page_with_400(
    client: TestClient, params: dict[str, str], message: str
) -> None:
    for fragment in ({}, {"fragment": "1"}):
        r = client.get("/", params={"q": "river", **params, **fragment})
        assert r.status_code == 400
        error = re.findall(r'<p class="error" role="alert">(.*?)</p>', r.text, re.S)
        assert len(error) == 1 and message in html.unescape(error[0])
        assert "Traceback" not in r.text


# --- more like this, and a passage in its document ---------------------------


def test_more_like_this_lists_other_passages(client: TestClient, service: Service) -> None:
    pid = service.search("river banks", 1)["results"][0]["passage_id"]
    expected = service.similar(pid, 10)["results"]
    r = client.get(f"/similar/{pid}")
    assert r.status_code == 200
    ids = hit_ids(r.text)
    assert ids == [h["passage_id"] for h in expected] and pid not in ids
    original = service.passage(pid, 0)["passage"]
    assert html.escape(original["text"]) in r.text  # what it is like is shown above
    part = client.get(f"/similar/{pid}", params={"fragment": "1"})
    assert part.text == results_section(r.text)


def test_more_like_this_with_filters_and_unknown_ids(client: TestClient, service: Service) -> None:
    pid = service.search("river banks", 1)["results"][0]["passage_id"]
    r = client.get(f"/similar/{pid}", params={"since": "2100-01-01"})
    assert r.status_code == 200 and "No results" in r.text and "since 2100-01-01" in r.text
    assert client.get(f"/similar/{pid}", params={"since": "soon"}).status_code == 400
    for bad in ("999999", "abc"):
        r = client.get(f"/similar/{bad}")
        assert r.status_code == 404
        assert bad in unescaped(r.text) and 'role="alert"' in r.text


def test_a_passage_is_shown_in_its_document(client: TestClient, service: Service) -> None:
    hits = service.search("mayor rebuild bridge", 1)["results"]
    pid = hits[0]["passage_id"]
    view = service.passage(pid, page.CONTEXT)
    assert view["before"] and view["after"]
    r = client.get(f"/passage/{pid}")
    assert r.status_code == 200
    shown = re.findall(r'<article class="passage[^"]*" id="p-(\d+)"', r.text)
    expected = [h["passage_id"] for h in view["before"]] + [pid]
    expected += [h["passage_id"] for h in view["after"]]
    assert [int(i) for i in shown] == expected
    current = re.search(
        r'<article class="passage current"[^>]*aria-current="true">(.*?)</article>', r.text, re.S
    )
    assert current and html.escape(view["passage"]["text"]) in current.group(1)
    assert html.escape(view["document"]["title"]) in r.text
    assert f"Passage {view['position']} of {view['document']['passages']}" in r.text
    assert f'href="/similar/{pid}"' in r.text
    for h in view["before"] + view["after"]:
        assert f'href="/passage/{h["passage_id"]}"' in r.text
    r = client.get(f"/passage/{pid}", params={"context": "0"})
    assert [int(i) for i in re.findall(r'id="p-(\d+)"', r.text)] == [pid]


def test_an_unknown_passage_is_a_404_page(client: TestClient) -> None:
    for bad in ("999999", "abc", "-1", "99999999999999999999999"):
        r = client.get(f"/passage/{bad}")
        assert r.status_code == 404, bad
        assert r.headers["content-type"].startswith("text/html")
        assert 'role="alert"' in r.text and "Traceback" not in r.text
    assert "holds no passage 999999" in client.get("/passage/999999").text


def test_a_bad_context_is_a_400(client: TestClient, service: Service) -> None:
    pid = service.search("river", 1)["results"][0]["passage_id"]
    for bad in ("11", "x", "-1"):
        assert client.get(f"/passage/{pid}", params={"context": bad}).status_code == 400


# digits that str.isdigit takes and int() refuses, and digits too many for int()
NOT_NUMBERS = ("²", "١٢", "9" * 5000)


@pytest.mark.parametrize("bad", NOT_NUMBERS)
def test_a_number_that_is_not_ascii_digits_is_a_4xx_line(
    client: TestClient, service: Service, bad: str
) -> None:
    pid = service.search("river", 1)["results"][0]["passage_id"]
    asks = [
        (f"/passage/{bad}", {}, 404),
        (f"/similar/{bad}", {}, 404),
        ("/", {"q": "river", "k": bad}, 400),
        (f"/similar/{pid}", {"k": bad}, 400),
        (f"/passage/{pid}", {"context": bad}, 400),
    ]
    for where, params, status in asks:
        r = client.get(where, params=params)
        assert r.status_code == status, (where, params)
        error = re.findall(r'<p class="error" role="alert">(.*?)</p>', r.text, re.S)
        assert len(error) == 1 and len(error[0]) < 200, (where, params)


def test_an_index_that_cannot_answer_is_a_503_line_as_in_the_api(
    client: TestClient, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unittest import mock

    from semsearch.errors import IndexLockedError

    pid = service.search("river", 1)["results"][0]["passage_id"]
    hurt = IndexLockedError("the index is busy")
    for name in ("search", "similar", "passage"):
        monkeypatch.setattr(service.index, name, mock.Mock(side_effect=hurt))
    for where in ("/?q=river", f"/similar/{pid}", f"/passage/{pid}"):
        r = client.get(where)
        assert r.status_code == 503, where
        error = re.findall(r'<p class="error" role="alert">(.*?)</p>', r.text, re.S)
        assert error == ["the index is busy"], where


# --- static files ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"), [("page.css", "text/css"), ("page.js", "text/javascript")]
)
def test_static_files_are_served_from_the_package(client: TestClient, name: str, kind: str) -> None:
    r = client.get(f"/static/{name}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(kind)
    assert r.content == (STATIC / name).read_bytes()
    assert "max-age" in r.headers["cache-control"]
    head = client.head(f"/static/{name}")
    assert head.status_code == 200 and head.headers["content-type"].startswith(kind)
    again = client.get(f"/static/{name}", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    # the page names the file with its content's version, so a change is fetched
    version = r.headers["etag"].strip('"')
    assert f"/static/{name}?v={version}" in client.get("/").text


def test_no_request_names_a_file(client: TestClient) -> None:
    for path in (
        "/static/page.py",
        "/static/../page.py",
        "/static/%2e%2e/page.py",
        "/static/..%2Fservice.py",
        "/static/",
    ):
        r = client.get(path)
        assert r.status_code == 404, path
        assert "import" not in r.text


def test_the_wheel_ships_the_static_files() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = text.split("[tool.setuptools.package-data]", 1)[1]
    listed = re.search(r"^semsearch = \[(.*?)\]", section, re.M | re.S)
    assert listed
    patterns = re.findall(r'"([^"]+)"', listed.group(1))
    package = ROOT / "semsearch"
    shipped = {p for pattern in patterns for p in package.glob(pattern)}
    assert set(STATIC.iterdir()) <= shipped
    assert {STATIC / name for name in page.STATIC_TYPES} <= set(STATIC.iterdir())


# --- the token -----------------------------------------------------------------


class Security:
    def __init__(self, allowed: bool) -> None:
        self.token = "secret"
        self.allowed = allowed

    def authorized(self, request: Request) -> bool:
        return self.allowed


def test_without_the_token_the_page_asks_for_it(service: Service) -> None:
    client = client_for(service, Security(False))
    for path in ("/?q=river", "/similar/1", "/passage/1"):
        r = client.get(path)
        assert r.status_code == 401
        assert '<form class="login" method="post" action="/login">' in r.text
        assert 'name="token"' in r.text and 'type="password"' in r.text
        assert hit_ids(r.text) == [] and "river" not in r.text.lower()
        assert "wrong token" not in r.text
    assert "wrong token" in client.get("/?login=failed").text
    part = client.get("/?q=river&fragment=1")
    assert part.status_code == 401 and "<html" not in part.text
    # the style sheet and script are not secret: the form needs them
    assert client.get("/static/page.css").status_code == 200


def test_with_the_token_the_page_shows_results(service: Service) -> None:
    client = client_for(service, Security(True))
    r = client.get("/", params={"q": "river banks"})
    assert r.status_code == 200 and hit_ids(r.text) and "login" not in r.text


def test_security_as_a_plain_object(service: Service) -> None:
    security = SimpleNamespace(token=None, authorized=lambda request: True)
    assert client_for(service, security).get("/").status_code == 200


BASE = "http://127.0.0.1"  # a loopback Host: the server refuses other names


def test_create_app_serves_the_page(service: Service) -> None:
    client = TestClient(create_app(service), base_url=BASE)
    r = client.get("/", params={"q": "river banks"})
    assert r.status_code == 200 and hit_ids(r.text)
    assert client.get("/static/page.js").status_code == 200


def test_the_token_form_logs_in_through_the_server(service: Service) -> None:
    client = TestClient(create_app(service, token="s3cret"), base_url=BASE)
    r = client.get("/", params={"q": "river banks"})
    assert r.status_code == 401 and 'action="/login"' in r.text and hit_ids(r.text) == []
    assert client.get("/static/page.css").status_code == 200
    r = client.post("/login", data={"token": "wrong"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/?login=failed"
    assert "wrong token" in client.get(r.headers["location"]).text
    r = client.post("/login", data={"token": "s3cret"}, follow_redirects=False)
    assert r.status_code == 303
    r = client.get("/", params={"q": "river banks"})
    assert r.status_code == 200 and hit_ids(r.text)
