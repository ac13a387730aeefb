"""Which sentence a highlight picks: word-piece vectors (the default) against running the
model on every sentence (what highlights did before), on BBC business news.

    .venv/bin/python benchmarks/highlights.py                    # builds an index of 300 articles
    .venv/bin/python benchmarks/highlights.py --index DIR        # an index of those 300 already
    .venv/bin/python benchmarks/highlights.py --contextual       # + the model's in-context choice

Two query sets on the first 300 BBC business articles: 60 of their titles
(every fifth), and 35 questions in other words than the articles'
(`NATURAL`, written for this benchmark). Each query runs in hybrid and dense
mode (k=10); every hit of more than one sentence is scored by each method:

- ``model``: each sentence embedded by the model, cosine with the query's
  vector (the reference: what highlights did before, 20x the search's cost);
- ``words``: the default now (`query.highlight.sentence_scores`): weighted mean
  word-piece vectors plus ``LEXICAL_WEIGHT`` times the share of query terms;
- ``terms only``, ``first sentence``: baselines;
- ``in context`` (--contextual): the model run once on the whole passage, its
  token vectors averaged over each sentence: another way the same model could
  choose, to show how much two reasonable choices differ.

For each: how often it picks the model's best sentence, how often its pick is
among the sentences the model highlights (the best and any within the margin),
and the cosine the model gives its pick below the model's best (0 = the same
sentence; a random pick is shown for scale). ``LEXICAL_WEIGHT`` was chosen on
the title queries (the sweep is printed with --sweep); the natural ones check it.
Prints a markdown table and writes it to benchmarks/results/highlights.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BBC = ROOT.parent / "shared" / "data" / "bbc"
RESULTS = ROOT / "benchmarks" / "results"

NATURAL = [
    "which country avoided falling into recession",
    "people in Asia paying more for petrol",
    "currency reaching its strongest level in years",
    "American imports far exceeding exports",
    "high energy costs slowing global growth",
    "mining company losing more money",
    "Italian dairy firm returning to the stock market",
    "car maker opening a factory in south Asia",
    "executives admitting to fraud in court",
    "companies in Germany feeling less optimistic",
    "shoppers in Korea buying more",
    "negotiations between two car makers about a merger",
    "migrants sending money to their families",
    "subsidies for winemakers in France",
    "oil and gas exploration deal in Egypt",
    "bribes paid to officials in Africa",
    "manufacturing output weakening in America",
    "former boss lying about accounting",
    "chocolate raw material production in West Africa",
    "bank reporting its biggest ever earnings",
    "brewer takeover in South America",
    "cold weather pushing up the price of crude",
    "medicine withdrawn and investors sell shares",
    "telecoms takeover battle in the US",
    "small businesses struggling with expenses",
    "hydroelectric company doubling its earnings",
    "falling value of the dollar worries",
    "airline share sale oversubscribed",
    "Russian oil company bankruptcy court case",
    "government spending plans and deficit cuts",
    "central bank selling gold reserves",
    "new chief executive for Japanese car maker",
    "natural disaster damaging banks",
    "jobs cut at a factory",
    "interest rates raised by the central bank",
]

Scorer = Callable[[str, str, list[str]], list[float]]  # (query, mode, sentences) -> scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--index", help="an index of the first 300 BBC business articles")
    ap.add_argument("--contextual", action="store_true", help="also the in-context choice")
    ap.add_argument("--sweep", action="store_true", help="agreement for other LEXICAL_WEIGHTs")
    ap.add_argument("--examples", type=int, default=0, help="print N disagreements")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import semsearch
    from semsearch.query import check_query
    from semsearch.query import highlight as hl

    files = sorted((BBC / "business").glob("*.txt"))[:300]
    titles = [f.read_bytes().decode("utf-8", "replace").splitlines()[0] for f in files][::5]
    folder = args.index
    if folder is None:
        folder = str(Path(tempfile.mkdtemp(prefix="semsearch-highlights-")) / "index")
        with semsearch.Index.open(folder, create=True) as index:
            index.add([str(f) for f in files])

    cases: list[dict[str, Any]] = []  # one per hit of 2+ sentences
    with semsearch.Index.open(folder) as index, index.snapshot() as snap:
        embedder = snap.embedder
        costs: dict[str, list[float]] = {"model": [], "words": []}
        for kind, queries in (("titles", titles), ("natural", NATURAL)):
            for mode in ("hybrid", "dense"):
                for text in queries:
                    q = check_query(text, 10, mode=mode)
                    qvec = embedder.embed([text])[0]
                    hits = snap.search(text, k=10, mode=mode)
                    groups = [(h, hl.sentence_spans(h.text)) for h in hits]
                    groups = [(h, ss) for h, ss in groups if len(ss) > 1]
                    every = [h.text[a:b] for h, ss in groups for a, b in ss]
                    if not every:
                        continue
                    t = time.perf_counter()
                    model_all = [float(x) for x in embedder.embed(every) @ qvec]
                    costs["model"].append(time.perf_counter() - t)
                    t = time.perf_counter()
                    words_all = hl.sentence_scores(embedder, q, qvec, every)
                    costs["words"].append(time.perf_counter() - t)
                    pos = 0
                    for h, ss in groups:
                        sents = [h.text[a:b] for a, b in ss]
                        n = len(sents)
                        cases.append(
                            {
                                "kind": kind,
                                "query": text,
                                "query_obj": q,
                                "qvec": qvec,
                                "passage_id": h.passage_id,
                                "title": h.title,
                                "text": h.text,
                                "sentences": sents,
                                "model": model_all[pos : pos + n],
                                "words": words_all[pos : pos + n],
                            }
                        )
                        pos += n
        methods: dict[str, Callable[[dict[str, Any]], list[float]]] = {
            "words (default)": lambda c: c["words"],
            "terms only": lambda c: [
                float(hl._term_overlap(s, hl.lexical.query_terms(c["query"])))
                for s in c["sentences"]
            ],
            "first sentence": lambda c: [-float(i) for i in range(len(c["sentences"]))],
        }
        if args.contextual:
            contextual = in_context(folder, cases)
            methods["in context (the model, once per passage)"] = lambda c: contextual[id(c)]
        if args.sweep:
            words = embedder.word_vectors() if isinstance(embedder, hl.HasWordVectors) else None
            assert words is not None, "this index's model has no word-piece vectors"
            for w in (0.0, 0.25, 0.5, 1.0, 2.0):
                line = []
                for kind in ("titles", "natural"):
                    mine = [c for c in cases if c["kind"] == kind]
                    agree = np.mean(
                        [_best(_with_weight(words, c, w)) == _best(c["model"]) for c in mine]
                    )
                    line.append(f"{kind} {agree:.3f}")
                print(f"LEXICAL_WEIGHT {w}: picks the model's best sentence: {', '.join(line)}")

    table = render(cases, methods, costs, folder)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "highlights.md").write_text(table + "\n")
    print(table)
    if args.examples:
        print_examples(cases, args.examples)


def _best(scores: Sequence[float]) -> int:
    return max(range(len(scores)), key=lambda i: (scores[i], -i))  # ties: the earlier


def _with_weight(words: Any, c: dict[str, Any], weight: float) -> list[float]:
    from semsearch.query import highlight as hl

    terms = hl.lexical.query_terms(c["query"])
    vecs = words.embed([c["query"], *c["sentences"]])
    share = weight / max(1, len(terms))
    return [
        float(v @ vecs[0]) + share * hl._term_overlap(s, terms)
        for v, s in zip(vecs[1:], c["sentences"], strict=True)
    ]


def in_context(folder: str, cases: list[dict[str, Any]]) -> dict[int, list[float]]:
    """Each sentence's mean token vector from one run of the model on its passage (title +
    text, as indexed), cosine with the query's vector."""
    import torch

    from semsearch.embed.model import SentenceTransformerEmbedder

    model = SentenceTransformerEmbedder().model
    tokenizer, auto = model.tokenizer, model[0].auto_model
    out: dict[int, list[float]] = {}
    cache: dict[int, np.ndarray] = {}
    from semsearch.query.highlight import sentence_spans

    with torch.no_grad():
        for c in cases:
            if c["passage_id"] not in cache:
                prefix = f"{c['title']}\n" if c["title"] else ""
                enc = tokenizer(
                    prefix + c["text"],
                    return_offsets_mapping=True,
                    return_tensors="pt",
                    truncation=True,
                    max_length=256,
                )
                offsets = enc.pop("offset_mapping")[0].numpy()
                hidden = auto(**enc).last_hidden_state[0].numpy()
                rows = []
                for a, b in sentence_spans(c["text"]):
                    a, b = a + len(prefix), b + len(prefix)
                    sel = [j for j, (x, y) in enumerate(offsets) if y > x and x >= a and y <= b]
                    v = hidden[sel].mean(0) if sel else np.zeros(hidden.shape[1])
                    rows.append(v / (np.linalg.norm(v) or 1.0))
                cache[c["passage_id"]] = np.array(rows)
            out[id(c)] = [float(x) for x in cache[c["passage_id"]] @ c["qvec"]]
    return out


