"""Which files a run must read, embed or drop: a plan from what the walk found and what
the index holds (no model, no writes)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from ..ingest import Document, Problem, RealPaths, SourceFile, Walk, read_file
from ..ingest.passages import Passage
from ..storage.store import FileRow


@dataclass
class FilePlan:
    """What the files under the paths given have become since the index last saw them."""

    # new or edited files: their bytes, sha256, and their row when indexed before
    changed: list[tuple[SourceFile, str, int | None]] = field(default_factory=list)
    unchanged_ids: list[int] = field(default_factory=list)
    renamed: list[tuple[int, str]] = field(default_factory=list)  # same file, shown otherwise
    relinked: list[tuple[int, str]] = field(default_factory=list)  # rows whose abspath changes
    gone: list[FileRow] = field(default_factory=list)  # indexed, no longer there
    unreadable: list[Problem] = field(default_factory=list)


def plan_files(
    found: Walk,
    stored: dict[str, FileRow],
    read: Callable[[str, str], SourceFile] | None = None,
) -> FilePlan:
    """Compare the files ``found`` with the rows ``stored`` (keyed by stored abspath).

    A file is known by its real path; its content hash decides whether it
    changed. Rows of files the walk could have found but did not are gone; a
    second row of one file (older versions, through a link) is dropped.
    """
    read = read or read_file  # (looked up when called: tests put failing readers there)
    known, twins, relinked = by_identity(stored)
    plan = FilePlan(relinked=relinked)
    seen: set[str] = set()
    for given, abspath in found.files:
        seen.add(abspath)
        stored_as = found.links.get(abspath, abspath)  # a link's place, else the real path
        try:
            source = read(given, stored_as)
        except OSError as exc:
            plan.unreadable.append(Problem(given, f"cannot be read ({exc.strerror}); skipped"))
            continue
        digest = hashlib.sha256(source.data).hexdigest()
        old = known.get(abspath)
        if old is not None and old.sha256 == digest:
            plan.unchanged_ids.append(old.id)
            if old.path != given:
                plan.renamed.append((old.id, given))
            if stored_as == abspath and old.abspath != abspath:  # found as itself now
                plan.relinked.append((old.id, abspath))
        else:
            plan.changed.append((source, digest, old.id if old else None))
    plan.gone = [
        r
        for real, r in known.items()
        if real not in seen and (found.could_have_found(real) or found.could_have_found(r.abspath))
    ]
    plan.gone += twins  # a second row of one file: dropped
    return plan


def by_identity(
    known: dict[str, FileRow],
) -> tuple[dict[str, FileRow], list[FileRow], list[tuple[int, str]]]:
    """The indexed files by identity (real path), the rows that repeat another's file,
    and the rows whose stored ``abspath`` changes.

    A row stores the real path of its file, or for a file indexed through a link
    to it, where that link lies (its folders resolved); rows of older versions
    may hold other spellings (``link-to-docs/a.txt`` for ``docs/a.txt``), and a
    folder may since have become a link to where it moved. So every row is
    resolved again, each folder once: its stored path is brought to that form,
    and it is keyed by the real path it leads to. Of several rows of one file
    (older versions indexed ``docs/`` and ``link-to-docs/`` twice over), the
    one stored as the file itself is kept, else the newest. The returned rows
    carry their new ``abspath``.
    """
    real_path = RealPaths()
    by_real: dict[str, FileRow] = {}
    twins: list[FileRow] = []
    relinked: dict[int, str] = {}
    for stored, row in known.items():
        where = real_path.location(stored)
        if where != stored:
            row = replace(row, abspath=where)
            relinked[row.id] = where
        real = real_path.follow(where)
        other = by_real.get(real)
        if other is not None:  # keep the row stored as the file itself, else the newest
            if (other.abspath == real, other.id) > (row.abspath == real, row.id):
                other, row = row, other
            twins.append(other)
            relinked.pop(other.id, None)
        by_real[real] = row
    return by_real, twins, list(relinked.items())


@dataclass
class Planned:
    """A file to (re)index, parsed and cut into passages."""

    source: SourceFile
    sha256: str
    docs: list[tuple[Document, list[Passage]]]
    old_id: int | None  # its row in the index when it was indexed before


def embed_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def signature(passages: Sequence[Passage]) -> str:
    """What a document's passages embed, as one hash: equal means unchanged."""
    return hashlib.sha256(
        "\n".join(embed_hash(x.embed_text) for x in passages).encode()
    ).hexdigest()
