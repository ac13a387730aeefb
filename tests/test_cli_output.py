"""Output for editors and scripts, and command-line conventions (issue 9, items 3 and 4).

Fast: an index built with the fake embedder, queried through CliRunner and
through real processes of tests/fake_cli.py (the whole CLI, fake model). One
slow test runs the installed ``semsearch`` command with the real model.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import typer.main

from semsearch import cli
from semsearch.cli import app
from semsearch.index import Index
from semsearch.query import MAX_QUERY_CHARS, MODES
from semsearch.query import output as O
from tests import fake_cli
from tests.cli_helpers import assert_one_line_error, python_semsearch, run_faked, runner
from tests.conftest import ROOT, SEEDS

FAKE_CLI = [sys.executable, str(Path(fake_cli.__file__).resolve())]
ESC = "\x1b["
QUERY = "river flood town"
NOTHING = "zzyzx"  # in no article: lexical search finds nothing

LONG = " ".join(
    f"Sentence {i} tells of harbour boats and their crews in the rain." for i in range(12)
)
ARTICLES = {
    "a.txt": "River floods the town\n\nHeavy rain made the river burst its banks on Tuesday. "
    'Residents were moved to the school on the hill.\n\nThe flood, with commas, "quotes" '
    "and a | pipe, reached the town hall.\n",
    "b.txt": "Chess champion retires\n\nThe world chess champion said she will retire. "
    "Her last match was a draw against a young rival.\n",
    "c.txt": f"Harbour life\n\n{LONG} The river town flood was the worst in years.\n",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding docs/ (three articles) and ix/ (their index, fake model)."""
    root = tmp_path_factory.mktemp("output")
    (root / "docs").mkdir()
    for name, text in ARTICLES.items():
        (root / "docs" / name).write_text(text, encoding="utf-8")
    result = _invoke("index", str(root / "docs"), "--index", str(root / "ix"), "-q")
    assert result[0] == 0, result
    return root


_invoke = run_faked  # `semsearch ARGS` in this process, with the fake model


def q(built: Path, *args: str, **kw: Any) -> tuple[int, str, str]:
    """`semsearch query ARGS --index built/ix` with the fake model, in this process."""
    return _invoke("query", *args, "--index", str(built / "ix"), **kw)


@pytest.fixture
def search_calls() -> Iterator[list[dict[str, Any]]]:
    """The keyword arguments of every `Index.search` call meanwhile."""
    calls: list[dict[str, Any]] = []
    original = Index.search

    def spy(self: Index, query: str, k: int = 5, **options: Any) -> Any:
        calls.append(options)
        return original(self, query, k, **options)

    with mock.patch.object(Index, "search", spy):
        yield calls


# --------------------------------------------------------------------------- JSON and JSONL


def test_json_is_the_library_object(built: Path) -> None:
    code, out, err = q(built, QUERY, "-k", "3", "--json")
    assert code == 0, err
    with fake_cli.faked(), Index.open(built / "ix") as idx:
        hits = idx.search(QUERY, k=3, highlight=True)
        expected = O.results_dict(QUERY, str(built / "ix"), idx.model, hits)
    assert json.loads(out) == expected
    first = expected["results"][0]
    assert first["abspath"] == os.path.realpath(built / "docs" / Path(first["path"]).name)
    assert "line" in first and first["highlights"]


def test_jsonl_is_one_result_a_line(built: Path) -> None:
    _, out, _ = q(built, QUERY, "-k", "3", "--json")
    code, lines, err = q(built, QUERY, "-k", "3", "--jsonl")
    assert code == 0, err
    assert lines.endswith("\n") and len(lines.splitlines()) == 3
    assert [json.loads(line) for line in lines.splitlines()] == json.loads(out)["results"]


@pytest.mark.parametrize("fmt", ["json", "jsonl", "vimgrep"])
def test_format_flags_are_the_format_option(built: Path, fmt: str) -> None:
    assert q(built, QUERY, f"--{fmt}") == q(built, QUERY, "--format", fmt)


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--json", "--jsonl"], ["json and jsonl"]),
        (["--format", "csv", "--vimgrep"], ["csv and vimgrep"]),
        (["--json", "--jsonl", "--vimgrep"], ["json, jsonl, vimgrep"]),
    ],
)
def test_two_formats_at_once_are_refused(built: Path, args: list[str], needles: list[str]) -> None:
    code, out, err = q(built, QUERY, *args)
    assert_one_line_error(code, out, err, "choose one output format", *needles, exit_code=2)
    assert out == ""


