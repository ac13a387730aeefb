"""`Indexes`: several indexes built with the same model, searched as one.

>>> with Indexes.open(["news/.semsearch", "notes/.semsearch"]) as both:  # doctest: +SKIP
...     both.search("who attends the parade", k=5)

The answer is the one a single index holding every folder would give (see
`query.many` for how the rankings and BM25 statistics are made one); each hit
names its index in `Hit.index`, its ``passage_id`` being that index's own.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any

from .embed import Embedder
from .embed.prompts import Prompts
from .errors import IndexesMismatchError, UsageError
from .index import Index, Snapshot, StatusCallback
from .query import check_query
from .query.hits import Results
from .query.many import ManyPassages, ManyVectors, localised
from .query.searcher import Searcher

# What must agree between indexes searched as one: (manifest key, what it is, its default)
_ALIKE = (
    ("model", "model", None),
    ("model_fingerprint", "model files", None),
    ("dimension", "embedding dimension", None),
    ("normalized", "normalisation of vectors", True),
    ("metric", "similarity metric", "inner_product"),
    ("backend", "embedding backend", "torch"),
    ("precision", "embedding precision", "fp32"),
    ("query_prefix", "query prefix", ""),
    ("passage_prefix", "passage prefix", ""),
)


class Indexes:
    """Several indexes in folders, searched as one (see the module's doc)."""

    def __init__(self, indexes: Sequence[Index]) -> None:
        self._indexes = list(indexes)
        self.folders = [i.folder for i in self._indexes]

    @classmethod
    def open(
        cls,
        paths: Sequence[str | os.PathLike[str]],
        *,
        model: str | None = None,
        embedder: Embedder | None = None,
        status: StatusCallback | None = None,
    ) -> Indexes:
        """Open the indexes in ``paths`` (each must exist: see `Index.open`), refusing ones
        that were not built alike (`IndexesMismatchError`): their scores would not compare."""
        folders = [os.fspath(p) for p in paths]
        if not folders:
            raise UsageError("give at least one index folder to search")
        seen: dict[str, str] = {}
        for folder in folders:
            real = os.path.realpath(folder)
            if real in seen:
                raise UsageError(
                    f"the index in {folder} is given twice (as {seen[real]} too): its passages "
                    "would count twice; give each index once"
                )
            seen[real] = folder
        opened: list[Index] = []
        try:
            for folder in folders:
                opened.append(Index.open(folder, model=model, embedder=embedder, status=status))
            both = cls(opened)
            both._check([i._store_or_raise().manifest() for i in opened])
        except BaseException:
            for index in opened:
                index.close()
            raise
        return both

    def close(self) -> None:
        for index in self._indexes:
            index.close()

    def __enter__(self) -> Indexes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def model(self) -> str:
        """The model every index was built with."""
        return self._indexes[0].model

    def search(self, query: str, k: int = 5, **options: Any) -> Results:
        """`Index.search` over every index at once (same options, same `Results`), each hit
        naming its index folder in ``hit.index``."""
        min_score = options.pop("min_score", None)
        q = check_query(query, k, min_score, **options)
        with contextlib.ExitStack() as stack:
            snaps: list[Snapshot] = [stack.enter_context(i.snapshot()) for i in self._indexes]
            self._check([s.manifest for s in snaps])  # each may have been rebuilt since opening
            stores = [s._store for s in snaps]
            if q.mode != "dense":
                self._check_lexical([s.lexical_tokenizer() for s in stores])
            embedder = None if q.mode == "lexical" else snaps[0].embedder
            searcher = Searcher(
                ManyPassages(stores, [i._speller for i in self._indexes]),
                ManyVectors([s.vector_index for s in snaps]),
                embedder,
                prompts=Prompts.from_manifest(snaps[0].manifest),
            )
            return localised(searcher.search(q), self.folders)

    # ------------------------------------------------------------------ checks

    def _check(self, manifests: Sequence[dict[str, Any]]) -> None:
        """Refuse indexes whose vectors or query embeddings would not compare."""
        first = manifests[0]
        for folder, manifest in zip(self.folders[1:], manifests[1:], strict=True):
            for key, what, default in _ALIKE:
                a, b = first.get(key, default), manifest.get(key, default)
                if a != b:
                    raise IndexesMismatchError(
                        f"the index in {self.folders[0]} was built with {what} {a}, the one "
                        f"in {folder} with {b}, and their scores do not compare: search them "
                        "one at a time, or rebuild one like the other with "
                        f"`semsearch index --rebuild --model {first.get('model')} PATH`"
                    )

    def _check_lexical(self, tokenizers: Sequence[str]) -> None:
        for folder, tokenizer in zip(self.folders[1:], tokenizers[1:], strict=True):
            if tokenizer != tokenizers[0]:
                raise IndexesMismatchError(
                    f"the index in {self.folders[0]} reads words with the {tokenizers[0]} "
                    f"tokenizer, the one in {folder} with {tokenizer}, so their BM25 terms "
                    "differ: use --mode dense, or rebuild one with `semsearch index --lexical "
                    f"{tokenizers[0]} PATH`"
                )


__all__ = ["Indexes"]
