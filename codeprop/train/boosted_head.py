"""A gradient-boosted-trees head on fixed features, its settings chosen on validation rows.

Where a linear head adds each input's effect to every program alike, trees split on
thresholds of one input within a region of the others: on devmap, "the GPU wins above this
transfer size, for kernels like these". IR2Vec reads its embeddings and the auxiliary
inputs this way. scikit-learn's `HistGradientBoostingClassifier` is trained on the
training rows for each setting of a small grid (learning rate, depth, iterations; no early
stopping, no subsampling, so a fit is deterministic), and the setting with the best
validation accuracy is kept (the first of a tie, in grid order). Test rows are never
looked at before the choice is made.
"""

from __future__ import annotations

import itertools

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from codeprop.train import linear_head

GRID = tuple(
    {"learning_rate": rate, "max_depth": depth, "max_iter": iterations}
    for rate, depth, iterations in itertools.product((0.05, 0.1), (3, 6, None), (100, 300))
)
"""The settings tried: 2 learning rates x 3 depths (None: leaves alone limit a tree) x 2
numbers of trees per class."""

COMBINE = ("best", "mean")
CHOOSE_ON = ("validation", "training_holdout")


def probe_grid(grid, min_samples_leaf: int, combine: str, choose_on: str) -> tuple[dict, ...]:
    """`grid` with every setting's leaves at least `min_samples_leaf` rows, after checking a
    probe's tree options (``tree_min_samples_leaf``, ``tree_combine``, ``tree_choose_on``):
    a bad one is a ValueError naming it."""
    if min_samples_leaf < 1:
        raise ValueError(f"tree_min_samples_leaf must be at least 1, not {min_samples_leaf}")
    if combine not in COMBINE:
        raise ValueError(f"unknown tree_combine {combine!r}; one of {COMBINE}")
    if choose_on not in CHOOSE_ON:
        raise ValueError(f"unknown tree_choose_on {choose_on!r}; one of {CHOOSE_ON}")
    return tuple(dict(s, min_samples_leaf=min_samples_leaf) for s in grid)


def tree_nodes(model: HistGradientBoostingClassifier) -> int:
    """The number of stored values of a fitted model: a threshold per split node and a
    value per leaf, over every tree (its ``parameters`` beside the neural models')."""
    # scikit-learn has no public node count; its fitted predictors hold the node arrays.
    return int(sum(len(p.nodes) for trees in model._predictors for p in trees))


def fit_boosted_head(
    features,
    labels,
    split: dict[str, np.ndarray],
    grid: tuple[dict, ...] = GRID,
    seed: int = 0,
    threads: int | None = 1,
    combine: str = "best",
    choose_on: str = "validation",
) -> dict:
    """Trains the trees on ``split["train"]`` for each setting of `grid`, keeps the one with
    the best accuracy on ``split["validation"]`` (or on a held-out part of the training
    rows, `choose_on`; or, with ``combine="mean"``, all of them, their probabilities
    averaged).

    Args:
      features: [N, F] of every row (rows outside the split are ignored).
      labels: [N] class ids.
      split: row index arrays ``train``, ``validation`` (may be empty: then the first
        setting is used) and ``test``.
      grid: the settings (`HistGradientBoostingClassifier` keyword arguments).
      seed: the model's ``random_state``; unused here (scikit-learn draws from it only for
        early stopping, feature subsampling and binning more than 200,000 rows), so fits
        with any seed are the same; ``choose_on="training_holdout"`` draws its holdout
        rows with it.
      threads: OpenMP threads of the fits (None: scikit-learn's default, one per core).
        One by default: devmap's fits are small (hundreds of rows, 12 settings of up to
        300 trees a class, thousands of short parallel regions), and when another process
        holds a core (a second arm, a test worker) each region waits for a descheduled
        thread, which made a fit tens of times slower. The fitted trees are the same for
        any number of threads (tested).
      combine: ``best`` (the setting with the best validation accuracy) or ``mean`` (every
        setting's model, their predicted probabilities averaged: no choice among settings
        on a few validation rows, whose noise the choice would fit; the validation
        accuracy is the average's).
      choose_on: ``validation`` (the setting with the best accuracy on the validation rows,
        whose accuracy is then the best of the grid's: an optimistic figure for choosing
        among runs) or ``training_holdout`` (the setting chosen on a stratified ninth of
        the training rows, `training_holdout`, its trees fitted on the other eight ninths,
        then refitted on all training rows: the validation rows are only scored, so their
        accuracy is an unbiased figure for a choice among runs). ``best`` only.

    Returns:
      ``setting`` (the chosen one; with ``mean``, ``{"combine": "mean"}``),
      ``validation_accuracy`` (NaN without validation rows), ``history`` (per setting,
      with its ``validation_accuracy``), ``test_logits`` [T, K] (``best``: the decision
      function over the classes seen in training; ``mean``: the log of the averaged
      probabilities; scattered into all ``K = max label + 1`` columns, others -inf) and
      ``num_params`` (`tree_nodes`, over every model kept).
    """
    if not grid:
        raise ValueError("the grid of tree settings is empty")
    train, validation, test = (np.asarray(split[k], np.int64) for k in linear_head.PARTS)
    x = linear_head.check_features(features, labels, np.concatenate([train, validation, test]))
    labels = np.asarray(labels)
    if len(np.unique(labels[train])) < 2:
        raise ValueError("the training rows hold fewer than two classes")
    if combine not in COMBINE:
        raise ValueError(f"unknown combine {combine!r}; one of {COMBINE}")
    if choose_on not in CHOOSE_ON:
        raise ValueError(f"unknown choose_on {choose_on!r}; one of {CHOOSE_ON}")
    if combine == "mean":
        if choose_on != "validation":
            raise ValueError("combine='mean' chooses no setting: choose_on does not apply")
        with threadpool_limits(limits=threads, user_api="openmp"):
            return _fit_mean(x, labels, train, validation, test, grid, seed)
    if choose_on == "training_holdout":
        with threadpool_limits(limits=threads, user_api="openmp"):
            return _fit_nested(x, labels, train, validation, test, grid, seed)
    with threadpool_limits(limits=threads, user_api="openmp"):
        history, best = [], None
        for setting in grid if len(validation) else grid[:1]:
            model = _fit_trees(setting, seed, x[train], labels[train])
            accuracy = _accuracy(model, x, labels, validation)
            history.append(dict(setting, validation_accuracy=accuracy))
            if best is None or accuracy > best[0]:
                best = (accuracy, setting, model)
        accuracy, setting, model = best
        return _result(model, setting, accuracy, history, x[test], int(labels.max()) + 1)


