"""Feedback and footprint: the order passages are embedded in (a progress bar's time left),
status lines while a model loads, and one shared copy of the ONNX query model per model."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import itertools
import json
import os
import pty
import shutil
import sqlite3
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from semsearch import cli
from semsearch.embed import batch_order, export
from semsearch.embed import model as model_module
from semsearch.embed.model import SentenceTransformerEmbedder
from semsearch.embed.onnx import OnnxEmbedder
from semsearch.index import Index
from tests.cli_helpers import run
from tests.conftest import ROOT, SEEDS, read_manifest
from tests.fakes import FakeEmbedder

# --------------------------------------------------------------------------- batch order


def _lengths(n: int, seed: int = 0, skewed: bool = False) -> list[int]:
    """Token counts like those of BBC paragraphs (title included: mean 148, median 128, capped
    at 256 by the model), or skewed: many short ones and a long tail."""
    rng = np.random.default_rng(seed)
    drawn = rng.lognormal(3.8, 0.6, n) if skewed else rng.normal(140, 60, n)
    return [int(x) for x in np.clip(drawn, 3, 256)]


def _work(lengths: list[int], batch: np.ndarray) -> int:
    """What a batch costs: every row padded to its longest."""
    return len(batch) * max(lengths[i] for i in batch)


@pytest.mark.parametrize("n", [7, 100, 2000])
def test_every_text_is_in_one_batch_of_neighbouring_lengths(n: int) -> None:
    lengths = _lengths(n)
    batches = batch_order(lengths, 16)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(n))
    # each batch is one run of the length order (no other batch has a length between its
    # shortest and its longest), so padding stays minimal
    spans = sorted((min(lengths[i] for i in b), max(lengths[i] for i in b)) for b in batches)
    for (_, top), (bottom, _) in itertools.pairwise(spans):
        assert top <= bottom
    # the very batches of the longest-first order, so the same padding: only the order moved
    order = np.argsort(lengths, kind="stable")[::-1]
    before = [order[lo : lo + 16] for lo in range(0, n, 16)]
    assert sorted(map(sorted, map(list, batches))) == sorted(map(sorted, map(list, before)))


def _shares(lengths: list[int], batches: list[np.ndarray]) -> list[tuple[float, float]]:
    """(share of the texts done, share of the work done) after each batch."""
    total = sum(_work(lengths, b) for b in batches)
    texts = work = 0
    out = []
    for b in batches:
        texts += len(b)
        work += _work(lengths, b)
        out.append((texts / len(lengths), work / total))
    return out


@pytest.mark.parametrize(("skewed", "from_share"), [(False, 0.05), (True, 0.2)])
def test_texts_done_follow_the_work_done_from_the_first_batches(
    skewed: bool, from_share: float
) -> None:
    """A progress bar counts texts; its time left is right when the share of the texts done
    is the share of the work done (measured on 536 BBC passages, the first estimates were
    2-2.4 times the time left when the longest went first)."""
    for n, size in ((500, 16), (2000, 8), (11000, 16)):
        lengths = _lengths(n, seed=n, skewed=skewed)
        for texts, work in _shares(lengths, batch_order(lengths, size)):
            if texts >= from_share:
                assert 0.75 <= texts / work <= 1.33, (n, size, texts, work)
        # the order before: longest first
        order = np.argsort(lengths, kind="stable")[::-1]
        before = [order[lo : lo + size] for lo in range(0, n, size)]
        texts, work = next((t, w) for t, w in _shares(lengths, before) if t >= 0.1)
        assert texts / work < 0.7


# --------------------------------------------------------------------------- one shared copy


ONNX = b"onnx graph " * 5000  # usable() reads sizes and hashes only, never the graph
TOKENIZER = b'{"model": "fake tokenizer"}'


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A model cache holding one export, as `export.export` leaves it, under key "key1"."""
    root = tmp_path / "cache"
    monkeypatch.setenv("SEMSEARCH_CACHE", str(root))
    entry = root / "exports" / "key1"
    entry.mkdir(parents=True)
    sha, tok_sha = (hashlib.sha256(b).hexdigest() for b in (ONNX, TOKENIZER))
    model = export.QueryModel(
        file=export.model_file_name(sha),
        tokenizer=export.tokenizer_file_name(tok_sha),
        size=len(ONNX),
        max_tokens=256,
        dimension=384,
        pooling="mean",
        cosine=1.0,
        sha256=sha,
        tokenizer_sha256=tok_sha,
    )
    (entry / model.file).write_bytes(ONNX)
    (entry / model.tokenizer).write_bytes(TOKENIZER)
    record = {"query_model": model.as_dict(), "sha256": sha}
    (entry / "query-model.json").write_text(json.dumps(record), encoding="utf-8")
    return entry


