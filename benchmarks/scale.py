"""Each vector index type at scale: build, memory, size, open, query latency, recall.

    .venv/bin/python benchmarks/scale.py                          # 100k and 1M, every type
    .venv/bin/python benchmarks/scale.py --sizes 20000 --queries 50    # a quick check
    .venv/bin/python benchmarks/scale.py --types ivf ivfpq --json
    .venv/bin/python benchmarks/scale.py --big                    # adds 10M for ivfpq
    .venv/bin/python benchmarks/scale.py --sizes 10000000 --types ivfpq-disk --refine 10 20

Everything goes through semsearch.storage.vectors itself (`create`, `add`, `adapt`,
`save`, `load`), not raw FAISS, so the figures are what users get. A type is
built the way the first `semsearch index` commit builds it: `create(type)`
(flat for the IVF types, which need vectors to train on), `add` of every
vector, then `adapt(index, type)` (for IVF: training, then the vectors
re-added). FAISS may use every core while building, as in a fresh process.

Data. 384-dimensional unit vectors (all-MiniLM-L6-v2's size) around 1,000
Gaussian centres: a random unit centre plus isotropic noise of norm ~0.75,
normalised. Uniform random vectors in 384-d have no neighbourhood structure
(every pair has cosine ~0 +/- 0.05, so "nearest" neighbours are barely nearer
than random ones and recall figures mean nothing); with the clusters a
nearest neighbour has cosine ~0.6-0.7 against ~0 for a random pair, like
sentence embeddings of related vs unrelated texts. The table's notes print the
measured figures. Queries are drawn the same way (not copies of indexed
vectors). Vectors are generated in chunks of 20,000 from per-chunk seeds, so
memory stays bounded and every type sees the same data; ids are 1..N, as
SQLite hands them out.

Measured, per type and size:

- build s: `add` + `adapt` (data generation not included);
- build RSS: peak growth of the process RSS (``/proc/self/status``: VmHWM
  after resetting it, and VmRSS sampled every 10 ms) over the build, each
  type and size measured in a fresh process; it includes one chunk of
  generated data and its temporaries (~60-90 MB);
- file MB: the saved index (and the HNSW tombstone file, if any);
- open ms: `vectors.load` of the saved file in a fresh process,
  memory-mapped for ivf/ivfpq as readers open it (the file is still in the
  page cache: a warm open); 1st query ms: the first query after opening;
  reader RSS +MB: that process's growth over opening and every query;
- p50/p95 ms: one query at a time, k=10, on the loaded index (after 5
  warm-up queries);
- recall@10: against exact search (a FAISS IndexFlatIP over the same vectors,
  chunk by chunk) on --queries queries.

ivfpq-disk from 10,000,000 on is built by `DiskIVFIndex.write_streamed`: trained
on a prefix of 64 vectors per list, then the vectors streamed chunk by chunk
into its codes and its exact-vector file, so the float32 never sit in memory
at once (build s then includes saving). --refine F... reads an IVF-PQ index
once per factor (candidates re-scored per result; a row each), and "serving
RSS MB" is the reader's whole RSS after its queries.

Other sizes of 10,000,000 and more run for ivfpq only, with --big, when
/proc/meminfo says the memory is there. At that size the commit path (flat,
then `adapt`) would hold every vector twice as float32 (~31 GB), so the
index is instead made by `IVFIndex.build` on the first third of the vectors
(lists sized for that many; `needs_retraining` stays false at 10M) and
`IVFIndex.add` of the rest, chunk by chunk.

Prints a markdown table (or, with --json, one JSON object) and writes the
table to benchmarks/results/scale.md (--out to change).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from semsearch.storage import vectors

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DIM = 384
CENTRES = 1000
NOISE = 0.75  # norm of the noise around a unit centre
CHUNK = 20_000
BIG = 10_000_000
K = 10
TYPES = ("flat", "hnsw", "ivf", "ivfpq", "ivfpq-disk")

Floats = npt.NDArray[np.float32]
Ids = npt.NDArray[np.int64]


# --------------------------------------------------------------------------- data


class Synthetic:
    """Clustered unit vectors, generated chunk by chunk, the same on every pass."""

    def __init__(self, dim: int = DIM, seed: int = 2024) -> None:
        self.dim = dim
        self.seed = seed
        rng = np.random.default_rng([seed, 0])
        centres = rng.standard_normal((CENTRES, dim), dtype=np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        self.centres = centres
        self.sigma = np.float32(NOISE / np.sqrt(dim))

    def _draw(self, rng: np.random.Generator, n: int) -> Floats:
        labels = rng.integers(0, CENTRES, n)
        x = rng.standard_normal((n, self.dim), dtype=np.float32)
        x *= self.sigma
        x += self.centres[labels]
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x

    def chunks(self, n: int, start: int = 0) -> Iterator[tuple[Ids, Floats]]:
        """(ids, vectors) for vectors start..n-1, in chunks; a size's data is a prefix
        of every larger size's."""
        for lo in range(start - start % CHUNK, n, CHUNK):
            rng = np.random.default_rng([self.seed, 1, lo // CHUNK])
            x = self._draw(rng, CHUNK)[: min(CHUNK, n - lo)]  # whole chunks: same data
            ids = np.arange(lo + 1, lo + len(x) + 1, dtype=np.int64)
            skip = max(0, start - lo)
            yield ids[skip:], x[skip:]

    def queries(self, count: int) -> Floats:
        return self._draw(np.random.default_rng([self.seed, 2]), count)


def ground_truth(data: Synthetic, n: int, queries: Floats) -> tuple[Ids, dict[str, float]]:
    """Exact top-k ids (IndexFlatIP chunk by chunk, merged) and cosine statistics."""
    best_s = np.full((len(queries), K), -np.inf, dtype=np.float32)
    best_i = np.full((len(queries), K), -1, dtype=np.int64)
    random_cos: list[float] = []
    for ids, x in data.chunks(n):
        flat = faiss.IndexFlatIP(data.dim)
        flat.add(x)
        scores, pos = flat.search(queries, min(K, len(x)))
        s = np.concatenate([best_s, scores], axis=1)
        i = np.concatenate([best_i, ids[pos]], axis=1)
        order = np.argsort(-s, axis=1, kind="stable")[:, :K]
        best_s, best_i = np.take_along_axis(s, order, 1), np.take_along_axis(i, order, 1)
        if not random_cos:
            random_cos = (queries @ x[:1000].T).ravel().tolist()
    stats = {
        "nn1_cosine": float(best_s[:, 0].mean()),
        "nn10_cosine": float(best_s[:, K - 1].mean()),
        "random_cosine_mean": float(np.mean(random_cos)),
        "random_cosine_p99": float(np.percentile(random_cos, 99)),
    }
    return best_i, stats


# --------------------------------------------------------------------------- memory


def _status(field: str) -> float:
    """A field of /proc/self/status in MB (0 when unavailable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def available_mb() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("inf")


class PeakRSS:
    """Peak RSS over a block, in MB: VmHWM reset through /proc/self/clear_refs when the
    kernel allows it, plus VmRSS sampled every 10 ms."""

    def __enter__(self) -> PeakRSS:
        gc.collect()
        self.before = _status("VmRSS")
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.hwm = True
        except OSError:
            self.hwm = False
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _status("VmRSS"))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _status("VmRSS"), _status("VmHWM") if self.hwm else 0.0)

    @property
    def growth(self) -> float:
        return self.peak - self.before


# --------------------------------------------------------------------------- one run


def estimate_mb(kind: str, n: int) -> float:
    """Rough peak memory of building ``kind`` over ``n`` vectors (for skipping)."""
    raw = n * DIM * 4 / 2**20
    if kind == "ivfpq-disk" and n >= BIG:  # the sample, a chunk, the codes (56 B a vector)
        return 64 * vectors.DiskIVFIndex.MAX_LISTS * DIM * 4 / 2**20 + n * 60 / 2**20 + 1024
    if n >= BIG:  # a third as float32, the training sample and its residuals, then codes
        sample = min(n // 3, 256 * vectors.IVFIndex.lists_for(n // 3)) * DIM * 4 / 2**20
        return raw / 3 + 2 * sample + n * 130 / 2**20 + 1024
    if kind == "hnsw":
        return raw * 1.3 + 1024
    if kind in ("ivf", "ivfpq"):  # flat, the vectors reconstructed by adapt, the IVF copy
        return raw * 3.2 + 1024
    return raw * 1.1 + 1024


def build(kind: str, data: Synthetic, n: int) -> tuple[vectors.VectorIndex, float]:
    """The index of ``kind`` over the first ``n`` vectors and the seconds spent in semsearch."""
    faiss.omp_set_num_threads(os.cpu_count() or 1)  # as in a fresh `semsearch index`
    seconds = 0.0
    if kind == "ivfpq-disk" and n >= BIG:
        raise AssertionError("streamed: see build_streamed")
    if n >= BIG:
        train = n // 3
        ids = np.empty(train, dtype=np.int64)
        x = np.empty((train, data.dim), dtype=np.float32)
        for chunk_ids, chunk in data.chunks(train):
            lo = int(chunk_ids[0]) - 1
            ids[lo : lo + len(chunk)], x[lo : lo + len(chunk)] = chunk_ids, chunk
        started = time.perf_counter()
        index: vectors.VectorIndex = vectors.IVFIndex.build(kind, ids, x)
        seconds += time.perf_counter() - started
        del ids, x
        gc.collect()
        for chunk_ids, chunk in data.chunks(n, start=train):
            started = time.perf_counter()
            index.add(chunk_ids, chunk)
            seconds += time.perf_counter() - started
        return index, seconds
    started = time.perf_counter()
    index = vectors.create(kind, data.dim)
    seconds += time.perf_counter() - started
    for chunk_ids, chunk in data.chunks(n):
        started = time.perf_counter()
        index.add(chunk_ids, chunk)
        seconds += time.perf_counter() - started
    started = time.perf_counter()
    index = vectors.adapt(index, kind)
    seconds += time.perf_counter() - started
    return index, seconds


def build_streamed(data: Synthetic, n: int, path: str) -> tuple[vectors.VectorIndex, float]:
    """ivfpq-disk from 10M on: `DiskIVFIndex.write_streamed`, trained on the first 64
    vectors per list (the chunks are drawn alike, so a prefix is a fair sample), then every
    chunk streamed through it: never more than a chunk of float32 in memory. Includes the
    save (it is one step); data generation is included too (~5% of it)."""
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    nlist = vectors.DiskIVFIndex.lists_for(n)
    sample = np.concatenate([x for _, x in data.chunks(min(n, 64 * nlist))])
    started = time.perf_counter()
    index = vectors.DiskIVFIndex.write_streamed(path, sample, data.chunks(n), n)
    return index, time.perf_counter() - started


def measure_build(kind: str, data: Synthetic, n: int, path: str) -> dict[str, Any]:
    """Build ``kind`` over ``n`` vectors and save it to ``path`` (a process of its own)."""
    streamed = kind == "ivfpq-disk" and n >= BIG
    with PeakRSS() as memory:
        index, build_s = build_streamed(data, n, path) if streamed else build(kind, data, n)
    assert index.kind == kind, f"built {index.kind}, not {kind}"
    assert index.count == n, f"{index.count} vectors, not {n}"
    started = time.perf_counter()
    if not streamed:
        index.save(path)
    save_s = time.perf_counter() - started
    folder = os.path.dirname(path)
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    return {
        "type": kind,
        "vectors": n,
        "build_s": round(build_s, 2),
        "build_rss_mb": round(memory.growth),
        "save_s": round(save_s, 2),
        "file_mb": round(size / 2**20, 1),
    }


def measure_read(kind: str, path: str, queries: Floats, truth: Ids) -> dict[str, Any]:
    """Open the saved index as a reader does and query it (a fresh process)."""
    before = _status("VmRSS")
    started = time.perf_counter()
    loaded = vectors.load(kind, path, mmap=kind in ("ivf", "ivfpq", "ivfpq-disk"))
    open_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    loaded.search(queries[:1], K)
    first_ms = (time.perf_counter() - started) * 1000
    for q in queries[:5]:  # warm up
        loaded.search(q.reshape(1, -1), K)
    latencies: list[float] = []
    found = np.full((len(queries), K), -1, dtype=np.int64)
    for row, q in enumerate(queries):
        started = time.perf_counter()
        _, ids = loaded.search(q.reshape(1, -1), K)
        latencies.append((time.perf_counter() - started) * 1000)
        found[row, : ids.shape[1]] = ids[0]
    reader_mb = _status("VmRSS") - before
    hits = [len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True)]
    latencies.sort()
    return {
        "open_ms": round(open_ms, 2),
        "first_query_ms": round(first_ms, 2),
        "reader_rss_mb": round(reader_mb),
        "p50_ms": round(statistics.median(latencies), 3),
        "p95_ms": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 3),
        "recall_at_10": round(sum(hits) / (K * len(truth)), 4),
        "refine": {"ivfpq": vectors.REFINE_FACTOR, "ivfpq-disk": vectors.DISK_REFINE_FACTOR}.get(
            kind, ""
        ),
        "nprobe": getattr(loaded, "nprobe", ""),
        "serving_rss_mb": round(_status("VmRSS")),
    }


# --------------------------------------------------------------------------- report

COLUMNS = [
    ("type", "type"),
    ("vectors", "vectors"),
    ("build_s", "build s"),
    ("build_rss_mb", "build RSS +MB"),
    ("file_mb", "file MB"),
    ("open_ms", "open ms"),
    ("first_query_ms", "1st query ms"),
    ("reader_rss_mb", "reader RSS +MB"),
    ("p50_ms", "p50 ms"),
    ("p95_ms", "p95 ms"),
    ("recall_at_10", "recall@10"),
    ("nprobe", "lists probed"),
    ("refine", "refine x k"),
    ("serving_rss_mb", "serving RSS MB"),
]


def render(report: dict[str, Any]) -> str:
    lines = [
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for row in report["rows"]:
        cells = [f"{row[key]:,}" if key == "vectors" else str(row[key]) for key, _ in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [
        "",
        f"Synthetic {report['dimension']}-d unit vectors around {CENTRES:,} Gaussian centres "
        f"(noise norm {NOISE}); {report['queries']} queries drawn the same way, k={K}, one "
        "query at a time.",
    ]
    for n, stats in report["data"].items():
        notes.append(
            f"At {int(n):,} vectors: mean cosine of the nearest neighbour "
            f"{stats['nn1_cosine']:.3f}, of the 10th {stats['nn10_cosine']:.3f}; random pairs "
            f"{stats['random_cosine_mean']:.3f} (99th percentile "
            f"{stats['random_cosine_p99']:.3f})."
        )
    notes += [
        "Built as the first commit builds them (create, add, adapt), but ivfpq-disk from "
        f"{BIG:,} on: streamed (DiskIVFIndex.write_streamed; its build s includes the save "
        "and the data's generation). The IVF types are opened memory-mapped, as readers "
        "open them. Open is warm (file in the page cache). Reader RSS +MB: the growth over "
        "opening and the queries; serving RSS MB: the reader's whole RSS then.",
        f"Machine: {report['machine']}.",
    ]
    notes += report["skipped"]
    return "\n".join(lines + notes)


def machine() -> str:
    cpu, total = platform.machine(), 0.0
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu
            )
        with open("/proc/meminfo") as f:
            total = int(f.readline().split()[1]) / 2**20
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} CPUs, {total:.0f} GB RAM, Python "
        f"{platform.python_version()}, faiss {faiss.__version__}, numpy {np.__version__}"
    )


def worker(args: argparse.Namespace) -> None:
    """One phase of one (type, size) measurement in a process of its own, so that RSS
    growth is not blurred by memory an earlier run freed but the allocator kept."""
    phase, kind, n, path, truth_file = args.worker
    data = Synthetic()
    if phase == "build":
        row = measure_build(kind, data, int(n), path)
    else:
        if args.refine and args.refine[0]:
            vectors.REFINE_FACTOR = vectors.DISK_REFINE_FACTOR = args.refine[0]
        if args.nprobe and args.nprobe[0]:
            probes = args.nprobe[0]
            vectors.IVFIndex.nprobe = property(lambda self: probes)  # type: ignore[assignment]
            vectors.DiskIVFIndex.nprobe = property(lambda self: probes)  # type: ignore[assignment]
        row = measure_read(kind, path, data.queries(args.queries), np.load(truth_file))
    print(json.dumps(row))


def run_worker(*argv: str) -> dict[str, Any]:
    """Run `worker` in a child process; its JSON line, or RuntimeError with its stderr."""
    cmd = [sys.executable, __file__, "--worker", *argv]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip() or f"exit status {done.returncode}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--types", nargs="+", choices=TYPES, default=list(TYPES))
    ap.add_argument("--queries", type=int, default=200, help="queries for recall and latency")
    ap.add_argument("--big", action="store_true", help=f"also {BIG:,} vectors, ivfpq only")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--out", default=str(RESULTS / "scale.md"), help="where the table goes")
    ap.add_argument("--workdir", default=None, help="where index files are saved meanwhile")
    ap.add_argument(
        "--refine",
        type=int,
        nargs="+",
        default=[],
        help="IVF-PQ: candidates re-scored per result (each factor read separately; "
        f"default {vectors.REFINE_FACTOR}, ivfpq-disk {vectors.DISK_REFINE_FACTOR})",
    )
    ap.add_argument(
        "--nprobe",
        type=int,
        nargs="+",
        default=[],
        help="IVF types: lists probed (each read separately; default theirs)",
    )
    ap.add_argument(
        "--keep",
        action="store_true",
        help="keep the built indexes in --workdir, and read (not build) those found there",
    )
    ap.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return

    sizes = sorted(set(args.sizes + ([BIG] if args.big else [])))
    data = Synthetic()
    queries = data.queries(args.queries)
    report: dict[str, Any] = {
        "dimension": DIM,
        "queries": args.queries,
        "machine": machine(),
        "data": {},
        "rows": [],
        "skipped": [],
    }
    if args.keep and not args.workdir:
        sys.exit("--keep needs --workdir (where the indexes stay)")
    with contextlib.ExitStack() as stack:
        tmp = (
            args.workdir
            if args.keep
            else stack.enter_context(tempfile.TemporaryDirectory(dir=args.workdir))
        )
        for n in sizes:
            kinds = [k for k in args.types if n < BIG or k in ("ivfpq", "ivfpq-disk")]
            for k in sorted(set(args.types) - set(kinds)):
                report["skipped"].append(
                    f"Skipped {k} at {n:,}: from {BIG:,} on, ivfpq and ivfpq-disk only."
                )
            if not kinds:
                continue
            truth_file = os.path.join(tmp, f"truth-{n}-{args.queries}.npy")
            stats_file = truth_file[: -len(".npy")] + ".json"
            if args.keep and os.path.exists(stats_file):  # computed by an earlier run
                with open(stats_file) as f:
                    stats = json.load(f)
            else:
                print(f"{n:,} vectors: exact ground truth ...", file=sys.stderr, flush=True)
                truth, stats = ground_truth(data, n, queries)
                np.save(truth_file, truth)
                with open(stats_file, "w") as f:
                    json.dump(stats, f)
            report["data"][str(n)] = stats
            for kind in kinds:
                need, free = estimate_mb(kind, n), available_mb()
                if need > free:
                    report["skipped"].append(
                        f"Skipped {kind} at {n:,}: needs ~{need / 1024:.1f} GB, "
                        f"{free / 1024:.1f} GB available."
                    )
                    continue
                print(f"{n:,} vectors: {kind} ...", file=sys.stderr, flush=True)
                folder = os.path.join(tmp, f"{kind}-{n}")
                os.makedirs(folder, exist_ok=True)
                path = os.path.join(folder, "vectors.000001.faiss")
                factors = args.refine if kind in ("ivfpq", "ivfpq-disk") else []
                probes = args.nprobe if kind in vectors.IVF_KINDS else []
                record = os.path.join(folder, "build.json")
                try:
                    if args.keep and os.path.exists(record):
                        with open(record) as f:
                            built = json.load(f)
                    else:
                        built = run_worker("build", kind, str(n), path, truth_file)
                        with open(record, "w") as f:
                            json.dump(built, f)
                    for factor in factors or [0]:
                        for probe in probes or [0]:
                            row = dict(built)
                            read = ["--queries", str(args.queries), "--refine", str(factor)]
                            read += ["--nprobe", str(probe)]
                            row.update(run_worker("read", kind, str(n), path, truth_file, *read))
                            report["rows"].append(row)
                            print(f"  {json.dumps(row)}", file=sys.stderr, flush=True)
                except RuntimeError as exc:
                    report["skipped"].append(f"Failed {kind} at {n:,}: {str(exc).splitlines()[-1]}")
                    print(exc, file=sys.stderr)
                    continue
                finally:
                    if not args.keep:
                        shutil.rmtree(folder, ignore_errors=True)
    table = render(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table + "\n")
    print(json.dumps(report) if args.json else table)


if __name__ == "__main__":
    main()
