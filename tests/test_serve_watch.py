"""`semsearch serve --watch`: the server keeps its index fresh and answers from each commit."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from semsearch.index import Index
from tests import fake_cli
from tests.cli_helpers import assert_one_line_error

ROOT = Path(__file__).resolve().parent.parent
FAKE_CLI = str(Path(fake_cli.__file__).resolve())


def _env() -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("SEMSEARCH_TOKEN", None)
    return env


def _lines(stream: Any, into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


def _wait_for(lines: queue.Queue[str], prefix: str, seconds: float = 90) -> str:
    """The first stderr line starting with ``prefix`` (others are the request log)."""
    deadline = time.monotonic() + seconds
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        if line.startswith(prefix):
            return line
    raise AssertionError(f"no line starting {prefix!r} in {seen}")


def _start(*args: str) -> tuple[subprocess.Popen[str], queue.Queue[str], threading.Thread]:
    """`semsearch ARGS` (fake model) in a real process, its stderr lines in a queue."""
    proc = subprocess.Popen(
        [sys.executable, FAKE_CLI, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_lines, args=(proc.stderr, lines), daemon=True)
    reader.start()
    return proc, lines, reader


def _stop(
    proc: subprocess.Popen[str], lines: queue.Queue[str], reader: threading.Thread, sig: int
) -> tuple[int, list[str]]:
    """Send ``sig``; the exit code and the stderr lines not read yet."""
    try:
        proc.send_signal(sig)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=30)
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    assert "Traceback" not in "".join(rest)
    return code, rest


def _article_folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Harbour news\n\nThe ferry to the island left late today.\n")
    return docs


def _search(http: httpx.Client, q: str) -> list[dict[str, Any]]:
    r = http.get("/api/search", params={"q": q, "mode": "lexical", "k": 5})
    assert r.status_code == 200, r.text
    return list(r.json()["results"])


def test_serve_watch_builds_a_missing_index_then_answers_from_each_commit(tmp_path: Path) -> None:
    docs = _article_folder(tmp_path)
    ix = tmp_path / "ix"  # no index yet: --watch builds it from docs/ first
    proc, lines, reader = _start("serve", "--index", str(ix), "--port", "0", "--watch", str(docs))
    try:
        ready = _wait_for(lines, "semsearch: serving")
        url = ready.partition(" at ")[2].split(" ")[0]
        with httpx.Client(base_url=url, timeout=30) as http:
            assert [h["title"] for h in _search(http, "ferry")] == ["Harbour news"]
            generation = http.get("/health").json()["generation"]
            (docs / "b.txt").write_text("Lighthouse keeper\n\nA zanzibarite lamp was fitted.\n")
            (docs / "a.txt").unlink()
            found: list[dict[str, Any]] = []
            for _ in range(120):  # bounded: about 30 s at most
                found = _search(http, "zanzibarite")
                if found and not _search(http, "ferry"):
                    break
                time.sleep(0.25)
            assert [h["title"] for h in found] == ["Lighthouse keeper"]
            assert _search(http, "ferry") == []  # the deleted file left the index
            assert http.get("/health").json()["generation"] > generation
    finally:
        code, _rest = _stop(proc, lines, reader, signal.SIGINT)
    assert code == 130
    with fake_cli.faked(), Index.open(ix) as index:
        assert index.check().ok
        assert [f.path for f in index.files()] == [str(docs / "b.txt")]


def test_serve_watch_of_a_missing_path_is_one_line_before_listening(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            FAKE_CLI,
            "serve",
            "--index",
            str(tmp_path / "ix"),
            "--port",
            "0",
            "--watch",
            str(tmp_path / "nowhere"),
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert_one_line_error(
        proc.returncode, proc.stdout, proc.stderr, "no such file or folder to watch", exit_code=2
    )
    assert not (tmp_path / "ix").exists()  # nothing was made


def test_sigterm_stops_serve_watch_cleanly_with_exit_143(tmp_path: Path) -> None:
    """A service manager's stop: the watcher stops, the index closes, one line, exit 143."""
    ix = tmp_path / "ix"
    proc, lines, reader = _start(
        "serve", "--index", str(ix), "--port", "0", "--watch", str(_article_folder(tmp_path))
    )
    _wait_for(lines, "semsearch: serving")
    code, rest = _stop(proc, lines, reader, signal.SIGTERM)
    assert code == 143
    assert rest[-1].strip() == "semsearch: stopped (SIGTERM); the index is as last committed"
    with fake_cli.faked(), Index.open(ix) as index:
        assert index.check().ok


def test_sigterm_stops_index_watch_cleanly_with_exit_143(tmp_path: Path) -> None:
    ix = tmp_path / "ix"
    proc, lines, reader = _start(
        "index", str(_article_folder(tmp_path)), "--index", str(ix), "--watch", "-q"
    )
    _wait_for(lines, "watching ")
    code, rest = _stop(proc, lines, reader, signal.SIGTERM)
    assert code == 143
    assert rest[-1].strip() == (
        "semsearch: stopped watching (SIGTERM); the index is as last committed"
    )
    with fake_cli.faked(), Index.open(ix) as index:
        assert index.check().ok
