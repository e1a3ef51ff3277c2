import jax
import jax.numpy as jnp
import jraph
import numpy as np
import pytest

from codeprop.graphs import ast, batching, transforms
from codeprop.models import gnn

SOURCES = [
    "int f(int x) { return x * 2; }",
    "void g() { for (int i = 0; i < 3; i++) { h(i); } }",
    "struct s { int a; float b; };",
]


def _graphs(cfg, norms=True):
    raw = [ast.ast_graph(s, "c") for s in SOURCES]
    vocab = ast.NodeTypeVocab.build(raw, "c")
    table = vocab.table("c")
    out = []
    for g in raw:
        g = transforms.sort_edges_by_receiver(
            transforms.keep_edge_types(vocab.encode(g, table), cfg.edge_types)
        )
        out.append(gnn.add_gcn_norm(g, cfg.edge_types) if norms else g)
    return out, len(vocab)


def _dense_gcn_reference(x, senders, receivers, n):
    a = np.zeros((n, n))
    np.add.at(a, (receivers, senders), 1.0)
    a_hat = a + np.eye(n)
    d = a_hat.sum(1)
    return (a_hat / np.sqrt(d[:, None] * d[None, :])) @ x


def test_graph_conv_matches_dense_formula():
    cfg = gnn.GCNConfig()
    (g, *_), _ = _graphs(cfg)
    n = int(g.n_node[0])
    x = np.random.default_rng(0).normal(size=(n, 5)).astype(np.float32)
    want = _dense_gcn_reference(x, g.senders, g.receivers, n)
    for symmetric in (False, True):
        got = gnn.graph_conv(
            jnp.asarray(x),
            g.senders,
            g.receivers,
            g.edges["norm"],
            g.nodes["self_norm"],
            sorted_receivers=True,
            symmetric=symmetric,
        )
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_symmetric_backward_equals_autodiff():
    cfg = gnn.GCNConfig()
    (g, *_), _ = _graphs(cfg)
    n = int(g.n_node[0])
    x = jnp.asarray(np.random.default_rng(1).normal(size=(n, 4)).astype(np.float32))
    w = jnp.asarray(np.random.default_rng(2).normal(size=(n, 4)).astype(np.float32))

    def loss(x, symmetric):
        out = gnn.graph_conv(
            x, g.senders, g.receivers, g.edges["norm"], g.nodes["self_norm"], True, symmetric
        )
        return jnp.sum(jnp.tanh(out) * w)

    np.testing.assert_allclose(
        jax.grad(loss)(x, True), jax.grad(loss)(x, False), rtol=1e-5, atol=1e-6
    )


def _batch(graphs, n_graph=4):
    return batching.pad_batch(graphs, batching.Budget(n_node=128, n_edge=256, n_graph=n_graph))


@pytest.mark.parametrize("readout", ["mean", "sum", "max"])
def test_shapes_and_padding_invariance(readout):
    cfg = gnn.GCNConfig(hidden_dim=8, embed_dim=6, readout=readout)
    graphs, vocab_size = _graphs(cfg)
    model = gnn.GCN(cfg, vocab_size, num_classes=3, sorted_receivers=True, symmetric=True)
    batch = _batch(graphs)
    params = model.init(jax.random.key(0), batch)["params"]
    logits = model.apply({"params": params}, batch)
    emb = model.apply({"params": params}, batch, method="embed")
    assert logits.shape == (4, 3) and emb.shape == (4, 6)
    # Each graph alone (with more padding) gives the same outputs as in the batch.
    for i, g in enumerate(graphs):
        alone = model.apply({"params": params}, _batch([g], n_graph=2))
        np.testing.assert_allclose(alone[0], logits[i], rtol=1e-5, atol=1e-6)


