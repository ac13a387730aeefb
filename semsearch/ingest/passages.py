"""Paragraphs to passages: one passage per paragraph, split only when too long.

A model reads at most ``max_tokens`` word pieces and silently drops the rest,
so a paragraph whose embedded text would not fit is split at sentence
boundaries (then at word boundaries, for a sentence that alone is too long)
into pieces that each fit. No text is dropped: the pieces of a paragraph
cover all of it.

The embedded text is the article title, a newline, then the passage: the
title gives a paragraph the context it lacks on its own ("he said the deal
was off"). A very long title is shortened for this purpose so that it never
takes more than ``MAX_TITLE_TOKENS`` of the budget, nor more than half of it
(a model that reads few tokens still gets most of each paragraph). A paragraph
under headings (`Paragraph.section`: DOCX headings, an EPUB chapter's title)
gets them too, on a line after the title, shortened to ``MAX_SECTION_TOKENS``
and never more than a quarter of what is left.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from .documents import Document, Paragraph

TokenCounter = Callable[[Sequence[str]], list[int]]
"""Counts the word pieces of each text, without the model's special tokens."""

MAX_TITLE_TOKENS = 48
MAX_SECTION_TOKENS = 24
SPECIAL_TOKENS = 2  # [CLS] and [SEP] for BERT-like models

# A sentence ends at . ! ? or … (then any closing quotes or brackets, group 1)
# and white space; the next one starts with anything but a lower-case letter.
_SENTENCE_END = re.compile(r"(?<=[.!?…])([\"'”’)\]]*)\s+(?=[^\s\w]*[^\sa-z])")  # noqa: RUF001
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Passage:
    """A piece of an article that gets one vector."""

    paragraph: int  # 0-based paragraph number in the article
    piece: int  # 0-based piece number inside the paragraph (0 when not split)
    pieces: int  # how many pieces the paragraph was split into
    start: int  # character span in the article (see sources for the reference text)
    end: int
    text: str  # what is shown to the user
    embed_text: str  # what is embedded: title and passage
    line: int = 0  # 1-based line of the file where it starts (0: not known)
    column: int = 0  # 1-based column there, in UTF-8 bytes (0: not known)
    page: int = 0  # 1-based page (PDF) or chapter (EPUB) where it starts (0: no pages)


Unit = Literal["paragraph", "document"]
UNITS: tuple[Unit, ...] = ("paragraph", "document")


@dataclass(frozen=True)
class Chunking:
    """The settings that decide how articles become passages; recorded in the index.

    ``unit="paragraph"`` (the default) gives one passage per paragraph, split
    to fit the model. ``unit="document"`` gives one passage per article, its
    title and text joined by a space and embedded as far as the model reads:
    the protocol of published BEIR figures, where documents are short abstracts.
    """

    max_tokens: int
    title_in_embedding: bool = True
    unit: str = "paragraph"

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"unknown passage unit {self.unit!r} (use {' or '.join(UNITS)})")

    def as_dict(self) -> dict[str, object]:
        if self.unit == "document":
            return {
                "unit": "document",
                "split": "none (the model truncates)",
                "max_tokens": self.max_tokens,
            }
        return {
            "unit": "paragraph",
            "split": "sentence",
            "max_tokens": self.max_tokens,
            "title_in_embedding": self.title_in_embedding,
            "max_title_tokens": MAX_TITLE_TOKENS,
        }


