"""``.txt``: the seed format (a header line `` date YYYY-MM-DD N``, a title line, then one
paragraph per line) or plain text (a title line, then paragraphs separated by blank lines;
a body with no blank line at all has one paragraph per line)."""

from __future__ import annotations

from ..documents import (
    _SEED_HEADER,
    Document,
    LineIndex,
    _blocks,
    _first_line,
    _line_spans,
    _paragraph,
)

SUFFIXES = (".txt", ".text")


def parse_text(text: str, path: str) -> Document:
    """A ``.txt`` article: the seed format, or a title line and blank-line paragraphs."""
    first, after_first = _first_line(text)
    m = _SEED_HEADER.match(first)
    if m:
        title, body_start = _first_line(text, after_first)
        paragraphs = [
            p for ls, le in _line_spans(text, body_start) if (p := _paragraph(text, ls, le))
        ]
        return Document(
            path=path,
            title=title,
            paragraphs=paragraphs,
            date=m.group(1),
            format="seed",
            fields={"number": int(m.group(2))},
            lines=LineIndex(text),
        )
    return Document(
        path=path,
        title=first,
        paragraphs=_blocks(text, after_first, len(text)),
        format="text",
        lines=LineIndex(text),
    )


# --- Markdown
