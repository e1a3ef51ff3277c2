r"""One R-GCN layer, forward and backward, in two edge layouts on a real devmap batch.

BENCHMARKS.md's question for issue 20's deep R-GCNs and the GGNN: would edges grouped by
relation, each relation one static block, make the relational layer cheaper? The
current layer (`codeprop.models.rgcn.RelationalGraphConv`, edges sorted by receiver)
multiplies every node state by all R relation weights and the root weight ([N, H] @
[H, (R+1)D]), then gathers one row of that table per edge. Grouped, each relation's
block of edges gathers its senders' states and multiplies them by that relation's weight
([E_r, H] @ [H, D]), E x H x D in all instead of N x H x (R+1) x D, and each block's
messages are summed per receiver (sorted within the block). The blocks here are the
batch's own relation counts; a batcher would need a static budget per relation.

    CODEPROP_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/relation_layout.py \
        --width 64

Prints the milliseconds of each (best of `--repeats`, after compilation), their ratio and
the largest difference between the two layers' outputs and gradients.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import timing

from codeprop.data import benchmarks
from codeprop.graphs import batching, programl
from codeprop.models import rgcn
from codeprop.probes import graph_probe
from codeprop.train import batchers


def grouped_layer(params, h, senders, receivers, norms, blocks):
    """[N, D] as `RelationalGraphConv` (root weight and bias) with edges in relation
    blocks: block r holds `blocks[r]` edges of relation r, sorted by receiver."""
    weights, root, bias = params["relations"], params["root"], params["bias"]
    states = h[senders] * norms[:, None]  # [E, H]
    out = h @ root + bias  # [N, D]
    start = 0
    for r, size in enumerate(blocks):
        stop = start + size
        messages = states[start:stop] @ weights[r]  # [E_r, D]
        out = out + jax.ops.segment_sum(
            messages, receivers[start:stop], h.shape[0], indices_are_sorted=True
        )
        start = stop
    return out


def best_ms(fn, args, repeats):
    """Milliseconds of the fastest of `repeats` calls, after a compiling call."""
    jax.block_until_ready(fn(*args))
    return 1e3 * timing.best_of(lambda _: jax.block_until_ready(fn(*args)), [None], repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--benchmark", default="devmap/amd", choices=("devmap/amd", "devmap/nvidia")
    )
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--width", type=int, default=64, help="H = D of the layer")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()

    bench = benchmarks.load(args.benchmark)
    built = graph_probe.build_programl_graphs(bench)
    cfg = rgcn.RGCNConfig(hidden_dim=args.width, embed_dim=args.width)
    vocab = programl.NodeTextVocab.build(built["graphs"])
    inputs = [vocab.encode(graph_probe.programl_inputs(g, cfg)) for g in built["graphs"]]
    graphs = [inputs[g] for g in built["graph_of"]]
    data = batchers.Examples.one_input_per_row(graphs, bench.labels)
    budget = batching.estimate_budget(graphs, args.batch_size)
    num_rows = batchers.row_budget(data, budget)
    batch, _ = next(batchers.batches(data, np.arange(len(graphs)), budget, num_rows))
    g = batch["inputs"]
    senders, receivers = np.asarray(g.senders), np.asarray(g.receivers)
    relations, norms = np.asarray(g.edges["type"]), np.asarray(g.edges["norm"])
    real = norms != 0  # Padding edges carry no message in either layout.
    order = np.lexsort((receivers, relations))
    order = order[real[order]]
    blocks = tuple(int(c) for c in np.bincount(relations[order], minlength=cfg.num_relations))

    layer = rgcn.RelationalGraphConv(args.width, cfg.num_relations, sorted_receivers=True)
    h = jax.random.normal(jax.random.key(0), (budget.n_node, args.width))
    edges = tuple(jnp.asarray(a) for a in (senders, receivers, relations, norms))
    params = layer.init(jax.random.key(1), h, *edges)["params"]
    params = jax.tree.map(lambda p: p + 0.01, params)  # A non-zero bias.
    grouped_edges = tuple(jnp.asarray(a[order]) for a in (senders, receivers, norms))

    def loss_current(params, h):
        return jnp.sum(jnp.tanh(layer.apply({"params": params}, h, *edges)))

    def loss_grouped(params, h):
        out = grouped_layer(params, h, *grouped_edges, blocks)
        return jnp.sum(jnp.tanh(out))

    current = jax.jit(jax.value_and_grad(loss_current, argnums=(0, 1)))
    grouped = jax.jit(jax.value_and_grad(loss_grouped, argnums=(0, 1)))
    diff = jax.tree.map(
        lambda a, b: float(jnp.max(jnp.abs(a - b))), current(params, h), grouped(params, h)
    )
    current_ms, grouped_ms = [], []
    for _ in range(3):  # Alternate, so that both see the same machine.
        current_ms.append(best_ms(current, (params, h), args.repeats))
        grouped_ms.append(best_ms(grouped, (params, h), args.repeats))
    out = {
        "benchmark": args.benchmark,
        "width": args.width,
        "budget": vars(budget),
        "real_edges_by_relation": list(blocks),
        "current_ms": min(current_ms),
        "grouped_ms": min(grouped_ms),
        "current_over_grouped": min(current_ms) / min(grouped_ms),
        "max_abs_difference": max(jax.tree.leaves(diff)),
        "machine": timing.machine(),
    }
    timing.emit(out, args.json)


if __name__ == "__main__":
    main()
