"""The boosted-trees head: choice on validation rows, what trees fit and a line cannot,
logits, parameter count, bad input."""

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from codeprop.train import boosted_head, linear_head

from conftest import halves_and_quarters


def _thresholds(n=400, seed=0):
    """Two inputs; class 1 where exactly one of them is above 0 (XOR of two thresholds):
    no line separates it, two levels of splits do."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, 2))
    return x, ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(np.int64)


_split = halves_and_quarters


def _noisy(seed):
    """`_thresholds` with noise on the inputs (the settings then differ) and a split."""
    x, labels = _thresholds(seed=seed)
    x = x + np.random.default_rng(seed + 1).normal(scale=0.3, size=x.shape)
    return x, labels, _split(len(x))


def test_trees_fit_thresholds_that_a_linear_head_cannot():
    x, labels = _thresholds()
    split = _split(len(x))
    trees = boosted_head.fit_boosted_head(x, labels, split)
    line = linear_head.fit_linear_head(x, labels, split)
    test = labels[split["test"]]
    assert (trees["test_logits"].argmax(-1) == test).mean() >= 0.95
    assert (line["test_logits"].argmax(-1) == test).mean() < 0.75


def test_the_setting_is_chosen_on_validation_rows_only_and_fits_repeat():
    x, labels = _thresholds(seed=1)
    x = x + np.random.default_rng(2).normal(scale=0.3, size=x.shape)  # settings now differ
    split = _split(len(x))
    result = boosted_head.fit_boosted_head(x, labels, split)
    accuracies = [h["validation_accuracy"] for h in result["history"]]
    assert len(result["history"]) == len(boosted_head.GRID) == 12
    assert result["validation_accuracy"] == max(accuracies)
    first_best = boosted_head.GRID[accuracies.index(max(accuracies))]
    assert result["setting"] == first_best
    scrambled = labels.copy()
    scrambled[split["test"]] = 1 - scrambled[split["test"]]  # never looked at
    again = boosted_head.fit_boosted_head(x, scrambled, split)
    assert again["setting"] == result["setting"]
    np.testing.assert_array_equal(again["test_logits"], result["test_logits"])
    # No early stopping, no feature or bin subsampling: the seed changes nothing.
    reseeded = boosted_head.fit_boosted_head(x, labels, split, seed=7)
    np.testing.assert_array_equal(reseeded["test_logits"], result["test_logits"])


def test_the_trees_are_the_same_with_one_thread_or_several():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, 24))  # wide enough that scikit-learn splits the work
    labels = (x[:, :3].sum(-1) + rng.normal(scale=0.5, size=2000) > 0).astype(np.int64)
    labels[x[:, 3] > 1.2] = 2
    split = _split(len(x))
    setting = ({"learning_rate": 0.1, "max_depth": None, "max_iter": 60},)
    one, three = (
        boosted_head.fit_boosted_head(x, labels, split, setting, threads=t) for t in (1, 3)
    )
    assert one["num_params"] == three["num_params"] > 60 * 3 * 3
    np.testing.assert_array_equal(one["test_logits"], three["test_logits"])
    assert one["validation_accuracy"] == three["validation_accuracy"] > 0.8


def test_logits_classes_and_parameters():
    x, labels = _thresholds()
    one_stump = ({"learning_rate": 0.1, "max_depth": 1, "max_iter": 1},)
    result = boosted_head.fit_boosted_head(x, labels, _split(len(x)), one_stump)
    assert result["num_params"] == 3  # one split and its two leaves
    assert result["test_logits"].shape == (100, 2)
    np.testing.assert_allclose(result["test_logits"][:, 0], -result["test_logits"][:, 1])
    three = labels.copy()
    three[:100] = np.where(x[:100, 0] > 0.5, 2, three[:100])  # a third, in training rows
    three[300:] = np.where(x[300:, 0] > 0.9, 3, three[300:])  # a fourth among test rows
    result = boosted_head.fit_boosted_head(x, three, _split(len(x)), one_stump)
    assert result["test_logits"].shape == (100, 4)
    assert np.isneginf(result["test_logits"][:, 3]).all()
    assert np.isfinite(result["test_logits"][:, :3]).all()
    assert result["num_params"] == 3 * 3  # one stump per class


def test_without_validation_rows_the_first_setting_is_used_and_bad_input_is_named():
    x, labels = _thresholds()
    split = _split(len(x)) | {"validation": np.array([], np.int64)}
    result = boosted_head.fit_boosted_head(x, labels, split)
    assert result["setting"] == boosted_head.GRID[0] and np.isnan(result["validation_accuracy"])
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="1 of the split's 400 feature rows hold NaN"):
        boosted_head.fit_boosted_head(bad, labels, _split(len(x)))
    with pytest.raises(ValueError, match="grid of tree settings is empty"):
        boosted_head.fit_boosted_head(x, labels, _split(len(x)), ())
    with pytest.raises(ValueError, match="fewer than two classes"):
        boosted_head.fit_boosted_head(x, np.zeros(400, np.int64), _split(len(x)))


def _softmax(logits):
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def test_mean_averages_every_settings_probabilities():
    x, labels, split = _noisy(4)
    grid = boosted_head.GRID[:: len(boosted_head.GRID) // 3]  # three settings
    mean = boosted_head.fit_boosted_head(x, labels, split, grid, combine="mean")
    singles = [boosted_head.fit_boosted_head(x, labels, split, (s,)) for s in grid]
    probs = np.mean([_softmax(s["test_logits"]) for s in singles], 0)
    np.testing.assert_allclose(np.exp(mean["test_logits"]), probs, rtol=1e-6)
    assert mean["setting"] == {"combine": "mean"}
    assert mean["num_params"] == sum(s["num_params"] for s in singles)
    assert [h["validation_accuracy"] for h in mean["history"]] == [
        s["validation_accuracy"] for s in singles
    ]
    train, validation = split["train"], split["validation"]
    averaged = np.mean(
        [
            HistGradientBoostingClassifier(**s, early_stopping=False)
            .fit(x[train], labels[train])
            .predict_proba(x[validation])
            for s in grid
        ],
        0,
    )
    expected = float(np.mean(averaged.argmax(-1) == labels[validation]))
    assert mean["validation_accuracy"] == expected > 0.7
    three = labels.copy()
    three[300:] = np.where(x[300:, 0] > 0.9, 2, three[300:])  # a class among test rows only
    unseen = boosted_head.fit_boosted_head(x, three, split, grid, combine="mean")
    assert (
        unseen["test_logits"].shape == (100, 3) and np.isneginf(unseen["test_logits"][:, 2]).all()
    )
    with pytest.raises(ValueError, match="unknown combine 'vote'"):
        boosted_head.fit_boosted_head(x, labels, split, grid, combine="vote")


def test_training_holdout_takes_a_ninth_of_each_class():
    labels = np.array([0] * 90 + [1] * 18 + [2] * 1)
    train = np.arange(5, 109)  # 85 of class 0, 18 of class 1, the one of class 2
    held = boosted_head.training_holdout(labels, train, seed=0)
    assert held.shape == (104,)
    assert [int(held[labels[train] == c].sum()) for c in (0, 1, 2)] == [9, 2, 0]
    np.testing.assert_array_equal(held, boosted_head.training_holdout(labels, train, seed=0))
    assert not np.array_equal(held, boosted_head.training_holdout(labels, train, seed=1))


def test_choosing_on_a_training_holdout_leaves_the_validation_rows_unread():
    x, labels, split = _noisy(6)
    grid = boosted_head.GRID[:: len(boosted_head.GRID) // 4]  # four settings
    nested = boosted_head.fit_boosted_head(x, labels, split, grid, choose_on="training_holdout")
    train = split["train"]
    held = boosted_head.training_holdout(labels, train, seed=0)
    inner, holdout = train[~held], train[held]
    accuracies = [
        float(
            np.mean(
                HistGradientBoostingClassifier(**s, early_stopping=False)
                .fit(x[inner], labels[inner])
                .predict(x[holdout])
                == labels[holdout]
            )
        )
        for s in grid
    ]
    assert [h["holdout_accuracy"] for h in nested["history"]] == accuracies
    assert nested["setting"] == grid[accuracies.index(max(accuracies))]
    # Refitted on all training rows: the single-setting fit of that setting.
    alone = boosted_head.fit_boosted_head(x, labels, split, (nested["setting"],))
    np.testing.assert_array_equal(nested["test_logits"], alone["test_logits"])
    assert nested["validation_accuracy"] == alone["validation_accuracy"] > 0.7
    assert nested["num_params"] == alone["num_params"]
    scrambled = labels.copy()
    scrambled[split["validation"]] = 1 - scrambled[split["validation"]]
    again = boosted_head.fit_boosted_head(x, scrambled, split, grid, choose_on="training_holdout")
    assert again["setting"] == nested["setting"]
    np.testing.assert_array_equal(again["test_logits"], nested["test_logits"])
    with pytest.raises(ValueError, match="combine='mean' chooses no setting"):
        boosted_head.fit_boosted_head(
            x, labels, split, grid, combine="mean", choose_on="training_holdout"
        )
    with pytest.raises(ValueError, match="unknown choose_on 'test'"):
        boosted_head.fit_boosted_head(x, labels, split, grid, choose_on="test")
