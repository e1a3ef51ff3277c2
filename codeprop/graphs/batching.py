"""Padded batches of graphs with a fixed budget, so a jitted loop compiles once.

A `Budget` fixes the node, edge and graph counts of every batch. `pack` fills batches
greedily with whole graphs (at most ``n_graph - 1`` real graphs, and never more nodes or
edges than the budget), then pads: one padding graph takes every padding node and edge
(padding edges point at the last padding node), and further padding graphs are empty. This
is the layout `jraph.pad_with_graphs` produces, so jraph's mask helpers and
`jraph.unpad_with_graphs` / `jraph.unbatch_np` apply.

Example: budget (n_node=8, n_edge=6, n_graph=3) and graphs of 3 and 2 nodes (2 and 1 edges)
give ``n_node = [3, 2, 3]``, ``n_edge = [2, 1, 3]``; nodes 5..7 and edges 3..5 are padding.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence

import jax
import jraph
import numpy as np


@dataclasses.dataclass(frozen=True)
class Budget:
    """Sizes of every padded batch (the padding graph included)."""

    n_node: int
    n_edge: int
    n_graph: int


def _round_up(x: float, multiple: int) -> int:
    return int(math.ceil(x / multiple) * multiple)


def estimate_budget(
    graphs: Sequence[jraph.GraphsTuple],
    batch_size: int,
    also_fit: Sequence[jraph.GraphsTuple] = (),
    multiple: int = 64,
) -> Budget:
    """A budget for `batch_size` graphs of average size that also holds any single graph.

    The node (edge) budget is the larger of the biggest graph (of `graphs` and `also_fit`)
    plus one padding node and ``batch_size`` times the mean size of `graphs` (with 10%
    slack), rounded up to `multiple`. Estimate it once per dataset so a loop compiles once.

    Args:
      graphs: single graphs whose mean size sets the budget (e.g. the training split).
      batch_size: the most real graphs in a batch.
      also_fit: further graphs that must fit alone (e.g. validation and test graphs).
      multiple: round node and edge budgets up to a multiple of this.
    """
    nodes = np.array([int(g.n_node.sum()) for g in graphs])
    edges = np.array([int(g.n_edge.sum()) for g in graphs])
    max_nodes = max([nodes.max(), *(int(g.n_node.sum()) for g in also_fit)])
    max_edges = max([edges.max(), *(int(g.n_edge.sum()) for g in also_fit)])
    n_node = max(max_nodes + 1, nodes.mean() * batch_size * 1.1)
    n_edge = max(max_edges, edges.mean() * batch_size * 1.1)
    return Budget(_round_up(n_node, multiple), _round_up(n_edge, multiple), batch_size + 1)


def _concat_features(features: list, pad: int):
    """Concatenates per-graph feature trees along axis 0 and appends `pad` zero rows."""

    def cat(*leaves):
        out = np.concatenate(leaves, axis=0)
        if pad:
            out = np.concatenate([out, np.zeros((pad, *out.shape[1:]), out.dtype)], axis=0)
        return out

    return jax.tree.map(cat, *features)


def pad_batch(graphs: Sequence[jraph.GraphsTuple], budget: Budget) -> jraph.GraphsTuple:
    """Concatenates graphs (each with any number of sub-graphs) and pads them to `budget`.

    Raises:
      ValueError: the graphs do not fit the budget with room for one padding graph.
    """
    n_node = np.concatenate([g.n_node for g in graphs]).astype(np.int32)
    n_edge = np.concatenate([g.n_edge for g in graphs]).astype(np.int32)
    total_nodes, total_edges = int(n_node.sum()), int(n_edge.sum())
    if total_nodes >= budget.n_node or total_edges > budget.n_edge or len(n_node) >= budget.n_graph:
        raise ValueError(
            f"{len(n_node)} graphs with {total_nodes} nodes and {total_edges} edges do not fit "
            f"{budget} with a padding graph"
        )
    offsets = np.cumsum([0, *(int(g.n_node.sum()) for g in graphs[:-1])])
    pad_nodes, pad_edges = budget.n_node - total_nodes, budget.n_edge - total_edges
    last = budget.n_node - 1  # Padding edges join padding nodes only.
    senders = np.concatenate([g.senders + o for g, o in zip(graphs, offsets, strict=True)])
    receivers = np.concatenate([g.receivers + o for g, o in zip(graphs, offsets, strict=True)])
    pad_graphs = budget.n_graph - len(n_node)
    return jraph.GraphsTuple(
        nodes=_concat_features([g.nodes for g in graphs], pad_nodes),
        edges=_concat_features([g.edges for g in graphs], pad_edges),
        senders=np.concatenate([senders, np.full(pad_edges, last, np.int32)]).astype(np.int32),
        receivers=np.concatenate([receivers, np.full(pad_edges, last, np.int32)]).astype(np.int32),
        globals=_concat_features([g.globals for g in graphs], pad_graphs),
        n_node=np.concatenate([n_node, [pad_nodes], np.zeros(pad_graphs - 1, np.int32)]).astype(
            np.int32
        ),
        n_edge=np.concatenate([n_edge, [pad_edges], np.zeros(pad_graphs - 1, np.int32)]).astype(
            np.int32
        ),
    )


def plan(
    graphs: Sequence[jraph.GraphsTuple], budget: Budget, order: Sequence[int] | None = None
) -> list[np.ndarray]:
    """The graph indices of each batch `pack` makes (greedy, in `order`), without packing.

    Raises:
      ValueError: a graph does not fit an empty batch.
    """
    order = np.arange(len(graphs)) if order is None else np.asarray(order)
    groups: list[np.ndarray] = []
    current: list[int] = []
    nodes = edges = 0
    for i in order:
        g = graphs[i]
        gn, ge = int(g.n_node.sum()), int(g.n_edge.sum())
        if gn >= budget.n_node or ge > budget.n_edge:
            raise ValueError(f"graph {i} ({gn} nodes, {ge} edges) exceeds the budget {budget}")
        if current and (
            nodes + gn >= budget.n_node
            or edges + ge > budget.n_edge
            or len(current) + 1 >= budget.n_graph
        ):
            groups.append(np.asarray(current))
            current, nodes, edges = [], 0, 0
        current.append(int(i))
        nodes += gn
        edges += ge
    if current:
        groups.append(np.asarray(current))
    return groups


def pack(
    graphs: Sequence[jraph.GraphsTuple], budget: Budget, order: Sequence[int] | None = None
) -> Iterator[tuple[jraph.GraphsTuple, np.ndarray]]:
    """Yields padded batches of whole graphs, in `order`, each filled up to `budget`.

    Args:
      graphs: single graphs.
      budget: the fixed batch budget.
      order: indices into `graphs` (default: all, in order); every index is used once.

    Yields:
      (batch, indices): the padded GraphsTuple and the [G] indices of its real graphs.

    Raises:
      ValueError: a graph does not fit an empty batch.
    """
    for group in plan(graphs, budget, order):
        yield pad_batch([graphs[j] for j in group], budget), group