def _folder(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    return folder


def _no_hard_links(monkeypatch: pytest.MonkeyPatch) -> None:
    """As across file systems: os.link fails with EXDEV."""

    def link(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", link)


def _no_links_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on FAT or some network shares: neither hard nor symbolic links."""
    _no_hard_links(monkeypatch)

    def symlink(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "symlink", symlink)


def test_indexes_of_one_model_share_one_file_with_the_cache(cache: Path, tmp_path: Path) -> None:
    a, b = _folder(tmp_path, "a"), _folder(tmp_path, "b")
    model = export.from_cache("key1", str(a))
    assert model is not None and export.from_cache("key1", str(b)) == model
    for name in (model.file, model.tokenizer):
        assert (a / name).samefile(cache / name) and (b / name).samefile(cache / name)
        assert not (a / name).is_symlink()
    assert export.usable(str(a), model.as_dict()) == model
    held = export.storage(str(a), model.as_dict())
    assert (held.kind, held.size, held.links) == ("hard_link", len(ONNX), 3)
    assert export.shared_bytes(str(a)) == len(ONNX) + len(TOKENIZER)
    # a second run for the same folder changes nothing
    ino = (a / model.file).stat().st_ino
    assert export.from_cache("key1", str(a)) == model
    assert (a / model.file).stat().st_ino == ino
    assert sorted(p.name for p in a.iterdir()) == sorted(
        [model.file, f"{model.file}.verified", model.tokenizer]
    )


def test_with_hard_links_clearing_the_cache_takes_nothing_from_an_index(
    cache: Path, tmp_path: Path
) -> None:
    a = _folder(tmp_path, "a")
    model = export.from_cache("key1", str(a))
    assert model is not None
    shutil.rmtree(tmp_path / "cache")
    assert export.usable(str(a), model.as_dict()) == model  # the link is the file itself
    assert not export.missing(str(a), model.as_dict())
    assert export.storage(str(a), model.as_dict()).kind == "copy"  # now its own
    assert export.shared_bytes(str(a)) == 0


def test_without_hard_links_an_index_links_to_the_cache(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_hard_links(monkeypatch)
    a = _folder(tmp_path, "a")
    model = export.from_cache("key1", str(a))
    assert model is not None
    for name in (model.file, model.tokenizer):
        assert (a / name).is_symlink() and (a / name).samefile(cache / name)
    assert export.usable(str(a), model.as_dict()) == model
    held = export.storage(str(a), model.as_dict())
    assert (held.kind, held.path) == ("symlink", str((cache / model.file).resolve()))
    assert export.shared_bytes(str(a)) == 0  # none of it in the folder
    # the cache cleared: the links are broken, and that is told as such
    shutil.rmtree(tmp_path / "cache")
    assert export.usable(str(a), model.as_dict()) is None
    assert export.missing(str(a), model.as_dict())
    why = export.why_unusable(str(a), model.as_dict())
    assert "link to the model cache, which no longer holds it" in why
    assert str(cache / model.file) in why
    assert export.storage(str(a), model.as_dict()).kind == "missing"


def test_without_any_links_an_index_gets_a_checked_copy(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_links_at_all(monkeypatch)
    a = _folder(tmp_path, "a")
    model = export.from_cache("key1", str(a))
    assert model is not None
    assert (a / model.file).read_bytes() == ONNX and not (a / model.file).samefile(
        cache / model.file
    )
    assert export.storage(str(a), model.as_dict()).kind == "copy"
    shutil.rmtree(tmp_path / "cache")
    assert export.usable(str(a), model.as_dict()) == model


def test_an_own_copy_becomes_a_link_and_is_kept_when_no_link_can_be_made(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Indexes made before files were shared hold copies: a rebuild frees their space."""
    a = _folder(tmp_path, "a")
    model = export.from_cache("key1", str(a))
    assert model is not None
    for name in (model.file, model.tokenizer):  # as an older semsearch left them
        data = (a / name).read_bytes()
        (a / name).unlink()
        (a / name).write_bytes(data)
    with monkeypatch.context() as patch:
        _no_links_at_all(patch)
        assert export.from_cache("key1", str(a)) == model
        assert not (a / model.file).samefile(cache / model.file)  # kept, not a symlink
        assert not (a / model.file).is_symlink()
    assert export.from_cache("key1", str(a)) == model
    assert (a / model.file).samefile(cache / model.file)


def test_a_tampered_shared_file_is_refused_by_every_index_and_the_cache(
    cache: Path, tmp_path: Path
) -> None:
    a = _folder(tmp_path, "a")
    model = export.from_cache("key1", str(a))
    assert model is not None and export.usable(str(a), model.as_dict()) == model
    with open(cache / model.file, "r+b") as fh:  # in place: the index's file is the same one
        fh.seek(1000)
        fh.write(b"X")
    assert export.usable(str(a), model.as_dict()) is None
    assert export.from_cache("key1", str(_folder(tmp_path, "b"))) is None
    assert not (cache / "query-model.json").exists()  # forgotten: the next export replaces it


def test_temporary_files_of_an_export_killed_half_way_are_removed(cache: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    gone = int(done.stdout)
    (cache / f"query-model.onnx.tmp-{gone}").write_bytes(b"half an export")
    (cache / f"query-model.onnx.tmp-{os.getpid()}").write_bytes(b"this process's own")
    assert export._writable_entry("key1") == str(cache)
    names = {p.name for p in cache.iterdir()}
    assert f"query-model.onnx.tmp-{gone}" not in names
    assert f"query-model.onnx.tmp-{os.getpid()}" in names


def _share_into(index_dir: Path) -> dict[str, Any]:
    """Give an index (built with the fake embedder) the cache's export, as a real one has."""
    model = export.from_cache("key1", str(index_dir))
    assert model is not None
    con = sqlite3.connect(index_dir / "semsearch.db")
    try:
        con.execute(
            "INSERT OR REPLACE INTO manifest (key, value) VALUES ('query_model', ?)",
            (json.dumps(model.as_dict()),),
        )
        con.commit()
    finally:
        con.close()
    return model.as_dict()


def test_info_tells_the_shared_part_of_the_size(cache: Path, index_dir: Path) -> None:
    with Index.open(index_dir) as index:
        alone = index.info()
    assert (alone.shared_bytes, alone.query_model.kind) == (0, "none")
    entry = _share_into(index_dir)
    with Index.open(index_dir) as index:
        info = index.info()
    assert info.size_bytes >= alone.size_bytes + len(ONNX)  # what du counts in the folder
    assert info.shared_bytes == len(ONNX) + len(TOKENIZER)
    assert info.query_model == export.Storage(
        "hard_link", str(index_dir / entry["file"]), len(ONNX), 2
    )
    assert json.loads(json.dumps(info.to_dict()))["query_model"]["kind"] == "hard_link"
    code, out, _ = run("info", "--index", str(index_dir))
    assert code == 0
    assert "of it shared: the query model" in out and "a hard link shared" in out


def test_info_without_hard_links_counts_only_the_folder(
    cache: Path, index_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Index.open(index_dir) as index:
        alone = index.info().size_bytes
    _no_hard_links(monkeypatch)
    _share_into(index_dir)
    with Index.open(index_dir) as index:
        info = index.info()
    assert info.size_bytes < alone + 1000  # two symbolic links and a record
    assert (info.shared_bytes, info.query_model.kind) == (0, "symlink")
    code, out, _ = run("info", "--index", str(index_dir))
    assert code == 0 and "a link to the model cache" in out


def test_check_names_a_tampered_shared_file(cache: Path, index_dir: Path) -> None:
    entry = _share_into(index_dir)
    code, out, err = run("check", "--index", str(index_dir))
    assert (code, err) == (0, "") and out.endswith(", 4 files checked\n")
    with open(cache / entry["file"], "r+b") as fh:
        fh.seek(len(ONNX) // 2)
        fh.write(b"X")
    code, out, err = run("check", "--index", str(index_dir))
    assert code == 1 and out == ""
    assert f"error: {entry['file']} differs from the file written (sha256)" in err
    assert "shared with the model cache" in err


def test_check_tells_a_link_into_a_cleared_cache_as_a_note(
    cache: Path, index_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing indexed is lost, and queries still answer (with the model itself)."""
    _no_hard_links(monkeypatch)
    entry = _share_into(index_dir)
    shutil.rmtree(cache.parent.parent)
    report = Index.check_folder(index_dir)
    assert report.ok and len(report.notes) == 2  # the model and its tokenizer
    code, out, err = run("check", "--index", str(index_dir))
    assert code == 0 and out.startswith("ok: ")
    assert f"warning: {entry['file']} is a link to the model cache, which no longer holds it" in err
    assert "the next `semsearch index` run puts it back" in err


# --------------------------------------------------------------------------- status lines


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_loading_weights_is_announced_once_before_it_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The seconds of an index run before its progress bar are the model loading."""
    events: list[str] = []
    monkeypatch.setitem(
        sys.modules,
        "transformers",
        types.SimpleNamespace(logging=types.SimpleNamespace(disable_progress_bar=lambda: None)),
    )
    monkeypatch.setitem(
        sys.modules, "sentence_transformers", types.SimpleNamespace(SentenceTransformer=object)
    )
    monkeypatch.setattr(model_module, "_LOADED", {})

    def load(factory: Any, path: str, device: str) -> Any:  # as model._load: once a process
        if (path, device) not in model_module._LOADED:
            events.append("loaded")
            model_module._LOADED[(path, device)] = "the weights"
        return model_module._LOADED[(path, device)]

    monkeypatch.setattr(model_module, "_load", load)
    first = SentenceTransformerEmbedder()
    first.on_load = lambda: events.append("announced")
    assert first.model == "the weights" and first.model == "the weights"
    assert events == ["announced", "loaded"]
    second = SentenceTransformerEmbedder()  # the weights are in the process already
    second.on_load = lambda: events.append("announced again")
    assert second.loaded and second.model == "the weights"
    assert events == ["announced", "loaded"]


def test_index_tells_status_when_the_model_starts_loading(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    said: list[str] = []
    index = Index.open(tmp_path / "idx", create=True, status=said.append)
    embedder = index._announced(SentenceTransformerEmbedder())
    assert isinstance(embedder, SentenceTransformerEmbedder) and embedder.on_load is not None
    embedder.on_load()
    assert said == ["Loading all-MiniLM-L6-v2 (torch)..."]
    fake = index._announced(FakeEmbedder())  # an embedder of another kind: left as it is
    assert not hasattr(fake, "on_load")


def test_the_status_line_is_one_line_replaced_by_the_next_and_by_the_bar(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    screen = _Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    with cli._status_line(quiet=False) as status:
        status("Loading all-MiniLM-L6-v2 (torch)...")
        status("Exporting...")
        assert screen.getvalue() == (
            "\rLoading all-MiniLM-L6-v2 (torch)..."
            + "\rExporting...".ljust(len("Loading all-MiniLM-L6-v2 (torch)...") + 1)
        )
        with cli._progress_bar(False, status=status) as progress:
            before = len(screen.getvalue())
            progress(0, 10)
            cleared = screen.getvalue()[before:]
            assert cleared.startswith("\r" + " " * len("Exporting...") + "\r")
            progress(10, 10)
    assert "Loading" not in screen.getvalue()[before:]


@pytest.mark.parametrize("terminal", [True, False])
def test_status_lines_only_on_a_terminal_and_notes_always(
    monkeypatch: pytest.MonkeyPatch, terminal: bool
) -> None:
    screen = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", screen)
    for quiet in (False, True):
        with cli._status_line(quiet=quiet) as status:
            status("Loading all-MiniLM-L6-v2 (torch)...")
            status("the ONNX query model is missing: queries use the model itself")
    shown = screen.getvalue()
    assert shown.count("note: the ONNX query model is missing") == 2
    assert shown.count("Loading") == (1 if terminal else 0)


# --------------------------------------------------------------------------- with the model

QUERY = "who attends the parade"


@pytest.fixture(scope="module")
def filled_session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's model cache (conftest.py), holding the default model's export."""
    with Index.open(tmp_path_factory.mktemp("filler") / "index", create=True) as index:
        index.add([str(SEEDS)])
    return Path(os.environ["SEMSEARCH_CACHE"])


@pytest.fixture
def own_cache(filled_session_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A model cache of this test's own, a copy of the session's (other files: what the test
    does to it reaches no index of another test)."""
    own = tmp_path / "cache"
    shutil.copytree(filled_session_cache / "exports", own / "exports")
    monkeypatch.setenv("SEMSEARCH_CACHE", str(own))
    return own


def _dense_ids(folder: Path, **options: Any) -> tuple[list[int], Any]:
    with Index.open(folder, **options) as index, index.snapshot() as snap:
        return [h.passage_id for h in snap.search(QUERY, k=5, mode="dense")], snap.embedder


def _build(folder: Path) -> Path:
    with Index.open(folder, create=True) as index:
        index.add([str(SEEDS)])
    return folder


@pytest.mark.slow
def test_a_first_index_says_what_it_loads_and_exports_and_the_next_shares_it(
    tmp_path: Path,
) -> None:
    """In fresh processes with an empty cache, as on a fresh machine."""
    code = (
        "import json, sys\n"
        "from semsearch.index import Index\n"
        "said = []\n"
        "with Index.open(sys.argv[1], create=True, status=said.append) as index:\n"
        "    index.add([sys.argv[2]])\n"
        "print(json.dumps(said))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SEMSEARCH_CACHE": str(tmp_path / "cache")}

    def first_index(name: str) -> list[str]:
        done = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / name), str(SEEDS)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
        said: list[str] = json.loads(done.stdout)
        return said

    loading = "Loading all-MiniLM-L6-v2 (torch)..."
    exporting = "Exporting all-MiniLM-L6-v2 to ONNX for fast queries (once a machine)..."
    assert first_index("a") == [loading, exporting]
    assert first_index("b") == [loading]  # the export is the cache's
    a, b = tmp_path / "a", tmp_path / "b"
    entry = read_manifest(a)["query_model"]
    assert read_manifest(b)["query_model"] == entry
    (cached,) = (tmp_path / "cache" / "exports").glob(f"*/{entry['file']}")
    for name in (entry["file"], entry["tokenizer"]):
        assert (a / name).samefile(cached.parent / name) and (b / name).samefile(a / name)
    with Index.open(b) as index:
        info = index.info()
    assert info.shared_bytes >= entry["size"]
    assert info.size_bytes - info.shared_bytes < 1_000_000  # what the index holds alone


@pytest.mark.slow
def test_with_hard_links_an_index_answers_as_before_once_the_cache_is_cleared(
    own_cache: Path, tmp_path: Path
) -> None:
    folder = _build(tmp_path / "index")
    before, embedder = _dense_ids(folder)
    assert isinstance(embedder, OnnxEmbedder)
    shutil.rmtree(own_cache)
    after, embedder = _dense_ids(folder)
    assert after == before and isinstance(embedder, OnnxEmbedder)
    report = Index.check_folder(folder)
    assert report.ok and not report.notes


@pytest.mark.slow
def test_without_hard_links_a_cleared_cache_falls_back_to_torch_then_is_put_back(
    own_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_hard_links(monkeypatch)
    folder = _build(tmp_path / "index")
    entry = read_manifest(folder)["query_model"]
    assert (folder / entry["file"]).is_symlink()
    before, _ = _dense_ids(folder)
    shutil.rmtree(own_cache)
    said: list[str] = []
    after, embedder = _dense_ids(folder, status=said.append)
    assert after == before and not isinstance(embedder, OnnxEmbedder)
    (note,) = [s for s in said if not s.endswith("...")]
    assert "a link to the model cache, which no longer holds it" in note
    assert "queries use the model itself" in note and "puts it back" in note
    code, _, err = run("query", QUERY, "--index", str(folder), "--json")
    assert code == 0 and err.startswith("note: ") and len(err.splitlines()) == 1
    # The next index run, though nothing changed, puts the model back (exported again:
    # the cache is empty), and re-embeds nothing; the same files: no new generation.
    generation = read_manifest(folder)["generation"]
    said.clear()
    with Index.open(folder, status=said.append) as index:
        report = index.add([str(SEEDS)])
    assert report.passages_embedded == 0 and any(s.startswith("Exporting") for s in said)
    assert read_manifest(folder)["query_model"] == entry
    assert read_manifest(folder)["generation"] == generation
    again, embedder = _dense_ids(folder)
    assert again == before and isinstance(embedder, OnnxEmbedder)
    assert Index.check_folder(folder).ok


@pytest.mark.slow
def test_the_index_command_shows_a_status_line_on_a_terminal_only(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "semsearch", "index", str(SEEDS), "--index"]
    leader, follower = pty.openpty()
    with subprocess.Popen(
        [*command, str(tmp_path / "a")], stdout=subprocess.PIPE, stderr=follower, env=env
    ) as proc:
        os.close(follower)
        shown = b""
        with contextlib.suppress(OSError):  # EIO once the command has closed the terminal
            while chunk := os.read(leader, 4096):
                shown += chunk
        out = proc.communicate(timeout=600)[0]
    os.close(leader)
    assert proc.returncode == 0, shown
    screen = shown.decode("utf-8", "replace")
    assert "\rLoading all-MiniLM-L6-v2 (torch)..." in screen
    assert out.decode().startswith("Indexed ")
    piped = subprocess.run(
        [*command, str(tmp_path / "b")], capture_output=True, text=True, env=env, timeout=600
    )
    assert piped.returncode == 0 and piped.stderr == ""
