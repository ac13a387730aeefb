"""Indexing backends: torch (default), onnx and openvino, in fp32 or (openvino) int8.

The real-model tests build each kind of index over the seed article once per
module (int8 quantisation costs about ten seconds) and copy its folder when a
test changes it. They check that every backend's passage vectors agree with
sentence-transformers, that an int8 model is made once, recorded, reused and
replaced only by a rebuild, that an index refuses vectors from another backend
or precision, and how damaged or missing pieces are reported.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from semsearch import (
    BackendMismatchError,
    IndexCorruptError,
    IndexNotFoundError,
    ModelLoadError,
    ModelMismatchError,
    UsageError,
)
from semsearch.embed import backends as backends_module
from semsearch.embed.backends import ExportedEmbedder
from semsearch.embed.export import QueryModel
from semsearch.embed.model import SentenceTransformerEmbedder
from semsearch.embed.onnx import OnnxEmbedder
from semsearch.index import Index
from semsearch.ingest import parse, read_file, walk
from semsearch.ingest.passages import Chunking, make_passages
from tests.cli_helpers import assert_one_line_error, run
from tests.conftest import SEEDS
from tests.conftest import read_manifest as manifest_of

QUERY = "who attends the parade"
INT8_FILE = re.compile(r"^embed-model-int8-[0-9a-f]{16}\.(xml|bin)$")
TEXTS = [
    QUERY,
    "oil",
    "Heavy rain made the river burst its banks on Tuesday. Residents were moved to the school.",
    # longer than the model reads: every backend must truncate the same way
    "The soaring cost of oil has hit global economic growth, according to the OECD. " * 30,
    "Ünïcödé text, emoji 😀 and numbers 3.14159 in one sentence",
]


# --------------------------------------------------------------------------- helpers


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _embed_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def embed_texts(folders: Sequence[Path], reference: SentenceTransformerEmbedder) -> list[str]:
    """What an index embeds for the articles under ``folders`` (title line + passage)."""
    chunking = Chunking(max_tokens=reference.max_tokens)
    texts: list[str] = []
    for given, abspath in walk([str(f) for f in folders]).files:
        docs, _ = parse(read_file(given, abspath))
        for doc in docs:
            texts += [p.embed_text for p in make_passages(doc, chunking, reference.count_tokens)]
    return texts


def stored_vectors(folder: Path) -> dict[str, npt.NDArray[np.float32]]:
    """The committed vector of each passage of the index, by the hash of its embedded text."""
    with Index.open(folder) as index:
        store = index._store
        assert store is not None
        file_ids = [row.id for row in store.files().values()]
        by_hash = store.ids_by_embed_hash(file_ids)
        assert len(by_hash) == store.passage_count()  # no two passages embed the same text
        ids = np.asarray(list(by_hash.values()), dtype=np.int64)
        with index.snapshot() as snap:
            vecs = snap.vectors(ids.tolist())
    return {h: vecs[n] for n, h in enumerate(by_hash)}


def vectors_for(folder: Path, texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """The index's vectors of ``texts``, in order; the index must hold exactly those."""
    stored = stored_vectors(folder)
    assert set(stored) == {_embed_hash(t) for t in texts}, "the index holds other passages"
    return np.stack([stored[_embed_hash(t)] for t in texts])


