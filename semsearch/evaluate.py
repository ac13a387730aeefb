"""Retrieval quality on BEIR-format test collections.

A dataset folder holds ``corpus.jsonl`` (``_id``, ``title``, ``text``),
``queries.jsonl`` (``_id``, ``text``) and ``qrels/<split>.tsv`` (header, then
``query-id  corpus-id  score``). Each corpus record is indexed as one document
through the normal pipeline; a document's score for a query is its best
passage's. Every judged query is run and scored with ir-measures (trec_eval
underneath): nDCG@10 (graded gains), Recall@10, Recall@100 and MRR@10.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .embed.backends import check_choice
from .errors import IndexCorruptError, SchemaVersionError, SourceError, UsageError
from .index import Index
from .ingest import RealPaths
from .ingest.passages import Unit
from .query import DEFAULT_MODE, check_text
from .query.fusion import Fusion
from .query.options import check_query
from .query.rerank import Rerank
from .storage.store import Store

METRICS = ("nDCG@10", "Recall@10", "Recall@100", "MRR@10")
DEPTH = 100  # documents retrieved per query (Recall@100 needs 100)
PROTOCOLS = ("paragraphs", "beir")


class DatasetError(SourceError):
    """A dataset folder is missing a file or holds a malformed line."""


@dataclass
class Dataset:
    """A BEIR-format collection, checked."""

    folder: str
    split: str
    corpus_path: str
    corpus_ids: set[str]
    queries: dict[str, str]  # judged queries only, in file order
    qrels: dict[str, dict[str, int]]


@dataclass
class EvalResult:
    dataset: str
    split: str
    mode: str
    model: str
    queries: int
    metrics: dict[str, float]
    seconds: float
    per_query: list[dict[str, Any]] = field(default_factory=list)
    run: dict[str, dict[str, float]] = field(default_factory=dict)  # query -> {doc: score}
    rerank: str | None = None  # the second stage's method, with its depth ("prf@50")

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "split": self.split,
            "mode": self.mode,
            "model": self.model,
            "rerank": self.rerank,
            "queries": self.queries,
            "metrics": self.metrics,
            "seconds": self.seconds,
        }


def _lines(path: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line, decoded strictly: a byte that is not UTF-8 is a
    `DatasetError` naming its line, not a traceback (a BOM on the first line is allowed)."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise DatasetError(
                    f"{path}:{lineno}: not valid UTF-8 (byte {raw[exc.start]:#04x} at column "
                    f"{exc.start + 1}): save the file as UTF-8"
                ) from None
            yield lineno, line.rstrip("\r\n")


def _jsonl(path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
        except RecursionError:  # e.g. 100,000 "[": json gives up on the nesting
            raise DatasetError(f"{path}:{lineno}: JSON nested too deeply to read") from None
        if not isinstance(record, dict) or "_id" not in record:
            raise DatasetError(f'{path}:{lineno}: expected a JSON object with an "_id"')
        yield lineno, record


def load_dataset(folder: str | os.PathLike[str], split: str = "test") -> Dataset:
    """Read and check a BEIR-format folder; raises `DatasetError` with file and line."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise DatasetError(f"{folder}: no such dataset folder")
    corpus = os.path.join(folder, "corpus.jsonl")
    queries_path = os.path.join(folder, "queries.jsonl")
    qrels_path = os.path.join(folder, "qrels", f"{split}.tsv")
    for path in (corpus, queries_path, qrels_path):
        if not os.path.isfile(path):
            raise DatasetError(
                f"{path} is missing: a BEIR dataset has corpus.jsonl, queries.jsonl and "
                f"qrels/{split}.tsv"
            )
    corpus_ids: set[str] = set()
    for lineno, record in _jsonl(corpus):
        if not isinstance(record.get("text", ""), str):
            raise DatasetError(f'{corpus}:{lineno}: "text" must be a string')
        doc_id = str(record["_id"])
        if doc_id in corpus_ids:
            raise DatasetError(f"{corpus}:{lineno}: document id {doc_id!r} appears twice")
        corpus_ids.add(doc_id)
    all_queries: dict[str, str] = {}
    for lineno, record in _jsonl(queries_path):
        text = record.get("text")
        if not isinstance(text, str) or not text.strip():
            raise DatasetError(f'{queries_path}:{lineno}: query without "text"')
        try:
            check_text(text)  # what search would refuse, refused before indexing anything
        except UsageError as exc:
            raise DatasetError(f"{queries_path}:{lineno}: {exc}") from None
        all_queries[str(record["_id"])] = text
    qrels: dict[str, dict[str, int]] = {}
    for lineno, line in _lines(qrels_path):
        parts = line.split("\t")
        if lineno == 1 and parts[:2] == ["query-id", "corpus-id"]:
            continue
        if not line.strip():
            continue
        if len(parts) != 3:
            raise DatasetError(
                f"{qrels_path}:{lineno}: expected query-id, corpus-id and score separated by tabs"
            )
        qid, did, score = parts
        try:
            grade = int(score)
        except ValueError:
            raise DatasetError(
                f"{qrels_path}:{lineno}: score {score!r} is not a whole number"
            ) from None
        if qid not in all_queries:
            raise DatasetError(f"{qrels_path}:{lineno}: query {qid!r} is not in queries.jsonl")
        if did not in corpus_ids:
            raise DatasetError(f"{qrels_path}:{lineno}: document {did!r} is not in corpus.jsonl")
        qrels.setdefault(qid, {})[did] = grade
    if not qrels:
        raise DatasetError(f"{qrels_path} judges no query")
    queries = {qid: text for qid, text in all_queries.items() if qid in qrels}
    return Dataset(folder, split, corpus, corpus_ids, queries, qrels)


