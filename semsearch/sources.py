"""Finding article files and reading each format into `Document`s.

Formats, chosen by file suffix:

- ``.txt``: either the seed format (a header line `` date YYYY-MM-DD N``, a
  title line, then one paragraph per line) or plain text (a title line, then
  paragraphs separated by blank lines; a body with no blank line at all has
  one paragraph per line).
- ``.md`` / ``.markdown``: optional front matter (``title:``, ``date:``), the
  first ``#`` heading as title otherwise, one passage per paragraph, list,
  table or code block, markup stripped.
- ``.html`` / ``.htm``: title from ``<h1>`` or ``<title>``, paragraphs from
  ``<p>``; scripts, styles and navigation dropped.
- ``.jsonl`` / ``.ndjson``: one article per line with ``title``, ``text``,
  optional ``date`` and ``id`` (``_id`` is accepted too); other fields are kept
  as metadata.

A paragraph's span is in character offsets of the file's decoded text for
text and Markdown files, of the extracted text (paragraphs joined by a blank
line) for HTML, and of the record's ``text`` field for JSON Lines.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SourceError

TEXT_SUFFIXES = {".txt", ".text"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | MARKDOWN_SUFFIXES | HTML_SUFFIXES | JSONL_SUFFIXES

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


@dataclass
class SourceFile:
    """A file found under the paths given to index, with its raw bytes."""

    path: str  # as the user spelled it (relative stays relative)
    abspath: str  # as recorded in the index: the real path, or where a link to the file lies
    data: bytes
    size: int
    mtime: float


@dataclass(frozen=True)
class Problem:
    """A file or record that could not be read; the run goes on without it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class RealPaths:
    """``os.path.realpath`` (every symbolic link resolved), each folder resolved once.

    A file's real path is its identity: the same file reached through a
    linked folder, or through a link to it, is one file, indexed once.
    """

    def __init__(self) -> None:
        self._folders: dict[str, str] = {}

    def location(self, path: str) -> str:
        """``path`` with its folders resolved but not its last part: where a link to a
        file lies, or the file's real path when it is no link."""
        folder, name = os.path.split(os.path.abspath(path))
        real = self._folders.get(folder)
        if real is None:
            real = self._folders[folder] = os.path.realpath(folder)
        return os.path.join(real, name) if name else real

    def __call__(self, path: str) -> str:
        return self.follow(self.location(path))

    @staticmethod
    def follow(location: str) -> str:
        """The real path of what lies at ``location`` (a path whose folders are real)."""
        return os.path.realpath(location) if os.path.islink(location) else location


@dataclass
class Walk:
    """What walking the given paths found."""

    files: list[tuple[str, str]]  # (path as given, real path: the file's identity)
    roots: list[str]  # real paths of the folders walked: indexed files gone from them are removed
    skipped: int  # files of a format semsearch does not read
    problems: list[Problem] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # real folders that could not be listed
    # real path -> where the link lies, for files found only through a link to the file
    # itself: indexed under the link's place, so deleting the link removes the article
    links: dict[str, str] = field(default_factory=dict)

    def could_have_found(self, abspath: str) -> bool:
        """True if the real path ``abspath`` lies where this walk looked, so its absence
        means it is gone."""
        for root in self.roots:
            if not lies_under(abspath, root):
                continue
            rel = os.path.relpath(abspath, root)
            if any(part.startswith(".") for part in rel.split(os.sep)):
                return False  # hidden: the walk skips it, it may still exist
            return not any(lies_under(abspath, bad) for bad in self.unreadable)
        return False


