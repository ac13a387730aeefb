"""`Index.passage`: one stored passage in its article, with its neighbours."""

from __future__ import annotations

from pathlib import Path

import pytest

from semsearch import UsageError
from semsearch.index import Index
from semsearch.query import output
from tests.fakes import FakeEmbedder


@pytest.fixture
def article_index(tmp_path: Path) -> Path:
    folder = tmp_path / "notes"
    folder.mkdir()
    paragraphs = [f"Paragraph number {n} talks about topic {n}." for n in range(1, 8)]
    (folder / "long.txt").write_text("A long article\n\n" + "\n\n".join(paragraphs) + "\n")
    (folder / "other.txt").write_text("Another one\n\nSomething else entirely.\n")
    idx = tmp_path / "idx"
    with Index.open(idx, create=True, embedder=FakeEmbedder()) as index:
        index.add([folder])
    return idx


def _ids_in_order(index: Index, file: str) -> list[int]:
    return index.passages_of(file)


def test_a_passage_comes_with_its_neighbours_in_reading_order(
    article_index: Path, tmp_path: Path
) -> None:
    with Index.open(article_index, embedder=FakeEmbedder()) as index:
        ids = _ids_in_order(index, str(tmp_path / "notes" / "long.txt"))
        view = index.passage(ids[3], context=2)
    assert view.passage.passage_id == ids[3]
    assert [h.passage_id for h in view.before] == ids[1:3]
    assert [h.passage_id for h in view.after] == ids[4:6]
    assert view.position == 4
    assert view.passages == len(ids)
    assert view.passage.title == "A long article"
    assert view.passage.text.startswith("Paragraph number 4")  # paragraph 1 is the first body one


def test_neighbours_stop_at_the_ends_of_the_article(article_index: Path, tmp_path: Path) -> None:
    with Index.open(article_index, embedder=FakeEmbedder()) as index:
        ids = _ids_in_order(index, str(tmp_path / "notes" / "long.txt"))
        first = index.passage(ids[0], context=3)
        last = index.passage(ids[-1], context=1)
        alone = index.passage(ids[2], context=0)
    assert first.before == [] and [h.passage_id for h in first.after] == ids[1:4]
    assert last.after == [] and [h.passage_id for h in last.before] == ids[-2:-1]
    assert alone.before == [] and alone.after == []


def test_the_json_names_the_document_and_leaves_out_ranking_fields(
    article_index: Path, tmp_path: Path
) -> None:
    with Index.open(article_index, embedder=FakeEmbedder()) as index:
        ids = _ids_in_order(index, str(tmp_path / "notes" / "long.txt"))
        data = output.passage_view_dict(index.passage(ids[1]), str(article_index))
    assert data["document"]["title"] == "A long article"
    assert data["document"]["passages"] == len(ids)
    assert data["passage"]["passage_id"] == ids[1]
    assert "score" not in data["passage"] and "rank" not in data["passage"]
    assert [p["passage_id"] for p in data["before"]] == ids[:1]


@pytest.mark.parametrize("bad", [0, -3, 10**6, True, "4"])
def test_an_unknown_or_malformed_id_is_a_usage_error(article_index: Path, bad: object) -> None:
    with Index.open(article_index, embedder=FakeEmbedder()) as index, pytest.raises(UsageError):
        index.passage(bad)  # type: ignore[arg-type]


def test_info_tells_the_generation_each_commit_advances(
    article_index: Path, tmp_path: Path
) -> None:
    with Index.open(article_index, embedder=FakeEmbedder()) as index:
        before = index.info().generation
        (tmp_path / "notes" / "new.txt").write_text("New\n\nA new paragraph.\n")
        index.add([tmp_path / "notes"])
        assert index.info().generation == before + 1
