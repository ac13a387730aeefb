"""The warm cost of one query for each query-time option, measured side by side.

    .venv/bin/python benchmarks/query_cost.py INDEX_DIR [--dataset scifact] [--rounds 3]

The options take turns (a round runs every option over the same queries, one query
at a time, k=10 by article as eval asks, after a warm-up), so a machine whose speed
drifts slows them alike; it prints each option's median ms over all its queries and
its ratio to the default. INDEX_DIR holds the dataset's corpus (e.g. the --index of
`semsearch eval`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from semsearch.evaluate import load_dataset
from semsearch.index import Index

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
OPTIONS: list[tuple[str, dict[str, object]]] = [
    ("hybrid (default)", {"mode": "hybrid"}),
    ("hybrid --no-correct", {"mode": "hybrid", "correct": False}),
    ("hybrid --rerank", {"mode": "hybrid", "rerank": True}),
    ("dense", {"mode": "dense"}),
    ("dense --rerank", {"mode": "dense", "rerank": True}),
    ("lexical", {"mode": "lexical"}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("index")
    ap.add_argument("--dataset", default="scifact")
    ap.add_argument("--queries", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    texts = list(load_dataset(DATA / args.dataset, "test").queries.values())[: args.queries]
    times: dict[str, list[float]] = {name: [] for name, _ in OPTIONS}
    with Index.open(args.index) as index:
        for _, opts in OPTIONS:
            for t in texts[:5]:
                index.search(t, k=10, by_article=True, **opts)  # type: ignore[arg-type]
        for _ in range(args.rounds):
            for name, opts in OPTIONS:
                for t in texts:
                    started = time.perf_counter()
                    index.search(t, k=10, by_article=True, **opts)  # type: ignore[arg-type]
                    times[name].append(1000 * (time.perf_counter() - started))
    base = statistics.median(times[OPTIONS[0][0]])
    print(f"{args.dataset}: {len(texts)} queries x {args.rounds} rounds, one at a time, warm")
    print("| option | ms a query (median) | vs default |")
    print("|---|---|---|")
    for name, _ in OPTIONS:
        ms = statistics.median(times[name])
        print(f"| {name} | {ms:.1f} | {ms / base:.2f}x |")


if __name__ == "__main__":
    main()
