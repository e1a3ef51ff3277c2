"""Pure numpy transforms of single graphs (before batching)."""

from __future__ import annotations

from collections.abc import Sequence

import jraph
import numpy as np


def keep_edge_types(graph: jraph.GraphsTuple, types: Sequence[int]) -> jraph.GraphsTuple:
    """Drops the edges whose ``edges["type"]`` is not in `types` (a model that ignores
    them then does not pay for them)."""
    keep = np.isin(graph.edges["type"], np.asarray(types))
    return graph._replace(
        edges={k: v[keep] for k, v in graph.edges.items()},
        senders=graph.senders[keep],
        receivers=graph.receivers[keep],
        n_edge=np.array([int(keep.sum())], np.int32),
    )


def sort_edges_by_receiver(graph: jraph.GraphsTuple) -> jraph.GraphsTuple:
    """Orders edges by receiver (stable). Batches of such graphs stay sorted, since
    `codeprop.graphs.batching.pad_batch` offsets node ids in order and padding edges
    point at the last node."""
    order = np.argsort(graph.receivers, kind="stable")
    return graph._replace(
        edges={k: v[order] for k, v in graph.edges.items()},
        senders=graph.senders[order],
        receivers=graph.receivers[order],
    )
