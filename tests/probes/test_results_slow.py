"""Long runs that back RESULTS.md (not part of CI): ``pytest -m slow``."""

import pytest

from codeprop.models import gnn, rgcn
from codeprop.probes import graph_probe
from codeprop.train import classifier


@pytest.mark.slow
@pytest.mark.parametrize(
    ("benchmark", "epochs", "aux", "at_least"),
    [
        ("devmap/amd", 60, False, 0.66),  # RESULTS.md: 69.9 ± 3.0
        ("devmap/nvidia", 50, False, 0.74),  # RESULTS.md: 78.2 ± 4.5
        ("devmap/amd", 60, True, 0.77),  # RESULTS.md: 80.3 ± 4.4
    ],
)
def test_devmap_ten_fold(
    raw_dir, tfds_dir, tmp_path, monkeypatch, benchmark, epochs, aux, at_least
):
    monkeypatch.setenv("CODEPROP_TFDS_DIR", str(tfds_dir))
    results = graph_probe.run_graph_probe(
        workdir=tmp_path,
        benchmark=benchmark,
        model=gnn.GCNConfig(hidden_dim=32, embed_dim=36),
        train=classifier.TrainConfig(epochs=epochs, batch_size=64, learning_rate=0.01),
        aux_inputs=aux,
        raw_dir=str(raw_dir),
    )
    assert results["num_folds_run"] == 10
    assert results["aggregate"]["accuracy"]["mean"] >= at_least


@pytest.mark.slow
@pytest.mark.parametrize(
    ("benchmark", "node_texts", "at_least"),
    [
        ("devmap/amd", "text", 0.82),  # RESULTS.md: 85.4 ± 4.2
        ("devmap/nvidia", "text", 0.82),  # RESULTS.md: 85.4 ± 3.6
        ("devmap/amd", "statement", 0.85),  # RESULTS.md: 87.6 ± 4.8
        ("devmap/nvidia", "statement", 0.82),  # RESULTS.md: 85.1 ± 4.9
    ],
)
def test_devmap_programl_ten_fold(
    raw_dir, tfds_dir, tmp_path, monkeypatch, benchmark, node_texts, at_least
):
    monkeypatch.setenv("CODEPROP_TFDS_DIR", str(tfds_dir))
    results = graph_probe.run_graph_probe(
        workdir=tmp_path,
        benchmark=benchmark,
        model=rgcn.RGCNConfig(hidden_dim=32, embed_dim=64, num_layers=1),
        train=classifier.TrainConfig(epochs=100, batch_size=64, learning_rate=0.01),
        representation="programl",
        aux_inputs=True,
        node_texts=node_texts,
        vocab_min_count=5 if node_texts == "statement" else 1,
        raw_dir=str(raw_dir),
    )
    assert results["num_folds_run"] == 10
    assert results["data"]["graphs"]["examples_without_graph"] == 0
    assert results["aggregate"]["accuracy"]["mean"] >= at_least
