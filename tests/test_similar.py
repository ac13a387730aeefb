"""More like this: `Index.similar`, `Index.passages_of` and `semsearch similar`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from semsearch import Index, SourceError, UsageError
from semsearch.query.group import _near_identical, _shape
from tests.cli_helpers import assert_one_line_error, python_semsearch, run
from tests.fakes import FakeEmbedder
from tests.test_hybrid import article

RIVER = "The river flooded the lower town after the storm."


@pytest.fixture
def library(tmp_path: Path) -> Path:
    top = tmp_path / "library"
    article(
        top / "news" / "flood.txt",
        "River floods",
        [RIVER, "Residents moved to the school on the hill.", "Rain fell all week long."],
        "2024-01-02",
    )
    article(
        top / "news" / "copy.txt", "Flood again", [RIVER + " ", "Schools closed."], "2024-02-01"
    )
    article(
        top / "news" / "storm.txt", "Storm", ["The storm flooded the river town."], "2024-03-01"
    )
    article(top / "notes" / "bread.txt", "Bakery", ["Sourdough bread sold downtown."], "2024-04-01")
    article(top / "notes" / "rain.txt", "Rain", ["Rain fell on the town all week."], "2024-05-01")
    (top / "notes" / "records.jsonl").write_text(
        json.dumps({"id": "r1", "title": "Chess", "text": "The chess champion retired."})
        + "\n"
        + json.dumps({"id": "r2", "title": "Market", "text": "Farmers sold apples."})
        + "\n",
        encoding="utf-8",
    )
    return top


@pytest.fixture
def built(tmp_path: Path, library: Path) -> tuple[Path, FakeEmbedder]:
    fake = FakeEmbedder()
    with Index.open(tmp_path / "idx", create=True, embedder=fake) as index:
        index.add([library])
    return tmp_path / "idx", fake


def _brute_force(index: Index, source: int) -> list[tuple[int, float]]:
    """Every other passage by cosine with ``source``'s stored vector, near-copies left out."""
    with index.snapshot() as snap:
        ids = snap.passage_ids().tolist()
        vecs = snap.vectors(ids)
        rows = snap._store.passages(ids)
    me = vecs[ids.index(source)]
    shape = _shape(rows[source].text)
    ranked = [
        (i, float(v @ me))
        for i, v in zip(ids, vecs, strict=True)
        if i != source and not _near_identical(_shape(rows[i].text), shape)
    ]
    return sorted(ranked, key=lambda x: -x[1])


def _river_id(index: Index) -> int:
    (pid,) = index.passages_of(Path(index.folder).parent / "library/news/flood.txt", paragraph=1)
    return pid


def test_similar_ranks_by_the_stored_vector_and_embeds_nothing(
    built: tuple[Path, FakeEmbedder],
) -> None:
    folder, _ = built
    fake = FakeEmbedder()
    with Index.open(folder, embedder=fake) as index:
        source = _river_id(index)
        hits = index.similar(source, k=4, collapse=False)
        want = _brute_force(index, source)[:4]
    assert fake.calls == []  # no model run: the stored vector is the query
    assert [h.passage_id for h in hits] == [i for i, _ in want]
    assert [h.score for h in hits] == pytest.approx([s for _, s in want], abs=1e-5)
    assert [h.rank for h in hits] == [1, 2, 3, 4]
    with Index.open(folder, embedder=fake) as index, index.snapshot() as snap:
        # a snapshot answers the same (a server's one generation); numpy ids are ids
        assert snap.similar(np.int64(source), k=4, collapse=False) == hits


def test_similar_leaves_out_the_passage_and_its_near_identical_copies(
    built: tuple[Path, FakeEmbedder],
) -> None:
    folder, _ = built
    with Index.open(folder, embedder=FakeEmbedder()) as index:
        source = _river_id(index)
        with index.snapshot() as snap:
            # the copy in copy.txt has another title: another embed hash, the same text
            copy = next(
                r for r in snap._store.passages(snap.passage_ids().tolist()).values()
                if r.path.endswith("copy.txt") and r.paragraph == 0
            )  # fmt: skip
            vecs = snap.vectors([source, copy.id])
        assert float(vecs[0] @ vecs[1]) > 0.5  # it would rank near the top
        everything = index.similar(source, k=100, collapse=False)
    ids = [h.passage_id for h in everything]
    assert source not in ids and copy.id not in ids
    assert all(RIVER.strip() != h.text.strip() for h in everything)
    assert len(ids) == len(set(ids)) == 10 - 2  # every other passage came back