def render(
    cases: list[dict[str, Any]],
    methods: dict[str, Callable[[dict[str, Any]], list[float]]],
    costs: dict[str, list[float]],
    folder: str,
) -> str:
    from semsearch.query.highlight import pick_highlights

    lines = [
        f"Index: {folder} (first 300 BBC business articles); hits of 2+ sentences, "
        "hybrid and dense, k=10.",
        "",
        "| queries | method | picks the model's best | pick among the model's highlights "
        "| model cosine below its best (random pick) |",
        "|---|---|---|---|---|",
    ]
    for kind in ("titles", "natural"):
        mine = [c for c in cases if c["kind"] == kind]
        random_gap = statistics.mean(max(c["model"]) - statistics.mean(c["model"]) for c in mine)
        for name, method in methods.items():
            same = among = 0
            gaps = []
            for c in mine:
                pick = _best(method(c))
                ref = c["model"]
                spans = [(i, i + 1) for i in range(len(ref))]
                chosen = [a for a, _ in pick_highlights(spans, ref)]
                same += pick == _best(ref)
                among += pick in chosen
                gaps.append(max(ref) - ref[pick])
            lines.append(
                f"| {kind} ({len(mine)} hits) | {name} | {same / len(mine):.3f} "
                f"| {among / len(mine):.3f} | {statistics.mean(gaps):.4f} ({random_gap:.4f}) |"
            )
    model_ms = statistics.median(costs["model"]) * 1000
    words_ms = statistics.median(costs["words"]) * 1000
    lines += [
        "",
        f"Scoring the sentences of one query's hits (median): the model {model_ms:.1f} ms, "
        f"word-piece vectors {words_ms:.2f} ms ({model_ms / words_ms:.0f}x less).",
    ]
    return "\n".join(lines)


def print_examples(cases: list[dict[str, Any]], n: int) -> None:
    shown = 0
    for c in cases:
        mine, ref = _best(c["words"]), _best(c["model"])
        if mine == ref:
            continue
        print(f"\nQ: {c['query']}")
        for i, s in enumerate(c["sentences"]):
            mark = ("M" if i == ref else " ") + ("W" if i == mine else " ")
            print(f"  {mark} model {c['model'][i]:.3f} words {c['words'][i]:.3f}  {s[:140]}")
        shown += 1
        if shown >= n:
            break


if __name__ == "__main__":
    main()
