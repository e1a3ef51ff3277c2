"""The grid search: every point run, the choice made on validation accuracy alone."""

import json

import pytest

from codeprop.recipes import sweep

from conftest import REPO


def test_grid_points_and_names():
    points = sweep.grid_points({"LEARNING_RATE": [0.1, 0.01], "gnn.GCNConfig.hidden_dim": [8]})
    assert points == [
        {"LEARNING_RATE": 0.1, "gnn.GCNConfig.hidden_dim": 8},
        {"LEARNING_RATE": 0.01, "gnn.GCNConfig.hidden_dim": 8},
    ]
    assert sweep.point_name(points[0]) == "LEARNING_RATE=0.1, hidden_dim=8"
    folds = [{"best_validation_accuracy": 0.5}, {"best_validation_accuracy": 0.75}]
    assert sweep.validation_score({"folds": folds}) == 0.625


def test_a_tie_in_the_last_bits_goes_to_the_first_point():
    points = [
        {"name": "number_width=0", "validation_accuracy": 0.9180327868852458},
        {"name": "number_width=12", "validation_accuracy": 0.918032786885246},
        {"name": "worse", "validation_accuracy": 0.9},
    ]
    assert sweep.choose(points)["name"] == "number_width=0"
    assert sweep.choose(points[1:])["name"] == "number_width=12"


def test_sweep_chooses_on_validation_and_shows_one_test_accuracy(raw_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("CODEPROP_DATA_DIR", str(raw_dir))
    result = sweep.run_sweep(
        workdir=tmp_path,
        base=["gin/runs/features_probe.gin", "BENCHMARK = 'devmap/amd'", "PROTOCOL = 'kfold'"],
        grid={"features_probe.run_features_probe.features": ["ast_node_types", "tokens"]},
        bindings=["MAX_FOLDS = 2"],
    )
    points = result["points"]
    assert [p["name"] for p in points] == ["features=ast_node_types", "features=tokens"]
    assert points[1]["bindings"] == [
        "features_probe.run_features_probe.features = 'tokens'",
        "MAX_FOLDS = 2",
    ]
    best = max(points, key=lambda p: p["validation_accuracy"])
    chosen = result["chosen"]
    assert chosen["name"] == best["name"]
    saved = json.loads((tmp_path / "arms" / "features_tokens" / "results.json").read_text())
    folds = [f["best_validation_accuracy"] for f in saved["folds"]]
    assert points[1]["validation_accuracy"] == pytest.approx(sum(folds) / 2)
    report = (tmp_path / "sweep.md").read_text()
    assert (
        report.count("| **yes** |") == 1 and f"test {100 * chosen['test_accuracy']:.1f}" in report
    )
    # Only the chosen point's test accuracy is in the report.
    other = next(p for p in points if p["name"] != chosen["name"])
    other_results = json.loads(
        (tmp_path / "arms" / other["name"].replace("=", "_") / "results.json").read_text()
    )
    other_test = f"{100 * other_results['aggregate']['accuracy']['mean']:.1f}"
    assert (
        f"test {other_test}" not in report or other_test == f"{100 * chosen['test_accuracy']:.1f}"
    )
