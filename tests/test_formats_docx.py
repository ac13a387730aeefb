"""DOCX files, made here with python-docx: the title (core properties, first heading, file
name), headings as the section embedded with each passage, list items and tables as
passages, and the files semsearch cannot read skipped with one line while the rest is
indexed."""

from __future__ import annotations

import io
import json
import os
import random
import zipfile
from pathlib import Path
from typing import Any

import pytest

from semsearch.index import Index
from semsearch.ingest.formats import docx as D
from semsearch.ingest.passages import Chunking, make_passages
from tests.cli_helpers import index_and_list, run_faked
from tests.fakes import FakeEmbedder
from tests.made_files import docx_file, one, read, sentences, simple_docx


def body(path: Path) -> list[tuple[str, str]]:
    """(section, text) of each paragraph of the one document in ``path``."""
    return [(p.section, p.text) for p in one(path).paragraphs]


# --------------------------------------------------------------------------- titles


def test_the_title_comes_from_the_core_properties(tmp_path: Path) -> None:
    def build(d: Any) -> None:
        d.core_properties.title = "  The River   Board  "
        d.add_heading("Introduction", level=1)
        d.add_paragraph("The river rose in the night.")

    doc = one(docx_file(tmp_path / "a.docx", build))
    assert doc.title == "The River Board"
    assert doc.format == "docx"
    # the first heading is a section here, not the title
    assert [(p.section, p.text) for p in doc.paragraphs] == [
        ("Introduction", "The river rose in the night.")
    ]


def test_without_a_core_title_the_first_heading_is_the_title(tmp_path: Path) -> None:
    def build(d: Any) -> None:
        d.add_paragraph("A line before any heading.")
        d.add_heading("Floods of the Lower Valley", level=1)
        d.add_paragraph("The gauge read four metres.")
        d.add_heading("Damage", level=2)
        d.add_paragraph("Two bridges were closed.")

    doc = one(docx_file(tmp_path / "b.docx", build))
    assert doc.title == "Floods of the Lower Valley"
    # the heading that is the title is embedded as the title, not repeated as a section
    assert [(p.section, p.text) for p in doc.paragraphs] == [
        ("", "A line before any heading."),
        ("", "The gauge read four metres."),
        ("Damage", "Two bridges were closed."),
    ]


def test_the_title_style_is_the_title_and_no_passage(tmp_path: Path) -> None:
    def build(d: Any) -> None:
        d.add_heading("Harbour Ledger", level=0)  # python-docx: level 0 is the Title style
        d.add_heading("Ships", level=1)
        d.add_paragraph("Nine ships came in.")

    doc = one(docx_file(tmp_path / "c.docx", build))
    assert doc.title == "Harbour Ledger"
    assert [(p.section, p.text) for p in doc.paragraphs] == [("Ships", "Nine ships came in.")]


def test_a_title_paragraph_other_than_the_core_title_is_a_passage(tmp_path: Path) -> None:
    def build(d: Any) -> None:
        d.core_properties.title = "Report template"
        d.add_heading("Harbour Ledger for 1902", level=0)
        d.add_paragraph("Nine ships came in.")

    doc = one(docx_file(tmp_path / "c.docx", build))
    assert doc.title == "Report template"
    assert [p.text for p in doc.paragraphs] == ["Harbour Ledger for 1902", "Nine ships came in."]


def test_a_document_without_any_title_is_named_after_its_file(tmp_path: Path) -> None:
    doc = one(docx_file(tmp_path / "minutes-2024.docx", lambda d: d.add_paragraph("We met.")))
    assert doc.title == "minutes-2024"
    assert [p.text for p in doc.paragraphs] == ["We met."]


def test_the_date_and_author_come_from_the_core_properties(tmp_path: Path) -> None:
    import datetime as dt

    def build(d: Any) -> None:
        d.core_properties.created = dt.datetime(2021, 5, 17, 9, 30)
        d.core_properties.author = "A. Keeper"
        d.add_paragraph("Logged.")

    doc = one(docx_file(tmp_path / "d.docx", build))
    assert (doc.date, doc.fields) == ("2021-05-17", {"author": "A. Keeper"})


# --------------------------------------------------------------------------- body


