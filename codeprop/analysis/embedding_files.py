"""Embedding files (``embeddings.npz``, written by `codeprop.probes.protocol`), read and
checked.

A file that does not hold what it should is an `EmbeddingFileError` naming the file and
the problem: a missing field, arrays of different lengths, a tested example without a
finite embedding, an untested one with an embedding, or a file of another benchmark or
split than the one asked for.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import zipfile

import numpy as np

FIELDS = ("embeddings", "fold_embeddings", "fold_of", "labels", "test_fold", "num_params",
          "benchmark", "representation", "model", "protocol", "split_seed")  # fmt: skip
PARTS = ("train", "validation", "test")
"""The codes 0, 1, 2 of ``fold_of``."""


class EmbeddingFileError(ValueError):
    """An embeddings file is unreadable or inconsistent; the message names the file."""


@dataclasses.dataclass(frozen=True)
class EmbeddingFile:
    """One representation's test embeddings of a benchmark, every fold together.

    Attributes:
      path: where it was read.
      embeddings: [N, D]; NaN rows for examples never tested.
      fold_embeddings: [F, N, D] every example of fold f's splits by fold f's model; NaN
        rows for examples in none of them (no input).
      fold_of: [F, N] the part of fold f each example is in: 0 training, 1 validation,
        2 test, -1 none.
      labels: [N].
      test_fold: [N] fold that tested each example, -1 for none.
      num_params: [F] parameters of each fold's model.
      benchmark, representation, model, protocol: as in results.json.
      split_seed: the seed of the splits.
    """

    path: pathlib.Path
    embeddings: np.ndarray
    fold_embeddings: np.ndarray
    fold_of: np.ndarray
    labels: np.ndarray
    test_fold: np.ndarray
    num_params: np.ndarray
    benchmark: str
    representation: str
    model: str
    protocol: str
    split_seed: int

    @property
    def tested(self) -> np.ndarray:
        """[N] whether each example was tested."""
        return self.test_fold >= 0

    def tested_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row indices [T], embeddings [T, D], labels [T]) of the tested examples."""
        rows = np.flatnonzero(self.tested)
        return rows, self.embeddings[rows], self.labels[rows]

    @property
    def num_folds(self) -> int:
        return len(self.fold_of)

    def split(self, fold: int) -> dict[str, np.ndarray]:
        """Row indices ``train``, ``validation``, ``test`` of a fold."""
        return {name: np.flatnonzero(self.fold_of[fold] == i) for i, name in enumerate(PARTS)}

    def fold_rows(self, fold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row indices [n], embeddings [n, D], labels [n]) of every example fold `fold`'s
        model embedded (its training, validation and test rows)."""
        rows = np.flatnonzero(self.fold_of[fold] >= 0)
        return rows, self.fold_embeddings[fold, rows], self.labels[rows]


def load(
    path: str | os.PathLike,
    benchmark: str | None = None,
    protocol: str | None = None,
    split_seed: int | None = None,
) -> EmbeddingFile:
    """Reads and checks an embeddings file; optionally that it is of `benchmark` and of
    the given split (`protocol`, `split_seed`).

    Raises:
      EmbeddingFileError: naming the file and what is wrong with it.
    """
    path = pathlib.Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [f for f in FIELDS if f not in data.files]
            if missing:
                raise EmbeddingFileError(
                    f"{path}: no {', '.join(missing)} (not a codeprop embeddings file, or "
                    "one written before the files described themselves)"
                )
            fields = {f: data[f] for f in FIELDS}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
        if isinstance(e, EmbeddingFileError):
            raise
        raise EmbeddingFileError(f"{path}: cannot read it: {type(e).__name__}: {e}") from e
    for name in ("benchmark", "representation", "model", "protocol"):
        fields[name] = str(fields[name])
    fields["split_seed"] = int(fields["split_seed"])
    file = EmbeddingFile(path=path, **fields)
    n = len(file.embeddings)
    if file.embeddings.ndim != 2 or len(file.labels) != n or len(file.test_fold) != n:
        raise EmbeddingFileError(
            f"{path}: embeddings {file.embeddings.shape}, labels {file.labels.shape} and "
            f"test_fold {file.test_fold.shape} do not describe the same examples"
        )
    finite = np.isfinite(file.embeddings).all(axis=1)
    if (file.tested & ~finite).any():
        raise EmbeddingFileError(
            f"{path}: {int((file.tested & ~finite).sum())} tested examples have NaN or "
            "infinite embeddings"
        )
    if (~file.tested & ~np.isnan(file.embeddings).all(axis=1)).any():
        raise EmbeddingFileError(f"{path}: untested examples have embeddings")
    folds = len(file.num_params)
    if file.fold_embeddings.shape != (folds, n, file.embeddings.shape[1]) or (
        file.fold_of.shape != (folds, n)
    ):
        raise EmbeddingFileError(
            f"{path}: fold_embeddings {file.fold_embeddings.shape} and fold_of "
            f"{file.fold_of.shape} do not describe {folds} folds of {n} examples"
        )
    in_fold = file.fold_of >= 0
    if (in_fold & ~np.isfinite(file.fold_embeddings).all(axis=2)).any():
        raise EmbeddingFileError(
            f"{path}: {int((in_fold & ~np.isfinite(file.fold_embeddings).all(axis=2)).sum())} "
            "(fold, example) pairs of the folds' splits have NaN or infinite embeddings"
        )
    for f in range(folds):
        if not np.array_equal(file.fold_of[f] == 2, file.test_fold == f):
            raise EmbeddingFileError(
                f"{path}: fold {f}'s test rows in fold_of differ from those in test_fold"
            )
    wanted = {"benchmark": benchmark, "protocol": protocol, "split_seed": split_seed}
    for name, value in wanted.items():
        if value is not None and getattr(file, name) != value:
            raise EmbeddingFileError(
                f"{path}: {name} is {getattr(file, name)!r}, not {value!r}: embeddings of "
                "another benchmark or split do not compare"
            )
    return file
