"""The semsearch command with fake embedders: the whole CLI, no model, for fast torture tests.

    python tests/fake_cli.py index FOLDER --index DIR -q      # any semsearch arguments

Every model name (the default included) gets a `NamedFake` of that name. Its
vectors are salted by the name, so two "models" give different vectors, as two
real models would. ``$SEMSEARCH_FAKE_SLEEP`` (seconds per batch, default 0)
slows embedding down so that a kill can land in the middle of a write.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any
from unittest import mock

import numpy as np
import numpy.typing as npt

from semsearch import index as _index
from tests.fakes import FakeEmbedder

try:  # this version's module first; later versions moved it to semsearch/embed/
    from semsearch.embedder import DEFAULT_MODEL  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from semsearch.embed.model import DEFAULT_MODEL  # type: ignore[import-not-found,unused-ignore,no-redef]


class NamedFake(FakeEmbedder):
    """The fake embedder standing in for the model ``name``."""

    def __init__(self, name: str = DEFAULT_MODEL) -> None:
        super().__init__(name=name, fingerprint=f"fake:{name}")
        self._salt = "" if name == DEFAULT_MODEL else f"model {name} "
        self._sleep = float(os.environ.get("SEMSEARCH_FAKE_SLEEP") or 0)

    def vector(self, text: str) -> npt.NDArray[np.float32]:
        return super().vector(self._salt + text)

    def embed(self, texts: Sequence[str], *, batch_size: int = 32, progress: Any = None) -> Any:
        if self._sleep:
            for _ in range(0, len(texts), batch_size):
                time.sleep(self._sleep)
        return super().embed(texts, batch_size=batch_size, progress=progress)


def _fake_embedder(self: _index.Index, name: str) -> Any:
    if self._embedder is None or self._embedder.name != name:
        self._embedder = NamedFake(name)
    return self._embedder


def _fake_model_for(self: _index.Index, manifest: dict[str, Any]) -> Any:
    return NamedFake(str(manifest.get("model") or self.model))


def _patches() -> dict[str, Any]:
    """The `Index` methods that load a model, each with its fake (those this version has)."""
    assert hasattr(_index.Index, "_get_embedder"), "semsearch.index.Index._get_embedder is gone"
    patches: dict[str, Any] = {"_get_embedder": _fake_embedder}
    if hasattr(_index.Index, "_model_for"):  # later versions load query models apart
        patches["_model_for"] = _fake_model_for
    return patches


@contextlib.contextmanager
def faked() -> Iterator[None]:
    """Every `Index` in this process loads fakes instead of sentence-transformers, meanwhile."""
    with contextlib.ExitStack() as stack:
        for name, fake in _patches().items():
            stack.enter_context(mock.patch.object(_index.Index, name, fake))
        yield


def install() -> None:
    """Every `Index` in this process loads fakes instead of sentence-transformers, for good."""
    for name, fake in _patches().items():
        setattr(_index.Index, name, fake)


if __name__ == "__main__":
    install()
    from semsearch.cli import main

    main()