def cosines(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.asarray((a.astype(np.float64) * b).sum(axis=1))


def info_of(folder: Path) -> tuple[str, str]:
    """(backend, precision) as `Index.info` tells them."""
    with Index.open(folder) as index:
        info = index.info()
    return info.backend, info.precision


def int8_files(folder: Path) -> dict[str, str]:
    """name -> sha256 of every int8 model file in the folder."""
    return {p.name: _sha256(p) for p in folder.iterdir() if INT8_FILE.match(p.name)}


def dense_hits(folder: Path, query: str = QUERY, k: int = 5) -> list[tuple[int, str, float]]:
    with Index.open(folder) as index:
        hits = index.search(query, k=k, mode="dense", collapse=False)
    return [(h.passage_id, h.text, round(h.score, 5)) for h in hits]


def state(folder: Path) -> tuple[dict[str, Any], list[tuple[int, str, float]], list[str]]:
    """What must not change when a run is refused: manifest, results, index files."""
    files = sorted(
        p.name
        for p in folder.iterdir()
        if p.name.startswith(("vectors.", "embed-model-", "query-"))
    )
    return manifest_of(folder), dense_hits(folder), files


def copy_of(folder: Path, tmp_path: Path, name: str = "index") -> Path:
    target = tmp_path / name
    shutil.copytree(folder, target)
    return target


def build(folder: Path, paths: Sequence[Path], **options: Any) -> Path:
    with Index.open(folder, create=True, **options) as index:
        index.add([str(p) for p in paths])
    return folder


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def reference() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


@pytest.fixture(scope="module")
def seed_texts(reference: SentenceTransformerEmbedder) -> list[str]:
    texts = embed_texts([SEEDS], reference)
    assert len(texts) >= 3
    return texts


@pytest.fixture(scope="module")
def torch_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("torch") / "index", [SEEDS])


@pytest.fixture(scope="module")
def onnx_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("onnx") / "index", [SEEDS], backend="onnx")


@pytest.fixture(scope="module")
def openvino_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("openvino") / "index", [SEEDS], backend="openvino")


@pytest.fixture(scope="module")
def int8_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(
        tmp_path_factory.mktemp("int8") / "index", [SEEDS], backend="openvino", precision="int8"
    )


@pytest.fixture
def no_quantizing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any new int8 calibration fail loudly: the index's own model must be reused."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a new int8 model was calibrated")

    monkeypatch.setattr(ExportedEmbedder, "_quantize", refuse)


# --------------------------------------------------------------------------- fp32 backends


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["onnx", "openvino"])
def test_fp32_backends_embed_passages_like_torch(
    kind: str,
    request: pytest.FixtureRequest,
    reference: SentenceTransformerEmbedder,
    seed_texts: list[str],
) -> None:
    folder: Path = request.getfixturevalue(f"{kind}_index")
    got = vectors_for(folder, seed_texts)
    want = reference.embed(seed_texts)
    cos = cosines(got, want)
    assert cos.min() >= 0.9999, cos
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert info_of(folder) == (kind, "fp32")
    manifest = manifest_of(folder)
    assert (manifest["backend"], manifest["precision"]) == (kind, "fp32")
    assert manifest.get("embed_model") is None
    assert int8_files(folder) == {}


@pytest.mark.slow
def test_torch_index_records_torch_fp32(torch_index: Path) -> None:
    assert info_of(torch_index) == ("torch", "fp32")
    manifest = manifest_of(torch_index)
    assert (manifest["backend"], manifest["precision"]) == ("torch", "fp32")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["onnx", "openvino"])
def test_exported_embedder_matches_torch_on_awkward_texts(
    kind: str, onnx_index: Path, reference: SentenceTransformerEmbedder
) -> None:
    embedder = ExportedEmbedder(reference, kind, "fp32")
    with pytest.raises(RuntimeError, match="prepare"):
        embedder.embed(["x"])
    query_model = QueryModel.from_dict(manifest_of(onnx_index)["query_model"])
    assert embedder.prepare(str(onnx_index), query_model, None, []) is None
    got = embedder.embed(TEXTS, batch_size=2)
    cos = cosines(got, reference.embed(TEXTS))
    assert cos.min() >= 0.9999, cos
    assert embedder.embed([]).shape == (0, reference.dimension)
    assert embedder.count_tokens(TEXTS) == reference.count_tokens(TEXTS)
    assert (embedder.dimension, embedder.max_tokens) == (384, 256)


# --------------------------------------------------------------------------- openvino int8


