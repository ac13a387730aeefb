"""The index on disk: SQLite for files, documents and passages; FAISS for vectors.

Layout of an index folder::

    semsearch.db              SQLite: manifest, files, documents, passages
    vectors.000007.faiss      the vectors of generation 7 (the manifest says which)
    write.lock                held (flock) by the one process writing

Every write is one atomic commit:

1. the new vectors are written to ``vectors.<generation+1>.faiss`` through a
   temporary file, fsynced and renamed into place, the rename made durable
   (`integrity.durable_replace`; the old file is untouched);
2. the SQLite changes and the manifest (new generation, vector count, id
   checksum, counts, the size and sha256 of the generation's files) are
   committed in one transaction; a failure at any step, COMMIT included, rolls
   it back and raises `IndexWriteError`;
3. vector files older than the previous generation are deleted.

A crash before 2 leaves the old manifest pointing at the old vector file; a
crash after it, the new one. Readers read the manifest and then the file it
names, so they never see half of a write. On open, the manifest's values are
type-checked and SQLite and FAISS are checked against each other (generation,
counts, id checksum, the vector file's size and first bytes); `integrity.py`
holds those checks and the full one (``semsearch check``).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import (
    IndexAccessError,
    IndexClosedError,
    IndexCorruptError,
    IndexNotFoundError,
    SchemaVersionError,
    SemsearchError,
)
from ..query import lexical, spelling
from . import integrity
from . import vectors as _vectors
from .integrity import ID_CHECKSUM_VERSION, REBUILD_HINT, checksum_version, id_checksum
from .lock import LOCK_NAME, WriteLock
from .schema import MIGRATIONS, SCHEMA_VERSION, replace_lexical_table
from .vectors import IdArray, VectorIndex

DB_NAME = "semsearch.db"
_VECTOR_FILE = re.compile(r"^vectors\.(\d+)\.faiss$")
_GENERATION_FILE = re.compile(r"^vectors\.(\d+)\.")  # the vectors and their side files


def vector_file_name(generation: int) -> str:
    return f"vectors.{generation:06d}.faiss"


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class FileRow:
    id: int
    path: str
    abspath: str
    sha256: str
    root: str = ""  # the real path of the file or folder given to `add` ('' = not recorded)


@dataclass(frozen=True)
class FileStats:
    """A file row with its counts, for listing what an index holds."""

    path: str
    abspath: str
    root: str
    format: str
    size: int
    mtime: float
    indexed_at: str
    documents: int
    passages: int


@dataclass(frozen=True)
class PassageRow:
    """A passage with what a search hit shows about it."""

    id: int
    document_id: int
    text: str
    paragraph: int
    piece: int
    pieces: int
    start: int
    end: int
    title: str
    date: str | None
    path: str
    key: str
    fields: dict[str, Any]
    abspath: str = ""
    line: int = 0
    column: int = 0
    page: int = 0  # 1-based page (PDF) or chapter (EPUB); 0 for formats without pages


@dataclass(frozen=True)
class _Snapshot:
    """What the database said, all at one moment."""

    manifest: dict[str, Any]
    passages: int
    id_checksum: int
    lexical: int
    files: int = -1
    documents: int = -1


class StaleSnapshot(Exception):
    """A read snapshot's vector file was pruned by later commits: read a newer snapshot."""


# --------------------------------------------------------------------------- store


