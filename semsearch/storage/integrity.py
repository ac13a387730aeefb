"""Integrity of an index folder: durable renames, checksums, write failures, the full check.

Every file an index names is recorded in its manifest with its sha256 when the
commit that names it is made: the vector files of the generation
(``checksums``), the ONNX query model and its tokenizer (``query_model``), the
int8 model (``embed_model``). Files are only ever renamed into place through
`durable_replace`, which makes the rename durable before the manifest that
names the file is committed.

What is verified when:

- on every open, cheaply (a cold query stays well under a second): the
  manifest's values and their types; the vector file's size and the sha256 of
  its first 64 KiB (header and first vectors); the ids' checksum, the counts
  of passages, files and documents against SQLite (store.py); the small side
  files (HNSW removed ids) and the query tokenizer by sha256; the ONNX query
  model by size and its sha256 once per file identity (`verified_file`);
- by `check_index` (``semsearch check``): every file's full sha256,
  ``PRAGMA integrity_check``, the FTS5 integrity check, foreign keys, the
  lexical index against the passages, and SQLite against FAISS row by row.

faiss is imported only by the full check.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..errors import IndexCorruptError, IndexWriteError

if TYPE_CHECKING:
    from .store import Store
    from .vectors import VectorIndex

REBUILD_HINT = "run `semsearch index --rebuild PATH`"
HEAD_BYTES = 65536  # the vector file's header and first vectors, verified on every open
ID_CHECKSUM_VERSION = 2  # 1: sum and xor folded together (collides: {1, 6} and {2, 5})
_HEX = re.compile(r"^[0-9a-f]{64}$")


# --------------------------------------------------------------------------- durable files


def fsync_path(path: str) -> None:
    """Flush a file's (or a folder's) contents to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str) -> None:
    """Make the renames inside the folder ``path`` durable."""
    fsync_path(path or ".")


def durable_replace(source: str, target: str) -> None:
    """Rename ``source`` to ``target`` so that both survive a power loss.

    The file is fsynced before the rename and its folder after it (and the
    folder it left, when that is another one). Every rename semsearch makes
    goes through here: a manifest committed after it never names a file that
    a power loss can take away.
    """
    fsync_path(source)
    os.replace(source, target)
    fsync_dir(os.path.dirname(target))
    left = os.path.dirname(os.path.abspath(source))
    if left != os.path.dirname(os.path.abspath(target)):
        fsync_dir(left)


def sha256_file(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def head_sha256(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read(HEAD_BYTES)).hexdigest()


# --------------------------------------------------------------------------- write failures

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
# FAISS: "... write error in F: 4014 != 155136 (File too large)"
_FAISS_REASON = re.compile(r"\(([^()]+)\)\s*$")


def is_write_failure(exc: BaseException) -> bool:
    """A failed write (full disk, I/O error) rather than damage or a missing permission."""
    if isinstance(exc, OSError):
        return True
    text = str(exc).lower()
    return "disk is full" in text or "disk i/o error" in text or "no space left" in text


_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO}


def is_disk_failure(exc: OSError) -> bool:
    """An `OSError` of the disk itself (full, over quota or a file size limit, I/O), rather
    than of a path or a permission."""
    return exc.errno in _DISK_ERRNOS


def is_full(exc: BaseException) -> bool:
    return "disk is full" in str(exc).lower()


def write_error(folder: str, what: str, exc: BaseException) -> IndexWriteError:
    """One line for a failed write: why, of what, and that the index is as it was."""
    reason, space = _reason(exc)
    hint = (
        "free some disk space, then run the command again"
        if space
        else "check the disk and that folder, then run the command again"
    )
    return IndexWriteError(
        f"{reason} while writing {what} in {folder}; the index is as it was: {hint}"
    )


def _reason(exc: BaseException) -> tuple[str, bool]:
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower(), exc.errno in _NO_SPACE
    text = str(exc).strip()
    low = text.lower()
    if "disk is full" in low or "no space left" in low:
        return "no space left on device", True
    if "disk quota" in low:
        return "disk quota exceeded", True
    if "disk i/o error" in low:
        return "a disk I/O error", False
    found = _FAISS_REASON.search(text)
    if found:
        return found.group(1).lower(), False
    return (text.splitlines()[0] if text else type(exc).__name__), False


