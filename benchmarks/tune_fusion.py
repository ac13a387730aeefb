"""Choose the hybrid fusion settings on SciFact's *train* queries (never the test ones).

    .venv/bin/python benchmarks/tune_fusion.py [--index-cache DIR]

Indexes SciFact with the default pipeline (or reuses --index-cache), runs the
809 train queries with each fusion setting and prints nDCG@10 and Recall@100
for each, best first. The winner is DEFAULT_FUSION in semsearch/search.py;
benchmarks/quality.py then reports it on the test queries.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from semsearch.evaluate import evaluate, load_dataset
from semsearch.index import Index
from semsearch.query.fusion import Fusion

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "scifact"
SETTINGS = (
    [Fusion("convex", alpha=a / 10) for a in range(2, 9)]
    + [Fusion("rrf", rrf_c=c) for c in (5, 10, 20, 40, 60, 100)]
    + [Fusion("rrf", alpha=a, rrf_c=20) for a in (0.4, 0.6)]
)


def describe(f: Fusion) -> str:
    if f.method == "convex":
        return f"convex alpha={f.alpha:.1f}"
    return f"rrf c={f.rrf_c:g}" + (f" dense weight={f.alpha:.1f}" if f.alpha != 0.5 else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--index-cache", help="folder for the SciFact index, reused between runs")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    train = load_dataset(DATA, "train")
    folder = args.index_cache or tempfile.mkdtemp(prefix="semsearch-tune-")
    with Index.open(Path(folder) / "scifact", create=True) as index:
        index.add([train.corpus_path])
        rows = []
        for mode in ("dense", "lexical"):
            r = evaluate(train, index, mode=mode)
            rows.append((mode, r.metrics["nDCG@10"], r.metrics["Recall@100"]))
        for fusion in SETTINGS:
            r = evaluate(train, index, mode="hybrid", fusion=fusion)
            rows.append(
                (f"hybrid, {describe(fusion)}", r.metrics["nDCG@10"], r.metrics["Recall@100"])
            )
    print(f"SciFact train, {len(train.queries)} queries, default passages\n")
    print("| setting | nDCG@10 | Recall@100 |\n|---|---|---|")
    for name, ndcg, rec in sorted(rows, key=lambda r: -r[1]):
        print(f"| {name} | {ndcg:.4f} | {rec:.4f} |")


if __name__ == "__main__":
    main()
