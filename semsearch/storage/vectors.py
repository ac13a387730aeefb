"""The FAISS side, behind a narrow interface: add, remove, search, save, load.

Vectors are stored under the SQLite passage ids (``IndexIDMap2`` +
``add_with_ids``), so a hit's id is the row to fetch, with no side list of
positions to keep in step. Vectors are unit length and the metric is inner
product, so scores are cosine similarities.

faiss is imported only when an index is built or read.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from ..errors import IndexCorruptError, UsageError
from .integrity import durable_replace, fsync_path, writing

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


class _FaissIndex:
    """What every vector index shares: a FAISS index, its size, reading vectors back, saving."""

    kind: str
    _index: Any

    @property
    def dimension(self) -> int:
        return int(self._index.d)

    @property
    def count(self) -> int:
        return int(self._index.ntotal)

    def reconstruct(self, ids: IdArray) -> FloatArray:
        return _reconstruct(self._index, ids, self.dimension)

    def save(self, path: str) -> None:
        """Write to ``path`` through a temporary file, fsynced, then renamed into place."""
        _write(self._index, path)

    _ids_memo: IdArray | None = None  # the ids, listed once until the next change

    def ids(self) -> IdArray:
        """Every id held (a filtered search asks for them on each query: listed once)."""
        if self._ids_memo is None:
            self._ids_memo = self._list_ids()
        return self._ids_memo

    def _list_ids(self) -> IdArray:
        raise NotImplementedError

    def _changed(self) -> None:
        self._ids_memo = None


class FlatIndex(_FaissIndex):
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
        index = _read(path)
        if not isinstance(index, _faiss().IndexIDMap2):
            raise IndexCorruptError(
                f"the vector file {path} is not a semsearch vector index: "
                "run `semsearch index --rebuild PATH`"
            )
        return cls(index)

    def add(self, ids: IdArray, vectors: FloatArray) -> None:
        self._changed()
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
        self._changed()
        if len(ids) == 0:
            return 0
        return int(self._index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64)))

    def search(
        self, queries: FloatArray, k: int, allowed: IdArray | None = None
    ) -> tuple[FloatArray, IdArray]:
        """Top-``k`` (scores, ids) per query row; missing slots have id -1.

        The rows are never wider than the vectors that can match (k is clamped
        to them), so a huge ``k`` costs nothing.

        With ``allowed``, only those ids are candidates (the filter is applied
        inside the search, before ranking, not to a top-k list afterwards).
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        available = self.count if allowed is None else min(self.count, len(allowed))
        k = clamp_k(k, available)
        if k == 0:
            return _no_results(len(queries))
        _threads_for(self.count * len(queries))
        if allowed is None:
            scores, ids = self._index.search(queries, k)
        else:
            faiss = _faiss()
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
            params = faiss.SearchParameters(sel=selector)
            scores, ids = self._index.search(queries, k, params=params)
        return scores, ids

    def _list_ids(self) -> IdArray:
        return np.asarray(_faiss().vector_to_array(self._index.id_map), dtype=np.int64)


def clamp_k(k: int, available: int) -> int:
    """``k``, but never more than the ``available`` vectors: result arrays are k wide, so a
    huge k must not size them (every search caps it here, whatever its caller checked)."""
    return max(0, min(int(k), int(available)))


def _no_results(queries: int) -> tuple[FloatArray, IdArray]:
    return np.zeros((queries, 0), np.float32), np.zeros((queries, 0), np.int64)


PARALLEL_WORK = 4_000_000  # vectors x queries below which one thread is faster


def _threads_for(work: int) -> None:
    """Use one OpenMP thread for small searches: waking a team costs more (6.4 -> 2.3 ms
    per query on a small index here), all cores for large ones."""
    _faiss().omp_set_num_threads(1 if work < PARALLEL_WORK else max(1, os.cpu_count() or 1))


def _read(path: str, mmap: bool = False, flags: int | None = None) -> Any:
    faiss = _faiss()
    if not os.path.isfile(path):
        raise IndexCorruptError(
            f"the vector file {path} is missing: run `semsearch index --rebuild PATH`"
        )
    try:
        if flags is None:
            flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
        return faiss.read_index(path, flags)
    except RuntimeError as exc:
        raise IndexCorruptError(
            f"the vector file {path} is damaged or truncated: run `semsearch index --rebuild PATH`"
        ) from exc


def _reconstruct(index: Any, ids: IdArray, dimension: int) -> FloatArray:
    # one call for all of them (FAISS loops in C++, a query's ~200 candidates cost no
    # Python each); one at a time only where an index type has no batch form
    keys = np.ascontiguousarray(ids, dtype=np.int64)
    try:
        batch: FloatArray = np.asarray(index.reconstruct_batch(keys), dtype=np.float32)
        return batch.reshape(len(keys), dimension)
    except RuntimeError:
        pass
    out = np.empty((len(ids), dimension), dtype=np.float32)
    for row, i in enumerate(ids):
        out[row] = index.reconstruct(int(i))
    return out


def _write(index: Any, path: str) -> None:
    """Write through a temporary file, fsynced, renamed into place, the rename made durable.

    A failed write (FAISS reports a short write(2) as a RuntimeError) raises
    `IndexWriteError` and leaves no temporary file behind.
    """
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with writing(os.path.dirname(path) or ".", os.path.basename(path), engine=(RuntimeError,)):
            _faiss().write_index(index, tmp)
            durable_replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


EXACT_SUBSET = 20_000  # a filter leaving this few passages is searched exactly


def _short(ids: IdArray, wanted: int) -> bool:
    """True if some query row found fewer than ``wanted`` results."""
    return bool((np.asarray(ids) >= 0).sum(axis=1).min() < wanted)


