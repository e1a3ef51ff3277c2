"""Per-document losses of a decoder: the same numbers as the decoder's own loss."""

import jax
import jax.numpy as jnp
import numpy as np

from codeprop.analysis import lm_losses
from codeprop.models import decoder


def test_pieces_cut_a_document_as_pretraining_does():
    assert lm_losses.pieces(list(range(10)), 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert lm_losses.pieces([5], 4) == [[5]]


def test_document_losses_equal_the_decoders_loss_of_each_piece():
    config = decoder.tiny(vocab_size=64)
    params = decoder.init_params(config, jax.random.key(0))
    rng = np.random.default_rng(0)
    documents = [rng.integers(1, 64, n).tolist() for n in (5, 17, 8, 1)]
    got = lm_losses.document_losses(config, params, documents, seq_len=8, batch_size=3)
    assert got.shape == (4, 2)
    np.testing.assert_array_equal(got[:, 1], [5, 17, 8, 1])
    model = decoder.Decoder(config)
    for d, doc in enumerate(documents):
        total = 0.0
        for piece in lm_losses.pieces(doc, 8):
            targets = jnp.asarray([piece], jnp.int32)
            inputs = jnp.asarray([[0, *piece[:-1]]], jnp.int32)
            summed, _ = model.apply({"params": params}, inputs, targets, method="loss")
            total += float(summed)
        np.testing.assert_allclose(got[d, 0], total, rtol=1e-5)


def test_the_bootstrap_interval_holds_the_mean_and_narrows_with_more_documents():
    rng = np.random.default_rng(1)

    def sample(n):
        tokens = rng.integers(50, 500, n).astype(float)
        return np.stack([tokens * rng.normal(3.0, 0.5, n), tokens], 1)

    few, many = sample(10), sample(1000)
    for per_document in (few, many):
        s = lm_losses.summarize(per_document)
        low, high = s["interval"]
        assert low < s["loss"] < high
    width = lambda p: np.subtract(*lm_losses.bootstrap_interval(p)[::-1])  # noqa: E731
    assert width(many) < width(few) / 3
    assert lm_losses.summarize(np.zeros((0, 2)))["documents"] == 0
