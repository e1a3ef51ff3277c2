import numpy as np
import pytest

from codeprop.graphs import ast
from codeprop.models import gnn
from codeprop.probes import experiment, report


def test_make_splits_protocols():
    labels = np.repeat(np.arange(4), 50)
    assert len(experiment.make_splits(labels, "kfold", 5, seed=0)) == 5
    (holdout,) = experiment.make_splits(labels, "holdout", 10, seed=0)
    assert [len(holdout[k]) for k in ("train", "validation", "test")] == [160, 20, 20]
    (poj,) = experiment.make_splits(labels, "per_class_3_1_1", 10, seed=0)
    assert [len(poj[k]) for k in ("train", "validation", "test")] == [120, 40, 40]
    with pytest.raises(ValueError, match="unknown protocol"):
        experiment.make_splits(labels, "loo", 10, seed=0)


def test_tree_mode_is_chosen_for_the_ast_tree_only():
    assert experiment.uses_tree(gnn.GCNConfig(edge_types=(ast.CHILD, ast.PARENT)))
    assert not experiment.uses_tree(gnn.GCNConfig(edge_types=(0, 1, 2)))
    g = ast.ast_graph("int f() { return 1; }", "c")
    vocab = ast.NodeTypeVocab.build([g], "c")
    g = vocab.encode(g, vocab.table("c"))
    with_siblings = gnn.GCNConfig(edge_types=(0, 1, 2))
    inputs = experiment.model_inputs(g, with_siblings)
    model = experiment.make_model(with_siblings, [inputs], len(vocab), 2)
    assert not model.tree and not model.symmetric  # Sibling edges are one-way.
    tree_inputs = experiment.model_inputs(g, gnn.GCNConfig())
    assert experiment.make_model(gnn.GCNConfig(), [tree_inputs], len(vocab), 2).tree


def test_aggregate_and_markdown():
    folds = [
        {
            "fold": i,
            "train": 8,
            "validation": 1,
            "test": 10,
            "accuracy": acc,
            "precision": 0.5,
            "recall": 0.5,
            "f1": 0.5,
            "num_params": 100,
            "best_epoch": 1,
            "best_validation_accuracy": 1.0,
        }
        for i, acc in enumerate([0.6, 0.8])
    ]
    agg = report.aggregate(folds)
    assert agg["accuracy"]["mean"] == pytest.approx(0.7)
    assert agg["accuracy"]["std"] == pytest.approx(0.1)
    assert agg["pooled_accuracy"] == pytest.approx(0.7)
    results = {
        "benchmark": "poj104",
        "representation": "ast",
        "model": "GCN",
        "protocol": "per_class_3_1_1",
        "num_folds_run": 2,
        "split_seed": 0,
        "folds": folds,
        "aggregate": agg,
        "data": {"graphs": {"examples": 20}},
    }
    md = report.markdown(results)
    assert "| accuracy (%) | 70.0 ± 10.0 |" in md
    assert "| ProGraML (published) | 96.6 |" in md
    assert "accuracy (%)" in report.terminal(results)
