"""The formats semsearch reads, behind one registry: file suffix -> `Format`.

Each format is a module with its parser; `parse` picks one by the file's
suffix. A new built-in format is one more module and one more `register` call;
another package adds one through the ``semsearch.formats`` entry point group
(see `load_plugins`). The parsers of binary formats (PDF, DOCX, EPUB) import
their libraries only when such a file is read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..documents import (
    Document,
    Problem,
    SourceFile,
    decode,
    decode_lines,
    describe,
    file_title,
)
from . import docx, epub, html, jsonl, markdown, pdf, text

Parser = Callable[[SourceFile], tuple[list[Document], list[Problem]]]

ENTRY_POINT_GROUP = "semsearch.formats"


@dataclass(frozen=True)
class Format:
    """A readable kind of file: its name, its suffixes and how to parse it.

    ``parse`` gets the file's bytes (`SourceFile.data`, never decoded for it) and
    returns its documents and the problems met; a file it cannot read is one
    `Problem` and no document, never an exception.
    """

    name: str
    suffixes: tuple[str, ...]
    parse: Parser


FORMATS: dict[str, Format] = {}  # lower-case suffix -> format
_PLUGINS: list[Format] = []  # the formats that entry points gave


def register(fmt: Format) -> None:
    """Read files with these suffixes with ``fmt`` (a later registration wins)."""
    for suffix in fmt.suffixes:
        FORMATS[suffix.lower()] = fmt


def one_article(read: Callable[[str, str], Document]) -> Parser:
    """A parser for a format whose file is one article, from ``read(text, path)``.

    A file without a paragraph gives no document; an article without a title
    is named after its file (a better title than nothing).
    """

    def parse_file(source: SourceFile) -> tuple[list[Document], list[Problem]]:
        docs = [d for d in [read(decode(source.data), source.path)] if d.paragraphs]
        for d in docs:
            if not d.title:
                d.title = file_title(source.path)
        return docs, []

    return parse_file


def _parse_jsonl(source: SourceFile) -> tuple[list[Document], list[Problem]]:
    return jsonl.parse_jsonl(decode_lines(source.data), source.path)


register(Format("text", text.SUFFIXES, one_article(text.parse_text)))
register(Format("markdown", markdown.SUFFIXES, one_article(markdown.parse_markdown)))
register(Format("html", html.SUFFIXES, one_article(html.parse_html)))
register(Format("jsonl", jsonl.SUFFIXES, _parse_jsonl))
register(Format("pdf", pdf.SUFFIXES, pdf.parse_pdf))
register(Format("docx", docx.SUFFIXES, docx.parse_docx))
register(Format("epub", epub.SUFFIXES, epub.parse_epub))

SUPPORTED_SUFFIXES = frozenset(FORMATS)
"""The suffixes of the built-in formats (`supported_suffixes` adds the plugins')."""

# --------------------------------------------------------------------------- plugins

_plugin_lock = threading.Lock()
_plugin_problems: list[Problem] | None = None  # None: entry points not read yet


def load_plugins() -> list[Problem]:
    """Register the formats other packages declare in the ``semsearch.formats`` entry
    point group, once per process; the first call returns the problems of plugins that
    could not be loaded (later ones return none: a watcher's every run need not repeat it).

    Each entry point names a `Format`, or a callable returning one. A plugin that
    fails to import, raises, or gives something else is one `Problem` (its files
    are then skipped as of a format semsearch does not read); it never stops a run.
    A plugin's format wins over a built-in one for the suffixes it names.
    """
    global _plugin_problems
    with _plugin_lock:
        if _plugin_problems is not None:
            return []  # told by the call that loaded them
        _plugin_problems = _load_entry_points()
        return list(_plugin_problems)


def _load_entry_points() -> list[Problem]:
    from importlib.metadata import entry_points

    problems: list[Problem] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        where = f"format plugin {ep.name!r} ({ep.value})"
        try:
            obj = ep.load()
            fmt = obj if isinstance(obj, Format) or not callable(obj) else obj()
        except Exception as exc:  # foreign code: whatever it raises, the run goes on
            why = f"could not be loaded ({describe(exc)}); its files skipped"
            problems.append(Problem(where, why))
            continue
        if not isinstance(fmt, Format) or not fmt.suffixes:
            problems.append(
                Problem(where, "gives no semsearch Format with suffixes; its files skipped")
            )
            continue
        undotted = [s for s in fmt.suffixes if not s.startswith(".")]
        if undotted:  # ("org",) would never match a file: say so rather than read nothing
            why = f"names suffixes without their dot ({', '.join(undotted)}); its files skipped"
            problems.append(Problem(where, why))
            continue
        _PLUGINS.append(fmt)
        register(fmt)
    return problems


def reset_plugins() -> None:
    """Forget the plugins' formats, so the next `load_plugins` reads the entry points
    again (for tests, and a program that installs a plugin while it runs)."""
    global _plugin_problems
    with _plugin_lock:
        _plugin_problems = None
        _PLUGINS.clear()
        FORMATS.clear()
        for fmt in _BUILT_IN:
            register(fmt)


_BUILT_IN = tuple(dict.fromkeys(FORMATS.values()))


def supported_suffixes() -> frozenset[str]:
    """The suffixes of every format semsearch reads: the built-in ones and the plugins'."""
    load_plugins()
    return frozenset(FORMATS)


def format_of(path: str) -> Format | None:
    """The format that reads ``path``, by its suffix; None for a file semsearch skips."""
    load_plugins()
    return FORMATS.get(Path(path).suffix.lower())


def parse(source: SourceFile) -> tuple[list[Document], list[Problem]]:
    """Parse one file into documents, with the problems met on the way.

    A plugin's parser that raises, or returns something other than (documents,
    problems), gives one `Problem` and no document: the run goes on with the other
    files (the built-in parsers report what they cannot read). A plugin's article
    without paragraphs is dropped, one without a title named after its file.
    """
    fmt = format_of(source.path) or FORMATS[".txt"]
    if not any(fmt is p for p in _PLUGINS):
        return fmt.parse(source)
    try:
        docs, problems = fmt.parse(source)
        docs, problems = list(docs), list(problems)
    except Exception as exc:  # foreign code: one line for the user, not a traceback
        why = f"format plugin {fmt.name!r} failed ({describe(exc)}); skipped"
        return [], [Problem(source.path, why)]
    if not all(isinstance(d, Document) for d in docs) or not all(
        isinstance(p, Problem) for p in problems
    ):
        why = f"format plugin {fmt.name!r} gave no (documents, problems) pair; skipped"
        return [], [Problem(source.path, why)]
    # what the built-in formats see to themselves: no empty article, none without a title
    docs = [d for d in docs if d.paragraphs]
    for d in docs:
        d.title = d.title or file_title(source.path)
    return docs, problems
