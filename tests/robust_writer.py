"""Writer processes for tests/test_robustness.py.

    python tests/robust_writer.py edit INDEX_DIR FOLDER STOP_FILE COUNTER_FILE
    python tests/robust_writer.py race WHO BASE FOLDER ROUNDS

Modes:

- ``edit``: round after round, rewrite ``FOLDER/a.txt`` (a different number of
  paragraphs each time) and index FOLDER into INDEX_DIR, until STOP_FILE
  exists (at most MAX_ROUNDS rounds). After each committed round the number of
  rounds done is written to COUNTER_FILE.
- ``race``: for each round n, open ``BASE/ix<n>`` (a folder that does not exist
  yet), meet the other writer at a file barrier, then index FOLDER into it with
  a slow embedder. One JSON line per round on stdout: ``{"round": n,
  "outcome": "ok" | "locked" | "error", ...}``.

Any other exception ends the process with a traceback (a non-zero exit code).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from semsearch.errors import IndexLockedError, SemsearchError
from semsearch.index import Index
from tests.fakes import FakeEmbedder

MAX_ROUNDS = 2000
BARRIER_TIMEOUT = 120.0
EMBED_SLEEP = 0.2


class SlowEmbedder(FakeEmbedder):
    """The fake embedder, slow enough that two writers overlap."""

    def embed(self, texts: Sequence[str], *, batch_size: int = 32, progress: Any = None) -> Any:
        time.sleep(EMBED_SLEEP)
        return super().embed(texts, batch_size=batch_size, progress=progress)


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def edit(index_dir: str, folder: str, stop_file: str, counter_file: str) -> None:
    article = Path(folder) / "a.txt"
    for n in range(1, MAX_ROUNDS + 1):
        if Path(stop_file).exists():
            return
        paragraphs = "\n\n".join(f"para {n} {j} words" for j in range(n % 7 + 1))
        article.write_text(f"Title\n\n{paragraphs}\n", encoding="utf-8")
        with Index.open(index_dir, create=True, embedder=FakeEmbedder()) as index:
            index.add([folder])
        write_atomically(Path(counter_file), str(n))


def barrier(base: Path, n: int, who: str) -> None:
    other = "b" if who == "a" else "a"
    (base / f"ready{n}.{who}").write_text("ready", encoding="utf-8")
    deadline = time.monotonic() + BARRIER_TIMEOUT
    while not (base / f"ready{n}.{other}").exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"writer {who}: the other writer never reached round {n}")
        time.sleep(0.001)


def race(who: str, base: str, folder: str, rounds: str) -> None:
    for n in range(int(rounds)):
        index = Index.open(Path(base) / f"ix{n}", create=True, embedder=SlowEmbedder())
        barrier(Path(base), n, who)
        result: dict[str, Any] = {"round": n, "who": who}
        try:
            report = index.add([folder])
        except IndexLockedError as exc:
            result.update(outcome="locked", message=str(exc))
        except SemsearchError as exc:
            result.update(outcome="error", error=type(exc).__name__, message=str(exc))
        else:
            result.update(outcome="ok", added=report.documents_added)
        finally:
            index.close()
        print(json.dumps(result), flush=True)


def main(argv: list[str]) -> None:
    mode, args = argv[0], argv[1:]
    if mode == "edit":
        edit(*args)
    elif mode == "race":
        race(*args)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
