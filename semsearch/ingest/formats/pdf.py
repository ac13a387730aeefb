"""``.pdf``: the text layer, page by page, rebuilt into paragraphs (pypdf, imported when a
PDF is read).

pypdf lays each page's text out as lines of a fixed-width grid (its "layout" mode), so
positions survive as spaces: a blank line is a vertical gap, leading spaces an indent,
and a run of blank character columns down the page a gutter between text columns. From
that grid:

- running headers and footers are dropped: a line among the first or last three of a
  page that appears (digits aside, so page numbers count as one line) at the top or
  bottom of more than half of the pages of a document of three pages or more;
- a page with columns is read column by column (a line crossing the gutter, such as a
  title over both columns, is read where it stands);
- a column's lines become paragraphs, split at vertical gaps, at an indented first
  line and after a short line ending a sentence; a paragraph that runs over onto the
  next page (no sentence end, the next page going on in lower case) is kept whole;
- lines are joined with a space, and a word broken over two lines is joined
  ("inter-" + "national"), keeping its hyphen where the document writes the word
  with one elsewhere, where the part before it is a prefix written with one
  ("self-", "well-"), or where the next line starts with a capital or a digit.

Each paragraph records the 1-based page it starts on. The title is the metadata's
``/Title`` (unless it names a file, as "Microsoft Word - x.doc"), else the first line
with words; the date is the metadata's creation date. A PDF without any text
(scanned), one that needs a password, or one that cannot be read is one `Problem`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import threading
from collections.abc import Collection, Iterator, Sequence
from typing import Any

from ..documents import _WS, Document, Problem, SourceFile, describe, extracted, file_title

SUFFIXES = (".pdf",)

NO_TEXT = "no text layer (scanned PDF?); skipped: semsearch does no OCR"

_DIGITS = re.compile(r"\d+")
_WORDS = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")  # words, hyphenated ones whole
_LETTERS = re.compile(r"[^\W\d_]")
_HYPHEN_HEAD = re.compile(r"(?<![^\W\d_])([^\W\d_]+(?:-[^\W\d_]+)*)-$")  # "inter-" at an end
_FIRST_WORD = re.compile(r"[^\W\d_]+")
_SENTENCE_END = ".!?:;\"'”’)»…"  # noqa: RUF001
# prefixes that keep their hyphen before a lower-case word ("self-evident")
_HYPHEN_PREFIXES = frozenset({"self", "well", "ill", "half", "all", "ex", "quasi", "non"})
_FILE_TITLE = re.compile(
    r"^(microsoft (word|powerpoint|excel) - )|\.(docx?|pdf|tex|dvi|indd|odt|rtf|pptx?)$", re.I
)

EDGE_LINES = 3  # lines from the top and bottom of a page looked at for headers and footers


def parse_pdf(source: SourceFile) -> tuple[list[Document], list[Problem]]:
    """A PDF file as one article: its pages' text as paragraphs, each knowing its page."""
    try:
        with _quiet_pypdf():
            return _parse(source)
    # pypdf reads files from anywhere and raises what it meets in a malformed one (its own
    # errors, but also KeyError, ValueError, TypeError, RecursionError...): one line each.
    except Exception as exc:
        why = f"damaged PDF, cannot be read ({describe(exc)}); skipped"
        return [], [Problem(source.path, why)]


def _parse(source: SourceFile) -> tuple[list[Document], list[Problem]]:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError

    reader = PdfReader(io.BytesIO(source.data), strict=False)
    if reader.is_encrypted:
        try:
            opened = reader.decrypt("")
        except DependencyError as exc:
            return [], [Problem(source.path, f"encrypted PDF, cannot be opened ({exc}); skipped")]
        if not opened:
            return [], [Problem(source.path, "encrypted PDF that needs a password; skipped")]
    problems: list[Problem] = []
    pages: list[list[str]] = []
    for number, page in enumerate(reader.pages, start=1):
        try:
            pages.append(_page_lines(page))
        except Exception as exc:  # one broken page (see parse_pdf) costs that page only
            why = f"page {number} cannot be read ({describe(exc)}); page skipped"
            problems.append(Problem(source.path, why))
            pages.append([])
    if not any(line.strip() for lines in pages for line in lines):
        return [], [*problems, Problem(source.path, NO_TEXT)]
    meta = _metadata(reader)
    kept = drop_running_lines(pages)
    vocabulary = _vocabulary(kept)
    runs = reading_order(kept)
    paragraphs = [(n, join_lines(lines, vocabulary)) for n, lines in runs]
    title = meta.get("title") or _title_from(runs, vocabulary)
    if len(paragraphs) > 1 and _same(paragraphs[0][1], title):
        paragraphs = paragraphs[1:]  # the title on lines of its own is not a passage too
    out = extracted((text, page_number, "") for page_number, text in paragraphs)
    if not out:
        return [], [*problems, Problem(source.path, NO_TEXT)]
    fields: dict[str, Any] = {"pages": len(pages)}
    if meta.get("author"):
        fields["author"] = meta["author"]
    doc = Document(
        path=source.path,
        title=title or file_title(source.path),
        paragraphs=out,
        date=meta.get("date"),
        format="pdf",
        fields=fields,
    )
    return [doc], problems