def test_similar_takes_the_filters_and_grouping_of_search(
    built: tuple[Path, FakeEmbedder],
) -> None:
    folder, _ = built
    with Index.open(folder, embedder=FakeEmbedder()) as index:
        source = _river_id(index)
        notes = index.similar(source, k=10, path="*notes/*")
        assert notes and all("/notes/" in h.path for h in notes)
        late = index.similar(source, k=10, since="2024-03-01")
        assert late and all(h.date and h.date >= "2024-03-01" for h in late)
        per_article = index.similar(source, k=10, by_article=True)
        assert len({h.document_id for h in per_article}) == len(per_article)
        assert len(index.similar(source, k=2)) == 2
        assert all(h.score >= 0.3 for h in index.similar(source, k=10, min_score=0.3))
        assert index.similar(source, k=10, path="*nowhere*") == []


def test_several_ids_stand_for_their_mean(built: tuple[Path, FakeEmbedder]) -> None:
    folder, _ = built
    with Index.open(folder, embedder=FakeEmbedder()) as index:
        whole = index.passages_of(Path(folder).parent / "library/news/flood.txt")
        assert len(whole) == 3
        hits = index.similar(whole, k=10, collapse=False)
        with index.snapshot() as snap:
            mean = snap.vectors(whole).mean(0)
            rows = snap._store.passages(snap.passage_ids().tolist())
        shapes = [_shape(rows[i].text) for i in whole]
        others = [
            i
            for i in rows
            if i not in whole and not any(_near_identical(_shape(rows[i].text), t) for t in shapes)
        ]
        with index.snapshot() as snap:
            cos = snap.vectors(others) @ (mean / np.linalg.norm(mean))
    want = sorted(zip(others, cos.tolist(), strict=True), key=lambda x: -x[1])
    assert [h.passage_id for h in hits] == [i for i, _ in want]
    assert [h.score for h in hits] == pytest.approx([c for _, c in want], abs=1e-5)


def test_similar_refuses_ids_it_does_not_hold(built: tuple[Path, FakeEmbedder]) -> None:
    folder, _ = built
    with Index.open(folder, embedder=FakeEmbedder()) as index:
        with pytest.raises(UsageError, match="holds no passage 9999"):
            index.similar(9999)
        for bad in ([], True, "3", [1.5]):
            with pytest.raises(UsageError):
                index.similar(bad)  # type: ignore[arg-type]
        with pytest.raises(UsageError, match="k must be"):
            index.similar(_river_id(index), k=0)


