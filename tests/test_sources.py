"""Reading article files: finding them, decoding them and parsing each format."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from semsearch.errors import SourceError
from semsearch.ingest import (
    Document,
    Problem,
    SourceFile,
    decode,
    parse,
    parse_html,
    parse_jsonl,
    parse_markdown,
    parse_text,
    read_file,
    walk,
)
from tests.conftest import BBC, SEEDS

SEED_FILE = SEEDS / "000_6ec644ae3fed9123.txt"


def source(path: str, content: str | bytes) -> SourceFile:
    """A SourceFile built in memory, as `read_file` would return it."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    return SourceFile(
        path=path, abspath=os.path.abspath(path), data=data, size=len(data), mtime=0.0
    )


def read_one(path: Path) -> tuple[Document, str]:
    """Read and parse a real file that holds exactly one article; also its decoded text."""
    sf = read_file(str(path), str(path))
    docs, problems = parse(sf)
    assert problems == []
    assert len(docs) == 1
    return docs[0], decode(sf.data)


# --------------------------------------------------------------------------- seed format


def test_seed_file_header_title_and_paragraphs() -> None:
    doc, _ = read_one(SEED_FILE)
    assert doc.format == "seed"
    assert doc.date == "2025-08-28"
    assert doc.fields == {"number": 403}
    assert doc.title == "Eighth anniversary of WWII to take place in China"
    assert len(doc.paragraphs) == 7
    assert doc.paragraphs[0].text.startswith("(MENAFN) North Korean leader Kim Jong-un")
    assert doc.paragraphs[-1].text.startswith("Meanwhile, tensions between the United States")


def test_seed_file_spans_slice_the_decoded_text_exactly() -> None:
    doc, text = read_one(SEED_FILE)
    body_lines = [line.strip() for line in text.split("\n")[2:] if line.strip()]
    assert [p.text for p in doc.paragraphs] == body_lines
    for p in doc.paragraphs:
        assert text[p.start : p.end] == p.text
        assert p.exact
    starts = [p.start for p in doc.paragraphs]
    assert starts == sorted(starts)


def test_seed_header_is_not_taken_for_a_title_in_plain_text() -> None:
    doc = parse_text("date of the match\nThe body.\n", "x.txt")
    assert doc.format == "text"
    assert doc.date is None
    assert doc.title == "date of the match"


# --------------------------------------------------------------------------- plain text


def test_plain_text_title_and_blank_line_paragraphs_join_wrapped_lines() -> None:
    text = (
        "River floods the town\n\n"
        "Heavy rain made the river\nburst its banks on Tuesday.\n\n"
        "Residents were moved   to the school\n\ton the hill.\n"
    )
    doc = parse_text(text, "flood.txt")
    assert doc.format == "text"
    assert doc.title == "River floods the town"
    assert [p.text for p in doc.paragraphs] == [
        "Heavy rain made the river burst its banks on Tuesday.",
        "Residents were moved to the school on the hill.",
    ]
    # Spans cover the source block, wrapped lines and all.
    assert text[doc.paragraphs[0].start : doc.paragraphs[0].end] == (
        "Heavy rain made the river\nburst its banks on Tuesday."
    )
    assert text[doc.paragraphs[1].start : doc.paragraphs[1].end] == (
        "Residents were moved   to the school\n\ton the hill."
    )


def test_plain_text_without_blank_lines_has_one_paragraph_per_line() -> None:
    text = "Chess champion retires\nShe said she will retire.\nHer last match was a draw.\n"
    doc = parse_text(text, "chess.txt")
    assert doc.title == "Chess champion retires"
    assert [p.text for p in doc.paragraphs] == [
        "She said she will retire.",
        "Her last match was a draw.",
    ]
    for p in doc.paragraphs:
        assert text[p.start : p.end] == p.text


def test_plain_text_paragraphs_separated_by_white_space_only_lines() -> None:
    text = "Title\n\nOne.\n   \t\n\nTwo.\n"
    doc = parse_text(text, "t.txt")
    assert [p.text for p in doc.paragraphs] == ["One.", "Two."]


def test_title_only_text_file_gives_no_document() -> None:
    docs, problems = parse(source("empty.txt", "Just a title\n\n"))
    assert docs == []
    assert problems == []


