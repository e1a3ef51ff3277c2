r"""R-GCN training time per epoch: codeprop (JAX) against PyTorch Geometric's RGCNConv.

Both train the same model — node-text embedding (hidden), R-GCN layers over six relations
(control, data, call and their reverses; mean aggregation per relation, a root weight and a
bias, as RGCNConv's defaults), ReLU, mean pooling, a linear head; AdamW; cross-entropy — on
the same ProGraML graphs (devmap's NCC IR, one graph per row) with the same batch size, in
one process. The issue's target: codeprop at most half of PyG's time.

Issue 20's variants: ``--residual``/``--layer_norm`` (deeper stacks), ``--number_width 12``
(each node's input adds a learned embedding per position and character of its constant's
digits, `codeprop.graphs.numbers`; the PyG model gets the same table, gathered and summed)
and ``--head_hidden 32`` (a hidden layer in the head).

    CODEPROP_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/rgcn_training.py \
        --benchmark devmap/amd --epochs 5

Needs the ``bench`` extra (torch, torch-geometric).
"""

from __future__ import annotations

import argparse

import epoch_timing
import timing
import torch
from torch_geometric.nn import RGCNConv, global_mean_pool

from codeprop.data import benchmarks
from codeprop.graphs import numbers, programl
from codeprop.models import rgcn
from codeprop.probes import graph_probe
from codeprop.train import classifier


class PygRGCN(torch.nn.Module):
    def __init__(
        self,
        vocab,
        hidden,
        embed,
        classes,
        layers,
        relations,
        residual=False,
        layer_norm=False,
        number_width=0,
        head_hidden=0,
    ):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, hidden)
        self.number_width = number_width
        if number_width:
            self.digit_embed = torch.nn.Parameter(
                torch.randn(number_width * numbers.NUM_IDS, hidden) * number_width**-0.5
            )
        dims = [hidden] * (layers - 1) + [embed]
        ins = [hidden] + dims[:-1]
        self.convs = torch.nn.ModuleList(
            RGCNConv(i, o, relations) for i, o in zip(ins, dims, strict=True)
        )
        self.norms = torch.nn.ModuleList(
            torch.nn.LayerNorm(o) if layer_norm else torch.nn.Identity() for o in dims
        )
        # As codeprop's: every layer after the first whose width is its input's.
        self.residual = [residual and i > 0 and a == b for i, (a, b) in enumerate(zip(ins, dims))]
        if head_hidden:
            self.head = torch.nn.Sequential(
                torch.nn.Linear(embed, head_hidden),
                torch.nn.ReLU(),
                torch.nn.Linear(head_hidden, classes),
            )
        else:
            self.head = torch.nn.Linear(embed, classes)

    def forward(self, data):
        x = self.embed(data.x)
        if self.number_width:
            digits = data.digits  # [N, W]
            slots = torch.arange(self.number_width) * numbers.NUM_IDS + digits
            by_digit = self.digit_embed[slots] * (digits > 0).unsqueeze(-1)  # [N, W, H]
            x = x + by_digit.sum(dim=1)
        for conv, norm, residual in zip(self.convs, self.norms, self.residual, strict=True):
            h = torch.relu(norm(conv(x, data.edge_index, data.edge_type)))
            x = x + h if residual else h
        return self.head(global_mean_pool(x, data.batch))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--benchmark", default="devmap/amd", choices=("devmap/amd", "devmap/nvidia")
    )
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--embed", type=int, default=64)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--steps_per_call", type=int, default=classifier.TrainConfig.steps_per_call)
    parser.add_argument("--residual", action="store_true", help="residual connections")
    parser.add_argument("--layer_norm", action="store_true", help="LayerNorm in each layer")
    parser.add_argument("--number_width", type=int, default=0, help="digit features")
    parser.add_argument("--head_hidden", type=int, default=0, help="hidden layer in the head")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()

    bench = benchmarks.load(args.benchmark)
    built = graph_probe.build_programl_graphs(bench, number_width=args.number_width)
    cfg = rgcn.RGCNConfig(
        number_width=args.number_width,
        head_hidden=args.head_hidden,
        hidden_dim=args.hidden,
        embed_dim=args.embed,
        num_layers=args.layers,
        residual=args.residual,
        layer_norm=args.layer_norm,
    )
    vocab = programl.NodeTextVocab.build(built["graphs"])
    inputs = [vocab.encode(graph_probe.programl_inputs(g, cfg)) for g in built["graphs"]]
    graphs = [inputs[g] for g in built["graph_of"]]  # One graph per row, as PyG sees them.
    labels = bench.labels
    model = rgcn.RGCN(cfg, len(vocab), bench.num_classes, sorted_receivers=True)
    jax_times, jax_params, budget = epoch_timing.time_codeprop(
        model, graphs, labels, args.batch_size, args.epochs, 1e-3, 0, args.steps_per_call
    )
    data = epoch_timing.pyg_rows(graphs, labels)
    torch.manual_seed(0)
    pyg_model = PygRGCN(
        len(vocab),
        cfg.hidden_dim,
        cfg.embed_dim,
        bench.num_classes,
        cfg.num_layers,
        cfg.num_relations,
        cfg.residual,
        cfg.layer_norm,
        cfg.number_width,
        cfg.head_hidden,
    )
    pyg_times = epoch_timing.time_pyg(pyg_model, data, args.batch_size, args.epochs, 1e-3)
    pyg_params = sum(p.numel() for p in pyg_model.parameters())
    assert jax_params == pyg_params, (jax_params, pyg_params)
    out = {
        "benchmark": args.benchmark,
        "graphs": len(graphs),
        "nodes": sum(int(g.n_node[0]) for g in graphs),
        "edges": sum(int(g.n_edge[0]) for g in graphs),
        "params": jax_params,
        "layers": cfg.num_layers,
        "residual": cfg.residual,
        "layer_norm": cfg.layer_norm,
        "number_width": cfg.number_width,
        "head_hidden": cfg.head_hidden,
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
