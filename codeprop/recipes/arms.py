"""Experiments run as child processes, or reused when a finished run of their config is there.

An arm is one ``python -m codeprop.main`` experiment: its gin files and bindings. Its
workdir is reused when it holds a finished run (``operative_config.gin``,
``results.json``, ``embeddings.npz``; a run that fails leaves no operative config) of
exactly the config the arm now parses to: the full config, every binding (a superset of
the operative config that the run wrote, so a change to any binding reruns it), and of
the same input files: a checkpoint or tokenizer that the config names and that changed
since the run (its digest in ``inputs.json``) reruns it too.
Otherwise the arm runs in a child process, its output passed through with the arm's name
in front and kept in ``log.txt``. The code's version is not part of the key: after
changing codeprop, rerun. Processes may share an arms directory (two comparisons with
common arms, a sweep beside a comparison): an arm's run holds a lock in its directory, and
a process that finds the lock held waits and then reuses the finished run. The comparison
(`codeprop.recipes.comparison`) and the sweeps (`codeprop.recipes.sweep`) run their arms
through `run_or_reuse`. SIGTERM to that process (a batch scheduler's time limit, ``kill``)
is passed on to the running arms, which stop at their next safe point; no further arm
starts, and the same command resumes them.
"""

from __future__ import annotations

import concurrent.futures
import fcntl
import hashlib
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time

from codeprop.data import json_files
from codeprop.recipes import config_checks
from codeprop.recipes import workdir as workdir_lib
from codeprop.train import preemption

FINISHED = ("operative_config.gin", "results.json", "embeddings.npz")
INPUTS = "inputs.json"
"""Digests of the files the arm's config names (`input_digests`), written when it runs."""
HASHED_BYTES = 256 << 20
LOCK = ".running.lock"
"""Held by the process running an arm, so that two never run the same arm at once."""
STOPPED = "stopped by SIGTERM"
"""How an arm's state begins when SIGTERM stopped it or kept it from starting."""


class Children:
    """The running arms' child processes; `stop` passes SIGTERM on to each of them, and
    to any started after it (`stopping` is then true)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._live: set[subprocess.Popen] = set()
        self.stopping = False

    def stop(self) -> None:
        with self._lock:
            self.stopping = True
            for child in self._live:
                child.send_signal(signal.SIGTERM)

    def add(self, child: subprocess.Popen) -> None:
        with self._lock:
            self._live.add(child)
            if self.stopping:  # SIGTERM came while it was starting
                child.send_signal(signal.SIGTERM)

    def remove(self, child: subprocess.Popen) -> None:
        with self._lock:
            self._live.discard(child)


def stopped(arm_runs: dict[str, str]) -> bool:
    """Whether SIGTERM stopped any arm of `run_or_reuse`'s states (the run then resumes)."""
    return any(STOPPED in state for state in arm_runs.values())


def slug(name: str) -> str:
    """A directory name for an arm: lower case, runs of other characters as ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def split_spec(spec: list[str]) -> tuple[list[str], list[str]]:
    """(gin files, bindings) of an arm: items ending in ``.gin`` are files."""
    files = [s for s in spec if s.endswith(".gin")]
    return files, [s for s in spec if not s.endswith(".gin")]


def parse_configs(specs: list[tuple[list[str], list[str]]]) -> list[str]:
    """The full gin config each (files, bindings) parses to (``gin.config_str()``, as
    ``config.gin`` records it); run in a child process: parsing clears gin's state."""
    import gin

    configs = []
    for files, bindings in specs:
        if unused := config_checks.parse(files, bindings):
            raise ValueError(
                f"the arm {files + bindings} defines gin macros that nothing uses "
                f"(misspelt?): {', '.join(unused)}"
            )
        configs.append(gin.config_str())
    return configs


def unused_macros_of(specs: list[tuple[list[str], list[str]]]) -> list[list[str]]:
    """Per (files, bindings): the macros its config defines and nothing uses
    (`config_checks.unused_macros`); run in a child process: parsing clears gin's state."""
    return [config_checks.parse(files, bindings) for files, bindings in specs]


def with_common_bindings(
    specs: list[tuple[list[str], list[str]]], bindings: list[str]
) -> dict[str, list]:
    """``bindings`` appended to each (files, own bindings), a macro binding among them only
    where the config uses the macro; run in a child process: parsing clears gin's state.

    Returns:
      ``unused``: per spec, the macros of its config with all of ``bindings`` that
      nothing uses; ``specs``: the (files, bindings) that result; ``configs``: what each
      of those parses to (`parse_configs`). One process does all three, because each
      child pays for importing the modules that the gin files name (about 10 s).
    """
    merged = [(files, [*own, *bindings]) for files, own in specs]
    unused = unused_macros_of(merged)
    specs = [
        (files, [*own, *(b for b in bindings if config_checks.macro_name(b) not in skip)])
        for (files, own), skip in zip(specs, unused, strict=True)
    ]
    return {"unused": unused, "specs": specs, "configs": parse_configs(specs)}


