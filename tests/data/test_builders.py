import numpy as np

from conftest import run_side_by_side


def test_devmap_tfds(devmap_amd):
    assert devmap_amd.num_classes == 2
    assert len(devmap_amd.examples) == 680
    assert sum(devmap_amd.labels) == 280
    assert [e["row"] for e in devmap_amd.examples] == list(range(680))
    assert devmap_amd.report["rows"] == 680
    ex = devmap_amd.examples[0]
    assert set(ex) >= {
        "source",
        "normalized_source",
        "ir_file",
        "transfer",
        "wgsize",
        "runtime_cpu",
        "runtime_gpu",
        "comp",
        "mem",
        "label",
        "suite",
    }
    assert ex["ir_file"].startswith("kernels_ir/")
    assert ex["source"] and ex["normalized_source"].startswith("__kernel")


def test_devmap_nvidia_tfds(raw_dir, tfds_dir):
    from codeprop.data import benchmarks

    nvidia = benchmarks.load("devmap/nvidia", raw_dir=raw_dir, tfds_dir=tfds_dir)
    assert len(nvidia.examples) == 680 and sum(nvidia.labels) == 387
    assert nvidia.platform == "nvidia"


def test_poj104_tfds(raw_dir, tfds_dir):
    from codeprop.data import benchmarks

    poj = benchmarks.load("poj104", raw_dir=raw_dir, tfds_dir=tfds_dir)
    assert len(poj.examples) == 52_000 and poj.num_classes == 104
    labels = np.array(poj.labels)
    assert np.bincount(labels).tolist() == [500] * 104
    problems = np.array([e["problem"] for e in poj.examples])
    assert np.array_equal(problems, labels + 1)
    # latin-1 text survives the UTF-8 tfds round trip byte for byte.
    assert sum(any(ord(c) > 127 for c in e["text"]) for e in poj.examples) == 248
    assert poj.report["programs"] == 52_000


def test_experiments_side_by_side_prepare_the_data_once(raw_dir, tmp_path):
    # A comparison runs arms in parallel processes: the first prepares the data under a
    # lock, the second waits and reads it (it used to fail renaming tfds's incomplete dir).
    code = (
        "import sys; from codeprop.data import benchmarks; "
        "b = benchmarks.load('devmap/nvidia', raw_dir=sys.argv[1], tfds_dir=sys.argv[2]); "
        "print(len(b.examples), sum(b.labels))"
    )
    outs = run_side_by_side(code, str(raw_dir), str(tmp_path))
    assert [out.splitlines()[-1] for out in outs] == ["680 387"] * 2
    assert sum("Downloading and preparing" in out for out in outs) == 1
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob(".prepare.lock")] == [
        "devmap/nvidia/.prepare.lock"
    ]