def score_run(
    qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(mean of each metric, each query's metrics) for a run, with ir-measures."""
    import ir_measures
    from ir_measures import RR, R, nDCG

    measures = {"nDCG@10": nDCG @ 10, "Recall@10": R @ 10, "Recall@100": R @ 100, "MRR@10": RR @ 10}
    names = {str(m): name for name, m in measures.items()}
    # A query that retrieved nothing still counts (as zero), as in trec_eval -c.
    full_run = {qid: run.get(qid) or {"__none__": 0.0} for qid in qrels}
    per_query: dict[str, dict[str, float]] = {qid: {} for qid in qrels}
    for metric in ir_measures.iter_calc(list(measures.values()), qrels, full_run):
        per_query[metric.query_id][names[str(metric.measure)]] = float(metric.value)
    means = {
        name: round(sum(q.get(name, 0.0) for q in per_query.values()) / len(per_query), 4)
        for name in METRICS
    }
    return means, per_query


def evaluate(
    dataset: Dataset,
    index: Index,
    *,
    mode: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = 64,
    fusion: Fusion | None = None,
    correct: bool = True,
    rerank: bool | str | Rerank | None = None,
    rerank_depth: int | None = None,
) -> EvalResult:
    """Run every judged query of ``dataset`` against ``index`` (already holding its corpus)."""
    second = check_query("x", mode=mode, rerank=rerank, rerank_depth=rerank_depth).rerank
    started = time.perf_counter()
    qids = list(dataset.queries)
    run: dict[str, dict[str, float]] = {}
    hits_by_query: dict[str, list[str]] = {}
    step = max(batch_size, 1)
    for lo in range(0, len(qids), step):
        chunk = qids[lo : lo + step]
        results = index.search_many(
            [dataset.queries[q] for q in chunk],
            k=DEPTH,
            mode=mode,
            by_article=True,
            collapse=False,
            highlight=False,
            batch_size=batch_size,
            fusion=fusion,
            correct=correct,
            rerank=rerank,
            rerank_depth=rerank_depth,
        )
        for qid, hits in zip(chunk, results, strict=True):
            run[qid] = {h.key: h.score for h in hits}
            hits_by_query[qid] = [h.key for h in hits[:10]]
        if progress is not None:
            progress(min(lo + step, len(qids)), len(qids))
    means, per_query = score_run(dataset.qrels, run)
    details = [
        {
            "query_id": qid,
            "query": dataset.queries[qid],
            **per_query[qid],
            "relevant": sorted(dataset.qrels[qid]),
            "top10": hits_by_query[qid],
        }
        for qid in qids
    ]
    return EvalResult(
        dataset=os.path.basename(os.path.normpath(dataset.folder)),
        split=dataset.split,
        mode=mode or DEFAULT_MODE,
        rerank=None if second is None else f"{second.method}@{second.depth}",
        model=index.model,
        queries=len(qids),
        metrics=means,
        seconds=round(time.perf_counter() - started, 2),
        per_query=details,
        run=run,
    )


def check_reusable(index_dir: str, corpus_path: str) -> None:
    """Raise `UsageError` if the index in ``index_dir`` holds any file but ``corpus_path``.

    Evaluating with it would rank that file's passages too (and its record ids
    may be judged ids of this dataset), so the metrics would be wrong. An index
    that cannot be opened is left to `Index.open`, which says what is wrong.
    """
    if not Store.exists(index_dir):
        return
    try:
        store = Store.open(index_dir)
    except (IndexCorruptError, SchemaVersionError):
        return
    try:
        paths = RealPaths()  # files are stored by identity: where they really lie
        corpus = {paths.location(corpus_path), paths(corpus_path)}
        others = sorted(set(store.files()) - corpus)
    finally:
        store.close()
    if others:
        more = f" and {len(others) - 1} more" if len(others) > 1 else ""
        raise UsageError(
            f"the index in {index_dir} holds other files than this dataset's corpus "
            f"({others[0]}{more}): give --index a folder of its own for each dataset, "
            "or leave it out to use a temporary index"
        )


def run_eval(
    dataset_dir: str | os.PathLike[str],
    *,
    split: str = "test",
    mode: str | None = None,
    index_dir: str | os.PathLike[str] | None = None,
    protocol: str = "paragraphs",
    model: str | None = None,
    backend: str | None = None,
    precision: str | None = None,
    lexical: str | None = None,
    correct: bool = True,
    rerank: bool | str | Rerank | None = None,
    rerank_depth: int | None = None,
    index_progress: Callable[[int, int], None] | None = None,
    query_progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Index a dataset's corpus (in a temporary index unless ``index_dir``) and evaluate it.

    ``protocol="beir"`` indexes each document as one passage, title + " " +
    text, as published BEIR figures do; ``"paragraphs"`` uses semsearch's own
    passages (the default pipeline).

    An ``index_dir`` holds one dataset's corpus: one that already holds any
    other file (another dataset, or your own articles) is refused with a
    `UsageError` rather than mixed into the metrics or emptied. ``lexical`` is
    `Index.open`'s: on a kept index, another tokenizer rebuilds only its lexical index.
    """
    if protocol not in PROTOCOLS:
        raise UsageError(f"protocol must be one of {', '.join(PROTOCOLS)} (got {protocol!r})")
    check_query("x", mode=mode, rerank=rerank, rerank_depth=rerank_depth)  # before indexing
    backend_, precision_ = check_choice(backend, precision)
    dataset = load_dataset(dataset_dir, split)
    if index_dir is not None:
        check_reusable(os.fspath(index_dir), dataset.corpus_path)
    unit: Unit = "document" if protocol == "beir" else "paragraph"
    temporary = index_dir is None
    if index_dir is None:
        folder = tempfile.mkdtemp(prefix="semsearch-eval-")
        target = os.path.join(folder, "index")
    else:
        folder = target = os.fspath(index_dir)
    try:
        with Index.open(
            target,
            create=True,
            model=model,
            unit=unit,
            backend=backend_,
            precision=precision_,
            lexical=lexical,
        ) as index:
            index.add([dataset.corpus_path], progress=index_progress)
            return evaluate(
                dataset,
                index,
                mode=mode,
                progress=query_progress,
                correct=correct,
                rerank=rerank,
                rerank_depth=rerank_depth,
            )
    finally:
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)
