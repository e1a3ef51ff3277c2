"""Epoch timers shared by the GNN training benchmarks: codeprop (JAX) and PyTorch Geometric.

Both time an epoch from the first batch to the last parameter update, collation included,
and return the time of every epoch (the first holds JAX's compilation).
"""

from __future__ import annotations

import time

import jax
import numpy as np
import torch
import torch_geometric
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from codeprop.graphs import batching
from codeprop.train import batchers, classifier, steps


def time_pyg(model, data, batch_size, epochs, lr):
    """Seconds per epoch of AdamW on cross-entropy over PyG `data` (shuffled batches)."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    loader = DataLoader(data, batch_size=batch_size, shuffle=True)
    times = []
    for _ in range(epochs + 1):
        start = time.perf_counter()
        for batch in loader:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(batch), batch.y)
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - start)
    return times


def time_codeprop(model, graphs, labels, batch_size, epochs, lr, seed, steps_per_call):
    """Seconds per epoch of `classifier.train_epoch` (as `classifier.fit` trains), the
    parameter count and the batch budget."""
    data = batchers.Examples.one_input_per_row(graphs, labels)
    budget = batching.estimate_budget(graphs, batch_size)
    num_rows = batchers.row_budget(data, budget)
    batcher = batchers.GraphBatcher(data, budget, num_rows)
    train = np.arange(len(graphs))
    first, _ = next(batchers.batches(data, train[:1], budget, num_rows))
    state = steps.create_train_state(model, first, seed, steps.adamw(lr))
    shuffle = np.random.default_rng(seed)
    # As `classifier.fit` does: a fixed number of steps per call, from the first epoch.
    order = shuffle.permutation(train)
    per_call = min(steps_per_call, batchers.num_batches(data, order, budget) + 1)
    times = []
    for epoch in range(epochs + 1):
        start = time.perf_counter()
        order = order if epoch == 0 else shuffle.permutation(train)
        state, _ = classifier.train_epoch(state, batcher, order, per_call)
        jax.block_until_ready(state.params)
        times.append(time.perf_counter() - start)
    return times, sum(x.size for x in jax.tree.leaves(state.params)), budget


def pyg_rows(graphs, labels) -> list:
    """PyG `Data` of codeprop's ProGraML model inputs, one per row: node texts ``x``,
    edges and relations, the label, and the constants' ``digits`` where the graphs
    carry them."""
    return [
        Data(
            x=torch.from_numpy(g.nodes["type"].astype(np.int64)),
            num_nodes=int(g.n_node[0]),
            edge_index=torch.from_numpy(np.stack([g.senders, g.receivers]).astype(np.int64)),
            edge_type=torch.from_numpy(g.edges["type"].astype(np.int64)),
            y=torch.tensor([int(y)]),
            **(
                {"digits": torch.from_numpy(g.nodes["digits"].astype(np.int64))}
                if "digits" in g.nodes
                else {}
            ),
        )
        for g, y in zip(graphs, labels, strict=True)
    ]


def summary(jax_times, pyg_times) -> dict:
    """Mean epoch times after the first, and their ratio."""
    out = {
        "codeprop_first_epoch_s": jax_times[0],
        "codeprop_epoch_s": float(np.mean(jax_times[1:])),
        "pyg_first_epoch_s": pyg_times[0],
        "pyg_epoch_s": float(np.mean(pyg_times[1:])),
    }
    out["pyg_over_codeprop"] = out["pyg_epoch_s"] / out["codeprop_epoch_s"]
    return out


def environment() -> dict:
    """Thread count and versions of both stacks."""
    return {
        "torch_threads": torch.get_num_threads(),
        "versions": {
            "jax": jax.__version__,
            "torch": torch.__version__,
            "pyg": torch_geometric.__version__,
        },
    }
