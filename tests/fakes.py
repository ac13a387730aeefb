"""A deterministic fake embedder: fast storage and ranking tests without torch.

Each word hashes to a signed slot of a small vector (a bag of words), so texts
that share words get similar vectors, the same text always gets the same
vector, and every call is recorded for counting.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

_TOKEN = re.compile(r"\w+|[^\w\s]")


class FakeEmbedder:
    """Implements `semsearch.embed.Embedder` with hashed bags of words."""

    backend = "fake"
    precision = "fp32"
    batch_size = 32

    def __init__(
        self,
        name: str = "fake-embedder",
        dimension: int = 64,
        max_tokens: int = 64,
        fingerprint: str = "fake:1",
    ) -> None:
        self.name = name
        self.dimension = dimension
        self.max_tokens = max_tokens
        self.fingerprint = fingerprint
        self.calls: list[list[str]] = []  # the texts of every embed() call

    @property
    def embedded(self) -> list[str]:
        """Every text embedded so far, in order."""
        return [t for call in self.calls for t in call]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(_TOKEN.findall(t)) for t in texts]

    def vector(self, text: str) -> npt.NDArray[np.float32]:
        v = np.zeros(self.dimension, dtype=np.float32)
        for tok in _TOKEN.findall(text.lower()):
            h = int.from_bytes(hashlib.md5(tok.encode()).digest()[:8], "little")
            v[h % self.dimension] += 1.0 if (h >> 32) & 1 else -1.0
        n = np.linalg.norm(v)
        return v / n if n else v

    def embed(self, texts: Sequence[str], *, batch_size: int = 32, progress=None):  # type: ignore[no-untyped-def]
        self.calls.append(list(texts))
        out = (
            np.stack([self.vector(t) for t in texts])
            if texts
            else np.zeros((0, self.dimension), np.float32)
        )
        if progress is not None and texts:
            progress(len(texts))
        return out.astype(np.float32)