def test_an_unknown_format_names_the_choices(built: Path) -> None:
    code, out, err = q(built, QUERY, "--format", "yaml")
    line = assert_one_line_error(code, out, err, "yaml", "'csv'", "'markdown'", exit_code=2)
    assert "Value error" not in line


# --------------------------------------------------------------------------- rows


def test_csv(built: Path) -> None:
    code, out, err = q(built, QUERY, "-k", "10", "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    _, js, _ = q(built, QUERY, "-k", "10", "--json")
    results = json.loads(js)["results"]
    assert len(rows) == len(results) >= 4
    for row, r in zip(rows, results, strict=True):
        assert row["text"] == r["text"] and row["path"] == r["path"]
        assert int(row["rank"]) == r["rank"] and float(row["score"]) == r["score"]
    assert any('"quotes"' in row["text"] and "|" in row["text"] for row in rows)


def test_tsv(built: Path) -> None:
    code, out, err = q(built, QUERY, "-k", "4", "--format", "tsv")
    assert code == 0, err
    header, *rows = (line.split("\t") for line in out.splitlines())
    assert header == list(O.TABLE_COLUMNS)
    assert len(rows) == 4 and all(len(r) == len(header) for r in rows)


def test_markdown(built: Path) -> None:
    code, out, err = q(built, QUERY, "-k", "10", "--format", "markdown")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("| rank | score |") and lines[1].startswith("|---:|")
    columns = lines[0].count(" | ")
    assert all(line.count(" | ") == columns for line in lines[2:])  # the pipe is escaped
    assert any("**" in line for line in lines[2:])  # highlights in bold


def test_vimgrep_lines_open_in_an_editor(built: Path) -> None:
    code, out, err = q(built, QUERY, "-k", "10", "--vimgrep")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) >= 4
    for line in lines:
        m = re.fullmatch(r"(.+?):(\d+):(\d+): (.+)", line)
        assert m, line
        assert Path(m[1]).is_file(), m[1]  # opens from here, the current directory
        # the line and (byte) column are where the passage starts in its file
        line = Path(m[1]).read_bytes().splitlines()[int(m[2]) - 1]
        at = line[int(m[3]) - 1 :].decode("utf-8")
        assert at.split()[0] == m[4].split()[0], (at[:40], m[4][:40])


# --------------------------------------------------------------------------- snippets, highlights


def test_snippet_trims_the_terminal_text_not_the_json(built: Path) -> None:
    code, out, _ = q(built, "harbour boats crews", "-k", "1", "--snippet", "80")
    assert code == 0
    body = [line.strip() for line in out.splitlines()[2:] if line.strip()]
    shown = " ".join(body)
    assert len(shown) <= 80 and O.ELLIPSIS in shown
    code, out, _ = q(built, "harbour boats crews", "-k", "1", "--snippet", "80", "--json")
    assert out == q(built, "harbour boats crews", "-k", "1", "--json")[1]  # the full text
    assert len(json.loads(out)["results"][0]["text"]) > 200


def test_snippet_applies_to_rows_and_vimgrep(built: Path) -> None:
    _, out, _ = q(built, "harbour boats crews", "-k", "1", "--format", "csv", "--snippet", "50")
    (row,) = csv.DictReader(io.StringIO(out, newline=""))
    assert len(row["text"]) <= 50
    _, out, _ = q(built, "harbour boats crews", "-k", "1", "--vimgrep", "--snippet", "50")
    assert len(out.strip().split(": ", 1)[1]) <= 50


def test_snippet_must_be_positive(built: Path) -> None:
    code, out, err = q(built, QUERY, "--snippet", "0")
    assert_one_line_error(code, out, err, "--snippet", exit_code=2)


