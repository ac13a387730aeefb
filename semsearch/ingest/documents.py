"""What reading a file gives: `Document`s of `Paragraph`s, `Problem`s, and the text helpers
every format shares (decoding, line spans, blocks, dates).

A paragraph's span is in character offsets of the file's decoded text for
text and Markdown files, of the extracted text (paragraphs joined by a blank
line) for HTML, PDF, DOCX and EPUB, and of the record's ``text`` field for JSON
Lines.

Where a passage starts in its file (1-based line, and column where known) is
found from those offsets through the document's `LineIndex` for text and
Markdown, and is the paragraph's own ``line`` for HTML (the line of its
element) and JSON Lines (the record's line); PDF, DOCX and EPUB have no lines
(0), and PDF and EPUB paragraphs know their page (`Paragraph.page`) instead.
"""

from __future__ import annotations

import bisect
import datetime as _dt
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_SEED_HEADER = re.compile(r"^\s*date\s+(\d{4}-\d{2}-\d{2})\s+(\d+)\s*$")
_BLANK_LINES = re.compile(r"\n[ \t]*\n+")
_WS = re.compile(r"\s+")


@dataclass(frozen=True)
class Paragraph:
    """One paragraph of an article: its plain text and where it stands.

    ``exact`` is true when ``text`` is the span's source text with white space
    collapsed (so offsets inside it map back to the source); false when markup
    was stripped from it.
    """

    text: str
    start: int
    end: int
    exact: bool = True
    line: int = 0  # 1-based line of the file it starts on, for formats without a `LineIndex`
    page: int = 0  # 1-based page (PDF) or chapter (EPUB) it starts on; 0 for formats without
    # the headings it stands under ("Methods > Samples"), embedded with the title (DOCX, EPUB)
    section: str = ""


class LineIndex:
    """Offsets of a file's decoded text to (line, column), both 1-based.

    The column counts the UTF-8 bytes before the offset on its line, plus one,
    as ripgrep and vim count columns (the same as characters for ASCII text).
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def position(self, offset: int) -> tuple[int, int]:
        offset = max(0, min(offset, len(self._text)))
        line = bisect.bisect_right(self._starts, offset)
        start = self._starts[line - 1]
        return line, len(self._text[start:offset].encode("utf-8", "replace")) + 1


@dataclass
class Document:
    """One article read from a file (a JSON Lines file holds several)."""

    path: str
    title: str
    paragraphs: list[Paragraph]
    date: str | None = None
    key: str = ""
    format: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    # for formats whose spans are offsets of the file's text: where each offset lies
    lines: LineIndex | None = None

    def position(self, para: Paragraph, offset: int) -> tuple[int, int]:
        """(line, column) in the file of ``offset`` (a span offset inside ``para``):
        0 for what is not known (the column of HTML and JSON Lines passages)."""
        if self.lines is not None:
            return self.lines.position(offset)
        return para.line, 0


@dataclass
class SourceFile:
    """A file found under the paths given to index, with its raw bytes."""

    path: str  # as the user spelled it (relative stays relative)
    abspath: str  # as recorded in the index: the real path, or where a link to the file lies
    data: bytes
    size: int
    mtime: float
    root: str = ""  # the real path of the file or folder given that it was found under


@dataclass(frozen=True)
class Problem:
    """A file or record that could not be read; the run goes on without it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def file_title(path: str) -> str:
    """The title of an article that has none: its file's name without the suffix (a
    better title than nothing)."""
    return Path(path).stem


def extracted(texts: Iterable[tuple[str, int, str]]) -> list[Paragraph]:
    """The paragraphs of text a format extracted (PDF, DOCX, EPUB), from ``(text, page,
    section)`` each: their spans are offsets of the paragraphs joined by a blank line."""
    out = []
    pos = 0
    for text, page, section in texts:
        out.append(Paragraph(text, pos, pos + len(text), page=page, section=section))
        pos += len(text) + 2
    return out


