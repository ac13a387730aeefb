"""IVF shards: one trained index, filled in parts, merged into inverted lists on disk.

The approximate index types split their building in three steps, so that the
heavy middle one can run anywhere (on Ray workers, `Runner.map`):

1. `train`: the coarse quantizer (and the PQ codebooks) are trained once, on a
   sample, by the writer. Every shard starts from these very bytes: shards of
   differently trained indexes would put the same vector in different lists,
   and their codes would not mean the same thing.
2. `fill_job`: a worker adds its vectors to an empty copy of the trained
   index under their global passage ids (``add_with_ids``) and sends the shard
   back as bytes. Ids are never shifted: ``merge_from_multiple(...,
   shift_ids=True)`` (what ``faiss.contrib.ondisk.merge_ondisk`` can do) numbers
   each shard's vectors from the previous shard's count, which is only right
   for shards of equal size starting at 0, never for passage ids.
3. `merge_to_disk`: the shards' inverted lists (and the lists already on
   disk, minus what was removed) are merged into one ``.ivfdata`` file
   (``faiss.OnDiskInvertedLists``), the same merge ``merge_ondisk`` makes,
   from lists in memory instead of shard files. Readers open it memory-mapped.

faiss prints to the C stdout when it sizes an on-disk lists file;
`faiss_prints_dropped` drops that line alone, so that a program reading
`--json` output never sees it. (Readers open the lists without the flag
whose use faiss also announces there: see `DiskIVFIndex.load`.)
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import IndexWriteError

IdArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]
Job = tuple[bytes, IdArray, FloatArray]  # (trained index, ids, vectors)

JOB_ROWS = 100_000  # vectors a worker adds at a time: ~150 MB of float32 sent to it


def _faiss() -> Any:
    import faiss

    return faiss


def to_bytes(index: Any) -> bytes:
    return bytes(_faiss().serialize_index(index).tobytes())


def from_bytes(blob: bytes) -> Any:
    return _faiss().deserialize_index(np.frombuffer(blob, dtype=np.uint8))


def pq_size(dimension: int, per_code: int = 4) -> int:
    """PQ sub-vectors of ``per_code`` dimensions each (a divisor of d): at 384-d, 96 bytes a
    vector. (8 dimensions a code, 48 bytes, rank the true top 10 of 10 million clustered
    vectors too far down to re-score: recall@10 0.60 with 200 candidates re-scored,
    benchmarks/scale.py.)"""
    target = max(1, dimension // per_code)
    return next(m for m in range(target, 0, -1) if dimension % m == 0)


def train(codec: str, sample: FloatArray, nlist: int) -> bytes:
    """An empty IVF index trained on ``sample``: ``codec`` "pq" (IVF-PQ, 8-bit codes) or
    "flat" (IVF-Flat); inner product."""
    faiss = _faiss()
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    dimension = int(sample.shape[1])
    quantizer = faiss.IndexFlatIP(dimension)
    if codec == "pq":
        index = faiss.IndexIVFPQ(
            quantizer, dimension, nlist, pq_size(dimension), 8, faiss.METRIC_INNER_PRODUCT
        )
    elif codec == "flat":
        index = faiss.IndexIVFFlat(quantizer, dimension, nlist, faiss.METRIC_INNER_PRODUCT)
    else:
        raise ValueError(f"unknown codec {codec!r}")
    faiss.omp_set_num_threads(max(1, os.cpu_count() or 1))
    index.train(sample)
    return to_bytes(index)


def empty(trained: bytes) -> Any:
    """A fresh empty copy of the trained index (its lists in memory)."""
    return from_bytes(trained)


def jobs(trained: bytes, ids: IdArray, vectors: FloatArray, rows: int | None = None) -> list[Job]:
    """The work of filling shards with ``vectors``, in parts of at most ``rows``
    (`JOB_ROWS`)."""
    rows = rows or JOB_ROWS
    return [
        (trained, ids[start : start + rows], vectors[start : start + rows])
        for start in range(0, len(ids), rows)
    ]


def fill_job(job: Job) -> bytes:
    """A shard: the trained index with the job's vectors under their own ids (a worker's
    task; it uses every thread it has)."""
    trained, ids, vectors = job
    shard = from_bytes(trained)
    shard.add_with_ids(
        np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(ids, dtype=np.int64)
    )
    return to_bytes(shard)


def absorb(into: Any, shard: bytes) -> None:
    """Move a shard's vectors into an in-memory index of the same training (ids kept)."""
    other = from_bytes(shard)
    into.merge_from(other, 0)


