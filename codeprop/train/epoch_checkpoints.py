"""A fold's training state saved during a fit, so that a stopped fold resumes exactly.

`codeprop.train.classifier.fit` saves, after an epoch or between two jitted calls of
steps inside one, everything the rest of the fit depends on: the train state
(parameters, optimizer state, step, dropout key), the parameters of the best epoch so
far, the history, the shuffling generator's state and the steps per jitted call; inside
an epoch also the calls done and their training metrics. A fit given the same
`EpochCheckpoints` again continues where the newest save was made (skipping the batches
of the calls done) and ends with the parameters, history and predictions of a fit that
never stopped.

On disk (orbax, never pickle): ``<directory>/checkpoints/<step>/`` (the newest only, named
by its optimizer step) and ``<directory>/key.json``, what the state must have been made
with (a fold's settings and rows, `codeprop.probes.protocol.fold_key`): saved state of
another key is deleted, not used. A save that does not restore is moved to
``checkpoints_unrestorable/`` (`codeprop.train.checkpointing.restore_newest`) and the one
before it is used, or none.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import time
from typing import Any

import jax

from codeprop.train import checkpointing

KEY = "key.json"


class EpochCheckpoints:
    """Where and how often one fold's training state is saved.

    Attributes:
      directory: the fold's directory (deleted by `discard` once the fold is finished).
      key: what a saved state must have been made with.
      every_seconds: least seconds of training between two saves (0: after every epoch
        and between every two calls); a fit stopped by SIGTERM saves at once.
    """

    def __init__(self, directory: str | pathlib.Path, key: str, every_seconds: float = 600.0):
        self.directory = pathlib.Path(directory).absolute()
        self.key = key
        self.every_seconds = every_seconds
        self._last = time.monotonic()
        self._manager = None

    def _open(self):
        if self._manager is None:
            self._manager = checkpointing.checkpoint_manager(self.directory, keep=1)
        return self._manager

    def restore(self, state, best_params) -> tuple[Any, Any, dict] | None:
        """(state, best parameters, progress) of the newest save, restored into the
        shapes, dtypes and shardings of the given `state` and `best_params`; None when
        nothing of this key was saved (state of another key is deleted)."""
        key_path = self.directory / KEY
        if not key_path.is_file():
            return None
        try:
            saved_key = json.loads(key_path.read_text()).get("key")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            saved_key = None
        if saved_key != self.key:
            self.discard()
            return None
        target = jax.tree.map(
            lambda a: (
                jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding)
                if isinstance(a, jax.Array)
                else a  # a Python scalar (the step of a fresh state)
            ),
            {"state": state, "best_params": best_params},
        )
        restored = checkpointing.restore_newest(self._open(), target)
        if restored is None:
            return None
        _, tree, progress = restored
        self._last = time.monotonic()
        return tree["state"], tree["best_params"], progress

    def due(self) -> bool:
        """Whether `every_seconds` have passed since the last save (or the start)."""
        return time.monotonic() - self._last >= self.every_seconds

    def save(self, step: int, state, best_params, progress: dict) -> None:
        """Saves the state after optimizer `step` (replacing the save before, of a lower
        step) and waits for it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / KEY).write_text(json.dumps({"key": self.key}) + "\n")
        checkpointing.save_step(
            self._open(), step, {"state": state, "best_params": best_params}, progress
        )
        self._last = time.monotonic()

    def discard(self) -> None:
        """Deletes the saved state (the fold finished, or the state is of another key)."""
        if self._manager is not None:
            self._manager.close()
            self._manager = None
        shutil.rmtree(self.directory, ignore_errors=True)
