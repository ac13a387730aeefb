"""Every error semsearch raises on purpose.

The tree::

    SemsearchError
    ├── UsageError            a bad argument: empty query, k < 1, ...
    │   └── PassageNotFoundError  no passage has the given id
    ├── SourceError           a path to index does not exist or holds no articles
    ├── IndexNotFoundError    no index at the given folder yet
    ├── IndexCorruptError     index files missing, truncated or out of step
    ├── IndexAccessError      the index folder cannot be created, read or written
    │   └── IndexClosedError  the `Index` was closed: open it again
    ├── IndexWriteError       writing the index failed (disk full, I/O error); it is as it was
    ├── SchemaVersionError    the index was written by a newer semsearch
    ├── ModelMismatchError    the index was built with another model
    │   └── IndexesMismatchError  indexes searched as one were built differently (also a UsageError)
    ├── ModelLoadError        the embedding model cannot be found or loaded
    ├── IndexLockedError      another process is writing to the index
    ├── ServeError            the server cannot listen on the given host and port
    └── ClusterError          the Ray cluster cannot be reached, or its workers failed

The library never prints or exits: it raises these. The command line turns
each one into a single line on stderr and a non-zero exit code. Every message
says what to do next.
"""

from __future__ import annotations


class SemsearchError(Exception):
    """Base class of every error semsearch raises on purpose."""


class UsageError(SemsearchError, ValueError):
    """An argument has a value semsearch cannot use."""


class PassageNotFoundError(UsageError):
    """The index holds no passage with the given id (an HTTP 404; the command line exits 2)."""


class SourceError(SemsearchError):
    """A path given to index does not exist or holds no readable article."""


class IndexNotFoundError(SemsearchError):
    """There is no index in the given folder yet."""


class IndexCorruptError(SemsearchError):
    """The index files are missing, truncated, corrupt or disagree with each other."""


class IndexAccessError(SemsearchError):
    """The index folder or its files cannot be created, read or written (permissions, a file
    in the way)."""


class IndexClosedError(IndexAccessError):
    """The `Index` has been closed with `close()`: open it again with `Index.open`."""


class IndexWriteError(SemsearchError):
    """Writing the index failed (no space left, a disk error); the index is as it was before."""


class SchemaVersionError(SemsearchError):
    """The index was written by a newer version of semsearch."""


class ModelMismatchError(SemsearchError):
    """The index was built with a different embedding model than the one asked for."""


class BackendMismatchError(ModelMismatchError):
    """The index was embedded with another backend or precision than the one asked for."""


class IndexesMismatchError(ModelMismatchError, UsageError):
    """Indexes searched as one were built with different models, dimensions or settings."""


class ModelLoadError(SemsearchError):
    """The embedding model cannot be found or loaded."""


class IndexLockedError(SemsearchError):
    """Another process holds the index's write lock."""


class ServeError(SemsearchError):
    """The server cannot listen on the given host and port (in use, not allowed)."""


class ClusterError(SemsearchError):
    """The Ray cluster of ``--ray`` cannot be reached or started, or its workers failed
    past Ray's retries; the index is as it was."""


__all__ = [
    "BackendMismatchError",
    "ClusterError",
    "IndexAccessError",
    "IndexClosedError",
    "IndexCorruptError",
    "IndexLockedError",
    "IndexNotFoundError",
    "IndexWriteError",
    "IndexesMismatchError",
    "ModelLoadError",
    "ModelMismatchError",
    "PassageNotFoundError",
    "SchemaVersionError",
    "SemsearchError",
    "ServeError",
    "SourceError",
    "UsageError",
]