def lies_under(path: str, root: str) -> bool:
    """True if ``path`` is ``root`` or inside it (both absolute, compared as strings)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _valid_name(path: str) -> bool:
    """False for a file name that is not valid UTF-8 (it cannot be stored or shown)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def walk(paths: Sequence[str | os.PathLike[str]], exclude: Iterable[str] = ()) -> Walk:
    """Find the article files under ``paths`` (files or folders).

    Hidden folders and files (name starting with ``.``) and the folders in
    ``exclude`` (the index itself) are skipped; a file reached twice (through
    a link) is read once, and is known by its real path whatever the
    spelling. A folder that cannot be listed, or a file name that is not
    UTF-8, becomes a `Problem`. Raises `SourceError` for a path that does not
    exist.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    excluded = {os.path.realpath(p) for p in exclude}
    out = Walk(files=[], roots=[], skipped=0)
    seen: set[str] = set()

    real_path = RealPaths()
    position: dict[str, int] = {}  # real path -> its entry in out.files

    def add_file(shown: str) -> None:
        real = real_path(shown)
        where = real_path.location(shown)
        if real in seen:
            if real in out.links and where == real:  # the file itself, after a link to it
                out.files[position[real]] = (shown, real)
                del out.links[real]
            return
        seen.add(real)
        if not _valid_name(shown):
            safe = shown.encode("utf-8", "replace").decode("utf-8")
            out.problems.append(Problem(safe, "file name is not valid UTF-8; skipped"))
        elif Path(shown).suffix.lower() in SUPPORTED_SUFFIXES:
            position[real] = len(out.files)
            out.files.append((shown, real))
            if where != real:
                out.links[real] = where
        else:
            out.skipped += 1

    def unreadable(err: OSError) -> None:
        where = err.filename if isinstance(err.filename, str) else str(err.filename)
        out.unreadable.append(real_path(where))
        out.problems.append(
            Problem(where, f"folder cannot be read ({err.strerror}); its indexed articles kept")
        )

    for raw in paths:
        given = os.fspath(raw)
        if not os.path.exists(given):
            raise SourceError(f"{given}: no such file or folder")
        if os.path.isfile(given):
            add_file(given)
            continue
        if os.path.realpath(given) in excluded:
            continue
        out.roots.append(os.path.realpath(given))
        for dirpath, dirnames, filenames in os.walk(given, onerror=unreadable):
            dirnames[:] = sorted(
                d
                for d in dirnames
                if not d.startswith(".")
                and os.path.realpath(os.path.join(dirpath, d)) not in excluded
            )
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                if not name.startswith(".") and os.path.isfile(full):
                    add_file(full)
    return out


def read_file(path: str, abspath: str) -> SourceFile:
    """Read a file's bytes. Raises OSError when it cannot be read."""
    with open(abspath, "rb") as fh:
        data = fh.read()
        st = os.fstat(fh.fileno())
    return SourceFile(path=path, abspath=abspath, data=data, size=st.st_size, mtime=st.st_mtime)


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


# --------------------------------------------------------------------------- parsing


def parse(source: SourceFile) -> tuple[list[Document], list[Problem]]:
    """Parse one file into documents, with the problems met on the way."""
    suffix = Path(source.path).suffix.lower()
    text = decode(source.data)
    if suffix in JSONL_SUFFIXES:
        return parse_jsonl(text, source.path)
    if suffix in MARKDOWN_SUFFIXES:
        docs = [parse_markdown(text, source.path)]
    elif suffix in HTML_SUFFIXES:
        docs = [parse_html(text, source.path)]
    else:
        docs = [parse_text(text, source.path)]
    docs = [d for d in docs if d.paragraphs]
    for d in docs:
        if not d.title:  # a file is one article: its name is a better title than nothing
            d.title = Path(source.path).stem
    return docs, []


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
        )
    return Document(
        path=path,
        title=first,
        paragraphs=_blocks(text, after_first, len(text)),
        format="text",
    )


# --- Markdown


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
        path=path, title=title, paragraphs=paragraphs, date=date, format="markdown", fields=fields
    )


# --- HTML

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


def parse_jsonl(text: str, path: str) -> tuple[list[Document], list[Problem]]:
    """One article per line: ``title``, ``text``, optional ``date`` and ``id``."""
    docs: list[Document] = []
    problems: list[Problem] = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem(where, f"not valid JSON ({exc.msg}); line skipped"))
            continue
        except (RecursionError, ValueError):
            problems.append(Problem(where, "JSON nested too deeply to read; line skipped"))
            continue
        if not isinstance(record, dict):
            problems.append(Problem(where, "not a JSON object; line skipped"))
            continue
        body = record.get("text")
        if not isinstance(body, str):
            problems.append(Problem(where, 'no "text" string; line skipped'))
            continue
        body = _valid_text(body)
        title = record.get("title")
        title = _WS.sub(" ", _valid_text(title)).strip() if isinstance(title, str) else ""
        raw_id = record.get("id", record.get("_id"))
        key = str(raw_id) if raw_id is not None else str(lineno)
        raw_date = record.get("date")
        date = _iso_date(raw_date) if isinstance(raw_date, str) else None
        fields = {
            k: v for k, v in record.items() if k not in ("text", "title", "date", "id", "_id")
        }
        if isinstance(raw_date, str) and date != raw_date:
            fields["date_raw"] = raw_date
        paragraphs = _blocks(body, 0, len(body))
        if not paragraphs:
            continue
        docs.append(
            Document(
                path=path,
                title=title,  # may be empty: a record's text is not repeated as its title
                paragraphs=paragraphs,
                date=date,
                key=key,
                format="jsonl",
                fields=fields,
            )
        )
    return docs, problems


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
