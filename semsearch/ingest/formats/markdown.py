"""``.md`` / ``.markdown``: optional front matter (``title:``, ``date:``), the first ``#``
heading as title otherwise, one passage per paragraph, list, table or code block, markup
stripped."""

from __future__ import annotations

import re
from typing import Any

from ..documents import _WS, Document, LineIndex, Paragraph, _iso_date, _trimmed

SUFFIXES = (".md", ".markdown")

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)


def _front_matter(text: str) -> tuple[dict[str, str], int]:
    m = _FRONT_MATTER.match(text)
    if not m:
        return {}, 0
    fields: dict[str, str] = {}
    for line in m.group(1).splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and not key.startswith((" ", "\t", "-")):
            fields[key.strip().lower()] = value.strip().strip("\"'")
    return fields, m.end()


def _inline_text(token: Any) -> str:
    parts: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(child.content)
    return _WS.sub(" ", "".join(parts)).strip()


def parse_markdown(text: str, path: str) -> Document:
    """A Markdown article: front matter or first ``#`` heading as title, markup stripped."""
    from markdown_it import MarkdownIt

    meta, body_start = _front_matter(text)
    # Line offsets let the parser's line maps become character spans.
    line_starts = [0]
    for i, ch in enumerate(text):
        if ch == "\n":
            line_starts.append(i + 1)
    line_starts.append(len(text) + 1)
    first_line = text.count("\n", 0, body_start)

    def span(lines: list[int]) -> tuple[int, int]:
        a = line_starts[first_line + lines[0]]
        b = min(line_starts[first_line + lines[1]] - 1, len(text))
        return _trimmed(text, a, b)

    tokens = MarkdownIt("commonmark").enable("table").parse(text[body_start:])
    title = meta.get("title", "")
    paragraphs: list[Paragraph] = []
    group: list[str] = []  # the pieces of the list or table being read
    group_map: list[int] | None = None
    depth = 0  # nesting of lists and tables
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type in ("bullet_list_open", "ordered_list_open", "table_open"):
            if depth == 0:
                group, group_map = [], tok.map
            depth += 1
        elif tok.type in ("bullet_list_close", "ordered_list_close", "table_close"):
            depth -= 1
            if depth == 0 and group and group_map:
                a, b = span(group_map)
                paragraphs.append(Paragraph("; ".join(group), a, b, exact=False))
                group = []
        elif tok.type == "heading_open":
            inline = tokens[i + 1]
            if not title and tok.tag == "h1":
                title = _inline_text(inline)
            i += 3
            continue
        elif tok.type == "inline" and depth:
            content = _inline_text(tok)
            if content:
                group.append(content)
        elif tok.type == "inline" and tok.map:
            content = _inline_text(tok)
            if content:
                a, b = span(tok.map)
                paragraphs.append(Paragraph(content, a, b, exact=False))
        elif tok.type in ("fence", "code_block") and tok.map and tok.content.strip():
            if depth:
                group.append(_WS.sub(" ", tok.content).strip())
            else:
                a, b = span(tok.map)
                paragraphs.append(Paragraph(_WS.sub(" ", tok.content).strip(), a, b, exact=False))
        i += 1
    if not title and paragraphs:
        title = paragraphs[0].text[:120]
    date = _iso_date(meta.get("date"))
    fields = {k: v for k, v in meta.items() if k not in ("title", "date")}
    if meta.get("date") and date != meta.get("date"):
        fields["date_raw"] = meta["date"]
    return Document(
        path=path,
        title=title,
        paragraphs=paragraphs,
        date=date,
        format="markdown",
        fields=fields,
        lines=LineIndex(text),
    )


# --- HTML
