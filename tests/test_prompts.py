"""Models get the prompts they were trained with, recorded with the index (`embed.prompts`)."""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from semsearch import index as _index
from semsearch.embed import prompts_of
from semsearch.embed.model import SentenceTransformerEmbedder
from semsearch.embed.prompts import (
    BGE_EN_QUERY,
    NO_PROMPTS,
    Prompts,
    by_family,
    from_config,
    prompts_for,
)
from semsearch.index import Index
from semsearch.storage.integrity import manifest_problems
from tests.cli_helpers import runner
from tests.conftest import read_manifest
from tests.fakes import FakeEmbedder

E5 = Prompts("query: ", "passage: ")


class PromptedFake(FakeEmbedder):
    """A fake model that, like e5, wants ``query: `` and ``passage: ``."""

    prompts = E5


def _st_folder(folder: Path, config: dict[str, object]) -> Path:
    folder.mkdir(parents=True)
    (folder / "config_sentence_transformers.json").write_text(json.dumps(config))
    return folder


# --------------------------------------------------------------------------- which prompts


def test_a_folder_s_own_prompts_come_first(tmp_path: Path) -> None:
    own = _st_folder(tmp_path / "e5-like", {"prompts": {"query": "Q> ", "passage": "P> "}})
    assert from_config(own) == Prompts("Q> ", "P> ")
    # its own beat the family its name suggests
    named_e5 = _st_folder(tmp_path / "multilingual-e5-small", {"prompts": {"query": "Q> "}})
    assert prompts_for(str(named_e5), named_e5) == Prompts("Q> ", "")
    # "document" is the other common name of the passage side
    nomic = _st_folder(tmp_path / "n", {"prompts": {"query": "a: ", "document": "b: "}})
    assert from_config(nomic) == Prompts("a: ", "b: ")


def test_a_folder_without_prompts_falls_back_to_its_family(tmp_path: Path) -> None:
    plain = _st_folder(tmp_path / "e5-base-v2", {"__version__": {"sentence_transformers": "2"}})
    assert from_config(plain) is None
    assert prompts_for(str(plain), plain) == E5
    # prompts for other tasks only say nothing about retrieval
    other = _st_folder(tmp_path / "x", {"prompts": {"classification": "classify: "}})
    assert from_config(other) is None
    assert from_config(tmp_path / "no-such-folder") is None


def test_known_families_by_name() -> None:
    assert by_family("intfloat/e5-small-v2") == E5
    assert by_family("intfloat/multilingual-e5-base") == E5
    assert by_family("/models/e5-large/") == E5
    assert by_family("BAAI/bge-small-en-v1.5") == Prompts(BGE_EN_QUERY, "")
    assert by_family("BAAI/bge-base-en") == Prompts(BGE_EN_QUERY, "")
    for plain in (
        "sentence-transformers/all-MiniLM-L6-v2",
        "sentence-transformers/all-mpnet-base-v2",
        "/home/me/models/mye5x",  # e5 inside a word is not e5
        "BAAI/bge-m3",
    ):
        assert by_family(plain) is None, plain


def test_the_default_model_has_none() -> None:
    embedder = SentenceTransformerEmbedder()
    assert embedder.prompts == NO_PROMPTS
    assert not embedder.loaded  # read from its folder, no weights loaded
    assert prompts_of(FakeEmbedder()) == NO_PROMPTS  # an embedder that names none


def test_a_local_model_s_prompts_are_read_without_loading_it(tmp_path: Path) -> None:
    folder = _st_folder(tmp_path / "m", {"prompts": {"query": "query: ", "passage": "passage: "}})
    embedder = SentenceTransformerEmbedder(str(folder))
    assert embedder.prompts == E5
    assert not embedder.loaded


# --------------------------------------------------------------------------- the index


def _texts(fake: FakeEmbedder) -> list[str]:
    return fake.embedded


def test_passages_and_queries_reach_the_model_with_their_prefixes(
    tmp_path: Path, corpus: Path
) -> None:
    fake = PromptedFake()
    folder = tmp_path / "idx"
    (corpus / "s.txt").write_text("Storm\n\nThe storm hit the coast. Boats were lost at sea.\n")
    with Index.open(folder, create=True, embedder=fake) as index:
        index.add([corpus])
        passages = _texts(fake)
        assert passages and all(t.startswith("passage: ") for t in passages)
        assert not any(t.startswith("passage: passage: ") for t in passages)
        fake.calls.clear()
        index.search("river floods", k=2, mode="dense")
        assert fake.calls == [["query: river floods"]]
        fake.calls.clear()
        index.search_many(["bakery", "chess"], k=2, mode="dense")
        assert fake.calls == [["query: bakery", "query: chess"]]
        # highlights embed sentences as passages (this fake has no word vectors)
        fake.calls.clear()
        index.search("storm boats", k=1, mode="dense", highlight=True)
        sentences = [t for call in fake.calls[1:] for t in call]
        assert sentences and all(t.startswith("passage: ") for t in sentences)
        info = index.info()
    manifest = read_manifest(folder)
    assert (manifest["query_prefix"], manifest["passage_prefix"]) == ("query: ", "passage: ")
    assert (info.query_prefix, info.passage_prefix) == ("query: ", "passage: ")
    # the prefix's tokens ("passage", ":") are left out of the passages' room
    assert manifest["chunking"]["max_tokens"] == fake.max_tokens - 2
    assert manifest_problems(manifest) == []


