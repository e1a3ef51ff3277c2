"""Untrusted programs (generated code and its tests), each in its own isolated subprocess.

`run(program, limits)` starts ``python -I -S codeprop/evals/launcher.py`` in a new session,
sends it the program, and scores what happened as an `Outcome`:

- ``passed``: the program ran to its end;
- ``failed``: an ``AssertionError`` (a test did not hold), or the program ended the
  process itself before its end with status 0;
- ``error``: any other exception (its type is kept), or another exit status;
- ``timed_out``: the wall-clock limit passed; the whole process group is killed (and
  with it the PID namespace, so also processes that left the group);
- ``killed``: a resource limit ended it (CPU seconds: SIGXCPU; file size: SIGXFSZ;
  address space: ``MemoryError``; or any other signal).

The launcher isolates the program before running it (see `codeprop.evals.launcher`): new
mount, network and PID namespaces where the kernel allows them, else blocked sockets
and the process group; private ``/tmp``; ``nobody`` when started as root; resource
limits; a scrubbed environment. `isolation()` says which of these this machine gives.
stdout and stderr go to files bounded by the file-size limit and are read back up to
``Limits.output_bytes``. `run_many` runs programs in parallel, one subprocess each.

Example::

    outcome = sandbox.run("assert 1 + 1 == 2\\n")
    outcome.status  # 'passed'
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

LAUNCHER = Path(__file__).with_name("launcher.py")
STATUSES = ("passed", "failed", "error", "timed_out", "killed")


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one program may use.

    Attributes:
      wall_s: wall-clock seconds before the process group is killed.
      cpu_s: CPU seconds (RLIMIT_CPU).
      memory_bytes: address space (RLIMIT_AS).
      file_bytes: largest file written, stdout and stderr included (RLIMIT_FSIZE).
      open_files: file descriptors (RLIMIT_NOFILE).
      processes: processes of the sandbox's user (RLIMIT_NPROC; all sandboxes of one
        machine share it when they run as ``nobody``).
      output_bytes: stdout and stderr kept in the `Outcome`.
    """

    wall_s: float = 10.0
    cpu_s: int = 10
    memory_bytes: int = 2 * 2**30
    file_bytes: int = 16 * 2**20
    open_files: int = 64
    processes: int = 64
    output_bytes: int = 16 * 2**10


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How one program ended.

    Attributes:
      status: one of `STATUSES`.
      error: the exception type or signal name (``None`` when passed or timed out).
      seconds: wall-clock seconds.
      stdout, stderr: the first ``Limits.output_bytes`` of each (the launcher's lines
        removed from stderr).
      isolation: what the launcher could set up (`isolation`).
      tag: a random word on the launcher's command line, which every process of the
        program inherits (``ps`` shows which run a process belongs to).
    """

    status: str
    error: str | None
    seconds: float
    stdout: str
    stderr: str
    isolation: dict
    tag: str


def _read(path: Path, limit: int) -> str:
    with open(path, "rb") as f:
        return f.read(limit).decode("utf-8", errors="replace")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _score(returncode: int, lines: list[str], nonce: str) -> tuple[str, str | None]:
    reported = [line.split(" ", 2)[1:] for line in lines if line.startswith(nonce + " ")]
    for status, error in reversed(reported):
        if status in STATUSES:
            return status, None if error == "-" else error
    if returncode < 0 or returncode > 128:  # a signal (> 128: from the namespace's init)
        return "killed", _signal_name(-returncode if returncode < 0 else returncode - 128)
    if returncode == 0:
        return "failed", "ExitedEarly"
    return "error", f"ExitStatus{returncode}"


def _kill_group(group: int, tries: int = 200) -> None:
    """SIGKILLs process group ``group`` until it is empty (a process may fork while the
    group is being killed)."""
    for _ in range(tries):
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            return
        except PermissionError:  # only zombies of another user left
            return
        time.sleep(0.005)


def run(program: str, limits: Limits = Limits(), namespaces: bool = True) -> Outcome:
    """Runs ``program`` (Python source) in a fresh sandbox; returns its `Outcome`.

    ``namespaces=False`` skips the namespaces even where the kernel allows them (the
    fallback that machines without them get)."""
    nonce, tag = secrets.token_hex(16), "codeprop-sandbox-" + secrets.token_hex(6)
    with tempfile.TemporaryDirectory(prefix="codeprop-sandbox-") as scratch:
        scratch = Path(scratch)
        workdir = scratch / "work"
        workdir.mkdir()
        request = {
            "nonce": nonce,
            "program": program,
            "workdir": str(workdir),
            "limits": dataclasses.asdict(limits),
            "namespaces": namespaces,
        }
        start = time.perf_counter()
        with open(scratch / "stdout", "wb") as out, open(scratch / "stderr", "wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(LAUNCHER), tag],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=err,
                cwd=workdir,
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                start_new_session=True,
                close_fds=True,
            )
            timed_out = False
            try:
                process.stdin.write(json.dumps(request).encode())
                process.stdin.close()
            except BrokenPipeError:
                pass
            try:
                process.wait(timeout=limits.wall_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                process.kill()
                process.wait()
                _kill_group(process.pid)
        seconds = time.perf_counter() - start
        stderr = _read(scratch / "stderr", limits.output_bytes + 4096)
        stdout = _read(scratch / "stdout", limits.output_bytes)
    lines = stderr.splitlines()
    isolation = {}
    for line in lines:
        if line.startswith(f"{nonce} isolation "):
            isolation = json.loads(line.split(" ", 2)[2])
    if timed_out:
        status, error = "timed_out", None
    else:
        status, error = _score(process.returncode, lines, nonce)
    kept = "\n".join(line for line in lines if not line.startswith(nonce + " "))
    return Outcome(
        status, error, seconds, stdout, kept.strip("\n")[: limits.output_bytes], isolation, tag
    )


def run_many(
    programs: Sequence[str],
    limits: Limits = Limits(),
    workers: int | None = None,
    namespaces: bool = True,
) -> list[Outcome]:
    """`run` of every program, ``workers`` at a time (default: the CPU count); outcomes
    in the programs' order."""
    workers = workers or os.cpu_count() or 1
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda p: run(p, limits, namespaces), programs))


def isolation(namespaces: bool = True) -> dict:
    """What the sandbox gives on this machine: ``network`` (``namespace`` or ``sockets
    blocked``), ``processes`` (``pid namespace`` or ``process group``), ``tmp``
    (``private tmpfs`` or ``shared``), ``user`` (``nobody`` or ``own``) and, where a root
    launcher without namespaces cannot let ``nobody`` read the standard library,
    ``stdlib: preloaded modules only``."""
    return run("pass\n", namespaces=namespaces).isolation
