"""Who may run in a workdir, and what the workdir says about its last run.

``python -m codeprop.main`` claims its ``--workdir`` through `claimed` before the
experiment starts:

- **One run at a time.** The run holds an exclusive lock on ``.workdir.lock`` (its pid,
  host and start time written in it) until it ends; a second run in the same workdir is
  refused with `WorkdirBusy`, naming the holder. The lock is the operating system's
  (``flock``): a run that is killed releases it.
- **No clobbering.** ``config.gin`` records the full config of the run whose outputs are
  in the workdir. A run whose config differs is refused with `WorkdirError`, the
  differing lines listed, when the workdir holds outputs of that other run; with
  ``overwrite`` the other run's files are first moved to ``replaced/<UTC time>/`` (nothing
  is deleted), except the caches that key each entry by its own config and are safe to
  share (`SHARED_CACHES`: a comparison's arms, a probe's finished folds) and the files
  of the process that launched this run (`LAUNCHER_FILES`). The same config again is a
  resume: nothing moves; nor for a comparison or sweep that only reports what has
  finished (`HOW_NOT_WHAT`).
- **A failed run is marked.** `STATUS` (``run_status.json``) says ``running``,
  ``finished``, ``stopped`` (SIGTERM; the same command resumes) or ``failed`` (with the
  exception), with the pid, host, command and times; ``operative_config.gin`` exists only
  after a finished run. So the files in a workdir never claim results that its config did
  not produce.
"""

from __future__ import annotations

import contextlib
import datetime
import difflib
import fcntl
import json
import os
import pathlib
import re
import shutil
import socket
import sys

LOCK = ".workdir.lock"
STATUS = "run_status.json"
CONFIG = "config.gin"
OPERATIVE = "operative_config.gin"
REPLACED = "replaced"
SHARED_CACHES = ("arms", "folds")
"""Entries keyed by their own config (`codeprop.recipes.arms`, `codeprop.probes.folds`):
a run of another config neither reads nor changes what is not its own."""
LAUNCHER_FILES = ("log.txt", "run.json", "inputs.json", ".running.lock")
"""Written into an arm's workdir by the comparison or sweep that runs it
(`codeprop.recipes.arms`) before and after the run, not by the run."""
BOOKKEEPING = (LOCK, STATUS, CONFIG, REPLACED, *LAUNCHER_FILES)


class WorkdirError(ValueError):
    """The workdir holds another experiment's outputs (message: the path, the
    differences and how to proceed), or one of its records cannot be read."""


class WorkdirBusy(WorkdirError):
    """Another run holds the workdir's lock (message: its pid, host, start, command)."""


HOW_NOT_WHAT = re.compile(
    r"^(\S+\.)?((run_comparison|run_sweep)\.(run|rerun|parallel)"
    r"|(run_graph_probe|run_llm_probe)\.checkpoint_every) = "
)
"""Bindings that change how a run goes about its work, not what it computes: a
comparison's or sweep's report of the finished arms only (``run = False``) is the same
experiment, as is a probe that saves its training state more often."""


def significant_lines(config: str) -> list[str]:
    """The lines of a gin config that define the experiment: no comments, blank lines or
    `HOW_NOT_WHAT` bindings."""
    return [
        line
        for line in config.splitlines()
        if line.strip() and not line.startswith("#") and not HOW_NOT_WHAT.match(line)
    ]


