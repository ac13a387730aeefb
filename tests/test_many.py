"""Several indexes, one answer: `Indexes` and `query --index A --index B` against one index
holding both folders."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from semsearch import Index, Indexes, IndexesMismatchError, IndexNotFoundError
from semsearch.query.hits import Hit
from tests.cli_helpers import assert_one_line_error, run_faked
from tests.fakes import FakeEmbedder

QUERIES = ["river mountain", "orchard apples harvest", "storm over the harbour", "violin"]
THEMES = ["river", "mountain", "orchard", "apples", "harvest", "storm", "harbour", "violin"]


def _article(rng: random.Random, n: int) -> str:
    filler = [f"word{i}" for i in range(300)]
    paragraphs = []
    for _ in range(rng.randint(2, 5)):
        words = rng.choices(filler, k=rng.randint(8, 40)) + rng.choices(THEMES, k=rng.randint(0, 4))
        rng.shuffle(words)
        paragraphs.append(" ".join(words).capitalize() + ".")
    return f"Article {n}\n\n" + "\n\n".join(paragraphs) + "\n"


def _write(folder: Path, rng: random.Random, first: int, count: int) -> Path:
    folder.mkdir(parents=True)
    for n in range(first, first + count):
        (folder / f"a{n:03}.txt").write_text(_article(rng, n), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders a and b (different sizes, so their own BM25 statistics differ), an index of
    each and one index of both, all with the same fake model."""
    root = tmp_path_factory.mktemp("many")
    rng = random.Random(7)
    out = {"a": _write(root / "a", rng, 0, 30), "b": _write(root / "b", rng, 30, 12)}
    for name, paths in (
        ("ix_a", [out["a"]]),
        ("ix_b", [out["b"]]),
        ("ix_ab", [out["a"], out["b"]]),
    ):
        with Index.open(root / name, create=True, embedder=FakeEmbedder()) as ix:
            ix.add([str(p) for p in paths])
        out[name] = root / name
    return out


def _key(h: Hit) -> tuple[str, int, int]:
    return (h.abspath, h.paragraph, h.piece)


def _ranking(hits: list[Hit]) -> list[tuple[float, set[tuple[str, int, int]]]]:
    """Hits as (score, the passages of that score), best first. The fake model's bags of
    words give many exact ties, and one index orders tied passages by FAISS' internals
    (a last-bit difference of float32 sums): which of them comes first is not an answer."""
    out: list[tuple[float, set[tuple[str, int, int]]]] = []
    for h in hits:
        if out and out[-1][0] == h.score:
            out[-1][1].add(_key(h))
        else:
            out.append((h.score, {_key(h)}))
    return out


def _both(built: dict[str, Path], query: str, **options: object) -> tuple[list[Hit], list[Hit]]:
    """(hits of Indexes over ix_a and ix_b, hits of the one index ix_ab)."""
    with Indexes.open([built["ix_a"], built["ix_b"]], embedder=FakeEmbedder()) as many:
        got = many.search(query, **options)
    with Index.open(built["ix_ab"], embedder=FakeEmbedder()) as one:
        want = one.search(query, **options)
    return list(got), list(want)


@pytest.mark.parametrize("query", QUERIES)
def test_dense_is_exactly_one_index_of_both_folders(built: dict[str, Path], query: str) -> None:
    got, want = _both(built, query, k=15, mode="dense")
    assert len(want) == 15
    assert _ranking(got[:-1]) == _ranking(want[:-1])  # (a tie may straddle the k-th)
    assert [h.score for h in got] == [h.score for h in want]  # exactly: cosines as they are
    assert {h.index for h in got} == {str(built["ix_a"]), str(built["ix_b"])}


@pytest.mark.parametrize("mode", ["hybrid", "lexical"])
@pytest.mark.parametrize("query", QUERIES)
def test_hybrid_and_lexical_equal_one_index_with_global_bm25_statistics(
    built: dict[str, Path], query: str, mode: str
) -> None:
    got, want = _both(built, query, k=15, mode=mode)
    assert len(want) == 15
    # Exact: each index's BM25 candidates are all its passages holding a term (scored
    # with the summed statistics), the dense side is exact (flat), and fusion is per passage.
    assert _ranking(got[:-1]) == _ranking(want[:-1])
    for g, w in zip(got, want, strict=True):
        assert g.score == pytest.approx(w.score, abs=1e-6)
        assert g.scores["lexical"] == pytest.approx(w.scores["lexical"], abs=1e-6)


