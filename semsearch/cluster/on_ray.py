"""`RayRunner`: an indexing run's parsing and embedding on a Ray cluster, with Ray Data.

- cutting: the changed files (their bytes travel with them, so a worker needs no
  view of the driver's disk) are a Ray Dataset; ``map_batches`` parses and cuts
  them in Ray tasks, each counting word pieces with the model's fast tokenizer;
- embedding: the passages' texts, longest first so that a batch holds texts of
  about one length, are a Ray Dataset embedded by a pool of actors
  (``map_batches`` with a callable class and ``ActorPoolStrategy``): each loads
  the run's model once, on the run's backend and precision (`Recipe`), and embeds
  its batches with the embedder's own token-sorted batching;
- shards: ``map`` runs a function on each item as a Ray task (the IVF types fill
  their index shards so).

Results stream back to the driver, in order, which writes the index itself: an
interrupted or failed run leaves the index as it was. A worker that dies is
restarted by Ray and its batch retried (``max_restarts``/``max_task_retries``);
an error of semsearch's own in a worker (a model that cannot load) comes back as
itself, anything else as one `ClusterError` line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from .. import errors as _errors
from ..embed import Embedder
from ..errors import ClusterError, SemsearchError
from ..ingest import SourceFile
from ..ingest.passages import Chunking
from . import Cut, Progress, cut_file
from .recipe import Recipe

T = TypeVar("T")
R = TypeVar("R")

RETRIES = 3  # restarts of a dead worker, and retries of its batch
EMBED_ROWS = 256  # texts per Ray batch: the embedder sorts them by tokens within it
_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "SEMSEARCH_CACHE", "PYTHONPATH")


class RayRunner:
    """Parsing and embedding on Ray; see the module's docstring."""

    def __init__(self, address: str, workers: int | None, threads: int) -> None:
        self.address = address
        self.workers = workers  # None: known once Ray runs (the cluster's CPUs / threads)
        self.threads = threads
        self._started = False
        self._owns = False  # this runner started Ray (ray.init), so it shuts it down
        self.stats: dict[str, Any] = {}

    @property
    def description(self) -> str:
        if self.workers is None:
            return f"Ray {self.address}"
        plural = "s" if self.workers != 1 else ""
        return f"Ray {self.address}, {self.workers} embedding worker{plural}"

    def _start(self) -> int:
        """Start or join Ray on first need (a run with nothing to do never does); returns
        the number of embedding workers."""
        if self._started:
            assert self.workers is not None
            return self.workers
        import ray

        began = time.perf_counter()
        self._owns = not ray.is_initialized()
        if self._owns:
            _init(ray, self.address, self.workers, self.threads)
        self._started = True
        if self.workers is None:
            if self.address.startswith("local:"):
                self.workers = int(self.address.split(":", 1)[1])
            else:
                resources: Any = ray.cluster_resources  # (untyped)
                cpus = int(resources().get("CPU", 1))
                self.workers = max(1, cpus // self.threads)
        _quiet_ray_data()
        self.stats["start_s"] = time.perf_counter() - began
        return self.workers

    # --- the work

    def cut(
        self, sources: Sequence[SourceFile], chunking: Chunking, embedder: Embedder
    ) -> list[Cut]:
        import ray.data

        if not sources:
            return []
        workers = self._start()
        recipe = Recipe.counting(embedder)
        # the sources travel as Python objects: Ray serialises them itself (cloudpickle)
        rows = [{"i": i, "source": s} for i, s in enumerate(sources)]
        ds: Any = ray.data.from_items(rows, override_num_blocks=min(len(rows), 4 * workers))
        with _ray_warnings_off():  # (Ray 2.60 warns of max_retries, which we want bounded)
            ds = ds.map_batches(
                _cut_batch,
                fn_kwargs={"recipe": recipe, "chunking": chunking},
                batch_size=8,
                batch_format="numpy",
                num_cpus=1,
                max_retries=RETRIES,
            )
        out: list[Cut | None] = [None] * len(sources)
        with _worker_errors(self.address), _ray_warnings_off():
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                for i, blob in zip(batch["i"], batch["cut"], strict=True):
                    out[int(i)] = blob
        missing = [i for i, c in enumerate(out) if c is None]
        if missing:
            raise ClusterError(f"Ray gave back no result for {len(missing)} file(s): index again")
        return [c for c in out if c is not None]

    def embed(
        self,
        texts: Sequence[str],
        embedder: Embedder,
        batch_size: int,
        progress: Progress | None = None,
    ) -> npt.NDArray[np.float32]:
        import ray.data

        dimension = embedder.dimension
        out = np.zeros((len(texts), dimension), dtype=np.float32)
        if not texts:
            return out
        workers = self._start()
        began = time.perf_counter()
        recipe = Recipe.of(embedder, threads=self.threads)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        rows = [{"i": i, "text": texts[i]} for i in order]
        # batches of up to EMBED_ROWS texts, at least 4 per worker so that none waits
        per_batch = max(16, min(EMBED_ROWS, -(-len(rows) // (4 * workers))))
        ds: Any = ray.data.from_items(rows, override_num_blocks=-(-len(rows) // per_batch))
        with _ray_warnings_off():  # (of max_restarts: Ray's default restarts forever)
            ds = ds.map_batches(
                _EmbedWorker,
                fn_constructor_kwargs={"recipe": recipe, "batch_size": batch_size},
                batch_size=per_batch,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=workers),
                num_cpus=self.threads,
                max_restarts=RETRIES,
                max_task_retries=RETRIES,
            )
        seen = np.zeros(len(texts), dtype=bool)
        rss: dict[int, float] = {}  # peak RSS of each worker process, MB
        busy: dict[int, float] = {}  # seconds each spent embedding
        loads: dict[int, float] = {}  # seconds each took to load the model
        first: float | None = None
        with _worker_errors(self.address), _ray_warnings_off():
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                if first is None:
                    first = time.perf_counter() - began
                idx = np.asarray(batch["i"], dtype=np.int64)
                out[idx] = np.asarray(batch["vector"], dtype=np.float32).reshape(
                    len(idx), dimension
                )
                seen[idx] = True
                for pid, mb, b, load in zip(
                    batch["pid"], batch["rss_mb"], batch["busy_s"], batch["load_s"], strict=True
                ):
                    rss[int(pid)] = max(rss.get(int(pid), 0.0), float(mb))
                    busy[int(pid)] = busy.get(int(pid), 0.0) + float(b)
                    loads[int(pid)] = float(load)
                if progress is not None:
                    progress(len(idx))
        if not seen.all():
            raise ClusterError(
                f"Ray gave back no vector for {int((~seen).sum())} passage(s): index again"
            )
        self.stats.update(
            first_batch_s=first,
            embed_s=time.perf_counter() - began,
            worker_rss_mb=rss,
            worker_busy_s=busy,
            worker_load_s=loads,
        )
        return out

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        import ray

        self._start()
        task = ray.remote(num_cpus=1, max_retries=RETRIES)(fn)
        with _worker_errors(self.address):
            return list(ray.get([task.remote(x) for x in items]))

    def close(self) -> None:
        if self._owns:
            import ray

            with contextlib.suppress(Exception):
                ray.shutdown()
            self._owns = False


# --- in the workers


def _cut_batch(batch: dict[str, Any], recipe: Recipe, chunking: Chunking) -> dict[str, Any]:
    count = _counter(recipe)
    cuts = np.empty(len(batch["source"]), dtype=object)
    for j, source in enumerate(batch["source"]):
        cuts[j] = cut_file(source, chunking, count)
    return {"i": batch["i"], "cut": cuts}


_COUNTERS: dict[int, Any] = {}  # one tokenizer per worker process and recipe


def _counter(recipe: Recipe) -> Any:
    key = hash((recipe.model, recipe.tokenizer_json))
    if key not in _COUNTERS:
        _COUNTERS.clear()
        _COUNTERS[key] = recipe.counter()
    return _COUNTERS[key]


class _EmbedWorker:
    """One embedding actor: loads the run's embedder once, then embeds batch after batch."""

    def __init__(self, recipe: Recipe, batch_size: int) -> None:
        began = time.perf_counter()
        self._embedder = recipe.embedder()
        self._embedder.embed(["warm"], batch_size=1)  # the weights load now, not in a batch
        self._load_s = time.perf_counter() - began
        self._batch_size = batch_size

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import resource

        texts = [str(t) for t in batch["text"]]
        began = time.perf_counter()
        vectors = self._embedder.embed(texts, batch_size=self._batch_size)
        busy = time.perf_counter() - began
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        n = len(texts)
        return {  # the worker's figures, spread over the rows (a batch has no columns else)
            "i": batch["i"],
            "vector": vectors,
            "pid": np.full(n, os.getpid(), dtype=np.int64),
            "rss_mb": np.full(n, rss, dtype=np.float64),
            "busy_s": np.full(n, busy / max(n, 1), dtype=np.float64),
            "load_s": np.full(n, self._load_s, dtype=np.float64),
        }


# --- Ray itself


def _init(ray: Any, address: str, workers: int | None, threads: int) -> None:
    env = {k: os.environ[k] for k in _ENV if k in os.environ}
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    options: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.ERROR,
        "runtime_env": {"env_vars": env},
    }
    if address.startswith("local"):
        count = int(address.split(":", 1)[1]) if ":" in address else None
        options["address"] = "local"  # a new instance, even where RAY_ADDRESS names another
        if count is not None:
            options["num_cpus"] = max(count, workers or count) * threads
    else:
        options["address"] = address
    # local first: Ray would otherwise report usage statistics to its makers
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray's C++ core logs to the driver's stderr: only fatal errors, and not even the
    # line saying so that it prints while starting
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    try:
        with _stderr_silenced():
            ray.init(**options)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        where = "start a local Ray instance" if address.startswith("local") else f"reach {address}"
        hint = (
            "is a Ray cluster running on this machine (`ray start --head`)? or use --ray local:2"
            if address == "auto"
            else "check the address and that the head is up, or use --ray local:2"
        )
        raise ClusterError(f"cannot {where} ({_one_line(exc)}): {hint}") from None


def _quiet_ray_data() -> None:
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    for name in ("print_on_execution_start", "enable_operator_progress_bars"):
        if hasattr(ctx, name):
            setattr(ctx, name, False)
    for name in ("ray", "ray.data", "ray.util"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def _ray_warnings_off() -> Iterator[None]:
    """Ray Data's Python warnings (deprecations, an actor pool larger than the input)
    are for Ray's users, not semsearch's."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """fd 2 to /dev/null for the duration (what C++ code writes there too)."""
    import sys

    with contextlib.suppress(Exception):
        sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


@contextlib.contextmanager
def _worker_errors(address: str) -> Iterator[None]:
    """A worker's own semsearch error comes back as itself; any other failure of Ray or
    its workers (after Ray's retries) as one `ClusterError` line."""
    try:
        yield
    except SemsearchError:
        raise
    except Exception as exc:
        cause = _semsearch_cause(exc)
        if cause is not None:
            raise cause from None
        told = _told_exception(exc)
        if told is not None and told[0] in _errors.__all__:  # semsearch's own, told as text
            raise getattr(_errors, told[0])(told[1]) from None
        if told is not None:
            why = f"{told[0]}: {told[1]}"
        else:
            root = _causes(exc)[-1]
            why = _one_line(root)
        raise ClusterError(
            f"the Ray workers failed ({why}): the index is as it was; see the Ray logs "
            f"(/tmp/ray/session_latest/logs) and index again (--ray {address})"
        ) from None


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, outermost first (Ray keeps a worker's exception as
    ``cause``, Ray Data's wrappers as ``__cause__``)."""
    chain: list[BaseException] = []
    node: BaseException | None = exc
    while node is not None and all(node is not c for c in chain):
        chain.append(node)
        inner = getattr(node, "cause", None)
        node = inner if isinstance(inner, BaseException) else node.__cause__
    return chain


def _semsearch_cause(exc: BaseException) -> SemsearchError | None:
    return next((c for c in _causes(exc) if isinstance(c, SemsearchError)), None)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RAISED = re.compile(r"^((?:[A-Za-z_][\w]*\.)*)([A-Za-z_]\w*(?:Error|Exception)): (.+)$")


def _told_exception(exc: BaseException) -> tuple[str, str] | None:
    """(class name, message) of the exception a worker raised, from the traceback Ray
    tells it in (Ray Data keeps a UDF's exception only as text): the first line of the
    form ``[module.]Name: message`` not of Ray's own exceptions."""
    for line in _ANSI.sub("", str(exc)).splitlines():
        match = _RAISED.match(line.strip())
        if (
            match is not None
            and not match.group(1).startswith("ray.")
            and match.group(2) not in ("RayTaskError", "UserCodeException")
        ):
            return match.group(2), match.group(3).strip()[:300]
    return None


def _one_line(exc: BaseException) -> str:
    text = _ANSI.sub("", str(exc)).strip().splitlines()
    first = text[0].strip() if text else type(exc).__name__
    return first[:200]