# --------------------------------------------------------------------------- BBC folder


def test_bbc_business_article() -> None:
    doc, text = read_one(BBC / "business" / "001.txt")
    assert doc.title == "Ad sales boost Time Warner profit"
    assert len(doc.paragraphs) == 5
    assert doc.paragraphs[0].text == (
        "Quarterly profits at US media giant TimeWarner jumped 76% to $1.13bn (£600m) "
        "for the three months to December, from $639m year-earlier."
    )
    assert doc.paragraphs[-1].text.startswith("TimeWarner is to restate its accounts")
    assert doc.paragraphs[-1].text.endswith("as a loss on the value of that stake.")
    for p in doc.paragraphs:
        assert text[p.start : p.end] == p.text


def test_bbc_latin1_file_decodes_with_pound_sign() -> None:
    path = BBC / "sport" / "199.txt"
    raw = path.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # the premise: this file is not UTF-8
    text = decode(raw)
    assert "£15.8m" in text
    assert "\ufffd" not in text and "Â" not in text
    doc, _ = read_one(path)
    assert doc.title == "Chelsea sack Mutu"
    assert "a £15.8m signing from Parma" in doc.paragraphs[1].text


def test_read_file_returns_bytes_and_size() -> None:
    path = BBC / "business" / "001.txt"
    sf = read_file("bbc/business/001.txt", str(path))
    assert sf.path == "bbc/business/001.txt"
    assert sf.abspath == str(path)
    assert sf.data == path.read_bytes()
    assert sf.size == len(sf.data)


# --------------------------------------------------------------------------- decode


def test_decode_strips_utf8_bom() -> None:
    assert decode(b"\xef\xbb\xbfCaf\xc3\xa9 \xc2\xa35") == "Café £5"


def test_decode_falls_back_to_cp1252() -> None:
    data = "café “quoted” costs €5 \u2013 £3".encode("cp1252")
    assert decode(data) == "café “quoted” costs €5 \u2013 £3"


def test_decode_bytes_undefined_in_cp1252_fall_back_to_latin1() -> None:
    assert decode(b"a\x81b\xe9") == "a\x81bé"


def test_decode_normalises_line_endings() -> None:
    assert decode(b"one\r\ntwo\rthree\n") == "one\ntwo\nthree\n"


def test_crlf_text_file_parses_like_lf() -> None:
    data = b"Title here\r\n\r\nFirst para\r\nwraps.\r\n\r\nSecond para.\r\n"
    docs, _ = parse(source("crlf.txt", data))
    assert docs[0].title == "Title here"
    assert [p.text for p in docs[0].paragraphs] == ["First para wraps.", "Second para."]


# --------------------------------------------------------------------------- Markdown

MARKDOWN = """---
title: "Front Title"
date: 2024-05-06
author: Jane Doe
Tags: news
---
# Heading Title

Some *emphasis* and **bold** with a [link](http://example.com) and `inline code`.
The paragraph wraps here.

## A sub heading

- item one
- item **two**
  - nested three

| a | b |
|---|---|
| 1 | 2 |

```python
def f():
    return 1
```

Last paragraph.
"""


def test_markdown_front_matter_title_date_and_fields() -> None:
    doc = parse_markdown(MARKDOWN, "post.md")
    assert doc.format == "markdown"
    assert doc.title == "Front Title"
    assert doc.date == "2024-05-06"
    assert doc.fields == {"author": "Jane Doe", "tags": "news"}


def test_markdown_front_matter_date_in_words_is_normalised_and_raw_kept() -> None:
    doc = parse_markdown("---\ndate: March 5, 2024\n---\n# T\n\nBody.\n", "p.md")
    assert doc.date == "2024-03-05"
    assert doc.fields == {"date_raw": "March 5, 2024"}


def test_markdown_heading_is_title_without_front_matter() -> None:
    doc = parse_markdown("Intro line.\n\n# The *Real* Title\n\nBody text.\n", "p.md")
    assert doc.title == "The Real Title"
    assert [p.text for p in doc.paragraphs] == ["Intro line.", "Body text."]
    assert doc.date is None
    assert doc.fields == {}