def _exact_subset(
    index: VectorIndex, queries: FloatArray, k: int, allowed: IdArray
) -> tuple[FloatArray, IdArray]:
    """Brute force over the allowed ids: exact, and k results whenever k are allowed.

    Ids the index does not hold (a writer committed passages after these vectors
    were read) are skipped.
    """
    ids = np.intersect1d(np.asarray(allowed, dtype=np.int64), index.ids())
    k_eff = clamp_k(k, len(ids))
    if k_eff == 0:
        return _no_results(len(queries))
    vecs = index.reconstruct(ids)
    scores = queries @ vecs.T
    out_s = np.full((len(queries), k_eff), -np.inf, np.float32)
    out_i = np.full((len(queries), k_eff), -1, np.int64)
    for row in range(len(queries)):
        top = np.argpartition(-scores[row], k_eff - 1)[:k_eff]
        top = top[np.argsort(-scores[row][top], kind="stable")]
        out_s[row, :k_eff] = scores[row][top]
        out_i[row, :k_eff] = ids[top]
    return out_s, out_i


class HNSWIndex(_FaissIndex):
    """Approximate search on a graph (``IDMap2,HNSW32,Flat``): fast queries, no retraining.

    HNSW cannot remove vectors, so removed ids are kept in a list saved beside
    the index (``vectors.N.removed.i64``) and never returned; once they are a
    quarter of the graph, it is rebuilt from the live vectors.
    """

    kind = "hnsw"
    M = 32
    EF_CONSTRUCTION = 80
    EF_SEARCH = 128
    EF_SEARCH_MAX = 4_096  # the graph walk's breadth for large k (FAISS widens it to k anyway)

    def __init__(self, index: Any, removed: IdArray | None = None) -> None:
        self._index = index
        self._removed = np.unique(removed) if removed is not None else np.zeros(0, np.int64)

    @classmethod
    def create(cls, dimension: int) -> HNSWIndex:
        faiss = _faiss()
        graph = faiss.IndexHNSWFlat(dimension, cls.M, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = cls.EF_CONSTRUCTION
        return cls(faiss.IndexIDMap2(graph))

    @staticmethod
    def removed_path(path: str) -> str:
        base = path[: -len(".faiss")] if path.endswith(".faiss") else path
        return base + ".removed.i64"  # raw little-endian int64 ids

    @classmethod
    def load(cls, path: str) -> HNSWIndex:
        index = _read(path)
        removed_file = cls.removed_path(path)
        removed = None
        if os.path.isfile(removed_file):
            try:
                removed = np.fromfile(removed_file, dtype="<i8").astype(np.int64)
            except (OSError, ValueError) as exc:
                raise IndexCorruptError(
                    f"{removed_file} is damaged: run `semsearch index --rebuild PATH`"
                ) from exc
        return cls(index, removed)

    @property
    def count(self) -> int:
        return int(self._index.ntotal) - len(self._removed)

    def add(self, ids: IdArray, vectors: FloatArray) -> None:
        self._changed()
        if len(ids):
            _threads_for(len(ids) * 10_000)  # building the graph is worth every core
            self._index.add_with_ids(
                np.ascontiguousarray(vectors, dtype=np.float32),
                np.ascontiguousarray(ids, dtype=np.int64),
            )

    def remove(self, ids: IdArray) -> int:
        self._changed()
        present = np.intersect1d(np.asarray(ids, dtype=np.int64), self._all_ids())
        fresh = np.setdiff1d(present, self._removed)
        self._removed = np.union1d(self._removed, fresh)
        if len(self._removed) > 0.25 * max(int(self._index.ntotal), 1):
            self._compact()
        return len(fresh)

    def _compact(self) -> None:
        self._changed()
        live = self.ids()
        vecs = self.reconstruct(live)
        fresh = HNSWIndex.create(self.dimension)
        fresh.add(live, vecs)
        self._index, self._removed = fresh._index, np.zeros(0, np.int64)

    def _all_ids(self) -> IdArray:
        return np.asarray(_faiss().vector_to_array(self._index.id_map), dtype=np.int64)

    def _list_ids(self) -> IdArray:
        return np.setdiff1d(self._all_ids(), self._removed, assume_unique=True)

    def search(
        self, queries: FloatArray, k: int, allowed: IdArray | None = None
    ) -> tuple[FloatArray, IdArray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if allowed is not None and len(allowed) <= EXACT_SUBSET:
            return _exact_subset(self, queries, k, np.setdiff1d(allowed, self._removed))
        k = clamp_k(k, self.count)
        if k == 0:
            return _no_results(len(queries))
        faiss = _faiss()
        _threads_for(self.count * len(queries) // 20)
        params = faiss.SearchParametersHNSW()
        params.efSearch = self.ef_search(k)
        selector: Any = None
        if allowed is not None:
            selector = faiss.IDSelectorBatch(np.setdiff1d(allowed, self._removed))
        elif len(self._removed):
            selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(self._removed))
        if selector is not None:
            params.sel = selector
        scores, ids = self._index.search(queries, k, params=params)
        if allowed is not None and _short(ids, min(k, len(allowed))):
            # the graph walk found too few allowed ids near the query: score them all
            return _exact_subset(self, queries, k, np.setdiff1d(allowed, self._removed))
        return scores, ids

    @classmethod
    def ef_search(cls, k: int) -> int:
        """How wide the graph walk is for ``k`` results: twice k, within bounds."""
        return min(max(cls.EF_SEARCH, 2 * k), cls.EF_SEARCH_MAX)

    def save(self, path: str) -> None:
        removed_file = self.removed_path(path)
        if len(self._removed):
            tmp = f"{removed_file}.tmp-{os.getpid()}"
            try:
                with writing(os.path.dirname(path) or ".", os.path.basename(removed_file)):
                    self._removed.astype("<i8").tofile(tmp)
                    durable_replace(tmp, removed_file)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        elif os.path.exists(removed_file):  # left by a writer that died before its commit
            os.unlink(removed_file)
        _write(self._index, path)


class ExactVectors:
    """The float32 vectors an IVF-PQ index was given, kept beside its lossy codes.

    PQ codes decode only to approximations (errors of ~0.07 per component at
    64-d, and each re-encoding of decoded vectors adds more), so everything
    that reads vectors back (converting to another type, retraining, reusing
    the vectors of moved or edited files, exact search over a small filtered
    subset) reads them here instead. Two NumPy ``.npy`` files per generation,
    no pickle, opened memory-mapped: ``vectors.N.exact.npy`` (count x
    dimension float32) and ``vectors.N.exact-ids.npy`` (their int64 ids, in
    the same order). Adds and removes are held in memory until `save` streams
    the kept rows and the new ones into the next generation's files.
    """

    CHUNK = 65_536  # rows copied at a time when saving

    def __init__(self, ids: IdArray, vecs: FloatArray) -> None:
        self._reset(ids, vecs)

    def _reset(self, ids: IdArray, vecs: FloatArray) -> None:
        self._ids, self._vecs = ids, vecs  # the saved rows (memory-mapped once saved)
        self._live: npt.NDArray[np.bool_] | None = None  # which saved rows remain (None: all)
        self._order: IdArray | None = None  # argsort of the saved ids, made on first need
        self._sorted: IdArray = np.zeros(0, np.int64)  # the saved ids in that order
        self._added: list[tuple[IdArray, FloatArray]] = []  # added since, in memory
        self._dimension = int(vecs.shape[1])

    def _new(self) -> tuple[IdArray, FloatArray]:
        """The vectors added since the last save, as one (ids, vectors) pair."""
        if len(self._added) != 1:  # joined once, not on every add
            ids = [i for i, _ in self._added]
            vecs = [v for _, v in self._added]
            self._added = [
                (
                    np.concatenate(ids) if ids else np.zeros(0, np.int64),
                    np.concatenate(vecs) if vecs else np.zeros((0, self._dimension), np.float32),
                )
            ]
        return self._added[0]

    @classmethod
    def create(cls, ids: IdArray, vecs: FloatArray) -> ExactVectors:
        made = cls(np.zeros(0, np.int64), np.zeros((0, vecs.shape[1]), np.float32))
        made.add(ids, vecs)
        return made

    @staticmethod
    def paths(path: str) -> tuple[str, str]:
        """The (vectors, ids) files beside the vector file ``path``."""
        base = path[: -len(".faiss")] if path.endswith(".faiss") else path
        return base + ".exact.npy", base + ".exact-ids.npy"

    @classmethod
    def load(cls, path: str, dimension: int, count: int) -> ExactVectors | None:
        """The exact vectors beside ``path``, memory-mapped; None if there are none
        (an index written before they were kept). Raises `IndexCorruptError` if damaged."""
        vec_file, id_file = cls.paths(path)
        if not (os.path.exists(vec_file) or os.path.exists(id_file)):
            return None
        try:
            vecs = np.load(vec_file, mmap_mode="r", allow_pickle=False)
            ids = np.load(id_file, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(
                f"the exact vectors beside {path} are missing or damaged: "
                "run `semsearch index --rebuild PATH`"
            ) from exc
        if (
            vecs.dtype != np.float32
            or ids.dtype != np.int64
            or vecs.ndim != 2
            or ids.ndim != 1
            or vecs.shape != (count, dimension)
            or len(ids) != count
        ):
            raise IndexCorruptError(
                f"the exact vectors beside {path} do not match it ({len(ids)} ids, "
                f"{vecs.shape} vectors, {count} in the index): run `semsearch index --rebuild PATH`"
            )
        return cls(ids, vecs)

    @property
    def count(self) -> int:
        saved = len(self._ids) if self._live is None else int(self._live.sum())
        return saved + sum(len(i) for i, _ in self._added)

    def add(self, ids: IdArray, vecs: FloatArray) -> None:
        """Hold ``vecs`` under ``ids`` (the arrays are kept as given, not copied)."""
        if len(ids):
            self._added.append(
                (
                    np.asarray(ids, dtype=np.int64),
                    np.asarray(vecs, dtype=np.float32).reshape(len(ids), -1),
                )
            )

    def remove(self, ids: IdArray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return
        rows = self._saved_rows(ids)
        rows = rows[rows >= 0]
        if len(rows):
            if self._live is None:
                self._live = np.ones(len(self._ids), dtype=bool)
            self._live[rows] = False
        new_ids, new_vecs = self._new()
        if len(new_ids):
            keep = ~np.isin(new_ids, ids)
            self._added = [(new_ids[keep], new_vecs[keep])]

    def _saved_rows(self, ids: IdArray) -> IdArray:
        """The row of each id among the saved vectors still held, -1 where there is none."""
        if len(self._ids) == 0 or len(ids) == 0:
            return np.full(len(ids), -1, np.int64)
        if self._order is None:  # both at once: a reader in another thread may look now
            saved = np.asarray(self._ids)
            if len(saved) < 2 or bool((saved[1:] > saved[:-1]).all()):
                # already in id order (rows are written so as ids are handed out): no sort,
                # no second copy of millions of ids in memory
                self._sorted, self._order = saved, np.arange(len(saved), dtype=np.int64)
            else:
                order = np.argsort(saved, kind="stable").astype(np.int64)
                self._sorted, self._order = saved[order], order
        out = _rows_in(self._sorted, self._order, ids)
        if self._live is not None:
            out[(out >= 0) & ~self._live[np.maximum(out, 0)]] = -1
        return out

    def get(self, ids: IdArray) -> FloatArray:
        """The vectors of ``ids``, exactly as they were added."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.empty((len(ids), self._dimension), dtype=np.float32)
        todo = np.ones(len(ids), dtype=bool)
        new_ids, new_vecs = self._new()
        if len(new_ids) and len(ids):
            order = np.argsort(new_ids, kind="stable")
            rows = _rows_in(new_ids[order], order, ids)
            found = rows >= 0
            out[found] = new_vecs[rows[found]]
            todo &= ~found
        rows = self._saved_rows(ids[todo])
        if (rows < 0).any():
            missing = ids[todo][rows < 0][:3].tolist()
            raise IndexCorruptError(
                f"the exact vectors lack ids the index holds (e.g. {missing}): "
                "run `semsearch index --rebuild PATH`"
            )
        if len(rows):
            by_row = np.argsort(rows, kind="stable")  # read the file in order
            picked = np.empty((len(rows), out.shape[1]), dtype=np.float32)
            picked[by_row] = self._read_rows(rows[by_row])
            out[todo] = picked
        return out

    PREAD_ROWS = 8_192  # fewer saved rows than this are read with pread, not the map

    def _read_rows(self, rows: IdArray) -> FloatArray:
        """Saved rows (in file order). A query's few hundred re-scored rows are read with
        pread: pages touched through the memory map would stay in this process's RSS (4.8
        GB after 200 queries at 10M, benchmarks/scale.py); read, they stay in the page cache,
        which the kernel shares and reclaims."""
        vecs = self._vecs
        if not (isinstance(vecs, np.memmap) and vecs.filename and len(rows) <= self.PREAD_ROWS):
            return np.asarray(vecs[rows], dtype=np.float32)
        width = self._dimension * 4
        buf = bytearray(len(rows) * width)
        fd = os.open(vecs.filename, os.O_RDONLY)
        try:
            for j, row in enumerate(rows.tolist()):
                chunk = os.pread(fd, width, vecs.offset + row * width)
                if len(chunk) != width:
                    raise IndexCorruptError(
                        f"{vecs.filename} is shorter than its header says: "
                        "run `semsearch index --rebuild PATH`"
                    )
                buf[j * width : (j + 1) * width] = chunk
        finally:
            os.close(fd)
        return np.frombuffer(buf, dtype="<f4").astype(np.float32, copy=False).reshape(
            len(rows), self._dimension
        )

    def save(self, path: str) -> None:
        """Write beside the vector file ``path`` (temporary files, fsynced, renamed), then
        read from the new files."""
        vec_file, id_file = self.paths(path)
        count, dimension = self.count, self._dimension
        kept = (
            np.arange(len(self._ids), dtype=np.int64)
            if self._live is None
            else np.flatnonzero(self._live).astype(np.int64)
        )
        tmp_vec, tmp_ids = f"{vec_file}.tmp-{os.getpid()}", f"{id_file}.tmp-{os.getpid()}"
        folder = os.path.dirname(path) or "."
        try:
            with writing(folder, os.path.basename(vec_file)):
                self._write_arrays(kept, (count, dimension), tmp_vec, tmp_ids)
                durable_replace(tmp_vec, vec_file)
                durable_replace(tmp_ids, id_file)
        finally:
            for name in (tmp_vec, tmp_ids):
                if os.path.exists(name):
                    os.unlink(name)
        self._reset(
            np.load(id_file, mmap_mode="r", allow_pickle=False),
            np.load(vec_file, mmap_mode="r", allow_pickle=False),
        )

    def _write_arrays(
        self, kept: IdArray, shape: tuple[int, int], tmp_vec: str, tmp_ids: str
    ) -> None:
        """The live exact vectors and their ids into two new .npy files, flushed."""
        out_vecs = np.lib.format.open_memmap(tmp_vec, mode="w+", dtype=np.float32, shape=shape)
        out_ids = np.lib.format.open_memmap(tmp_ids, mode="w+", dtype=np.int64, shape=shape[:1])
        # Reserve the space first: a full disk is then an OSError here, not a SIGBUS
        # when a page of the memory map is written.
        for name in (tmp_vec, tmp_ids):
            fd = os.open(name, os.O_RDWR)
            try:
                os.posix_fallocate(fd, 0, os.path.getsize(name))
            finally:
                os.close(fd)
        for start in range(0, len(kept), self.CHUNK):
            rows = kept[start : start + self.CHUNK]
            out_vecs[start : start + len(rows)] = self._vecs[rows]
            out_ids[start : start + len(rows)] = np.asarray(self._ids)[rows]
        new_ids, new_vecs = self._new()
        out_vecs[len(kept) :] = new_vecs
        out_ids[len(kept) :] = new_ids
        for array in (out_vecs, out_ids):
            array.flush()


def _rows_in(sorted_ids: IdArray, order: IdArray, ids: IdArray) -> IdArray:
    """The row of each of ``ids`` in an array whose argsort is ``order`` (``sorted_ids`` the
    array in that order), -1 where it is not there."""
    out = np.full(len(ids), -1, np.int64)
    if len(sorted_ids) == 0:
        return out
    pos = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    found = sorted_ids[pos] == ids
    out[found] = order[pos[found]]
    return out


class IVFIndex(_FaissIndex):
    """Approximate search in clusters: ``IVF<n>,Flat`` or, compressed, ``IVF<n>,PQ<m>``.

    Trained on the vectors it is built from; queries open it memory-mapped, so
    opening is fast and the lists need not all sit in RAM. IVF-PQ keeps the
    exact vectors beside its codes (`ExactVectors`); one written before it did
    (``exact`` None) can only decode its codes, so `adapt` neither converts nor
    retrains it.
    """

    def __init__(
        self,
        index: Any,
        kind: str,
        direct_map: bool = True,
        exact: ExactVectors | None = None,
    ) -> None:
        self._index = index
        self.kind = kind
        self._direct_map = direct_map  # ids -> list positions, needed by reconstruct
        self._exact = exact

    @property
    def lossless(self) -> bool:
        """True if `reconstruct` gives back the vectors exactly as they were added."""
        return self.kind != "ivfpq" or self._exact is not None

    @staticmethod
    def lists_for(count: int) -> int:
        """About 4 sqrt(n) lists, with at least 39 training vectors each."""
        return int(max(1, min(65536, 4 * np.sqrt(max(count, 1)), count // 39)))

    @classmethod
    def build(cls, kind: str, ids: IdArray, vectors: FloatArray) -> IVFIndex:
        faiss = _faiss()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dimension = vectors.shape[1]
        nlist = cls.lists_for(len(vectors))
        quantizer = faiss.IndexFlatIP(dimension)
        if kind == "ivfpq":
            m = next(m for m in (48, 32, 24, 16, 12, 8, 6, 4, 3, 2, 1) if dimension % m == 0)
            index = faiss.IndexIVFPQ(quantizer, dimension, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexIVFFlat(quantizer, dimension, nlist, faiss.METRIC_INNER_PRODUCT)
        _threads_for(len(vectors) * nlist // 4)
        sample = vectors
        if len(vectors) > 64 * nlist:  # 64 per list train well, and far faster than all
            rng = np.random.default_rng(0)
            sample = vectors[rng.choice(len(vectors), 64 * nlist, replace=False)]
        index.train(sample)
        index.set_direct_map_type(faiss.DirectMap.Hashtable)
        exact = ExactVectors.create(np.zeros(0, np.int64), vectors[:0]) if kind == "ivfpq" else None
        made = cls(index, kind, exact=exact)
        made.add(ids, vectors)
        return made

    @classmethod
    def load(cls, path: str, kind: str, mmap: bool) -> IVFIndex:
        faiss = _faiss()
        index = _read(path, mmap=mmap)
        if not mmap:
            index.set_direct_map_type(faiss.DirectMap.Hashtable)
        exact = None
        if kind == "ivfpq":  # opened now, so a later prune of this generation cannot hide it
            exact = ExactVectors.load(path, int(index.d), int(index.ntotal))
        return cls(index, kind, direct_map=not mmap, exact=exact)

    @property
    def nlist(self) -> int:
        """How many clusters (inverted lists) the index was trained with."""
        return int(self._index.nlist)

    @property
    def nprobe(self) -> int:
        return max(8, int(self._index.nlist) // 16)

    def needs_retraining(self) -> bool:
        """The collection outgrew its clusters (or shrank far below them)."""
        ideal = self.lists_for(self.count)
        return ideal > 2 * int(self._index.nlist) or 4 * ideal < int(self._index.nlist)

    def add(self, ids: IdArray, vectors: FloatArray) -> None:
        self._changed()
        if len(ids):
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            self._index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))
            if self._exact is not None:
                self._exact.add(ids, vectors)

    def remove(self, ids: IdArray) -> int:
        self._changed()
        if len(ids) == 0:
            return 0
        removed = int(self._index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64)))
        if self._exact is not None:
            self._exact.remove(ids)
        return removed

    def save(self, path: str) -> None:
        """The exact vectors first (IVF-PQ), then the index: each file through a temporary
        one, fsynced, renamed into place."""
        if self._exact is not None:
            self._exact.save(path)
        else:  # an older IVF-PQ index: no exact vectors of another generation may pose as its own
            for side in ExactVectors.paths(path):
                if os.path.exists(side):
                    os.unlink(side)
        _write(self._index, path)

    def _list_ids(self) -> IdArray:
        return _ivf_ids(self._index)

    def search(
        self, queries: FloatArray, k: int, allowed: IdArray | None = None
    ) -> tuple[FloatArray, IdArray]:
        faiss = _faiss()
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if allowed is not None and len(allowed) <= EXACT_SUBSET:
            return _exact_subset(self, queries, k, allowed)
        k = clamp_k(k, self.count)
        if k == 0:
            return _no_results(len(queries))
        _threads_for(self.count * len(queries) // 16)
        params = faiss.SearchParametersIVF()
        params.nprobe = self.nprobe
        if allowed is not None:
            params.sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
        exact = self._exact if self.kind == "ivfpq" else None
        depth = refine_depth(k, self.count) if exact is not None else k
        scores, ids = self._index.search(queries, depth, params=params)
        if allowed is not None and _short(ids, min(k, len(allowed))):
            # the allowed passages lie in clusters far from the query: look in every list
            params.nprobe = int(self._index.nlist)
            scores, ids = self._index.search(queries, depth, params=params)
        if exact is not None:
            return refine(queries, k, ids, exact)
        return scores, ids

    def reconstruct(self, ids: IdArray) -> FloatArray:
        """The vectors of ``ids``: exact (IVF-Flat lists, IVF-PQ's exact vectors), or decoded
        from the PQ codes for an IVF-PQ index written before exact vectors were kept."""
        if self._exact is not None:
            return self._exact.get(ids)
        if not self._direct_map:  # opened memory-mapped: map ids on first need
            with _DIRECT_MAP_LOCK:  # threads searching this index must not build it twice
                if not self._direct_map:
                    self._index.set_direct_map_type(_faiss().DirectMap.Hashtable)
                    self._direct_map = True
        return super().reconstruct(ids)


_DIRECT_MAP_LOCK = threading.Lock()


REFINE_FACTOR = 20  # PQ candidates re-scored exactly per result wanted (benchmarks/scale.py)


def refine_depth(k: int, count: int, factor: int | None = None) -> int:
    """How many PQ candidates to re-score for ``k`` results."""
    factor = REFINE_FACTOR if factor is None else factor
    return clamp_k(max(k * factor, 10 * factor), count)


def refine(
    queries: FloatArray, k: int, candidates: IdArray, exact: ExactVectors
) -> tuple[FloatArray, IdArray]:
    """The top ``k`` of each row's ``candidates`` (-1: none) by their exact inner product.

    PQ scores are approximations (the 10th true neighbour often ranks 30th or
    later among them); re-scoring a few hundred candidates from the exact
    vectors on disk gives exact scores, and the right order among them.
    """
    rows = len(queries)
    out_s = np.full((rows, k), -np.inf, np.float32)
    out_i = np.full((rows, k), -1, np.int64)
    for row in range(rows):
        ids = candidates[row]
        ids = np.unique(ids[ids >= 0])
        if len(ids) == 0:
            continue
        scores = exact.get(ids) @ queries[row]
        take = min(k, len(ids))
        top = np.argpartition(-scores, take - 1)[:take]
        top = top[np.lexsort((ids[top], -scores[top]))]  # by score, then id: deterministic
        out_s[row, :take] = scores[top]
        out_i[row, :take] = ids[top]
    width = int((out_i >= 0).sum(axis=1).max()) if rows else 0
    return out_s[:, :width], out_i[:, :width]


DISK_REFINE_FACTOR = 100  # ivfpq-disk: its lists are 10x longer (benchmarks/scale.py at 10M)


class DiskIVFIndex(IVFIndex):
    """IVF-PQ codes in inverted lists on disk, re-scored from exact vectors on disk.

    For collections whose vectors do not fit in RAM: a reader maps the
    ``vectors.N.ivfdata`` lists (56 bytes a vector at 384-d: 48 of PQ code, 8 of
    id) and the ``vectors.N.exact.npy`` vectors, and touches only the lists it
    probes and the few hundred rows it re-scores. Built in shards
    (`semsearch.storage.shards`): trained once on a sample, filled in parts
    (on Ray workers when given their ``map_shards``), merged into the lists file.

    A writer holds what it adds in an in-memory index of the same training and
    what it removes as a list of ids; `save` merges the lists on disk (minus the
    removed) and the new ones into the next generation's lists file, never
    touching the committed one.
    """

    kind = "ivfpq-disk"
    MAX_LISTS = 4_096  # training is the build's longest step: 4,096 lists train in minutes at 10M

    def __init__(
        self,
        index: Any,
        trained: bytes,
        exact: ExactVectors,
        map_shards: MapShards | None = None,
    ) -> None:
        super().__init__(index, "ivfpq-disk", direct_map=False, exact=exact)
        self._trained = trained
        self._pending: Any = None  # added since load: an in-memory index of the same training
        self._removed = np.zeros(0, np.int64)  # removed from the lists on disk since load
        self.map_shards = map_shards

    @staticmethod
    def lists_for(count: int) -> int:
        return min(IVFIndex.lists_for(count), DiskIVFIndex.MAX_LISTS)

    @property
    def nprobe(self) -> int:
        """1/64 of the lists: at 10M, recall@10 after re-scoring is the same as with 1/16
        and 1/32, at a quarter of the codes scanned (benchmarks/scale.py --nprobe)."""
        return max(8, self.nlist // 64)

    def _threads_for(self, part: Any, queries: int) -> None:
        """Every core for a search that scans many codes, one query too (its lists shared
        out among the threads: faiss's parallel_mode 1); one thread for a small one."""
        scanned = int(part.ntotal) * self.nprobe // max(self.nlist, 1) * queries
        cores = max(1, os.cpu_count() or 1)
        _faiss().omp_set_num_threads(cores if scanned > 200_000 else 1)
        part.parallel_mode = 1 if queries < cores else 0

    @staticmethod
    def lists_path(path: str) -> str:
        base = path[: -len(".faiss")] if path.endswith(".faiss") else path
        return base + ".ivfdata"

    @classmethod
    def build(
        cls, kind: str, ids: IdArray, vectors: FloatArray, map_shards: MapShards | None = None
    ) -> DiskIVFIndex:
        from . import shards

        nlist = cls.lists_for(len(ids))
        sample = vectors
        if len(vectors) > 64 * nlist:
            rng = np.random.default_rng(0)
            sample = vectors[np.sort(rng.choice(len(vectors), 64 * nlist, replace=False))]
        trained = shards.train("pq", sample, nlist)
        made = cls(
            shards.empty(trained),
            trained,
            ExactVectors.create(np.zeros(0, np.int64), np.asarray(vectors[:0], np.float32)),
            map_shards,
        )
        made.add(ids, vectors)
        return made

    @classmethod
    def write_streamed(
        cls,
        path: str,
        sample: FloatArray,
        chunks: Iterable[tuple[IdArray, FloatArray]],
        count: int,
    ) -> DiskIVFIndex:
        """Build and save an index of ``count`` vectors given chunk by chunk (ids rising),
        never holding more than a chunk of float32 (what does not fit in RAM): trained on
        ``sample``, each chunk's codes added in memory (56 bytes a vector) and its exact
        vectors appended to the file. Returns the index as a reader opens it."""
        from . import shards

        dimension = int(sample.shape[1])
        trained = shards.train("pq", sample, cls.lists_for(count))
        codes = shards.empty(trained)
        folder = os.path.dirname(path) or "."
        vec_file, id_file = ExactVectors.paths(path)
        tmp_vec, tmp_ids = f"{vec_file}.tmp-{os.getpid()}", f"{id_file}.tmp-{os.getpid()}"
        try:
            with writing(folder, os.path.basename(vec_file), engine=(RuntimeError,)):
                with (
                    _AppendedArray(tmp_vec, (count, dimension), np.float32) as vecs,
                    _AppendedArray(tmp_ids, (count,), np.int64) as ids,
                ):
                    for chunk_ids, chunk in chunks:
                        chunk = np.ascontiguousarray(chunk, dtype=np.float32)
                        chunk_ids = np.ascontiguousarray(chunk_ids, dtype=np.int64)
                        _threads_for(len(chunk) * codes.nlist)
                        codes.add_with_ids(chunk, chunk_ids)
                        vecs.append(chunk)
                        ids.append(chunk_ids)
                durable_replace(tmp_vec, vec_file)
                durable_replace(tmp_ids, id_file)
                lists = cls.lists_path(path)
                merged = shards.merge_to_disk(shards.empty(trained), [codes.invlists], lists)
                del codes
                fsync_path(lists)
                _write(merged, path)
                _write(shards.empty(trained), _trained_path(path))
        finally:
            for name in (tmp_vec, tmp_ids):
                if os.path.exists(name):
                    os.unlink(name)
        return cls.load(path)

    @classmethod
    def load(cls, path: str, kind: str = "ivfpq-disk", mmap: bool = True) -> DiskIVFIndex:

        faiss = _faiss()
        lists = cls.lists_path(path)
        if not os.path.isfile(lists):
            raise IndexCorruptError(
                f"the inverted lists {lists} are missing: run `semsearch index --rebuild PATH`"
            )
        # The index file names its lists file by the path it was written at: read the
        # index without mapping them, point it at the lists beside it (the folder may have
        # moved), check their size (reading past the end of a map is a SIGBUS, not an
        # error), then map them, read-only. (IO_FLAG_ONDISK_SAME_DIR would do the pointing
        # too, but announces it on stdout.)
        index = _read(path, flags=faiss.IO_FLAG_SKIP_IVF_DATA)
        on_disk = faiss.downcast_InvertedLists(faiss.extract_index_ivf(index).invlists)
        if not isinstance(on_disk, faiss.OnDiskInvertedLists):
            raise IndexCorruptError(
                f"{path} has no inverted lists on disk: run `semsearch index --rebuild PATH`"
            )
        size = os.path.getsize(lists)
        if size < int(on_disk.totsize):
            raise IndexCorruptError(
                f"the inverted lists {lists} hold {size} bytes, {int(on_disk.totsize)} were "
                "written: run `semsearch index --rebuild PATH`"
            )
        on_disk.filename = lists
        on_disk.read_only = True
        try:
            on_disk.do_mmap()
        except RuntimeError as exc:
            raise IndexCorruptError(
                f"the inverted lists {lists} cannot be read ({exc}): "
                "run `semsearch index --rebuild PATH`"
            ) from exc
        exact = ExactVectors.load(path, int(index.d), int(index.ntotal))
        if exact is None:
            raise IndexCorruptError(
                f"the exact vectors beside {path} are missing: run `semsearch index --rebuild PATH`"
            )
        return cls(index, _trained_of(path), exact)

    @property
    def count(self) -> int:
        pending = 0 if self._pending is None else int(self._pending.ntotal)
        return int(self._index.ntotal) - len(self._removed) + pending

    def needs_retraining(self) -> bool:
        ideal = self.lists_for(self.count)
        return ideal > 2 * self.nlist or 4 * ideal < self.nlist

    def add(self, ids: IdArray, vectors: FloatArray) -> None:
        from . import shards

        self._changed()
        if len(ids) == 0:
            return
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self._pending is None:
            self._pending = shards.empty(self._trained)
        if self.map_shards is None or len(ids) <= shards.JOB_ROWS:
            _threads_for(len(ids) * self.nlist)
            self._pending.add_with_ids(vectors, ids)
        else:  # the workers encode, shard by shard; their lists join the pending ones
            for shard in self.map_shards(shards.fill_job, shards.jobs(self._trained, ids, vectors)):
                shards.absorb(self._pending, shard)
        assert self._exact is not None
        self._exact.add(ids, vectors)

    def remove(self, ids: IdArray) -> int:
        self._changed()
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        if len(ids) == 0:
            return 0
        held = np.intersect1d(ids, self.ids())
        on_disk = np.setdiff1d(held, self._pending_ids())
        self._removed = np.union1d(self._removed, on_disk)
        if self._pending is not None:
            self._pending.remove_ids(np.intersect1d(held, self._pending_ids()))
        assert self._exact is not None
        self._exact.remove(held)
        self._changed()  # (ids() was listed above, before the removal)
        return len(held)

    def _pending_ids(self) -> IdArray:
        if self._pending is None or self._pending.ntotal == 0:
            return np.zeros(0, np.int64)
        return _ivf_ids(self._pending)

    def _list_ids(self) -> IdArray:
        on_disk = np.setdiff1d(_ivf_ids(self._index), self._removed)
        return np.union1d(on_disk, self._pending_ids())

    def reconstruct(self, ids: IdArray) -> FloatArray:
        assert self._exact is not None
        return self._exact.get(ids)

    def search(
        self, queries: FloatArray, k: int, allowed: IdArray | None = None
    ) -> tuple[FloatArray, IdArray]:
        faiss = _faiss()
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if allowed is not None and len(allowed) <= EXACT_SUBSET:
            return _exact_subset(self, queries, k, allowed)
        k = clamp_k(k, self.count)
        if k == 0:
            return _no_results(len(queries))
        depth = refine_depth(k, self.count, DISK_REFINE_FACTOR)
        found = []
        for part, removed in ((self._index, self._removed), (self._pending, None)):
            if part is None or part.ntotal == 0:
                continue
            params = faiss.SearchParametersIVF()
            params.nprobe = self.nprobe
            selector = None
            if allowed is not None:
                keep = np.ascontiguousarray(allowed, dtype=np.int64)
                if removed is not None and len(removed):
                    keep = np.setdiff1d(keep, removed)
                selector = faiss.IDSelectorBatch(keep)
            elif removed is not None and len(removed):
                selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(removed))
            if selector is not None:
                params.sel = selector
            self._threads_for(part, len(queries))
            _, ids = part.search(queries, clamp_k(depth, int(part.ntotal)), params=params)
            if allowed is not None and _short(ids, min(k, len(allowed))):
                params.nprobe = self.nlist  # the allowed lie far from the query: every list
                _, ids = part.search(queries, clamp_k(depth, int(part.ntotal)), params=params)
            found.append(ids)
        assert self._exact is not None
        return refine(queries, k, np.concatenate(found, axis=1), self._exact)

    def save(self, path: str) -> None:
        """The next generation: exact vectors, the lists merged into a new lists file (the
        committed one untouched), the index, each flushed to disk before the caller's
        manifest names them."""
        from . import shards

        assert self._exact is not None
        folder = os.path.dirname(path) or "."
        lists = self.lists_path(path)
        self._exact.save(path)
        # What was removed leaves the lists on disk as they are copied (the new ones
        # never held it: an id removed, then added again, is there once, as added).
        # (faiss's remove_ids on on-disk lists, then adding, left garbage ids in them.)
        base = self._index.invlists
        if len(self._removed):
            base = shards.without(base, self._removed)
        parts = [base]
        if self._pending is not None and self._pending.ntotal:
            parts.append(self._pending.invlists)
        with writing(folder, os.path.basename(lists), engine=(RuntimeError,)):
            merged = shards.merge_to_disk(shards.empty(self._trained), parts, lists)
            fsync_path(lists)
            _write(merged, path)
            _write(shards.empty(self._trained), _trained_path(path))
        reopened = DiskIVFIndex.load(path)
        self._index, self._exact = reopened._index, reopened._exact
        self._pending, self._removed = None, np.zeros(0, np.int64)
        self._changed()


class _AppendedArray:
    """A ``.npy`` file of a known shape written front to back with plain writes (not a
    memory map, whose written pages would count in the writer's RSS), space reserved
    first so that a full disk is an error at once."""

    def __init__(self, path: str, shape: tuple[int, ...], dtype: Any) -> None:
        self.path, self.shape, self.dtype = path, shape, np.dtype(dtype)
        self.written = 0

    def __enter__(self) -> _AppendedArray:
        header = np.lib.format.open_memmap(self.path, mode="w+", dtype=self.dtype, shape=self.shape)
        offset = int(header.offset)
        del header
        self._file = open(self.path, "r+b")  # closed in __exit__
        os.posix_fallocate(self._file.fileno(), 0, os.path.getsize(self.path))
        self._file.seek(offset)
        return self

    def append(self, rows: npt.NDArray[Any]) -> None:
        self._file.write(np.ascontiguousarray(rows, dtype=self.dtype).tobytes())
        self.written += len(rows)

    def __exit__(self, *exc: object) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        if exc[0] is None and self.written != self.shape[0]:
            raise ValueError(f"{self.written} rows written to {self.path}, not {self.shape[0]}")


MapShards = Any  # Callable[[fn, Sequence[job]], list[bytes]]: runs fn on each job somewhere


def _trained_path(path: str) -> str:
    base = path[: -len(".faiss")] if path.endswith(".faiss") else path
    return base + ".trained.faiss"


def _trained_of(path: str) -> bytes:
    """The trained empty index of a generation (written beside it), as bytes."""
    from . import shards

    trained = _trained_path(path)
    if not os.path.isfile(trained):
        raise IndexCorruptError(
            f"the trained index {trained} is missing: run `semsearch index --rebuild PATH`"
        )
    return shards.to_bytes(_read(trained))


def _ivf_ids(index: Any) -> IdArray:
    faiss = _faiss()
    lists = index.invlists
    parts = []
    for number in range(index.nlist):
        size = lists.list_size(number)
        if size:
            parts.append(faiss.rev_swig_ptr(lists.get_ids(number), size).copy())
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


IndexType = Literal["auto", "flat", "hnsw", "ivf", "ivfpq", "ivfpq-disk"]
INDEX_TYPES: tuple[IndexType, ...] = ("auto", "flat", "hnsw", "ivf", "ivfpq", "ivfpq-disk")
IVF_KINDS = ("ivf", "ivfpq", "ivfpq-disk")
AUTO_FLAT_LIMIT = 100_000  # auto stays exact up to here, then goes IVF
# ... and IVF-PQ on disk above here: IVF's lists are read through the page cache, ~1.5 KB a
# vector at 384-d (reader RSS +1,518 MB at 1M in benchmarks/results/scale.md), so at 2M a
# reader needs ~3 GB of RAM; ivfpq-disk's stays under 100 MB there
AUTO_DISK_LIMIT = 2_000_000


def target_kind(requested: str, count: int) -> str:
    if requested == "auto":
        if count <= AUTO_FLAT_LIMIT:
            return "flat"
        return "ivf" if count <= AUTO_DISK_LIMIT else "ivfpq-disk"
    return requested


def create(kind: str, dimension: int) -> VectorIndex:
    """A new empty vector index; IVF types start flat until there is something to train on."""
    if kind == "hnsw":
        return HNSWIndex.create(dimension)
    if kind in ("flat", "auto", *IVF_KINDS):
        return FlatIndex.create(dimension)
    raise ValueError(f"unknown index type {kind!r}")


def adapt(index: VectorIndex, requested: str, map_shards: MapShards | None = None) -> VectorIndex:
    """The index to commit for ``requested``: the same one, or one rebuilt to suit its size.

    IVF needs training vectors: an IVF-type index holds fewer than 39 per
    list while small, so it stays flat (exact) until it can be trained.
    ``map_shards`` (`Runner.map`) fills the shards of an on-disk index elsewhere.
    """
    target = target_kind(requested, index.count)
    if target in IVF_KINDS and index.count < 39 * 16:
        target = "flat"
    check_convertible(index, requested)
    if isinstance(index, IVFIndex) and not index.lossless:
        return index  # its vectors can only be decoded: keep its lists rather than re-encode
    current = index.kind
    if target == current and not (isinstance(index, IVFIndex) and index.needs_retraining()):
        return index
    ids = index.ids()
    vectors = index.reconstruct(ids) if len(ids) else np.zeros((0, index.dimension), np.float32)
    if target == "ivfpq-disk":
        return DiskIVFIndex.build(target, ids, vectors, map_shards)
    if target in ("ivf", "ivfpq"):
        return IVFIndex.build(target, ids, vectors)
    made = create(target, index.dimension)
    made.add(ids, vectors)
    return made


def lossless(index: VectorIndex) -> bool:
    """True if ``index.reconstruct`` gives back exactly the vectors that were added."""
    return not isinstance(index, IVFIndex) or index.lossless


def check_convertible(index: VectorIndex | None, requested: str) -> None:
    """Refuse to turn an IVF-PQ index that kept no exact vectors into another type.

    Its vectors could only be decoded from the PQ codes, so the new index
    would hold approximations (and every further conversion would add to the
    error); a rebuild embeds the passages again instead. Raises `UsageError`.
    """
    if isinstance(index, IVFIndex) and not index.lossless and requested != index.kind:
        raise UsageError(
            "this IVF-PQ index was written by an older semsearch and keeps only compressed "
            f"vectors, so converting it to {requested} would lose precision: re-embed it with "
            f"`semsearch index --rebuild --index-type {requested} PATH`"
        )


def load(kind: str, path: str, *, mmap: bool = False) -> VectorIndex:
    """Read a vector index of the given kind from ``path``."""
    if kind == "flat":
        return FlatIndex.load(path)
    if kind == "hnsw":
        return HNSWIndex.load(path)
    if kind in ("ivf", "ivfpq"):
        return IVFIndex.load(path, kind, mmap)
    if kind == "ivfpq-disk":
        return DiskIVFIndex.load(path)
    raise IndexCorruptError(f"unknown index type {kind!r} in the manifest")
