"""The FAISS side, behind a narrow interface: add, remove, search, save, load.

Vectors are stored under the SQLite passage ids (``IndexIDMap2`` +
``add_with_ids``), so a hit's id is the row to fetch, with no side list of
positions to keep in step. Vectors are unit length and the metric is inner
product, so scores are cosine similarities.

faiss is imported only when an index is built or read.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from .errors import IndexCorruptError

IdArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


class VectorIndex(Protocol):
    """What the store needs from a vector index."""

    kind: str  # recorded in the manifest

    @property
    def dimension(self) -> int: ...

    @property
    def count(self) -> int: ...

    def add(self, ids: IdArray, vectors: FloatArray) -> None: ...

    def remove(self, ids: IdArray) -> int: ...

    def search(
        self, queries: FloatArray, k: int, allowed: IdArray | None = None
    ) -> tuple[FloatArray, IdArray]: ...

    def ids(self) -> IdArray: ...

    def reconstruct(self, ids: IdArray) -> FloatArray: ...

    def save(self, path: str) -> None: ...


def _faiss() -> Any:
    import faiss

    return faiss


class FlatIndex:
    """Exact inner-product search over every vector (``IDMap2,Flat``)."""

    kind = "flat"

    def __init__(self, index: Any) -> None:
        self._index = index

    @classmethod
    def create(cls, dimension: int) -> FlatIndex:
        faiss = _faiss()
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dimension)))

    @classmethod
    def load(cls, path: str) -> FlatIndex:
        """Read an index file. Raises `IndexCorruptError` if it is missing or damaged."""
        faiss = _faiss()
        if not os.path.isfile(path):
            raise IndexCorruptError(
                f"the vector file {path} is missing: run `semsearch index --rebuild PATH`"
            )
        try:
            index = faiss.read_index(path)
        except RuntimeError as exc:
            raise IndexCorruptError(
                f"the vector file {path} is damaged or truncated: "
                "run `semsearch index --rebuild PATH`"
            ) from exc
        if not isinstance(index, faiss.IndexIDMap2):
            raise IndexCorruptError(
                f"the vector file {path} is not a semsearch vector index: "
                "run `semsearch index --rebuild PATH`"
            )
        return cls(index)

    @property
    def dimension(self) -> int:
        return int(self._index.d)

    @property
    def count(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: IdArray, vectors: FloatArray) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise ValueError(
                f"vectors of dimension {vectors.shape[-1]} cannot go into an index of "
                f"dimension {self.dimension}"
            )
        self._index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: IdArray) -> int:
        if len(ids) == 0:
            return 0
        return int(self._index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64)))

    def search(
        self, queries: FloatArray, k: int, allowed: IdArray | None = None
    ) -> tuple[FloatArray, IdArray]:
        """Top-``k`` (scores, ids) per query row; missing slots have id -1.

        With ``allowed``, only those ids are candidates (the filter is applied
        inside the search, before ranking, not to a top-k list afterwards).
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        available = self.count if allowed is None else min(self.count, len(allowed))
        if available == 0:
            shape = (queries.shape[0], k)
            return np.full(shape, -np.inf, np.float32), np.full(shape, -1, np.int64)
        _threads_for(self.count * len(queries))
        if allowed is None:
            scores, ids = self._index.search(queries, min(k, available))
        else:
            faiss = _faiss()
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
            params = faiss.SearchParameters(sel=selector)
            scores, ids = self._index.search(queries, min(k, available), params=params)
        return scores, ids

    def ids(self) -> IdArray:
        return np.asarray(_faiss().vector_to_array(self._index.id_map), dtype=np.int64)

    def reconstruct(self, ids: IdArray) -> FloatArray:
        out = np.empty((len(ids), self.dimension), dtype=np.float32)
        for row, i in enumerate(ids):
            out[row] = self._index.reconstruct(int(i))
        return out

    def save(self, path: str) -> None:
        """Write to ``path`` through a temporary file, fsynced, then renamed into place."""
        tmp = f"{path}.tmp-{os.getpid()}"
        try:
            _faiss().write_index(self._index, tmp)
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        fsync_dir(os.path.dirname(path) or ".")


PARALLEL_WORK = 4_000_000  # vectors x queries below which one thread is faster


def _threads_for(work: int) -> None:
    """Use one OpenMP thread for small searches: waking a team costs more (6.4 -> 2.3 ms
    per query on a small index here), all cores for large ones."""
    _faiss().omp_set_num_threads(1 if work < PARALLEL_WORK else max(1, os.cpu_count() or 1))


def fsync_dir(path: str) -> None:
    """Make a rename inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create(kind: str, dimension: int) -> VectorIndex:
    """A new empty vector index of the given kind."""
    if kind == "flat":
        return FlatIndex.create(dimension)
    raise ValueError(f"unknown index type {kind!r}")


def load(kind: str, path: str) -> VectorIndex:
    """Read a vector index of the given kind from ``path``."""
    if kind == "flat":
        return FlatIndex.load(path)
    raise IndexCorruptError(f"unknown index type {kind!r} in the manifest")