def test_markdown_blocks_markup_stripped_headings_dropped() -> None:
    doc = parse_markdown(MARKDOWN, "post.md")
    assert [p.text for p in doc.paragraphs] == [
        "Some emphasis and bold with a link and inline code. The paragraph wraps here.",
        "item one; item two; nested three",
        "a; b; 1; 2",
        "def f(): return 1",
        "Last paragraph.",
    ]
    texts = " ".join(p.text for p in doc.paragraphs)
    assert "heading" not in texts.lower()
    assert not any(ch in texts for ch in "*`[]#|")
    assert "http://example.com" not in texts
    assert all(not p.exact for p in doc.paragraphs)


def test_markdown_spans_point_at_source_blocks() -> None:
    doc = parse_markdown(MARKDOWN, "post.md")
    blocks = [MARKDOWN[p.start : p.end] for p in doc.paragraphs]
    assert blocks == [
        "Some *emphasis* and **bold** with a [link](http://example.com) and `inline code`.\n"
        "The paragraph wraps here.",
        "- item one\n- item **two**\n  - nested three",
        "| a | b |\n|---|---|\n| 1 | 2 |",
        "```python\ndef f():\n    return 1\n```",
        "Last paragraph.",
    ]


def test_markdown_through_parse_by_suffix() -> None:
    docs, problems = parse(source("notes/post.markdown", MARKDOWN))
    assert problems == []
    assert [d.title for d in docs] == ["Front Title"]
    assert docs[0].path == "notes/post.markdown"


# --------------------------------------------------------------------------- HTML

HTML = """<!doctype html>
<html><head>
<title>Site | Page Title</title>
<meta property="article:published_time" content="2023-02-03T10:00:00Z">
<script>var p = "<p>not a paragraph</p>";</script>
<style>p { color: red }</style>
</head>
<body>
<nav><p>Home</p><p>Menu</p></nav>
<article>
<h1>Big <i>News</i> Today</h1>
<p>First <b>para</b>.</p>
<p>Line one<br>line two and <a href="/x">a link</a>, then   more.</p>
<div>Not a paragraph block.</div>
<p>   </p>
</article>
<aside><p>Related stories</p></aside>
<footer><p>Copyright 2023</p></footer>
</body></html>
"""


def test_html_title_date_and_paragraphs() -> None:
    doc = parse_html(HTML, "page.html")
    assert doc.format == "html"
    assert doc.title == "Big News Today"
    assert doc.date == "2023-02-03"
    assert [p.text for p in doc.paragraphs] == [
        "First para.",
        "Line one line two and a link, then more.",
    ]


def test_html_spans_index_the_extracted_text() -> None:
    doc = parse_html(HTML, "page.html")
    extracted = "\n\n".join(p.text for p in doc.paragraphs)
    for p in doc.paragraphs:
        assert extracted[p.start : p.end] == p.text


def test_html_no_spurious_spaces_around_inline_tags() -> None:
    doc = parse_html("<p>First <b>para</b>.</p><p>un<i>break</i>able, (<em>x</em>)</p>", "a.htm")
    assert [p.text for p in doc.paragraphs] == ["First para.", "unbreakable, (x)"]


def test_html_title_falls_back_to_title_tag_and_time_datetime() -> None:
    html = (
        "<html><head><title> The  Title </title></head><body>"
        '<p>Posted <time datetime="2022-01-02T08:00">Sunday</time>.</p>'
        "<p>Second.</p></body></html>"
    )
    doc = parse_html(html, "b.html")
    assert doc.title == "The Title"
    assert doc.date == "2022-01-02"
    assert [p.text for p in doc.paragraphs] == ["Posted Sunday.", "Second."]


def test_html_meta_date_wins_over_time_tag() -> None:
    html = (
        '<html><head><meta name="date" content="2021-07-08"></head><body>'
        '<time datetime="1999-01-01">old</time><p>Text.</p></body></html>'
    )
    assert parse_html(html, "c.html").date == "2021-07-08"


def test_html_without_p_falls_back_to_text_blocks() -> None:
    html = (
        "<html><head><title>Head</title><script>junk()</script></head><body>"
        "<h1>Head</h1><div>Block one</div><div>Block two here</div>"
        "<footer>Footer text</footer></body></html>"
    )
    doc = parse_html(html, "d.html")
    assert doc.title == "Head"
    assert [p.text for p in doc.paragraphs] == ["Block one", "Block two here"]


