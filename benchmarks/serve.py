"""Load and latency of `semsearch serve` on the BBC News folder, while a writer commits.

    .venv/bin/python benchmarks/serve.py                    # 1, 4, 8 clients x 500 queries
    .venv/bin/python benchmarks/serve.py --queries 30       # a quick look
    .venv/bin/python benchmarks/serve.py --clients 1,8 --max-seconds 120
    .venv/bin/python benchmarks/serve.py --fake --corpus DIR --work TMP --out TMP/serve.md

The index is built once, from a copy of the BBC folder with `semsearch index`'s
defaults, under --work (benchmarks/.cache/serve, git-ignored) and reused by
later runs. The server is a separate process on 127.0.0.1 (a free port): the
real `python -m semsearch serve --index DIR --port 0` when this checkout has
it, else the placeholder app of semsearch/serve/app.py under uvicorn (see
`server_command`; --server chooses). Its readiness is `GET /health`.

Each run has N concurrent clients, each its own process with one keep-alive
`httpx.Client` (processes, not threads: a client thread that waits for the GIL
of another client's JSON parsing would add that wait to its own latency, and
the clients must not share a lock the server does not have). Each client sends
--queries questions from QUESTIONS, shuffled per client with a fixed seed, as
the page asks them: `GET /api/search?q=...&k=10` (default mode and highlights).
A writer commits twice per run (at about 1/3 and 2/3 of the queries): it writes
a new article holding a unique word (zqxbench<run><n>) into the copy and runs
`python -m semsearch index COPY --index DIR -q` in its own process. After each
commit has finished (exit 0), each client's next request is a probe,
`q=<that word>&mode=lexical`: a probe that does not find the new article is
stale. Errors are non-200 answers and exceptions. Probes count in errors, not
in latency or throughput. The added articles are removed (and re-indexed)
after each run, so runs are repeatable. Each run is bounded by --queries and
--max-seconds.

The in-process figure is the same questions through `Index.search` (k=10,
hybrid, highlights) in this process, warm, while the server is idle; the HTTP
overhead is the 1-client HTTP p50 minus that p50. Prints a markdown table and
writes it to benchmarks/results/serve.md (or --out).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BBC = ROOT.parent / "shared" / "data" / "bbc"
RESULTS = ROOT / "benchmarks" / "results"
CACHE = ROOT / "benchmarks" / ".cache"
K = 10
BENCH_DIR = "zqxbench"  # the folder of the copy that holds the writer's articles
READY_SECONDS = 180.0  # the server must answer /health by then (model load on a busy machine)
REQUEST_TIMEOUT = 60.0

# What a person asks of a BBC News archive of 2004-2005: five desks, short and long.
QUESTIONS = [
    # business
    "oil prices",
    "why did the dollar fall against the euro",
    "Yukos auction and the Russian government",
    "interest rates Bank of England",
    "which airlines are losing money",
    "US trade deficit record",
    "WorldCom fraud trial of Bernie Ebbers",
    "job cuts at car makers",
    "house prices slowing down in the UK",
    "China economy growth",
    "profits at big banks",
    "Japan recession",
    "Deutsche Boerse bid for the London Stock Exchange",
    # politics
    "general election date",
    "Tony Blair and Gordon Brown rivalry",
    "ID cards bill",
    "asylum and immigration policy of the Conservatives",
    "Michael Howard",
    "fox hunting ban",
    "Iraq war legal advice",
    "house arrest for terror suspects",
    "Liberal Democrats tax plans",
    "what did the chancellor announce in the budget",
    "council tax rises for pensioners",
    "Kilroy-Silk and the UK Independence Party",
    "smoking ban in public places",
    # sport
    "Chelsea league title",
    "who won the Australian Open",
    "England rugby Six Nations defeat",
    "Wenger and Ferguson",
    "doping ban for sprinters",
    "Kelly Holmes",
    "Arsenal Champions League",
    "Wales grand slam",
    "Andy Roddick",
    "football transfer window signings",
    "Olympic bid for London 2012",
    "injury keeps the captain out of the match",
    # tech
    "mobile phone sales",
    "spam and viruses by email",
    "broadband in Britain",
    "video games console launch",
    "how does the iPod compare to other music players",
    "file sharing lawsuits against downloaders",
    "Microsoft security update",
    "digital music downloads chart",
    "search engine Google",
    "high definition television",
    "blogs",
    "phishing scams targeting bank customers",
    # entertainment
    "Oscar nominations",
    "best film at the Baftas",
    "box office hit",
    "Brit awards winners",
    "which band topped the singles chart",
    "West End musical",
    "Band Aid single for charity",
    "actor dies aged",
    "TV talent show",
    "Jamie Foxx Ray Charles",
    "novel wins book prize",
    "Eminem",
]


# ---- figures ---------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, linearly interpolated (as speed.py)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def client_queries(client: int, n: int, seed: int = 10) -> list[str]:
    """The ``n`` questions of one client: QUESTIONS cycled, each cycle shuffled (fixed seed)."""
    rng = random.Random(seed * 1000 + client)
    out: list[str] = []
    while len(out) < n:
        cycle = list(QUESTIONS)
        rng.shuffle(cycle)
        out += cycle
    return out[:n]


def bench_word(run: int, n: int) -> str:
    """The unique word of commit ``n`` of run ``run``: found nowhere else in the corpus."""
    return f"{BENCH_DIR}{run}x{n}"


def probe_found(answer: dict[str, Any], word: str) -> bool:
    """Whether a search answer (`semsearch query --json`'s object) holds the article of ``word``."""
    for hit in answer.get("results") or []:
        if word in str(hit.get("path", "")) or word in str(hit.get("text", "")):
            return True
    return False


@dataclass
class RunFigures:
    """One run: N clients, their latencies, and what went wrong."""

    clients: int
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0  # from the first client's first query to the last client's last
    errors: int = 0
    stale: int = 0
    probes: int = 0
    commits: int = 0  # writer commits that finished (exit 0) during the run
    planned_commits: int = 2
    stopped_early: bool = False
    error_samples: list[str] = field(default_factory=list)
    load_before: float = 0.0
    load_after: float = 0.0
    kind: str = "process"  # how the clients ran: processes or threads of the benchmark

    @property
    def queries(self) -> int:
        return len(self.latencies_ms)

    @property
    def throughput(self) -> float:
        return self.queries / self.seconds if self.seconds > 0 else 0.0


@dataclass
class InProcess:
    """Warm `Index.search` in the benchmark process (ms), and the same questions over HTTP
    (one client), each pair back to back."""

    p50: float
    p95: float
    paired_http_p50: float
    paired_overhead: float  # median over the questions of (HTTP - in process)
    paired_lean_overhead: float = 0.0  # the same with the stdlib's http.client as the client


def render(
    runs: Sequence[RunFigures],
    inproc: InProcess | None,
    notes: Sequence[str] = (),
) -> str:
    """The markdown table of the runs, then one line per figure or note."""
    lines = [
        "| clients | queries | p50 ms | p95 ms | p99 ms | throughput q/s "
        "| throughput vs 1 client | errors | stale |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    one = next((r for r in runs if r.clients == 1), None)
    for r in runs:
        lat = r.latencies_ms
        p50, p95, p99 = (
            (f"{percentile(lat, q):.1f}" for q in (0.5, 0.95, 0.99)) if lat else ("-",) * 3
        )
        ratio = f"{r.throughput / one.throughput:.2f}x" if one and one.throughput else "-"
        queries = f"{r.queries:,}" + (" (stopped at --max-seconds)" if r.stopped_early else "")
        stale = f"{r.stale} of {r.probes} probes"
        if r.commits < r.planned_commits:
            stale += f" ({r.commits} of {r.planned_commits} commits finished)"
        lines.append(
            f"| {r.clients} | {queries} | {p50} | {p95} | {p99} | {r.throughput:.1f} "
            f"| {ratio} | {r.errors} | {stale} |"
        )
    lines.append("")
    if inproc:
        lines.append(
            f"- in-process warm `Index.search` (same questions, k={K}, hybrid, highlights): "
            f"p50 {inproc.p50:.1f} ms, p95 {inproc.p95:.1f} ms"
        )
        if one and one.latencies_ms:
            overhead = percentile(one.latencies_ms, 0.5) - inproc.p50
            lines.append(
                f"- HTTP overhead at 1 client (p50 HTTP - p50 in-process): {overhead:.1f} ms"
            )
        lines.append(
            "- HTTP overhead, paired (each question in process and over HTTP back to back, "
            f"server idle otherwise): median {inproc.paired_overhead:.1f} ms with httpx as the "
            f"client (HTTP p50 {inproc.paired_http_p50:.1f} ms), "
            f"{inproc.paired_lean_overhead:.1f} ms with the stdlib's http.client"
        )
    lines.append("- goals (issue 10): " + "; ".join(goals(runs, inproc)))
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines)


def goals(runs: Sequence[RunFigures], inproc: InProcess | None) -> list[str]:
    """Each goal of the issue with what was measured and whether it was met."""

    def mark(ok: bool) -> str:
        return "met" if ok else "NOT met"

    errors = sum(r.errors for r in runs)
    stale = sum(r.stale for r in runs)
    out = [f"0 errors: {errors}, {mark(errors == 0)}", f"0 stale: {stale}, {mark(stale == 0)}"]
    one = next((r for r in runs if r.clients == 1), None)
    eight = next((r for r in runs if r.clients == 8), None)
    if one and eight and one.throughput:
        ratio = eight.throughput / one.throughput
        out.append(f"8 clients >= 1.6x 1 client: {ratio:.2f}x, {mark(ratio >= 1.6)}")
    if inproc:
        paired = inproc.paired_overhead
        lean = inproc.paired_lean_overhead
        line = (
            f"HTTP overhead < 2 ms: paired {paired:.1f} ms (httpx client), {mark(paired < 2)}; "
            f"{lean:.1f} ms (http.client), {mark(lean < 2)}"
        )
        if one and one.latencies_ms:
            overhead = percentile(one.latencies_ms, 0.5) - inproc.p50
            line += f"; 1-client run p50 - in-process p50 {overhead:.1f} ms, {mark(overhead < 2)}"
        out.append(line)
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


# ---- the index and the corpus copy -----------------------------------------------------


def child_env() -> dict[str, str]:
    """The environment of every child process: this checkout first on the path, offline."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1"}


def semsearch_cmd(fake: bool) -> list[str]:
    """`python -m semsearch`, or the same CLI with the fake embedder (tests/fake_cli.py)."""
    if fake:
        return [sys.executable, str(ROOT / "tests" / "fake_cli.py")]
    return [sys.executable, "-m", "semsearch"]


def index_copy(copy: Path, index: Path, fake: bool) -> float:
    """`semsearch index COPY --index DIR -q` in its own process; its wall seconds."""
    start = time.perf_counter()
    proc = subprocess.run(
        [*semsearch_cmd(fake), "index", str(copy), "--index", str(index), "-q"],
        env=child_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"semsearch index failed ({proc.returncode}): {proc.stderr.strip()}")
    return time.perf_counter() - start


def prepare(work: Path, corpus: Path, fake: bool) -> tuple[Path, Path, str]:
    """The copy of the corpus and its index under ``work``, built once; (copy, index, note)."""
    work.mkdir(parents=True, exist_ok=True)
    if work.resolve().is_relative_to(CACHE.resolve()):
        (CACHE / ".gitignore").write_text("*\n")
    copy, index, stamp = work / corpus.resolve().name, work / "index", work / "built.json"
    wanted = {"corpus": str(corpus.resolve()), "fake": fake}
    if stamp.exists() and json.loads(stamp.read_text()) == wanted and index.exists():
        if remove_bench_articles(copy):  # an interrupted run left its articles behind
            index_copy(copy, index, fake)
        return copy, index, f"index reused from {index}"
    for stale in (copy, index, stamp):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    shutil.copytree(corpus, copy, ignore=shutil.ignore_patterns("README*"))
    print(f"building the index of {copy} (once) ...", file=sys.stderr, flush=True)
    seconds = index_copy(copy, index, fake)
    stamp.write_text(json.dumps(wanted))
    return copy, index, f"index built in {seconds:.0f} s at {index}"


def remove_bench_articles(copy: Path) -> bool:
    folder = copy / BENCH_DIR
    if folder.exists():
        shutil.rmtree(folder)
        return True
    return False


def write_bench_article(copy: Path, word: str) -> Path:
    folder = copy / BENCH_DIR
    folder.mkdir(exist_ok=True)
    path = folder / f"{word}.txt"
    path.write_text(
        f"Benchmark article {word}\n\n"
        f"The word {word} appears in this article only, added while the server was answering.\n",
        encoding="utf-8",
    )
    return path


# ---- the server ------------------------------------------------------------------------


_LISTENING = re.compile(r"https?://127\.0\.0\.1:(\d+)/")


def has_serve_command(fake: bool) -> bool:
    """Whether this checkout's CLI has `semsearch serve`."""
    proc = subprocess.run(
        [*semsearch_cmd(fake), "serve", "--help"],
        env=child_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.returncode == 0 and "--port" in proc.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_command(index: Path, fake: bool, real: bool) -> tuple[list[str], int | None]:
    """The server's command line, and its port if this side chose it (None: read it from
    the server's `semsearch: serving ... at http://127.0.0.1:PORT/` line on stderr)."""
    if real:
        return [*semsearch_cmd(fake), "serve", "--index", str(index), "--port", "0"], None
    port = free_port()
    code = (
        ("import tests.fake_cli as f; f.install(); " if fake else "")
        + "import uvicorn; from semsearch.index import Index; "
        "from semsearch.serve.service import Service; from semsearch.serve.app import create_app; "
        f"uvicorn.run(create_app(Service(Index.open({str(index)!r}))), host='127.0.0.1', "
        f"port={port}, log_level='warning')"
    )
    return [sys.executable, "-c", code], port


class Server:
    """The server process; its stderr drained by a thread (it may log one line a request)."""

    def __init__(self, index: Path, fake: bool, real: bool) -> None:
        cmd, port = server_command(index, fake, real)
        self.real = real
        self.tail: list[str] = []
        self._port = threading.Event()
        self.port = port or 0
        if port:
            self._port.set()
        self.proc = subprocess.Popen(
            cmd,
            env=child_env(),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.tail = [*self.tail[-20:], line.rstrip()]
            m = _LISTENING.search(line) if not self._port.is_set() else None
            if m:
                self.port = int(m.group(1))
                self._port.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, seconds: float = READY_SECONDS) -> dict[str, Any]:
        """Poll /health until it answers 200 (bounded); its JSON."""
        import httpx

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}): {self.tail}")
            if self._port.is_set():
                try:
                    r = httpx.get(f"{self.url}/health", timeout=5)
                    if r.status_code == 200:
                        return dict(r.json())
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        raise RuntimeError(f"the server did not answer /health within {seconds:.0f} s: {self.tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


# ---- the clients -----------------------------------------------------------------------


def client_loop(
    client: int,
    url: str,
    n: int,
    run: int,
    planned_commits: int,
    deadline: Any,
    go: Any,
    ready: Any,
    done_queries: Any,
    commits: Any,
    writer_done: Any,
    results: Any,
) -> None:
    """One client (its own process): warm its connection, wait for ``go``, send ``n``
    questions, probe each commit once it has finished; put its figures on ``results``."""
    import httpx

    queries = client_queries(client, n)
    latencies: list[float] = []
    errors, stale, probes = 0, 0, 0
    samples: list[str] = []
    probed = 0
    first = last = 0.0
    stopped = False

    def probe_pending(http: httpx.Client) -> None:
        nonlocal probed, errors, stale, probes
        finished = commits.value
        while probed < finished:
            probed += 1
            word = bench_word(run, probed)
            probes += 1
            try:
                r = http.get("/api/search", params={"q": word, "k": K, "mode": "lexical"})
                if r.status_code != 200:
                    errors += 1
                    samples.append(f"probe {r.status_code}: {r.text[:200]}")
                elif not probe_found(r.json(), word):
                    stale += 1
            except Exception as exc:
                errors += 1
                samples.append(f"probe {type(exc).__name__}: {exc}")

    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT) as http:
        with contextlib.suppress(httpx.HTTPError):
            http.get("/api/search", params={"q": "warm up", "k": K})
        ready.release()
        go.wait()
        first = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process of the machine
        for q in queries:
            if time.time() > deadline.value:
                stopped = True
                break
            probe_pending(http)
            t = time.perf_counter()
            try:
                r = http.get("/api/search", params={"q": q, "k": K})
                ms = (time.perf_counter() - t) * 1000
                if r.status_code == 200:
                    r.json()
                    latencies.append(ms)
                else:
                    errors += 1
                    samples.append(f"{r.status_code}: {r.text[:200]}")
            except Exception as exc:
                errors += 1
                samples.append(f"{type(exc).__name__}: {exc}")
            with done_queries.get_lock():
                done_queries.value += 1
        last = time.monotonic()
        # the commits that finish after this client's last query still get their probe
        while probed < planned_commits and time.time() < deadline.value:
            probe_pending(http)
            if writer_done.is_set() and probed >= commits.value:
                break
            time.sleep(0.05)
        probe_pending(http)
    results.put(
        {
            "client": client,
            "latencies_ms": latencies,
            "first": first,
            "last": last,
            "errors": errors,
            "stale": stale,
            "probes": probes,
            "stopped": stopped,
            "samples": samples[:5],
        }
    )


