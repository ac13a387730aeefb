"""Evaluation on BEIR-format collections: metrics, dataset checks, library and command line."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

from semsearch.errors import SemsearchError, SourceError, UsageError
from semsearch.evaluate import (
    METRICS,
    DatasetError,
    evaluate,
    load_dataset,
    run_eval,
    score_run,
)
from semsearch.index import Index
from semsearch.storage.store import Store
from tests.cli_helpers import assert_one_line_error, run
from tests.fakes import FakeEmbedder

# --------------------------------------------------------------------------- metrics

QRELS = {"q1": {"d1": 1, "d2": 2}, "q2": {"d9": 1}}
RUN = {"q1": {"d2": 3.0, "d3": 2.0, "d1": 1.0}, "q2": {"d5": 1.0}}
# trec_eval's nDCG: linear gains, log2(rank + 1) discounts.
NDCG_Q1 = (2 / math.log2(2) + 1 / math.log2(4)) / (2 / math.log2(2) + 1 / math.log2(3))


def test_score_run_on_a_hand_checked_example() -> None:
    means, per_query = score_run(QRELS, RUN)
    assert set(per_query) == {"q1", "q2"}
    assert set(per_query["q1"]) == set(METRICS)
    assert per_query["q1"]["nDCG@10"] == pytest.approx(NDCG_Q1, abs=1e-4)
    assert per_query["q1"]["Recall@10"] == pytest.approx(1.0)
    assert per_query["q1"]["Recall@100"] == pytest.approx(1.0)
    assert per_query["q1"]["MRR@10"] == pytest.approx(1.0)
    for name in METRICS:
        assert per_query["q2"][name] == 0.0
    assert set(means) == set(METRICS)
    assert means["nDCG@10"] == pytest.approx(round(NDCG_Q1 / 2, 4), abs=1e-4)
    assert means["nDCG@10"] == pytest.approx(0.4751, abs=1e-4)
    assert means["Recall@10"] == pytest.approx(0.5, abs=1e-4)
    assert means["Recall@100"] == pytest.approx(0.5, abs=1e-4)
    assert means["MRR@10"] == pytest.approx(0.5, abs=1e-4)


def test_graded_gains_matter() -> None:
    # The same run with the grades swapped: the grade-1 document is now first.
    swapped = {"q1": {"d1": 2, "d2": 1}}
    _, per_query = score_run(swapped, {"q1": RUN["q1"]})
    want = (1 / math.log2(2) + 2 / math.log2(4)) / (2 / math.log2(2) + 1 / math.log2(3))
    assert per_query["q1"]["nDCG@10"] == pytest.approx(want, abs=1e-4)
    assert per_query["q1"]["nDCG@10"] < NDCG_Q1


def test_a_query_absent_from_the_run_counts_as_zero() -> None:
    qrels = {**QRELS, "q3": {"d7": 1}}
    means, per_query = score_run(qrels, RUN)
    assert set(per_query) == {"q1", "q2", "q3"}
    assert all(per_query["q3"][name] == 0.0 for name in METRICS)
    assert means["MRR@10"] == pytest.approx(round(1 / 3, 4), abs=1e-4)
    assert means["Recall@10"] == pytest.approx(round(1 / 3, 4), abs=1e-4)
    assert means["nDCG@10"] == pytest.approx(round(NDCG_Q1 / 3, 4), abs=1e-4)
    # An empty ranking counts as zero as well.
    means, per_query = score_run(qrels, {**RUN, "q3": {}})
    assert all(per_query["q3"][name] == 0.0 for name in METRICS)
    assert means["MRR@10"] == pytest.approx(round(1 / 3, 4), abs=1e-4)


def test_mrr_at_10_ignores_a_first_relevant_document_at_rank_11() -> None:
    ranking = {f"n{i}": 100.0 - i for i in range(10)}  # ten non-relevant documents first
    ranking["rel"] = 50.0  # rank 11
    _, per_query = score_run({"q": {"rel": 1}}, {"q": ranking})
    assert per_query["q"]["MRR@10"] == 0.0
    assert per_query["q"]["Recall@10"] == 0.0
    assert per_query["q"]["Recall@100"] == pytest.approx(1.0)
    assert per_query["q"]["nDCG@10"] == 0.0


def test_mrr_at_10_is_the_reciprocal_rank() -> None:
    ranking = {"n1": 3.0, "n2": 2.0, "rel": 1.0}
    _, per_query = score_run({"q": {"rel": 1, "other": 1}}, {"q": ranking})
    assert per_query["q"]["MRR@10"] == pytest.approx(1 / 3)
    assert per_query["q"]["Recall@10"] == pytest.approx(0.5)


# --------------------------------------------------------------------------- datasets

CORPUS = [
    {"_id": "d1", "title": "Zebra migration", "text": "Herds of zebras cross the Mara river."},
    {
        "_id": "d2",
        "title": "Quantum dots",
        "text": "Semiconductor nanocrystals glow under ultraviolet lamps.",
    },
    {
        "_id": "d3",
        "title": "Sourdough starter",
        "text": "A starter ferments flour with wild yeast.",
    },
    {
        "_id": "d4",
        "title": "Glacier retreat",
        "text": "Alpine glaciers shrank by a third.\n\nMeltwater lakes formed below the ice.",
    },
    {"_id": "d5", "title": "Violin varnish", "text": "Stradivari coated violins in amber resin."},
]
QUERIES = [
    {"_id": "q1", "text": "why do zebras cross the mara"},
    {"_id": "q2", "text": "nanocrystals that glow"},
    {"_id": "q3", "text": "sourdough yeast"},
    {"_id": "q4", "text": "meltwater from glaciers"},
    {"_id": "q5", "text": "varnish on violins"},  # judged in train only
]
TEST_QRELS = [("q1", "d1", 1), ("q2", "d2", 1), ("q3", "d3", 2), ("q4", "d4", 1)]
TRAIN_QRELS = [("q5", "d5", 1)]
RELEVANT = {q: d for q, d, _ in TEST_QRELS}


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def write_qrels(path: Path, rows: list[tuple[str, str, int]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, d, s in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def make_dataset(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "corpus.jsonl", CORPUS)
    write_jsonl(folder / "queries.jsonl", QUERIES)
    write_qrels(folder / "qrels" / "test.tsv", TEST_QRELS)
    write_qrels(folder / "qrels" / "train.tsv", TRAIN_QRELS)
    return folder


@pytest.fixture
def dataset_dir(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "tiny")


def test_load_dataset_keeps_only_judged_queries(dataset_dir: Path) -> None:
    ds = load_dataset(dataset_dir)
    assert ds.split == "test"
    assert list(ds.queries) == ["q1", "q2", "q3", "q4"]
    assert ds.queries["q1"] == "why do zebras cross the mara"
    assert ds.corpus_ids == {"d1", "d2", "d3", "d4", "d5"}
    assert ds.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 2}, "q4": {"d4": 1}}
    assert Path(ds.corpus_path) == dataset_dir / "corpus.jsonl"


def test_load_dataset_reads_another_split(dataset_dir: Path) -> None:
    ds = load_dataset(dataset_dir, split="train")
    assert ds.split == "train"
    assert list(ds.queries) == ["q5"]
    assert ds.qrels == {"q5": {"d5": 1}}


def test_load_dataset_without_header_and_with_a_graded_zero(dataset_dir: Path) -> None:
    (dataset_dir / "qrels" / "test.tsv").write_text("q1\td1\t1\nq1\td2\t0\n", encoding="utf-8")
    ds = load_dataset(dataset_dir)
    assert ds.qrels == {"q1": {"d1": 1, "d2": 0}}
    assert list(ds.queries) == ["q1"]


def assert_dataset_error(folder: Path, *needles: str, split: str = "test") -> DatasetError:
    with pytest.raises(DatasetError) as info:
        load_dataset(folder, split=split)
    message = str(info.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, (needle, message)
    assert isinstance(info.value, SemsearchError)
    assert isinstance(info.value, SourceError)
    return info.value


@pytest.mark.parametrize(
    ("missing", "needle"),
    [
        ("corpus.jsonl", "corpus.jsonl"),
        ("queries.jsonl", "queries.jsonl"),
        ("qrels/test.tsv", "test.tsv"),
    ],
)
def test_a_missing_file_is_named(dataset_dir: Path, missing: str, needle: str) -> None:
    (dataset_dir / missing).unlink()
    assert_dataset_error(dataset_dir, needle, "missing")


def test_a_missing_split_is_named(dataset_dir: Path) -> None:
    assert_dataset_error(dataset_dir, "dev.tsv", split="dev")


def test_a_folder_that_does_not_exist(tmp_path: Path) -> None:
    assert_dataset_error(tmp_path / "nowhere", "nowhere")


def test_a_bad_json_line_in_the_corpus(dataset_dir: Path) -> None:
    lines = (dataset_dir / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    lines[1] = '{"_id": "d2", "text": "unterminated'
    (dataset_dir / "corpus.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert_dataset_error(dataset_dir, "corpus.jsonl:2")


def test_a_corpus_record_without_id(dataset_dir: Path) -> None:
    records = [dict(r) for r in CORPUS]
    del records[2]["_id"]
    write_jsonl(dataset_dir / "corpus.jsonl", records)
    assert_dataset_error(dataset_dir, "corpus.jsonl:3", "_id")


def test_a_query_record_without_id(dataset_dir: Path) -> None:
    write_jsonl(dataset_dir / "queries.jsonl", [QUERIES[0], {"text": "no id here"}])
    assert_dataset_error(dataset_dir, "queries.jsonl:2", "_id")


def test_a_json_line_that_is_not_an_object(dataset_dir: Path) -> None:
    with open(dataset_dir / "queries.jsonl", "a", encoding="utf-8") as fh:
        fh.write('["q9", "a list"]\n')
    assert_dataset_error(dataset_dir, f"queries.jsonl:{len(QUERIES) + 1}")


def test_duplicate_document_ids(dataset_dir: Path) -> None:
    write_jsonl(dataset_dir / "corpus.jsonl", [*CORPUS[:3], {**CORPUS[4], "_id": "d2"}])
    assert_dataset_error(dataset_dir, "corpus.jsonl:4", "d2", "twice")


def test_qrels_naming_an_unknown_document(dataset_dir: Path) -> None:
    write_qrels(dataset_dir / "qrels" / "test.tsv", [("q1", "d1", 1), ("q2", "d404", 1)])
    assert_dataset_error(dataset_dir, "test.tsv:3", "d404")


def test_qrels_naming_an_unknown_query(dataset_dir: Path) -> None:
    write_qrels(dataset_dir / "qrels" / "test.tsv", [("q404", "d1", 1)])
    assert_dataset_error(dataset_dir, "test.tsv:2", "q404")


def test_a_qrels_line_with_two_columns(dataset_dir: Path) -> None:
    (dataset_dir / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\n", encoding="utf-8"
    )
    assert_dataset_error(dataset_dir, "test.tsv:3")


@pytest.mark.parametrize("score", ["1.5", "high", ""])
def test_a_non_integer_score(dataset_dir: Path, score: str) -> None:
    (dataset_dir / "qrels" / "test.tsv").write_text(
        f"query-id\tcorpus-id\tscore\nq1\td1\t{score}\n", encoding="utf-8"
    )
    assert_dataset_error(dataset_dir, "test.tsv:2")


def test_qrels_judging_nothing(dataset_dir: Path) -> None:
    (dataset_dir / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n", encoding="utf-8"
    )
    assert_dataset_error(dataset_dir, "test.tsv")


# --------------------------------------------------------------------------- evaluate()


def build(dataset_dir: Path, folder: Path, unit: str) -> Index:
    index = Index.open(folder, create=True, embedder=FakeEmbedder(), unit=unit)
    index.add([dataset_dir / "corpus.jsonl"])
    return index


@pytest.mark.parametrize("unit", ["paragraph", "document"])
def test_evaluate_lexical_finds_every_relevant_document_first(
    dataset_dir: Path, tmp_path: Path, unit: str
) -> None:
    ds = load_dataset(dataset_dir)
    with build(dataset_dir, tmp_path / "index", unit) as index:
        result = evaluate(ds, index, mode="lexical")
    assert result.mode == "lexical"
    assert result.split == "test"
    assert result.dataset == "tiny"
    assert result.model == "fake-embedder"
    assert result.queries == 4
    assert set(result.metrics) == set(METRICS)
    assert result.metrics["MRR@10"] == 1.0
    assert result.metrics["Recall@10"] == 1.0
    assert result.metrics["Recall@100"] == 1.0
    assert result.metrics["nDCG@10"] == 1.0
    assert set(result.to_dict()) == {
        "dataset",
        "split",
        "mode",
        "rerank",
        "model",
        "queries",
        "metrics",
        "seconds",
    }
    assert [row["query_id"] for row in result.per_query] == ["q1", "q2", "q3", "q4"]
    for row in result.per_query:
        assert set(METRICS) <= set(row)
        assert row["relevant"] == [RELEVANT[row["query_id"]]]
        assert row["top10"][0] == RELEVANT[row["query_id"]]
        assert len(row["top10"]) == len(set(row["top10"])) <= 10  # one entry per document
        assert row["MRR@10"] == 1.0
        assert row["query"] == ds.queries[row["query_id"]]


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_evaluate_dense_and_hybrid_metrics_are_in_range(
    dataset_dir: Path, tmp_path: Path, mode: str
) -> None:
    ds = load_dataset(dataset_dir)
    with build(dataset_dir, tmp_path / "index", "paragraph") as index:
        result = evaluate(ds, index, mode=mode, batch_size=3)
    assert result.mode == mode
    assert len(result.per_query) == 4
    for name in METRICS:
        assert 0.0 <= result.metrics[name] <= 1.0
        mean = sum(row[name] for row in result.per_query) / 4
        assert result.metrics[name] == pytest.approx(mean, abs=1e-4)
    for row in result.per_query:
        assert set(row["top10"]) <= {r["_id"] for r in CORPUS}
        assert len(row["top10"]) == len(set(row["top10"]))


def test_evaluate_reports_progress(dataset_dir: Path, tmp_path: Path) -> None:
    ds = load_dataset(dataset_dir)
    seen: list[tuple[int, int]] = []
    with build(dataset_dir, tmp_path / "index", "paragraph") as index:
        evaluate(ds, index, mode="lexical", batch_size=3, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(3, 4), (4, 4)]


def test_document_unit_gives_one_passage_per_record(dataset_dir: Path, tmp_path: Path) -> None:
    fake = FakeEmbedder()
    with Index.open(tmp_path / "doc", create=True, embedder=fake, unit="document") as index:
        index.add([dataset_dir / "corpus.jsonl"])
        assert index.info().chunking["unit"] == "document"
        hits = index.search("glaciers", k=5, mode="lexical", highlight=False)
    # d4's two paragraphs are joined by a space; the title comes first (the BEIR protocol).
    bodies = {r["_id"]: r["text"].replace("\n\n", " ") for r in CORPUS}
    assert fake.embedded == [r["title"] + " " + bodies[r["_id"]] for r in CORPUS]
    store = Store.open(str(tmp_path / "doc"))
    try:
        assert store.passage_count() == len(CORPUS)
        assert store.lexical_count() == len(CORPUS)
        rows = store.passages(int(i) for i in store.passage_id_array())
    finally:
        store.close()
    assert sorted(row.key for row in rows.values()) == sorted(bodies)
    for row in rows.values():
        assert row.text.endswith(bodies[row.key])
    assert [h.key for h in hits] == ["d4"]

    with build(dataset_dir, tmp_path / "para", "paragraph") as index:
        assert index.info().chunking["unit"] == "paragraph"
        assert index.info().passages == len(CORPUS) + 1  # d4 has two paragraphs


# --------------------------------------------------------------------------- command line


@pytest.mark.slow
def test_cli_eval_json_and_per_query(dataset_dir: Path, tmp_path: Path) -> None:
    per_query = tmp_path / "per_query.jsonl"
    code, out, err = run(
        "eval", str(dataset_dir), "--json", "--mode", "lexical", "--per-query", str(per_query)
    )
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    data = json.loads(lines[0])
    assert set(data) == {
        "dataset", "split", "mode", "rerank", "model", "queries", "metrics", "seconds"
    }  # fmt: skip
    assert set(data["metrics"]) == {"nDCG@10", "Recall@10", "Recall@100", "MRR@10"}
    assert data["metrics"]["MRR@10"] == 1.0
    assert data["metrics"]["Recall@10"] == 1.0
    assert data["mode"] == "lexical"
    assert data["split"] == "test"
    assert data["dataset"] == "tiny"
    assert data["queries"] == 4
    assert "MiniLM" in data["model"]
    rows = [json.loads(line) for line in per_query.read_text(encoding="utf-8").splitlines()]
    assert [r["query_id"] for r in rows] == ["q1", "q2", "q3", "q4"]
    for r in rows:
        assert r["top10"][0] == RELEVANT[r["query_id"]]
        assert r["MRR@10"] == 1.0


@pytest.mark.slow
def test_cli_eval_beir_protocol_and_text_output(dataset_dir: Path) -> None:
    code, out, err = run("eval", str(dataset_dir), "--protocol", "beir", "--mode", "lexical")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith("tiny (test, 4 queries), lexical")
    figures = dict(line.split() for line in lines[1:])
    assert set(figures) == set(METRICS)
    assert float(figures["MRR@10"]) == 1.0
    assert float(figures["Recall@10"]) == 1.0


def test_cli_eval_malformed_dataset_is_one_line(dataset_dir: Path) -> None:
    lines = (dataset_dir / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    lines[1] = "{not json"
    (dataset_dir / "corpus.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out, err = run("eval", str(dataset_dir), "--json", "--mode", "lexical")
    assert_one_line_error(code, out, err, "corpus.jsonl:2", exit_code=2)
    assert out == ""


def test_cli_eval_missing_qrels_is_one_line(dataset_dir: Path) -> None:
    code, out, err = run("eval", str(dataset_dir), "--split", "dev")
    assert_one_line_error(code, out, err, "dev.tsv", exit_code=2)


def test_cli_eval_unknown_protocol_is_one_line(dataset_dir: Path) -> None:
    code, out, err = run("eval", str(dataset_dir), "--protocol", "trec")
    assert_one_line_error(code, out, err, "protocol", "trec", exit_code=2)


def test_cli_eval_unknown_mode_is_one_line(dataset_dir: Path) -> None:
    code, out, err = run("eval", str(dataset_dir), "--mode", "fuzzy")
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "mode" in lines[0]
    assert "fuzzy" in lines[0]
    assert out == ""


# --------------------------------------------------------------------------- bad bytes, deep JSON


@pytest.mark.parametrize("name", ["corpus.jsonl", "queries.jsonl", "qrels/test.tsv"])
def test_a_byte_that_is_not_utf8_names_file_and_line(dataset_dir: Path, name: str) -> None:
    """Was a UnicodeDecodeError traceback."""
    path = dataset_dir / name
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b"d", b"d\xff", 1)  # corrupt the second line only
    path.write_bytes(b"".join(lines))
    error = assert_dataset_error(dataset_dir, f"{name.split('/')[-1]}:2", "not valid UTF-8")
    assert "0xff" in str(error)


@pytest.mark.parametrize("name", ["corpus.jsonl", "queries.jsonl"])
def test_json_nested_too_deeply_names_file_and_line(dataset_dir: Path, name: str) -> None:
    """100,000 "[" on a line was a RecursionError traceback."""
    with open(dataset_dir / name, "a", encoding="utf-8") as fh:
        fh.write("[" * 100_000 + "\n")
    lines = len((dataset_dir / name).read_text(encoding="utf-8").splitlines())
    assert_dataset_error(dataset_dir, f"{name}:{lines}", "nested too deeply")


def test_a_bom_and_windows_line_ends_are_read(dataset_dir: Path) -> None:
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        path = dataset_dir / name
        text = path.read_text(encoding="utf-8").replace("\n", "\r\n")
        path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    ds = load_dataset(dataset_dir)
    assert ds.corpus_ids == {"d1", "d2", "d3", "d4", "d5"}
    assert list(ds.queries) == ["q1", "q2", "q3", "q4"]
    assert ds.queries["q1"] == "why do zebras cross the mara"
    assert ds.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 2}, "q4": {"d4": 1}}


@pytest.mark.parametrize(
    ("text", "needle"),
    [("\ud800 zebras", "not valid UTF-8"), ("zebra " * 2_000, "10,000")],
)
def test_a_query_search_would_refuse_is_refused_before_indexing(
    dataset_dir: Path, text: str, needle: str
) -> None:
    """Was a TypeError (lone surrogate) after indexing the whole corpus, or silently searched."""
    write_jsonl(dataset_dir / "queries.jsonl", [QUERIES[0], {"_id": "q2", "text": text}])
    write_qrels(dataset_dir / "qrels" / "test.tsv", [("q1", "d1", 1), ("q2", "d2", 1)])
    assert_dataset_error(dataset_dir, "queries.jsonl:2", needle)


def test_cli_eval_bad_bytes_and_deep_json_are_one_line(dataset_dir: Path) -> None:
    corpus = dataset_dir / "corpus.jsonl"
    original = corpus.read_bytes()
    corpus.write_bytes(original + b'{"_id": "d9", "text": "caf\xe9"}\n')
    code, out, err = run("eval", str(dataset_dir), "--mode", "lexical")
    assert_one_line_error(code, out, err, "corpus.jsonl:6", "UTF-8", exit_code=2)
    corpus.write_bytes(original + b"[" * 100_000 + b"\n")
    code, out, err = run("eval", str(dataset_dir), "--mode", "lexical")
    assert_one_line_error(code, out, err, "corpus.jsonl:6", "nested too deeply", exit_code=2)


# --------------------------------------------------------------------------- --index reused


def other_dataset(tmp_path: Path) -> Path:
    folder = tmp_path / "other"
    folder.mkdir(parents=True)
    write_jsonl(folder / "corpus.jsonl", [{"_id": "d1", "text": "Zebras of another corpus."}])
    write_jsonl(folder / "queries.jsonl", QUERIES[:1])
    write_qrels(folder / "qrels" / "test.tsv", [("q1", "d1", 1)])
    return folder


def test_an_index_of_another_dataset_is_refused_and_left_alone(
    dataset_dir: Path, tmp_path: Path
) -> None:
    """Reusing --index for another dataset silently mixed both corpora into the metrics
    (and its d1 could be taken for this dataset's d1)."""
    folder = tmp_path / "index"
    build(dataset_dir, folder, "paragraph").close()
    with pytest.raises(UsageError) as info:
        run_eval(other_dataset(tmp_path), index_dir=folder, mode="lexical")
    message = str(info.value)
    assert "other files than this dataset's corpus" in message
    assert os.path.abspath(dataset_dir / "corpus.jsonl") in message
    with Index.open(folder) as index:
        assert index.info().files == 1
        assert index.info().documents == len(CORPUS)
    code, out, err = run("eval", str(other_dataset(tmp_path / "again")), "--index", str(folder))
    assert_one_line_error(code, out, err, "--index", "a folder of its own", exit_code=2)


def test_an_index_of_your_own_articles_is_refused(tmp_path: Path, corpus: Path) -> None:
    folder = tmp_path / "mine"
    with Index.open(folder, create=True, embedder=FakeEmbedder()) as index:
        index.add([corpus])
    with pytest.raises(UsageError, match="and 2 more"):
        run_eval(other_dataset(tmp_path), index_dir=folder, mode="lexical")
    with Index.open(folder) as index:
        assert index.info().files == 3


def test_the_same_dataset_through_a_link_reuses_its_index(
    dataset_dir: Path, tmp_path: Path
) -> None:
    """Regression: files are stored by their real path, the check compared the path as
    spelled, so a dataset reached through a linked folder refused its own index."""
    folder = tmp_path / "index"
    build(dataset_dir, folder, "paragraph").close()
    link = tmp_path / "link-to-dataset"
    link.symlink_to(dataset_dir)
    result = run_eval(link, index_dir=folder, mode="lexical")
    assert result.metrics["MRR@10"] == 1.0
    with Index.open(folder) as index:
        assert index.info().files == 1


def test_the_same_dataset_reuses_its_index(dataset_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "index"
    build(dataset_dir, folder, "paragraph").close()
    result = run_eval(dataset_dir, index_dir=folder, mode="lexical")
    assert result.metrics["MRR@10"] == 1.0
    assert result.queries == 4