_STDOUT = threading.Lock()
_FAISS_SAYS = re.compile(rb"^(resizing \S+ to \d+ bytes|IO_FLAG_ONDISK_SAME_DIR: )")


@contextlib.contextmanager
def faiss_prints_dropped() -> Iterator[None]:
    """faiss's own C-level prints (`_FAISS_SAYS`) dropped while inside; everything else
    written to fd 1 meanwhile (another thread's output, a protocol on stdout) passes
    through, in order: fd 1 points at a pipe whose reader forwards all other lines."""
    with _STDOUT:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        try:
            saved = os.dup(1)
        except OSError:  # no stdout at all
            yield
            return
        read_end, write_end = os.pipe()
        pump = threading.Thread(target=_forward, args=(read_end, saved), daemon=True)
        pump.start()
        os.dup2(write_end, 1)
        os.close(write_end)
        try:
            yield
        finally:
            _flush_c_stdio()  # what printf buffered goes into the pipe, not after it
            os.dup2(saved, 1)  # the pipe's last writer closed: the pump ends
            pump.join()
            os.close(read_end)
            os.close(saved)


def _forward(read_end: int, out: int) -> None:
    pending = b""
    while chunk := os.read(read_end, 65536):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        kept = b"".join(line + b"\n" for line in lines if not _FAISS_SAYS.match(line))
        if kept:
            _write_all(out, kept)
    if pending and not _FAISS_SAYS.match(pending):
        _write_all(out, pending)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def _flush_c_stdio() -> None:
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).fflush(None)


def merge_to_disk(template: Any, parts: Sequence[Any], ivfdata: str) -> Any:
    """``template`` (a trained IVF index, its lists ignored) with inverted lists on disk in
    ``ivfdata``: the lists of ``parts`` (InvertedLists) merged, ids as they are.

    The space is checked first: the file is written through a memory map, where a full
    disk would be a SIGBUS rather than an error. Returns the index, its lists writable
    (the caller saves and fsyncs them).
    """
    faiss = _faiss()
    ivf = faiss.extract_index_ivf(template)
    total = sum(int(p.compute_ntotal()) for p in parts)
    need = total * (int(ivf.code_size) + 8)
    folder = os.path.dirname(ivfdata) or "."
    free = shutil.disk_usage(folder).free
    if need + (64 << 20) > free:
        raise IndexWriteError(
            f"not enough disk space in {folder} for the inverted lists "
            f"({need / 1e6:.0f} MB needed, {free / 1e6:.0f} MB free): free some space and "
            "index again (the index is as it was)"
        )
    if os.path.exists(ivfdata):  # left by a writer that died before its commit
        os.unlink(ivfdata)
    with faiss_prints_dropped():
        lists = faiss.OnDiskInvertedLists(int(ivf.nlist), int(ivf.code_size), ivfdata)
        pointers = faiss.InvertedListsPtrVector()
        for part in parts:
            pointers.push_back(part)
        count = int(lists.merge_from_multiple(pointers.data(), pointers.size(), False))
    ivf.replace_invlists(lists, True)
    lists.this.disown()
    template.ntotal = ivf.ntotal = count
    return template


def without(lists: Any, removed: IdArray) -> Any:
    """An in-memory copy of inverted lists without the entries of ``removed`` ids."""
    faiss = _faiss()
    code_size = int(lists.code_size)
    out = faiss.ArrayInvertedLists(int(lists.nlist), code_size)
    removed = np.asarray(removed, dtype=np.int64)
    for number in range(int(lists.nlist)):
        size = int(lists.list_size(number))
        if not size:
            continue
        ids = faiss.rev_swig_ptr(lists.get_ids(number), size).copy()
        codes = faiss.rev_swig_ptr(lists.get_codes(number), size * code_size).copy()
        keep = ~np.isin(ids, removed)
        if keep.all():
            kept_ids, kept_codes = ids, codes
        else:
            kept_ids = np.ascontiguousarray(ids[keep])
            kept_codes = np.ascontiguousarray(codes.reshape(size, code_size)[keep]).ravel()
        if len(kept_ids):
            out.add_entries(
                number, len(kept_ids), faiss.swig_ptr(kept_ids), faiss.swig_ptr(kept_codes)
            )
    return out