def test_pooled_output_is_invariant_to_node_permutation():
    cfg = gnn.GCNConfig(hidden_dim=8, embed_dim=6)
    graphs, vocab_size = _graphs(cfg)
    g = graphs[1]
    n = int(g.n_node[0])
    perm = np.random.default_rng(0).permutation(n)
    inverse = np.argsort(perm)  # new id of each old node
    permuted = transforms.sort_edges_by_receiver(
        g._replace(
            nodes={k: v[perm] for k, v in g.nodes.items()},
            senders=inverse[g.senders].astype(np.int32),
            receivers=inverse[g.receivers].astype(np.int32),
        )
    )
    model = gnn.GCN(cfg, vocab_size, num_classes=2, sorted_receivers=True, symmetric=True)
    params = model.init(jax.random.key(0), _batch([g], 2))["params"]
    a = model.apply({"params": params}, _batch([g], 2), method="embed")[0]
    b = model.apply({"params": params}, _batch([permuted], 2), method="embed")[0]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_precomputed_norms_sorted_and_plain_paths_agree():
    cfg = gnn.GCNConfig(hidden_dim=8, embed_dim=6)
    with_norms, vocab_size = _graphs(cfg, norms=True)
    plain, _ = _graphs(cfg, norms=False)
    fast = gnn.GCN(cfg, vocab_size, 2, sorted_receivers=True, symmetric=True)
    slow = gnn.GCN(cfg, vocab_size, 2)
    params = fast.init(jax.random.key(0), _batch(with_norms))["params"]
    # Real graphs agree (the padding graph's output is never used).
    np.testing.assert_allclose(
        fast.apply({"params": params}, _batch(with_norms))[:3],
        slow.apply({"params": params}, _batch(plain))[:3],
        rtol=1e-5,
        atol=1e-6,
    )


def test_edge_types_select_edges():
    # A GCN that keeps no edge type reduces to per-node self-loops: siblings do not matter.
    cfg = gnn.GCNConfig(hidden_dim=4, embed_dim=4, edge_types=())
    raw = [ast.ast_graph(s, "c") for s in SOURCES]
    vocab = ast.NodeTypeVocab.build(raw, "c")
    graphs = [vocab.encode(g, vocab.table("c")) for g in raw]
    stripped = [transforms.keep_edge_types(g, ()) for g in graphs]
    model = gnn.GCN(cfg, len(vocab), 2)
    params = model.init(jax.random.key(0), _batch(graphs))["params"]
    np.testing.assert_allclose(
        model.apply({"params": params}, _batch(graphs))[:3],
        model.apply({"params": params}, _batch(stripped))[:3],
        rtol=1e-6,
    )


def test_aux_inputs_and_rows():
    cfg = gnn.GCNConfig(hidden_dim=8, embed_dim=6, num_aux=2)
    graphs, vocab_size = _graphs(cfg)
    model = gnn.GCN(cfg, vocab_size, 2)
    batch = _batch(graphs)
    rows = jnp.array([0, 0, 1, 2, 3])  # Two rows share graph 0; row 4 is padding.
    aux = jnp.arange(10, dtype=jnp.float32).reshape(5, 2)
    params = model.init(jax.random.key(0), batch, aux, rows)["params"]
    assert gnn.num_params(params) == vocab_size * 8 + (8 * 8 + 8) + (8 * 6 + 6) + (8 * 2 + 2)
    logits = model.apply({"params": params}, batch, aux, rows)
    assert logits.shape == (5, 2)
    assert not np.allclose(logits[0], logits[1])  # Same graph, different aux.
    with pytest.raises(ValueError, match="aux inputs"):
        model.apply({"params": params}, batch)


def test_jit_matches_no_jit():
    cfg = gnn.GCNConfig(hidden_dim=8, embed_dim=6)
    graphs, vocab_size = _graphs(cfg)
    model = gnn.GCN(cfg, vocab_size, 2, sorted_receivers=True, symmetric=True)
    batch = _batch(graphs)
    params = model.init(jax.random.key(0), batch)["params"]
    eager = model.apply({"params": params}, batch)
    jitted = jax.jit(model.apply)({"params": params}, jraph.GraphsTuple(*batch))
    np.testing.assert_allclose(eager, jitted, rtol=1e-5, atol=1e-6)


