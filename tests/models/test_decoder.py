"""Decoder identities: GQA vs MHA, causality, packing, KV cache, shapes, remat, kernels."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from codeprop.models import attention, decoder, rope

BASE = decoder.tiny(vocab_size=97).replace(embed_dim=32, mlp_dim=64, num_layers=2)
TOKENS = jnp.asarray(np.random.default_rng(0).integers(0, 97, size=(2, 11)), jnp.int32)


def _logits(config, params, tokens=TOKENS, **kwargs):
    return decoder.Decoder(config).apply({"params": params}, tokens, **kwargs)


@pytest.mark.parametrize("num_kv_heads", [1, 2, 4])
def test_shapes_across_kv_heads(num_kv_heads):
    config = BASE.replace(num_kv_heads=num_kv_heads)
    params = decoder.init_params(config, jax.random.key(0))
    attn = params["blocks_0"]["attention"]
    assert attn["query"]["kernel"].shape == (32, 4, 8)
    assert attn["key"]["kernel"].shape == (32, num_kv_heads, 8)
    assert attn["out"]["kernel"].shape == (4, 8, 32)
    assert _logits(config, params).shape == (2, 11, 97)
    hidden = decoder.Decoder(config).apply({"params": params}, TOKENS, method=decoder.Decoder.embed)
    assert hidden.shape == (2, 11, 32)


def test_gqa_with_tiled_kv_equals_mha():
    gqa = BASE.replace(num_kv_heads=2)
    params = decoder.init_params(gqa, jax.random.key(1))
    mha = BASE.replace(num_kv_heads=4)
    tiled = jax.tree.map(lambda x: x, params)
    for i in range(BASE.num_layers):
        attn = tiled[f"blocks_{i}"]["attention"]
        for part in ("key", "value"):  # KV head j serves query heads 2j and 2j + 1
            attn[part] = {
                "kernel": jnp.repeat(attn[part]["kernel"], 2, axis=1),
                "bias": jnp.repeat(attn[part]["bias"], 2, axis=0),
            }
    np.testing.assert_allclose(_logits(mha, tiled), _logits(gqa, params), atol=1e-6)


def test_causality_future_tokens_change_nothing_before_them():
    params = decoder.init_params(BASE, jax.random.key(2))
    changed = TOKENS.at[:, 7:].set((TOKENS[:, 7:] + 5) % 97)
    a, b = _logits(BASE, params), _logits(BASE, params, changed)
    np.testing.assert_array_equal(a[:, :7], b[:, :7])
    assert np.abs(a[:, 7:] - b[:, 7:]).max() > 1e-3


@pytest.mark.parametrize("position_embedding", ["rope", "learned"])
def test_packed_equals_unpacked(position_embedding):
    config = BASE.replace(position_embedding=position_embedding, sliding_window=4)
    params = decoder.init_params(config, jax.random.key(3))
    first, second = TOKENS[0, :6], TOKENS[1, :5]
    packed = jnp.concatenate([first, second])[None]  # [1, 11]
    segments = jnp.asarray([[1] * 6 + [2] * 5])
    positions = jnp.asarray([list(range(6)) + list(range(5))])
    out = _logits(config, params, packed, positions=positions, segment_ids=segments)
    np.testing.assert_allclose(out[0, :6], _logits(config, params, first[None])[0], atol=1e-5)
    np.testing.assert_allclose(out[0, 6:], _logits(config, params, second[None])[0], atol=1e-5)


def test_sliding_window_mask_matches_transformers_rule():
    slots = jnp.arange(6)[None]
    mask = np.asarray(attention.causal_mask(slots, slots, sliding_window=3))[0]
    expected = np.array([[0 <= q - k < 3 for k in range(6)] for q in range(6)])
    np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize(
    "changes",
    [{}, {"sliding_window": 4}, {"position_embedding": "learned", "num_kv_heads": 1}],
    ids=["gqa", "sliding", "learned_mqa"],
)
def test_cached_decoding_equals_the_full_forward(changes):
    config = BASE.replace(**changes)
    params = decoder.init_params(config, jax.random.key(4))
    model = decoder.Decoder(config)
    full = _logits(config, params)
    cache = decoder.init_cache(config, 2, 16)
    # Prefill 5 tokens, then one token at a time, then the last 3 in one call.
    logits, cache = model.apply({"params": params}, TOKENS[:, :5], cache, method=model.extend)
    steps = [logits]
    for t in range(5, 8):
        logits, cache = model.apply(
            {"params": params}, TOKENS[:, t : t + 1], cache, method=model.extend
        )
        steps.append(logits)
    logits, cache = model.apply({"params": params}, TOKENS[:, 8:], cache, method=model.extend)
    steps.append(logits)
    np.testing.assert_allclose(jnp.concatenate(steps, axis=1), full, atol=1e-5)
    np.testing.assert_array_equal(cache["lengths"], [11, 11])


def test_prompts_of_different_lengths_share_one_cache():
    params = decoder.init_params(BASE, jax.random.key(5))
    model = decoder.Decoder(BASE)
    padded = TOKENS[:, :6].at[1, 4:].set(0)  # row 1 is a 4-token prompt
    cache = decoder.init_cache(BASE, 2, 12)
    _, cache = model.apply(
        {"params": params}, padded, cache, jnp.asarray([6, 4]), method=model.extend
    )
    np.testing.assert_array_equal(cache["lengths"], [6, 4])
    nxt = jnp.asarray([[TOKENS[0, 6]], [TOKENS[1, 4]]])
    logits, _ = model.apply({"params": params}, nxt, cache, method=model.extend)
    np.testing.assert_allclose(logits[0, 0], _logits(BASE, params, TOKENS[:1, :7])[0, 6], atol=1e-5)
    np.testing.assert_allclose(logits[1, 0], _logits(BASE, params, TOKENS[1:, :5])[0, 4], atol=1e-5)


def test_remat_and_kernels_do_not_change_results():
    params = decoder.init_params(BASE, jax.random.key(6))

    def loss(config, p):
        return jnp.mean(_logits(config, p) ** 2)

    reference = jax.value_and_grad(loss, argnums=1)(BASE, params)
    for changes in ({"remat": "full"}, {"remat": "dots"}, {"attention_impl": "xla"}):
        value, grads = jax.value_and_grad(loss, argnums=1)(BASE.replace(**changes), params)
        np.testing.assert_allclose(value, reference[0], rtol=1e-5)
        for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(reference[1])):
            np.testing.assert_allclose(a, b, atol=1e-6)


def test_bfloat16_compute_keeps_float32_parameters_and_logits():
    config = BASE.replace(dtype="bfloat16")
    params = decoder.init_params(config, jax.random.key(7))
    assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype("float32")}
    out = _logits(config, params)
    assert out.dtype == jnp.float32
    reference = _logits(BASE, params)
    assert np.abs(out - reference).max() < 0.05 * np.abs(reference).max()


def test_logical_axes_name_every_parameter():
    axes = decoder.logical_axes(BASE.replace(tie_embeddings=False))
    flat = jax.tree_util.tree_leaves_with_path(
        axes, is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec)
    )
    names = {jax.tree_util.keystr(path): tuple(spec) for path, spec in flat}
    assert names["['embedder']['embedding']"] == ("vocab", "embed")
    assert names["['blocks_0']['attention']['key']['kernel']"] == ("embed", "kv_heads", "kv")
    assert names["['blocks_1']['mlp']['proj']['kernel']"] == ("mlp", "embed")
    assert names["['lm_head']['kernel']"] == ("embed", "vocab")
    assert all(len(spec) > 0 and None not in spec for spec in names.values())


def test_rope_scaling_frequencies():
    base = rope.inverse_frequencies(8, 10000.0)
    np.testing.assert_allclose(base, [1.0, 0.1, 0.01, 0.001], rtol=1e-6)
    np.testing.assert_allclose(
        rope.inverse_frequencies(8, 10000.0, "linear", 4.0), base / 4, rtol=1e-6
    )
    short = rope.inverse_frequencies(8, 10000.0, "dynamic", 2.0, max_positions=16, seq_len=10)
    np.testing.assert_allclose(short, base, rtol=1e-6)  # within the trained context
    long = rope.inverse_frequencies(8, 10000.0, "dynamic", 2.0, max_positions=16, seq_len=32)
    new_base = 10000.0 * (2.0 * 32 / 16 - 1) ** (8 / 6)
    np.testing.assert_allclose(long, new_base ** -(np.arange(0, 8, 2) / 8), rtol=1e-5)


def test_rope_gradient_equals_autodiff_of_the_rotate_half_formula():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 7, 3, 8), dtype=np.float32))
    sin, cos = rope.sin_cos(
        jnp.asarray(rng.integers(0, 50, (2, 7))), rope.inverse_frequencies(8, 1e4)
    )

    def reference(x, sin, cos):  # Frozen: x * cos + [-x2, x1] * sin, autodiff's gradient.
        rotated = jnp.concatenate([-x[..., 4:], x[..., :4]], axis=-1)
        return x * cos[:, :, None] + rotated * sin[:, :, None]

    g = jnp.asarray(rng.standard_normal(x.shape, dtype=np.float32))
    out, vjp = jax.vjp(rope.apply_rope, x, sin, cos)
    want_out, want_vjp = jax.vjp(reference, x, sin, cos)
    np.testing.assert_allclose(out, want_out, rtol=1e-6, atol=1e-6)
    for got, want in zip(vjp(g), want_vjp(g), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert float(jnp.max(jnp.abs(vjp(g)[0]))) > 0.1


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="multiple of num_kv_heads"):
        BASE.replace(num_kv_heads=3)
    with pytest.raises(ValueError, match="rope_scaling"):
        BASE.replace(rope_scaling="yarn")


@pytest.mark.parametrize("implementation", ["einsum", "xla"])
def test_implicit_causal_mask_equals_the_explicit_one(implementation):
    rng = np.random.default_rng(8)
    q = jnp.asarray(rng.normal(size=(2, 7, 4, 8)), jnp.float32)
    k, v = (jnp.asarray(rng.normal(size=(2, 7, 2, 8)), jnp.float32) for _ in range(2))
    slots = jnp.broadcast_to(jnp.arange(7), (2, 7))
    for window in (None, 3):
        explicit = attention.causal_mask(slots, slots, sliding_window=window)
        a = attention.attention(q, k, v, explicit, 0.35, implementation)
        b = attention.attention(q, k, v, None, 0.35, implementation, sliding_window=window)
        np.testing.assert_allclose(a, b, atol=1e-6)
