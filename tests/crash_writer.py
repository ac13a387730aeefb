"""A writer process for tests/test_safety.py, meant to be killed with SIGKILL.

    python tests/crash_writer.py MODE INDEX_DIR FOLDER MARKER

Modes:

- ``embed``: index FOLDER with an embedder that sleeps on every small batch;
  MARKER is written when the first batch is being embedded.
- ``commit``: index FOLDER; once the new vector file is written and the
  SQLite transaction holds the new rows and manifest (not yet committed),
  write MARKER and sleep.
- ``lock``: hold the index's write lock, write MARKER and sleep.

The process never finishes on its own in a reasonable time: the test kills it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from semsearch.index import Index
from semsearch.storage.lock import WriteLock
from semsearch.storage.store import Store
from tests.fakes import FakeEmbedder

SLEEP_PER_BATCH = 0.2
HANG = 600.0


def signal(marker: str) -> None:
    tmp = Path(marker + ".tmp")
    tmp.write_text("ready", encoding="utf-8")
    tmp.replace(marker)


class SlowEmbedder(FakeEmbedder):
    """The fake embedder, slow: one sleep per batch, and a marker on the first."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker

    def embed(self, texts: Sequence[str], *, batch_size: int = 32, progress: Any = None) -> Any:
        import numpy as np

        parts = []
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            if start == 0:
                signal(self.marker)
            time.sleep(SLEEP_PER_BATCH)
            parts.append(super().embed(batch, batch_size=batch_size, progress=progress))
        if not parts:
            return super().embed([], batch_size=batch_size, progress=progress)
        return np.concatenate(parts)


def main(mode: str, index_dir: str, folder: str, marker: str) -> None:
    if mode == "embed":
        Index.open(index_dir, embedder=SlowEmbedder(marker)).add([folder], batch_size=2)
    elif mode == "commit":
        original = Store.commit

        def commit_then_hang(self: Store, index: Any, manifest: dict[str, Any]) -> int:
            generation = original(self, index, manifest)
            signal(marker)
            time.sleep(HANG)
            return generation

        Store.commit = commit_then_hang  # type: ignore[method-assign]
        Index.open(index_dir, embedder=FakeEmbedder()).add([folder])
    elif mode == "lock":
        with WriteLock(index_dir):
            signal(marker)
            time.sleep(HANG)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    raise SystemExit("finished without being killed")


if __name__ == "__main__":
    main(*sys.argv[1:5])