@pytest.mark.slow
def test_int8_vectors_are_close_to_torch(
    int8_index: Path, reference: SentenceTransformerEmbedder, seed_texts: list[str]
) -> None:
    got = vectors_for(int8_index, seed_texts)
    cos = cosines(got, reference.embed(seed_texts))
    assert cos.mean() >= 0.98, cos
    assert cos.min() >= 0.95, cos
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_int8_top_hit_matches_torch(int8_index: Path, torch_index: Path) -> None:
    with Index.open(int8_index) as a, Index.open(torch_index) as b:
        int8_hits = a.search(QUERY, k=3)  # the default (hybrid) search a user runs
        torch_hits = b.search(QUERY, k=3)
    assert int8_hits and torch_hits
    assert (int8_hits[0].text, int8_hits[0].paragraph) == (
        torch_hits[0].text,
        torch_hits[0].paragraph,
    )


@pytest.mark.slow
def test_int8_dense_scores_are_close_to_torch(int8_index: Path, torch_index: Path) -> None:
    """Dense scores move by far less than the gap between a relevant passage and the rest.

    (The two best passages for the query are within 0.01 of each other, so their
    dense order may swap under int8: compare the top set and the scores.)
    """
    int8_hits = {text: score for _, text, score in dense_hits(int8_index, k=7)}
    torch_hits = {text: score for _, text, score in dense_hits(torch_index, k=7)}
    assert set(int8_hits) == set(torch_hits)
    for text, score in torch_hits.items():
        assert abs(int8_hits[text] - score) < 0.02, (text, int8_hits[text], score)

    def best_two(hits: dict[str, float]) -> set[str]:
        return set(sorted(hits, key=hits.__getitem__, reverse=True)[:2])

    assert best_two(int8_hits) == best_two(torch_hits)


@pytest.mark.slow
def test_int8_model_is_recorded_in_the_manifest(int8_index: Path, seed_texts: list[str]) -> None:
    manifest = manifest_of(int8_index)
    assert (manifest["backend"], manifest["precision"]) == ("openvino", "int8")
    entry = manifest["embed_model"]
    assert set(entry) >= {
        "file",
        "weights",
        "sha256",
        "xml_sha256",
        "calibration_passages",
        "quantizer",
    }
    assert INT8_FILE.match(entry["file"]) and entry["file"].endswith(".xml")
    assert entry["weights"] == entry["file"][: -len(".xml")] + ".bin"
    assert entry["file"] == f"embed-model-int8-{entry['sha256'][:16]}.xml"
    assert int8_files(int8_index) == {
        entry["file"]: entry["xml_sha256"],
        entry["weights"]: entry["sha256"],
    }
    # the passages of the first run, plus the fixed check texts
    assert entry["calibration_passages"] >= len(seed_texts)
    assert entry["quantizer"].startswith("nncf ")
    assert not [p.name for p in int8_index.iterdir() if ".tmp-" in p.name]
    assert info_of(int8_index) == ("openvino", "int8")


@pytest.mark.slow
def test_int8_index_queries_with_the_fp32_query_model(
    int8_index: Path, reference: SentenceTransformerEmbedder
) -> None:
    stored = stored_vectors(int8_index)
    with Index.open(int8_index) as index:
        with index.snapshot() as snap:
            hits = snap.search(QUERY, k=3, mode="dense", collapse=False)
            assert isinstance(snap.embedder, OnnxEmbedder)
            assert snap.embedder.precision == "fp32"
        assert index._store is not None
        file_ids = [row.id for row in index._store.files().values()]
        hash_of = {pid: h for h, pid in index._store.ids_by_embed_hash(file_ids).items()}
    query = reference.embed([QUERY])[0]
    assert hits
    for hit in hits:  # scores are fp32 query vectors against the stored int8-made vectors
        assert abs(float(stored[hash_of[hit.passage_id]] @ query) - hit.score) < 1e-3


