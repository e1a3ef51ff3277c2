import io
import tarfile

import pytest

from codeprop.data import poj104, raw


def _tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_full_archive(raw_dir):
    data = poj104.read_programs(raw_dir)
    assert data["report"]["programs"] == 52_000
    assert data["report"]["classes"] == 104
    assert data["report"]["min_per_class"] == data["report"]["max_per_class"] == 500
    assert data["report"]["skipped"] == {}
    assert data["examples"][0]["id"] == "codexglue/1/2.cpp"
    # latin-1 round-trips every stored byte.
    non_ascii = [e for e in data["examples"] if any(ord(c) > 127 for c in e["text"])]
    assert len(non_ascii) == 248


def test_non_programs_are_counted_not_dropped_silently(tmp_path, monkeypatch):
    (tmp_path / "poj104").mkdir()
    _tar(
        tmp_path / "poj104" / "poj104_programs.tar.gz",
        {
            "codexglue/1/0.cpp": b"int main(){}",
            "codexglue/2/5.cpp": b"\xe9",
            "codexglue/README": b"x",
            "codexglue/3/1.cpp": b"   \n",
        },
    )
    unchecked = raw.RawFile(raw.POJ104_TAR.relpath, None, None)
    monkeypatch.setattr(raw, "POJ104_TAR", unchecked)
    data = poj104.read_programs(tmp_path)
    assert [e["id"] for e in data["examples"]] == ["codexglue/1/0.cpp", "codexglue/2/5.cpp"]
    assert data["examples"][1]["text"] == "\xe9"
    assert data["report"]["skipped"] == {
        "not a program file (codexglue/<problem>/<n>.cpp)": 1,
        "empty program": 1,
    }


def test_problem_out_of_range_is_an_error(tmp_path, monkeypatch):
    (tmp_path / "poj104").mkdir()
    _tar(tmp_path / "poj104" / "poj104_programs.tar.gz", {"codexglue/105/1.cpp": b"x"})
    monkeypatch.setattr(raw, "POJ104_TAR", raw.RawFile(raw.POJ104_TAR.relpath, None, None))
    with pytest.raises(poj104.Poj104FormatError, match="problem id 105"):
        poj104.read_programs(tmp_path)


def test_corrupt_archive_is_an_error(tmp_path, monkeypatch):
    (tmp_path / "poj104").mkdir()
    (tmp_path / "poj104" / "poj104_programs.tar.gz").write_bytes(b"not a tar")
    monkeypatch.setattr(raw, "POJ104_TAR", raw.RawFile(raw.POJ104_TAR.relpath, None, None))
    with pytest.raises(poj104.Poj104FormatError, match="cannot read the archive"):
        poj104.read_programs(tmp_path)
