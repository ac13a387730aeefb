"""benchmarks/serve.py: its helpers, and one tiny run with the fake embedder."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "serve.py"


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("bench_serve", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def test_percentile_interpolates_between_ranks(bench: ModuleType) -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert bench.percentile(values, 0.5) == 3.0
    assert bench.percentile(values, 0.0) == 1.0
    assert bench.percentile(values, 1.0) == 5.0
    assert bench.percentile(values, 0.95) == pytest.approx(4.8)
    assert bench.percentile([7.0], 0.99) == 7.0
    with pytest.raises(ValueError):
        bench.percentile([], 0.5)


def test_client_queries_cycle_every_question_in_a_fixed_order_per_client(
    bench: ModuleType,
) -> None:
    n = len(bench.QUESTIONS)
    assert len(set(bench.QUESTIONS)) == n >= 50
    first = bench.client_queries(0, n)
    assert sorted(first) == sorted(bench.QUESTIONS)  # one cycle holds each question once
    assert bench.client_queries(0, n) == first  # fixed seed
    assert bench.client_queries(1, n) != first  # shuffled per client
    many = bench.client_queries(3, 2 * n + 5)
    assert len(many) == 2 * n + 5
    assert sorted(many[n : 2 * n]) == sorted(bench.QUESTIONS)


def test_probe_found_needs_the_new_article(bench: ModuleType) -> None:
    word = bench.bench_word(2, 1)
    assert word != bench.bench_word(2, 2) and word != bench.bench_word(1, 2)
    hit = {"path": f"corpus/zqxbench/{word}.txt", "text": "..."}
    assert bench.probe_found({"results": [{"path": "a.txt", "text": "x"}, hit]}, word)
    assert bench.probe_found({"results": [{"path": "b.txt", "text": f"the {word} here"}]}, word)
    assert not bench.probe_found({"results": [{"path": "a.txt", "text": "x"}]}, word)
    assert not bench.probe_found({"results": []}, word)
    other = bench.bench_word(2, 2)
    assert not bench.probe_found({"results": [{"path": f"{other}.txt", "text": other}]}, word)


def test_render_compares_each_run_with_one_client(bench: ModuleType) -> None:
    one = bench.RunFigures(clients=1, latencies_ms=[10.0] * 10, seconds=1.0, probes=2, commits=2)
    eight = bench.RunFigures(
        clients=8, latencies_ms=[20.0] * 40, seconds=2.0, errors=1, stale=1, probes=16, commits=1
    )
    table = bench.render([one, eight], bench.InProcess(8.5, 9.0, 9.6, 2.4, 1.1), ["a note"])
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| clients | queries | p50 ms")
    assert rows[1].split(" | ")[:3] == ["| 1", "10", "10.0"]
    cells = rows[2].strip("| ").split(" | ")
    assert cells[0] == "8" and cells[5] == "20.0" and cells[6] == "2.00x"
    assert cells[7] == "1" and cells[8].startswith("1 of 16 probes (1 of 2 commits finished)")
    assert "p50 8.5 ms" in table
    assert "HTTP overhead at 1 client (p50 HTTP - p50 in-process): 1.5 ms" in table
    assert "paired (each question" in table
    assert "median 2.4 ms with httpx as the client (HTTP p50 9.6 ms), 1.1 ms with the" in table
    assert table.rstrip().endswith("- a note")
    assert "0 errors: 1, NOT met; 0 stale: 1, NOT met" in table
    assert "8 clients >= 1.6x 1 client: 2.00x, met" in table
    assert (
        "HTTP overhead < 2 ms: paired 2.4 ms (httpx client), NOT met; 1.1 ms (http.client), met; "
        "1-client run p50 - in-process p50 1.5 ms, met" in table
    )


def test_a_tiny_run_with_the_fake_embedder(tmp_path: Path, corpus: Path) -> None:
    out = tmp_path / "serve.md"
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        [
            *(sys.executable, str(SCRIPT), "--fake", "--corpus", str(corpus)),
            *("--work", str(tmp_path / "work"), "--out", str(out)),
            *("--clients", "1,2", "--queries", "12", "--inproc-queries", "5"),
            *("--max-seconds", "60"),
        ],
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = out.read_text()
    assert table.strip() in proc.stdout
    rows = [line.strip("| ").split(" | ") for line in table.splitlines() if line[:3] in "| 1| 2"]
    rows = [r for r in rows if r[0] in ("1", "2")]
    assert [r[0] for r in rows] == ["1", "2"]
    assert [r[1] for r in rows] == ["12", "24"]
    # every client probed both commits and found both new articles; nothing failed
    assert [r[7] for r in rows] == ["0", "0"]
    assert [r[8] for r in rows] == ["0 of 2 probes", "0 of 4 probes"]
    assert "HTTP overhead at 1 client" in table
    # the added articles are gone from the copy, so the next run starts from the same corpus
    copy = tmp_path / "work" / corpus.name
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in corpus.iterdir())
