"""What reading a PDF, DOCX and EPUB costs, and whether it grows in proportion to its size.

    python benchmarks/formats.py [--pages 30,300] [--rounds 3]

Makes, in a temporary folder, a PDF of N pages (tests/made_files.simple_pdf: a header,
two paragraphs and a page number a page), a DOCX of the same text (a heading and the
same two paragraphs for each page) and an EPUB of N chapters of the same two
paragraphs, for each N. Times parsing each file (semsearch.ingest.formats.parse, no
model, the libraries already imported) in CPU seconds, the best of 3 (--rounds): on a
machine shared with other work, wall-clock times wander with its load. Measures each
parse's peak memory in a fresh process: tracemalloc's peak of Python allocations, and
the growth of the resident set, which counts the C libraries' memory too (Linux).
Prints a markdown table and the ratios of the largest size to the smallest.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from semsearch.ingest import SourceFile, read_file  # noqa: E402
from semsearch.ingest.formats import parse  # noqa: E402
from tests.made_files import chapter_xhtml, epub_file, sentences, simple_docx, simple_pdf  # noqa: E402


def make(kind: str, pages: int, folder: Path) -> Path:
    path = folder / f"{kind}-{pages}.{kind}"
    if kind == "pdf":
        return simple_pdf(path, pages=pages)
    if kind == "docx":
        return simple_docx(path, sections=pages)
    chapters = [
        (f"c{n}.xhtml", chapter_xhtml(f"Part {n}", [sentences(n * 10 + k, 4) for k in range(2)]))
        for n in range(1, pages + 1)
    ]
    return epub_file(path, chapters, [name for name, _ in chapters], title="A Book")


def source(path: Path) -> SourceFile:
    return read_file(str(path), str(path))


def passages(path: Path) -> int:
    docs, problems = parse(source(path))
    assert not problems, problems
    return sum(len(d.paragraphs) for d in docs)


def best_seconds(path: Path, rounds: int = 3) -> float:
    src = source(path)
    parse(src)  # imports and first-use caches out of the timing
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        parse(src)
        best = min(best, time.process_time() - started)
    return best


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def peak_rss_growth(run: Callable[[], object]) -> float:
    """MB by which ``run()`` raised this process's resident set above where it was: the
    peak (VmHWM) is reset first through /proc/self/clear_refs. (getrusage's ru_maxrss
    cannot say it: a child process inherits its parent's maximum across exec.)"""
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kb("VmRSS")
    run()
    return (_status_kb("VmHWM") - before) / 1024


def measure_memory(path: Path, warm: Path) -> dict[str, float]:
    """In this (fresh) process: parse ``warm`` (a small file of the same kind: imports
    done), then ``path``: the tracemalloc peak of one parse and the growth of the resident
    set of another, in MB (tracemalloc slows parsing and adds its own memory)."""
    src = source(path)
    parse(source(warm))
    rss = peak_rss_growth(lambda: parse(src))
    tracemalloc.start()
    parse(src)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"traced_mb": peak / 2**20, "rss_mb": rss}


def memory_in_subprocess(path: Path, warm: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, __file__, "--measure", str(path), str(warm)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", default="30,300", help="sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="timings kept the best of")
    parser.add_argument("--measure", nargs=2, metavar=("FILE", "WARM"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure_memory(Path(args.measure[0]), Path(args.measure[1]))))
        return
    sizes = [int(n) for n in args.pages.split(",")]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for kind in ("pdf", "docx", "epub"):
            warm = make(kind, 1, folder)
            for pages in sizes:
                path = make(kind, pages, folder)
                seconds = best_seconds(path, args.rounds)
                memory = memory_in_subprocess(path, warm)
                rows.append(
                    {
                        "kind": kind,
                        "pages": pages,
                        "kb": path.stat().st_size / 1024,
                        "passages": passages(path),
                        "seconds": seconds,
                        **memory,
                    }
                )
    print(f"{sys.platform}, Python {sys.version.split()[0]}, {os.cpu_count()} cores\n")
    print("| format | pages | file KB | passages | CPU s | ms/page | peak MB (traced) "
          "| RSS growth MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['kind']} | {r['pages']} | {r['kb']:.0f} | {r['passages']} "
            f"| {r['seconds']:.3f} | {1000 * r['seconds'] / r['pages']:.2f} "
            f"| {r['traced_mb']:.1f} | {r['rss_mb']:.1f} |"
        )
    small, large = min(sizes), max(sizes)
    if small == large:
        return
    print(f"\n| format | pages {large}/{small} | CPU s | peak MB (traced) | RSS growth MB |")
    print("|---|---:|---:|---:|---:|")
    for kind in ("pdf", "docx", "epub"):
        a = next(r for r in rows if r["kind"] == kind and r["pages"] == small)
        b = next(r for r in rows if r["kind"] == kind and r["pages"] == large)

        def ratio(key: str, a: dict[str, Any] = a, b: dict[str, Any] = b) -> str:
            return f"{b[key] / a[key]:.1f}" if a[key] > 0 else "n/a"

        print(
            f"| {kind} | {large / small:.0f} | {ratio('seconds')} | {ratio('traced_mb')} "
            f"| {ratio('rss_mb')} |"
        )


if __name__ == "__main__":
    main()
