"""Ensembles over seeds: members that differ only in their seed, averaged.

`fit_members` trains ``members`` models with `codeprop.train.classifier.fit` (or
`fit_frozen`), member k with seed ``config.seed + k``, each selected on the validation
rows like a single model, and `combine` averages their predicted probabilities: the
ensemble's test logits are the log of the mean softmax. Its embedding of a row is the
members' embeddings side by side ([n, k D]); its parameters are the members' together.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from codeprop.train import epoch_checkpoints


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def combine(results: list[dict]) -> dict:
    """One result (as `codeprop.train.classifier.fit` returns) of several members'.

    ``test_logits`` [T, C]: log of the members' mean probabilities; ``num_params``: their
    sum; ``test_embeddings`` [T, k D] and ``embeddings`` [n, k D]: side by side;
    ``best_validation_accuracy``: the members' mean; ``best_epoch``, ``history``,
    ``budget``, ``params`` and ``rows``: the first member's; ``members``: each member's
    best epoch and validation accuracy.
    """
    first = results[0]
    probs = np.mean([_softmax(np.asarray(r["test_logits"], np.float64)) for r in results], 0)
    out = dict(first)
    out["test_logits"] = np.log(np.maximum(probs, 1e-30)).astype(np.float32)
    out["num_params"] = sum(r["num_params"] for r in results)
    out["best_validation_accuracy"] = float(
        np.mean([r["best_validation_accuracy"] for r in results])
    )
    out["test_embeddings"] = np.concatenate([r["test_embeddings"] for r in results], axis=-1)
    if "embeddings" in first:
        out["embeddings"] = np.concatenate([r["embeddings"] for r in results], axis=-1)
    out["members"] = [
        {"seed_offset": k, "best_epoch": r["best_epoch"],
         "best_validation_accuracy": r["best_validation_accuracy"]}
        for k, r in enumerate(results)
    ]  # fmt: skip
    return out


def fit_members(fit: Callable, model, data, split, config, members: int, **fit_kwargs) -> dict:
    """`combine` of ``members`` fits of `model`, member k with seed ``config.seed + k``.

    ``fit_kwargs`` go to every member's fit, except: ``checkpoints`` becomes one directory
    per member inside it (``member_<k>/``, so that a stopped ensemble resumes in the
    member it stopped in, the finished members by replaying their last saved epochs),
    and the TensorBoard ``writer`` gets the first member's scalars only.
    """
    if members < 1:
        raise ValueError(f"an ensemble needs at least one member, not {members}")
    checkpoints = fit_kwargs.pop("checkpoints", None)
    writer = fit_kwargs.pop("writer", None)
    results = []
    for k in range(members):
        member_checkpoints = None
        if checkpoints is not None:
            member_checkpoints = epoch_checkpoints.EpochCheckpoints(
                checkpoints.directory / f"member_{k}",
                f"{checkpoints.key}:member_{k}",
                checkpoints.every_seconds,
            )
        seeded = dataclasses.replace(config, seed=config.seed + k)
        results.append(
            fit(model, data, split, seeded, checkpoints=member_checkpoints,
                writer=writer if k == 0 else None, **fit_kwargs)
        )  # fmt: skip
    return combine(results)
