"""`semsearch mcp`: the MCP server for agents (issue 10, part 5).

End to end: the real process (tests/fake_cli.py, the whole CLI with the fake
model) started and spoken to by the MCP SDK's own stdio client. In process:
the formatting of answers, and which tools load a model.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp_types import CallToolResult, TextContent
from mcp_types.version import LATEST_HANDSHAKE_VERSION
from pydantic import BaseModel, ValidationError

from semsearch.index import Index
from semsearch.serve import agent
from semsearch.serve.service import MAX_K, Service
from tests import fake_cli
from tests.cli_helpers import assert_one_line_error, python_semsearch
from tests.conftest import ROOT

FAKE_CLI = str(Path(fake_cli.__file__).resolve())
TIMEOUT = 60  # seconds for a whole conversation: a bound against hanging, not a measure

ARTICLES = {
    "news/parade.txt": " date 2025-08-28 1\nLeaders gather in Beijing\n"
    "The city closed its main avenue for a week of rehearsals.\n"
    "World leaders are expected to attend the military parade on Wednesday.\n"
    "Hotels near the square are full.\n",
    "news/harvest.txt": " date 2024-09-10 2\nA late harvest\n"
    "Farmers in the valley began picking grapes two weeks late.\n"
    "Rain in August slowed the ripening of the fruit.\n",
    "notes/bread.txt": "Sourdough notes\n\nFeed the starter twice a day with flour and water.\n\n"
    "Bake the bread in a hot oven with steam for the crust.\n",
}
PARADE = "World leaders are expected to attend the military parade on Wednesday."


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding docs/ (three articles) and ix/ (their index, fake model)."""
    root = tmp_path_factory.mktemp("mcp")
    for name, text in ARTICLES.items():
        (root / "docs" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "docs" / name).write_text(text, encoding="utf-8")
    with fake_cli.faked(), Index.open(root / "ix", create=True) as index:
        index.add([root / "docs"])
    return root


def _env() -> dict[str, str]:
    return {
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "SEMSEARCH_CACHE": os.environ.get("SEMSEARCH_CACHE", ""),
    }


def _server(index_dir: Path) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=[FAKE_CLI, "mcp", "--index", str(index_dir)],
        env=_env(),
        cwd=str(ROOT),
    )


def _text(result: CallToolResult) -> list[str]:
    texts = []
    for block in result.content:
        assert isinstance(block, TextContent), block
        texts.append(block.text)
    return texts


def _expected(index_dir: Path) -> dict[str, Any]:
    """What the library says of the index, computed here, not by the server."""
    with fake_cli.faked(), Index.open(index_dir) as index:
        hits = index.search("who attends the parade", k=3)
        parade = next(h for h in hits if h.text == PARADE)
        view = index.passage(parade.passage_id, context=1)
        return {
            "first": hits[0],
            "parade": parade,
            "before": [h.passage_id for h in view.before],
            "after": [h.passage_id for h in view.after],
            "info": index.info().to_dict(),
            "reranked": [
                h.passage_id for h in index.search("bread starter", k=5, rerank=True)
            ],
        }


# --------------------------------------------------------------------------- end to end


