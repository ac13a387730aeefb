"""``.html`` / ``.htm``: title from ``<h1>`` or ``<title>``, paragraphs from ``<p>``;
scripts, styles and navigation dropped. Each paragraph knows the line of the file its
element starts on."""

from __future__ import annotations

import re
from typing import Any

from ..documents import _WS, Document, Paragraph, _iso_date

SUFFIXES = (".html", ".htm")

_XML_DECLARATION = re.compile(r"\A\ufeff?\s*<\?xml[^>]*\?>")

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

    # XHTML (every EPUB chapter) starts with an XML declaration, which HTML parsers
    # ignore; bs4 warns on it (a dozen lines on the user's terminal, once a run), so it
    # is blanked, its lines kept for the paragraphs' line numbers
    text = _XML_DECLARATION.sub(lambda m: re.sub(r"[^\n]", " ", m[0]), text)
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
    _record_lines(soup, text)
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    for br in soup.find_all("br"):
        br.replace_with(" ")
    root = soup.find("article") or soup.find("main") or soup.body or soup
    texts: list[tuple[str, int]] = []  # (paragraph, line of the file)
    for p in root.find_all("p"):
        if p.find_parent("p") is not None:
            continue
        content = _WS.sub(" ", p.get_text()).strip()
        if content:
            texts.append((content, p.sourceline or 0))
    if not texts:  # no <p>: fall back to the page's block elements
        for block in root.find_all(_BLOCK_TAGS):
            block.insert_before("\n")
            block.insert_after("\n")
        texts = [(t, n) for t, n in _lines_of_text(root) if t != title]
    paragraphs = []
    pos = 0
    for t, line in texts:
        paragraphs.append(Paragraph(t, pos, pos + len(t), line=line))
        pos += len(t) + 2
    return Document(path=path, title=title, paragraphs=paragraphs, date=date, format="html")



def _record_lines(soup: Any, text: str) -> None:
    """Give every tag of ``soup`` the line of ``text`` its start tag is on (``sourceline``).

    Python's own parser records them; lxml's tree builder does not, so lxml parses
    ``text`` once more on its own, which gives the same tree, and its elements' lines
    are copied over in document order. Should the two trees differ, lines stay unknown.
    """
    tags = soup.find_all(True)
    if not tags or tags[0].sourceline is not None:
        return
    from lxml import etree
    from lxml import html as lxml_html

    try:
        try:
            root = lxml_html.document_fromstring(text)
        except ValueError:  # text declaring its encoding (<?xml ... encoding=...?>)
            root = lxml_html.document_fromstring(text.encode("utf-8"))
    except (ValueError, etree.LxmlError):  # an empty page, or one lxml refuses
        return
    elements = [e for e in root.iter() if isinstance(e.tag, str)]  # not comments
    if [e.tag for e in elements] != [t.name for t in tags]:
        return
    for tag, element in zip(tags, elements, strict=True):
        tag.sourceline = element.sourceline


def _lines_of_text(root: Any) -> list[tuple[str, int]]:
    """``root.get_text()`` cut at line breaks, white space collapsed, blank ones dropped,
    each with the line of the element its first word is in."""
    out: list[tuple[str, int]] = []
    parts: list[str] = []
    line = 0

    def flush() -> None:
        joined = _WS.sub(" ", "".join(parts)).strip()
        if joined:
            out.append((joined, line))

    for string in root.strings:
        for n, part in enumerate(str(string).split("\n")):
            if n:
                flush()
                parts, line = [], 0
            if part.strip() and not line:
                line = _line_of(string.parent)
            parts.append(part)
    flush()
    return out


def _line_of(tag: Any) -> int:
    while tag is not None:
        if getattr(tag, "sourceline", None):
            return int(tag.sourceline)
        tag = tag.parent
    return 0
