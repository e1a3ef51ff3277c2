"""Deterministic, seeded, stratified splits of benchmark examples (by index).

- `kfold`: stratified k-fold cross-validation (devmap's standard protocol is k=10).
- `holdout`: one stratified train/validation/test split by fractions (the paper's 80/10/10).
  POJ-104's 3:1:1 per class is ``holdout(labels, (0.6, 0.2, 0.2))``: 300/100/100 of 500.

`of_protocol` names them as the probes do (``kfold``, ``holdout``, ``per_class_3_1_1``).

Every function returns int64 index arrays into the example list; the same labels and seed
give the same arrays on every machine (numpy's PCG64 generator, no global state).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Split = dict[str, np.ndarray]


def _shuffled_by_class(labels: np.ndarray, rng: np.random.Generator) -> dict[int, np.ndarray]:
    return {int(c): rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)}


def kfold(
    labels: Sequence[int], k: int = 10, seed: int = 0, val_fraction: float = 0.1
) -> list[Split]:
    """Stratified k-fold cross-validation with a stratified validation set per fold.

    Each class's examples are shuffled and dealt round-robin into k folds (so fold sizes per
    class differ by at most one). Fold i is the test set; a stratified `val_fraction` of the
    remaining examples is the validation set used for model selection; the rest is train.

    Args:
      labels: [N] class of each example.
      k: number of folds.
      seed: shuffling seed.
      val_fraction: fraction of each fold's training part held out for validation.

    Returns:
      k dicts with sorted index arrays ``train``, ``validation``, ``test``.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), np.int64)
    offset = 0
    for _, idx in sorted(_shuffled_by_class(labels, rng).items()):
        # Continue dealing where the previous class stopped so fold sizes stay balanced.
        fold_of[idx] = (np.arange(len(idx)) + offset) % k
        offset = (offset + len(idx)) % k
    splits = []
    for i in range(k):
        rest = np.flatnonzero(fold_of != i)
        inner = holdout(labels[rest], (1.0 - val_fraction, val_fraction, 0.0), seed=seed + 1 + i)
        splits.append(
            {
                "train": rest[inner["train"]],
                "validation": rest[inner["validation"]],
                "test": np.flatnonzero(fold_of == i),
            }
        )
    return splits


def holdout(
    labels: Sequence[int], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> Split:
    """One stratified train/validation/test split by fractions (largest-remainder rounding).

    Args:
      labels: [N] class of each example.
      fractions: (train, validation, test) fractions summing to 1.
      seed: shuffling seed.

    Returns:
      Sorted index arrays ``train``, ``validation``, ``test``.
    """
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"fractions must be three numbers summing to 1, got {fractions}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "validation": [], "test": []}
    for _, idx in sorted(_shuffled_by_class(labels, rng).items()):
        exact = np.asarray(fractions) * len(idx)
        counts = np.floor(exact).astype(int)
        for j in np.argsort(-(exact - counts), kind="stable")[: len(idx) - counts.sum()]:
            counts[j] += 1
        bounds = np.cumsum(counts)
        for name, chunk in zip(parts, np.split(idx, bounds[:-1]), strict=True):
            parts[name].append(chunk)
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


PROTOCOLS = ("kfold", "holdout", "per_class_3_1_1")
PROBE_SEED = 204
"""The probes' default ``split_seed`` (`codeprop.probes.protocol.run`, gin/runs/*.gin)."""


def of_protocol(labels, protocol: str, num_folds: int = 10, seed: int = 0) -> list[Split]:
    """The evaluation splits of a probe protocol: ``kfold`` (``num_folds`` folds),
    ``holdout`` (80/10/10) or ``per_class_3_1_1`` (POJ-104's 60/20/20 per class)."""
    if protocol == "kfold":
        return kfold(labels, k=num_folds, seed=seed)
    if protocol == "holdout":
        return [holdout(labels, (0.8, 0.1, 0.1), seed=seed)]
    if protocol == "per_class_3_1_1":
        return [holdout(labels, (0.6, 0.2, 0.2), seed=seed)]
    raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