@contextlib.contextmanager
def writing(
    folder: str, what: str, *, engine: tuple[type[BaseException], ...] = ()
) -> Iterator[None]:
    """Turn a failed write of ``what`` in ``folder`` (an `OSError`, or one of ``engine``'s
    errors) into an `IndexWriteError`."""
    try:
        yield
    except OSError as exc:
        raise write_error(folder, what, exc) from exc
    except engine as exc:
        raise write_error(folder, what, exc) from exc


# --------------------------------------------------------------------------- ids


def id_checksum(ids: npt.ArrayLike, version: int = ID_CHECKSUM_VERSION) -> int:
    """Order-free checksum of a set of ids, 63 bits.

    Version 2 (written since): blake2b of the sorted little-endian int64 ids.
    Version 1 (older indexes, still read): sum and xor folded together, which
    gives sets such as {1, 6} and {2, 5} the same value.
    """
    arr = np.asarray(ids, dtype=np.int64)
    if version == 1:
        if len(arr) == 0:
            return 0
        u = arr.astype(np.uint64)
        total = int(u.sum(dtype=np.uint64))
        xor = int(np.bitwise_xor.reduce(u))
        return (total ^ (xor << 1)) & 0x7FFF_FFFF_FFFF_FFFF
    data = np.sort(arr).astype("<i8").tobytes()
    digest = hashlib.blake2b(data, digest_size=8, person=b"semsearch-ids").digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


def checksum_version(manifest: dict[str, Any]) -> int:
    return int(manifest.get("id_checksum_version", 1))


# --------------------------------------------------------------------------- the manifest


