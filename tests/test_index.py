"""Index: adding, updating, removing and searching, checked against brute force."""

from __future__ import annotations

import json
import os
import random
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from semsearch.errors import (
    IndexNotFoundError,
    ModelMismatchError,
    SourceError,
    UsageError,
)
from semsearch.index import Index
from semsearch.query import Hit
from tests.fakes import FakeEmbedder

QUERIES = [
    "river flood rain",
    "chess champion match",
    "bakery bread sourdough downtown",
    "school on the hill",
    "the",
]

# The corpus fixture, passage by passage: text -> (title, date, file, paragraph).
CORPUS_PASSAGES = {
    "Heavy rain made the river burst its banks on Tuesday.": (
        "River floods the town",
        "2024-01-02",
        "a.txt",
        1,
    ),
    "Residents were moved to the school on the hill.": (
        "River floods the town",
        "2024-01-02",
        "a.txt",
        2,
    ),
    "The world chess champion said she will retire.": (
        "Chess champion retires",
        None,
        "b.txt",
        1,
    ),
    "Her last match was a draw against a young rival.": (
        "Chess champion retires",
        None,
        "b.txt",
        2,
    ),
    "A bakery selling sourdough bread opened downtown.": (
        "New bakery opens",
        "2024-03-04",
        "c.txt",
        1,
    ),
}


# --------------------------------------------------------------------------- helpers


def build(folder: Path, paths: list[Path], fake: FakeEmbedder | None = None) -> Index:
    index = Index.open(folder, create=True, embedder=fake or FakeEmbedder())
    index.add(paths)
    return index


def db_passages(index_dir: Path) -> list[tuple[int, str, str]]:
    """(passage id, passage text, document title) of every passage, read with sqlite3."""
    con = sqlite3.connect(index_dir / "semsearch.db")
    try:
        return con.execute(
            "SELECT p.id, p.text, d.title FROM passages p JOIN documents d "
            "ON p.document_id = d.id ORDER BY p.id"
        ).fetchall()
    finally:
        con.close()


def manifest_generation(index_dir: Path) -> int:
    con = sqlite3.connect(index_dir / "semsearch.db")
    try:
        row = con.execute("SELECT value FROM manifest WHERE key = 'generation'").fetchone()
    finally:
        con.close()
    return int(json.loads(row[0]))


def vector_files(index_dir: Path) -> list[str]:
    return sorted(n for n in os.listdir(index_dir) if re.fullmatch(r"vectors\.\d+\.faiss", n))


def brute_force(index_dir: Path, fake: FakeEmbedder) -> tuple[list[int], np.ndarray]:
    """Passage ids and their vectors, embedded anew as title + newline + text."""
    rows = db_passages(index_dir)
    ids = [r[0] for r in rows]
    matrix = np.stack([fake.vector(f"{title}\n{text}") for _, text, title in rows])
    return ids, matrix


def assert_brute_force_top_k(
    hits: list[Hit], ids: list[int], matrix: np.ndarray, qvec: np.ndarray, k: int
) -> None:
    """The hits are the exact cosine top-k (the order among equal scores is free)."""
    sims = matrix.astype(np.float64) @ qvec.astype(np.float64)
    order = np.argsort(-sims, kind="stable")
    n = min(k, len(ids))
    assert len(hits) == n
    expected_scores = sims[order[:n]]
    np.testing.assert_allclose([h.score for h in hits], expected_scores, atol=1e-5)
    by_id = dict(zip(ids, sims, strict=True))
    assert len({h.passage_id for h in hits}) == n
    for hit, want in zip(hits, expected_scores, strict=True):
        tied = {i for i, s in by_id.items() if abs(s - want) <= 1e-5}
        assert hit.passage_id in tied, (hit, want)
        assert abs(by_id[hit.passage_id] - hit.score) <= 1e-5


def view(hits: list[Hit]) -> list[tuple[str, str, float]]:
    """What a reader sees of results, without passage ids (which a rebuild changes)."""
    return sorted((h.text, h.path, round(h.score, 5)) for h in hits)