def test_the_stored_vectors_are_those_of_the_prefixed_texts(tmp_path: Path, corpus: Path) -> None:
    fake = PromptedFake()
    with Index.open(tmp_path / "idx", create=True, embedder=fake) as index:
        index.add([corpus])
        with index.snapshot() as snap:
            ids = snap.passage_ids()
            stored = snap.vectors(ids.tolist())
    want = np.stack([fake.vector(t) for t in fake.embedded])
    unprefixed = np.stack([fake.vector(t.removeprefix("passage: ")) for t in fake.embedded])
    assert {r.tobytes() for r in stored} == {r.tobytes() for r in want}
    assert {r.tobytes() for r in stored} != {r.tobytes() for r in unprefixed}


def test_an_index_keeps_the_prefixes_it_was_built_with(tmp_path: Path, corpus: Path) -> None:
    folder = tmp_path / "idx"
    with Index.open(folder, create=True, embedder=FakeEmbedder()) as index:
        index.add([corpus])
    assert (read_manifest(folder)["query_prefix"], read_manifest(folder)["passage_prefix"]) == (
        "",
        "",
    )
    # the same model, now saying it wants prefixes: the index goes on without them
    later = PromptedFake()
    (corpus / "d.txt").write_text("Snow closes the pass\nThe mountain road shut.\n")
    with Index.open(folder, embedder=later) as index:
        index.add([corpus])
        assert later.embedded and not any(t.startswith("passage: ") for t in later.embedded)
        later.calls.clear()
        index.search("snow", k=1, mode="dense")
        assert later.calls == [["snow"]]
        # a rebuild takes the model's prompts
        index.add([corpus], rebuild=True)
        assert read_manifest(folder)["passage_prefix"] == "passage: "
        later.calls.clear()
        index.search("snow", k=1, mode="dense")
        assert later.calls == [["query: snow"]]


def test_an_index_made_before_prefixes_were_recorded_has_none(
    tmp_path: Path, corpus: Path
) -> None:
    assert Prompts.from_manifest({}) == NO_PROMPTS
    folder = tmp_path / "idx"
    with Index.open(folder, create=True, embedder=PromptedFake()) as index:
        index.add([corpus])
    import sqlite3

    con = sqlite3.connect(folder / "semsearch.db")
    with con:
        con.execute("DELETE FROM manifest WHERE key IN ('query_prefix', 'passage_prefix')")
    con.close()
    fake = PromptedFake()
    with Index.open(folder, embedder=fake) as index:
        index.search("bakery", k=1, mode="dense")
        assert fake.calls == [["bakery"]]
        assert index.info().query_prefix == ""


def test_prefixes_must_be_strings() -> None:
    problems = manifest_problems({"query_prefix": 3, "passage_prefix": None})
    assert any("'query_prefix' is 3, not a string" in p for p in problems)
    assert any("'passage_prefix'" in p for p in problems)


def test_info_shows_the_prefixes(tmp_path: Path, corpus: Path) -> None:
    from semsearch.cli import app
    from tests.fake_cli import NamedFake

    class PromptedNamed(NamedFake):
        prompts = E5

    folder = tmp_path / "idx"
    with mock.patch.object(_index.Index, "_load_model", staticmethod(PromptedNamed)):
        result = runner.invoke(app, ["index", str(corpus), "--index", str(folder), "-q"])
        assert result.exit_code == 0, result.output
        result = runner.invoke(app, ["info", "--index", str(folder)])
        shown = runner.invoke(app, ["info", "--index", str(folder), "--json"])
    assert 'prefixes:     query "query: ", passage "passage: "' in result.stdout
    details = json.loads(shown.stdout)
    assert (details["query_prefix"], details["passage_prefix"]) == ("query: ", "passage: ")


def test_info_of_an_index_without_prefixes_shows_no_line(index_dir: Path) -> None:
    from semsearch.cli import app

    result = runner.invoke(app, ["info", "--index", str(index_dir)])
    assert result.exit_code == 0 and "prefixes" not in result.stdout


# --------------------------------------------------------------------------- real models


@pytest.mark.slow
def test_the_default_model_embeds_the_texts_as_they_are(tmp_path: Path, corpus: Path) -> None:
    """No prefix, no room taken: the default model's vectors are those it gave before."""
    seen: list[str] = []
    original = SentenceTransformerEmbedder.embed

    def recording(self: SentenceTransformerEmbedder, texts, **kw):  # type: ignore[no-untyped-def]
        seen.extend(texts)
        return original(self, texts, **kw)

    folder = tmp_path / "idx"
    with (
        mock.patch.object(SentenceTransformerEmbedder, "embed", recording),
        Index.open(folder, create=True) as index,
    ):
        index.add([corpus])
        with index.snapshot() as snap:
            stored = snap.vectors(snap.passage_ids().tolist())
    manifest = read_manifest(folder)
    assert (manifest["query_prefix"], manifest["passage_prefix"]) == ("", "")
    assert manifest["chunking"]["max_tokens"] == 256
    # the texts embedded are the passages as an embedder without prompts has them cut
    model = SentenceTransformerEmbedder()
    plain = FakeEmbedder(name=model.name, max_tokens=256)
    plain.count_tokens = model.count_tokens  # type: ignore[method-assign]
    with Index.open(tmp_path / "plain", create=True, embedder=plain) as index:
        index.add([corpus])
    assert sorted(seen) == sorted(plain.embedded)
    # the same texts through the same embedder: bit for bit the stored vectors
    again = model.embed(seen, batch_size=model.batch_size)
    assert {r.tobytes() for r in stored} == {r.tobytes() for r in again}
