"""``.html`` / ``.htm``: title from ``<h1>`` or ``<title>``, paragraphs from ``<p>``;
scripts, styles and navigation dropped."""

from __future__ import annotations

from typing import Any

from ..documents import _WS, Document, Paragraph, _iso_date

SUFFIXES = (".html", ".htm")

_BLOCK_TAGS = (
    "div",
    "section",
    "li",
    "td",
    "th",
    "tr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "pre",
    "dd",
    "dt",
    "figcaption",
    "main",
    "article",
    "body",
)
_DROP_TAGS = (
    "script",
    "style",
    "noscript",
    "template",
    "svg",
    "nav",
    "header",
    "footer",
    "aside",
    "form",
    "iframe",
    "button",
)


def parse_html(text: str, path: str) -> Document:
    """An HTML article: ``<h1>`` or ``<title>`` as title, ``<p>`` elements as paragraphs."""
    from bs4 import BeautifulSoup

    try:
        soup = BeautifulSoup(text, "lxml")
    except Exception:  # lxml missing or refusing the input: the stdlib parser never does
        soup = BeautifulSoup(text, "html.parser")
    date = None
    attrs: Any
    for attrs in (
        {"property": "article:published_time"},
        {"name": "date"},
        {"name": "dc.date"},
        {"itemprop": "datePublished"},
    ):
        meta = soup.find("meta", attrs=attrs)
        if meta is not None and meta.get("content"):
            date = _iso_date(str(meta["content"]))
            if date:
                break
    if date is None:
        time_tag = soup.find("time", attrs={"datetime": True})
        if time_tag is not None:
            date = _iso_date(str(time_tag["datetime"]))
    # The headline: the article's <h1> (often inside its own <header>), else the page's.
    h1 = (soup.find("article") or soup).find("h1") or soup.find("h1")
    title = _WS.sub(" ", h1.get_text()).strip() if h1 is not None else ""
    if not title:
        title_tag = soup.find("title")
        title = _WS.sub(" ", title_tag.get_text()).strip() if title_tag is not None else ""
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    for br in soup.find_all("br"):
        br.replace_with(" ")
    root = soup.find("article") or soup.find("main") or soup.body or soup
    texts = []
    for p in root.find_all("p"):
        if p.find_parent("p") is not None:
            continue
        content = _WS.sub(" ", p.get_text()).strip()
        if content:
            texts.append(content)
    if not texts:  # no <p>: fall back to the page's block elements
        for block in root.find_all(_BLOCK_TAGS):
            block.insert_before("\n")
            block.insert_after("\n")
        body_text = root.get_text()
        texts = [_WS.sub(" ", line).strip() for line in body_text.split("\n")]
        texts = [t for t in texts if t and t != title]
    paragraphs = []
    pos = 0
    for t in texts:
        paragraphs.append(Paragraph(t, pos, pos + len(t)))
        pos += len(t) + 2
    return Document(path=path, title=title, paragraphs=paragraphs, date=date, format="html")


# --- JSON Lines