def config_differences(old: str, new: str, limit: int = 40) -> list[str]:
    """The `significant_lines` of two gin configs that differ, ``- old`` / ``+ new``, at
    most `limit` of them and then a count of the rest."""
    lines = [
        f"{line[0]} {line[1:]}"
        for line in difflib.unified_diff(
            significant_lines(old), significant_lines(new), lineterm="", n=0
        )
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    if len(lines) > limit:
        lines = [*lines[:limit], f"... and {len(lines) - limit} more"]
    return lines


def outputs(workdir: pathlib.Path) -> list[str]:
    """The names in `workdir` that a run wrote as its outputs (not `BOOKKEEPING`)."""
    if not workdir.is_dir():
        return []
    return sorted(p.name for p in workdir.iterdir() if p.name not in BOOKKEEPING)


def read_status(workdir: pathlib.Path) -> dict:
    """What `STATUS` says of the workdir's last run ({} when there is none)."""
    path = pathlib.Path(workdir) / STATUS
    if not path.is_file():
        return {}
    try:
        status = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WorkdirError(f"{path}: not a run status written by codeprop ({e})") from e
    if not isinstance(status, dict):
        raise WorkdirError(f"{path}: not a run status written by codeprop (not an object)")
    return status


class Run:
    """A claimed workdir; `finished` or `stopped` records how the run ended (an
    exception inside `claimed` records ``failed``)."""

    def __init__(self, workdir: pathlib.Path, record: dict):
        self.workdir = workdir
        self.record = record

    def _write(self, state: str, **extra) -> None:
        if state != "running":
            now = datetime.datetime.now(datetime.UTC)
            extra["ended"] = now.isoformat(timespec="seconds")
        self.record = {**self.record, "state": state, **extra}
        path = self.workdir / STATUS
        path.with_suffix(".tmp").write_text(json.dumps(self.record, indent=1) + "\n")
        path.with_suffix(".tmp").replace(path)

    def finished(self, operative_config: str) -> None:
        """Writes the operative config, then marks the run finished."""
        (self.workdir / OPERATIVE).write_text(operative_config)
        self._write("finished")

    def stopped(self) -> None:
        """Marks a run that stopped at a safe point (SIGTERM) and resumes."""
        self._write("stopped")


def _move_aside(workdir: pathlib.Path, names: list[str], stamp: str) -> pathlib.Path:
    target = workdir / REPLACED / stamp
    suffix = 0
    while target.exists():
        suffix += 1
        target = workdir / REPLACED / f"{stamp}-{suffix}"
    target.mkdir(parents=True)
    for name in names:
        shutil.move(str(workdir / name), str(target / name))
    return target


@contextlib.contextmanager
def claimed(workdir: str | os.PathLike, config: str, overwrite: bool = False):
    """Claims `workdir` for a run of `config` (a full gin config, ``gin.config_str()``)
    until the block ends; yields a `Run`.

    Raises:
      WorkdirBusy: another run holds the workdir.
      WorkdirError: the workdir holds outputs of a run of another config (without
        `overwrite`), or its records are unreadable.
    """
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    lock = open(workdir / LOCK, "a+")  # noqa: SIM115 -- held until the block ends
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "a process that wrote nothing in the lock"
            raise WorkdirBusy(
                f"{workdir} is in use by another run ({holder}); wait for it to end, or "
                "choose another --workdir"
            ) from None
        now = datetime.datetime.now(datetime.UTC)
        record = {
            "state": "running",
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": now.isoformat(timespec="seconds"),
            "command": sys.argv,
        }
        lock.seek(0)
        lock.truncate()
        lock.write(
            f"pid {record['pid']} on {record['host']}, started {record['started']}, "
            f"command {' '.join(sys.argv)}\n"
        )
        lock.flush()
        previous = read_status(workdir)
        config_path = workdir / CONFIG
        old = config_path.read_text(errors="replace") if config_path.is_file() else None
        found = [n for n in outputs(workdir) if n not in SHARED_CACHES]
        other = old is not None and significant_lines(old) != significant_lines(config)
        if other and found:
            if not overwrite:
                state = previous.get("state", "of unknown state")
                if state == "running":  # yet the lock was free: the process died
                    state = "died without a word (killed?)"
                last = f"its last run {state}" if previous else "an earlier run"
                raise WorkdirError(
                    f"{workdir} holds outputs of another experiment ({last}; "
                    f"{', '.join(found[:8])}{' ...' if len(found) > 8 else ''}). Its config "
                    "differs from this run's:\n"
                    + "\n".join(config_differences(old, config))
                    + "\nChoose another --workdir, rerun that experiment's own command to "
                    "resume it, or pass --overwrite to move its files to "
                    f"{workdir / REPLACED}/ and run this one here."
                    + (
                        f" Its finished arms in {workdir / 'arms'}/ serve a sweep or "
                        "comparison in another --workdir that binds "
                        f"`sweep.run_sweep.arms_dir = '{workdir / 'arms'}'` (or "
                        "`comparison.run_comparison.arms_dir`): a grown grid runs only its "
                        "new points."
                        if (workdir / "arms").is_dir()
                        else ""
                    )
                )
            moved = _move_aside(workdir, [*found, CONFIG], now.strftime("%Y%m%dT%H%M%SZ"))
            if previous:
                (moved / STATUS).write_text(json.dumps(previous, indent=1) + "\n")
            record["replaced"] = str(moved)
            print(f"moved the outputs of another experiment in {workdir} to {moved}", flush=True)
        (workdir / OPERATIVE).unlink(missing_ok=True)
        config_path.write_text(config)
        run = Run(workdir, record)
        run._write("running")
        try:
            yield run
        except BaseException as e:
            run._write("failed", error=f"{type(e).__name__}: {e}"[:2000])
            raise
    finally:
        lock.close()  # releases the lock
