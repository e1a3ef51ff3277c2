"""Relational graph convolutional networks (Schlichtkrull et al., 2018) in flax linen.

Letters in shapes: N nodes (budget, padding included), E edges, G graphs, R relations,
B bases, H hidden features, D output features, V node-text vocabulary, C classes.

One layer is ``h'_i = act(W_0 h_i + b + sum_r sum_{j ->_r i} c_ij W_r h_j)``: a weight per
relation, a root (self) weight, and an edge coefficient ``c_ij`` from the normalisation
(``mean``: ``1 / |N_r(i)|``, as PyTorch Geometric's ``RGCNConv``; ``symmetric``:
``1 / sqrt(d_r(i) d_r(j))``). With ``num_bases`` > 0 the relation weights share B bases,
``W_r = sum_b a_rb V_b``. For ProGraML graphs the relations are the three flows (control,
data, call) and their reverse directions (`add_reverse_edges`), six in all.

Each layer is one matmul for all relations ([N, H] @ [H, R*D]), one gather of the E
messages from that table and one receiver-sorted scatter; the first layer's input is a
one-hot node text, so its matmul is a lookup in the transformed embedding table.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import numpy as np

from codeprop.graphs import numbers
from codeprop.models import gnn

NORMALIZATIONS = ("mean", "symmetric")


@dataclasses.dataclass(frozen=True)
class RGCNConfig:
    """Hyperparameters of `RGCN` (the paper's ProGraML models: devmap 1 layer, hidden 32,
    embedding 64; POJ-104 2 layers, hidden 64, final 64).

    Attributes:
      hidden_dim: width of the node-text embedding and of every layer but the last.
      embed_dim: width of the last layer, hence of the graph embedding.
      num_layers: relational graph convolutions.
      num_relations: R (6: control, data, call and their reverses).
      num_bases: 0 for a full weight per relation, else the number of shared bases.
      normalization: ``mean`` or ``symmetric`` edge coefficients, per relation.
      root_weight: add the self term ``W_0 h_i``.
      readout: ``mean``, ``sum`` or ``max`` pooling of node states per graph.
      num_aux: auxiliary graph-level inputs (devmap: 2), 0 for none.
      dropout_rate: dropout on node states between layers.
      num_positions: 0 to ignore edge positions; else K: a learned embedding of each
        edge's ``position`` (operand or successor index, clipped to K - 1) is added to the
        sender's state in its message, as ProGraML's own model does.
      layer_norm: normalise each layer's output (LayerNorm over its D features) before
        the activation, for deeper stacks.
      residual: add each layer's input to its activated output where the two widths
        agree (every layer after the first whose width is the previous one's):
        ``x' = x + relu(conv(x))``.
      number_width: 0 for node texts alone; else W: the batches carry ``nodes["digits"]``
        [N, W] (`codeprop.graphs.numbers`: a constant's value, one character per
        position) and a node's input is its text embedding plus the sum of a learned
        embedding per (position, character) of its digits.
      head_hidden: 0 for a linear classifier over ``[embedding, aux]``; else the width
        of the hidden layer of an `codeprop.models.gnn.MLPHead`.
    """

    hidden_dim: int = 32
    embed_dim: int = 64
    num_layers: int = 1
    num_relations: int = 6
    num_bases: int = 0
    normalization: str = "mean"
    root_weight: bool = True
    readout: str = "mean"
    num_aux: int = 0
    dropout_rate: float = 0.0
    num_positions: int = 0
    layer_norm: bool = False
    residual: bool = False
    number_width: int = 0
    head_hidden: int = 0

    def __post_init__(self):
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}")
        if self.readout not in gnn.READOUTS:
            raise ValueError(f"readout must be one of {gnn.READOUTS}, got {self.readout!r}")
        if self.num_layers < 1 or self.num_relations < 1 or self.num_bases < 0:
            raise ValueError("num_layers and num_relations must be >= 1, num_bases >= 0")
        if self.number_width < 0:
            raise ValueError(f"number_width must be >= 0, not {self.number_width}")
        if self.head_hidden < 0:
            raise ValueError(f"head_hidden must be >= 0, not {self.head_hidden}")


def add_reverse_edges(graph: jraph.GraphsTuple, num_types: int = 3) -> jraph.GraphsTuple:
    """Host-side: every edge of type t also runs backwards as type ``t + num_types``.

    Edges carry ``edges["type"]`` in [0, num_types); other edge features are copied.
    """
    edges = {
        k: np.concatenate([v, v + num_types if k == "type" else v]) for k, v in graph.edges.items()
    }
    return graph._replace(
        edges=edges,
        senders=np.concatenate([graph.senders, graph.receivers]),
        receivers=np.concatenate([graph.receivers, graph.senders]),
        n_edge=graph.n_edge * 2,
    )


def edge_norms(
    senders: np.ndarray,
    receivers: np.ndarray,
    relations: np.ndarray,
    num_nodes: int,
    num_relations: int,
    normalization: str,
) -> np.ndarray:
    """[E] coefficients ``c_ij`` per edge (numpy), from per-relation degrees."""
    slot_in = receivers.astype(np.int64) * num_relations + relations
    in_degree = np.bincount(slot_in, minlength=num_nodes * num_relations).astype(np.float64)
    if normalization == "mean":
        return (1.0 / in_degree[slot_in]).astype(np.float32)
    slot_out = senders.astype(np.int64) * num_relations + relations
    out_degree = np.bincount(slot_out, minlength=num_nodes * num_relations).astype(np.float64)
    return (1.0 / np.sqrt(in_degree[slot_in] * out_degree[slot_out])).astype(np.float32)


def add_rgcn_norm(graph: jraph.GraphsTuple, config: RGCNConfig) -> jraph.GraphsTuple:
    """Host-side: stores `edge_norms` as ``edges["norm"]`` [E] so the model need not
    recompute degrees each step (padding edges later get 0: they carry nothing)."""
    num_nodes = int(np.sum(graph.n_node))
    types = graph.edges["type"]
    if len(types) and types.max() >= config.num_relations:
        raise ValueError(f"edge type {types.max()} >= num_relations {config.num_relations}")
    norm = edge_norms(
        graph.senders,
        graph.receivers,
        types,
        num_nodes,
        config.num_relations,
        config.normalization,
    )
    return graph._replace(edges={**graph.edges, "norm": norm})


def combine_bases(coefficients: jax.Array, bases: jax.Array) -> jax.Array:
    """[R, H, D] relation weights ``W_r = sum_b a_rb V_b`` from [R, B] coefficients and
    [B, H, D] bases."""
    return jnp.einsum("rb,bhd->rhd", coefficients, bases)


class RelationalGraphConv(nn.Module):
    """One R-GCN layer over precomputed edge coefficients (no activation).

    Attributes:
      features: D.
      num_relations: R.
      num_bases: 0 for full per-relation weights, else B shared bases.
      root_weight: add ``W_0 h_i``.
      sorted_receivers: edges are sorted by receiver (a faster scatter on CPU).
      num_positions: K > 0 adds ``W_r p_e`` to each message, ``p_e`` a learned [K, H]
        embedding of the edge's position (clipped to K - 1).
    """

    features: int
    num_relations: int
    num_bases: int = 0
    root_weight: bool = True
    sorted_receivers: bool = False
    num_positions: int = 0

    @nn.compact
    def __call__(
        self,
        nodes: jax.Array,
        senders: jax.Array,
        receivers: jax.Array,
        relations: jax.Array,
        norms: jax.Array,
        types: jax.Array | None = None,
        positions: jax.Array | None = None,
    ) -> jax.Array:
        """[N, D] new node states.

        Args:
          nodes: [N, H] node states, or, with `types`, the [V, H] embedding table of
            one-hot node inputs (the layer then gathers rows of the transformed table).
          senders, receivers, relations: [E] int edge source, target and relation.
          norms: [E] edge coefficients (0 for padding edges).
          types: optional [N] int node inputs indexing `nodes` as a table.
          positions: [E] int edge positions (needed when ``num_positions`` > 0).
        """
        in_features = nodes.shape[1]
        init = nn.initializers.lecun_normal()
        if self.num_bases:
            bases = self.param("bases", init, (self.num_bases, in_features, self.features))
            coefficients = self.param("coefficients", init, (self.num_relations, self.num_bases))
            weights = combine_bases(coefficients, bases)  # [R, H, D]
        else:
            weights = self.param(
                "relations", init, (self.num_relations, in_features, self.features)
            )
        stacked = jnp.transpose(weights, (1, 0, 2)).reshape(in_features, -1)  # [H, R*D]
        if self.root_weight:
            root = self.param("root", nn.initializers.lecun_normal(), (in_features, self.features))
            stacked = jnp.concatenate([stacked, root], axis=1)  # [H, (R+1)*D]
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        table = nodes @ stacked  # [N or V, (R+1)*D]
        width = self.num_relations + int(self.root_weight)
        # Row n*width + r of the table is W_r h_n (r = R: the root weight).
        table = table.reshape(table.shape[0] * width, self.features)
        # Keep XLA (CPU) from fusing the matmul into the per-edge gather.
        table = jax.lax.optimization_barrier(table)
        if types is None:
            num_nodes = nodes.shape[0]
            source, target = senders, jnp.arange(num_nodes)
        else:
            # One-hot inputs: index the small [V*width, D] table through the node types
            # instead of materialising an [N, width*D] one.
            num_nodes = types.shape[0]
            source, target = types[senders], types
        messages = gnn._gather(table, source * width + relations)  # [E, D]
        if self.num_positions:
            embed = self.param(
                "positions", nn.initializers.normal(1.0), (self.num_positions, in_features)
            )
            by_position = (embed @ stacked[:, : self.num_relations * self.features]).reshape(
                self.num_positions * self.num_relations, self.features
            )  # [K*R, D]: W_r p_k.
            slot = jnp.minimum(positions, self.num_positions - 1) * self.num_relations + relations
            messages = messages + gnn._gather(by_position, slot)
        messages = messages * norms[:, None]
        out = jax.ops.segment_sum(
            messages,
            receivers,
            num_nodes,
            indices_are_sorted=self.sorted_receivers,
            mode="promise_in_bounds",
        )  # [N, D]
        if self.root_weight:
            out = out + gnn._gather(table, target * width + self.num_relations)  # [N, D]
        return out + bias


def digit_embedding(module: nn.Module, width: int, dim: int) -> jax.Array:
    """The [W, A, H] parameter ``digit_embed``: one vector per (position, character) of
    a constant's digits (`codeprop.graphs.numbers`; A = `numbers.NUM_IDS`)."""
    # Scaled so that a number of W characters adds about as much as a node text.
    return module.param(
        "digit_embed", nn.initializers.normal(stddev=width**-0.5), (width, numbers.NUM_IDS, dim)
    )


def node_inputs(node_embed: jax.Array, digit_embed: jax.Array, nodes: dict) -> jax.Array:
    """[N, H] node inputs with digits: ``node_embed[type]`` plus, per position w whose
    character id c is above 0, ``digit_embed[w, c]``.

    Args:
      node_embed: [V, H] text embedding.
      digit_embed: [W, A, H] (`digit_embedding`).
      nodes: ``type`` [N] and ``digits`` [N, W] int.
    """
    digits = nodes["digits"]  # [N, W]
    width = digit_embed.shape[0]
    if digits.shape[1] != width:
        raise ValueError(f"batches carry {digits.shape[1]} digits a node, the model {width}")
    table = digit_embed.reshape(width * numbers.NUM_IDS, -1)  # [W*A, H]
    slots = jnp.arange(width) * numbers.NUM_IDS + digits  # [N, W]
    by_digit = jnp.where((digits > 0)[..., None], table[slots], 0.0)  # [N, W, H]
    return node_embed[nodes["type"]] + by_digit.sum(axis=1)


class RGCN(nn.Module):
    """R-GCN graph classifier: node-text embedding -> R-GCN layers -> pooling -> head.

    Inputs are padded batches with ``nodes["type"]`` (vocabulary ids, e.g. from
    `codeprop.graphs.programl.NodeTextVocab`), ``edges["type"]`` (relation) and
    ``edges["norm"]`` (`add_rgcn_norm`; padding edges 0); with ``config.number_width``,
    also ``nodes["digits"]`` [N, W].

    Attributes:
      config: hyperparameters.
      vocab_size: V (the out-of-vocabulary id 0 included).
      num_classes: C.
      sorted_receivers: the batches' edges are sorted by receiver.
    """

    config: RGCNConfig
    vocab_size: int
    num_classes: int
    sorted_receivers: bool = False

    def setup(self):
        cfg = self.config
        self.node_embed = gnn.node_embedding(self, self.vocab_size, cfg.hidden_dim)
        if cfg.number_width:
            self.digit_embed = digit_embedding(self, cfg.number_width, cfg.hidden_dim)
        dims = gnn.layer_dims(cfg.hidden_dim, cfg.embed_dim, cfg.num_layers)
        self.convs = [
            RelationalGraphConv(
                d,
                cfg.num_relations,
                cfg.num_bases,
                cfg.root_weight,
                self.sorted_receivers,
                cfg.num_positions,
                name=f"conv_{i}",
            )
            for i, d in enumerate(dims)
        ]
        self.dropout = nn.Dropout(cfg.dropout_rate)
        if cfg.layer_norm:
            self.norms = [nn.LayerNorm(name=f"norm_{i}") for i in range(len(dims))]
        self.head = gnn.make_head(cfg.head_hidden, self.num_classes)

    def node_inputs(self, nodes: dict) -> jax.Array:
        """[N, H] node inputs with digits (`node_inputs`)."""
        return node_inputs(self.node_embed, self.digit_embed, nodes)

    def embed(self, graphs: jraph.GraphsTuple, deterministic: bool = True) -> jax.Array:
        """[G, D] graph embeddings (the classifier's input, before auxiliary inputs)."""
        edges = (graphs.senders, graphs.receivers, graphs.edges["type"], graphs.edges["norm"])
        positions = graphs.edges["position"] if self.config.num_positions else None
        x = None
        for i, conv in enumerate(self.convs):
            if i == 0 and self.config.number_width:
                h = conv(self.node_inputs(graphs.nodes), *edges, positions=positions)
            elif i == 0:
                h = conv(
                    self.node_embed, *edges, types=graphs.nodes["type"], positions=positions
                )  # [N, D_0]
            else:
                h = conv(
                    self.dropout(x, deterministic=deterministic), *edges, positions=positions
                )  # [N, D_i]
            if self.config.layer_norm:
                h = self.norms[i](h)
            h = nn.relu(h)
            residual = self.config.residual and x is not None and x.shape[-1] == h.shape[-1]
            x = x + h if residual else h
        return gnn.pool(x, graphs, self.config.readout)  # [G, D]

    def __call__(
        self,
        graphs: jraph.GraphsTuple,
        aux: jax.Array | None = None,
        rows: jax.Array | None = None,
        deterministic: bool = True,
    ) -> jax.Array:
        """[R, C] logits of each row (see `codeprop.models.gnn.GCN.__call__`)."""
        h = self.embed(graphs, deterministic=deterministic)  # [G, D]
        return gnn.classify(h, self.head, self.config.num_aux, aux, rows)
