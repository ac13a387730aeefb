"""PDF, DOCX and EPUB files made for the tests: fpdf2 places every line where the test
says (columns, gaps, indents, headers), python-docx writes Word files, and an EPUB is a
zip written by hand."""

from __future__ import annotations

import random
import textwrap
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from semsearch.ingest import Document, read_file
from semsearch.ingest.formats import parse

_WORD_LIST = (
    "river flood bank town rain council bridge water level gauge staff morning ledger "
    "harbour ship crew cargo storm coast village market farmer harvest wheat barley "
    "school teacher pupil library book chess match player rival champion board engine "
    "railway station train signal track tunnel mountain valley glacier snow museum "
    "painting artist gallery visitor ticket garden flower bee honey orchard"
)
WORDS = tuple(_WORD_LIST.split())


def sentences(seed: int, count: int) -> str:
    """``count`` made-up sentences, different for every seed (so no two pages repeat)."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(rng.randint(7, 14))]
        out.append(" ".join(words).capitalize() + ".")
    return " ".join(out)


def wrap(text: str, width: int = 60) -> list[str]:
    return textwrap.wrap(text, width)


class PdfMaker:
    """A PDF of A4 pages whose lines are placed one by one (mm, fpdf2's default unit)."""

    def __init__(self, title: str | None = None) -> None:
        from fpdf import FPDF

        self.pdf = FPDF()
        self.pdf.set_auto_page_break(False)
        self.pdf.set_font("Helvetica", size=11)
        if title is not None:
            self.pdf.set_title(title)

    def page(self) -> PdfMaker:
        self.pdf.add_page()
        return self

    def text(self, x: float, y: float, line: str, size: float = 11, bold: bool = False) -> None:
        self.pdf.set_font("Helvetica", "B" if bold else "", size)
        self.pdf.text(x, y, line)

    def block(
        self,
        paragraphs: Sequence[Sequence[str]],
        x: float = 20,
        y: float = 40,
        leading: float = 5.5,
        gap: float = 5.0,
        indent: float = 0.0,
    ) -> float:
        """Paragraphs of lines from (x, y) down: ``gap`` mm between paragraphs, the first
        line of each indented by ``indent`` mm. Returns the y below the last line."""
        for para in paragraphs:
            for n, line in enumerate(para):
                self.text(x + (indent if n == 0 else 0), y, line)
                y += leading
            y += gap
        return y

    def header_footer(self, number: int, header: str = "The River Board Annual Report") -> None:
        self.text(20, 12, header, size=9)
        self.text(100, 287, f"Page {number}", size=9)

    def image_only(self) -> None:
        """A page holding only a picture, as a scanner makes it."""
        from PIL import Image

        img = Image.new("RGB", (200, 280), (240, 240, 230))
        for x in range(20, 180):
            for y in range(40, 44):
                img.putpixel((x, y), (20, 20, 20))
        self.pdf.image(img, x=10, y=10, w=190)

    def save(self, path: Path) -> Path:
        self.pdf.output(str(path))
        return path


def simple_pdf(path: Path, pages: int = 3, title: str | None = None, seed: int = 0) -> Path:
    """A PDF of ``pages`` pages, each with a header, two paragraphs and a page number."""
    maker = PdfMaker(title)
    for n in range(1, pages + 1):
        maker.page()
        maker.header_footer(n)
        maker.block([wrap(sentences(seed * 1000 + n * 10 + k, 4)) for k in range(2)])
    return maker.save(path)


def encrypt_pdf(source: Path, target: Path, user_password: str, algorithm: str = "AES-128") -> Path:
    """``source`` encrypted by pypdf (``user_password`` "" opens without one)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(source))
    writer.encrypt(user_password, owner_password="owner-secret", algorithm=algorithm)
    with open(target, "wb") as fh:
        writer.write(fh)
    return target


# --------------------------------------------------------------------------- DOCX


def docx_file(path: Path, build: Any) -> Path:
    """A Word file made by ``build(document)`` (a python-docx Document)."""
    import docx

    document = docx.Document()
    build(document)
    document.save(str(path))
    return path


def simple_docx(path: Path, sections: int = 3, title: str | None = None, seed: int = 0) -> Path:
    """A Word file of ``sections`` headings ("Part N"), each over two paragraphs (the same
    sentences as `simple_pdf`'s pages of that seed), ``title`` in its core properties."""

    def build(document: Any) -> None:
        if title is not None:
            document.core_properties.title = title
        for n in range(1, sections + 1):
            document.add_heading(f"Part {n}", level=1)
            for k in range(2):
                document.add_paragraph(sentences(seed * 1000 + n * 10 + k, 4))

    return docx_file(path, build)


# --------------------------------------------------------------------------- EPUB

_CONTAINER_XML = """<?xml version="1.0"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles>
    <rootfile full-path="{opf}" media-type="application/oebps-package+xml"/>
  </rootfiles>
</container>
"""


def chapter_xhtml(heading: str, paragraphs: Sequence[str]) -> str:
    body = "".join(f"<p>{p}</p>\n" for p in paragraphs)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml"><head><title>'
        f"{heading}</title></head><body><h1>{heading}</h1>\n{body}</body></html>\n"
    )


def nav_xhtml(entries: Sequence[tuple[str, str]]) -> str:
    """An EPUB 3 navigation document: a table of contents of (file, label)."""
    links = "".join(f'<li><a href="{href}">{label}</a></li>' for href, label in entries)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">'
        "<head><title>Contents</title></head><body>"
        f'<nav epub:type="toc"><h1>Contents</h1><ol>{links}</ol></nav></body></html>\n'
    )


