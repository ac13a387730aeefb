"""Torture: kills, full disks, readers against a writer, damaged files, a hostile corpus.

    .venv/bin/python benchmarks/torture.py                  # the full run (about 25 min here)
    .venv/bin/python benchmarks/torture.py --quick          # a few trials of each part
    .venv/bin/python benchmarks/torture.py --trials 50 --seed 1 --json
    .venv/bin/python benchmarks/torture.py --parts kill,damage

The product is driven as a black box: the semsearch command of this checkout
(``python -m semsearch``, PYTHONPATH = the repository root), the real bundled
model, a subset of the BBC News folder (../shared/data/bbc) plus seeds/. The
parts, each with its goal:

1. kill: writes of every kind (add, modify, delete, --rebuild, --rebuild
   --model with a second model, index-type conversion, an int8 build), each
   timed once uncut, then SIGKILLed at a uniformly random moment of that
   duration, each on a fresh copy of the same index. After each kill:
   ``info`` and a (hybrid, the default) query; the counts must be exactly those
   before or after the write and the answers those of that same state, as
   measured on uncut copies (goal: every trial). The second model is the
   bundled one with one weight tensor perturbed: same architecture, other
   vectors, the dangerous case.
2. disk: writes under RLIMIT_FSIZE at several limits below the largest file
   the write needs (SIGXFSZ ignored, so writes fail with EFBIG), and into a
   small tmpfs when ``mount`` works here: the old index must open with the
   same counts and answers, unless the write completed (goal: every trial).
3. rw: one writer process adding, editing and deleting articles and 8 reader
   processes each searching one open Index (re-opened now and then), plus
   CLI queries, for a fixed time: 0 reader errors, 0 empty results.
4. damage: every file of the index in turn truncated, bit-flipped, deleted:
   ``info`` and queries either answer exactly as before or fail with one
   line naming ``--rebuild``; never a traceback, never another answer
   without an error. ``semsearch check``, where it exists, is run too.
5. hostile: a folder of binary files named .txt, invalid UTF-8, NUL bytes, a
   10 MB single line, a FIFO, symlink loops, names with a newline and with
   invalid bytes, a 200-level deep tree and broken JSON Lines among normal
   articles: 0 tracebacks, 0 hangs (every command has a time limit), and
   every readable paragraph indexed (compared file by file with an index of
   clean copies of the readable files).

Prints a table per part (or one JSON object with --json) and writes them to
benchmarks/results/torture.md. tests/test_torture.py runs the same parts,
small, with fake embedders.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BBC = ROOT.parent / "shared" / "data" / "bbc"
SEEDS = ROOT / "seeds"
RESULTS = ROOT / "benchmarks" / "results"
THIS = Path(__file__).resolve()

QUERY = "oil prices hurt the economy"
READER_QUERIES = [
    "oil prices hurt the economy",
    "who won the football match",
    "election campaign promises",
    "new mobile phone technology",
    "film awards ceremony",
    "interest rates and inflation",
    "the parade in Beijing",
]
SCORE_TOL = 1e-3  # answers are "the same" when the same passages score within this
TOPICS = ("business", "entertainment", "politics", "sport", "tech")
KIB = 1024
MIB = 1024 * 1024


# --------------------------------------------------------------------------- running the CLI


@dataclass
class Run:
    """One finished (or timed-out) command."""

    args: list[str]
    code: int | None  # None: still running at its time limit (a hang), killed
    out: str
    err: str
    seconds: float

    @property
    def hung(self) -> bool:
        return self.code is None

    @property
    def ok(self) -> bool:
        """It did its work: exit 0, or a query that found nothing (exit 1 and no error line,
        as grep: semsearch's errors exit 2)."""
        found_nothing = self.code == 1 and self.args[:1] == ["query"] and not self.error_lines()
        return self.code == 0 or found_nothing

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.err + self.out

    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]

    @property
    def one_line_error(self) -> bool:
        lines = self.error_lines()
        return (
            not self.ok
            and self.code is not None
            and not self.traceback
            and len(lines) == 1
            and lines[0].startswith("error: ")
        )

    def summary(self, width: int = 110) -> str:
        """The line that tells what happened: the error, or the exception of a traceback."""
        if self.hung:
            return f"still running after {self.seconds:.0f} s (killed)"
        lines = self.error_lines()
        if self.traceback:
            tail = [ln for ln in lines if ln and not ln.startswith(" ")]
            text = "traceback: " + (tail[-1] if tail else "?")
        elif lines:
            text = lines[0] + (f" (+{len(lines) - 1} more lines)" if len(lines) > 1 else "")
        else:
            text = f"exit {self.code}"
        return text if len(text) <= width else text[: width - 1] + "…"

    def verdict(self) -> str:
        """hang, traceback, ok, error --rebuild, error (one line without --rebuild), messy."""
        if self.hung:
            return "HANG"
        if self.traceback:
            return "TRACEBACK"
        if self.ok:
            return "ok"
        if self.one_line_error:
            return "error --rebuild" if "--rebuild" in self.error_lines()[0] else "error"
        return "messy"


def _kill_group(proc: subprocess.Popen[Any]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


class Harness:
    """Runs the semsearch command (or a stand-in, in tests) with a controlled environment."""

    def __init__(
        self,
        work: Path,
        command: Sequence[str] | None = None,
        *,
        cache: Path | None = None,
        fake: bool = False,
        timeout: float = 900.0,
    ) -> None:
        self.work = work
        self.command = list(command) if command else [sys.executable, "-m", "semsearch"]
        self.fake = fake  # workers use tests/fake_cli.py's fakes instead of the model
        self.timeout = timeout
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        env["SEMSEARCH_CACHE"] = str(cache or work / "cache")
        env["HF_HUB_OFFLINE"] = "1"
        env["TOKENIZERS_PARALLELISM"] = "false"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("SEMSEARCH_INDEX", None)
        self.env = env
        self._check: bool | None = None
        self._started: list[subprocess.Popen[bytes]] = []  # killed by close() if still running

    def _spawn(self, cmd: Sequence[str], **extra: Any) -> subprocess.Popen[bytes]:
        """Start ``cmd`` in its own process group, in the work folder, and track it
        (output piped unless ``extra`` says otherwise)."""
        options: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **extra}
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=str(self.work),
            start_new_session=True,
            **options,
        )
        self._started = [p for p in self._started if p.poll() is None]
        self._started.append(proc)
        return proc

    def close(self) -> None:
        """Kill whatever this harness started and is still running (each in its own group)."""
        for proc in self._started:
            if proc.poll() is None:
                _kill_group(proc)
                proc.wait()
        self._started = []

    def run(
        self,
        *args: str,
        timeout: float | None = None,
        preexec: Callable[[], None] | None = None,
        command: Sequence[str] | None = None,
    ) -> Run:
        cmd = [*(command or self.command), *args]
        started = time.monotonic()
        proc = self._spawn(cmd, preexec_fn=preexec)
        try:
            out, err = proc.communicate(timeout=timeout or self.timeout)
            code: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, err = proc.communicate()
            code = None
        return Run(
            list(args),
            code,
            out.decode("utf-8", "replace"),
            err.decode("utf-8", "replace"),
            time.monotonic() - started,
        )

    def start(self, *args: str, log: Path) -> subprocess.Popen[bytes]:
        """Start a command to be killed; its output goes to ``log``."""
        with open(log, "wb") as fh:
            return self._spawn([*self.command, *args], stdout=fh, stderr=subprocess.STDOUT)

    def worker(self, role: str, config: dict[str, Any]) -> subprocess.Popen[bytes]:
        """A reader or writer process of part 3 (this file, ``--worker ROLE``)."""
        config = {**config, "fake": self.fake}
        return self._spawn([sys.executable, str(THIS), "--worker", role, json.dumps(config)])

    def has_check(self) -> bool:
        """True when this semsearch has a `check` command taking --index."""
        if self._check is None:
            r = self.run("check", "--help", timeout=120)
            self._check = r.code == 0 and "--index" in r.out
        return self._check

    def check(self, index_dir: Path) -> str:
        """`semsearch check` on an index: 'flags it', 'passes it', or why not run."""
        if not self.has_check():
            return "n/a"
        r = self.run("check", "--index", str(index_dir))
        if r.hung or r.traceback:
            return r.verdict()
        return "passes it" if r.code == 0 else "flags it"

    def index(self, corpus: Path, index_dir: Path, *extra: str, **kw: Any) -> Run:
        return self.run("index", str(corpus), "--index", str(index_dir), "-q", *extra, **kw)


