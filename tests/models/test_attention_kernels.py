"""Query-blocked and blockwise attention, and the fused loss, against the references."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from codeprop.models import attention, blockwise_attention, decoder, losses

B, T, N, K, H = 2, 40, 4, 2, 8
SCALE = H**-0.5
_rng = np.random.default_rng(0)
Q = jnp.asarray(_rng.standard_normal((B, T, N, H)), jnp.float32)
KEYS = jnp.asarray(_rng.standard_normal((B, T, K, H)), jnp.float32)
VALUES = jnp.asarray(_rng.standard_normal((B, T, K, H)), jnp.float32)
SEGMENTS = jnp.asarray([[1] * 13 + [2] * 20 + [3] * 7, [1] * 40])
SLOTS = jnp.broadcast_to(jnp.arange(T), (B, T))
CASES = {  # name: (mask given to the kernel, sliding window)
    "causal": (None, None),
    "window": (None, 5),
    "segments": (attention.causal_mask(SLOTS, SLOTS, SEGMENTS, SEGMENTS), None),
    "segments_window": (attention.causal_mask(SLOTS, SLOTS, SEGMENTS, SEGMENTS, 5), 5),
}


def _value_and_grads(fn):
    """sum(sin(attention)) and its gradients in q, k, v."""
    return jax.value_and_grad(lambda q, k, v: jnp.sum(jnp.sin(fn(q, k, v))), argnums=(0, 1, 2))(
        Q, KEYS, VALUES
    )


def _reference(mask, window):
    full = attention.causal_mask(SLOTS, SLOTS, sliding_window=window) if mask is None else mask
    return _value_and_grads(lambda q, k, v: attention.einsum_attention(q, k, v, full, SCALE))


def _assert_close(got, want, atol=2e-5):
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    for g, w in zip(got[1], want[1]):
        np.testing.assert_allclose(g, w, atol=atol)


@pytest.mark.parametrize("implementation", ["einsum", "xla", "blockwise"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_query_blocks_give_the_reference_values_and_gradients(implementation, case):
    mask, window = CASES[case]
    got = _value_and_grads(
        lambda q, k, v: attention.attention(
            q, k, v, mask, SCALE, implementation, window, query_chunk=8
        )
    )
    _assert_close(got, _reference(mask, window))


def test_blockwise_blocks_skip_the_keys_no_query_of_theirs_can_see():
    assert blockwise_attention._blocks(40, 16, None) == [(0, 16, 0), (16, 32, 0), (32, 40, 0)]
    # With a window of 5, block [16, 32) starts at key 12 (16 - 5 + 1).
    assert blockwise_attention._blocks(40, 16, 5) == [(0, 16, 0), (16, 32, 12), (32, 40, 28)]
    # A long sequence is split into at most MAX_QUERY_CHUNKS blocks.
    q = jnp.zeros((1, 160, 1, 2))
    out = attention.attention(q, q, q, None, 1.0, "einsum", query_chunk=1)
    jaxpr = str(jax.make_jaxpr(lambda x: attention.attention(x, x, x, None, 1.0, query_chunk=1))(q))
    assert out.shape == (1, 160, 1, 2)
    assert jaxpr.count("concatenate") == 1 and jaxpr.count("dot_general") == 2 * 16


def test_blockwise_attention_in_bfloat16_stays_close_to_float32():
    mask, window = CASES["segments"]
    half = blockwise_attention.blockwise_attention(
        Q.astype(jnp.bfloat16), KEYS.astype(jnp.bfloat16), VALUES.astype(jnp.bfloat16), mask, SCALE
    )
    full = attention.einsum_attention(Q, KEYS, VALUES, mask, SCALE)
    assert half.dtype == jnp.bfloat16
    np.testing.assert_allclose(half.astype(jnp.float32), full, atol=0.05)


def test_query_chunk_needs_self_attention():
    with pytest.raises(ValueError, match="T == S"):
        attention.attention(Q, KEYS[:, :20], VALUES[:, :20], None, SCALE, query_chunk=8)


@pytest.mark.parametrize("chunk_size", [7, 16, 1000])
def test_fused_cross_entropy_equals_logits_then_cross_entropy(chunk_size):
    rng = np.random.default_rng(1)
    hidden = jnp.asarray(rng.standard_normal((3, 10, 16)), jnp.float32)
    matrix = jnp.asarray(rng.standard_normal((50, 16)) * 0.3, jnp.float32)
    targets = jnp.asarray(rng.integers(0, 50, (3, 10)), jnp.int32)
    weights = jnp.asarray(rng.uniform(size=(3, 10)) * (rng.uniform(size=(3, 10)) > 0.3))

    def unfused(h, m):
        logits = jnp.einsum("btd,vd->btv", h, m)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
        return jnp.sum(weights * ce), jnp.argmax(logits, -1) == targets

    def fused(h, m):
        return losses.fused_cross_entropy(h, m, targets, weights, chunk_size)

    (want, want_correct), want_grads = jax.value_and_grad(unfused, (0, 1), has_aux=True)(
        hidden, matrix
    )
    (got, got_correct), got_grads = jax.value_and_grad(fused, (0, 1), has_aux=True)(hidden, matrix)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_array_equal(got_correct, want_correct)
    assert int(got_correct.sum()) == int(want_correct.sum())
    for g, w in zip(got_grads, want_grads):
        np.testing.assert_allclose(g, w, atol=1e-6)
    # Scaling the loss scales the gradient (the backward pass applies the cotangent).
    doubled = jax.grad(lambda h: 2.0 * fused(h, matrix)[0])(hidden)
    np.testing.assert_allclose(doubled, 2.0 * got_grads[0], atol=1e-6)


def test_fused_cross_entropy_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="does not match targets"):
        losses.fused_cross_entropy(jnp.zeros((2, 5, 4)), jnp.zeros((9, 4)), jnp.zeros((2, 6), int))
    with pytest.raises(ValueError, match=r"must be \[V, 4\]"):
        losses.fused_cross_entropy(jnp.zeros((2, 5, 4)), jnp.zeros((4, 9)), jnp.zeros((2, 5), int))


@pytest.mark.parametrize("tie_embeddings", [True, False])
def test_decoder_loss_equals_cross_entropy_of_its_logits(tie_embeddings):
    config = decoder.tiny(vocab_size=97).replace(
        embed_dim=32, mlp_dim=64, num_layers=2, tie_embeddings=tie_embeddings, loss_chunk=16
    )
    model = decoder.Decoder(config)
    params = decoder.init_params(config, jax.random.key(4))
    tokens = jnp.asarray(np.random.default_rng(2).integers(0, 97, (2, 41)), jnp.int32)
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    weights = jnp.ones(targets.shape).at[1, 30:].set(0.0) / 70.0

    def unfused(p):
        logits = model.apply({"params": p}, inputs)
        return jnp.sum(weights * optax.softmax_cross_entropy_with_integer_labels(logits, targets))

    def fused(p):
        return model.apply({"params": p}, inputs, targets, weights, method="loss")[0]

    want, want_grads = jax.value_and_grad(unfused)(params)
    got, got_grads = jax.value_and_grad(fused)(params)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert jax.tree.structure(got_grads) == jax.tree.structure(want_grads)
    for (path, g), w in zip(
        jax.tree_util.tree_leaves_with_path(got_grads), jax.tree.leaves(want_grads)
    ):
        np.testing.assert_allclose(g, w, atol=1e-6, err_msg=jax.tree_util.keystr(path))


def test_decoder_with_query_blocks_equals_without():
    config = decoder.tiny(vocab_size=97).replace(embed_dim=32, mlp_dim=64, num_layers=2)
    params = decoder.init_params(config, jax.random.key(5))
    tokens = jnp.asarray(np.random.default_rng(3).integers(0, 97, (2, 40)), jnp.int32)
    segments = SEGMENTS
    positions = jnp.concatenate([jnp.arange(13), jnp.arange(20), jnp.arange(7)])[None]
    positions = jnp.concatenate([positions, jnp.arange(40)[None]])
    outs = []
    for chunk in (None, 8):
        model = decoder.Decoder(config.replace(attention_query_chunk=chunk))
        outs.append(
            model.apply({"params": params}, tokens, positions=positions, segment_ids=segments)
        )
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-5)
