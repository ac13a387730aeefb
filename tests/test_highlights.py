"""Highlights from the model's word-piece vectors: read from the ONNX file as stored, scored
without running the model on each sentence, and the same shapes as before."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from semsearch.embed import HasWordVectors
from semsearch.embed.words import WordVectors, from_onnx, onnx_matrix
from semsearch.index import Index
from semsearch.query.highlight import sentence_spans
from tests.fakes import FakeEmbedder
from tests.test_hybrid import article, assert_whole_sentences

WORDS = [
    "the", "a", "river", "flooded", "lower", "town", "bakers", "rise", "early", "morning",
    "chess", "clubs", "meet", "fridays", "yesterday", "every", "on", "market", "apples",
]  # fmt: skip


def word_tokenizer(words: Sequence[str]) -> Any:
    """A `tokenizers.Tokenizer` with one id per word, in order after [UNK] and the letters
    (as WordPiece vocabularies put single characters before whole words)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    vocab = {"[UNK]": 0, **{c: 1 + i for i, c in enumerate("abcdefghij")}}
    for w in words:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


class WordsFake(FakeEmbedder):
    """The fake embedder with word-piece vectors: each word's row is its fake vector."""

    def __init__(self) -> None:
        super().__init__()
        self.tokenizer = word_tokenizer(WORDS)
        vocab = self.tokenizer.get_vocab()
        matrix = np.zeros((len(vocab), self.dimension), dtype=np.float32)
        for word, i in vocab.items():
            matrix[i] = self.vector(word)
        self.words = WordVectors(matrix, self.tokenizer)

    def word_vectors(self) -> WordVectors | None:
        return self.words


# --------------------------------------------------------------------------- word vectors


def test_word_vectors_weigh_rare_pieces_above_common_ones() -> None:
    tok = word_tokenizer(["the", "river", "town"])  # ids: the < river < town (rarer)
    matrix = np.zeros((len(tok.get_vocab()), 3), dtype=np.float32)
    ids = tok.get_vocab()
    matrix[ids["the"]] = [1, 0, 0]
    matrix[ids["river"]] = [0, 1, 0]
    matrix[ids["town"]] = [0, 0, 1]
    words = WordVectors(matrix, tok)
    v = words.embed(["the river", "the town", "river town", "", "zzz"])
    assert np.allclose(np.linalg.norm(v[:3], axis=1), 1.0)
    # "the" is the first whole word (rank 0): log1p(1); river log1p(1); town log1p(2)
    w = np.log1p([1.0, 1.0, 2.0])
    want = np.array([w[0], w[1], 0]) / np.hypot(w[0], w[1])
    assert np.allclose(v[0], want, atol=1e-6)
    assert v[2][2] > v[2][1] > 0  # the rarer word pulls harder
    assert not v[3].any() and v[4][0] == 0 and v[4][1] == 0  # nothing known: no direction


def _onnx_file(path: Path, tensors: dict[str, npt.NDArray[Any]]) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    inits = [numpy_helper.from_array(a, name) for name, a in tensors.items()]
    node = helper.make_node("Gather", ["model.embeddings.word_embeddings.weight", "ids"], ["out"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("ids", onnx.TensorProto.INT64, [None])],
        [helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, [None, None])],
        initializer=inits,
    )
    onnx.save(helper.make_model(graph, producer_name="semsearch-test"), str(path))
    return path


