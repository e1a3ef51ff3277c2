"""`host_memory.keep_freed_memory`: a large buffer freed and allocated again is not faulted
back in (counted in page faults, in a fresh interpreter for each setting)."""

import json
import platform
import subprocess
import sys

import pytest

# Allocates and fills 256 MB twice, and reports the page faults of the second fill.
_PROBE = """
import json, resource, sys
import numpy as np
from numpy._core import multiarray
multiarray._set_madvise_hugepage(False)  # Count 4 KiB pages, as XLA's buffers get.
from codeprop.train import host_memory
kept = host_memory.keep_freed_memory() if sys.argv[1] == "keep" else False
a = np.ones(64 << 20, np.float32); del a
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
before = faults()
b = np.ones(64 << 20, np.float32)
print(json.dumps({"kept": kept, "faults": faults() - before}))
"""
_PAGES = (256 << 20) // 4096

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)


def _probe(mode: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_freed_memory_is_reused_without_page_faults():
    default, kept = _probe("default"), _probe("keep")
    assert kept["kept"] is True
    assert default["faults"] > 0.9 * _PAGES  # glibc unmapped the buffer: every page again.
    assert kept["faults"] < 0.05 * _PAGES  # the heap kept it.


def test_keep_freed_memory_is_idempotent():
    from codeprop.train import host_memory

    assert host_memory.keep_freed_memory() == host_memory.keep_freed_memory()
