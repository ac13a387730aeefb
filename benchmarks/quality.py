"""Retrieval quality of every mode on SciFact and Cranfield test queries, beside published figures.

    .venv/bin/python benchmarks/quality.py [--index-cache DIR] [--datasets scifact cranfield]

For each dataset it builds two indexes with all-MiniLM-L6-v2 (kept in
--index-cache to be reused): semsearch's default passages, and the published
BEIR protocol (each document one passage, title + " " + text, truncated at the
model's limit). Every mode is evaluated on both; nDCG@10 uses graded gains.
Prints a markdown table and writes it to benchmarks/results/quality.md.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from semsearch.evaluate import evaluate, load_dataset
from semsearch.index import Index
from semsearch.search import DEFAULT_FUSION, DEFAULT_MODE

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
    for name in args.datasets:
        dataset = load_dataset(DATA / name, "test")
        for protocol, unit in PROTOCOLS.items():
            started = time.perf_counter()
            with Index.open(cache / f"{name}-{unit}", create=True, unit=unit) as index:
                report = index.add([dataset.corpus_path])
                index_s = time.perf_counter() - started
                for mode in ("dense", "lexical", "hybrid"):
                    result = evaluate(dataset, index, mode=mode)
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
    table = render(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "quality.md").write_text(table + "\n")
    print(table)
    if args.json:
        print(json.dumps(rows))


def render(rows: list[dict[str, object]]) -> str:
    lines = [
        f"Model all-MiniLM-L6-v2; default mode {DEFAULT_MODE}; hybrid fusion "
        f"{DEFAULT_FUSION.method} (alpha {DEFAULT_FUSION.alpha}, chosen on SciFact train).",
        "",
        "| dataset | passages | mode | nDCG@10 | Recall@10 | Recall@100 | MRR@10 "
        "| published nDCG@10 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        published = PUBLISHED.get((str(r["dataset"]), str(r["mode"])), "")
        if r["protocol"] != "BEIR protocol" and published:
            published = ""  # published figures use the BEIR protocol
        lines.append(
            f"| {r['dataset']} ({r['queries']} queries) | {r['protocol']} | {r['mode']} | "
            f"{r['nDCG@10']:.4f} | {r['Recall@10']:.4f} | {r['Recall@100']:.4f} | "
            f"{r['MRR@10']:.4f} | {published} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
