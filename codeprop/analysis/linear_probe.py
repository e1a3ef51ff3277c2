"""A linear probe: what a representation's embeddings hold, read by logistic regression.

Per split, a multinomial logistic regression (`codeprop.train.linear_head`: standardised
features, L2 strength chosen on the split's validation rows) is trained on the training
rows' embeddings and scored on the test rows. Nothing of the representation is trained
here, so the accuracy measures what its embeddings already separate linearly. For a
trained probe, split f is read from the embeddings of fold f's own model (an
``embeddings.npz``'s ``fold_embeddings``): the head never sees a model that was trained
on its test rows.
"""

from __future__ import annotations

import numpy as np

from codeprop.train import linear_head


def linear_probe(
    embeddings,
    labels,
    splits: list[dict[str, np.ndarray]],
    regularisations: tuple[float, ...] = linear_head.REGULARISATIONS,
) -> dict:
    """Accuracy of a linear classifier on frozen embeddings, per split.

    Args:
      embeddings: [N, D] (one representation for every split) or [F, N, D] (split f
        reads ``embeddings[f]``); finite on every row the splits use.
      labels: [N] classes.
      splits: row index arrays ``train``, ``validation`` (may be empty) and ``test`` per
        split (e.g. `codeprop.probes.protocol.make_splits`, or
        `codeprop.analysis.embedding_files.EmbeddingFile.split`).
      regularisations: the grid of ``C`` the validation rows choose from.

    Returns:
      ``accuracy`` (mean over splits), ``pooled_accuracy`` (correct over all test rows)
      and ``folds``: per split ``train``, ``test``, ``regularisation``, ``accuracy``.
    """
    embeddings = np.asarray(embeddings)
    per_split = embeddings.ndim == 3
    if per_split and len(embeddings) != len(splits):
        raise ValueError(f"{len(embeddings)} embedding tables for {len(splits)} splits")
    labels = np.asarray(labels)
    folds, correct, total = [], 0, 0
    for f, split in enumerate(splits):
        split = {k: np.asarray(split.get(k, ()), np.int64) for k in linear_head.PARTS}
        x = embeddings[f] if per_split else embeddings
        head = linear_head.fit_linear_head(x, labels, split, regularisations)
        hits = int((head["test_logits"].argmax(-1) == labels[split["test"]]).sum())
        folds.append(
            {
                "train": len(split["train"]),
                "test": len(split["test"]),
                "regularisation": head["regularisation"],
                "accuracy": hits / len(split["test"]),
            }
        )
        correct, total = correct + hits, total + len(split["test"])
    return {
        "accuracy": float(np.mean([f["accuracy"] for f in folds])),
        "pooled_accuracy": correct / total,
        "folds": folds,
    }