def test_bm25_statistics_are_global_not_each_index_own(built: dict[str, Path]) -> None:
    """What the equivalence above rests on: with b's own statistics its passages score
    otherwise than in the index of both, and the merged search gives the latter."""
    query = "violin harbour"
    with Index.open(built["ix_b"], embedder=FakeEmbedder()) as b:
        own = {_key(h): h.score for h in b.search(query, k=50, mode="lexical")}
    got, want = _both(built, query, k=100, mode="lexical")
    reference = {_key(h): h.score for h in want}
    from_b = {_key(h): h.score for h in got if h.index == str(built["ix_b"])}
    assert from_b and all(abs(reference[k] - s) < 1e-6 for k, s in from_b.items())
    assert any(abs(own[k] - s) > 1e-3 for k, s in from_b.items() if k in own)


def test_filters_apply_across_indexes(built: dict[str, Path]) -> None:
    glob = "*/a/a00*"  # a000..a009 of folder a only
    got, want = _both(built, "river mountain", k=10, path=glob)
    assert [_key(h) for h in got] == [_key(h) for h in want]
    assert got and all(h.index == str(built["ix_a"]) for h in got)


def test_each_hit_names_its_index_and_its_own_passage_id(built: dict[str, Path]) -> None:
    got, _ = _both(built, "storm over the harbour", k=20)
    for h in got:
        folder = built["a"] if h.index == str(built["ix_a"]) else built["b"]
        assert h.abspath.startswith(str(folder.resolve()))
        with Index.open(h.index or "", embedder=FakeEmbedder()) as own:
            assert own.passage(h.passage_id).passage.text == h.text


def test_another_model_is_refused(built: dict[str, Path], tmp_path: Path) -> None:
    other = tmp_path / "other"
    with Index.open(other, create=True, embedder=FakeEmbedder(name="other-model")) as ix:
        ix.add([str(built["b"])])
    with pytest.raises(IndexesMismatchError, match="other-model"):
        Indexes.open([built["ix_a"], other])


def test_a_missing_folder_is_the_single_index_error(built: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError) as many:
        Indexes.open([built["ix_a"], tmp_path / "nowhere"])
    with pytest.raises(IndexNotFoundError) as one:
        Index.open(tmp_path / "nowhere")
    assert str(many.value) == str(one.value)


