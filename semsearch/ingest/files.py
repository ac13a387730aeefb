"""Finding the article files under the paths given, each known by its real path."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SourceError
from .documents import Problem, SourceFile
from .formats import load_plugins, supported_suffixes


class RealPaths:
    """``os.path.realpath`` (every symbolic link resolved), each folder resolved once.

    A file's real path is its identity: the same file reached through a
    linked folder, or through a link to it, is one file, indexed once.
    """

    def __init__(self) -> None:
        self._folders: dict[str, str] = {}

    def location(self, path: str) -> str:
        """``path`` with its folders resolved but not its last part: where a link to a
        file lies, or the file's real path when it is no link."""
        folder, name = os.path.split(os.path.abspath(path))
        real = self._folders.get(folder)
        if real is None:
            real = self._folders[folder] = os.path.realpath(folder)
        return os.path.join(real, name) if name else real

    def __call__(self, path: str) -> str:
        return self.follow(self.location(path))

    @staticmethod
    def follow(location: str) -> str:
        """The real path of what lies at ``location`` (a path whose folders are real)."""
        return os.path.realpath(location) if os.path.islink(location) else location


@dataclass
class Walk:
    """What walking the given paths found."""

    files: list[tuple[str, str]]  # (path as given, real path: the file's identity)
    roots: list[str]  # real paths of the folders walked: indexed files gone from them are removed
    skipped: int  # files of a format semsearch does not read
    problems: list[Problem] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # real folders that could not be listed
    # real path -> where the link lies, for files found only through a link to the file
    # itself: indexed under the link's place, so deleting the link removes the article
    links: dict[str, str] = field(default_factory=dict)
    # real path -> the root it was found under: the real path of the folder given (the
    # outermost, when found under several), or for a file given itself, where it lies
    root_of: dict[str, str] = field(default_factory=dict)

    def could_have_found(self, abspath: str) -> bool:
        """True if the real path ``abspath`` lies where this walk looked, so its absence
        means it is gone."""
        for root in self.roots:
            if not lies_under(abspath, root):
                continue
            rel = os.path.relpath(abspath, root)
            if any(part.startswith(".") for part in rel.split(os.sep)):
                return False  # hidden: the walk skips it, it may still exist
            return not any(lies_under(abspath, bad) for bad in self.unreadable)
        return False


def lies_under(path: str, root: str) -> bool:
    """True if ``path`` is ``root`` or inside it (both absolute, compared as strings)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _valid_name(path: str) -> bool:
    """False for a file name that is not valid UTF-8 (it cannot be stored or shown)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def walk(paths: Sequence[str | os.PathLike[str]], exclude: Iterable[str] = ()) -> Walk:
    """Find the article files under ``paths`` (files or folders).

    Hidden folders and files (name starting with ``.``) and the folders in
    ``exclude`` (the index itself) are skipped; a file reached twice (through
    a link) is read once, and is known by its real path whatever the
    spelling. A folder that cannot be listed, or a file name that is not
    UTF-8, becomes a `Problem`. Raises `SourceError` for a path that does not
    exist.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    excluded = {os.path.realpath(p) for p in exclude}
    # a format plugin that cannot be loaded is told once a process, on its first walk
    out = Walk(files=[], roots=[], skipped=0, problems=load_plugins())
    readable = supported_suffixes()
    seen: set[str] = set()

    real_path = RealPaths()
    position: dict[str, int] = {}  # real path -> its entry in out.files

    def add_file(shown: str, root: str | None) -> None:
        real = real_path(shown)
        where = real_path.location(shown)
        if real in seen:
            if real in out.links and where == real:  # the file itself, after a link to it
                out.files[position[real]] = (shown, real)
                del out.links[real]
            held = out.root_of.get(real)
            if root is not None and held is not None and lies_under(held, root):
                out.root_of[real] = root  # the outer of two roots it lies under
            return
        seen.add(real)
        if not _valid_name(shown):
            safe = shown.encode("utf-8", "replace").decode("utf-8")
            out.problems.append(Problem(safe, "file name is not valid UTF-8; skipped"))
        elif Path(shown).suffix.lower() in readable:
            position[real] = len(out.files)
            out.files.append((shown, real))
            if where != real:
                out.links[real] = where
            out.root_of[real] = root if root is not None else where
        else:
            out.skipped += 1

    def unreadable(err: OSError) -> None:
        where = err.filename if isinstance(err.filename, str) else str(err.filename)
        out.unreadable.append(real_path(where))
        out.problems.append(
            Problem(where, f"folder cannot be read ({err.strerror}); its indexed articles kept")
        )

    for raw in paths:
        given = os.fspath(raw)
        if not os.path.exists(given):
            raise SourceError(f"{given}: no such file or folder")
        if os.path.isfile(given):
            add_file(given, None)
            continue
        root = os.path.realpath(given)
        if root in excluded:
            continue
        out.roots.append(root)
        for dirpath, dirnames, filenames in os.walk(given, onerror=unreadable):
            dirnames[:] = sorted(
                d
                for d in dirnames
                if not d.startswith(".")
                and os.path.realpath(os.path.join(dirpath, d)) not in excluded
            )
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                if not name.startswith(".") and os.path.isfile(full):
                    add_file(full, root)
    return out


def read_file(path: str, abspath: str) -> SourceFile:
    """Read a file's bytes. Raises OSError when it cannot be read."""
    with open(abspath, "rb") as fh:
        data = fh.read()
        st = os.fstat(fh.fileno())
    return SourceFile(path=path, abspath=abspath, data=data, size=st.st_size, mtime=st.st_mtime)
