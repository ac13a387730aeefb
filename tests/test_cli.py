"""The command line: output formats and every user error, through CliRunner and a real process."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from semsearch.cli import app
from semsearch.storage.lock import WriteLock
from tests.cli_helpers import assert_one_line_error, run, runner
from tests.conftest import SEEDS

# Paragraphs of the seed article (1-based) that answer "who attends the parade":
# Kim joining Putin at the ceremonies (1), Putin expected at the parade (3),
# Kim's presence and 26 world leaders (4), the few Western leaders attending (6).
PARADE_ANSWERS = {1, 3, 4, 6}


@pytest.fixture(scope="module")
def seeds_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of seeds/ built once with the real bundled model."""
    folder = tmp_path_factory.mktemp("cli") / "index"
    code, _out, err = run("index", str(SEEDS), "--index", str(folder), "--quiet")
    assert code == 0, err
    return folder


@pytest.fixture
def index_copy(seeds_index: Path, tmp_path: Path) -> Path:
    target = tmp_path / "index"
    shutil.copytree(seeds_index, target)
    return target


# --------------------------------------------------------------------------- happy paths


@pytest.mark.slow
def test_index_summary_counts(seeds_index: Path, tmp_path: Path) -> None:
    code, out, err = run("index", str(SEEDS), "--index", str(seeds_index), "-q")
    assert code == 0, err
    assert "0 added, 0 updated, 0 removed, 1 unchanged" in out
    assert "7 unchanged; 0 embedded" in out


