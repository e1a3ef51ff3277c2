"""Untrusted programs (generated code and its tests), each in its own isolated subprocess.

`run(program, limits)` sends the program to a launcher server (``python -I -S
codeprop/evals/launcher.py`` in a new session), which forks a fresh child for it, and
scores what happened as an `Outcome`:

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
``Limits.output_bytes``. `run_many` runs programs in parallel on one `Server` per worker:
each program is still its own process (a child of the clean server, never of another
program), but an interpreter starts once per worker and not once per program. If a server
dies mid-program, the program is scored ``error`` (``SandboxLost``) and a new server takes
the next one.

Example::

    outcome = sandbox.run("assert 1 + 1 == 2\\n")
    outcome.status  # 'passed'
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
import os
import secrets
import select
import signal
import subprocess
import sys
import tempfile
import threading
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


class SandboxLost(RuntimeError):
    """The launcher server ended or answered out of turn (the program is scored
    ``error``, ``SandboxLost``, and a new server takes the next one)."""


class Server:
    """One launcher server (`codeprop.evals.launcher`): runs programs one at a time, each
    in a child forked from the clean server, so an interpreter starts once per server and
    not once per program. A context manager; `run` starts the server when needed.

    Attributes:
      namespaces: False skips the namespaces even where the kernel allows them.
      tag: a random word on the server's command line, which every process of its
        programs inherits (``ps`` shows which run a process belongs to).
    """

    def __init__(self, namespaces: bool = True):
        self.namespaces = namespaces
        self.tag = "codeprop-sandbox-" + secrets.token_hex(6)
        self._process: subprocess.Popen | None = None
        self._buffer = b""
        self._requests = 0

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(LAUNCHER), self.tag],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd="/",
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            start_new_session=True,
            close_fds=True,
        )
        self._buffer = b""

    def close(self) -> None:
        """Ends the server (its programs have ended: `run` waits for each)."""
        if self._process is None:
            return
        with contextlib.suppress(OSError):
            self._process.stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process.stdout.close()
        _kill_group(self._process.pid)
        self._process = None

    def _reply(self, word: str, deadline: float) -> int | None:
        """The number in the server's next reply ``<id> <word> <number>``; None when
        ``deadline`` (`time.perf_counter`) passes first."""
        fd = self._process.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return None
            if select.select([fd], [], [], remaining)[0]:
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise SandboxLost("the launcher server ended")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        fields = line.decode(errors="replace").split()
        if fields[:2] != [str(self._requests), word] or len(fields) != 3:
            raise SandboxLost(f"unexpected reply {line!r} (waiting for {word})")
        return int(fields[2])

    def run(self, program: str, limits: Limits = Limits()) -> Outcome:
        """Runs ``program`` (Python source) in a fresh sandbox; returns its `Outcome`."""
        if self._process is None or self._process.poll() is not None:
            self.close()
            self._start()
        self._requests += 1
        nonce = secrets.token_hex(16)
        with tempfile.TemporaryDirectory(prefix="codeprop-sandbox-") as scratch:
            scratch = Path(scratch)
            (scratch / "work").mkdir()
            request = {
                "id": self._requests,
                "nonce": nonce,
                "program": program,
                "workdir": str(scratch / "work"),
                "stdout": str(scratch / "stdout"),
                "stderr": str(scratch / "stderr"),
                "limits": dataclasses.asdict(limits),
                "namespaces": self.namespaces,
            }
            start = time.perf_counter()
            timed_out, lost, returncode, child = False, None, None, None
            try:
                self._process.stdin.write(json.dumps(request).encode() + b"\n")
                self._process.stdin.flush()
                child = self._reply("pid", start + max(10.0, limits.wall_s))
                if child is None:
                    raise SandboxLost("the launcher server did not start the program")
                returncode = self._reply("exit", start + limits.wall_s)
                if returncode is None:
                    timed_out = True
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(child, signal.SIGKILL)
                    returncode = self._reply("exit", time.perf_counter() + 10.0)
                    if returncode is None:
                        raise SandboxLost("the program outlived SIGKILL")
            except (SandboxLost, OSError) as error:
                lost = error
                self._process.kill()
                self.close()
            finally:
                if child is not None:
                    _kill_group(child)
            seconds = time.perf_counter() - start
            stderr = _read(scratch / "stderr", limits.output_bytes + 4096)
            stdout = _read(scratch / "stdout", limits.output_bytes)
        lines = stderr.splitlines()
        isolation = {}
        for line in lines:
            if line.startswith(f"{nonce} isolation "):
                isolation = json.loads(line.split(" ", 2)[2])
        if lost is not None:
            status, error = "error", "SandboxLost"
        elif timed_out:
            status, error = "timed_out", None
        else:
            status, error = _score(returncode, lines, nonce)
        kept = "\n".join(line for line in lines if not line.startswith(nonce + " "))
        if lost is not None:
            kept += f"\nsandbox lost: {lost}"
        return Outcome(
            status,
            error,
            seconds,
            stdout,
            kept.strip("\n")[: limits.output_bytes],
            isolation,
            self.tag,
        )


def run(program: str, limits: Limits = Limits(), namespaces: bool = True) -> Outcome:
    """Runs ``program`` (Python source) in a fresh sandbox of its own server; returns its
    `Outcome`. ``namespaces=False`` skips the namespaces even where the kernel allows them
    (the fallback that machines without them get)."""
    with Server(namespaces) as server:
        return server.run(program, limits)


def run_many(
    programs: Sequence[str],
    limits: Limits = Limits(),
    workers: int | None = None,
    namespaces: bool = True,
) -> list[Outcome]:
    """Every program, each in its own sandbox, on ``workers`` servers (default: the CPU
    count) at a time; outcomes in the programs' order."""
    workers = min(workers or os.cpu_count() or 1, len(programs))
    outcomes: list[Outcome | None] = [None] * len(programs)
    order = iter(range(len(programs)))
    lock = threading.Lock()

    def work() -> None:
        with Server(namespaces) as server:
            while True:
                with lock:
                    index = next(order, None)
                if index is None:
                    return
                outcomes[index] = server.run(programs[index], limits)

    with concurrent.futures.ThreadPoolExecutor(max(workers, 1)) as pool:
        for future in [pool.submit(work) for _ in range(workers)]:
            future.result()
    return outcomes


def isolation(namespaces: bool = True) -> dict:
    """What the sandbox gives on this machine: ``network`` (``namespace`` or ``sockets
    blocked``), ``processes`` (``pid namespace`` or ``process group``), ``tmp``
    (``private tmpfs`` or ``shared``), ``user`` (``nobody`` or ``own``) and, where a root
    launcher without namespaces cannot let ``nobody`` read the standard library,
    ``stdlib: preloaded modules only``."""
    return run("pass\n", namespaces=namespaces).isolation
