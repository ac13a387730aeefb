"""One `Index` shared by many threads while another thread commits.

Readers each run queries (every mode, filtered and not) on the index while a
writer adds, edits and removes files. Every query must succeed, obey its own
filters, and return exactly what a single-threaded search of the generation it
ran on returns: the run is replayed afterwards, one step at a time, on a fresh
copy of the same files.
"""

from __future__ import annotations

import fnmatch
import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from semsearch import Index
from semsearch.query import Hit
from tests.fakes import FakeEmbedder

WORDS = [
    "river",
    "flood",
    "rain",
    "town",
    "school",
    "hill",
    "chess",
    "match",
    "rival",
    "bakery",
    "bread",
    "market",
    "oil",
    "price",
    "airline",
    "profit",
    "budget",
    "minister",
    "election",
    "vote",
    "parade",
    "crowd",
    "music",
    "festival",
    "storm",
]
SECTIONS = ("news/sport", "news/business", "notes")
QUERIES: list[dict[str, Any]] = [
    {"query": "river flood", "mode": "dense"},
    {"query": "oil price profit", "mode": "lexical"},
    {"query": "parade crowd music", "mode": "hybrid"},
    {"query": "budget minister", "mode": "hybrid", "since": "2024-03-01"},
    {"query": "chess rival match", "mode": "dense", "until": "2024-02-15"},
    {"query": "bakery bread", "mode": "lexical", "path": "*news/sport/*"},
    {"query": "storm rain", "mode": "hybrid", "path": "*notes/*", "since": "2024-01-10"},
    {"query": "election vote", "mode": "dense", "path": "*business*", "until": "2024-04-01"},
    {"query": "festival", "mode": "hybrid", "by_article": True},
    {"query": "market airline", "mode": "lexical", "since": "2024-02-01", "until": "2024-03-15"},
]


def _article(rng: random.Random, day: int) -> str:
    title = " ".join(rng.choice(WORDS) for _ in range(3)).capitalize()
    paragraphs = [" ".join(rng.choice(WORDS) for _ in range(12)) + "." for _ in range(3)]
    return (
        f" date 2024-{1 + day // 28:02d}-{1 + day % 28:02d} 3\n{title}\n"
        + "\n".join(paragraphs)
        + "\n"
    )


def _make_corpus(root: Path, seed: int = 7, files: int = 45) -> list[Path]:
    rng = random.Random(seed)
    made = []
    for n in range(files):
        path = root / SECTIONS[n % len(SECTIONS)] / f"a{n:03d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_article(rng, n * 3 % 120), encoding="utf-8")
        made.append(path)
    return made


def _steps(root: Path) -> list[Callable[[], None]]:
    """The writer's changes, each to be followed by one `add` (one commit each)."""
    rng = random.Random(11)
    steps: list[Callable[[], None]] = []
    for n in range(12):
        kind = n % 3
        target = root / SECTIONS[n % len(SECTIONS)] / f"a{(n * 7) % 45:03d}.txt"
        if kind == 0:  # a new file
            new = root / SECTIONS[(n + 1) % len(SECTIONS)] / f"new{n:02d}.txt"
            text = _article(rng, 30 + n * 5)
            steps.append(lambda new=new, text=text: new.write_text(text, encoding="utf-8"))
        elif kind == 1:  # an edit
            text = _article(rng, 60 + n * 4)
            steps.append(lambda target=target, text=text: target.write_text(text, encoding="utf-8"))
        else:  # a deletion
            steps.append(lambda target=target: target.unlink(missing_ok=True))
    return steps


def _key(hits: list[Hit]) -> list[tuple[int, float, tuple[int, ...]]]:
    return [(h.passage_id, round(h.score, 5), tuple(s.passage_id for s in h.also_in)) for h in hits]


def _obeys(hit: Hit, options: dict[str, Any]) -> bool:
    if options.get("since") and not (hit.date and hit.date >= options["since"]):
        return False
    if options.get("until") and not (hit.date and hit.date <= options["until"]):
        return False
    return not options.get("path") or fnmatch.fnmatchcase(hit.path, options["path"])