def _page_lines(page: Any) -> list[str]:
    """A page's text as lines of pypdf's layout grid, right ends stripped (blank lines kept:
    they are the vertical gaps); pypdf's plain lines where the layout fails."""
    try:
        text = page.extract_text(extraction_mode="layout")
    except Exception:  # layout mode is the younger one: plain text still has the words
        text = page.extract_text()
    return [line.rstrip() for line in str(text).replace("\r", "\n").split("\n")]


# --------------------------------------------------------------------------- paragraphs


def reading_order(pages: Sequence[Sequence[str]]) -> list[tuple[int, list[str]]]:
    """(page, lines) of each paragraph of the pages' layout lines, in reading order."""
    out: list[tuple[int, list[str]]] = []
    for number, lines in enumerate(pages, start=1):
        first = True
        for column in columns(lines):
            for para in split_paragraphs(column):
                if first and out and _runs_on(out[-1][1], para):
                    out[-1][1].extend(para)  # the paragraph goes on from the page before
                else:
                    out.append((number, para))
                first = False
    return out


def paragraphs_of(pages: Sequence[Sequence[str]]) -> list[tuple[int, str]]:
    """(page, text) of each paragraph of the pages' layout lines, headers and footers
    dropped, lines joined: what `parse_pdf` makes passages of."""
    kept = drop_running_lines(pages)
    vocabulary = _vocabulary(kept)
    return [(n, join_lines(lines, vocabulary)) for n, lines in reading_order(kept)]


def _title_from(runs: Sequence[tuple[int, Sequence[str]]], vocabulary: Collection[str]) -> str:
    """The first paragraph with words, when it is short (three lines at most, a title set
    apart); else that paragraph's first line."""
    for _, lines in runs:
        if sum(len(_LETTERS.findall(line)) for line in lines) < 3:
            continue
        whole = join_lines(lines, vocabulary)
        if len(lines) <= 3 and len(whole) <= 200:
            return whole
        return _shortened(lines[0])
    return ""


def _norm(line: str) -> str:
    return _DIGITS.sub("#", " ".join(line.split())).lower()


def drop_running_lines(pages: Sequence[Sequence[str]]) -> list[list[str]]:
    """The pages without their running headers, footers and page numbers.

    Only for three pages or more: a line (compared without its digits) among the first or
    last `EDGE_LINES` lines of text of more than half of the pages is dropped where it
    stands at such an edge, peeled from the edge inwards.
    """
    if len(pages) < 3:
        return [list(p) for p in pages]
    seen: dict[str, int] = {}
    for lines in pages:
        text = [i for i, line in enumerate(lines) if line.strip()]
        edges = {_norm(lines[i]) for i in text[:EDGE_LINES] + text[-EDGE_LINES:]}
        for key in edges:
            seen[key] = seen.get(key, 0) + 1
    running = {key for key, n in seen.items() if n * 2 > len(pages)}
    out = []
    for lines in pages:
        text = [i for i, line in enumerate(lines) if line.strip()]
        drop: set[int] = set()
        for order in (text[:EDGE_LINES], text[::-1][:EDGE_LINES]):
            for i in order:
                if _norm(lines[i]) not in running:
                    break
                drop.add(i)
        out.append([line for i, line in enumerate(lines) if i not in drop])
    return out