def parse_manifest(folder: str, rows: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The manifest's rows as values, after checking each has the type semsearch reads.

    Raises `IndexCorruptError` (naming ``--rebuild``) for a value that is not
    JSON or not what it should be, so no reader ever fails on one later.
    """
    manifest: dict[str, Any] = {}
    problems = []
    for key, value in rows:
        try:
            manifest[key] = json.loads(value)
        except (ValueError, TypeError):
            problems.append(f"the value of {key!r} is not JSON")
    problems += [p for p in manifest_problems(manifest) if p not in _missing(problems)]
    if problems:
        raise IndexCorruptError(
            f"the manifest of the index in {folder} is damaged ({'; '.join(problems[:3])}): "
            f"{REBUILD_HINT}"
        )
    return manifest


def _missing(not_json: list[str]) -> set[str]:
    """The "is missing" problems that only repeat a "not JSON" one."""
    return {p.replace("the value of ", "").replace(" is not JSON", " is missing") for p in not_json}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_name(v: Any) -> bool:
    return isinstance(v, str) and bool(v) and os.path.basename(v) == v and v not in (".", "..")


_Rule = tuple[str, Any]
_WHOLE: _Rule = ("a whole number >= 0", lambda v: _is_int(v) and v >= 0)
_POSITIVE: _Rule = ("a whole number > 0", lambda v: _is_int(v) and v > 0)
_ANY_INT: _Rule = ("a whole number", _is_int)
_TEXT: _Rule = ("a string", lambda v: isinstance(v, str))
_FLAG: _Rule = ("true or false", lambda v: isinstance(v, bool))
_NUMBER: _Rule = ("a number", lambda v: _is_int(v) or isinstance(v, float))
_NAME: _Rule = ("a file name", _is_name)
_SHA: _Rule = ("a sha256", lambda v: isinstance(v, str) and bool(_HEX.match(v)))
_OPT_SHA: _Rule = ("a sha256 or empty", lambda v: v == "" or _SHA[1](v))


def _one_of(*values: Any) -> _Rule:
    return (f"one of {', '.join(map(str, values))}", lambda v: v in values)


_TOP: dict[str, _Rule] = {
    "generation": _WHOLE,
    "previous_generation": _WHOLE,
    "vector_count": _WHOLE,
    "dimension": _POSITIVE,
    "id_checksum": _ANY_INT,
    "id_checksum_version": _one_of(1, 2),
    "schema_version": _POSITIVE,
    "file_count": _WHOLE,
    "document_count": _WHOLE,
    "index_type": _one_of("flat", "hnsw", "ivf", "ivfpq", "ivfpq-disk"),
    "index_type_requested": _one_of("auto", "flat", "hnsw", "ivf", "ivfpq", "ivfpq-disk"),
    "lexical_tokenizer": _one_of("porter", "unicode61", "trigram"),
    "lexical_requested": _one_of("auto", "porter", "unicode61", "trigram"),
    "lexical_reason": _TEXT,
    "model": ("a model name", lambda v: isinstance(v, str) and bool(v)),
    "model_fingerprint": _TEXT,
    "query_prefix": _TEXT,
    "passage_prefix": _TEXT,
    "backend": _TEXT,
    "precision": _TEXT,
    "metric": _TEXT,
    "normalized": _FLAG,
    "created_at": _TEXT,
    "updated_at": _TEXT,
    "created_by": _TEXT,
    "semsearch_version": _TEXT,
    "location": _TEXT,
}
_CHUNKING: dict[str, _Rule] = {
    "max_tokens": _POSITIVE,
    "unit": _one_of("paragraph", "document"),
    "max_title_tokens": _WHOLE,
    "split": _TEXT,
    "title_in_embedding": _FLAG,
}
_QUERY_MODEL: dict[str, _Rule] = {
    "file": _NAME,
    "tokenizer": _NAME,
    "size": _WHOLE,
    "max_tokens": _POSITIVE,
    "dimension": _POSITIVE,
    "pooling": _TEXT,
    "cosine": _NUMBER,
    "sha256": _OPT_SHA,
    "tokenizer_sha256": _OPT_SHA,
}
_EMBED_MODEL: dict[str, _Rule] = {
    "file": _NAME,
    "weights": _NAME,
    "sha256": _SHA,
    "xml_sha256": _SHA,
}
_CHECKSUM: dict[str, _Rule] = {"size": _WHOLE, "sha256": _SHA, "head_sha256": _SHA}
_REQUIRED = {
    "": ("index_type", "dimension", "chunking"),  # once something is committed
    "chunking": ("max_tokens", "unit"),
    "query_model": ("file", "tokenizer", "size", "max_tokens", "dimension"),
    "embed_model": ("file", "weights", "sha256", "xml_sha256"),
    "checksums": ("size", "sha256"),
}


def _rules(where: str, value: Any, rules: dict[str, _Rule], required: Sequence[str]) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where} is {_show(value)}, not a table of values"]
    out = [f"{where} lacks {key!r}" for key in required if key not in value]
    for key, (what, ok) in rules.items():
        if key in value and not ok(value[key]):
            out.append(f"{where}.{key} is {_show(value[key])}, not {what}")
    return out


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def manifest_problems(manifest: dict[str, Any]) -> list[str]:
    """What is wrong with the manifest's values (keys semsearch does not know are left alone)."""
    problems = []
    for key, (what, ok) in _TOP.items():
        if key in manifest and not ok(manifest[key]):
            problems.append(f"{key!r} is {_show(manifest[key])}, not {what}")
    generation = manifest.get("generation", 0)
    if _is_int(generation) and generation > 0:
        problems += [f"{key!r} is missing" for key in _REQUIRED[""] if key not in manifest]
    if "chunking" in manifest:
        problems += _rules("chunking", manifest["chunking"], _CHUNKING, _REQUIRED["chunking"])
    for key, rules in (("query_model", _QUERY_MODEL), ("embed_model", _EMBED_MODEL)):
        if manifest.get(key) is not None:
            problems += _rules(key, manifest[key], rules, _REQUIRED[key])
    checksums = manifest.get("checksums")
    if checksums is not None:
        if not isinstance(checksums, dict):
            problems.append(f"'checksums' is {_show(checksums)}, not a table of files")
        else:
            for name, record in checksums.items():
                if not _is_name(name):
                    problems.append(f"'checksums' names {_show(name)}, not a file name")
                problems += _rules(
                    f"checksums[{name!r}]", record, _CHECKSUM, _REQUIRED["checksums"]
                )
    return problems


# --------------------------------------------------------------------------- checksums at commit


def generation_checksums(folder: str, vector_name: str) -> dict[str, dict[str, Any]]:
    """Size and sha256 of the files of a generation just written (the vectors and side files).

    They were just written, so they are read back from the page cache: 0.04 s
    for 11,000 passages of 384 dimensions, 0.46 s for 100,000, a little less
    than writing them (measured here).
    """
    prefix = vector_name[: -len("faiss")]  # "vectors.000007."
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(os.listdir(folder)):
        if name.startswith(prefix) and ".tmp-" not in name:
            path = os.path.join(folder, name)
            record: dict[str, Any] = {"size": os.path.getsize(path), "sha256": sha256_file(path)}
            if name == vector_name:
                record["head_sha256"] = head_sha256(path)
            out[name] = record
    return out


def vector_file_problems(folder: str, manifest: dict[str, Any], vector_name: str) -> list[str]:
    """The cheap checks of a generation's files on open: sizes, the header, small files whole."""
    recorded = manifest.get("checksums") or {}
    prefix = vector_name[: -len("faiss")]
    problems = []
    for name, record in recorded.items():
        if not name.startswith(prefix):
            continue
        path = os.path.join(folder, name)
        try:
            size = os.path.getsize(path)
            if size != record["size"]:
                problems.append(f"{name} holds {size} bytes, {record['size']} were written")
            elif name == vector_name:
                if "head_sha256" in record and head_sha256(path) != record["head_sha256"]:
                    problems.append(f"the first bytes of {name} differ from those written")
            elif size <= 16_000_000 and sha256_file(path) != record["sha256"]:
                problems.append(f"{name} differs from the file written")
        except FileNotFoundError:
            problems.append(f"{name} is missing")
    return problems


# --------------------------------------------------------------------------- verified once


def _identity(path: str) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def verified_file(folder: str, name: str, sha256: str) -> bool:
    """True if ``folder/name`` is the file of that sha256, hashing it once per file identity.

    Hashing the ONNX query model (90 MB) takes 0.12-0.27 s here, a sixth to a
    third of a cold query (0.75 s), and a query opens it every time. So the
    result is kept beside it (``NAME.verified``), keyed by its size, mtime,
    ctime, inode and device: writing to the file changes mtime and ctime (the
    latter cannot be set back), copying or restoring it changes the inode, so
    any file that was modified is hashed again and refused if it differs. A
    bit flipped by the disk itself, without a write, is found by
    ``semsearch check``, which always hashes. The writer records the identity
    when it places the file; a reader that had to hash it records it too
    (best effort: a read-only folder is hashed every time).
    """
    path = os.path.join(folder, name)
    try:
        identity = _identity(path)
        with open(path + ".verified", encoding="utf-8") as fh:
            record = json.load(fh)
        if record.get("sha256") == sha256 and record.get("identity") == identity:
            return True
    except (OSError, ValueError, AttributeError):
        pass
    try:
        if sha256_file(path) != sha256:
            return False
    except OSError:
        return False
    remember_verified(folder, name, sha256)
    return True


def remember_verified(folder: str, name: str, sha256: str) -> None:
    """Record that ``folder/name``, as it is now, has that sha256 (best effort)."""
    path = os.path.join(folder, name)
    tmp = f"{path}.verified.tmp-{os.getpid()}-{threading.get_ident()}"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"sha256": sha256, "identity": _identity(path)}, fh)
        durable_replace(tmp, path + ".verified")
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