@pytest.mark.parametrize("index_type", ["flat", "hnsw"])
def test_threads_share_one_index_while_a_writer_commits(tmp_path: Path, index_type: str) -> None:
    live = tmp_path / "live"
    _make_corpus(live)
    index = Index.open(
        tmp_path / "idx", create=True, embedder=FakeEmbedder(), index_type=index_type
    )
    index.add([live])
    steps = _steps(live)
    generations: list[int] = []  # the generation committed by each step, in order
    errors: list[str] = []
    seen: list[tuple[int, int, list[Hit]]] = []  # (generation, query number, hits)
    seen_lock = threading.Lock()
    writer_done = threading.Event()

    def writer() -> None:
        try:
            for step in steps:
                step()
                index.add([live])
                with index.snapshot() as snap:
                    generations.append(snap.generation)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(f"writer: {exc!r}")
        finally:
            writer_done.set()

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        for n in range(200):
            number = rng.randrange(len(QUERIES))
            options = dict(QUERIES[number])
            text = options.pop("query")
            try:
                if n % 5 == 4:  # plain Index.search: only the filters can be checked
                    hits = index.search(text, k=6, **options)
                    generation = -1
                else:
                    with index.snapshot() as snap:
                        hits = snap.search(text, k=6, **options)
                        generation = snap.generation
            except Exception as exc:
                errors.append(f"reader {seed}: {exc!r}")
                continue
            bad = [h for h in hits if not _obeys(h, options)]
            if bad:
                errors.append(f"reader {seed}: {text!r} {options} returned {bad[0].path}")
            with seen_lock:
                seen.append((generation, number, hits))

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(8)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert all(not t.is_alive() for t in threads), "a thread hung"
    assert errors == []
    assert len(seen) == 8 * 200
    assert len(generations) == len(steps) and generations == sorted(set(generations))
    observed = {g for g, _, _ in seen if g >= 0}
    assert len(observed) >= 2, "the readers never ran while the writer committed"

    # Replay: the same files, the same steps, one at a time; search each generation alone.
    replay = tmp_path / "replay"
    _make_corpus(replay)
    reference = Index.open(
        tmp_path / "ref", create=True, embedder=FakeEmbedder(), index_type=index_type
    )
    reference.add([replay])
    wanted: dict[tuple[int, int], list[Hit]] = {}

    def answers(generation: int) -> None:
        with reference.snapshot() as snap:
            assert snap.generation == generation
            for number, options in enumerate(QUERIES):
                options = dict(options)
                text = options.pop("query")
                wanted[(generation, number)] = snap.search(text, k=6, **options)

    with reference.snapshot() as snap:
        answers(snap.generation)
    for step, generation in zip(_steps(replay), generations, strict=True):
        step()
        reference.add([replay])
        answers(generation)
    compared = 0
    for generation, number, hits in seen:
        if generation < 0:
            continue
        assert _key(hits) == _key(wanted[(generation, number)]), (generation, QUERIES[number])
        compared += 1
    assert compared > 1000
    index.close()
    reference.close()


def test_concurrent_first_queries_load_vectors_once(tmp_path: Path, corpus: Path) -> None:
    """Threads that all start at once (a server's first requests) neither collide nor fail."""
    Index.open(tmp_path / "idx", create=True, embedder=FakeEmbedder()).add([corpus])
    index = Index.open(tmp_path / "idx", embedder=FakeEmbedder())
    barrier = threading.Barrier(8)
    results: list[list[int]] = []
    errors: list[str] = []

    def first_query() -> None:
        barrier.wait()
        try:
            results.append([h.passage_id for h in index.search("river rain", k=3)])
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=first_query) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(results) == 8 and all(r == results[0] and r for r in results)


def test_a_search_in_one_thread_sees_no_half_of_an_add_in_another(
    tmp_path: Path, corpus: Path
) -> None:
    """A snapshot held open across a commit keeps answering from its own generation."""
    index = Index.open(tmp_path / "idx", create=True, embedder=FakeEmbedder())
    index.add([corpus])
    with index.snapshot() as snap:
        before = _key(snap.search("bakery bread sourdough", k=5, mode="lexical"))
        (corpus / "c.txt").unlink()
        done: list[int] = []
        t = threading.Thread(target=lambda: done.append(index.add([corpus]).documents_removed))
        t.start()
        t.join(timeout=60)
        assert done == [1]
        assert _key(snap.search("bakery bread sourdough", k=5, mode="lexical")) == before
    assert before and index.search("bakery bread sourdough", k=5, mode="lexical") == []


