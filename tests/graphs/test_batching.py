import jraph
import numpy as np
import pytest

from codeprop.graphs import ast, batching

SOURCES = [
    "int a;",
    "int f(int x) { return x * 2; }",
    "void g() { for (int i = 0; i < 3; i++) { h(i); } }",
    "struct s { int a; float b; };",
    "int main() { return 0; }",
]


@pytest.fixture
def graphs():
    return [ast.ast_graph(s, "c") for s in SOURCES]


def _assert_same(a, b):
    assert np.array_equal(a.n_node, b.n_node) and np.array_equal(a.n_edge, b.n_edge)
    assert np.array_equal(a.senders, b.senders) and np.array_equal(a.receivers, b.receivers)
    np.testing.assert_array_equal(a.nodes["kind"], b.nodes["kind"])
    np.testing.assert_array_equal(a.edges["type"], b.edges["type"])


def test_pad_unpad_unbatch_round_trip(graphs):
    budget = batching.Budget(n_node=256, n_edge=512, n_graph=8)
    padded = batching.pad_batch(graphs, budget)
    assert padded.nodes["kind"].shape == (256,)
    assert padded.senders.shape == (512,)
    assert padded.n_node.shape == (8,)
    assert int(padded.n_node.sum()) == 256 and int(padded.n_edge.sum()) == 512
    unpadded = jraph.unpad_with_graphs(padded)
    _assert_same(unpadded, jraph.batch_np(graphs))
    for got, want in zip(jraph.unbatch_np(unpadded), graphs, strict=True):
        _assert_same(got, want)


def test_masks(graphs):
    budget = batching.Budget(n_node=256, n_edge=512, n_graph=8)
    padded = batching.pad_batch(graphs, budget)
    assert np.asarray(jraph.get_graph_padding_mask(padded)).tolist() == [True] * 5 + [False] * 3
    real_nodes = sum(int(g.n_node[0]) for g in graphs)
    mask = np.asarray(jraph.get_node_padding_mask(padded))
    assert mask[:real_nodes].all() and not mask[real_nodes:].any()


def test_padding_edges_touch_only_padding_nodes(graphs):
    budget = batching.Budget(n_node=256, n_edge=512, n_graph=8)
    padded = batching.pad_batch(graphs, budget)
    real_nodes = sum(int(g.n_node[0]) for g in graphs)
    real_edges = sum(int(g.n_edge[0]) for g in graphs)
    assert (padded.senders[real_edges:] >= real_nodes).all()
    assert (padded.receivers[real_edges:] >= real_nodes).all()
    assert (padded.senders[:real_edges] < real_nodes).all()


def test_pack_uses_every_graph_once_within_budget(graphs):
    budget = batching.estimate_budget(graphs, batch_size=2)
    assert budget.n_graph == 3
    order = [4, 2, 0, 1, 3]
    seen = []
    for batch, idx in batching.pack(graphs, budget, order):
        assert batch.n_node.shape == (3,)
        assert batch.nodes["kind"].shape == (budget.n_node,)
        assert len(idx) <= 2
        seen.extend(idx.tolist())
        for got, i in zip(jraph.unbatch_np(jraph.unpad_with_graphs(batch)), idx, strict=True):
            _assert_same(got, graphs[i])
    assert seen == order


def test_too_large_graph_is_an_error(graphs):
    with pytest.raises(ValueError, match="exceeds the budget"):
        list(batching.pack(graphs, batching.Budget(n_node=4, n_edge=4, n_graph=3)))
    with pytest.raises(ValueError, match="do not fit"):
        batching.pad_batch(graphs, batching.Budget(n_node=4, n_edge=4, n_graph=3))


def test_estimate_budget_holds_largest_graph(graphs):
    budget = batching.estimate_budget(graphs[:1], batch_size=1, also_fit=graphs)
    largest = max(int(g.n_node[0]) for g in graphs)
    assert budget.n_node >= largest + 1 and budget.n_node % 64 == 0
