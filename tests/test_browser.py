"""The search page in a real browser: Debian's headless chromium through Playwright,
the app served by uvicorn on 127.0.0.1, an index of seeds/ with the real model."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from semsearch.index import Index
from semsearch.serve import page as page_module
from semsearch.serve.service import Service
from tests.browser import SKIP_VARIABLE, launch, missing_browser, serving
from tests.conftest import SEEDS

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.slow

QUERY = "who attends the parade"
LEADERS = "Around 26 world leaders are anticipated at the event"  # the seed's paragraph 4
PARADE = "a major military parade in Tiananmen Square"  # paragraph 3: the parade, Putin expected
PNG = b"\x89PNG\r\n\x1a\n"
WAIT_MS = 20_000  # how long a step may take before the test fails (not a measured time)


@pytest.fixture(scope="module")
def browser_ready() -> None:
    why = missing_browser()
    if why is None:
        return
    if os.environ.get(SKIP_VARIABLE) == "1":
        pytest.skip(why)
    pytest.fail(why, pytrace=False)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    base = tmp_path_factory.mktemp("browser-index")
    seeds = base / "seeds"
    shutil.copytree(SEEDS, seeds)
    with Index.open(base / "idx", create=True) as index:
        index.add([seeds])
    with Index.open(base / "idx") as index:
        yield Service(index)


@pytest.fixture(scope="module")
def base_url(browser_ready: None, service: Service) -> Iterator[str]:
    from fastapi import FastAPI

    app = FastAPI()
    page_module.install(app, service)
    with serving(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser(browser_ready: None) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield page
    context.close()
    assert errors == [], errors  # no script error, no failed load, on any step


def focused(page: Page) -> dict[str, Any]:
    return page.evaluate(
        "() => ({id: document.activeElement.id, cls: document.activeElement.className,"
        " href: document.activeElement.getAttribute('href')})"
    )


def wait_for_results_of(page: Page, query: str) -> None:
    """Until the results on screen are those of ``query`` (rendered after it was typed)."""
    page.wait_for_function(
        "q => { const s = document.querySelector('#results .summary');"
        " return s !== null && s.textContent.includes('“' + q + '”'); }",
        arg=query,
    )


def first_hit_text(page: Page) -> str:
    return page.locator("#results li.hit").first.locator("p.text").inner_text()


def test_typing_updates_the_results_and_the_url(page: Page, service: Service) -> None:
    page.goto("/")
    assert focused(page)["id"] == "q"  # the box has the focus on load
    assert "Type a few words" in page.locator("#results").inner_text()
    page.keyboard.type(QUERY, delay=20)  # no Enter: the page updates as one types
    wait_for_results_of(page, QUERY)
    assert "q=who+attends+the+parade" in page.url  # history.replaceState
    assert page.title() == f"{QUERY} — semsearch"
    # the ranking on screen is the library's (hybrid): the parade paragraph, Putin expected
    expected = service.search(QUERY)["results"]
    ids = page.locator("#results li.hit").evaluate_all("els => els.map(e => e.id)")
    assert ids == [f"hit-{h['passage_id']}" for h in expected]
    assert PARADE in first_hit_text(page)
    assert page.locator("#results li.hit").first.locator("mark").count() >= 1
    # dense mode puts the paragraph about the 26 world leaders expected at the parade first
    page.select_option("select[name=mode]", "dense")
    page.wait_for_function("() => location.search.includes('mode=dense')")
    wait_for_results_of(page, QUERY)
    assert "(dense)" in page.locator("#results .summary").inner_text()
    assert LEADERS in first_hit_text(page)


def test_more_like_this_then_a_filter_that_excludes_everything(page: Page) -> None:
    page.goto("/?mode=dense")
    page.fill("#q", QUERY)
    wait_for_results_of(page, QUERY)
    first = page.locator("#results li.hit").first
    original = first.get_attribute("id")
    assert LEADERS in first.locator("p.text").inner_text()
    first.locator("a.like").click()
    page.wait_for_url("**/similar/*")
    hits = page.locator("#results li.hit")
    assert hits.count() >= 3
    assert original not in hits.evaluate_all("els => els.map(e => e.id)")
    assert LEADERS in page.locator(".original").inner_text()  # what they are like
    page.go_back()
    page.wait_for_url("**/?q=who+attends+the+parade*")
    wait_for_results_of(page, QUERY)
    assert page.locator("#results li.hit").first.get_attribute("id") == original
    page.fill("input[name=since]", "2100-01-01")
    page.wait_for_function("() => document.querySelector('#results .empty') !== null")
    results = page.locator("#results").inner_text()
    assert "No results" in results and "since 2100-01-01" in results
    assert page.locator("#results li.hit").count() == 0
    assert "since=2100-01-01" in page.url


def test_the_keyboard_moves_between_the_box_and_the_results(page: Page) -> None:
    page.goto("/")
    page.keyboard.type("military parade")
    page.keyboard.press("Enter")
    wait_for_results_of(page, "military parade")
    links = page.locator("#results a.hit-link").evaluate_all(
        "els => els.map(e => e.getAttribute('href'))"
    )
    assert len(links) >= 3
    page.keyboard.press("ArrowDown")
    assert focused(page)["href"] == links[0]
    page.keyboard.press("ArrowDown")
    assert focused(page)["href"] == links[1]
    page.keyboard.press("ArrowUp")
    assert focused(page)["href"] == links[0]
    page.keyboard.press("ArrowUp")
    assert focused(page)["id"] == "q"
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Escape")
    assert focused(page)["id"] == "q"
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")  # follows the focused result: the passage in its document
    page.wait_for_url(f"**{links[0]}")
    assert page.locator("article.passage.current").count() == 1


def test_the_passage_link_shows_it_among_its_neighbours(page: Page, service: Service) -> None:
    page.goto("/?q=who+attends+the+parade&mode=dense")
    first = page.locator("#results li.hit").first
    pid = int((first.get_attribute("id") or "").removeprefix("hit-"))
    first.locator("a.hit-link").click()
    page.wait_for_url(f"**/passage/{pid}")
    view = service.passage(pid, page_module.CONTEXT)
    articles = page.locator("article.passage").evaluate_all("els => els.map(e => e.id)")
    expected = [h["passage_id"] for h in view["before"]] + [pid]
    expected += [h["passage_id"] for h in view["after"]]
    assert articles == [f"p-{i}" for i in expected]
    assert view["before"] and view["after"]
    current = page.locator("article.passage.current")
    assert LEADERS in current.inner_text()
    assert current.locator("mark").count() == 1
    assert page.locator("h1.doc-title").inner_text() == view["document"]["title"]


def test_an_out_of_date_answer_never_replaces_a_newer_one(page: Page) -> None:
    held: list[Any] = []

    def hold_the_first(route: Any) -> None:
        if "q=military" in route.request.url and not held:
            held.append(route)  # answered later, after the newer query's answer
        else:
            route.continue_()

    page.goto("/")
    page.route("**/?*fragment=1*", hold_the_first)
    with page.expect_request(lambda r: "q=military" in r.url):
        page.fill("#q", "military")
    for _ in range(100):  # the route handler runs while Playwright waits
        if held:
            break
        page.wait_for_timeout(20)
    assert held, "the first query's request was sent and held"
    page.fill("#q", QUERY)
    wait_for_results_of(page, QUERY)
    assert page.get_attribute("#results", "data-answers") == "1"
    held[0].continue_()
    page.wait_for_function("() => document.querySelector('#results').dataset.answers === '2'")
    wait_for_results_of(page, QUERY)  # the older answer came and was not shown
    assert "“military”" not in page.locator("#results").inner_text()
    assert "q=who+attends+the+parade" in page.url


def test_without_javascript_the_form_searches_on_the_server(
    browser: Browser, base_url: str
) -> None:
    context = browser.new_context(base_url=base_url, java_script_enabled=False)
    context.set_default_timeout(WAIT_MS)
    try:
        page = context.new_page()
        page.goto("/")
        page.fill("#q", QUERY)
        page.select_option("select[name=mode]", "dense")
        with page.expect_navigation():
            page.press("#q", "Enter")
        assert "q=who+attends+the+parade" in page.url and "mode=dense" in page.url
        assert LEADERS in first_hit_text(page)
        page.fill("input[name=since]", "2100-01-01")
        with page.expect_navigation():
            page.press("#q", "Enter")
        assert "No results" in page.locator("#results").inner_text()
    finally:
        context.close()


def test_a_phone_width_has_no_horizontal_scroll(
    browser: Browser, base_url: str, service: Service, tmp_path_factory: pytest.TempPathFactory
) -> None:
    context = browser.new_context(
        base_url=base_url, viewport={"width": 360, "height": 740}, device_scale_factor=1
    )
    context.set_default_timeout(WAIT_MS)
    pid = service.search(QUERY)["results"][0]["passage_id"]
    shots = tmp_path_factory.mktemp("screenshots")
    try:
        page = context.new_page()
        for path in (
            "/",
            f"/?q={QUERY}&since=2100-01-01",
            f"/similar/{pid}",
            f"/passage/{pid}",
            f"/?q={QUERY}",
        ):
            page.goto(path)
            width = page.evaluate(
                "() => [document.scrollingElement.scrollWidth, window.innerWidth]"
            )
            assert width[0] <= width[1], (path, width)
        shot = shots / "phone.png"
        page.screenshot(path=str(shot), full_page=True)
    finally:
        context.close()
    assert shot.read_bytes()[:8] == PNG
    print(f"screenshot: {shot}")


def test_dark_mode_follows_the_system(browser: Browser, base_url: str) -> None:
    colours = {}
    for scheme in ("light", "dark"):
        context = browser.new_context(base_url=base_url, color_scheme=scheme)
        try:
            page = context.new_page()
            page.goto("/?q=parade")
            colours[scheme] = page.evaluate(
                "() => [getComputedStyle(document.body).backgroundColor,"
                " getComputedStyle(document.body).color]"
            )
        finally:
            context.close()
    assert colours["light"][0] == "rgb(255, 255, 255)"
    assert colours["dark"][0] != colours["light"][0]
    assert colours["dark"][1] != colours["light"][1]


def test_a_desktop_screenshot_is_kept(page: Page, tmp_path_factory: pytest.TempPathFactory) -> None:
    page.goto(f"/?q={QUERY}")
    wait_for_results_of(page, QUERY)
    shot = tmp_path_factory.mktemp("screenshots") / "desktop.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 0 and shot.read_bytes()[:8] == PNG
    print(f"screenshot: {shot}")


def test_the_readme_screenshot_is_a_small_png() -> None:
    shot = Path(__file__).resolve().parent.parent / "docs" / "serve.png"
    data = shot.read_bytes()
    assert data[:8] == PNG
    assert len(data) < 200_000  # made by `python -m tests.screenshot`