def test_filtered_queries_on_a_memory_mapped_ivf_index_from_many_threads(tmp_path: Path) -> None:
    """Filtered searches of an IVF index read vectors back (its direct map is built on first
    need): threads doing so at once must agree with one thread doing them in turn."""
    folder = tmp_path / "docs"
    _make_corpus(folder, files=300)  # 900 passages: enough to train IVF lists
    Index.open(tmp_path / "idx", create=True, embedder=FakeEmbedder(), index_type="ivf").add(
        [folder]
    )
    cases = [q for q in QUERIES if len(q) > 2 and q["mode"] != "lexical"]
    with Index.open(tmp_path / "idx", embedder=FakeEmbedder()) as alone:
        assert alone.info().index_type == "ivf"
        wanted = [_key(alone.search(k=8, **dict(q, query=q["query"]))) for q in cases]
    index = Index.open(tmp_path / "idx", embedder=FakeEmbedder())  # fresh: no direct map yet
    barrier = threading.Barrier(8)
    errors: list[str] = []

    def run() -> None:
        barrier.wait()
        for _ in range(10):
            for q, want in zip(cases, wanted, strict=True):
                try:
                    got = _key(index.search(k=8, **dict(q, query=q["query"])))
                except Exception as exc:
                    errors.append(repr(exc))
                    return
                if got != want:
                    errors.append(f"{q}: {got} != {want}")

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert all(w for w in wanted)


def test_the_public_names_import_in_a_fresh_process() -> None:
    """Regression: storage -> query.lexical -> query.hits -> storage was an import cycle
    that broke `semsearch.AddReport` and `import semsearch.storage.store` on their own."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    for code in (
        "import semsearch; [getattr(semsearch, n) for n in semsearch.__all__]",
        "import semsearch.storage.store",
        "import semsearch.storage.schema",
        "from semsearch.update import AddReport",
    ):
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, (code, done.stderr[-500:])


def test_close_while_other_threads_search_ends_them_with_an_error(
    tmp_path: Path, corpus: Path
) -> None:
    """Regression: closing every thread's connection from `close` crashed the process when
    another thread was reading through one. Now readers end with one clear error."""
    Index.open(tmp_path / "idx", create=True, embedder=FakeEmbedder()).add([corpus])
    index = Index.open(tmp_path / "idx", embedder=FakeEmbedder())
    started = threading.Barrier(5)
    outcomes: list[str] = []

    def search() -> None:
        started.wait()
        for _ in range(300):
            try:
                index.search("river rain", k=3, path="*a*")
            except Exception as exc:
                outcomes.append(type(exc).__name__ + ": " + str(exc))
                return
        outcomes.append("finished")

    threads = [threading.Thread(target=search) for _ in range(4)]
    for t in threads:
        t.start()
    started.wait()
    index.close()
    for t in threads:
        t.join(timeout=60)
    assert len(outcomes) == 4
    for outcome in outcomes:
        assert outcome == "finished" or outcome.startswith("IndexClosedError: "), outcome
        assert "closed" in outcome or outcome == "finished"
    with pytest.raises(Exception, match="has been closed"):
        index.search("river")


def test_a_snapshot_refuses_another_thread_and_check_works_inside_one(
    tmp_path: Path, corpus: Path
) -> None:
    """Regression: a snapshot used from another thread read that thread's newest rows against
    its own generation's vectors (hits silently lost); `check` inside a snapshot reported
    'cannot start a transaction within a transaction' as damage."""
    from semsearch.errors import UsageError

    index = Index.open(tmp_path / "idx", create=True, embedder=FakeEmbedder())
    index.add([corpus])
    with index.snapshot() as snap:
        assert index.check().problems == []
        errors: list[BaseException] = []

        def elsewhere() -> None:
            try:
                snap.search("river")
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=elsewhere)
        t.start()
        t.join(timeout=60)
        assert len(errors) == 1 and isinstance(errors[0], UsageError)
        assert snap.search("river", k=1)  # its own thread still reads it
