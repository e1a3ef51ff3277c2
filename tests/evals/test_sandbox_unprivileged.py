"""The sandbox as an ordinary user: a user namespace of its own instead of root's
namespaces and ``nobody``. Run as ``nobody`` with the system's Python 3.11 (the sandbox
and its launcher use the standard library only), where this test runs as root and can
switch users; skipped, and so reported, elsewhere."""

import json
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import REPO

SYSTEM_PYTHON = "/usr/bin/python3.11"
CHECK = """
import json, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sandbox
os.environ["SECRET_TOKEN"] = "abc"
programs = [
    "assert 1 + 1 == 2\\n",
    "assert 1 == 2\\n",
    "while True: pass\\n",
    "import os\\nwhile True:\\n    try: os.fork()\\n    except OSError: pass\\n",
    "x = bytearray(10 * 2**30)\\n",
    "import socket\\ns = socket.socket()\\ns.connect(('1.1.1.1', 80))\\n",
    "open(%r, 'w').write('x')\\n",
    "import os\\nassert 'SECRET_TOKEN' not in os.environ\\n",
    "import os, signal\\nos.kill(os.getppid(), signal.SIGKILL)\\n",
]
outcomes = sandbox.run_many(programs, sandbox.Limits(wall_s=5))
print(json.dumps({"uid": os.getuid(), "isolation": sandbox.isolation(),
                  "statuses": [o.status for o in outcomes],
                  "errors": [o.error for o in outcomes]}))
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("runuser") or not os.path.exists(SYSTEM_PYTHON),
    reason="needs root (to run as nobody), runuser and /usr/bin/python3.11",
)
def test_an_ordinary_user_gets_its_own_namespaces_and_every_program_is_contained():
    directory = tempfile.mkdtemp(dir="/tmp")
    try:
        os.chmod(directory, 0o755)
        for name in ("sandbox.py", "launcher.py"):
            shutil.copy(REPO / "codeprop" / "evals" / name, directory)
        escaped = os.path.join(directory, "escaped.txt")
        with open(os.path.join(directory, "check.py"), "w") as f:
            f.write(CHECK % escaped)
        for name in os.listdir(directory):
            os.chmod(os.path.join(directory, name), 0o644)
        proc = subprocess.run(
            ["runuser", "-u", "nobody", "--", SYSTEM_PYTHON, os.path.join(directory, "check.py")],
            capture_output=True, text=True, timeout=300, cwd="/tmp",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        report = json.loads(proc.stdout.splitlines()[-1])
        assert report["uid"] == 65534
        assert report["isolation"]["network"] == "namespace"
        assert report["isolation"]["processes"] == "pid namespace"
        assert report["statuses"] == [
            "passed", "failed", "timed_out", "timed_out", "killed", "error", "error",
            "passed", "passed",
        ]  # fmt: skip
        assert report["errors"][4] == "MemoryError" and report["errors"][5] == "OSError"
        assert not os.path.exists(escaped)  # its /tmp was its own
    finally:
        shutil.rmtree(directory, ignore_errors=True)
