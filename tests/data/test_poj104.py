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


@pytest.fixture(scope="module")
def codexglue_mirror(raw_dir, tmp_path_factory):
    """CodeXGLUE-layout parquet files made from the pinned archive: every program under
    the id that gives its ``<n>``, the 1,000 within-class repeats at the missing ``<n>``,
    and every seventh program with CRLF line ends (as the hub's rows may have)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    programs = dict(poj104._programs(raw.fetch(raw.POJ104_TAR, raw_dir)))
    rows = []
    for name, data in programs.items():
        _, label, n = name.removesuffix(".cpp").split("/")
        code = data.decode("utf-8")
        rows.append((int(n), code.replace("\n", "\r\n") if int(n) % 7 == 0 else code, label))
    first_65 = min((r for r in rows if r[2] == "65"), key=lambda r: r[0])
    taken = {r[0] for r in rows}
    rows += [(m, first_65[1], "65") for m in range(53_000) if m not in taken]
    mirror = tmp_path_factory.mktemp("mirror")
    (mirror / "poj104" / "codexglue").mkdir(parents=True)
    for i, source in enumerate(poj104.CODEXGLUE_PARQUET):
        part = rows[i::3]
        table = pa.table(
            {
                "id": [r[0] for r in part],
                "code": [r[1] for r in part],
                "label": [r[2] for r in part],
            }
        )
        pq.write_table(table, mirror / source.relpath)
    return mirror


def test_codexglue_rows_rebuild_the_pinned_archive(codexglue_mirror, raw_dir, tmp_path):
    files = [codexglue_mirror / f.relpath for f in poj104.CODEXGLUE_PARQUET]
    out, report = poj104.archive_from_codexglue(files, tmp_path / "rebuilt.tar.gz")
    assert report == {"rows": 53_000, "repeats_dropped": 1_000, "programs": 52_000}
    assert poj104.content_digest(poj104._programs(out)) == poj104.CONTENT_SHA256
    assert poj104.content_digest(poj104._programs(raw_dir / raw.POJ104_TAR.relpath)) == (
        poj104.CONTENT_SHA256
    )


def test_without_the_archive_it_is_rebuilt_and_read_the_same(
    codexglue_mirror, raw_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv(raw.MIRROR_ENV, codexglue_mirror.as_uri())
    monkeypatch.setenv(raw.CACHE_ENV, str(tmp_path / "cache"))
    (tmp_path / "empty").mkdir()
    rebuilt = poj104.read_programs(tmp_path / "empty")
    assert (tmp_path / "cache" / poj104.REBUILT).is_file()
    original = poj104.read_programs(raw_dir)
    assert rebuilt["report"] == original["report"]
    assert [(e["id"], e["text"]) for e in rebuilt["examples"]] == [
        (e["id"], e["text"]) for e in original["examples"]
    ]
    # The second time the cached rebuild is used: no parquet file is needed.
    monkeypatch.setenv(raw.MIRROR_ENV, (tmp_path / "nowhere").as_uri())
    assert poj104.fetch_archive(tmp_path / "empty") == tmp_path / "cache" / poj104.REBUILT


def test_a_changed_program_fails_the_content_check(codexglue_mirror, tmp_path):
    import pyarrow.parquet as pq

    files = [codexglue_mirror / f.relpath for f in poj104.CODEXGLUE_PARQUET]
    table = pq.read_table(files[0]).to_pydict()
    table["code"][0] += "\n// changed"
    import pyarrow as pa

    pq.write_table(pa.table(table), tmp_path / "train.parquet")
    with pytest.raises(poj104.Poj104FormatError, match="not the 393e92fb"):
        poj104.archive_from_codexglue([tmp_path / "train.parquet", *files[1:]], tmp_path / "x")
    assert not (tmp_path / "x").exists()
