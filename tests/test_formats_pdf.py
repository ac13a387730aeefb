"""PDF files: pages kept and shown, paragraphs rebuilt from the layout (columns, gaps,
indents, broken words), running headers dropped, and the files semsearch cannot read
(encrypted, damaged, scanned) skipped with one line while the rest is indexed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from semsearch.index import Index
from semsearch.ingest import Document, Problem, SourceFile
from semsearch.ingest.formats import FORMATS, Format
from semsearch.ingest.formats import pdf as P
from tests.cli_helpers import index_and_list, run_faked
from tests.fakes import FakeEmbedder
from tests.made_files import PdfMaker, encrypt_pdf, read, sentences, simple_pdf, wrap


def texts(path: Path) -> list[tuple[int, str]]:
    docs, problems = read(path)
    assert problems == []
    assert len(docs) == 1
    return [(p.page, p.text) for p in docs[0].paragraphs]


def joined(lines: list[str]) -> str:
    return " ".join(lines)


# --------------------------------------------------------------------------- pages in hits


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A PDF whose second and third pages speak of a lighthouse, and a text file."""
    docs = tmp_path / "docs"
    docs.mkdir()
    maker = PdfMaker("Harbour report")
    for n in range(1, 4):
        maker.page()
        maker.header_footer(n)
        body = [wrap(sentences(n, 3))]
        if n >= 2:
            body.append(wrap(f"The lighthouse keeper counted {n} ships passing the point."))
        body.append(wrap(sentences(10 + n, n + 1)))
        maker.block(body)
    maker.save(docs / "harbour.pdf")
    (docs / "notes.txt").write_text(
        "Notes\n\nThe lighthouse was painted white last spring.\n", encoding="utf-8"
    )
    return docs


def test_hits_and_json_give_the_page_of_a_pdf_passage(folder: Path, tmp_path: Path) -> None:
    ix = str(tmp_path / "ix")
    code, out, err = run_faked("index", str(folder), "--index", ix, "-q")
    assert code == 0, err
    code, out, err = run_faked(
        "query", "lighthouse keeper ships", "--mode", "lexical", "--json", "-k", "5", "--index", ix
    )
    assert code == 0, err
    results = json.loads(out)["results"]
    pdf_hits = [r for r in results if "lighthouse keeper" in r["text"]]
    assert sorted(r["page"] for r in pdf_hits) == [2, 3]
    for r in pdf_hits:
        assert f"counted {r['page']} ships" in r["text"]
        assert r["line"] == 0  # PDFs have pages, not lines
    txt = [r for r in results if r["path"].endswith("notes.txt")]
    assert txt and txt[0]["page"] is None  # the key is there for every format
    code, out, err = run_faked(
        "query", "lighthouse keeper counted 3 ships", "--mode", "lexical", "-k", "1", "--index", ix
    )
    assert code == 0, err
    assert "harbour.pdf p.3, paragraph" in out
    code, out, err = run_faked(
        "query", "lighthouse", "--mode", "lexical", "--format", "csv", "--index", ix
    )
    header, *rows = out.splitlines()
    column = header.split(",").index("page")
    assert sorted(row.split(",")[column] for row in rows) == ["", "2", "3"]


def test_a_page_stays_with_its_passage_through_the_library(folder: Path, tmp_path: Path) -> None:
    with Index.open(tmp_path / "ix", create=True, embedder=FakeEmbedder()) as index:
        index.add([folder])
        hit = index.search("lighthouse keeper counted 2 ships", k=1, mode="lexical")[0]
        assert (Path(hit.path).name, hit.page) == ("harbour.pdf", 2)
        view = index.passage(hit.passage_id)
        assert view.passage.page == 2