def test_an_agent_searches_reads_and_gets_one_line_errors(built: Path, tmp_path: Path) -> None:
    expected = _expected(built / "ix")
    parade = expected["parade"]
    assert expected["first"].passage_id == parade.passage_id  # the corpus makes it so
    log_path = tmp_path / "server-stderr.log"

    async def conversation() -> None:
        with anyio.fail_after(TIMEOUT):
            async with (
                stdio_client(_server(built / "ix"), errlog=errors) as (read, write),
                ClientSession(read, write) as session,
            ):
                init = await session.initialize()
                assert init.server_info.name == "semsearch"
                assert init.instructions and "search" in init.instructions

                # the four tools, each telling an agent when to use it, with its schema
                tools = {t.name: t for t in (await session.list_tools()).tools}
                assert set(tools) == {"search", "get_passage", "similar", "index_info"}
                for tool in tools.values():
                    assert tool.description and len(tool.description) > 80, tool.name
                    assert tool.input_schema["type"] == "object"
                    assert tool.annotations is not None and tool.annotations.read_only_hint
                search_schema = tools["search"].input_schema
                assert search_schema["required"] == ["query"]
                props = search_schema["properties"]
                assert set(props) == {"query", "k", "mode", "since", "until", "path", "rerank"}
                assert props["rerank"]["type"] == "boolean" and not props["rerank"]["default"]
                assert props["k"]["maximum"] == MAX_K and props["k"]["default"] == 10
                assert set(props["mode"]["enum"]) == {"hybrid", "dense", "lexical"}
                assert "YYYY-MM-DD" in props["since"]["description"]
                assert "glob" in props["path"]["description"]
                assert tools["get_passage"].input_schema["required"] == ["passage_id"]
                assert tools["similar"].input_schema["required"] == ["passage_id"]
                assert "context" in tools["get_passage"].description.lower()

                # search: the parade passage first, with its citation line, and the JSON
                found = await session.call_tool(
                    "search", {"query": "who attends the parade", "k": 3}
                )
                assert not found.is_error, _text(found)
                blocks = _text(found)
                assert len(blocks) == len(found.structured_content["results"]) <= 3
                first_line, first_text = blocks[0].split("\n", 1)
                assert first_line == (
                    f"[1] Leaders gather in Beijing (2025-08-28) — {parade.abspath}, "
                    f"paragraph {parade.paragraph} — score {parade.score:.3f} — "
                    f"passage_id {parade.passage_id}"
                )
                assert first_text == PARADE
                data = found.structured_content
                assert data["query"] == "who attends the parade"
                assert data["results"][0]["passage_id"] == parade.passage_id
                assert data["results"][0]["title"] == "Leaders gather in Beijing"

                # filters reach the library: a date range without the parade
                dated = await session.call_tool(
                    "search",
                    {"query": "who attends the parade", "until": "2025-01-01", "k": 5},
                )
                assert not dated.is_error
                dates = [r["date"] for r in dated.structured_content["results"]]
                assert dates and all(d is not None and d <= "2025-01-01" for d in dates)
                notes = await session.call_tool(
                    "search", {"query": "bread starter", "path": "*/notes/*", "k": 5}
                )
                paths = [r["abspath"] for r in notes.structured_content["results"]]
                reranked = await session.call_tool(
                    "search", {"query": "bread starter", "k": 5, "rerank": True}
                )
                assert not reranked.is_error, _text(reranked)
                got = [r["passage_id"] for r in reranked.structured_content["results"]]
                assert got == expected["reranked"]
                assert paths and all("/docs/notes/" in p for p in paths), paths
                none = await session.call_tool(
                    "search", {"query": "parade", "path": "*/nowhere/*", "mode": "lexical"}
                )
                assert not none.is_error and none.structured_content["results"] == []
                assert _text(none)[0].startswith("No passages found")

                # get_passage: the passage with its neighbours, in reading order
                read = await session.call_tool(
                    "get_passage", {"passage_id": parade.passage_id, "context": 1}
                )
                assert not read.is_error, _text(read)
                view = read.structured_content
                assert view["passage"]["passage_id"] == parade.passage_id
                assert [p["passage_id"] for p in view["before"]] == expected["before"]
                assert [p["passage_id"] for p in view["after"]] == expected["after"]
                assert expected["before"] and expected["after"]
                text = _text(read)[0]
                assert text.index("The city closed its main avenue") < text.index(PARADE)
                assert text.index(PARADE) < text.index("Hotels near the square are full.")
                assert f"passage_id {parade.passage_id} (this passage)" in text

                # similar: more like it, never itself
                like = await session.call_tool("similar", {"passage_id": parade.passage_id, "k": 5})
                assert not like.is_error, _text(like)
                ids = [r["passage_id"] for r in like.structured_content["results"]]
                assert ids and parade.passage_id not in ids
                assert all(f"passage_id {parade.passage_id}\n" not in b for b in _text(like))

                # index_info: the library's counts
                info = await session.call_tool("index_info", {})
                assert not info.is_error
                got = info.structured_content
                for key in ("documents", "passages", "files", "generation", "model"):
                    assert got[key] == expected["info"][key], key
                assert f"{expected['info']['passages']} passages" in _text(info)[0]

                # bad input: a tool error holding the library's one line; the server goes on
                bad_date = await session.call_tool(
                    "search", {"query": "parade", "since": "2025-02-30"}
                )
                unknown = await session.call_tool("get_passage", {"passage_id": 99999})
                too_many = await session.call_tool("similar", {"passage_id": 1, "k": 0})
                empty = await session.call_tool("search", {"query": "  "})
                not_a_number = await session.call_tool("search", {"query": "x", "k": "ten"})
                for result, needle in [
                    (bad_date, "since must be a date like"),
                    (unknown, "holds no passage 99999"),
                    (too_many, f"k must be a whole number from 1 to {MAX_K} (got 0)"),
                    (empty, "the query is empty"),
                    (not_a_number, "bad arguments: k:"),
                ]:
                    assert result.is_error, needle
                    [line] = _text(result)
                    assert needle in line and "\n" not in line, line
                    assert "Traceback" not in line and "Error executing tool" not in line
                again = await session.call_tool("index_info", {})
                assert not again.is_error

    with log_path.open("w", encoding="utf-8") as errors:
        anyio.run(conversation)
    log = log_path.read_text(encoding="utf-8")
    assert "Traceback" not in log, log