# --------------------------------------------------------------------------- the full check


@dataclass
class CheckReport:
    """What `Index.check` found: one line per problem (none when the index is whole)."""

    path: str
    passages: int = 0
    files_checked: list[str] = field(default_factory=list)  # the index files verified
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # worth knowing, not damage

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem_lines(self) -> list[str]:
        """Each problem as a user reads it: with what to do, when it does not say already."""
        return [p if "--rebuild" in p else f"{p}: {REBUILD_HINT}" for p in self.problems]

    def raise_for_problems(self) -> None:
        """Raise `IndexCorruptError` naming the problems, if there are any."""
        if self.problems:
            more = f"; and {len(self.problems) - 1} more" if len(self.problems) > 1 else ""
            raise IndexCorruptError(
                f"the index in {self.path} is damaged ({self.problems[0]}{more}): {REBUILD_HINT}"
            )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out


_MAX_LISTED = 20  # problems of one kind listed one by one


def check_index(store: Store) -> CheckReport:
    """Verify everything an index holds; never raises for damage, it reports it.

    The database is read in one transaction (a consistent snapshot while a
    writer commits); each step goes on when another found the database damaged.
    """
    from .store import DB_NAME

    report = CheckReport(path=store.folder, files_checked=[DB_NAME])
    # a connection of its own: the caller's may hold a read snapshot open
    db = store.private_connection()
    try:
        return _check_with(store, db, report)
    finally:
        db.close()


