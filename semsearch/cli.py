"""The ``semsearch`` command: a thin shell over the library.

Each command parses its options, calls one library function and formats the
result. Exit codes follow grep and ripgrep: 0 when a query finds something, 1
when it finds nothing (and when `check` finds damage), 2 for every error (one
line on stderr; bad arguments and library errors alike), 130 for Ctrl-C with
the index as it was. Heavy modules are imported inside the commands, so
``--help`` is instant.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from difflib import get_close_matches
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn, TextIO

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from . import __version__
from .errors import SemsearchError, SourceError, UsageError
from .help import OPTION_HELP

if TYPE_CHECKING:
    from .index import Index, IndexedFile, IndexedRoot, IndexInfo
    from .query import Hit
    from .update import AddReport

# Exit codes, as grep and ripgrep: 0 found, 1 nothing found, 2 trouble. Errors are 2 (not 1)
# so that a script can tell a query that found nothing from one that could not run.
EXIT_NOTHING_FOUND = 1  # a query found no passage
EXIT_DAMAGED = 1  # `check` ran and found the index damaged
EXIT_DECLINED = 1  # `drop` was asked and told no: nothing done, nothing wrong
EXIT_ERROR = 2  # the command could not do its work (one `error:` line says why)
EXIT_USAGE = 2  # bad arguments (one `error:` line, naming `--help`)
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM: a service manager's stop, after a clean shutdown
MAX_PROBLEMS_SHOWN = 20


class _OneLineErrors(TyperGroup):
    """Print usage errors as one line, not a box, and keep exit codes meaningful."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except TyperException as exc:
            name = args[0] if args else ""
            if name and not name.startswith("-") and self.get_command(ctx, name) is None:
                exc.message = _no_such_command(name, list(self.commands))
            raise

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
        except TyperException as exc:  # typer's usage errors (bad option, missing argument)
            ctx = getattr(exc, "ctx", None)
            if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
                typer.echo(ctx.get_help())
                sys.exit(0)
            hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            message = _PYDANTIC_PREFIX.sub("", exc.format_message())
            _fail(f"{message}{hint}", EXIT_USAGE)
        except typer.Abort:
            _fail("interrupted: the index is as it was before this command", EXIT_INTERRUPTED)
        sys.exit(rv if isinstance(rv, int) else 0)


_PYDANTIC_PREFIX = re.compile(r"(?<=: )Value error, ")  # typer's wording of a bad choice


def _no_such_command(name: str, commands: Sequence[str]) -> str:
    """The one line for a mistyped command: the nearest commands, or all of them."""
    matches = get_close_matches(name, commands, n=2, cutoff=0.6)
    if matches:
        return f"no such command {name!r}; did you mean {' or '.join(map(repr, matches))}?"
    return f"no such command {name!r}; the commands are {', '.join(commands)}"