def test_no_highlight_skips_the_work(built: Path, search_calls: list[dict[str, Any]]) -> None:
    code, out, _ = q(built, QUERY, "--json", "--no-highlight")
    assert code == 0
    assert search_calls[-1]["highlight"] is False
    assert all(r["highlights"] == [] for r in json.loads(out)["results"])
    q(built, QUERY, "--json")
    assert search_calls[-1]["highlight"] is True
    for fmt in ("csv", "tsv", "vimgrep"):  # these show no highlights: none worked out
        q(built, QUERY, "--format", fmt)
        assert search_calls[-1]["highlight"] is False, fmt
    q(built, QUERY, "--format", "csv", "--snippet", "40")  # ...unless a snippet centres on one
    assert search_calls[-1]["highlight"] is True
    code, plain, _ = q(built, QUERY, "--no-highlight", "--color", "always")
    assert code == 0 and "\x1b[1m" in plain  # the titles are still bold...
    assert "\x1b[22m" not in plain  # ...but no sentence is


# --------------------------------------------------------------------------- the query from stdin


def test_query_from_standard_input(built: Path) -> None:
    code, out, err = q(built, "-", "--json", input=QUERY + "\n")
    assert code == 0, err
    assert json.loads(out) == json.loads(q(built, QUERY, "--json")[1])


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"", "query is empty"),
        (b"  \n\n", "query is empty"),
        (b"caf\xe9 river", "UTF-8"),
        (b"word " * (MAX_QUERY_CHARS * 2), "longer than"),
    ],
)
def test_bad_standard_input_is_one_line(built: Path, data: bytes, needle: str) -> None:
    code, out, err = q(built, "-", input=data)
    assert_one_line_error(code, out, err, needle, exit_code=2)


# --------------------------------------------------------------------------- exit codes


def test_exit_status_says_whether_anything_was_found(built: Path, tmp_path: Path) -> None:
    code, out, err = q(built, QUERY)
    assert code == 0 and out.startswith("1. ")
    code, out, err = q(built, NOTHING, "--mode", "lexical")
    assert (code, out, err) == (1, "No passage was found.\n", "")
    for fmt in ("jsonl", "vimgrep"):
        assert q(built, NOTHING, "--mode", "lexical", "--format", fmt) == (1, "", "")
    code, out, _ = q(built, NOTHING, "--mode", "lexical", "--json")
    assert code == 1 and json.loads(out)["results"] == []
    code, out, _ = q(built, NOTHING, "--mode", "lexical", "--format", "csv")
    assert code == 1 and out.splitlines() == [",".join(O.TABLE_COLUMNS)]
    # an error is 2, whatever it is: the index missing, or a bad argument
    code, out, err = _invoke("query", QUERY, "--index", str(tmp_path / "none"))
    assert_one_line_error(code, out, err, "semsearch index PATH", exit_code=2)
    assert_one_line_error(*q(built, QUERY, "-k", "0"), "at least 1", exit_code=2)