def _check_with(store: Store, db: sqlite3.Connection, report: CheckReport) -> CheckReport:
    from .store import DB_NAME

    manifest: dict[str, Any] = {}
    ids: list[npt.NDArray[np.int64]] = []

    def read_ids() -> None:
        ids.append(np.fromiter((r[0] for r in db.execute("SELECT id FROM passages")), np.int64))
        report.passages = len(ids[0])

    steps: list[Callable[[], None]] = [
        lambda: manifest.update(_check_manifest(db, report)),
        lambda: _check_database(db, report),
        read_ids,
        lambda: _check_rows(db, manifest, report),
    ]
    try:
        db.execute("BEGIN")  # one consistent snapshot of the database
        try:
            for step in steps:
                try:
                    step()
                except sqlite3.DatabaseError as exc:
                    problem = f"the database {DB_NAME} cannot be read ({exc})"
                    if problem not in report.problems:
                        report.problems.append(problem)
        finally:
            with contextlib.suppress(sqlite3.Error):
                db.execute("COMMIT")
        _check_fts(db, report)
    except sqlite3.DatabaseError as exc:
        report.problems.append(f"the database {DB_NAME} cannot be read ({exc})")
    _check_files(store.folder, manifest, report)
    if ids:
        _check_vectors(store.folder, manifest, ids[0], report)
    return report


def _check_manifest(db: sqlite3.Connection, report: CheckReport) -> dict[str, Any]:
    manifest: dict[str, Any] = {}
    not_json = []
    for key, value in db.execute("SELECT key, value FROM manifest").fetchall():
        try:
            manifest[key] = json.loads(value)
        except (ValueError, TypeError):
            not_json.append(f"the value of {key!r} is not JSON")
    problems = not_json + [p for p in manifest_problems(manifest) if p not in _missing(not_json)]
    report.problems += [f"manifest: {p}" for p in problems]
    return manifest


def _check_database(db: sqlite3.Connection, report: CheckReport) -> None:
    rows = [str(r[0]) for r in db.execute("PRAGMA integrity_check").fetchall()]
    if rows != ["ok"]:
        report.problems += [f"SQLite integrity check: {r}" for r in rows[:_MAX_LISTED]]
        if len(rows) > _MAX_LISTED:
            report.problems.append(
                f"SQLite integrity check: ... and {len(rows) - _MAX_LISTED} more"
            )
    broken: dict[tuple[str, str], int] = {}
    for table, _rowid, parent, _fk in db.execute("PRAGMA foreign_key_check").fetchall():
        broken[(str(table), str(parent))] = broken.get((str(table), str(parent)), 0) + 1
    for (table, parent), count in sorted(broken.items()):
        rows_of = "1 row" if count == 1 else f"{count} rows"
        report.problems.append(f"{rows_of} of {table} point at rows of {parent} that are gone")


def _check_rows(db: sqlite3.Connection, manifest: dict[str, Any], report: CheckReport) -> None:
    """The lexical index against the passages; the row counts against the manifest."""
    missing = db.execute(
        "SELECT count(*) FROM passages p WHERE NOT EXISTS "
        "(SELECT 1 FROM passages_fts f WHERE f.rowid = p.id)"
    ).fetchone()[0]
    stray = db.execute(
        "SELECT count(*) FROM passages_fts f WHERE NOT EXISTS "
        "(SELECT 1 FROM passages p WHERE p.id = f.rowid)"
    ).fetchone()[0]
    differ = db.execute(
        "SELECT count(*) FROM passages p JOIN documents d ON d.id = p.document_id "
        "JOIN passages_fts f ON f.rowid = p.id WHERE f.body IS NOT d.title || char(10) || p.text"
    ).fetchone()[0]
    if missing:
        report.problems.append(f"{missing} passages are missing from the lexical index")
    if stray:
        report.problems.append(f"the lexical index holds {stray} passages the database does not")
    if differ:
        report.problems.append(f"the lexical index holds another text for {differ} passages")
    for key, table in (("file_count", "files"), ("document_count", "documents")):
        if _is_int(manifest.get(key)):
            count = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            if count != manifest[key]:
                report.problems.append(
                    f"the database holds {count} {table}, the manifest {manifest[key]}"
                )


def _check_fts(db: sqlite3.Connection, report: CheckReport) -> None:
    """FTS5's own check of its index (an INSERT of a command: it takes the write lock briefly,
    changes nothing and is rolled back)."""
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        report.notes.append(f"the lexical index was not checked by FTS5 ({exc})")
        return
    try:
        db.execute("INSERT INTO passages_fts(passages_fts) VALUES ('integrity-check')")
    except sqlite3.DatabaseError as exc:
        report.problems.append(f"the lexical index (FTS5) is damaged ({exc})")
    finally:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")


