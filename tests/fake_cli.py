"""The semsearch command with fake embedders: the whole CLI, no model, for fast torture tests.

    python tests/fake_cli.py index FOLDER --index DIR -q      # any semsearch arguments

Every model name (the default included) gets a `NamedFake` of that name. Its
vectors are salted by the name, so two "models" give different vectors, as two
real models would. ``$SEMSEARCH_FAKE_SLEEP`` (seconds per batch, default 0)
slows embedding down so that a kill can land in the middle of a write;
``$SEMSEARCH_FAKE_STARTED`` names a file made when the first batch is embedded
(in whichever process embeds: a Ray worker too).
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
from semsearch.embed.model import DEFAULT_MODEL
from tests.fakes import FakeEmbedder


class NamedFake(FakeEmbedder):
    """The fake embedder standing in for the model ``name``."""

    def __init__(self, name: str = DEFAULT_MODEL) -> None:
        super().__init__(name=name, fingerprint=f"fake:{name}")
        self._salt = "" if name == DEFAULT_MODEL else f"model {name} "
        self._sleep = float(os.environ.get("SEMSEARCH_FAKE_SLEEP") or 0)
        self._started = os.environ.get("SEMSEARCH_FAKE_STARTED") or ""

    def vector(self, text: str) -> npt.NDArray[np.float32]:
        return super().vector(self._salt + text)

    def embed(self, texts: Sequence[str], *, batch_size: int = 32, progress: Any = None) -> Any:
        if self._started and texts:
            with open(self._started, "a") as fh:
                fh.write(f"{os.getpid()}\n")
        if self._sleep:
            for _ in range(0, len(texts), batch_size):
                time.sleep(self._sleep)
        return super().embed(texts, batch_size=batch_size, progress=progress)


def _fake_model(name: str) -> Any:
    return NamedFake(name)


@contextlib.contextmanager
def faked() -> Iterator[None]:
    """Every `Index` in this process loads fakes instead of sentence-transformers, meanwhile."""
    assert hasattr(_index.Index, "_load_model"), "semsearch.index.Index._load_model is gone"
    with mock.patch.object(_index.Index, "_load_model", staticmethod(_fake_model)):
        yield


def install() -> None:
    """Make every `Index` in this process load fakes instead of sentence-transformers."""
    assert hasattr(_index.Index, "_load_model"), "semsearch.index.Index._load_model is gone"
    _index.Index._load_model = staticmethod(_fake_model)  # type: ignore[method-assign]


if __name__ == "__main__":
    install()
    from semsearch.cli import main

    main()
