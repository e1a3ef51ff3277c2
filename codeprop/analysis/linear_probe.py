"""A linear probe: what a frozen representation holds, read by logistic regression.

Per split, a multinomial logistic regression (scikit-learn's L-BFGS, deterministic) is
trained on the training rows' embeddings, standardised with the training rows' mean and
standard deviation, and scored on the test rows. Nothing of the representation is
trained, so the accuracy measures what its embeddings already separate linearly.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from codeprop.analysis import silhouette


def linear_probe(
    embeddings,
    labels,
    splits: list[dict[str, np.ndarray]],
    regularisation: float = 1.0,
    max_iter: int = 2000,
) -> dict:
    """Accuracy of a linear classifier on frozen embeddings, per split.

    Args:
      embeddings: [N, D] of every row the splits use (finite).
      labels: [N] classes.
      splits: row index arrays ``train`` and ``test`` per split (e.g.
        `codeprop.probes.protocol.make_splits`).
      regularisation: scikit-learn's ``C`` (inverse L2 strength).
      max_iter: L-BFGS iterations at most.

    Returns:
      ``accuracy`` (mean over splits), ``pooled_accuracy`` (correct over all test rows)
      and ``folds``: per split ``train``, ``test``, ``accuracy``.
    """
    x, _ = silhouette.check_embeddings(embeddings, labels)
    labels = np.asarray(labels)
    folds, correct, total = [], 0, 0
    for split in splits:
        train, test = np.asarray(split["train"]), np.asarray(split["test"])
        mean, std = x[train].mean(axis=0), x[train].std(axis=0)
        std[std == 0] = 1.0
        model = LogisticRegression(C=regularisation, max_iter=max_iter)
        model.fit((x[train] - mean) / std, labels[train])
        hits = int((model.predict((x[test] - mean) / std) == labels[test]).sum())
        folds.append({"train": len(train), "test": len(test), "accuracy": hits / len(test)})
        correct, total = correct + hits, total + len(test)
    return {
        "accuracy": float(np.mean([f["accuracy"] for f in folds])),
        "pooled_accuracy": correct / total,
        "folds": folds,
    }
