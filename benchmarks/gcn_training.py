r"""GCN training time per epoch: codeprop (JAX) against PyTorch Geometric, same graphs.

Both train the same model — node-type embedding (hidden), GCN layers (hidden, then
embedding width), mean pooling, linear head; AdamW; cross-entropy — on the same AST
graphs (parent->child and child->parent edges) with the same batch size, on this machine,
in one process. An epoch is timed from the first batch to the last update, collation
included (PyG's DataLoader, codeprop's padded packing). The first epoch (compilation for
JAX) is reported separately and left out of the mean.

    CODEPROP_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/gcn_training.py \
        --benchmark devmap/amd --epochs 5

Needs the ``bench`` extra (torch, torch-geometric).
"""

from __future__ import annotations

import argparse

import epoch_timing
import numpy as np
import timing
import torch
from torch_geometric.data import Data
from torch_geometric.nn import GCNConv, global_mean_pool

from codeprop.data import benchmarks
from codeprop.graphs import ast, transforms
from codeprop.models import gnn
from codeprop.probes import graph_probe
from codeprop.train import classifier


class PygGCN(torch.nn.Module):
    def __init__(self, vocab, hidden, embed, classes, layers):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, hidden)
        dims = [hidden] * (layers - 1) + [embed]
        ins = [hidden] + dims[:-1]
        self.convs = torch.nn.ModuleList(GCNConv(i, o) for i, o in zip(ins, dims, strict=True))
        self.head = torch.nn.Linear(embed, classes)

    def forward(self, data):
        x = self.embed(data.x)
        for conv in self.convs:
            x = torch.relu(conv(x, data.edge_index))
        return self.head(global_mean_pool(x, data.batch))


def pyg_data(graphs, labels):
    return [
        Data(
            x=torch.from_numpy(g.nodes["type"].astype(np.int64)),
            num_nodes=int(g.n_node[0]),
            edge_index=torch.from_numpy(np.stack([g.senders, g.receivers]).astype(np.int64)),
            y=torch.tensor([int(y)]),
        )
        for g, y in zip(graphs, labels, strict=True)
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--benchmark", default="devmap/amd", choices=benchmarks.NAMES)
    parser.add_argument("--limit", type=int, default=None, help="use the first N examples")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--embed", type=int, default=36)
    parser.add_argument(
        "--steps_per_call",
        type=int,
        default=classifier.TrainConfig.steps_per_call,
        help="codeprop training steps per jitted call (1: one call per step)",
    )
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()

    bench = benchmarks.load(args.benchmark)
    examples = bench.examples
    if args.limit:
        idx = np.random.default_rng(0).permutation(len(examples))[: args.limit]
        bench = benchmarks.Benchmark(
            bench.name, [examples[i] for i in np.sort(idx)], bench.num_classes, {}
        )
    built = graph_probe.build_ast_graphs(bench)
    cfg = gnn.GCNConfig(hidden_dim=args.hidden, embed_dim=args.embed)
    vocab = ast.NodeTypeVocab.build(built["graphs"], built["language"])
    table = vocab.table(built["language"])
    # One graph per example row (no sharing), as PyG's loader sees them.
    graphs = [
        graph_probe.model_inputs(vocab.encode(built["graphs"][g], table), cfg)
        for g in built["graph_of"]
    ]
    # PyG gets the same graphs with both edge directions (its GCNConv propagates along
    # edge_index as given); codeprop gets its model inputs (tree mode: parent pointers).
    pyg_graphs = [
        transforms.keep_edge_types(vocab.encode(built["graphs"][g], table), cfg.edge_types)
        for g in built["graph_of"]
    ]
    labels = bench.labels
    model = graph_probe.make_model(cfg, graphs, len(vocab), bench.num_classes)
    jax_times, jax_params, budget = epoch_timing.time_codeprop(
        model, graphs, labels, args.batch_size, args.epochs, 1e-3, 0, args.steps_per_call
    )
    torch.manual_seed(0)
    pyg_model = PygGCN(len(vocab), cfg.hidden_dim, cfg.embed_dim, bench.num_classes, cfg.num_layers)
    pyg_times = epoch_timing.time_pyg(
        pyg_model, pyg_data(pyg_graphs, labels), args.batch_size, args.epochs, 1e-3
    )
    pyg_params = sum(p.numel() for p in pyg_model.parameters())
    assert jax_params == pyg_params, (jax_params, pyg_params)
    nodes = sum(int(g.n_node[0]) for g in pyg_graphs)
    edges = sum(int(g.n_edge[0]) for g in pyg_graphs)
    out = {
        "benchmark": args.benchmark,
        "graphs": len(graphs),
        "nodes": nodes,
        "edges": edges,
        "params": jax_params,
        "batch_size": args.batch_size,
        "steps_per_call": args.steps_per_call,
        "budget": vars(budget),
        **epoch_timing.summary(jax_times, pyg_times),
        **epoch_timing.environment(),
        "machine": timing.machine(),
    }
    timing.emit(out, args.json)


if __name__ == "__main__":
    main()
