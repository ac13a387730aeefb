"""A torch-free query path: the index's own model exported to ONNX.

When an index is created or rebuilt, the sentence-transformers model is
exported to ONNX, with its pooling and normalisation inside the graph, beside
a copy of its tokenizer. Queries then run on onnxruntime + tokenizers: no
torch import (about 5 s on two cores), and a few milliseconds per query.
sentence-transformers stays the indexing engine and the reference: the export
is checked against it (cosine >= 0.9999) before it is kept, and a model whose
pooling cannot be exported simply has no ONNX file (queries then use torch).

One copy per model and user. The export (90 MB for the default model) is made
once, in the user's model cache (`cache_root`, one entry per model: see
`cache_key`), and every index of that model gets the same file:

- a hard link where the file system allows it (the cache and the index on one
  file system, the usual case): no second copy on disk, and clearing the cache
  takes nothing from the index (a hard link is the file itself);
- else a symbolic link to the cache (another file system): clearing the cache
  breaks it; queries then fall back to the model itself (torch, seconds
  slower), saying so, and the next ``semsearch index`` run puts the file back
  (a link to a new cache copy, exported again if need be), re-embedding
  nothing;
- else (a file system with neither, or no cache that can be written) a copy
  of its own.

The files are named by their content (``query-model-<sha256[:16]>.onnx``,
``query-tokenizer-<sha256[:16]>.json``) and recorded in the manifest with
their sha256, so a rebuild that is interrupted never replaces the files the
committed index names; files no longer named are removed after the commit
(`prune`; a hard link removed leaves the cache's copy alone). A file that
fails its check is never used: queries fall back to the model itself, and
``semsearch check`` names it. A shared file is verified like any other, by
every index that reads it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import warnings
from collections.abc import Iterator
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


def export(st_model: Any, folder: str, key: str | None = None) -> QueryModel | None:
    """Export ``st_model`` for the index in ``folder``; None when its architecture cannot be
    exported.

    With ``key`` (the model's `cache_key`) the export is made in the user's
    model cache and shared into ``folder`` (see above); without one, or when
    the cache cannot be written, in ``folder`` itself. The files are written
    under temporary names and renamed into place only after the export has
    been checked against the model itself.
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
            if typed:
                hidden = self.model(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    token_type_ids=token_type_ids,
                ).last_hidden_state
            else:  # a model without token types (MPNet): the input kept, adding nothing
                hidden = self.model(
                    input_ids=input_ids, attention_mask=attention_mask
                ).last_hidden_state
                hidden = hidden + 0 * token_type_ids[:, :1, None].to(hidden.dtype)
            if mode == "cls":
                out = hidden[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                out = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(out, p=2, dim=1) if normalize else out

    graph = Graph(auto).eval()
    entry = _writable_entry(key) if key is not None else None
    where = entry or folder  # written once: in the cache when it can be, else in the index
    tmp_onnx, tmp_tok = _temporary_names(where)
    try:
        example = st_model.tokenizer(["a b", "c"], padding=True, return_tensors="pt")
        # every export takes the same three inputs (the engines feed them all); a model
        # without token types gets zeros it ignores
        typed = "token_type_ids" in example
        if not typed:
            example["token_type_ids"] = torch.zeros_like(example["input_ids"])
        with torch.no_grad(), warnings.catch_warnings(), _one_torch_thread():
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
            # The check: the export pads the texts into one batch, the model itself takes
            # them one at a time (each at its own length, no padding to compute).
            candidate = OnnxEncoder(tmp_onnx, tmp_tok, max_tokens, threads=1)
            got = candidate.encode(list(_CHECK_TEXTS))
            want = st_model.encode(  # the texts as they are: no default prompt of the model
                list(_CHECK_TEXTS), batch_size=1, normalize_embeddings=True, prompt=""
            )
        got_n = got / np.linalg.norm(got, axis=1, keepdims=True)
        cosine = float((got_n * want).sum(1).min())
        if cosine < MIN_COSINE:
            return None
        shape = {"max_tokens": max_tokens, "dimension": int(got.shape[1]), "pooling": mode}
        model = _place(where, tmp_onnx, tmp_tok, **shape, cosine=round(cosine, 7))
        if entry is None:
            return model
        _record(entry, model)
        return _share(folder, _sources(entry, model), model)
    except OSError as exc:
        if integrity.is_disk_failure(exc):
            raise integrity.write_error(where, "the ONNX query model", exc) from exc
        return None
    except (RuntimeError, ValueError, TypeError, ImportError):
        return None  # an architecture the exporter cannot handle: queries use torch
    finally:
        for tmp in (tmp_onnx, tmp_tok):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run torch on one thread for a while (process-wide), then as before.

    Tracing and the check are many small operations: on a busy machine (here,
    two cores and a load of 6) two threads made each several times slower,
    since every operation waits for the other thread to be scheduled (the
    check 2.0 s, on one thread 0.45 s); on an idle machine one thread does
    them about as fast.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


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

    ``hashes`` are the sha256 of the two files when the caller has them, else
    they are read here. A file of that content already there (the same model
    exported before) is kept as it is, with its verification record.
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
    """Delete query model files (and verification records) the committed manifest does not name.

    A hard link or symbolic link removed leaves the model cache's copy alone.
    """
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
    are checked by size and presence only. Links are followed: a link to a
    cleared cache is a missing file.
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


def missing(folder: str, info: dict[str, Any] | None) -> bool:
    """True when a manifest names query model files that are not there: gone, or symbolic
    links to a model cache that was cleared. The next index run puts them back."""
    if not info:
        return False
    names = [info.get("file"), info.get("tokenizer")]
    return any(isinstance(n, str) and not os.path.exists(os.path.join(folder, n)) for n in names)


def why_unusable(folder: str, info: dict[str, Any] | None) -> str:
    """Why the query model a manifest names cannot be used, as a user reads it."""
    if not info:
        return "the index has no ONNX query model"
    name = str(info.get("file"))
    if missing(folder, info):
        target = _link_target(os.path.join(folder, name))
        if target is not None:
            return (
                f"the ONNX query model of the index in {folder} is a link to the model cache, "
                f"which no longer holds it ({target})"
            )
        return f"the ONNX query model of the index in {folder} ({name}) is missing"
    return f"the ONNX query model of the index in {folder} ({name}) is damaged"


def _link_target(path: str) -> str | None:
    """Where a symbolic link points, or None for anything else."""
    try:
        return os.readlink(path) if os.path.islink(path) else None
    except OSError:
        return None


@dataclass(frozen=True)
class Storage:
    """How an index holds its ONNX query model (see `storage`)."""

    kind: str  # "hard_link", "symlink", "copy", "missing" or "none"
    path: str = ""  # the file queries read (a link's target); "" when missing or none
    size: int = 0
    links: int = 0  # names the file has (hard links): 1 when the index alone holds it


def storage(folder: str, info: dict[str, Any] | None) -> Storage:
    """How ``folder`` holds the query model a manifest names: a copy of its own, a hard link
    (one file with the model cache and the other indexes of that model), or a symbolic link
    into the cache (another file system)."""
    if not info or not isinstance(info.get("file"), str):
        return Storage("none")
    path = os.path.join(folder, str(info["file"]))
    try:
        st = os.stat(path)
    except OSError:
        return Storage("missing")
    if _link_target(path) is not None:
        return Storage("symlink", os.path.realpath(path), st.st_size, st.st_nlink)
    kind = "hard_link" if st.st_nlink > 1 else "copy"
    return Storage(kind, os.path.abspath(path), st.st_size, st.st_nlink)


def shared_bytes(folder: str) -> int:
    """Bytes of the files in ``folder`` that other paths hold too (hard links): deleting the
    folder frees none of them while the model cache or another index keeps its link."""
    total = 0
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                st = entry.stat(follow_symlinks=False)
                if entry.is_file(follow_symlinks=False) and st.st_nlink > 1:
                    total += st.st_size
    return total


# --------------------------------------------------------------------------- the model cache
#
# Exporting needs torch and the model loaded (seconds), which the onnx and
# openvino backends otherwise never need. A checked export is therefore kept
# once per model in the user's cache folder, and every new index of that
# model shares it: only the first index of a model on a machine pays for the
# export. An entry, ``exports/<key>/``, is keyed by the model's weights and
# configuration; it holds the two files under their content names and
# ``query-model.json`` naming them with their sha256, written last. Entries
# written before files were shared held copies under the fixed names, which
# are still read. The cache is never pruned by semsearch: clearing it (``rm
# -r ~/.cache/semsearch``) is safe at any time (see the module's notes).

CACHE_VERSION = 1
_CACHE_ENTRY = "query-model.json"
_TMP = re.compile(r"\.tmp-(\d+)(-\d+)?$")


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
    """The cached export of the model ``key`` names, shared into ``folder``; None when there
    is none (or it is damaged).

    The cache's ONNX file is verified by sha256 first (hashed once per file
    identity), its tokenizer always; a damaged entry is forgotten, and the
    next export replaces it.
    """
    entry = os.path.join(cache_root(), "exports", key)
    record = os.path.join(entry, _CACHE_ENTRY)
    try:
        with open(record, encoding="utf-8") as fh:
            recorded = json.load(fh)
        cached = QueryModel.from_dict(recorded["query_model"])
        digest = str(recorded["sha256"])
        if not all(os.path.basename(n) == n for n in (cached.file, cached.tokenizer)):
            return None
        onnx_source = os.path.join(entry, cached.file)
        tok_source = os.path.join(entry, cached.tokenizer)
        tok_sha = integrity.sha256_file(tok_source)
        size = os.path.getsize(onnx_source)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    whole = cached.tokenizer_sha256 in ("", tok_sha) and integrity.verified_file(
        entry, cached.file, digest
    )
    if not whole:
        with contextlib.suppress(OSError):
            os.unlink(record)  # damaged: the next export replaces it
        return None
    model = QueryModel(
        file=model_file_name(digest),
        tokenizer=tokenizer_file_name(tok_sha),
        size=size,
        max_tokens=cached.max_tokens,
        dimension=cached.dimension,
        pooling=cached.pooling,
        cosine=cached.cosine,
        sha256=digest,
        tokenizer_sha256=tok_sha,
    )
    try:
        return _share(folder, {model.file: onnx_source, model.tokenizer: tok_source}, model)
    except ValueError:
        return None  # the cache's copy changed while it was copied: export afresh


def _writable_entry(key: str) -> str | None:
    """The cache folder of ``key``'s export, made if need be; None if it cannot be written."""
    entry = os.path.join(cache_root(), "exports", key)
    try:
        os.makedirs(entry, exist_ok=True)
        if not os.access(entry, os.W_OK):
            return None
        _remove_abandoned(entry)
    except OSError:
        return None
    return entry


def _remove_abandoned(folder: str) -> None:
    """Delete temporary files of processes that are gone (an export killed half-way)."""
    for name in os.listdir(folder):
        found = _TMP.search(name)
        if found and not _running(int(found.group(1))):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's: alive
    return True


def _record(entry: str, model: QueryModel) -> None:
    """Name the entry's files, durably, after them (best effort: a cache that cannot be
    written only costs the next index an export)."""
    path = os.path.join(entry, _CACHE_ENTRY)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"query_model": model.as_dict(), "sha256": model.sha256}, fh)
        integrity.durable_replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _sources(entry: str, model: QueryModel) -> dict[str, str]:
    return {name: os.path.join(entry, name) for name in (model.file, model.tokenizer)}


