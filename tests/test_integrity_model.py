"""The ONNX query model files with the real model: named by content, verified, never stale.

A "second model of the same architecture" is the bundled model with one weight
tensor perturbed: its export has exactly the size of the first one, which is
what made a size-only check accept it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from semsearch.embed.export import ONNX_FILE, TOKENIZER_FILE
from semsearch.embed.model import _bundled_default
from semsearch.embed.onnx import OnnxEmbedder
from semsearch.errors import IndexCorruptError
from semsearch.index import Index
from tests.cli_helpers import run
from tests.conftest import SEEDS
from tests.conftest import read_manifest as manifest

pytestmark = pytest.mark.slow

QUERIES = ["who attends the parade", "security pact with Moscow", "Western leaders"]


def set_manifest(folder: Path, key: str, value: Any) -> None:
    con = sqlite3.connect(folder / "semsearch.db")
    try:
        con.execute("UPDATE manifest SET value = ? WHERE key = ?", (json.dumps(value), key))
        con.commit()
    finally:
        con.close()


Hits = list[list[tuple[str, float]]]


def hits(index: Index) -> Hits:
    """Passage texts and cosines (passage ids change with a rebuild)."""
    return [
        [(h.text, round(h.score, 4)) for h in index.search(q, k=5, mode="dense")] for q in QUERIES
    ]


def fresh_hits(folder: Path) -> tuple[Hits, Any]:
    """The hits of a new Index, and the embedder it answered with."""
    with Index.open(folder) as index, index.snapshot() as snap:
        return hits(index), snap.embedder


def query_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("query-"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("integrity") / "index"
    with Index.open(folder, create=True) as index:
        index.add([str(SEEDS)])
    return folder


@pytest.fixture(scope="module")
def other_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled model with its word embeddings perturbed: same architecture, other vectors."""
    from safetensors.numpy import load_file, save_file

    folder = tmp_path_factory.mktemp("other") / "model"
    shutil.copytree(_bundled_default(), folder)
    weights = load_file(folder / "model.safetensors")
    name = next(k for k in weights if "word_embeddings" in k)
    noise = np.random.default_rng(0).normal(0, 0.05, weights[name].shape)
    weights[name] = (weights[name] + noise).astype(weights[name].dtype)
    save_file(weights, folder / "model.safetensors")
    return folder


@pytest.fixture
def copy(built: Path, tmp_path: Path) -> Path:
    target = tmp_path / "index"
    shutil.copytree(built, target)
    return target


def test_the_query_model_files_are_named_by_content_and_checked(built: Path) -> None:
    entry = manifest(built)["query_model"]
    onnx, tokenizer = built / entry["file"], built / entry["tokenizer"]
    assert entry["sha256"] == sha256(onnx) and entry["tokenizer_sha256"] == sha256(tokenizer)
    assert entry["file"] == f"query-model-{entry['sha256'][:16]}.onnx"
    assert entry["tokenizer"] == f"query-tokenizer-{entry['tokenizer_sha256'][:16]}.json"
    assert query_files(built) == sorted([onnx.name, f"{onnx.name}.verified", tokenizer.name])
    code, out, err = run("check", "--index", str(built))
    assert (code, err) == (0, "")
    assert out.endswith(", 4 files checked\n")  # database, vectors, model, tokenizer


def test_an_interrupted_rebuild_with_another_model_changes_no_answer(
    copy: Path, other_model: Path, monkeypatch: pytest.MonkeyPatch, corpus: Path
) -> None:
    """The rebuild exported the other model over the fixed-name files before embedding; the
    old manifest still named them, their size matched, and every query (and every add on an
    onnx/openvino index) embedded with the other model against the old vectors."""
    before, embedder = fresh_hits(copy)
    assert isinstance(embedder, OnnxEmbedder)
    old = manifest(copy)["query_model"]

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt  # Ctrl-C while embedding

    with monkeypatch.context() as patch:
        patch.setattr(Index, "_embed", staticmethod(interrupted))
        with (
            pytest.raises(KeyboardInterrupt),
            Index.open(copy, create=True, model=str(other_model)) as index,
        ):
            index.add([str(SEEDS)], rebuild=True)
    after, embedder = fresh_hits(copy)
    assert after == before
    assert isinstance(embedder, OnnxEmbedder)
    exports = sorted(copy.glob("query-model-*.onnx"))
    assert len(exports) == 2  # the other model's export was made...
    assert len({p.stat().st_size for p in exports}) == 1  # ...of the very same size
    assert manifest(copy)["query_model"] == old
    code, _, err = run("check", "--index", str(copy))
    assert code == 0 and "2 files are left over from an interrupted run" in err, err
    # The next commit removes what the interrupted run left.
    with Index.open(copy) as index:
        index.add([str(SEEDS), str(corpus)])
    assert query_files(copy) == sorted([old["file"], f"{old['file']}.verified", old["tokenizer"]])
    assert run("check", "--index", str(copy))[0] == 0