def test_headings_are_the_section_of_the_passages_under_them(tmp_path: Path) -> None:
    def build(d: Any) -> None:
        d.core_properties.title = "Survey"
        d.add_heading("Methods", level=1)
        d.add_paragraph("We walked the bank.")
        d.add_heading("Samples", level=2)
        d.add_paragraph("Forty jars of water.")
        d.add_heading("Storage", level=3)
        d.add_paragraph("Kept cold.")
        d.add_heading("Gauges", level=2)  # back up one level: Samples and Storage end
        d.add_paragraph("Read twice a day.")
        d.add_heading("Results", level=1)  # back to the top
        d.add_paragraph("The water was clean.")

    assert body(docx_file(tmp_path / "s.docx", build)) == [
        ("Methods", "We walked the bank."),
        ("Methods > Samples", "Forty jars of water."),
        ("Methods > Samples > Storage", "Kept cold."),
        ("Methods > Gauges", "Read twice a day."),
        ("Results", "The water was clean."),
    ]


def test_the_section_is_embedded_after_the_title_but_not_shown(tmp_path: Path) -> None:
    def build(d: Any) -> None:
        d.core_properties.title = "Survey"
        d.add_heading("Methods", level=1)
        d.add_heading("Samples", level=2)
        d.add_paragraph("Forty jars of water.")

    path = docx_file(tmp_path / "s.docx", build)
    [passage] = make_passages(one(path), Chunking(max_tokens=64), FakeEmbedder().count_tokens)
    assert passage.embed_text == "Survey\nMethods > Samples\nForty jars of water."
    assert passage.text == "Forty jars of water."
    # and it is what the index embeds
    fake = FakeEmbedder()
    with Index.open(tmp_path / "ix", create=True, embedder=fake) as index:
        index.add([path])
        assert fake.embedded == ["Survey\nMethods > Samples\nForty jars of water."]
        hit = index.search("forty jars", k=1, mode="lexical")[0]
        assert (hit.text, hit.title, hit.page) == ("Forty jars of water.", "Survey", None)


def test_list_items_are_one_passage(tmp_path: Path) -> None:
    def build(d: Any) -> None:
        d.add_paragraph("We took:")
        d.add_paragraph("a rope", style="List Bullet")
        d.add_paragraph("two lamps", style="List Bullet")
        d.add_paragraph("the ledger", style="List Number")
        d.add_paragraph("Then we left.")

    assert [t for _, t in body(docx_file(tmp_path / "l.docx", build))] == [
        "We took:",
        "a rope; two lamps; the ledger",
        "Then we left.",
    ]


def test_a_table_is_one_passage_a_line_a_row(tmp_path: Path) -> None:
    def build(d: Any) -> None:
        d.core_properties.title = "River levels"
        d.add_heading("Levels", level=1)
        d.add_paragraph("The gauges read:")
        table = d.add_table(rows=4, cols=3)
        rows = [("Gauge", "Monday", "Tuesday"), ("", "", ""), ("North  bridge", "3.1", "3.4")]
        for row, values in zip(table.rows, rows, strict=False):
            for cell, value in zip(row.cells, values, strict=True):
                cell.text = value
        merged = table.cell(3, 0).merge(table.cell(3, 1))  # one cell over two columns
        merged.text = "Mill weir"
        table.cell(3, 2).text = "2.9\nrising"
        d.add_paragraph("After the table.")

    assert body(docx_file(tmp_path / "t.docx", build)) == [
        ("Levels", "The gauges read:"),
        # the empty row left out, the merged cell once, white space in a cell collapsed
        ("Levels", "Gauge | Monday | Tuesday\nNorth bridge | 3.1 | 3.4\nMill weir | 2.9 rising"),
        ("Levels", "After the table."),
    ]