@dataclass(frozen=True)
class _Expected:
    size: int | None
    sha256: str | None


def recorded_files(manifest: dict[str, Any]) -> dict[str, _Expected]:
    """Every file the manifest names, with what it records of it."""
    out: dict[str, _Expected] = {}
    checksums = manifest.get("checksums")
    if isinstance(checksums, dict):
        for name, rec in checksums.items():
            if isinstance(rec, dict):
                out[str(name)] = _Expected(rec.get("size"), rec.get("sha256"))
    query = manifest.get("query_model")
    if isinstance(query, dict) and _is_name(query.get("file")) and _is_name(query.get("tokenizer")):
        out[query["file"]] = _Expected(query.get("size"), query.get("sha256") or None)
        out[query["tokenizer"]] = _Expected(None, query.get("tokenizer_sha256") or None)
    embed = manifest.get("embed_model")
    if isinstance(embed, dict) and _is_name(embed.get("file")) and _is_name(embed.get("weights")):
        out[embed["file"]] = _Expected(None, embed.get("xml_sha256"))
        out[embed["weights"]] = _Expected(None, embed.get("sha256"))
    return out


def _check_files(folder: str, manifest: dict[str, Any], report: CheckReport) -> None:
    query = manifest.get("query_model")
    query_files = {query.get("file"), query.get("tokenizer")} if isinstance(query, dict) else set()
    for name, expected in recorded_files(manifest).items():
        if not _is_name(name):
            continue  # reported with the manifest
        path = os.path.join(folder, name)
        try:
            size = os.path.getsize(path)
            if expected.size is not None and size != expected.size:
                report.problems.append(
                    f"{name} holds {size} bytes, {expected.size} were written{_shared(path)}"
                )
            elif expected.sha256 is None:
                report.notes.append(
                    f"{name} has no recorded checksum (made by an older semsearch); "
                    "`semsearch index --rebuild PATH` records one"
                )
            elif sha256_file(path) != expected.sha256:
                report.problems.append(
                    f"{name} differs from the file written (sha256){_shared(path)}"
                )
            elif name.endswith(".onnx"):
                remember_verified(folder, name, expected.sha256)
        except FileNotFoundError:
            if name in query_files:  # queries still work: the next index run puts it back
                report.notes.append(_query_file_gone(path))
            else:
                report.problems.append(f"{name} is missing")
            continue
        except OSError as exc:
            report.problems.append(f"{name} cannot be read ({exc.strerror})")
            continue
        report.files_checked.append(name)
    leftovers = _leftovers(folder, manifest)
    if leftovers:
        shown = ", ".join(leftovers[:3]) + (", ..." if len(leftovers) > 3 else "")
        some = "1 file is" if len(leftovers) == 1 else f"{len(leftovers)} files are"
        report.notes.append(
            f"{some} left over from an interrupted run ({shown}); the next `semsearch index` "
            "removes them"
        )


def _shared(path: str) -> str:
    """Words to add when a damaged file is one other paths hold too (a shared query model)."""
    try:
        shared = os.path.islink(path) or os.stat(path).st_nlink > 1
    except OSError:
        return ""
    if not shared:
        return ""
    return " (a file shared with the model cache: other indexes of that model hold it too)"


def _query_file_gone(path: str) -> str:
    name = os.path.basename(path)
    try:
        target = os.readlink(path) if os.path.islink(path) else None
    except OSError:
        target = None
    if target is not None:
        gone = f"{name} is a link to the model cache, which no longer holds it ({target})"
    else:
        gone = f"{name} (of the ONNX query model) is missing"
    return (
        f"{gone}: queries use the model itself (torch, slower) until the next `semsearch index` "
        "run puts it back"
    )


_OWNED = re.compile(r"^(query-(model|tokenizer)|embed-model-int8-|vectors\.\d+\.)|\.tmp-")


def _leftovers(folder: str, manifest: dict[str, Any]) -> list[str]:
    """Files of the kinds an index writes that its manifest does not name (none are told when
    the manifest cannot say which it names)."""
    generation = manifest.get("generation")
    if not isinstance(generation, int) or manifest_problems(manifest):
        return []
    named = set(recorded_files(manifest))
    named |= {f"{n}.verified" for n in named}
    # the committed generation and the one committed before it (a reader may still hold it)
    previous = manifest.get("previous_generation", generation - 1)
    if not isinstance(previous, int):
        previous = generation - 1
    kept = (f"vectors.{generation:06d}.", f"vectors.{previous:06d}.")
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return sorted(
        n for n in names if _OWNED.search(n) and n not in named and not n.startswith(kept)
    )


