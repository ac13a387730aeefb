"""Feedback and footprint: the order passages are embedded in (a progress bar's time left),
status lines while a model loads, and one shared copy of the ONNX query model per model."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from semsearch.embed import batch_order

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
