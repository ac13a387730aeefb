"""The ``semsearch`` command: a thin shell over the library.

Each command parses its options, calls one library function and formats the
result. Library errors become one line on stderr and exit code 1; usage
errors, one line and exit code 2; Ctrl-C, exit code 130 with the index as it
was. Heavy modules are imported inside the commands, so ``--help`` is instant.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from . import __version__
from .errors import SemsearchError, UsageError

if TYPE_CHECKING:
    from .index import Index, IndexInfo
    from .query import Hit
    from .update import AddReport

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
MAX_PROBLEMS_SHOWN = 20


class _OneLineErrors(TyperGroup):
    """Print usage errors as one line, not a box, and keep exit codes meaningful."""

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
            code = exc.exit_code if exc.exit_code != EXIT_ERROR else EXIT_USAGE
            _fail(f"{exc.format_message()}{hint}", code)
        except typer.Abort:
            _fail("interrupted: the index is as it was before this command", EXIT_INTERRUPTED)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    cls=_OneLineErrors,
    help="Semantic search over your own folders of articles.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

BackendOption = Annotated[
    str | None,
    typer.Option(
        help="What embeds passages: torch (sentence-transformers, default), onnx or openvino; "
        "an existing index keeps its own.",
        show_default=False,
    ),
]
PrecisionOption = Annotated[
    str | None,
    typer.Option(
        help="fp32 (default) or int8 (openvino only: about 2.5x faster, calibrated on your "
        "passages).",
        show_default=False,
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
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object for programs.")]


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
        str | None,
        typer.Option(
            help="Passage unit of a new index: paragraph (default) or document "
            "(one passage per article, for short texts such as abstracts)."
        ),
    ] = None,
    index_type: Annotated[
        str | None,
        typer.Option(
            "--index-type",
            help="auto (default: exact up to 100,000 passages, IVF above), flat, hnsw, ivf or "
            "ivfpq; switching converts the index without re-embedding.",
            show_default=False,
        ),
    ] = None,
    backend: BackendOption = None,
    precision: PrecisionOption = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Passages embedded per batch (default: 16, 8 with openvino).",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Index the articles under PATHS; only new or changed files are embedded."""
    with _errors():
        idx = _open(
            index_dir,
            create=True,
            model=model,
            unit=unit,
            index_type=index_type,
            backend=backend,
            precision=precision,
        )
        with idx, _progress_bar(quiet) as progress:
            report = idx.add(
                [os.fspath(p) for p in paths],
                rebuild=rebuild,
                batch_size=batch_size,
                progress=progress,
            )
        _print_problems(report)
        if as_json:
            typer.echo(json.dumps({"index": os.fspath(index_dir), **report.to_dict()}))
        else:
            typer.echo(_format_report(report, paths, index_dir))