def test_tracked_insertions_are_read_and_deletions_left_out(tmp_path: Path) -> None:
    from docx.oxml import parse_xml
    from docx.oxml.ns import nsdecls

    changed = 'w:id="{}" w:author="Ed" w:date="2024-01-01T00:00:00Z"'

    def build(d: Any) -> None:
        p = d.add_paragraph("The council ")
        w = nsdecls("w")
        p._p.append(
            parse_xml(f"<w:ins {w} {changed.format(1)}><w:r><w:t>closed</w:t></w:r></w:ins>")
        )
        p._p.append(
            parse_xml(
                f"<w:del {w} {changed.format(2)}><w:r><w:delText>opened</w:delText></w:r></w:del>"
            )
        )
        p._p.append(
            parse_xml(
                f'<w:smartTag {w} w:uri="u" w:element="place"><w:r>'
                '<w:t xml:space="preserve"> the Mill bridge</w:t></w:r></w:smartTag>'
            )
        )
        p.add_run(" on Monday.")
        table = d.add_table(rows=1, cols=1)
        cell = table.cell(0, 0).paragraphs[0]
        cell.add_run("Level ")
        inserted = f"<w:ins {w} {changed.format(3)}><w:r><w:t>3.4</w:t></w:r></w:ins>"
        cell._p.append(parse_xml(inserted))

    got = [t for _, t in body(docx_file(tmp_path / "tracked.docx", build))]
    # python-docx's Paragraph.text alone gives "The council  on Monday." and "Level"
    assert got == ["The council closed the Mill bridge on Monday.", "Level 3.4"]


def test_content_controls_are_read_but_a_table_of_contents(tmp_path: Path) -> None:
    from docx.oxml import parse_xml
    from docx.oxml.ns import nsdecls

    w = nsdecls("w")

    def control(gallery: str, *lines: str) -> Any:
        paragraphs = "".join(f"<w:p><w:r><w:t>{line}</w:t></w:r></w:p>" for line in lines)
        return parse_xml(
            f"<w:sdt {w}><w:sdtPr><w:docPartObj><w:docPartGallery w:val='{gallery}'/>"
            f"</w:docPartObj></w:sdtPr><w:sdtContent>{paragraphs}</w:sdtContent></w:sdt>"
        )

    def build(d: Any) -> None:
        d.core_properties.title = "Survey"
        d.add_paragraph("First.")
        d.add_paragraph("Last.")
        body = d.element.body
        first = body[0]
        first.addprevious(control("Cover Pages", "An abstract on the cover page."))
        first.addprevious(control("Table of Contents", "Contents", "Methods 1", "Results 2"))
        body[-2].addnext(control("", "A form field's text."))  # before the sectPr

    assert [t for _, t in body(docx_file(tmp_path / "sdt.docx", build))] == [
        "An abstract on the cover page.",
        "First.",
        "Last.",
        "A form field's text.",
    ]


def test_spans_are_offsets_of_the_paragraphs_joined_by_a_blank_line(tmp_path: Path) -> None:
    def build(d: Any) -> None:
        for n in range(3):
            d.add_paragraph(sentences(n, 2))

    doc = one(docx_file(tmp_path / "p.docx", build))
    joined = "\n\n".join(p.text for p in doc.paragraphs)
    assert [joined[p.start : p.end] for p in doc.paragraphs] == [p.text for p in doc.paragraphs]


# --------------------------------------------------------------------------- skipped files


def index_folder(folder: Path, tmp_path: Path) -> tuple[list[str], list[str]]:
    """Index ``folder`` with the fake model: (stderr's lines, the file name of every hit)."""
    _, lines, hits = index_and_list(folder, tmp_path)
    return lines, [Path(str(h["path"])).name for h in hits]


def good_file(folder: Path) -> None:
    folder.mkdir()
    (folder / "ok.txt").write_text("Ok\n\nThis file is ok and indexed.\n", encoding="utf-8")


def test_an_empty_document_is_skipped_with_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    good_file(folder)
    docx_file(folder / "blank.docx", lambda d: d.add_heading("Only a heading", level=1))
    err, hits = index_folder(folder, tmp_path)
    assert err == [f"warning: {folder / 'blank.docx'}: {D.NO_TEXT}"]
    assert hits == ["ok.txt"]


def whole_docx(tmp_path: Path) -> bytes:
    return simple_docx(tmp_path / "whole.docx", sections=2).read_bytes()


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.97])
def test_a_truncated_document_is_skipped_with_one_line(tmp_path: Path, keep: float) -> None:
    folder = tmp_path / "docs"
    good_file(folder)
    data = whole_docx(tmp_path)
    (folder / "broken.docx").write_bytes(data[: int(len(data) * keep)])
    err, hits = index_folder(folder, tmp_path)
    assert len(err) == 1, err
    assert err[0].startswith(f"warning: {folder / 'broken.docx'}: damaged DOCX, cannot be read (")
    assert err[0].endswith("; skipped")
    assert hits == ["ok.txt"]


