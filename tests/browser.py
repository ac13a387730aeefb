"""What the browser tests and the README screenshot share: Debian's chromium driven by
Playwright (never a browser download), and the app served by uvicorn on 127.0.0.1."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import uvicorn

if TYPE_CHECKING:
    from fastapi import FastAPI
    from playwright.sync_api import Browser, Playwright

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SKIP_VARIABLE = "SEMSEARCH_SKIP_BROWSER"
MISSING = (
    f"{CHROMIUM} is missing: the browser tests drive Debian's chromium "
    "(`sudo apt-get install -y chromium`; `make test` installs it), "
    f"or set {SKIP_VARIABLE}=1 to skip them"
)
STARTUP_SECONDS = 30


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not os.path.exists(CHROMIUM):
        return MISSING
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return f"playwright is not installed (pip install -e '.[dev]'), or set {SKIP_VARIABLE}=1"
    return None


def launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """``app`` served on 127.0.0.1 (a free port) in a background thread; yields its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP_SECONDS)