@pytest.mark.slow
def test_int8_model_is_reused_on_an_incremental_add(
    int8_index: Path,
    tmp_path: Path,
    corpus: Path,
    reference: SentenceTransformerEmbedder,
    seed_texts: list[str],
    no_quantizing: None,
) -> None:
    folder = copy_of(int8_index, tmp_path)
    before_entry = manifest_of(folder)["embed_model"]
    before_files = int8_files(folder)
    before_vectors = vectors_for(folder, seed_texts)

    with Index.open(folder) as index:
        report = index.add([str(SEEDS), str(corpus)])
    new_texts = embed_texts([corpus], reference)
    assert report.passages_embedded == len(new_texts) > 0

    after = manifest_of(folder)
    assert after["embed_model"] == before_entry
    assert (after["backend"], after["precision"]) == ("openvino", "int8")
    assert int8_files(folder) == before_files
    both = vectors_for(folder, seed_texts + new_texts)
    assert np.array_equal(both[: len(seed_texts)], before_vectors)
    cos = cosines(both[len(seed_texts) :], reference.embed(new_texts))
    assert cos.min() >= 0.95, cos


@pytest.mark.slow
def test_rebuild_makes_a_new_int8_model_and_deletes_the_old(
    int8_index: Path, tmp_path: Path, corpus: Path, reference: SentenceTransformerEmbedder
) -> None:
    folder = copy_of(int8_index, tmp_path)
    old = manifest_of(folder)["embed_model"]
    with Index.open(folder) as index:  # no backend given: a rebuild keeps the index's own
        index.add([str(SEEDS), str(corpus)], rebuild=True)

    manifest = manifest_of(folder)
    assert (manifest["backend"], manifest["precision"]) == ("openvino", "int8")
    new = manifest["embed_model"]
    texts = embed_texts([SEEDS, corpus], reference)
    assert new["calibration_passages"] > old["calibration_passages"]
    assert new["calibration_passages"] >= len(texts)
    assert new["file"] != old["file"]  # calibrated on other passages: another model
    # exactly one pair is left, the one the manifest names, whole
    assert int8_files(folder) == {new["file"]: new["xml_sha256"], new["weights"]: new["sha256"]}
    assert not [p.name for p in folder.iterdir() if ".tmp-" in p.name]
    cos = cosines(vectors_for(folder, texts), reference.embed(texts))
    assert cos.mean() >= 0.98 and cos.min() >= 0.95, cos


@pytest.mark.slow
def test_rebuild_on_the_same_passages_leaves_one_int8_pair(
    int8_index: Path, tmp_path: Path
) -> None:
    folder = copy_of(int8_index, tmp_path)
    with Index.open(folder, backend="openvino", precision="int8") as index:
        index.add([str(SEEDS)], rebuild=True)
    new = manifest_of(folder)["embed_model"]
    assert int8_files(folder) == {new["file"]: new["xml_sha256"], new["weights"]: new["sha256"]}
    assert dense_hits(folder)  # the rebuilt index searches


@pytest.mark.slow
def test_rebuild_to_another_backend_drops_the_int8_model(
    int8_index: Path, tmp_path: Path, reference: SentenceTransformerEmbedder
) -> None:
    folder = copy_of(int8_index, tmp_path)
    with Index.open(folder, backend="onnx") as index:
        index.add([str(SEEDS)], rebuild=True)
    manifest = manifest_of(folder)
    assert (manifest["backend"], manifest["precision"]) == ("onnx", "fp32")
    assert manifest.get("embed_model") is None
    assert int8_files(folder) == {}
    texts = embed_texts([SEEDS], reference)
    assert cosines(vectors_for(folder, texts), reference.embed(texts)).min() >= 0.9999


# --------------------------------------------------------------------------- switching


