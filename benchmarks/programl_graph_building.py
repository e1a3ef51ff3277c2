r"""ProGraML graph building, ms per graph on one core: codeprop against ProGraML's own tool.

Builds the graph of every devmap IR file (``kernels_ir/*.ll`` of the NCC zip, 685 files)
with `codeprop.graphs.programl.from_ir` — with and without LLVM's own parse first
(``validate``), and with statement-level node texts — and, when ProGraML's
``llvm2graph-10`` binary is given or found, runs it on the same files in the same process
order (one process per file, as the tool works; its output goes to /dev/null). The issue's
target: at most 5 ms per graph per core.

    CODEPROP_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/programl_graph_building.py \
        [--programl_bin PATH/TO/llvm2graph-10]

ProGraML's binary comes from PyPI ``programl==0.3.2`` (install it into a separate venv
with ``--no-deps``; the binary needs libtinfo.so.5, Debian package ``libtinfo5``).
"""

from __future__ import annotations

import argparse
import glob
import pathlib
import subprocess
import zipfile

import numpy as np
import timing

from codeprop.data import raw
from codeprop.graphs import programl


def _find_llvm2graph() -> str | None:
    for pattern in (
        "/tmp/pgvenv/lib/python3*/site-packages/programl/bin/llvm2graph-10",
        str(pathlib.Path.home() / ".local/lib/python3*/site-packages/programl/bin/llvm2graph-10"),
    ):
        found = glob.glob(pattern)
        if found:
            return found[0]
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--programl_bin", default=None, help="ProGraML's llvm2graph-10")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    zip_path = raw.fetch(raw.DEVMAP_NCC_ZIP)
    with zipfile.ZipFile(zip_path) as z:
        names = sorted(n for n in z.namelist() if n.startswith("kernels_ir/") and n.endswith(".ll"))
        texts = [z.read(n).decode("utf-8", "replace") for n in names]
    graphs = [programl.from_ir(t) for t in texts]
    out = {
        "files": len(texts),
        "mean_bytes": float(np.mean([len(t) for t in texts])),
        "mean_nodes": float(np.mean([g.num_nodes for g in graphs])),
        "mean_edges": float(np.mean([g.num_edges for g in graphs])),
        "codeprop_ms": 1e3 * timing.best_of(programl.from_ir, texts, args.repeats) / len(texts),
        # The same graphs with statement-level node texts (`ProgramGraph.statement_texts`).
        "codeprop_statements_ms": 1e3
        * timing.best_of(lambda t: programl.from_ir(t).statement_texts(), texts, args.repeats)
        / len(texts),
        "codeprop_no_validate_ms": 1e3
        * timing.best_of(lambda t: programl.from_ir(t, validate=False), texts, args.repeats)
        / len(texts),
        "machine": timing.machine(),
    }
    binary = args.programl_bin or _find_llvm2graph()
    if binary:

        def run(text):
            subprocess.run(
                [binary, "--stdout_fmt=pb"],
                input=text.encode(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=True,
            )

        out["programl_binary"] = binary
        out["programl_ms"] = 1e3 * timing.best_of(run, texts, args.repeats) / len(texts)

        def spawn_only(_):
            subprocess.run(["/bin/true"], stdout=subprocess.DEVNULL, check=True)

        out["process_spawn_ms"] = 1e3 * timing.best_of(spawn_only, texts, args.repeats) / len(texts)
        out["programl_over_codeprop"] = out["programl_ms"] / out["codeprop_ms"]
    timing.emit(out, args.json)


if __name__ == "__main__":
    main()