def test_html_fallback_keeps_inline_markup_inside_its_block() -> None:
    html = (
        '<html><body><div>The <a href="/q">quick</a> <b>brown</b> fox.</div>'
        "<div>Next block</div></body>"
    )
    doc = parse_html(html, "e.html")
    assert [p.text for p in doc.paragraphs] == ["The quick brown fox.", "Next block"]


def test_html_h1_in_article_header_is_the_title() -> None:
    html = (
        "<html><head><title>Site name</title></head><body>"
        "<header><a href='/'>Site name</a></header>"
        "<article><header><h1>Real headline</h1></header><p>Body.</p></article>"
        "</body></html>"
    )
    doc = parse_html(html, "f.html")
    assert doc.title == "Real headline"
    assert [p.text for p in doc.paragraphs] == ["Body."]


def test_html_without_any_title_gets_file_stem() -> None:
    docs, problems = parse(source("news/some-story.html", "<html><body><p>Only text.</p></body>"))
    assert problems == []
    assert docs[0].title == "some-story"
    assert [p.text for p in docs[0].paragraphs] == ["Only text."]


# --------------------------------------------------------------------------- JSON Lines


def test_jsonl_records_fields_and_paragraphs() -> None:
    lines = [
        json.dumps(
            {
                "title": "  First   story ",
                "text": "Para one\ncontinues.\n\nPara two.",
                "date": "2024-01-02",
                "id": 5,
                "lang": "en",
                "tags": ["a", "b"],
            }
        ),
        json.dumps({"_id": "abc", "title": "Second", "text": "Only one."}),
        json.dumps({"text": "Untitled body here.", "date": "2 March 2020"}),
    ]
    docs, problems = parse(source("feed.jsonl", "\n".join(lines) + "\n"))
    assert problems == []
    assert [d.key for d in docs] == ["5", "abc", "3"]
    first, second, third = docs
    assert first.title == "First story"
    assert first.date == "2024-01-02"
    assert first.format == "jsonl"
    assert first.fields == {"lang": "en", "tags": ["a", "b"]}
    assert [p.text for p in first.paragraphs] == ["Para one continues.", "Para two."]
    body = "Para one\ncontinues.\n\nPara two."
    assert [body[p.start : p.end] for p in first.paragraphs] == [
        "Para one\ncontinues.",
        "Para two.",
    ]
    assert second.title == "Second"
    assert second.fields == {}
    assert third.title == ""  # a record without a title: its text is not repeated as one
    assert third.date == "2020-03-02"
    assert third.fields == {"date_raw": "2 March 2020"}


def test_jsonl_bad_lines_are_problems_and_the_rest_parse() -> None:
    text = "\n".join(
        [
            json.dumps({"title": "Good one", "text": "Kept."}),
            "{not json",
            "[1, 2, 3]",
            json.dumps({"title": "No text"}),
            "",
            json.dumps({"title": "Good two", "text": "Also kept."}),
        ]
    )
    docs, problems = parse_jsonl(text, "data/feed.ndjson")
    assert [d.title for d in docs] == ["Good one", "Good two"]
    assert all(isinstance(p, Problem) for p in problems)
    assert [p.path for p in problems] == [
        "data/feed.ndjson:2",
        "data/feed.ndjson:3",
        "data/feed.ndjson:4",
    ]
    assert "JSON" in problems[0].message
    assert "object" in problems[1].message
    assert '"text"' in problems[2].message
    assert str(problems[0]).startswith("data/feed.ndjson:2: ")


def test_jsonl_problems_come_back_through_parse() -> None:
    docs, problems = parse(source("x.ndjson", '{"text": "fine"}\n42\n'))
    assert [d.paragraphs[0].text for d in docs] == ["fine"]
    assert [p.path for p in problems] == ["x.ndjson:2"]


DUPLICATES = [
    {"id": "a", "title": "One", "text": "River floods the town."},
    {"id": "a", "title": "Two", "text": "Bakery opens downtown."},  # the same id again
    {"title": "Three", "text": "Chess champion retires."},  # no id: keyed by line, "3"
    {"id": 3, "title": "Four", "text": "Jazz festival returns."},  # the id "3" is taken
    {"id": "a (line 5)", "title": "Five", "text": "Comet seen at dusk."},
    {"id": "a", "title": "Six", "text": "Orchard harvest begins."},  # "a" a third time
]