def test_a_commit_by_another_process_is_seen_without_restart(built: Path, tmp_path: Path) -> None:
    """The server answers from the newest commit: an article indexed meanwhile is found."""
    shutil.copytree(built, tmp_path / "copy")
    docs, index_dir = tmp_path / "copy" / "docs", tmp_path / "copy" / "ix"

    async def conversation() -> None:
        with anyio.fail_after(TIMEOUT):
            async with (
                stdio_client(_server(index_dir)) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                before = (await session.call_tool("index_info", {})).structured_content
                (docs / "news" / "comet.txt").write_text(
                    " date 2025-10-01 3\nA comet over the harbour\n"
                    "Astronomers watched a bright comet rise over the harbour.\n",
                    encoding="utf-8",
                )
                with fake_cli.faked(), Index.open(index_dir) as index:
                    index.add([docs])  # this process's commit, not the server's
                after = (await session.call_tool("index_info", {})).structured_content
                assert after["generation"] == before["generation"] + 1
                assert after["passages"] == before["passages"] + 1
                found = await session.call_tool("search", {"query": "comet astronomers"})
                assert _text(found)[0].startswith("[1] A comet over the harbour (2025-10-01)")

    anyio.run(conversation)


def test_stdout_is_only_the_protocol_and_closing_stdin_ends_the_server(built: Path) -> None:
    """A raw client: every stdout line is JSON-RPC, and EOF on stdin exits 0."""
    messages = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": LATEST_HANDSHAKE_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "test", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "search", "arguments": {"query": "sourdough starter"}},
        },
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "get_passage", "arguments": {"passage_id": -5}},
        },
    ]
    proc = subprocess.Popen(
        [sys.executable, FAKE_CLI, "mcp", "--index", str(built / "ix")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, **_env()},
    )
    watchdog = threading.Timer(TIMEOUT, proc.kill)  # a hung server fails the test, not CI
    watchdog.start()
    try:
        assert proc.stdin is not None and proc.stdout is not None
        by_id: dict[int, Any] = {}
        for message in messages:  # one at a time: each answered before the next is sent
            proc.stdin.write(json.dumps(message) + "\n")
            proc.stdin.flush()
            if "id" in message:
                reply = json.loads(proc.stdout.readline())
                assert reply["jsonrpc"] == "2.0" and reply["id"] == message["id"], reply
                by_id[reply["id"]] = reply["result"]
        proc.stdin.close()  # the client is done: the server must end by itself, cleanly
        rest = proc.stdout.read()  # to EOF: the server closed its end
        proc.wait(timeout=TIMEOUT)
        err = proc.stderr.read() if proc.stderr is not None else ""
    finally:
        watchdog.cancel()
    assert proc.returncode == 0, err
    assert rest == ""  # nothing after the last answer: stdout carries the protocol only
    assert "Traceback" not in err
    assert by_id[2]["content"][0]["text"].startswith("[1] Sourdough notes — ")
    assert by_id[3]["isError"] is True
    assert by_id[3]["content"][0]["text"] == "no passage has id -5: ids are whole numbers from 1"


