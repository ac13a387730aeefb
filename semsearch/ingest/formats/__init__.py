"""The formats semsearch reads, behind one registry: file suffix -> `Format`.

Each format is a module with its parser; `parse` picks one by the file's
suffix. A new format is one more module and one more `register` call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..documents import Document, Problem, SourceFile, decode, decode_lines
from . import html, jsonl, markdown, text

Parser = Callable[[SourceFile], tuple[list[Document], list[Problem]]]


@dataclass(frozen=True)
class Format:
    """A readable kind of file: its name, its suffixes and how to parse it."""

    name: str
    suffixes: tuple[str, ...]
    parse: Parser


FORMATS: dict[str, Format] = {}  # lower-case suffix -> format


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
                d.title = Path(source.path).stem
        return docs, []

    return parse_file


def _parse_jsonl(source: SourceFile) -> tuple[list[Document], list[Problem]]:
    return jsonl.parse_jsonl(decode_lines(source.data), source.path)


register(Format("text", text.SUFFIXES, one_article(text.parse_text)))
register(Format("markdown", markdown.SUFFIXES, one_article(markdown.parse_markdown)))
register(Format("html", html.SUFFIXES, one_article(html.parse_html)))
register(Format("jsonl", jsonl.SUFFIXES, _parse_jsonl))

SUPPORTED_SUFFIXES = frozenset(FORMATS)
"""The suffixes of the built-in formats."""


def format_of(path: str) -> Format | None:
    """The format that reads ``path``, by its suffix; None for a file semsearch skips."""
    return FORMATS.get(Path(path).suffix.lower())


def parse(source: SourceFile) -> tuple[list[Document], list[Problem]]:
    """Parse one file into documents, with the problems met on the way."""
    fmt = format_of(source.path) or FORMATS[".txt"]
    return fmt.parse(source)