# --------------------------------------------------------------------------- index states

Hit = tuple[str, str, int, int, int, float]  # path, key, paragraph, start, end, score


@dataclass(frozen=True)
class State:
    """What a user can see of an index: counts, identity, and two answers."""

    counts: tuple[int, int, int]  # documents, passages, files
    identity: tuple[str, ...]  # model, backend, precision, index type, dimension
    updated_at: str
    answers: dict[str, tuple[Hit, ...]]

    def show(self) -> str:
        return f"{self.counts[0]} docs / {self.counts[1]} passages"


def parse_hits(stdout: str) -> tuple[Hit, ...]:
    data = json.loads(stdout)
    return tuple(
        (
            str(h["path"]),
            str(h.get("key") or ""),
            int(h["paragraph"]),
            int(h["start"]),
            int(h["end"]),
            float(h["score"]),
        )
        for h in data["results"]
    )


def parse_info(stdout: str) -> tuple[tuple[int, int, int], tuple[str, ...], str]:
    i = json.loads(stdout)
    counts = (int(i["documents"]), int(i["passages"]), int(i["files"]))
    identity = tuple(
        str(i.get(k, "")) for k in ("model", "backend", "precision", "index_type", "dimension")
    )
    return counts, identity, str(i.get("updated_at", ""))


def same_hits(a: Sequence[Hit], b: Sequence[Hit], tol: float = SCORE_TOL) -> bool:
    """The same passages with scores within ``tol`` (so order up to near-ties)."""
    if len(a) != len(b):
        return False
    left = {h[:5]: h[5] for h in a}
    right = {h[:5]: h[5] for h in b}
    return left.keys() == right.keys() and all(abs(left[k] - right[k]) <= tol for k in left)


def same_answers(got: State, ref: State) -> bool:
    """``got`` answers every query it asked as ``ref`` does."""
    return all(m in ref.answers and same_hits(got.answers[m], ref.answers[m]) for m in got.answers)


MODES = ("dense", "hybrid")  # the references hold both; damaged files are asked both
AFTER_A_WRITE = ("hybrid",)  # after a kill or a failed write: `info` and the default query


def query_args(index_dir: Path, mode: str, k: int = 10) -> list[str]:
    return ["query", QUERY, "--index", str(index_dir), "--json", "-k", str(k), "--mode", mode]


def read_state(
    h: Harness, index_dir: Path, modes: Sequence[str] = MODES, timeout: float = 300
) -> tuple[State | None, Run]:
    """``info`` and a query in each mode; (None, the failed run) when one of them fails."""
    info = h.run("info", "--index", str(index_dir), "--json", timeout=timeout)
    if info.code != 0:
        return None, info
    counts, identity, updated = parse_info(info.out)
    answers = {}
    last = info
    for mode in modes:
        last = h.run(*query_args(index_dir, mode), timeout=timeout)
        if not last.ok:
            return None, last
        answers[mode] = parse_hits(last.out)
    return State(counts, identity, updated, answers), last


def which_state(got: State, before: State, after: State) -> str:
    """'before', 'after' (by counts, identity and commit time) or 'neither'."""
    if (got.counts, got.identity, got.updated_at) == (
        before.counts,
        before.identity,
        before.updated_at,
    ):
        return "before"
    if (got.counts, got.identity) == (after.counts, after.identity) and (
        got.updated_at != before.updated_at
    ):
        return "after"
    return "neither"


# --------------------------------------------------------------------------- data


def bbc_articles(count: int, skip: int = 0) -> list[Path]:
    """``count`` BBC articles taken in turn from the five topic folders (after ``skip``)."""
    per_topic = [sorted((BBC / t).glob("*.txt")) for t in TOPICS]
    order = [
        files[i] for i in range(max(map(len, per_topic))) for files in per_topic if i < len(files)
    ]
    return order[skip : skip + count]


def copy_articles(articles: Sequence[Path], target: Path) -> None:
    for path in articles:
        dest = target / path.parent.name / path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)