@pytest.mark.slow
@pytest.mark.parametrize(
    ("options", "wanted", "suggestion"),
    [
        ({"backend": "onnx"}, "onnx fp32", "--rebuild --backend onnx"),
        (
            {"backend": "openvino", "precision": "int8"},
            "openvino int8",
            "--rebuild --backend openvino --precision int8",
        ),
    ],
)
def test_another_backend_is_refused_and_the_index_is_unchanged(
    torch_index: Path,
    tmp_path: Path,
    corpus: Path,
    options: dict[str, str],
    wanted: str,
    suggestion: str,
) -> None:
    folder = copy_of(torch_index, tmp_path)
    before = state(folder)
    with Index.open(folder, **options) as index, pytest.raises(BackendMismatchError) as caught:
        index.add([str(SEEDS), str(corpus)])
    assert isinstance(caught.value, ModelMismatchError)
    message = str(caught.value)
    assert "torch fp32" in message and wanted in message, message
    assert suggestion in message, message
    assert state(folder) == before


@pytest.mark.slow
def test_another_backend_is_refused_by_the_cli(
    torch_index: Path, tmp_path: Path, corpus: Path
) -> None:
    folder = copy_of(torch_index, tmp_path)
    before = state(folder)
    code, out, err = run(
        "index", str(SEEDS), str(corpus), "--index", str(folder), "--backend", "onnx", "-q"
    )
    assert_one_line_error(code, out, err, "torch fp32", "onnx fp32", "--rebuild", exit_code=2)
    assert state(folder) == before


@pytest.mark.slow
def test_int8_index_accepts_its_own_backend_without_precision(
    int8_index: Path, tmp_path: Path, corpus: Path, no_quantizing: None
) -> None:
    folder = copy_of(int8_index, tmp_path)
    entry = manifest_of(folder)["embed_model"]
    files = int8_files(folder)
    with Index.open(folder, backend="openvino") as index:
        report = index.add([str(SEEDS), str(corpus)])
    assert report.passages_embedded > 0
    manifest = manifest_of(folder)
    assert manifest["embed_model"] == entry
    assert (manifest["backend"], manifest["precision"]) == ("openvino", "int8")
    assert int8_files(folder) == files


@pytest.mark.slow
@pytest.mark.parametrize(
    ("options", "wanted"),
    [
        ({"precision": "fp32"}, "openvino fp32"),
        ({"backend": "openvino", "precision": "fp32"}, "openvino fp32"),
        ({"backend": "onnx"}, "onnx fp32"),
        ({"backend": "torch"}, "torch fp32"),
    ],
)
def test_int8_index_refuses_other_precisions_and_backends(
    int8_index: Path, tmp_path: Path, corpus: Path, options: dict[str, str], wanted: str
) -> None:
    folder = copy_of(int8_index, tmp_path)
    before = state(folder)
    with Index.open(folder, **options) as index, pytest.raises(BackendMismatchError) as caught:
        index.add([str(SEEDS), str(corpus)])
    message = str(caught.value)
    assert "openvino int8" in message and wanted in message, message
    assert state(folder) == before


@pytest.mark.slow
def test_rebuild_with_a_new_backend_is_allowed(
    torch_index: Path, tmp_path: Path, corpus: Path, reference: SentenceTransformerEmbedder
) -> None:
    folder = copy_of(torch_index, tmp_path)
    with Index.open(folder, backend="openvino") as index:
        index.add([str(SEEDS)], rebuild=True)
    assert info_of(folder) == ("openvino", "fp32")
    # later runs without --backend use the index's new backend, and torch is now refused
    with Index.open(folder) as index:
        report = index.add([str(SEEDS), str(corpus)])
    assert report.passages_embedded > 0
    assert info_of(folder) == ("openvino", "fp32")
    texts = embed_texts([SEEDS, corpus], reference)
    assert cosines(vectors_for(folder, texts), reference.embed(texts)).min() >= 0.9999
    with Index.open(folder, backend="torch") as index, pytest.raises(BackendMismatchError):
        index.add([str(SEEDS), str(corpus)])


