"""The linear head on frozen features: choice on validation rows, logits, bad input."""

import numpy as np
import pytest

from codeprop.train import linear_head

from conftest import halves_and_quarters


def _blobs(n=120, classes=3, dim=5, spread=1.0, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    centres = rng.normal(scale=3.0, size=(classes, dim))
    return centres[labels] + rng.normal(scale=spread, size=(n, dim)), labels


_split = halves_and_quarters


def test_the_strength_is_chosen_on_validation_rows_only():
    x, labels = _blobs(spread=3.0)
    split = _split(len(x))
    result = linear_head.fit_linear_head(x, labels, split)
    accuracies = [h["validation_accuracy"] for h in result["history"]]
    assert [h["regularisation"] for h in result["history"]] == list(linear_head.REGULARISATIONS)
    assert result["validation_accuracy"] == max(accuracies)
    assert (
        result["regularisation"] == linear_head.REGULARISATIONS[accuracies.index(max(accuracies))]
    )
    # Scrambling the test labels changes nothing: they are never looked at.
    scrambled = labels.copy()
    scrambled[split["test"]] = np.roll(scrambled[split["test"]], 1)
    again = linear_head.fit_linear_head(x, scrambled, split)
    assert again["regularisation"] == result["regularisation"]
    np.testing.assert_array_equal(again["test_logits"], result["test_logits"])
    assert result["test_logits"].shape == (30, 3) and result["num_params"] == 3 * 5 + 3


def test_binary_logits_and_classes_missing_from_training():
    x, labels = _blobs(classes=2)
    result = linear_head.fit_linear_head(x, labels, _split(len(x)))
    assert result["test_logits"].shape == (30, 2) and result["num_params"] == 5 + 1
    assert (result["test_logits"].argmax(-1) == labels[90:]).mean() > 0.9
    labels3 = labels.copy()
    labels3[90:] = 2  # class 2 only among the test rows: its logit is -inf
    result = linear_head.fit_linear_head(x, labels3, _split(len(x)))
    assert result["test_logits"].shape == (30, 3) and np.isneginf(result["test_logits"][:, 2]).all()


def test_without_validation_rows_the_middle_strength_is_used():
    x, labels = _blobs()
    split = _split(len(x)) | {"validation": np.array([], np.int64)}
    result = linear_head.fit_linear_head(x, labels, split)
    assert result["regularisation"] == 1.0 and np.isnan(result["validation_accuracy"])


def test_bad_features_are_named_and_rows_outside_the_split_may_be_nan():
    x, labels = _blobs()
    split = _split(100)
    x[110] = np.nan  # outside the split
    assert linear_head.fit_linear_head(x, labels, split)["test_logits"].shape == (25, 3)
    x[3] = np.inf
    with pytest.raises(ValueError, match="1 of the split's 100 feature rows hold NaN"):
        linear_head.fit_linear_head(x, labels, split)
    with pytest.raises(ValueError, match="120 feature rows but 7 labels"):
        linear_head.fit_linear_head(x, labels[:7], split)
    x[3] = 0.0
    with pytest.raises(ValueError, match="fewer than two classes"):
        linear_head.fit_linear_head(x, np.zeros_like(labels), split)


def test_concatenated_positions_index_the_rows():
    split = {"train": np.array([5, 1]), "validation": np.array([7]), "test": np.array([0, 2])}
    rows, local = linear_head.concatenated(split)
    assert rows.tolist() == [5, 1, 7, 0, 2]
    assert {k: rows[v].tolist() for k, v in local.items()} == {
        "train": [5, 1],
        "validation": [7],
        "test": [0, 2],
    }
