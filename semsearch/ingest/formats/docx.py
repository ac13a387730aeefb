"""``.docx``: Word documents (python-docx, imported when one is read).

The title is the core properties' title, else the first heading (the ``Title`` style or
a ``Heading N`` one), else the file's name; the date is the core properties' creation
date (else their last modification). The body is read in document order: each
paragraph is a passage, consecutive list items one passage (joined by ``; ``, as
Markdown lists are), each table one passage (a line a row, cells joined by `` | ``).
Headings are not passages: each passage carries the headings it stands under
(`Paragraph.section`, "Methods > Samples"), which are embedded with the title (a heading
that is the title is not repeated there); a ``Title`` paragraph other than the title is
a passage. A paragraph's text includes tracked insertions not yet accepted, and leaves
out tracked deletions; content controls (a cover page, a form) are read, but for a table
of contents. A password-protected or old-Word (``.doc``) file, a zip that is
no Word document, a damaged one and one without text are one `Problem` each.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

from ..documents import _WS, Document, Problem, SourceFile, describe, extracted, file_title

SUFFIXES = (".docx",)

SECTION_SEPARATOR = " > "
_HEADING = re.compile(r"^heading\s*(\d)$", re.I)
# an OLE compound file: Word 97-2003's .doc, and the wrapper of a password-protected DOCX
_OLE_MAGIC = bytes.fromhex("d0cf11e0a1b11ae1")
NO_TEXT = "no text (pictures only?); skipped"


def parse_docx(source: SourceFile) -> tuple[list[Document], list[Problem]]:
    """A Word document as one article (no document when it has no text)."""
    try:
        return _parse(source)
    # python-docx reads a zip of XML parts from anywhere and raises what it meets in a
    # damaged one (BadZipFile, KeyError, lxml's errors, its own): one line each.
    except Exception as exc:
        why = f"damaged DOCX, cannot be read ({describe(exc)}); skipped"
        return [], [Problem(source.path, why)]


def _parse(source: SourceFile) -> tuple[list[Document], list[Problem]]:
    from docx.opc.constants import CONTENT_TYPE
    from docx.package import Package

    if source.data.startswith(_OLE_MAGIC):
        why = "password-protected DOCX, or an old Word (.doc) file renamed; skipped"
        return [], [Problem(source.path, why)]
    # what docx.Document(file) does, but a zip of another kind (a renamed .xlsx) is told
    # as that, not as a ValueError naming the in-memory file
    part: Any = Package.open(io.BytesIO(source.data)).main_document_part
    if part.content_type != CONTENT_TYPE.WML_DOCUMENT_MAIN:
        why = f"not a Word document (its main part is {part.content_type}); skipped"
        return [], [Problem(source.path, why)]
    document = part.document
    props = document.core_properties
    title = _WS.sub(" ", props.title or "").strip()
    headings: list[tuple[int, str]] = []  # the path of headings above: (level, text)
    texts: list[tuple[str, str]] = []  # (passage, the headings it stands under)
    items: list[str] = []  # list items being read

    def section() -> str:  # the title is embedded already: not once more as a section
        return SECTION_SEPARATOR.join(text for _, text in headings if text != title)

    def end_list() -> None:
        if items:
            texts.append(("; ".join(items), section()))
            items.clear()

    for block in _blocks(document):
        if block[0] == "table":
            end_list()
            if block[1]:
                texts.append((block[1], section()))
            continue
        _, text, level, is_item = block
        if not text:
            continue
        if level is not None:
            end_list()
            if not title:
                title = text
            if level == 0:  # the Title style: the document's name, not a section
                if text != title:  # shown on the page but not the title: its words kept
                    texts.append((text, section()))
                continue
            while headings and headings[-1][0] >= level:
                headings.pop()
            headings.append((level, text))
        elif is_item:
            items.append(text)
        else:
            end_list()
            texts.append((text, section()))
    end_list()
    paragraphs = extracted((text, 0, under) for text, under in texts)
    if not paragraphs:
        return [], [Problem(source.path, NO_TEXT)]
    date = None
    for when in (props.created, props.modified):
        if when is not None:
            date = when.date().isoformat()
            break
    fields: dict[str, Any] = {}
    if props.author:
        fields["author"] = props.author
    doc = Document(
        path=source.path,
        title=title or file_title(source.path),
        paragraphs=paragraphs,
        date=date,
        format="docx",
        fields=fields,
    )
    return [doc], []


def _blocks(document: Any) -> Iterator[tuple[Any, ...]]:
    """The body in document order: ``("paragraph", text, heading level or None, is a list
    item)`` (level 0 for the Title style) and ``("table", text)``."""
    from docx.table import Table

    for block in _inner_content(document.element.body, document._body):
        if isinstance(block, Table):
            yield "table", table_text(block)
            continue
        text = paragraph_text(block)
        style = (block.style.name if block.style is not None else "") or ""
        m = _HEADING.match(style)
        level = 0 if style.lower() == "title" else int(m.group(1)) if m else None
        numbered = block._p.pPr is not None and block._p.pPr.numPr is not None
        yield "paragraph", text, level, numbered or style.lower().startswith("list")


_W = {"w": "http://schemas.openxmlformats.org/wordprocessingml/2006/main"}
_TOC = "w:sdtPr/w:docPartObj/w:docPartGallery[@w:val='Table of Contents']"


def _inner_content(element: Any, parent: Any) -> Iterator[Any]:
    """The paragraphs and tables of a body in document order, as python-docx's
    ``iter_inner_content`` gives them, and those inside block content controls (w:sdt:
    a cover page, a form's fields) and custom XML, which it passes over; a table of
    contents (a content control too) is left out: its lines are the headings again."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    for child in element.iterchildren():
        tag = child.tag.rpartition("}")[2] if isinstance(child.tag, str) else ""
        if tag == "p":
            yield Paragraph(child, parent)
        elif tag == "tbl":
            yield Table(child, parent)
        elif tag == "sdt" and not child.xpath(_TOC, namespaces=_W):
            for content in child.xpath("w:sdtContent", namespaces=_W):
                yield from _inner_content(content, parent)
        elif tag == "customXml":
            yield from _inner_content(child, parent)


# A paragraph's runs, in document order: python-docx's `Paragraph.text` takes the runs
# and hyperlinks that are its direct children, which leaves out the text of tracked
# insertions (w:ins) not yet accepted, of smart tags, inline content controls and simple
# fields. Deleted text (w:del, its w:delText) is left out, as if the changes were accepted.
_RUNS = " | ".join(
    f"{parent}{child}"
    for parent in ("", "w:ins/", "w:smartTag/", "w:sdt/w:sdtContent/", "w:fldSimple/")
    for child in ("w:r", "w:hyperlink")
)


def paragraph_text(paragraph: Any) -> str:
    """The text of a python-docx paragraph, white space collapsed (see `_RUNS`)."""
    return _WS.sub(" ", "".join(run.text for run in paragraph._p.xpath(_RUNS))).strip()


def table_text(table: Any) -> str:
    """A table as text: a line a row, its cells' text joined by `` | `` (a merged cell,
    which python-docx gives once per grid column it spans, once); empty rows left out."""
    rows = []
    for row in table.rows:
        cells: list[str] = []
        last = None
        for cell in row.cells:
            if last is not None and cell._tc is last:
                continue
            last = cell._tc
            cells.append(" ".join(t for t in map(paragraph_text, cell.paragraphs) if t))
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)
