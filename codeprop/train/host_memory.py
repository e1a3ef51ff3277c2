"""Keep freed host memory in the process (glibc malloc settings for CPU training).

On the CPU, XLA allocates each executable's temporary buffer — 410 MB for the tiny
decoder's training step at 8 x 512 tokens — afresh on every call, from its worker threads.
glibc serves an allocation that large with ``mmap`` and returns it with ``munmap`` when it
is freed, so every step page-faults the whole buffer back in (about 100,000 faults of
zeroed 4 KiB pages per step). PyTorch's CPU allocator goes through the same malloc.

`keep_freed_memory` asks glibc to serve every allocation from the main heap and never give
freed pages back to the system, so a buffer freed at the end of one step is reused by the
next. Resident memory then stays at the high-water mark of the process instead of
falling between steps; the peak itself does not change. The settings are the
``mallopt(3)`` equivalents of ``MALLOC_ARENA_MAX=1 MALLOC_MMAP_MAX_=0
MALLOC_TRIM_THRESHOLD_=<huge>``. They apply to threads started afterwards, so call it
before the first JAX computation (which starts XLA's thread pools).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

# mallopt(3) parameter numbers (glibc <malloc.h>).
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8

_TOP_PAD_BYTES = 64 << 20
_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Applies the settings above once per process.

    Returns:
      True if glibc accepted them (Linux with glibc); False elsewhere (macOS, musl),
      where it changes nothing.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    settings = (
        (_M_ARENA_MAX, 1),  # Worker threads share the main heap (other arenas mmap >64 MB).
        (_M_MMAP_MAX, 0),  # No allocation is served by its own mmap ...
        (_M_TRIM_THRESHOLD, 2**31 - 1),  # ... and the heap's top is (almost) never trimmed.
        (_M_TOP_PAD, _TOP_PAD_BYTES),  # Grow the heap in 64 MiB steps.
    )
    _applied = all(libc.mallopt(param, value) == 1 for param, value in settings)
    return _applied
