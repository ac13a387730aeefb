"""``.epub``: e-books, a zip of XHTML chapters in the order of the package's spine.

``META-INF/container.xml`` names the package document (OPF); its manifest maps ids to
files and its spine lists the reading order. Each spine item is read with the HTML
format's parser (`html.parse_html`: ``<p>`` paragraphs, navigation dropped); the items
that have text are the book's chapters, numbered from 1 in reading order, and each
paragraph records its chapter as its ``page`` and the chapter's heading as its section
(embedded with the book's title). The title is the OPF's ``dc:title`` (else the first
chapter's heading, else the file's name), the date its ``dc:date``. A book whose
chapters are encrypted (DRM), one without its package document or any text, and a
damaged one are skipped with one line each.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from typing import Any
from urllib.parse import unquote

from ..documents import (
    _WS,
    Document,
    Problem,
    SourceFile,
    _iso_date,
    decode,
    describe,
    extracted,
    file_title,
)
from .html import parse_html

SUFFIXES = (".epub",)

_CONTAINER = "META-INF/container.xml"
_ENCRYPTION = "META-INF/encryption.xml"
_FONT_OBFUSCATION = (  # fonts "encrypted" this way are not DRM: the text is readable
    "http://www.idpf.org/2008/embedding",
    "http://ns.adobe.com/pdf/enc#RC",
)
_HTML_TYPES = ("application/xhtml+xml", "text/html", "application/xml")
NO_TEXT = "no text in its chapters (pictures only?); skipped"
MAX_CHAPTER_BYTES = 64 * 1024 * 1024  # a chapter larger than this uncompressed is skipped


class _Unreadable(Exception):
    """The book's structure is not there (no container, no package document)."""


def parse_epub(source: SourceFile) -> tuple[list[Document], list[Problem]]:
    """An EPUB book as one article: its chapters' paragraphs in reading order."""
    try:
        return _parse(source)
    except _Unreadable as exc:
        return [], [Problem(source.path, f"not a readable EPUB ({exc}); skipped")]
    # a zip of XML from anywhere: zipfile and lxml raise what they meet in a damaged one
    # (BadZipFile, KeyError, XMLSyntaxError, zlib.error, EOFError...): one line each.
    except Exception as exc:
        why = f"damaged EPUB, cannot be read ({describe(exc)}); skipped"
        return [], [Problem(source.path, why)]


def _parse(source: SourceFile) -> tuple[list[Document], list[Problem]]:
    with zipfile.ZipFile(io.BytesIO(source.data)) as book:
        names = set(book.namelist())
        if _CONTAINER not in names:
            raise _Unreadable(f"no {_CONTAINER}")
        container = _xml(book.read(_CONTAINER))
        rootfile = container.find(".//{*}rootfile[@full-path]")
        if rootfile is None:
            raise _Unreadable(f"{_CONTAINER} names no package document")
        opf_path = unquote(str(rootfile.get("full-path")))
        if opf_path not in names:
            raise _Unreadable(f"no package document {opf_path}")
        opf = _xml(book.read(opf_path))
        base = posixpath.dirname(opf_path)
        manifest: dict[str, tuple[str, str]] = {}  # id -> (path in the zip, media type)
        for item in opf.iterfind(".//{*}manifest/{*}item"):
            href = item.get("href")
            if item.get("id") and href:
                path = posixpath.normpath(posixpath.join(base, unquote(href.split("#")[0])))
                manifest[str(item.get("id"))] = (path, str(item.get("media-type") or ""))
        spine = [
            manifest[ref]
            for ref in (i.get("idref") for i in opf.iterfind(".//{*}spine/{*}itemref"))
            if ref in manifest
        ]
        locked = _encrypted(book, names)
        if locked and any(path in locked for path, _ in spine):
            return [], [Problem(source.path, "encrypted EPUB (DRM); skipped")]
        title = _meta(opf, "title")
        date = _iso_date(_meta(opf, "date"))
        texts: list[tuple[str, int, str]] = []  # (paragraph, chapter, its heading)
        chapter = 0
        for path, media in spine:
            if path not in names or (media and media not in _HTML_TYPES):
                continue  # an image or a file the manifest promises but the zip lacks
            info = book.getinfo(path)
            if info.file_size > MAX_CHAPTER_BYTES:
                continue
            part = parse_html(decode(book.read(info)), source.path)
            if not part.paragraphs:
                continue  # a cover, a blank page: not a chapter
            chapter += 1
            heading = part.title
            if not title:
                title = heading
            texts += [(p.text, chapter, heading) for p in part.paragraphs]
    # a chapter's heading is embedded as its section, but not the title once more (many
    # books give every chapter the book's <title>)
    paragraphs = extracted((t, n, "" if h == title else h) for t, n, h in texts)
    if not paragraphs:
        return [], [Problem(source.path, NO_TEXT)]
    fields: dict[str, Any] = {"chapters": chapter}
    author = _meta(opf, "creator")
    if author:
        fields["author"] = author
    doc = Document(
        path=source.path,
        title=title or file_title(source.path),
        paragraphs=paragraphs,
        date=date,
        format="epub",
        fields=fields,
    )
    return [doc], []


def _xml(data: bytes) -> Any:
    """Parse XML without resolving entities or reaching the network (a book is untrusted)."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, recover=True)
    root = etree.fromstring(data, parser)
    if root is None:
        raise _Unreadable("an XML part is empty")
    return root


def _meta(opf: Any, name: str) -> str:
    """The first Dublin Core element ``name`` of the package's metadata, white space
    collapsed ('' when absent)."""
    for el in opf.iterfind(f".//{{*}}metadata/{{http://purl.org/dc/elements/1.1/}}{name}"):
        text = _WS.sub(" ", "".join(el.itertext())).strip()
        if text:
            return text
    return ""


def _encrypted(book: zipfile.ZipFile, names: set[str]) -> set[str]:
    """The files ``META-INF/encryption.xml`` says are encrypted, but for obfuscated fonts."""
    if _ENCRYPTION not in names:
        return set()
    root = _xml(book.read(_ENCRYPTION))
    out = set()
    for data in root.iterfind(".//{*}EncryptedData"):
        method = data.find("{*}EncryptionMethod")
        algorithm = method.get("Algorithm", "") if method is not None else ""
        ref = data.find(".//{*}CipherReference")
        if ref is not None and ref.get("URI") and algorithm not in _FONT_OBFUSCATION:
            out.add(posixpath.normpath(unquote(str(ref.get("URI")))))
    return out
