"""Indexing and query speed of semsearch on the BBC News folder, as a user meets them.

    .venv/bin/python benchmarks/speed.py            # all 2,225 articles (a few minutes)
    .venv/bin/python benchmarks/speed.py --limit 200 --json

Measures, each in a fresh process where a user would have one:
- indexing: wall time, passages per second (embedded passages / wall time, model
  load and parsing included), peak RSS, index size on disk;
- `semsearch query` from a fresh process: wall time, median of --cold-runs;
- a warm query inside one process (Index.search): p50 / p95 over --warm-queries;
- `semsearch --help`: wall time, median of 5.

Prints a markdown table and writes it to benchmarks/results/speed.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BBC = ROOT.parent / "shared" / "data" / "bbc"
RESULTS = ROOT / "benchmarks" / "results"


def semsearch_exe() -> str:
    exe = Path(sys.executable).with_name("semsearch")
    if not exe.exists():
        sys.exit("semsearch is not installed in this environment: run `make install` first")
    return str(exe)


def peak_rss_mb(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Run a command; (wall seconds, peak RSS in MB of that process alone, stdout)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd[:3])} failed:\n{err.read()}")
        return wall, int(usage.ru_maxrss / 1024), out.read()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--limit", type=int, default=0, help="index only the first N articles")
    ap.add_argument("--cold-runs", type=int, default=5)
    ap.add_argument("--warm-queries", type=int, default=200)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()

    if not BBC.is_dir():
        sys.exit(f"the BBC folder is missing: {BBC}")
    files = sorted(p for p in BBC.glob("*/*.txt"))
    if args.limit:
        files = files[: args.limit]
    exe = semsearch_exe()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    figures: dict[str, Any] = {"articles": len(files)}

    with tempfile.TemporaryDirectory() as tmp:
        index_dir = str(Path(tmp) / "index")
        wall, rss, out = peak_rss_mb(
            [exe, "index", *map(str, files), "--index", index_dir, "--json", "-q"], env
        )
        report = json.loads(out)
        figures.update(
            passages=report["passages_added"],
            index_s=round(wall, 2),
            index_passages_per_s=round(report["passages_embedded"] / wall, 1),
            index_peak_rss_mb=rss,
            index_bytes=sum(f.stat().st_size for f in Path(index_dir).iterdir() if f.is_file()),
            paragraphs_split=report["paragraphs_split"],
        )

        # Queries: the titles of the articles, as a reader might type them.
        titles = [f.read_bytes().decode("utf-8", "replace").splitlines()[0] for f in files]
        cold, cold_rss = [], []
        for q in titles[: args.cold_runs]:
            wall, rss, _ = peak_rss_mb([exe, "query", q, "--index", index_dir, "--json"], env)
            cold.append(wall)
            cold_rss.append(rss)
        figures["cold_query_s"] = round(statistics.median(cold), 3)
        figures["cold_query_peak_rss_mb"] = max(cold_rss)

        help_times = [peak_rss_mb([exe, "--help"], env)[0] for _ in range(5)]
        figures["help_s"] = round(statistics.median(help_times), 3)

        os.environ["HF_HUB_OFFLINE"] = "1"
        import semsearch

        index = semsearch.Index.open(index_dir)
        index.search("warm up", k=10)
        latencies = []
        queries = (titles * (args.warm_queries // max(len(titles), 1) + 1))[: args.warm_queries]
        for q in queries:
            t = time.perf_counter()
            index.search(q, k=10)
            latencies.append((time.perf_counter() - t) * 1000)
        figures["warm_query_p50_ms"] = round(percentile(latencies, 0.5), 2)
        figures["warm_query_p95_ms"] = round(percentile(latencies, 0.95), 2)
        index.close()

    table = render(figures)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "speed.md").write_text(table + "\n")
    print(json.dumps(figures) if args.json else table)


def render(f: dict[str, Any]) -> str:
    rows = [
        ("articles indexed", f"{f['articles']:,}"),
        ("passages", f"{f['passages']:,} ({f['paragraphs_split']} long paragraphs split)"),
        ("indexing wall time", f"{f['index_s']} s"),
        ("indexing passages/s (model load included)", f"{f['index_passages_per_s']}"),
        ("indexing peak RSS", f"{f['index_peak_rss_mb']} MB"),
        ("index size on disk", f"{f['index_bytes'] / 1e6:.1f} MB"),
        ("`semsearch query`, fresh process (median)", f"{f['cold_query_s']} s"),
        ("cold query peak RSS", f"{f['cold_query_peak_rss_mb']} MB"),
        (
            "warm query p50 / p95 (k=10, in process)",
            f"{f['warm_query_p50_ms']} / {f['warm_query_p95_ms']} ms",
        ),
        ("`semsearch --help`", f"{f['help_s']} s"),
    ]
    lines = ["| figure | value |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
