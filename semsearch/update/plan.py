"""Which files a run must read, embed or drop: a plan from what the walk found and what
the index holds (no model, no writes)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from ..ingest import Document, Problem, RealPaths, SourceFile, Walk, lies_under, read_file
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
    rerooted: list[tuple[int, str]] = field(default_factory=list)  # unchanged rows, new root
    gone: list[FileRow] = field(default_factory=list)  # indexed, no longer there (and twins)
    twins: list[FileRow] = field(default_factory=list)  # second rows of a file still indexed
    unreadable: list[Problem] = field(default_factory=list)


def plan_files(
    found: Walk,
    stored: dict[str, FileRow],
    read: Callable[[str, str], SourceFile] | None = None,
    relocate: Callable[[str, str], str] | None = None,
) -> FilePlan:
    """Compare the files ``found`` with the rows ``stored`` (keyed by stored abspath).

    A file is known by its real path; its content hash decides whether it
    changed. Rows of files the walk could have found but did not are gone; a
    second row of one file (older versions, through a link) is dropped.
    ``relocate(stored path, its row's root)`` says where a stored path lies now (an
    index moved with its documents, see `Store.relocate`). Each file is recorded under the root it
    was found under, or the indexed folder holding that root.
    """
    read = read or read_file  # (looked up when called: tests put failing readers there)
    known, twins, relinked = by_identity(stored, relocate)
    recorded_root = {r.id: r.root for r in stored.values()}
    held_roots = {r.root for r in known.values() if r.root}
    widened: dict[str, str] = {}

    def outer(root: str) -> str:
        """A folder inside one indexed before counts as part of that one (the outermost)."""
        if root not in widened:
            holders = [r for r in held_roots if lies_under(root, r)]
            widened[root] = min(holders, key=len) if holders else root
        return widened[root]

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
        root = outer(found.root_of.get(abspath, stored_as))
        if old is not None and old.sha256 == digest:
            plan.unchanged_ids.append(old.id)
            if old.path != given:
                plan.renamed.append((old.id, given))
            if stored_as == abspath and old.abspath != abspath:  # found as itself now
                plan.relinked.append((old.id, abspath))
            if recorded_root[old.id] != root:
                plan.rerooted.append((old.id, root))
        else:
            plan.changed.append((replace(source, root=root), digest, old.id if old else None))
    plan.gone = [
        r
        for real, r in known.items()
        if real not in seen and (found.could_have_found(real) or found.could_have_found(r.abspath))
    ]
    plan.twins = twins
    plan.gone += twins  # a second row of one file: dropped
    gone_ids = {r.id for r in plan.gone}
    plan.rerooted += [  # roots that moved with the index, of files this run did not look at
        (r.id, r.root)
        for real, r in known.items()
        if real not in seen and r.id not in gone_ids and r.root != recorded_root[r.id]
    ]
    return plan


def by_identity(
    known: dict[str, FileRow],
    relocate: Callable[[str, str], str] | None = None,
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
    carry their new ``abspath`` (``relocate`` first maps a stored path to where it
    lies now, for an index moved with its documents).
    """
    real_path = RealPaths()
    by_real: dict[str, FileRow] = {}
    twins: list[FileRow] = []
    relinked: dict[int, str] = {}
    for stored, row in known.items():
        where = real_path.location(relocate(stored, row.root) if relocate is not None else stored)
        if where != stored:
            row = replace(row, abspath=where)
            relinked[row.id] = where
        if relocate is not None and row.root:
            row = replace(row, root=relocate(row.root, row.root))
        real = real_path.follow(where)
        other = by_real.get(real)
        if other is not None:  # keep the row stored as the file itself, else the newest
            if (other.abspath == real, other.id) > (row.abspath == real, row.id):
                other, row = row, other
            twins.append(other)
            relinked.pop(other.id, None)
        by_real[real] = row
    return by_real, twins, list(relinked.items())


def spellings(path: str) -> list[str]:
    """The absolute paths a file or folder the user names may be stored under, also when it
    no longer exists: as written (made absolute), with its folders' links resolved, and
    what it leads to when it is a link itself."""
    real_path = RealPaths()
    where = real_path.location(path)
    out = [os.path.abspath(path), where, real_path.follow(where)]
    return list(dict.fromkeys(out))


def rows_under(
    rows: Iterable[FileRow], path: str, relocate: Callable[[str, str], str] | None = None
) -> list[FileRow]:
    """The rows of the files at or under ``path`` (a file or folder, on disk or not): those
    whose file lies there, or that were indexed under a root lying there. ``relocate`` says
    where a stored path lies now (see `plan_files`)."""
    here = relocate or (lambda p, root: p)
    targets = spellings(path)
    out = []
    for row in rows:
        places = [row.abspath, here(row.abspath, row.root)]
        if row.root:
            places += [row.root, here(row.root, row.root)]
        if any(lies_under(place, t) for place in places for t in targets):
            out.append(row)
    return out


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