def test_jsonl_duplicate_ids_keep_every_record_under_its_own_key() -> None:
    """Two records with one id became one document in the report and in the document
    signatures (every later run called both "updated")."""
    text = "\n".join(json.dumps(r) for r in DUPLICATES) + "\n"
    docs, problems = parse_jsonl(text, "feed.jsonl")
    assert [d.title for d in docs] == ["One", "Two", "Three", "Four", "Five", "Six"]
    keys = [d.key for d in docs]
    assert keys == ["a", "a (line 2)", "3", "3 (line 4)", "a (line 5)", "a (line 6)"]
    assert len(set(keys)) == len(keys)
    assert [p.path for p in problems] == ["feed.jsonl:2", "feed.jsonl:4", "feed.jsonl:6"]
    assert "id 'a' is already the key of line 1" in problems[0].message
    assert "kept as 'a (line 2)'" in problems[0].message
    assert "id '3' is already the key of line 3" in problems[1].message
    assert "id 'a' is already the key of line 1" in problems[2].message


def test_jsonl_a_disambiguated_key_never_takes_an_existing_id() -> None:
    records = [
        {"id": "x", "text": "First."},
        {"id": "x (line 3)", "text": "Second."},
        {"id": "x", "text": "Third."},
    ]
    docs, problems = parse_jsonl("\n".join(json.dumps(r) for r in records), "f.jsonl")
    assert [d.key for d in docs] == ["x", "x (line 3)", "x (line 3)'"]
    assert len(problems) == 1 and problems[0].path == "f.jsonl:3"


def test_jsonl_duplicate_ids_are_separate_documents_in_the_index(tmp_path: Path) -> None:
    from semsearch.index import Index
    from tests.fakes import FakeEmbedder

    folder = tmp_path / "src"
    folder.mkdir()
    feed = folder / "feed.jsonl"
    feed.write_text("\n".join(json.dumps(r) for r in DUPLICATES[:4]) + "\n", encoding="utf-8")
    with Index.open(tmp_path / "index", create=True, embedder=FakeEmbedder()) as index:
        report = index.add([folder])
        assert report.documents_added == 4  # was 2: the two "a" and the two "3" merged
        assert report.passages_added == 4
        assert [str(p) for p in report.problems] == [
            f"{feed}:2: id 'a' is already the key of line 1; record kept as 'a (line 2)' "
            "(give each record its own id)",
            f"{feed}:4: id '3' is already the key of line 3; record kept as '3 (line 4)' "
            "(give each record its own id)",
        ]
        assert index.info().documents == 4
        found = {
            h.title: h.key for h in index.search("river bakery chess jazz", k=4, mode="lexical")
        }
        assert found == {"One": "a", "Two": "a (line 2)", "Three": "3", "Four": "3 (line 4)"}

        again = index.add([folder])  # unchanged file
        assert (again.documents_unchanged, again.documents_added) == (4, 0)
        with open(feed, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"id": "z", "text": "A new record."}) + "\n")
        grown = index.add([folder])
        assert (grown.documents_added, grown.documents_updated) == (1, 0)  # was 1 and 2
        assert (grown.documents_unchanged, grown.documents_removed) == (4, 0)
        assert len(grown.problems) == 2  # the file was read again: the same two warnings


# --------------------------------------------------------------------------- walk


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """articles/ with every kind of file walk() must take or leave."""
    root = tmp_path / "articles"
    for rel in [
        "a.txt",
        "b.md",
        "c.html",
        "d.jsonl",
        "e.pdf",
        "README",
        "f.DOCX",
        "g.epub",
        "photo.PNG",
        ".hidden.txt",
        ".git/config.txt",
        ".cache/x.md",
        "index/meta.txt",
        "sub/g.TXT",
        "sub/.secret.md",
        "sub/deeper/h.ndjson",
    ]:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("Title\n\nBody.\n", encoding="utf-8")
    return root


