"""Hits as data (semsearch.query.output): the JSON shape, the rows for other tools, snippets."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from semsearch.query import Hit, Source, display_path
from semsearch.query import output as O


def hit(rank: int = 1, text: str = "One sentence. Another one here.", **kw: Any) -> Hit:
    fields: dict[str, Any] = dict(
        rank=rank,
        score=0.5,
        text=text,
        title="A title",
        date="2024-01-02",
        path="news/a.txt",
        paragraph=2,
        passage_id=7,
        abspath="/data/news/a.txt",
        line=5,
    )
    fields.update(kw)
    return Hit(**fields)


# --------------------------------------------------------------------------- JSON


def test_hit_dict_is_every_field_but_the_internal_ones() -> None:
    h = hit(
        highlights=[(0, 13)],
        also_in=[Source("B", None, "b.txt", 3, 9)],
        fields={"number": 7},
        document_id=4,
    )
    d = O.hit_dict(h)
    names = {f.name for f in dataclasses.fields(Hit)}
    # `index` only for a search of several indexes (tests/test_many.py): one answers as before
    assert set(d) == names - O.INTERNAL_FIELDS - {"index"}
    assert set(O.hit_dict(dataclasses.replace(h, index="ix"))) == names - O.INTERNAL_FIELDS
    assert {"abspath", "line", "piece", "pieces", "highlights", "also_in"} <= set(d)
    assert d["abspath"] == "/data/news/a.txt" and d["line"] == 5
    assert d["highlights"] == [[0, 13]]
    assert d["also_in"] == [
        {
            "title": "B",
            "date": None,
            "path": "b.txt",
            "paragraph": 3,
            "passage_id": 9,
            "abspath": "",
            "page": None,
        }
    ]
    assert json.loads(json.dumps(d)) == d  # plain JSON, no tuples or objects


def test_a_field_added_to_hit_appears_in_the_json_unlisted() -> None:
    """The dict follows Hit's fields: one added later needs no change here."""

    @dataclasses.dataclass(frozen=True)
    class Later(Hit):
        extra: dict[str, float] = dataclasses.field(default_factory=dict)

    h = Later(**dataclasses.asdict(hit()), extra={"dense": 0.4, "fused": 0.5})
    assert O.hit_dict(h)["extra"] == {"dense": 0.4, "fused": 0.5}


def test_results_dict() -> None:
    hits = [hit(1), hit(2, text="Other.")]
    data = O.results_dict("the query", "ix", "some/model", hits)
    assert list(data) == ["query", "corrected_query", "index", "model", "results"]
    assert data["results"] == [O.hit_dict(h) for h in hits]
    assert [json.loads(line) for line in O.jsonl_lines(hits)] == data["results"]


# --------------------------------------------------------------------------- rows

AWKWARD = 'Commas, "quotes", a | pipe, a\ttab, *stars* and_under\na second line \\ done.'


def test_csv_round_trips_awkward_text() -> None:
    hits = [hit(1, text=AWKWARD, key="r1"), hit(2, date=None)]
    rows = list(csv.reader(io.StringIO(O.csv_text(hits), newline="")))
    assert rows[0] == list(O.TABLE_COLUMNS)
    assert len(rows) == 3
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["text"] == AWKWARD
    assert first["key"] == "r1" and first["line"] == "5" and first["abspath"] == "/data/news/a.txt"
    assert dict(zip(rows[0], rows[2], strict=True))["date"] == ""


def test_tsv_escapes_tabs_newlines_and_backslashes() -> None:
    out = O.tsv_text([hit(1, text=AWKWARD)])
    lines = out.splitlines()
    assert len(lines) == 2  # the newline inside the text did not start a row
    header, row = (line.split("\t") for line in lines)
    assert header == list(O.TABLE_COLUMNS) and len(row) == len(header)
    text = row[header.index("text")]
    unescaped = re.sub(r"\\(.)", lambda m: {"t": "\t", "n": "\n", "r": "\r"}.get(m[1], m[1]), text)
    assert unescaped == AWKWARD