def title_budget(max_tokens: int) -> int:
    """The most tokens a title may take: `MAX_TITLE_TOKENS`, and never more than half of
    what the model reads beside its special tokens, so the paragraph keeps the rest."""
    return max(0, min(MAX_TITLE_TOKENS, (max_tokens - SPECIAL_TOKENS) // 2))


def _title_prefix(
    title: str, count: TokenCounter, limit: int = MAX_TITLE_TOKENS
) -> tuple[str, int]:
    """The title as embedded (shortened to ``limit`` tokens if needed) and its token count."""
    title = title.strip()
    if not title or limit < 1:
        return "", 0
    n = count([title])[0]
    if n <= limit:
        return title, n
    words = title.split()
    lo, hi = 0, len(words)  # the largest prefix of words that fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count([" ".join(words[:mid])])[0] <= limit:
            lo = mid
        else:
            hi = mid - 1
    short = " ".join(words[:lo])
    return short, count([short])[0] if short else 0


def _units(text: str, pattern: re.Pattern[str] | None) -> list[tuple[int, int]]:
    """Spans of sentences (``pattern`` = sentence ends) or of words (``None``)."""
    if pattern is None:
        return [(m.start(), m.end()) for m in _WORD.finditer(text)]
    spans = []
    pos = 0
    for m in pattern.finditer(text):
        spans.append((pos, m.end(1)))  # the sentence keeps its closing quotes and brackets
        pos = m.end()
    spans.append((pos, len(text)))
    return [(a, b) for a, b in spans if b > a]


def split_text(text: str, budget: int, count: TokenCounter) -> list[tuple[int, int]]:
    """Split ``text`` into contiguous spans of at most ``budget`` tokens each.

    Sentence boundaries first, word boundaries for a sentence that is too long
    alone, characters for a "word" that is (a URL, a hash, a DNA string). The
    spans, with the white space between them, cover the whole text.
    """
    if budget < 1:
        raise ValueError("token budget must be at least 1")
    if count([text])[0] <= budget:
        return [(0, len(text))]
    out: list[tuple[int, int]] = []
    for level in (_SENTENCE_END, None):
        units = _units(text, level)
        if len(units) > 1:
            break
    else:
        # one unsplittable word: cut it into character runs that fit
        return _split_chars(text, budget, count)
    sizes = count([text[a:b] for a, b in units])
    i = 0
    while i < len(units):
        a, b = units[i]
        if sizes[i] > budget:
            out += [(a + x, a + y) for x, y in split_text(text[a:b], budget, count)]
            i += 1
            continue
        total = sizes[i]
        j = i + 1
        while j < len(units) and sizes[j] <= budget and total + sizes[j] <= budget:
            total += sizes[j]
            j += 1
        end = units[j - 1][1]
        # Sums are exact for whitespace-separated word pieces; check anyway and
        # back off one unit at a time for tokenizers where they are not.
        while j - 1 > i and count([text[a:end]])[0] > budget:
            j -= 1
            end = units[j - 1][1]
        if count([text[a:end]])[0] > budget:  # a single unit that counts differently alone
            out += [(a + x, a + y) for x, y in split_text(text[a:end], budget, count)]
        else:
            out.append((a, end))
        i = j
    return out


def _split_chars(text: str, budget: int, count: TokenCounter) -> list[tuple[int, int]]:
    """Character runs of at most ``budget`` tokens, each the longest that fits from its start.

    The end of each run is found by galloping (windows of ``budget``, then twice, four
    times... as many characters) and a binary search inside the last window, so the work
    grows with the length of the runs, not with the rest of the text: a 10 MB line without
    white space is cut in linear time (a binary search over the whole rest was quadratic).
    """
    out = []
    pos, n = 0, len(text)
    while pos < n:
        lo = pos + 1  # at least one character, whatever it counts
        step = max(1, budget)
        hi = min(n, pos + step)
        while count([text[pos:hi]])[0] <= budget:
            lo = hi
            if hi == n:
                break
            step *= 2
            hi = min(n, pos + step)
        if lo < hi:  # text[pos:hi] does not fit: the longest run ends in [lo, hi)
            hi -= 1
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if count([text[pos:mid]])[0] <= budget:
                    lo = mid
                else:
                    hi = mid - 1
        out.append((pos, lo))
        pos = lo
    return out


def make_passages(doc: Document, chunking: Chunking, count: TokenCounter) -> list[Passage]:
    """The passages of one article, in order, each within the model's token limit."""
    if chunking.unit == "document":
        body = " ".join(p.text for p in doc.paragraphs)
        embedded = f"{doc.title.strip()} {body}".strip() if chunking.title_in_embedding else body
        first, last = doc.paragraphs[0], doc.paragraphs[-1]
        line, column = doc.position(first, first.start)
        return [
            Passage(0, 0, 1, first.start, last.end, body, embedded, line, column, first.page)
        ]
    if chunking.title_in_embedding:
        title, title_tokens = _title_prefix(doc.title, count, title_budget(chunking.max_tokens))
    else:
        title, title_tokens = "", 0
    # at least one token: a model reading almost nothing still gets every word, one by one
    room = chunking.max_tokens - SPECIAL_TOKENS - title_tokens
    sections: dict[str, tuple[str, int]] = {}  # heading path -> (as embedded, its tokens)
    out: list[Passage] = []
    sizes = count([p.text for p in doc.paragraphs])
    for number, (para, size) in enumerate(zip(doc.paragraphs, sizes, strict=True)):
        section, section_tokens = "", 0
        if para.section and chunking.title_in_embedding:
            if para.section not in sections:
                limit = min(MAX_SECTION_TOKENS, max(0, room) // 4)
                sections[para.section] = _title_prefix(para.section, count, limit)
            section, section_tokens = sections[para.section]
        budget = max(1, room - section_tokens)
        prefix = "".join(f"{part}\n" for part in (title, section) if part)
        spans = [(0, len(para.text))] if size <= budget else split_text(para.text, budget, count)
        for piece, (a, b) in enumerate(spans):
            text = para.text[a:b].strip()
            start, end = _article_span(para, a, b)
            line, column = doc.position(para, start)
            out.append(
                Passage(
                    paragraph=number,
                    piece=piece,
                    pieces=len(spans),
                    start=start,
                    end=end,
                    text=text,
                    embed_text=prefix + text,
                    line=line,
                    column=column,
                    page=para.page,
                )
            )
    return out


def _article_span(para: Paragraph, a: int, b: int) -> tuple[int, int]:
    """Map a span inside the paragraph text back to the article.

    Exact where the paragraph text is its source unchanged; the whole
    paragraph's span where white space was collapsed or markup stripped.
    """
    if para.exact and para.end - para.start == len(para.text):
        return para.start + a, para.start + b
    return para.start, para.end
