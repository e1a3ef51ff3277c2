"""Figures of a comparison (`codeprop.analysis.comparison.compare`), as the paper's 1-5.

Each function draws a new matplotlib figure and returns it (a notebook shows it inline;
``fig.savefig`` writes a PNG). Published accuracies of other systems are grey hatched
bars labelled "(published)", never drawn as ours. `write_figures` saves all of them.
"""

from __future__ import annotations

import pathlib

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch

COLOURS = {"structured": "tab:blue", "LLM": "tab:orange", "baseline": "tab:gray"}
DEVMAP_CLASSES = ("CPU", "GPU")


def _colour(arm) -> str:
    return COLOURS[arm.kind]


def _kind_legend(ax, published: bool = False) -> None:
    handles = [Patch(color=c, label=k) for k, c in COLOURS.items()]
    if published:
        handles.append(Patch(facecolor="white", edgecolor="gray", hatch="//", label="published"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", ncols=len(handles))


def accuracy_bars(comparison: dict, published: bool = True):
    """Fig. 1: accuracy of every arm (error bar: std over folds) and, hatched, the
    published systems."""
    arms = comparison["arms"]
    names = [a.name for a in arms]
    values = [100 * a.metrics["accuracy"] for a in arms]
    errors = [100 * a.metrics["accuracy_std"] for a in arms]
    fig, ax = plt.subplots(figsize=(max(5, 0.8 * (len(names) + 4)), 3.8))
    ax.bar(names, values, yerr=errors, color=[_colour(a) for a in arms], capsize=3)
    if published:
        refs = comparison["published"]
        ax.bar(
            [f"{k} (published)" for k in refs],
            list(refs.values()),
            color="white",
            edgecolor="gray",
            hatch="//",
        )
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 110)
    _kind_legend(ax, published)
    ax.set_title(f"{comparison['benchmark']}: accuracy")
    ax.tick_params(axis="x", labelrotation=60, labelsize=8)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    fig.tight_layout()
    return fig


def accuracy_per_parameter(comparison: dict):
    """Fig. 2: accuracy against parameters, log axis; upper left is efficient."""
    arms = comparison["arms"]
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for arm in arms:
        x, y = arm.metrics["num_params"], 100 * arm.metrics["accuracy"]
        ax.scatter([x], [y], color=_colour(arm), marker="o" if arm.trained else "s")
        ax.annotate(arm.name, (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    if arms:  # Room for the names right of the largest model.
        sizes = [max(a.metrics["num_params"], 1) for a in arms]
        ax.set_xlim(min(sizes) / 3, max(sizes) * 60)
    handles = [Patch(color=c, label=k) for k, c in COLOURS.items()]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_xlabel("parameters")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{comparison['benchmark']}: accuracy vs parameters (squares: frozen encoders)")
    fig.tight_layout()
    return fig


def silhouette_bars(comparison: dict):
    """Fig. 3: silhouette of every arm (all rows; error bar: std over folds) and, as
    dots, over the test rows alone."""
    arms = comparison["arms"]
    names = [a.name for a in arms]
    fig, ax = plt.subplots(figsize=(max(5, 0.8 * len(names) + 2), 3.8))
    ax.bar(
        names,
        [a.metrics["silhouette"] for a in arms],
        yerr=[a.metrics["silhouette_std"] for a in arms],
        color=[_colour(a) for a in arms],
        capsize=3,
        label="all rows",
    )
    ax.scatter(names, [a.metrics["silhouette_test"] for a in arms], color="k", s=12,
               label="test rows", zorder=3)  # fmt: skip
    ax.axhline(0, color="k", linewidth=0.8)
    ax.set_ylabel(f"silhouette ({comparison['metric']})")
    ax.set_title(f"{comparison['benchmark']}: silhouette of the embeddings")
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", labelrotation=60, labelsize=8)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    fig.tight_layout()
    return fig


def tsne_panels(comparison: dict, columns: int = 4):
    """Figs. 4-5: one t-SNE panel per arm, points coloured by label (devmap: CPU/GPU)."""
    arms = [a for a in comparison["arms"] if a.tsne is not None]
    rows = max(1, -(-len(arms) // columns))
    cols = min(columns, max(len(arms), 1))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    devmap = comparison["benchmark"].startswith("devmap")
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, arm in zip(axes.flat, arms, strict=False):
        xy, labels = arm.tsne
        classes = np.unique(labels)
        cmap = plt.get_cmap("coolwarm" if devmap else "tab10")
        for i, c in enumerate(classes):
            name = DEVMAP_CLASSES[c] if devmap else f"class {c + 1}"
            colour = cmap(i / max(len(classes) - 1, 1)) if devmap else cmap(i)
            points = xy[labels == c]
            ax.scatter(points[:, 0], points[:, 1], s=4, color=colour, label=name, alpha=0.8)
        ax.set_title(f"{arm.name}\nsilhouette {arm.metrics['silhouette']:+.3f}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_axis_on()
    if arms:
        axes.flat[0].legend(fontsize=7, markerscale=2)
    fig.suptitle(f"{comparison['benchmark']}: t-SNE of the embeddings (first fold's model)")
    fig.tight_layout()
    return fig


def write_figures(comparison: dict, directory) -> dict[str, str]:
    """Saves the four figures as PNGs in `directory`; returns title -> file name."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    drawn = {
        "accuracy": ("accuracy.png", accuracy_bars),
        "accuracy and parameters": ("accuracy_per_parameter.png", accuracy_per_parameter),
        "silhouette": ("silhouette.png", silhouette_bars),
        "t-SNE": ("tsne.png", tsne_panels),
    }
    out = {}
    for title, (name, draw) in drawn.items():
        fig = draw(comparison)
        fig.savefig(directory / name, dpi=120)
        plt.close(fig)
        out[title] = name
    return out
