import jax
import numpy as np
import pytest

from codeprop.graphs import ast, batching
from codeprop.models import gnn
from codeprop.probes import graph_probe
from codeprop.train import batchers, classifier, steps

from conftest import SMALL_C_PROGRAMS

PROGRAMS = SMALL_C_PROGRAMS[:6]


def _setup(cfg=None, batch_size=2):
    cfg = cfg or gnn.GCNConfig(hidden_dim=8, embed_dim=6, dropout_rate=0.2)
    raw = [ast.ast_graph(p, "c") for p in PROGRAMS]
    vocab = ast.NodeTypeVocab.build(raw, "c")
    graphs = [graph_probe.model_inputs(vocab.encode(g, vocab.table("c")), cfg) for g in raw]
    data = batchers.Examples.one_input_per_row(graphs, np.array([0, 1, 0, 1, 1, 0]))
    budget = batching.estimate_budget(graphs, batch_size=batch_size)
    num_rows = batchers.row_budget(data, budget)
    batches = [b for b, _ in batchers.batches(data, np.arange(6), budget, num_rows)]
    model = graph_probe.make_model(cfg, graphs, len(vocab), 2)
    state = steps.create_train_state(model, batches[0], 3, steps.adamw(0.01))
    return state, batches, data, budget, num_rows


def test_train_steps_equal_one_call_per_step():
    state, batches, *_ = _setup()
    assert len(batches) == 3
    one = state
    merged = None
    for batch in batches:
        one, m = steps.train_step(one, batch)
        merged = m if merged is None else merged.merge(m)
    # Five slots, the last two inactive (padding): they change nothing.
    stacked = jax.tree.map(lambda *x: np.stack(x), *(batches + batches[-1:] * 2))
    many, merged_many = steps.train_steps(state, stacked, np.array([1, 1, 1, 0, 0], bool))
    assert int(many.step) == int(one.step) == 3
    for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(many.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for key, value in merged.compute().items():
        np.testing.assert_allclose(merged_many.compute()[key], value, rtol=1e-5)
    assert int(merged_many.loss.count) == 6  # Six real rows; padding rows and slots ignored.


def test_train_epoch_does_not_depend_on_steps_per_call():
    state, _, data, budget, num_rows = _setup()
    order = np.array([4, 1, 5, 0, 3, 2])
    results = [
        classifier.train_epoch(
            state, batchers.GraphBatcher(data, budget, num_rows), order, per_call
        )
        for per_call in (1, 2, 4)
    ]
    for other, _ in results[1:]:
        assert int(other.step) == 3
        for a, b in zip(jax.tree.leaves(results[0][0].params), jax.tree.leaves(other.params)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    losses = [float(m.compute()["loss"]) for _, m in results]
    np.testing.assert_allclose(losses, losses[0], rtol=1e-5)


def test_plan_matches_pack():
    _, _, data, budget, _ = _setup()
    order = [5, 2, 0, 3, 1, 4]
    planned = batching.plan(data.inputs, budget, order)
    packed = [idx for _, idx in batching.pack(data.inputs, budget, order)]
    assert [p.tolist() for p in planned] == [p.tolist() for p in packed]
    assert np.concatenate(planned).tolist() == order
    assert batchers.num_batches(data, np.array(order), budget) == len(planned)


def test_cosine_schedule_warms_up_and_decays_to_zero():
    schedule = steps.learning_rate_schedule(0.01, "cosine", total_steps=100, warmup_steps=10)
    assert float(schedule(0)) == 0.0
    np.testing.assert_allclose(float(schedule(5)), 0.005, rtol=1e-6)
    np.testing.assert_allclose(float(schedule(10)), 0.01, rtol=1e-6)
    np.testing.assert_allclose(float(schedule(55)), 0.005, rtol=1e-5)
    assert float(schedule(100)) == 0.0 and float(schedule(120)) == 0.0
    assert steps.learning_rate_schedule(0.01, "constant", 100) == 0.01
    with pytest.raises(ValueError, match="unknown learning-rate schedule"):
        steps.learning_rate_schedule(0.01, "linear", 100)


def test_train_epoch_keeps_at_most_one_call_in_flight():
    # JAX dispatches asynchronously: without a wait the host runs calls ahead of the device
    # (a stop would wait for all of them, the progress would count steps not yet run).
    # Wide layers make each call slower than making the next batch, so a host running
    # ahead would find the state not yet computed.
    wide = gnn.GCNConfig(hidden_dim=512, embed_dim=512)
    state, _, data, budget, num_rows = _setup(wide, batch_size=1)
    computed = []

    def between_calls(state, merged, calls):
        leaves = jax.tree.leaves((state.params, state.opt_state, merged))
        computed.append((calls, all(leaf.is_ready() for leaf in leaves)))

    batcher = batchers.GraphBatcher(data, budget, num_rows)
    classifier.train_epoch(state, batcher, np.arange(6), 1, between_calls=between_calls)
    assert computed == [(calls, True) for calls in range(1, 6)]