def test_re_indexing_an_unchanged_pdf_reads_nothing_again(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeEmbedder()
    with Index.open(tmp_path / "ix", create=True, embedder=fake) as index:
        first = index.add([folder])
        assert first.passages_embedded > 0
        parsed: list[str] = []

        def spy(source: SourceFile) -> tuple[list[Document], list[Problem]]:
            parsed.append(source.path)
            return P.parse_pdf(source)

        monkeypatch.setitem(FORMATS, ".pdf", Format("pdf", (".pdf",), spy))
        calls = len(fake.calls)
        again = index.add([folder])
        assert (again.files_unchanged, again.passages_embedded, parsed) == (2, 0, [])
        assert len(fake.calls) == calls


def test_an_index_from_before_pages_is_upgraded_on_open(folder: Path, tmp_path: Path) -> None:
    ix = tmp_path / "ix"
    with Index.open(ix, create=True, embedder=FakeEmbedder()) as index:
        index.add([folder / "notes.txt"])
    con = sqlite3.connect(ix / "semsearch.db")
    con.execute("ALTER TABLE passages DROP COLUMN page")
    con.execute("PRAGMA user_version = 3")
    con.commit()
    con.close()
    fake = FakeEmbedder()
    with Index.open(ix, embedder=fake) as index:
        hit = index.search("lighthouse", k=1, mode="lexical")[0]
        assert hit.page is None
        assert index.check().ok
        index.add([folder])
        hit = index.search("lighthouse keeper counted 3 ships", k=1, mode="lexical")[0]
        assert hit.page == 3
    con = sqlite3.connect(ix / "semsearch.db")
    assert con.execute("PRAGMA user_version").fetchone()[0] == 4
    con.close()


# --------------------------------------------------------------------------- layout


def test_a_two_column_page_is_read_column_by_column(tmp_path: Path) -> None:
    left = [wrap(sentences(1, 4), 40), wrap(sentences(2, 3), 40)]
    right = [wrap(sentences(3, 4), 40), wrap(sentences(4, 3), 40)]
    maker = PdfMaker().page()
    maker.text(55, 25, "Rivers and chess in two columns", size=15, bold=True)
    maker.block(left, x=15, y=40)
    maker.block(right, x=110, y=40)
    got = [text for _, text in texts(maker.save(tmp_path / "two.pdf"))]
    assert got == [joined(p) for p in left + right]


def test_a_title_over_two_columns_comes_first_and_the_columns_after(tmp_path: Path) -> None:
    left = [wrap(sentences(5, 5), 40)]
    right = [wrap(sentences(6, 5), 40)]
    below = [wrap(sentences(7, 3), 90)]
    maker = PdfMaker().page()
    maker.block([wrap("A heading long enough to run over the gutter between both columns", 90)])
    y = max(maker.block(left, x=15, y=55), maker.block(right, x=110, y=55))
    maker.block(below, x=20, y=y + 5)  # one column again, under both
    got = [text for _, text in texts(maker.save(tmp_path / "mixed.pdf"))]
    assert got == [joined(p) for p in left + right + below]


def test_three_columns_are_read_left_to_right(tmp_path: Path) -> None:
    cols = [[wrap(sentences(10 + k, 4), 24)] for k in range(3)]
    maker = PdfMaker().page()
    for k, col in enumerate(cols):
        maker.block(col, x=12 + 65 * k, y=30)
    got = [text for _, text in texts(maker.save(tmp_path / "three.pdf"))]
    assert got == [joined(c[0]) for c in cols]


def test_paragraphs_split_at_an_indent_or_a_short_line_without_a_gap(tmp_path: Path) -> None:
    # full lines (a paragraph's every line but its last is 60 characters or more), then
    # one that is short
    paras = [[*wrap(sentences(20 + k, 4), 70)[:-1], "It rained."] for k in range(3)]
    assert all(len(line) >= 60 for p in paras for line in p[:-1])
    maker = PdfMaker().page()
    maker.block(paras, gap=0, indent=8)  # first lines indented, no space between
    got = [text for _, text in texts(maker.save(tmp_path / "indent.pdf"))]
    assert got == [joined(p) for p in paras]
    maker = PdfMaker().page()
    maker.block(paras, gap=0)  # no indent either: each ends with a short line
    got = [text for _, text in texts(maker.save(tmp_path / "flush.pdf"))]
    assert got == [joined(p) for p in paras]
    lines = [line for p in paras for line in p if line != "It rained."]
    maker = PdfMaker().page()
    maker.block([lines], gap=0)  # full lines, no sign of a paragraph's end: one paragraph
    assert [text for _, text in texts(maker.save(tmp_path / "one.pdf"))] == [joined(lines)]


def test_a_paragraph_running_over_a_page_is_one_passage_on_its_first_page(
    tmp_path: Path,
) -> None:
    maker = PdfMaker()
    maker.page().block([wrap(sentences(30, 3)), ["the first part of a sentence that goes"]])
    maker.page().block([["on over the page break and ends here."], wrap(sentences(31, 3))])
    got = texts(maker.save(tmp_path / "runs.pdf"))
    whole = "the first part of a sentence that goes on over the page break and ends here."
    assert (1, whole) in got
    assert len(got) == 3


# --------------------------------------------------------------------------- broken words


@pytest.mark.parametrize(
    ("lines", "text"),
    [
        (["the inter-", "national office"], "the international office"),
        (["a well-", "known fact"], "a well-known fact"),  # a prefix that keeps its hyphen
        (["the Franco-", "German border"], "the Franco-German border"),  # a capital next
        (["COVID-", "19 cases"], "COVID-19 cases"),
        (["state-of-the-", "art tools"], "state-of-the-art tools"),
        (["a dash -", "then more"], "a dash - then more"),  # a dash, not a broken word
        (["soft\u00ad", "hyphen"], "softhyphen"),
        (["plain", "lines"], "plain lines"),
    ],
)
def test_join_lines(lines: list[str], text: str) -> None:
    assert P.join_lines(lines) == text


def test_a_word_the_document_writes_with_a_hyphen_keeps_it() -> None:
    assert P.join_lines(["the long-", "term plan"], {"long-term"}) == "the long-term plan"
    assert P.join_lines(["the long-", "term plan"], {"long-term", "longterm"}) == (
        "the longterm plan"
    )
    assert P.join_lines(["the long-", "term plan"]) == "the longterm plan"


def test_a_hyphenated_line_break_is_joined_in_a_pdf(tmp_path: Path) -> None:
    maker = PdfMaker().page()
    maker.block(
        [["The observers came from an inter-", "national office near the river and a self-",
          "appointed committee watched them."]]
    )
    [(_, text)] = texts(maker.save(tmp_path / "hyphen.pdf"))
    assert text == (
        "The observers came from an international office near the river and a "
        "self-appointed committee watched them."
    )


# --------------------------------------------------------------------------- headers


def test_running_headers_footers_and_page_numbers_are_dropped(tmp_path: Path) -> None:
    path = simple_pdf(tmp_path / "report.pdf", pages=4)
    got = texts(path)
    assert len(got) == 8 and [page for page, _ in got] == [1, 1, 2, 2, 3, 3, 4, 4]
    for _, text in got:
        assert "Annual Report" not in text and "Page" not in text


def test_a_repeated_line_is_kept_in_a_document_of_two_pages(tmp_path: Path) -> None:
    got = texts(simple_pdf(tmp_path / "short.pdf", pages=2))
    # page 1's header became the title; page 2's is kept, as are the page numbers
    assert [text for _, text in got].count("The River Board Annual Report") == 1
    assert "Page 2" in [text for _, text in got]


def test_a_header_on_most_pages_only_is_dropped_where_it_is(tmp_path: Path) -> None:
    maker = PdfMaker()
    for n in range(1, 6):
        maker.page()
        if n != 3:
            maker.text(20, 12, f"Chapter one, page {n}", size=9)
        maker.block([wrap(sentences(40 + n, 3))])
    got = [text for _, text in texts(maker.save(tmp_path / "most.pdf"))]
    assert len(got) == 5 and not any("Chapter one" in t for t in got)


def test_body_lines_are_not_mistaken_for_headers(tmp_path: Path) -> None:
    got = texts(simple_pdf(tmp_path / "r.pdf", pages=3))
    assert len(got) == 6
    assert all(len(text) > 100 for _, text in got)


# --------------------------------------------------------------------------- titles


def test_the_title_comes_from_the_metadata(tmp_path: Path) -> None:
    docs, _ = read(simple_pdf(tmp_path / "a.pdf", title="The Real Title"))
    assert docs[0].title == "The Real Title"


def test_without_a_metadata_title_the_first_line_is_the_title(tmp_path: Path) -> None:
    maker = PdfMaker("Microsoft Word - draft3.docx")  # a file name is no title
    maker.page().block([["Floods of the Lower Valley"], wrap(sentences(50, 4))])
    docs, _ = read(maker.save(tmp_path / "b.pdf"))
    assert docs[0].title == "Floods of the Lower Valley"
    assert [p.text for p in docs[0].paragraphs] == [joined(wrap(sentences(50, 4)))]


def test_a_pdf_of_numbers_only_is_named_after_its_file(tmp_path: Path) -> None:
    maker = PdfMaker()
    maker.page().block([["12 34 56"], ["78 90"]])
    docs, _ = read(maker.save(tmp_path / "figures-2024.pdf"))
    assert docs[0].title == "figures-2024"


def test_the_date_comes_from_the_metadata(tmp_path: Path) -> None:
    import datetime as dt

    maker = PdfMaker()
    maker.pdf.set_creation_date(dt.datetime(2021, 5, 17, 9, 30, tzinfo=dt.timezone.utc))
    maker.page().block([wrap(sentences(51, 3))])
    docs, _ = read(maker.save(tmp_path / "dated.pdf"))
    assert docs[0].date == "2021-05-17"


# --------------------------------------------------------------------------- skipped files


index_lines = index_and_list  # (stdout, stderr's lines, every indexed hit)


def good_file(folder: Path) -> None:
    (folder / "ok.txt").write_text("Ok\n\nThis file is ok and indexed.\n", encoding="utf-8")


def test_an_encrypted_pdf_is_skipped_with_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    good_file(folder)
    plain = simple_pdf(tmp_path / "plain.pdf")
    encrypt_pdf(plain, folder / "secret.pdf", user_password="hunter2")
    _, err, hits = index_lines(folder, tmp_path)
    why = "encrypted PDF that needs a password; skipped"
    assert err == [f"warning: {folder / 'secret.pdf'}: {why}"]
    assert [Path(str(h["path"])).name for h in hits] == ["ok.txt"]


@pytest.mark.parametrize("algorithm", ["RC4-128", "AES-128", "AES-256"])
def test_an_encrypted_pdf_that_opens_without_a_password_is_read(
    tmp_path: Path, algorithm: str
) -> None:
    plain = simple_pdf(tmp_path / "plain.pdf", title="Open to all")
    path = encrypt_pdf(plain, tmp_path / "locked.pdf", user_password="", algorithm=algorithm)
    docs, problems = read(path)
    assert problems == []
    assert docs[0].title == "Open to all"
    assert [p.text for p in docs[0].paragraphs] == [t for _, t in texts(plain)]


@pytest.mark.parametrize("keep", [0.02, 0.5, 0.97])
def test_a_damaged_pdf_is_skipped_with_one_line(tmp_path: Path, keep: float) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    good_file(folder)
    data = simple_pdf(tmp_path / "whole.pdf").read_bytes()
    (folder / "broken.pdf").write_bytes(data[: int(len(data) * keep)])
    _, err, hits = index_lines(folder, tmp_path)
    assert len(err) == 1, err  # nothing from pypdf's own log
    assert err[0].startswith(f"warning: {folder / 'broken.pdf'}: damaged PDF, cannot be read (")
    assert err[0].endswith("; skipped")
    assert [Path(str(h["path"])).name for h in hits] == ["ok.txt"]


def test_a_file_that_is_no_pdf_at_all_is_skipped_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "fake.pdf"
    path.write_text("just some text, not a PDF\n", encoding="utf-8")
    docs, problems = read(path)
    assert docs == [] and len(problems) == 1 and "damaged PDF" in problems[0]


def test_a_scanned_pdf_is_skipped_with_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    good_file(folder)
    maker = PdfMaker()
    for _ in range(2):
        maker.page().image_only()
    maker.save(folder / "scan.pdf")
    _, err, hits = index_lines(folder, tmp_path)
    assert err == [f"warning: {folder / 'scan.pdf'}: {P.NO_TEXT}"]
    assert P.NO_TEXT == "no text layer (scanned PDF?); skipped: semsearch does no OCR"
    assert [Path(str(h["path"])).name for h in hits] == ["ok.txt"]


def test_a_folder_of_only_unreadable_pdfs_says_why(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    maker = PdfMaker()
    maker.page().image_only()
    maker.save(folder / "scan.pdf")
    code, out, err = run_faked("index", str(folder), "--index", str(tmp_path / "ix"), "-q")
    assert code == 2
    assert "Traceback" not in out + err
    assert P.NO_TEXT in err.strip().splitlines()[-1]


# --------------------------------------------------------------------------- size


def test_a_300_page_pdf_gives_every_page_its_passages(tmp_path: Path) -> None:
    path = simple_pdf(tmp_path / "big.pdf", pages=300)
    docs, problems = read(path)
    assert problems == []
    pages = [p.page for p in docs[0].paragraphs]
    assert len(pages) == 600 and pages == sorted(pages)
    assert set(pages) == set(range(1, 301))
    assert docs[0].fields["pages"] == 300
    assert not any("Annual Report" in p.text or "Page" in p.text for p in docs[0].paragraphs)


def test_the_pdf_library_is_imported_only_to_read_a_pdf() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from semsearch.ingest import walk\n"
        "import semsearch.ingest.formats as f\n"
        "assert 'pypdf' not in sys.modules and 'docx' not in sys.modules, 'eager import'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
