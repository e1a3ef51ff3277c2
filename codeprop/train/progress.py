"""Progress lines a person can read: a few per fold, with rate, ETA and the current metric.

Per-epoch metrics go to TensorBoard and results files; the terminal gets at most one line
every `Progress.every_seconds` while a fold trains and one line when it ends:

    fold 3/10  epoch 20/60  6.1 epochs/s  48 steps/s  train loss 0.612  val acc 72.1%
    fold 3/10  done in 9.8 s  best epoch 41  val acc 73.8%  test acc 70.6%  ETA 1m 9s

The ETA of a fold extrapolates its epoch rate; the ETA after a fold extrapolates the mean
time per finished fold over the folds left.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable


def duration(seconds: float) -> str:
    """``'42s'``, ``'3m 5s'`` or ``'1h 2m'``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60}m"


def _percent(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


@dataclasses.dataclass
class Progress:
    """Reports the folds of a probe; pass `epoch` to `codeprop.train.classifier.fit`.

    Attributes:
      num_folds: folds in the run.
      epochs: epochs per fold.
      every_seconds: least time between two in-fold lines (none for folds shorter than it).
      write: where the lines go (``print`` by default; a test collects them).
      clock: the time source, seconds (``time.perf_counter``).
    """

    num_folds: int
    epochs: int
    every_seconds: float = 30.0
    write: Callable[[str], None] = print
    clock: Callable[[], float] = time.perf_counter
    _fold: int = 0
    _run_start: float | None = None
    _fold_start: float = 0.0
    _last_line: float = 0.0
    _done: int = 0
    _reused: int = 0
    _epochs_before: int | None = None  # of a fold resumed from a saved epoch

    def start_fold(self, fold: int) -> None:
        now = self.clock()
        if self._run_start is None:
            self._run_start = now
        self._fold, self._fold_start, self._last_line = fold, now, now
        self._epochs_before = None

    def epoch(self, record: dict) -> None:
        """After each epoch: a line when `every_seconds` have passed since the last one."""
        now = self.clock()
        if self._epochs_before is None:  # a resumed fold starts after its saved epochs
            self._epochs_before = record["epoch"] - 1
        if now - self._last_line < self.every_seconds or record["epoch"] >= self.epochs:
            return
        self._last_line = now
        elapsed = max(now - self._fold_start, 1e-9)
        run = record["epoch"] - self._epochs_before  # epochs this process trained
        rate = run / elapsed
        parts = [
            f"fold {self._fold + 1}/{self.num_folds}",
            f"epoch {record['epoch']}/{self.epochs}",
            f"{rate:.1f} epochs/s" if rate >= 1 else f"{elapsed / run:.1f} s/epoch",
        ]
        if record.get("steps"):
            steps = record["steps"] / record["epoch"] * run / elapsed  # those of this run
            parts.append(f"{steps:.0f} steps/s" if steps >= 1 else f"{1 / steps:.1f} s/step")
        parts.append(f"train loss {record['train_loss']:.3f}")
        if "validation_accuracy" in record:
            parts.append(f"val acc {_percent(record['validation_accuracy'])}")
        parts.append(f"fold ETA {duration((self.epochs - record['epoch']) / rate)}")
        self.write("  ".join(parts))

    def reused_fold(self, index: int, fold: dict, path: str) -> None:
        """A fold not run again: its saved record (`codeprop.probes.protocol`) was read."""
        self._reused += 1
        self.write(
            f"fold {index + 1}/{self.num_folds}  finished before: read {path}  "
            f"test acc {_percent(fold['accuracy'])}"
        )

    def end_fold(self, fold: dict) -> None:
        """After each fold, with its record (`codeprop.probes.protocol.fold_record`)."""
        now = self.clock()
        self._done += 1
        left = self.num_folds - self._done - self._reused
        per_fold = (now - self._run_start) / self._done
        parts = [
            f"fold {self._fold + 1}/{self.num_folds}",
            f"done in {now - self._fold_start:.1f} s",
            f"best epoch {fold['best_epoch']}",
            f"val acc {_percent(fold.get('best_validation_accuracy'))}",
            f"test acc {_percent(fold['accuracy'])}",
        ]
        if left:
            parts.append(f"ETA {duration(left * per_fold)}")
        self.write("  ".join(parts))