def write_random_articles(folder: Path, count: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    words = [
        *("river", "rain", "town", "school", "election", "vote", "market", "bread"),
        *("bakery", "chess", "match", "player", "team", "goal", "storm", "wind"),
        *("harbour", "ship", "train", "station", "museum", "painting", "music"),
        *("concert", "budget", "tax", "bank", "loan", "farm", "harvest", "cattle"),
        *("bridge", "road"),
    ]
    for n in range(count):
        title = " ".join(rng.sample(words, 3)).capitalize()
        paras = [
            " ".join(rng.choice(words) for _ in range(rng.randint(5, 12))).capitalize() + "."
            for _ in range(rng.randint(1, 4))
        ]
        (folder / f"gen{n:03d}.txt").write_text(
            title + "\n\n" + "\n\n".join(paras) + "\n", encoding="utf-8"
        )


# --------------------------------------------------------------------------- search


def test_search_equals_brute_force_cosine_top_k(tmp_path: Path, corpus: Path) -> None:
    write_random_articles(corpus, 25)
    fake = FakeEmbedder()
    index_dir = tmp_path / "idx"
    index = build(index_dir, [corpus], fake)
    ids, matrix = brute_force(index_dir, fake)
    n = len(ids)
    assert n == index.info().passages > 30
    # The embedder saw exactly the texts the brute force embeds.
    assert sorted(fake.embedded) == sorted(
        f"{title}\n{text}" for _, text, title in db_passages(index_dir)
    )
    for query in [*QUERIES, "storm harbour ship", "tax budget bank loan"]:
        qvec = fake.vector(query)
        for k in (1, 3, 10, n, n + 25):
            hits = index.search(query, k=k, mode="dense", collapse=False)
            assert_brute_force_top_k(hits, ids, matrix, qvec, k)


def test_search_with_k_larger_than_the_index_returns_every_passage(
    tmp_path: Path, corpus: Path
) -> None:
    index = build(tmp_path / "idx", [corpus])
    hits = index.search("river", k=1000, mode="dense", collapse=False)
    assert sorted(h.text for h in hits) == sorted(CORPUS_PASSAGES)


def test_hit_fields(tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    index = build(Path(".semsearch"), [Path("articles")])
    hits = index.search("the river and the chess champion", k=10)
    assert len(hits) == len(CORPUS_PASSAGES)
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(-1.0 <= s <= 1.0 for s in scores)
    rows = {pid: text for pid, text, _ in db_passages(Path(".semsearch"))}
    for hit in hits:
        title, date, name, paragraph = CORPUS_PASSAGES[hit.text]
        assert hit.title == title
        assert hit.date == date
        assert hit.path == os.path.join("articles", name)  # relative stays relative
        assert not os.path.isabs(hit.path)
        assert hit.paragraph == paragraph
        assert rows[hit.passage_id] == hit.text
        assert hit.piece == 1 and hit.pieces == 1
        assert hit.key == ""


def test_min_score_filters(tmp_path: Path, corpus: Path) -> None:
    index = build(tmp_path / "idx", [corpus])
    for query in QUERIES[:3]:
        every = index.search(query, k=10, mode="dense", collapse=False)
        distinct = sorted({h.score for h in every}, reverse=True)
        assert len(distinct) >= 2
        threshold = (distinct[0] + distinct[1]) / 2  # halfway: no rounding at the edge
        kept = index.search(query, k=10, min_score=threshold, mode="dense", collapse=False)
        assert kept
        assert all(h.score >= threshold for h in kept)
        assert [(h.passage_id, h.score) for h in kept] == [
            (h.passage_id, h.score) for h in every if h.score >= threshold
        ]
        assert [h.rank for h in kept] == list(range(1, len(kept) + 1))
    assert index.search("river", k=10, min_score=1.0, mode="dense", collapse=False) == []


# --------------------------------------------------------------------------- incremental updates


def test_reindexing_an_unchanged_folder_embeds_nothing(tmp_path: Path, corpus: Path) -> None:
    fake = FakeEmbedder()
    index_dir = tmp_path / "idx"
    index = build(index_dir, [corpus], fake)
    before = {q: index.search(q, k=10) for q in QUERIES}
    calls = len(fake.calls)
    files = vector_files(index_dir)
    generation = manifest_generation(index_dir)

    report = index.add([corpus])
    assert len(fake.calls) == calls  # the model was not called at all
    assert report.documents_unchanged == 3
    assert report.documents_added == report.documents_updated == report.documents_removed == 0
    assert report.passages_embedded == 0
    assert report.passages_unchanged == 5
    assert not report.changed
    assert vector_files(index_dir) == files
    assert manifest_generation(index_dir) == generation
    assert {q: index.search(q, k=10) for q in QUERIES} == before

    # A second Index on the same folder (a new run of the program) does no more.
    other = FakeEmbedder()
    report = Index.open(index_dir, embedder=other).add([corpus])
    assert other.calls == []
    assert report.documents_unchanged == 3
    assert vector_files(index_dir) == files


def test_a_changed_file_is_reembedded_alone(tmp_path: Path, corpus: Path) -> None:
    fake = FakeEmbedder()
    index = build(tmp_path / "idx", [corpus], fake)
    assert "volcano" not in " ".join(h.text for h in index.search("volcano", k=10))
    calls = len(fake.calls)

    (corpus / "b.txt").write_text(
        "Chess champion retires\n\nThe world chess champion said she will retire.\n\n"
        "A volcano eruption covered the village in ash.\n",
        encoding="utf-8",
    )
    report = index.add([corpus])
    new_calls = fake.calls[calls:]
    # Only the edited paragraph went to the model; the unchanged one reused its vector.
    assert [t for call in new_calls for t in call] == [
        "Chess champion retires\nA volcano eruption covered the village in ash."
    ]
    assert report.documents_updated == 1
    assert report.documents_added == report.documents_removed == 0
    assert report.documents_unchanged == 2
    assert report.passages_embedded == 1
    # the edited paragraph is new, the other one of that file kept its vector (unchanged)
    assert report.passages_added == 1 and report.passages_removed == 1
    assert report.passages_unchanged == 4

    top = index.search("volcano eruption ash village", k=1)[0]
    assert top.text == "A volcano eruption covered the village in ash."
    assert top.path == str(corpus / "b.txt") and top.paragraph == 2
    texts = {h.text for h in index.search("chess", k=100)}
    assert "Her last match was a draw against a young rival." not in texts
    assert "The world chess champion said she will retire." in texts
    assert index.info().passages == 5

    # The reused vector is the right one: scores still equal a fresh brute force.
    ids, matrix = brute_force(tmp_path / "idx", fake)
    for query in QUERIES:
        assert_brute_force_top_k(
            index.search(query, k=10, mode="dense", collapse=False),
            ids,
            matrix,
            fake.vector(query),
            10,
        )


def test_a_deleted_file_is_removed(tmp_path: Path, corpus: Path) -> None:
    index = build(tmp_path / "idx", [corpus])
    (corpus / "c.txt").unlink()
    report = index.add([corpus])
    assert report.documents_removed == 1
    assert report.passages_removed == 1
    assert report.documents_unchanged == 2
    texts = {h.text for h in index.search("bakery sourdough bread", k=100)}
    assert "A bakery selling sourdough bread opened downtown." not in texts
    assert len(texts) == 4
    info = index.info()
    assert (info.documents, info.passages, info.files) == (2, 4, 2)


def test_a_file_deleted_from_a_folder_not_indexed_in_this_run_stays(
    tmp_path: Path, corpus: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "d.txt").write_text(
        "Harbour reopens\n\nShips returned to the harbour after the storm.\n", encoding="utf-8"
    )
    index = build(tmp_path / "idx", [corpus, other])
    assert index.info().documents == 4
    (other / "d.txt").unlink()

    report = index.add([corpus])
    assert report.documents_removed == 0
    assert index.info().documents == 4
    assert index.search("ships harbour storm", k=1)[0].text == (
        "Ships returned to the harbour after the storm."
    )

    report = index.add([other, corpus])
    assert report.documents_removed == 1
    assert index.info().documents == 3
    assert "Ships returned to the harbour after the storm." not in {
        h.text for h in index.search("ships harbour storm", k=100)
    }


def test_a_new_file_is_the_only_one_embedded(tmp_path: Path, corpus: Path) -> None:
    fake = FakeEmbedder()
    index = build(tmp_path / "idx", [corpus], fake)
    calls = len(fake.calls)
    (corpus / "d.txt").write_text(
        "Harbour reopens\n\nShips returned to the harbour after the storm.\n\n"
        "Fishermen were glad.\n",
        encoding="utf-8",
    )
    report = index.add([corpus])
    assert sorted(t for call in fake.calls[calls:] for t in call) == [
        "Harbour reopens\nFishermen were glad.",
        "Harbour reopens\nShips returned to the harbour after the storm.",
    ]
    assert report.documents_added == 1
    assert report.documents_unchanged == 3
    assert report.documents_updated == report.documents_removed == 0
    assert report.passages_added == report.passages_embedded == 2
    assert index.info().passages == 7
    hit = index.search("ships harbour storm", k=1)[0]
    assert (hit.title, hit.paragraph) == ("Harbour reopens", 1)


def test_rebuild_reembeds_everything_and_gives_the_same_results(
    tmp_path: Path, corpus: Path
) -> None:
    fake = FakeEmbedder()
    index = build(tmp_path / "idx", [corpus], fake)
    before = {q: view(index.search(q, k=10)) for q in QUERIES}
    old_ids = {h.passage_id for h in index.search("river", k=10)}
    calls = len(fake.calls)

    report = index.add([corpus], rebuild=True)
    assert sorted(t for call in fake.calls[calls:] for t in call) == sorted(
        f"{title}\n{text}" for text, (title, *_rest) in CORPUS_PASSAGES.items()
    )
    assert report.passages_embedded == 5
    assert report.passages_added == 5
    assert {q: view(index.search(q, k=10)) for q in QUERIES} == before
    # Passage ids are never reused: all rows are new.
    assert not old_ids & {h.passage_id for h in index.search("river", k=10)}
    info = index.info()
    assert (info.documents, info.passages, info.files) == (3, 5, 3)


# --------------------------------------------------------------------------- inputs


def test_indexing_a_single_file(tmp_path: Path, corpus: Path) -> None:
    index = build(tmp_path / "idx", [corpus / "a.txt"])
    info = index.info()
    assert (info.documents, info.passages, info.files) == (1, 2, 1)
    hits = index.search("river", k=10)
    assert {h.path for h in hits} == {str(corpus / "a.txt")}
    # A second single file is added beside it; the first, not being a folder, stays.
    report = index.add([corpus / "b.txt"])
    assert report.documents_added == 1 and report.documents_removed == 0
    assert {h.path for h in index.search("river", k=10)} == {
        str(corpus / "a.txt"),
        str(corpus / "b.txt"),
    }


def test_indexing_a_json_lines_file(tmp_path: Path) -> None:
    records = [
        {
            "id": "r-1",
            "title": "Storm hits the coast",
            "date": "2023-11-05",
            "text": "Strong winds hit the coast overnight.\n\nPower was cut in many homes.",
            "author": "Ann",
        },
        {"id": 42, "title": "Museum opens wing", "text": "The museum opened a new wing."},
        {"title": "Train strike", "text": "Train drivers went on strike for a day."},
    ]
    path = tmp_path / "news.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    fake = FakeEmbedder()
    index = build(tmp_path / "idx", [path], fake)
    info = index.info()
    assert (info.documents, info.passages, info.files) == (3, 4, 1)
    assert sorted(fake.embedded) == sorted(
        [
            "Storm hits the coast\nStrong winds hit the coast overnight.",
            "Storm hits the coast\nPower was cut in many homes.",
            "Museum opens wing\nThe museum opened a new wing.",
            "Train strike\nTrain drivers went on strike for a day.",
        ]
    )

    hit = index.search("power cut homes", k=1)[0]
    assert hit.key == "r-1"
    assert (hit.title, hit.date, hit.paragraph) == ("Storm hits the coast", "2023-11-05", 2)
    assert hit.fields == {"author": "Ann"}
    assert hit.path == str(path)
    hit = index.search("museum wing", k=1)[0]
    assert (hit.key, hit.title, hit.date) == ("42", "Museum opens wing", None)
    hit = index.search("train drivers strike", k=1)[0]
    assert hit.key == "3"  # no id: the line number


# --------------------------------------------------------------------------- info


def test_info(tmp_path: Path, corpus: Path) -> None:
    index = build(tmp_path / "idx", [corpus])
    info = index.info()
    assert info.documents == 3
    assert info.passages == 5
    assert info.files == 3
    assert info.model == "fake-embedder"
    assert info.dimension == 64
    assert info.index_type == "flat"
    assert info.path == str(tmp_path / "idx")
    assert info.size_bytes > 0

    other = build(
        tmp_path / "idx2", [corpus / "b.txt"], FakeEmbedder(name="fake-small", dimension=16)
    )
    info = other.info()
    assert (info.model, info.dimension, info.documents, info.passages) == ("fake-small", 16, 1, 2)
    assert Index.open(tmp_path / "idx2", embedder=FakeEmbedder("fake-small", 16)).model == (
        "fake-small"
    )


# --------------------------------------------------------------------------- errors


@pytest.fixture
def built(tmp_path: Path, corpus: Path) -> tuple[Index, dict[str, list[Hit]]]:
    index = build(tmp_path / "idx", [corpus])
    return index, {q: index.search(q, k=10) for q in QUERIES}


def test_nonexistent_path_is_a_source_error_and_the_index_is_kept(
    tmp_path: Path, corpus: Path, built: tuple[Index, dict[str, list[Hit]]]
) -> None:
    index, before = built
    with pytest.raises(SourceError, match="no-such-folder"):
        index.add([tmp_path / "no-such-folder"])
    # Even given beside a good folder, nothing is changed.
    (corpus / "c.txt").unlink()
    with pytest.raises(SourceError):
        index.add([corpus, tmp_path / "no-such-folder"])
    assert {q: index.search(q, k=10) for q in QUERIES} == before
    reopened = Index.open(tmp_path / "idx", embedder=FakeEmbedder())
    assert {q: reopened.search(q, k=10) for q in QUERIES} == before
    assert reopened.info().documents == 3


def test_folder_of_unsupported_files_is_a_source_error_and_the_index_is_kept(
    tmp_path: Path, built: tuple[Index, dict[str, list[Hit]]]
) -> None:
    index, before = built
    pdfs = tmp_path / "pdfs"
    pdfs.mkdir()
    (pdfs / "paper.pdf").write_bytes(b"%PDF-1.4 not an article")
    (pdfs / "scan.docx").write_bytes(b"PK\x03\x04")
    with pytest.raises(SourceError):
        index.add([pdfs])
    assert {q: index.search(q, k=10) for q in QUERIES} == before
    reopened = Index.open(tmp_path / "idx", embedder=FakeEmbedder())
    assert {q: reopened.search(q, k=10) for q in QUERIES} == before


def test_usage_errors(built: tuple[Index, dict[str, list[Hit]]]) -> None:
    index, _ = built
    for query in ("", "   \n\t"):
        with pytest.raises(UsageError):
            index.search(query)
    for k in (0, -3):
        with pytest.raises(UsageError):
            index.search("river", k=k)
    with pytest.raises(UsageError):
        index.search("river", k=5, min_score=1.5)


def test_index_not_found(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError):
        Index.open(tmp_path / "nothing", embedder=FakeEmbedder())
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexNotFoundError):
        Index.open(tmp_path / "empty", embedder=FakeEmbedder())

    fresh = Index.open(tmp_path / "new", create=True, embedder=FakeEmbedder())
    assert not fresh.exists
    with pytest.raises(IndexNotFoundError):
        fresh.search("river")
    with pytest.raises(IndexNotFoundError):
        fresh.info()
    assert not (tmp_path / "new").exists()  # opening alone writes nothing


@pytest.mark.parametrize("what", ["missing path", "only pdf files", "only empty articles"])
def test_a_failed_first_add_leaves_no_index_folder(tmp_path: Path, what: str) -> None:
    source = tmp_path / "source"
    if what != "missing path":
        source.mkdir()
        if what == "only pdf files":
            (source / "paper.pdf").write_bytes(b"%PDF-1.4")
        else:
            (source / "blank.txt").write_text("  \n\n \n", encoding="utf-8")
            (source / "blank.md").write_text("", encoding="utf-8")
    fake = FakeEmbedder()
    index = Index.open(tmp_path / "idx", create=True, embedder=fake)
    with pytest.raises(SourceError):
        index.add([source])
    assert not (tmp_path / "idx").exists()
    assert fake.calls == []
    with pytest.raises(IndexNotFoundError):
        Index.open(tmp_path / "idx", embedder=FakeEmbedder())


# --------------------------------------------------------------------------- models


def test_another_model_is_refused_until_rebuild(
    tmp_path: Path, corpus: Path, built: tuple[Index, dict[str, list[Hit]]]
) -> None:
    _, before = built
    other = FakeEmbedder(name="other-model", dimension=32)
    index = Index.open(tmp_path / "idx", embedder=other)
    with pytest.raises(ModelMismatchError, match="fake-embedder"):
        index.search("river")
    with pytest.raises(ModelMismatchError):
        index.add([corpus])
    assert other.calls == []  # refused before anything was embedded
    original = Index.open(tmp_path / "idx", embedder=FakeEmbedder())
    assert {q: original.search(q, k=10) for q in QUERIES} == before
    assert original.info().model == "fake-embedder"

    report = index.add([corpus], rebuild=True)
    assert report.passages_embedded == 5
    info = index.info()
    assert (info.model, info.dimension, info.passages) == ("other-model", 32, 5)
    hit = index.search("chess champion match", k=1)[0]
    assert hit.title == "Chess champion retires"
    # Now the first model is the other one.
    with pytest.raises(ModelMismatchError, match="other-model"):
        Index.open(tmp_path / "idx", embedder=FakeEmbedder()).search("river")


def test_same_model_name_with_other_files_is_refused(
    tmp_path: Path, corpus: Path, built: tuple[Index, dict[str, list[Hit]]]
) -> None:
    _, before = built
    changed = FakeEmbedder(fingerprint="fake:2")
    index = Index.open(tmp_path / "idx", embedder=changed)
    with pytest.raises(ModelMismatchError):
        index.search("river")
    # nothing changed: the run embeds nothing, so it neither loads nor checks the model
    assert index.add([corpus]).passages_embedded == 0 and changed.calls == []
    (corpus / "d.txt").write_text("Fresh news\n\nSomething new happened.\n", encoding="utf-8")
    with pytest.raises(ModelMismatchError):
        Index.open(tmp_path / "idx", embedder=changed).add([corpus])
    assert Index.open(tmp_path / "idx", embedder=FakeEmbedder()).info().documents == 3
    same = Index.open(tmp_path / "idx", embedder=FakeEmbedder())
    assert {q: same.search(q, k=10) for q in QUERIES} == before

    index.add([corpus], rebuild=True)
    assert index.info().documents == 4
    assert Index.open(tmp_path / "idx", embedder=changed).search("something new")[0].title == (
        "Fresh news"
    )


def test_vectors_of_another_precision_are_refused(tmp_path: Path, corpus: Path) -> None:
    """An index records the backend and precision of its vectors; adding others is refused."""
    index = Index.open(tmp_path / "idx", create=True, embedder=FakeEmbedder())
    index.add([corpus])
    assert (index.info().backend, index.info().precision) == ("fake", "fp32")
    index.close()
    with sqlite3.connect(tmp_path / "idx" / "semsearch.db") as db:
        db.execute("UPDATE manifest SET value = '\"int8\"' WHERE key = 'precision'")
    (corpus / "d.txt").write_text("Fresh news\n\nSomething new happened.\n", encoding="utf-8")
    fake = FakeEmbedder()
    with pytest.raises(ModelMismatchError, match=r"int8 vectors.*--rebuild"):
        Index.open(tmp_path / "idx", embedder=fake).add([corpus])
    assert fake.calls == []
    rebuilt = Index.open(tmp_path / "idx", embedder=fake)
    rebuilt.add([corpus], rebuild=True)
    assert rebuilt.info().documents == 4
