r"""AST graph building throughput, graphs/s on one core (the issue's target: >= 1,500).

Builds `codeprop.graphs.ast.ast_graph` for the 256 normalised devmap kernels
(``devmap/kernels/*.cl``, as OpenCL) and for 2,000 POJ-104 programs (a seeded sample, as
C++), single-threaded, and reports the tree-sitter parse alone beside the full build.

    CODEPROP_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/ast_graph_building.py
"""

from __future__ import annotations

import argparse
import os
import pathlib

import numpy as np
import timing

from codeprop.data import poj104, raw
from codeprop.graphs import ast


def measure(name, sources, language, repeats):
    data = [s.encode("utf-8") if isinstance(s, str) else s for s in sources]
    parser = ast._parser(language)
    prepared = [ast.blank_opencl_qualifiers(d) for d in data] if language == "opencl" else data
    parse_s = timing.best_of(parser.parse, prepared, repeats)
    build_s = timing.best_of(lambda d: ast.ast_graph(d, language), data, repeats)
    nodes = [int(ast.ast_graph(d, language).n_node[0]) for d in data]
    return {
        "set": name,
        "graphs": len(data),
        "mean_bytes": float(np.mean([len(d) for d in data])),
        "mean_nodes": float(np.mean(nodes)),
        "parse_only_graphs_per_s": len(data) / parse_s,
        "graphs_per_s": len(data) / build_s,
        "ms_per_graph": 1e3 * build_s / len(data),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--poj_programs", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    root = raw.data_dir()
    if root is None:
        raise SystemExit("set CODEPROP_DATA_DIR to the raw-data directory")
    kernels = sorted(pathlib.Path(root, "devmap", "kernels").glob("*.cl"))
    results = [
        measure("devmap kernels (256)", [k.read_bytes() for k in kernels], "opencl", args.repeats)
    ]
    programs = poj104.read_programs(root)["examples"]
    pick = np.sort(np.random.default_rng(0).permutation(len(programs))[: args.poj_programs])
    texts = [programs[i]["text"].encode("latin-1") for i in pick]
    results.append(measure(f"POJ-104 ({len(texts)} programs)", texts, "cpp", args.repeats))
    out = {
        "results": results,
        "machine": timing.machine(),
        "threads": 1,
    }
    timing.emit(out, args.json)


if __name__ == "__main__":
    main()