def test_a_reader_follows_a_rebuild_with_another_model(copy: Path, other_model: Path) -> None:
    reader = Index.open(copy)
    before = hits(reader)
    with Index.open(copy, create=True, model=str(other_model)) as writer:
        writer.add([str(SEEDS)], rebuild=True)
    now, _ = fresh_hits(copy)
    assert now != before  # the other model answers otherwise...
    assert hits(reader) == now  # ...and the open reader embeds with it, not the old export
    with reader.snapshot() as snap:
        assert isinstance(snap.embedder, OnnxEmbedder)
    reader.close()
    entry = manifest(copy)["query_model"]
    assert query_files(copy) == sorted(
        [entry["file"], f"{entry['file']}.verified", entry["tokenizer"]]
    )


def _flip_a_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_bit_flipped_in_the_onnx_model_is_never_used(built: Path, copy: Path) -> None:
    expected, _ = fresh_hits(built)
    name = manifest(copy)["query_model"]["file"]
    _flip_a_bit(copy / name)
    got, embedder = fresh_hits(copy)
    assert not isinstance(embedder, OnnxEmbedder)  # the model itself answered
    assert got == expected
    code, out, err = run("query", QUERIES[0], "--index", str(copy), "--json")
    assert code == 0 and "Traceback" not in err
    assert len(json.loads(out)["results"]) == 5
    code, out, err = run("check", "--index", str(copy))
    assert code == 1 and out == ""
    hint = "run `semsearch index --rebuild PATH`"
    assert err == f"error: {name} differs from the file written (sha256): {hint}\n"


def test_a_garbage_tokenizer_is_never_used(built: Path, copy: Path) -> None:
    expected, _ = fresh_hits(built)
    name = manifest(copy)["query_model"]["tokenizer"]
    (copy / name).write_bytes(b"garbage{" * 5000)
    for mode in ("dense", "hybrid"):
        code, _, err = run("query", QUERIES[0], "--index", str(copy), "--mode", mode)
        assert code == 0 and "Traceback" not in err, err
    got, embedder = fresh_hits(copy)
    assert got == expected and not isinstance(embedder, OnnxEmbedder)
    code, _, err = run("check", "--index", str(copy))
    assert code == 1 and name in err


def test_an_older_index_with_fixed_names_keeps_working(
    built: Path, copy: Path, corpus: Path
) -> None:
    """Indexes made before content-addressed names: their manifest names the fixed names."""
    expected, _ = fresh_hits(built)
    entry = manifest(copy)["query_model"]
    (copy / entry["file"]).rename(copy / ONNX_FILE)
    (copy / entry["tokenizer"]).rename(copy / TOKENIZER_FILE)
    (copy / f"{entry['file']}.verified").unlink()
    old = {k: v for k, v in entry.items() if k not in ("sha256", "tokenizer_sha256")}
    set_manifest(copy, "query_model", {**old, "file": ONNX_FILE, "tokenizer": TOKENIZER_FILE})

    got, embedder = fresh_hits(copy)
    assert got == expected and isinstance(embedder, OnnxEmbedder)  # the fast path, still
    code, out, err = run("check", "--index", str(copy))
    assert code == 0 and out.startswith("ok: ")
    assert "no recorded checksum" in err and err.startswith("warning: ")
    with Index.open(copy) as index:
        index.add([str(SEEDS), str(corpus)])  # an add keeps its export as it is
    assert query_files(copy) == [ONNX_FILE, TOKENIZER_FILE]
    with Index.open(copy) as index:
        index.add([str(SEEDS)], rebuild=True)  # a rebuild replaces it
    entry = manifest(copy)["query_model"]
    assert entry["sha256"] and ONNX_FILE not in query_files(copy)
    assert fresh_hits(copy)[0] == expected


def test_an_onnx_model_that_fails_to_run_is_one_error(
    built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Damage no check on open can see (a bit rotting after it was verified) may still make
    onnxruntime fail while running: one error naming what to do, not a traceback."""
    with Index.open(built) as index:
        index.search(QUERIES[0])
        with index.snapshot() as snap:
            embedder = snap.embedder
        assert isinstance(embedder, OnnxEmbedder)

        def fail(feeds: Any) -> Any:
            raise Exception("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code")

        monkeypatch.setattr(embedder._encoder, "run", fail)
        with pytest.raises(IndexCorruptError, match=r"cannot run .*semsearch check.*--rebuild"):
            index.search(QUERIES[1])
