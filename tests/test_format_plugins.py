"""Formats from other packages, through the ``semsearch.formats`` entry point group: a
distribution is laid out on a temporary ``sys.path`` entry (a ``*.dist-info`` folder and
its module) so that `importlib.metadata` finds it as it finds an installed one. The
README's example plugin is the one tested."""

from __future__ import annotations

import importlib
import json
import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from semsearch.ingest import read_file, walk
from semsearch.ingest.formats import (
    FORMATS,
    load_plugins,
    parse,
    reset_plugins,
    supported_suffixes,
)
from tests.cli_helpers import run_faked

README = Path(__file__).resolve().parent.parent / "README.md"

ORG_NOTES = """#+TITLE: Garden notes
#+DATE: 2024-05-01

* Bees
The bees swarmed in the orchard at noon,
and settled on the old pear tree.

* Honey
We took forty jars of honey.
"""


def readme_example() -> tuple[str, str, str]:
    """The README's plugin: (entry point name, its value, the module's source)."""
    text = README.read_text(encoding="utf-8")
    part = text[text.index("#### Other formats, from other packages") :]
    toml = re.search(r"```toml\n(.*?)```", part, re.S)
    module = re.search(r"```python\n(.*?)```", part, re.S)
    assert toml is not None and module is not None
    group, line = toml[1].strip().splitlines()
    assert group == '[project.entry-points."semsearch.formats"]'
    name, value = (x.strip().strip('"') for x in line.split("="))
    return name, value, module[1]


