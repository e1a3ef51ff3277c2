"""The command line end to end: a one-fold, two-epoch devmap run through gin, and the
tools it dispatches."""

import json
import os
import subprocess
import sys

import numpy as np

from conftest import REPO


def test_cli_smoke_run(raw_dir, tfds_dir, tmp_path):
    workdir = tmp_path / "run"
    env = {**os.environ, "CODEPROP_DATA_DIR": str(raw_dir), "CODEPROP_TFDS_DIR": str(tfds_dir)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "codeprop.main",
            "--gin_file=gin/experiments/devmap_amd_ast_gcn_aux.gin",
            f"--workdir={workdir}",
            "--gin_bindings=EPOCHS = 2",
            "--gin_bindings=graph_probe.run_graph_probe.max_folds = 1",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "devmap/amd  AST + GCN" in proc.stdout
    # A person reads the output: a line per fold and the table; no per-epoch log lines,
    # no TensorFlow or CUDA start-up notices.
    lines = (proc.stdout + proc.stderr).splitlines()
    assert sum(line.startswith("fold 1/1  done in") for line in lines) == 1, lines
    assert len(lines) <= 18, lines  # with tfds's two lines when it prepares the dataset
    assert not any(word in proc.stderr for word in ("cuda", "oneDNN", "absl::InitializeLog"))
    results = json.loads((workdir / "results.json").read_text())
    assert results["num_folds_run"] == 1
    (fold,) = results["folds"]
    assert (fold["train"], fold["validation"], fold["test"]) == (551, 61, 68)
    assert 0.0 <= fold["accuracy"] <= 1.0 and fold["best_epoch"] in (1, 2)
    assert results["settings"]["aux_inputs"] is True
    assert results["data"]["graphs"]["examples"] == 680
    assert results["data"]["graphs"]["distinct_sources"] == 247
    assert "speedup_mean" in results["aggregate"]
    assert "ProGraML (published) | 86.6" in (workdir / "results.md").read_text()
    assert "EPOCHS = 2" in (workdir / "config.gin").read_text()
    assert "run_graph_probe" in (workdir / "operative_config.gin").read_text()
    emb = np.load(workdir / "embeddings.npz")
    assert emb["embeddings"].shape == (680, 36) and (emb["test_fold"] == 0).sum() == 68


def test_tools_are_dispatched_and_list_their_flags(capsys):
    from codeprop import main

    for tool in main.TOOLS:
        try:
            main.cli(["codeprop.main", tool, "--help"])
        except SystemExit as stop:
            assert stop.code == 0
        assert "python -m codeprop" in capsys.readouterr().out