@contextmanager
def _progress_bar(quiet: bool, desc: str = "Embedding", unit: str = "passage") -> Iterator[Any]:
    """A progress callback drawing on stderr, or None when quiet or not a terminal."""
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
            bar = tqdm(
                total=total,
                unit=unit,
                desc=desc,
                file=sys.stderr,
                dynamic_ncols=True,
                leave=False,
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


def _format_report(report: AddReport, paths: Sequence[Path], index_dir: Path) -> str:
    where = ", ".join(os.fspath(p) for p in paths)
    lines = [
        f"Indexed {where} into {os.fspath(index_dir)} in {report.seconds:.1f} s",
        f"  documents: {report.documents_added} added, {report.documents_updated} updated, "
        f"{report.documents_removed} removed, {report.documents_unchanged} unchanged",
        f"  passages:  {report.passages_added} added, {report.passages_removed} removed, "
        f"{report.passages_unchanged} unchanged; {report.passages_embedded} embedded",
    ]
    if report.paragraphs_split:
        lines.append(
            f"  {report.paragraphs_split} paragraphs were longer than the model reads and "
            "were split at sentence boundaries"
        )
    if report.files_skipped:
        lines.append(f"  {report.files_skipped} files of other formats skipped")
    if report.problems:
        lines.append(f"  {len(report.problems)} problems with files or records (see above)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- query


Mode = Annotated[
    str | None,
    typer.Option(
        "--mode",
        help="hybrid (default: meaning and words fused), dense (meaning only) or "
        "lexical (BM25 words only).",
        show_default=False,
    ),
]


@app.command()
def query(
    text: Annotated[
        str, typer.Argument(help="What to search for, in your own words.", show_default=False)
    ],
    k: Annotated[int, typer.Option("-k", "--top", help="How many passages to return.")] = 5,
    mode: Mode = None,
    min_score: Annotated[
        float | None,
        typer.Option(
            "--min-score",
            help="Leave out passages scoring below this (dense: cosine -1..1; hybrid: 0..1).",
        ),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only articles dated on or after YYYY-MM-DD.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Only articles dated on or before YYYY-MM-DD.")
    ] = None,
    path: Annotated[
        str | None,
        typer.Option("--path", help="Only files whose path matches this glob, e.g. 'news/*'."),
    ] = None,
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
    index_dir: IndexDir = Path(".semsearch"),
    model: Annotated[
        str | None, typer.Option(help="Must be the index's own model (default: it is).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Find the passages that best match TEXT, best first."""
    with _errors():
        from .query import check_query

        options: dict[str, Any] = dict(
            mode=mode,
            since=since,
            until=until,
            path=path,
            by_article=by_article,
            collapse=collapse,
            highlight=True,
        )
        check_query(text, k, min_score, **options)  # argument errors before any slow work
        with _open(index_dir, model=model) as idx:
            hits = idx.search(text, k=k, min_score=min_score, **options)
            if as_json:
                data = _query_json(text, index_dir, idx.model, hits)
                typer.echo(json.dumps(data, ensure_ascii=False))
            else:
                typer.echo(_format_hits(hits, min_score), nl=False)


def _query_json(text: str, index_dir: Path, model: str, hits: Sequence[Hit]) -> dict[str, Any]:
    keys = (
        "rank",
        "score",
        "scores",
        "text",
        "title",
        "date",
        "path",
        "paragraph",
        "passage_id",
        "key",
        "start",
        "end",
    )
    results = []
    for h in hits:
        item: dict[str, Any] = {key: getattr(h, key) for key in keys}
        item["highlights"] = [list(span) for span in h.highlights]
        item["also_in"] = [
            {
                "title": s.title,
                "date": s.date,
                "path": s.path,
                "paragraph": s.paragraph,
                "passage_id": s.passage_id,
            }
            for s in h.also_in
        ]
        results.append(item)
    return {"query": text, "index": os.fspath(index_dir), "model": model, "results": results}


_BOLD_ON, _BOLD_OFF = "\x01", "\x02"  # markers that survive wrapping, then become ANSI bold


def _format_hits(hits: Sequence[Hit], min_score: float | None) -> str:
    if not hits:
        why = f" scored {min_score} or more" if min_score is not None else " was found"
        return f"No passage{why}.\n"
    width = max(40, min(shutil.get_terminal_size((100, 24)).columns, 100))
    out: list[str] = []
    for h in hits:
        head = f"{h.rank}. " + typer.style(h.title or "(untitled)", bold=True)
        meta = [h.date] if h.date else []
        meta.append(f"score {h.score:.3f}")
        out.append(f"{head}  ({', '.join(meta)})")
        where = f"paragraph {h.paragraph}"
        if h.pieces > 1:
            where += f", part {h.piece} of {h.pieces}"
        source = f"{h.path}#{h.key}" if h.key else h.path  # a record inside a JSON Lines file
        out.append(typer.style(f"   {source}, {where}", dim=True))
        marked = h.text
        for a, b in sorted(h.highlights, reverse=True):
            marked = marked[:a] + _BOLD_ON + marked[a:b] + _BOLD_OFF + marked[b:]
        wrapped = textwrap.fill(marked, width=width, initial_indent="   ", subsequent_indent="   ")
        out.append(wrapped.replace(_BOLD_ON, "\x1b[1m").replace(_BOLD_OFF, "\x1b[22m"))
        for src in h.also_in:
            date = f", {src.date}" if src.date else ""
            line = f"   also in: {src.title}{date} ({src.path}, paragraph {src.paragraph})"
            out.append(typer.style(line, dim=True))
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
    mode: Mode = None,
    index_dir: Annotated[
        Path | None,
        typer.Option(
            "--index",
            help="Keep the dataset's index here to reuse it (default: a temporary one).",
            show_default=False,
        ),
    ] = None,
    protocol: Annotated[
        str,
        typer.Option(
            help="paragraphs: semsearch's own passages; beir: each document one passage, "
            "title + text, as published BEIR figures."
        ),
    ] = "paragraphs",
    model: Annotated[str | None, typer.Option(help="sentence-transformers model.")] = None,
    backend: BackendOption = None,
    precision: PrecisionOption = None,
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
                f"{result.mode}, {result.model}"
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


def _format_info(i: IndexInfo) -> str:
    rows = [
        ("index", i.path),
        ("documents", f"{i.documents:,}"),
        ("passages", f"{i.passages:,}"),
        ("files", f"{i.files:,}"),
        ("model", i.model),
        ("dimension", str(i.dimension)),
        ("embedded by", f"{i.backend} {i.precision}"),
        ("index type", i.index_type),
        ("size on disk", _human_bytes(i.size_bytes)),
        ("created", i.created_at),
        ("updated", i.updated_at),
        ("schema", f"{i.schema_version} (written by semsearch {i.semsearch_version})"),
    ]
    return "\n".join(f"{k + ':':<14}{v}" for k, v in rows)


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
            sys.exit(EXIT_ERROR)


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def main() -> None:
    """Entry point of the ``semsearch`` console script."""
    app(prog_name="semsearch")
