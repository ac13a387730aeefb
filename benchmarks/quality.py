"""Retrieval quality of every mode on SciFact and Cranfield test queries, beside published figures.

    .venv/bin/python benchmarks/quality.py [--index-cache DIR] [--datasets scifact cranfield]

For each dataset it builds two indexes with all-MiniLM-L6-v2 (kept in
--index-cache to be reused): semsearch's default passages, and the published
BEIR protocol (each document one passage, title + " " + text, truncated at the
model's limit). Every mode is evaluated on both; nDCG@10 uses graded gains. For the default
hybrid mode it also checks what the fused scores mean on queries they were not
fitted on: of the top 10 articles of every test query, by band of score, how
many were relevant (any judged grade above 0).
Prints markdown tables and writes them to benchmarks/results/quality.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import sqlite3
import tempfile
import time
from pathlib import Path

from semsearch.evaluate import Dataset, evaluate, load_dataset, score_run
from semsearch.index import Index
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
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cache = Path(args.index_cache or tempfile.mkdtemp(prefix="semsearch-quality-"))
    rows = []
    calibrations: list[tuple[str, list[tuple[float, bool]]]] = []
    for name in args.datasets:
        dataset = load_dataset(DATA / name, "test")
        for protocol, unit in PROTOCOLS.items():
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
    if "scifact" in args.datasets:
        rows.append(bm25_as_published(load_dataset(DATA / "scifact", "test")))
        print(json.dumps(rows[-1]), flush=True)
    table = render(rows) + "\n\n" + render_calibration(calibrations)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "quality.md").write_text(table + "\n")
    print(table)
    if args.json:
        print(json.dumps(rows))


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
