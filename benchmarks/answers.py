"""Questions that need the answer, not the topic: do answering paragraphs come first?

    .venv/bin/python benchmarks/answers.py INDEX_DIR      # an index of ../shared/data/bbc

BBC News has no judgments, so each question here comes with what an answering paragraph
must say, as regular expressions that must all match it (written by reading the
collection, before any run: "who won the Australian Open" is answered by a paragraph
naming Safin or Serena Williams as winning, not by a preview of the draw). For every
question and every ranking (hybrid, hybrid --rerank, dense, dense --rerank, lexical) it
prints the rank of the first answering hit in the top 10 and how many of the top 3
answer (also written to benchmarks/results/answers.md), then totals: questions
answered first, answering hits in the top 3, MRR@10.
How many paragraphs of the collection answer each question is printed too (a question
that nothing answers would measure nothing).
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
from pathlib import Path

from semsearch.index import Index

# question -> patterns that must all match an answering paragraph (case-insensitive)
QUESTIONS: dict[str, list[str]] = {
    "who won the Australian Open": [
        r"\b(Safin|Serena)\b",
        r"\b(won|wins|winning|beat|beats|claimed|clinched|victory|champion)\b",
        r"Australian Open|Melbourne|final",
    ],
    "who won best actor at the Oscars": [
        r"\bFoxx\b",
        r"\b(won|wins|winning|took|picked up|scooped|went to)\b",
        r"best actor",
        r"Oscar|Academy Award",
    ],
    "which film won best picture at the Oscars": [
        r"Million Dollar Baby",
        r"\b(won|wins|winning|took|scooped|named)\b",
        r"best (film|picture)",
    ],
    "when is the general election": [r"election", r"\b(5 May|May 5)\b"],
    "how much did Glazer offer for Manchester United": [
        r"\bGlazer",
        r"£\s?\d+(\.\d+)?\s?(m|bn)\b|\d+p (a|per) share",
    ],
    "who won the Six Nations": [
        r"\bWales\b",
        r"Grand Slam|Six Nations|championship",
        r"\b(won|win|clinched|claimed|sealed|champions|winning)\b",
    ],
    "how many people died in the tsunami": [
        r"tsunami",
        r"\d[\d,]{2,}\s+(people|dead|deaths|lives|died|killed)|death toll",
    ],
    "oil price rises hurt profits": [
        r"\b(oil|fuel)\b",
        r"\bprofits?\b",
        r"\b(fell|fall|falls|drop|dropped|down|hit|hurt|slump|slumped|lower|squeez\w*)\b",
    ],
    "who bought Yukos' main oil unit": [
        r"Yugansk",
        r"\b(Baikal|Rosneft)\b",
        r"\b(bought|buy|buys|acquired|won|purchase\w*)\b",
    ],
    "which film won the Golden Globe for best drama": [
        r"\bAviator\b",
        r"Golden Globe",
        r"\b(won|wins|winning|took|named|best)\b",
    ],
    "who won the Grammy for album of the year": [
        r"Genius Loves Company|Ray Charles",
        r"album of the year",
    ],
    "which band won best British group at the Brits": [
        r"Franz Ferdinand|Keane|Scissor Sisters",
        r"best British (group|band)|British group",
    ],
}
RANKINGS: list[tuple[str, dict[str, object]]] = [
    ("hybrid", {"mode": "hybrid"}),
    ("hybrid --rerank", {"mode": "hybrid", "rerank": True}),
    ("dense", {"mode": "dense"}),
    ("dense --rerank", {"mode": "dense", "rerank": True}),
    ("lexical", {"mode": "lexical"}),
]


def answers(text: str, patterns: list[str]) -> bool:
    return all(re.search(p, text, re.IGNORECASE) for p in patterns)


def answering_paragraphs(index_dir: str, patterns: list[str]) -> int:
    db = sqlite3.connect(f"file:{Path(index_dir) / 'semsearch.db'}?mode=ro", uri=True)
    try:
        return sum(answers(text, patterns) for (text,) in db.execute("SELECT text FROM passages"))
    finally:
        db.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("index", help="an index of ../shared/data/bbc")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    totals = {name: [0, 0, 0.0] for name, _ in RANKINGS}  # first, in top 3, reciprocal ranks
    lines = [
        "| question | answering paragraphs | "
        + " | ".join(f"{n}: rank / top-3" for n, _ in RANKINGS)
        + " |",
        "|---|---|" + "---|" * len(RANKINGS),
    ]
    with Index.open(args.index) as index:
        for question, patterns in QUESTIONS.items():
            cells = []
            for name, options in RANKINGS:
                hits = index.search(question, k=10, **options)  # type: ignore[arg-type]
                good = [answers(h.text, patterns) for h in hits]
                rank = good.index(True) + 1 if any(good) else None
                top3 = sum(good[:3])
                totals[name][0] += rank == 1
                totals[name][1] += top3
                totals[name][2] += 1 / rank if rank else 0.0
                cells.append(f"{rank or '-'} / {top3}")
            count = answering_paragraphs(args.index, patterns)
            lines.append(f"| {question} | {count} | " + " | ".join(cells) + " |")
    n = len(QUESTIONS)
    lines += [
        "",
        "| ranking | answer first | answering hits in the top 3 | MRR@10 |",
        "|---|---|---|---|",
    ]
    for name, (first, top3, rr) in totals.items():
        lines.append(f"| {name} | {first} of {n} | {top3} of {3 * n} | {rr / n:.3f} |")
    text = "\n".join(lines)
    print(text)
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    (results / "answers.md").write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
