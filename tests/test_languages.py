# ruff: noqa: RUF001  (Chinese text is written with full-width commas)
"""The lexical tokenizer per index (`--lexical`): choosing it, querying with it, switching it.

Folders in Chinese, French and English are written here; the fake embedder
stands in for the model (lexical search does not depend on it).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from semsearch.errors import UsageError
from semsearch.index import Index
from semsearch.query import lexical
from semsearch.query.language import choose_tokenizer
from semsearch.storage.store import Store
from tests.cli_helpers import assert_one_line_error, run_faked
from tests.conftest import read_manifest
from tests.fakes import FakeEmbedder

CHINESE = {
    "beijing.txt": "北京大学简介\n\n"
    "北京大学创办于1898年，是中国最早的国立综合性大学之一。校园位于北京西北部的海淀区，风景优美。\n\n"
    "学校的图书馆藏书丰富，每天都有很多学生在那里读书和学习。\n",
    "shanghai.txt": "上海的天气\n\n"
    "上海夏天炎热潮湿，经常下雨。冬天不太冷，但是空气很湿。\n\n"
    "很多人喜欢在春天和秋天去外滩散步。\n",
    "sichuan.txt": "四川菜\n\n"
    "四川菜以麻辣闻名，火锅是最受欢迎的菜之一。成都有很多有名的小吃店。\n\n"
    "大学生们周末常常一起去吃火锅。\n",
}
FRENCH = {
    "ecole.txt": "L'école du village\n\n"
    "L'école primaire du village accueille quarante élèves. Les enfants apprennent à lire "
    "et à écrire avec leur maîtresse.\n\n"
    "Chaque vendredi, les élèves jardinent derrière le bâtiment.\n",
    "marche.txt": "Le marché du samedi\n\n"
    "Le marché se tient sur la place de l'église. On y trouve des fromages, du pain et des "
    "légumes frais.\n\n"
    "Les producteurs arrivent très tôt le matin.\n",
    "meteo.txt": "Un hiver doux\n\n"
    "Cet hiver a été plus doux que d'habitude. Il a beaucoup plu mais il n'a presque pas "
    "neigé.\n\n"
    "Les stations de ski ont ouvert en retard.\n",
}
ENGLISH = {
    "floods.txt": "Floods in the valley\n\n"
    "Heavy rain caused the river to flood the valley on Monday. Farmers moved their animals "
    "to higher ground.\n\n"
    "The council said that the roads would reopen when the water went down.\n",
    "library.txt": "A new library opens\n\n"
    "The town opened its new library after two years of building work. It has a room for "
    "children and a cafe.\n\n"
    "Volunteers helped to move the books from the old building.\n",
    "chess.txt": "The chess club\n\n"
    "The chess club meets every Thursday in the school hall. Beginners are welcome and the "
    "boards are provided.\n",
}


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def build(tmp_path: Path, files: dict[str, str], lexical: str | None = None) -> Path:
    folder = write(tmp_path / "articles", files)
    target = tmp_path / "idx"
    with Index.open(target, create=True, embedder=FakeEmbedder(), lexical=lexical) as index:
        index.add([folder])
    return target


def top(target: Path, query: str, k: int = 5, mode: str = "lexical") -> list[str]:
    """The text of the hits (passage text alone), best first."""
    with Index.open(target, embedder=FakeEmbedder()) as index:
        return [h.text for h in index.search(query, k, mode=mode)]  # type: ignore[arg-type]


def table_tokenizer(target: Path) -> str:
    con = sqlite3.connect(target / "semsearch.db")
    try:
        return lexical.table_tokenizer(con)
    finally:
        con.close()


# --------------------------------------------------------------------------- choosing


@pytest.mark.parametrize(
    ("files", "expected", "because"),
    [
        (CHINESE, "trigram", "of letters are Chinese, Japanese, Korean or Thai"),
        (FRENCH, "unicode61", "not English"),
        (ENGLISH, "porter", "English:"),
    ],
)
def test_auto_picks_the_tokenizer_from_the_text(
    files: dict[str, str], expected: str, because: str
) -> None:
    choice = choose_tokenizer(files.values())
    assert choice.tokenizer == expected
    assert because in choice.reason and "%" in choice.reason


def test_auto_is_the_default_and_is_recorded_with_its_reason(tmp_path: Path) -> None:
    target = build(tmp_path, CHINESE)
    m = read_manifest(target)
    assert (m["lexical_tokenizer"], m["lexical_requested"]) == ("trigram", "auto")
    assert "Chinese" in m["lexical_reason"]
    assert table_tokenizer(target) == "trigram"


def test_an_index_without_the_manifest_keys_is_porter_and_stays_so(tmp_path: Path) -> None:
    target = build(tmp_path, ENGLISH, lexical="porter")
    con = sqlite3.connect(target / "semsearch.db")
    with con:
        con.execute("DELETE FROM manifest WHERE key LIKE 'lexical_%'")
    con.close()
    with Index.open(target, embedder=FakeEmbedder()) as index:
        assert index.info().lexical == "porter"
        generation = index.info().generation
        (tmp_path / "articles" / "new.txt").write_text("Chess\n\nThe 北京大学 club.\n")
        report = index.add([tmp_path / "articles"])  # no --lexical: the index keeps its own
        assert report.lexical_tokenizer == "" and index.info().generation == generation + 1
    assert table_tokenizer(target) == "porter"
    assert "lexical_tokenizer" not in read_manifest(target)


# --------------------------------------------------------------------------- querying


def test_trigram_finds_a_chinese_substring_that_porter_cannot(tmp_path: Path) -> None:
    trigram = build(tmp_path / "t", CHINESE, lexical="trigram")
    porter = build(tmp_path / "p", CHINESE, lexical="porter")
    hits = top(trigram, "北京大学")
    assert hits and "北京大学创办于1898年" in hits[0]
    # the reason for trigram: a word tokenizer sees each clause as one word
    assert top(porter, "北京大学") == []


def test_trigram_ranks_by_how_many_pieces_of_a_cjk_query_a_passage_holds(tmp_path: Path) -> None:
    target = build(tmp_path, CHINESE, lexical="trigram")
    # 北京 京大 大学 学图 图书 书馆: the library paragraph (its title holds 北京大学) holds five,
    # the other Beijing paragraph three, the students eating hot pot one (大学生)
    hits = top(target, "北京大学图书馆")
    assert len(hits) == 3
    assert "图书馆" in hits[0] and "创办于1898年" in hits[1] and "大学生" in hits[2]


def test_a_chinese_sentence_finds_its_words_however_cut(tmp_path: Path) -> None:
    target = build(tmp_path, CHINESE, lexical="trigram")
    # no 3 characters of the query occur in the text, but 四川, 火锅 and 小吃 do
    hits = top(target, "四川的火锅和小吃")
    assert hits and "火锅是最受欢迎的菜" in hits[0]


def test_trigram_finds_two_character_words_by_scanning(tmp_path: Path) -> None:
    target = build(tmp_path, CHINESE, lexical="trigram")
    hits = top(target, "火锅")  # too short for a trigram MATCH
    assert len(hits) == 2 and all("火锅" in h for h in hits)
    with _store(target) as store:
        found = lexical.search(store.db, "火锅", 5)
        bound = lexical.bound(store.db, "火锅")
        again = lexical.scores_of(store.db, "火锅", [i for i, _ in found] + [10_000])
    assert all(0 < s < bound for _, s in found)  # the fusion's share stays in 0..1
    assert {i: again[i] for i, _ in found} == dict(found) and again[10_000] == 0.0


def _store(target: Path) -> _Closing:
    return _Closing(Store.open(str(target)))


class _Closing:
    def __init__(self, store: Store) -> None:
        self.store = store

    def __enter__(self) -> Store:
        return self.store

    def __exit__(self, *exc: object) -> None:
        self.store.close()


def test_trigram_scores_agree_with_bound_and_scores_of(tmp_path: Path) -> None:
    target = build(tmp_path, CHINESE, lexical="trigram")
    with _store(target) as store:
        found = lexical.search(store.db, "四川的火锅和小吃", 10)
        bound = lexical.bound(store.db, "四川的火锅和小吃")
        again = lexical.scores_of(store.db, "四川的火锅和小吃", [i for i, _ in found])
    assert found and all(0 < s < bound for _, s in found)
    assert again == pytest.approx(dict(found))


def test_unicode61_folds_accents_of_french(tmp_path: Path) -> None:
    target = build(tmp_path, FRENCH)  # auto: unicode61
    assert read_manifest(target)["lexical_tokenizer"] == "unicode61"
    with Index.open(target, embedder=FakeEmbedder()) as index:
        hits = index.search("ecole", 5, mode="lexical")
    assert len(hits) == 2 and {h.title for h in hits} == {"L'école du village"}
    assert "L'école primaire" in top(target, "maitresse eleves")[0]
    assert "bâtiment" in top(target, "batiment")[0]


def test_porter_stems_english_where_unicode61_does_not(tmp_path: Path) -> None:
    porter = build(tmp_path / "p", ENGLISH)  # auto: porter
    plain = build(tmp_path / "u", ENGLISH, lexical="unicode61")
    assert read_manifest(porter)["lexical_tokenizer"] == "porter"
    hits = top(porter, "flooding rivers")
    assert hits and "river to flood" in hits[0]
    assert top(plain, "flooding rivers") == []  # no stemming: flooding is not flood


def test_query_terms_per_tokenizer() -> None:
    assert lexical.split_terms("the floods of the river") == (["floods", "river"], [])
    assert lexical.split_terms("the floods", "unicode61") == (["the", "floods"], [])
    assert lexical.split_terms("北京大学 the AI", "trigram") == (
        [],
        ["北京", "京大", "大学", "the", "ai"],
    )
    assert lexical.split_terms("the AI chips", "trigram") == (["the", "chips"], [])
    assert lexical.split_terms("AI", "trigram") == ([], ["ai"])
    assert lexical.match_expression("北京 AI", "trigram") is None
    assert lexical.query_terms("the floods") == ["floods"]  # porter, as before


def test_hybrid_search_works_on_a_trigram_index(tmp_path: Path) -> None:
    target = build(tmp_path, CHINESE, lexical="trigram")
    with Index.open(target, embedder=FakeEmbedder()) as index:
        for query in ("北京大学", "火锅"):
            hits = index.search(query, 3, mode="hybrid")
            assert hits and query in hits[0].title + hits[0].text
            assert all(0.0 <= h.score <= 1.0 for h in hits)


# --------------------------------------------------------------------------- switching


def test_switching_rebuilds_only_the_lexical_index(tmp_path: Path) -> None:
    target = build(tmp_path, CHINESE, lexical="porter")
    with _store(target) as store:
        before = store.load_vectors()
        ids = np.sort(before.ids())
        vectors = before.reconstruct(ids)
    embedder = FakeEmbedder()
    with Index.open(target, embedder=embedder, lexical="trigram") as index:
        report = index.add([tmp_path / "articles"])
        info = index.info()
    assert embedder.calls == []  # nothing embedded
    assert (report.lexical_tokenizer, report.lexical_replaced) == ("trigram", "porter")
    assert report.passages_embedded == 0 and report.passages_unchanged == len(ids)
    assert (info.lexical, info.lexical_requested) == ("trigram", "trigram")
    m = read_manifest(target)
    assert (m["lexical_tokenizer"], m["lexical_requested"]) == ("trigram", "trigram")
    with _store(target) as store:
        after = store.load_vectors()
        assert np.array_equal(np.sort(after.ids()), ids)
        assert np.array_equal(after.reconstruct(ids), vectors)
        assert store.lexical_count() == store.passage_count() == len(ids)
    assert "北京大学创办于1898年" in top(target, "北京大学")[0]
    with Index.open(target, embedder=FakeEmbedder()) as index:
        assert index.check().ok  # FTS5's own check and its rows against the passages
        generation = index.info().generation
        # the same option again, or none: nothing to do, no commit
        Index.open(target, embedder=FakeEmbedder(), lexical="trigram").add([tmp_path / "articles"])
        index.add([tmp_path / "articles"])
        assert index.info().generation == generation


def test_the_triggers_follow_the_new_table(tmp_path: Path) -> None:
    target = build(tmp_path, CHINESE, lexical="porter")
    with Index.open(target, embedder=FakeEmbedder(), lexical="trigram") as index:
        index.add([tmp_path / "articles"])
    (tmp_path / "articles" / "sichuan.txt").unlink()
    (tmp_path / "articles" / "hangzhou.txt").write_text("杭州\n\n西湖的风景非常美丽。\n")
    with Index.open(target, embedder=FakeEmbedder()) as index:
        index.add([tmp_path / "articles"])
        assert index.check().ok
    assert "西湖的风景" in top(target, "西湖风景")[0]
    assert top(target, "火锅") == []


def test_asking_for_auto_on_an_existing_index_decides_once(tmp_path: Path) -> None:
    target = build(tmp_path, FRENCH, lexical="porter")
    with Index.open(target, embedder=FakeEmbedder(), lexical="auto") as index:
        report = index.add([tmp_path / "articles"])
    assert (report.lexical_tokenizer, report.lexical_replaced) == ("unicode61", "porter")
    assert read_manifest(target)["lexical_requested"] == "auto"


def test_a_bad_tokenizer_is_refused_by_the_library(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="porter, unicode61, trigram"):
        Index.open(tmp_path / "idx", create=True, embedder=FakeEmbedder(), lexical="stemmed")


# --------------------------------------------------------------------------- command line


def test_cli_says_what_auto_chose_and_what_a_switch_did(tmp_path: Path) -> None:
    folder = write(tmp_path / "zh", CHINESE)
    target = tmp_path / "idx"
    code, out, err = run_faked("index", str(folder), "--index", str(target), "-q")
    assert code == 0, err
    line = next(x for x in out.splitlines() if "lexical:" in x)
    assert "trigram (" in line and "% of letters are Chinese" in line
    code, out, err = run_faked(
        "index", str(folder), "--index", str(target), "-q", "--lexical", "unicode61"
    )
    assert code == 0, err
    line = next(x for x in out.splitlines() if "lexical:" in x)
    assert "unicode61" in line and "was trigram" in line and "nothing re-embedded" in line
    assert "0 embedded" in out
    code, out, err = run_faked("info", "--index", str(target))
    assert code == 0 and "lexical:" in out and "unicode61 (as asked)" in out
    code, out, err = run_faked("info", "--index", str(target), "--json")
    data = json.loads(out)
    assert (data["lexical"], data["lexical_requested"]) == ("unicode61", "unicode61")


def test_cli_refuses_a_bad_tokenizer_and_leaves_the_index_alone(tmp_path: Path) -> None:
    folder = write(tmp_path / "zh", CHINESE)
    target = tmp_path / "idx"
    assert run_faked("index", str(folder), "--index", str(target), "-q")[0] == 0
    before = read_manifest(target)
    code, out, err = run_faked(
        "index", str(folder), "--index", str(target), "--lexical", "stemmed"
    )
    assert_one_line_error(code, out, err, "stemmed", "porter", "unicode61", "trigram", "auto")
    assert read_manifest(target) == before
    assert table_tokenizer(target) == "trigram"


def test_a_substring_search_sees_passages_added_since_the_last(tmp_path: Path) -> None:
    target = build(tmp_path, CHINESE, lexical="trigram")
    with Index.open(target, embedder=FakeEmbedder()) as index:
        assert len(index.search("火锅", 5, mode="lexical")) == 2  # read once, then kept
        (tmp_path / "articles" / "chongqing.txt").write_text("重庆\n\n重庆的火锅很辣。\n")
        index.add([tmp_path / "articles"])
        hits = index.search("火锅", 5, mode="lexical")
        assert len(hits) == 3 and any("重庆的火锅" in h.text for h in hits)
        (tmp_path / "articles" / "sichuan.txt").unlink()
        index.add([tmp_path / "articles"])
        assert [h.text for h in index.search("火锅", 5, mode="lexical")] == ["重庆的火锅很辣。"]
