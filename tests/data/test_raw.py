import hashlib
import shutil

import pytest

from codeprop.data import raw


def test_fetch_local_checks_sha256(raw_dir):
    path = raw.fetch(raw.DEVMAP_AMD_CSV, raw_dir)
    assert path == raw_dir / "devmap" / "cgo17-amd.csv"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == raw.DEVMAP_AMD_CSV.sha256


def test_corrupt_local_file_is_an_error_naming_it(raw_dir, tmp_path):
    (tmp_path / "devmap").mkdir()
    bad = tmp_path / "devmap" / "cgo17-amd.csv"
    data = bytearray((raw_dir / "devmap" / "cgo17-amd.csv").read_bytes())
    data[100] ^= 1
    bad.write_bytes(bytes(data))
    with pytest.raises(raw.RawDataError, match=r"cgo17-amd\.csv: sha256 .* does not match"):
        raw.fetch(raw.DEVMAP_AMD_CSV, tmp_path)


def test_download_from_mirror_is_checked_and_cached(raw_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(raw.MIRROR_ENV, (raw_dir).as_uri())
    monkeypatch.setenv(raw.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(raw.DATA_DIR_ENV, raising=False)
    path = raw.fetch(raw.DEVMAP_NVIDIA_CSV)
    assert path == tmp_path / "cache" / "devmap" / "cgo17-nvidia.csv"
    assert raw.sha256_of(path) == raw.DEVMAP_NVIDIA_CSV.sha256


def test_download_with_wrong_checksum_is_removed(raw_dir, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror" / "devmap"
    mirror.mkdir(parents=True)
    shutil.copy(raw_dir / "devmap" / "cgo17-amd.csv", mirror / "cgo17-nvidia.csv")
    monkeypatch.setenv(raw.MIRROR_ENV, (tmp_path / "mirror").as_uri())
    monkeypatch.setenv(raw.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(raw.DATA_DIR_ENV, raising=False)
    with pytest.raises(raw.RawDataError, match="does not match"):
        raw.fetch(raw.DEVMAP_NVIDIA_CSV)
    assert not (tmp_path / "cache" / "devmap" / "cgo17-nvidia.csv").exists()


def test_missing_file_without_download_says_where(tmp_path, monkeypatch):
    monkeypatch.delenv(raw.MIRROR_ENV, raising=False)
    monkeypatch.setenv(raw.CACHE_ENV, str(tmp_path / "cache"))
    with pytest.raises(raw.RawDataError, match=r"poj104_programs\.tar\.gz not found"):
        raw.fetch(raw.POJ104_TAR, tmp_path)


def test_missing_data_dir_is_an_error(tmp_path):
    with pytest.raises(raw.RawDataError, match="does not exist"):
        raw.data_dir(tmp_path / "nope")
