"""Who may ask the server: the token (header, cookie, POST /login, constant-time compare),
the Host check against DNS rebinding, and `semsearch serve` refusing unsafe starts."""

from __future__ import annotations

import hmac
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from fastapi.testclient import TestClient

from semsearch.errors import ServeError, UsageError
from semsearch.index import Index
from semsearch.serve import run
from semsearch.serve.app import create_app
from semsearch.serve.security import (
    TOKEN_COOKIE,
    Security,
    allowed_hosts_for,
    bearer_token,
    is_loopback,
)
from semsearch.serve.service import Service
from tests import fake_cli
from tests.cli_helpers import assert_one_line_error
from tests.cli_helpers import run as cli_run
from tests.fakes import FakeEmbedder

ROOT = Path(__file__).resolve().parent.parent
BASE = "http://127.0.0.1"
TOKEN = 't0k-en/with=odd;chars "quoted"'


@pytest.fixture
def service(index_dir: Path) -> Iterator[Service]:
    with Index.open(index_dir, embedder=FakeEmbedder()) as index:
        yield Service(index)


@pytest.fixture
def guarded(service: Service) -> TestClient:
    return TestClient(create_app(service, token=TOKEN), base_url=BASE)


def request(headers: dict[str, str] | None = None, cookies: dict[str, str] | None = None) -> Any:
    """The little of a Starlette request that `Security` reads."""
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    return SimpleNamespace(headers=lowered, cookies=cookies or {})


# --------------------------------------------------------------------------- Security alone


def test_security_without_a_token_lets_everyone_in() -> None:
    assert Security(None).authorized(request())
    assert Security("").token is None and Security("").authorized(request())


def test_security_accepts_the_bearer_header_or_the_cookie() -> None:
    s = Security("abc")
    assert s.authorized(request({"Authorization": "Bearer abc"}))
    assert s.authorized(request({"Authorization": "bearer   abc  "}))
    assert s.authorized(request(cookies={TOKEN_COOKIE: "abc"}))
    assert not s.authorized(request())
    assert not s.authorized(request({"Authorization": "Bearer abd"}))
    assert not s.authorized(request({"Authorization": "Basic abc"}))
    assert not s.authorized(request({"Authorization": "abc"}))
    assert not s.authorized(request(cookies={TOKEN_COOKIE: "ab"}))
    assert not s.authorized(request(cookies={"other": "abc"}))


def test_bearer_token_parsing() -> None:
    assert bearer_token("Bearer x y") == "x y"
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None
    assert bearer_token("Token x") is None


def test_the_token_is_compared_in_constant_time() -> None:
    s = Security("right-token")
    with mock.patch(
        "semsearch.serve.security.hmac.compare_digest", wraps=hmac.compare_digest
    ) as spy:
        assert not s.authorized(request({"Authorization": "Bearer wrong"}))
        assert s.authorized(request(cookies={TOKEN_COOKIE: "right-token"}))
    assert spy.call_args_list == [
        mock.call(b"wrong", b"right-token"),
        mock.call(b"right-token", b"right-token"),
    ]


def test_the_api_compares_tokens_in_constant_time(guarded: TestClient) -> None:
    with mock.patch("semsearch.serve.security.hmac.compare_digest", return_value=True) as spy:
        r = guarded.get("/api/info", headers={"Authorization": "Bearer anything"})
    assert r.status_code == 200  # the answer is compare_digest's, whatever the strings
    spy.assert_called_once_with(b"anything", TOKEN.encode())


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("127.0.0.1", True),
        ("127.0.0.1:8765", True),
        ("localhost", True),
        ("LocalHost:80", True),
        ("localhost.", True),
        ("[::1]", True),
        ("[::1]:8765", True),
        ("::1", True),
        ("evil.example", False),
        ("evil.example:8765", False),
        ("127.0.0.1.evil.example", False),
        ("localhost.evil.example:8765", False),
        ("127.0.0.2", False),  # loopback, but not a name this server was given
        ("", False),
        ("127.0.0.1:8765@evil.example", False),  # no port: no name of this server
        ("localhost:http", False),
        ("[::1]evil.example", False),
        ("[::1]:8765x", False),
    ],
)
def test_host_check(host: str, ok: bool) -> None:
    assert Security(None).host_allowed(request({"Host": host})) is ok


def test_a_missing_host_header_is_refused() -> None:
    assert not Security(None).host_allowed(request())


