"""The model's own word-piece vectors (its input embedding matrix), to compare short texts
with a query without running the model.

Highlighting asks which sentence of each hit best matches the query. Running
the model on every sentence costs as much as embedding the hits themselves:
the sentences of five BBC paragraphs hold 30 to 60 times the word pieces of a
query, so a highlighted query took 20 times as long as a plain one. The first
layer of the same model, its matrix of word-piece vectors, answers that
question for the cost of a lookup: a sentence's vector is the mean of its word
pieces' rows, each weighted by how rare the piece is (WordPiece and BPE
vocabularies are built in order of frequency, so a piece's rank among the
words stands in for it), as static-embedding models do. `benchmarks/highlights.py`
measures how often this picks the sentence that embedding each sentence picks.

The matrix is read from the index's ONNX export without onnx or onnxruntime:
the file is a protobuf whose initializer tensors hold their bytes in place, so
the matrix is memory-mapped and only the rows of the pieces asked about are
read from disk.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

_FLOAT = 1  # onnx.TensorProto.FLOAT
_WORD_EMBEDDINGS = "word_embeddings.weight"  # how transformers names the input embedding


class WordVectors:
    """Weighted means of a model's input word-piece vectors, one unit row per text."""

    def __init__(self, matrix: npt.NDArray[np.float32], tokenizer: Any) -> None:
        """``tokenizer`` is a `tokenizers.Tokenizer` of the model; it is only read."""
        self._matrix = matrix
        self._tokenizer = tokenizer
        vocab: dict[str, int] = tokenizer.get_vocab()
        # the first whole word: pieces before it are special tokens and single characters
        first = min((i for t, i in vocab.items() if len(t) > 1 and t.isalpha()), default=0)
        ranks = np.arange(matrix.shape[0], dtype=np.float32) - first
        self._weights = np.log1p(np.maximum(ranks, 1.0)).astype(np.float32)
        self.dimension = int(matrix.shape[1])

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        encs = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        # every text's pieces in one array, summed per text at once: a highlighted query
        # has ~40 sentences, and work per sentence in Python holds the GIL that parallel
        # queries of a server need
        lengths = np.fromiter((len(e.ids) for e in encs), dtype=np.int64, count=len(encs))
        ids = np.fromiter(
            (i for e in encs for i in e.ids), dtype=np.int64, count=int(lengths.sum())
        )
        rows = np.repeat(np.arange(len(encs)), lengths)
        known = (ids >= 0) & (ids < len(self._weights))
        ids, rows = ids[known], rows[known]
        if len(ids):
            weighted = self._weights[ids][:, None] * np.asarray(
                self._matrix[ids], dtype=np.float32
            )
            np.add.at(out, rows, weighted)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        vecs: npt.NDArray[np.float32] = out / norms
        return vecs


def from_onnx(path: str, tokenizer: Any) -> WordVectors | None:
    """The word-piece vectors of the ONNX model at ``path``; None when it has none we know
    (another naming, external data, an unreadable file): callers then run the model."""
    try:
        matrix = onnx_matrix(path, _WORD_EMBEDDINGS)
    except (OSError, ValueError, IndexError):  # not a file we can read as ONNX
        return None
    if matrix is None or matrix.shape[0] < tokenizer.get_vocab_size():
        return None
    return WordVectors(matrix, tokenizer)


def onnx_matrix(path: str, name_suffix: str) -> npt.NDArray[np.float32] | None:
    """The 2-D float initializer of an ONNX file whose name ends with ``name_suffix``,
    memory-mapped (never loaded whole); None when there is none."""
    with open(path, "rb") as fh:
        buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    for field, start, end in _fields(buf, 0, len(buf)):
        if field != 7:  # ModelProto.graph
            continue
        for sub, t_start, t_end in _fields(buf, start, end):
            if sub != 5:  # GraphProto.initializer
                continue
            tensor = _tensor(buf, t_start, t_end)
            if tensor is None:
                continue
            name, dims, data_type, raw = tensor
            if name.endswith(name_suffix) and len(dims) == 2 and data_type == _FLOAT:
                rows, cols = dims
                if raw is None or raw[1] - raw[0] != rows * cols * 4:
                    return None
                # raw_data is little-endian float32, as numpy's "<f4"
                return np.ndarray((rows, cols), dtype="<f4", buffer=buf, offset=raw[0])
    return None


def _tensor(
    buf: Any, start: int, end: int
) -> tuple[str, list[int], int, tuple[int, int] | None] | None:
    """(name, dims, data_type, span of raw_data) of a TensorProto."""
    name, dims, data_type, raw = "", [], 0, None
    for field, a, b in _fields(buf, start, end, varints=True):
        if field == 1:  # dims: a varint each, or packed
            if b < 0:
                dims.append(a)
            else:
                pos = a
                while pos < b:
                    value, pos = _varint(buf, pos)
                    dims.append(value)
        elif field == 2 and b < 0:
            data_type = a
        elif field == 8 and b >= 0:
            name = bytes(buf[a:b]).decode("utf-8", "replace")
        elif field == 9 and b >= 0:
            raw = (a, b)
    return name, dims, data_type, raw


def _fields(
    buf: Any, start: int, end: int, *, varints: bool = False
) -> Iterator[tuple[int, int, int]]:
    """(field number, start, end) of each length-delimited field of a protobuf message;
    with ``varints``, also (field number, value, -1) for each varint field."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            if varints:
                yield field, value, -1
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > end:
                raise ValueError("truncated protobuf field")
            yield field, pos, pos + length
            pos += length
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def _varint(buf: Any, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("malformed protobuf varint")