# --------------------------------------------------------------------------- damage


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["flip", "truncate", "delete-xml"])
def test_damaged_int8_model_is_reported_and_the_index_still_searches(
    int8_index: Path, tmp_path: Path, corpus: Path, damage: str
) -> None:
    folder = copy_of(int8_index, tmp_path)
    entry = manifest_of(folder)["embed_model"]
    weights, xml = folder / entry["weights"], folder / entry["file"]
    if damage == "flip":
        _flip_a_byte(weights)
    elif damage == "truncate":
        with open(weights, "r+b") as fh:
            fh.truncate(weights.stat().st_size // 2)
    else:
        xml.unlink()
    before = state(folder)

    with Index.open(folder) as index:
        unchanged = index.add([str(SEEDS)])  # nothing to embed: no model needed
    assert unchanged.passages_embedded == 0
    with Index.open(folder) as index, pytest.raises(IndexCorruptError) as caught:
        index.add([str(SEEDS), str(corpus)])
    message = str(caught.value)
    assert "rebuild" in message and entry["file"] in message, message
    assert state(folder) == before

    code, out, err = run("index", str(SEEDS), str(corpus), "--index", str(folder), "-q")
    assert_one_line_error(code, out, err, "rebuild", exit_code=2)
    assert state(folder) == before


@pytest.mark.slow
def test_rebuild_repairs_a_damaged_int8_model(
    int8_index: Path, tmp_path: Path, corpus: Path
) -> None:
    folder = copy_of(int8_index, tmp_path)
    entry = manifest_of(folder)["embed_model"]
    _flip_a_byte(folder / entry["weights"])
    with Index.open(folder) as index:
        index.add([str(SEEDS), str(corpus)], rebuild=True)
    new = manifest_of(folder)["embed_model"]
    assert int8_files(folder) == {new["file"]: new["xml_sha256"], new["weights"]: new["sha256"]}
    with Index.open(folder) as index:  # and it is usable for later additions
        index.add([str(SEEDS)])
    assert dense_hits(folder)


def query_file(folder: Path) -> Path:
    """The index's ONNX query model (named by its content)."""
    return folder / manifest_of(folder)["query_model"]["file"]


def _truncate_query_model(folder: Path) -> None:
    with open(query_file(folder), "r+b") as fh:
        fh.truncate(1000)


@pytest.mark.slow
def test_damaged_query_model_on_an_onnx_index_says_how_to_recover(
    onnx_index: Path, tmp_path: Path, corpus: Path
) -> None:
    """The onnx backend embeds passages with the index's export: when it is damaged the way
    out is a rebuild, since switching to --backend torch alone is refused."""
    folder = copy_of(onnx_index, tmp_path)
    _truncate_query_model(folder)
    before = state(folder)
    with (
        Index.open(folder) as index,
        pytest.raises((ModelLoadError, IndexCorruptError)) as caught,
    ):
        index.add([str(SEEDS), str(corpus)])
    assert state(folder) == before
    with Index.open(folder, backend="torch") as index, pytest.raises(BackendMismatchError):
        index.add([str(SEEDS), str(corpus)])  # what the message advises: refused
    assert "--rebuild" in str(caught.value), str(caught.value)


@pytest.mark.slow
def test_rebuild_repairs_a_damaged_query_model_on_an_onnx_index(
    onnx_index: Path, tmp_path: Path, corpus: Path, reference: SentenceTransformerEmbedder
) -> None:
    folder = copy_of(onnx_index, tmp_path)
    _truncate_query_model(folder)
    with Index.open(folder) as index:
        index.add([str(SEEDS), str(corpus)], rebuild=True)
    assert info_of(folder) == ("onnx", "fp32")
    texts = embed_texts([SEEDS, corpus], reference)
    assert cosines(vectors_for(folder, texts), reference.embed(texts)).min() >= 0.9999


# --------------------------------------------------------------------------- usage errors


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"precision": "int8"}, "--backend openvino"),
        ({"backend": "onnx", "precision": "int8"}, "--backend openvino"),
        ({"backend": "torch", "precision": "int8"}, "--backend openvino"),
        ({"backend": "nope"}, "'nope'"),
        ({"precision": "fp16"}, "'fp16'"),
    ],
)
def test_impossible_choices_are_usage_errors(
    tmp_path: Path, options: dict[str, str], needle: str
) -> None:
    with pytest.raises(UsageError) as caught:
        Index.open(tmp_path / "index", create=True, **options)
    assert needle in str(caught.value), str(caught.value)
    assert not (tmp_path / "index").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--precision", "int8"], "openvino"),
        (["--backend", "onnx", "--precision", "int8"], "openvino"),
        (["--backend", "nope"], "nope"),
        (["--precision", "fp16"], "fp16"),
    ],
)
def test_cli_refuses_impossible_choices(tmp_path: Path, args: list[str], needle: str) -> None:
    folder = tmp_path / "index"
    code, out, err = run("index", str(SEEDS), "--index", str(folder), *args)
    assert_one_line_error(code, out, err, needle, exit_code=2)
    assert not folder.exists()