def test_allowed_hosts_for_the_bound_address() -> None:
    assert allowed_hosts_for("127.0.0.1") == ("localhost", "127.0.0.1", "[::1]", "127.0.0.1")
    named = Security(None, allowed_hosts_for("notes.lan"))
    assert named.host_allowed(request({"Host": "notes.lan:8765"}))
    assert named.host_allowed(request({"Host": "localhost:8765"}))
    assert not named.host_allowed(request({"Host": "evil.example"}))
    v6 = Security(None, allowed_hosts_for("fd00::5"))
    assert v6.host_allowed(request({"Host": "[fd00::5]:8765"}))
    for wildcard in ("0.0.0.0", "::"):  # every interface: any name (a token is required)
        assert allowed_hosts_for(wildcard) is None
        assert Security("t", None).host_allowed(request({"Host": "192.168.1.9:8765"}))


@pytest.mark.parametrize(
    ("host", "loop"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("127.8.9.1", True),
        ("0.0.0.0", False),
        ("192.168.1.2", False),
        ("::", False),
        ("example.org", False),
    ],
)
def test_is_loopback(host: str, loop: bool) -> None:
    assert is_loopback(host) is loop


# --------------------------------------------------------------------------- the app


def test_no_token_asked_means_open_api(service: Service) -> None:
    client = TestClient(create_app(service), base_url=BASE)
    assert client.get("/api/info").status_code == 200