class Store:
    """One index folder: the SQLite database and the vector file it names."""

    def __init__(self, folder: str, db: sqlite3.Connection) -> None:
        self.folder = folder
        self.real_folder = os.path.realpath(folder)  # where it is now (see `relocate`)
        self._path = os.path.join(folder, DB_NAME)
        # One SQLite connection per thread: a connection holds one transaction at a
        # time, so threads sharing one would start theirs inside each other's.
        self._local = threading.local()
        self._local.db = db
        self._closed = False
        self._manifest: dict[str, Any] | None = None
        self._parsed: tuple[list[Any], dict[str, Any]] | None = None  # raw rows, their values

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection to the database (opened on its first use)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if self._closed:
            if db is not None:  # closed meanwhile by another thread: this one's goes now
                self._local.db = None
                with contextlib.suppress(sqlite3.Error):
                    db.close()
            raise IndexClosedError(
                f"the index in {self.folder} has been closed: open it again with Index.open"
            )
        if db is None:
            db = _connect(self._path)
            self._local.db = db
        return db

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """One consistent snapshot of the database for every read inside (a read transaction).

        Nested uses, and uses inside a write transaction, share the outer one.
        """
        db = self.db
        if db.in_transaction:
            yield
            return
        try:
            db.execute("BEGIN")
        except sqlite3.DatabaseError as exc:
            raise _corrupt(self.folder, exc) from exc
        try:
            yield
        finally:
            with contextlib.suppress(sqlite3.Error):
                db.execute("COMMIT")
            if self._closed:  # `close` left this thread's connection to this thread
                self._local.db = None
                with contextlib.suppress(sqlite3.Error):
                    db.close()

    # --- opening

    @staticmethod
    def exists(folder: str) -> bool:
        return os.path.isfile(os.path.join(folder, DB_NAME))

    @staticmethod
    def has_vector_files(folder: str) -> bool:
        return os.path.isdir(folder) and any(_VECTOR_FILE.match(n) for n in os.listdir(folder))

    @classmethod
    def open(cls, folder: str) -> Store:
        """Open an existing index. Raises if it is missing, newer, or damaged."""
        path = os.path.join(folder, DB_NAME)
        if not os.path.isfile(path):
            if cls.has_vector_files(folder):
                raise IndexCorruptError(
                    f"the index in {folder} has lost its database {DB_NAME}: {REBUILD_HINT}"
                )
            raise IndexNotFoundError(
                f"no index in {folder}: run `semsearch index PATH` first to build one"
            )
        store = cls(folder, _connect(path))
        try:
            store._check_schema()
            if store._user_version() < SCHEMA_VERSION:
                with WriteLock(folder):  # an older index: upgrade it in place, once
                    store.migrate()
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def create(cls, folder: str) -> Store:
        """Create a new empty index folder (the caller holds the write lock)."""
        os.makedirs(folder, exist_ok=True)
        store = cls(folder, _connect(os.path.join(folder, DB_NAME)))
        store.migrate()
        return store

    def close(self) -> None:
        """Close this thread's connection; every other thread's closes at its next use or
        at the end of the read it is in (closing a connection another thread is reading
        through would crash the process)."""
        self._closed = True
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None and not db.in_transaction:
            self._local.db = None
            with contextlib.suppress(sqlite3.Error):
                db.close()

    def private_connection(self) -> sqlite3.Connection:
        """A new connection of the caller's own (to close), outside every thread's."""
        return _connect(self._path)

    def _check_schema(self) -> None:
        version = self._user_version()
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"the index in {self.folder} was written by a newer semsearch (schema "
                f"{version}; this one reads up to {SCHEMA_VERSION}): upgrade semsearch, or "
                "rebuild it with `semsearch index --rebuild PATH`"
            )
        if version == 0:
            raise IndexCorruptError(
                f"the index in {self.folder} is empty or damaged: {REBUILD_HINT}"
            )

    def _user_version(self) -> int:
        try:
            return int(self.db.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            raise _corrupt(self.folder, exc) from exc

    def migrate(self) -> None:
        """Apply the migrations this index lacks, each in its own transaction."""
        version = self._user_version()
        if version > SCHEMA_VERSION:
            self._check_schema()
        for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction():
                step(self.db)
                self.db.execute(f"PRAGMA user_version = {number}")

    # --- transactions

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise _corrupt(self.folder, exc) from exc
        try:
            yield self.db
            self.db.execute("COMMIT")
        except BaseException as exc:
            if self.db.in_transaction:  # a failed COMMIT may leave it open
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("ROLLBACK")
            self._manifest = None
            if isinstance(exc, OSError) or (
                isinstance(exc, sqlite3.OperationalError) and integrity.is_write_failure(exc)
            ):
                what = DB_NAME if isinstance(exc, sqlite3.Error) else "the index files"
                raise integrity.write_error(self.folder, what, exc) from exc
            if isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError:
                raise _corrupt(self.folder, exc) from exc
            raise

    # --- manifest

    def manifest(self, *, fresh: bool = False) -> dict[str, Any]:
        """The manifest (``fresh``: as this thread's connection reads it now). Its nested
        values are shared between calls: read them, never change them in place."""
        manifest = self._manifest  # one read: another thread may reset it meanwhile
        if manifest is None or fresh:
            try:
                rows = self.db.execute("SELECT key, value FROM manifest").fetchall()
            except sqlite3.DatabaseError as exc:
                raise _corrupt(self.folder, exc) from exc
            parsed = self._parsed  # every query reads it: parse only rows not seen last time
            if parsed is not None and parsed[0] == rows:
                manifest = parsed[1]
            else:
                manifest = integrity.parse_manifest(self.folder, rows)
                self._parsed = (rows, manifest)
            self._manifest = manifest
        return dict(manifest)

    def forget_manifest(self) -> None:
        """Drop the cached manifest (after a commit or a failed one)."""
        self._manifest = None

    def _write_manifest(self, values: dict[str, Any]) -> None:
        self.db.executemany(
            "INSERT INTO manifest(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [(k, json.dumps(v, sort_keys=True)) for k, v in values.items()],
        )
        self._manifest = None

    # --- vectors

    def load_vectors(self, *, mmap: bool = False) -> VectorIndex:
        """The vector index the manifest names, checked against SQLite.

        The manifest and the database's counts are read in one read
        transaction, a consistent snapshot however writers commit meanwhile;
        the vector file it names is never changed once written. Called inside
        `reading()`, it loads the generation of that snapshot and raises
        `StaleSnapshot` when writers have committed and pruned it since.
        """
        nested = self.db.in_transaction
        for _attempt in range(3):
            with self.reading():
                snap = self._snapshot()
                generation = int(snap.manifest.get("generation", 0))
                if generation == 0:
                    raise IndexCorruptError(
                        f"the index in {self.folder} has no committed vectors: {REBUILD_HINT}"
                    )
                path = os.path.join(self.folder, vector_file_name(generation))
                try:
                    _raise_problems(
                        self.folder,
                        integrity.vector_file_problems(
                            self.folder, snap.manifest, vector_file_name(generation)
                        ),
                    )
                    index = _vectors.load(str(snap.manifest["index_type"]), path, mmap=mmap)
                except IndexCorruptError:
                    # A writer may have committed newer generations and pruned this one.
                    if self._newest_vector_file() <= generation:
                        raise
                    if nested:
                        raise StaleSnapshot(generation) from None
                    continue
                self._check_vectors(snap, index)
                return index
        raise IndexCorruptError(f"the index in {self.folder} kept changing while being read")

    def _snapshot(self) -> _Snapshot:
        with self.reading():
            manifest = self.manifest(fresh=True)
            return _Snapshot(
                manifest=manifest,
                passages=self.passage_count(),
                id_checksum=id_checksum(self.passage_id_array(), checksum_version(manifest)),
                lexical=self.lexical_count(),
                files=self.file_count(),
                documents=self.document_count(),
            )

    def _check_vectors(self, snap: _Snapshot, index: VectorIndex) -> None:
        manifest = snap.manifest
        expected = int(manifest.get("vector_count", -1))
        rows = snap.passages
        problems = []
        if index.count != expected:
            problems.append(f"the vector file holds {index.count} vectors, the manifest {expected}")
        if rows != expected:
            problems.append(f"the database holds {rows} passages, the manifest {expected}")
        if index.dimension != int(manifest.get("dimension", -1)):
            problems.append(
                f"the vectors have dimension {index.dimension}, the manifest "
                f"{manifest.get('dimension')}"
            )
        if not problems:
            recorded = int(manifest.get("id_checksum", -1))
            if id_checksum(index.ids(), checksum_version(manifest)) != recorded:
                problems.append("the vector ids do not match the manifest")
            elif snap.id_checksum != recorded:
                problems.append("the passage ids do not match the vector ids")
            elif snap.lexical != rows:
                problems.append(
                    f"the lexical index holds {snap.lexical} passages, the database {rows}"
                )
        for key, held, table in (
            ("file_count", snap.files, "files"),
            ("document_count", snap.documents, "documents"),
        ):
            if key in manifest and held != manifest[key]:  # (older indexes did not record them)
                problems.append(f"the database holds {held} {table}, the manifest {manifest[key]}")
        if problems:
            raise IndexCorruptError(
                f"the index in {self.folder} is inconsistent ({'; '.join(problems)}): "
                f"{REBUILD_HINT}"
            )

    def commit(self, index: VectorIndex, manifest: dict[str, Any]) -> int:
        """Write ``index`` as the next generation and commit the open transaction with it.

        Must be called inside `transaction()`, as its last step. Returns the
        new generation.
        """
        old = int(self.manifest(fresh=True).get("generation", 0))
        generation = max(old, self._newest_vector_file()) + 1
        path = os.path.join(self.folder, vector_file_name(generation))
        index.save(path)
        values = dict(manifest)
        values.update(
            generation=generation,
            # the one before, kept for readers that still hold it (not generation - 1: a
            # writer that failed may have left files of a number between them)
            previous_generation=old,
            vector_count=index.count,
            id_checksum=id_checksum(index.ids()),
            id_checksum_version=ID_CHECKSUM_VERSION,
            index_type=index.kind,
            dimension=index.dimension,
            updated_at=now_iso(),
            checksums=integrity.generation_checksums(self.folder, vector_file_name(generation)),
            file_count=self.file_count(),
            document_count=self.document_count(),
        )
        # where the stored paths hold from: here, unless the caller left them as they were
        values.setdefault("location", self.real_folder)
        self._write_manifest(values)
        return generation

    def prune(self) -> None:
        """Delete vector files other than the committed generation and the one before it."""
        manifest = self.manifest(fresh=True)
        current = int(manifest.get("generation", 0))
        previous = manifest.get("previous_generation")
        if not isinstance(previous, int):
            previous = current - 1
        for name in os.listdir(self.folder):
            m = _GENERATION_FILE.match(name)
            if (m and int(m.group(1)) not in (current, previous)) or ".tmp-" in name:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.folder, name))

    def _newest_vector_file(self) -> int:
        gens = [
            int(m.group(1)) for n in os.listdir(self.folder) if (m := _GENERATION_FILE.match(n))
        ]
        return max(gens, default=0)

    # --- reading rows

    def passage_count(self) -> int:
        return int(self._query("SELECT count(*) FROM passages")[0][0])

    def schema_version(self) -> int:
        return self._user_version()

    def document_count_in(self, file_ids: Sequence[int]) -> int:
        total = 0
        for chunk in _chunks(list(file_ids), 500):
            marks = ",".join("?" * len(chunk))
            total += int(
                self._query(f"SELECT count(*) FROM documents WHERE file_id IN ({marks})", chunk)[0][
                    0
                ]
            )
        return total

    def document_signatures(self, file_ids: Sequence[int]) -> dict[int, dict[str, str]]:
        """file id -> {document key: hash of its passages' embedded texts, in order}."""
        parts: dict[tuple[int, str], list[str]] = {}
        for chunk in _chunks(list(file_ids), 500):
            marks = ",".join("?" * len(chunk))
            for fid, key, h in self._query(
                "SELECT d.file_id, d.key, p.embed_hash FROM documents d JOIN passages p "
                f"ON p.document_id = d.id WHERE d.file_id IN ({marks}) ORDER BY d.id, p.id",
                chunk,
            ):
                parts.setdefault((int(fid), str(key)), []).append(str(h))
        out: dict[int, dict[str, str]] = {}
        for (fid, key), hashes in parts.items():
            digest = hashlib.sha256("\n".join(hashes).encode()).hexdigest()
            out.setdefault(fid, {})[key] = digest
        return out

    def passage_id_array(self) -> IdArray:
        rows = self._query("SELECT id FROM passages")
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def lexical_count(self) -> int:
        return int(self._query("SELECT count(*) FROM passages_fts_docsize")[0][0])

    def lexical_tokenizer(self) -> str:
        """The tokenizer of the lexical table (`lexical.TOKENIZERS`), as its schema says."""
        try:
            return lexical.table_tokenizer(self.db)
        except sqlite3.DatabaseError as exc:
            raise _corrupt(self.folder, exc) from exc

    def replace_lexical(self, tokenizer: str) -> None:
        """Make the lexical table anew with ``tokenizer`` (inside a transaction)."""
        replace_lexical_table(self.db, tokenizer)

    def sample_texts(self, limit: int) -> list[str]:
        """The text of at most ``limit`` passages, spread evenly over the ids."""
        total = self.passage_count()
        step = max(1, total // max(limit, 1))
        rows = self._query(
            "SELECT text FROM (SELECT text, row_number() OVER (ORDER BY id) AS n FROM passages) "
            "WHERE (n - 1) % ? = 0 LIMIT ?",
            (step, limit),
        )
        return [str(r[0]) for r in rows]

    def bm25(
        self,
        query: str,
        k: int,
        allowed: IdArray | None = None,
        stats: lexical.Stats | None = None,
    ) -> list[tuple[int, float]]:
        """`query.lexical.search` on this thread's connection, its errors turned into ours
        (``stats``: several indexes' statistics to score with, see `lexical.Stats`)."""
        try:
            return lexical.search(self.db, query, k, allowed, stats=stats)
        except sqlite3.DatabaseError as exc:
            raise _corrupt(self.folder, exc) from exc

    def bm25_of(
        self, query: str, ids: Iterable[int], stats: lexical.Stats | None = None
    ) -> dict[int, float]:
        """`query.lexical.scores_of`: the BM25 of these passages (0.0 where no term matches)."""
        try:
            return lexical.scores_of(self.db, query, ids, stats=stats)
        except sqlite3.DatabaseError as exc:
            raise _corrupt(self.folder, exc) from exc

    def bm25_stats(self, query: str) -> lexical.Stats:
        """`query.lexical.stats`: this index's BM25 statistics for ``query``."""
        try:
            return lexical.stats(self.db, query)
        except sqlite3.DatabaseError as exc:
            raise _corrupt(self.folder, exc) from exc

    def spelling(
        self, query: str, speller: spelling.Speller | None = None
    ) -> spelling.Spelling:
        """`query.spelling.correct` on this index: ``query`` with the words its lexical index
        does not know replaced by close ones it does. ``speller`` keeps the vocabulary of
        the generation read (see `Speller`)."""
        manifest = self.manifest()
        key = (manifest.get("generation"), manifest.get("created_at"), manifest.get("updated_at"))
        try:
            tokenizer = spelling.tokenizer_of(self.db, manifest.get("lexical_tokenizer"))
            return spelling.correct(self.db, query, tokenizer, speller, key)
        except sqlite3.DatabaseError as exc:
            raise _corrupt(self.folder, exc) from exc

    def bm25_bound(self, query: str, stats: lexical.Stats | None = None) -> float:
        """`query.lexical.bound`: the BM25 no passage reaches for ``query``."""
        try:
            return lexical.bound(self.db, query, stats=stats)
        except sqlite3.DatabaseError as exc:
            raise _corrupt(self.folder, exc) from exc

    def filter_ids(
        self, *, since: str | None = None, until: str | None = None, path: str | None = None
    ) -> IdArray:
        """Ids of the passages whose article matches every filter given.

        ``since``/``until`` compare the article date (YYYY-MM-DD, inclusive;
        articles without a date never match); ``path`` is a glob (``*`` also
        matches ``/``) tried on the path as given at index time and on the
        absolute path.
        """
        where, params = [], []
        if since is not None:
            where.append("d.date >= ?")
            params.append(since)
        if until is not None:
            where.append("d.date <= ?")
            params.append(until)
        if path is not None:
            where.append("(f.path GLOB ? OR f.abspath GLOB ?)")
            params += [path, path]
        rows = self._query(
            "SELECT p.id FROM passages p JOIN documents d ON p.document_id = d.id "
            "JOIN files f ON d.file_id = f.id WHERE " + " AND ".join(where or ["1"]),
            params,
        )
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def document_count(self) -> int:
        return int(self._query("SELECT count(*) FROM documents")[0][0])

    def file_count(self) -> int:
        return int(self._query("SELECT count(*) FROM files")[0][0])

    def files(self) -> dict[str, FileRow]:
        """Every file row, keyed by its stored abspath."""
        rows = self._query("SELECT id, path, abspath, sha256, root FROM files")
        return {r[2]: FileRow(*r) for r in rows}

    def file_stats(self) -> list[FileStats]:
        """Every file row with its counts of documents and passages, by stored abspath."""
        rows = self._query(
            "SELECT f.path, f.abspath, f.root, f.format, f.size, f.mtime, f.indexed_at, "
            "count(DISTINCT d.id), count(p.id) FROM files f "
            "LEFT JOIN documents d ON d.file_id = f.id "
            "LEFT JOIN passages p ON p.document_id = d.id "
            "GROUP BY f.id ORDER BY f.abspath"
        )
        return [FileStats(*r) for r in rows]

    def moved_from(self) -> str | None:
        """Where the index folder was at its last commit, when it has been moved since
        (the real path the manifest records); None when it has not or nothing says."""
        recorded = self.manifest().get("location")
        if not isinstance(recorded, str) or not recorded or recorded == self.real_folder:
            return None
        return recorded

    def relocate(
        self,
        abspath: str,
        moved_from: str | None,
        root: str = "",
        roots_found: dict[str, bool] | None = None,
    ) -> str:
        """Where a stored path lies now, for an index moved (or copied) with its documents.

        When the index folder has moved (from ``moved_from``, see `moved_from`), the
        file's indexed ``root`` (files.root) decides: when that root exists at the same
        place relative to the index's new location, the documents moved with the index
        and the file is there too, whether it still exists or not (one gone from there
        is gone: a copy never points back into the original's documents); when it does
        not, the index moved without them and the stored path holds. A row without a
        root (indexed by an older semsearch) is looked for on its own. For an index
        that has not moved, the stored path. ``roots_found`` remembers, for one batch of
        rows, whether each root was found (one look at the disk per root, not per row).
        """
        if not moved_from or not abspath:
            return abspath
        moved = self._moved(abspath, moved_from)
        if root:
            found = None if roots_found is None else roots_found.get(root)
            if found is None:
                found = os.path.lexists(self._moved(root, moved_from))
                if roots_found is not None:
                    roots_found[root] = found
            return moved if found else abspath
        return moved if os.path.lexists(moved) else abspath

    def _moved(self, path: str, moved_from: str) -> str:
        """``path`` at the same place relative to the index folder's new location."""
        return os.path.normpath(os.path.join(self.real_folder, os.path.relpath(path, moved_from)))

    def passage_ids(self, file_ids: Sequence[int]) -> IdArray:
        ids: list[int] = []
        for chunk in _chunks(list(file_ids), 500):
            marks = ",".join("?" * len(chunk))
            ids += [
                r[0]
                for r in self._query(
                    "SELECT p.id FROM passages p JOIN documents d ON p.document_id = d.id "
                    f"WHERE d.file_id IN ({marks})",
                    chunk,
                )
            ]
        return np.asarray(ids, dtype=np.int64)

    def ids_by_embed_hash(self, file_ids: Sequence[int]) -> dict[str, int]:
        """embed_hash -> passage id, for the passages of the given files."""
        out: dict[str, int] = {}
        for chunk in _chunks(list(file_ids), 500):
            marks = ",".join("?" * len(chunk))
            for pid, h in self._query(
                "SELECT p.id, p.embed_hash FROM passages p JOIN documents d "
                f"ON p.document_id = d.id WHERE d.file_id IN ({marks})",
                chunk,
            ):
                out.setdefault(h, pid)
        return out

    def document_passage_ids(self, document_id: int) -> list[int]:
        """The ids of one document's passages, in reading order."""
        return [
            r[0]
            for r in self._query(
                "SELECT id FROM passages WHERE document_id = ? ORDER BY paragraph, piece, id",
                (int(document_id),),
            )
        ]

    def passages(self, ids: Iterable[int]) -> dict[int, PassageRow]:
        """The rows of these passages; each file's abspath is where it lies now (`relocate`)."""
        out: dict[int, PassageRow] = {}
        moved_from = self.moved_from()
        roots_found: dict[str, bool] = {}
        for chunk in _chunks([int(i) for i in ids], 500):
            marks = ",".join("?" * len(chunk))
            for r in self._query(
                "SELECT p.id, p.text, p.paragraph, p.piece, p.pieces, p.start, p.end, d.title, "
                "d.date, f.path, d.key, d.fields, p.document_id, f.abspath, p.line, p.col, "
                "f.root, p.page FROM passages p "
                "JOIN documents d ON p.document_id = d.id "
                f"JOIN files f ON d.file_id = f.id WHERE p.id IN ({marks})",
                chunk,
            ):
                out[r[0]] = PassageRow(
                    id=r[0],
                    document_id=r[12],
                    text=r[1],
                    paragraph=r[2],
                    piece=r[3],
                    pieces=r[4],
                    start=r[5],
                    end=r[6],
                    title=r[7],
                    date=r[8],
                    path=r[9],
                    key=r[10],
                    fields=_fields(self.folder, r[11]),
                    abspath=self.relocate(r[13], moved_from, r[16] or "", roots_found),
                    line=r[14],
                    column=r[15],
                    page=r[17],
                )
        return out

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return self.db.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise _corrupt(self.folder, exc) from exc

    # --- writing rows (inside a transaction)

    def delete_files(self, file_ids: Sequence[int]) -> None:
        for chunk in _chunks(list(file_ids), 500):
            marks = ",".join("?" * len(chunk))
            self.db.execute(f"DELETE FROM files WHERE id IN ({marks})", chunk)

    def delete_all(self) -> None:
        self.db.execute("DELETE FROM files")
        self.db.execute("DELETE FROM passages_fts")  # also rows a damaged index left behind

    def upsert_file(
        self,
        *,
        path: str,
        abspath: str,
        fmt: str,
        sha256: str,
        size: int,
        mtime: float,
        root: str = "",
    ) -> int:
        """Insert a file row, replacing (and cascading away) any row for the same file."""
        self.db.execute("DELETE FROM files WHERE abspath = ?", (abspath,))
        cur = self.db.execute(
            "INSERT INTO files(path, abspath, format, sha256, size, mtime, indexed_at, root) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (path, abspath, fmt, sha256, size, mtime, now_iso(), root),
        )
        return int(cur.lastrowid or 0)

    def update_file_root(self, file_id: int, root: str) -> None:
        self.db.execute("UPDATE files SET root = ? WHERE id = ?", (root, file_id))

    def update_file_path(self, file_id: int, path: str) -> None:
        self.db.execute("UPDATE files SET path = ? WHERE id = ?", (path, file_id))

    def update_file_abspath(self, file_id: int, abspath: str) -> None:
        """Record a file's identity (its real path) in place of another spelling of it."""
        self.db.execute("UPDATE files SET abspath = ? WHERE id = ?", (abspath, file_id))

    def insert_document(
        self,
        *,
        file_id: int,
        ordinal: int,
        key: str,
        title: str,
        date: str | None,
        fields: dict[str, Any],
    ) -> int:
        cur = self.db.execute(
            "INSERT INTO documents(file_id, ordinal, key, title, date, fields) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (file_id, ordinal, key, title, date, json.dumps(fields, sort_keys=True, default=str)),
        )
        return int(cur.lastrowid or 0)

    def insert_passages(self, document_id: int, rows: Sequence[tuple[Any, ...]]) -> list[int]:
        """Insert (paragraph, piece, pieces, start, end, text, embed_hash, line, column, page)
        rows; returns their ids."""
        ids = []
        for row in rows:
            cur = self.db.execute(
                "INSERT INTO passages(document_id, paragraph, piece, pieces, start, end, text, "
                "embed_hash, line, col, page) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (document_id, *row),
            )
            ids.append(int(cur.lastrowid or 0))
        return ids

    def size_on_disk(self) -> int:
        """Bytes of the files in the folder (a symbolic link counts as itself, not its target;
        a hard link as the file, as ``du`` counts them)."""
        total = 0
        for name in os.listdir(self.folder):
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(self.folder, name)).st_size
        return total


