"""Figures of probe results (matplotlib): accuracy per fold, embeddings, training curves.

Each function draws on a new pyplot figure (so a notebook shows it inline when the cell
ends) and returns it (``fig.savefig(path)`` writes a PNG). Published numbers of other
systems are drawn as lines labelled "(published)", never as bars of ours.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from codeprop.probes import references


def fold_accuracies(results: dict, published: tuple[str, ...] = ("ProGraML",)):
    """Test accuracy of every fold (bars), their mean, and published references.

    Args:
      results: the dict `codeprop.probes.protocol.run` returns (or its results.json).
      published: systems of `codeprop.probes.references` drawn as lines; the static
        mapping is added on devmap.

    Returns:
      The figure: one bar per fold.
    """
    folds = results["folds"]
    fig, ax = plt.subplots(figsize=(6, 3))
    accuracies = [100 * f["accuracy"] for f in folds]
    ax.bar([str(f["fold"] + 1) for f in folds], accuracies, color="tab:blue")
    ax.axhline(np.mean(accuracies), color="tab:blue", label=f"mean {np.mean(accuracies):.1f}")
    known = references.for_benchmark(results["benchmark"])
    names = (
        (*published, "Static mapping") if results["benchmark"].startswith("devmap") else published
    )
    for name, style in zip(names, (":", "--", "-."), strict=False):
        if name in known:
            ax.axhline(known[name], color="gray", linestyle=style, label=f"{name} (published)")
    ax.set_xlabel("fold")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(
        f"{results['benchmark']}: {results['representation'].upper()} + {results['model']}"
    )
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def principal_components(embeddings: np.ndarray, k: int = 2) -> np.ndarray:
    """[n, k] coordinates of the rows on their first `k` principal axes.

    Args:
      embeddings: [n, D] rows (NaN rows must be removed first).
    """
    centred = embeddings - embeddings.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)  # vt: [D', D]
    return centred @ vt[:k].T


def embedding_scatter(embeddings: np.ndarray, labels: np.ndarray, title: str = "embeddings"):
    """The tested examples' embeddings on their first two principal components, coloured
    by label (t-SNE and silhouette scores are the comparison report's).

    Args:
      embeddings: [N, D], NaN rows for examples never tested (as in embeddings.npz).
      labels: [N] classes.

    Returns:
      The figure: one point per tested example.
    """
    tested = ~np.isnan(embeddings).any(axis=1)
    xy = principal_components(embeddings[tested].astype(np.float64))
    fig, ax = plt.subplots(figsize=(4.5, 4))
    points = ax.scatter(xy[:, 0], xy[:, 1], c=labels[tested], s=8, cmap="coolwarm", alpha=0.8)
    if len(np.unique(labels)) <= 10:
        ax.legend(*points.legend_elements(), title="label", fontsize=8)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(f"{title} ({tested.sum()} tested examples)")
    fig.tight_layout()
    return fig


def training_curves(history: list[dict]):
    """Loss per epoch (training, validation) and validation accuracy, from the history
    `codeprop.train.classifier.fit` returns.

    Returns:
      The figure: a loss axis and, with validation data, an accuracy axis.
    """
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(epochs, [h["train_loss"] for h in history], label="training loss")
    if "validation_loss" in history[0]:
        ax.plot(epochs, [h["validation_loss"] for h in history], label="validation loss")
        accuracy = ax.twinx()
        accuracy.plot(
            epochs,
            [100 * h["validation_accuracy"] for h in history],
            color="tab:green",
            linestyle=":",
            label="validation accuracy",
        )
        accuracy.set_ylabel("validation accuracy (%)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig
