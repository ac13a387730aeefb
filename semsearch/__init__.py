"""semsearch: local-first semantic search for folders of articles.

>>> import semsearch
>>> index = semsearch.Index.open(".semsearch", create=True)  # doctest: +SKIP
>>> index.add(["seeds/"])                                      # doctest: +SKIP
>>> for hit in index.search("who attends the parade", k=5):    # doctest: +SKIP
...     print(hit.score, hit.title, hit.date, hit.text)

Importing the package is cheap: numpy, faiss, torch and sentence-transformers
are imported only when an index is opened or a model is loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    BackendMismatchError,
    IndexAccessError,
    IndexClosedError,
    IndexCorruptError,
    IndexesMismatchError,
    IndexLockedError,
    IndexNotFoundError,
    IndexWriteError,
    ModelLoadError,
    ModelMismatchError,
    PassageNotFoundError,
    SchemaVersionError,
    SemsearchError,
    ServeError,
    SourceError,
    UsageError,
)

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .index import Index, IndexInfo
    from .many import Indexes
    from .query import Hit, Results
    from .storage.integrity import CheckReport
    from .update import AddReport

_LAZY = {
    "Index": "index",
    "Indexes": "many",
    "AddReport": "update.report",
    "IndexInfo": "index",
    "CheckReport": "storage.integrity",
    "Hit": "query.hits",
    "Results": "query.hits",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'semsearch' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "AddReport",
    "BackendMismatchError",
    "CheckReport",
    "Hit",
    "Index",
    "IndexAccessError",
    "IndexClosedError",
    "IndexCorruptError",
    "IndexInfo",
    "IndexLockedError",
    "IndexNotFoundError",
    "IndexWriteError",
    "Indexes",
    "IndexesMismatchError",
    "ModelLoadError",
    "ModelMismatchError",
    "PassageNotFoundError",
    "Results",
    "SchemaVersionError",
    "SemsearchError",
    "ServeError",
    "SourceError",
    "UsageError",
    "__version__",
]
