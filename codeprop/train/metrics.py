"""Classification metrics on the host (numpy): accuracy, precision, recall, F1."""

from __future__ import annotations

import numpy as np


def classification_metrics(labels, predictions, num_classes: int) -> dict[str, float]:
    """Accuracy and precision/recall/F1 (binary: of class 1; else macro-averaged).

    Args:
      labels: [N] true classes.
      predictions: [N] predicted classes.
      num_classes: C; with C == 2 precision, recall and F1 are those of class 1 (GPU for
        devmap), otherwise the unweighted mean over classes that occur in labels or
        predictions.
    """
    labels = np.asarray(labels)
    predictions = np.asarray(predictions)
    confusion = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    tp = np.diag(confusion).astype(float)
    predicted = confusion.sum(0).astype(float)
    actual = confusion.sum(1).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    if num_classes == 2:
        p, r, f = precision[1], recall[1], f1[1]
    else:
        present = (predicted + actual) > 0
        p, r, f = precision[present].mean(), recall[present].mean(), f1[present].mean()
    return {
        "accuracy": float(tp.sum() / max(len(labels), 1)),
        "precision": float(p),
        "recall": float(r),
        "f1": float(f),
    }
