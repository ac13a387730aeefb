"""Typo tolerance on BBC News: top-3 with and without correction, and the warm cost per query.

    PYTHONPATH=. HF_HUB_OFFLINE=1 python benchmarks/spelling.py INDEX_DIR  # of ../shared/data/bbc
"""

from __future__ import annotations

import sys
import time

from semsearch import Index

QUERIES = [
    "what did the chancelor say about the budjet",
    "what did the chancellor say about the budget",
    "goverment plans",
    "elecion results",
    "Abramovitch Chelsea",
    "footbal results",
]


def main(folder: str) -> None:
    with Index.open(folder) as ix:
        ix.search("warm up", k=3)
        for q in QUERIES:
            for mode in ("hybrid", "dense"):
                for correct in (True, False):
                    r = ix.search(q, k=3, mode=mode, correct=correct)
                    top = [(h.passage_id, h.title[:40]) for h in r]
                    print(f"{mode:6} correct={correct!s:5} {q!r} -> {r.corrected_query!r}: {top}")
        for q in QUERIES[:2]:
            ms = {}
            for correct in (True, False):
                ix.search(q, k=5, mode="lexical", correct=correct)
                t = time.perf_counter()
                for _ in range(20):
                    ix.search(q, k=5, mode="lexical", correct=correct)
                ms[correct] = (time.perf_counter() - t) / 20 * 1000
            print(f"lexical, warm: {q!r}: {ms[True]:.1f} ms corrected, {ms[False]:.1f} ms not "
                  f"(ratio {ms[True] / ms[False]:.2f})")


if __name__ == "__main__":
    main(sys.argv[1])
