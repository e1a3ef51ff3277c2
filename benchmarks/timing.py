"""Small helpers shared by the benchmark scripts (no heavy imports)."""

from __future__ import annotations

import json
import os
import pathlib
import platform
import time


def best_of(fn, items, repeats: int) -> float:
    """Seconds of the fastest of `repeats` passes of `fn` over `items`."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, time.perf_counter() - start)
    return best


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores"


def emit(out: dict, path: str | None) -> None:
    """Prints the figures as JSON and, with a path, writes them there too."""
    text = json.dumps(out, indent=2)
    print(text)
    if path:
        pathlib.Path(path).write_text(text + "\n")