def test_the_word_matrix_is_read_from_the_onnx_file_as_onnx_reads_it(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    words = rng.standard_normal((300, 16)).astype(np.float32)
    path = _onnx_file(
        tmp_path / "m.onnx",
        {
            "model.embeddings.position_embeddings.weight": rng.standard_normal((8, 16)).astype(
                np.float32
            ),
            "model.embeddings.word_embeddings.weight": words,
            "model.encoder.layer.0.bias": rng.standard_normal(16).astype(np.float32),
            "steps": np.arange(5, dtype=np.int64),
        },
    )
    got = onnx_matrix(str(path), "word_embeddings.weight")
    assert got is not None and got.shape == (300, 16) and np.array_equal(got, words)
    assert onnx_matrix(str(path), "no_such.weight") is None
    tok = word_tokenizer(WORDS)
    assert isinstance(from_onnx(str(path), tok), WordVectors)
    assert from_onnx(str(tmp_path / "missing.onnx"), tok) is None
    (tmp_path / "junk.onnx").write_bytes(b"\xff" * 64)
    assert from_onnx(str(tmp_path / "junk.onnx"), tok) is None
    small = _onnx_file(tmp_path / "s.onnx", {"model.embeddings.word_embeddings.weight": words[:5]})
    assert from_onnx(str(small), tok) is None  # fewer rows than the tokenizer's pieces


# --------------------------------------------------------------------------- highlighting

MIXED = (
    "Bakers rise early every morning. The river flooded the lower town yesterday. "
    "Chess clubs meet on Fridays."
)


@pytest.fixture
def words_index(tmp_path: Path) -> Iterator[tuple[Index, WordsFake]]:
    article(tmp_path / "a" / "mixed.txt", "Notes", [MIXED, "Apples on the market."], "2024-04-01")
    fake = WordsFake()
    index = Index.open(tmp_path / "idx", create=True, embedder=fake)
    index.add([tmp_path / "a"])
    yield index, fake
    index.close()


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_word_vector_highlights_embed_only_the_query(
    words_index: tuple[Index, WordsFake], mode: Any
) -> None:
    """The cost that made highlights 20x the search: the model run on every sentence."""
    index, fake = words_index
    assert isinstance(fake, HasWordVectors)
    fake.calls.clear()
    hits = index.search("river flooded town", k=5, mode=mode, highlight=True)
    assert fake.calls == [["river flooded town"]]  # the query; no sentence
    mixed = next(h for h in hits if h.text == MIXED)
    sentence = "The river flooded the lower town yesterday."
    start = MIXED.index(sentence)
    assert mixed.highlights == [(start, start + len(sentence))]
    for h in hits:
        assert 1 <= len(h.highlights) <= 2
        assert_whole_sentences(h)


def test_without_word_vectors_the_sentences_are_embedded_in_one_batch(tmp_path: Path) -> None:
    article(tmp_path / "a" / "mixed.txt", "Notes", [MIXED, "Apples on the market."], "2024-04-01")
    fake = FakeEmbedder()
    with Index.open(tmp_path / "idx", create=True, embedder=fake) as index:
        index.add([tmp_path / "a"])
        fake.calls.clear()
        hits = index.search("river flooded town", k=5, mode="dense", highlight=True)
    assert fake.calls[0] == ["river flooded town"]
    assert len(fake.calls) == 2  # every sentence of every hit of several, in one call
    assert fake.calls[1] == [MIXED[a:b] for a, b in sentence_spans(MIXED)]  # not the 1-sentence hit
    assert all(h.highlights for h in hits)


# --------------------------------------------------------------------------- the real model


@pytest.mark.slow
def test_the_exported_model_gives_its_own_word_matrix_and_runs_once_per_query(
    tmp_path: Path,
) -> None:
    from semsearch.embed.model import SentenceTransformerEmbedder
    from semsearch.embed.onnx import OnnxEmbedder
    from tests.conftest import SEEDS

    with Index.open(tmp_path / "idx", create=True) as index:
        index.add([SEEDS])
        with index.snapshot() as snap:
            query_embedder = snap.embedder
        assert isinstance(query_embedder, OnnxEmbedder)
        exported = query_embedder.word_vectors()
        model = SentenceTransformerEmbedder()
        loaded = model.word_vectors()
        assert exported is not None and loaded is not None
        assert np.array_equal(
            np.asarray(exported._matrix), np.asarray(loaded._matrix)
        )  # the very matrix the model reads, from the ONNX file
        texts = ["Kim Jong-un will attend the parade.", "Oil prices rose."]
        assert np.allclose(exported.embed(texts), loaded.embed(texts), atol=1e-6)

        runs: list[int] = []
        encoder = query_embedder._encoder
        real_run = encoder.run

        def counted(feeds: dict[str, Any]) -> Any:
            runs.append(len(feeds["input_ids"]))
            return real_run(feeds)

        encoder.run = counted  # type: ignore[method-assign]
        hits = index.search("who attends the parade", k=5, highlight=True)
        assert runs == [1]  # the query alone: no sentence went through the model
        assert hits and all(h.highlights for h in hits)
        for h in hits:
            assert_whole_sentences(h)
