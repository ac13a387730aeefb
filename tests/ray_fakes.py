"""Fake embedders for the Ray tests; Ray workers import them from here (this checkout on
their PYTHONPATH), as they would a user's own embedder."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from tests.fakes import FakeEmbedder


class DyingOnceFake(FakeEmbedder):
    """Kills the worker process it embeds in, once per ``marker`` file: the first batch
    any worker gets creates the marker and dies (as a worker killed by the kernel would)."""

    def __init__(self, marker: str) -> None:
        super().__init__(name="fake-embedder", fingerprint="fake:1")
        self.marker = marker

    def embed(self, texts: Sequence[str], *, batch_size: int = 32, progress: Any = None) -> Any:
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return super().embed(texts, batch_size=batch_size, progress=progress)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os._exit(1)


class FailingFake(FakeEmbedder):
    """Raises an error of its own in the worker (not semsearch's): a bug in user code."""

    def embed(self, texts: Sequence[str], *, batch_size: int = 32, progress: Any = None) -> Any:
        raise ZeroDivisionError("the embedder divided by zero")


class UnloadableFake(FakeEmbedder):
    """Fails as a model that a worker cannot load does: with semsearch's own error."""

    def embed(self, texts: Sequence[str], *, batch_size: int = 32, progress: Any = None) -> Any:
        from semsearch.errors import ModelLoadError

        raise ModelLoadError("model fake-embedder is not installed on this worker")
