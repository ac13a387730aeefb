"""Keeping an index fresh while its folders change: `Watcher` (and `watch`, its blocking form).

Changes are gathered with watchfiles and committed in batches: ``quiet_seconds`` after
the last change, or ``max_wait_seconds`` after the first one of a stream that never
pauses. Each batch is one ordinary `Index.add` (one atomic commit, or none when nothing
really changed) of the smallest folder holding every change under a watched root: its
new, edited, moved and deleted files all go in that one plan, so a burst of a thousand
files costs a few commits and a renamed file keeps its vectors. Changes inside the index
folder, hidden files, editor temp files and files of formats semsearch does not read are
ignored.

A re-plan of a whole folder reads and hashes every file in it: 0.1 to 0.2 s for the 2,225
files of the BBC corpus (9 MB), which is why a batch re-plans the changed folder rather
than tracking each path by hand; the narrowing keeps it cheap in large trees.

watchfiles is imported when a watcher runs (it is not needed to search)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import (
    IndexClosedError,
    IndexLockedError,
    IndexNotFoundError,
    SemsearchError,
    SourceError,
    UsageError,
)
from ..ingest import lies_under
from ..ingest.formats import supported_suffixes
from .report import AddReport

if TYPE_CHECKING:
    from ..index import Index

# Names editors and tools write beside a file being saved (vim's 4913 probe, swap files,
# emacs lock and autosave files, backups, partial downloads).
_TEMP_SUFFIXES = (".swp", ".swo", ".swx", ".swpx", ".tmp", ".temp", ".part", ".crdownload")
_TEMP_NAMES = frozenset({"4913"})
_ADDED, _DELETED = 1, 3  # watchfiles.Change.added, .deleted (an IntEnum)


def is_temp_name(name: str) -> bool:
    """True for the name of an editor's temporary, swap, lock or backup file."""
    lower = name.lower()
    return (
        name in _TEMP_NAMES
        or name.endswith("~")
        or name.startswith(".#")
        or (name.startswith("#") and name.endswith("#"))
        or lower.endswith(_TEMP_SUFFIXES)
    )


@dataclass(frozen=True)
class Commit:
    """One batch of changes a `Watcher` committed (what ``on_commit`` is given)."""

    report: AddReport  # what the run did (files_added, files_updated, files_removed, ...)
    generation: int  # the index's generation after the commit
    paths: list[str]  # the folders (or files) re-planned
    at: float  # when it was committed (seconds since the epoch)

    def summary(self) -> str:
        """One line: files added, updated and removed, passages, generation."""
        r = self.report
        return (
            f"{len(r.files_added)} added, {len(r.files_updated)} updated, "
            f"{len(r.files_removed)} removed; passages {r.passages_added} added, "
            f"{r.passages_removed} removed; generation {self.generation}"
        )


CommitCallback = Callable[[Commit], None]
ProblemCallback = Callable[[str], None]


class _Stopped(BaseException):
    """Raised from the progress callback to abandon an add when the watcher is stopped
    (a BaseException, so `Index.add` rolls back as for Ctrl-C)."""


@dataclass
class _Root:
    path: str  # the real path watched
    given: str  # as the caller wrote it
    is_dir: bool
    identity: tuple[int, int]  # (st_dev, st_ino): a folder deleted and made again differs


@dataclass
class _Pending:
    paths: dict[str, set[str]] = field(default_factory=dict)  # root -> changed paths
    first: float = 0.0
    last: float = 0.0

    def add(self, root: str, path: str, now: float) -> None:
        if not self.paths:
            self.first = now
        self.paths.setdefault(root, set()).add(path)
        self.last = now

    def clear(self) -> None:
        self.paths = {}