def _fit_trees(setting: dict, seed: int, x, labels) -> HistGradientBoostingClassifier:
    """Boosted trees of one grid `setting` fitted on ``x`` [n, F] and ``labels`` [n]: a
    fixed number of iterations (no early stopping, which would hold rows out)."""
    return HistGradientBoostingClassifier(**setting, early_stopping=False, random_state=seed).fit(
        x, labels
    )


def _accuracy(model: HistGradientBoostingClassifier, x, labels, rows) -> float:
    """`model`'s accuracy on `rows` (NaN without rows)."""
    if not len(rows):
        return float("nan")
    return float(np.mean(model.predict(x[rows]) == labels[rows]))


def _result(model, setting: dict, accuracy: float, history: list, x_test, num_classes) -> dict:
    """`fit_boosted_head`'s result for the one `model` kept."""
    scores = model.decision_function(x_test) if len(x_test) else np.zeros((0, 1))
    return {
        "setting": dict(setting),
        "validation_accuracy": accuracy,
        "history": history,
        "test_logits": _logits(model, scores, num_classes),
        "num_params": tree_nodes(model),
    }


def _logits(model: HistGradientBoostingClassifier, scores: np.ndarray, num_classes: int):
    """[T, num_classes]: the decision function `scores` of `model` over the classes seen
    in training, scattered into all columns, others -inf."""
    logits = np.full((len(scores), num_classes), -np.inf)
    if len(model.classes_) == 2:  # Binary: one column, the second class's log-odds.
        scores = np.stack([-scores, scores], axis=-1) / 2
    logits[:, model.classes_] = scores
    return logits


def training_holdout(labels: np.ndarray, train: np.ndarray, seed: int) -> np.ndarray:
    """A boolean mask over `train`: about a ninth of the rows of each class (at least one
    of a class with two rows or more), drawn with `seed`."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(train), bool)
    for label in np.unique(labels[train]):
        where = np.flatnonzero(labels[train] == label)
        if len(where) >= 2:
            held[rng.permutation(where)[: max(1, round(len(where) / 9))]] = True
    return held


def _fit_nested(x, labels, train, validation, test, grid, seed) -> dict:
    """`fit_boosted_head` with ``choose_on="training_holdout"``."""
    held = training_holdout(labels, train, seed)
    inner, holdout = train[~held], train[held]
    history, best = [], None
    for setting in grid:
        model = _fit_trees(setting, seed, x[inner], labels[inner])
        accuracy = _accuracy(model, x, labels, holdout)
        history.append(dict(setting, holdout_accuracy=accuracy))
        if best is None or accuracy > best[0]:
            best = (accuracy, setting)
    setting = best[1]
    model = _fit_trees(setting, seed, x[train], labels[train])
    accuracy = _accuracy(model, x, labels, validation)
    return _result(model, setting, accuracy, history, x[test], int(labels.max()) + 1)


def _fit_mean(x, labels, train, validation, test, grid, seed) -> dict:
    """`fit_boosted_head` with ``combine="mean"``: a model per setting, their probabilities
    averaged on the validation and test rows."""
    num_classes = int(labels.max()) + 1
    history, num_params = [], 0
    sums = {
        part: np.zeros((len(rows), num_classes))
        for part, rows in (("validation", validation), ("test", test))
    }
    for setting in grid:
        model = _fit_trees(setting, seed, x[train], labels[train])
        num_params += tree_nodes(model)
        for part, rows in (("validation", validation), ("test", test)):
            if len(rows):
                sums[part][:, model.classes_] += model.predict_proba(x[rows])
        history.append(dict(setting, validation_accuracy=_accuracy(model, x, labels, validation)))
    accuracy = (
        float(np.mean(sums["validation"].argmax(-1) == labels[validation]))
        if len(validation)
        else float("nan")
    )
    with np.errstate(divide="ignore"):  # A class no model predicts: -inf, as `best` does.
        logits = np.log(sums["test"] / len(grid))
    return {
        "setting": {"combine": "mean"},
        "validation_accuracy": accuracy,
        "history": history,
        "test_logits": logits,
        "num_params": num_params,
    }
