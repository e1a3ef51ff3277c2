"""A linear head on frozen features: multinomial logistic regression, chosen on validation.

What a frozen representation (an untrained GNN, a pretrained decoder without fine-tuning,
a bag of node types) holds is read by a linear classifier: the features are standardised
with the training rows' mean and standard deviation, one logistic regression
(scikit-learn's L-BFGS, deterministic) is trained on the training rows per L2 strength of
a grid, and the strength with the best validation accuracy is kept (the first of a tie:
the grid runs from strongest to weakest regularisation). Test rows are never looked at
before the choice is made.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

REGULARISATIONS = (0.01, 0.1, 1.0, 10.0)
"""scikit-learn's ``C`` (inverse L2 strength) tried, strongest regularisation first."""


PARTS = ("train", "validation", "test")


def check_features(features, labels, rows) -> np.ndarray:
    """The features as float64 [N, F], checked on `rows`.

    Raises:
      ValueError: not 2-D, lengths differ, or a value of a row in `rows` is NaN or
        infinite.
    """
    x = np.asarray(features, np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be [N, F]; got shape {x.shape}")
    if len(x) != len(labels):
        raise ValueError(f"{len(x)} feature rows but {len(labels)} labels")
    finite = np.isfinite(x[rows]).all(axis=1)
    if not finite.all():
        raise ValueError(
            f"{int((~finite).sum())} of the split's {len(rows)} feature rows hold NaN or "
            "infinite values"
        )
    return x


def concatenated(split: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The split's rows in one array (training, validation, test) and the split as
    positions in it: features computed for those rows in that order take the second."""
    rows = np.concatenate([np.asarray(split[k], np.int64) for k in PARTS])
    ends = np.cumsum([0, *(len(split[k]) for k in PARTS)])
    return rows, {k: np.arange(ends[i], ends[i + 1]) for i, k in enumerate(PARTS)}


def fit_linear_head(
    features,
    labels,
    split: dict[str, np.ndarray],
    regularisations: tuple[float, ...] = REGULARISATIONS,
    max_iter: int = 1000,
) -> dict:
    """Trains the head on ``split["train"]``, chooses ``C`` on ``split["validation"]``.

    Args:
      features: [N, F] of every row (rows outside the split are ignored and may be NaN).
      labels: [N] class ids.
      split: row index arrays ``train``, ``validation`` (may be empty: then the middle of
        the grid, ``C = 1``, is used) and ``test``.
      regularisations: the grid of ``C``.
      max_iter: L-BFGS iterations at most per fit.

    Returns:
      ``regularisation`` (chosen C), ``validation_accuracy`` (of that C; NaN without
      validation rows), ``history`` (per C: ``regularisation``, ``validation_accuracy``,
      ``converged``), ``test_logits`` [T, K] (the decision function over the classes seen
      in training, scattered into all ``K = max label + 1`` columns, others -inf),
      ``num_params`` (weights and biases of the head) and ``converged``.
    """
    train, validation, test = (np.asarray(split[k], np.int64) for k in PARTS)
    x = check_features(features, labels, np.concatenate([train, validation, test]))
    labels = np.asarray(labels)
    if len(np.unique(labels[train])) < 2:
        raise ValueError("the training rows hold fewer than two classes")
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    std[std == 0] = 1.0

    def scaled(rows):
        return (x[rows] - mean) / std

    grid = tuple(regularisations) if len(validation) else (1.0,)
    history, best = [], None
    for c in grid:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model = LogisticRegression(C=c, max_iter=max_iter).fit(scaled(train), labels[train])
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        accuracy = (
            float(np.mean(model.predict(scaled(validation)) == labels[validation]))
            if len(validation)
            else float("nan")
        )
        history.append(
            {"regularisation": c, "validation_accuracy": accuracy, "converged": converged}
        )
        if best is None or accuracy > best[0]:
            best = (accuracy, c, model, converged)
    accuracy, c, model, converged = best
    num_classes = int(labels.max()) + 1
    logits = np.full((len(test), num_classes), -np.inf)
    scores = model.decision_function(scaled(test)) if len(test) else np.zeros((0, 1))
    if len(model.classes_) == 2:  # scikit-learn's binary decision function is one column.
        scores = np.stack([-scores, scores], axis=-1) / 2
    logits[:, model.classes_] = scores
    return {
        "regularisation": c,
        "validation_accuracy": accuracy,
        "history": history,
        "test_logits": logits,
        "num_params": int(model.coef_.size + model.intercept_.size),
        "converged": converged,
    }
