"""Checkpoints of a pretraining run: orbax save / restore, and the run's architecture.

A run's workdir holds ``checkpoints/<step>/`` (orbax: the train state and the data
position, ``batches_consumed``, so a restored run continues bitwise) and
``model_config.json`` (the architecture fields of the `DecoderConfig`; resuming or
initialising from a run of another architecture is refused, naming the differences).
`load_params` reads a checkpoint's parameters for generation, the probes or export
(`codeprop.checkpoints.hf.save`). Checkpoints are never pickled.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils

from codeprop.checkpoints import hf
from codeprop.data import json_files
from codeprop.models import decoder

MODEL_CONFIG = "model_config.json"
# DecoderConfig fields that change the parameters or the function they compute; the
# others (numerics, kernels, remat) may differ between a run and its resumption.
ARCHITECTURE_EXEMPT = {
    "dtype",
    "remat",
    "attention_impl",
    "attention_query_chunk",
    "loss_chunk",
    "max_positions",
    "rope_scaling",
    "rope_scaling_factor",
}


def architecture(config: decoder.DecoderConfig) -> dict:
    """The fields of `config` that a checkpoint's parameters depend on."""
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in ARCHITECTURE_EXEMPT}


def architecture_differences(workdir: str | pathlib.Path, config: decoder.DecoderConfig) -> str:
    """``'field: theirs -> ours, ...'`` between the run in `workdir` and `config`; empty
    when they are the same architecture."""
    return _differences(pathlib.Path(workdir) / MODEL_CONFIG, architecture(config))


def _differences(path: pathlib.Path, ours: dict) -> str:
    theirs = json_files.read_object(path, hf.CheckpointError)
    keys = sorted(set(ours) | set(theirs))
    return ", ".join(
        f"{k}: {theirs.get(k)!r} -> {ours.get(k)!r}" for k in keys if theirs.get(k) != ours.get(k)
    )


def check_workdir(workdir: pathlib.Path, model_config: decoder.DecoderConfig) -> None:
    """Refuses a workdir whose checkpoints come from another architecture; records ours."""
    path = workdir / MODEL_CONFIG
    ours = architecture(model_config)
    if path.exists():
        diff = _differences(path, ours)
        if diff:
            raise ValueError(
                f"{workdir} holds a run of another model ({path}); differences: {diff}. "
                "Use a new --workdir."
            )
    else:
        workdir.mkdir(parents=True, exist_ok=True)
        if jax.process_index() == 0:
            path.write_text(json.dumps(ours, indent=1, sort_keys=True))


def checkpoint_manager(workdir: pathlib.Path, keep: int) -> ocp.CheckpointManager:
    """The manager of ``workdir/checkpoints``, keeping the newest `keep`."""
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
    # orbax takes absolute paths only; a --workdir may be relative.
    return ocp.CheckpointManager((workdir / "checkpoints").absolute(), options=options)


def save(manager: ocp.CheckpointManager, state, batches_consumed: int) -> None:
    """Saves `state` (a pytree with a ``step``) and the data position; waits for it."""
    step = int(state.step)
    save_step(manager, step, state, {"step": step, "batches_consumed": batches_consumed})


def save_step(manager: ocp.CheckpointManager, step: int, state, progress: dict) -> None:
    """Saves a pytree `state` and a JSON `progress` as checkpoint `step`; waits for it."""
    manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), progress=ocp.args.JsonSave(progress)
        ),
        force=True,
    )
    manager.wait_until_finished()


UNRESTORABLE = "checkpoints_unrestorable"
"""Where a checkpoint that does not restore is moved (beside ``checkpoints/``)."""


def _move_aside(manager: ocp.CheckpointManager, step: int) -> pathlib.Path | None:
    """Moves step ``step``'s directory to ``<workdir>/checkpoints_unrestorable/<step>-<n>``
    (kept for inspection; out of the manager's sight, so that the step can be saved
    anew); returns the new path, or None when there is no such directory."""
    source = pathlib.Path(str(manager.directory)) / str(step)
    target = None
    if jax.process_index() == 0 and source.is_dir():
        parent = source.parent.parent / UNRESTORABLE
        parent.mkdir(exist_ok=True)
        n = 0
        while (parent / f"{step}-{n}").exists():
            n += 1
        target = parent / f"{step}-{n}"
        os.replace(source, target)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(f"moved aside checkpoint {step}")
    manager.reload()
    return target


def restore_latest(manager: ocp.CheckpointManager, shardings, abstract):
    """(state, batches consumed) of the newest checkpoint that restores, or None.

    A checkpoint that fails (corrupt or partial files) is logged with its error, moved to
    ``checkpoints_unrestorable/`` (`_move_aside`: training then saves that step again
    instead of failing on a step that exists), and the next older one is tried.
    """
    target = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings
    )
    restored = restore_newest(manager, target)
    if restored is None:
        return None
    _, state, progress = restored
    return state, int(progress["batches_consumed"])


def restore_newest(manager: ocp.CheckpointManager, target) -> tuple[int, Any, dict] | None:
    """(step, state, progress) of the newest checkpoint that restores into `target` (a
    pytree of `jax.ShapeDtypeStruct` with shardings), or None; one that fails is moved
    aside as `restore_latest` says."""
    for step in sorted(manager.all_steps(), reverse=True):
        try:
            restored = manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(target), progress=ocp.args.JsonRestore()
                ),
            )
        except Exception as error:  # noqa: BLE001 - any failure means: try the previous one
            moved = _move_aside(manager, step)
            logging.error(
                "checkpoint %d in %s does not restore (moved to %s): %s",
                step, manager.directory, moved, error,
            )  # fmt: skip
            continue
        return step, restored["state"], dict(restored["progress"])
    return None


def load_params(workdir: str | pathlib.Path, step: int | None = None) -> tuple[int, Any]:
    """(step, decoder parameters) of a checkpoint in ``workdir`` (default: the newest), on
    the default device — for generation, the probes, or export with
    `codeprop.checkpoints.hf.save`.

    Raises:
      FileNotFoundError: the workdir has no checkpoint.
    """
    directory = (pathlib.Path(workdir) / "checkpoints").absolute()
    steps = (
        sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())
        if directory.is_dir()
        else []
    )
    if not steps:
        raise FileNotFoundError(f"no checkpoint in {directory}")
    step = steps[-1] if step is None else step
    manager = ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(create=False))
    try:
        restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    finally:
        manager.close()
    params = jax.tree.map(jnp.asarray, restored["state"]["params"])
    return step, params
