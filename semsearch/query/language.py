"""Which lexical tokenizer suits a collection: `choose_tokenizer` (``--lexical auto``).

Looks at the letters and words of a sample of the passages:

1. When more than `NO_SPACE_SHARE` of the letters belong to scripts written
   without spaces between words (Chinese, Japanese, Korean, Thai, Lao, Khmer,
   Myanmar), ``trigram``: a word tokenizer would see whole sentences as one
   word, while trigrams find any substring of three characters.
2. Else, when more than `ENGLISH_SHARE` of the words are English stop words
   (``the``, ``of``, ``and``...: 34% of SciFact's words, 41% of Cranfield's, 40%
   of BBC News'; a few percent in French, German or Spanish), ``porter``:
   English, so Porter stemming helps.
3. Else ``unicode61``: words, no stemming (Porter's rules would mangle
   another language's words), accents folded.

Pure functions of text; nothing here reads an index.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .lexical import STOP_WORDS

NO_SPACE_SHARE = 0.25
ENGLISH_SHARE = 0.15
SAMPLE_PASSAGES = 2000  # passages looked at, spread over the collection
SAMPLE_CHARS = 1000  # of each, its first characters

# (first, last) code points of scripts written without spaces between words
_NO_SPACE_RANGES = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x1780, 0x17FF),  # Khmer
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3130, 0x318F),  # Hangul compatibility Jamo
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xAC00, 0xD7AF),  # Hangul syllables
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0x20000, 0x3FFFF),  # CJK extensions B and later
)
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def no_space_letter(ch: str) -> bool:
    """True for a letter of a script written without spaces between words (CJK, Thai...)."""
    code = ord(ch)
    return any(lo <= code <= hi for lo, hi in _NO_SPACE_RANGES)


@dataclass(frozen=True)
class Choice:
    """What `choose_tokenizer` picked, and why in words a summary line shows."""

    tokenizer: str  # porter, unicode61 or trigram
    reason: str  # "62% of letters are Chinese, Japanese, Korean or Thai"
    no_space_share: float
    english_share: float


def sample(texts: list[str], limit: int = SAMPLE_PASSAGES) -> list[str]:
    """At most ``limit`` of ``texts``, spread evenly over them, each cut to `SAMPLE_CHARS`."""
    if len(texts) > limit:
        step = len(texts) / limit
        texts = [texts[int(i * step)] for i in range(limit)]
    return [t[:SAMPLE_CHARS] for t in texts]


def choose_tokenizer(texts: Iterable[str]) -> Choice:
    """The tokenizer for a collection whose passages (or a sample of them) are ``texts``."""
    letters = no_space = words = english = 0
    for text in texts:
        for ch in text:
            if ch.isalpha():
                letters += 1
                if no_space_letter(ch):
                    no_space += 1
        for word in _WORD.findall(text):
            if no_space_letter(word[0]):
                continue  # a run of CJK is a sentence, not a word
            words += 1
            if word.lower() in STOP_WORDS:
                english += 1
    cjk = no_space / letters if letters else 0.0
    stop = english / words if words else 0.0
    if cjk > NO_SPACE_SHARE:
        why = f"{cjk:.0%} of letters are Chinese, Japanese, Korean or Thai"
        return Choice("trigram", why, cjk, stop)
    if stop > ENGLISH_SHARE:
        why = f"English: {stop:.0%} of words are English stop words"
        return Choice("porter", why, cjk, stop)
    if not words:
        return Choice("unicode61", "no words to tell the language by", cjk, stop)
    why = f"not English: {stop:.0%} of words are English stop words"
    return Choice("unicode61", why, cjk, stop)