def rezipped(data: bytes, change: dict[str, bytes | None]) -> bytes:
    """The zip ``data`` with some members replaced (None: left out)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            new = change.get(name, src.read(name))
            if new is not None:
                dst.writestr(name, new)
    return out.getvalue()


def damaged(tmp_path: Path) -> dict[str, bytes]:
    data = whole_docx(tmp_path)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        types = z.read("[Content_Types].xml")
    sheet = b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
    word = b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
    assert word in types
    return {
        "random bytes": random.Random(1).randbytes(5000),
        "text": b"just some text, not a Word file\n",
        "bad xml": rezipped(data, {"word/document.xml": b"<w:document broken"}),
        "no body": rezipped(data, {"word/document.xml": None}),
        "other zip": rezipped(data, {"[Content_Types].xml": types.replace(word, sheet)}),
        "ole": bytes.fromhex("d0cf11e0a1b11ae1") + os.urandom(1000),
    }


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("random bytes", "damaged DOCX, cannot be read (BadZipFile: "),
        ("text", "damaged DOCX, cannot be read (BadZipFile: "),
        ("bad xml", "damaged DOCX, cannot be read (XMLSyntaxError: "),
        ("no body", "damaged DOCX, cannot be read (KeyError: "),
        ("other zip", "not a Word document (its main part is application/vnd.openxml"),
        ("ole", "password-protected DOCX, or an old Word (.doc) file renamed; skipped"),
    ],
)
def test_a_file_that_is_no_readable_docx_is_one_problem(
    tmp_path: Path, kind: str, says: str
) -> None:
    path = tmp_path / "x.docx"
    path.write_bytes(damaged(tmp_path)[kind])
    docs, problems = read(path)
    assert docs == [] and len(problems) == 1, problems
    assert problems[0].startswith(f"{path}: {says}")
    assert "\n" not in problems[0] and "BytesIO" not in problems[0]
    assert problems[0].endswith("; skipped")


# --------------------------------------------------------------------------- end to end


def test_a_folder_with_a_docx_is_indexed_and_searched(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()

    def build(d: Any) -> None:
        d.core_properties.title = "Harbour report"
        d.add_heading("Lights", level=1)
        d.add_paragraph("The lighthouse keeper counted nine ships passing the point.")
        table = d.add_table(rows=2, cols=2)
        for r, values in enumerate([("Ship", "Flag"), ("Marta", "blue")]):
            for c, value in enumerate(values):
                table.cell(r, c).text = value
        d.add_paragraph(sentences(3, 3))

    docx_file(folder / "harbour.docx", build)
    (folder / "notes.txt").write_text("Notes\n\nThe harbour was quiet.\n", encoding="utf-8")
    ix = str(tmp_path / "ix")
    code, out, err = run_faked("index", str(folder), "--index", ix, "-q")
    assert (code, err) == (0, "")
    code, out, err = run_faked(
        "query", "lighthouse keeper ships", "--mode", "lexical", "--json", "--index", ix
    )
    assert code == 0, err
    [hit] = json.loads(out)["results"]
    assert Path(hit["path"]).name == "harbour.docx"
    assert hit["title"] == "Harbour report"
    assert hit["text"] == "The lighthouse keeper counted nine ships passing the point."
    assert (hit["paragraph"], hit["page"], hit["line"]) == (1, None, 0)
    code, out, err = run_faked("query", "Marta flag", "--mode", "lexical", "-k", "1", "--index", ix)
    assert code == 0, err
    assert "harbour.docx, paragraph 2" in out  # no page to show for a DOCX
    assert "Ship | Flag" in out and "Marta | blue" in out
    code, out, err = run_faked("query", "lighthouse", "--mode", "dense", "--json", "--index", ix)
    assert code == 0, err
    assert Path(json.loads(out)["results"][0]["path"]).name == "harbour.docx"
