"""R-GCN: shapes, identities with the GCN, padding, bases, and that it can fit."""

import dataclasses

import jax
import jax.numpy as jnp
import jraph
import numpy as np
import optax
import pytest

from codeprop.graphs import batching, numbers, programl, transforms
from codeprop.models import gnn, rgcn

from conftest import TESTDATA


def _program_graphs():
    texts = [(TESTDATA / "ir" / name).read_text() for name in ("small.ll", "legacy.ll")]
    raw = [programl.from_ir(t).to_graphs_tuple() for t in texts]
    vocab = programl.NodeTextVocab.build(raw)
    return [vocab.encode(g) for g in raw], len(vocab)


def _inputs(graphs, config):
    out = []
    for g in graphs:
        g = transforms.sort_edges_by_receiver(rgcn.add_reverse_edges(g))
        out.append(rgcn.add_rgcn_norm(g, config))
    return out


def _batch(graphs, n_node=128, n_edge=256, n_graph=4):
    return batching.pad_batch(graphs, batching.Budget(n_node, n_edge, n_graph))


def test_reverse_edges_and_norms():
    (g, _), _ = _program_graphs()
    both = rgcn.add_reverse_edges(g)
    assert int(both.n_edge[0]) == 2 * int(g.n_edge[0])
    assert np.bincount(both.edges["type"]).tolist() == (
        np.bincount(g.edges["type"], minlength=3).tolist() * 2
    )
    cfg = rgcn.RGCNConfig()
    normed = rgcn.add_rgcn_norm(both, cfg)
    # Mean normalisation: the coefficients into each (node, relation) sum to one.
    slot = both.receivers * 6 + both.edges["type"]
    sums = np.bincount(slot, weights=normed.edges["norm"])
    np.testing.assert_allclose(sums[sums > 0], 1.0, rtol=1e-6)


def test_shapes_embed_and_padding_invariance():
    graphs, vocab_size = _program_graphs()
    cfg = rgcn.RGCNConfig(hidden_dim=8, embed_dim=5, num_layers=2, num_aux=2)
    inputs = _inputs(graphs, cfg)
    model = rgcn.RGCN(cfg, vocab_size, 3, sorted_receivers=True)
    aux = jnp.ones((4, 2))
    small = _batch(inputs)
    params = model.init(jax.random.key(0), small, aux)["params"]
    logits = model.apply({"params": params}, small, aux)
    assert logits.shape == (4, 3)
    assert model.apply({"params": params}, small, method="embed").shape == (4, 5)
    # More padding (nodes, edges, graphs) changes nothing for the real graphs.
    big = _batch(inputs, n_node=300, n_edge=700, n_graph=7)
    logits_big = model.apply({"params": params}, big, jnp.ones((7, 2)))
    np.testing.assert_allclose(logits_big[:2], logits[:2], rtol=1e-5, atol=1e-6)


def test_one_relation_equals_gcn():
    """R-GCN with one relation, symmetric norms over the graph with self-loops and no root
    weight is Kipf & Welling's GCN; the weights are shared."""
    graphs, vocab_size = _program_graphs()
    gcn_cfg = gnn.GCNConfig(hidden_dim=8, embed_dim=6, num_layers=2, edge_types=(0, 1, 2))
    # The GCN on the undirected graph (every edge both ways) ...
    undirected = [
        rgcn.add_reverse_edges(g)._replace(edges={"type": np.zeros(2 * int(g.n_edge[0]), np.int32)})
        for g in graphs
    ]
    gcn_graphs = [gnn.add_gcn_norm(g, (0,)) for g in undirected]
    gcn = gnn.GCN(gcn_cfg, vocab_size, 2)
    params = gcn.init(jax.random.key(1), _batch(gcn_graphs, n_edge=400))["params"]
    want = gcn.apply({"params": params}, _batch(gcn_graphs, n_edge=400))
    # ... equals the one-relation R-GCN on the same graph plus self-loops.
    cfg = rgcn.RGCNConfig(
        hidden_dim=8,
        embed_dim=6,
        num_layers=2,
        num_relations=1,
        normalization="symmetric",
        root_weight=False,
    )
    looped = []
    for g in undirected:
        n = int(g.n_node[0])
        loops = np.arange(n, dtype=np.int32)
        looped.append(
            rgcn.add_rgcn_norm(
                g._replace(
                    senders=np.concatenate([g.senders, loops]),
                    receivers=np.concatenate([g.receivers, loops]),
                    edges={"type": np.zeros(len(g.senders) + n, np.int32)},
                    n_edge=np.array([len(g.senders) + n], np.int32),
                ),
                cfg,
            )
        )
    model = rgcn.RGCN(cfg, vocab_size, 2)
    rparams = {
        "node_embed": params["node_embed"],
        "head": params["head"],
        **{
            f"conv_{i}": {
                "relations": params[f"conv_{i}"]["kernel"][None],
                "bias": params[f"conv_{i}"]["bias"],
            }
            for i in range(2)
        },
    }
    got = model.apply({"params": rparams}, _batch(looped, n_edge=600))
    np.testing.assert_allclose(got[:2], want[:2], rtol=1e-5, atol=1e-6)