def write_article(path: Path, title: str, paragraphs: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(title + "\n\n" + "\n\n".join(paragraphs) + "\n", encoding="utf-8")


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for name in os.listdir(folder):
        with contextlib.suppress(OSError):
            st = os.stat(folder / name)
            out[name] = (st.st_size, st.st_mtime_ns)
    return out


def rmtree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


# --------------------------------------------------------------------------- the set-up


@dataclass
class Kind:
    """A kind of write: how the corpus changes before it, and the extra index arguments."""

    name: str
    args: list[str] = field(default_factory=list)
    change: Callable[[Path], None] | None = None
    warm_up: bool = False  # run once before timing (it fills the export cache)


@dataclass
class Uncut:
    """A kind of write run to its end on a copy of the prepared index."""

    run: Run
    state: State | None
    need: int  # the largest file the write wrote, bytes
    folder: Path | None  # a copy of the index it left


class Setup:
    """The prepared index and corpus every part starts from (always at the same paths)."""

    def __init__(
        self, h: Harness, articles: int, extras: int, *, second_model: str | None = None
    ) -> None:
        self.h = h
        self.work = h.work
        self.pristine = self.work / "pristine"
        self.corpus = self.work / "corpus"  # every write reads here: files are known by path
        self.prepared = self.work / "prepared"
        self.trial = self.work / "trial"
        base = bbc_articles(articles)
        if len(base) < articles:
            raise SystemExit(f"found {len(base)} of {articles} BBC articles in {BBC}")
        self.extras = bbc_articles(extras, skip=articles)
        self.pool = bbc_articles(200, skip=articles + extras)
        rmtree(self.pristine)
        copy_articles(base, self.pristine)
        shutil.copytree(SEEDS, self.pristine / "seeds")
        self.second_model = second_model
        self._uncut: dict[str, Uncut] = {}
        self.build_seconds = 0.0
        self.before: State | None = None

    def prepare(self) -> State:
        """Index the pristine corpus once (the export cache is filled on the way)."""
        self.reset_corpus()
        rmtree(self.prepared)
        r = self.h.index(self.corpus, self.prepared, timeout=3600)
        if r.code != 0:
            raise SystemExit(f"cannot build the prepared index: {r.summary()}\n{r.err}")
        self.build_seconds = r.seconds
        self.reset(self.trial)
        state, failed = read_state(self.h, self.trial)
        if state is None:
            raise SystemExit(f"cannot read the prepared index: {failed.summary()}\n{failed.err}")
        self.before = state
        return state

    def reset_corpus(self, change: Callable[[Path], None] | None = None) -> None:
        rmtree(self.corpus)
        shutil.copytree(self.pristine, self.corpus)
        if change is not None:
            change(self.corpus)

    def reset(self, index_dir: Path, change: Callable[[Path], None] | None = None) -> None:
        """A fresh copy of the prepared index at ``index_dir`` and of the corpus, changed."""
        self.reset_corpus(change)
        rmtree(index_dir)
        shutil.copytree(self.prepared, index_dir, symlinks=True)

    # --- kinds of writes

    def add_extras(self, corpus: Path) -> None:
        copy_articles(self.extras, corpus / "added")

    @staticmethod
    def modify_some(corpus: Path) -> None:
        files = sorted(corpus.rglob("*.txt"))
        for n, path in enumerate(files[:: max(1, len(files) // 10)][:10]):
            text = path.read_text(encoding="latin-1")
            title, _, body = text.partition("\n")
            path.write_text(
                f"{title}\n\nUpdate {n}: this story was revised after new figures came in."
                f"\n{body}\n\nThe revised figures are expected to change again next week.\n",
                encoding="latin-1",
            )

    @staticmethod
    def delete_some(corpus: Path) -> None:
        files = sorted(corpus.rglob("*.txt"))
        for path in files[1 :: max(1, len(files) // 10)][:10]:
            path.unlink()

    def kinds(self, *, int8: bool = True) -> list[Kind]:
        kinds = [
            Kind("add", change=self.add_extras),
            Kind("modify", change=self.modify_some),
            Kind("delete", change=self.delete_some),
            Kind("rebuild", ["--rebuild"]),
        ]
        if self.second_model:
            kinds.append(
                Kind("rebuild --model", ["--rebuild", "--model", self.second_model], warm_up=True)
            )
        kinds.append(Kind("convert to hnsw", ["--index-type", "hnsw"]))
        if int8:
            kinds.append(
                Kind("int8 build", ["--rebuild", "--backend", "openvino", "--precision", "int8"])
            )
        return kinds

    def uncut(self, kind: Kind) -> Uncut:
        """The write run to its end on a copy (memoised): its time, final state, largest file."""
        if kind.name in self._uncut:
            return self._uncut[kind.name]
        if kind.warm_up and not self.h.fake:
            self.reset(self.trial, kind.change)
            self.h.index(self.corpus, self.trial, *kind.args, timeout=3600)
        self.reset(self.trial, kind.change)
        before = listing(self.trial)
        r = self.h.index(self.corpus, self.trial, *kind.args, timeout=3600)
        state: State | None = None
        need = 0
        keep: Path | None = None
        if r.code == 0:
            after = listing(self.trial)
            written = [
                size for name, (size, mt) in after.items() if before.get(name, (0, 0))[1] != mt
            ]
            need = max(written, default=0)
            state, _ = read_state(self.h, self.trial)
            keep = self.work / f"after-{kind.name.replace(' ', '_')}"
            rmtree(keep)
            shutil.copytree(self.trial, keep, symlinks=True)
        self._uncut[kind.name] = Uncut(r, state, need, keep)
        return self._uncut[kind.name]


def make_second_model(target: Path) -> Path:
    """The bundled model with one weight tensor perturbed: same shapes, other vectors."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    from semsearch.embed.model import _bundled_default

    rmtree(target)
    shutil.copytree(_bundled_default(), target)
    weights = target / "model.safetensors"
    tensors = load_file(str(weights))
    name = "embeddings.word_embeddings.weight"
    t = tensors[name]
    noise = np.random.default_rng(0).normal(0.0, float(t.std()) * 0.5, t.shape)
    tensors[name] = (t + noise).astype(t.dtype)
    save_file(tensors, str(weights), metadata={"format": "pt"})
    return target


# --------------------------------------------------------------------------- 1. kills


def kill_trial(s: Setup, kind: Kind, uncut: Uncut, at: float, number: int) -> dict[str, Any]:
    assert s.before is not None and uncut.state is not None
    s.reset(s.trial, kind.change)
    names_before = set(os.listdir(s.trial))
    log = s.work / "kill.log"
    started = time.monotonic()
    proc = s.h.start("index", str(s.corpus), "--index", str(s.trial), "-q", *kind.args, log=log)
    finished = False
    while time.monotonic() - started < at:
        if proc.poll() is not None:
            finished = True
            break
        time.sleep(0.005)
    if not finished:
        _kill_group(proc)
    proc.wait()
    row: dict[str, Any] = {
        "trial": number,
        "kind": kind.name,
        "kill_at": round(at, 2),
        "fraction": round(at / uncut.run.seconds, 2) if uncut.run.seconds else 0.0,
        "killed": not finished,
        "exit": proc.returncode,
    }
    extra = sorted(
        set(os.listdir(s.trial)) - names_before - set(os.listdir(uncut.folder or s.trial))
    )
    row["leftovers"] = ", ".join(extra)
    got, failed = read_state(s.h, s.trial, AFTER_A_WRITE)
    if got is None:
        row.update(state="unusable", answers="-", error=failed.summary(), ok=False)
    else:
        which = which_state(got, s.before, uncut.state)
        ref = s.before if which == "before" else uncut.state
        right = which != "neither" and same_answers(got, ref)
        row.update(state=which, answers="same" if right else "WRONG", error="", ok=right)
        row["counts"] = got.show()
    row["check"] = s.h.check(s.trial)
    return row


def part_kill(
    s: Setup,
    trials: int,
    rng: random.Random,
    *,
    int8: bool = True,
    only: Sequence[str] | None = None,
) -> dict[str, Any]:
    """``trials`` SIGKILL trials spread over the kinds of writes (``only`` those, if given)."""
    kinds = [k for k in s.kinds(int8=int8) if only is None or k.name in only]
    usable: list[Kind] = []
    summary: list[dict[str, Any]] = []
    for kind in kinds:
        u = s.uncut(kind)
        if u.state is None:
            summary.append(
                {"kind": kind.name, "uncut_s": round(u.run.seconds, 1), "note": u.run.summary()}
            )
        else:
            usable.append(kind)
    order = [usable[i % len(usable)] for i in range(trials)] if usable else []
    rng.shuffle(order)
    rows = []
    for n, kind in enumerate(order, start=1):
        u = s.uncut(kind)
        rows.append(kill_trial(s, kind, u, rng.uniform(0.0, u.run.seconds), n))
    for kind in usable:
        mine = [r for r in rows if r["kind"] == kind.name]
        u = s.uncut(kind)
        summary.append(
            {
                "kind": kind.name,
                "uncut_s": round(u.run.seconds, 1),
                "trials": len(mine),
                "killed": sum(r["killed"] for r in mine),
                "before": sum(r["state"] == "before" for r in mine),
                "after": sum(r["state"] == "after" for r in mine),
                "neither": sum(r["state"] in ("neither", "unusable") for r in mine),
                "wrong_answers": sum(r["answers"] == "WRONG" for r in mine),
                "check_flags": sum(r["check"] == "flags it" for r in mine),
                "ok": sum(r["ok"] for r in mine),
                "note": "",
            }
        )
    ok = sum(r["ok"] for r in rows)
    return {
        "rows": rows,
        "kinds": summary,
        "ok": ok,
        "trials": len(rows),
        "killed": sum(r["killed"] for r in rows),
        "goal_met": bool(rows)
        and ok == len(rows)
        and all("note" not in k or not k["note"] for k in summary),
    }


# --------------------------------------------------------------------------- 2. full disk


def fsize_limit(nbytes: int) -> Callable[[], None]:
    """preexec: files may not grow past ``nbytes``; a write past it fails with EFBIG."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))

    return limit


def human(n: int) -> str:
    if n >= MIB:
        return f"{n / MIB:.1f} MiB"
    if n >= KIB:
        return f"{n / KIB:.0f} KiB"
    return f"{n} B"


def judge_after_failure(s: Setup, run: Run, after: State, index_dir: Path) -> dict[str, Any]:
    assert s.before is not None
    row: dict[str, Any] = {
        "exit": run.code,
        "message": run.summary(80) if run.code != 0 else "",
        "one_line": run.code == 0 or run.one_line_error,
    }
    got, failed = read_state(s.h, index_dir, AFTER_A_WRITE)
    if got is None:
        row.update(state="unusable", answers="-", ok=False, detail=failed.summary(80))
        return row
    which = which_state(got, s.before, after)
    ref = s.before if which == "before" else after
    right = which != "neither" and same_answers(got, ref)
    row.update(state=which, answers="same" if right else "WRONG", ok=right, detail="")
    return row


@contextlib.contextmanager
def tmpfs(mount_point: Path, size: int) -> Iterator[str | None]:
    """A tmpfs of ``size`` bytes at ``mount_point``; yields None, or why it cannot be made."""
    mount_point.mkdir(parents=True, exist_ok=True)
    try:
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        yield f"mount failed ({exc})"
        return
    if r.returncode != 0:
        yield f"mount failed ({(r.stderr or r.stdout).strip()})"
        return
    try:
        yield None
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, timeout=60)


def disk_usage(folder: Path) -> int:
    """Bytes a copy of ``folder`` takes on a tmpfs (whole pages)."""
    total = 4096
    for path in folder.rglob("*"):
        if path.is_file():
            total += -(-path.stat().st_size // 4096) * 4096
    return total


def part_disk(s: Setup, *, quick: bool) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    kinds = {k.name: k for k in s.kinds(int8=False)}
    plan = [("add", [4 * KIB, 64 * KIB, 0.25, 0.5, 0.9]), ("rebuild", [64 * KIB, 0.5])]
    if quick:
        plan = [("add", [64 * KIB, 0.5]), ("rebuild", [0.5])]
    for name, limits in plan:
        kind = kinds[name]
        u = s.uncut(kind)
        if u.state is None:
            notes.append(f"{name}: the uncut write failed ({u.run.summary()})")
            continue
        for spec in limits:
            limit = int(spec if spec >= 1 else u.need * spec)
            if limit >= u.need:
                continue
            s.reset(s.trial, kind.change)
            run = s.h.index(s.corpus, s.trial, *kind.args, preexec=fsize_limit(limit))
            row = {"kind": name, "how": f"RLIMIT_FSIZE {human(limit)}", "need": human(u.need)}
            row.update(judge_after_failure(s, run, u.state, s.trial))
            rows.append(row)
    # A small tmpfs: room for the index and less than the write needs.
    kind = kinds["add"]
    u = s.uncut(kind)
    if u.state is not None:
        extras = [64 * KIB] if quick else [0, 64 * KIB, u.need // 2]
        mount_point = s.work / "tmpfs"
        used = disk_usage(s.prepared)
        for extra in extras:
            size = used + extra
            with tmpfs(mount_point, size) as why:
                if why is not None:
                    notes.append(f"tmpfs skipped: {why}")
                    break
                target = mount_point / "index"
                s.reset_corpus(kind.change)
                try:
                    shutil.copytree(s.prepared, target, symlinks=True)
                except OSError as exc:
                    notes.append(
                        f"tmpfs of {human(size)}: the index copy does not fit ({exc.strerror})"
                    )
                    continue
                run = s.h.index(s.corpus, target, *kind.args)
                row = {"kind": "add", "how": f"tmpfs, {human(extra)} free", "need": human(u.need)}
                row.update(judge_after_failure(s, run, u.state, target))
                if not row["ok"] and row["state"] == "unusable":
                    # Maybe only reading needs room (SQLite's -shm file): free some, look again.
                    subprocess.run(
                        ["mount", "-o", f"remount,size={size + 64 * MIB}", str(mount_point)],
                        capture_output=True,
                        timeout=30,
                    )
                    again = judge_after_failure(s, run, u.state, target)
                    row["detail"] = (
                        f"unreadable while full ({row['detail']}); with space freed: "
                        f"{again['state']}, answers {again['answers']}"
                    )
                    row.update(state=again["state"], answers=again["answers"], ok=again["ok"])
                rows.append(row)
    ok = sum(r["ok"] for r in rows)
    return {
        "rows": rows,
        "notes": notes,
        "ok": ok,
        "trials": len(rows),
        "one_line": sum(r["one_line"] for r in rows),
        # The old index intact, and the failed write told in one line (never a traceback).
        "goal_met": bool(rows) and ok == len(rows) and all(r["one_line"] for r in rows),
    }


# --------------------------------------------------------------------------- 3. readers, a writer


def _embedder(fake: bool) -> Any:
    if not fake:
        return None
    from tests.fake_cli import NamedFake

    return NamedFake()


def _running(config: dict[str, Any], started: float) -> bool:
    """Until the parent's stop file appears (or, failing that, a hard time limit)."""
    return not os.path.exists(config["stop"]) and time.monotonic() - started < config["max_s"]


def _ready(config: dict[str, Any]) -> None:
    Path(config["ready"]).write_text("ready", encoding="utf-8")


def reader_worker(config: dict[str, Any]) -> dict[str, Any]:
    """Search one open Index until told to stop, re-opening it every few queries."""
    from semsearch.index import Index

    started = time.monotonic()
    queries: list[str] = config["queries"]
    every = int(config["reopen_every"])
    stats: dict[str, Any] = {"queries": 0, "errors": 0, "empty": 0, "reopens": 0, "messages": []}
    index = None
    n = 0
    while _running(config, started):
        try:
            if index is None:
                index = Index.open(config["index"], embedder=_embedder(config["fake"]))
            mode = MODES[n % len(MODES)]
            hits = index.search(queries[n % len(queries)], k=5, mode=mode)
        except Exception as exc:  # anything a reader meets is counted (SemsearchError or not)
            stats["errors"] += 1
            if len(stats["messages"]) < 3:
                stats["messages"].append(f"{type(exc).__name__}: {exc}")
        else:
            stats["empty"] += not hits
        if n == 0:
            _ready(config)  # the query model is loaded: the measured time starts
        n += 1
        stats["queries"] += 1
        if index is not None and n % every == 0:
            index.close()
            index = None
            stats["reopens"] += 1
    if index is not None:
        index.close()
    return stats


def writer_worker(config: dict[str, Any]) -> dict[str, Any]:
    """Add, edit and delete articles under the corpus, one commit each, until told to stop."""
    from semsearch.errors import SemsearchError
    from semsearch.index import Index

    started = time.monotonic()
    corpus = Path(config["corpus"])
    pool = [Path(p) for p in config["pool"]]
    stats: dict[str, Any] = {"commits": 0, "errors": 0, "ops": {}, "messages": []}
    live: list[Path] = []
    index = Index.open(config["index"], embedder=_embedder(config["fake"]))
    n = 0
    while n == 0 or _running(config, started):
        op = ("add", "modify", "delete")[n % 3]
        if op == "add" or not live:
            op = "add"
            path = corpus / "rw" / f"w{n:04d}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(pool[n % len(pool)], path)
            live.append(path)
        elif op == "modify":
            path = live[-1]
            with open(path, "a", encoding="latin-1") as fh:
                fh.write(f"\n\nA later paragraph number {n} was added to this story.\n")
        else:
            live.pop(0).unlink()
        try:
            index.add([corpus])
        except SemsearchError as exc:
            stats["errors"] += 1
            if len(stats["messages"]) < 3:
                stats["messages"].append(f"{type(exc).__name__}: {exc}")
        else:
            stats["commits"] += 1
            stats["ops"][op] = stats["ops"].get(op, 0) + 1
        if n == 0:
            _ready(config)  # the model is loaded: the measured time starts
        n += 1
    index.close()
    return stats


def _collect(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        return {"crashed": "did not stop in time (killed)"}
    lines = out.decode("utf-8", "replace").strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["?"]
        return {"crashed": f"exit {proc.returncode}: {tail[0]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def part_rw(s: Setup, *, seconds: float, readers: int = 8) -> dict[str, Any]:
    """A writer and ``readers`` reader processes, measured for ``seconds`` once all are ready.

    Readers count from their first query and the writer from its first commit (model
    loads are not part of the measured time, but errors during them still count).
    """
    rw_index = s.work / "rw-index"
    s.reset(rw_index)
    sync = s.work / "rw-sync"
    rmtree(sync)
    sync.mkdir()
    common = {"index": str(rw_index), "stop": str(sync / "stop"), "max_s": seconds + 900}
    writer = s.h.worker(
        "writer",
        {
            **common,
            "corpus": str(s.corpus),
            "pool": [str(p) for p in s.pool],
            "ready": str(sync / "writer"),
        },
    )
    procs = [
        s.h.worker(
            "reader",
            {
                **common,
                "queries": READER_QUERIES[r:] + READER_QUERIES[:r],
                "reopen_every": 25,
                "ready": str(sync / f"reader{r}"),
            },
        )
        for r in range(readers)
    ]
    everyone = [writer, *procs]
    wait_until = time.monotonic() + 900
    while len(os.listdir(sync)) < len(everyone) and time.monotonic() < wait_until:
        if any(p.poll() is not None for p in everyone):
            break  # one died before it was ready: collect what there is
        time.sleep(0.05)
    deadline = time.monotonic() + seconds
    cli: dict[str, Any] = {"queries": 0, "errors": 0, "empty": 0, "messages": []}
    n = 0
    while time.monotonic() < deadline:
        r = s.h.run(
            "query",
            READER_QUERIES[n % len(READER_QUERIES)],
            "--index",
            str(rw_index),
            "--json",
            "-k",
            "5",
            timeout=seconds + 300,
        )
        n += 1
        cli["queries"] += 1
        if not r.ok:
            cli["errors"] += 1
            if len(cli["messages"]) < 3:
                cli["messages"].append(r.summary())
        elif not json.loads(r.out)["results"]:
            cli["empty"] += 1
    (sync / "stop").write_text("stop", encoding="utf-8")
    results = [_collect(p, 600) for p in procs]
    wrote = _collect(writer, 900)
    crashed = [r["crashed"] for r in results if "crashed" in r]
    totals = {
        key: sum(int(r.get(key, 0)) for r in results)
        for key in ("queries", "errors", "empty", "reopens")
    }
    messages = [m for r in results for m in r.get("messages", [])][:5]
    goal = (
        not crashed
        and "crashed" not in wrote
        and totals["errors"] == 0
        and totals["empty"] == 0
        and cli["errors"] == 0
        and cli["empty"] == 0
        and int(wrote.get("commits", 0)) > 1
    )
    return {
        "seconds": seconds,
        "readers": readers,
        "reader": totals,
        "reader_crashes": crashed,
        "reader_messages": messages,
        "cli": cli,
        "writer": wrote,
        "goal_met": goal,
    }


# --------------------------------------------------------------------------- 4. damaged files


def damage_file(path: Path, how: str, rng: random.Random) -> str:
    """Damage one file; returns what was done (for the table)."""
    if how == "deleted":
        path.unlink()
        return "deleted"
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(bytes(data[: len(data) // 2]))
        return f"truncated to {human(len(data) // 2)}"
    offset = rng.randrange(len(data))
    bit = rng.randrange(8)
    data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))
    return f"bit {bit} of byte {offset:,} flipped"


def judge_read(run: Run, expected: Callable[[str], bool]) -> str:
    v = run.verdict()
    if v != "ok":
        return v
    try:
        return "same" if expected(run.out) else "DIFFERENT"
    except (ValueError, KeyError, TypeError):
        return "DIFFERENT"


GOOD = {"same", "error --rebuild"}


def _answers_like(expected: Sequence[Hit]) -> Callable[[str], bool]:
    return lambda out: same_hits(parse_hits(out), expected)


def part_damage(s: Setup, *, flips: int, rng: random.Random, int8: bool) -> dict[str, Any]:
    before = s.before
    assert before is not None
    rows: list[dict[str, Any]] = []
    targets: list[tuple[str, Path, State, Kind | None]] = [
        ("torch index", s.prepared, before, None)
    ]
    notes: list[str] = []
    if int8:
        kind = next(k for k in s.kinds() if k.name == "int8 build")
        u = s.uncut(kind)
        add = next(k for k in s.kinds() if k.name == "add")
        if u.state is None or u.folder is None:
            notes.append(f"int8 index: could not be built ({u.run.summary()})")
        else:
            # What adding the extra articles to the undamaged int8 index gives.
            s.reset_corpus(add.change)
            rmtree(s.trial)
            shutil.copytree(u.folder, s.trial, symlinks=True)
            r = s.h.index(s.corpus, s.trial)
            ref, _ = read_state(s.h, s.trial) if r.code == 0 else (None, r)
            if ref is None:
                notes.append(f"int8 index: adding to it fails undamaged ({r.summary()})")
            else:
                targets.append(("int8 index", u.folder, ref, add))
    for label, source, ref, write in targets:
        names = sorted(os.listdir(source))
        if write is not None:
            names = [n for n in names if n.startswith("embed-model-int8")]
        for name in names:
            if (source / name).is_dir():
                continue
            hows = ["truncated", "deleted"] + ["bit-flipped"] * flips
            if (source / name).stat().st_size == 0:
                hows = ["deleted"]
            for how in hows:
                rmtree(s.trial)
                shutil.copytree(source, s.trial, symlinks=True)
                if write is None:
                    s.reset_corpus()
                done = damage_file(s.trial / name, how, rng)
                row: dict[str, Any] = {"index": label, "file": name, "damage": done}
                failures: list[Run] = []
                if write is None:
                    info = s.h.run("info", "--index", str(s.trial), "--json")
                    row["info"] = judge_read(
                        info, lambda out: parse_info(out)[:2] == (before.counts, before.identity)
                    )
                    failures.append(info)
                    for mode in MODES:
                        q = s.h.run(*query_args(s.trial, mode))
                        row[mode] = judge_read(q, _answers_like(before.answers[mode]))
                        failures.append(q)
                else:
                    s.reset_corpus(write.change)
                    w = s.h.index(s.corpus, s.trial)
                    failures.append(w)
                    if w.code == 0:
                        got, _ = read_state(s.h, s.trial)
                        same = (
                            got is not None and got.counts == ref.counts and same_answers(got, ref)
                        )
                        row["write"] = "same" if same else "DIFFERENT"
                    else:
                        row["write"] = w.verdict()
                failed = [r for r in failures if r.code != 0]
                row["message"] = failed[0].summary(80) if failed else ""
                outcomes = [row[k] for k in ("info", "write", *MODES) if k in row]
                row["check"] = s.h.check(s.trial)
                row["ok"] = all(v in GOOD for v in outcomes)
                row["harmless"] = all(v == "same" for v in outcomes)
                rows.append(row)
    ok = sum(r["ok"] for r in rows)
    return {
        "rows": rows,
        "notes": notes,
        "ok": ok,
        "cases": len(rows),
        "tracebacks": sum("TRACEBACK" in r.values() for r in rows),
        "silent": sum("DIFFERENT" in r.values() for r in rows),
        "goal_met": bool(rows) and ok == len(rows),
    }


# --------------------------------------------------------------------------- 5. hostile corpus


@dataclass
class Item:
    """One thing in the hostile folder."""

    label: str
    rel: str  # its path inside the hostile folder ('' for things that are not one file)
    clean: str | None = None  # its clean copy's path inside the clean folder (readable files)
    whole_line: str | None = None  # the single line whose every character must be indexed


LONG_SENTENCE = "Sentence {n} says the harbour reopened after the storm. "


def long_line(nbytes: int, seed: int = 1) -> str:
    """A single line of ``nbytes``: a sentence, then a 2,000-character unbroken token, repeated."""
    rng = random.Random(seed)
    alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    parts: list[str] = []
    size = 0
    n = 0
    while size < nbytes:
        blob = "".join(rng.choices(alnum, k=2000))
        part = LONG_SENTENCE.format(n=n) + blob + " "
        parts.append(part)
        size += len(part)
        n += 1
    return "".join(parts)[:nbytes].rstrip()


JSONL_GOOD = [
    {
        "id": "j1",
        "title": "Harbour reopens",
        "text": "The harbour reopened on Monday.\n\nFerries run again, café owners say.",
    },
    {
        "id": "j2",
        "title": "Storm damage",
        "text": "The storm damaged three piers.\n\nRepairs will take a month.",
    },
    {
        "id": "j3",
        "title": "Nul inside",
        "text": "A record with a NUL \u0000 inside its text is still read.",
    },
]


def build_hostile(folder: Path, clean: Path, *, line_bytes: int, depth: int = 200) -> list[Item]:
    """Make the hostile folder and, beside it, clean copies of its readable files."""
    rmtree(folder)
    rmtree(clean)
    folder.mkdir(parents=True)
    clean.mkdir(parents=True)
    items: list[Item] = []

    def both(rel: str, data: bytes, label: str, clean_rel: str | None = None) -> None:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
        target = clean_rel or rel
        (clean / target).parent.mkdir(parents=True, exist_ok=True)
        (clean / target).write_bytes(data)
        items.append(Item(label, rel, target))

    for path in bbc_articles(10, skip=500):
        both(f"good/{path.parent.name}-{path.name}", path.read_bytes(), "a normal article")
    both(
        "good/notes.md",
        b"---\ntitle: Harbour notes\ndate: 2024-05-01\n---\n\nThe pier was **repaired**.\n\n"
        b"- ropes\n- nets\n\nBoats are back.\n",
        "a normal Markdown file",
    )
    both(
        "good/page.html",
        b"<html><head><title>Harbour page</title></head><body><h1>Harbour page</h1>"
        b"<p>The fish market opened early.</p><p>Prices fell by a third.</p></body></html>",
        "a normal HTML file",
    )
    both(
        "good/records.jsonl",
        b"".join(json.dumps(r).encode() + b"\n" for r in JSONL_GOOD[:2]),
        "a normal JSON Lines file",
    )
    rng = random.Random(7)
    (folder / "binary-random.txt").write_bytes(bytes(rng.randrange(256) for _ in range(64 * KIB)))
    items.append(Item("random bytes named .txt", "binary-random.txt"))
    (folder / "binary-program.txt").write_bytes(
        Path(sys.executable).resolve().read_bytes()[: 256 * KIB]
    )
    items.append(Item("a program's bytes named .txt", "binary-program.txt"))
    both(
        "invalid-utf8.txt",
        "Invalid UTF-8 article\n\nThe café reopened on the quay.\n\n".encode()
        + b"Some bytes are broken: \xff\xfe \xc3\x28 \x80 but the words around them are read.\n\n"
        + "A last paragraph with an accent: déjà vu.\n".encode(),
        "invalid UTF-8",
    )
    both(
        "nul-bytes.txt",
        b"Article with NUL bytes\n\nThe first paragraph\x00 holds a NUL byte.\n\n"
        b"The second\x00\x00 holds two.\n\nThe third holds none.\n",
        "NUL bytes",
    )
    line = long_line(line_bytes)
    (folder / "long-line.txt").write_text(f"A title line\n\n{line}", encoding="utf-8")
    items.append(Item(f"a {human(len(line))} single line", "long-line.txt", whole_line=line))
    os.mkfifo(folder / "fifo.txt")
    items.append(Item("a FIFO named .txt", "fifo.txt"))
    os.symlink("loop-b.txt", folder / "loop-a.txt")
    os.symlink("loop-a.txt", folder / "loop-b.txt")
    os.symlink("self-loop.txt", folder / "self-loop.txt")
    os.symlink(".", folder / "loop-dir")
    os.symlink("..", folder / "good" / "up")
    items.append(Item("symlink loops (files, a folder to itself and to its parent)", ""))
    os.symlink("does-not-exist.txt", folder / "dangling.txt")
    os.symlink("/dev/zero", folder / "zero.txt")
    items.append(Item("a dangling symlink and one to /dev/zero, named .txt", ""))
    both(
        "news\nflash.txt",
        b"A name with a newline\n\nThis article's file name holds a newline.\n",
        "a name with a newline",
        clean_rel="news-flash.txt",
    )
    bad_name = os.fsencode(folder) + b"/caf\xe9-latin1-name.txt"
    with open(bad_name, "wb") as fh:
        fh.write(b"Latin-1 name\n\nThis file's name is not UTF-8.\n")
    items.append(Item("a name with invalid bytes (skipped, with a warning, by design)", ""))
    deep = folder / "deep"
    for level in range(depth):
        deep = deep / f"d{level:03d}"
    both(
        str((deep / "bottom.txt").relative_to(folder)),
        b"The deepest article\n\nIt lies two hundred folders down.\n",
        f"a {depth}-level deep tree",
        clean_rel="bottom.txt",
    )
    broken = [
        json.dumps(JSONL_GOOD[0], ensure_ascii=False).encode(),
        b'{"id": "t1", "title": "truncated", "text": "the line ends in the mid',
        b"[1, 2, 3]",
        b'{"id": "n1", "title": "no text"}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"id": "b1", "text": "bytes \xff\xfe that are not UTF-8"}',
        json.dumps(JSONL_GOOD[1], ensure_ascii=False).encode(),
        b"\x00\x00\x00",
        json.dumps(JSONL_GOOD[2]).encode(),
    ]
    (folder / "broken.jsonl").write_bytes(b"\n".join(broken) + b"\n")
    # Readable: the three good records, and the one whose bytes are not UTF-8 read as a
    # Windows-1252 line (as a file that is not UTF-8 is read).
    readable = [*JSONL_GOOD, {"id": "b1", "text": "bytes \xff\xfe that are not UTF-8"}]
    (clean / "broken.jsonl").write_bytes(
        b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in readable)
    )
    items.append(Item("broken JSON Lines (4 readable records)", "broken.jsonl", "broken.jsonl"))
    (folder / "empty.txt").write_bytes(b"")
    (folder / "blank.txt").write_bytes(b"\n \n\t\n" * 1000)
    items.append(Item("an empty file and one of blank lines", ""))
    both(
        "folder.txt/inside.txt",
        b"Inside a folder named .txt\n\nIt is read like any other.\n",
        "a folder named .txt",
    )
    return items


def all_passages(h: Harness, index_dir: Path, root: Path) -> tuple[dict[str, list[str]], Run]:
    """Every passage of an index by file (relative to ``root``), read back with one query."""
    info = h.run("info", "--index", str(index_dir), "--json")
    if info.code != 0:
        return {}, info
    total = parse_info(info.out)[0][1]
    r = h.run(
        "query",
        "harbour",
        "--index",
        str(index_dir),
        "--mode",
        "dense",
        "--no-collapse",
        "-k",
        str(max(total, 1)),
        "--json",
    )
    if not r.ok:
        return {}, r
    by_file: dict[str, list[tuple[str, int, str]]] = {}
    for hit in json.loads(r.out)["results"]:
        rel = os.path.relpath(hit["path"], root)
        by_file.setdefault(rel, []).append((hit.get("key") or "", int(hit["start"]), hit["text"]))
    return {k: [t for *_, t in sorted(v)] for k, v in by_file.items()}, r


def part_hostile(
    h: Harness, *, line_bytes: int, nospace_bytes: int, timeout: float, nospace_timeout: float = 60
) -> dict[str, Any]:
    """Index the hostile folder (within ``timeout``) and check it against the clean copies.

    The line without white space gets its own index and ``nospace_timeout``: cutting it
    takes a moment when the work is linear in its length.
    """
    folder = h.work / "hostile"
    clean = h.work / "hostile-clean"
    items = build_hostile(folder, clean, line_bytes=line_bytes)
    runs: list[tuple[str, Run]] = []
    clean_index = h.work / "hostile-clean-index"
    hostile_index = h.work / "hostile-index"
    rmtree(clean_index)
    rmtree(hostile_index)
    r_clean = h.index(clean, clean_index, timeout=timeout)
    if r_clean.code != 0:
        raise SystemExit(f"cannot index the clean copies: {r_clean.summary()}\n{r_clean.err}")
    expected, _ = all_passages(h, clean_index, clean)
    r_index = h.index(folder, hostile_index, timeout=timeout)
    runs.append(("index", r_index))
    got: dict[str, list[str]] = {}
    if r_index.code == 0:
        got, r_all = all_passages(h, hostile_index, folder)
        runs.append(("query (all passages)", r_all))
        for q, mode in (
            ("harbour storm damage", "hybrid"),
            ("the café", "dense"),
            ("NUL byte", "lexical"),
        ):
            runs.append(
                (
                    f"query --mode {mode}",
                    h.run("query", q, "--index", str(hostile_index), "--mode", mode),
                )
            )
        runs.append(("info", h.run("info", "--index", str(hostile_index))))
        again = h.index(folder, hostile_index, "--json", timeout=timeout)
        runs.append(("index again (nothing changed)", again))
    rows: list[dict[str, Any]] = []
    for item in items:
        row: dict[str, Any] = {"item": item.label}
        if item.whole_line is not None:
            pieces = got.get(item.rel, [])
            covered = "".join("".join(pieces).split()) == "".join(item.whole_line.split())
            row.update(
                expected="all of it",
                indexed=f"{len(pieces)} pieces",
                ok=covered and r_index.code == 0,
            )
        elif item.clean is not None:
            want = expected.get(item.clean, [])
            have = got.get(item.rel, [])
            row.update(expected=len(want), indexed=len(have), ok=bool(want) and have == want)
        else:
            row.update(expected="-", indexed="-", ok=r_index.code == 0)
        rows.append(row)
    warnings = [ln for ln in r_index.err.splitlines() if ln.startswith("warning: ")]
    # A line without white space, many word pieces long: cut by characters only.
    nospace_dir = h.work / "hostile-nospace"
    rmtree(nospace_dir)
    nospace_dir.mkdir()
    (nospace_dir / "no-spaces.txt").write_text(
        "A line without spaces\n\n" + ("a." * (nospace_bytes // 2)), encoding="utf-8"
    )
    nospace_index = h.work / "hostile-nospace-index"
    rmtree(nospace_index)
    r_nospace = h.index(nospace_dir, nospace_index, timeout=nospace_timeout)
    runs.append((f"index a {human(nospace_bytes)} line without spaces", r_nospace))
    rows.append(
        {
            "item": f"a {human(nospace_bytes)} line without white space (a.a.a.…)",
            "expected": "all of it",
            "indexed": "timed out" if r_nospace.hung else ("yes" if r_nospace.code == 0 else "no"),
            "ok": r_nospace.code == 0,
        }
    )
    commands = [
        {
            "command": name,
            "exit": r.code,
            "seconds": round(r.seconds, 1),
            "verdict": r.verdict(),
            "message": r.summary(90) if not r.ok else "",
        }
        for name, r in runs
    ]
    tracebacks = sum(r.traceback for _, r in runs)
    hangs = sum(r.hung for _, r in runs)
    ok = (
        all(row["ok"] for row in rows)
        and tracebacks == 0
        and hangs == 0
        and all(r.ok for _, r in runs)
    )
    return {
        "rows": rows,
        "commands": commands,
        "warnings": len(warnings),
        "tracebacks": tracebacks,
        "hangs": hangs,
        "readable_ok": sum(row["ok"] for row in rows if row["expected"] != "-"),
        "readable": sum(row["expected"] != "-" for row in rows),
        "goal_met": ok,
    }


# --------------------------------------------------------------------------- tables


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    head = "| " + " | ".join(title for _, title in columns) + " |"
    rule = "|" + "---|" * len(columns)
    body = ["| " + " | ".join(_cell(r.get(key, "")) for key, _ in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def _cell(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "**NO**"
    return str(v).replace("|", "\\|").replace("\n", "\\n")


def report(results: dict[str, Any]) -> str:
    out: list[str] = []
    cfg = results["config"]
    out.append("# Torture run\n")
    out.append(
        f"`{cfg['command']}` on {cfg['date']}, commit {cfg['commit']}; {cfg['articles']} BBC "
        f"articles + seeds/ ({cfg['passages']} passages), the real bundled model; the prepared "
        f"index took {cfg['build_s']} s to build; the whole run {cfg['seconds']:.0f} s. "
        "`semsearch check`: "
        f"{'present' if cfg['check'] else 'n/a: no check command'}.\n"
    )
    out.append("## Goals\n")
    out.append(
        table(
            results["goals"],
            [("part", "part"), ("goal", "goal"), ("result", "result"), ("met", "met")],
        )
    )
    parts = results["parts"]
    if "kill" in parts:
        p = parts["kill"]
        out.append("\n## 1. SIGKILL at a random moment of a write\n")
        out.append(
            "Each trial: a fresh copy of the prepared index, the write started and SIGKILLed "
            "at a uniformly random moment of its uncut duration, then `info` and a query "
            "(hybrid, the default). *before*/*after*: the counts, model, backend, precision "
            "and index type are exactly those of the index before the write or after the "
            "uncut write (told apart by the commit time); *answers*: the query returns the "
            "passages of that same state, scores within 0.001.\n"
        )
        out.append(
            table(
                p["kinds"],
                [
                    ("kind", "write"),
                    ("uncut_s", "uncut s"),
                    ("trials", "trials"),
                    ("killed", "killed"),
                    ("before", "state before"),
                    ("after", "state after"),
                    ("neither", "neither / unusable"),
                    ("wrong_answers", "wrong answers"),
                    ("check_flags", "check flags"),
                    ("ok", "ok"),
                    ("note", "note"),
                ],
            )
        )
        out.append("\nEvery trial:\n")
        out.append(
            table(
                p["rows"],
                [
                    ("trial", "#"),
                    ("kind", "write"),
                    ("kill_at", "killed at s"),
                    ("fraction", "of uncut"),
                    ("killed", "killed"),
                    ("state", "state"),
                    ("answers", "answers"),
                    ("check", "check"),
                    ("leftovers", "files left behind"),
                    ("error", "error"),
                ],
            )
        )
    if "disk" in parts:
        p = parts["disk"]
        out.append("\n## 2. Full disk during a write\n")
        out.append(
            "RLIMIT_FSIZE below the largest file the write writes (*need*; SIGXFSZ ignored, "
            "so the write gets EFBIG), or a tmpfs with the index and less free space than the "
            "write needs. *state*: what `info` and the queries see afterwards.\n"
        )
        out.append(
            table(
                p["rows"],
                [
                    ("kind", "write"),
                    ("how", "limit"),
                    ("need", "need"),
                    ("exit", "exit"),
                    ("one_line", "one-line error"),
                    ("message", "message"),
                    ("state", "state"),
                    ("answers", "answers"),
                    ("ok", "old index intact"),
                    ("detail", "detail"),
                ],
            )
        )
        for note in p["notes"]:
            out.append(f"\n- {note}")
    if "rw" in parts:
        p = parts["rw"]
        out.append("\n## 3. One writer, 8 readers\n")
        w = p["writer"]
        rows = [
            {
                "who": f"{p['readers']} reader processes (Index.open + search, hybrid and dense)",
                **p["reader"],
            },
            {"who": "CLI queries (sequential)", **p["cli"]},
        ]
        out.append(
            table(
                rows,
                [
                    ("who", "who"),
                    ("queries", "queries"),
                    ("errors", "errors"),
                    ("empty", "empty results"),
                    ("reopens", "re-opens"),
                ],
            )
        )
        out.append(
            f"\nWriter: {w.get('commits', 0)} commits in {p['seconds']:.0f} s "
            f"({w.get('ops', {})}), "
            f"{w.get('errors', 0)} errors{'; ' + w['crashed'] if 'crashed' in w else ''}."
        )
        msgs = (
            p["reader_messages"]
            + p["cli"]["messages"]
            + p["reader_crashes"]
            + w.get("messages", [])
        )
        for m in msgs[:5]:
            out.append(f"\n- {m}")
    if "damage" in parts:
        p = parts["damage"]
        out.append("\n## 4. Damaged files\n")
        out.append(
            "Each file of the index in turn; *same*: exit 0 with the undamaged answers (scores "
            "within 0.001); *error --rebuild*: one line naming `--rebuild`; *DIFFERENT*: "
            "another answer without an error (silent damage). For the int8 model files the "
            "command is a write (adding articles), compared with the same write on the "
            "undamaged index.\n"
        )
        out.append(
            table(
                p["rows"],
                [
                    ("index", "index"),
                    ("file", "file"),
                    ("damage", "damage"),
                    ("info", "info"),
                    ("dense", "dense query"),
                    ("hybrid", "hybrid query"),
                    ("write", "write"),
                    ("check", "check"),
                    ("ok", "ok"),
                    ("message", "message"),
                ],
            )
        )
        for note in p["notes"]:
            out.append(f"\n- {note}")
    if "hostile" in parts:
        p = parts["hostile"]
        out.append("\n## 5. Hostile corpus\n")
        out.append(
            "Readable files are compared passage by passage with an index of their clean copies "
            "(same bytes under plain names; for the broken JSON Lines file, its readable records "
            "alone); the long line must come back whole, in pieces.\n"
        )
        out.append(
            table(
                p["rows"],
                [
                    ("item", "item"),
                    ("expected", "passages expected"),
                    ("indexed", "indexed"),
                    ("ok", "ok"),
                ],
            )
        )
        out.append("\n")
        out.append(
            table(
                p["commands"],
                [
                    ("command", "command"),
                    ("exit", "exit"),
                    ("seconds", "s"),
                    ("verdict", "verdict"),
                    ("message", "message"),
                ],
            )
        )
        out.append(f"\n{p['warnings']} warning lines from the index run.")
    return "\n".join(out) + "\n"


def _rw_result(p: dict[str, Any]) -> str:
    def total(key: str) -> int:
        return int(p["reader"][key] + p["cli"][key])

    return (
        f"{total('errors')} errors, {total('empty')} empty in {total('queries')} queries; "
        f"{p['writer'].get('commits', 0)} commits"
    )


# part -> (its name in the table, its goal, its result in words)
_GOALS: dict[str, tuple[Callable[[dict[str, Any]], str], str, Callable[[dict[str, Any]], str]]] = {
    "kill": (
        lambda p: "SIGKILL during writes",
        "before-or-after counts and answers, every trial",
        lambda p: f"{p['ok']}/{p['trials']} ({p['killed']} killed mid-write)",
    ),
    "disk": (
        lambda p: "full disk during a write",
        "old index intact and a one-line error, every trial",
        lambda p: (
            f"{p['ok']}/{p['trials']} intact; "
            f"{p['one_line']}/{p['trials']} one-line errors or completed"
        ),
    ),
    "rw": (
        lambda p: f"1 writer + {p['readers']} readers, {p['seconds']:.0f} s",
        "0 reader errors, 0 empty results",
        _rw_result,
    ),
    "damage": (
        lambda p: "damaged index files",
        "one-line error naming --rebuild or the same answer",
        lambda p: (
            f"{p['ok']}/{p['cases']} ({p['tracebacks']} tracebacks, "
            f"{p['silent']} silently different)"
        ),
    ),
    "hostile": (
        lambda p: "hostile corpus",
        "0 tracebacks, 0 hangs, every readable paragraph",
        lambda p: (
            f"{p['tracebacks']} tracebacks, {p['hangs']} hangs, "
            f"{p['readable_ok']}/{p['readable']} readable items whole"
        ),
    ),
}


def goals(parts: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per part that ran: its goal, what it measured, and whether the goal was met."""
    return [
        {"part": name(parts[key]), "goal": goal, "result": result(parts[key]),
         "met": parts[key]["goal_met"]}
        for key, (name, goal, result) in _GOALS.items()
        if key in parts
    ]


# --------------------------------------------------------------------------- main


def _commit() -> str:
    try:
        r = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return r.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


PARTS = ("kill", "disk", "rw", "damage", "hostile")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--trials", type=int, default=None, help="SIGKILL trials (default 50, quick 8)")
    ap.add_argument("--quick", action="store_true", help="a few trials of each part, small data")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--articles",
        type=int,
        default=None,
        help="BBC articles in the index (default 40, quick 12)",
    )
    ap.add_argument(
        "--rw-seconds", type=float, default=None, help="readers/writer time (default 60, quick 15)"
    )
    ap.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}"
    )
    ap.add_argument("--no-int8", action="store_true", help="leave out the int8 build")
    ap.add_argument(
        "--keep", action="store_true", help="keep the work folder (its path is printed)"
    )
    ap.add_argument("--out", type=Path, default=RESULTS / "torture.md", help="where the tables go")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        role, config = args.worker
        fn = reader_worker if role == "reader" else writer_worker
        print(json.dumps(fn(json.loads(config))), flush=True)
        return 0
    quick = args.quick
    trials = args.trials if args.trials is not None else (8 if quick else 50)
    articles = args.articles if args.articles is not None else (12 if quick else 40)
    rw_seconds = args.rw_seconds if args.rw_seconds is not None else (15.0 if quick else 60.0)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        ap.error(f"unknown parts: {', '.join(sorted(unknown))}")
    rng = random.Random(args.seed)
    started = time.monotonic()
    # `timeout` and friends send SIGTERM: unwind, so the work folder and any tmpfs go too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    work = Path(tempfile.mkdtemp(prefix="semsearch-torture-"))
    log = sys.stderr
    h = Harness(work)
    try:
        second = str(make_second_model(work / "second-model")) if "kill" in parts else None
        s = Setup(h, articles, 10, second_model=second)
        print(f"torture: work folder {work}; building the prepared index", file=log, flush=True)
        before = s.prepare()
        command = "benchmarks/torture.py " + " ".join(argv if argv is not None else sys.argv[1:])
        results: dict[str, Any] = {
            "parts": {},
            "config": {
                "command": f".venv/bin/python {command.strip()}",
                "date": time.strftime("%Y-%m-%d %H:%M"),
                "commit": _commit(),
                "articles": articles,
                "passages": before.counts[1],
                "build_s": round(s.build_seconds, 1),
                "check": h.has_check(),
                "seed": args.seed,
            },
        }
        int8 = not args.no_int8
        args.out.parent.mkdir(parents=True, exist_ok=True)
        for part in parts:
            t = time.monotonic()
            print(
                f"torture: part {part} ({time.monotonic() - started:.0f} s so far)",
                file=log,
                flush=True,
            )
            if part == "kill":
                results["parts"]["kill"] = part_kill(s, trials, rng, int8=int8)
            elif part == "disk":
                results["parts"]["disk"] = part_disk(s, quick=quick)
            elif part == "rw":
                results["parts"]["rw"] = part_rw(s, seconds=rw_seconds)
            elif part == "damage":
                results["parts"]["damage"] = part_damage(
                    s, flips=1 if quick else 3, rng=rng, int8=int8
                )
            elif part == "hostile":
                results["parts"]["hostile"] = part_hostile(
                    h,
                    line_bytes=(1 if quick else 10) * MIB,
                    nospace_bytes=200 * KIB,
                    timeout=300 if quick else 900,
                )
            results["parts"][part]["elapsed_s"] = round(time.monotonic() - t, 1)
            # The tables so far, so that a long run that is stopped still leaves them.
            results["config"]["seconds"] = round(time.monotonic() - started, 1)
            results["goals"] = goals(results["parts"])
            text = report(results)
            args.out.write_text(text, encoding="utf-8")
        if args.json:
            print(json.dumps(results, default=str))
        else:
            print(text)
        print(
            f"torture: done in {time.monotonic() - started:.0f} s; tables in {args.out}", file=log
        )
        return 0 if all(g["met"] for g in results["goals"]) else 1
    finally:
        h.close()
        if args.keep:
            print(f"torture: kept {work}", file=log)
        else:
            with contextlib.suppress(OSError):
                subprocess.run(
                    ["umount", "-l", str(work / "tmpfs")], capture_output=True, timeout=30
                )
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
