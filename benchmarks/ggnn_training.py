r"""GGNN training time per epoch: codeprop (JAX) against the same model in PyTorch Geometric.

PyG has no relational GGNN (its ``GatedGraphConv`` has one edge type), so the PyG side is
built from its closest parts: per layer an ``RGCNConv`` without root weight (mean
aggregation per relation) for the messages and a ``torch.nn.GRUCell`` for the update,
steps sharing the layer's weights, then the gated readout (a sigmoid gate over
``[h, h0]`` times a projection, summed per graph with ``global_add_pool``) and a linear
head. codeprop's is `codeprop.models.ggnn.GGNN` through the classifier loop. Same ProGraML
graphs (devmap's NCC IR, one graph per row), batch size, AdamW and epochs, in one process.
The issue's target: codeprop at most half of PyG's time.

    CODEPROP_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/ggnn_training.py \
        --benchmark devmap/amd --epochs 3

Parameter counts differ by 2H per GRU (torch's GRU has a second bias on the reset and
update gates); both are printed. Needs the ``bench`` extra (torch, torch-geometric).
"""

from __future__ import annotations

import argparse

import epoch_timing
import timing
import torch
from torch_geometric.nn import RGCNConv, global_add_pool

from codeprop.data import benchmarks
from codeprop.graphs import programl
from codeprop.models import ggnn
from codeprop.probes import graph_probe
from codeprop.train import classifier


class PygGGNN(torch.nn.Module):
    def __init__(self, vocab, hidden, embed, classes, layer_timesteps, relations):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, hidden)
        self.messages = torch.nn.ModuleList(
            RGCNConv(hidden, hidden, relations, root_weight=False) for _ in layer_timesteps
        )
        self.updates = torch.nn.ModuleList(
            torch.nn.GRUCell(hidden, hidden) for _ in layer_timesteps
        )
        self.layer_timesteps = layer_timesteps
        self.gate = torch.nn.Linear(2 * hidden, 1)
        self.project = torch.nn.Linear(hidden, embed)
        self.head = torch.nn.Linear(embed, classes)

    def forward(self, data):
        h0 = h = self.embed(data.x)
        for messages, update, steps in zip(
            self.messages, self.updates, self.layer_timesteps, strict=True
        ):
            for _ in range(steps):
                h = update(messages(h, data.edge_index, data.edge_type), h)
        gate = torch.sigmoid(self.gate(torch.cat([h, h0], dim=-1)))
        return self.head(global_add_pool(gate * self.project(h), data.batch))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--benchmark", default="devmap/amd", choices=("devmap/amd", "devmap/nvidia")
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--embed", type=int, default=64)
    parser.add_argument("--layer_timesteps", default="2,2,2", help="steps of each layer")
    parser.add_argument("--steps_per_call", type=int, default=classifier.TrainConfig.steps_per_call)
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()

    bench = benchmarks.load(args.benchmark)
    built = graph_probe.build_programl_graphs(bench)
    cfg = ggnn.GGNNConfig(
        hidden_dim=args.hidden,
        embed_dim=args.embed,
        layer_timesteps=tuple(int(t) for t in args.layer_timesteps.split(",")),
    )
    vocab = programl.NodeTextVocab.build(built["graphs"])
    inputs = [vocab.encode(graph_probe.programl_inputs(g, cfg)) for g in built["graphs"]]
    graphs = [inputs[g] for g in built["graph_of"]]  # One graph per row, as PyG sees them.
    labels = bench.labels
    model = ggnn.GGNN(cfg, len(vocab), bench.num_classes, sorted_receivers=True)
    jax_times, jax_params, budget = epoch_timing.time_codeprop(
        model, graphs, labels, args.batch_size, args.epochs, 1e-3, 0, args.steps_per_call
    )
    data = epoch_timing.pyg_rows(graphs, labels)
    torch.manual_seed(0)
    pyg_model = PygGGNN(
        len(vocab),
        cfg.hidden_dim,
        cfg.embed_dim,
        bench.num_classes,
        cfg.layer_timesteps,
        cfg.num_relations,
    )
    pyg_times = epoch_timing.time_pyg(pyg_model, data, args.batch_size, args.epochs, 1e-3)
    out = {
        "benchmark": args.benchmark,
        "graphs": len(graphs),
        "nodes": sum(int(g.n_node[0]) for g in graphs),
        "edges": sum(int(g.n_edge[0]) for g in graphs),
        "params": jax_params,
        "pyg_params": sum(p.numel() for p in pyg_model.parameters()),
        "layer_timesteps": list(cfg.layer_timesteps),
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
