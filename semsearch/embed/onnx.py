"""onnxruntime + tokenizers: the engine that embeds queries (and passages with ``--backend
onnx``) from an index's ONNX export, with no torch."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..errors import IndexCorruptError
from . import batch_order, normalize, words

if TYPE_CHECKING:
    from .export import QueryModel
    from .words import WordVectors


class OnnxEncoder:
    """onnxruntime + tokenizers: texts in, embeddings out."""

    def __init__(
        self, onnx_path: str, tokenizer_path: str, max_tokens: int, threads: int | None = None
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or max(1, os.cpu_count() or 1)
        if options.intra_op_num_threads == 1:
            # no pool of its own to keep busy: a thread waiting for work would only spin
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self._session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
        self._tokenizer, self._pad_id = load_tokenizer(tokenizer_path, max_tokens)
        self.onnx_path = onnx_path
        self._counter: Any = None  # made on first use: queries never count
        self.max_tokens = max_tokens

    @property
    def tokenizer(self) -> Any:
        """The `tokenizers.Tokenizer` that encodes for the model (truncating): read it only."""
        return self._tokenizer

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        # A tokenizer of its own that never truncates: switching the shared one's
        # truncation off and on again let a thread encoding meanwhile read past the
        # model's limit. Both are only read once set up, which any number of threads may.
        if self._counter is None:
            from tokenizers import Tokenizer

            counter = Tokenizer.from_str(self._tokenizer.to_str())
            counter.no_truncation()
            self._counter = counter
        encs = self._counter.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encs]

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        progress: Callable[[int], None] | None = None,
    ) -> npt.NDArray[np.float32]:
        return encode_batches(self._tokenizer, self._pad_id, texts, batch_size, self.run, progress)

    def run(self, feeds: dict[str, npt.NDArray[np.int64]]) -> npt.NDArray[np.float32]:
        """One batch of token ids through the graph: its raw output vectors."""
        (vecs,) = self._session.run(None, feeds)
        return np.asarray(vecs, dtype=np.float32)


def encode_batches(
    tokenizer: Any,
    pad_id: int,
    texts: Sequence[str],
    batch_size: int,
    run: Callable[[dict[str, npt.NDArray[np.int64]]], npt.NDArray[np.float32]],
    progress: Callable[[int], None] | None = None,
    *,
    width_multiple: int = 1,
) -> npt.NDArray[np.float32]:
    """Tokenize ``texts``, run them through ``run`` in batches of similar length, in order.

    Sorting by token count leaves almost no padding, which is most of the
    speed of a batch; rows come back in the order of ``texts``. Batches are
    padded to a multiple of ``width_multiple`` tokens (masked: the vectors do
    not change) for engines that prepare every new input shape.
    """
    encs = tokenizer.encode_batch(list(texts))
    limit = int((tokenizer.truncation or {}).get("max_length") or 0)
    out: npt.NDArray[np.float32] | None = None
    for batch in batch_order([len(e.ids) for e in encs], batch_size):
        rows = batch.tolist()
        width = max(len(encs[i].ids) for i in rows)
        rounded = -(-width // width_multiple) * width_multiple
        width = max(width, min(rounded, limit))  # never past what the model reads
        ids = np.full((len(rows), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        types = np.zeros((len(rows), width), dtype=np.int64)
        for r, i in enumerate(rows):
            n = len(encs[i].ids)
            ids[r, :n] = encs[i].ids
            mask[r, :n] = 1
            types[r, :n] = encs[i].type_ids
        vecs = run({"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
        if out is None:
            out = np.zeros((len(texts), vecs.shape[1]), dtype=np.float32)
        out[rows] = vecs
        if progress is not None:
            progress(len(rows))
    if out is None:
        return np.zeros((0, 0), dtype=np.float32)
    return out


def load_tokenizer(path: str, max_tokens: int) -> tuple[Any, int]:
    """A saved `tokenizers.Tokenizer` set to truncate at ``max_tokens``, and its pad id."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(path)
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_tokens)
    padding = json.loads(tokenizer.to_str()).get("padding") or {}
    return tokenizer, int(padding.get("pad_id", 0))


QUERY_THREADS = 1  # onnxruntime threads per query (see `OnnxEmbedder`)


class OnnxEmbedder:
    """An `Embedder` for queries on an index that holds an exported model."""

    backend = "onnxruntime"
    precision = "fp32"
    batch_size = 32

    @classmethod
    def load(
        cls, name: str, fingerprint: str, folder: str, info: QueryModel
    ) -> OnnxEmbedder | None:
        """The embedder, or None when onnxruntime or tokenizers cannot read the files (damage
        no checksum was recorded for, in an older index): queries then use the model itself."""
        try:
            return cls(name, fingerprint, folder, info)
        except Exception:  # the boundary with onnxruntime and tokenizers: their errors
            return None  # (InvalidProtobuf, Fail, a JSON error...) derive from Exception only

    def __init__(self, name: str, fingerprint: str, folder: str, info: QueryModel) -> None:
        self.name = name
        self._folder = folder
        self._fingerprint = fingerprint
        self._info = info
        # One thread a query: a query is a few tokens, which a second thread hardly speeds
        # up (single-query latency the same within noise), while a server runs queries side
        # by side, each on a core of its own: 4-8 concurrent queries encode 1.3-1.8x faster
        # than with one two-thread pool that they all share and spin on.
        self._encoder = OnnxEncoder(
            os.path.join(folder, info.file),
            os.path.join(folder, info.tokenizer),
            info.max_tokens,
            threads=QUERY_THREADS,
        )
        self._words: WordVectors | None = None
        self._words_read = False

    @property
    def fingerprint(self) -> str:
        return self._fingerprint  # exported from exactly that model, checked at export

    def exported_as(self, info: dict[str, Any] | None) -> bool:
        """True if a manifest's ``query_model`` names the files this embedder runs."""
        return (
            bool(info)
            and (info or {}).get("file") == self._info.file
            and ((info or {}).get("tokenizer") == self._info.tokenizer)
        )

    @property
    def dimension(self) -> int:
        return self._info.dimension

    @property
    def max_tokens(self) -> int:
        return self._info.max_tokens

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._encoder.count_tokens(texts)

    def word_vectors(self) -> WordVectors | None:
        """The export's input word-piece vectors (see `embed.words`), mapped on first use."""
        if not self._words_read:  # two threads may both map it: the same read-only rows
            self._words = words.from_onnx(self._encoder.onnx_path, self._encoder.tokenizer)
            self._words_read = True
        return self._words

    def embed(
        self, texts: Sequence[str], *, batch_size: int = 32, progress: Any = None
    ) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        try:
            vecs = self._encoder.encode(texts, batch_size=batch_size)
        except Exception as exc:  # onnxruntime's errors derive from Exception only
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise IndexCorruptError(
                f"the ONNX query model of the index in {self._folder} ({self._info.file}) cannot "
                f"run ({first}): run `semsearch check`, then `semsearch index --rebuild PATH`"
            ) from exc
        if progress is not None:
            progress(len(texts))
        return normalize(vecs)