def _configs_in_child(specs: list, function: str = "parse_configs", *args) -> list | dict:
    """``arms.<function>(specs, *args)`` in a child process (JSON in and out)."""
    code = (
        "import json, sys; from codeprop.recipes import arms; "
        f"json.dump(arms.{function}(*json.load(sys.stdin)), sys.stdout)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps([specs, *args]),
        capture_output=True,
        text=True,
        env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    if out.returncode != 0:
        raise ValueError(f"the arms' gin files do not parse:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout)


def input_paths(config: str) -> list[str]:
    """The config's quoted strings that name an existing file or directory (a checkpoint,
    a tokenizer): what the run read besides the code and the benchmark data."""
    found = set()
    for single, double in re.findall(r"'([^'\n]+)'|\"([^\"\n]+)\"", config):
        text = single or double
        if ("/" in text or "." in text) and pathlib.Path(text).exists():
            found.add(text)
    return sorted(found)


def input_digests(config: str) -> dict[str, str]:
    """Path -> sha256 of the content of each of `input_paths` (a directory: of every file
    in it, by relative name; files over `HASHED_BYTES` by their size and mtime)."""
    digests = {}
    for text in input_paths(config):
        path = pathlib.Path(text)
        files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
        digest = hashlib.sha256()
        for file in files:
            digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
            stat = file.stat()
            if stat.st_size > HASHED_BYTES:
                digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
                continue
            with open(file, "rb") as f:
                for chunk in iter(lambda f=f: f.read(1 << 22), b""):
                    digest.update(chunk)
        digests[text] = digest.hexdigest()
    return digests


def is_finished(arm_dir: pathlib.Path, config: str) -> str | None:
    """Why the run in `arm_dir` cannot be reused for `config`, or None when it can: it
    must have finished, with the same config and the same input files (`INPUTS`)."""
    missing = [name for name in FINISHED if not (arm_dir / name).is_file()]
    if not (arm_dir / "config.gin").is_file():
        return "no run yet"
    if missing:
        return f"the last run did not finish (no {', '.join(missing)})"
    if (arm_dir / "config.gin").read_text() != config:
        return "its config changed"
    if (arm_dir / INPUTS).is_file():
        recorded = json_files.read_object(arm_dir / INPUTS, workdir_lib.WorkdirError)
        now = input_digests(config)
        changed = sorted(k for k in set(recorded) | set(now) if recorded.get(k) != now.get(k))
        if changed:
            return f"an input changed: {', '.join(changed)}"
    return None


def code_version() -> str:
    """The git commit of the working directory's checkout (with ``+local changes`` when
    it has uncommitted ones), or ``unknown`` outside a git checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" +local changes" if dirty else "")


def run_arm(
    name: str,
    arm_dir: pathlib.Path,
    files: list[str],
    bindings: list[str],
    children: Children | None = None,
) -> int:
    """Runs one arm's experiment in a child process; its output lines get the arm's name
    in front and go to ``log.txt``, and ``run.json`` records the command, the code
    version, the start time, the seconds taken and the exit status. Returns the status.
    The child is in `children` while it runs (so that SIGTERM reaches it)."""
    # The arm's config changed when it runs again over a finished run: its old outputs
    # are moved to replaced/ (`codeprop.recipes.workdir`); the same config resumes.
    command = [sys.executable, "-m", "codeprop.main", f"--workdir={arm_dir}", "--overwrite"]
    command += [f"--gin_file={f}" for f in files] + [f"--gin_bindings={b}" for b in bindings]
    arm_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "command": command[1:],
        "code_version": code_version(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    start = time.perf_counter()
    with open(arm_dir / "log.txt", "w") as log:
        child = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env=os.environ | {"PYTHONUNBUFFERED": "1"},  # its progress as it happens
        )
        if children is not None:
            children.add(child)
        try:
            for line in child.stdout:
                log.write(line)
                print(f"[{name}] {line}", end="", flush=True)
            status = child.wait()
        finally:
            if children is not None:
                children.remove(child)
    record |= {"seconds": round(time.perf_counter() - start, 1), "exit_status": status}
    (arm_dir / "run.json").write_text(json.dumps(record, indent=1) + "\n")
    return status


def run_record(arm_dir: pathlib.Path) -> dict:
    """What ``run.json`` recorded of the arm's last run ({} for a run not made by
    `run_arm`, e.g. one made by hand in that directory)."""
    path = arm_dir / "run.json"
    return json_files.read_object(path, workdir_lib.WorkdirError) if path.is_file() else {}


def run_or_reuse(
    arms_dir: pathlib.Path,
    arms: dict[str, tuple[list[str], list[str]]],
    rerun: bool = False,
    run: bool = True,
    parallel: int = 1,
    configs: dict[str, str] | None = None,
) -> tuple[dict[str, pathlib.Path], dict[str, str]]:
    """Runs or reuses every arm in ``arms_dir/<slug>``.

    Args:
      arms_dir: the directory of the arms' workdirs (several comparisons and sweeps may
        share one: each arm runs in one process at a time).
      arms: name -> (gin files, bindings).
      rerun: run every arm even when a finished run of its config is there.
      run: False runs nothing (arms without a finished run are reported as not run).
      parallel: how many arms run at once (each its own process, started in the order of
        `arms`); the results do not depend on it, only the wall time.
      configs: name -> the config each arm parses to, when the caller has them from
        `with_common_bindings`; else they are parsed here (`parse_configs`).

    SIGTERM (to this process, in its main thread) is passed on to the running arms, which
    stop at a safe point, and keeps the others from starting: their states then begin
    with `STOPPED` or are ``not run (stopped by SIGTERM)`` (see `stopped`).

    Returns:
      (name -> workdir, name -> what happened: reused, ran in N s, failed, stopped by
      SIGTERM, not run).
    """
    if parallel < 1:
        raise ValueError(f"parallel must be at least 1, not {parallel}")
    if configs is None:
        configs = dict(zip(arms, _configs_in_child(list(arms.values())), strict=True))
    elif set(configs) != set(arms):
        raise ValueError(f"configs are for {sorted(configs)}, the arms are {sorted(arms)}")
    arm_dirs, arm_runs, to_run = {}, {}, []
    for name in arms:
        arm_dir = pathlib.Path(arms_dir) / slug(name)
        arm_dirs[name] = arm_dir
        why = "rerun asked for" if rerun else is_finished(arm_dir, configs[name])
        if why is None:
            arm_runs[name] = "reused a finished run of the same config"
            print(f"[{name}] reusing {arm_dir} (same config, finished)", flush=True)
            if not (arm_dir / INPUTS).is_file():  # a run from before inputs were recorded
                (arm_dir / INPUTS).write_text(json.dumps(input_digests(configs[name]), indent=1))
        elif not run:
            arm_runs[name] = f"not run ({why})"
        else:
            to_run.append(name)
            print(f"[{name}] to run ({why})", flush=True)

    children = Children()
    not_started = f"not run ({STOPPED} before it started)"

    def one(name: str) -> str:
        arm_dir = arm_dirs[name]
        arm_dir.mkdir(parents=True, exist_ok=True)
        with open(arm_dir / LOCK, "w") as lock:
            # Another process (a second comparison or sweep over this workdir) may be
            # running this arm: wait for it, then reuse what it finished.
            while not _try_lock(lock):
                if children.stopping:
                    return not_started
                time.sleep(1.0)
            if not rerun and is_finished(arm_dir, configs[name]) is None:
                print(f"[{name}] reusing {arm_dir} (finished by another process)", flush=True)
                return "reused a finished run of the same config"
            if children.stopping:
                return not_started
            print(f"[{name}] running in {arm_dir}", flush=True)
            (arm_dir / INPUTS).write_text(json.dumps(input_digests(configs[name]), indent=1))
            start = time.perf_counter()
            status = run_arm(name, arm_dir, *arms[name], children=children)
        if children.stopping and (status != 0 or is_finished(arm_dir, configs[name])):
            return f"{STOPPED} (exit status {status}); the same command resumes it"
        if status != 0:
            return f"failed (exit status {status}; see {arm_dir / 'log.txt'})"
        return f"ran in {time.perf_counter() - start:.0f} s"

    with (
        preemption.Preemption(on_request=children.stop),
        concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool,
    ):
        for name, state in zip(to_run, pool.map(one, to_run), strict=True):
            arm_runs[name] = state
    return arm_dirs, {name: arm_runs[name] for name in arms}


def _try_lock(lock) -> bool:
    """Takes the exclusive lock on the open file `lock` if no other process holds it."""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
