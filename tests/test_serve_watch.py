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


def _search(http: httpx.Client, q: str) -> list[dict[str, Any]]:
    r = http.get("/api/search", params={"q": q, "mode": "lexical", "k": 5})
    assert r.status_code == 200, r.text
    return list(r.json()["results"])


def test_serve_watch_builds_a_missing_index_then_answers_from_each_commit(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Harbour news\n\nThe ferry to the island left late today.\n")
    ix = tmp_path / "ix"  # no index yet: --watch builds it from docs/ first
    proc = subprocess.Popen(
        [
            sys.executable,
            FAKE_CLI,
            "serve",
            "--index",
            str(ix),
            "--port",
            "0",
            "--watch",
            str(docs),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stderr, lines), daemon=True).start()
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
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
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
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Harbour news\n\nThe ferry to the island left late today.\n")
    ix = tmp_path / "ix"
    proc = subprocess.Popen(
        [
            sys.executable,
            FAKE_CLI,
            "serve",
            "--index",
            str(ix),
            "--port",
            "0",
            "--watch",
            str(docs),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_lines, args=(proc.stderr, lines), daemon=True)
    reader.start()
    try:
        _wait_for(lines, "semsearch: serving")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=30)
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    assert rest[-1].strip() == "semsearch: stopped (SIGTERM); the index is as last committed"
    assert "Traceback" not in "".join(rest)
    with fake_cli.faked(), Index.open(ix) as index:
        assert index.check().ok


def test_sigterm_stops_index_watch_cleanly_with_exit_143(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Harbour news\n\nThe ferry to the island left late today.\n")
    ix = tmp_path / "ix"
    proc = subprocess.Popen(
        [sys.executable, FAKE_CLI, "index", str(docs), "--index", str(ix), "--watch", "-q"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_lines, args=(proc.stderr, lines), daemon=True)
    reader.start()
    try:
        _wait_for(lines, "watching ")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=30)
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    assert rest[-1].strip() == (
        "semsearch: stopped watching (SIGTERM); the index is as last committed"
    )
    assert "Traceback" not in "".join(rest)
    with fake_cli.faked(), Index.open(ix) as index:
        assert index.check().ok