def test_eval_refuses_int8_without_openvino(tmp_path: Path) -> None:
    code, out, err = run("eval", str(tmp_path / "dataset"), "--precision", "int8")
    assert_one_line_error(code, out, err, "openvino", exit_code=2)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "line"),
    [("int8_index", "embedded by:  openvino int8"), ("torch_index", "embedded by:  torch fp32")],
)
def test_info_tells_what_embedded_the_index(
    kind: str, line: str, request: pytest.FixtureRequest
) -> None:
    folder: Path = request.getfixturevalue(kind)
    code, out, err = run("info", "--index", str(folder))
    assert code == 0, err
    assert line in out.splitlines(), out
    code, out, err = run("info", "--index", str(folder), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert f"{data['backend']} {data['precision']}" == line.split(":  ")[1]


# --------------------------------------------------------------------------- openvino missing


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("folder_exists", [False, True])
def test_missing_openvino_is_a_model_load_error_and_leaves_no_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, precision: str, folder_exists: bool
) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` now fails
    folder = tmp_path / "index"
    if folder_exists:
        folder.mkdir()
    with (
        Index.open(folder, create=True, backend="openvino", precision=precision) as index,
        pytest.raises(ModelLoadError) as caught,
    ):
        index.add([str(SEEDS)])
    assert "pip install 'semsearch[openvino]'" in str(caught.value)
    if folder_exists:  # the user's folder stays, without an index in it
        assert folder.is_dir()
        with pytest.raises(IndexNotFoundError):
            Index.open(folder)
        assert not (folder / "semsearch.db").exists()
    else:  # a folder this run made is removed again
        assert not folder.exists()
    assert not [p for p in tmp_path.rglob("*") if INT8_FILE.match(p.name)]


@pytest.mark.slow
def test_missing_nncf_refuses_int8_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nncf", None)  # OpenVINO there, NNCF not
    with (
        Index.open(tmp_path / "int8", create=True, backend="openvino", precision="int8") as index,
        pytest.raises(
            ModelLoadError, match=r"int8 needs NNCF: pip install 'semsearch\[openvino\]'"
        ),
    ):
        index.add([str(SEEDS)])
    assert not (tmp_path / "int8").exists()
    fp32 = build(tmp_path / "fp32", [SEEDS], backend="openvino")  # fp32 needs no NNCF
    assert info_of(fp32) == ("openvino", "fp32")


@pytest.mark.slow
def test_missing_openvino_via_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)
    folder = tmp_path / "index"
    code, out, err = run("index", str(SEEDS), "--index", str(folder), "--backend", "openvino")
    assert_one_line_error(code, out, err, "semsearch[openvino]", exit_code=2)
    assert not folder.exists() or not (folder / "semsearch.db").exists()


def test_prune_keeps_only_the_named_int8_pair(tmp_path: Path) -> None:
    names = [
        "embed-model-int8-0123456789abcdef.xml",
        "embed-model-int8-0123456789abcdef.bin",
        "embed-model-int8-fedcba9876543210.xml",
        "embed-model-int8-fedcba9876543210.bin",
        "query-model.onnx",
        "embed-model-int8-notahash.bin",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    keep = {"file": names[0], "weights": names[1]}
    backends_module.prune(os.fspath(tmp_path), keep)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [names[0], names[1], "query-model.onnx", "embed-model-int8-notahash.bin"]
    )
    backends_module.prune(os.fspath(tmp_path), None)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["query-model.onnx", "embed-model-int8-notahash.bin"]
    )


@pytest.mark.slow
def test_incremental_add_on_an_int8_index_needs_no_torch(
    int8_index: Path, tmp_path: Path, corpus: Path
) -> None:
    """The index's own export answers tokens and dimension: an add loads no torch."""
    folder = copy_of(int8_index, tmp_path)
    embedded, torch_loaded = add_in_a_fresh_process(folder, [SEEDS, corpus])
    assert embedded > 0
    assert torch_loaded is False


def add_in_a_fresh_process(folder: Path, paths: Sequence[Path], **options: str) -> list[Any]:
    """Index ``paths`` in a new Python process: [passages embedded, whether torch was loaded]."""
    code = (
        "import sys, json\n"
        "from semsearch.index import Index\n"
        f"ix = Index.open({str(folder)!r}, create=True, **{options!r})\n"
        f"r = ix.add({[str(p) for p in paths]!r})\n"
        "print(json.dumps([r.passages_embedded, 'torch' in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    result: list[Any] = json.loads(out)
    return result


# --------------------------------------------------------------------------- export cache


def _cache_entry(reference: SentenceTransformerEmbedder) -> Path:
    key = reference.export_key()
    assert key is not None
    return Path(os.environ["SEMSEARCH_CACHE"]) / "exports" / key


def _cached_file(entry: Path) -> Path:
    recorded = json.loads((entry / "query-model.json").read_text(encoding="utf-8"))
    return entry / recorded["query_model"]["file"]


@pytest.mark.slow
def test_a_new_index_of_a_cached_model_needs_no_torch(
    onnx_index: Path, tmp_path: Path, reference: SentenceTransformerEmbedder
) -> None:
    """The first index of a model leaves its checked export in the cache; the next copies it."""
    cached = _cached_file(_cache_entry(reference))
    assert cached.read_bytes() == query_file(onnx_index).read_bytes()
    folder = tmp_path / "fresh"
    embedded, torch_loaded = add_in_a_fresh_process(
        folder, [SEEDS], backend="openvino", precision="int8"
    )
    assert embedded > 0 and torch_loaded is False
    assert query_file(folder).read_bytes() == cached.read_bytes()
    assert manifest_of(folder)["query_model"] == manifest_of(onnx_index)["query_model"]


@pytest.mark.slow
def test_a_damaged_cache_entry_is_replaced_by_a_new_export(
    onnx_index: Path,
    tmp_path: Path,
    reference: SentenceTransformerEmbedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A copy of the session's cache: its own files are those of every index linked to them.
    own = tmp_path / "cache"
    shutil.copytree(Path(os.environ["SEMSEARCH_CACHE"]) / "exports", own / "exports")
    monkeypatch.setenv("SEMSEARCH_CACHE", str(own))
    entry = _cache_entry(reference)
    _flip_a_byte(_cached_file(entry))
    folder = build(tmp_path / "index", [SEEDS], backend="onnx")
    # the index got a sound export, checked against the model, not the damaged copy
    assert query_file(folder).read_bytes() == query_file(onnx_index).read_bytes()
    assert vectors_for(folder, embed_texts([SEEDS], reference)).shape[0] > 0
    assert _cached_file(entry).read_bytes() == query_file(onnx_index).read_bytes()