app = typer.Typer(
    cls=_OneLineErrors,
    help="Semantic search over your own folders of articles.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion, --show-completion (bash, zsh, fish, PowerShell)
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

BackendOption = Annotated[
    Literal["torch", "onnx", "openvino"] | None,
    typer.Option(
        help="What embeds passages: torch (sentence-transformers), onnx or openvino; "
        "an existing index keeps its own.",
        show_default="torch",
    ),
]
LexicalOption = Annotated[
    Literal["auto", "porter", "unicode61", "trigram"] | None,
    typer.Option(
        help="Tokenizer of the BM25 index: porter (English, stemmed), unicode61 (other "
        "languages, accents folded), trigram (Chinese, Japanese, Korean, Thai: substrings), "
        "auto (chosen from the text of a new index); switching rebuilds the lexical index "
        "alone, nothing is re-embedded.",
        show_default="auto",
    ),
]
PrecisionOption = Annotated[
    Literal["fp32", "int8"] | None,
    typer.Option(
        help="int8: openvino only, about 2.5x faster, calibrated on your passages.",
        show_default="fp32",
    ),
]
IndexDir = Annotated[
    Path,
    typer.Option(
        "--index",
        envvar="SEMSEARCH_INDEX",
        help="Folder of the index (default ./.semsearch, or $SEMSEARCH_INDEX).",
        show_default=False,
    ),
]
# `query` searches several indexes as one: --index may be given again (read from
# $SEMSEARCH_INDEX by hand: click would cut an environment value at its spaces for a list)
IndexDirs = Annotated[
    list[Path] | None,
    typer.Option(
        "--index",
        help="Folder of the index (default ./.semsearch, or $SEMSEARCH_INDEX); give it again "
        "to search several indexes built with the same model as one.",
        show_default=False,
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object for programs.")]
RerankFlag = Annotated[bool, typer.Option("--rerank", help=OPTION_HELP["rerank"])]
RerankMethodOption = Annotated[
    str | None,
    typer.Option("--rerank-method", help=OPTION_HELP["rerank_method"], show_default=False),
]
RerankDepthOption = Annotated[
    int | None,
    typer.Option("--rerank-depth", help=OPTION_HELP["rerank_depth"], show_default="50"),
]

# the filters of `query` and `similar`
SinceOption = Annotated[str | None, typer.Option(help=OPTION_HELP["since"])]
UntilOption = Annotated[str | None, typer.Option(help=OPTION_HELP["until"])]
PathGlobOption = Annotated[str | None, typer.Option("--path", help=OPTION_HELP["path"])]


def _fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    sys.exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn library errors and Ctrl-C into one line and an exit code."""
    try:
        yield
    except UsageError as exc:
        _fail(str(exc), EXIT_USAGE)
    except SemsearchError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted: the index is as it was before this command", EXIT_INTERRUPTED)


class _Terminated(BaseException):  # as KeyboardInterrupt: no `except Exception` swallows it
    """SIGTERM arrived (a service manager stopping a server or a watcher)."""


@contextmanager
def _clean_stop_on_sigterm(stopped: str) -> Iterator[None]:
    """Stop on SIGTERM as on Ctrl-C: the ``finally`` blocks run (a watcher stops, its commit
    finishes or rolls back, the index closes), then one ``stopped`` line and exit 143."""

    def terminate(signum: int, frame: object) -> None:
        raise _Terminated

    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread (an embedding program): leave signals alone
        yield
        return
    try:
        yield
    except _Terminated:
        typer.echo(stopped, err=True)
        sys.exit(EXIT_TERMINATED)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"semsearch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Semantic search over your own folders of articles.

    Index a folder with `semsearch index FOLDER`, then ask with
    `semsearch query "your question"`.
    """


def _open(index_dir: Path, **options: Any) -> Index:
    """`Index.open`, imported only when a command needs an index (keeps --help fast)."""
    from .index import Index

    return Index.open(index_dir, **options)


# --------------------------------------------------------------------------- index


@app.command()
def index(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Files and folders of articles (.txt, .md, .html, .jsonl).", show_default=False
        ),
    ],
    index_dir: IndexDir = Path(".semsearch"),
    model: Annotated[
        str | None,
        typer.Option(
            help="sentence-transformers model name or path "
            "(default: all-MiniLM-L6-v2, bundled; an existing index keeps its own)."
        ),
    ] = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Start the index from scratch.")
    ] = False,
    unit: Annotated[
        Literal["paragraph", "document"] | None,
        typer.Option(
            help="Passage unit of a new index: paragraph, or document (one passage per "
            "article, for short texts such as abstracts).",
            show_default="paragraph",
        ),
    ] = None,
    index_type: Annotated[
        Literal["auto", "flat", "hnsw", "ivf", "ivfpq", "ivfpq-disk"] | None,
        typer.Option(
            "--index-type",
            help="auto: exact (flat) up to 100,000 passages, IVF to 2 million, IVF-PQ on "
            "disk (ivfpq-disk: for vectors that do not fit in RAM) above; an existing index "
            "keeps its own, and switching converts it without re-embedding.",
            show_default="auto",
        ),
    ] = None,
    backend: BackendOption = None,
    precision: PrecisionOption = None,
    lexical: LexicalOption = None,
    query_prefix: Annotated[
        str | None,
        typer.Option(
            "--query-prefix",
            help="Put before each query instead of the model's own prompt (e5: 'query: '); "
            "'' for none. A new index or --rebuild; an existing index keeps its own.",
            show_default=False,
        ),
    ] = None,
    passage_prefix: Annotated[
        str | None,
        typer.Option(
            "--passage-prefix",
            help="Put before each passage as it is embedded, instead of the model's own "
            "prompt (e5: 'passage: '); '' for none. A new index or --rebuild.",
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Passages embedded per batch (default: 16, 8 with openvino).",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar or status line.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Name the files added, updated and removed.")
    ] = False,
    as_json: JsonFlag = False,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Then keep watching PATHS and re-index what changes (about 1 s after the "
            "last change), one line per commit, until Ctrl-C.",
        ),
    ] = False,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Parse and embed on Ray (pip install 'semsearch[ray]'): local:N (a Ray "
            "instance on this machine, N workers), auto (the cluster this machine is part "
            "of) or ray://HOST:10001. The index is still written here, in one commit; "
            "--watch then re-indexes changes in this process.",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Embedding workers on Ray (default: N of local:N, else the cluster's CPUs).",
            show_default=False,
        ),
    ] = None,
    threads_per_worker: Annotated[
        int,
        typer.Option("--threads-per-worker", min=1, help="Threads of each Ray embedding worker."),
    ] = 1,
) -> None:
    """Index the articles under PATHS; only new or changed files are embedded."""
    if ray is None and (workers is not None or threads_per_worker != 1):
        with _errors():
            raise UsageError("--workers and --threads-per-worker go with --ray ADDRESS")
    with _errors(), _status_line(quiet) as status:
        idx = _open(
            index_dir,
            create=True,
            model=model,
            unit=unit,
            index_type=index_type,
            backend=backend,
            precision=precision,
            status=status,
            lexical=lexical,
            query_prefix=query_prefix,
            passage_prefix=passage_prefix,
        )
        with idx:
            runner = None
            if ray is not None:
                from .cluster import connect

                runner = connect(ray, workers=workers, threads=threads_per_worker)
            try:
                with _progress_bar(quiet, status=status) as progress:
                    try:
                        report = idx.add(
                            [os.fspath(p) for p in paths],
                            rebuild=rebuild,
                            batch_size=batch_size,
                            progress=progress,
                            runner=runner,
                        )
                    except SourceError as exc:  # an empty folder to watch: wait for articles
                        if not (watch and all(p.exists() for p in paths)):
                            raise
                        status.clear()
                        typer.echo(f"note: {exc}", err=True)
                        report = None
            finally:
                if runner is not None:
                    runner.close()
            status.clear()
            if report is not None:
                _print_problems(report)
                if as_json:
                    typer.echo(json.dumps({"index": os.fspath(index_dir), **report.to_dict()}))
                else:
                    typer.echo(_format_report(report, paths, index_dir, verbose))
            if watch:
                _watch(idx, paths, as_json, verbose, batch_size)


def _watch(
    idx: Index, paths: Sequence[Path], as_json: bool, verbose: bool, batch_size: int | None
) -> None:
    """`index --watch`: one line per commit (stdout), problems on stderr, Ctrl-C ends it."""
    import time

    from .update.watch import Commit, Watcher

    def on_commit(c: Commit) -> None:
        if as_json:
            typer.echo(json.dumps({"generation": c.generation, "at": c.at, **c.report.to_dict()}))
            return
        typer.echo(f"{time.strftime('%H:%M:%S', time.localtime(c.at))}  {c.summary()}")
        if verbose and _changed_files(c.report):
            typer.echo("\n".join(_changed_files(c.report)))

    def on_problem(line: str) -> None:
        typer.echo(f"warning: {line}", err=True)

    watcher = Watcher(idx, paths, on_commit=on_commit, on_problem=on_problem, batch_size=batch_size)
    shown = " ".join(os.fspath(p) for p in paths)
    stopped = "semsearch: stopped watching (SIGTERM); the index is as last committed"
    try:
        with _clean_stop_on_sigterm(stopped):
            typer.echo(f"watching {shown} (Ctrl-C stops)", err=True)  # said once it can stop
            watcher.run()  # returns when every watched path is gone (told as a warning)
    except KeyboardInterrupt:
        generation = idx.info().generation if idx.exists else 0
        _fail(
            f"interrupted: stopped watching; the index is as last committed (generation "
            f"{generation})",
            EXIT_INTERRUPTED,
        )
    sys.exit(EXIT_ERROR)


class _StatusLine:
    """The library's status lines on stderr. One ending in "..." says what slow work starts:
    shown on a terminal only, in one line that the next one (or a progress bar) replaces.
    Any other is a note, kept (``note: ...``)."""

    def __init__(self, live: bool) -> None:
        self.live = live
        self._shown = 0  # characters of the line on screen

    def __call__(self, message: str) -> None:
        if not message.endswith("..."):
            self.clear()
            typer.echo(f"note: {message}", err=True)
            return
        if not self.live:
            return
        width = max(10, shutil.get_terminal_size((80, 24)).columns - 1)
        line = message if len(message) <= width else message[: width - 3] + "..."
        sys.stderr.write("\r" + line.ljust(self._shown))
        sys.stderr.flush()
        self._shown = len(line)

    def clear(self) -> None:
        if self._shown:
            sys.stderr.write("\r" + " " * self._shown + "\r")
            sys.stderr.flush()
            self._shown = 0


@contextmanager
def _status_line(quiet: bool) -> Iterator[_StatusLine]:
    """Status lines while a command runs (on a terminal, unless quiet), cleared at its end."""
    line = _StatusLine(live=not quiet and sys.stderr.isatty())
    try:
        yield line
    finally:
        line.clear()


@contextmanager
def _progress_bar(
    quiet: bool,
    desc: str = "Embedding",
    unit: str = "passage",
    status: _StatusLine | None = None,
) -> Iterator[Any]:
    """A progress callback drawing on stderr, or None when quiet or not a terminal.

    The bar replaces the status line. Its time left is the average pace so far
    times what remains (the embedders order batches so that the pace of the
    first ones is that of the whole run), not tqdm's default of the last few
    batches, which swings with their lengths.
    """
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    bar: Any = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            if total == 0:
                return
            if status is not None:
                status.clear()
            bar = tqdm(
                total=total,
                unit=unit,
                desc=desc,
                file=sys.stderr,
                dynamic_ncols=True,
                leave=False,
                smoothing=0,
            )
        bar.update(done - bar.n)

    try:
        yield progress
    finally:
        if bar is not None:
            bar.close()


def _print_problems(report: AddReport) -> None:
    for problem in report.problems[:MAX_PROBLEMS_SHOWN]:
        typer.echo(f"warning: {problem}", err=True)
    extra = len(report.problems) - MAX_PROBLEMS_SHOWN
    if extra > 0:
        typer.echo(f"warning: ... and {extra} more problems", err=True)


def _format_report(
    report: AddReport, paths: Sequence[Path], index_dir: Path, verbose: bool = False
) -> str:
    where = ", ".join(os.fspath(p) for p in paths)
    lines = [
        f"Indexed {where} into {os.fspath(index_dir)} in {report.seconds:.1f} s",
        f"  files:     {len(report.files_added)} added, {len(report.files_updated)} updated, "
        f"{len(report.files_removed)} removed, {report.files_unchanged} unchanged",
        f"  documents: {report.documents_added} added, {report.documents_updated} updated, "
        f"{report.documents_removed} removed, {report.documents_unchanged} unchanged",
        f"  passages:  {report.passages_added} added, {report.passages_removed} removed, "
        f"{report.passages_unchanged} unchanged; {report.passages_embedded} embedded",
    ]
    if report.embedded_by.startswith("Ray"):
        lines[-1] += f" on {report.embedded_by}"
    if report.lexical_replaced:
        lines.append(
            f"  lexical:   {report.lexical_tokenizer} ({report.lexical_reason}), was "
            f"{report.lexical_replaced}: lexical index rebuilt from the stored passages, "
            "nothing re-embedded"
        )
    elif report.lexical_tokenizer:
        lines.append(f"  lexical:   {report.lexical_tokenizer} ({report.lexical_reason})")
    if report.paragraphs_split:
        lines.append(
            f"  {report.paragraphs_split} paragraphs were longer than the model reads and "
            "were split at sentence boundaries"
        )
    if report.files_skipped:
        lines.append(f"  {report.files_skipped} files of other formats skipped")
    if report.problems:
        lines.append(f"  {len(report.problems)} problems with files or records (see above)")
    if verbose:
        lines += _changed_files(report)
    return "\n".join(lines)


def _changed_files(report: AddReport) -> list[str]:
    """One line per file added, updated or removed, shown as `display_path` shows paths."""
    from .query import display_path

    return [
        f"  {what:<8} {display_path(path)}"
        for what, paths in (
            ("added", report.files_added),
            ("updated", report.files_updated),
            ("removed", report.files_removed),
        )
        for path in paths
    ]


# --------------------------------------------------------------------------- query


