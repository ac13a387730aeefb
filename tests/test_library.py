"""The library as a Python developer expects it: typed options, hits that JSON takes,
a clear error after `close`, and embedders that several threads may share."""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from semsearch import Index, IndexAccessError, IndexClosedError
from tests.conftest import SEEDS
from tests.fakes import FakeEmbedder

# --------------------------------------------------------------------------- threads

WORDS = [
    "river",
    "flood",
    "rain",
    "town",
    "school",
    "hill",
    "chess",
    "match",
    "rival",
    "bakery",
    "bread",
    "market",
    "oil",
    "price",
]
QUERIES = [
    "who attends the parade",
    "which leaders travel to Beijing",
    "Kim Jong-un trips abroad",
    "a ceremony marking the end of the war",
    "military parade in the capital",
]


def _in_threads(work: Any, n: int = 4) -> list[str]:
    """Run ``work(thread_number)`` in ``n`` threads at once; the errors they raised."""
    errors: list[str] = []
    start = threading.Barrier(n)

    def run(t: int) -> None:
        start.wait()
        try:
            work(t)
        except Exception as exc:  # what a thread raised is the test's result
            errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=run, args=(t,)) for t in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    return errors


@pytest.mark.slow
def test_the_torch_embedder_embeds_and_counts_from_many_threads_at_once() -> None:
    """Regression: counting tokens in one thread (no padding) while another encoded (padding
    set just before) left that one with rows of unequal length: "Unable to create tensor"."""
    from semsearch.embed.model import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    rng = random.Random(3)
    batches = [
        [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 40))) for _ in range(5)]
        for _ in range(12)
    ]
    want = [embedder.embed(b, batch_size=2) for b in batches]
    counts = [embedder.count_tokens(b * 10) for b in batches]

    def work(t: int) -> None:
        for n in range(60):
            i = (n + t) % len(batches)
            if n % 2:
                got = embedder.embed(batches[i], batch_size=2)
                assert np.allclose(got, want[i], atol=1e-5), f"batch {i} changed"
            else:
                assert embedder.count_tokens(batches[i] * 10) == counts[i]

    assert _in_threads(work) == []


@pytest.mark.slow
@pytest.mark.parametrize("queries_with", ["onnx export", "torch model"])
def test_four_threads_search_one_index_right_after_its_add(
    tmp_path: Path, queries_with: str
) -> None:
    """4 threads x 20 searches on the `Index` that has just run `add`; every one answers as
    the same search alone does."""
    from semsearch.embed.model import SentenceTransformerEmbedder

    given = SentenceTransformerEmbedder() if queries_with == "torch model" else None
    index = Index.open(tmp_path / "idx", create=True, embedder=given)
    index.add([SEEDS])
    try:
        want = {(q, hl): index.search(q, k=3, highlight=hl) for q in QUERIES for hl in (0, 1)}

        def work(t: int) -> None:
            for n in range(20):
                q, hl = QUERIES[(n + t) % len(QUERIES)], n % 2
                got = index.search(q, k=3, highlight=bool(hl))
                assert [h.passage_id for h in got] == [h.passage_id for h in want[(q, hl)]]
                assert [h.highlights for h in got] == [h.highlights for h in want[(q, hl)]]

        assert _in_threads(work) == []
    finally:
        index.close()


# --------------------------------------------------------------------------- close


def test_every_call_after_close_raises_index_closed_error(tmp_path: Path, corpus: Path) -> None:
    """Regression: `add` after `close` quietly opened the store again (and a fresh index
    said there was no index); now every call says the index was closed."""
    folder = tmp_path / "idx"
    index = Index.open(folder, create=True, embedder=FakeEmbedder())
    index.add([corpus])
    index.close()
    calls = {
        "search": lambda: index.search("river"),
        "search_many": lambda: index.search_many(["river"]),
        "info": index.info,
        "files": index.files,
        "check": index.check,
        "add": lambda: index.add([corpus]),
        "remove": lambda: index.remove([corpus]),
        "snapshot": lambda: index.snapshot().__enter__(),
    }
    for name, call in calls.items():
        with pytest.raises(IndexClosedError, match=r"has been closed: open it again") as caught:
            call()
        assert isinstance(caught.value, IndexAccessError), name  # still caught as before
    assert Index.open(folder).info().passages > 0  # nothing was lost


def test_a_new_index_closed_before_its_first_add_says_closed(tmp_path: Path) -> None:
    index = Index.open(tmp_path / "new", create=True, embedder=FakeEmbedder())
    index.close()
    with pytest.raises(IndexClosedError):
        index.search("river")
    with pytest.raises(IndexClosedError):
        index.add([tmp_path])
    assert not (tmp_path / "new").exists()


