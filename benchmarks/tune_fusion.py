"""Choose and calibrate the hybrid fusion on SciFact's *train* queries (never the test ones).

    .venv/bin/python benchmarks/tune_fusion.py [--index-cache DIR]

Indexes SciFact with the default pipeline (or reuses --index-cache: the folder
`benchmarks/quality.py` uses, so one index serves both), then for each of the
809 train queries collects what hybrid search fuses: the top `HYBRID_DEPTH`
passages of each ranking with both scores of every one of them (cosine, BM25)
and the query's BM25 bound. Every setting is then scored offline on exactly
those candidates, articles ranked by their best passage as `semsearch eval`
ranks them:

1. the calibrated mix ``alpha * cosine + (1 - alpha) * bm25 / bound`` for
   alpha 0.2 to 0.8, beside the min-max and reciprocal-rank fusions it
   replaces (their scores depend on the other candidates);
2. for the best alpha, the logistic ``1 / (1 + exp(-scale * (mix - shift)))``
   fitted by maximum likelihood to whether each of the top 10 articles of
   every query is relevant (the hits a query shows), and how well its
   predictions match what was relevant, by score band.

The winner is DEFAULT_FUSION in semsearch/query/options.py; the script checks
it through `evaluate` (the library's own search) and writes
benchmarks/results/tune_fusion.md. benchmarks/quality.py reports it on the
test queries.
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from semsearch.embed.prompts import Prompts
from semsearch.evaluate import Dataset, evaluate, load_dataset, score_run
from semsearch.index import Index
from semsearch.query.fusion import Fusion
from semsearch.query.lexical import query_terms
from semsearch.query.options import DEFAULT_FUSION, HYBRID_DEPTH
from semsearch.query.searcher import Searcher

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "scifact"
RESULTS = ROOT / "benchmarks" / "results"
DEPTH = 100  # articles ranked per query, as `semsearch eval` does
FIT_DEPTH = 10  # the calibration is fitted on the top 10 articles of each query
ALPHAS = [a / 20 for a in range(4, 17)]  # 0.20, 0.25, ... 0.80
BANDS = [0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]

Floats = npt.NDArray[np.float64]


@dataclass
class QueryCandidates:
    """One query's candidates: both scores of each, its article, and both rankings."""

    keys: list[str]  # the article (corpus id) of each candidate passage
    dense: Floats  # cosine
    lexical: Floats  # BM25 (0 where no term matches)
    bound: float
    dense_ranking: list[tuple[int, float]]  # (position in keys, score), best first
    lexical_ranking: list[tuple[int, float]]
    terms: int


def collect(dataset: Dataset, index: Index) -> dict[str, QueryCandidates]:
    """What hybrid search fuses, for every judged query (as `Searcher` collects it)."""
    qids = list(dataset.queries)
    out: dict[str, QueryCandidates] = {}
    with index.snapshot() as snap:
        embedder = snap.embedder
        prompts = Prompts.from_manifest(snap.manifest)  # the index's query prefix, if any
        texts = [prompts.query + dataset.queries[q] for q in qids]
        vectors = embedder.embed(texts, batch_size=64)
        store = snap._store  # the snapshot's own store: one generation for every query
        searcher = Searcher(store, snap.vector_index, embedder, prompts=prompts)
        for qvec, qid in zip(vectors, qids, strict=True):
            text = dataset.queries[qid]
            c = searcher.candidates(text, qvec, HYBRID_DEPTH, None)
            ids = list(c.dense)
            at = {pid: n for n, pid in enumerate(ids)}
            rows = store.passages(ids)
            out[qid] = QueryCandidates(
                keys=[rows[i].key for i in ids],
                dense=np.array([c.dense[i] for i in ids]),
                lexical=np.array([c.lexical[i] for i in ids]),
                bound=store.bm25_bound(text),
                dense_ranking=[(at[i], s) for i, s in c.dense_ranking],
                lexical_ranking=[(at[i], s) for i, s in c.lexical_ranking],
                terms=len(query_terms(text)),
            )
    return out


Scorer = Callable[[QueryCandidates], Floats]


def by_article(c: QueryCandidates, scores: Floats, depth: int) -> list[tuple[str, float]]:
    """The top ``depth`` articles, each scored by its best passage."""
    best: dict[str, float] = {}
    for key, s in zip(c.keys, scores.tolist(), strict=True):
        if key not in best or s > best[key]:
            best[key] = s
    return sorted(best.items(), key=lambda kv: -kv[1])[:depth]


def metrics(
    dataset: Dataset, cands: dict[str, QueryCandidates], scorer: Scorer
) -> dict[str, float]:
    run = {qid: dict(by_article(c, scorer(c), DEPTH)) for qid, c in cands.items()}
    return score_run(dataset.qrels, run)[0]


def mix(alpha: float) -> Scorer:
    return lambda c: alpha * c.dense + (1 - alpha) * c.lexical / c.bound


def minmax(alpha: float) -> Scorer:
    """The fusion semsearch used before: each ranking min-max normalised by its top."""

    def scorer(c: QueryCandidates) -> Floats:
        out = np.zeros(len(c.keys))
        for weight, ranking in ((alpha, c.dense_ranking), (1 - alpha, c.lexical_ranking)):
            if not ranking:
                continue
            lo, hi = min(s for _, s in ranking), max(s for _, s in ranking)
            for at, s in ranking:
                out[at] += weight * ((s - lo) / (hi - lo) if hi > lo else 1.0)
        return out

    return scorer


