"""Indexing on a local Ray cluster with 1 and 2 embedding workers, against the same run
without Ray, on the BBC News folder.

    .venv/bin/python benchmarks/distributed.py                # 2,225 articles, ~11,000 passages
    .venv/bin/python benchmarks/distributed.py --limit 300    # a quick subset
    .venv/bin/python benchmarks/distributed.py --json

The benchmark runs in a network namespace whose only interface is loopback (it
re-executes itself through tests/loopback.py), so Ray's processes listen on
127.0.0.1 alone. It starts a Ray cluster on this machine as a user would
(``ray start --head --block`` with 2 CPUs: a head, and Ray's worker processes
for the actors), then indexes the folder, each run a fresh driver process with
a fresh index, in this order:

- local, 1 thread: `semsearch index` without Ray, torch on one thread;
- Ray, 1 worker: `--ray auto --workers 1` (one embedding actor of one thread);
- Ray, 2 workers: `--ray auto --workers 2` (two actors of one thread each);
- local, 2 threads: `semsearch index` as it runs by default here (torch on both cores).

One thread per worker makes the comparison of 1 and 2 workers fair on two cores.
Every run loads the model (the driver, to count word pieces, and each actor once),
exactly as `semsearch index` does; the model's ONNX export, made once a machine, is
made before the measured runs (in a cache of the benchmark's own). Measured per run: wall seconds
(the whole `Index.add`), passages/s over that, the embedding phase alone
(first text sent to the last vector back), Ray's overhead (start or join, time
before the first batch comes back: actor start and model load), the seconds the
workers spent embedding (their busy time) and what the rest of the embedding
phase went to (serialisation, scheduling, waiting), peak RSS of the driver and of
each worker. Prints a markdown table and writes benchmarks/results/distributed.md
(--out to change); --json prints one object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BBC = ROOT.parent / "shared" / "data" / "bbc"
RESULTS = ROOT / "benchmarks" / "results"
RUNS = (
    ("local, 1 thread", None, 1),
    ("Ray, 1 worker", 1, 1),
    ("Ray, 2 workers", 2, 1),
    ("local, 2 threads (default)", None, 2),
)


def one_run(folder: str, index: str, workers: int | None, threads: int) -> dict[str, Any]:
    """In a fresh process: index ``folder`` into ``index``; the figures as a dict."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    from semsearch import Index
    from semsearch.cluster import connect

    runner = connect("auto", workers=workers, threads=1) if workers else None
    began = time.perf_counter()
    embed_began: list[float] = []

    def progress(done: int, total: int) -> None:
        if not embed_began:
            embed_began.append(time.perf_counter())

    try:
        with Index.open(index, create=True) as ix:
            report = ix.add(folder, progress=progress, runner=runner)
    finally:
        if runner is not None:
            runner.close()
    wall = time.perf_counter() - began
    stats: dict[str, Any] = dict(getattr(runner, "stats", {}))
    out = {
        "wall_s": wall,
        "passages": report.passages_embedded,
        "driver_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "embed_s": stats.get("embed_s", time.perf_counter() - embed_began[0]),
        **{k: v for k, v in stats.items() if k != "embed_s"},
    }
    if not runner:  # the local embedding phase: from the first progress call to the end
        out["embed_s"] = report.seconds - (embed_began[0] - began) if embed_began else wall
    return out