def test_api_without_the_token_is_401_saying_how_to_send_it(guarded: TestClient) -> None:
    for url in ("/api/search?q=river", "/api/info", "/api/passages/1", "/api/similar/1",
                "/api/nothing"):  # fmt: skip
        r = guarded.get(url)
        assert r.status_code == 401, url
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json() == {
            "error": "this server needs a token: send the header 'Authorization: Bearer TOKEN' "
            "with the token the server was started with (--token or SEMSEARCH_TOKEN)"
        }
    wrong = guarded.get("/api/info", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"].startswith("the token sent is wrong: send the header")


def test_api_with_the_token(guarded: TestClient) -> None:
    r = guarded.get(
        "/api/search", params={"q": "river"}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert r.status_code == 200 and r.json()["results"]


def test_health_docs_and_schema_need_no_token(guarded: TestClient) -> None:
    assert guarded.get("/health").json()["status"] == "ok"
    assert guarded.get("/docs").status_code == 200
    assert guarded.get("/openapi.json").status_code == 200


def test_login_sets_a_strict_httponly_cookie(guarded: TestClient) -> None:
    r = guarded.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{TOKEN_COOKIE}=")
    parts = {p.strip().lower() for p in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/"} <= parts
    # the client keeps the cookie: the API answers it from now on, the odd characters intact
    assert guarded.get("/api/info").status_code == 200


def test_login_with_a_wrong_token_sets_nothing(guarded: TestClient) -> None:
    for body in ({"token": "nope"}, {"token": ""}, {"other": TOKEN}):
        r = guarded.post("/login", data=body, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/?login=failed", body
        assert "set-cookie" not in r.headers
    huge = guarded.post(
        "/login",
        content=f"token={TOKEN}&pad={'x' * 10_000}",
        follow_redirects=False,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert huge.headers["location"] == "/?login=failed"
    assert guarded.get("/api/info").status_code == 401


def test_login_without_a_token_set_goes_home(service: Service) -> None:
    client = TestClient(create_app(service), base_url=BASE)
    r = client.post("/login", data={"token": "x"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert "set-cookie" not in r.headers


def test_the_page_helper_can_ask_security(guarded: TestClient) -> None:
    security = guarded.app.state.security
    assert isinstance(security, Security) and security.token == TOKEN


@pytest.mark.parametrize("path", ["/health", "/api/info", "/", "/docs", "/nothing"])
def test_other_hosts_are_refused_everywhere(guarded: TestClient, path: str) -> None:
    headers = {"Host": "attacker.example:8765", "Authorization": f"Bearer {TOKEN}"}
    r = guarded.get(path, headers=headers)
    assert r.status_code == 421
    assert r.json() == {
        "error": "this server does not answer to the host 'attacker.example:8765': use "
        "http://127.0.0.1 or http://localhost (requests naming other hosts are refused "
        "against DNS rebinding)"
    }
    assert guarded.post("/login", data={"token": TOKEN}, headers=headers).status_code == 421


def test_loopback_names_are_answered(service: Service) -> None:
    app = create_app(service)
    for base in ("http://127.0.0.1:8765", "http://localhost:8765", "http://[::1]:8765"):
        assert TestClient(app, base_url=base).get("/health").status_code == 200, base


# --------------------------------------------------------------------------- serve refusals


def test_serve_refuses_another_host_without_a_token(
    index_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEMSEARCH_TOKEN", raising=False)
    with mock.patch.object(run, "bind", side_effect=AssertionError("bound")) as bind:
        code, out, err = cli_run("serve", "--index", str(index_dir), "--host", "0.0.0.0")
    line = assert_one_line_error(code, out, err, "--token", "SEMSEARCH_TOKEN", exit_code=2)
    assert "0.0.0.0" in line
    bind.assert_not_called()
    with pytest.raises(UsageError, match="--token T or SEMSEARCH_TOKEN"):
        run.check_host("192.168.1.4", None)
    run.check_host("192.168.1.4", "t")  # with a token it may
    run.check_host("localhost", None)


@pytest.mark.parametrize("token", ["pässwort", "€uro", " lead", "trail ", "tab\tin"])
def test_a_token_http_cannot_carry_is_refused_before_binding(
    index_dir: Path, service: Service, token: str
) -> None:
    """A Bearer header is read as Latin-1 and stripped, a cookie holds Latin-1 only: such a
    token could never be sent (and POST /login with '€' was a 500)."""
    with mock.patch.object(run, "bind", side_effect=AssertionError("bound")) as bind:
        code, out, err = cli_run("serve", "--index", str(index_dir), "--token", token)
    assert_one_line_error(code, out, err, "the token", exit_code=2)
    bind.assert_not_called()
    with pytest.raises(UsageError, match="the token"):
        create_app(service, token=token)


def test_a_token_with_inner_spaces_and_punctuation_works(service: Service) -> None:
    token = 'a b;c,"d"\\e=~'
    client = TestClient(create_app(service, token=token), base_url=BASE)
    assert client.get("/api/info", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    client.post("/login", data={"token": token}, follow_redirects=False)
    assert client.get("/api/info").status_code == 200  # by the cookie /login set


def test_serve_without_an_index_fails_before_binding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with mock.patch.object(run, "bind", side_effect=AssertionError("bound")) as bind:
        code, out, err = cli_run("serve", "--index", str(tmp_path / "none"), "--port", "0")
    assert_one_line_error(code, out, err, str(tmp_path / "none"), exit_code=2)
    bind.assert_not_called()


def test_serve_on_a_damaged_index_fails_before_binding(index_dir: Path) -> None:
    (index_dir / "semsearch.db").write_bytes(b"not a database at all" * 100)
    with mock.patch.object(run, "bind", side_effect=AssertionError("bound")) as bind:
        code, out, err = cli_run("serve", "--index", str(index_dir), "--port", "0")
    assert_one_line_error(code, out, err, exit_code=2)
    bind.assert_not_called()


def test_help_never_shows_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMSEARCH_TOKEN", "very-secret-value")
    code, out, err = cli_run("serve", "--help")
    assert code == 0 and "--token" in out and "--cors" in out
    assert "very-secret-value" not in out + err


def test_bad_ports_are_one_line() -> None:
    code, out, err = cli_run("serve", "--port", "70000")
    assert_one_line_error(code, out, err, "--port", exit_code=2)
    with pytest.raises(UsageError, match="port must be a whole number from 0 to 65535"):
        run.bind("127.0.0.1", -1)


def test_bind_port_zero_picks_a_free_port() -> None:
    sock = run.bind("127.0.0.1", 0)
    try:
        assert sock.getsockname()[1] > 0
    finally:
        sock.close()
    assert run.url_of("::1", 80) == "http://[::1]:80/"


def test_a_port_in_use_is_one_line_exit_2(index_dir: Path, tmp_path: Path) -> None:
    """A real process (it would serve forever if it did not fail), on a port held here."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("Title\n\nA paragraph about rivers.\n", encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    fake = [sys.executable, str(Path(fake_cli.__file__).resolve())]
    ix = str(tmp_path / "ix")
    made = subprocess.run(
        [*fake, "index", str(folder), "--index", ix, "-q"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        with pytest.raises(ServeError, match="Address already in use"):
            run.bind("127.0.0.1", port)
        done = subprocess.run(
            [*fake, "serve", "--index", ix, "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    line = assert_one_line_error(
        done.returncode, done.stdout, done.stderr, str(port), "--port", exit_code=2
    )
    assert "another server is using it" in line


def test_serve_reads_the_token_from_the_environment(
    index_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SEMSEARCH_TOKEN lets a non-loopback host through; the app gets it and that host."""
    monkeypatch.setenv("SEMSEARCH_TOKEN", "from-env")
    held = socket.socket()  # stands in for the bound socket: nothing listens on 0.0.0.0 here
    seen: dict[str, Any] = {}

    def fake_run(index: Any, sock: Any, host: str, token: str | None, *rest: Any) -> None:
        seen.update(host=host, token=token, sock=sock)

    with (
        mock.patch.object(run, "bind", return_value=held) as bind,
        mock.patch.object(run, "_run", side_effect=fake_run),
        mock.patch.object(run, "warm"),
    ):
        code, _, err = cli_run("serve", "--index", str(index_dir), "--host", "0.0.0.0")
    assert code == 0, err
    bind.assert_called_once_with("0.0.0.0", 8765)
    assert seen == {"host": "0.0.0.0", "token": "from-env", "sock": held}
    assert held.fileno() == -1  # closed after serving