def test_index_closed_error_is_public_with_its_place_in_the_tree() -> None:
    import semsearch
    from semsearch import errors

    assert "IndexClosedError" in semsearch.__all__ and "IndexClosedError" in errors.__all__
    assert semsearch.IndexClosedError is IndexClosedError
    assert "IndexClosedError" in (errors.__doc__ or "")
    assert issubclass(IndexClosedError, semsearch.SemsearchError)
    assert len((IndexClosedError.__doc__ or "").strip().splitlines()) == 1


# --------------------------------------------------------------------------- types


def test_option_values_are_typed_as_literals_matching_what_is_accepted() -> None:
    from typing import get_args, get_type_hints

    from semsearch.embed.backends import BACKENDS, PRECISIONS, Backend, Precision
    from semsearch.ingest.passages import UNITS, Unit
    from semsearch.query import MODES, Query
    from semsearch.query.fusion import METHODS, Fusion, FusionMethod
    from semsearch.query.options import Mode
    from semsearch.storage.vectors import INDEX_TYPES, IndexType

    for alias, values in (
        (Mode, MODES),
        (Unit, UNITS),
        (IndexType, INDEX_TYPES),
        (Backend, BACKENDS),
        (Precision, PRECISIONS),
        (FusionMethod, METHODS),
    ):
        assert get_args(alias) == values
    search = get_type_hints(Index.search)
    assert search["mode"] == Mode | None
    opened = get_type_hints(Index.open)
    assert opened["unit"] == Unit | None and opened["index_type"] == IndexType | None
    assert opened["backend"] == Backend | None and opened["precision"] == Precision | None
    assert get_type_hints(Query)["mode"] == Mode
    assert get_type_hints(Fusion)["method"] == FusionMethod


@pytest.mark.slow  # (no model, but a whole mypy run: about a minute on two busy cores)
def test_mypy_rejects_a_mistyped_mode_in_a_caller(tmp_path: Path) -> None:
    """What the Literal types are for: a typo is caught by the caller's type checker."""
    from mypy import api

    code = tmp_path / "caller.py"
    code.write_text(
        "from semsearch import Index\n"
        "def find(index: Index) -> None:\n"
        "    index.search('rivers', mode='dense')\n"
        "    index.search('rivers', mode='dence')\n"
        "    Index.open('x', index_type='hnsw', backend='onnx', unit='document')\n"
        "    Index.open('x', index_type='hsnw')\n",
        encoding="utf-8",
    )
    out, _, status = api.run([str(code), "--strict", "--no-incremental", "--follow-imports=silent"])
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 1
    assert [line.split(":")[1] for line in errors] == ["4", "6"], out


def _plain(value: Any, where: str = "hit") -> None:
    """Assert ``value`` is made of exactly the types `json` writes (no numpy scalars)."""
    if isinstance(value, dict):
        for k, v in value.items():
            assert type(k) is str, where
            _plain(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for n, v in enumerate(value):
            _plain(v, f"{where}[{n}]")
    else:
        assert value is None or type(value) in (str, int, float, bool), (where, type(value))


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_hits_are_plain_python_values_that_json_takes(
    tmp_path: Path, corpus: Path, mode: Any
) -> None:
    import dataclasses
    import json

    (corpus / "d.txt").write_text(
        "River news\n\nHeavy rain made the river burst its banks on Tuesday.\n", encoding="utf-8"
    )  # a copy of a.txt's first paragraph: collapsed, so also_in is filled
    with Index.open(tmp_path / "idx", create=True, embedder=FakeEmbedder()) as index:
        index.add([corpus])
        hits = index.search("river rain bakery", k=5, mode=mode, highlight=True)
        hits += index.search("river", k=5, mode=mode, by_article=True)
    assert any(h.also_in for h in hits) and any(h.highlights for h in hits)
    for hit in hits:
        for f in dataclasses.fields(hit):
            value = getattr(hit, f.name)
            if f.name == "scores":  # {"dense", "lexical", "fused"}: plain floats or None
                assert set(value) == {"dense", "lexical", "fused"}
                assert all(v is None or type(v) is float for v in value.values()), value
            elif f.name not in ("fields", "highlights", "also_in"):
                assert value is None or type(value) in (str, int, float), (f.name, type(value))
        data = hit.to_dict()
        _plain(data)
        assert json.loads(json.dumps(data)) == json.loads(json.dumps(data, default=str))


def test_model_and_exists_after_close_raise_index_closed(tmp_path: Path) -> None:
    index = Index.open(tmp_path / "ix", create=True, embedder=FakeEmbedder())
    assert index.exists is False and index.model
    index.close()
    for read in (lambda: index.model, lambda: index.exists):
        with pytest.raises(IndexClosedError):
            read()
