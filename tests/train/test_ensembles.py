"""Ensembles over seeds: the members' probabilities averaged, each member exactly the
single model of its seed, and a stopped ensemble resuming in the member it stopped in."""

import dataclasses
import json

import jax
import numpy as np
import pytest
from test_classifier import _twelve_rows

from codeprop import main
from codeprop.train import classifier, ensembles, epoch_checkpoints, preemption

from conftest import REPO


def test_combine_averages_probabilities_and_sums_parameters():
    def member(probs, accuracy, epoch, embedding):
        return {"test_logits": np.log(probs), "num_params": 10, "best_epoch": epoch,
                "best_validation_accuracy": accuracy, "test_embeddings": embedding}  # fmt: skip

    a = member([[0.9, 0.1], [0.2, 0.8]], 0.5, 3, np.ones((2, 3)))
    b = member([[0.5, 0.5], [0.6, 0.4]], 0.7, 5, np.zeros((2, 3)))
    out = ensembles.combine([a, b])
    np.testing.assert_allclose(np.exp(out["test_logits"]), [[0.7, 0.3], [0.4, 0.6]], rtol=1e-6)
    assert out["num_params"] == 20 and out["best_epoch"] == 3
    assert out["best_validation_accuracy"] == pytest.approx(0.6)
    assert out["test_embeddings"].shape == (2, 6)
    assert [m["best_epoch"] for m in out["members"]] == [3, 5]


def test_members_are_the_single_models_of_their_seeds_and_resume(tmp_path):
    model, data, split = _twelve_rows()
    config = classifier.TrainConfig(epochs=4, batch_size=3, learning_rate=0.01, seed=7)
    singles = [classifier.fit(model, data, split, dataclasses.replace(config, seed=s))
               for s in (7, 8)]  # fmt: skip
    whole = ensembles.fit_members(classifier.fit, model, data, split, config, 2)
    np.testing.assert_allclose(
        whole["test_logits"], ensembles.combine(singles)["test_logits"], rtol=0, atol=0
    )
    # Stopped in the second member's third epoch, then resumed: the same ensemble.
    saves = epoch_checkpoints.EpochCheckpoints(tmp_path / "fold", "k", every_seconds=0)
    epochs = []
    with pytest.raises(preemption.Preempted):
        ensembles.fit_members(
            classifier.fit, model, data, split, config, 2, checkpoints=saves,
            progress=lambda r: epochs.append(r["epoch"]), stop=lambda: len(epochs) == 7,
        )  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "fold").iterdir()) == ["member_0", "member_1"]
    resumed = ensembles.fit_members(
        classifier.fit, model, data, split, config, 2, checkpoints=saves
    )
    np.testing.assert_array_equal(resumed["test_logits"], whole["test_logits"])
    for x, y in zip(jax.tree.leaves(resumed["params"]), jax.tree.leaves(whole["params"])):
        np.testing.assert_array_equal(x, y)


def test_a_graph_probe_ensemble_end_to_end(raw_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("CODEPROP_DATA_DIR", str(raw_dir))
    bindings = ["EPOCHS = 2", "graph_probe.run_graph_probe.max_folds = 1",
                "graph_probe.run_graph_probe.ensemble = 2"]  # fmt: skip
    results = main.run(["gin/experiments/devmap_amd_ast_gcn.gin"], bindings, str(tmp_path))
    (fold,) = results["folds"]
    assert results["model"] == "GCN, ensemble of 2 seeds"
    assert [m["seed_offset"] for m in fold["members"]] == [0, 1]
    assert results["settings"]["ensemble"] == 2
    with np.load(tmp_path / "embeddings.npz") as saved:
        assert saved["embeddings"].shape == (680, 72)  # two members' 36 side by side
    assert json.loads(json.dumps(fold))["num_params"] % 2 == 0  # two models of one size
