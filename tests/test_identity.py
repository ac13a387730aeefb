"""File identity: one file is one file, however its path is spelled.

A file is known by its real path (every symbolic link resolved): indexing a
folder and then a link to it, or a link to a file already indexed, embeds
nothing again and keeps one copy; the path shown is the latest spelling, as
for a rename. Indexes written before stored other spellings; the next run
matches them (and drops the second copy an older run may have made).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

import semsearch.index as index_module
from semsearch import ingest
from semsearch.index import Index
from semsearch.ingest import Walk
from tests.fakes import FakeEmbedder


def write(folder: Path, count: int, start: int = 0) -> list[Path]:
    """``count`` articles of 3 paragraphs, each with words of its own."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + count):
        path = folder / f"art{i:02d}.txt"
        body = "\n\n".join(f"Paragraph {j} of article {i}: word{i}x{j} and more." for j in range(3))
        path.write_text(f"Article {i}\n\n{body}\n", encoding="utf-8")
        paths.append(path)
    return paths


def rows(index_dir: Path) -> list[tuple[str, str]]:
    """(path, abspath) of every file row, sorted."""
    con = sqlite3.connect(index_dir / "semsearch.db")
    try:
        return sorted(con.execute("SELECT path, abspath FROM files").fetchall())
    finally:
        con.close()


@pytest.fixture
def fake() -> FakeEmbedder:
    return FakeEmbedder(dimension=32)


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    write(folder, 5)
    (tmp_path / "link").symlink_to(folder, target_is_directory=True)
    return folder


def test_a_folder_then_a_link_to_it_is_one_set_of_files(
    tmp_path: Path, docs: Path, fake: FakeEmbedder
) -> None:
    link = tmp_path / "link"
    with Index.open(tmp_path / "ix", create=True, embedder=fake) as index:
        first = index.add(docs)
        assert first.passages_embedded == 15
        report = index.add(link)
        assert report.passages_embedded == 0 and report.passages_added == 0
        assert report.documents_added == 0 and report.documents_removed == 0
        info = index.info()
        assert (info.files, info.documents, info.passages) == (5, 5, 15)
        index.check()
        hits = index.search("word3x1", k=3, mode="lexical")
        assert len(hits) == 1 and hits[0].path == str(link / "art03.txt")  # the latest spelling
    real = os.path.realpath(docs)
    assert [a for _, a in rows(tmp_path / "ix")] == [
        os.path.join(real, f"art{i:02d}.txt") for i in range(5)
    ]

    # back through the first spelling, and both at once: still one copy each
    with Index.open(tmp_path / "ix", embedder=fake) as index:
        assert index.add(docs).passages_embedded == 0
        assert index.add([docs, link]).passages_embedded == 0
        assert index.info().passages == 15
        index.check()


@pytest.mark.parametrize("through", ["docs", "link"])
def test_removing_a_file_works_through_either_spelling(
    tmp_path: Path, docs: Path, fake: FakeEmbedder, through: str
) -> None:
    with Index.open(tmp_path / "ix", create=True, embedder=fake) as index:
        index.add(docs)
        index.add(tmp_path / "link")
        (docs / "art01.txt").unlink()
        report = index.add(tmp_path / through)
        assert report.documents_removed == 1 and report.passages_removed == 3
        assert report.passages_embedded == 0
        assert index.info().passages == 12
        assert index.search("word1x0", k=3, mode="lexical") == []
        index.check()


def test_a_link_to_a_file_already_indexed_is_that_file(
    tmp_path: Path, docs: Path, fake: FakeEmbedder
) -> None:
    other = tmp_path / "other"
    (target,) = write(other, 1, start=50)
    (docs / "zz-link.txt").symlink_to(target)  # inside the folder, to a file indexed before
    (docs / "aa-link.txt").symlink_to(docs / "art02.txt")  # to a file of the folder itself
    with Index.open(tmp_path / "ix", create=True, embedder=fake) as index:
        index.add(other)
        report = index.add(docs)
        assert report.passages_embedded == 15  # the 5 articles of docs, nothing more
        info = index.info()
        assert (info.files, info.passages) == (6, 18)
        assert len(index.search("word50x1", k=5, mode="lexical")) == 1
        assert len(index.search("word2x1", k=5, mode="lexical", collapse=False)) == 1
        index.check()
        # the file itself given again, by either name: nothing new
        assert index.add(docs / "zz-link.txt").passages_embedded == 0
        assert index.add(target).passages_embedded == 0
        assert index.info().passages == 18
    assert sorted(a for _, a in rows(tmp_path / "ix")) == sorted(
        {os.path.realpath(p) for p in [*docs.glob("art*.txt"), target]}
    )


def test_a_folder_replaced_by_a_link_to_where_it_moved_is_matched(
    tmp_path: Path, docs: Path, fake: FakeEmbedder
) -> None:
    with Index.open(tmp_path / "ix", create=True, embedder=fake) as index:
        index.add(docs)
    moved = tmp_path / "moved"
    docs.rename(moved)
    docs.symlink_to(moved, target_is_directory=True)
    with Index.open(tmp_path / "ix", embedder=fake) as index:
        report = index.add(docs)
        assert report.passages_embedded == 0 and report.documents_removed == 0
        assert index.info().passages == 15
        index.check()
    assert all(a.startswith(os.path.realpath(moved) + os.sep) for _, a in rows(tmp_path / "ix"))


