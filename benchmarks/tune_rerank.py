"""Choose the second stage's settings on SciFact *train*, then report them once on test.

    .venv/bin/python benchmarks/tune_rerank.py --index-cache DIR [--dataset scifact]

Builds (or reuses, in --index-cache) the dataset's default index (semsearch passages,
all-MiniLM-L6-v2), then evaluates hybrid and dense search on the train queries without a
second stage and with Rocchio feedback over a grid of feedback passages x beta x depth.
The best train setting (by nDCG@10) is then evaluated on the test queries beside the
first stage alone, with the warm cost per query of each (single queries, one at a time).
Prints markdown and writes benchmarks/results/tune_rerank.md.
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
from pathlib import Path

from quality import warm_ms  # benchmarks/quality.py, beside this script

from semsearch.evaluate import evaluate, load_dataset
from semsearch.index import Index
from semsearch.query.rerank import Rerank

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"

FEEDBACK = (1, 3, 5)  # --quick: 1 and 3
BETAS = (0.25, 0.5, 1.0)  # --quick: 0.25 and 0.5
DEPTHS = (20, 50, 100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--index-cache", help="folder for the index, reused between runs")
    ap.add_argument("--dataset", default="scifact")
    ap.add_argument("--timed-queries", type=int, default=100)
    ap.add_argument(
        "--quick", action="store_true", help="feedback 1, 3; beta 0.25, 0.5; depth 50"
    )
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cache = Path(args.index_cache or tempfile.mkdtemp(prefix="semsearch-tune-"))
    train = load_dataset(DATA / args.dataset, "train")
    test = load_dataset(DATA / args.dataset, "test")
    lines = [f"Second stage on {args.dataset} (semsearch passages, all-MiniLM-L6-v2).", ""]
    chosen = Rerank()  # hybrid's best on train, tried in dense mode too
    with Index.open(cache / f"{args.dataset}-para", create=True) as index:
        index.add([train.corpus_path])
        for mode in ("hybrid", "dense"):
            rows = [("none", evaluate(train, index, mode=mode).metrics)]

            def trial(fb: int, beta: float, depth: int) -> float:
                setting = Rerank("prf", depth=depth, feedback=fb, beta=beta)
                metrics = evaluate(train, index, mode=mode, rerank=setting).metrics  # noqa: B023
                rows.append((f"prf feedback={fb} beta={beta} depth={depth}", metrics))  # noqa: B023
                print(mode, rows[-1], flush=True)  # noqa: B023
                return metrics["nDCG@10"]

            if mode == "hybrid":
                # feedback x beta at depth 50, then the depth for the best of them
                feedback, betas = ((1, 3), (0.25, 0.5)) if args.quick else (FEEDBACK, BETAS)
                grid = {(f, b): trial(f, b, 50) for f, b in itertools.product(feedback, betas)}
                fb, beta = max(grid, key=lambda key: grid[key])
                for depth in () if args.quick else DEPTHS:
                    if depth != 50:
                        trial(fb, beta, depth)
            else:  # dense: hybrid's choice, and the shipped default if that differs
                for f, b, d in {(chosen.feedback, chosen.beta, chosen.depth), (3, 0.5, 50)}:
                    trial(f, b, d)
            base = rows[0][1]["nDCG@10"]
            lines += [
                f"### {mode}: train ({len(train.queries)} queries)",
                "",
                "| second stage | nDCG@10 | vs none | Recall@100 | MRR@10 |",
                "|---|---|---|---|---|",
            ]
            for name, m in sorted(rows, key=lambda r: -r[1]["nDCG@10"]):
                lines.append(
                    f"| {name} | {m['nDCG@10']:.4f} | {m['nDCG@10'] - base:+.4f} | "
                    f"{m['Recall@100']:.4f} | {m['MRR@10']:.4f} |"
                )
            best_name, _ = max(rows[1:], key=lambda r: r[1]["nDCG@10"])
            parts = dict(p.split("=") for p in best_name.split()[1:])
            best = Rerank(
                "prf",
                depth=int(parts["depth"]),
                feedback=int(parts["feedback"]),
                beta=float(parts["beta"]),
            )
            if mode == "hybrid":
                chosen = best
            lines += ["", f"Best on train: {best_name}. On test ({len(test.queries)} queries):", ""]
            lines += [
                "| second stage | nDCG@10 | Recall@100 | MRR@10 | ms a query (warm, median) |",
                "|---|---|---|---|---|",
            ]
            shipped = Rerank()  # what --rerank uses
            tried: list[tuple[str, Rerank | None]] = [("none", None), (best_name, best)]
            if best != shipped:
                tried.append(("--rerank (shipped default)", shipped))
            for name, setting in tried:
                m = evaluate(test, index, mode=mode, rerank=setting).metrics
                ms = warm_ms(index, test, args.timed_queries, mode, rerank=setting)
                lines.append(
                    f"| {name} | {m['nDCG@10']:.4f} | {m['Recall@100']:.4f} | "
                    f"{m['MRR@10']:.4f} | {ms:.1f} |"
                )
            lines.append("")
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tune_rerank.md").write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
