"""Progress lines a person can read: a few per fold, with rate, ETA and the current metric.

Per-epoch metrics go to TensorBoard and results files; the terminal gets at most one line
every `Progress.every_seconds` while a fold trains and one line when it ends:

    fold 3/10  epoch 20/60  6.1 epochs/s  48 steps/s  train loss 0.612  val acc 72.1%
    fold 3/10  done in 9.8 s  best epoch 41  val acc 73.8%  test acc 70.6%  ETA 1m 9s

An epoch or embedding pass that runs longer than `Progress.every_seconds` (an LLM
fine-tuned on POJ-104: an hour an epoch on a CPU) also gets lines from inside it:

    fold 1/1  epoch 1/2  340/975 steps  3.1 s/step  epoch ETA 32m 48s
    fold 1/1  embedding  12,800/52,000 rows  41 rows/s  ETA 15m 56s

The ETA of a fold extrapolates its epoch rate; the ETA after a fold extrapolates the mean
time per finished fold over the folds left; the ETA inside a pass, the pass's rate since
its first report in this process.
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
    _stage: tuple | None = None  # (fold, stage) of the pass `within` reports on
    _stage_start: float = 0.0
    _stage_done: int = 0

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

    def within(self, stage: str, done: int, total: int, unit: str) -> None:
        """Inside a pass (`stage`: ``'epoch 2/10'``, ``'embedding'``), `done` of `total`
        `unit`s done: a line when `every_seconds` have passed since the last line and
        since the pass's first report (so passes shorter than that print nothing)."""
        now = self.clock()
        if self._stage != (self._fold, stage) or done < self._stage_done:
            self._stage, self._stage_start, self._stage_done = (self._fold, stage), now, done
            return
        if now - max(self._last_line, self._stage_start) < self.every_seconds:
            return
        if done == self._stage_done:
            return
        self._last_line = now
        rate = (done - self._stage_done) / (now - self._stage_start)  # units/s
        pace = f"{rate:.0f} {unit}s/s" if rate >= 1 else f"{1 / rate:.1f} s/{unit}"
        eta = "epoch ETA" if stage.startswith("epoch") else "ETA"
        self.write(
            f"fold {self._fold + 1}/{self.num_folds}  {stage}  {done:,}/{total:,} {unit}s  "
            f"{pace}  {eta} {duration(max(total - done, 0) / rate)}"
        )

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
