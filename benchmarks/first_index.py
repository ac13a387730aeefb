"""The first `semsearch index seeds/` on a fresh machine: its time, where it goes, what it leaves.

    .venv/bin/python benchmarks/first_index.py                      # this checkout
    .venv/bin/python benchmarks/first_index.py --before /work/main  # beside another checkout
    .venv/bin/python benchmarks/first_index.py --rounds 3 --eta-files 100

Each side is a checkout (its folder goes first on PYTHONPATH) run as a user
would run it: `python -m semsearch index seeds/` in a fresh process with a
fresh model cache ($SEMSEARCH_CACHE) and a fresh index (the first index of a
model on a machine: it exports the ONNX query model), then a second index of
the same folder with the cache now filled (every later index). Sides
alternate round by round, so drift of the machine hits both alike; wall and
CPU seconds (user + system of that process) are medians over the rounds. CPU
seconds move less than wall seconds on a busy machine.

Then what the first index leaves on disk: `du -sk` of the index folder
alone (du counts a hard-linked file in the folder), of the index after the
cache (what the index adds to the disk beside the cache), of the cache, and
`semsearch info --json` (size_bytes, and shared_bytes where the side has it).

--phases: where the first index's time goes, measured inside one process of
each side (functions timed by name where the side has them; a function
inside another counts in both). --eta-files N: the time left a progress bar
shows early in a run of N BBC articles, divided by the time that was left
(1.0 is right), for the average pace (the bar's smoothing=0) and tqdm's
default moving average. Prints a markdown table, writes it to
benchmarks/results/first_index.md; --json prints one object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
BBC = ROOT.parent / "shared" / "data" / "bbc"
RESULTS = ROOT / "benchmarks" / "results"
THIS = Path(__file__).resolve()


def env_for(checkout: Path, cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(checkout),
        SEMSEARCH_CACHE=str(cache),
        HF_HUB_OFFLINE="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.pop("SEMSEARCH_INDEX", None)
    return env


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run a command: (wall seconds, CPU seconds of that process, stdout).

    It runs in the system's temporary folder: `python -m` puts the working
    folder first on sys.path, and this checkout's would win over PYTHONPATH.
    """
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=err, text=True, env=env, cwd=tempfile.gettempdir()
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            sys.exit(f"{' '.join(cmd)} failed:\n{err.read()}")
        out.seek(0)
        return wall, usage.ru_utime + usage.ru_stime, out.read()


def du_kb(*paths: Path) -> list[int]:
    """`du -sk` of each path, in one du run (a file hard-linked twice counts once)."""
    out = subprocess.run(
        ["du", "-sk", *map(str, paths)], capture_output=True, text=True, check=True
    ).stdout
    return [int(line.split()[0]) for line in out.splitlines()]


def one_round(checkout: Path, work: Path) -> dict[str, Any]:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    cache = work / "cache"
    env = env_for(checkout, cache)
    semsearch = [sys.executable, "-m", "semsearch"]
    first = timed([*semsearch, "index", str(SEEDS), "--index", str(work / "a"), "-q"], env)
    second = timed([*semsearch, "index", str(SEEDS), "--index", str(work / "b"), "-q"], env)
    info = json.loads(timed([*semsearch, "info", "--index", str(work / "a"), "--json"], env)[2])
    where = timed([sys.executable, "-c", "import semsearch; print(semsearch.__file__)"], env)[2]
    if not where.startswith(str(checkout)):
        sys.exit(f"the side {checkout} imported semsearch from {where.strip()}")
    alone = du_kb(work / "a")[0]
    cache_kb, beside = du_kb(cache, work / "a")
    return {
        "first_wall": first[0],
        "first_cpu": first[1],
        "second_wall": second[0],
        "second_cpu": second[1],
        "du_index_kb": alone,
        "du_index_beside_cache_kb": beside,
        "du_cache_kb": cache_kb,
        "size_bytes": info["size_bytes"],
        "shared_bytes": info.get("shared_bytes"),
    }


# --------------------------------------------------------------------------- phases


