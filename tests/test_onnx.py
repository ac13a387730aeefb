"""The torch-free query path: ONNX export of the index's own model, and lazy imports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from semsearch.embed.export import MIN_COSINE, QueryModel
from semsearch.embed.model import SentenceTransformerEmbedder
from semsearch.embed.onnx import OnnxEmbedder
from semsearch.index import Index
from tests.conftest import ROOT, SEEDS, read_manifest

pytestmark = pytest.mark.slow

TEXTS = [
    "who attends the parade",
    "Who ATTENDS the parade?!",
    "oil",
    "Heavy rain made the river burst its banks on Tuesday. Residents were moved to the school.",
    # longer than the model reads: both paths must truncate the same way
    "The soaring cost of oil has hit global economic growth, according to the OECD. " * 30,
    "Ünïcödé text, emoji 😀 and numbers 3.14159 in one query",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("onnx") / "index"
    with Index.open(folder, create=True) as index:
        index.add([str(SEEDS)])
    return folder


def test_index_holds_a_checked_query_model(built: Path) -> None:
    manifest = read_manifest(built)
    info = QueryModel.from_dict(manifest["query_model"])
    assert info.cosine >= MIN_COSINE
    assert info.pooling == "mean" and info.dimension == 384 and info.max_tokens == 256
    assert (built / info.file).stat().st_size == info.size
    assert info.file == f"query-model-{info.sha256[:16]}.onnx"  # named by its content


def test_onnx_embeddings_match_sentence_transformers(built: Path) -> None:
    manifest = read_manifest(built)
    onnx = OnnxEmbedder("m", "f", str(built), QueryModel.from_dict(manifest["query_model"]))
    reference = SentenceTransformerEmbedder()
    got = onnx.embed(TEXTS)
    want = reference.embed(TEXTS)
    cosines = (got * want).sum(axis=1)
    assert cosines.min() >= 0.9999, cosines
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert onnx.count_tokens(TEXTS) == reference.count_tokens(TEXTS)


def test_queries_rank_the_same_on_both_paths(built: Path) -> None:
    queries = ["who attends the parade", "security pact with Moscow", "Western leaders"]
    with (
        Index.open(built) as fast,
        Index.open(built, embedder=SentenceTransformerEmbedder()) as ref,
    ):
        for q in queries:
            a = fast.search(q, k=7, mode="dense", collapse=False)
            b = ref.search(q, k=7, mode="dense", collapse=False)
            assert [h.passage_id for h in a] == [h.passage_id for h in b]
            assert np.allclose([h.score for h in a], [h.score for h in b], atol=1e-4)
        with fast.snapshot() as snap:
            assert isinstance(snap.embedder, OnnxEmbedder)


def test_a_damaged_query_model_falls_back_to_torch(built: Path, tmp_path: Path) -> None:
    copy = tmp_path / "index"
    shutil.copytree(built, copy)
    with Index.open(copy) as index:
        name = index._store.manifest()["query_model"]["file"]  # type: ignore[union-attr]
    with open(copy / name, "r+b") as fh:
        fh.truncate(1000)
    with Index.open(copy) as index, index.snapshot() as snap:
        hits = snap.search("who attends the parade", k=3, mode="dense")
        assert not isinstance(snap.embedder, OnnxEmbedder)
    with Index.open(built) as index:
        expected = index.search("who attends the parade", k=3, mode="dense")
    assert [h.passage_id for h in hits] == [h.passage_id for h in expected]


def _modules_after(args: list[str], cwd: Path) -> dict[str, bool]:
    """Run the CLI in a fresh interpreter and report which heavy modules it imported."""
    code = (
        "import sys, json\n"
        "from semsearch.cli import app\n"
        f"sys.argv = ['semsearch', *{args!r}]\n"
        "try:\n    app(prog_name='semsearch')\nexcept SystemExit:\n    pass\n"
        "mods = ['torch', 'sentence_transformers', 'faiss', 'transformers']\n"
        "print(json.dumps({m: m in sys.modules for m in mods}), file=sys.stderr)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    return json.loads(done.stderr.strip().splitlines()[-1])


def test_help_and_info_import_nothing_heavy(built: Path, tmp_path: Path) -> None:
    for args in (
        ["--help"],
        ["query", "--help"],
        ["info", "--index", str(built)],
        ["query", "", "--index", str(built)],
    ):
        loaded = _modules_after(args, tmp_path)
        assert not any(loaded.values()), (args, loaded)


def test_a_query_does_not_import_torch(built: Path, tmp_path: Path) -> None:
    loaded = _modules_after(["query", "who attends the parade", "--index", str(built)], tmp_path)
    assert loaded["faiss"]  # it did search
    assert not loaded["torch"] and not loaded["sentence_transformers"], loaded
