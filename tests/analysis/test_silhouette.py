"""The silhouette score: equal to scikit-learn's, blocked, and strict about its input."""

import numpy as np
import pytest
from sklearn.metrics import silhouette_samples as sklearn_samples
from sklearn.metrics import silhouette_score as sklearn_score

from codeprop.analysis import silhouette

# Per-sample tolerance of each dtype; the score is within 1e-6 of scikit-learn's in both.
# (scikit-learn's own distance between identical rows off the origin is about 3e-7, not 0.)
SAMPLE_ATOL = {"float64": 1e-8, "float32": 1e-5}


@pytest.mark.parametrize("dtype", silhouette.DTYPES)
@pytest.mark.parametrize("metric", silhouette.METRICS)
@pytest.mark.parametrize("block", [1, 37, 1000])
def test_equals_sklearn_on_random_embeddings_for_any_block(metric, block, dtype):
    rng = np.random.default_rng(block)
    x = rng.normal(size=(300, 16)) + 5.0  # off the origin: float32 must centre the rows
    labels = rng.choice(["a", "b", "c", "d"], 300)
    x[labels == "b"] += 0.8
    x[:10] = x[10:20]  # identical rows: distance exactly 0
    ours = silhouette.silhouette_samples(x, labels, metric, block, dtype)
    expected = sklearn_samples(x, labels, metric=metric)
    np.testing.assert_allclose(ours, expected, atol=SAMPLE_ATOL[dtype])
    assert abs(silhouette.silhouette_score(x, labels, metric, block, dtype) - sklearn_score(
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
        for dtype in silhouette.DTYPES:
            ours = silhouette.silhouette_score(x, labels, metric, 16, dtype)
            assert abs(ours - expected) < 1e-6, (metric, dtype)


def test_identical_rows_are_exactly_zero_apart_in_float32():
    # Two far-off rows alone in their label: a = 0, so s = 1 exactly (float32's expansion
    # would leave about 1e-4 of the norm); the other label's two rows differ.
    rng = np.random.default_rng(0)
    v = rng.normal(size=64) * 100
    x = np.stack([v, v, v + 1.0, v - 1.0])
    scores = silhouette.silhouette_samples(x, [0, 0, 1, 1])
    assert scores[0] == scores[1] == 1.0
    np.testing.assert_allclose(scores, sklearn_samples(x, [0, 0, 1, 1]), atol=1e-6)


def test_duplicate_pairs_pairs_only_identical_rows():
    x = np.array([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0], [1.0, 2.0], [2.0, 1.0]])
    i, j = silhouette.duplicate_pairs(x)
    assert sorted(zip(i.tolist(), j.tolist())) == [(0, 2), (0, 3), (2, 0), (2, 3), (3, 0), (3, 2)]
    assert [len(a) for a in silhouette.duplicate_pairs(np.eye(3))] == [0, 0]


def test_many_identical_rows_fall_back_to_float64():
    # 200 copies of one row and 200 of another: 79,600 pairs, over 64 per row.
    x = np.repeat(np.array([[0.0, 0.0], [3.0, 4.0]]), 200, axis=0)
    x[::7] += 1e-3
    labels = np.arange(400) % 2
    sums32 = silhouette.label_distance_sums(x, labels, "euclidean", 64, "float32")
    sums64 = silhouette.label_distance_sums(x, labels, "euclidean", 64, "float64")
    np.testing.assert_array_equal(sums32, sums64)


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


def test_unknown_dtype_is_named():
    with pytest.raises(ValueError, match="dtype must be one of"):
        silhouette.silhouette_score(np.eye(3), [0, 1, 1], dtype="float16")
