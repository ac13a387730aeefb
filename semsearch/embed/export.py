"""A torch-free query path: the index's own model exported to ONNX.

At index time (when an index is created or rebuilt) the sentence-transformers
model is exported once into the index folder, with its pooling and
normalisation inside the graph, beside a copy of its tokenizer. Queries then
run on onnxruntime + tokenizers: no torch import (about 5 s on two cores),
and a few milliseconds per query. sentence-transformers stays the indexing
engine and the reference: the export is checked against it (cosine >= 0.9999)
before it is kept, and a model whose pooling cannot be exported simply has no
ONNX file (queries then use torch).

The files are named by their content (``query-model-<sha256[:16]>.onnx``,
``query-tokenizer-<sha256[:16]>.json``) and recorded in the manifest with
their sha256, so a rebuild that is interrupted never replaces the files the
committed index names; files no longer named are removed after the commit
(`prune`). A file that fails its check is never used: queries fall back to the
model itself, and ``semsearch check`` names it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..storage import integrity
from .onnx import OnnxEncoder

ONNX_FILE = "query-model.onnx"  # the fixed names of older indexes (still read)
TOKENIZER_FILE = "query-tokenizer.json"
_QUERY_FILE = re.compile(r"^query-(model|tokenizer)(-[0-9a-f]{16})?\.(onnx|json)(\.verified)?$")
MIN_COSINE = 0.9999
_CHECK_TEXTS = (
    "who attends the parade",
    "Heavy rain made the river burst its banks on Tuesday, and residents were moved.",
    "a",
    "The soaring cost of oil has hit global economic growth, according to the OECD. " * 6,
)


@dataclass(frozen=True)
class QueryModel:
    """What the manifest records about an exported query model."""

    file: str
    tokenizer: str
    size: int
    max_tokens: int
    dimension: int
    pooling: str
    cosine: float  # the lowest cosine against sentence-transformers on the check texts
    sha256: str = ""  # of the ONNX file ("" in indexes made before names held hashes)
    tokenizer_sha256: str = ""

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QueryModel:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def model_file_name(sha256: str) -> str:
    return f"query-model-{sha256[:16]}.onnx"


def tokenizer_file_name(sha256: str) -> str:
    return f"query-tokenizer-{sha256[:16]}.json"


def export(st_model: Any, folder: str) -> QueryModel | None:
    """Export ``st_model`` into ``folder``; None when its architecture cannot be exported.

    The files are written under temporary names and renamed into place only
    after the export has been checked against the model itself.
    """
    import torch

    try:
        transformer, pooling = st_model[0], st_model[1]
        mode = pooling.get_config_dict().get("pooling_mode", "")
        auto = transformer.auto_model
        backend = _fast_tokenizer(transformer)
    except (AttributeError, IndexError, KeyError, TypeError):
        return None
    if mode not in ("mean", "cls") or backend is None:
        return None
    normalize = any(type(m).__name__ == "Normalize" for m in st_model)

    class Graph(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            if mode == "cls":
                out = hidden[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                out = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(out, p=2, dim=1) if normalize else out

    graph = Graph(auto).eval()
    tmp_onnx, tmp_tok = _temporary_names(folder)
    try:
        example = st_model.tokenizer(["a b", "c"], padding=True, return_tensors="pt")
        if "token_type_ids" not in example:
            return None
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes about shapes, not problems here
            torch.onnx.export(
                graph,
                (example["input_ids"], example["attention_mask"], example["token_type_ids"]),
                tmp_onnx,
                input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["embedding"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "tokens"},
                    "attention_mask": {0: "batch", 1: "tokens"},
                    "token_type_ids": {0: "batch", 1: "tokens"},
                    "embedding": {0: "batch"},
                },
                opset_version=17,
                dynamo=False,
            )
        backend.save(tmp_tok)
        max_tokens = int(st_model.max_seq_length)
        candidate = OnnxEncoder(tmp_onnx, tmp_tok, max_tokens)
        got = candidate.encode(list(_CHECK_TEXTS))
        want = st_model.encode(list(_CHECK_TEXTS), normalize_embeddings=True)
        got_n = got / np.linalg.norm(got, axis=1, keepdims=True)
        cosine = float((got_n * want).sum(1).min())
        if cosine < MIN_COSINE:
            return None
        shape = {"max_tokens": max_tokens, "dimension": int(got.shape[1]), "pooling": mode}
        return _place(folder, tmp_onnx, tmp_tok, **shape, cosine=round(cosine, 7))
    except OSError as exc:
        if integrity.is_disk_failure(exc):
            raise integrity.write_error(folder, "the ONNX query model", exc) from exc
        return None
    except (RuntimeError, ValueError, TypeError, ImportError):
        return None  # an architecture the exporter cannot handle: queries use torch
    finally:
        for tmp in (tmp_onnx, tmp_tok):
            if os.path.exists(tmp):
                os.unlink(tmp)


def _temporary_names(folder: str) -> tuple[str, str]:
    pid = os.getpid()
    return (
        os.path.join(folder, f"{ONNX_FILE}.tmp-{pid}"),
        os.path.join(folder, f"{TOKENIZER_FILE}.tmp-{pid}"),
    )


def _place(
    folder: str,
    tmp_onnx: str,
    tmp_tok: str,
    hashes: tuple[str, str] | None = None,
    **shape: Any,
) -> QueryModel:
    """Rename a checked export into place under names holding its hashes, durably.

    ``hashes`` are the sha256 of the two files when the caller has them (a copy
    hashes as it goes), else they are read here. A file of that content already
    there (the same model exported before) is kept as it is, with its
    verification record.
    """
    sha, tok_sha = hashes or (integrity.sha256_file(tmp_onnx), integrity.sha256_file(tmp_tok))
    model = QueryModel(
        file=model_file_name(sha),
        tokenizer=tokenizer_file_name(tok_sha),
        size=os.path.getsize(tmp_onnx),
        sha256=sha,
        tokenizer_sha256=tok_sha,
        **shape,
    )
    for tmp, name, digest in ((tmp_tok, model.tokenizer, tok_sha), (tmp_onnx, model.file, sha)):
        final = os.path.join(folder, name)
        if _holds(folder, name, digest):
            os.unlink(tmp)
            continue
        with integrity.writing(folder, name):
            integrity.durable_replace(tmp, final)
        if name == model.file:
            integrity.remember_verified(folder, name, sha)
    return model


def _holds(folder: str, name: str, sha256: str) -> bool:
    """True if ``folder/name`` exists with that content."""
    if not os.path.isfile(os.path.join(folder, name)):
        return False
    if name.endswith(".onnx"):
        return integrity.verified_file(folder, name, sha256)
    try:
        return integrity.sha256_file(os.path.join(folder, name)) == sha256
    except OSError:
        return False


def prune(folder: str, keep: dict[str, Any] | None) -> None:
    """Delete query model files (and verification records) the committed manifest does not name."""
    wanted = (
        {keep.get("file"), keep.get("tokenizer"), f"{keep.get('file')}.verified"} if keep else set()
    )
    for name in os.listdir(folder):
        if _QUERY_FILE.match(name) and name not in wanted:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, name))


def _fast_tokenizer(transformer: Any) -> Any:
    """The `tokenizers.Tokenizer` behind a sentence-transformers Transformer module, if any."""
    tok = transformer.tokenizer
    return getattr(tok, "backend_tokenizer", None) or getattr(tok, "_tokenizer", None)


def usable(folder: str, info: dict[str, Any] | None) -> QueryModel | None:
    """The exported model recorded in a manifest, if its files are there and whole.

    The tokenizer is checked by sha256 on every call (0.7 MB: about a
    millisecond), the ONNX file by size and by sha256 once per file identity
    (`integrity.verified_file`). Older indexes recorded no hashes: their files
    are checked by size and presence only.
    """
    if not info:
        return None
    try:
        model = QueryModel.from_dict(info)
    except (KeyError, TypeError):
        return None
    tokenizer = os.path.join(folder, model.tokenizer)
    try:
        if os.path.getsize(os.path.join(folder, model.file)) != model.size:
            return None
        if model.tokenizer_sha256:
            if integrity.sha256_file(tokenizer) != model.tokenizer_sha256:
                return None
        elif not os.path.isfile(tokenizer):
            return None
    except OSError:
        return None
    if model.sha256 and not integrity.verified_file(folder, model.file, model.sha256):
        return None
    try:
        import onnxruntime  # noqa: F401
        import tokenizers  # noqa: F401
    except ImportError:
        return None
    return model


# --------------------------------------------------------------------------- export cache
#
# Exporting needs torch and the model loaded (about 10 s on two cores), which
# the onnx and openvino backends otherwise never need. A checked export is
# therefore kept once per model in the user's cache folder and copied into
# every new index of that model: only the first index of a model on a machine
# pays for it. An entry is keyed by the model's weights and configuration,
# and its ONNX file is checked against the sha256 recorded beside it.

CACHE_VERSION = 1
_CACHE_ENTRY = "query-model.json"


def cache_root() -> str:
    """$SEMSEARCH_CACHE, else $XDG_CACHE_HOME/semsearch, else ~/.cache/semsearch."""
    explicit = os.environ.get("SEMSEARCH_CACHE")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "semsearch")


def cache_key(model_dir: str, fingerprint: str) -> str:
    """Names a model's export: its weights' fingerprint and every small file beside them."""
    h = hashlib.sha256(f"semsearch-export-{CACHE_VERSION}\n{fingerprint}\n".encode())
    for root, dirs, files in os.walk(model_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = os.path.join(root, name)
            if name.startswith(".") or os.path.getsize(path) > 20_000_000:
                continue  # the weights themselves are in the fingerprint
            h.update(os.path.relpath(path, model_dir).encode() + b"\0")
            with open(path, "rb") as fh:
                h.update(hashlib.sha256(fh.read()).digest())
    return h.hexdigest()[:32]


def from_cache(key: str, folder: str) -> QueryModel | None:
    """Copy a cached export into ``folder``; None when there is none (or it is damaged).

    The copy is hashed as it is made and must match the sha256 recorded in the
    entry; a damaged entry is removed (the next export replaces it).
    """
    entry = os.path.join(cache_root(), "exports", key)
    try:
        with open(os.path.join(entry, _CACHE_ENTRY), encoding="utf-8") as fh:
            recorded = json.load(fh)
        cached = QueryModel.from_dict(recorded["query_model"])
        digest = str(recorded["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    tmp_onnx, tmp_tok = _temporary_names(folder)
    shape = {
        "max_tokens": cached.max_tokens,
        "dimension": cached.dimension,
        "pooling": cached.pooling,
        "cosine": cached.cosine,
    }
    try:
        try:
            got_tok = _copy(os.path.join(entry, cached.tokenizer), tmp_tok)
            got = _copy(os.path.join(entry, cached.file), tmp_onnx)
        except OSError as exc:
            if integrity.is_disk_failure(exc):
                raise integrity.write_error(folder, "the ONNX query model", exc) from exc
            return None
        if got != digest or got_tok != (cached.tokenizer_sha256 or got_tok):
            shutil.rmtree(entry, ignore_errors=True)  # damaged: the next export replaces it
            return None
        return _place(folder, tmp_onnx, tmp_tok, (got, got_tok), **shape)
    finally:
        for tmp in (tmp_onnx, tmp_tok):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def to_cache(key: str, folder: str, model: QueryModel) -> None:
    """Keep ``folder``'s fresh export for the next index of the same model (best effort)."""
    exports = os.path.join(cache_root(), "exports")
    entry = os.path.join(exports, key)
    if os.path.isdir(entry):
        return
    tmp = f"{entry}.tmp-{os.getpid()}"
    try:
        os.makedirs(tmp, exist_ok=True)
        _copy(os.path.join(folder, model.tokenizer), os.path.join(tmp, model.tokenizer))
        digest = _copy(os.path.join(folder, model.file), os.path.join(tmp, model.file))
        with open(os.path.join(tmp, _CACHE_ENTRY), "w", encoding="utf-8") as fh:
            json.dump({"query_model": model.as_dict(), "sha256": digest}, fh)
        integrity.durable_replace(tmp, entry)  # a whole entry appears at once, or none
    except OSError:
        pass  # a read-only or full cache folder only costs the next index an export
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _copy(source: str, target: str) -> str:
    """Copy a file, hashing it on the way; the copy is fsynced. Returns its sha256."""
    digest = hashlib.sha256()
    with open(source, "rb") as src, open(target, "wb") as dst:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    return digest.hexdigest()
