"""Several indexes searched as one: their stores and vectors behind `Searcher`'s interfaces.

`Searcher` ranks, fuses, groups and highlights as it does for one index; only
what it reads changes. Passage ids of different indexes overlap, so during a
search passage ``p`` of the ``n``-th of ``m`` indexes is ``p * m + n`` (its
document likewise), and `localised` turns the hits back into each index's own
ids, naming the index folder of each (`Hit.index`).

- Dense: cosines compare across indexes as they are (one model, unit vectors):
  each index's top ``k`` merged by score is the top ``k`` of all.
- Lexical: BM25 depends on collection statistics (how many passages, their
  average length, how many hold each term). `ManyPassages` sums each index's
  `lexical.Stats` for the query and scores every index's passages with the sum,
  so a passage scores what it would in one index holding every passage.
- Hybrid fuses those two as for one index (`Searcher._retrieve`), its BM25 bound
  from the summed statistics too.

Over machines the same split would hold: each shard answers its statistics for
the query, then its top ``k`` scored with the sums; a coordinator merges (see
README, "Several indexes, one answer"). Here every shard is a folder on this machine.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np

from ..storage.store import PassageRow, Store
from ..storage.vectors import FloatArray, IdArray, VectorIndex
from . import lexical, spelling
from .hits import Hit, Results, Source


def _split(ids: Iterable[int], m: int) -> dict[int, list[int]]:
    """Joined ids by index: index number -> its own ids, in the order given."""
    out: dict[int, list[int]] = {}
    for joined in ids:
        own, n = divmod(int(joined), m)
        out.setdefault(n, []).append(own)
    return out


def _own_ids(allowed: IdArray | None, n: int, m: int) -> IdArray | None:
    """Of joined ids ``allowed``, those of index ``n``, as its own (None: all of them)."""
    if allowed is None:
        return None
    mine: IdArray = (allowed[allowed % m == n] // m).astype(np.int64)
    return mine


class ManyPassages:
    """The stores of several indexes as one `searcher.Passages` (ids joined: see module doc)."""

    def __init__(self, stores: Sequence[Store], spellers: Sequence[spelling.Speller]) -> None:
        self.stores = list(stores)
        self.spellers = list(spellers)
        self._m = len(self.stores)
        self._stats: dict[str, lexical.Stats] = {}  # by query text, for this search

    def join(self, own: int, n: int) -> int:
        return own * self._m + n

    def filter_ids(
        self, *, since: str | None = None, until: str | None = None, path: str | None = None
    ) -> IdArray:
        parts = [
            s.filter_ids(since=since, until=until, path=path) * self._m + n
            for n, s in enumerate(self.stores)
        ]
        return np.concatenate(parts).astype(np.int64)

    def passages(self, ids: Iterable[int]) -> dict[int, PassageRow]:
        out: dict[int, PassageRow] = {}
        for n, own in _split(ids, self._m).items():
            for row in self.stores[n].passages(own).values():
                joined = replace(
                    row, id=self.join(row.id, n), document_id=self.join(row.document_id, n)
                )
                out[joined.id] = joined
        return out

    def stats(self, query: str) -> lexical.Stats:
        """The BM25 statistics of ``query`` summed over every index (read once a search)."""
        found = self._stats.get(query)
        if found is None:
            each = [s.bm25_stats(query) for s in self.stores]
            found = each[0]
            for more in each[1:]:
                found = found + more
            self._stats[query] = found
        return found

    def bm25(self, query: str, k: int, allowed: IdArray | None = None) -> list[tuple[int, float]]:
        stats = self.stats(query)
        merged: list[tuple[int, float]] = []
        for n, store in enumerate(self.stores):
            own = _own_ids(allowed, n, self._m)
            if own is not None and len(own) == 0:
                continue
            merged += [(self.join(i, n), s) for i, s in store.bm25(query, k, own, stats)]
        merged.sort(key=lambda r: -r[1])  # stable: ties keep the order of the indexes
        return merged[:k]

    def bm25_of(self, query: str, ids: Iterable[int]) -> dict[int, float]:
        stats = self.stats(query)
        out: dict[int, float] = {}
        for n, own in _split(ids, self._m).items():
            got = self.stores[n].bm25_of(query, own, stats)
            out.update((self.join(i, n), s) for i, s in got.items())
        return out

    def bm25_bound(self, query: str) -> float:
        return self.stores[0].bm25_bound(query, self.stats(query))

    def spelling(self, query: str, speller: spelling.Speller | None = None) -> spelling.Spelling:
        """`spelling.combine` of each index's correction (each with its own vocabulary)."""
        each = [s.spelling(query, sp) for s, sp in zip(self.stores, self.spellers, strict=True)]
        return spelling.combine(query, each)


class ManyVectors:
    """The vector indexes of several indexes as one `searcher.Vectors` (ids joined)."""

    def __init__(self, vectors: Sequence[VectorIndex]) -> None:
        self.vectors = list(vectors)
        self._m = len(self.vectors)

    @property
    def kind(self) -> str:
        """flat when every index is exact; ivfpq when any scores from codes (the searcher
        then reads cosines from stored vectors); else the first approximate kind."""
        kinds = [v.kind for v in self.vectors]
        if "ivfpq" in kinds:
            return "ivfpq"
        return next((kind for kind in kinds if kind != "flat"), "flat")

    def search(
        self, queries: FloatArray, k: int, allowed: IdArray | None = None
    ) -> tuple[FloatArray, IdArray]:
        """Each index's top ``k`` for one query row, merged by score: the top ``k`` of all."""
        if len(queries) != 1:
            raise ValueError("several indexes are searched one query at a time")
        scores: list[FloatArray] = []
        ids: list[IdArray] = []
        for n, v in enumerate(self.vectors):
            own = _own_ids(allowed, n, self._m)
            if own is not None and len(own) == 0:
                continue
            s, i = v.search(queries, k, own)
            keep = i[0] >= 0
            scores.append(s[0][keep])
            ids.append(i[0][keep] * self._m + n)
        if not scores:
            return np.zeros((1, 0), np.float32), np.zeros((1, 0), np.int64)
        all_scores, all_ids = np.concatenate(scores), np.concatenate(ids)
        order = np.argsort(-all_scores, kind="stable")[:k]  # ties: the order of the indexes
        return all_scores[order][None, :], all_ids[order][None, :]

    def reconstruct(self, ids: IdArray) -> FloatArray:
        joined = np.asarray(ids, dtype=np.int64)
        out = np.empty((len(joined), self.vectors[0].dimension), dtype=np.float32)
        which, own = joined % self._m, joined // self._m
        for n, v in enumerate(self.vectors):
            mine = which == n
            if mine.any():
                out[mine] = v.reconstruct(own[mine])
        return out


def localised(results: Results, folders: Sequence[str]) -> Results:
    """``results`` of joined ids as each index's own passage and document ids, each hit (and
    each place it is also in) naming its index folder."""
    m = len(folders)

    def source(src: Source) -> Source:
        own, n = divmod(src.passage_id, m)
        return replace(src, passage_id=own, index=folders[n])

    def hit(h: Hit) -> Hit:
        own, n = divmod(h.passage_id, m)
        return replace(
            h,
            passage_id=own,
            document_id=h.document_id // m,
            index=folders[n],
            also_in=[source(s) for s in h.also_in],
        )

    return Results([hit(h) for h in results], corrected_query=results.corrected_query)
