"""Deterministic, seeded, stratified splits of benchmark examples (by index).

- `kfold`: stratified k-fold cross-validation (devmap's standard protocol is k=10).
- `holdout`: one stratified train/validation/test split by fractions (the paper's 80/10/10).
  POJ-104's 3:1:1 per class is ``holdout(labels, (0.6, 0.2, 0.2))``: 300/100/100 of 500.
- `grouped_kfold`: k-fold cross-validation that keeps each group (devmap: a kernel, whose
  rows differ only in data size) in one fold, its validation rows grouped the same way, so
  that no test or validation kernel has a row among the training rows.

`of_protocol` names them as the probes do (``kfold``, ``holdout``, ``per_class_3_1_1``,
``grouped_kfold``).

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


def _deal_groups(labels: np.ndarray, groups: np.ndarray, k: int, seed: int) -> np.ndarray:
    """[N] part (0..k-1) of each row, whole groups to a part, balancing the class counts.

    The groups are shuffled (seeded), then taken largest first (a stable sort, so equal
    sizes keep the shuffled order); each goes to the part whose per-class counts, with the
    group added, stay closest (squared distance) to the class totals over k, the lowest
    part index on a tie.
    """
    classes, label_index = np.unique(labels, return_inverse=True)
    names, group_index = np.unique(groups, return_inverse=True)
    counts = np.zeros((len(names), len(classes)), np.int64)
    np.add.at(counts, (group_index, label_index), 1)
    order = np.random.default_rng(seed).permutation(len(names))
    order = order[np.argsort(-counts[order].sum(1), kind="stable")]
    ideal = counts.sum(0) / k
    filled = np.zeros((k, len(classes)), np.float64)
    part_of_group = np.empty(len(names), np.int64)
    for g in order:
        cost = ((filled + counts[g] - ideal) ** 2).sum(1) - ((filled - ideal) ** 2).sum(1)
        part = int(np.argmin(cost))
        part_of_group[g] = part
        filled[part] += counts[g]
    return part_of_group[group_index]


def grouped_kfold(
    labels: Sequence[int],
    groups: Sequence,
    k: int = 10,
    seed: int = 0,
    val_fraction: float = 0.1,
) -> list[Split]:
    """k-fold cross-validation with each group's rows in one fold, classes balanced.

    Fold i's rows are the test set; of the other rows, whole groups making about
    `val_fraction` of them (one part of ``round(1 / val_fraction)``, dealt the same way)
    are the validation set; the rest is train. No group has rows in two of a split's parts.

    Args:
      labels: [N] class of each example.
      groups: [N] group of each example (any sortable values; devmap: the kernel).
      k: number of folds (at most the number of groups).
      seed: shuffling seed.
      val_fraction: about the fraction of each fold's training rows held out for validation.

    Returns:
      k dicts with sorted index arrays ``train``, ``validation``, ``test``.
    """
    labels, groups = np.asarray(labels), np.asarray(groups)
    if len(groups) != len(labels):
        raise ValueError(f"{len(groups)} groups for {len(labels)} labels")
    num_groups = len(np.unique(groups))
    if num_groups < k:
        raise ValueError(f"{num_groups} groups cannot fill {k} folds")
    fold_of = _deal_groups(labels, groups, k, seed)
    inner_parts = max(2, round(1.0 / val_fraction))
    result = []
    for i in range(k):
        rest = np.flatnonzero(fold_of != i)
        inner = _deal_groups(labels[rest], groups[rest], inner_parts, seed + 1 + i)
        result.append(
            {
                "train": rest[inner != 0],
                "validation": rest[inner == 0],
                "test": np.flatnonzero(fold_of == i),
            }
        )
    return result


PROTOCOLS = ("kfold", "holdout", "per_class_3_1_1", "grouped_kfold")
PROBE_SEED = 204
"""The probes' default ``split_seed`` (`codeprop.probes.protocol.run`, gin/runs/*.gin)."""


def of_protocol(
    labels, protocol: str, num_folds: int = 10, seed: int = 0, groups=None
) -> list[Split]:
    """The evaluation splits of a probe protocol: ``kfold`` (``num_folds`` folds),
    ``holdout`` (80/10/10), ``per_class_3_1_1`` (POJ-104's 60/20/20 per class) or
    ``grouped_kfold`` (``num_folds`` folds of whole `groups`, [N])."""
    if protocol == "grouped_kfold":
        if groups is None:
            raise ValueError("protocol 'grouped_kfold' needs the examples' groups")
        return grouped_kfold(labels, groups, k=num_folds, seed=seed)
    if protocol == "kfold":
        return kfold(labels, k=num_folds, seed=seed)
    if protocol == "holdout":
        return [holdout(labels, (0.8, 0.1, 0.1), seed=seed)]
    if protocol == "per_class_3_1_1":
        return [holdout(labels, (0.6, 0.2, 0.2), seed=seed)]
    raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