def test_walk_finds_supported_files_and_skips_the_rest(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = walk(["articles"], exclude=[str(tree / "index")])
    expected = [
        "articles/a.txt",
        "articles/b.md",
        "articles/c.html",
        "articles/d.jsonl",
        "articles/e.pdf",
        "articles/f.DOCX",
        "articles/g.epub",
        "articles/sub/g.TXT",
        "articles/sub/deeper/h.ndjson",
    ]
    assert [given for given, _ in result.files] == [os.path.normpath(p) for p in expected]
    assert [real for _, real in result.files] == [os.path.realpath(tmp_path / p) for p in expected]
    assert result.skipped == 2  # README, photo.PNG; hidden files are not counted
    assert result.roots == [os.path.realpath(tree)]


def test_walk_does_not_skip_index_folder_unless_excluded(tree: Path) -> None:
    given = [g for g, _ in walk([tree]).files]
    assert str(tree / "index" / "meta.txt") in given
    assert not any("/." in g for g in given)


def test_walk_deduplicates_a_file_given_twice(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree)
    result = walk(["a.txt", "./a.txt", str(tree / "a.txt")])
    assert result.files == [("a.txt", os.path.realpath(tree / "a.txt"))]
    assert result.roots == []
    result = walk([".", "a.txt"], exclude=["index"])
    assert [g for g, _ in result.files].count(os.path.join(".", "a.txt")) == 1
    assert "a.txt" not in [g for g, _ in result.files]
    assert len(result.files) == 9


def test_walk_deduplicates_symlinked_file(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("T\n\nBody.\n", encoding="utf-8")
    (folder / "link.txt").symlink_to(folder / "a.txt")
    result = walk([folder])
    assert [Path(g).name for g, _ in result.files] == ["a.txt"]


def test_walk_explicit_unsupported_file_counts_as_skipped(tree: Path) -> None:
    result = walk([tree / "photo.PNG", tree / "a.txt"])
    assert result.skipped == 1
    assert result.files == [(str(tree / "a.txt"), os.path.realpath(tree / "a.txt"))]


def test_walk_excluded_folder_given_directly_is_not_walked(tree: Path) -> None:
    result = walk([tree / "index", tree / "sub"], exclude=[tree / "index"])
    assert result.roots == [os.path.realpath(tree / "sub")]
    assert [Path(g).name for g, _ in result.files] == ["g.TXT", "h.ndjson"]


def test_walk_missing_path_raises_source_error(tree: Path) -> None:
    missing = tree / "nope"
    with pytest.raises(SourceError, match="nope"):
        walk([tree, missing])


@pytest.mark.slow
def test_cli_reports_duplicate_ids_as_warnings_and_counts_every_record(tmp_path: Path) -> None:
    from tests.cli_helpers import run

    folder = tmp_path / "src"
    folder.mkdir()
    feed = folder / "feed.jsonl"
    feed.write_text("\n".join(json.dumps(r) for r in DUPLICATES[:4]) + "\n", encoding="utf-8")
    code, out, err = run("index", str(folder), "--index", str(tmp_path / "index"), "-q")
    assert code == 0, err
    assert err.splitlines() == [
        f"warning: {feed}:2: id 'a' is already the key of line 1; record kept as 'a (line 2)' "
        "(give each record its own id)",
        f"warning: {feed}:4: id '3' is already the key of line 3; record kept as '3 (line 4)' "
        "(give each record its own id)",
    ]
    assert "documents: 4 added" in out
    assert "2 problems with files or records (see above)" in out


def test_one_undecodable_json_line_does_not_garble_the_other_records() -> None:
    """Regression: a JSON Lines file was decoded as a whole, so one line that is not UTF-8
    turned every record's accents into mojibake ('café' read as 'cafÃ©')."""
    data = (
        '{"id": "a", "text": "Le café est ouvert."}\n'.encode()
        + b'{"id": "b", "text": "broken \xff byte"}\r\n'
        + '{"text": "déjà vu"}\n'.encode()
    )
    docs, problems = parse(SourceFile("x.jsonl", "/x.jsonl", data, len(data), 0.0))
    assert problems == []
    assert [(d.key, d.paragraphs[0].text) for d in docs] == [
        ("a", "Le café est ouvert."),
        ("b", "broken \xff byte"),  # that line alone read as Windows-1252
        ("3", "déjà vu"),  # keys by line number unchanged
    ]