# --------------------------------------------------------------------------- colour


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("choice", "tty", "env", "expected"),
    [
        ("auto", True, {}, True),
        ("auto", False, {}, False),
        ("auto", True, {"NO_COLOR": "1"}, False),
        ("auto", True, {"NO_COLOR": ""}, True),  # no-color.org: set and not empty
        ("auto", True, {"TERM": "dumb"}, False),
        ("never", True, {}, False),
        ("always", False, {}, True),
        ("always", False, {"NO_COLOR": "1", "TERM": "dumb"}, True),  # asked for explicitly
    ],
)
def test_the_colour_rule(
    monkeypatch: pytest.MonkeyPatch, choice: str, tty: bool, env: dict[str, str], expected: bool
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    stream = _Tty() if tty else io.StringIO()
    assert cli._use_color(choice, stream) is expected


def test_no_escape_codes_unless_asked(built: Path) -> None:
    code, out, _ = q(built, QUERY)  # CliRunner's stdout is no terminal
    assert code == 0 and ESC not in out
    assert ESC not in q(built, QUERY, "--color", "never")[1]
    for env in ({"NO_COLOR": "1"}, {"TERM": "dumb"}):
        assert ESC not in q(built, QUERY, env=env)[1]
    out = q(built, QUERY, "--color", "always")[1]
    assert "\x1b[1m" in out and "\x1b[2m" in out and "\x1b[22m" in out
    assert re.sub(r"\x1b\[\d+m", "", out) == q(built, QUERY)[1]  # the same text, styled


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
@pytest.mark.parametrize(
    ("env", "coloured"), [({}, True), ({"NO_COLOR": "1"}, False), ({"TERM": "dumb"}, False)]
)
def test_colour_on_a_real_terminal(built: Path, env: dict[str, str], coloured: bool) -> None:
    """A real process writing to a pseudo-terminal: auto colours it unless told not to."""
    primary, secondary = os.openpty()
    base = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    proc = subprocess.run(
        [*FAKE_CLI, "query", QUERY, "-k", "1", "--index", str(built / "ix")],
        stdout=secondary,
        stderr=subprocess.PIPE,
        env={**base, "PYTHONPATH": str(ROOT), "TERM": "xterm", **env},
        timeout=120,
    )
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the terminal's other end is closed: all read
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    out = b"".join(chunks).decode()
    assert proc.returncode == 0, proc.stderr
    assert "1. " in out
    assert (ESC in out) is coloured


# --------------------------------------------------------------------------- the command line


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_did_you_mean() -> None:
    code, out, err = run("qeury", "parade")
    line = assert_one_line_error(code, out, err, exit_code=2)
    prog = r"\S+"  # CliRunner calls the program `root`
    assert re.fullmatch(
        rf"error: no such command 'qeury'; did you mean 'query'\? \(see `{prog} --help`\)", line
    ), line
    code, out, err = run("frobnicate")
    line = assert_one_line_error(code, out, err, "no such command 'frobnicate'", exit_code=2)
    assert all(name in line for name in ("index", "query", "info", "check"))


def _commands() -> dict[str, Any]:
    group = typer.main.get_command(app)
    return dict(group.commands)  # type: ignore[attr-defined]


def test_short_help_and_version() -> None:
    for args in ([], *([name] for name in _commands())):
        long = run(*args, "--help")
        assert long[0] == 0 and long[1].startswith("Usage: ")
        assert run(*args, "-h") == long
    code, out, _ = run("--version")
    assert code == 0 and re.fullmatch(r"semsearch \d+\.\d+\.\d+\S*\n", out)


def _option_blocks(help_text: str) -> list[tuple[str, str]]:
    """(its names and metavar, all its help) for each option, wrapped lines joined."""
    section = help_text.split("Options:", 1)[1]
    blocks: list[tuple[str, str]] = []
    for line in section.splitlines():
        if re.match(r"  -", line):
            head = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]
            blocks.append((head, line.strip()))
        elif line.strip() and blocks and line.startswith("   "):
            blocks[-1] = (blocks[-1][0], blocks[-1][1] + " " + line.strip())
        elif line.strip():
            break
    return [(head, re.sub(r"\s+", " ", text)) for head, text in blocks]


def _choices(param: Any) -> list[str]:
    """The values an option accepts, when it is a choice (a click Choice or a Literal)."""
    kind = getattr(param, "type", None)
    if getattr(kind, "choices", None):
        return [str(c) for c in kind.choices]
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = typing.get_args(annotation)
    else:
        members = (annotation,)
    return [
        str(v)
        for m in members
        if typing.get_origin(m) is typing.Literal
        for v in typing.get_args(m)
    ]


def test_help_walk() -> None:
    """Every command (found, not listed) and every option: help text, choices, defaults."""
    code, top, _ = run("--help")
    assert code == 0
    assert "--install-completion" in top and "--show-completion" in top and "--version" in top
    commands = _commands()
    assert {"index", "query", "eval", "info", "check"} <= set(commands)
    seen_choices: set[tuple[str, str | None]] = set()
    for name, command in commands.items():
        assert name in top
        code, out, err = run(name, "--help")
        assert code == 0, err
        assert (command.help or "").strip(), f"{name} has no help text"
        blocks = _option_blocks(out)
        for param in command.params:
            if getattr(param, "hidden", False) or param.param_type_name != "option":
                continue
            assert (getattr(param, "help", None) or "").strip(), (name, param.opts)
            ((head, block),) = [
                (h, b) for h, b in blocks if param.opts[-1] in re.findall(r"-[\w-]+", h)
            ]
            for choice in _choices(param):  # in the option's metavar, as <a|b|c>
                assert choice in head, (name, param.opts, choice)
                seen_choices.add((name, param.name))
            flag = getattr(param, "is_flag", False) and not getattr(param, "secondary_opts", [])
            if param.default is not None and not flag:  # shown by click, or said in the help
                assert re.search(r"\[default: |\(default[: ]", block), (name, param.opts, block)
    wanted = {("query", n) for n in ("mode", "output_format", "color")} | {("index", "backend")}
    assert wanted <= seen_choices


