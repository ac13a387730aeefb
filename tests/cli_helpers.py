"""Running the CLI in-process and checking the one-line error contract."""

from __future__ import annotations

from typer.testing import CliRunner

from semsearch.cli import app

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `semsearch ARGS` run in this process."""
    result = runner.invoke(app, list(args))
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