def _check_vectors(
    folder: str, manifest: dict[str, Any], passage_ids: npt.NDArray[np.int64], report: CheckReport
) -> None:
    """The vector file named by the manifest against SQLite, id by id."""
    from . import vectors as _vectors
    from .store import vector_file_name

    generation, kind = manifest.get("generation", 0), manifest.get("index_type")
    if not _is_int(generation) or generation == 0 or not isinstance(kind, str):
        if generation == 0:
            report.problems.append("the index has no committed vectors")
        return
    name = vector_file_name(generation)
    if name not in report.files_checked:
        report.files_checked.append(name)
    try:
        index = _vectors.load(kind, os.path.join(folder, name))
    except IndexCorruptError as exc:
        report.problems.append(_without_hint(str(exc)))
        return
    ids = index.ids()
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        report.problems.append(f"{int((counts > 1).sum())} ids have several vectors in {name}")
    no_vector = np.setdiff1d(passage_ids, unique)
    no_passage = np.setdiff1d(unique, passage_ids)
    if len(no_vector):
        report.problems.append(
            f"{len(no_vector)} passages have no vector in {name} (ids {_ids(no_vector)})"
        )
    if len(no_passage):
        report.problems.append(
            f"{name} holds {len(no_passage)} vectors of no passage (ids {_ids(no_passage)})"
        )
    expected = manifest.get("vector_count")
    if _is_int(expected) and index.count != expected:
        report.problems.append(f"{name} holds {index.count} vectors, the manifest {expected}")
    dimension = manifest.get("dimension")
    if _is_int(dimension) and index.dimension != dimension:
        report.problems.append(
            f"the vectors have dimension {index.dimension}, the manifest {dimension}"
        )
    recorded, version = manifest.get("id_checksum"), manifest.get("id_checksum_version", 1)
    if _is_int(recorded) and version in (1, 2) and id_checksum(ids, version) != recorded:
        report.problems.append(f"the ids in {name} do not match the manifest's checksum")
    norms = _stored_norms(index)
    if norms is not None:
        # unit length, or zero (an embedder's empty text); 0.1 leaves room for vectors
        # rebuilt from IVF-PQ codes when an index changes type (0.99-1.015 measured)
        bad = ~np.isfinite(norms) | ((np.abs(norms - 1.0) > 0.1) & (norms > 1e-6))
        if bad.any():
            report.problems.append(f"{int(bad.sum())} vectors in {name} are not of unit length")


def _without_hint(message: str) -> str:
    """A problem without its "run ... --rebuild" tail (the report says it once)."""
    return re.sub(r": (run|rebuild it with) `semsearch index --rebuild[^`]*`$", "", message)


def _ids(ids: npt.NDArray[np.int64]) -> str:
    shown = ", ".join(str(int(i)) for i in ids[:5])
    return shown + (", ..." if len(ids) > 5 else "")


def _stored_norms(index: VectorIndex) -> npt.NDArray[np.float32] | None:
    """The length of every stored vector (None for IVF-PQ, whose index keeps only codes)."""
    import faiss

    raw = getattr(index, "_index", None)
    if raw is None or index.kind in ("ivfpq", "ivfpq-disk"):
        return None
    parts = []
    if index.kind in ("flat", "hnsw"):
        inner = faiss.downcast_index(raw.index)  # the IndexIDMap2's storage
        for lo in range(0, int(inner.ntotal), 65536):
            n = min(65536, int(inner.ntotal) - lo)
            parts.append(np.linalg.norm(inner.reconstruct_n(lo, n), axis=1))
    elif index.kind == "ivf":
        lists, d = raw.invlists, int(raw.d)
        for number in range(int(raw.nlist)):
            size = int(lists.list_size(number))
            if size:
                codes = faiss.rev_swig_ptr(lists.get_codes(number), size * d * 4)
                vecs = np.frombuffer(codes, np.float32).reshape(size, d)
                parts.append(np.linalg.norm(vecs, axis=1))
    if not parts:
        return np.zeros(0, np.float32)
    return np.concatenate(parts).astype(np.float32)