# The choices below mirror the library's (query.MODES, query.output.FORMATS; a test keeps
# them equal): importing the library here would slow down `semsearch --help`.
ModeName = Literal["hybrid", "dense", "lexical"]
FormatName = Literal["text", "json", "jsonl", "csv", "tsv", "markdown", "vimgrep"]
ColorChoice = Literal["auto", "always", "never"]

Mode = Annotated[
    ModeName,
    typer.Option(
        "--mode",
        help=OPTION_HELP["mode"],
    ),
]


@app.command()
def query(
    text: Annotated[
        str,
        typer.Argument(
            help="What to search for, in your own words; - reads it from standard input.",
            show_default=False,
        ),
    ],
    k: Annotated[int, typer.Option("-k", "--top", help="How many passages to return.")] = 5,
    mode: Mode = "hybrid",
    min_score: Annotated[
        float | None,
        typer.Option(
            "--min-score",
            help="Leave out passages scoring below this (dense: cosine -1..1; lexical: BM25; "
            "hybrid: 0..1, roughly the chance that the passage is relevant).",
        ),
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    path: PathGlobOption = None,
    by_article: Annotated[
        bool, typer.Option("--by-article", help="Only the best passage of each article.")
    ] = False,
    collapse: Annotated[
        bool,
        typer.Option(
            "--collapse/--no-collapse",
            help="Fold passages that appear near-identically in several articles into one hit.",
        ),
    ] = True,
    index_dirs: IndexDirs = None,
    model: Annotated[
        str | None, typer.Option(help="Must be the index's own model (default: it is).")
    ] = None,
    output_format: Annotated[
        FormatName,
        typer.Option(
            "--format",
            help="text for reading; json (one object), jsonl (one hit a line), csv, tsv or "
            "markdown for programs and notes; vimgrep (path:line:column: text) for editors.",
        ),
    ] = "text",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object for programs (--format json).")
    ] = False,
    as_jsonl: Annotated[
        bool, typer.Option("--jsonl", help="One JSON object a hit, a line each (--format jsonl).")
    ] = False,
    vimgrep: Annotated[
        bool,
        typer.Option(
            "--vimgrep", help="path:line:column: text lines for editors (--format vimgrep)."
        ),
    ] = False,
    width: Annotated[
        int | None,
        typer.Option(
            "--snippet",
            min=1,
            metavar="N",
            help="Show at most N characters of each passage, around its highlight (the "
            "full text by default; json and jsonl always keep it).",
            show_default=False,
        ),
    ] = None,
    highlight: Annotated[
        bool,
        typer.Option(
            "--highlight/--no-highlight",
            help="Find each passage's best sentence(s): bold in the terminal, spans in JSON. "
            "--no-highlight skips that work.",
        ),
    ] = True,
    color: Annotated[
        ColorChoice,
        typer.Option(
            "--color",
            help="Bold and dim text: auto (on a terminal, unless NO_COLOR is set or "
            "TERM=dumb), always or never.",
        ),
    ] = "auto",
    correct: Annotated[
        bool,
        typer.Option(
            "--correct/--no-correct",
            help="Search for the closest known word in place of a word the index does not "
            "know (a typo), and say so. --no-correct searches for the words as given.",
        ),
    ] = True,
    rerank: RerankFlag = False,
    rerank_method: RerankMethodOption = None,
    rerank_depth: RerankDepthOption = None,
) -> None:
    """Find the passages that best match TEXT, best first.

    Exits 0 when something is found, 1 when nothing is, 2 on an error.
    """
    with _errors():
        from .query import check_query

        fmt = _output_format(output_format, as_json=as_json, as_jsonl=as_jsonl, vimgrep=vimgrep)
        if text == "-":
            text = _read_query(sys.stdin)
        options: dict[str, Any] = dict(
            mode=mode,
            since=since,
            until=until,
            path=path,
            by_article=by_article,
            collapse=collapse,
            # only what is shown is worked out: csv, tsv and vimgrep show no highlights
            highlight=highlight and (fmt in _SHOWS_HIGHLIGHTS or width is not None),
            correct=correct,
            rerank=rerank_method or rerank,  # a named method implies --rerank
            rerank_depth=rerank_depth,
        )
        check_query(text, k, min_score, **options)  # argument errors before any slow work
        folders = index_dirs or [Path(os.environ.get("SEMSEARCH_INDEX") or ".semsearch")]
        shown: str | list[str] = [os.fspath(f) for f in folders]
        with _status_line(False) as status:
            if len(folders) == 1:
                shown = os.fspath(folders[0])
                opened: Any = _open(folders[0], model=model, status=status)
            else:
                from .many import Indexes

                opened = Indexes.open(folders, model=model, status=status)
            with opened as idx:
                hits = idx.search(text, k=k, min_score=min_score, **options)
                status.clear()
                _print_hits(fmt, hits, text, shown, idx.model, width, min_score, color)
    if not hits:
        sys.exit(EXIT_NOTHING_FOUND)


_SHOWS_HIGHLIGHTS = frozenset({"text", "json", "jsonl", "markdown"})


def _output_format(chosen: str, *, as_json: bool, as_jsonl: bool, vimgrep: bool) -> str:
    """The one output format the options ask for (``--format``'s, text by default)."""
    asked = {
        name
        for name, flag in (
            (chosen, chosen != "text"),
            ("json", as_json),
            ("jsonl", as_jsonl),
            ("vimgrep", vimgrep),
        )
        if flag
    }
    if len(asked) > 1:
        from .errors import UsageError

        raise UsageError(
            f"choose one output format: {' and '.join(sorted(asked))} were both asked for"
            if len(asked) == 2
            else f"choose one output format: {', '.join(sorted(asked))} were all asked for"
        )
    return next(iter(asked), "text")


