r"""POJ-104 compile throughput (programs/s per core) and success rate with clang 22.

Compiles a seeded sample of POJ-104 programs with
`codeprop.graphs.compiler.Compiler.compile_poj104` into a fresh cache directory (so nothing
is a cache hit; the precompiled prelude headers are built first and not timed), with one
worker per core asked for. Targets (issue 3): at least 20 programs/s per core; at least 97%
of the 52,000 programs compile (`--sample 52000` for all of them).

    CODEPROP_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/poj104_compile.py \
        --sample 2000 --workers 1
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time

import numpy as np
import timing

from codeprop.data import poj104, raw
from codeprop.graphs import compiler


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    root = raw.data_dir()
    if root is None:
        raise SystemExit("set CODEPROP_DATA_DIR to the raw-data directory")
    programs = poj104.read_programs(root)["examples"]
    pick = np.sort(np.random.default_rng(args.seed).permutation(len(programs))[: args.sample])
    texts = [programs[i]["text"] for i in pick]
    with tempfile.TemporaryDirectory() as cache:
        cc = compiler.Compiler(cache)
        # Build the precompiled preludes outside the timed part.
        cc.compile_many(
            ["int main() { return 0; }", "int main() { cout << 1; }"],
            1,
            compile_one=cc.compile_poj104,
        )
        start = time.perf_counter()
        results = cc.compile_many(texts, args.workers, compile_one=cc.compile_poj104)
        seconds = time.perf_counter() - start
    ok = sum(r.ok for r in results)
    out = {
        "programs": len(texts),
        "workers": args.workers,
        "seconds": round(seconds, 1),
        "programs_per_s": len(texts) / seconds,
        "programs_per_s_per_core": len(texts) / seconds / args.workers,
        "compiled": ok,
        "compiled_fraction": ok / len(texts),
        "failures": dict(collections.Counter(r.reason for r in results if not r.ok)),
        "compiled_by": dict(
            collections.Counter(r.attempt.split(", guessed")[0] for r in results if r.ok)
        ),
        "with_guessed_macros": sum(1 for r in results if r.ok and "guessed" in r.attempt),
        "compiler": compiler.compiler_version(),
        "machine": timing.machine(),
    }
    timing.emit(out, args.json)


if __name__ == "__main__":
    main()