def rrf(c_: float) -> Scorer:
    def scorer(c: QueryCandidates) -> Floats:
        out = np.zeros(len(c.keys))
        for ranking in (c.dense_ranking, c.lexical_ranking):
            for rank, (at, _) in enumerate(ranking, start=1):
                out[at] += 1 / (c_ + rank)
        return out

    return scorer


def pool(
    dataset: Dataset, cands: dict[str, QueryCandidates], alpha: float, depth: int
) -> tuple[Floats, Floats]:
    """(mix, relevant 0/1) of the top ``depth`` articles of every query."""
    xs, ys = [], []
    for qid, c in cands.items():
        judged = dataset.qrels.get(qid, {})
        for key, m in by_article(c, mix(alpha)(c), depth):
            xs.append(m)
            ys.append(1.0 if judged.get(key, 0) > 0 else 0.0)
    return np.array(xs), np.array(ys)


def fit_logistic(x: Floats, y: Floats) -> tuple[float, float]:
    """(scale, shift) maximising the likelihood of ``y`` under 1 / (1 + exp(-scale (x - shift)))."""
    design = np.stack([x, np.ones_like(x)], axis=1)
    w = np.array([1.0, 0.0])
    for _ in range(100):  # Newton's method; the log-likelihood is concave
        p = 1 / (1 + np.exp(-(design @ w)))
        step = np.linalg.solve((design.T * (p * (1 - p))) @ design, design.T @ (y - p))
        w += step
        if np.abs(step).max() < 1e-12:
            break
    return float(w[0]), float(-w[1] / w[0])


def calibration(scores: Floats, relevant: Floats) -> list[str]:
    """Markdown rows: for each band of scores, how many, the mean score, the share relevant."""
    rows = []
    for lo, hi in itertools.pairwise(BANDS):
        inside = (scores >= lo) & ((scores < hi) if hi < 1.0 else (scores <= hi))
        if inside.any():
            rows.append(
                f"| {lo:.2f}-{hi:.2f} | {int(inside.sum())} | {scores[inside].mean():.3f} | "
                f"{relevant[inside].mean():.3f} |"
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--index-cache", help="folder for the SciFact index, reused between runs")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    train = load_dataset(DATA, "train")
    folder = Path(args.index_cache or tempfile.mkdtemp(prefix="semsearch-tune-"))
    with Index.open(folder / "scifact-paragraph", create=True) as index:
        index.add([train.corpus_path])
        cands = collect(train, index)
        settings: list[tuple[str, Scorer]] = [("dense alone", lambda c: c.dense)]
        settings.append(("lexical alone", lambda c: c.lexical))
        settings += [(f"min-max convex, alpha {a:.1f} (before)", minmax(a)) for a in (0.4, 0.5)]
        settings += [(f"rrf c={c:g}", rrf(c)) for c in (10, 60)]
        settings += [(f"calibrated, alpha {a:.2f}", mix(a)) for a in ALPHAS]
        results = [(name, metrics(train, cands, scorer)) for name, scorer in settings]
        tuned = [(a, m) for a, (_, m) in zip(ALPHAS, results[-len(ALPHAS) :], strict=True)]
        alpha = max(tuned, key=lambda am: am[1]["nDCG@10"])[0]
        scale, shift = fit_logistic(*pool(train, cands, alpha, FIT_DEPTH))
        fitted = Fusion(alpha=alpha, scale=round(scale, 2), shift=round(shift, 3))
        check = evaluate(train, index, mode="hybrid", fusion=DEFAULT_FUSION)

    lines = [
        "# Fusion on SciFact train (`.venv/bin/python benchmarks/tune_fusion.py`)",
        "",
        f"SciFact train, {len(train.queries)} queries, default passages; candidates: the top "
        f"{HYBRID_DEPTH} passages of each ranking, both scores of each.",
        "",
        "| setting | nDCG@10 | Recall@100 |",
        "|---|---|---|",
    ]
    for name, m in sorted(results, key=lambda r: -r[1]["nDCG@10"]):
        lines.append(f"| {name} | {m['nDCG@10']:.4f} | {m['Recall@100']:.4f} |")
    lines += [
        "",
        f"Best alpha {alpha:.2f}; logistic fitted on the top {FIT_DEPTH} articles of every "
        f"query: scale {scale:.3f}, shift {shift:.4f} -> `{fitted}`.",
        f"DEFAULT_FUSION is `{DEFAULT_FUSION}`: through `evaluate` it gives nDCG@10 "
        f"{check.metrics['nDCG@10']:.4f}, Recall@100 {check.metrics['Recall@100']:.4f} on train.",
        "",
    ]
    for depth in (FIT_DEPTH, DEPTH):
        x, y = pool(train, cands, DEFAULT_FUSION.alpha, depth)
        z = DEFAULT_FUSION.scale * (x - DEFAULT_FUSION.shift)
        fused = 1 / (1 + np.exp(-z))
        loss = -float(np.mean(y * np.log(fused) + (1 - y) * np.log(1 - fused)))
        lines += [
            f"Calibration of DEFAULT_FUSION on the top {depth} articles of every train query "
            f"({len(x)} articles, {int(y.sum())} relevant; log loss {loss:.4f}):",
            "",
            "| fused score | articles | mean score | relevant |",
            "|---|---|---|---|",
            *calibration(fused, y),
            "",
        ]
    top = [by_article(c, mix(DEFAULT_FUSION.alpha)(c), 1)[0][1] for c in cands.values()]
    terms = np.mean([c.terms for c in cands.values()])
    lines.append(
        f"The median top hit of a train query scores {DEFAULT_FUSION.logistic(np.median(top)):.3f}"
        f" (mix {np.median(top):.3f}); the queries have {terms:.1f} terms on average."
    )
    text = "\n".join(lines)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tune_fusion.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