def _read_query(stream: TextIO) -> str:
    """The query given on standard input (`semsearch query -`), at most a little more than
    the longest query allowed; bytes that are not UTF-8 reach `check_text`, which names them."""
    from .errors import UsageError
    from .query import MAX_QUERY_CHARS

    limit = 4 * MAX_QUERY_CHARS  # UTF-8 takes at most 4 bytes a character
    binary = getattr(stream, "buffer", None)
    data: str
    try:
        if binary is not None:
            raw: bytes = binary.read(limit + 1)
            data = raw.decode("utf-8", errors="surrogateescape")
            too_long = len(raw) > limit
        else:
            data = stream.read(MAX_QUERY_CHARS + 1)
            too_long = len(data) > MAX_QUERY_CHARS
    except OSError as exc:
        raise UsageError(f"cannot read the query from standard input: {exc.strerror}") from None
    if too_long:
        raise UsageError(
            f"the query on standard input is longer than the {MAX_QUERY_CHARS:,} characters "
            "that are searched for: shorten it to the words that matter"
        )
    return data.removeprefix("\ufeff").strip()


def _use_color(choice: str, stream: TextIO) -> bool:
    """Whether to print ANSI styles: the one place the rule lives.

    ``always`` and ``never`` decide; ``auto`` colours a terminal only, and never
    when ``NO_COLOR`` is set (to anything but the empty string, no-color.org) or
    ``TERM`` is ``dumb``.
    """
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _print_hits(
    fmt: str,
    hits: Sequence[Hit],
    query: str,
    index: str | list[str],
    model: str,
    width: int | None,
    min_score: float | None,
    color: str,
) -> None:
    from .query import output

    if fmt == "json":
        data = output.results_dict(query, index, model, hits)
        typer.echo(json.dumps(data, ensure_ascii=False))
    elif fmt in ("jsonl", "vimgrep"):
        lines = output.jsonl_lines(hits) if fmt == "jsonl" else output.vimgrep_lines(hits, width)
        try:
            for line in lines:  # a line at a time, as a pipe reader wants them
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
        except BrokenPipeError:  # the reader had enough (`| head -1`): found is found, exit 0
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # nothing more reaches the closed pipe
            os.close(devnull)
    elif fmt == "csv":
        sys.stdout.write(output.csv_text(hits, width))
    elif fmt == "tsv":
        sys.stdout.write(output.tsv_text(hits, width))
    elif fmt == "markdown":
        sys.stdout.write(output.markdown_text(hits, width))
    else:
        on = _use_color(color, sys.stdout)
        corrected = getattr(hits, "corrected_query", None)
        if corrected is not None:
            typer.echo(_styler(on)(f"showing results for: {corrected}", bold=True) + "\n", color=on)
        typer.echo(_format_hits(hits, min_score, width, on), nl=False, color=on)


def _styler(on: bool) -> Callable[..., str]:
    """`typer.style` when colour is on, else the text as it is."""
    if on:
        return typer.style
    return lambda text, **_: str(text)


_BOLD_ON, _BOLD_OFF = "\x01", "\x02"  # markers that survive wrapping, then become ANSI bold


def _format_hits(
    hits: Sequence[Hit], min_score: float | None, width: int | None = None, color: bool = False
) -> str:
    from .query import display_path

    if not hits:
        why = f" scored {min_score} or more" if min_score is not None else " was found"
        return f"No passage{why}.\n"
    from .query.output import place, snippet

    style = _styler(color)
    bold_on, bold_off = ("\x1b[1m", "\x1b[22m") if color else ("", "")
    columns = max(40, min(shutil.get_terminal_size((100, 24)).columns, 100))
    out: list[str] = []
    for h in hits:
        head = f"{h.rank}. " + style(h.title or "(untitled)", bold=True)
        meta = [h.date] if h.date else []
        meta.append(f"score {h.score:.3f}")
        out.append(f"{head}  ({', '.join(meta)})")
        where = f"paragraph {h.paragraph}"
        if h.pieces > 1:
            where += f", part {h.piece} of {h.pieces}"
        # the file, and the record of a JSON Lines file or the page of a PDF
        if h.index is not None:  # several indexes were searched as one: say which
            where += f", index {display_path(os.path.abspath(h.index))}"
        out.append(style(f"   {place(h)}, {where}", dim=True))
        marked, spans = snippet(h.text, h.highlights, width)
        for a, b in sorted(spans, reverse=True):
            marked = marked[:a] + _BOLD_ON + marked[a:b] + _BOLD_OFF + marked[b:]
        wrapped = textwrap.fill(
            marked, width=columns, initial_indent="   ", subsequent_indent="   "
        )
        out.append(wrapped.replace(_BOLD_ON, bold_on).replace(_BOLD_OFF, bold_off))
        for src in h.also_in:
            date = f", {src.date}" if src.date else ""
            other = display_path(src.abspath, src.path) + (f" p.{src.page}" if src.page else "")
            line = f"   also in: {src.title}{date} ({other}, paragraph {src.paragraph})"
            out.append(style(line, dim=True))
        out.append("")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- eval


