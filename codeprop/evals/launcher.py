"""The sandbox's server: forks one isolated child per untrusted program.

Run by `codeprop.evals.sandbox` as ``python -I -S launcher.py <tag>`` (standard library
only: it imports nothing of codeprop), one server per evaluator thread. The server imports
the modules that tests use most (`PRELOADED`) once, then reads requests, one JSON object
per line on stdin: ``{"id", "nonce", "program", "workdir", "stdout", "stderr", "limits",
"namespaces"}``. For each it forks a child, replies ``<id> pid <pid>`` on stdout, waits
for the child and replies ``<id> exit <status>`` (a negative status: killed by that
signal). The server never runs a program itself: each child starts from the clean
server's state and does, in order:

0. a new session (the evaluator kills its process group on timeout); stdin from
   ``/dev/null``, stdout and stderr to the request's files, every other file closed;
1. new mount, network and PID namespaces (``unshare``; as a non-root user inside a new user
   namespace), when the kernel allows them; a first child is PID 1 of the new PID
   namespace and the program its child, so that every process the program starts dies
   when it ends;
2. in the mount namespace, ``/`` made private and fresh tmpfs mounts on ``/tmp`` and
   ``/dev/shm``; the working directory is ``/tmp/work``; as root, the standard library
   bind-mounted read-only at ``/tmp/.stdlib`` (``nobody`` may not reach the interpreter's
   directory). Without namespaces, the evaluator's fresh directory ``workdir`` is used and
   ``socket.socket`` is blocked;
3. as root: every privilege dropped to ``nobody`` (so the process limit applies);
4. resource limits (CPU seconds, address space, file size, open files, processes, no core
   files), a scrubbed environment with ``HOME`` and ``TMPDIR`` in the working directory;
5. the program, compiled and executed as ``__main__``; the outcome is written to stderr
   as one line ``<nonce> <status> <error type>`` — ``passed``, ``failed``
   (``AssertionError``), ``error`` (any other exception, ``SystemExit`` included) or
   ``killed`` (``MemoryError``). A program that ends the process itself writes no such
   line, and the evaluator scores it from the exit status.

The first line of the child's stderr is ``<nonce> isolation <json>``: what could be set up.
"""

import contextlib
import ctypes
import errno
import json
import os
import resource
import sys
import traceback

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND = 1, 2, 4, 32, 4096
MS_REC, MS_PRIVATE = 16384, 1 << 18
NOBODY = 65534


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _unshare(flags: int) -> bool:
    return _libc().unshare(ctypes.c_int(flags)) == 0


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> bool:
    encode = lambda s: None if s is None else s.encode()  # noqa: E731
    return (
        _libc().mount(
            encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)
        )
        == 0
    )


def _map_user(uid: int, gid: int) -> None:
    """Inside a new user namespace: be its root, mapped to the caller's user outside."""
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"0 {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"0 {gid} 1")


def _private_tmp(size_bytes: int) -> str | None:
    """tmpfs on /tmp and /dev/shm in this mount namespace; the new working directory."""
    if not _mount("none", "/", None, MS_REC | MS_PRIVATE, None):
        return None  # Never mount anything that could show outside.
    options = f"size={size_bytes},mode=1777"
    if not _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, options):
        return None
    _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, options)
    os.mkdir("/tmp/work", 0o777)
    return "/tmp/work"


def _block_sockets() -> None:
    import socket

    def refuse(*args, **kwargs):
        raise PermissionError("network access is disabled in the sandbox")

    socket.socket = refuse
    socket.create_connection = refuse
    socket.socketpair = refuse


def _limit(limits: dict) -> None:
    for name, value in (
        ("RLIMIT_CPU", (limits["cpu_s"], limits["cpu_s"] + 1)),
        ("RLIMIT_AS", (limits["memory_bytes"],) * 2),
        ("RLIMIT_FSIZE", (limits["file_bytes"],) * 2),
        ("RLIMIT_NOFILE", (limits["open_files"],) * 2),
        ("RLIMIT_NPROC", (limits["processes"],) * 2),
        ("RLIMIT_CORE", (0, 0)),
    ):
        resource.setrlimit(getattr(resource, name), value)


def _report(nonce: str, *fields: str) -> None:
    os.write(2, ("\n" + " ".join([nonce, *fields]) + "\n").encode())


def _classify(error: BaseException) -> tuple[str, str]:
    """(status, error type) of an exception the program raised."""
    if isinstance(error, AssertionError):
        return "failed", "AssertionError"
    if isinstance(error, MemoryError):
        return "killed", "MemoryError"
    if isinstance(error, OSError) and error.errno == errno.EFBIG:
        return "killed", "FileSizeLimit"
    return "error", type(error).__name__


def _run(nonce: str, program: str) -> None:
    outcome = ("passed", "-")
    try:
        code = compile(program, "<program>", "exec")
        exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
    except BaseException as error:  # noqa: BLE001 — every outcome is reported
        traceback.print_exception(type(error), error, error.__traceback__.tb_next)
        outcome = _classify(error)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    _report(nonce, *outcome)
    os._exit(0)


PRELOADED = (
    "array", "bisect", "cmath", "collections", "copy", "dataclasses", "datetime", "decimal",
    "fractions", "functools", "hashlib", "heapq", "itertools", "json", "math", "numbers",
    "operator", "random", "re", "statistics", "string", "struct", "textwrap", "time",
    "typing", "unicodedata",
)  # fmt: skip


def _reachable_by_others(path: str) -> bool:
    """Whether a user other than the owner may read ``path`` and pass every directory
    above it."""
    parts = os.path.abspath(path).split(os.sep)
    for i in range(2, len(parts) + 1):
        if not os.stat(os.sep.join(parts[:i]) or os.sep).st_mode & 0o001:
            return False
    return bool(os.stat(path).st_mode & 0o004)


def _preload() -> None:
    """Imports `PRELOADED` in the server: once for every program, and while the
    interpreter's directory can still be read (a root child without a mount namespace
    becomes ``nobody``, who may not read it)."""
    for name in PRELOADED:
        __import__(name)


def _wait_and_exit(child: int) -> None:
    """Waits for ``child`` and ends this process the same way (a signal as 128 + its
    number)."""
    _, status = os.waitpid(child, 0)
    signal_number = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
    os._exit(128 + signal_number if signal_number else os.WEXITSTATUS(status))


def _readable_stdlib() -> None:
    """The standard library bind-mounted read-only under the private /tmp and put on
    ``sys.path``: ``nobody`` may not be able to reach the interpreter's own directory."""
    stdlib = os.path.dirname(os.__file__)
    target = "/tmp/.stdlib"
    os.mkdir(target, 0o755)
    if _mount(stdlib, target, None, MS_BIND | MS_REC, None):
        _mount("none", target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC, None)
        sys.path[:] = [p.replace(stdlib, target, 1) for p in sys.path]
        for module in list(sys.modules.values()):  # packages imported already (encodings)
            path = getattr(module, "__path__", None)
            if isinstance(path, list):
                path[:] = [p.replace(stdlib, target, 1) for p in path]
        sys.path_importer_cache.clear()


def _child(request: dict) -> None:
    """Steps 0-5 of the module docstring for one request; never returns."""
    os.setsid()
    null = os.open(os.devnull, os.O_RDONLY)
    out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    for source, target in ((null, 0), (out, 1), (err, 2)):
        os.dup2(source, target)
    os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    nonce, limits = request["nonce"], request["limits"]
    root = os.geteuid() == 0
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID
    namespaces = request["namespaces"] and _unshare(flags if root else flags | CLONE_NEWUSER)
    if namespaces and not root:
        _map_user(uid, gid)
    workdir = None
    if namespaces:
        init = os.fork()  # PID 1 of the new namespace: its processes end with it
        if init:
            _wait_and_exit(init)
        workdir = _private_tmp(4 * limits["file_bytes"])
        if workdir and root:
            _readable_stdlib()
        program = os.fork()  # The program is not PID 1, which ignores most signals.
        if program:
            _wait_and_exit(program)
    isolation = {
        "network": "namespace" if namespaces else "sockets blocked",
        "processes": "pid namespace" if namespaces else "process group",
        "tmp": "private tmpfs" if workdir else "shared",
        "user": "nobody" if root else "own",
    }
    workdir = workdir or request["workdir"]
    if root:
        os.chown(workdir, NOBODY, NOBODY)
    os.chdir(workdir)
    if not namespaces:
        _block_sockets()
        if root and not _reachable_by_others(os.path.dirname(os.__file__)):
            isolation["stdlib"] = "preloaded modules only"
    if root:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    os.environ.clear()
    os.environ.update(
        {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"}
    )
    _limit(limits)
    os.write(2, f"{nonce} isolation {json.dumps(isolation)}\n".encode())
    _run(nonce, request["program"])


def serve() -> None:
    """Answers requests from stdin until it closes (see the module docstring)."""
    replies = os.dup(1)
    _preload()
    for line in sys.stdin.buffer:
        request = json.loads(line)
        child = os.fork()
        if not child:
            try:
                _child(request)
            except BaseException:  # noqa: BLE001 — reported in the child's stderr
                traceback.print_exc()
            finally:
                os._exit(70)  # _child never returns; an exception in it ends here
        os.write(replies, f"{request['id']} pid {child}\n".encode())
        _, status = os.waitpid(child, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        os.write(replies, f"{request['id']} exit {code}\n".encode())


if __name__ == "__main__":
    serve()