def epub_file(
    path: Path,
    chapters: Sequence[tuple[str, str]],
    spine: Sequence[str],
    title: str | None = "A Book",
    date: str | None = None,
    opf: str = "OEBPS/content.opf",
    extra: dict[str, str] | None = None,
    nav: str | None = None,
    author: str | None = None,
) -> Path:
    """An EPUB: ``chapters`` are (file name beside the OPF, XHTML), ``spine`` the file
    names in reading order (the manifest lists them in the order given). ``nav`` names one
    of the chapters as the EPUB 3 navigation document."""
    base = opf.rpartition("/")[0]
    prefix = f"{base}/" if base else ""
    items = "".join(
        f'<item id="i{n}" href="{name}" media-type="application/xhtml+xml"'
        + (' properties="nav"' if name == nav else "")
        + "/>"
        for n, (name, _) in enumerate(chapters)
    )
    ids = {name: f"i{n}" for n, (name, _) in enumerate(chapters)}
    refs = "".join(f'<itemref idref="{ids[name]}"/>' for name in spine)
    meta = f"<dc:title>{title}</dc:title>" if title is not None else ""
    if date is not None:
        meta += f"<dc:date>{date}</dc:date>"
    if author is not None:
        meta += f"<dc:creator>{author}</dc:creator>"
    package = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">'
        f'<metadata xmlns:dc="http://purl.org/dc/elements/1.1/">{meta}</metadata>'
        f"<manifest>{items}</manifest><spine>{refs}</spine></package>"
    )
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        z.writestr("META-INF/container.xml", _CONTAINER_XML.format(opf=opf))
        z.writestr(opf, package)
        for name, xhtml in chapters:
            z.writestr(prefix + name, xhtml)
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return path


def read(path: Path) -> tuple[list[Document], list[str]]:
    """The documents a file is read as, and its problems as text."""
    docs, problems = parse(read_file(str(path), str(path)))
    return docs, [str(p) for p in problems]


def one(path: Path) -> Document:
    """The one document a file is read as, without a problem."""
    docs, problems = read(path)
    assert problems == []
    assert len(docs) == 1
    return docs[0]
