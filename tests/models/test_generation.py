"""KV-cache generation: agreement with the full forward, batching, stopping, sampling, FIM."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from codeprop.models import decoder, generation
from codeprop.tokens import fim

CONFIG = decoder.tiny(vocab_size=48).replace(embed_dim=32, mlp_dim=64, num_layers=2)
PARAMS = decoder.init_params(CONFIG, jax.random.key(0))
PROMPTS = [[5, 9, 2, 7, 1], [3, 3], [11, 4, 8]]


_forward = jax.jit(lambda tokens: decoder.Decoder(CONFIG).apply({"params": PARAMS}, tokens))


def _greedy_without_cache(prompt, n):
    tokens = list(prompt)
    for _ in range(n):
        # Right-padded to one width (causal: the padding does not reach real tokens).
        padded = jnp.asarray([tokens + [0] * (16 - len(tokens))])
        tokens.append(int(jnp.argmax(_forward(padded)[0, len(tokens) - 1])))
    return tokens[len(prompt) :]


def test_greedy_generation_equals_argmax_over_full_forwards_for_each_prompt():
    out = generation.generate(CONFIG, PARAMS, PROMPTS, generation.SamplingConfig(max_new_tokens=6))
    assert out.finish_reasons == ["length"] * 3
    for prompt, tokens in zip(PROMPTS, out.tokens):
        assert tokens == _greedy_without_cache(prompt, 6)


def test_eos_and_stop_sequences_end_rows_and_are_removed():
    free = generation.generate(CONFIG, PARAMS, PROMPTS, generation.SamplingConfig(max_new_tokens=8))
    row = free.tokens[0]
    eos = row[3]
    first = row.index(eos)
    stop = tuple(row[1:3])
    out = generation.generate(
        CONFIG, PARAMS, PROMPTS[:1], generation.SamplingConfig(max_new_tokens=8, eos_id=eos)
    )
    assert out.tokens[0] == row[:first] and out.finish_reasons == ["eos"]
    out = generation.generate(
        CONFIG,
        PARAMS,
        PROMPTS[:1],
        generation.SamplingConfig(max_new_tokens=8, stop_sequences=(stop,)),
    )
    end = next(i for i in range(1, 8) if tuple(row[i - 1 : i + 1]) == stop)
    assert out.tokens[0] == row[: end - 1] and out.finish_reasons == ["stop"]


def test_sampling_is_seeded_and_respects_top_k_and_top_p():
    hot = generation.SamplingConfig(max_new_tokens=10, temperature=1.5)
    a = generation.generate(CONFIG, PARAMS, PROMPTS, hot, seed=1)
    assert a == generation.generate(CONFIG, PARAMS, PROMPTS, hot, seed=1)
    assert a != generation.generate(CONFIG, PARAMS, PROMPTS, hot, seed=2)
    greedy = generation.generate(
        CONFIG, PARAMS, PROMPTS, generation.SamplingConfig(max_new_tokens=10)
    )
    for narrow in ({"top_k": 1}, {"top_p": 1e-6}):
        config = generation.SamplingConfig(max_new_tokens=10, temperature=1.5, **narrow)
        assert generation.generate(CONFIG, PARAMS, PROMPTS, config, seed=3) == greedy

    logits = jnp.log(jnp.asarray([[0.5, 0.3, 0.15, 0.05]] * 4000))
    keys = jax.random.split(jax.random.key(0), 1)[0]
    top2 = generation.sample(logits, keys, generation.SamplingConfig(temperature=1.0, top_k=2))
    assert set(np.unique(top2).tolist()) == {0, 1}
    nucleus = generation.sample(logits, keys, generation.SamplingConfig(temperature=1.0, top_p=0.9))
    counts = np.bincount(np.asarray(nucleus), minlength=4) / 4000
    assert counts[3] == 0 and counts[2] > 0.1  # 0.5 + 0.3 < 0.9: the third token stays
    np.testing.assert_allclose(counts[:3], [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95], atol=0.03)


def test_the_nucleus_is_the_sorted_definition_and_draws_follow_the_probabilities():
    logits = np.asarray(jax.random.normal(jax.random.key(0), (16, 4096))) * 3
    assert np.asarray(generation.nucleus(jnp.asarray(logits), 1.0)).all()
    for top_p in (1e-6, 0.3, 0.9, 0.95, 0.999):
        keep = np.asarray(generation.nucleus(jnp.asarray(logits), top_p))
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        for row, kept in zip(probs, keep, strict=True):
            order = np.argsort(-row)
            before = np.cumsum(row[order]) - row[order]  # mass of the more likely tokens
            expected = np.zeros_like(kept)
            expected[order[before < top_p - 1e-6]] = True
            assert kept.sum() >= 1 and (kept == expected).mean() > 0.999, (top_p, kept.sum())
    probs = np.asarray([0.5, 0.3, 0.15, 0.05, 0.0])
    draws = generation.categorical(jax.random.key(1), jnp.log(jnp.asarray([probs] * 20000)))
    counts = np.bincount(np.asarray(draws), minlength=5) / 20000
    np.testing.assert_allclose(counts, probs, atol=0.01)
    assert counts[4] == 0


def test_learned_positions_must_fit_the_cache():
    config = CONFIG.replace(position_embedding="learned", max_positions=8)
    params = decoder.init_params(config, jax.random.key(0))
    with pytest.raises(ValueError, match="exceeds the 8 learned positions"):
        generation.generate(config, params, PROMPTS, generation.SamplingConfig(max_new_tokens=4))


def _train(sequences, steps=300):
    """Overfits the tiny decoder on padded sequences (next-token loss on real tokens)."""
    width = max(map(len, sequences))
    tokens = np.zeros((len(sequences), width), np.int32)
    weights = np.zeros((len(sequences), width - 1), np.float32)
    for i, s in enumerate(sequences):
        tokens[i, : len(s)] = s
        weights[i, : len(s) - 1] = 1
    model = decoder.Decoder(CONFIG)
    tx = optax.adam(1e-2)

    def loss(params):
        logits = model.apply({"params": params}, tokens[:, :-1])
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:])
        return jnp.sum(losses * weights) / weights.sum()

    @jax.jit
    def step(params, opt):
        grads = jax.grad(loss)(params)
        updates, opt = tx.update(grads, opt)
        return optax.apply_updates(params, updates), opt

    params, opt = PARAMS, tx.init(PARAMS)
    for _ in range(steps):
        params, opt = step(params, opt)
    return params


def test_fill_in_the_middle_prompts_psm_and_spm():
    sentinels = fim.Sentinels(prefix=44, middle=45, suffix=46)
    eos = 47
    rng = np.random.default_rng(0)
    docs = [rng.integers(1, 40, size=12).tolist() for _ in range(4)]
    cuts = [(3, 8), (2, 6), (5, 9), (4, 7)]
    examples = []
    for doc, (a, b) in zip(docs, cuts):
        for mode in fim.MODES:
            examples.append(fim.arrange(doc[:a], doc[a:b] + [eos], doc[b:], sentinels, mode))
    assert examples[0] == [44, *docs[0][:3], 46, *docs[0][8:], 45, *docs[0][3:8], eos]
    assert examples[1] == [44, 46, *docs[0][8:], 45, *docs[0][:3], *docs[0][3:8], eos]
    params = _train(examples)
    for mode in fim.MODES:
        prompts = [
            fim.infilling_prompt(d[:a], d[b:], sentinels, mode) for d, (a, b) in zip(docs, cuts)
        ]
        out = generation.generate(
            CONFIG, params, prompts, generation.SamplingConfig(max_new_tokens=10, eos_id=eos)
        )
        assert out.tokens == [d[a:b] for d, (a, b) in zip(docs, cuts)]
        assert out.finish_reasons == ["eos"] * 4


def test_the_nucleus_search_floor_and_unnormalised_draws():
    # A flat row needs every token (the threshold is 1/V, above the search's floor); a
    # peaked one only its peak; a row whose tail is all below the floor keeps the head.
    vocab = 8192
    flat = np.full(vocab, 1.0 / vocab, np.float32)
    peaked = np.full(vocab, 1e-9, np.float32)
    peaked[7] = 1.0 - 1e-9 * (vocab - 1)
    tail = np.full(vocab, 1e-12, np.float32)
    tail[:4] = (1.0 - 1e-12 * (vocab - 4)) / 4
    keep = np.asarray(generation.nucleus_of_probs(jnp.asarray([flat, peaked, tail]), 0.999))
    assert keep[0].all() and keep[1].sum() == 1 and keep[1, 7]
    assert keep[2, :4].all() and keep[2].sum() == 4
    weights = 7.0 * np.asarray([0.5, 0.3, 0.15, 0.05, 0.0], np.float32)  # not normalised
    draws = generation.draw(jax.random.key(2), jnp.asarray([weights] * 20000))
    counts = np.bincount(np.asarray(draws), minlength=5) / 20000
    np.testing.assert_allclose(counts, weights / weights.sum(), atol=0.01)