def test_basis_decomposition_shares_weights():
    graphs, vocab_size = _program_graphs()
    full = rgcn.RGCNConfig(hidden_dim=8, embed_dim=6)
    based = rgcn.RGCNConfig(hidden_dim=8, embed_dim=6, num_bases=2)
    batch = _batch(_inputs(graphs, full))
    p_full = rgcn.RGCN(full, vocab_size, 2).init(jax.random.key(0), batch)["params"]
    p_based = rgcn.RGCN(based, vocab_size, 2).init(jax.random.key(0), batch)["params"]
    assert p_full["conv_0"]["relations"].shape == (6, 8, 6)
    assert p_based["conv_0"]["bases"].shape == (2, 8, 6)
    assert p_based["conv_0"]["coefficients"].shape == (6, 2)
    assert gnn.num_params(p_based) < gnn.num_params(p_full)
    # Relation weights combined from the bases give the same layer as full weights.
    conv = rgcn.RelationalGraphConv(6, 6, num_bases=2)
    w = rgcn.combine_bases(p_based["conv_0"]["coefficients"], p_based["conv_0"]["bases"])
    p_equiv = {"relations": w, "root": p_based["conv_0"]["root"], "bias": p_based["conv_0"]["bias"]}
    args = (batch.senders, batch.receivers, batch.edges["type"], batch.edges["norm"])
    x = jnp.asarray(np.random.default_rng(0).normal(size=(128, 8)), jnp.float32)
    np.testing.assert_allclose(
        conv.apply({"params": p_based["conv_0"]}, x, *args),
        rgcn.RelationalGraphConv(6, 6).apply({"params": p_equiv}, x, *args),
        rtol=1e-5,
        atol=1e-5,
    )


def test_overfits_eight_graphs():
    # Eight programs from committed IR, labelled arbitrarily: the model must memorise them.
    texts = []
    for name in ("small.ll", "legacy.ll"):
        base = (TESTDATA / "ir" / name).read_text()
        for k in range(4):
            texts.append(
                base.replace("i32 3,", f"i32 {k + 3},").replace("float 1.0", f"float {k}.0")
            )
    raw = [programl.from_ir(t).to_graphs_tuple() for t in texts]
    # Make the graphs differ structurally: drop k edges from graph k's copy.
    raw = [
        g._replace(
            senders=g.senders[: len(g.senders) - k],
            receivers=g.receivers[: len(g.receivers) - k],
            edges={key: v[: len(v) - k] for key, v in g.edges.items()},
            n_edge=g.n_edge - k,
        )
        for k, g in enumerate(raw)
    ]
    vocab = programl.NodeTextVocab.build(raw)
    cfg = rgcn.RGCNConfig(hidden_dim=16, embed_dim=16, num_layers=2, readout="sum")
    batch = _batch(_inputs([vocab.encode(g) for g in raw], cfg), 300, 700, 9)
    labels = jnp.array([0, 1, 1, 0, 1, 0, 0, 1])
    model = rgcn.RGCN(cfg, len(vocab), 2, sorted_receivers=True)
    params = model.init(jax.random.key(0), batch)["params"]
    opt = optax.adam(0.01)
    state = opt.init(params)

    @jax.jit
    def step(params, state):
        def loss_fn(p):
            logits = model.apply({"params": p}, batch)[:8]
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, state = opt.update(grads, state)
        return optax.apply_updates(params, updates), state, loss

    for _ in range(300):
        params, state, loss = step(params, state)
    predictions = model.apply({"params": params}, batch)[:8].argmax(-1)
    assert predictions.tolist() == labels.tolist()
    assert float(loss) < 0.05