# What an index folder holds that semsearch made: its database, lock, vector files, models
# and their side files, temporary files of interrupted writes, old files set aside.
_OWN_FILE = re.compile(
    r"^(semsearch\.db(-wal|-shm|-journal)?|write\.lock|vectors\.\d+\..+"
    r"|query-(model|tokenizer)[-.].+|embed-model-int8[-.].+)$"
)
_SET_ASIDE = re.compile(r"^(damaged|newer)-\d{8}-\d{6}$")  # see `Index.add(rebuild=True)`


def delete_index_files(folder: str) -> tuple[int, int, list[str]]:
    """Delete the files semsearch made in ``folder`` (the caller holds the write lock,
    whose file stays): returns how many, their bytes, and the names of the other entries,
    left in place. The database goes last, so an interrupted deletion is still an index
    (a damaged one) that a second deletion finishes."""
    deleted, freed = 0, 0
    kept: list[str] = []
    mine: list[str] = []
    for name in sorted(os.listdir(folder)):
        full = os.path.join(folder, name)
        if _SET_ASIDE.match(name) and os.path.isdir(full) and not os.path.islink(full):
            n, size, left = delete_index_files(full)
            deleted, freed = deleted + n, freed + size
            if left:
                kept.append(name)
            else:
                with contextlib.suppress(OSError):
                    os.rmdir(full)
        elif _OWN_FILE.match(name) and not os.path.isdir(full):
            mine.append(name)
        else:
            kept.append(name)
    for name in sorted(mine, key=lambda n: n.startswith(DB_NAME)):
        if name == LOCK_NAME:
            continue
        full = os.path.join(folder, name)
        with contextlib.suppress(FileNotFoundError):
            st = os.lstat(full)
            os.unlink(full)
            # a file with other links (the query model shared with the model cache) frees nothing
            size = st.st_size if st.st_nlink <= 1 else 0
            deleted, freed = deleted + 1, freed + size
    return deleted, freed, kept


