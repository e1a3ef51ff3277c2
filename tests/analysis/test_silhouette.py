"""The silhouette score: equal to scikit-learn's, blocked, and strict about its input."""

import numpy as np
import pytest
from sklearn.metrics import silhouette_samples as sklearn_samples
from sklearn.metrics import silhouette_score as sklearn_score

from codeprop.analysis import silhouette


@pytest.mark.parametrize("metric", silhouette.METRICS)
@pytest.mark.parametrize("block", [1, 37, 1000])
def test_equals_sklearn_on_random_embeddings_for_any_block(metric, block):
    rng = np.random.default_rng(block)
    x = rng.normal(size=(300, 16))
    labels = rng.choice(["a", "b", "c", "d"], 300)
    x[labels == "b"] += 0.8
    ours = silhouette.silhouette_samples(x, labels, metric, block)
    np.testing.assert_allclose(ours, sklearn_samples(x, labels, metric=metric), atol=1e-9)
    assert abs(silhouette.silhouette_score(x, labels, metric, block) - sklearn_score(
        x, labels, metric=metric)) < 1e-6  # fmt: skip


def test_equals_sklearn_on_real_embeddings_with_duplicate_rows(devmap_probe_run):
    # devmap rows that share a kernel share an embedding: distances of exactly 0.
    workdir, _ = devmap_probe_run
    saved = np.load(workdir / "embeddings.npz")
    tested = saved["test_fold"] >= 0
    x, labels = saved["embeddings"][tested], saved["labels"][tested]
    assert len(np.unique(x, axis=0)) < len(x)
    for metric in silhouette.METRICS:
        expected = sklearn_score(x, labels, metric=metric)
        assert abs(silhouette.silhouette_score(x, labels, metric, block=16) - expected) < 1e-6


def test_a_sample_alone_in_its_label_scores_zero():
    x = np.array([[0.0], [0.1], [5.0], [5.2], [9.0]])
    scores = silhouette.silhouette_samples(x, [0, 0, 1, 1, 2])
    assert scores[4] == 0.0 and (scores[:4] > 0.9).all()


@pytest.mark.parametrize(
    "x, labels, message",
    [
        (np.zeros((4, 2)), [0, 1, 0], "4 embeddings but 3 labels"),
        (np.zeros((4, 2)), [1, 1, 1, 1], "needs 2 to N-1 labels; got 1"),
        (np.array([[0.0, np.nan], [1, 1], [2, 2]]), [0, 1, 1], "1 of 3 embeddings hold NaN"),
        (np.zeros(4), [0, 1, 0, 1], "must be \\[N, D\\]"),
    ],
)
def test_bad_input_is_named(x, labels, message):
    with pytest.raises(ValueError, match=message):
        silhouette.silhouette_score(x, labels)