def _share(folder: str, sources: dict[str, str], model: QueryModel) -> QueryModel:
    """Give ``folder`` the files of ``model``; ``sources`` maps each name to the cache's copy.

    A hard link where the file system allows it, else a symbolic link, else a
    copy (checked against its sha256 as it is made); a whole file of that
    content already there is kept when no hard link can replace it. Each is
    renamed into place durably, like every file an index names. The sources
    must have been verified by the caller.
    """
    digests = {model.file: model.sha256, model.tokenizer: model.tokenizer_sha256}
    with integrity.writing(folder, "the ONNX query model"):
        for name in (model.tokenizer, model.file):
            source, final = sources[name], os.path.join(folder, name)
            if _same_file(source, final):
                continue
            tmp = f"{final}.tmp-{os.getpid()}"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            try:
                try:
                    os.link(source, tmp)
                except OSError:
                    if _holds(folder, name, digests[name]):
                        continue  # a whole copy of its own: a symbolic link would do worse
                    try:
                        os.symlink(os.path.abspath(source), tmp)
                    except OSError:
                        if _copy(source, tmp) != digests[name]:
                            raise ValueError(f"{source} changed while it was copied") from None
                integrity.durable_replace(tmp, final)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)  # left when it was a second name of the file it replaced
        # verified by the caller; recorded as it is now that it has one more name
        integrity.remember_verified(folder, model.file, model.sha256)
        source = sources[model.file]
        integrity.remember_verified(os.path.dirname(source), os.path.basename(source), model.sha256)
    return model


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


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