@app.command("eval")
def eval_(
    dataset: Annotated[
        Path,
        typer.Argument(
            help="A BEIR-format folder: corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv.",
            show_default=False,
        ),
    ],
    split: Annotated[str, typer.Option(help="Which judgments: qrels/SPLIT.tsv.")] = "test",
    mode: Mode = "hybrid",
    index_dir: Annotated[
        Path | None,
        typer.Option(
            "--index",
            help="Keep the dataset's index here to reuse it (default: a temporary one).",
            show_default=False,
        ),
    ] = None,
    protocol: Annotated[
        Literal["paragraphs", "beir"],
        typer.Option(
            help="paragraphs: semsearch's own passages; beir: each document one passage, "
            "title + text, as published BEIR figures."
        ),
    ] = "paragraphs",
    model: Annotated[str | None, typer.Option(help="sentence-transformers model.")] = None,
    backend: BackendOption = None,
    precision: PrecisionOption = None,
    lexical: LexicalOption = None,
    rerank: RerankFlag = False,
    rerank_method: RerankMethodOption = None,
    rerank_depth: RerankDepthOption = None,
    correct: Annotated[
        bool,
        typer.Option(
            "--correct/--no-correct",
            help="Correct words the index does not know in the queries, as `query` does.",
        ),
    ] = True,
    per_query: Annotated[
        Path | None,
        typer.Option("--per-query", help="Write each query's figures to this JSON Lines file."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Measure retrieval quality on a test collection: nDCG@10, Recall@10/100, MRR@10."""
    with _errors():
        from .evaluate import run_eval

        with (
            _progress_bar(quiet, "Indexing") as index_bar,
            _progress_bar(quiet, "Queries", unit="query") as query_bar,
        ):
            result = run_eval(
                os.fspath(dataset),
                split=split,
                mode=mode,
                protocol=protocol,
                model=model,
                backend=backend,
                precision=precision,
                lexical=lexical,
                correct=correct,
                rerank=rerank_method or rerank,  # a named method implies --rerank
                rerank_depth=rerank_depth,
                index_dir=None if index_dir is None else os.fspath(index_dir),
                index_progress=index_bar,
                query_progress=query_bar,
            )
        if per_query is not None:
            try:
                with open(per_query, "w", encoding="utf-8") as fh:
                    for row in result.per_query:
                        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            except OSError as exc:
                _fail(f"cannot write {per_query}: {exc.strerror}")
        if as_json:
            typer.echo(json.dumps(result.to_dict()))
        else:
            typer.echo(
                f"{result.dataset} ({result.split}, {result.queries} queries), "
                f"{result.mode}{f' reranked ({result.rerank})' if result.rerank else ''}, "
                f"{result.model}, {1000 * result.seconds / max(result.queries, 1):.1f} ms a query"
            )
            for name, value in result.metrics.items():
                typer.echo(f"  {name:<11}{value:.4f}")


# --------------------------------------------------------------------------- info


@app.command()
def info(index_dir: IndexDir = Path(".semsearch"), as_json: JsonFlag = False) -> None:
    """Show what the index holds: counts, model, size, dates."""
    with _errors(), _open(index_dir) as idx:
        details = idx.info()
        if as_json:
            typer.echo(json.dumps(details.to_dict()))
        else:
            typer.echo(_format_info(details))


def _lexical_line(i: IndexInfo) -> str:
    """``trigram (auto: 62% of letters are ...)``, ``unicode61 (as asked)``, ``porter``."""
    if i.lexical_requested == "auto" and i.lexical_reason:
        return f"{i.lexical} (auto: {i.lexical_reason})"
    return f"{i.lexical} (as asked)" if i.lexical_reason else i.lexical


def _prefixes_line(i: IndexInfo) -> str:
    """``query "query: ", passage "passage: "``: the model's prompts, quoted to show spaces."""
    q, p = (json.dumps(x, ensure_ascii=False) for x in (i.query_prefix, i.passage_prefix))
    return f"query {q}, passage {p}"


def _on_ray(i: IndexInfo) -> bool:
    return i.embedded_on.startswith("Ray")


def _format_info(i: IndexInfo) -> str:
    rows = [
        ("index", i.path),
        ("documents", f"{i.documents:,}"),
        ("passages", f"{i.passages:,}"),
        ("files", f"{i.files:,}"),
        ("model", i.model),
        *([("prefixes", _prefixes_line(i))] if i.query_prefix or i.passage_prefix else []),
        ("dimension", str(i.dimension)),
        ("embedded by", f"{i.backend} {i.precision}"),
        *([("embedded on", f"{i.embedded_on} (its last run)")] if _on_ray(i) else []),
        ("index type", i.index_type),
        ("lexical", _lexical_line(i)),
        ("size on disk", _size_on_disk(i)),
        ("query model", _query_model_line(i)),
        ("created", i.created_at),
        ("updated", i.updated_at),
        ("schema", f"{i.schema_version} (written by semsearch {i.semsearch_version})"),
    ]
    from .query import display_path

    rows += [("roots" if n == 0 else "", display_path(r)) for n, r in enumerate(i.roots)]
    return "\n".join(f"{k + ':' if k else '':<14}{v}" for k, v in rows)


# --------------------------------------------------------------------------- list


@app.command("list")
def list_(
    index_dir: IndexDir = Path(".semsearch"),
    roots_only: Annotated[
        bool, typer.Option("--roots", help="Only the indexed folders, not each file.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """List what the index holds: the folders indexed, and each file with its passages and
    the date it was indexed."""
    with _errors(), _open(index_dir) as idx:
        files = [] if roots_only else idx.files()
        roots = idx.roots()
        if as_json:
            data: dict[str, Any] = {
                "index": os.fspath(index_dir),
                "roots": [r.to_dict() for r in roots],
            }
            if not roots_only:
                data["files"] = [f.to_dict() for f in files]
            typer.echo(json.dumps(data, ensure_ascii=False))
        else:
            typer.echo(_format_list(index_dir, roots, files, roots_only), nl=False)


def _format_list(
    index_dir: Path, roots: Sequence[IndexedRoot], files: Sequence[IndexedFile], roots_only: bool
) -> str:
    from .query import display_path

    if not roots:
        return f"The index in {os.fspath(index_dir)} holds no files.\n"
    by_root: dict[str, list[IndexedFile]] = {}
    for f in files:
        by_root.setdefault(f.root, []).append(f)
    out: list[str] = []
    for r in roots:
        gone = "" if r.exists else "; gone from disk"
        out.append(
            f"{display_path(r.root)}  ({_count(r.files, 'file')}, {_count(r.passages, 'passage')}"
            f", indexed {_when(r.indexed_at)}{gone})"
        )
        if roots_only:
            continue
        for f in by_root.get(r.root, []):
            gone = "" if f.exists else "  (gone from disk)"
            out.append(
                f"  {f.passages:>6}  {_when(f.indexed_at)}  {display_path(f.abspath)}{gone}"
            )
    if any(not r.exists for r in roots) or any(not f.exists for f in files):
        out.append("(remove what is gone from disk with `semsearch remove PATH`)")
    return "\n".join(out) + "\n"


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"


def _when(iso: str) -> str:
    """``2025-01-02T03:04:05+00:00`` as ``2025-01-02 03:04`` in local time."""
    import datetime as _dt

    try:
        moment = _dt.datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


# --------------------------------------------------------------------------- remove


@app.command()
def remove(
    paths: Annotated[
        list[str],  # not Path: Path("") is ".", and an empty argument must not mean "here"
        typer.Argument(
            help="Files and folders to take out of the index (also when gone from disk).",
            show_default=False,
        ),
    ],
    index_dir: IndexDir = Path(".semsearch"),
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Name each file removed.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Remove files, or folders and everything indexed under them, from the index (the
    files themselves are not touched)."""
    with _errors(), _open(index_dir) as idx:
        report = idx.remove(paths)
        if as_json:
            typer.echo(json.dumps({"index": os.fspath(index_dir), **report.to_dict()}))
            return
        typer.echo(
            f"Removed {_count(len(report.files_removed), 'file')} "
            f"({_count(report.documents_removed, 'document')}, "
            f"{_count(report.passages_removed, 'passage')}) from {os.fspath(index_dir)}; "
            f"{_count(report.files_unchanged, 'file')} left"
        )
        if verbose:
            typer.echo("\n".join(_changed_files(report)))


# --------------------------------------------------------------------------- drop


def _stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


@app.command()
def drop(
    index_dir: IndexDir = Path(".semsearch"),
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask first (needed when not on a terminal).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete the whole index (only semsearch's own files in its folder; your articles are
    not touched). Asks first on a terminal."""
    with _errors():
        from .index import Index

        folder = os.fspath(index_dir)
        if not yes:
            what = _describe_index(index_dir)  # (raises when there is no index)
            if not _stdin_is_terminal():
                _fail(
                    f"not deleting the index in {folder} without confirmation (standard input is "
                    "not a terminal): run `semsearch drop --yes`",
                    EXIT_USAGE,
                )
            try:
                confirmed = typer.confirm(f"Delete the index in {folder}{what}?", default=False)
            except typer.Abort:  # end of input (Ctrl-D) at the question: a no, not a Ctrl-C
                confirmed = False
            if not confirmed:
                _fail("not confirmed: the index was left as it was", EXIT_DECLINED)
        report = Index.drop(index_dir)
        if as_json:
            typer.echo(json.dumps(report.to_dict()))
            return
        for name in report.kept:
            typer.echo(f"warning: left {os.path.join(folder, name)}: not semsearch's", err=True)
        typer.echo(
            f"Deleted the index in {folder} ({_count(report.files_deleted, 'file')}, "
            f"{_human_bytes(report.bytes_freed)} freed)"
        )


def _describe_index(index_dir: Path) -> str:
    """`` (N passages from M files, SIZE)`` of the index, or why it cannot be told."""
    from .errors import IndexNotFoundError

    try:
        with _open(index_dir) as idx:
            i = idx.info()
    except IndexNotFoundError:
        raise
    except SemsearchError:
        return " (it cannot be read)"
    shared = f", {_human_bytes(i.shared_bytes)} more shared" if i.shared_bytes else ""
    return (
        f" ({_count(i.passages, 'passage')} from {_count(i.files, 'file')}, "
        f"{_human_bytes(i.size_bytes - i.shared_bytes)}{shared})"
    )


# --------------------------------------------------------------------------- check


@app.command()
def check(index_dir: IndexDir = Path(".semsearch"), as_json: JsonFlag = False) -> None:
    """Verify every file of the index (checksums, database, vectors against it); exit 1 if
    damaged."""
    with _errors():
        from .index import Index

        report = Index.check_folder(index_dir)
        if as_json:
            typer.echo(json.dumps(report.to_dict()))
        else:
            for note in report.notes:
                typer.echo(f"warning: {note}", err=True)
            for line in report.problem_lines():
                typer.echo(f"error: {line}", err=True)
            if report.ok:
                typer.echo(
                    f"ok: {report.passages:,} passages, {len(report.files_checked)} files checked"
                )
        if not report.ok:
            sys.exit(EXIT_DAMAGED)


def _size_on_disk(i: IndexInfo) -> str:
    """The folder's size as du tells it, and how much of it is shared (hard links)."""
    size = _human_bytes(i.size_bytes)
    if i.shared_bytes:
        return f"{size} ({_human_bytes(i.shared_bytes)} of it shared: the query model)"
    if i.query_model.kind == "symlink":
        return f"{size} (and the query model's {_human_bytes(i.query_model.size)} in the cache)"
    return size


def _query_model_line(i: IndexInfo) -> str:
    q = i.query_model
    if q.kind == "hard_link":
        return f"ONNX, a hard link shared with the model cache and other indexes ({q.links} links)"
    if q.kind == "symlink":
        return f"ONNX, a link to the model cache: {q.path}"
    if q.kind == "copy":
        return "ONNX, a copy of its own"
    if q.kind == "missing":
        return "missing: queries use torch until the next `semsearch index` puts it back"
    return "none: queries use torch"


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


# --------------------------------------------------------------------------- similar


@app.command()
def similar(
    target: Annotated[
        str | None,
        typer.Argument(
            metavar="PATH[#PARAGRAPH]|ID",
            help="An indexed file (its passages together), or one paragraph of it, numbered "
            "as hits show it (PATH#KEY or PATH#KEY#PARAGRAPH for a record of a JSON Lines "
            "file); a bare number naming no file is a passage id, as --id.",
            show_default=False,
        ),
    ] = None,
    passage_id: Annotated[
        int | None,
        typer.Option(
            "--id", help="A passage id (passage_id in `query --json`).", show_default=False
        ),
    ] = None,
    k: Annotated[int, typer.Option("-k", "--top", help="How many passages to return.")] = 5,
    min_score: Annotated[
        float | None, typer.Option("--min-score", help="Leave out passages of lower cosine.")
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    path: PathGlobOption = None,
    by_article: Annotated[
        bool, typer.Option("--by-article", help="Only the nearest passage of each article.")
    ] = False,
    index_dir: IndexDir = Path(".semsearch"),
    as_json: JsonFlag = False,
) -> None:
    """Find the passages most like an indexed one (from its stored vector: nothing is
    embedded); itself and its near-identical copies are left out.

    Exits 0 when something is found, 1 when nothing is, 2 on an error.
    """
    with _errors():
        if target is not None and passage_id is None and _is_passage_id(target):
            passage_id = int(target)  # `similar 42`: the passage with id 42
            target = None
        if (target is None) == (passage_id is None):
            raise UsageError("give an indexed file (PATH or PATH#PARAGRAPH) or --id N, not both")
        with _open(index_dir) as idx:
            if passage_id is not None:
                ids, label = [passage_id], f"passage {passage_id}"
            else:
                assert target is not None
                from .query import split_address

                file, key, paragraph, part = split_address(target)
                ids = idx.passages_of(file, paragraph=paragraph, key=key, part=part)
                label = target
            filters: dict[str, Any] = dict(since=since, until=until, path=path)
            hits = idx.similar(ids, k, min_score=min_score, by_article=by_article, **filters)
            if as_json:
                from .query import output

                data = output.results_dict(f"like {label}", os.fspath(index_dir), idx.model, hits)
                typer.echo(json.dumps({**data, "like": ids}, ensure_ascii=False))
            else:
                on = _use_color("auto", sys.stdout)
                typer.echo(_styler(on)(f"Passages like {label}:", dim=True) + "\n", color=on)
                typer.echo(_format_hits(hits, min_score, None, on), nl=False, color=on)
    if not hits:
        sys.exit(EXIT_NOTHING_FOUND)  # as `query`: grep's convention


def _is_passage_id(target: str) -> bool:
    """Whether a bare ``similar`` target is a passage id: a whole number naming no file."""
    return target.isascii() and target.isdigit() and not Path(target).exists()


# --------------------------------------------------------------------------- serve


@app.command()
def serve(
    index_dir: IndexDir = Path(".semsearch"),
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on. Anything but loopback (127.0.0.1, localhost, ::1) "
            "lets other machines in, and needs --token."
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port to listen on; 0 picks a free one.")
    ] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="SEMSEARCH_TOKEN",
            help="Every API request must send it (Authorization: Bearer T); the page asks "
            "for it once. Needed with a --host other than loopback. Default $SEMSEARCH_TOKEN.",
            show_default=False,
            show_envvar=False,
        ),
    ] = None,
    watch: Annotated[
        list[Path] | None,
        typer.Option(
            "--watch",
            metavar="PATH",
            help="Keep the index fresh: re-index what changes under PATH (a folder or file; "
            "repeat for more) about 1 s after the last change; a missing index is built "
            "from these first.",
            show_default=False,
        ),
    ] = None,
    cors: Annotated[
        list[str] | None,
        typer.Option(
            "--cors",
            metavar="ORIGIN",
            help="Let web pages of this origin (e.g. http://localhost:3000) read the API; "
            "repeat for more. Off by default.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the index over HTTP: the search page at / and a JSON API under /api (described
    at /docs), until Ctrl-C. The index is only read, unless --watch keeps it fresh."""
    shown = os.fspath(index_dir)

    def ready(url: str) -> None:
        typer.echo(f"semsearch: serving {shown} at {url} (Ctrl-C stops)", err=True)

    with _errors():
        from .serve import run

        run.log_to_stderr()
        kept = "as last committed" if watch else "as it was"
        sigterm = _clean_stop_on_sigterm(f"semsearch: stopped (SIGTERM); the index is {kept}")
        try:
            with sigterm:
                run.serve(
                    index_dir,
                    host=host,
                    port=port,
                    token=token,
                    cors_origins=cors or (),
                    label=shown,
                    on_ready=ready,
                    watch=[os.fspath(p) for p in watch or ()],
                )
        except KeyboardInterrupt:
            typer.echo(f"semsearch: stopped; the index is {kept}", err=True)
            sys.exit(EXIT_INTERRUPTED)


# --------------------------------------------------------------------------- mcp


@app.command()
def mcp(index_dir: IndexDir = Path(".semsearch")) -> None:
    """Serve the index to agents (Claude Desktop, editors, ...) as an MCP server on
    stdin/stdout: tools search, get_passage, similar and index_info.

    Runs until the client closes stdin. A missing or damaged index is one error line
    and exit 2 before anything is served.
    """
    with _errors():
        from .serve.agent import run_stdio  # the MCP SDK, only for this command

        run_stdio(index_dir, on_interrupt=_interrupted_now)


def _interrupted_now() -> NoReturn:
    """Ctrl-C in a server that only reads: one line, exit 130 at once (see `run_stdio`)."""
    typer.echo("error: interrupted: the server stopped; the index is unchanged", err=True)
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


def main() -> None:
    """Entry point of the ``semsearch`` console script."""
    app(prog_name="semsearch")
