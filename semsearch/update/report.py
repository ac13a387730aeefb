"""What a run did, in the words a user reads: `AddReport`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..ingest import Problem, Walk
from ..storage.store import FileRow
from .plan import Planned, signature


@dataclass
class AddReport:
    """What one `Index.add` run did."""

    documents_added: int = 0
    documents_updated: int = 0
    documents_removed: int = 0
    documents_unchanged: int = 0
    passages_added: int = 0
    passages_removed: int = 0
    passages_unchanged: int = 0
    passages_embedded: int = 0  # run through the model (the rest reused their old vectors)
    paragraphs_split: int = 0  # paragraphs too long for the model, split into pieces
    files_skipped: int = 0  # files of a format semsearch does not read
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0
    # the files (absolute paths, as stored) new to the index, re-read because their
    # content changed, and no longer indexed; and how many were found unchanged
    files_added: list[str] = field(default_factory=list)
    files_updated: list[str] = field(default_factory=list)
    files_removed: list[str] = field(default_factory=list)
    files_unchanged: int = 0
    # the lexical tokenizer this run chose (a new index, or another one asked for; "" when
    # it kept the index's), why, and the one it replaced (the lexical index rebuilt from the
    # stored passages, nothing re-embedded; "" when none was)
    lexical_tokenizer: str = ""
    lexical_reason: str = ""
    lexical_replaced: str = ""
    embedded_by: str = ""  # where the parsing and embedding ran ("this process", "Ray ...")

    @property
    def changed(self) -> bool:
        return bool(
            self.documents_added
            or self.documents_updated
            or self.documents_removed
            or self.files_added
            or self.files_updated
            or self.files_removed
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["problems"] = [str(p) for p in self.problems]
        return out


def count_changes(
    report: AddReport,
    old_docs: dict[int, dict[str, str]],
    planned: Sequence[Planned],
    unchanged_ids: Sequence[int],
    gone: Sequence[FileRow],
) -> None:
    """Count documents added, updated, removed and unchanged, and paragraphs split, into
    ``report``; ``old_docs`` is each file row's {document key: signature} before the run."""
    report.documents_unchanged = sum(len(old_docs.get(i, {})) for i in unchanged_ids)
    for r in gone:
        report.documents_removed += len(old_docs.get(r.id, {}))
    for p in planned:
        before = old_docs.get(p.old_id, {}) if p.old_id is not None else {}
        after = {doc.key: signature(ps) for doc, ps in p.docs}
        for key, sig in after.items():
            if key not in before:
                report.documents_added += 1
            elif before[key] == sig:
                report.documents_unchanged += 1
            else:
                report.documents_updated += 1
        report.documents_removed += len(set(before) - set(after))
        report.paragraphs_split += sum(
            1 for _, ps in p.docs for x in ps if x.piece == 0 and x.pieces > 1
        )


def nothing_readable(
    paths: Sequence[str | os.PathLike[str]],
    found: Walk,
    empty: int,
    unreadable: list[Problem],
    passed_over: Sequence[Problem] = (),
) -> str:
    """The one line for a run that found no article to index, with why: files without
    text, files that could not be read or were skipped by their format (``passed_over``:
    a scanned or encrypted PDF), folders that could not be listed, other formats."""
    where = ", ".join(os.fspath(p) for p in paths)
    why = []
    if empty:
        why.append(f"{empty} article files without text")
    if unreadable:
        why.append(f"{len(unreadable)} files could not be read, e.g. {unreadable[0]}")
    if passed_over:
        why.append(f"{len(passed_over)} files skipped, e.g. {passed_over[0]}")
    if found.unreadable:
        why.append(f"{len(found.unreadable)} folders could not be read")
    if found.skipped:
        why.append(f"{found.skipped} files of other formats skipped")
    detail = f" ({'; '.join(why)})" if why else ""
    from ..ingest.formats import FORMATS

    names = sorted({fmt.suffixes[0] for fmt in FORMATS.values()}, key=_suffix_order)
    return (
        f"no readable articles in {where}{detail}: semsearch reads {', '.join(names[:-1])} and "
        f"{names[-1]} files; the index was left unchanged"
    )


def _suffix_order(suffix: str) -> tuple[int, str]:
    order = (".txt", ".md", ".html", ".jsonl", ".pdf", ".docx", ".epub")
    return (order.index(suffix), "") if suffix in order else (len(order), suffix)