def _connect(path: str) -> sqlite3.Connection:
    try:
        db = sqlite3.connect(path, isolation_level=None, timeout=30.0, check_same_thread=False)
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
    except sqlite3.DatabaseError as exc:
        raise _corrupt(os.path.dirname(path), exc) from exc
    return db


_ACCESS_ERRORS = ("readonly", "unable to open", "disk i/o", "permission", "locked")


def _corrupt(folder: str, exc: sqlite3.DatabaseError) -> SemsearchError:
    """The right error for a failed SQLite call: no space, no access, or damage."""
    if integrity.is_full(exc):
        return integrity.write_error(folder, DB_NAME, exc)
    text = str(exc)
    if any(word in text.lower() for word in _ACCESS_ERRORS):
        return IndexAccessError(
            f"cannot use the index in {folder} ({text}): check that you may read and write "
            "that folder and its files"
        )
    return IndexCorruptError(f"the index database in {folder} is damaged ({text}): {REBUILD_HINT}")


def _fields(folder: str, text: str) -> dict[str, Any]:
    try:
        fields = json.loads(text)
    except (ValueError, TypeError):
        fields = None
    if not isinstance(fields, dict):
        raise IndexCorruptError(
            f"the index database in {folder} is damaged (a document's fields are not a JSON "
            f"object): {REBUILD_HINT}"
        )
    return fields


def _raise_problems(folder: str, problems: list[str]) -> None:
    if problems:
        raise IndexCorruptError(
            f"the index in {folder} is damaged ({'; '.join(problems)}): {REBUILD_HINT}"
        )


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