def test_a_link_to_a_file_outside_is_indexed_where_the_link_lies(
    tmp_path: Path, docs: Path, fake: FakeEmbedder
) -> None:
    """Known by the link's place until the file itself is indexed, so deleting the link
    (or its target) removes the article, and indexing the target later adds no copy."""
    outside = tmp_path / "outside"
    (kept, dangling) = write(outside, 2, start=60)
    (docs / "kept.txt").symlink_to(kept)
    (docs / "dangling.txt").symlink_to(dangling)
    found = ingest.walk([docs])
    assert found.links == {
        os.path.realpath(kept): os.path.join(os.path.realpath(docs), "kept.txt"),
        os.path.realpath(dangling): os.path.join(os.path.realpath(docs), "dangling.txt"),
    }
    with Index.open(tmp_path / "ix", create=True, embedder=fake) as index:
        assert index.add(docs).passages_embedded == 21
        dangling.unlink()  # the link stays, leading nowhere
        report = index.add(docs)
        assert report.documents_removed == 1 and index.info().files == 6
        assert index.search("word61x0", k=3, mode="lexical") == []

        # the file itself, indexed from its own folder: the same article
        report = index.add(outside)
        assert report.passages_embedded == 0 and index.info().files == 6
        (docs / "kept.txt").unlink()
        report = index.add(docs)  # the file is still indexed from outside/
        assert report.documents_removed == 0 and index.info().files == 6
        assert len(index.search("word60x0", k=3, mode="lexical")) == 1
        index.check()


def test_walk_prefers_the_file_itself_to_a_link_to_it(tmp_path: Path, docs: Path) -> None:
    (docs / "aa-link.txt").symlink_to(docs / "art02.txt")  # sorts first
    found = ingest.walk([docs])
    assert [Path(g).name for g, _ in found.files].count("aa-link.txt") == 0
    assert (str(docs / "art02.txt"), os.path.realpath(docs / "art02.txt")) in found.files
    assert found.links == {}


def _walk_as_before(paths: Sequence[str | os.PathLike[str]], exclude: Sequence[str] = ()) -> Walk:
    """The walk of older versions: files known by their absolute path as spelled."""
    found = ingest.walk(paths, exclude)
    found.files = [(given, os.path.abspath(given)) for given, _ in found.files]
    found.roots = [os.path.abspath(p) for p in paths if os.path.isdir(p)]
    return found


def _older_run(monkeypatch: pytest.MonkeyPatch) -> Callable[[], Any]:
    monkeypatch.setattr(index_module, "walk", _walk_as_before)
    return monkeypatch.undo


def test_an_older_index_of_other_spellings_is_matched_not_duplicated(
    tmp_path: Path, docs: Path, fake: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = tmp_path / "link"
    undo = _older_run(monkeypatch)
    with Index.open(tmp_path / "ix", create=True, embedder=fake) as index:
        index.add(link)  # stored as link/art00.txt ...: not real paths
    undo()
    assert all(a.startswith(str(link) + os.sep) for _, a in rows(tmp_path / "ix"))

    edited = docs / "art00.txt"  # changed meanwhile: updated in place, not added beside
    edited.write_text(edited.read_text(encoding="utf-8").replace("word0x1", "fresh0x1"))
    with Index.open(tmp_path / "ix", embedder=fake) as index:
        report = index.add(docs)
        assert report.passages_embedded == 1 and report.documents_updated == 1
        assert report.documents_removed == 0 and report.documents_added == 0
        info = index.info()
        assert (info.files, info.documents, info.passages) == (5, 5, 15)
        assert len(index.search("fresh0x1", k=3, mode="lexical")) == 1
        assert index.search("word0x1", k=3, mode="lexical") == []
        index.check()
    real = os.path.realpath(docs)
    assert [a for _, a in rows(tmp_path / "ix")] == [
        os.path.join(real, f"art{i:02d}.txt") for i in range(5)
    ]


def test_the_second_copy_an_older_version_made_is_dropped(
    tmp_path: Path, docs: Path, fake: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    undo = _older_run(monkeypatch)
    with Index.open(tmp_path / "ix", create=True, embedder=fake) as index:
        index.add(docs)
        index.add(tmp_path / "link")
        assert index.info().passages == 30  # what older versions did: two copies
    undo()

    with Index.open(tmp_path / "ix", embedder=fake) as index:
        report = index.add(docs)
        assert report.passages_embedded == 0
        assert report.documents_removed == 5 and report.passages_removed == 15
        info = index.info()
        assert (info.files, info.documents, info.passages) == (5, 5, 15)
        index.check()
        assert len(index.search("word4x2", k=5, mode="lexical", collapse=False)) == 1
    assert len({a for _, a in rows(tmp_path / "ix")}) == 5
