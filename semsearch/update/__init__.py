"""Bringing an index up to date with its folders: `plan` (pure: which files are new,
changed, unchanged, moved or gone), `report` (what a run did, in a user's words).
`Index.add` applies a plan in one atomic commit (see `storage`)."""

from __future__ import annotations

from .plan import FilePlan, Planned, embed_hash, plan_files, rows_under, signature, spellings
from .report import AddReport, count_changes, nothing_readable

__all__ = [
    "AddReport",
    "FilePlan",
    "Planned",
    "count_changes",
    "embed_hash",
    "nothing_readable",
    "plan_files",
    "rows_under",
    "signature",
    "spellings",
]
