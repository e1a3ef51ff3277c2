"""Raw benchmark files: where they live locally, where they come from, how they are checked.

A raw-data directory is laid out like ``../shared/datasets`` in the codeprop checkout::

    <raw_dir>/devmap/cgo17-amd.csv
    <raw_dir>/devmap/cgo17-nvidia.csv
    <raw_dir>/devmap/ncc_devmap_data.zip
    <raw_dir>/devmap/kernels_cl/*.cl           (optional: original OpenCL sources)
    <raw_dir>/poj104/poj104_programs.tar.gz

It is found, in order, from an explicit argument, the ``CODEPROP_DATA_DIR`` environment
variable, or not at all. A file missing there is downloaded from its canonical public
source (or from ``CODEPROP_MIRROR_URL``, a local mirror with the same relative layout, e.g.
``file:///data/mirror``) into the cache directory ``CODEPROP_CACHE_DIR`` (default
``~/.cache/codeprop/raw``). Every file with a published sha256 is checked, local or
downloaded; a mismatch is an error naming the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import shutil
import tempfile
import urllib.error
import urllib.request

DATA_DIR_ENV = "CODEPROP_DATA_DIR"
MIRROR_ENV = "CODEPROP_MIRROR_URL"
CACHE_ENV = "CODEPROP_CACHE_DIR"

_END2END = (
    "https://raw.githubusercontent.com/ChrisCummins/paper-end2end-dl/"
    "df6fa690cbf18bdcab23f26c5832f36884f037b5/data/case-study-a"
)
_PHD_NCC = (
    "https://raw.githubusercontent.com/ChrisCummins/phd/"
    "aab7f16bd1f3546f81e349fc6e2325fb17beb851/deeplearning/ncc/published_results"
)


class RawDataError(RuntimeError):
    """A raw file is missing, unreadable, corrupt or fails its checksum."""


class RawFileMissing(RawDataError):
    """A raw file is neither local, nor cached, nor downloadable from anywhere known."""


class RawDownloadError(RawDataError):
    """A download failed (no such file on the mirror, no network, ...)."""


@dataclasses.dataclass(frozen=True)
class RawFile:
    """One raw benchmark file.

    Attributes:
      relpath: path relative to the raw-data directory (and to a mirror).
      sha256: published sha256 hex digest, or None when no checksum is published.
      url: canonical public download address, or None when there is none.
      how_to_get: what to tell a user when the file is neither local nor downloadable.
    """

    relpath: str
    sha256: str | None
    url: str | None
    how_to_get: str = ""


DEVMAP_AMD_CSV = RawFile(
    "devmap/cgo17-amd.csv",
    "0076271192aa9a0a7c21aa9a637e34cd4460f8e21e756215dd23ffb2ae62dc62",
    f"{_END2END}/cgo17-amd.csv",
)
DEVMAP_NVIDIA_CSV = RawFile(
    "devmap/cgo17-nvidia.csv",
    "095c1ccef333e0a65e0e70b3ebde0aef851b61528ec46496a5d1687905abd099",
    f"{_END2END}/cgo17-nvidia.csv",
)
DEVMAP_NCC_ZIP = RawFile(
    "devmap/ncc_devmap_data.zip",
    "3c840f84936a83e329c7a94d011c45ddfcfce8bdbb1a9b1904123e83851913d5",
    f"{_PHD_NCC}/task_devmap.zip",
)
POJ104_TAR = RawFile(
    "poj104/poj104_programs.tar.gz",
    "b2994e2741a8d79c2016071252b1592de50aa46f8cbad42a37d2f073dbd51ce3",
    None,
    how_to_get=(
        "The archive itself has no public download; codeprop.data.poj104 rebuilds it from "
        "CodeXGLUE's parquet files instead, checked against the content digest it pins."
    ),
)


def data_dir(explicit: str | os.PathLike | None = None) -> pathlib.Path | None:
    """Returns the local raw-data directory: `explicit`, else $CODEPROP_DATA_DIR, else None."""
    value = explicit if explicit is not None else os.environ.get(DATA_DIR_ENV)
    if not value:
        return None
    path = pathlib.Path(value).expanduser()
    if not path.is_dir():
        raise RawDataError(f"raw-data directory {path} does not exist or is not a directory")
    return path


def cache_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get(CACHE_ENV, "~/.cache/codeprop/raw")).expanduser()


def sha256_of(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check(path: pathlib.Path, raw: RawFile) -> pathlib.Path:
    if raw.sha256 is not None:
        actual = sha256_of(path)
        if actual != raw.sha256:
            raise RawDataError(
                f"{path}: sha256 {actual} does not match the published {raw.sha256}; "
                "the file is corrupt or not the expected release"
            )
    return path


def _download(url: str, dest: pathlib.Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                shutil.copyfileobj(response, tmp)
        except (urllib.error.URLError, OSError) as e:
            os.unlink(tmp.name)
            raise RawDownloadError(f"could not download {url}: {e}") from e
    os.replace(tmp.name, dest)


def fetch(raw: RawFile, explicit_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Returns a checked local path for `raw`, downloading it if it is not local.

    Args:
      raw: the file to fetch.
      explicit_dir: raw-data directory overriding $CODEPROP_DATA_DIR.

    Raises:
      RawDataError: the file is nowhere to be had, or its checksum does not match.
    """
    local_root = data_dir(explicit_dir)
    if local_root is not None and (local_root / raw.relpath).is_file():
        return _check(local_root / raw.relpath, raw)
    cached = cache_dir() / raw.relpath
    if cached.is_file():
        return _check(cached, raw)
    mirror = os.environ.get(MIRROR_ENV)
    url = f"{mirror.rstrip('/')}/{raw.relpath}" if mirror else raw.url
    if url is None:
        where = f"{local_root / raw.relpath}" if local_root else f"$CODEPROP_DATA_DIR/{raw.relpath}"
        raise RawFileMissing(f"{where} not found. {raw.how_to_get}")
    _download(url, cached)
    try:
        return _check(cached, raw)
    except RawDataError:
        cached.unlink()
        raise


def local_path(relpath: str, explicit_dir: str | os.PathLike | None = None) -> pathlib.Path | None:
    """Returns `<raw_dir>/<relpath>` if a raw-data directory is set and has it, else None.

    For optional inputs without a published checksum (such as ``devmap/kernels_cl``).
    """
    root = data_dir(explicit_dir)
    if root is None or not (root / relpath).exists():
        return None
    return root / relpath
