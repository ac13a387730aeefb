"""Running the CLI in-process and checking the one-line error contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from semsearch.cli import app

runner = CliRunner()
_ROOT = Path(__file__).resolve().parent.parent


def python_semsearch(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m semsearch ARGS` in a real process (this checkout first on the path)."""
    path = os.pathsep.join(p for p in (str(_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, "-m", "semsearch", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def run(*args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `semsearch ARGS` run in this process."""
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def run_faked(
    *args: str, input: str | bytes | None = None, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `semsearch ARGS` in this process with the fake model
    (tests/fake_cli.py); an exception other than the command's exit is raised."""
    from tests import fake_cli

    with fake_cli.faked():
        result = runner.invoke(app, list(args), input=input, env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_error(
    code: int, out: str, err: str, *needles: str, exit_code: int | None = None
) -> str:
    """A failure told in exactly one `error: ...` line holding every needle, no traceback."""
    if exit_code is None:
        assert code != 0
    else:
        assert code == exit_code, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in err + out
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def index_articles(root: Path, articles: dict[str, str]) -> Path:
    """``root``/docs holding ``articles`` (file name -> text) and ``root``/ix, their index
    built by the CLI with the fake model; ``root``."""
    (root / "docs").mkdir()
    for name, text in articles.items():
        (root / "docs" / name).write_text(text, encoding="utf-8")
    code, _, err = run_faked("index", str(root / "docs"), "--index", str(root / "ix"), "-q")
    assert code == 0, err
    return root


def index_and_list(folder: Path, tmp_path: Path) -> tuple[str, list[str], list[dict[str, object]]]:
    """Index ``folder`` with the fake model (it must succeed, without a traceback), then
    list up to 100 hits: (stdout, stderr's lines, the hits of a lexical query for "ok")."""
    ix = str(tmp_path / "ix")
    code, out, err = run_faked("index", str(folder), "--index", ix, "-q")
    assert code == 0, err
    assert "Traceback" not in out + err
    code, found, _ = run_faked(
        "query", "ok", "--mode", "lexical", "--json", "-k", "100", "--index", ix
    )
    return out, err.strip().splitlines(), json.loads(found)["results"]
