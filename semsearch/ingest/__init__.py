"""From files on disk to passages: `walk` finds the files, `formats` reads each into
`Document`s, `passages` cuts them into what gets embedded.

Data flows one way (walk -> read_file -> parse -> make_passages) and nothing
here touches the index.
"""

from __future__ import annotations

from .documents import Document, Paragraph, Problem, SourceFile, decode, decode_lines
from .files import RealPaths, Walk, lies_under, read_file, walk
from .formats import FORMATS, SUPPORTED_SUFFIXES, Format, parse, register
from .formats.html import parse_html
from .formats.jsonl import parse_jsonl
from .formats.markdown import parse_markdown
from .formats.text import parse_text

__all__ = [
    "FORMATS",
    "SUPPORTED_SUFFIXES",
    "Document",
    "Format",
    "Paragraph",
    "Problem",
    "RealPaths",
    "SourceFile",
    "Walk",
    "decode",
    "decode_lines",
    "lies_under",
    "parse",
    "parse_html",
    "parse_jsonl",
    "parse_markdown",
    "parse_text",
    "read_file",
    "register",
    "walk",
]
