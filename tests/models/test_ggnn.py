"""GGNN (ProGraML's model): shapes, padding, weight sharing, the step formula, fitting."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from codeprop.graphs import batching, programl, transforms
from codeprop.models import ggnn, gnn, rgcn

from conftest import TESTDATA


def _graphs(config, variants=1):
    texts = []
    for name in ("small.ll", "legacy.ll"):
        base = (TESTDATA / "ir" / name).read_text()
        texts += [
            base.replace("i32 3,", f"i32 {k + 3},").replace("float 1.0", f"float {k + 1}.0")
            for k in range(variants)
        ]
    raw = [programl.from_ir(t).to_graphs_tuple(number_width=config.number_width) for t in texts]
    vocab = programl.NodeTextVocab.build(raw)
    inputs = [
        rgcn.add_rgcn_norm(transforms.sort_edges_by_receiver(rgcn.add_reverse_edges(g)), config)
        for g in raw
    ]
    return [vocab.encode(g) for g in inputs], len(vocab)


def _batch(graphs, n_node=300, n_edge=700, n_graph=9):
    return batching.pad_batch(graphs, batching.Budget(n_node, n_edge, n_graph))


def test_shapes_padding_and_weight_sharing():
    cfg = ggnn.GGNNConfig(hidden_dim=8, embed_dim=5, layer_timesteps=(2, 1), num_aux=2)
    graphs, vocab_size = _graphs(cfg)
    model = ggnn.GGNN(cfg, vocab_size, 3, sorted_receivers=True)
    small = _batch(graphs, 128, 256, 4)
    params = model.init(jax.random.key(0), small, jnp.ones((4, 2)))["params"]
    assert model.apply({"params": params}, small, jnp.ones((4, 2))).shape == (4, 3)
    embedded = model.apply({"params": params}, small, method="embed")
    assert embedded.shape == (4, 5)
    big = _batch(graphs)
    np.testing.assert_allclose(
        model.apply({"params": params}, big, method="embed")[:2], embedded[:2], rtol=1e-5
    )
    # A layer's steps share its weights: two layers, whatever their steps.
    assert {k for k in params if k.startswith(("messages", "gru"))} == {
        "messages_0", "messages_1", "gru_0", "gru_1",
    }  # fmt: skip
    longer = ggnn.GGNN(dataclasses.replace(cfg, layer_timesteps=(5, 3)), vocab_size, 3, True)
    assert gnn.num_params(longer.init(jax.random.key(0), small, jnp.ones((4, 2)))) == (
        gnn.num_params(params)
    )
    # No root weight in the messages: the GRU sees the node itself.
    assert set(params["messages_0"]) == {"relations", "bias"}


def test_one_step_is_a_gru_over_relational_messages():
    cfg = ggnn.GGNNConfig(hidden_dim=6, embed_dim=4, layer_timesteps=(1,), readout="sum")
    graphs, vocab_size = _graphs(cfg)
    batch = _batch(graphs, 128, 256, 4)
    model = ggnn.GGNN(cfg, vocab_size, 2, sorted_receivers=True)
    params = model.init(jax.random.key(1), batch)["params"]
    h0 = params["node_embed"][batch.nodes["type"]]
    conv = rgcn.RelationalGraphConv(6, 6, root_weight=False, sorted_receivers=True)
    edges = (batch.senders, batch.receivers, batch.edges["type"], batch.edges["norm"])
    m = conv.apply({"params": params["messages_0"]}, h0, *edges)
    h1, _ = nn.GRUCell(6).apply({"params": params["gru_0"]}, h0, m)
    expected = gnn.pool(h1 @ params["project"]["kernel"] + params["project"]["bias"], batch, "sum")
    np.testing.assert_allclose(
        model.apply({"params": params}, batch, method="embed"), expected, rtol=1e-5, atol=1e-6
    )


def test_gated_readout_closed_gate_gives_zero():
    cfg = ggnn.GGNNConfig(hidden_dim=8, embed_dim=4, layer_timesteps=(1,))
    graphs, vocab_size = _graphs(cfg)
    batch = _batch(graphs, 128, 256, 4)
    model = ggnn.GGNN(cfg, vocab_size, 2, sorted_receivers=True)
    params = model.init(jax.random.key(0), batch)["params"]
    closed = {**params, "gate": {**params["gate"], "bias": jnp.full((1,), -1e4)}}
    assert float(jnp.abs(model.apply({"params": closed}, batch, method="embed")).max()) == 0.0


@pytest.mark.parametrize("number_width", [0, 12])
def test_overfits_eight_graphs(number_width):
    """Four copies each of two programs, differing only in a stored constant: with digit
    features the model tells them apart and fits arbitrary labels; without, the copies
    of one program are one graph to it."""
    cfg = ggnn.GGNNConfig(hidden_dim=16, embed_dim=16, number_width=number_width)
    graphs, vocab_size = _graphs(cfg, variants=4)
    batch = _batch(graphs)
    labels = jnp.array([0, 1, 1, 0, 1, 0, 0, 1])
    model = ggnn.GGNN(cfg, vocab_size, 2, sorted_receivers=True)
    params = model.init(jax.random.key(0), batch)["params"]
    opt = optax.adam(0.01)
    state = opt.init(params)

    @jax.jit
    def step(params, state):
        def loss_fn(p):
            logits = model.apply({"params": p}, batch)[:8]
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        grads = jax.grad(loss_fn)(params)
        updates, state = opt.update(grads, state)
        return optax.apply_updates(params, updates), state

    for _ in range(200):
        params, state = step(params, state)
    accuracy = float((model.apply({"params": params}, batch)[:8].argmax(-1) == labels).mean())
    # Without digits each program's four copies look alike: at most 2 of 4 right each.
    assert accuracy == (1.0 if number_width else 0.5)


def test_config_validation():
    with pytest.raises(ValueError, match="readout"):
        ggnn.GGNNConfig(readout="attention")
    with pytest.raises(ValueError, match="layer_timesteps"):
        ggnn.GGNNConfig(layer_timesteps=(2, 0))
    with pytest.raises(ValueError, match="normalization"):
        ggnn.GGNNConfig(normalization="max")
