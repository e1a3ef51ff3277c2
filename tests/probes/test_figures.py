"""Figures of probe results: what each draws, counted."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib import patches  # noqa: E402

from codeprop.probes import figures  # noqa: E402


def _results(benchmark="devmap/amd"):
    folds = [{"fold": i, "accuracy": a} for i, a in enumerate((0.7, 0.8, 0.75))]
    return {"benchmark": benchmark, "representation": "ast", "model": "GCN", "folds": folds}


def test_fold_accuracies_draws_a_bar_per_fold_and_labelled_references():
    fig = figures.fold_accuracies(_results())
    (ax,) = fig.axes
    bars = [p for p in ax.patches if isinstance(p, patches.Rectangle)]
    assert [round(b.get_height(), 1) for b in bars] == [70.0, 80.0, 75.0]
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["mean 75.0", "ProGraML (published)", "Static mapping (published)"]
    assert [line.get_ydata()[0] for line in ax.lines] == [75.0, 86.6, 58.8]
    poj = figures.fold_accuracies(_results("poj104")).axes[0]
    assert poj.get_legend_handles_labels()[1] == ["mean 75.0", "ProGraML (published)"]


def test_embedding_scatter_projects_the_tested_rows_on_their_principal_axes():
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(50, 6)) * np.array([5.0, 1, 1, 1, 1, 0.1])
    embeddings[[3, 7]] = np.nan  # never tested
    labels = rng.integers(0, 2, 50)
    xy = figures.principal_components(embeddings[~np.isnan(embeddings).any(1)])
    assert xy.shape == (48, 2) and xy[:, 0].var() > 10 * xy[:, 1].var()
    fig = figures.embedding_scatter(embeddings, labels)
    (points,) = fig.axes[0].collections
    assert points.get_offsets().shape == (48, 2)
    assert "48 tested examples" in fig.axes[0].get_title()


def test_training_curves_plot_every_epoch():
    history = [
        {"epoch": e, "train_loss": 1 / e, "validation_loss": 1.2 / e, "validation_accuracy": 0.5}
        for e in range(1, 6)
    ]
    fig = figures.training_curves(history)
    loss, accuracy = fig.axes
    assert [len(line.get_xdata()) for line in loss.lines] == [5, 5]
    assert list(accuracy.lines[0].get_ydata()) == [50.0] * 5