def test_cli_choices_are_the_librarys() -> None:
    assert set(typing.get_args(cli.ModeName)) == set(MODES)
    assert typing.get_args(cli.FormatName) == O.FORMATS


def test_shell_completion() -> None:
    def complete(words: str, cword: int) -> list[str]:
        done = python_semsearch(
            env={
                "_SEMSEARCH_COMPLETE": "complete_bash",
                "COMP_WORDS": words,
                "COMP_CWORD": str(cword),
            }
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert complete("semsearch qu", 1) == ["query"]
    assert complete("semsearch query x --format c", 4) == ["csv"]
    assert set(complete("semsearch query x --color ", 4)) == {"auto", "always", "never"}
    done = python_semsearch(
        "--show-completion", "bash", env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    )
    assert done.returncode == 0 and "_SEMSEARCH_COMPLETE=complete_bash" in done.stdout


def test_install_completion(tmp_path: Path) -> None:
    done = python_semsearch(
        "--install-completion",
        "bash",
        env={"HOME": str(tmp_path), "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert "bash completion installed" in done.stdout
    script = tmp_path / ".bash_completions" / "semsearch.sh"
    assert "_SEMSEARCH_COMPLETE" in script.read_text()
    assert str(script.name) in (tmp_path / ".bashrc").read_text()


# --------------------------------------------------------------------------- real processes


def _fake_process(
    built: Path, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FAKE_CLI, "query", *args, "--index", str(built / "ix")],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )


def test_jsonl_vimgrep_and_exit_codes_in_a_real_process(built: Path) -> None:
    done = _fake_process(built, QUERY, "-k", "3", "--jsonl")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["rank"] for r in rows] == [1, 2, 3]
    done = _fake_process(built, QUERY, "-k", "3", "--vimgrep", cwd=built)
    assert done.returncode == 0, done.stderr
    paths = [line.split(":", 1)[0] for line in done.stdout.splitlines()]
    assert len(paths) == 3 and all(p.startswith("docs/") for p in paths)  # relative: shorter
    done = _fake_process(built, NOTHING, "--mode", "lexical", "--jsonl")
    assert (done.returncode, done.stdout, done.stderr) == (1, "", "")
    done = _fake_process(built, QUERY, "--format", "nope")
    assert done.returncode == 2 and done.stderr.count("\n") == 1


@pytest.mark.slow
def test_installed_command_formats_and_exit_status(tmp_path: Path) -> None:
    """The installed `semsearch`, real model: --jsonl, --vimgrep, exit 1 when nothing is found."""
    exe = Path(sys.executable).with_name("semsearch")
    found = str(exe) if exe.exists() else shutil.which("semsearch")
    assert found, "the semsearch console script is not installed"
    shutil.copytree(SEEDS, tmp_path / "seeds")

    def run_cmd(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [found, *args],
            cwd=tmp_path,
            input=stdin,
            capture_output=True,
            text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            timeout=600,
        )

    assert run_cmd("index", "seeds/", "-q").returncode == 0
    done = run_cmd("query", "who attends the parade", "-k", "3", "--jsonl")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert all(r["path"] == "seeds/000_6ec644ae3fed9123.txt" for r in rows)
    done = run_cmd("query", "-", "-k", "2", "--vimgrep", stdin="who attends the parade\n")
    assert done.returncode == 0, done.stderr
    for line in done.stdout.splitlines():
        path, number, column, _text = line.split(":", 3)
        assert path == "seeds/000_6ec644ae3fed9123.txt" and int(number) >= 1 and column == "1"
    done = run_cmd("query", NOTHING, "--mode", "lexical")
    assert (done.returncode, done.stderr) == (1, "")