def test_config_validation():
    with pytest.raises(ValueError, match="normalization"):
        rgcn.RGCNConfig(normalization="none")
    g = jraph.GraphsTuple(
        nodes={"type": np.zeros(2, np.int32)},
        edges={"type": np.array([7], np.int32)},
        senders=np.array([0], np.int32),
        receivers=np.array([1], np.int32),
        n_node=np.array([2], np.int32),
        n_edge=np.array([1], np.int32),
        globals=None,
    )
    with pytest.raises(ValueError, match="num_relations"):
        rgcn.add_rgcn_norm(g, rgcn.RGCNConfig())


@pytest.mark.parametrize("num_positions", [0, 3])
def test_layer_matches_the_formula(num_positions):
    rng = np.random.default_rng(0)
    n, e, h, d, r = 7, 15, 4, 3, 6
    senders = rng.integers(0, n, e)
    receivers = np.sort(rng.integers(0, n, e))
    relations = rng.integers(0, r, e)
    positions = rng.integers(0, 5, e)
    norms = rng.uniform(0.1, 1.0, e).astype(np.float32)
    x = rng.normal(size=(n, h)).astype(np.float32)
    conv = rgcn.RelationalGraphConv(d, r, sorted_receivers=True, num_positions=num_positions)
    args = (x, senders, receivers, relations, norms)
    params = conv.init(jax.random.key(0), *args, positions=positions)["params"]
    got = conv.apply({"params": params}, *args, positions=positions)
    w, root = np.asarray(params["relations"]), np.asarray(params["root"])
    want = x @ root + np.asarray(params["bias"])
    for s, t, rel, pos, c in zip(senders, receivers, relations, positions, norms, strict=True):
        source = x[s].copy()
        if num_positions:
            source += np.asarray(params["positions"])[min(pos, num_positions - 1)]
        want[t] += c * (source @ w[rel])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_residual_layers_and_layer_norm():
    graphs, vocab_size = _program_graphs()
    deep = rgcn.RGCNConfig(hidden_dim=8, embed_dim=8, num_layers=3, residual=True)
    inputs = _batch(_inputs(graphs, deep))
    model = rgcn.RGCN(deep, vocab_size, 3, sorted_receivers=True)
    params = model.init(jax.random.key(0), inputs)["params"]
    # The default model has the same parameters: residual adds none.
    plain = rgcn.RGCN(
        dataclasses.replace(deep, residual=False), vocab_size, 3, sorted_receivers=True
    )
    assert jax.tree.structure(plain.init(jax.random.key(0), inputs)["params"]) == (
        jax.tree.structure(params)
    )
    # Layers 2 and 3 silenced (zero weights and bias): with residual connections the
    # embedding is the first layer's alone; without them, nothing is left.
    silenced = {
        k: (jax.tree.map(jnp.zeros_like, v) if k in ("conv_1", "conv_2") else v)
        for k, v in params.items()
    }
    one = rgcn.RGCN(dataclasses.replace(deep, num_layers=1, residual=False), vocab_size, 3, True)
    first = {k: v for k, v in params.items() if k not in ("conv_1", "conv_2")}
    np.testing.assert_allclose(
        model.apply({"params": silenced}, inputs, method="embed"),
        one.apply({"params": first}, inputs, method="embed"), rtol=1e-6,
    )  # fmt: skip
    assert float(jnp.abs(plain.apply({"params": silenced}, inputs, method="embed")).max()) == 0
    # LayerNorm before the activation: scaling a layer's weights changes nothing.
    normed = rgcn.RGCN(
        dataclasses.replace(deep, layer_norm=True), vocab_size, 3, sorted_receivers=True
    )
    params = normed.init(jax.random.key(1), inputs)["params"]
    assert set(params) >= {"norm_0", "norm_1", "norm_2"}
    scaled = {**params, "conv_1": jax.tree.map(lambda w: 10.0 * w, params["conv_1"])}
    np.testing.assert_allclose(
        normed.apply({"params": scaled}, inputs, method="embed"),
        normed.apply({"params": params}, inputs, method="embed"), rtol=1e-3, atol=1e-4,
    )  # fmt: skip