def describe(exc: BaseException) -> str:
    """An exception in a few words for a `Problem`: its type and its message's first line."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def decode(data: bytes) -> str:
    """Decode a file's bytes: UTF-8 (with or without BOM), else Windows-1252, else Latin-1.

    Old news archives are full of Latin-1 and Windows-1252 files; neither
    fallback can fail, so a badly encoded file never stops a run. Line endings
    are normalised to ``\\n``.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def decode_lines(data: bytes) -> str:
    """`decode` each line on its own when the whole is not UTF-8 (for JSON Lines).

    The lines of a JSON Lines file are independent records: one record with
    bytes that are not UTF-8 is read as Windows-1252/Latin-1 without turning
    the accented letters of every other record into mojibake.
    """
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError:
        lines = data.split(b"\n")
        return "\n".join(decode(line[:-1] if line.endswith(b"\r") else line) for line in lines)
    return decode(data)


# --------------------------------------------------------------------------- parsing


def _line_spans(text: str, start: int = 0) -> Iterator[tuple[int, int]]:
    """(start, end) of each line of ``text[start:]``, without the newline."""
    pos = start
    n = len(text)
    while pos <= n:
        nl = text.find("\n", pos)
        end = n if nl == -1 else nl
        yield pos, end
        if nl == -1:
            return
        pos = nl + 1


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink a span so it neither starts nor ends with white space."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _paragraph(text: str, start: int, end: int) -> Paragraph | None:
    start, end = _trimmed(text, start, end)
    if start >= end:
        return None
    return Paragraph(_WS.sub(" ", text[start:end]), start, end)


def _blocks(text: str, start: int, end: int) -> list[Paragraph]:
    """Paragraphs of ``text[start:end]`` separated by blank lines.

    A body with no blank line at all but several lines has one paragraph per
    line (the seed layout without its header).
    """
    body = text[start:end]
    out: list[Paragraph] = []
    if not _BLANK_LINES.search(body.strip()):
        for ls, le in _line_spans(text[:end], start):
            p = _paragraph(text, ls, le)
            if p:
                out.append(p)
        return out
    pos = start
    for m in _BLANK_LINES.finditer(body):
        p = _paragraph(text, pos, start + m.start())
        if p:
            out.append(p)
        pos = start + m.end()
    p = _paragraph(text, pos, end)
    if p:
        out.append(p)
    return out


def _first_line(text: str, start: int = 0) -> tuple[str, int]:
    """The first non-blank line at or after ``start`` and the offset after it."""
    for ls, le in _line_spans(text, start):
        if text[ls:le].strip():
            return text[ls:le].strip(), min(le + 1, len(text))
    return "", len(text)


def _valid_text(text: str) -> str:
    """JSON may hold lone UTF-16 surrogates ("\\ud83d"): make them U+FFFD, keep the rest."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


# --- dates

_DATE_PREFIX = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})")
_DATE_FORMATS = ("%Y/%m/%d", "%d %B %Y", "%B %d, %Y", "%d %b %Y", "%b %d, %Y", "%a, %d %b %Y")


def _iso_date(value: str | None) -> str | None:
    """``YYYY-MM-DD`` for the common ways articles write a date, else None."""
    if not value:
        return None
    m = _DATE_PREFIX.match(value)
    candidates = []
    if m:
        candidates.append(("%Y-%m-%d", "-".join(m.groups())))
    candidates += [(fmt, value.strip()) for fmt in _DATE_FORMATS]
    for fmt, s in candidates:
        try:
            parsed = _dt.datetime.strptime(s, fmt)
        except ValueError:
            continue
        return parsed.date().isoformat()
    # RFC 2822 with time ("Mon, 02 Jan 2006 15:04:05 +0000")
    try:
        from email.utils import parsedate_to_datetime

        return parsedate_to_datetime(value).date().isoformat()
    except (TypeError, ValueError, IndexError):
        return None
