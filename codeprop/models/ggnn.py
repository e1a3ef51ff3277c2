"""Gated graph neural networks (Li et al., 2016) over relations, as ProGraML's own model.

Letters in shapes: N nodes (budget, padding included), E edges, G graphs, R relations, H
hidden features, D embedding features, C classes.

ProGraML (Cummins et al., 2021) classifies its graphs with a GGNN: node-text embeddings,
then message passing where each step sends ``W_r h_j`` along every edge of relation r,
averages the messages per receiver and relation, sums them, and updates each node with a
GRU cell, ``h_i <- GRU(h_i, m_i)``. Steps come in layers: within a layer every step
shares the layer's weights (``layer_timesteps = (2, 2, 2)``: three layers of two steps).
The graph embedding is the gated readout ``sum_i sigmoid(f([h_i, h_i^0])) * g(h_i)``.
Messages reuse `codeprop.models.rgcn.RelationalGraphConv` (without its root weight: the
GRU sees the node itself), so they take the same inputs as the R-GCN: reverse edges as
relations 3..5 and ``edges["norm"]`` from `codeprop.models.rgcn.add_rgcn_norm`.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

from codeprop.models import gnn, rgcn

READOUTS = ("gated", *gnn.READOUTS)


@dataclasses.dataclass(frozen=True)
class GGNNConfig:
    """Hyperparameters of `GGNN` (ProGraML's: hidden 32, two steps in each of three
    layers, gated readout).

    Attributes:
      hidden_dim: H, width of the node states (and of the node-text embedding).
      embed_dim: D, width of the graph embedding (the readout's output).
      layer_timesteps: steps of each layer; a layer's steps share its weights.
      num_relations: R (6: control, data, call and their reverses).
      normalization: ``mean`` or ``symmetric`` edge coefficients, per relation (as
        `codeprop.models.rgcn.RGCNConfig`).
      num_positions: 0 to ignore edge positions; else K: a learned embedding of each
        edge's position is added to the sender's state in its message.
      readout: ``gated`` (ProGraML's) or ``mean``, ``sum``, ``max`` of the final states
        projected to D.
      num_aux: auxiliary graph-level inputs (devmap: 2), 0 for none.
      dropout_rate: dropout on node states before each layer's messages.
      number_width: as `codeprop.models.rgcn.RGCNConfig.number_width`.
      head_hidden: as `codeprop.models.rgcn.RGCNConfig.head_hidden`.
    """

    hidden_dim: int = 32
    embed_dim: int = 64
    layer_timesteps: tuple[int, ...] = (2, 2, 2)
    num_relations: int = 6
    normalization: str = "mean"
    num_positions: int = 0
    readout: str = "gated"
    num_aux: int = 0
    dropout_rate: float = 0.0
    number_width: int = 0
    head_hidden: int = 0

    def __post_init__(self):
        if self.normalization not in rgcn.NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {rgcn.NORMALIZATIONS}")
        if self.readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {self.readout!r}")
        if not self.layer_timesteps or min(self.layer_timesteps) < 1:
            raise ValueError(f"layer_timesteps must be positive, got {self.layer_timesteps}")
        if self.num_relations < 1 or self.number_width < 0 or self.head_hidden < 0:
            raise ValueError("num_relations must be >= 1, number_width and head_hidden >= 0")


class GGNN(nn.Module):
    """GGNN graph classifier: node-text embedding -> gated steps -> readout -> head.

    Inputs as `codeprop.models.rgcn.RGCN`'s: padded batches with ``nodes["type"]``,
    ``edges["type"]`` and ``edges["norm"]`` (and ``nodes["digits"]`` with
    ``config.number_width``).

    Attributes:
      config: hyperparameters.
      vocab_size: V (the out-of-vocabulary id 0 included).
      num_classes: C.
      sorted_receivers: the batches' edges are sorted by receiver.
    """

    config: GGNNConfig
    vocab_size: int
    num_classes: int
    sorted_receivers: bool = False

    def setup(self):
        cfg = self.config
        self.node_embed = gnn.node_embedding(self, self.vocab_size, cfg.hidden_dim)
        if cfg.number_width:
            self.digit_embed = rgcn.digit_embedding(self, cfg.number_width, cfg.hidden_dim)
        self.messages = [
            rgcn.RelationalGraphConv(
                cfg.hidden_dim,
                cfg.num_relations,
                root_weight=False,
                sorted_receivers=self.sorted_receivers,
                num_positions=cfg.num_positions,
                name=f"messages_{i}",
            )
            for i in range(len(cfg.layer_timesteps))
        ]
        self.updates = [
            nn.GRUCell(cfg.hidden_dim, name=f"gru_{i}") for i in range(len(cfg.layer_timesteps))
        ]
        self.dropout = nn.Dropout(cfg.dropout_rate)
        if cfg.readout == "gated":
            self.gate = nn.Dense(1, name="gate")
        self.project = nn.Dense(cfg.embed_dim, name="project")
        self.head = gnn.make_head(cfg.head_hidden, self.num_classes)

    def embed(self, graphs: jraph.GraphsTuple, deterministic: bool = True) -> jax.Array:
        """[G, D] graph embeddings (the classifier's input, before auxiliary inputs)."""
        cfg = self.config
        edges = (graphs.senders, graphs.receivers, graphs.edges["type"], graphs.edges["norm"])
        positions = graphs.edges["position"] if cfg.num_positions else None
        if cfg.number_width:
            h0 = rgcn.node_inputs(self.node_embed, self.digit_embed, graphs.nodes)  # [N, H]
        else:
            h0 = self.node_embed[graphs.nodes["type"]]  # [N, H]
        h = h0
        for messages, update, steps in zip(
            self.messages, self.updates, cfg.layer_timesteps, strict=True
        ):
            h = self.dropout(h, deterministic=deterministic)
            for _ in range(steps):
                m = messages(h, *edges, positions=positions)  # [N, H]
                h, _ = update(h, m)
        if cfg.readout == "gated":
            gate = nn.sigmoid(self.gate(jnp.concatenate([h, h0], axis=-1)))  # [N, 1]
            return gnn.pool(gate * self.project(h), graphs, "sum")  # [G, D]
        return gnn.pool(self.project(h), graphs, cfg.readout)  # [G, D]

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
