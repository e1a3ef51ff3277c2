"""A ProGraML graph drawn small (matplotlib), to look at rather than read.

`layout` places instructions in rows by their control-flow depth (breadth-first from the
instructions without a control predecessor; back edges do not push a node down) and
each variable or constant beside the instructions it connects to; `draw` colours nodes
by type and edges by flow: control black, data blue, call red.
"""

from __future__ import annotations

import collections

import matplotlib.pyplot as plt
import numpy as np

from codeprop.graphs import programl

NODE_COLOURS = ("lightgray", "tab:cyan", "tab:orange")  # instruction, variable, constant
FLOW_COLOURS = ("black", "tab:blue", "tab:red")  # control, data, call


def layout(graph: programl.ProgramGraph) -> np.ndarray:
    """[N, 2] (x, y) of every node; y is minus the row, so control flows downwards."""
    n = graph.num_nodes
    instruction = graph.node_type == programl.NODE_TYPE_NAMES.index("instruction")
    control = graph.edge_flow == programl.FLOW_NAMES.index("control")
    successors = collections.defaultdict(list)
    has_predecessor = np.zeros(n, bool)
    for s, t in zip(graph.edge_source[control], graph.edge_target[control], strict=True):
        successors[int(s)].append(int(t))
        has_predecessor[t] = True
    depth = np.full(n, -1)
    queue = collections.deque(int(i) for i in np.flatnonzero(instruction & ~has_predecessor))
    for i in queue:
        depth[i] = 0
    while queue:  # Breadth first: a node keeps its first (shortest) depth.
        i = queue.popleft()
        for j in successors[i]:
            if depth[j] < 0:
                depth[j] = depth[i] + 1
                queue.append(j)
    depth[instruction & (depth < 0)] = 0  # Unreachable instructions: the top row.
    neighbours = collections.defaultdict(list)
    for s, t in zip(graph.edge_source, graph.edge_target, strict=True):
        neighbours[int(s)].append(int(t))
        neighbours[int(t)].append(int(s))
    for i in np.flatnonzero(~instruction):  # Values sit level with what they connect.
        placed = [depth[j] for j in neighbours[int(i)] if instruction[j]]
        depth[i] = int(np.floor(np.mean(placed))) if placed else 0
    xy = np.zeros((n, 2))
    column: collections.Counter = collections.Counter()
    for kind in (True, False):  # Instructions first in each row, then values.
        for i in np.flatnonzero(instruction == kind):
            xy[i] = column[depth[i]], -depth[i]
            column[depth[i]] += 1
    for row, width in column.items():  # Centre each row.
        xy[depth == row, 0] -= (width - 1) / 2
    return xy


def draw(graph: programl.ProgramGraph, labels: bool = True, size: tuple = (6, 6)):
    """The graph, nodes labelled with their ProGraML text.

    Returns:
      The figure (one marker per node, one line per edge).
    """
    xy = layout(graph)
    fig, ax = plt.subplots(figsize=size)
    for flow, colour in enumerate(FLOW_COLOURS):
        keep = graph.edge_flow == flow
        for s, t in zip(graph.edge_source[keep], graph.edge_target[keep], strict=True):
            ax.annotate(
                "",
                xy=xy[t],
                xytext=xy[s],
                arrowprops={"arrowstyle": "->", "color": colour, "lw": 0.6, "alpha": 0.7},
            )
    for kind, colour in enumerate(NODE_COLOURS):
        keep = graph.node_type == kind
        ax.scatter(
            xy[keep, 0],
            xy[keep, 1],
            s=220,
            c=colour,
            edgecolors="black",
            linewidths=0.5,
            label=programl.NODE_TYPE_NAMES[kind],
            zorder=3,
        )
    if labels:
        for i, text in enumerate(graph.node_text):
            ax.text(*xy[i], text[:10], fontsize=6, ha="center", va="center", zorder=4)
    for flow, colour in enumerate(FLOW_COLOURS):
        ax.plot([], [], color=colour, label=f"{programl.FLOW_NAMES[flow]} flow")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    ax.set_axis_off()
    ax.set_title(f"{graph.module or 'graph'}: {graph.num_nodes} nodes, {graph.num_edges} edges")
    fig.tight_layout()
    return fig