class Watcher:
    """Keeps ``index`` fresh while the files under ``paths`` change.

    ``run()`` blocks (until `stop`, Ctrl-C in the main thread, or every watched path is
    gone); ``start()`` runs it in a background thread and ``stop()`` ends it promptly,
    leaving the index as last committed (an add under way finishes its commit, or is
    abandoned before it and rolls back). The `Index` may serve searches in other threads
    meanwhile.

    ``on_commit(Commit)`` is called after each commit, ``on_problem(line)`` with one line
    for each file that could not be read, a busy index (another process writing: retried
    after ``retry_seconds``), a watched path deleted (its files are removed from the index)
    and any other error (retried later). With ``catch_up`` (the default) the paths are
    indexed once as the watcher starts, so changes made while nothing watched are picked up.
    ``stop`` is the event `stop` sets (one is made when not given).
    """

    def __init__(
        self,
        index: Index,
        paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
        *,
        quiet_seconds: float = 1.0,
        max_wait_seconds: float = 10.0,
        retry_seconds: float = 2.0,
        on_commit: CommitCallback | None = None,
        on_problem: ProblemCallback | None = None,
        catch_up: bool = True,
        stop: threading.Event | None = None,
        batch_size: int | None = None,
    ) -> None:
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        if not paths:
            raise UsageError("give at least one file or folder to watch")
        if quiet_seconds <= 0 or max_wait_seconds < quiet_seconds or retry_seconds <= 0:
            raise UsageError(
                "quiet_seconds must be above 0, max_wait_seconds at least quiet_seconds, and "
                "retry_seconds above 0"
            )
        self.index = index
        self._index_folder = os.path.realpath(index.folder)
        roots: dict[str, _Root] = {}
        for p in paths:
            given = os.fspath(p)
            if not os.path.exists(given):
                raise SourceError(f"{given}: no such file or folder to watch")
            real = os.path.realpath(given)
            if lies_under(real, self._index_folder):
                raise UsageError(f"{given} is the index folder itself: watch the articles' folder")
            roots.setdefault(real, _Root(real, given, os.path.isdir(real), _identity(real)))
        # a root inside another one is watched through that one
        self._roots = {
            r: v
            for r, v in roots.items()
            if not any(o != r and roots[o].is_dir and lies_under(r, o) for o in roots)
        }
        self.quiet_seconds = quiet_seconds
        self.max_wait_seconds = max_wait_seconds
        self.retry_seconds = retry_seconds
        self.on_commit = on_commit
        self.on_problem = on_problem
        self.catch_up = catch_up
        self.batch_size = batch_size  # passages per embedding batch (`Index.add`'s)
        self._stop = stop or threading.Event()
        self._thread: threading.Thread | None = None
        self._told: set[str] = set()  # problem lines already told (one line per problem)
        self.commits = 0
        self.error: SemsearchError | None = None  # why a background run ended, if it failed

    # ------------------------------------------------------------------ running

    @property
    def paths(self) -> list[str]:
        """The real paths being watched."""
        return list(self._roots)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Watcher:
        """Run the watcher in a background (daemon) thread; returns at once."""
        if self.running:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run_in_thread, name="semsearch-watch")
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop watching and wait (up to ``timeout`` seconds) for the thread to end."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def __enter__(self) -> Watcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run_in_thread(self) -> None:
        try:
            self.run()
        except SemsearchError as exc:  # the index was closed, or cannot be used at all
            self.error = exc
            if not isinstance(exc, IndexClosedError):
                self._tell(f"stopped watching: {exc}")

    def run(self) -> None:
        """Watch until stopped; raises KeyboardInterrupt on Ctrl-C (in the main thread)."""
        from watchfiles import watch as watch_files

        pending = _Pending()
        retry_at = 0.0
        failures = 0
        catch_up = self.catch_up
        in_main = threading.current_thread() is threading.main_thread()
        step_ms = 50
        while self._roots and not self._stop.is_set():
            restart = False
            wait_ms = max(step_ms, int(min(self.quiet_seconds / 2, 0.25) * 1000))
            changes_seen = watch_files(
                *self._roots,
                watch_filter=self._keep,
                debounce=wait_ms,  # watchfiles hands changes over at least this often...
                step=step_ms,  # ...and checks the stop event this often
                stop_event=self._stop,
                rust_timeout=wait_ms,
                yield_on_timeout=True,
                raise_interrupt=in_main,
                ignore_permission_denied=True,
            )
            try:
                while True:  # (the first batch comes once watchfiles is watching)
                    try:
                        changes = next(changes_seen)
                    except StopIteration:  # stopped
                        break
                    except FileNotFoundError:  # a path went before watchfiles could watch it
                        if not self._roots_changed():
                            raise
                        catch_up = True
                        break
                    except (OSError, RuntimeError) as exc:  # (WatchfilesRustInternalError)
                        raise SourceError(self._cannot_watch(exc)) from exc
                    now = time.monotonic()
                    for _, path in changes:
                        root = self._root_of(path)
                        if root is not None:
                            pending.add(root, path, now)
                            self._forget_told(path)
                    if self._stop.is_set():
                        break
                    if self._roots_changed():  # one deleted or made anew: watch the rest anew
                        restart = catch_up = True
                    if catch_up:  # index what changed while nothing watched, at once
                        catch_up = False
                        for root in self._roots:
                            pending.add(root, root, now)
                        pending.first = now - self.max_wait_seconds
                    due = pending.paths and (
                        now - pending.last >= self.quiet_seconds
                        or now - pending.first >= self.max_wait_seconds
                    )
                    if due and now >= retry_at:
                        batch, first = pending.paths, pending.first
                        pending.clear()
                        try:
                            self._commit(batch)
                            failures = 0
                        except _Retry as retry:
                            failures += 1
                            for root, paths in batch.items():  # again, with what came since
                                for path in paths:
                                    pending.add(root, path, now)
                            pending.first = min(pending.first, first)
                            retry_at = now + retry.seconds(self.retry_seconds, failures)
                    if restart:
                        break
            except _Stopped:
                return
            finally:
                changes_seen.close()  # (ends watchfiles' notify thread)
        if not self._roots:
            self._tell("nothing left to watch: every watched path is gone")

    def _cannot_watch(self, exc: BaseException) -> str:
        where = ", ".join(r.given for r in self._roots.values())
        hint = ""
        if "limit" in str(exc).lower():
            hint = ": raise it with `sysctl fs.inotify.max_user_watches=524288`"
        return f"cannot watch {where} ({exc}){hint}"

    # ------------------------------------------------------------------ filtering

    def _root_of(self, path: str) -> str | None:
        for root in self._roots:
            if lies_under(path, root):
                return root
        return None

    def _keep(self, change: object, path: str) -> bool:
        """Whether a change can matter to the index (watchfiles' filter)."""
        path = os.path.abspath(path)
        if lies_under(path, self._index_folder):
            return False  # the index's own writes: never a reason to write it again
        root = self._root_of(path)
        if root is None:
            return False
        if path == root:
            return True
        rel = os.path.relpath(path, root)
        parts = rel.split(os.sep)
        if any(part.startswith(".") for part in parts) or is_temp_name(parts[-1]):
            return False  # hidden (the walk skips these) or an editor's temp file
        suffix = os.path.splitext(parts[-1])[1].lower()
        if suffix in supported_suffixes():
            return True
        if change == _DELETED:
            return not suffix  # perhaps a folder (whose files go with it)
        return change == _ADDED and os.path.isdir(path)  # a folder moved in

    def _roots_changed(self) -> bool:
        """Whether a watched path was deleted (its files removed, it is no longer watched) or
        replaced (deleted and made again: it must be watched anew)."""
        changed = False
        for real, root in list(self._roots.items()):
            if not os.path.exists(real):
                del self._roots[real]
                changed = True
                self._remove_gone(root)
            elif _identity(real) != root.identity:
                root.identity = _identity(real)
                changed = True
        return changed

    def _remove_gone(self, root: _Root) -> None:
        try:
            report = self._remove_when_free(root)
        except SourceError:
            self._tell(f"{root.given} is gone (nothing of it was indexed); no longer watching it")
            return
        except IndexClosedError:
            raise
        except SemsearchError as exc:
            self._tell(f"{root.given} is gone; its files stay indexed for now: {exc}")
            return
        n = len(report.files_removed)
        self._tell(
            f"{root.given} is gone: its {n} file{'s' if n != 1 else ''} were removed from the "
            "index; no longer watching it"
        )
        self._committed(report, [root.path])

    def _remove_when_free(self, root: _Root, tries: int = 30) -> AddReport:
        """`Index.remove` of a watched path gone, waiting while another process writes."""
        for _ in range(tries - 1):
            try:
                return self.index.remove([root.path])
            except IndexLockedError as exc:
                self._tell(f"{exc} (trying again in {self.retry_seconds:g} s)", key="busy")
                if self._stop.wait(self.retry_seconds):
                    break
        return self.index.remove([root.path])

    # ------------------------------------------------------------------ committing

    def _scope(self, root: str, paths: Iterable[str], held: set[str]) -> str:
        """The smallest folder under ``root`` holding every changed path (``root`` itself
        unless the index already holds files from it: so their root stays the watched one)."""
        if not self._roots[root].is_dir or root not in held:
            return root
        folders = []
        for path in paths:
            folder = path if path == root or os.path.isdir(path) else os.path.dirname(path)
            while folder != root and not os.path.isdir(folder) and lies_under(folder, root):
                folder = os.path.dirname(folder)  # a deleted folder: its nearest living parent
            folders.append(folder if lies_under(folder, root) else root)
        common = os.path.commonpath(folders) if folders else root
        return common if lies_under(common, root) else root

    def _spelled(self, root: str, path: str) -> str:
        """``path`` (a real path under the watched ``root``) spelled from the root as given, as
        the run that indexed it spelled its files (an index records them as given)."""
        given = self._roots[root].given
        return given if path == root else os.path.join(given, os.path.relpath(path, root))

    def _commit(self, batch: dict[str, set[str]]) -> None:
        """Re-plan what changed in one `Index.add` (one commit, or none if nothing did);
        raises `_Retry` when it must be tried again later."""
        batch = {r: ps for r, ps in batch.items() if r in self._roots and os.path.exists(r)}
        if not batch:
            return
        held = self._held_roots()
        scopes = sorted({self._spelled(r, self._scope(r, ps, held)) for r, ps in batch.items()})
        reports: list[AddReport] = []
        try:
            try:
                reports.append(
                    self.index.add(scopes, progress=self._check_stop, batch_size=self.batch_size)
                )
            except SourceError:
                # nothing readable left in one (its last file deleted, a new empty folder), or
                # one vanished meanwhile (its deletion comes as a change of its own): each alone
                for scope in scopes:
                    if os.path.exists(scope):
                        reports += self._add_or_empty(scope)
        except IndexLockedError as exc:
            self._tell(f"{exc} (trying again in {self.retry_seconds:g} s)", key="busy")
            raise _Retry(backoff=False) from exc
        except IndexClosedError:
            raise
        except SemsearchError as exc:
            self._tell(f"{exc} (trying again later)", key=f"error {type(exc).__name__}")
            raise _Retry(backoff=True) from exc
        self._told = {t for t in self._told if not t.startswith(("busy", "error "))}
        for report in reports:
            for problem in report.problems:
                self._tell(str(problem), key=str(problem))
            if report.changed:
                self._committed(report, scopes)

    def _add_or_empty(self, scope: str) -> list[AddReport]:
        """Index ``scope``; when it holds nothing readable, remove what is indexed from it."""
        try:
            return [self.index.add([scope], progress=self._check_stop, batch_size=self.batch_size)]
        except SourceError:
            pass
        try:
            return [self.index.remove([scope])]
        except (SourceError, IndexNotFoundError):
            return []  # nothing readable, nothing indexed: nothing to do

    def _committed(self, report: AddReport, paths: list[str]) -> None:
        self.commits += 1
        if self.on_commit is not None:
            generation = self.index.info().generation
            self.on_commit(Commit(report, generation, paths, time.time()))

    def _held_roots(self) -> set[str]:
        """The watched roots the index already holds files from."""
        try:
            held = {r.root for r in self.index.roots()}
        except SemsearchError:
            return set()
        return {root for root in self._roots if any(lies_under(root, h) for h in held)}

    def _check_stop(self, done: int, total: int) -> None:
        if self._stop.is_set():
            raise _Stopped

    def _tell(self, line: str, key: str | None = None) -> None:
        """Tell ``on_problem`` one line; with a ``key``, once until that key is forgotten."""
        if key is not None:
            if key in self._told:
                return
            self._told.add(key)
        if self.on_problem is not None:
            self.on_problem(line)

    def _forget_told(self, path: str) -> None:
        """A file changed again: its problems may be told again."""
        if self._told:
            mine = (path + ":", path + os.sep)  # its own lines ("path: ...", "path:3: ...")
            self._told = {t for t in self._told if not t.startswith(mine)}


class _Retry(Exception):
    """The batch must be committed again later."""

    def __init__(self, backoff: bool) -> None:
        super().__init__()
        self.backoff = backoff

    def seconds(self, base: float, failures: int) -> float:
        return min(base * 2 ** (failures - 1), 60.0) if self.backoff else base


def _identity(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (0, 0)
    return (st.st_dev, st.st_ino)


def watch(
    index: Index,
    paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    quiet_seconds: float = 1.0,
    max_wait_seconds: float = 10.0,
    stop: threading.Event | None = None,
    on_commit: CommitCallback | None = None,
    on_problem: ProblemCallback | None = None,
    catch_up: bool = True,
) -> None:
    """Keep ``index`` fresh while ``paths`` change, until ``stop`` is set (or Ctrl-C in the
    main thread, raised as KeyboardInterrupt): see `Watcher`."""
    Watcher(
        index,
        paths,
        quiet_seconds=quiet_seconds,
        max_wait_seconds=max_wait_seconds,
        on_commit=on_commit,
        on_problem=on_problem,
        catch_up=catch_up,
        stop=stop,
    ).run()
