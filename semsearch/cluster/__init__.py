"""Where an indexing run does its heavy work: in this process, or on a Ray cluster.

`Index.add` plans a run the same way wherever it works (what is new, changed,
unchanged or gone), then hands two pieces of work to a `Runner`:

- ``cut``: parse each changed file and cut its articles into passages;
- ``embed``: embed the passages' texts, in the caller's order;

and, for the IVF index types, ``map`` to fill index shards. Whatever the runner,
the results come back to this process, which writes SQLite and the vectors in
the one atomic commit a run always makes: a runner never writes the index.

`LocalRunner` is what a run does without ``--ray``. `connect` gives a
`RayRunner` (`semsearch.cluster.on_ray`) for ``--ray local:N``, ``--ray auto``
or ``--ray ray://HOST:PORT``; Ray is an optional extra, imported only then.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from ..embed import Embedder
from ..errors import UsageError
from ..ingest import Document, Problem, SourceFile, parse
from ..ingest.passages import Chunking, Passage, make_passages

T = TypeVar("T")
R = TypeVar("R")

Cut = tuple[list[tuple[Document, list[Passage]]], list[Problem]]
"""One file's articles, each with its passages, and the problems met reading it."""

Progress = Callable[[int], None]
"""Called with how many more texts were embedded."""

RAY_INSTALL_HINT = "pip install 'semsearch[ray]'"
_LOCAL = re.compile(r"^local(?::(\d+))?$")


class Runner(Protocol):
    """Does an indexing run's heavy work and gives back its results, in order."""

    @property
    def description(self) -> str:
        """What did the work, in a few words ("this process", "Ray local:2, 2 workers")."""
        ...

    def cut(
        self, sources: Sequence[SourceFile], chunking: Chunking, embedder: Embedder
    ) -> list[Cut]: ...

    def embed(
        self,
        texts: Sequence[str],
        embedder: Embedder,
        batch_size: int,
        progress: Progress | None = None,
    ) -> npt.NDArray[np.float32]: ...

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]: ...

    def close(self) -> None: ...


def cut_file(
    source: SourceFile, chunking: Chunking, count: Callable[[Sequence[str]], list[int]]
) -> Cut:
    """Parse one file and cut each of its articles into passages."""
    docs, problems = parse(source)
    return [(d, make_passages(d, chunking, count)) for d in docs], problems


class LocalRunner:
    """The work done in this process, one file and one batch after another."""

    description = "this process"

    def cut(
        self, sources: Sequence[SourceFile], chunking: Chunking, embedder: Embedder
    ) -> list[Cut]:
        return [cut_file(s, chunking, embedder.count_tokens) for s in sources]

    def embed(
        self,
        texts: Sequence[str],
        embedder: Embedder,
        batch_size: int,
        progress: Progress | None = None,
    ) -> npt.NDArray[np.float32]:
        return embedder.embed(list(texts), batch_size=batch_size, progress=progress)

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        return [fn(x) for x in items]

    def close(self) -> None:
        pass


def check_address(address: str) -> str:
    """Refuse what is not a Ray address semsearch can use; returns it as given."""
    match = _LOCAL.match(address)
    if match is not None:
        if match.group(1) is not None and int(match.group(1)) < 1:
            raise UsageError("--ray local:N needs at least one worker (say --ray local:2)")
        return address
    if address == "auto" or address.startswith("ray://"):
        if address == "ray://":
            raise UsageError("--ray ray:// needs the head's address: --ray ray://HOST:10001")
        return address
    raise UsageError(
        f"--ray takes local:N (a Ray instance on this machine with N workers), auto (the "
        f"Ray cluster this machine belongs to) or ray://HOST:PORT (got {address!r})"
    )


def connect(address: str, workers: int | None = None, threads: int = 1) -> Runner:
    """A runner on Ray, which starts or joins Ray on first need: ``local:N`` starts a Ray
    instance on this machine with N embedding workers (``local``: one per CPU), ``auto``
    joins the cluster this machine is part of (``ray start``), ``ray://HOST:PORT`` a
    remote one through Ray Client; ``workers`` embedding workers of ``threads`` threads
    each (default: N, or the cluster's CPUs / threads).

    Raises `UsageError` for a malformed address or when Ray is not installed; the
    runner raises `ClusterError` when the cluster cannot be reached.
    """
    check_address(address)
    if workers is not None and workers < 1:
        raise UsageError("--workers needs at least one worker")
    if threads < 1:
        raise UsageError("--threads-per-worker needs at least one thread")
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UsageError(
            f"--ray needs Ray, which is not installed: {RAY_INSTALL_HINT} (or index without --ray)"
        ) from None
    from .on_ray import RayRunner

    return RayRunner(address, workers=workers, threads=threads)


def describe(runner: Any) -> str:
    return str(getattr(runner, "description", "this process"))
