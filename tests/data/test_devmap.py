import pytest

from codeprop.data import devmap


@pytest.mark.parametrize(("platform", "gpu"), [("amd", 280), ("nvidia", 387)])
def test_counts_and_labels(raw_dir, platform, gpu):
    data = devmap.read_platform(platform, raw_dir)
    examples = data["examples"]
    assert len(examples) == 680
    assert sum(e["label"] for e in examples) == gpu
    assert data["report"]["rows_without_original_source"] == 0
    # Six AMD SDK originals carry a latin-1 copyright sign: decoded losslessly and reported.
    latin1 = data["report"]["files_not_utf8_decoded_as_latin1"]
    assert len(latin1) == 6 and all("amd-app-sdk" in f for f in latin1)
    assert len({e["ir_file"] for e in examples}) == 669
    assert all(e["ir"].lstrip().startswith("; ModuleID") for e in examples[:5])
    first = examples[0]
    assert first["benchmark"] == "amd-app-sdk-3.0-BinomialOption-binomial_options"
    assert first["ir_file"] == "kernels_ir/amd-app-sdk-3.0-BinomialOption-binomial_options.ll"
    assert first["suite"] == "AMD SDK"
    assert first["normalized_source"].startswith("__kernel void A(")


def test_ncc_name_rule():
    available = {"k-A.ll", "k.ll", "j_B.ll"}
    assert devmap.ncc_name("k", "A", available, ".ll") == "k-A.ll"
    assert devmap.ncc_name("k", "B", available, ".ll") == "k.ll"
    assert devmap.ncc_name("j", "B", available, ".ll") == "j_B.ll"
    assert devmap.ncc_name("x", "B", available, ".ll") is None


def _csv_with(raw_dir, tmp_path, edit):
    lines = (raw_dir / "devmap" / "cgo17-amd.csv").read_text().split("\n")
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(edit(lines)))
    return path


def test_malformed_value_names_file_and_line(raw_dir, tmp_path):
    def edit(lines):
        lines[1] = lines[1].replace(",98,8,", ",ninety,8,", 1)
        return lines

    with pytest.raises(devmap.DevmapFormatError, match=r"bad\.csv:2: malformed value"):
        devmap.read_csv(_csv_with(raw_dir, tmp_path, edit))


def test_oracle_disagreement_is_an_error(raw_dir, tmp_path):
    def edit(lines):
        lines[1] = lines[1].replace(",GPU,", ",CPU,", 1)
        return lines

    with pytest.raises(devmap.DevmapFormatError, match="oracle column says CPU"):
        devmap.read_csv(_csv_with(raw_dir, tmp_path, edit))


def test_wrong_header_is_an_error(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(devmap.DevmapFormatError, match="x.csv: header"):
        devmap.read_csv(path)


def test_speedup_over_static():
    examples = [
        {"runtime_cpu": 2.0, "runtime_gpu": 1.0},
        {"runtime_cpu": 1.0, "runtime_gpu": 4.0},
    ]
    # AMD's static mapping is CPU: choosing GPU for the first halves its runtime.
    out = devmap.speedup_over_static([1, 0], examples, "amd")
    assert out["speedup_mean"] == pytest.approx(1.5)
    assert out["speedup_geomean"] == pytest.approx(2**0.5)
    # NVIDIA's static mapping is GPU: choosing CPU for the second is 4x faster.
    assert devmap.speedup_over_static([1, 0], examples, "nvidia")["speedup_mean"] == pytest.approx(
        2.5
    )


def test_decode_source():
    assert devmap.decode_source("é".encode()) == ("é", False)
    assert devmap.decode_source(b"\xa9 AMD") == ("\xa9 AMD", True)
