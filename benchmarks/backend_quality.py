"""What each indexing backend costs in ranking quality, on SciFact test (and Cranfield).

    .venv/bin/python benchmarks/backend_quality.py [--index-cache DIR] [--datasets scifact]

For every backend (torch, onnx, openvino, openvino int8) it indexes the
dataset's corpus with semsearch's default passages, evaluates the test queries
in dense and hybrid mode (queries always run on the fp32 ONNX query model), and
compares the passage vectors with torch's: mean and lowest cosine, and the
overlap of the dense top-10 passage lists. Prints a markdown table and writes
it to benchmarks/results/backend_quality.md. Speed is measured by speed.py.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from semsearch.evaluate import evaluate, load_dataset
from semsearch.index import Index

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
BACKENDS = {
    "torch": ("torch", "fp32"),
    "onnx": ("onnx", "fp32"),
    "openvino": ("openvino", "fp32"),
    "openvino-int8": ("openvino", "int8"),
}


def vectors(index: Index) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """All passage ids of an index (sorted) and their vectors."""
    with index.snapshot() as snap:
        ids = snap.passage_ids()
        return ids, snap.vectors(ids.tolist())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--index-cache", help="folder for the indexes, reused between runs")
    ap.add_argument("--datasets", nargs="+", default=["scifact"])
    ap.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cache = Path(args.index_cache or tempfile.mkdtemp(prefix="semsearch-backends-"))
    rows: list[dict[str, Any]] = []
    for name in args.datasets:
        dataset = load_dataset(DATA / name, "test")
        reference: dict[str, Any] = {}
        for label in ["torch", *[b for b in args.backends if b != "torch"]]:
            backend, precision = BACKENDS[label]
            started = time.perf_counter()
            with Index.open(
                cache / f"{name}-{label}", create=True, backend=backend, precision=precision
            ) as index:
                index.add([dataset.corpus_path])
                index_s = time.perf_counter() - started
                row: dict[str, Any] = {"dataset": name, "backend": label, "index_s": index_s}
                ids, vecs = vectors(index)
                for mode in ("dense", "hybrid"):
                    result = evaluate(dataset, index, mode=mode)
                    row[f"{mode}_ndcg10"] = result.metrics["nDCG@10"]
                    row[f"{mode}_recall100"] = result.metrics["Recall@100"]
                tops = [
                    [h.passage_id for h in index.search(q, k=10, mode="dense", collapse=False)]
                    for q in list(dataset.queries.values())[:100]
                ]
            if label == "torch":
                reference = {"ids": ids, "vecs": vecs, "tops": tops, "row": row}
            else:
                same = np.array_equal(ids, reference["ids"])
                cos = (vecs * reference["vecs"]).sum(1) if same else np.array([np.nan])
                row["cos_mean"] = float(np.mean(cos))
                row["cos_min"] = float(np.min(cos))
                row["top10_overlap"] = float(
                    np.mean(
                        [
                            len(set(a) & set(b)) / 10
                            for a, b in zip(tops, reference["tops"], strict=True)
                        ]
                    )
                )
                for mode in ("dense", "hybrid"):
                    key = f"{mode}_ndcg10"
                    row[f"{mode}_loss"] = reference["row"][key] - row[key]
            if label in args.backends:
                rows.append(row)
                print(json.dumps(row), flush=True)
    table = render(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "backend_quality.md").write_text(table + "\n")
    print(table)


def render(rows: list[dict[str, Any]]) -> str:
    out = [
        "Passages embedded by each backend; queries on the fp32 ONNX query model. "
        "Loss = torch's nDCG@10 minus this backend's (negative: better). Cosine and top-10 "
        "overlap (first 100 test queries, dense) against the torch index's passages.",
        "",
        "| dataset | backend | dense nDCG@10 | loss | hybrid nDCG@10 | loss | dense R@100 "
        "| cosine to torch, mean / min | dense top-10 overlap |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [r["dataset"], r["backend"], f"{r['dense_ndcg10']:.4f}", ""]
        cells += [f"{r['hybrid_ndcg10']:.4f}", "", f"{r['dense_recall100']:.4f}", "", ""]
        if r["backend"] != "torch":
            cells[3] = f"{r['dense_loss']:+.4f}"
            cells[5] = f"{r['hybrid_loss']:+.4f}"
            cells[7] = f"{r['cos_mean']:.5f} / {r['cos_min']:.5f}"
            cells[8] = f"{r['top10_overlap']:.3f}"
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
