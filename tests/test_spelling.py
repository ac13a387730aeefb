"""Typo tolerance (semsearch.query.spelling): unknown query words searched for as close known
ones, in the library, the CLI, the HTTP API and the page."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from semsearch.index import Index
from semsearch.query import Results, spelling
from semsearch.query.lexical import FTS_TOKENIZER
from semsearch.serve import page
from semsearch.serve.app import create_app
from semsearch.serve.service import Service
from tests import fake_cli
from tests.cli_helpers import index_articles, run_faked
from tests.fake_cli import NamedFake

ARTICLES = {
    "budget.txt": "Chancellor presents the budget\n\n"
    "The chancellor said the budget would cut taxes for families.\n\n"
    "Opposition leaders said the chancellor's budget was a gamble.\n\n"
    "The government will publish the budget in full on Thursday.\n",
    "election.txt": "Election date set\n\n"
    "The government confirmed the election will be held in May.\n\n"
    "Polls suggest the election will be close, government sources said.\n\n"
    "Election officials expect a high turnout.\n",
    "football.txt": "Chelsea win again\n\n"
    "Abramovich watched Chelsea beat Arsenal at Stamford Bridge.\n\n"
    "The owner Abramovich has spent heavily on the squad.\n\n"
    "Abramovich said the title was the aim this season.\n",
    "nanny.txt": "Life of a dancer\n\n"
    "She travelled with a governess and a budge of papers to Monte Carlo.\n",
}
TYPO = "what did the chancelor say about the budjet"
RIGHT = "what did the chancellor say about the budget"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """docs/ (four articles) and ix/, their index built with the fake model."""
    return index_articles(tmp_path_factory.mktemp("spelling"), ARTICLES)


@pytest.fixture
def index(built: Path) -> Iterator[Index]:
    with Index.open(built / "ix", embedder=NamedFake()) as opened:
        yield opened


def ids(hits: list[object]) -> list[int]:
    return [h.passage_id for h in hits]  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- edit distance


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        ("budget", "budget", 0),
        ("budjet", "budget", 1),  # a substitution
        ("chancelor", "chancellor", 1),  # an insertion
        ("recieve", "receive", 1),  # two neighbours swapped: one edit, not two
        ("kitten", "sitting", 3),
        ("ca", "abc", 3),  # optimal string alignment: no substring is edited twice
        ("", "abc", 3),
        ("abc", "", 3),
    ],
)
def test_edit_distance(a: str, b: str, distance: int) -> None:
    assert spelling.edit_distance(a, b) == distance
    assert spelling.edit_distance(b, a) == distance


def test_edit_distance_stops_past_its_limit() -> None:
    assert spelling.edit_distance("kitten", "sitting", limit=1) == 2
    assert spelling.edit_distance("budget", "gadgets", limit=2) == 3  # 3 or more
    assert spelling.edit_distance("budjet", "budget", limit=1) == 1


def test_the_edits_of_a_word_are_one_edit_away_and_not_the_word() -> None:
    edits = spelling.edits1("budjet")
    assert {"budget", "budet", "ubdjet", "budjets"} <= edits
    assert "budjet" not in edits
    assert all(spelling.edit_distance("budjet", e) == 1 for e in edits)


def test_how_far_a_correction_may_be_grows_with_the_word() -> None:
    assert [spelling.max_edits(w) for w in ("teh", "budjet", "chancelor")] == [0, 1, 2]


# --------------------------------------------------------------------------- the library


def test_a_misspelt_query_finds_what_the_right_one_finds(index: Index) -> None:
    for mode in ("lexical", "hybrid"):
        wrong = index.search(TYPO, k=3, mode=mode)  # type: ignore[arg-type]
        right = index.search(RIGHT, k=3, mode=mode)  # type: ignore[arg-type]
        assert isinstance(wrong, Results) and isinstance(wrong, list)
        assert wrong.corrected_query == RIGHT
        assert right.corrected_query is None
        assert ids(wrong) == ids(right) and len(wrong) == 3
    without = index.search(TYPO, k=3, mode="lexical", correct=False)
    assert without.corrected_query is None
    assert "budget" not in " ".join(h.text for h in without).lower()


def test_the_correction_is_a_word_of_the_text_not_a_stem(index: Index) -> None:
    # Porter's stems of election and government are "elect" and "govern"
    found = index.search("elecion news", k=3, mode="lexical")
    assert found.corrected_query == "election news"
    assert all("election" in h.text.lower() for h in found)
    # "goverment" stems to "gover", which one passage holds ("governess"): not as typed
    found = index.search("Goverment plans", k=3, mode="lexical")
    assert found.corrected_query == "Government plans"  # in the case it was typed in
    assert len(found) == 3 and all("government" in h.text.lower() for h in found)


def test_names_are_corrected_when_the_index_holds_one_close_enough(index: Index) -> None:
    assert index.search("Abramovitch", k=1).corrected_query == "Abramovich"
    assert index.search("Abramovich", k=1).corrected_query is None


@pytest.mark.parametrize(
    "query", ["ABRAMOVITCH", "AbramoVitch", "Schimmel-Abramovitch", "Abramovitch-Smith"]
)
def test_acronyms_and_names_in_hyphenated_compounds_are_left_alone(
    index: Index, query: str
) -> None:
    # as SciFact's claims write gene names and acronyms ("EMAs", "dLNs", "...-Mims"),
    # which its abstracts need not spell the same way: correcting them did harm there
    assert index.search(query, k=1, mode="lexical").corrected_query is None
    assert index.search(query.lower(), k=1, mode="lexical").corrected_query is not None


def test_known_words_are_never_corrected(index: Index) -> None:
    # "budge" is one passage's word, one edit from the far more frequent "budget"
    for query in (RIGHT, "budge", "governess", "government election"):
        assert index.search(query, k=3, mode="lexical").corrected_query is None, query


def test_a_word_with_no_close_known_word_is_left_alone(index: Index) -> None:
    for query in ("zzyzx", "Zelensky", "teh", "budjet2005"):
        assert index.search(query, k=3, mode="lexical").corrected_query is None, query


def test_dense_search_embeds_the_corrected_query(built: Path) -> None:
    fake = NamedFake()
    with Index.open(built / "ix", embedder=fake) as index:
        found = index.search(TYPO, k=3, mode="dense")
        assert found.corrected_query == RIGHT
        assert fake.calls == [[RIGHT]]
        fake.calls.clear()
        index.search_many([TYPO, "election"], k=3, mode="dense")
        assert fake.calls == [[RIGHT, "election"]]  # one batch, corrected


def test_search_many_corrects_each_query(index: Index) -> None:
    found = index.search_many([TYPO, RIGHT], k=3, mode="lexical")
    assert [r.corrected_query for r in found] == [RIGHT, None]
    assert ids(found[0]) == ids(found[1])


def test_correcting_writes_only_the_connections_temp_schema(built: Path) -> None:
    db_path = built / "ix" / "semsearch.db"
    before = sqlite3.connect(db_path).execute("SELECT * FROM sqlite_master").fetchall()
    ro = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, isolation_level=None)
    ro.execute("BEGIN")  # inside a reader's transaction, on a read-only connection
    fixed = spelling.correct(ro, TYPO)
    ro.execute("COMMIT")
    assert fixed.text == RIGHT
    assert [c.replacement for c in fixed.corrections] == ["chancellor", "budget"]
    after = sqlite3.connect(db_path).execute("SELECT * FROM sqlite_master").fetchall()
    assert after == before


def _fts(tokenizer: str, texts: list[str]) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.execute(f"CREATE VIRTUAL TABLE passages_fts USING fts5(body, tokenize='{tokenizer}')")
    db.executemany("INSERT INTO passages_fts(body) VALUES (?)", [(t,) for t in texts])
    return db


def test_the_tokenizer_comes_from_the_manifest_else_the_table() -> None:
    db = _fts("unicode61 remove_diacritics 2", ["budget"])
    assert spelling.tokenizer_of(db) == "unicode61 remove_diacritics 2"
    assert spelling.tokenizer_of(db, "porter") == FTS_TOKENIZER
    assert spelling.tokenizer_of(db, "trigram") == "trigram"


def test_a_trigram_index_is_never_corrected() -> None:
    texts = ["the budget was cut"] * 5
    db = _fts("trigram", texts)
    assert spelling.correct(db, "budjet", spelling.tokenizer_of(db)).corrections == ()
    # the same text with unicode61 (no stemmer): its vocabulary holds the words themselves
    plain = _fts("unicode61 remove_diacritics 2", texts)
    fixed = spelling.correct(plain, "budjet", spelling.tokenizer_of(plain))
    assert fixed.text == "budget"


def test_a_rare_stem_the_typo_shares_by_accident_is_not_searched_for() -> None:
    db = _fts(FTS_TOKENIZER, ["The government said so."] * 4 + ["A governess came."])
    assert spelling.correct(db, "goverment").text == "government"  # "gover": governess
    assert spelling.correct(db, "governess").corrections == ()


def test_the_vocabulary_is_read_once_per_generation(index: Index, built: Path) -> None:
    loads: list[int] = []
    original = spelling._Reader.vocabulary

    def counted(self: spelling._Reader) -> dict[str, int]:
        loads.append(1)
        return original(self)

    spelling._Reader.vocabulary = counted  # type: ignore[method-assign]
    try:
        index.search(TYPO, k=3, mode="lexical")
        index.search("elecion", k=3, mode="lexical")
        index.search(RIGHT, k=3, mode="lexical")  # every word known: no vocabulary needed
        assert len(loads) == 1
        (built / "docs" / "extra.txt").write_text("Extra\n\nThe budget again.\n", "utf-8")
        try:
            with Index.open(built / "ix", embedder=NamedFake()) as writer:
                writer.add([built / "docs"])
            index.search(TYPO, k=3, mode="lexical")  # a new generation: read again
            assert len(loads) == 2
        finally:
            (built / "docs" / "extra.txt").unlink()
            with Index.open(built / "ix", embedder=NamedFake()) as writer:
                writer.add([built / "docs"])
    finally:
        spelling._Reader.vocabulary = original  # type: ignore[method-assign]


# --------------------------------------------------------------------------- front ends


def q(built: Path, *args: str) -> tuple[int, str, str]:
    return run_faked("query", *args, "--index", str(built / "ix"))


def test_the_terminal_says_what_it_searched_for(built: Path) -> None:
    code, out, _ = q(built, TYPO, "-k", "3", "--color", "never")
    assert code == 0
    assert out.splitlines()[0] == f"showing results for: {RIGHT}"
    code, out, _ = q(built, RIGHT, "-k", "3", "--color", "never")
    assert code == 0 and "showing results for" not in out


def test_json_has_the_corrected_query(built: Path) -> None:
    code, out, _ = q(built, TYPO, "--json", "--mode", "lexical")
    data = json.loads(out)
    assert code == 0 and data["query"] == TYPO and data["corrected_query"] == RIGHT
    assert any("budget" in h["text"] for h in data["results"])
    code, out, _ = q(built, RIGHT, "--json")
    assert json.loads(out)["corrected_query"] is None


def test_no_correct_searches_for_the_words_as_given(built: Path) -> None:
    code, out, _ = q(built, "chancelor budjet", "--json", "--mode", "lexical", "--no-correct")
    assert code == 1  # nothing holds either word
    assert json.loads(out) == {**json.loads(out), "corrected_query": None, "results": []}
    code, out, _ = q(built, "chancelor budjet", "--mode", "lexical", "--no-correct")
    assert "showing results for" not in out


@pytest.fixture
def service(built: Path) -> Iterator[Service]:
    with fake_cli.faked(), Index.open(built / "ix") as index:
        yield Service(index)


def test_the_api_returns_the_corrected_query(service: Service) -> None:
    client = TestClient(create_app(service), base_url="http://127.0.0.1")
    data = client.get("/api/search", params={"q": TYPO, "k": 3}).json()
    assert data["corrected_query"] == RIGHT and len(data["results"]) == 3
    data = client.get("/api/search", params={"q": TYPO, "correct": "false"}).json()
    assert data["corrected_query"] is None
    assert service.search(RIGHT)["corrected_query"] is None


def test_the_page_shows_what_it_searched_for(service: Service) -> None:
    app = FastAPI()
    page.install(app, service)
    html = TestClient(app).get("/", params={"q": TYPO}).text
    assert "showing results for" in html and f"<strong>{RIGHT}</strong>" in html
    assert "showing results for" not in TestClient(app).get("/", params={"q": RIGHT}).text


# --------------------------------------------------------------------------- the real model


@pytest.mark.slow
def test_with_the_real_model_a_typo_finds_what_the_right_words_find(built: Path) -> None:
    with Index.open(built / "real", create=True) as index:
        index.add([built / "docs"])
        for mode in ("hybrid", "dense"):
            wrong = index.search(TYPO, k=3, mode=mode)  # type: ignore[arg-type]
            right = index.search(RIGHT, k=3, mode=mode)  # type: ignore[arg-type]
            assert wrong.corrected_query == RIGHT
            assert ids(wrong) == ids(right)
            as_typed = index.search(TYPO, k=3, mode=mode, correct=False)  # type: ignore[arg-type]
            assert as_typed.corrected_query is None
