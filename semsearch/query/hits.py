"""What a search returns: `Hit`, and `Source` for the other places of a collapsed passage."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # (storage imports query.lexical: no cycle at run time)
    from ..storage.store import PassageRow

Scores = dict[str, float | None]
"""A hit's score by retriever: ``dense`` (cosine), ``lexical`` (BM25) and ``fused``."""


def scores_of(
    dense: float | None = None, lexical: float | None = None, fused: float | None = None
) -> Scores:
    """`Hit.scores`: plain floats rounded as `Hit.score` is, None where a mode computes none."""
    values = {"dense": dense, "lexical": lexical, "fused": fused}
    return {k: None if v is None else round(float(v), 6) for k, v in values.items()}


@dataclass(frozen=True)
class Source:
    """Another place a collapsed (near-identical) passage appears."""

    title: str
    date: str | None
    path: str
    paragraph: int
    passage_id: int
    abspath: str = ""  # the file's absolute path (see `Hit.abspath`)
    page: int | None = None  # see `Hit.page`
    index: str | None = None  # see `Hit.index`


@dataclass(frozen=True)
class Hit:
    """One search result: a passage, its score and where it comes from."""

    rank: int  # 1 = best
    score: float  # dense: cosine -1..1; lexical: BM25 (>0); hybrid: fused 0..1 (see fusion)
    text: str  # the passage as shown to the reader
    title: str
    date: str | None  # YYYY-MM-DD, when the article has one
    path: str  # the file, as given at index time
    paragraph: int  # 1-based paragraph number in the article, as a reader counts
    passage_id: int
    piece: int = 1  # 1-based piece of a paragraph that was split (1 of 1 when not)
    pieces: int = 1
    start: int = 0  # character span in the article
    end: int = 0
    key: str = ""  # the record id inside a JSON Lines file
    fields: dict[str, Any] = field(default_factory=dict)
    highlights: list[tuple[int, int]] = field(default_factory=list)  # spans in ``text``
    also_in: list[Source] = field(default_factory=list)  # near-identical passages elsewhere
    document_id: int = 0
    abspath: str = ""  # the file's absolute path (its real path at index time)
    line: int = 0  # 1-based line in the file where the passage starts; 0 when not known
    column: int = 0  # 1-based column there (UTF-8 bytes, as ripgrep counts); 0 when not known
    # the 1-based page of a PDF (the chapter of an EPUB) where the passage starts; None for
    # formats without pages
    page: int | None = None
    # the score of each retriever: {"dense": cosine, "lexical": BM25, "fused": hybrid score},
    # None where the mode computes none (dense mode has no BM25, lexical mode no cosine)
    scores: Scores = field(default_factory=dict)
    # the folder of the index the passage is in, when several were searched as one
    # (`Indexes`); None for a search of one index
    index: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)



class Results(list[Hit]):
    """What a search returns: its hits, best first (a list), and ``corrected_query``, the
    query as searched for when some of its words were corrected (see `query.spelling`),
    None when none was."""

    def __init__(self, hits: Iterable[Hit] = (), corrected_query: str | None = None) -> None:
        super().__init__(hits)
        self.corrected_query = corrected_query

    def __repr__(self) -> str:
        return f"Results({list.__repr__(self)}, corrected_query={self.corrected_query!r})"


def make_hit(rank: int, score: float, row: PassageRow, scores: Scores | None = None) -> Hit:
    return Hit(
        rank=rank,
        score=round(float(score), 6),  # a plain float, whatever the ranking held (numpy)
        scores=dict(scores) if scores is not None else scores_of(),  # always the three keys
        text=row.text,
        title=row.title,
        date=row.date,
        path=row.path,
        paragraph=row.paragraph + 1,
        passage_id=row.id,
        piece=row.piece + 1,
        pieces=row.pieces,
        start=row.start,
        end=row.end,
        key=row.key,
        fields=row.fields,
        document_id=row.document_id,
        abspath=row.abspath,
        line=row.line,
        column=row.column,
        page=row.page or None,
    )


def display_path(abspath: str, path: str = "", cwd: str | None = None) -> str:
    """How to show a file to someone in ``cwd`` (default: the current directory).

    Relative to ``cwd`` when that is shorter than the absolute path, else the
    absolute path: either opens from there, wherever the index was built from.
    ``path`` (as given at index time) stands in when no absolute path is known.
    """
    if not abspath:
        return path
    try:
        here = cwd if cwd is not None else os.getcwd()
        rel = os.path.relpath(abspath, here)
    except (OSError, ValueError):  # the current directory is gone; another drive
        return abspath
    return rel if len(rel) < len(abspath) else abspath



def with_highlights(hit: Hit, spans: list[tuple[int, int]]) -> Hit:
    return replace(hit, highlights=spans)


def split_address(target: str) -> tuple[str, str | None, int | None, str | None]:
    """A passage as hits name it, PATH, PATH#KEY-OR-PARAGRAPH or PATH#KEY#PARAGRAPH:
    (path, key, paragraph, part).

    A single ``#X`` is left to `Index.passages_of` as ``part`` (a record key first, else
    a paragraph), which knows whether the file holds records."""
    if "#" not in target or os.path.exists(target):  # a file whose name holds a #
        return target, None, None, None
    head, _, last = target.rpartition("#")
    if last.isdigit() and "#" in head and not os.path.exists(head):
        file, _, key = head.rpartition("#")
        return file, key, int(last), None
    return head, None, None, last