def test_ctrl_c_stops_the_server_at_once_with_one_line(built: Path) -> None:
    """SIGINT while the client still holds stdin open: exit 130, one line, no traceback."""
    proc = subprocess.Popen(
        [sys.executable, FAKE_CLI, "mcp", "--index", str(built / "ix")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, **_env()},
    )
    watchdog = threading.Timer(TIMEOUT, proc.kill)
    watchdog.start()
    try:
        assert proc.stdin is not None and proc.stdout is not None
        hello = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": LATEST_HANDSHAKE_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "test", "version": "0"},
            },
        }
        proc.stdin.write(json.dumps(hello) + "\n")
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline())["id"] == 1  # serving, blocked on stdin
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=TIMEOUT)
        out = proc.stdout.read()
        err = proc.stderr.read() if proc.stderr is not None else ""
    finally:
        watchdog.cancel()
        if proc.stdin is not None:
            proc.stdin.close()
    assert_one_line_error(proc.returncode, out, err, "interrupted", exit_code=130)
    assert out == ""


def test_a_missing_or_damaged_index_is_one_line_and_exit_2(built: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for f in (built / "ix").iterdir():
        if f.is_file():
            (damaged / f.name).write_bytes(f.read_bytes())
    (damaged / "semsearch.db").write_bytes(b"not a database, " * 64)
    for folder, needle in [(tmp_path / "nothing", "no index in"), (damaged, "is damaged")]:
        proc = subprocess.run(
            [sys.executable, FAKE_CLI, "mcp", "--index", str(folder)],
            input="",
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, **_env()},
            timeout=TIMEOUT,
        )
        assert proc.stdout == ""  # nothing on the protocol's stream
        assert_one_line_error(proc.returncode, proc.stdout, proc.stderr, needle, exit_code=2)


