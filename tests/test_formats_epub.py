"""EPUB books, zipped here by hand: chapters read in spine order through the HTML parser,
each chapter's number its page and its heading its section, the title from the package's
dc:title, and the books semsearch cannot read skipped with one line."""

from __future__ import annotations

import json
import random
import zipfile
from pathlib import Path

import pytest

from semsearch.ingest.formats import epub as E
from tests.cli_helpers import run_faked
from tests.made_files import chapter_xhtml, epub_file, nav_xhtml, one, read, sentences

COVER = (
    '<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml">'
    '<head><title>Cover</title></head><body><img src="cover.jpg" alt=""/></body></html>'
)


def book(path: Path, **kw: object) -> Path:
    """A book of a cover, a navigation document and three chapters, the spine reading
    them in another order than the manifest lists them."""
    chapters = [
        ("cover.xhtml", COVER),
        ("nav.xhtml", nav_xhtml([("one.xhtml", "The Flood"), ("two.xhtml", "The Bridge")])),
        ("three.xhtml", chapter_xhtml("The Harvest", ["Wheat in the barns.", "Barley too."])),
        ("one.xhtml", chapter_xhtml("The Flood", ["The river rose.", "The bank gave way."])),
        ("two.xhtml", chapter_xhtml("The Bridge", ["The council met at the bridge."])),
    ]
    spine = ["cover.xhtml", "nav.xhtml", "one.xhtml", "two.xhtml", "three.xhtml"]
    args: dict[str, object] = {"title": "River Tales", "nav": "nav.xhtml", **kw}
    return epub_file(path, chapters, spine, **args)  # type: ignore[arg-type]


def test_chapters_are_read_in_spine_order_each_its_number_as_page(tmp_path: Path) -> None:
    doc = one(book(tmp_path / "tales.epub"))
    assert doc.format == "epub"
    # the cover (no text) and the table of contents (navigation) are no chapters
    assert [(p.page, p.section, p.text) for p in doc.paragraphs] == [
        (1, "The Flood", "The river rose."),
        (1, "The Flood", "The bank gave way."),
        (2, "The Bridge", "The council met at the bridge."),
        (3, "The Harvest", "Wheat in the barns."),
        (3, "The Harvest", "Barley too."),
    ]
    assert doc.fields["chapters"] == 3
    joined = "\n\n".join(p.text for p in doc.paragraphs)
    assert [joined[p.start : p.end] for p in doc.paragraphs] == [p.text for p in doc.paragraphs]


def test_the_title_date_and_author_come_from_the_package(tmp_path: Path) -> None:
    doc = one(book(tmp_path / "t.epub", date="2019-03-02T10:00:00Z", author=" Ann  Reed "))
    assert (doc.title, doc.date, doc.fields["author"]) == ("River Tales", "2019-03-02", "Ann Reed")


def test_without_a_dc_title_the_first_chapter_heading_is_the_title(tmp_path: Path) -> None:
    doc = one(book(tmp_path / "t.epub", title=None))
    assert doc.title == "The Flood"
    # the heading that is the title is not embedded once more as the section
    sections = [p.section for p in doc.paragraphs]
    assert sections == ["", "", "The Bridge", "The Harvest", "The Harvest"]


def test_a_book_without_any_title_is_named_after_its_file(tmp_path: Path) -> None:
    plain = "<html><body><p>Only a line.</p></body></html>"
    path = epub_file(tmp_path / "notes-1901.epub", [("a.xhtml", plain)], ["a.xhtml"], title=None)
    doc = one(path)
    assert (doc.title, [p.text for p in doc.paragraphs]) == ("notes-1901", ["Only a line."])


def test_a_chapter_titled_like_the_book_has_no_section(tmp_path: Path) -> None:
    # many books give every chapter the book's <title> and no heading of its own
    chapter = (
        "<html><head><title>River Tales</title></head><body><p>The first page.</p></body></html>"
    )
    doc = one(epub_file(tmp_path / "t.epub", [("a.xhtml", chapter)], ["a.xhtml"], "River Tales"))
    assert [(p.page, p.section) for p in doc.paragraphs] == [(1, "")]


