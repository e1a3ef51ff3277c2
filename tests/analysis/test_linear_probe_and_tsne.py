"""The linear probe and t-SNE maps."""

import numpy as np

from codeprop.analysis import linear_probe, tsne
from codeprop.data import splits


def _blobs(n=200, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    centres = rng.normal(scale=6.0, size=(3, dim))
    return centres[labels] + rng.normal(size=(n, dim)), labels


def test_the_probe_reads_separable_embeddings_and_not_noise():
    x, labels = _blobs()
    folds = splits.kfold(labels, k=5, seed=0)
    result = linear_probe.linear_probe(x, labels, folds)
    assert result["accuracy"] == 1.0 and result["pooled_accuracy"] == 1.0
    assert [f["test"] for f in result["folds"]] == [len(f["test"]) for f in folds]
    noise = np.random.default_rng(1).normal(size=x.shape)
    assert linear_probe.linear_probe(noise, labels, folds)["accuracy"] < 0.6


def test_the_probe_is_deterministic():
    x, labels = _blobs(seed=3)
    x += np.random.default_rng(4).normal(scale=6.0, size=x.shape)  # overlapping classes
    folds = splits.kfold(labels, k=5, seed=0)
    assert linear_probe.linear_probe(x, labels, folds) == linear_probe.linear_probe(
        x, labels, folds
    )


def test_tsne_keeps_separated_groups_apart_and_repeats_with_its_seed():
    x, labels = _blobs(n=150)
    xy = tsne.tsne(x, labels, seed=0)
    assert xy.shape == (150, 2)
    np.testing.assert_array_equal(xy, tsne.tsne(x, labels, seed=0))
    # Every point's nearest neighbour in the map has its label.
    distances = ((xy[:, None] - xy[None]) ** 2).sum(-1)
    np.fill_diagonal(distances, np.inf)
    assert (labels[distances.argmin(1)] == labels).all()