def test_help_does_not_import_the_sdk() -> None:
    code = (
        "import sys\n"
        "from semsearch.cli import app\n"
        "from typer.testing import CliRunner\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0 and 'mcp' in r.stdout, r.stdout\n"
        "r = CliRunner().invoke(app, ['mcp', '--help'])\n"
        "assert r.exit_code == 0 and 'stdin' in r.stdout, r.stdout\n"
        "print(sorted(m for m in sys.modules if m == 'mcp' or m.startswith(('mcp.', "
        "'semsearch.serve.agent'))))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# --------------------------------------------------------------------------- in process


def test_citations_and_blocks_are_formatted_for_an_agent() -> None:
    hit = {
        "rank": 1,
        "score": 0.7349,
        "title": "Leaders gather",
        "date": "2025-08-28",
        "path": "news/parade.txt",
        "abspath": "/notes/news/parade.txt",
        "paragraph": 4,
        "piece": 1,
        "pieces": 1,
        "key": "",
        "passage_id": 123,
        "text": "World leaders are expected.",
        "also_in": [],
    }
    undated = {
        **hit,
        "rank": 2,
        "date": None,
        "abspath": "",
        "key": "r7",
        "piece": 2,
        "pieces": 3,
        "passage_id": 9,
        "also_in": [{**hit, "abspath": "/notes/copy.txt", "paragraph": 1}],
    }
    blocks = agent.format_hits({"query": "q", "results": [hit, undated]})
    assert blocks[0] == (
        "[1] Leaders gather (2025-08-28) — /notes/news/parade.txt, paragraph 4 — "
        "score 0.735 — passage_id 123\nWorld leaders are expected."
    )
    assert blocks[1].splitlines()[0] == (
        "[2] Leaders gather — news/parade.txt#r7, paragraph 4 (part 2 of 3) — "
        "score 0.735 — passage_id 9"
    )
    assert blocks[1].endswith("(the same passage is also in: /notes/copy.txt, paragraph 1)")
    assert agent.format_hits({"query": "zzz", "results": []})[0].startswith(
        "No passages found for 'zzz'"
    )

    passage = {k: v for k, v in hit.items() if k not in {"rank", "score", "also_in"}}
    before = {**passage, "paragraph": 3, "passage_id": 122, "text": "Before."}
    text = agent.format_passage(
        {
            "passage": passage,
            "document": {"passages": 9},
            "position": 4,
            "before": [before],
            "after": [],
        }
    )
    assert text.splitlines()[0] == (
        "Leaders gather (2025-08-28) — /notes/news/parade.txt, paragraph 4 — passage_id 123"
    )
    assert "passage 4 of 9" in text
    assert text.index("[paragraph 3 — passage_id 122]\nBefore.") < text.index(
        "[paragraph 4 — passage_id 123 (this passage)]\nWorld leaders are expected."
    )


@pytest.fixture
def model_loads() -> Iterator[list[str]]:
    """The names of the models loaded meanwhile (fakes, counted)."""
    loads: list[str] = []

    def load(name: str) -> Any:
        loads.append(name)
        return fake_cli.NamedFake(name)

    with mock.patch.object(Index, "_load_model", staticmethod(load)):
        yield loads


def test_only_search_loads_the_query_model(built: Path, model_loads: list[str]) -> None:
    async def call(server: Any, name: str, args: dict[str, Any]) -> CallToolResult:
        result = await server.call_tool(name, args)
        assert isinstance(result, CallToolResult)
        return result

    with Index.open(built / "ix") as index:
        server = agent.build_server(Service(index))
        info = anyio.run(call, server, "index_info", {})
        assert not info.is_error
        assert info.structured_content["passages"] == index.info().passages == 7
        assert not anyio.run(call, server, "get_passage", {"passage_id": 1}).is_error
        assert not anyio.run(call, server, "similar", {"passage_id": 1}).is_error
        assert model_loads == []  # no tool but search embeds anything
        for _ in range(2):
            found = anyio.run(call, server, "search", {"query": "grapes harvest"})
            assert not found.is_error
            assert _text(found)[0].startswith("[1] A late harvest (2024-09-10) — ")
        assert len(model_loads) == 1


def test_index_info_reads_as_a_few_lines() -> None:
    text = agent.format_info(
        {
            "path": "/notes/.semsearch",
            "roots": ["/notes"],
            "documents": 1,
            "passages": 1200,
            "files": 2,
            "model": "m",
            "backend": "onnx",
            "dimension": 384,
            "created_at": "2026-01-01T00:00:00+00:00",
            "updated_at": "2026-02-01T00:00:00+00:00",
            "generation": 7,
        }
    )
    assert text.splitlines() == [
        "index /notes/.semsearch",
        "indexed: /notes",
        "1 document, 1,200 passages, 2 files",
        "model m (onnx, dimension 384)",
        "created 2026-01-01T00:00:00+00:00, last updated 2026-02-01T00:00:00+00:00 (generation 7)",
    ]


# --------------------------------------------------------------------------- the real model


@pytest.mark.slow
def test_the_real_model_loads_on_the_first_search_and_stdout_stays_clean(
    seeds_copy: Path, tmp_path: Path
) -> None:
    """`python -m semsearch mcp` itself: the query model loads mid-conversation and nothing
    it prints reaches the protocol's stream."""
    index_dir = tmp_path / "ix"
    built = python_semsearch("index", str(seeds_copy), "--index", str(index_dir), "-q")
    assert built.returncode == 0, built.stderr
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "semsearch", "mcp", "--index", str(index_dir)],
        env=_env(),
        cwd=str(tmp_path),
    )
    log_path = tmp_path / "server-stderr.log"

    async def conversation() -> list[str]:
        with anyio.fail_after(180):
            async with (
                stdio_client(params, errlog=errors) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                found = await session.call_tool("search", {"query": "who attends the parade"})
                assert not found.is_error, _text(found)
                return _text(found)

    with log_path.open("w", encoding="utf-8") as errors:
        blocks = anyio.run(conversation)
    assert "Traceback" not in log_path.read_text(encoding="utf-8")
    first_line, first_text = blocks[0].split("\n", 1)
    assert first_line.startswith(
        "[1] Eighth anniversary of WWII to take place in China (2025-08-28)"
    )
    assert "military parade" in first_text and "expected to be present" in first_text


def test_bad_arguments_are_one_short_line() -> None:
    class Arguments(BaseModel):
        k: int
        query: str

    with pytest.raises(ValidationError) as caught:
        Arguments.model_validate({"k": "x" * 500})
    line = agent.bad_arguments(caught.value)
    assert line.startswith("bad arguments: k: Input should be a valid integer")
    assert line.endswith("...); query: Field required")
    assert "\n" not in line and len(line) < 200
