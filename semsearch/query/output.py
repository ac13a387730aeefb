"""Hits as data: the JSON shape of a query's answer and its rows for other tools, defined once.

The command line prints these and a server returns them, so both give the
same objects. Everything here is a pure function of a list of `Hit`s:

- `hit_dict` is one hit as JSON: every field of `Hit` except those in
  `INTERNAL_FIELDS`, so a field added to `Hit` appears in the JSON without
  being listed here. `results_dict` is the whole answer
  (``{"query", "corrected_query", "index", "model", "results": [hit_dict, ...]}``).
- `jsonl_lines` (one `hit_dict` a line), `csv_text`, `tsv_text`,
  `markdown_text` and `vimgrep_lines` (``path:line:column: text``, for
  editors' quickfix lists) format the same hits for scripts and editors.
- `snippet` trims a passage to a number of characters around its highlight.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from .hits import Hit, display_path

if TYPE_CHECKING:
    from ..index import PassageView

Format = Literal["text", "json", "jsonl", "csv", "tsv", "markdown", "vimgrep"]
FORMATS: tuple[Format, ...] = ("text", "json", "jsonl", "csv", "tsv", "markdown", "vimgrep")

# Fields of `Hit` that stay out of its JSON: the database's document row id (the
# passage_id is the one to pass back) and a JSON Lines record's other fields (any
# size, and already in the file at path/key).
INTERNAL_FIELDS = frozenset({"document_id", "fields"})

# The columns of csv, tsv (and, but for abspath, passage_id and key, markdown) rows.
TABLE_COLUMNS = (
    "rank",
    "score",
    "title",
    "date",
    "path",
    "abspath",
    "line",
    "page",
    "paragraph",
    "passage_id",
    "key",
    "text",
)
_MARKDOWN_COLUMNS = ("rank", "score", "title", "date", "path", "line", "paragraph", "text")


def _with_index(hits: Sequence[Hit], columns: Sequence[str]) -> tuple[str, ...]:
    """``columns``, and ``index`` before ``path`` when the hits come from several indexes
    (a passage id is then only unique within its index)."""
    if not any(getattr(h, "index", None) for h in hits):
        return tuple(columns)
    at = list(columns).index("path")
    return (*columns[:at], "index", *columns[at:])

ELLIPSIS = "…"
_SNAP = 15  # a trimmed end moves back to a word boundary at most this many characters
_SPACES = re.compile(r"\s+")


def place(hit: Hit, cwd: str | None = None) -> str:
    """Where a hit is, as a reader opens it: its file (`display_path`), then ``#KEY`` for a
    JSON Lines record or `` p.N`` for a page of a PDF (a chapter of an EPUB)."""
    shown = display_path(hit.abspath, hit.path, cwd)
    if hit.key:
        shown += f"#{hit.key}"
    if hit.page:
        shown += f" p.{hit.page}"
    return shown


def hit_dict(hit: Hit) -> dict[str, Any]:
    """One hit as JSON-ready data: every `Hit` field but `INTERNAL_FIELDS`, spans as lists.

    ``index`` (in the hit and in each of its ``also_in``) only when several indexes
    were searched as one: a search of one index answers as it always has."""
    item = {k: v for k, v in hit.to_dict().items() if k not in INTERNAL_FIELDS}
    item["highlights"] = [list(span) for span in hit.highlights]
    if hit.index is None:
        del item["index"]
        for other in item["also_in"]:
            other.pop("index", None)
    return item


def results_dict(
    query: str, index: str | list[str], model: str, hits: Sequence[Hit]
) -> dict[str, Any]:
    """A query's whole answer: ``query`` as asked, ``corrected_query`` (the query as searched
    for when typos were corrected, else None: `Results.corrected_query`), the index
    folder (a list of them when several were searched as one), its model, the hits."""
    return {
        "query": query,
        "corrected_query": getattr(hits, "corrected_query", None),
        "index": index,
        "model": model,
        "results": [hit_dict(h) for h in hits],
    }


# Fields of a `Hit` that only a ranking fills: left out where a passage is shown for itself.
RANKING_FIELDS = frozenset({"rank", "score", "scores", "highlights", "also_in"})


def passage_dict(hit: Hit) -> dict[str, Any]:
    """A stored passage as JSON, for itself: `hit_dict` without `RANKING_FIELDS`."""
    return {k: v for k, v in hit_dict(hit).items() if k not in RANKING_FIELDS}


def passage_view_dict(view: PassageView, index: str) -> dict[str, Any]:
    """`Index.passage`'s answer as JSON: the passage, its article and its neighbours."""
    p = view.passage
    return {
        "index": index,
        "passage": passage_dict(p),
        "document": {
            "title": p.title,
            "date": p.date,
            "path": p.path,
            "abspath": p.abspath,
            "key": p.key,
            "passages": view.passages,
        },
        "position": view.position,
        "before": [passage_dict(h) for h in view.before],
        "after": [passage_dict(h) for h in view.after],
    }


def jsonl_lines(hits: Sequence[Hit]) -> Iterator[str]:
    """One JSON object a hit (the `hit_dict` of ``results``), without the newline."""
    for h in hits:
        yield json.dumps(hit_dict(h), ensure_ascii=False)


def snippet(
    text: str, spans: Sequence[tuple[int, int]], width: int | None
) -> tuple[str, list[tuple[int, int]]]:
    """``text`` cut to at most ``width`` characters around its first highlight, and the
    highlight spans moved to match.

    The window is centred on the first span (or starts at the text's start when
    there is none), ends at word boundaries where one is near, and an ellipsis
    marks each end that was cut. ``width=None`` (or a text that fits) keeps it whole.
    """
    if width is None or len(text) <= width:
        return text, list(spans)
    n = len(text)
    a, b = spans[0] if spans else (0, 0)
    if width < 3:  # no room for ellipses and a character between them
        start = min(a, n - max(width, 0))
        end = start + max(width, 0)
        moved = [(max(x, start) - start, min(y, end) - start) for x, y in spans]
        return text[start:end], [(x, y) for x, y in moved if y > x]
    start = a if b - a >= width else max(0, a - (width - (b - a)) // 2)
    start = min(start, n - width)
    end = start + width
    # room for an ellipsis at each end that is cut (not out of the highlight's start)
    if start > 0:
        if start < a:
            start += 1
        else:
            end -= 1
    if end < n:
        end -= 1
    # and cut between words where a space is near
    if 0 < start < a:
        space = text.find(" ", start - 1, min(a, start + _SNAP))
        if space >= 0:
            start = space + 1
    if end < n:
        lowest = max(start + 1, end - _SNAP)
        if b <= end:  # a highlight that fits is not cut
            lowest = max(lowest, b)
        space = text.rfind(" ", lowest, end + 1)
        if space > start:
            end = space
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    head = ELLIPSIS if start > 0 else ""
    tail = ELLIPSIS if end < n else ""
    shift = len(head) - start
    moved = [
        (max(x, start) + shift, min(y, end) + shift)
        for x, y in spans
        if min(y, end) > max(x, start)
    ]
    return head + text[start:end] + tail, moved


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) made one space."""
    return _SPACES.sub(" ", text).strip()


def vimgrep_lines(
    hits: Sequence[Hit], width: int | None = None, cwd: str | None = None
) -> Iterator[str]:
    """``path:line:column: text`` for each hit, as ``grep -n``/``rg --vimgrep`` print
    matches: editors jump to the passage. Line and column 1 where they are not known
    (indexes from before line numbers were recorded, formats that record no column)."""
    for h in hits:
        text, _ = snippet(one_line(h.text), h.highlights, width)
        yield f"{display_path(h.abspath, h.path, cwd)}:{h.line or 1}:{h.column or 1}: {text}"


def _row(hit: Hit, columns: Sequence[str], width: int | None) -> list[str]:
    out = []
    for col in columns:
        if col == "text":
            out.append(snippet(hit.text, hit.highlights, width)[0])
        else:
            value = getattr(hit, col)
            out.append("" if value is None else str(value))
    return out


def csv_text(hits: Sequence[Hit], width: int | None = None) -> str:
    """The hits as CSV (RFC 4180, a header row of `TABLE_COLUMNS`, full text unless ``width``)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    columns = _with_index(hits, TABLE_COLUMNS)
    writer.writerow(columns)
    for h in hits:
        writer.writerow(_row(h, columns, width))
    return buf.getvalue()


def _tsv_field(value: str) -> str:
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def tsv_text(hits: Sequence[Hit], width: int | None = None) -> str:
    """The hits as tab-separated values, a header row of `TABLE_COLUMNS`; a tab, newline,
    carriage return or backslash inside a value is written ``\\t``, ``\\n``, ``\\r``, ``\\\\``."""
    columns = _with_index(hits, TABLE_COLUMNS)
    lines = ["\t".join(columns)]
    for h in hits:
        lines.append("\t".join(_tsv_field(v) for v in _row(h, columns, width)))
    return "\n".join(lines) + "\n"


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def _markdown_escape(value: str) -> str:
    """``value`` as literal text inside a table cell: on one line, Markdown's marks escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", _SPACES.sub(" ", value))


def markdown_text(hits: Sequence[Hit], width: int | None = None) -> str:
    """The hits as a Markdown (GitHub) table, highlighted sentences in bold."""
    numeric = {"rank", "score", "line", "paragraph"}
    columns = _with_index(hits, _MARKDOWN_COLUMNS)
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---:" if c in numeric else "---" for c in columns) + "|",
    ]
    for h in hits:
        cells = []
        for col in columns:
            if col == "text":
                text, spans = snippet(h.text, h.highlights, width)
                cells.append(_bold_spans(text, spans))
            elif col == "path":  # a path that opens from here, the record or page it names
                cells.append(_markdown_escape(place(h)).strip())
            else:
                value = getattr(h, col)
                cells.append(_markdown_escape("" if value is None else str(value)).strip())
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _bold_spans(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """``text`` escaped for a table cell, each span in ``**bold**`` (its spaces outside)."""
    parts = []
    pos = 0
    for a, b in sorted(spans):
        if a < pos:
            continue
        inner = text[a:b]
        lead = inner[: len(inner) - len(inner.lstrip())]
        trail = inner[len(inner.rstrip()) :]
        parts.append(_markdown_escape(text[pos:a] + lead))
        if inner.strip():
            parts.append(f"**{_markdown_escape(inner.strip())}**")
        parts.append(_markdown_escape(trail))
        pos = b
    parts.append(_markdown_escape(text[pos:]))
    return "".join(parts).strip()