def _ink(lines: Sequence[str], width: int) -> Any:
    """A (lines x width) boolean array: which character cells hold something."""
    import numpy as np

    grid = np.full((len(lines), width), False)
    for row, line in enumerate(lines):
        if line:
            codes = np.frombuffer(line[:width].encode("utf-32-le"), dtype=np.uint32)
            grid[row, : len(codes)] = (codes != 32) & (codes != 9) & (codes != 0xA0)
    return grid


def gutter(lines: Sequence[str]) -> int | None:
    """The character column of a gutter between two text columns, or None.

    A gutter is a column, in the middle half of the text's width, that is blank with
    its neighbours on either side in lines holding text on both sides of it, for at
    least a third of the lines with text (and six of them), while few lines cross it.
    """
    import numpy as np

    rows = [line for line in lines if line.strip()]
    if len(rows) < 6:
        return None
    width = max(len(line) for line in rows)
    if width < 40:
        return None
    ink = _ink(rows, width + 2)
    any_ink = ink.any(axis=1)
    first = np.where(any_ink, ink.argmax(axis=1), width)
    last = np.where(any_ink, width + 1 - ink[:, ::-1].argmax(axis=1), -1)
    window = ink[:, :-2] | ink[:, 1:-1] | ink[:, 2:]  # window[:, c - 1]: cells c-1..c+1
    cols = np.arange(1, width + 1)
    lo, hi = width // 4, (3 * width) // 4
    span = slice(lo - 1, hi)
    blank = ~window[:, span]
    c = cols[span]
    straddle = (blank & (first[:, None] < c - 1) & (last[:, None] > c + 1)).sum(axis=0)
    cross = (~blank).sum(axis=0)
    if straddle.size == 0:
        return None
    best = int(straddle.argmax())
    need = max(6, len(rows) // 3)
    if straddle[best] < need or cross[best] * 4 > len(rows):
        return None
    return int(c[best])


def columns(lines: Sequence[str], depth: int = 2) -> list[list[str]]:
    """A page's (or a column's) lines as runs of lines to read one after the other: a
    block of two columns gives its left column, then its right one (each split again,
    ``depth`` times, for three columns and more); a line crossing the gutter stands
    where it is, between blocks, with the lines after it up to the next gap."""
    at = gutter(lines) if depth > 0 else None
    if at is None:
        return [list(lines)]
    out: list[list[str]] = []
    block: list[str] = []
    single: list[str] = []

    def flush_block() -> None:
        if any(line.strip() for line in block):
            out.extend(columns([line[:at].rstrip() for line in block], depth - 1))
            out.extend(columns([line[at:] for line in block], depth - 1))
        elif block:
            single.extend(block)
        block.clear()

    for line in lines:
        crossing = bool(line[max(0, at - 1) : at + 2].strip())
        # a short last line of a paragraph over the gutter belongs with it, until a gap
        if crossing or (single and single[-1].strip() and line.strip()):
            flush_block()
            single.append(line)
        else:
            if single:
                out.append(list(single))
                single.clear()
            block.append(line)
    flush_block()
    if single:
        out.append(single)
    return [run for run in out if any(line.strip() for line in run)]


def split_paragraphs(lines: Sequence[str]) -> list[list[str]]:
    """A column's lines (blank ones are vertical gaps) as paragraphs of stripped lines.

    A paragraph ends at a gap; before a line indented by two characters or more past the
    column's left edge that follows one that is not; and after a line ending a sentence
    well short of the column's right edge (70% of the usual line's end).
    """
    rows = [line for line in lines if line.strip()]
    if not rows:
        return []
    indents = [len(line) - len(line.lstrip()) for line in rows]
    left = min(indents)
    ends = sorted(len(line) for line in rows)
    usual_end = ends[(len(ends) * 9) // 10] if len(ends) >= 3 else None
    out: list[list[str]] = []
    current: list[str] = []
    prev: str | None = None
    for line in lines:
        if not line.strip():
            if current:
                out.append(current)
            current, prev = [], None
            continue
        indent = len(line) - len(line.lstrip())
        if current and prev is not None:
            prev_indent = len(prev) - len(prev.lstrip())
            indented = indent >= left + 2 and prev_indent < left + 2
            short = (
                usual_end is not None
                and len(prev) - left < 0.7 * (usual_end - left)
                and prev.rstrip().endswith(tuple(_SENTENCE_END))
            )
            if indented or short:
                out.append(current)
                current = []
        current.append(" ".join(line.split()))
        prev = line
    if current:
        out.append(current)
    return out


def _runs_on(before: Sequence[str], after: Sequence[str]) -> bool:
    """True if the paragraph ``after`` (the first of a page) goes on from ``before`` (the
    last of the page before): no sentence end there, a lower-case word here."""
    last, first = before[-1].rstrip(), after[0].lstrip()
    return bool(last) and not last.endswith(tuple(_SENTENCE_END)) and first[:1].islower()


def _vocabulary(pages: Sequence[Sequence[str]]) -> set[str]:
    """The document's words, lower-cased, hyphenated ones whole ("well-known") as well as
    unbroken ones; a word broken at a line's end counts as neither."""
    words: set[str] = set()
    for lines in pages:
        for line in lines:
            found = _WORDS.findall(line.lower())
            if found and line.rstrip().endswith("-"):
                found.pop()
            words.update(found)
    return words


def join_lines(lines: Sequence[str], vocabulary: Collection[str] = ()) -> str:
    """The lines of one paragraph as one text: a space between lines, a word broken over
    two lines joined (see the module's docstring for the hyphens kept)."""
    text = lines[0]
    for nxt in lines[1:]:
        if text.endswith("\u00ad"):  # a soft hyphen: always a break inside a word
            text = text[:-1] + nxt
            continue
        head = _HYPHEN_HEAD.search(text)
        if head is None:
            text += " " + nxt
            continue
        if not nxt[:1].islower():  # "Franco-" + "German", "COVID-" + "19"
            text += nxt
            continue
        word = head.group(1)
        tail = _FIRST_WORD.match(nxt)
        piece = tail.group(0) if tail else ""
        whole = (word + piece).lower()
        hyphenated = f"{word}-{piece}".lower()
        keep = (
            "-" in word  # "state-of-the-" + "art"
            or word.lower() in _HYPHEN_PREFIXES
            or (hyphenated in vocabulary and whole not in vocabulary)
        )
        text = text + nxt if keep else text[:-1] + nxt
    return _WS.sub(" ", text).strip()


# --------------------------------------------------------------------------- metadata


def _metadata(reader: Any) -> dict[str, str]:
    """Title, author and date (``YYYY-MM-DD``) from the document's information dictionary."""
    out: dict[str, str] = {}
    try:
        info = reader.metadata
    except Exception:  # a damaged information dictionary: the text is still there
        return out
    if info is None:
        return out
    for key, name in (("title", "/Title"), ("author", "/Author")):
        value = info.get(name)
        text = _WS.sub(" ", str(value)).strip() if value is not None else ""
        if text and not (key == "title" and _useless_title(text)):
            out[key] = text
    for attr in ("creation_date", "modification_date"):
        try:
            when = getattr(info, attr)
        except Exception:  # a malformed date string ("D:2020-13-45")
            continue
        if when is not None:
            out["date"] = when.date().isoformat()
            break
    return out


def _useless_title(title: str) -> bool:
    """True for a metadata title that names a file or nothing ("untitled")."""
    lowered = title.lower()
    return lowered in {"untitled", "no title", "title"} or bool(_FILE_TITLE.search(title))


def _shortened(text: str) -> str:
    """``text``, cut to its first words when longer than 120 characters."""
    if len(text) <= 120:
        return text
    cut = text[:120]
    return cut[: cut.rfind(" ")] if " " in cut else cut


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()).lower() == " ".join(b.split()).lower()


# --------------------------------------------------------------------------- pypdf's log

_quiet_lock = threading.Lock()
_quiet_depth = 0
_saved_level = logging.NOTSET


@contextlib.contextmanager
def _quiet_pypdf() -> Iterator[None]:
    """pypdf logs what it repairs ("EOF marker not found") as warnings, which reach stderr
    through logging's last resort: silenced while semsearch reads a PDF (the file's
    problem, if it has one, is told as one line)."""
    global _quiet_depth, _saved_level
    logger = logging.getLogger("pypdf")
    with _quiet_lock:
        if _quiet_depth == 0:
            _saved_level = logger.level
            logger.setLevel(logging.CRITICAL + 1)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                logger.setLevel(_saved_level)