def test_markdown_is_one_row_a_hit_with_bold_highlights() -> None:
    text = "First sentence here. The | best * one. Last."
    a = text.index("The")
    h = hit(1, text=text, highlights=[(a, text.index("Last") - 1)])
    lines = O.markdown_text([h, hit(2, text=AWKWARD)]).splitlines()
    assert len(lines) == 4 and lines[1].startswith("|---:|")
    assert "**The \\| best \\* one.**" in lines[2]
    assert lines[3].count(" | ") == lines[0].count(" | ")  # escaped pipes make no new columns
    assert "\\_under" in lines[3] and "\n" not in lines[3]


def test_vimgrep_lines() -> None:
    hits = [hit(1, text="Line one\nand two."), hit(2, line=0, abspath="", path="rel/b.txt")]
    lines = list(O.vimgrep_lines(hits, cwd="/data"))
    assert lines == [
        "news/a.txt:5:1: Line one and two.",
        "rel/b.txt:1:1: One sentence. Another one here.",
    ]
    for line in lines:
        assert re.fullmatch(r"[^:]+:\d+:\d+: .*", line)


def test_display_path_is_relative_when_shorter(tmp_path: Path) -> None:
    h = hit(abspath=os.fspath(tmp_path / "docs" / "a.txt"))
    assert display_path(h.abspath, h.path, os.fspath(tmp_path)) == os.path.join("docs", "a.txt")
    short = hit(abspath="/a/b.txt")
    # ../../../a/b.txt would be longer
    assert display_path(short.abspath, short.path, "/x/y/z") == "/a/b.txt"
    assert display_path("", "given/a.txt") == "given/a.txt"


# --------------------------------------------------------------------------- snippets


def test_snippet_keeps_text_that_fits() -> None:
    assert O.snippet("short text", [(0, 5)], 10) == ("short text", [(0, 5)])
    assert O.snippet("short text", [(0, 5)], None) == ("short text", [(0, 5)])


def test_snippet_centres_on_the_highlight_between_words() -> None:
    words = " ".join(f"w{i:02d}" for i in range(60))  # 239 characters
    a = words.index("w30")
    b = words.index("w33") + 3
    out, spans = O.snippet(words, [(a, b)], 40)
    assert len(out) <= 40
    assert out.startswith(O.ELLIPSIS) and out.endswith(O.ELLIPSIS)
    inner = out[1:-1]
    assert inner in words and not inner.startswith(" ") and re.fullmatch(r"(w\d\d ?)+", inner)
    ((x, y),) = spans
    assert out[x:y] == words[a:b]


def test_snippet_of_a_long_highlight_still_ends_between_words() -> None:
    text = "Alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron."
    out, spans = O.snippet(text, [(0, len(text))], 30)
    assert out == "Alpha beta gamma delta…"
    assert spans == [(0, len(out) - 1)]


def test_snippet_without_highlight_starts_at_the_start() -> None:
    text = "word " * 50
    out, spans = O.snippet(text, [], 23)
    assert out.startswith("word") and out.endswith(O.ELLIPSIS) and len(out) <= 23
    assert spans == []


@given(
    st.text(alphabet="ab .\n", min_size=0, max_size=300),
    st.integers(1, 120),
    st.lists(st.tuples(st.integers(0, 300), st.integers(1, 60)), max_size=3),
)
def test_snippet_properties(text: str, width: int, raw: list[tuple[int, int]]) -> None:
    spans = sorted({(min(a, len(text)), min(a + n, len(text))) for a, n in raw})
    spans = [(a, b) for a, b in spans if b > a]
    out, moved = O.snippet(text, spans, width)
    if len(text) <= width:
        assert (out, moved) == (text, spans)
        return
    assert len(out) <= width
    assert out.removeprefix(O.ELLIPSIS).removesuffix(O.ELLIPSIS) in text
    for x, y in moved:  # each moved span shows a part of an original highlight
        assert 0 <= x < y <= len(out)
        assert any(out[x:y] in text[a:b] for a, b in spans), (out[x:y], spans)
    if spans and spans[0][1] - spans[0][0] <= width - 2:
        a, b = spans[0]
        assert text[a:b].strip() in out  # a first highlight that fits is shown whole