# --------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def cli_built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """ix_a, ix_b and ix_ab built by the CLI with the fake default model; ix_other with
    another model."""
    root = tmp_path_factory.mktemp("many_cli")
    rng = random.Random(11)
    a, b = _write(root / "a", rng, 0, 10), _write(root / "b", rng, 10, 6)
    out = {"a": a, "b": b}
    for name, paths, extra in (
        ("ix_a", [a], []),
        ("ix_b", [b], []),
        ("ix_ab", [a, b], []),
        ("ix_other", [b], ["--model", "other-model"]),
    ):
        code, _, err = run_faked(
            "index", *map(str, paths), "--index", str(root / name), "-q", *extra
        )
        assert code == 0, err
        out[name] = root / name
    return out


def _json(*args: str) -> dict[str, object]:
    code, out, err = run_faked("query", *args, "--json")
    assert code == 0, err
    data: dict[str, object] = json.loads(out)
    return data


def test_cli_several_indexes_answer_as_one(cli_built: dict[str, Path]) -> None:
    a, b, ab = (str(cli_built[n]) for n in ("ix_a", "ix_b", "ix_ab"))
    many = _json("apples harvest", "-k", "8", "--index", a, "--index", b)
    one = _json("apples harvest", "-k", "8", "--index", ab)
    hits, ref = many["results"], one["results"]
    assert isinstance(hits, list) and isinstance(ref, list) and len(ref) == 8
    assert [(h["abspath"], h["paragraph"]) for h in hits] == [
        (h["abspath"], h["paragraph"]) for h in ref
    ]
    assert [h["score"] for h in hits] == pytest.approx([h["score"] for h in ref], abs=1e-6)
    assert {h["index"] for h in hits} <= {a, b} and all("index" not in h for h in ref)
    assert many["index"] == [a, b]


def test_cli_one_index_is_unchanged(cli_built: dict[str, Path]) -> None:
    ab = str(cli_built["ix_ab"])
    data = _json("apples harvest", "-k", "3", "--index", ab)
    assert data["index"] == ab
    with Index.open(ab) as ix:  # (fake model through run_faked only: compare lexically)
        want = ix.search("apples harvest", k=3, mode="lexical")
    lexical = _json("apples harvest", "-k", "3", "--mode", "lexical", "--index", ab)["results"]
    assert isinstance(lexical, list)
    assert [h["passage_id"] for h in lexical] == [h.passage_id for h in want]
    assert all("index" not in h for h in lexical)
    code, text, _ = run_faked("query", "apples harvest", "--index", ab, "--no-highlight")
    assert code == 0 and ", index " not in text


def test_cli_text_names_the_index_of_each_hit(cli_built: dict[str, Path]) -> None:
    a, b = str(cli_built["ix_a"]), str(cli_built["ix_b"])
    code, text, err = run_faked("query", "storm harbour", "-k", "6", "--index", a, "--index", b)
    assert code == 0, err
    assert text.count(", index ") == 6


@pytest.mark.parametrize("fmt", ["csv", "tsv", "markdown"])
def test_cli_tables_name_the_index_of_each_hit_only_for_several(
    cli_built: dict[str, Path], fmt: str
) -> None:
    """A passage id is unique within its index only: tables of several indexes' hits say
    which index; one index's tables keep their columns."""
    a, b, ab = (str(cli_built[n]) for n in ("ix_a", "ix_b", "ix_ab"))
    code, many, err = run_faked(
        "query", "storm harbour", "-k", "6", "--index", a, "--index", b, "--format", fmt
    )
    assert code == 0, err
    code, one, err = run_faked("query", "storm harbour", "-k", "6", "--index", ab, "--format", fmt)
    assert code == 0, err
    sep = {"csv": ",", "tsv": "\t", "markdown": " | "}[fmt]
    header = many.splitlines()[0]
    assert "index" in header.strip("| ").split(sep)
    assert "index" not in one.splitlines()[0].strip("| ").split(sep)
    rows = many.splitlines()[2 if fmt == "markdown" else 1 :]
    if fmt == "markdown":  # (its cells escape Markdown's marks)
        a, b = a.replace("_", "\\_"), b.replace("_", "\\_")
    assert len(rows) == 6 and all((a in r) or (b in r) for r in rows)


def test_cli_refuses_another_model_in_one_line(cli_built: dict[str, Path]) -> None:
    a, other = str(cli_built["ix_a"]), str(cli_built["ix_other"])
    code, out, err = run_faked("query", "storm", "--index", a, "--index", other)
    assert_one_line_error(code, out, err, "other-model", "all-MiniLM-L6-v2", other)


def test_cli_missing_folder_is_the_single_index_error(
    cli_built: dict[str, Path], tmp_path: Path
) -> None:
    missing = str(tmp_path / "nowhere")
    code, out, err = run_faked(
        "query", "storm", "--index", str(cli_built["ix_a"]), "--index", missing
    )
    line = assert_one_line_error(code, out, err, missing)
    single = run_faked("query", "storm", "--index", missing)
    assert line == assert_one_line_error(*single) and code == single[0]


@pytest.mark.parametrize(
    "options",
    [
        {"by_article": True},
        {"rerank": True},
        {"mode": "dense", "min_score": 0.3},
        {"mode": "dense", "rerank": True},
    ],
)
def test_other_options_answer_as_one_index(
    built: dict[str, Path], options: dict[str, object]
) -> None:
    got, want = _both(built, "orchard apples harvest", k=8, **options)
    assert want
    assert _ranking(got[:-1]) == _ranking(want[:-1])
    assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-6)
