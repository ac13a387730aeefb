"""Where each passage starts in its file (line, column), for every format, recorded at index
time and returned in `Hit.line` / `Hit.column`."""

from __future__ import annotations

from pathlib import Path

import pytest

from semsearch.index import Index
from semsearch.ingest import SourceFile, parse
from semsearch.ingest.documents import LineIndex
from semsearch.ingest.passages import Chunking, make_passages
from tests.fakes import FakeEmbedder


def words(texts: list[str]) -> list[int]:
    return [len(t.split()) for t in texts]


def positions(name: str, text: str, max_tokens: int = 200) -> list[tuple[int, int, str]]:
    """(line, column, text) of each passage of a file named ``name`` holding ``text``."""
    data = text.encode("utf-8")
    docs, _ = parse(SourceFile(name, f"/x/{name}", data, len(data), 0.0))
    return [
        (p.line, p.column, p.text)
        for d in docs
        for p in make_passages(d, Chunking(max_tokens=max_tokens), words)
    ]


def source_line(text: str, line: int) -> str:
    return text.split("\n")[line - 1]


def test_line_index_counts_lines_and_utf8_byte_columns() -> None:
    lines = LineIndex("ab\ncé d\n\nx")
    assert lines.position(0) == (1, 1)
    assert lines.position(3) == (2, 1)
    assert lines.position(6) == (2, 5)  # "cé " is 4 bytes in UTF-8
    assert lines.position(9) == (4, 1)
    assert lines.position(99) == (4, 2)  # clamped to the end


def test_plain_text_paragraphs_and_the_pieces_of_a_split_one() -> None:
    text = (
        "Title line\n\nFirst paragraph\nwraps here.\n\n"
        "One sentence here. Another sentence there. A third one ends it.\n"
    )
    got = positions("a.txt", text, max_tokens=8)
    assert got[0] == (3, 1, "First paragraph wraps here.")
    # the long paragraph is one line, cut into pieces at sentences: same line, own columns
    assert len(got) > 2
    assert {line for line, _, _ in got[1:]} == {6}
    columns = [col for _, col, _ in got[1:]]
    assert columns[0] == 1 and columns == sorted(set(columns))
    for line, col, piece in got[1:]:
        assert source_line(text, line)[col - 1 :].startswith(piece)


def test_seed_format_one_paragraph_a_line() -> None:
    text = " date 2024-01-02 7\nTitle\nFirst.\n\nSecond one.\n"
    assert positions("s.txt", text) == [(3, 1, "First."), (5, 1, "Second one.")]


def test_windows_line_endings_and_a_byte_order_mark() -> None:
    raw = "\ufeffTitle\r\n\r\nOne.\r\n\r\nTwo.\r\n"
    assert [(line, col) for line, col, _ in positions("w.txt", raw)] == [(3, 1), (5, 1)]


def test_markdown_after_front_matter_lists_and_code() -> None:
    text = (
        "---\ntitle: T\ndate: 2024-01-01\n---\n\n# Heading\n\n"
        "Some *text*\nover two lines.\n\n- one\n- two\n\n```\ncode here\n```\n"
    )
    assert positions("m.md", text) == [
        (8, 1, "Some text over two lines."),
        (11, 1, "one; two"),
        (14, 1, "code here"),
    ]


def test_markdown_blocks_start_where_their_source_lines_do() -> None:
    text = "# T\n\n> quoted words\n\n   indented line\n"
    # the block's first character in the file (its markup included)
    assert positions("q.md", text) == [(3, 1, "quoted words"), (5, 4, "indented line")]


def test_html_paragraphs_get_the_line_of_their_element() -> None:
    text = (
        "<!doctype html>\n<html><head><title>T</title></head>\n<body>\n"
        "<nav><p>menu</p></nav>\n<article>\n<h1>Head</h1>\n<p>First &amp; one</p>\n\n"
        "<p>Second\nparagraph</p><p>Third</p>\n</article></body></html>\n"
    )
    got = positions("h.html", text)
    assert [(line, text_) for line, _, text_ in got] == [
        (7, "First & one"),
        (9, "Second paragraph"),
        (10, "Third"),
    ]
    assert all(col == 0 for _, col, _ in got)  # HTML columns are not known


def test_html_without_paragraph_elements_uses_its_blocks() -> None:
    text = "<html><body>\n<div>Alpha beta</div>\n<ul>\n<li>x</li>\n<li>y</li></ul>\n</body></html>"
    assert [(line, t) for line, _, t in positions("b.html", text)] == [
        (2, "Alpha beta"),
        (4, "x"),
        (5, "y"),
    ]


def test_jsonl_passages_are_on_their_record_s_line() -> None:
    text = (
        '{"id": "a", "title": "A", "text": "one\\n\\ntwo"}\n'
        "\n"
        "not json\n"
        '{"id": "b", "title": "B", "text": "three"}\n'
    )
    assert positions("r.jsonl", text) == [(1, 0, "one"), (1, 0, "two"), (4, 0, "three")]


def test_document_unit_starts_at_the_first_paragraph() -> None:
    data = b"Title\n\nOne.\n\nTwo.\n"
    docs, _ = parse(SourceFile("d.txt", "/x/d.txt", data, len(data), 0.0))
    (passage,) = make_passages(docs[0], Chunking(max_tokens=50, unit="document"), words)
    assert (passage.line, passage.column) == (3, 1)


@pytest.mark.parametrize(
    ("name", "body", "query", "line"),
    [
        ("a.txt", "Title\n\nIntro words.\n\nThe lighthouse keeper.\n", "lighthouse", 5),
        ("b.md", "# Title\n\nIntro.\n\n- the lighthouse keeper\n", "lighthouse", 5),
        (
            "c.html",
            "<html><body>\n<p>Intro.</p>\n<p>The lighthouse</p></body></html>",
            "lighthouse",
            3,
        ),
        ("d.jsonl", '{"text": "intro"}\n{"text": "the lighthouse"}\n', "lighthouse", 2),
    ],
)
def test_hits_carry_the_line_recorded_at_index_time(
    tmp_path: Path, name: str, body: str, query: str, line: int
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / name).write_text(body, encoding="utf-8")
    with Index.open(tmp_path / "idx", create=True, embedder=FakeEmbedder()) as index:
        index.add([folder])
        hit = index.search(query, k=1, mode="lexical")[0]
    assert hit.line == line
    assert hit.column == (0 if name.endswith((".html", ".jsonl")) else 1)
    assert hit.to_dict()["line"] == line
