"""Retrieval quality of every mode on SciFact and Cranfield test queries, beside published figures.

    .venv/bin/python benchmarks/quality.py [--index-cache DIR] [--datasets scifact cranfield]

For each dataset it builds two indexes with all-MiniLM-L6-v2 (kept in
--index-cache to be reused): semsearch's default passages, and the published
BEIR protocol (each document one passage, title + " " + text, truncated at the
model's limit). Every mode is evaluated on both; nDCG@10 uses graded gains. For the default
hybrid mode it also checks what the fused scores mean on queries they were not
fitted on: of the top 10 articles of every test query, by band of score, how
many were relevant (any judged grade above 0).
Then every query-time and lexical option on the default index (semsearch passages):
typo correction off, the second stage (--rerank), each lexical tokenizer, with nDCG@10,
Recall@100, MRR@10, the warm cost of one query (median ms of single queries, k=10) and
the indexing cost per passage. The lexical index is switched back to what it was.
Prints markdown tables and writes them to benchmarks/results/quality.md (all protocols)
and quality_options.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from semsearch.evaluate import Dataset, evaluate, load_dataset, score_run
from semsearch.index import Index
from semsearch.query.lexical import TOKENIZERS
from semsearch.query.options import DEFAULT_FUSION, DEFAULT_MODE

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"

# Published nDCG@10 on the test queries, for the same model where one exists.
PUBLISHED = {
    ("scifact", "dense"): "0.645 (all-MiniLM-L6-v2, MTEB / sentence-transformers)",
    ("scifact", "lexical"): "0.665 (BM25, BEIR paper, Elasticsearch)",
    ("scifact", "hybrid"): "0.713 (txtai hybrid); 0.7175 (Qdrant, RRF)",
}
PROTOCOLS = {"semsearch passages": "paragraph", "BEIR protocol": "document"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--index-cache", help="folder for the indexes, reused between runs")
    ap.add_argument("--datasets", nargs="+", default=["scifact", "cranfield"])
    ap.add_argument("--json", action="store_true", help="also print the rows as JSON")
    ap.add_argument("--timed-queries", type=int, default=100, help="queries timed one by one")
    ap.add_argument("--no-options", action="store_true", help="skip the table of options")
    ap.add_argument(
        "--protocols", nargs="+", choices=list(PROTOCOLS), default=list(PROTOCOLS),
        help="which indexes of each dataset (the options table needs 'semsearch passages')",
    )  # fmt: skip
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cache = Path(args.index_cache or tempfile.mkdtemp(prefix="semsearch-quality-"))
    rows = []
    option_rows: list[dict[str, object]] = []
    calibrations: list[tuple[str, list[tuple[float, bool]]]] = []
    for name in args.datasets:
        dataset = load_dataset(DATA / name, "test")
        for protocol, unit in PROTOCOLS.items():
            if protocol not in args.protocols:
                continue
            started = time.perf_counter()
            with Index.open(cache / f"{name}-{unit}", create=True, unit=unit) as index:
                report = index.add([dataset.corpus_path])
                index_s = time.perf_counter() - started
                for mode in ("dense", "lexical", "hybrid"):
                    result = evaluate(dataset, index, mode=mode)
                    if mode == DEFAULT_MODE and unit == "paragraph":
                        calibrations.append((name, top_hits(dataset, result.run)))
                    rows.append(
                        {
                            "dataset": name,
                            "protocol": protocol,
                            "mode": mode,
                            "queries": result.queries,
                            **result.metrics,
                            "passages": report.passages_added + report.passages_unchanged,
                            "index_s": round(index_s, 1),
                            "query_s": result.seconds,
                        }
                    )
                    print(json.dumps(rows[-1]), flush=True)
                if unit == "paragraph" and not args.no_options:
                    passages = report.passages_added + report.passages_unchanged
                    per_passage = 1000 * index_s / passages if report.passages_added else None
                    for row in options(name, dataset, index, per_passage, args.timed_queries):
                        option_rows.append(row)
                        print(json.dumps(row), flush=True)
    if "scifact" in args.datasets:
        rows.append(bm25_as_published(load_dataset(DATA / "scifact", "test")))
        print(json.dumps(rows[-1]), flush=True)
    table = render(rows) + "\n\n" + render_calibration(calibrations)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if set(args.protocols) == set(PROTOCOLS):  # the full table only: a part would hide rows
        (RESULTS / "quality.md").write_text(table + "\n")
    if option_rows:
        options_table = render_options(option_rows)
        (RESULTS / "quality_options.md").write_text(options_table + "\n")
        table += "\n\n" + options_table
    print(table)
    if args.json:
        print(json.dumps(rows))


def warm_ms(
    index: Index, dataset: Dataset, n: int, mode: str, **options: object
) -> float:
    """Median ms of one query at a time (k=10, by article, as eval asks), after a warm-up."""
    texts = list(dataset.queries.values())[:n]
    for t in texts[:5]:
        index.search(t, k=10, mode=mode, by_article=True, **options)  # type: ignore[arg-type]
    times = []
    for t in texts:
        started = time.perf_counter()
        index.search(t, k=10, mode=mode, by_article=True, **options)  # type: ignore[arg-type]
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


# (label, mode, search options) of the query-time options measured on the default index
QUERY_OPTIONS: list[tuple[str, str, dict[str, object]]] = [
    ("hybrid (default)", "hybrid", {}),
    ("hybrid --no-correct", "hybrid", {"correct": False}),
    ("hybrid --rerank", "hybrid", {"rerank": True}),
    ("dense", "dense", {}),
    ("dense --rerank", "dense", {"rerank": True}),
    ("lexical", "lexical", {}),
]


def options(
    name: str, dataset: Dataset, index: Index, index_ms: float | None, timed: int
) -> list[dict[str, object]]:
    """One row per option: its metrics, its warm cost a query, its indexing cost a passage."""
    out: list[dict[str, object]] = []

    def row(label: str, mode: str, opts: dict[str, object], idx: Index, cost: float | None) -> None:
        result = evaluate(dataset, idx, mode=mode, **opts)  # type: ignore[arg-type]
        out.append(
            {
                "dataset": name,
                "option": label,
                "queries": result.queries,
                **result.metrics,
                "ms_query": round(warm_ms(idx, dataset, timed, mode, **opts), 2),
                "ms_passage": None if cost is None else round(cost, 3),
            }
        )

    for label, mode, opts in QUERY_OPTIONS:
        row(label, mode, opts, index, index_ms)
    # what was asked ("auto"), not what it chose: switching back to "porter" would record
    # a choice the index never had
    folder, was = index.folder, index.info().lexical_requested
    try:
        for tokenizer in TOKENIZERS:
            started = time.perf_counter()
            with Index.open(folder, lexical=tokenizer) as switched:
                switched.add([dataset.corpus_path])  # rebuilds the lexical index alone
                cost = 1000 * (time.perf_counter() - started) / max(switched.info().passages, 1)
                for mode in ("lexical", "hybrid"):
                    row(f"{mode} --lexical {tokenizer}", mode, {}, switched, cost)
    finally:  # an interrupted run must not leave the cached index (--index-cache) on trigram
        with Index.open(folder, lexical=was) as back:
            back.add([dataset.corpus_path])
    return out


def render_options(rows: list[dict[str, object]]) -> str:
    lines = [
        "Options on the default index (semsearch passages, all-MiniLM-L6-v2), test queries. "
        "ms a query: median of single warm queries (k=10); ms a passage: indexing cost "
        "(for a tokenizer, building its lexical index from stored passages; the embedding "
        "cost is the default's).",
        "",
        "| dataset | option | nDCG@10 | Recall@100 | MRR@10 | ms a query | ms a passage |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cost = "" if r["ms_passage"] is None else f"{r['ms_passage']:.3f}"
        lines.append(
            f"| {r['dataset']} ({r['queries']} queries) | {r['option']} | {r['nDCG@10']:.4f} | "
            f"{r['Recall@100']:.4f} | {r['MRR@10']:.4f} | {r['ms_query']:.1f} | {cost} |"
        )
    return "\n".join(lines)


def bm25_as_published(dataset: Dataset) -> dict[str, object]:
    """FTS5 BM25 with the analyzer of the published figure: no stemming, no stop words.

    The BEIR paper's BM25 is Elasticsearch with its standard analyzer (lower
    case, no stemming). semsearch stems (Porter) and drops stop words from
    queries; this row checks that the BM25 underneath reproduces the published
    number when analysed the same way.
    """
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE passages_fts USING fts5(body, tokenize='unicode61')")
    keys = []
    with open(dataset.corpus_path, encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            record = json.loads(line)
            keys.append(str(record["_id"]))
            body = f"{record.get('title', '')} {record.get('text', '')}"
            db.execute("INSERT INTO passages_fts(rowid, body) VALUES (?, ?)", (n, body))
    run = {}
    for qid, text in dataset.queries.items():
        words = [w.lower() for w in re.findall(r"\w+", text)]
        expr = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
        hits = db.execute(
            "SELECT rowid, bm25(passages_fts) FROM passages_fts WHERE passages_fts MATCH ? "
            "ORDER BY bm25(passages_fts) LIMIT 100",
            (expr,),
        ).fetchall()
        run[qid] = {keys[i]: -s for i, s in hits}
    metrics, _ = score_run(dataset.qrels, run)
    return {
        "dataset": "scifact",
        "protocol": "BEIR protocol, no stemming (as published)",
        "mode": "lexical",
        "queries": len(dataset.queries),
        **metrics,
    }


BANDS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def top_hits(dataset: Dataset, run: dict[str, dict[str, float]]) -> list[tuple[float, bool]]:
    """(score, relevant) of the top 10 articles of every query."""
    out = []
    for qid, docs in run.items():
        judged = dataset.qrels.get(qid, {})
        best = sorted(docs.items(), key=lambda kv: -kv[1])[:10]
        out += [(score, judged.get(doc, 0) > 0) for doc, score in best]
    return out


def render_calibration(calibrations: list[tuple[str, list[tuple[float, bool]]]]) -> str:
    """Share of relevant articles by band of hybrid score, one column pair per dataset."""
    if not calibrations:
        return ""
    names = [name for name, _ in calibrations]
    lines = [
        f"Hybrid scores on the test queries ({DEFAULT_FUSION.method} fusion, fitted on SciFact "
        "train): of the top 10 articles of every query, how many fall in each band of score "
        "and what share of them was relevant.",
        "",
        "| fused score | " + " | ".join(f"{n}: articles | {n}: relevant" for n in names) + " |",
        "|---|" + "---|---|" * len(names),
    ]
    for lo, hi in itertools.pairwise(BANDS):
        cells = []
        for _, hits in calibrations:
            inside = [rel for s, rel in hits if lo <= s < hi or (hi == 1.0 and s == 1.0)]
            share = f"{sum(inside) / len(inside):.3f}" if inside else "-"
            cells.append(f"{len(inside)} | {share}")
        lines.append(f"| {lo:.2f}-{hi:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(rows: list[dict[str, object]]) -> str:
    lines = [
        f"Model all-MiniLM-L6-v2; default mode {DEFAULT_MODE}; hybrid fusion "
        f"{DEFAULT_FUSION.method} (alpha {DEFAULT_FUSION.alpha}, scale {DEFAULT_FUSION.scale}, "
        f"shift {DEFAULT_FUSION.shift}; chosen on SciFact train).",
        "",
        "| dataset | passages | mode | nDCG@10 | Recall@10 | Recall@100 | MRR@10 "
        "| published nDCG@10 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        published = PUBLISHED.get((str(r["dataset"]), str(r["mode"])), "")
        if not str(r["protocol"]).startswith("BEIR protocol") and published:
            published = ""  # published figures use the BEIR protocol
        lines.append(
            f"| {r['dataset']} ({r['queries']} queries) | {r['protocol']} | {r['mode']} | "
            f"{r['nDCG@10']:.4f} | {r['Recall@10']:.4f} | {r['Recall@100']:.4f} | "
            f"{r['MRR@10']:.4f} | {published} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