def test_tree_mode_equals_gcn_on_child_and_parent_edges():
    cfg = gnn.GCNConfig(hidden_dim=8, embed_dim=6)
    raw = [ast.ast_graph(s, "c") for s in SOURCES]
    vocab = ast.NodeTypeVocab.build(raw, "c")
    encoded = [transforms.sort_edges_by_receiver(vocab.encode(g, vocab.table("c"))) for g in raw]
    both_ways = [
        gnn.add_gcn_norm(transforms.keep_edge_types(g, (ast.CHILD, ast.PARENT)), (0, 1))
        for g in encoded
    ]
    tree = [gnn.add_tree_gcn_norm(g, ast.CHILD) for g in encoded]
    assert [int(t.n_edge[0]) for t in tree] == [0] * len(tree)
    for t in tree:
        assert np.all(np.diff(np.arange(len(t.nodes["type"])) + t.nodes["parent_offset"]) >= 0)
    reference = gnn.GCN(cfg, len(vocab), 2, sorted_receivers=True, symmetric=True)
    fast = gnn.GCN(cfg, len(vocab), 2, sorted_receivers=True, tree=True)
    params = reference.init(jax.random.key(0), _batch(both_ways))["params"]
    want = reference.apply({"params": params}, _batch(both_ways))[:3]
    np.testing.assert_allclose(
        fast.apply({"params": params}, _batch(tree))[:3], want, rtol=1e-5, atol=1e-6
    )

    def loss(p, model, graphs):
        return jnp.sum(model.apply({"params": p}, _batch(graphs))[:3] ** 2)

    g_ref = jax.grad(loss)(params, reference, both_ways)
    g_fast = jax.grad(loss)(params, fast, tree)
    for a, b in zip(jax.tree.leaves(g_ref), jax.tree.leaves(g_fast)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_tree_norm_rejects_a_node_with_two_parents():
    g = jraph.GraphsTuple(
        nodes={"type": np.zeros(3, np.int32)},
        edges={"type": np.zeros(2, np.int32)},
        senders=np.array([0, 1], np.int32),
        receivers=np.array([2, 2], np.int32),
        n_node=np.array([3], np.int32),
        n_edge=np.array([2], np.int32),
        globals=None,
    )
    with pytest.raises(ValueError, match="at most one parent"):
        gnn.add_tree_gcn_norm(g)


def _forest(parent):
    """A one-graph forest from parent pointers (-1 for roots) as CHILD edges."""
    parent = np.asarray(parent)
    child = np.flatnonzero(parent >= 0)
    return jraph.GraphsTuple(
        nodes={"type": np.arange(len(parent), dtype=np.int32)},
        edges={"type": np.zeros(len(child), np.int32)},
        senders=parent[child].astype(np.int32),
        receivers=child.astype(np.int32),
        n_node=np.array([len(parent)], np.int32),
        n_edge=np.array([len(child)], np.int32),
        globals=None,
    )


def test_tree_norm_breadth_first_order_and_dense_formula():
    # Two roots, 0 -> {1 -> {2, 3}, 5} and 4 -> {6}.
    parent = [-1, 0, 1, 1, -1, 0, 4]
    g = gnn.add_tree_gcn_norm(_forest(parent))
    # Depth 0: 0, 4; depth 1: 1, 5, 6; depth 2: 2, 3.
    assert g.nodes["type"].tolist() == [0, 4, 1, 5, 6, 2, 3]
    new_parent = np.arange(7) + g.nodes["parent_offset"]
    assert new_parent.tolist() == [0, 0, 0, 0, 1, 2, 2]
    assert g.nodes["parent_norm"][:2].tolist() == [0.0, 0.0]
    assert int(g.n_edge[0]) == 0 and len(g.senders) == 0
    # tree_conv in the new order equals the dense GCN formula on the undirected forest.
    old = np.asarray(parent)
    child = np.flatnonzero(old >= 0)
    x = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    want = _dense_gcn_reference(
        x, np.concatenate([old[child], child]), np.concatenate([child, old[child]]), 7
    )[g.nodes["type"]]
    got = gnn.tree_conv(
        jnp.asarray(x[g.nodes["type"]]),
        jnp.asarray(new_parent),
        g.nodes["parent_norm"],
        g.nodes["self_norm"],
    )
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_tree_conv_backward_equals_autodiff():
    g = gnn.add_tree_gcn_norm(_forest([-1, 0, 0, 1, 1, 2, -1, 6]))
    parent = jnp.arange(8) + g.nodes["parent_offset"]
    w = jnp.asarray(np.random.default_rng(3).normal(size=(8, 4)).astype(np.float32))
    x = jnp.asarray(np.random.default_rng(4).normal(size=(8, 4)).astype(np.float32))

    def loss(x, fn):
        return jnp.sum(jnp.tanh(fn(x, parent, g.nodes["parent_norm"], g.nodes["self_norm"])) * w)

    np.testing.assert_allclose(
        jax.grad(loss)(x, gnn.tree_conv),
        jax.grad(loss)(x, gnn._tree_propagate),
        rtol=1e-5,
        atol=1e-6,
    )


def test_tree_norm_rejects_cycles_and_unsortable_numbering():
    with pytest.raises(ValueError, match="cycle"):
        gnn.add_tree_gcn_norm(_forest([2, 0, 1]))
    # 0 -> {1, 2}, 2 -> 3, 1 -> 4: at depth 2, node 3 (parent 2) precedes 4 (parent 1).
    with pytest.raises(ValueError, match="preorder"):
        gnn.add_tree_gcn_norm(_forest([-1, 0, 0, 2, 1]))
