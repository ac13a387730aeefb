"""Make the README's screenshot of the search page: ``python -m tests.screenshot [OUT]``.

Run from the repository's root (paths on the page are shown relative to it):
indexes seeds/ with the default model into a temporary folder, serves the page
on 127.0.0.1, opens ``/?q=who attends the parade`` in Debian's headless
chromium at a desktop width and saves the visible page as a PNG (default
docs/serve.png), refusing one of 200 KB or more.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from fastapi import FastAPI
from playwright.sync_api import sync_playwright

from semsearch.index import Index
from semsearch.serve import page
from semsearch.serve.service import Service
from tests.browser import launch, missing_browser, serving

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "serve.png"
QUERY = "who attends the parade"
VIEWPORT = {"width": 1100, "height": 760}
MAX_BYTES = 200_000


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else OUT
    why = missing_browser()
    if why:
        print(f"error: {why}", file=sys.stderr)
        return 2
    with (
        tempfile.TemporaryDirectory(prefix="semsearch-shot-") as tmp,
        Index.open(Path(tmp) / "idx", create=True) as index,
    ):
        index.add(["seeds"])
        app = FastAPI()
        page.install(app, Service(index, label=".semsearch"))
        with serving(app) as base, sync_playwright() as playwright:
            browser = launch(playwright)
            context = browser.new_context(
                base_url=base, viewport=VIEWPORT, device_scale_factor=1, color_scheme="light"
            )
            tab = context.new_page()
            tab.goto(f"/?q={QUERY}")
            tab.locator("#results li.hit").first.wait_for()
            out.parent.mkdir(parents=True, exist_ok=True)
            tab.screenshot(path=str(out))
            browser.close()
    size = out.stat().st_size
    if size >= MAX_BYTES:
        print(f"error: {out} is {size:,} bytes; the README's image must stay under {MAX_BYTES:,}")
        return 1
    print(f"{out} ({size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