def phases_worker(out_file: str) -> None:
    """The first index of seeds/ in this process, with its phases timed by function name."""
    import functools

    started = time.perf_counter()
    spent: dict[str, list[float]] = {}

    def wrap(owner: Any, name: str, label: str, static: bool = False) -> None:
        fn = getattr(owner, name, None)
        if fn is None:
            return

        @functools.wraps(fn)
        def timed_call(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent.setdefault(label, []).append(time.perf_counter() - t)

        setattr(owner, name, staticmethod(timed_call) if static else timed_call)

    t = time.perf_counter()
    import sentence_transformers
    import torch.onnx

    imported = time.perf_counter() - t
    from semsearch.embed import export, model, onnx
    from semsearch.index import Index
    from semsearch.storage import integrity, store

    wrap(model, "_load", "load the model (weights)")
    wrap(model, "weights_fingerprint", "hash the weights (fingerprint)")
    wrap(export, "export", "export() in all")
    wrap(torch.onnx, "export", "  torch.onnx.export (trace, write)")
    wrap(onnx.OnnxEncoder, "__init__", "  onnxruntime session for the check")
    wrap(onnx.OnnxEncoder, "encode", "  check: onnxruntime side")
    wrap(sentence_transformers.SentenceTransformer, "encode", "SentenceTransformer.encode")
    wrap(export, "_place", "  place the files (hash, rename)")
    wrap(export, "to_cache", "copy the export into the cache")
    wrap(export, "_share", "  link the export into the index")
    wrap(integrity, "sha256_file", "sha256 of files (all)")
    wrap(Index, "_embed", "embed the passages", static=True)
    wrap(store.Store, "commit", "commit")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SEMSEARCH_CACHE"] = str(Path(tmp) / "cache")
        t = time.perf_counter()
        with Index.open(Path(tmp) / "index", create=True) as index:
            index.add([str(SEEDS)])
        add = time.perf_counter() - t
    rows = {"import sentence-transformers, torch": [imported]} | spent
    rows["Index.add in all"] = [add]
    rows["the process in all (no interpreter start)"] = [time.perf_counter() - started]
    Path(out_file).write_text(json.dumps({k: [sum(v), len(v)] for k, v in rows.items()}))


def phases(checkout: Path, work: Path) -> dict[str, list[float]]:
    out = work / "phases.json"
    env = env_for(checkout, work / "unused-cache")
    timed([sys.executable, str(THIS), "--phases-worker", str(out)], env)
    result: dict[str, list[float]] = json.loads(out.read_text())
    return result


# --------------------------------------------------------------------------- time left


def eta_worker(files: int, out_file: str) -> None:
    """Index ``files`` BBC articles recording the progress; the early time-left estimates."""
    from tqdm.std import EMA

    from semsearch.index import Index

    articles = sorted(BBC.glob("*/*.txt"))[:: max(1, 2225 // files)][:files]
    events: list[tuple[float, int, int]] = []
    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs"
        docs.mkdir()
        for a in articles:
            shutil.copy(a, docs / f"{a.parent.name}-{a.name}")
        os.environ["SEMSEARCH_CACHE"] = str(Path(tmp) / "cache")
        with Index.open(Path(tmp) / "index", create=True) as index:
            index.add([str(docs)], progress=lambda d, n: events.append((time.perf_counter(), d, n)))
    end, start, total = events[-1][0], events[0][0], events[-1][2]
    ema_dn, ema_dt = EMA(0.3), EMA(0.3)
    last_t, last_n = start, 0
    shown: dict[str, list[float]] = {}
    for t, done, _ in events[1:-1]:
        ema_dn(done - last_n)
        ema_dt(t - last_t)
        last_t, last_n = t, done
        left = end - t
        average = (t - start) / done * (total - done) / left
        moving = ema_dt() / ema_dn() * (total - done) / left
        for share in (0.02, 0.05, 0.1, 0.25, 0.5):
            if done >= share * total and f"{share:.0%}" not in shown:
                shown[f"{share:.0%}"] = [round(average, 2), round(moving, 2)]
    result = {"passages": total, "seconds": round(end - start, 1), "at": shown}
    Path(out_file).write_text(json.dumps(result))


def eta(checkout: Path, work: Path, files: int) -> dict[str, Any]:
    out = work / "eta.json"
    timed(
        [sys.executable, str(THIS), "--eta-worker", str(files), str(out)], env_for(checkout, work)
    )
    result: dict[str, Any] = json.loads(out.read_text())
    return result


# --------------------------------------------------------------------------- report


def median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def table(sides: dict[str, dict[str, Any]]) -> str:
    names = list(sides)
    lines = ["| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]

    def row(label: str, values: list[str]) -> None:
        lines.append(f"| {label} | " + " | ".join(values) + " |")

    def fmt(value: float | None, unit: str, digits: int = 1) -> str:
        return "-" if value is None else f"{value:.{digits}f} {unit}"

    rounds = {n: s["rounds"] for n, s in sides.items()}
    for key, label in (
        ("first_wall", "first index, wall"),
        ("first_cpu", "first index, CPU"),
        ("second_wall", "second index (cache filled), wall"),
        ("second_cpu", "second index (cache filled), CPU"),
    ):
        row(label, [fmt(median(rounds[n], key), "s") for n in names])
    for key, label in (
        ("du_index_kb", "`du -sk` of the index alone"),
        ("du_index_beside_cache_kb", "`du -sk` of the index after the cache"),
        ("du_cache_kb", "`du -sk` of the model cache"),
    ):
        row(label, [fmt((median(rounds[n], key) or 0) / 1024, "MB") for n in names])
    for key, label in (("size_bytes", "info: size_bytes"), ("shared_bytes", "info: shared_bytes")):
        row(
            label,
            [
                fmt((lambda v: None if v is None else v / 2**20)(median(rounds[n], key)), "MB")
                for n in names
            ],
        )
    if all("phases" in s for s in sides.values()):
        labels: list[str] = []
        for s in sides.values():
            labels += [k for k in s["phases"] if k not in labels]
        lines.append(f"| **phases of the first index** (one run each) |{' |' * len(names)}")
        for label in labels:
            cells = []
            for n in names:
                got = sides[n]["phases"].get(label)
                cells.append(
                    "-"
                    if got is None
                    else f"{got[0]:.2f} s" + (f" ({got[1]}x)" if got[1] > 1 else "")
                )
            row(label.replace("  ", "&nbsp;&nbsp;"), cells)
    if all("eta" in s for s in sides.values()):
        first = next(iter(sides.values()))["eta"]
        lines.append(
            f"| **time left shown / time left** ({first['passages']} passages; average pace, "
            f"tqdm's moving average) |{' |' * len(names)}"
        )
        for share in first["at"]:
            row(
                f"at {share} of the passages",
                ["/".join(f"{x:.2f}" for x in sides[n]["eta"]["at"].get(share, [])) for n in names],
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--before", type=Path, help="another checkout to measure beside this one")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--phases", action="store_true", help="time the phases of a first index")
    ap.add_argument("--eta-files", type=int, default=0, help="measure the time left shown")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--phases-worker", help=argparse.SUPPRESS)
    ap.add_argument("--eta-worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phases_worker:
        phases_worker(args.phases_worker)
        return
    if args.eta_worker:
        eta_worker(int(args.eta_worker[0]), args.eta_worker[1])
        return

    checkouts = {"this checkout": ROOT}
    if args.before:
        checkouts = {f"before ({args.before})": args.before.resolve(), **checkouts}
    sides: dict[str, dict[str, Any]] = {name: {"rounds": []} for name in checkouts}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = list(checkouts.items())
            for name, checkout in order if r % 2 == 0 else order[::-1]:
                got = one_round(checkout, Path(tmp) / "round")
                sides[name]["rounds"].append(got)
                print(f"round {r + 1}, {name}: first {got['first_wall']:.1f} s", file=sys.stderr)
        for name, checkout in checkouts.items():
            work = Path(tmp) / "extra"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            if args.phases:
                sides[name]["phases"] = phases(checkout, work)
            if args.eta_files:
                sides[name]["eta"] = eta(checkout, work, args.eta_files)
    if args.json:
        print(json.dumps(sides))
        return
    load = os.getloadavg()[0]
    text = (
        f"First index of seeds/ ({len(list(SEEDS.iterdir()))} file), fresh cache and index, "
        f"median of {args.rounds} rounds; load average {load:.1f} on {os.cpu_count()} cores "
        f"at the end.\n\n{table(sides)}"
    )
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "first_index.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