def start_cluster(tmp: str) -> subprocess.Popen[str]:
    """``ray start --head --block`` on 127.0.0.1 with 2 CPUs; returns it once up (it stops
    the cluster's processes when terminated)."""
    ray = Path(sys.executable).with_name("ray")
    head = subprocess.Popen(
        [
            str(ray),
            "start",
            "--head",
            "--block",
            "--num-cpus=2",
            "--node-ip-address=127.0.0.1",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={tmp}/ray",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
        start_new_session=True,  # its processes in one group, stopped together at the end
    )
    assert head.stdout is not None
    said = []
    for line in head.stdout:  # bounded: the head prints a few dozen lines, then blocks
        said.append(line)
        if "Ray runtime started" in line:
            return head
        if len(said) > 500:
            break
    head.terminate()
    sys.exit("ray start --head failed:\n" + "".join(said[-20:]))


def stop_cluster(head: subprocess.Popen[str]) -> None:
    """The head and every process it started (one process group): asked, then killed."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(head.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        head.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(head.pid, signal.SIGKILL)
    head.wait(timeout=30)


def subset(limit: int | None, into: Path) -> Path:
    files = sorted(p for p in BBC.rglob("*.txt") if p.name != "README.TXT")
    if limit:  # spread over the five categories: every k-th file
        step = max(1, len(files) // limit)
        files = files[::step][:limit]
    for f in files:
        dest = into / f.relative_to(BBC)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dest)
    return into


def fmt(rows: list[dict[str, Any]], base: dict[str, Any]) -> list[str]:
    head = (
        "| run | passages | wall s | passages/s | vs local 1 thread | embedding s | "
        "Ray start s | first batch s | model load s | embedding busy s | Ray overhead s | "
        "driver RSS MB | worker RSS MB |"
    )
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        busy = r.get("worker_busy_s") or {}
        load = r.get("worker_load_s") or {}
        rss = r.get("worker_rss_mb") or {}
        cells = [
            r["run"],
            f"{r['passages']:,}",
            f"{r['wall_s']:.1f}",
            f"{r['passages'] / r['wall_s']:.1f}",
            f"{base['wall_s'] / r['wall_s']:.2f}x",
            f"{r['embed_s']:.1f}",
            f"{r['start_s']:.1f}" if "start_s" in r else "",
            f"{r['first_batch_s']:.1f}" if r.get("first_batch_s") is not None else "",
            " + ".join(f"{load[p]:.1f}" for p in busy) if busy else "",
            " + ".join(f"{busy[p]:.1f}" for p in busy) if busy else "",
            f"{overhead(r):.1f}" if busy else "",
            f"{r['driver_rss_mb']:.0f}",
            ", ".join(f"{m:.0f}" for m in rss.values()) if rss else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def overhead(r: dict[str, Any]) -> float:
    """The embedding phase less the busiest worker's model load and embedding: Ray's part
    (scheduling, serialisation, moving batches and vectors, actors starting)."""
    busy, load = r.get("worker_busy_s") or {}, r.get("worker_load_s") or {}
    return float(r["embed_s"] - max(busy[p] + load.get(p, 0.0) for p in busy))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--limit", type=int, default=None, help="this many articles (default: all)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out", default=str(RESULTS / "distributed.md"))
    ap.add_argument(
        "--one", nargs=4, metavar=("FOLDER", "INDEX", "WORKERS", "THREADS"), help=argparse.SUPPRESS
    )
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        folder, index, workers, threads = args.one
        print(json.dumps(one_run(folder, index, int(workers) or None, int(threads))))
        return
    if not args.inside:  # into a namespace of loopback only, then on
        loopback = ROOT / "tests" / "loopback.py"
        os.execv(
            sys.executable, [sys.executable, str(loopback), sys.executable, *sys.argv, "--inside"]
        )
    sys.path.insert(0, str(ROOT))
    from tests.loopback import only_loopback

    if not only_loopback():
        sys.exit(
            "no network namespace of loopback only: Ray would listen on this machine's "
            "address (run as root, or where unshare is allowed)"
        )
    # a SIGTERM (a timeout's) stops the cluster too, through the `finally` below
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped (SIGTERM)"))
    with tempfile.TemporaryDirectory(prefix="semsearch-distributed-") as tmp:
        folder = subset(args.limit, Path(tmp) / "bbc")
        head = start_cluster(tmp)
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": str(ROOT),
            "SEMSEARCH_CACHE": str(Path(tmp) / "cache"),
        }
        # the model's ONNX export, made once a machine, made before any measured run
        warm = Path(tmp) / "warm"
        subset(1, warm)
        one = [sys.executable, __file__, "--one", str(warm), str(Path(tmp) / "ixw"), "0", "2"]
        subprocess.run(one, capture_output=True, env=env, timeout=900, check=True)
        rows = []
        try:
            for n, (label, workers, threads) in enumerate(RUNS):
                index = Path(tmp) / f"ix{n}"
                cmd = [
                    sys.executable,
                    __file__,
                    "--one",
                    str(folder),
                    str(index),
                    str(workers or 0),
                    str(threads),
                ]
                done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
                if done.returncode != 0:
                    sys.exit(f"{label}: {done.stderr.strip()[-2000:]}")
                row = json.loads(done.stdout.strip().splitlines()[-1])
                row["run"] = label
                rows.append(row)
                print(f"{label}: {row['wall_s']:.1f} s", file=sys.stderr)
                shutil.rmtree(index, ignore_errors=True)
        finally:
            stop_cluster(head)
    base, ray1, ray2, _ = rows
    summary = {
        "speed_up_2_workers": ray1["wall_s"] / ray2["wall_s"],
        "speed_up_2_workers_embedding": ray1["embed_s"] / ray2["embed_s"],
        "ray_1_worker_vs_local": base["wall_s"] / ray1["wall_s"],
        "per_worker_passages_s": ray1["passages"] / sum(ray1["worker_busy_s"].values()),
        "ray_overhead_1_worker_s": overhead(ray1),
    }
    if args.json:
        print(json.dumps({"runs": rows, **summary}, indent=2))
        return
    import platform

    with open("/proc/cpuinfo", encoding="utf-8") as fh:
        models = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
    cpu = models[0] if models else platform.processor()
    lines = [
        "# Indexing on Ray: 1 and 2 embedding workers against a local run",
        "",
        "Measured with `.venv/bin/python benchmarks/distributed.py"
        + (f" --limit {args.limit}" if args.limit else "")
        + "` "
        f"(BBC News, {base['passages']:,} passages, all-MiniLM-L6-v2, torch; {cpu}, "
        f"{os.cpu_count()} CPUs). One run each, in the order shown.",
        "",
        *fmt(rows, base),
        "",
        f"- 2 workers against 1: {summary['speed_up_2_workers']:.2f}x over the whole run, "
        f"{summary['speed_up_2_workers_embedding']:.2f}x over the embedding phase.",
        f"- Ray with 1 worker against the local run on 1 thread: "
        f"{summary['ray_1_worker_vs_local']:.2f}x (1.00x = as fast).",
        f"- One worker of one thread embeds {summary['per_worker_passages_s']:.0f} passages/s "
        "while busy (model load aside).",
        "",
        "Ray start s: joining the cluster from the driver; first batch s: from the first text "
        "sent to the first vectors back (actors starting and loading the model); model load "
        "s and embedding busy s: per worker, inside the actor; Ray overhead s: the embedding "
        "phase less the busiest worker's load and busy time (scheduling, serialisation, "
        "moving texts and vectors). Embedding s of a local run: from its first batch to the "
        "end of the run.",
    ]
    text = "\n".join(lines)
    print(text)
    Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