class Site:
    """A folder on ``sys.path`` holding distributions made for the test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: list[str] = []

    def distribution(
        self, name: str, entry_points: dict[str, str], modules: dict[str, str]
    ) -> None:
        """A distribution ``name`` declaring ``entry_points`` (name -> "module:attr") in the
        semsearch.formats group, with ``modules`` (name -> source) beside it."""
        info = self.root / f"{name.replace('-', '_')}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n", encoding="utf-8"
        )
        lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
        (info / "entry_points.txt").write_text(
            f"[semsearch.formats]\n{lines}", encoding="utf-8"
        )
        for module, source in modules.items():
            (self.root / f"{module}.py").write_text(source, encoding="utf-8")
            self.modules.append(module)
        importlib.invalidate_caches()


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    reset_plugins()
    made = Site(root)
    yield made
    reset_plugins()  # the entry points are read again, without this site, by the next walk
    for module in made.modules:
        sys.modules.pop(module, None)


def org_plugin(site: Site) -> str:
    name, value, source = readme_example()
    site.distribution("semsearch-org", {name: value}, {value.split(":")[0]: source})
    return name


def test_the_readme_plugin_is_loaded_and_reads_its_files(site: Site, tmp_path: Path) -> None:
    org_plugin(site)
    assert ".org" not in FORMATS
    assert load_plugins() == []
    assert FORMATS[".org"].name == "org"
    assert ".org" in supported_suffixes() and ".txt" in supported_suffixes()
    path = tmp_path / "garden.org"
    path.write_text(ORG_NOTES, encoding="utf-8")
    docs, problems = parse(read_file(str(path), str(path)))
    assert problems == []
    [doc] = docs
    assert (doc.title, doc.format) == ("Garden notes", "org")
    assert [p.text for p in doc.paragraphs] == [
        "The bees swarmed in the orchard at noon, and settled on the old pear tree.",
        "We took forty jars of honey.",
    ]
    assert ORG_NOTES[doc.paragraphs[1].start : doc.paragraphs[1].end] == (
        "We took forty jars of honey."
    )


def test_a_folder_of_org_files_is_indexed_and_searched(site: Site, tmp_path: Path) -> None:
    org_plugin(site)
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "garden.org").write_text(ORG_NOTES, encoding="utf-8")
    (folder / "untitled.org").write_text("The pear tree flowered early.\n", encoding="utf-8")
    (folder / "empty.org").write_text("#+TITLE: Nothing yet\n", encoding="utf-8")
    (folder / "other.txt").write_text("Other\n\nThe river was low.\n", encoding="utf-8")
    ix = str(tmp_path / "ix")
    code, out, err = run_faked("index", str(folder), "--index", ix, "-q")
    assert (code, err) == (0, "")
    code, out, err = run_faked(
        "query", "pear tree", "--mode", "lexical", "--json", "--index", ix
    )
    assert code == 0, err
    got = sorted((Path(h["path"]).name, h["title"]) for h in json.loads(out)["results"])
    # the plugin gives no title to a file without #+TITLE: it is named after its file
    assert got == [("garden.org", "Garden notes"), ("untitled.org", "untitled")]


def test_a_plugin_given_as_a_callable_is_called(site: Site) -> None:
    factory = textwrap.dedent(
        """
        from semsearch.ingest import Format
        from semsearch.ingest.formats import FORMATS

        def make():
            return Format("notes", (".NOTE",), FORMATS[".txt"].parse)
        """
    )
    site.distribution(
        "semsearch-notes", {"notes": "plugin_factory:make"}, {"plugin_factory": factory}
    )
    assert load_plugins() == []
    assert FORMATS[".note"].name == "notes"  # suffixes match whatever their case


BROKEN = {
    "missing": "plugin_no_such_module:FORMAT",
    "raises": "plugin_raises:FORMAT",
    "noattr": "plugin_fine:NOPE",
    "notformat": "plugin_fine:NOT_A_FORMAT",
    "nodot": "plugin_fine:NO_DOT",
}


def broken_plugins(site: Site) -> None:
    site.distribution(
        "semsearch-broken",
        BROKEN,
        {
            "plugin_raises": "raise RuntimeError('needs a licence key\\nsecond line')\n",
            "plugin_fine": textwrap.dedent(
                """
                from semsearch.ingest import Format
                from semsearch.ingest.formats import FORMATS

                NOT_A_FORMAT = "a string"
                NO_DOT = Format("bad", ("org",), FORMATS[".txt"].parse)
                """
            ),
        },
    )


def test_a_plugin_that_cannot_be_loaded_is_one_problem_each(site: Site) -> None:
    broken_plugins(site)
    problems = {p.path.split("'")[1]: p.message for p in load_plugins()}
    assert problems == {
        "missing": (
            "could not be loaded (ModuleNotFoundError: No module named "
            "'plugin_no_such_module'); its files skipped"
        ),
        "raises": "could not be loaded (RuntimeError: needs a licence key); its files skipped",
        "noattr": (
            "could not be loaded (AttributeError: module 'plugin_fine' has no attribute "
            "'NOPE'); its files skipped"
        ),
        "notformat": "gives no semsearch Format with suffixes; its files skipped",
        "nodot": "names suffixes without their dot (org); its files skipped",
    }
    assert load_plugins() == []  # told once a process
    assert {s for s in FORMATS if s in (".org", "org")} == set()


def test_broken_plugins_are_warnings_and_the_run_goes_on(site: Site, tmp_path: Path) -> None:
    broken_plugins(site)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "ok.txt").write_text("Ok\n\nThis file is ok and indexed.\n", encoding="utf-8")
    (folder / "skipped.org").write_text("* a heading\n", encoding="utf-8")
    ix = str(tmp_path / "ix")
    code, out, err = run_faked("index", str(folder), "--index", ix)
    assert code == 0, err
    lines = err.strip().splitlines()
    assert len(lines) == len(BROKEN), err
    assert all(line.startswith("warning: format plugin '") for line in lines)
    assert "Traceback" not in out + err
    assert "1 added" in out


def test_a_plugin_parser_that_fails_costs_its_files_only(site: Site, tmp_path: Path) -> None:
    source = textwrap.dedent(
        """
        from semsearch.ingest import Format

        def explode(source):
            raise ValueError("cannot read " + source.path[-6:])

        def no_pair(source):
            return ["not a document"], []

        EXPLODES = Format("explodes", (".boom",), explode)
        NO_PAIR = Format("nopair", (".pair",), no_pair)
        """
    )
    site.distribution(
        "semsearch-flaky", {"boom": "plugin_flaky:EXPLODES", "pair": "plugin_flaky:NO_PAIR"},
        {"plugin_flaky": source},
    )
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "ok.txt").write_text("Ok\n\nThis file is ok and indexed.\n", encoding="utf-8")
    (folder / "a.boom").write_text("x", encoding="utf-8")
    (folder / "b.pair").write_text("x", encoding="utf-8")
    code, _, err = run_faked("index", str(folder), "--index", str(tmp_path / "ix"), "-q")
    assert code == 0, err
    assert err.strip().splitlines() == [
        f"warning: {folder / 'a.boom'}: format plugin 'explodes' failed "
        "(ValueError: cannot read a.boom); skipped",
        f"warning: {folder / 'b.pair'}: format plugin 'nopair' gave no (documents, problems) "
        "pair; skipped",
    ]


def test_a_plugin_wins_over_a_built_in_format_until_reset(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = textwrap.dedent(
        """
        from semsearch.ingest import Document, Format, Paragraph

        def shout(source):
            text = source.data.decode().upper()
            return [Document(source.path, "LOUD", [Paragraph(text, 0, len(text))])], []

        FORMAT = Format("loud", (".txt",), shout)
        """
    )
    site.distribution("semsearch-loud", {"loud": "plugin_loud:FORMAT"}, {"plugin_loud": source})
    (tmp_path / "docs").mkdir()
    path = tmp_path / "docs" / "a.txt"
    path.write_text("Quiet\n\nquiet words\n", encoding="utf-8")
    found = walk([tmp_path / "docs"])  # a walk loads the plugins
    assert found.problems == [] and [Path(p).name for p, _ in found.files] == ["a.txt"]
    [doc], _ = parse(read_file(str(path), str(path)))
    assert (doc.title, doc.paragraphs[0].text) == ("LOUD", "QUIET\n\nQUIET WORDS\n")
    # uninstalled: the next read of the entry points finds it gone
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(site.root)])
    importlib.invalidate_caches()
    reset_plugins()
    assert FORMATS[".txt"].name == "text"
    [doc], _ = parse(read_file(str(path), str(path)))
    assert (doc.title, doc.format) == ("Quiet", "text")
    assert ".org" not in supported_suffixes()