def test_digit_inputs():
    """With number_width, a node's input adds its digits' embeddings: graphs that differ
    only in a constant's value embed differently; at width 0 the model and its
    parameters are the plain one's."""
    ir = (TESTDATA / "ir" / "small.ll").read_text()
    raw = [
        programl.from_ir(text).to_graphs_tuple(number_width=12)
        for text in (ir, ir.replace("store i32 3,", "store i32 700,"))
    ]
    vocab = programl.NodeTextVocab.build(raw)
    assert (vocab.encode(raw[0]).nodes["type"] == vocab.encode(raw[1]).nodes["type"]).all()
    cfg = rgcn.RGCNConfig(hidden_dim=8, embed_dim=6, number_width=12)
    inputs = _inputs([vocab.encode(g) for g in raw], cfg)
    model = rgcn.RGCN(cfg, len(vocab), 3, sorted_receivers=True)
    batch = _batch(inputs)
    params = model.init(jax.random.key(0), batch)["params"]
    assert params["digit_embed"].shape == (12, numbers.NUM_IDS, 8)
    embedded = model.apply({"params": params}, batch, method="embed")
    assert float(jnp.abs(embedded[0] - embedded[1]).max()) > 1e-3
    # Zero digit embeddings: the first layer sees the text embeddings alone, as the plain
    # model's table lookup does.
    plain = rgcn.RGCN(dataclasses.replace(cfg, number_width=0), len(vocab), 3, True)
    plain_params = plain.init(jax.random.key(0), batch)["params"]
    assert set(params) - set(plain_params) == {"digit_embed"}
    silent = {**plain_params, "digit_embed": jnp.zeros_like(params["digit_embed"])}
    with_digits = model.apply({"params": silent}, batch, method="embed")
    np.testing.assert_allclose(
        with_digits, plain.apply({"params": plain_params}, batch, method="embed"), rtol=1e-5
    )
    np.testing.assert_allclose(with_digits[0], with_digits[1], rtol=1e-6)
    # Batches made for another width are refused.
    wide = rgcn.RGCN(dataclasses.replace(cfg, number_width=16), len(vocab), 3, True)
    with pytest.raises(ValueError, match="12 digits a node, the model 16"):
        wide.init(jax.random.key(0), batch)
    with pytest.raises(ValueError, match="number_width"):
        rgcn.RGCNConfig(number_width=-1)


def _fit_xor(head_hidden):
    """Two graphs, each in two rows whose aux input is -1 or +1; the label is the graph
    XOR (aux > 0). Returns the training accuracy after 300 Adam steps."""
    graphs, vocab_size = _program_graphs()
    cfg = rgcn.RGCNConfig(hidden_dim=8, embed_dim=8, num_aux=1, head_hidden=head_hidden)
    batch = _batch(_inputs(graphs, cfg))
    rows = jnp.array([0, 0, 1, 1])
    aux = jnp.array([[-1.0], [1.0], [-1.0], [1.0]])
    labels = jnp.array([0, 1, 1, 0])
    model = rgcn.RGCN(cfg, vocab_size, 2, sorted_receivers=True)
    params = model.init(jax.random.key(0), batch, aux, rows)["params"]
    opt = optax.adam(0.03)
    state = opt.init(params)

    @jax.jit
    def step(params, state):
        def loss_fn(p):
            logits = model.apply({"params": p}, batch, aux, rows)
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        grads = jax.grad(loss_fn)(params)
        updates, state = opt.update(grads, state)
        return optax.apply_updates(params, updates), state

    for _ in range(300):
        params, state = step(params, state)
    predictions = model.apply({"params": params}, batch, aux, rows).argmax(-1)
    return float((predictions == labels).mean()), params


def test_mlp_head_lets_aux_inputs_depend_on_the_graph():
    # A linear head adds the aux input's effect to both graphs alike: at most 3 of 4 rows.
    accuracy, params = _fit_xor(0)
    assert accuracy <= 0.75 and set(params["head"]) == {"kernel", "bias"}
    accuracy, params = _fit_xor(16)
    assert accuracy == 1.0
    assert params["head"]["hidden"]["kernel"].shape == (8 + 1, 16)
    assert params["head"]["out"]["kernel"].shape == (16, 2)
    with pytest.raises(ValueError, match="head_hidden"):
        rgcn.RGCNConfig(head_hidden=-1)
