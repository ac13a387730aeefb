"""Managing what an index holds: `Index.files`/`roots`/`remove`/`drop`, the files a run
names, absolute paths and their display, and an index moved with its documents."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from semsearch.cli import app
from semsearch.errors import IndexLockedError, IndexNotFoundError, SourceError, UsageError
from semsearch.index import Index
from semsearch.query import display_path
from semsearch.storage.lock import WriteLock
from tests import fake_cli
from tests.cli_helpers import assert_one_line_error, python_semsearch, run, runner
from tests.conftest import read_manifest
from tests.fakes import FakeEmbedder


def article(path: Path, title: str, *paragraphs: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(title + "\n\n" + "\n\n".join(paragraphs) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """Two folders of articles: news/ (two files, one in a subfolder) and notes/ (one)."""
    top = tmp_path / "library"
    article(top / "news" / "flood.txt", "River floods", "The river burst its banks.", "Rain.")
    article(top / "news" / "sport" / "chess.txt", "Chess final", "The champion retired.")
    article(top / "notes" / "bread.txt", "Bakery", "Sourdough bread downtown.")
    return top


def build(index_dir: Path, *paths: Path, fake: FakeEmbedder | None = None) -> FakeEmbedder:
    fake = fake or FakeEmbedder()
    with Index.open(index_dir, create=True, embedder=fake) as index:
        index.add([str(p) for p in paths])
    return fake


def titles(index_dir: Path, query: str = "river champion sourdough bread") -> set[str]:
    with Index.open(index_dir, embedder=FakeEmbedder()) as index:
        return {h.title for h in index.search(query, k=50, mode="lexical")}


# --------------------------------------------------------------------------- files, roots


def test_files_lists_each_file_with_its_counts_root_and_dates(
    tmp_path: Path, library: Path
) -> None:
    build(tmp_path / "idx", library / "news", library / "notes" / "bread.txt")
    with Index.open(tmp_path / "idx", embedder=FakeEmbedder()) as index:
        files = index.files()
        roots = index.roots()
        info = index.info()
    news, notes = str(library / "news"), str(library / "notes")
    assert [f.abspath for f in files] == [
        f"{news}/flood.txt",
        f"{news}/sport/chess.txt",
        f"{notes}/bread.txt",
    ]
    assert [f.root for f in files] == [news, news, f"{notes}/bread.txt"]
    assert [f.passages for f in files] == [2, 1, 1]
    assert [f.documents for f in files] == [1, 1, 1]
    assert all(f.exists and f.format == "text" for f in files)
    assert files[0].size == (library / "news" / "flood.txt").stat().st_size
    assert files[0].indexed_at.startswith("20") and files[0].modified.startswith("20")
    assert [(r.root, r.files, r.passages) for r in roots] == [
        (news, 2, 3),
        (f"{notes}/bread.txt", 1, 1),
    ]
    assert info.roots == [news, f"{notes}/bread.txt"]
    json.dumps([f.to_dict() for f in files] + [r.to_dict() for r in roots])


def test_a_folder_inside_an_indexed_one_keeps_the_outer_root(tmp_path: Path, library: Path) -> None:
    build(tmp_path / "idx", library / "news")
    article(library / "news" / "sport" / "golf.txt", "Golf", "A hole in one.")
    build(tmp_path / "idx", library / "news" / "sport")
    with Index.open(tmp_path / "idx", embedder=FakeEmbedder()) as index:
        assert {f.root for f in index.files()} == {str(library / "news")}
        assert len(index.files()) == 3


def test_a_run_names_the_files_it_adds_updates_and_removes(tmp_path: Path, library: Path) -> None:
    news = library / "news"
    with Index.open(tmp_path / "idx", create=True, embedder=FakeEmbedder()) as index:
        first = index.add([news])
        assert sorted(first.files_added) == [str(news / "flood.txt"), str(news / "sport/chess.txt")]
        assert first.files_updated == first.files_removed == []
        article(news / "flood.txt", "River floods", "The river burst its banks again.")
        (news / "sport" / "chess.txt").unlink()
        article(news / "golf.txt", "Golf", "A hole in one.")
        second = index.add([news])
        assert second.files_added == [str(news / "golf.txt")]
        assert second.files_updated == [str(news / "flood.txt")]
        assert second.files_removed == [str(news / "sport/chess.txt")]
        assert second.files_unchanged == 0
        again = index.add([news])
        assert (again.files_added, again.files_updated, again.files_removed) == ([], [], [])
        assert again.files_unchanged == 2
        rebuilt = index.add([news], rebuild=True)
        assert rebuilt.files_added == []
        assert sorted(rebuilt.files_updated) == [str(news / "flood.txt"), str(news / "golf.txt")]
        assert "files_added" in second.to_dict()


# --------------------------------------------------------------------------- remove


def test_remove_a_file_is_one_commit_and_its_passages_are_gone(
    tmp_path: Path, library: Path
) -> None:
    index_dir = tmp_path / "idx"
    build(index_dir, library / "news", library / "notes")
    generation = read_manifest(index_dir)["generation"]
    fake = FakeEmbedder()
    with Index.open(index_dir, embedder=fake) as index:
        report = index.remove(str(library / "news" / "flood.txt"))
        assert report.files_removed == [str(library / "news" / "flood.txt")]
        assert (report.documents_removed, report.passages_removed) == (1, 2)
        assert (report.files_unchanged, report.passages_unchanged) == (2, 2)
        assert index.check().ok
        assert index.info().passages == 2
    assert fake.calls == []  # nothing embedded
    assert read_manifest(index_dir)["generation"] == generation + 1
    assert titles(index_dir) == {"Chess final", "Bakery"}
    assert (library / "news" / "flood.txt").exists()  # the file itself is left alone


def test_remove_a_folder_gone_from_disk_removes_everything_under_it(
    tmp_path: Path, library: Path
) -> None:
    index_dir = tmp_path / "idx"
    build(index_dir, library / "news", library / "notes")
    shutil.rmtree(library / "news")
    with Index.open(index_dir, embedder=FakeEmbedder()) as index:
        # indexing the vanished folder says how to remove it, and changes nothing
        with pytest.raises(SourceError, match=r"semsearch remove --index .*news"):
            index.add([str(library / "news")])
        assert [f.exists for f in index.files()] == [False, False, True]
        report = index.remove([str(library / "news")])
        assert sorted(report.files_removed) == [
            str(library / "news" / "flood.txt"),
            str(library / "news" / "sport" / "chess.txt"),
        ]
        assert [r.root for r in index.roots()] == [str(library / "notes")]
    assert titles(index_dir) == {"Bakery"}


def test_remove_by_a_relative_path_from_elsewhere_and_through_a_link(
    tmp_path: Path, library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index_dir = tmp_path / "idx"
    build(index_dir, library / "news", library / "notes")
    (tmp_path / "link").symlink_to(library / "news")
    monkeypatch.chdir(library / "notes")
    with Index.open(index_dir, embedder=FakeEmbedder()) as index:
        assert index.remove(["../../link/sport"]).passages_removed == 1
        assert index.remove(["bread.txt"]).files_removed == [str(library / "notes/bread.txt")]
    assert titles(index_dir) == {"River floods"}


def test_remove_what_is_not_indexed_is_refused_and_nothing_changes(
    tmp_path: Path, library: Path
) -> None:
    index_dir = tmp_path / "idx"
    build(index_dir, library / "news")
    generation = read_manifest(index_dir)["generation"]
    with Index.open(index_dir, embedder=FakeEmbedder()) as index:
        with pytest.raises(SourceError) as caught:
            index.remove([str(library / "news" / "flood.txt"), str(library / "notes")])
        message = str(caught.value)
        assert "nothing at or under" in message and "notes" in message
        assert str(library / "news") in message and "semsearch list" in message
        with pytest.raises(UsageError):
            index.remove([])
        assert index.info().passages == 3
    assert read_manifest(index_dir)["generation"] == generation


def test_removing_everything_leaves_an_empty_index_that_can_grow_again(
    tmp_path: Path, library: Path
) -> None:
    index_dir = tmp_path / "idx"
    build(index_dir, library / "news")
    with Index.open(index_dir, embedder=FakeEmbedder()) as index:
        index.remove([str(library)])
        assert index.search("river", k=5) == []
        assert index.files() == [] and index.info().passages == 0
        assert index.check().ok
        with pytest.raises(SourceError, match="is empty"):
            index.remove([str(library)])
        index.add([library / "notes"])
        assert [h.title for h in index.search("sourdough", k=5)] == ["Bakery"]


def test_remove_while_another_process_writes_is_refused(tmp_path: Path, library: Path) -> None:
    index_dir = tmp_path / "idx"
    build(index_dir, library / "news")
    with (
        WriteLock(str(index_dir)),
        Index.open(index_dir, embedder=FakeEmbedder()) as index,
        pytest.raises(IndexLockedError),
    ):
        index.remove([str(library / "news")])
    assert titles(index_dir) == {"River floods", "Chess final"}


def test_remove_on_an_hnsw_index(tmp_path: Path, library: Path) -> None:
    index_dir = tmp_path / "idx"
    with Index.open(index_dir, create=True, embedder=FakeEmbedder(), index_type="hnsw") as index:
        index.add([library])
        index.remove([str(library / "news")])
        assert {h.title for h in index.search("river champion bakery", k=10)} == {"Bakery"}
        assert index.check().ok


# --------------------------------------------------------------------------- drop


def test_drop_deletes_the_index_folder(tmp_path: Path, library: Path) -> None:
    index_dir = tmp_path / "idx"
    build(index_dir, library / "news")
    report = Index.drop(index_dir)
    assert not index_dir.exists()
    assert report.files_deleted >= 3 and report.bytes_freed > 0 and report.kept == []
    assert (library / "news" / "flood.txt").exists()
    with pytest.raises(IndexNotFoundError):
        Index.drop(index_dir)


def test_drop_keeps_what_is_not_semsearch_s(tmp_path: Path, library: Path) -> None:
    index_dir = tmp_path / "idx"
    build(index_dir, library / "news")
    (index_dir / "mine.txt").write_text("keep me", encoding="utf-8")
    (index_dir / "vectors.faiss.bak").write_text("not a generation", encoding="utf-8")
    report = Index.drop(index_dir)
    assert sorted(report.kept) == ["mine.txt", "vectors.faiss.bak"]
    assert sorted(os.listdir(index_dir)) == ["mine.txt", "vectors.faiss.bak"]


def test_drop_refuses_a_folder_that_is_no_index(tmp_path: Path, library: Path) -> None:
    with pytest.raises(IndexNotFoundError, match="nothing was deleted"):
        Index.drop(library)
    assert (library / "news" / "flood.txt").exists()
    with pytest.raises(IndexNotFoundError):
        Index.drop(tmp_path / "missing")


def test_drop_waits_for_no_writer(tmp_path: Path, library: Path) -> None:
    index_dir = tmp_path / "idx"
    build(index_dir, library / "news")
    with WriteLock(str(index_dir)), pytest.raises(IndexLockedError):
        Index.drop(index_dir)
    assert titles(index_dir) == {"River floods", "Chess final"}


def test_drop_a_damaged_index_and_its_set_aside_files(tmp_path: Path, library: Path) -> None:
    index_dir = tmp_path / "idx"
    build(index_dir, library / "news")
    aside = index_dir / "damaged-20250101-120000"
    aside.mkdir()
    (aside / "semsearch.db").write_bytes(b"old")
    (index_dir / "semsearch.db").write_bytes(b"not sqlite")
    Index.drop(index_dir)
    assert not index_dir.exists()


# --------------------------------------------------------------------------- paths


def test_display_path_is_relative_when_shorter() -> None:
    assert display_path("/work/main/seeds/a.txt", cwd="/work/main") == "seeds/a.txt"
    assert display_path("/work/main/seeds/a.txt", cwd="/work/main/seeds/x") == "../a.txt"
    assert display_path("/work/main/seeds/a.txt", cwd="/tmp") == "/work/main/seeds/a.txt"
    assert display_path("", "given/a.txt", cwd="/tmp") == "given/a.txt"


def test_hits_carry_the_absolute_path_whatever_the_working_directory(
    tmp_path: Path, library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(library)
    build(tmp_path / "idx", Path("news"))
    monkeypatch.chdir(tmp_path)
    with Index.open(tmp_path / "idx", embedder=FakeEmbedder()) as index:
        hit = index.search("river banks", k=1, mode="lexical")[0]
    assert hit.path == "news/flood.txt"  # as given
    assert hit.abspath == str(library / "news" / "flood.txt")
    assert display_path(hit.abspath, hit.path) == "library/news/flood.txt"


def test_an_index_moved_with_its_documents_keeps_working(tmp_path: Path, library: Path) -> None:
    """The index folder inside the tree it indexes, the whole tree moved elsewhere."""
    index_dir = library / ".semsearch"
    fake = build(index_dir, library / "news", library / "notes")
    embedded = len(fake.embedded)
    moved = tmp_path / "elsewhere" / "library"
    moved.parent.mkdir()
    library.rename(moved)
    new_dir = moved / ".semsearch"
    with Index.open(new_dir, embedder=fake) as index:
        hit = index.search("river banks", k=1, mode="lexical")[0]
        assert hit.abspath == str(moved / "news" / "flood.txt")  # found at its new place
        assert all(f.exists for f in index.files())
        assert [r.root for r in index.roots()] == [str(moved / "news"), str(moved / "notes")]
        report = index.add([moved / "news"])  # re-indexing the moved folder embeds nothing
        assert (report.files_added, report.files_removed, report.files_updated) == ([], [], [])
        assert report.files_unchanged == 2
        assert len(fake.embedded) == embedded
        index.remove([str(moved / "notes")])  # a folder of the moved index, by its new path
        assert {f.abspath for f in index.files()} == {
            str(moved / "news" / "flood.txt"),
            str(moved / "news" / "sport" / "chess.txt"),
        }
    assert read_manifest(new_dir)["location"] == str(new_dir)
    con = sqlite3.connect(new_dir / "semsearch.db")
    try:
        stored = sorted(r[0] for r in con.execute("SELECT abspath FROM files"))
    finally:
        con.close()
    assert stored == [str(moved / "news" / "flood.txt"), str(moved / "news/sport/chess.txt")]


def test_a_copy_of_an_index_and_its_documents_uses_the_copies(
    tmp_path: Path, library: Path
) -> None:
    fake = build(library / ".semsearch", library / "news")
    embedded = len(fake.embedded)
    copy = tmp_path / "copy"
    shutil.copytree(library, copy)
    with Index.open(copy / ".semsearch", embedder=fake) as index:
        hit = index.search("river banks", k=1, mode="lexical")[0]
        assert hit.abspath == str(copy / "news" / "flood.txt")
        report = index.add([copy / "news"])
        assert report.files_added == [] and report.files_unchanged == 2
        assert [f.abspath for f in index.files()] == [
            str(copy / "news" / "flood.txt"),
            str(copy / "news" / "sport" / "chess.txt"),
        ]
    assert len(fake.embedded) == embedded
    with Index.open(library / ".semsearch", embedder=fake) as index:  # the original: its own
        assert index.search("river banks", k=1)[0].abspath == str(library / "news/flood.txt")


def test_remove_in_a_moved_index_keeps_the_others_found(tmp_path: Path, library: Path) -> None:
    build(library / ".semsearch", library / "news", library / "notes")
    moved = tmp_path / "moved"
    library.rename(moved)
    with Index.open(moved / ".semsearch", embedder=FakeEmbedder()) as index:
        index.remove([str(moved / "notes")])  # a commit that leaves the other rows as stored
        assert all(f.exists for f in index.files())
        assert index.search("river banks", k=1)[0].abspath == str(moved / "news" / "flood.txt")


@pytest.mark.parametrize("forget", ["add", "remove"])
def test_a_moved_index_forgets_a_folder_deleted_at_its_new_place(
    tmp_path: Path, library: Path, monkeypatch: pytest.MonkeyPatch, forget: str
) -> None:
    """Moved with its documents, then a subfolder deleted: the index follows the new place
    (its files are not kept at their old paths, which no longer open)."""
    build(library / ".semsearch", library / "news")
    moved = tmp_path / "moved"
    library.rename(moved)
    shutil.rmtree(moved / "news" / "sport")
    monkeypatch.chdir(moved)
    chess = str(moved / "news" / "sport" / "chess.txt")
    with Index.open(moved / ".semsearch", embedder=FakeEmbedder()) as index:
        assert {f.abspath: f.exists for f in index.files()}[chess] is False
        # re-indexing the folder, or removing the subfolder by its path at the new place
        report = index.add(["news"]) if forget == "add" else index.remove(["news/sport"])
        assert report.files_removed == [chess]
        assert [f.abspath for f in index.files()] == [str(moved / "news" / "flood.txt")]
        assert titles(moved / ".semsearch") == {"River floods"}
        with pytest.raises(SourceError):  # nothing left there, nor at the old place
            index.remove(["news/sport"])


def test_a_copy_forgets_a_file_deleted_in_the_copy_not_pointing_at_the_original(
    tmp_path: Path, library: Path
) -> None:
    build(library / ".semsearch", library / "news")
    copy = tmp_path / "copy"
    shutil.copytree(library, copy)
    (copy / "news" / "flood.txt").unlink()
    with Index.open(copy / ".semsearch", embedder=FakeEmbedder()) as index:
        listed = {f.abspath: f.exists for f in index.files()}
        assert listed == {
            str(copy / "news" / "flood.txt"): False,  # gone from the copy, not the original's
            str(copy / "news" / "sport" / "chess.txt"): True,
        }
        hit = index.search("river banks", k=1, mode="lexical")[0]
        assert hit.abspath == str(copy / "news" / "flood.txt")
        report = index.add([copy / "news"])
        assert report.files_removed == [str(copy / "news" / "flood.txt")]
        assert [f.abspath for f in index.files()] == [str(copy / "news" / "sport" / "chess.txt")]
    with Index.open(library / ".semsearch", embedder=FakeEmbedder()) as index:  # untouched
        assert [f.abspath for f in index.files()] == [
            str(library / "news" / "flood.txt"),
            str(library / "news" / "sport" / "chess.txt"),
        ]


def test_an_index_moved_without_its_documents_keeps_their_paths(
    tmp_path: Path, library: Path
) -> None:
    index_dir = tmp_path / "idx"
    build(index_dir, library / "news")
    index_dir.rename(tmp_path / "moved-idx")
    with Index.open(tmp_path / "moved-idx", embedder=FakeEmbedder()) as index:
        hit = index.search("river banks", k=1, mode="lexical")[0]
        assert hit.abspath == str(library / "news" / "flood.txt")
        assert index.add([library / "news"]).files_unchanged == 2


# --------------------------------------------------------------------------- migration


def downgrade_to_schema_2(index_dir: Path) -> None:
    """Make the index look as semsearch wrote it before lines and roots were recorded."""
    con = sqlite3.connect(index_dir / "semsearch.db")
    try:
        for table, column in (("passages", "line"), ("passages", "col"), ("files", "root")):
            con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        con.execute("DELETE FROM manifest WHERE key = 'location'")
        con.execute("PRAGMA user_version = 2")
        con.commit()
    finally:
        con.close()


def test_a_schema_2_index_migrates_on_open_without_re_embedding(
    tmp_path: Path, library: Path
) -> None:
    index_dir = tmp_path / "idx"
    build(index_dir, library / "news")
    downgrade_to_schema_2(index_dir)
    fake = FakeEmbedder()
    with Index.open(index_dir, embedder=fake) as index:
        hit = index.search("river banks", k=1, mode="lexical")[0]
        assert (hit.title, hit.line, hit.column) == ("River floods", 0, 0)  # 0: not known
        # no root recorded: each file counts under its folder until the next add
        assert [r.root for r in index.roots()] == [
            str(library / "news"),
            str(library / "news" / "sport"),
        ]
        assert index.check().ok
        report = index.add([library / "news"])
        assert report.files_unchanged == 2 and fake.calls == []
        assert [r.root for r in index.roots()] == [str(library / "news")]
        article(library / "news" / "flood.txt", "River floods", "Rain.", "The river burst.")
        index.add([library / "news"])
        hit = index.search("river burst", k=1, mode="lexical")[0]
        assert (hit.line, hit.column) == (5, 1)  # a changed file gets its lines


# --------------------------------------------------------------------------- command line


@pytest.fixture
def cli_index(tmp_path: Path, library: Path) -> Path:
    index_dir = tmp_path / "idx"
    build(index_dir, library / "news", library / "notes")
    return index_dir


def test_cli_list(cli_index: Path, library: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(library)
    code, out, err = run("list", "--index", str(cli_index))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("news  (2 files, 3 passages, indexed ")
    assert lines[1].split()[0] == "2" and lines[1].endswith("news/flood.txt")
    assert lines[2].endswith("news/sport/chess.txt")
    assert lines[3].startswith("notes  (1 file, 1 passage, ")
    assert len(lines) == 5
    code, out, _ = run("list", "--roots", "--index", str(cli_index))
    assert code == 0 and len(out.splitlines()) == 2
    code, out, _ = run("list", "--json", "--index", str(cli_index))
    data = json.loads(out)
    assert [r["root"] for r in data["roots"]] == [str(library / "news"), str(library / "notes")]
    assert [f["passages"] for f in data["files"]] == [2, 1, 1]
    assert data["files"][0]["abspath"] == str(library / "news" / "flood.txt")
    (library / "notes" / "bread.txt").unlink()
    code, out, _ = run("list", "--index", str(cli_index))
    assert "notes/bread.txt  (gone from disk)" in out
    assert "semsearch remove PATH" in out.splitlines()[-1]


def test_cli_remove(cli_index: Path, library: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(library)
    code, out, err = run("remove", "news/sport", "notes", "-v", "--index", str(cli_index))
    assert code == 0, err
    assert out.splitlines() == [
        f"Removed 2 files (2 documents, 2 passages) from {cli_index}; 1 file left",
        "  removed  news/sport/chess.txt",
        "  removed  notes/bread.txt",
    ]
    code, out, err = run("remove", "notes", "--index", str(cli_index))
    assert_one_line_error(
        code, out, err, "nothing at or under notes", "semsearch list", exit_code=2
    )
    code, out, err = run("remove", "news", "--json", "--index", str(cli_index))
    assert code == 0, err
    data = json.loads(out)
    assert data["files_removed"] == [str(library / "news" / "flood.txt")]
    assert data["passages_removed"] == 2


def test_cli_index_of_a_vanished_folder_names_remove(
    cli_index: Path, library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(library)
    shutil.rmtree(library / "notes")
    with fake_cli.faked():
        code, out, err = run("index", "notes", "--index", str(cli_index), "-q")
    assert_one_line_error(code, out, err, f"semsearch remove --index {cli_index} notes")


def test_cli_index_verbose_and_json_name_the_files(
    tmp_path: Path, library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(library)
    with fake_cli.faked():
        code, out, err = run("index", "news", "-q", "-v", "--index", str(tmp_path / "i"))
        assert code == 0, err
        assert "  files:     2 added, 0 updated, 0 removed, 0 unchanged" in out
        assert out.splitlines()[-2:] == [
            "  added    news/flood.txt",
            "  added    news/sport/chess.txt",
        ]
        (library / "news" / "flood.txt").unlink()
        code, out, err = run("index", "news", "-q", "--json", "--index", str(tmp_path / "i"))
    data = json.loads(out)
    assert data["files_removed"] == [str(library / "news" / "flood.txt")]
    assert data["files_unchanged"] == 1


def test_cli_info_shows_the_roots(cli_index: Path, library: Path) -> None:
    code, out, err = run("info", "--index", str(cli_index))
    assert code == 0, err
    lines = out.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("roots:"))
    assert lines[start].split()[-1] == display_path(str(library / "news"))
    assert lines[start + 1].strip() == display_path(str(library / "notes"))


def test_cli_query_shows_paths_from_the_current_directory(
    cli_index: Path, library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(library / "notes")
    code, out, err = run("query", "river banks", "--mode", "lexical", "--index", str(cli_index))
    assert code == 0, err
    assert "   ../news/flood.txt, paragraph 1" in out
    code, out, err = run(
        "query", "river banks", "--mode", "lexical", "--json", "--index", str(cli_index)
    )
    top = json.loads(out)["results"][0]
    assert top["path"] == str(library / "news" / "flood.txt")  # as given: absolute here
    assert top["abspath"] == str(library / "news" / "flood.txt")
    assert (top["line"], top["column"]) == (3, 1)


def test_cli_drop(cli_index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # not on a terminal and no --yes: refused, the index kept
    code, out, err = run("drop", "--index", str(cli_index))
    assert_one_line_error(code, out, err, "without confirmation", "--yes", exit_code=2)
    assert (cli_index / "semsearch.db").exists()
    # on a terminal: asked, and "no" keeps it
    monkeypatch.setattr("semsearch.cli._stdin_is_terminal", lambda: True)
    result = runner.invoke(app, ["drop", "--index", str(cli_index)], input="n\n")
    assert result.exit_code == 1 and (cli_index / "semsearch.db").exists()
    assert "4 passages from 3 files" in result.stdout
    result = runner.invoke(app, ["drop", "--index", str(cli_index)], input="y\n")
    assert result.exit_code == 0, result.stderr
    assert "Deleted the index in" in result.stdout and not cli_index.exists()
    code, out, err = run("drop", "--index", str(cli_index), "--yes")
    assert_one_line_error(code, out, err, "no index in", exit_code=2)
    code, out, err = run("drop", "--index", str(cli_index))  # not asked: there is nothing
    assert_one_line_error(code, out, err, "no index in", exit_code=2)


def test_cli_drop_yes(cli_index: Path) -> None:
    code, out, err = run("drop", "--yes", "--json", "--index", str(cli_index))
    assert code == 0, err
    assert json.loads(out)["kept"] == [] and not cli_index.exists()


def test_list_and_remove_in_a_real_process(cli_index: Path, library: Path) -> None:
    done = python_semsearch("list", "--index", str(cli_index), cwd=library)
    assert done.returncode == 0, done.stderr
    assert "news/sport/chess.txt" in done.stdout and "notes/bread.txt" in done.stdout
    shutil.rmtree(library / "news")
    done = python_semsearch("remove", "news", "--index", str(cli_index), cwd=library)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Removed 2 files (2 documents, 3 passages)")
    done = python_semsearch("list", "--json", "--index", str(cli_index), cwd=library)
    assert [f["path"] for f in json.loads(done.stdout)["files"]] == [
        str(library / "notes" / "bread.txt")
    ]
    done = python_semsearch("remove", "news", "--index", str(cli_index), cwd=library)
    assert done.returncode == 2
    assert done.stderr.startswith("error: nothing at or under news is indexed")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_an_empty_path_removes_nothing(cli_index: Path, library: Path) -> None:
    """An unset shell variable (`semsearch remove "$DIR"`) must not mean "everything here"."""
    before = _count_passages(cli_index)
    for args in ([""], ["  "], ["news", ""]):
        code, out, err = run("remove", *args, "--index", str(cli_index), "-v")
        assert_one_line_error(code, out, err, "empty path", exit_code=2)
    with (
        Index.open(cli_index, embedder=FakeEmbedder()) as index,
        pytest.raises(UsageError, match="empty path"),
    ):
        index.remove("")
    assert _count_passages(cli_index) == before > 0


def _count_passages(index_dir: Path) -> int:
    with Index.open(index_dir, embedder=FakeEmbedder()) as index:
        return index.info().passages


def test_drop_counts_a_shared_file_as_not_freed(cli_index: Path, tmp_path: Path) -> None:
    """A file with another link (the query model shared with the model cache) frees nothing."""
    shared = tmp_path / "cache-copy.bin"
    shared.write_bytes(b"x" * 50_000)
    os.link(shared, cli_index / "query-model-0123456789abcdef.onnx")
    total = sum(p.lstat().st_size for p in cli_index.iterdir())
    report = Index.drop(cli_index)
    assert not cli_index.exists()
    assert 0 < report.bytes_freed <= total - 50_000  # the file's other link keeps it
    assert shared.read_bytes() == b"x" * 50_000  # and the shared copy is untouched


def test_eof_at_the_drop_question_is_a_no(
    cli_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("semsearch.cli._stdin_is_terminal", lambda: True)
    result = runner.invoke(app, ["drop", "--index", str(cli_index)], input="")
    assert result.exit_code == 1 and (cli_index / "semsearch.db").exists()
    assert "not confirmed" in result.stderr
