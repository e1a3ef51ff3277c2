"""Graph neural networks over padded `jraph.GraphsTuple` batches (flax linen).

Letters in shapes: N nodes (budget, padding included), E edges, G graphs, H hidden
features, D embedding features, C classes, A auxiliary inputs.

`graph_conv` is the propagation rule of Kipf & Welling's GCN as a pure function,
``H' = D^-1/2 (A + I) D^-1/2 H`` with A the (weighted) adjacency of the kept edges; `GCN`
embeds node types, applies `num_layers` graph convolutions, pools nodes per graph into a
graph embedding and classifies it. Padding nodes and edges only touch each other and the
padding graph, so they never change a real graph's output.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import numpy as np

READOUTS = ("mean", "sum", "max")


@dataclasses.dataclass(frozen=True)
class GCNConfig:
    """Hyperparameters of `GCN` (the paper's AST models: devmap 32/36, POJ-104 64/256).

    Attributes:
      hidden_dim: width of the node-type embedding and of every layer but the last.
      embed_dim: width of the last layer, hence of the graph embedding.
      num_layers: graph convolutions.
      edge_types: edge ``type`` values the convolution uses (others are ignored); the
        default is the AST's parent->child and child->parent edges, i.e. the undirected tree.
      readout: how node states are pooled per graph: ``mean``, ``sum`` or ``max``.
      num_aux: auxiliary graph-level inputs concatenated to the embedding before the
        classifier (devmap's transfer and work-group size: 2); 0 for none.
      dropout_rate: dropout on node states between layers.
    """

    hidden_dim: int = 32
    embed_dim: int = 36
    num_layers: int = 2
    edge_types: tuple[int, ...] = (0, 1)
    readout: str = "mean"
    num_aux: int = 0
    dropout_rate: float = 0.0

    def __post_init__(self):
        if self.readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {self.readout!r}")
        if self.num_layers < 1:
            raise ValueError("num_layers must be at least 1")


def _gather(x: jax.Array, index: jax.Array) -> jax.Array:
    return x.at[index].get(mode="promise_in_bounds")


def _propagate(nodes, senders, receivers, edge_norm, sorted_receivers):
    """[N, H]: ``out_i = sum_{e: j->i} edge_norm_e * nodes_j`` (no self term)."""
    messages = _gather(nodes, senders) * edge_norm[:, None]  # [E, H]
    return jax.ops.segment_sum(
        messages,
        receivers,
        nodes.shape[0],
        indices_are_sorted=sorted_receivers,
        mode="promise_in_bounds",
    )  # [N, H]


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _propagate_symmetric(nodes, senders, receivers, edge_norm, sorted_receivers):
    return _propagate(nodes, senders, receivers, edge_norm, sorted_receivers)


def _propagate_symmetric_fwd(nodes, senders, receivers, edge_norm, sorted_receivers):
    out = _propagate(nodes, senders, receivers, edge_norm, sorted_receivers)
    return out, (senders, receivers, edge_norm)


def _propagate_symmetric_bwd(sorted_receivers, residuals, grad):
    # The normalised adjacency is symmetric, so its transpose is itself: the backward pass
    # is the same receiver-sorted gather/scatter instead of a scatter over unsorted senders.
    senders, receivers, edge_norm = residuals
    grad_nodes = _propagate(grad, senders, receivers, edge_norm, sorted_receivers)
    return grad_nodes, None, None, None


_propagate_symmetric.defvjp(_propagate_symmetric_fwd, _propagate_symmetric_bwd)


def gcn_norm(
    senders: jax.Array, receivers: jax.Array, edge_weight: jax.Array, num_nodes: int
) -> tuple[jax.Array, jax.Array]:
    """Kipf & Welling's normalisation with self-loops.

    Returns:
      ([E] edge norms ``w_ji / sqrt(d_i d_j)``, [N] self-loop norms ``1 / d_i``) with
      ``d_i = 1 + sum_{j->i} w_ji``. Works on numpy (host) and JAX arrays alike.
    """
    xp = jnp if isinstance(edge_weight, jax.Array) else np
    if xp is np:
        degree = 1.0 + np.bincount(receivers, weights=edge_weight, minlength=num_nodes)
    else:
        degree = 1.0 + jax.ops.segment_sum(edge_weight, receivers, num_nodes)
    inv_sqrt = 1.0 / xp.sqrt(degree)
    edge_norm = edge_weight * inv_sqrt[senders] * inv_sqrt[receivers]
    return edge_norm.astype(xp.float32), (1.0 / degree).astype(xp.float32)


def graph_conv(
    nodes: jax.Array,
    senders: jax.Array,
    receivers: jax.Array,
    edge_norm: jax.Array,
    self_norm: jax.Array,
    sorted_receivers: bool = False,
    symmetric: bool = False,
) -> jax.Array:
    """One GCN propagation, ``H' = D^-1/2 (A + I) D^-1/2 H``, from precomputed norms.

    Args:
      nodes: [N, H] node states.
      senders: [E] int source node of each edge.
      receivers: [E] int target node of each edge.
      edge_norm: [E] normalised edge weights (`gcn_norm`; 0 for padding edges).
      self_norm: [N] self-loop weights ``1 / d_i``.
      sorted_receivers: promise that `receivers` is sorted (a faster scatter on CPU).
      symmetric: promise that every edge j->i has a twin i->j of the same norm (an
        undirected graph): the backward pass then reuses the forward's sorted scatter.

    Returns:
      [N, H] new node states.
    """
    # Keep XLA (CPU) from fusing the producer of `nodes` (a matmul) into the per-edge
    # gather, which would recompute it once per edge.
    nodes = jax.lax.optimization_barrier(nodes)
    propagate = _propagate_symmetric if symmetric else _propagate
    aggregated = propagate(nodes, senders, receivers, edge_norm, sorted_receivers)  # [N, H]
    return aggregated + nodes * self_norm[:, None]


def node_graph_index(graphs: jraph.GraphsTuple) -> jax.Array:
    """[N] index of the graph each node belongs to."""
    num_graphs = graphs.n_node.shape[0]
    num_nodes = jax.tree.leaves(graphs.nodes)[0].shape[0]
    return jnp.repeat(jnp.arange(num_graphs), graphs.n_node, total_repeat_length=num_nodes)


def pool(nodes: jax.Array, graphs: jraph.GraphsTuple, readout: str) -> jax.Array:
    """Pools [N, D] node states into [G, D] graph states (empty graphs give zeros)."""
    index = node_graph_index(graphs)  # Sorted: nodes are stored graph by graph.
    num_graphs = graphs.n_node.shape[0]
    if readout == "sum":
        return jax.ops.segment_sum(nodes, index, num_graphs, indices_are_sorted=True)
    if readout == "mean":
        total = jax.ops.segment_sum(nodes, index, num_graphs, indices_are_sorted=True)
        return total / jnp.maximum(graphs.n_node, 1)[:, None].astype(nodes.dtype)
    pooled = jax.ops.segment_max(nodes, index, num_graphs, indices_are_sorted=True)
    return jnp.where(graphs.n_node[:, None] > 0, pooled, 0.0)


def edge_weights(graphs: jraph.GraphsTuple, edge_types: Sequence[int], dtype=np.float32):
    """[E] 1.0 for edges whose ``type`` is in `edge_types`, else 0.0 (numpy or JAX)."""
    types = graphs.edges["type"]
    xp = jnp if isinstance(types, jax.Array) else np
    return xp.isin(types, xp.asarray(edge_types, types.dtype)).astype(dtype)


def add_gcn_norm(graph: jraph.GraphsTuple, edge_types: Sequence[int]) -> jraph.GraphsTuple:
    """Host-side: stores `gcn_norm` of the kept edge types as ``edges["norm"]`` [E] and
    ``nodes["self_norm"]`` [N], so the model need not recompute degrees every step.
    Padding later adds zeros: padding edges carry no weight."""
    num_nodes = int(np.sum(graph.n_node))
    weight = edge_weights(graph, edge_types)
    edge_norm, self_norm = gcn_norm(graph.senders, graph.receivers, weight, num_nodes)
    return graph._replace(
        nodes={**graph.nodes, "self_norm": self_norm}, edges={**graph.edges, "norm": edge_norm}
    )


def _depths(parent: np.ndarray) -> np.ndarray:
    """[N] depth of each node of a forest given as parent pointers (roots point at
    themselves), by pointer jumping: O(N log depth).

    Raises:
      ValueError: the pointers contain a cycle.
    """
    num_nodes = len(parent)
    depth = (parent != np.arange(num_nodes)).astype(np.int64)
    ancestor = parent.copy()
    for _ in range(max(1, int(np.ceil(np.log2(max(num_nodes, 2))))) + 1):
        next_ancestor = ancestor[ancestor]
        if np.array_equal(next_ancestor, ancestor):
            return depth
        depth = depth + np.where(ancestor != next_ancestor, depth[ancestor], 0)
        ancestor = next_ancestor
    raise ValueError("tree edges contain a cycle")


def add_tree_gcn_norm(graph: jraph.GraphsTuple, tree_edge_type: int = 0) -> jraph.GraphsTuple:
    """Host-side, for `GCN(tree=True)`: the forest of a graph's parent->child edges as
    parent pointers, nodes renumbered breadth-first, with the undirected tree's GCN norms.

    Breadth-first order (by depth, ties in the input's order) makes parent indices sorted,
    so the model's gathers and scatters run over sorted indices; it holds across the graphs
    of a padded batch too. The GCN is invariant to the numbering, and pooling only needs
    each graph's nodes to stay together. Node features are permuted with the nodes; edges
    are dropped (the pointers replace them). Added node features, each [N]:

      ``parent_offset`` (int32) parent index minus own index (<= 0; 0 for roots, whose
        parent is the graph's first node with norm 0), so it survives concatenation;
      ``parent_norm`` ``1 / sqrt(d_i d_parent)`` for the edge to the parent, 0 for roots;
      ``self_norm`` ``1 / d_i``, with ``d_i = 1 + children + (1 if i has a parent)``.

    Raises:
      ValueError: a node has more than one parent, the edges have a cycle, or the input
        numbering does not give sorted parents breadth-first (number nodes in preorder,
        as `codeprop.graphs.ast.ast_graph` does).
    """
    keep = graph.edges["type"] == tree_edge_type
    senders, receivers = graph.senders[keep], graph.receivers[keep]
    num_nodes = int(np.sum(graph.n_node))
    if np.bincount(receivers, minlength=num_nodes).max(initial=0) > 1:
        raise ValueError("tree edges must give every node at most one parent")
    parent = np.arange(num_nodes)
    parent[receivers] = senders
    is_root = parent == np.arange(num_nodes)
    order = np.lexsort((np.arange(num_nodes), _depths(parent)))  # Breadth-first.
    position = np.empty(num_nodes, np.int64)
    position[order] = np.arange(num_nodes)
    new_parent = np.where(is_root[order], 0, position[parent[order]])
    if np.any(np.diff(new_parent) < 0):
        raise ValueError(
            "breadth-first order does not sort the parents: number the nodes in preorder"
        )
    degree = 1.0 + np.bincount(senders, minlength=num_nodes) + (~is_root)
    parent_norm = np.where(is_root, 0.0, 1.0 / np.sqrt(degree * degree[parent]))
    return graph._replace(
        nodes={
            **{k: v[order] for k, v in graph.nodes.items()},
            "parent_offset": (new_parent - np.arange(num_nodes)).astype(np.int32),
            "parent_norm": parent_norm[order].astype(np.float32),
            "self_norm": (1.0 / degree[order]).astype(np.float32),
        },
        edges={},
        senders=np.zeros(0, np.int32),
        receivers=np.zeros(0, np.int32),
        n_edge=np.zeros_like(graph.n_edge),
    )


def _tree_propagate(nodes, parent, parent_norm, self_norm):
    """``P @ nodes`` for the forest's normalised adjacency P (self-loops included)."""
    scaled = nodes * parent_norm[:, None]  # [N, H]
    from_parent = nodes.at[parent].get(mode="promise_in_bounds", indices_are_sorted=True)
    from_children = jax.ops.segment_sum(
        scaled, parent, nodes.shape[0], indices_are_sorted=True, mode="promise_in_bounds"
    )
    return from_parent * parent_norm[:, None] + from_children + nodes * self_norm[:, None]


@jax.custom_vjp
def tree_conv(
    nodes: jax.Array, parent: jax.Array, parent_norm: jax.Array, self_norm: jax.Array
) -> jax.Array:
    """`graph_conv` over an undirected forest given by sorted parent pointers.

    Each node receives from its parent and its children: one gather and one scatter of N
    rows (instead of 2(N-1) edges each way), both over sorted indices. The normalised
    adjacency is symmetric, so the backward pass is the same propagation of the gradient.

    Args:
      nodes: [N, H] node states.
      parent: [N] int parent of each node, nondecreasing (`add_tree_gcn_norm` order).
      parent_norm: [N] norm of the edge to the parent, ``1 / sqrt(d_i d_parent)``; 0 for
        roots and padding.
      self_norm: [N] ``1 / d_i``.

    Returns:
      [N, H] new node states. Gradients flow to `nodes` only.
    """
    return _tree_propagate(nodes, parent, parent_norm, self_norm)


def _tree_conv_fwd(nodes, parent, parent_norm, self_norm):
    return _tree_propagate(nodes, parent, parent_norm, self_norm), (parent, parent_norm, self_norm)


def _tree_conv_bwd(residuals, grad):
    return _tree_propagate(grad, *residuals), None, None, None


tree_conv.defvjp(_tree_conv_fwd, _tree_conv_bwd)


class GCN(nn.Module):
    """GCN graph classifier: node-type embedding -> graph convs -> pooling -> linear head.

    Attributes:
      config: hyperparameters.
      vocab_size: number of node types (``nodes["type"]`` values, OOV id 0 included).
      num_classes: C.
      sorted_receivers: the input batches have edges sorted by receiver (as
        `codeprop.graphs.transforms.sort_edges_by_receiver` makes them): a faster scatter.
      symmetric: the kept edges form an undirected graph (each edge has a reverse twin,
        e.g. the AST's CHILD and PARENT edges): a faster backward pass.
      tree: the batch's graphs are forests prepared by `add_tree_gcn_norm` (sorted parent
        pointers as node features), used in both directions: the same GCN as on an AST's
        CHILD and PARENT edges, with a quarter of the gather/scatter traffic (`tree_conv`).
        Input that breaks a promise gives wrong results.

    Graphs may carry precomputed norms (`add_gcn_norm`: ``edges["norm"]``,
    ``nodes["self_norm"]``); otherwise they are computed from ``edges["type"]``.
    """

    config: GCNConfig
    vocab_size: int
    num_classes: int
    sorted_receivers: bool = False
    symmetric: bool = False
    tree: bool = False

    def setup(self):
        cfg = self.config
        self.node_embed = node_embedding(self, self.vocab_size, cfg.hidden_dim)
        dims = layer_dims(cfg.hidden_dim, cfg.embed_dim, cfg.num_layers)
        self.convs = [nn.Dense(d, name=f"conv_{i}") for i, d in enumerate(dims)]
        self.dropout = nn.Dropout(cfg.dropout_rate)
        self.head = nn.Dense(self.num_classes, name="head")

    def embed(self, graphs: jraph.GraphsTuple, deterministic: bool = True) -> jax.Array:
        """[G, D] graph embeddings (the classifier's input, before auxiliary inputs)."""
        cfg = self.config
        types = graphs.nodes["type"]  # [N]
        num_nodes = types.shape[0]
        if self.tree:
            if "parent_offset" not in graphs.nodes:
                raise ValueError("GCN(tree=True) needs graphs prepared by add_tree_gcn_norm")
            parent = jnp.arange(num_nodes) + graphs.nodes["parent_offset"]  # [N], sorted
            parent_norm, self_norm = graphs.nodes["parent_norm"], graphs.nodes["self_norm"]
        elif "norm" in graphs.edges:
            edge_norm, self_norm = graphs.edges["norm"], graphs.nodes["self_norm"]  # [E], [N]
        else:
            weight = edge_weights(graphs, cfg.edge_types, jnp.float32)  # [E]
            edge_norm, self_norm = gcn_norm(graphs.senders, graphs.receivers, weight, num_nodes)
        x = None
        for i, conv in enumerate(self.convs):
            if i == 0:
                # Node inputs are one-hot types, so the first transform of the embedded
                # types is a lookup in the transformed table: [V, H] @ [H, D_0], then gather.
                h = _gather(conv(self.node_embed), types)  # [N, D_0]
            else:
                h = conv(self.dropout(x, deterministic=deterministic))  # [N, D_i]
            # Transform, then propagate (Kipf's order): the gathers move D_i-wide rows.
            if self.tree:
                h = tree_conv(jax.lax.optimization_barrier(h), parent, parent_norm, self_norm)
            else:
                h = graph_conv(
                    h,
                    graphs.senders,
                    graphs.receivers,
                    edge_norm,
                    self_norm,
                    self.sorted_receivers,
                    self.symmetric,
                )
            x = nn.relu(h)  # [N, D_i]
        return pool(x, graphs, cfg.readout)  # [G, D]

    def __call__(
        self,
        graphs: jraph.GraphsTuple,
        aux: jax.Array | None = None,
        rows: jax.Array | None = None,
        deterministic: bool = True,
    ) -> jax.Array:
        """Class logits of each graph, or of each row when `rows` is given.

        Args:
          graphs: a padded batch of G graphs.
          aux: [R, A] auxiliary inputs (R = G without `rows`), when ``config.num_aux`` > 0.
          rows: [R] int graph of each example row: several rows (e.g. one kernel run on
            several input sizes) share one graph, which is then embedded once.
          deterministic: no dropout when True.

        Returns:
          [R, C] logits (R = G without `rows`).
        """
        h = self.embed(graphs, deterministic=deterministic)  # [G, D]
        return classify(h, self.head, self.config.num_aux, aux, rows)


class MLPHead(nn.Module):
    """A classifier head with one hidden layer: ``Dense(hidden) -> relu -> Dense(C)``.

    A linear head over ``[graph embedding, aux inputs]`` adds the auxiliary inputs'
    effect to every graph alike; the hidden layer lets it depend on the graph (devmap: a
    kernel's device can flip with its transfer size in a way particular to the kernel).

    Attributes:
      hidden: width of the hidden layer.
      num_classes: C.
    """

    hidden: int
    num_classes: int

    @nn.compact
    def __call__(self, h: jax.Array) -> jax.Array:
        """[R, C] logits of [R, D + A] features."""
        h = nn.relu(nn.Dense(self.hidden, name="hidden")(h))  # [R, hidden]
        return nn.Dense(self.num_classes, name="out")(h)


def make_head(hidden: int, num_classes: int) -> nn.Module:
    """The head submodule ``head``: linear for ``hidden`` 0, else an `MLPHead`."""
    if hidden < 0:
        raise ValueError(f"head_hidden must be >= 0, not {hidden}")
    if hidden == 0:
        return nn.Dense(num_classes, name="head")
    return MLPHead(hidden, num_classes, name="head")


def node_embedding(module: nn.Module, vocab_size: int, dim: int) -> jax.Array:
    """The [V, H] node-input embedding parameter ``node_embed`` of a graph classifier."""
    return module.param("node_embed", nn.initializers.normal(stddev=1.0), (vocab_size, dim))


def layer_dims(hidden_dim: int, embed_dim: int, num_layers: int) -> list[int]:
    """Output widths of the graph layers: hidden for all but the last, then embed."""
    return [hidden_dim] * (num_layers - 1) + [embed_dim]


def classify(
    h: jax.Array, head: nn.Module, num_aux: int, aux: jax.Array | None, rows: jax.Array | None
) -> jax.Array:
    """[R, C] logits from [G, D] graph embeddings: pick each row's graph, append the
    [R, A] auxiliary inputs (when `num_aux` > 0), apply the head."""
    if rows is not None:
        h = h[rows]  # [R, D]
    if num_aux:
        if aux is None or aux.shape[-1] != num_aux:
            raise ValueError(f"the model expects aux inputs of shape [R, {num_aux}]")
        h = jnp.concatenate([h, aux.astype(h.dtype)], axis=-1)  # [R, D + A]
    return head(h)


def num_params(params) -> int:
    """Number of scalars in a parameter tree."""
    return sum(x.size for x in jax.tree.leaves(params))