@pytest.mark.slow
def test_query_json_shape(seeds_index: Path) -> None:
    code, out, err = run(
        "query", "who attends the parade", "-k", "3", "--json", "--index", str(seeds_index)
    )
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == {"query", "corrected_query", "index", "model", "results"}
    assert data["query"] == "who attends the parade"
    assert data["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert [r["rank"] for r in data["results"]] == [1, 2, 3]
    for r in data["results"]:
        assert set(r) == {
            "rank",
            "score",
            "scores",
            "text",
            "title",
            "date",
            "path",
            "abspath",
            "line",
            "column",
            "page",
            "paragraph",
            "passage_id",
            "piece",
            "pieces",
            "key",
            "start",
            "end",
            "highlights",
            "also_in",
        }
        text = r["text"]
        assert r["highlights"] and all(0 <= a < b <= len(text) for a, b in r["highlights"])
        assert r["also_in"] == []
        assert r["title"] == "Eighth anniversary of WWII to take place in China"
        assert r["date"] == "2025-08-28"
        assert r["path"].endswith("000_6ec644ae3fed9123.txt")
        assert set(r["scores"]) == {"dense", "lexical", "fused"}
        assert r["scores"]["fused"] == r["score"]
    scores = [r["score"] for r in data["results"]]
    assert scores == sorted(scores, reverse=True)
    assert data["results"][0]["paragraph"] in PARADE_ANSWERS


@pytest.mark.slow
def test_query_terminal_output(seeds_index: Path) -> None:
    code, out, err = run("query", "who attends the parade", "-k", "2", "--index", str(seeds_index))
    assert code == 0, err
    assert out.startswith("1. Eighth anniversary of WWII to take place in China")
    heads = [line for line in out.splitlines() if line[:1].isdigit()]
    assert [h.split(".")[0] for h in heads] == ["1", "2"]
    assert "2025-08-28" in out and "score 0." in out and "paragraph " in out


@pytest.mark.slow
def test_min_score_can_leave_nothing(seeds_index: Path) -> None:
    code, out, _ = run(
        "query", "parade", "--min-score", "0.99", "--mode", "dense", "--index", str(seeds_index)
    )
    assert code == 1  # found nothing, as grep says
    assert out.startswith("No passage scored 0.99 or more")
    code, out, _ = run(
        "query",
        "parade",
        "--min-score",
        "0.99",
        "--mode",
        "dense",
        "--json",
        "--index",
        str(seeds_index),
    )
    assert code == 1 and json.loads(out)["results"] == []


def _results(*args: str) -> list[dict[str, Any]]:
    code, out, err = run("query", *args, "--json")
    results: list[dict[str, Any]] = json.loads(out)["results"]
    assert code == (0 if results else 1), err  # exit 1: nothing found, as grep
    return results


@pytest.mark.slow
def test_query_json_shows_the_score_of_each_retriever(seeds_index: Path) -> None:
    """Hybrid hits carry the cosine dense mode gives them and the BM25 lexical mode gives
    them (0 for a passage holding no query word); one-mode hits carry only their own."""
    index = ("--index", str(seeds_index))
    text, everything = "military parade in Beijing", ("-k", "7", "--no-collapse")
    hybrid = _results(text, *everything, *index)
    dense = {r["passage_id"]: r for r in _results(text, *everything, "--mode", "dense", *index)}
    lex_hits = _results(text, *everything, "--mode", "lexical", *index)
    lexical = {r["passage_id"]: r["score"] for r in lex_hits}
    assert len(hybrid) == len(dense) == 7 > len(lexical) > 0
    for r in hybrid:
        scores = r["scores"]
        assert scores["fused"] == r["score"]
        assert scores["dense"] == pytest.approx(dense[r["passage_id"]]["score"], abs=1e-5)
        assert scores["lexical"] == pytest.approx(lexical.get(r["passage_id"], 0.0), abs=1e-5)
    for r in dense.values():
        assert r["scores"] == {"dense": r["score"], "lexical": None, "fused": None}


@pytest.mark.slow
def test_a_nonsense_query_scores_below_a_relevant_one(seeds_index: Path) -> None:
    """With the real model: 0.05 is where the README's "little to do with the query" band
    ends; a query about the article's subject passes it, one about physics does not."""
    index = ("--index", str(seeds_index))
    nonsense = _results("quantum chromodynamics", "-k", "7", *index)
    relevant = _results("military parade in Beijing", "-k", "7", *index)
    assert max(float(r["score"]) for r in nonsense) < 0.05 < float(relevant[0]["score"])
    assert _results("quantum chromodynamics", "--min-score", "0.05", *index) == []


@pytest.mark.slow
def test_min_score_keeps_exactly_the_hits_above_it_with_their_scores(seeds_index: Path) -> None:
    index = ("--index", str(seeds_index))
    text = "military parade in Beijing"
    everything = _results(text, "-k", "7", "--no-collapse", *index)
    scores = [float(r["score"]) for r in everything]
    assert len(set(scores)) == 7
    for cut in ((scores[0] + scores[1]) / 2, (scores[3] + scores[4]) / 2):
        for k in ("1", "3", "7"):
            kept = _results(text, "-k", k, "--no-collapse", "--min-score", str(cut), *index)
            want = [r for r in everything if float(r["score"]) >= cut][: int(k)]
            assert [(r["passage_id"], r["score"], r["scores"]) for r in kept] == [
                (r["passage_id"], r["score"], r["scores"]) for r in want
            ]


@pytest.mark.slow
def test_info(seeds_index: Path) -> None:
    code, out, err = run("info", "--json", "--index", str(seeds_index))
    assert code == 0, err
    data = json.loads(out)
    assert data["documents"] == 1 and data["passages"] == 7 and data["files"] == 1
    assert data["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert data["dimension"] == 384 and data["index_type"] == "flat"
    assert data["size_bytes"] > 0 and data["created_at"] and data["updated_at"]
    code, out, _ = run("info", "--index", str(seeds_index))
    assert "passages:     7" in out


def test_every_command_has_help() -> None:
    """Every command the app has (found, not listed by hand) explains itself and each option."""
    import typer.main

    group = typer.main.get_command(app)
    commands = group.commands  # type: ignore[attr-defined]
    assert {"index", "query", "eval", "info"} <= set(commands)
    code, top, _ = run("--help")
    assert code == 0
    for name, command in commands.items():
        assert name in top  # listed in the top-level help
        code, out, err = run(name, "--help")
        assert code == 0, err
        assert out.startswith(f"Usage: semsearch {name}") or f"Usage: root {name}" in out, out
        assert (command.help or "").strip(), f"{name} has no help text"
        for param in command.params:
            if getattr(param, "hidden", False) or param.name == "help":
                continue
            if param.param_type_name == "option":
                assert (getattr(param, "help", None) or "").strip(), f"{name} {param.opts}"
                assert param.opts[-1] in out, (name, param.opts)


def test_env_var_chooses_the_index(tmp_path: Path) -> None:
    result = runner.invoke(app, ["info"], env={"SEMSEARCH_INDEX": str(tmp_path / "elsewhere")})
    assert result.exit_code == 2
    assert str(tmp_path / "elsewhere") in result.stderr


# --------------------------------------------------------------------------- errors


def test_path_that_does_not_exist(tmp_path: Path) -> None:
    code, out, err = run("index", str(tmp_path / "nope"), "--index", str(tmp_path / "ix"))
    assert_one_line_error(code, out, err, "nope", "no such file or folder")
    assert not (tmp_path / "ix").exists()


def test_folder_without_articles(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "slides.pptx").write_bytes(b"PK\x03\x04")
    code, out, err = run("index", str(tmp_path / "docs"), "--index", str(tmp_path / "ix"))
    assert_one_line_error(code, out, err, "no readable articles", "1 files of other formats")


def test_folder_with_only_a_damaged_pdf(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "report.pdf").write_bytes(b"%PDF-1.4")
    code, out, err = run("index", str(tmp_path / "docs"), "--index", str(tmp_path / "ix"))
    assert_one_line_error(
        code, out, err, "no readable articles", "report.pdf: damaged PDF", "left unchanged"
    )


def test_query_before_any_index(tmp_path: Path) -> None:
    code, out, err = run("query", "anything", "--index", str(tmp_path / "none"))
    assert_one_line_error(code, out, err, "semsearch index PATH")


@pytest.mark.parametrize("args", [["query", ""], ["query", "   "]])
def test_empty_query(args: list[str], tmp_path: Path) -> None:
    code, out, err = run(*args, "--index", str(tmp_path))
    assert_one_line_error(code, out, err, "query is empty")


def test_k_zero(tmp_path: Path) -> None:
    code, out, err = run("query", "parade", "-k", "0", "--index", str(tmp_path))
    assert_one_line_error(code, out, err, "at least 1")


def test_usage_errors_are_one_line_with_code_2() -> None:
    for args in (["query"], ["query", "x", "--bogus"], ["query", "x", "-k", "many"], ["frob"]):
        code, out, err = run(*args)
        assert code == 2, args
        assert_one_line_error(code, out, err, "--help")


@pytest.mark.slow
def test_other_model_is_refused(index_copy: Path) -> None:
    code, out, err = run(
        "query", "parade", "--model", "some/other-model", "--index", str(index_copy)
    )
    assert_one_line_error(
        code, out, err, "built with sentence-transformers/all-MiniLM-L6-v2", "--rebuild"
    )
    code, out, err = run(
        "index", str(SEEDS), "--model", "some/other-model", "--index", str(index_copy)
    )
    assert_one_line_error(code, out, err, "--rebuild")


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["delete", "truncate", "garbage"])
def test_damaged_vector_file(index_copy: Path, damage: str) -> None:
    (vec,) = index_copy.glob("vectors.*.faiss")
    if damage == "delete":
        vec.unlink()
    elif damage == "truncate":
        vec.write_bytes(vec.read_bytes()[: vec.stat().st_size // 2])
    else:
        vec.write_bytes(b"not a faiss file" * 10)
    code, out, err = run("query", "parade", "--index", str(index_copy))
    assert_one_line_error(code, out, err, "--rebuild")
    # and the advice works
    code, out, err = run("index", str(SEEDS), "--rebuild", "-q", "--index", str(index_copy))
    assert code == 0, err
    code, out, err = run("query", "parade", "--json", "--index", str(index_copy))
    assert code == 0 and len(json.loads(out)["results"]) == 5


@pytest.mark.slow
def test_damaged_database(index_copy: Path) -> None:
    (index_copy / "semsearch.db").write_bytes(b"garbage" * 100)
    for name in ("semsearch.db-wal", "semsearch.db-shm"):
        (index_copy / name).unlink(missing_ok=True)
    code, out, err = run("query", "parade", "--index", str(index_copy))
    assert_one_line_error(code, out, err, "damaged", "--rebuild")
    code, out, err = run("info", "--index", str(index_copy))
    assert_one_line_error(code, out, err, "--rebuild")


@pytest.mark.slow
def test_newer_schema(index_copy: Path) -> None:
    with sqlite3.connect(index_copy / "semsearch.db") as db:
        db.execute("PRAGMA user_version = 99")
    code, out, err = run("query", "parade", "--index", str(index_copy))
    assert_one_line_error(code, out, err, "newer semsearch", "upgrade")
    code, out, err = run("index", str(SEEDS), "--index", str(index_copy))
    assert_one_line_error(code, out, err, "newer semsearch")


@pytest.mark.slow
def test_second_writer_refused(index_copy: Path) -> None:
    with WriteLock(str(index_copy)):
        code, out, err = run("index", str(SEEDS), "--index", str(index_copy))
    assert_one_line_error(code, out, err, "another semsearch process", "is writing")
    # the refused writer changed nothing and a query still answers
    code, out, _ = run("query", "parade", "--json", "--index", str(index_copy))
    assert code == 0 and len(json.loads(out)["results"]) == 5


# --------------------------------------------------------------------------- a real process


def _semsearch_command() -> str:
    exe = Path(sys.executable).with_name("semsearch")
    found = str(exe) if exe.exists() else shutil.which("semsearch")
    assert found, "the semsearch console script is not installed"
    return found


@pytest.mark.slow
def test_installed_command_end_to_end(tmp_path: Path) -> None:
    """`semsearch index seeds/` then a query, as a user runs them: relative paths stay relative."""
    shutil.copytree(SEEDS, tmp_path / "seeds")
    exe = _semsearch_command()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [exe, "index", "seeds/"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert "1 added" in done.stdout
    assert (tmp_path / ".semsearch" / "semsearch.db").is_file()
    done = subprocess.run(
        [exe, "query", "who attends the parade", "-k", "3", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)["results"]
    assert results[0]["path"] == "seeds/000_6ec644ae3fed9123.txt"
    top3 = [r["paragraph"] for r in results]
    assert top3[0] in PARADE_ANSWERS, top3
    assert len(PARADE_ANSWERS.intersection(top3)) >= 2, top3
    # an error from the real process: one line, exit 2, no traceback
    done = subprocess.run(
        [exe, "query", "x", "--index", "missing"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr
