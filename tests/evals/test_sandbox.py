"""Untrusted programs are contained and scored: each outcome, with namespaces and in the
fallback without them, while the evaluator and the other programs go on."""

import os
import pathlib
import signal
import socket
import threading

import pytest

from codeprop.evals import sandbox

LIMITS = sandbox.Limits(wall_s=4, cpu_s=2, memory_bytes=2**30, file_bytes=2**20)
MODES = [pytest.param(True, id="namespaces"), pytest.param(False, id="fallback")]


def _live_processes(tag: str) -> int:
    """Live (not zombie) processes with ``tag`` on their command line, from /proc."""
    count = 0
    for proc in pathlib.Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        count += tag.encode() in cmdline and state != "Z"
    return count


@pytest.mark.parametrize("namespaces", MODES)
def test_each_outcome(namespaces):
    cases = {
        "assert sorted([3, 1, 2]) == [1, 2, 3]\nprint('ok')": ("passed", None),
        "assert 1 == 2": ("failed", "AssertionError"),
        "import collections, math, re\nraise KeyError(math.pi)": ("error", "KeyError"),
        "import os\nos._exit(0)": ("failed", "ExitedEarly"),
        "import sys\nsys.exit(0)": ("error", "SystemExit"),
        "x = bytearray(10 * 2**30)": ("killed", "MemoryError"),
        "open('big', 'wb').write(b'x' * 2**21)": ("killed", "FileSizeLimit"),
        "while True:\n    pass": ("killed", "SIGXCPU"),
        "import time\ntime.sleep(60)": ("timed_out", None),
    }
    outcomes = sandbox.run_many(list(cases), LIMITS, workers=4, namespaces=namespaces)
    for (program, expected), outcome in zip(cases.items(), outcomes, strict=True):
        assert (outcome.status, outcome.error) == expected, (program, outcome)
    assert outcomes[0].stdout == "ok\n" and "KeyError: 3.14159" in outcomes[2].stderr
    assert outcomes[-1].seconds >= LIMITS.wall_s
    isolation = outcomes[0].isolation
    assert set(isolation) >= {"network", "processes", "tmp", "user"}
    if not namespaces:
        assert isolation["network"] == "sockets blocked"


@pytest.mark.parametrize("namespaces", MODES)
def test_a_fork_bomb_is_contained_and_leaves_no_process(namespaces):
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    outcome = sandbox.run(bomb, LIMITS, namespaces=namespaces)
    assert outcome.status in ("timed_out", "killed")
    assert _live_processes(outcome.tag) == 0
    assert _live_processes(sandbox.run("import time\ntime.sleep(30)", LIMITS).tag) == 0
    assert sandbox.run("assert True", LIMITS, namespaces=namespaces).status == "passed"


@pytest.mark.parametrize("namespaces", MODES)
def test_no_network_no_secrets_no_writes_outside_no_signals_to_the_evaluator(
    namespaces, tmp_path, monkeypatch
):
    monkeypatch.setenv("CODEPROP_SECRET", "do-not-leak")
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)
    port = server.getsockname()[1]
    outside = tmp_path / "escaped.txt"
    programs = [
        f"import socket\ns = socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', {port}))",
        "import os\nprint(dict(os.environ))\nassert 'CODEPROP_SECRET' not in os.environ",
        f"open({str(outside)!r}, 'w').write('x')",
        f"import os, signal\nos.kill({os.getpid()}, signal.SIGKILL)",
        "import os\nos.killpg(0, 9)",
    ]
    outcomes = sandbox.run_many(programs, LIMITS, namespaces=namespaces)
    assert outcomes[0].status == "error"
    with pytest.raises(TimeoutError):
        server.accept()
    server.close()
    assert outcomes[1].status == "passed" and "do-not-leak" not in outcomes[1].stdout
    assert outcomes[2].status == "error" and not outside.exists()
    assert outcomes[3].status == "error"  # the evaluator (this process) is still here
    assert outcomes[4].status in ("killed", "failed", "error")
    assert outcomes[4].status != "passed"


@pytest.mark.parametrize("namespaces", MODES)
def test_programs_on_one_server_share_nothing(namespaces):
    """Each program is a fresh child of the server: what one changes (modules, files,
    environment, limits) the next one does not see."""
    first = (
        "import math, os, resource\nmath.pi = 3\nos.environ['LEFT'] = 'x'\n"
        "open('left.txt', 'w').write('x')\nresource.setrlimit(resource.RLIMIT_NOFILE, (8, 8))"
    )
    second = (
        "import math, os, resource\nassert math.pi > 3.14\nassert 'LEFT' not in os.environ\n"
        "assert not os.path.exists('left.txt')\n"
        "assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 64"
    )
    with sandbox.Server(namespaces) as server:
        outcomes = [
            server.run(p, LIMITS)
            for p in (
                first,
                second,
                "import random\nprint(random.random())",
                "import random\nprint(random.random())",
            )
        ]
    assert [o.status for o in outcomes] == ["passed"] * 4, outcomes
    assert outcomes[2].stdout != outcomes[3].stdout  # random is reseeded in every child
    assert _live_processes(server.tag) == 0


def test_a_lost_server_is_an_outcome_and_the_next_program_runs():
    with sandbox.Server() as server:
        assert server.run("pass", LIMITS).status == "passed"
        pid = server._process.pid
        threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()
        lost = server.run("import time\ntime.sleep(3)", LIMITS)
        after = server.run("assert True", LIMITS)
    assert (lost.status, lost.error) == ("error", "SandboxLost")
    assert "sandbox lost" in lost.stderr
    assert after.status == "passed"
    assert _live_processes(server.tag) == 0
