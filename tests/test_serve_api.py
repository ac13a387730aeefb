"""The HTTP API (`semsearch.serve.app`): the CLI's JSON over HTTP, one-line errors, the
log, the schema and /docs, many threads at once, and the real `semsearch serve` process."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
from fastapi.testclient import TestClient

from semsearch.errors import IndexCorruptError, IndexLockedError
from semsearch.index import Index
from semsearch.serve.app import create_app, validation_line
from semsearch.serve.service import MAX_K, MAX_QUERY_CHARS, Service
from tests import fake_cli
from tests.cli_helpers import index_articles, run_faked

ROOT = Path(__file__).resolve().parent.parent
FAKE_CLI = str(Path(fake_cli.__file__).resolve())
BASE = "http://127.0.0.1"  # the Host the app answers to (TestClient's default is refused)

ARTICLES = {
    "a.txt": " date 2024-01-02 7\nRiver floods the town\n"
    "Heavy rain made the river burst its banks on Tuesday.\n"
    "Residents were moved to the school on the hill.\n"
    "The flood reached the town hall by the evening.\n",
    "b.txt": "Chess champion retires\n\nThe world chess champion said she will retire.\n\n"
    "Her last match was a draw against a young rival.\n",
    "c.txt": " date 2024-03-04 9\nNew bakery opens\n"
    "A bakery selling sourdough bread opened downtown by the river.\n",
}


cli = run_faked  # `semsearch ARGS` in this process, with the fake model


def cli_error(*args: str) -> str:
    """The one `error:` line `semsearch ARGS` prints, without its prefix (exit 2)."""
    code, out, err = cli(*args)
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0].removeprefix("error: ")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """docs/ (three articles) and ix/, their index built by the CLI with the fake model."""
    return index_articles(tmp_path_factory.mktemp("serve"), ARTICLES)


@pytest.fixture(scope="module")
def ix(built: Path) -> str:
    return str(built / "ix")


@pytest.fixture(scope="module")
def service(ix: str) -> Iterator[Service]:
    with fake_cli.faked(), Index.open(ix) as index:
        yield Service(index, label=ix)  # the index named as the CLI names it: --index as given


@pytest.fixture(scope="module")
def client(service: Service) -> TestClient:
    return TestClient(create_app(service), base_url=BASE)


def get(client: TestClient, url: str, **params: Any) -> tuple[int, Any]:
    r = client.get(url, params=params)
    assert r.headers["content-type"].startswith("application/json"), r.headers
    return r.status_code, r.json()


def error_of(client: TestClient, url: str, status: int, **params: Any) -> str:
    code, body = get(client, url, **params)
    assert code == status, (code, body)
    assert list(body) == ["error"] and isinstance(body["error"], str)
    assert "\n" not in body["error"] and "Traceback" not in body["error"]
    return str(body["error"])


# --------------------------------------------------------------------------- the CLI's JSON


@pytest.mark.parametrize(
    ("params", "flags"),
    [
        ({"q": "river flood", "k": 3}, ["-k", "3"]),
        ({"q": "river", "k": 5, "mode": "lexical"}, ["-k", "5", "--mode", "lexical"]),
        (
            {"q": "river bread", "mode": "dense", "by_article": "true"},
            ["--mode", "dense", "-k", "10", "--by-article"],
        ),
        ({"q": "river", "since": "2024-02-01", "k": 4}, ["--since", "2024-02-01", "-k", "4"]),
        (
            {"q": "river", "until": "2024-01-31", "path": "*a.txt"},
            ["--until", "2024-01-31", "--path", "*a.txt", "-k", "10"],
        ),
        ({"q": "chess", "highlight": "false", "k": 2}, ["--no-highlight", "-k", "2"]),
    ],
)
def test_search_answers_what_query_json_prints(
    client: TestClient, ix: str, params: dict[str, Any], flags: list[str]
) -> None:
    code, body = get(client, "/api/search", **params)
    assert code == 200, body
    cli_code, out, err = cli("query", params["q"], "--json", "--index", ix, *flags)
    assert cli_code == 0, err
    assert body == json.loads(out)
    assert body["results"], "the cases are chosen to find something"


def test_search_finding_nothing_is_an_empty_list_not_an_error(client: TestClient) -> None:
    code, body = get(client, "/api/search", q="river", since="2030-01-01")
    assert code == 200 and body["results"] == []


def test_info_and_health(client: TestClient, ix: str) -> None:
    code, body = get(client, "/api/info")
    _, out, _ = cli("info", "--json", "--index", ix)
    assert code == 200 and body == json.loads(out)
    code, health = get(client, "/health")
    assert code == 200
    assert health == {"status": "ok", "generation": body["generation"], "passages": 6}


def test_passage_with_its_neighbours(client: TestClient) -> None:
    _, found = get(client, "/api/search", q="residents school hill", k=1, mode="lexical")
    pid = found["results"][0]["passage_id"]
    code, body = get(client, f"/api/passages/{pid}", context=1)
    assert code == 200, body
    assert body["passage"]["passage_id"] == pid
    assert body["passage"]["text"] == "Residents were moved to the school on the hill."
    assert [p["text"] for p in body["before"]] == [
        "Heavy rain made the river burst its banks on Tuesday."
    ]
    assert [p["text"] for p in body["after"]] == ["The flood reached the town hall by the evening."]
    _, wider = get(client, f"/api/passages/{pid}", context=0)
    assert wider["before"] == [] and wider["after"] == []


def test_similar_answers_what_similar_json_prints(client: TestClient, ix: str) -> None:
    code, body = get(client, "/api/similar/1", k=3)
    assert code == 200, body
    _, by_option, _ = cli("similar", "--id", "1", "-k", "3", "--json", "--index", ix)
    cli_code, bare, err = cli("similar", "1", "-k", "3", "--json", "--index", ix)
    assert cli_code == 0, err
    assert body == json.loads(by_option) == json.loads(bare)
    assert 1 not in [h["passage_id"] for h in body["results"]]


def test_a_bare_number_naming_a_file_is_still_the_file(
    built: Path, ix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(built)
    (built / "1").write_text("not indexed\n", encoding="utf-8")
    try:
        assert "1" in cli_error("similar", "1", "--index", ix)  # the file, not passage 1
    finally:
        (built / "1").unlink()


# --------------------------------------------------------------------------- errors


def test_bad_values_get_the_line_the_cli_prints(client: TestClient, ix: str) -> None:
    cases = [
        ({"q": ""}, ["query", ""]),
        ({"q": "x" * (MAX_QUERY_CHARS + 1)}, ["query", "x" * (MAX_QUERY_CHARS + 1)]),
        ({"q": "river", "since": "2024-13-01"}, ["query", "river", "--since", "2024-13-01"]),
        ({"q": "river", "until": "yesterday"}, ["query", "river", "--until", "yesterday"]),
        (
            {"q": "river", "since": "2024-05-01", "until": "2024-01-01"},
            ["query", "river", "--since", "2024-05-01", "--until", "2024-01-01"],
        ),
    ]
    for params, args in cases:
        line = error_of(client, "/api/search", 400, **params)
        assert line == cli_error(*args, "--index", ix), params


def test_bounds_of_the_api(client: TestClient) -> None:
    for k in (0, MAX_K + 1, -3):
        line = error_of(client, "/api/search", 400, q="river", k=k)
        assert line == f"k must be a whole number from 1 to {MAX_K} (got {k})"
        assert error_of(client, "/api/similar/1", 400, k=k) == line
    assert error_of(client, "/api/search", 400, q="river", mode="fuzzy") == (
        "mode must be one of dense, lexical, hybrid (got 'fuzzy')"
    )
    assert error_of(client, "/api/passages/1", 400, context=11) == (
        "context must be a whole number from 0 to 10 (got 11)"
    )


def test_unknown_passages_are_404_with_the_cli_line(client: TestClient, ix: str) -> None:
    line = error_of(client, "/api/passages/999", 404)
    assert line == cli_error("similar", "--id", "999", "--index", ix)
    assert "holds no passage 999" in line
    assert error_of(client, "/api/similar/999", 404) == line
    assert error_of(client, "/api/passages/0", 404) == (
        "no passage has id 0: ids are whole numbers from 1"
    )
    assert "no passage has id" in error_of(client, f"/api/passages/{2**64}", 404)


def test_malformed_parameters_are_one_line_naming_the_parameter(client: TestClient) -> None:
    assert error_of(client, "/api/search", 400, q="river", k="abc") == (
        "query parameter 'k' must be a whole number (got 'abc')"
    )
    assert error_of(client, "/api/search", 400) == "query parameter 'q' is required (see /docs)"
    assert error_of(client, "/api/passages/xyz", 400) == (
        "path parameter 'id' must be a whole number (got 'xyz')"
    )
    assert error_of(client, "/api/search", 400, q="river", by_article="maybe") == (
        "query parameter 'by_article' must be true or false (got 'maybe')"
    )
    assert error_of(client, "/api/passages/1", 400, context="2.5") == (
        "query parameter 'context' must be a whole number (got '2.5')"
    )


def test_validation_line_falls_back_to_pydantic_message() -> None:
    line = validation_line([{"loc": ("query", "x"), "type": "odd", "msg": "Odd", "input": 1}])
    assert line == "query parameter 'x': Odd (got 1)"
    assert validation_line([]) == "bad request (see /docs)"


def test_unknown_routes_and_methods_are_json(client: TestClient) -> None:
    assert error_of(client, "/api/nothing", 404) == (
        "no such page or endpoint: /api/nothing (the API is described at /docs)"
    )
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        r = client.request(method, "/api/search", params={"q": "river"})
        assert r.status_code == 405, method
        assert r.json() == {
            "error": f"{method} is not allowed on /api/search: the API is read-only (GET)"
        }


@pytest.mark.parametrize(
    "path", ["/health", "/api/info", "/api/search?q=river", "/", "/docs", "/api/passages/999999"]
)
def test_head_is_answered_as_get_without_a_body(client: TestClient, path: str) -> None:
    """`curl -I` and uptime checks send HEAD: the status and headers of GET, no body."""
    got = client.get(path)
    r = client.head(path)
    assert r.status_code == got.status_code, path
    assert r.headers["content-type"] == got.headers["content-type"]
    assert r.content == b""


@pytest.mark.parametrize("error", [IndexCorruptError, IndexLockedError])
def test_an_index_that_cannot_answer_is_503(
    service: Service, error: type[Exception], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = TestClient(create_app(service), base_url=BASE)
    monkeypatch.setattr(service.index, "info", mock.Mock(side_effect=error("the index is hurt")))
    assert error_of(client, "/api/info", 503) == "the index is hurt"
    assert error_of(client, "/health", 503) == "the index is hurt"


def test_an_unexpected_exception_is_a_500_line_and_a_logged_traceback(
    service: Service, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    client = TestClient(create_app(service), base_url=BASE)
    boom = mock.Mock(side_effect=RuntimeError("boom\n  in two lines"))
    monkeypatch.setattr(service, "search", boom)
    with caplog.at_level(logging.INFO, logger="semsearch.serve"):
        line = error_of(client, "/api/search", 500, q="river")
    assert line == "internal error: RuntimeError: boom in two lines (the server log has details)"
    failures = [r for r in caplog.records if r.exc_info]
    assert len(failures) == 1 and failures[0].name == "semsearch.serve"
    assert "GET /api/search?q=river failed" in failures[0].getMessage()
    assert [r.getMessage().rsplit(" ", 1)[0] for r in caplog.records if not r.exc_info] == [
        "GET /api/search?q=river 500"
    ]


# --------------------------------------------------------------------------- the log


def test_one_log_line_per_request(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="semsearch.serve"):
        client.get("/api/search", params={"q": "river flood", "k": 2})
        client.get("/api/passages/999")
        client.get("/health")
    lines = [r.getMessage() for r in caplog.records if r.name == "semsearch.serve"]
    assert len(lines) == 3, lines
    assert lines[0].startswith("GET /api/search?q=river+flood&k=2 200 ")
    assert lines[1].startswith("GET /api/passages/999 404 ")
    assert lines[2].startswith("GET /health 200 ")
    for line in lines:
        ms = line.rsplit(" ", 1)[1]
        assert ms.endswith("ms") and float(ms[:-2]) >= 0


def test_long_queries_are_cut_in_the_log(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="semsearch.serve"):
        assert client.get("/api/search", params={"q": "é" * 3000, "k": 1}).status_code == 200
    (line,) = [r.getMessage() for r in caplog.records if r.name == "semsearch.serve"]
    assert len(line) < 400 and "... (18,018 characters) 200 " in line


def test_the_token_is_never_logged(service: Service, caplog: pytest.LogCaptureFixture) -> None:
    client = TestClient(create_app(service, token="s3cret-tok"), base_url=BASE)
    with caplog.at_level(logging.DEBUG):
        client.get("/api/info", headers={"Authorization": "Bearer s3cret-tok"})
        client.get("/api/info", headers={"Authorization": "Bearer wrong-s3cret"})
        client.get("/api/info", params={"token": "s3cret-tok", "q": "a"})
        client.post("/login", content="token=s3cret-tok", follow_redirects=False)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("semsearch"))
    assert "s3cret" not in text
    assert "GET /api/info?token=%2A%2A%2A&q=a 401" in text


def test_uvicorn_access_log_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from semsearch.serve import run

    seen: dict[str, Any] = {}

    class Stop(Exception):
        pass

    def fake_run(self: uvicorn.Server, sockets: Any = None) -> None:
        seen.update(access_log=self.config.access_log, sockets=sockets)
        raise Stop

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    sock = run.bind("127.0.0.1", 0)
    try:
        with pytest.raises(Stop):
            run._run(mock.Mock(), sock, "127.0.0.1", None, (), "ix", None)
    finally:
        sock.close()
    assert seen == {"access_log": False, "sockets": [sock]}


# --------------------------------------------------------------------------- schema, /docs


def test_openapi_describes_every_endpoint_and_parameter(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for path in ("/api/search", "/api/passages/{id}", "/api/similar/{id}",
                 "/api/info", "/health"):  # fmt: skip
        op = paths[path]["get"]
        assert op["summary"] and len(op["description"]) > 30, path
        for p in op.get("parameters", []):
            assert p.get("description"), (path, p["name"])
    assert set(paths["/login"]) == {"post"}
    names = [p["name"] for p in paths["/api/search"]["get"]["parameters"]]
    assert names == [
        "q", "k", "mode", "since", "until", "path", "by_article", "highlight", "correct",
        "rerank", "rerank_depth",
    ]  # fmt: skip
    assert "400" in paths["/api/search"]["get"]["responses"]
    assert "404" in paths["/api/passages/{id}"]["get"]["responses"]
    assert not [p for p, ops in paths.items() for op in ops.values() if "422" in op["responses"]]
    assert "HTTPValidationError" not in json.dumps(schema)


def test_docs_is_self_contained(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "http://" not in page and "https://" not in page and "//cdn" not in page
    assert "<script" not in page and "<link" not in page
    schema = client.get("/openapi.json").json()
    for path, methods in schema["paths"].items():
        assert f"<code>{path}</code>" in page
        for op in methods.values():
            for p in op.get("parameters", []):
                assert f"<code>{p['name']}</code>" in page
    assert "What to search for, in your own words" in page
    assert client.get("/redoc").status_code == 404


# --------------------------------------------------------------------------- CORS


def test_cors_is_off_by_default(client: TestClient) -> None:
    r = client.get("/api/info", headers={"Origin": "http://localhost:3000"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


def test_cors_for_the_given_origins_only(service: Service) -> None:
    client = TestClient(create_app(service, cors_origins=["http://localhost:3000"]), base_url=BASE)
    ok = client.get("/api/info", headers={"Origin": "http://localhost:3000"})
    assert ok.headers["access-control-allow-origin"] == "http://localhost:3000"
    other = client.get("/api/info", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    ask = {"Origin": "http://localhost:3000", "Access-Control-Request-Method": "GET"}
    assert client.options("/api/search", headers=ask).status_code == 200
    ask["Access-Control-Request-Method"] = "DELETE"
    assert client.options("/api/search", headers=ask).status_code == 400


# --------------------------------------------------------------------------- threads


def test_many_threads_get_identical_answers(service: Service) -> None:
    app = create_app(service)
    urls = ["/api/search?q=river+flood&k=3", "/api/search?q=chess&mode=lexical",
            "/api/similar/2?k=2", "/api/passages/3", "/health"]  # fmt: skip
    reference = {u: TestClient(app, base_url=BASE).get(u).json() for u in urls}
    errors: list[str] = []
    answers: list[tuple[str, Any]] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        client = TestClient(app, base_url=BASE)
        for i in range(25):
            url = urls[(n + i) % len(urls)]
            try:
                r = client.get(url)
                with lock:
                    if r.status_code != 200:
                        errors.append(f"{url}: {r.status_code} {r.text}")
                    answers.append((url, r.json()))
            except Exception as exc:  # any failure counts; the test reports them all
                with lock:
                    errors.append(f"{url}: {exc!r}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert len(answers) == 100
    assert all(body == reference[url] for url, body in answers)


# --------------------------------------------------------------------------- the real process


def _files(folder: Path) -> dict[str, str]:
    """The index's files and their hashes (SQLite's -wal/-shm side files aside)."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }


def _lines(stream: Any, into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


def test_the_real_serve_process(built: Path, ix: str) -> None:
    before = _files(Path(ix))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("SEMSEARCH_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, FAKE_CLI, "serve", "--index", ix, "--port", "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_lines, args=(proc.stderr, lines), daemon=True)
    reader.start()
    try:
        first = lines.get(timeout=60)
        prefix, _, rest = first.partition(" at ")
        assert prefix == f"semsearch: serving {ix}", first
        url, _, tail = rest.partition(" ")
        assert url.startswith("http://127.0.0.1:") and url.endswith("/")
        assert int(url.rsplit(":", 1)[1].rstrip("/")) > 0
        assert tail.strip() == "(Ctrl-C stops)"
        with httpx.Client(base_url=url, timeout=30) as http:
            health = http.get("/health")
            assert health.status_code == 200 and health.json()["status"] == "ok"
            found = http.get("/api/search", params={"q": "river flood", "k": 3})
            assert found.status_code == 200
            _, out, _ = cli("query", "river flood", "-k", "3", "--json", "--index", ix)
            assert found.json() == json.loads(out)
            refused = http.get("/health", headers={"Host": "rebound.example"})
            assert refused.status_code == 421 and "rebound.example" in refused.json()["error"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=30)
    rest_lines: list[str] = []
    while not lines.empty():
        rest_lines.append(lines.get())
    log = "".join(rest_lines)
    assert log.count("GET /health 200") == 1, log
    assert log.count("GET /api/search?q=river+flood&k=3 200") == 1, log
    assert log.count("GET /health 421") == 1, log
    assert "Traceback" not in log and "INFO:" not in log
    assert rest_lines[-1].strip() == "semsearch: stopped; the index is as it was"
    assert proc.stdout is not None and proc.stdout.read() == ""
    assert _files(Path(ix)) == before