def test_the_package_may_lie_anywhere_and_name_files_in_folders(tmp_path: Path) -> None:
    chapters = [
        ("text/b.xhtml", chapter_xhtml("Second", ["Two."])),
        ("text/a.xhtml", chapter_xhtml("First", ["One."])),
    ]
    path = epub_file(
        tmp_path / "t.epub", chapters, ["text/a.xhtml", "text/b.xhtml"], opf="content.opf"
    )
    assert [(p.page, p.text) for p in one(path).paragraphs] == [(1, "One."), (2, "Two.")]


def test_a_spine_item_the_zip_lacks_is_passed_over(tmp_path: Path) -> None:
    path = book(tmp_path / "t.epub")
    short = tmp_path / "short.epub"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(short, "w") as dst:
        for name in src.namelist():
            if name != "OEBPS/two.xhtml":
                dst.writestr(name, src.read(name))
    assert [(p.page, p.section) for p in one(short).paragraphs] == [
        (1, "The Flood"), (1, "The Flood"), (2, "The Harvest"), (2, "The Harvest")
    ]


# --------------------------------------------------------------------------- skipped books


def one_problem(path: Path) -> str:
    docs, problems = read(path)
    assert docs == [] and len(problems) == 1, problems
    assert "\n" not in problems[0] and problems[0].endswith("; skipped")
    return problems[0]


@pytest.mark.parametrize("keep", [0.0, 0.3, 0.9])
def test_a_truncated_book_is_one_problem(tmp_path: Path, keep: float) -> None:
    data = book(tmp_path / "whole.epub").read_bytes()
    path = tmp_path / "broken.epub"
    path.write_bytes(data[: int(len(data) * keep)])
    assert one_problem(path).startswith(f"{path}: damaged EPUB, cannot be read (BadZipFile: ")


def test_random_bytes_are_one_problem(tmp_path: Path) -> None:
    path = tmp_path / "noise.epub"
    path.write_bytes(random.Random(2).randbytes(4000))
    assert one_problem(path).startswith(f"{path}: damaged EPUB, cannot be read (")


def test_a_corrupt_chapter_is_one_problem(tmp_path: Path) -> None:
    data = bytearray(book(tmp_path / "whole.epub").read_bytes())
    with zipfile.ZipFile(tmp_path / "whole.epub") as z:
        info = z.getinfo("OEBPS/one.xhtml")
    # the compressed bytes of one chapter flipped: its CRC no longer matches
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for i in range(start, start + info.compress_size):
        data[i] ^= 0x5A
    path = tmp_path / "corrupt.epub"
    path.write_bytes(bytes(data))
    assert one_problem(path).startswith(f"{path}: damaged EPUB, cannot be read (")


def test_a_book_without_its_package_document_is_one_problem(tmp_path: Path) -> None:
    path = book(tmp_path / "whole.epub")
    lost = tmp_path / "lost.epub"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(lost, "w") as dst:
        for name in src.namelist():
            if name != "OEBPS/content.opf":
                dst.writestr(name, src.read(name))
    why = "not a readable EPUB (no package document OEBPS/content.opf); skipped"
    assert one_problem(lost) == f"{lost}: {why}"


def test_a_zip_without_a_container_is_one_problem(tmp_path: Path) -> None:
    path = tmp_path / "plain.epub"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("chapter.xhtml", chapter_xhtml("A", ["text"]))
    assert one_problem(path) == (
        f"{path}: not a readable EPUB (no META-INF/container.xml); skipped"
    )


def test_a_book_without_text_is_one_problem(tmp_path: Path) -> None:
    path = epub_file(tmp_path / "comic.epub", [("c.xhtml", COVER)], ["c.xhtml"])
    assert one_problem(path) == f"{path}: {E.NO_TEXT}"


ENCRYPTION = """<?xml version="1.0"?>
<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container"
  xmlns:enc="http://www.w3.org/2001/04/xmlenc#">
 <enc:EncryptedData>
  <enc:EncryptionMethod Algorithm="{algorithm}"/>
  <enc:CipherData><enc:CipherReference URI="{uri}"/></enc:CipherData>
 </enc:EncryptedData>
</encryption>"""


def test_a_book_with_encrypted_chapters_is_one_problem(tmp_path: Path) -> None:
    drm = ENCRYPTION.format(
        algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc", uri="OEBPS/one.xhtml"
    )
    path = book(tmp_path / "drm.epub", extra={"META-INF/encryption.xml": drm})
    assert one_problem(path) == f"{path}: encrypted EPUB (DRM); skipped"


def test_obfuscated_fonts_are_no_drm(tmp_path: Path) -> None:
    fonts = ENCRYPTION.format(
        algorithm="http://www.idpf.org/2008/embedding", uri="OEBPS/font.otf"
    )
    path = book(tmp_path / "fonts.epub", extra={"META-INF/encryption.xml": fonts})
    assert len(one(path).paragraphs) == 5


# --------------------------------------------------------------------------- end to end


def test_a_folder_with_a_book_is_indexed_and_hits_show_the_chapter(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    chapters = [
        ("a.xhtml", chapter_xhtml("Morning", [sentences(1, 3)])),
        ("b.xhtml", chapter_xhtml("Night", ["The lighthouse keeper counted nine ships."])),
    ]
    epub_file(folder / "keeper.epub", chapters, ["a.xhtml", "b.xhtml"], title="Harbour Days")
    (folder / "broken.epub").write_bytes(b"PK\x03\x04 not really")
    ix = str(tmp_path / "ix")
    code, out, err = run_faked("index", str(folder), "--index", ix, "-q")
    assert code == 0, err
    [line] = err.strip().splitlines()
    assert line.startswith(f"warning: {folder / 'broken.epub'}: damaged EPUB, cannot be read (")
    code, out, err = run_faked(
        "query", "lighthouse keeper", "--mode", "lexical", "--json", "--index", ix
    )
    assert code == 0, err
    [hit] = json.loads(out)["results"]
    assert (Path(hit["path"]).name, hit["title"], hit["page"]) == ("keeper.epub", "Harbour Days", 2)
    assert hit["text"] == "The lighthouse keeper counted nine ships."
    code, out, err = run_faked("query", "lighthouse keeper", "--mode", "lexical", "--index", ix)
    assert code == 0, err
    assert "keeper.epub p.2, paragraph 2" in out


def xhtml_chapter(heading: str, paragraphs: list[str]) -> str:
    """A chapter as books write them: XML declaration, doctype, its </html> far down."""
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n<!DOCTYPE html>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">'
        f"\n<head><title>{heading}</title></head>\n<body>\n<h1>{heading}</h1>\n{body}\n"
        "</body>\n</html>\n"
    )


def test_a_real_chapter_is_read_without_a_warning_from_the_html_parser(tmp_path: Path) -> None:
    import warnings

    from semsearch.ingest.formats.html import parse_html

    chapter = xhtml_chapter("Morning", [sentences(1, 6), sentences(2, 6)])
    assert chapter.index("</html>") > 500  # bs4 looks for it in the first 500 characters
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # bs4's XMLParsedAsHTMLWarning would raise here
        doc = parse_html(chapter, "c.xhtml")
        path = epub_file(tmp_path / "b.epub", [("c.xhtml", chapter)], ["c.xhtml"])
        assert [p.text for p in one(path).paragraphs] == [sentences(1, 6), sentences(2, 6)]
    # the blanked declaration keeps its line: the <p>s are on lines 7 and 8
    assert (doc.title, [p.line for p in doc.paragraphs]) == ("Morning", [7, 8])


def test_indexing_a_book_in_a_real_process_prints_nothing_else(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    folder = tmp_path / "docs"
    folder.mkdir()
    chapters = [(f"c{n}.xhtml", xhtml_chapter(f"Part {n}", [sentences(n, 6)])) for n in (1, 2)]
    epub_file(folder / "b.epub", chapters, ["c1.xhtml", "c2.xhtml"])
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, str(root / "tests" / "fake_cli.py"), "index", str(folder),
         "--index", str(tmp_path / "ix"), "-q"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
        timeout=120,
    )
    assert (done.returncode, done.stderr) == (0, "")