def one_run(
    run: int,
    clients: int,
    url: str,
    n: int,
    max_seconds: float,
    copy: Path,
    index: Path,
    fake: bool,
    planned_commits: int = 2,
    threads: bool = False,
) -> RunFigures:
    """``clients`` client processes (or threads of this one) x ``n`` questions while the
    writer commits twice."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    go, writer_done = ctx.Event(), ctx.Event()
    ready = ctx.Semaphore(0)
    done_queries = ctx.Value("i", 0)
    commits = ctx.Value("i", 0)
    results = ctx.Queue()
    figures = RunFigures(clients=clients, planned_commits=planned_commits)
    figures.load_before = os.getloadavg()[0]
    deadline = ctx.Value("d", 0.0)  # set once every client is ready (spawning is not timed)
    kind: Any = threading.Thread if threads else ctx.Process
    procs = [
        kind(
            target=client_loop,
            args=(
                *(c, url, n, run, planned_commits),
                *(deadline, go, ready, done_queries, commits, writer_done, results),
            ),
        )
        for c in range(clients)
    ]
    for p in procs:
        p.start()
    start_bound = time.time() + 120
    for _ in procs:
        if not ready.acquire(timeout=max(1.0, start_bound - time.time())):
            raise RuntimeError("the clients did not start in time")
    run_deadline = deadline.value = time.time() + max_seconds
    go.set()

    total = clients * n
    triggers = [total * (i + 1) // (planned_commits + 1) for i in range(planned_commits)]
    try:
        for i, at in enumerate(triggers, start=1):
            while done_queries.value < at and time.time() < run_deadline:
                if not any(p.is_alive() for p in procs):
                    break
                time.sleep(0.02)
            if time.time() >= run_deadline:
                break
            write_bench_article(copy, bench_word(run, i))
            try:
                index_copy(copy, index, fake)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                figures.error_samples.append(f"writer: {exc}")
                break
            with commits.get_lock():
                commits.value += 1
    finally:
        writer_done.set()
    figures.commits = commits.value
    answers = [results.get(timeout=max_seconds + 180) for _ in procs]
    for p in procs:
        p.join(30)
    figures.kind = "thread" if threads else "process"
    figures.load_after = os.getloadavg()[0]
    for a in sorted(answers, key=lambda a: a["client"]):
        figures.latencies_ms += a["latencies_ms"]
        figures.errors += a["errors"]
        figures.stale += a["stale"]
        figures.probes += a["probes"]
        figures.stopped_early |= a["stopped"]
        figures.error_samples += a["samples"]
    figures.seconds = max(a["last"] for a in answers) - min(a["first"] for a in answers)
    # the articles go, so the next run starts from the same corpus
    if remove_bench_articles(copy):
        index_copy(copy, index, fake)
    return figures


# ---- in process ------------------------------------------------------------------------


def inprocess(index: Path, n: int, fake: bool, url: str) -> InProcess:
    """The first client's questions through `Index.search` in this process, warm, while
    the server is idle; each one also sent to the server right before or after (the order
    alternating), so that drift of a shared machine hits both sides of the overhead alike."""
    import httpx

    if fake:
        sys.path.insert(0, str(ROOT))
        import tests.fake_cli

        tests.fake_cli.install()
    from semsearch.index import Index

    local: list[float] = []
    remote: list[float] = []
    lean: list[float] = []
    address = urllib.parse.urlsplit(url)
    raw = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port)
    with Index.open(index) as idx, httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT) as http_:

        def in_process(q: str) -> None:
            t = time.perf_counter()
            idx.search(q, k=K, mode="hybrid", highlight=True)
            local.append((time.perf_counter() - t) * 1000)

        def over_http(q: str) -> None:
            t = time.perf_counter()
            r = http_.get("/api/search", params={"q": q, "k": K})
            remote.append((time.perf_counter() - t) * 1000)
            r.raise_for_status()

        def over_stdlib(q: str) -> None:
            # the same request through the stdlib's lean client: what the server adds,
            # with less of the client's own Python (httpx's) in the figure
            target = "/api/search?" + urllib.parse.urlencode({"q": q, "k": K})
            t = time.perf_counter()
            raw.request("GET", target)
            answer = raw.getresponse()
            answer.read()
            lean.append((time.perf_counter() - t) * 1000)
            if answer.status != 200:
                raise RuntimeError(f"GET {target}: {answer.status}")

        for q in QUESTIONS[:10]:
            idx.search(q, k=K, mode="hybrid", highlight=True)
            http_.get("/api/search", params={"q": q, "k": K})
            over_stdlib(q)
        lean.clear()
        sides = (in_process, over_http, over_stdlib)
        for i, q in enumerate(client_queries(0, n)):
            for side in sides[i % 3 :] + sides[: i % 3]:  # each side first as often
                side(q)
    raw.close()
    paired = [r - m for r, m in zip(remote, local, strict=True)]
    paired_lean = [r - m for r, m in zip(lean, local, strict=True)]
    return InProcess(
        p50=percentile(local, 0.5),
        p95=percentile(local, 0.95),
        paired_http_p50=percentile(remote, 0.5),
        paired_overhead=percentile(paired, 0.5),
        paired_lean_overhead=percentile(paired_lean, 0.5),
    )


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clients", default="1,4,8", help="comma-separated client counts")
    ap.add_argument("--queries", type=int, default=500, help="questions per client per run")
    ap.add_argument("--max-seconds", type=float, default=240.0, help="bound of each run")
    ap.add_argument("--inproc-queries", type=int, default=500)
    ap.add_argument("--corpus", type=Path, default=BBC, help="folder of articles (a copy is used)")
    ap.add_argument("--work", type=Path, help="cache of the copy and its index")
    ap.add_argument("--out", type=Path, default=RESULTS / "serve.md")
    ap.add_argument("--fake", action="store_true", help="the fake embedder (tests/fakes.py)")
    ap.add_argument(
        "--server",
        choices=("auto", "real", "placeholder"),
        default="auto",
        help="real: `semsearch serve`; placeholder: uvicorn on create_app; auto: real if present",
    )
    ap.add_argument(
        "--threads",
        action="store_true",
        help="clients as threads of this process (default: one process each)",
    )
    ap.add_argument("--note", action="append", default=[], help="a line for the results")
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = ap.parse_args(argv)
    counts = [int(c) for c in args.clients.split(",") if c.strip()]
    if not counts or min(counts) < 1 or args.queries < 1:
        sys.exit("--clients and --queries: whole numbers from 1")
    if not args.corpus.is_dir():
        sys.exit(f"the corpus folder is missing: {args.corpus}")
    work = args.work or CACHE / ("serve-fake" if args.fake else "serve")
    os.environ["HF_HUB_OFFLINE"] = "1"

    copy, index, built = prepare(work, args.corpus, args.fake)
    real = args.server == "real" or (args.server == "auto" and has_serve_command(args.fake))
    server = Server(index, args.fake, real)
    try:
        health = server.wait_ready()
        print(f"server pid {server.proc.pid} at {server.url}", file=sys.stderr, flush=True)
        inproc = inprocess(index, args.inproc_queries, args.fake, server.url)
        runs: list[RunFigures] = []
        for run, clients in enumerate(counts, start=1):
            print(
                f"run {run}: {clients} client(s) x {args.queries} ...", file=sys.stderr, flush=True
            )
            runs.append(
                one_run(
                    run,
                    clients,
                    server.url,
                    args.queries,
                    args.max_seconds,
                    copy,
                    index,
                    args.fake,
                    threads=args.threads,
                )
            )
    finally:
        server.stop()

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    notes = [
        f"server: {'`semsearch serve`' if real else 'placeholder app (uvicorn on create_app)'}, "
        f"{health.get('passages', '?'):,} passages; {built.split(' at ')[0]}",
        f"clients: {'threads of one process' if args.threads else 'one process each'}, "
        f"one keep-alive httpx.Client each; GET /api/search?q=...&k={K}",
        f"CPU: {cpu_model()}, {cores} cores; load average (1 min) before/after each run: "
        + ", ".join(f"{r.load_before:.1f}/{r.load_after:.1f}" for r in runs),
        "command: `" + shlex.join(["python", *sys.argv]) + "`",
    ]
    notes += args.note
    notes += [f"{r.clients} clients, error: {s}" for r in runs for s in r.error_samples[:3]]
    table = render(runs, inproc, notes)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table + "\n")
    print(table)
    if args.json:
        print(
            json.dumps(
                {
                    "inproc_p50_ms": inproc.p50,
                    "inproc_p95_ms": inproc.p95,
                    "paired_overhead_ms": inproc.paired_overhead,
                    "runs": [
                        {
                            "clients": r.clients,
                            "queries": r.queries,
                            "p50_ms": percentile(r.latencies_ms, 0.5) if r.latencies_ms else None,
                            "throughput": r.throughput,
                            "errors": r.errors,
                            "stale": r.stale,
                            "probes": r.probes,
                            "commits": r.commits,
                        }
                        for r in runs
                    ],
                }
            )
        )


if __name__ == "__main__":
    main()
