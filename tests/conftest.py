from __future__ import annotations

import atexit
import json
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest

from semsearch.index import Index
from tests.fakes import FakeEmbedder

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
SEEDS = ROOT / "seeds"
BBC = SHARED / "data" / "bbc"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Model exports are cached per user; the tests (and their subprocesses) get their own cache.
_CACHE = tempfile.mkdtemp(prefix="semsearch-test-cache-")
os.environ["SEMSEARCH_CACHE"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, True)


@pytest.fixture
def fake() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A small folder of articles in the seed format and plain text."""
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "a.txt").write_text(
        " date 2024-01-02 7\nRiver floods the town\n"
        "Heavy rain made the river burst its banks on Tuesday.\n"
        "Residents were moved to the school on the hill.\n",
        encoding="utf-8",
    )
    (folder / "b.txt").write_text(
        "Chess champion retires\n\nThe world chess champion said she will retire.\n\n"
        "Her last match was a draw against a young rival.\n",
        encoding="utf-8",
    )
    (folder / "c.txt").write_text(
        " date 2024-03-04 9\nNew bakery opens\nA bakery selling sourdough bread opened downtown.\n",
        encoding="utf-8",
    )
    return folder


@pytest.fixture
def seeds_copy(tmp_path: Path) -> Path:
    target = tmp_path / "seeds"
    shutil.copytree(SEEDS, target)
    return target


@pytest.fixture
def index_dir(tmp_path: Path, corpus: Path) -> Path:
    """An index of the `corpus` fixture, built with the fake embedder."""
    folder = tmp_path / "idx"
    with Index.open(folder, create=True, embedder=FakeEmbedder()) as index:
        index.add([corpus])
    return folder


def read_manifest(index_dir: Path) -> dict[str, Any]:
    """The committed manifest of the index in ``index_dir``, read straight from SQLite."""
    con = sqlite3.connect(index_dir / "semsearch.db")
    try:
        return {k: json.loads(v) for k, v in con.execute("SELECT key, value FROM manifest")}
    finally:
        con.close()
