"""Gradient accumulation: a step over A micro-batches equals a step over their union."""

import jax
import numpy as np
import optax

from codeprop.models import decoder, heads
from codeprop.train import batchers, classifier, steps

CONFIG = decoder.tiny(vocab_size=64).replace(embed_dim=32, mlp_dim=64, num_layers=2)


def _data(num=12, seed=0):
    rng = np.random.default_rng(seed)
    sequences = [rng.integers(1, 64, rng.integers(5, 17)).astype(np.int32) for _ in range(num)]
    return batchers.Examples.one_input_per_row(sequences, rng.integers(0, 3, num))


def _epoch(data, batch_size, accumulation, rows):
    model = heads.DecoderClassifier(CONFIG, 3, pad_id=0)
    batcher = batchers.SequenceBatcher.for_data(data, batch_size, pad_id=0)
    first, _ = next(batcher.batches(rows[:1]))
    # Plain SGD: Adam's first steps are about lr * sign(g), which float reassociation can
    # flip for gradients near zero; SGD's updates are the gradients themselves.
    state = steps.create_train_state(model, first, 0, optax.sgd(0.5))
    return classifier.train_epoch(state, batcher, rows, 2, accumulation)


def test_accumulated_micro_batches_equal_their_union():
    data = _data()
    rows = np.array([3, 7, 1, 0, 11, 5, 9, 2, 10, 4, 6, 8])
    whole, whole_metrics = _epoch(data, 4, 1, rows)  # 3 steps of 4 sequences
    micro, micro_metrics = _epoch(data, 2, 2, rows)  # 3 steps of 2 x 2 sequences
    assert int(whole.step) == int(micro.step) == 3
    for a, b in zip(jax.tree.leaves(whole.params), jax.tree.leaves(micro.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for key, value in whole_metrics.compute().items():
        np.testing.assert_allclose(micro_metrics.compute()[key], value, rtol=1e-5)


def test_a_last_short_group_is_padded_with_masked_micro_batches():
    data = _data(10)
    rows = np.arange(10)
    # 10 sequences in micro-batches of 2: 5 micro-batches -> steps of 2, 2 and 1 (padded).
    state, metrics = _epoch(data, 2, 2, rows)
    assert int(state.step) == 3
    assert int(metrics.loss.count) == 10  # the padding micro-batch adds no rows
    whole, _ = _epoch(data, 4, 1, rows)  # the same three steps of 4, 4 and 2 sequences
    for a, b in zip(jax.tree.leaves(whole.params), jax.tree.leaves(state.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