def test_passages_of_a_file_a_paragraph_and_a_record(
    built: tuple[Path, FakeEmbedder], library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, _ = built
    with Index.open(folder, embedder=FakeEmbedder()) as index:
        flood = index.passages_of(library / "news" / "flood.txt")
        monkeypatch.chdir(library)
        assert index.passages_of("news/flood.txt") == flood  # relative to here
        second = index.passages_of("news/flood.txt", paragraph=2)
        assert len(second) == 1 and second[0] == flood[1]
        with index.snapshot() as snap:
            (row,) = snap._store.passages(second).values()
        assert row.text == "Residents moved to the school on the hill."
        with pytest.raises(UsageError, match="has no paragraph 4: it has paragraphs 1 to 3"):
            index.passages_of("news/flood.txt", paragraph=4)
        with pytest.raises(UsageError, match="folder of 3 indexed files"):
            index.passages_of("news")
        with pytest.raises(SourceError, match=r"nothing at or under elsewhere\.txt is indexed"):
            index.passages_of("elsewhere.txt")
        records = "notes/records.jsonl"
        assert len(index.passages_of(records)) == 2
        (r2,) = index.passages_of(records, key="r2")
        assert index.passages_of(records, key="r2", paragraph=1) == [r2]
        with pytest.raises(UsageError, match="holds 2 records: name one"):
            index.passages_of(records, paragraph=1)
        with pytest.raises(UsageError, match="has no record 'r9': its records are r1, r2"):
            index.passages_of(records, key="r9")
        assert index.passages_of(records, part="r2") == [r2]  # `PATH#KEY` as hits show it
        assert index.passages_of("news/flood.txt", part="2") == second  # no records: paragraph
        with pytest.raises(UsageError, match="at least 1"):
            index.passages_of("news/flood.txt", part="0")
        with pytest.raises(UsageError, match="part alone"):
            index.passages_of(records, part="r2", paragraph=1)


def test_a_numeric_record_key_after_one_hash_names_the_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BEIR corpora have numeric ids: `n.jsonl#123`, as a hit shows it, is that record."""
    num = tmp_path / "num"
    num.mkdir()
    (num / "n.jsonl").write_text(
        json.dumps({"id": "123", "title": "Tea", "text": "Green tea is brewed.\n\nCool it."})
        + "\n"
        + json.dumps({"id": "456", "title": "Coffee", "text": "Coffee is roasted."})
        + "\n"
        + json.dumps({"id": "2", "title": "Milk", "text": "Milk is poured."})
        + "\n",
        encoding="utf-8",
    )
    folder = tmp_path / "idx"
    with Index.open(folder, create=True, embedder=FakeEmbedder()) as index:
        index.add([num])
    monkeypatch.chdir(tmp_path)
    idx = ("--index", str(folder))
    with Index.open(folder, embedder=FakeEmbedder()) as index:
        tea = index.passages_of("num/n.jsonl", key="123")
        assert len(tea) == 2
        assert index.passages_of("num/n.jsonl", part="123") == tea
        assert index.passages_of("num/n.jsonl", part="2") == index.passages_of(
            "num/n.jsonl", key="2"
        )  # a key, also where it reads as a paragraph number
        hit = index.search("green tea brewed", k=1, mode="lexical")[0]
    assert (hit.key, hit.abspath) == ("123", str(num / "n.jsonl"))  # shown num/n.jsonl#123
    code, out, err = run("similar", "num/n.jsonl#123", "--json", *idx)
    assert code == 0, err
    assert json.loads(out)["like"] == tea
    code, out, err = run("similar", "num/n.jsonl#123#2", "--json", *idx)
    assert code == 0, err
    assert json.loads(out)["like"] == tea[1:]
    assert_one_line_error(
        *run("similar", "num/n.jsonl#7", *idx), "holds 3 records: name one", exit_code=2
    )


# --------------------------------------------------------------------------- the command


def test_cli_similar(
    built: tuple[Path, FakeEmbedder], library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, _ = built
    monkeypatch.chdir(library)
    idx = ("--index", str(folder))
    code, out, err = run("similar", "news/flood.txt#1", "--json", "-k", "3", *idx)
    assert code == 0, err
    data = json.loads(out)
    with Index.open(folder, embedder=FakeEmbedder()) as index:
        source = index.passages_of("news/flood.txt", paragraph=1)
        want = index.similar(source, k=3)
    assert data["like"] == source
    assert [r["passage_id"] for r in data["results"]] == [h.passage_id for h in want]
    assert {"rank", "score", "text", "path", "paragraph", "passage_id"} <= set(data["results"][0])
    code, out, err = run("similar", "--id", str(source[0]), "--json", "-k", "3", *idx)
    assert code == 0 and json.loads(out)["results"] == data["results"]

    code, out, err = run("similar", "news/flood.txt", *idx)
    assert code == 0, err
    assert out.startswith("Passages like news/flood.txt:")
    assert "River floods" not in out  # the whole file was the query: none of it comes back
    code, out, err = run("similar", "notes/records.jsonl#r1#1", "-k", "1", *idx)
    assert code == 0 and "1. " in out

    assert_one_line_error(*run("similar", *idx), "--id N", exit_code=2)
    assert_one_line_error(*run("similar", "news/flood.txt", "--id", "1", *idx), exit_code=2)
    assert_one_line_error(*run("similar", "--id", "9999", *idx), "no passage 9999", exit_code=2)
    assert_one_line_error(*run("similar", "news/flood.txt#7", *idx), "no paragraph 7", exit_code=2)
    assert_one_line_error(*run("similar", "gone.txt", *idx), "is indexed", exit_code=2)
    code, out, err = run("similar", "news/flood.txt#1", "--path", "*nowhere*", *idx)
    assert (code, out, err) == (1, "Passages like news/flood.txt#1:\n\nNo passage was found.\n", "")


def test_similar_in_a_real_process(built: tuple[Path, FakeEmbedder], library: Path) -> None:
    """No model is loaded (the index was built by a fake): only stored vectors are read."""
    folder, _ = built
    idx = ("--index", str(folder))
    done = python_semsearch("similar", "news/storm.txt#1", "--json", *idx, cwd=library)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)["results"]
    assert results and all(not r["path"].endswith("storm.txt") for r in results)
    done = python_semsearch("similar", "--id", "9999", *idx, cwd=library)
    assert done.returncode == 2 and done.stderr.startswith("error: ")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_similar_hits_carry_their_cosine_in_scores(built: tuple[Path, FakeEmbedder]) -> None:
    folder, _ = built
    with Index.open(folder, embedder=FakeEmbedder()) as index:
        hits = index.similar(_river_id(index), k=3)
        with pytest.raises(UsageError, match="no passage has id"):
            index.similar(2**70)  # too big for SQLite: one clear error, not an OverflowError
    assert hits
    for h in hits:
        assert h.scores == {"dense": h.score, "lexical": None, "fused": None}
