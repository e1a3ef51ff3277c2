"""Generation with a fixed-size KV cache: jitted prefill, then a jitted decode loop.

Prompts of different lengths are right-padded to one length and prefilled together; each
row's cache length is its own prompt length, so its first new token overwrites the
padding (see `Decoder.extend`). Decoding runs in one `lax.while_loop` that stops when every
row has finished (end-of-sequence token, a stop sequence, or ``max_new_tokens``).

Sampling: greedy (``temperature=0``), or temperature sampling restricted by top-k and/or
top-p (nucleus). Stop sequences are token-id sequences; a caller that stops on strings
(e.g. ``"\\ndef "``) truncates the decoded text as well, since one string has many
tokenisations.

Example::

    out = generation.generate(config, params, [[1, 2, 3], [4, 5]],
                              generation.SamplingConfig(max_new_tokens=16), seed=0)
    out.tokens[0]  # the new tokens of prompt 0, stop sequence / EOS removed
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from codeprop.models import decoder


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """How to choose tokens and when to stop.

    Attributes:
      max_new_tokens: most tokens generated per prompt.
      temperature: 0 for greedy decoding; else logits are divided by it before sampling.
      top_k: sample among the k most likely tokens (None: all).
      top_p: sample among the most likely tokens whose probabilities sum to at least p.
      eos_id: token that ends a row (removed from the output), or None.
      stop_sequences: token-id sequences that end a row (removed from the output).
    """

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    eos_id: int | None = None
    stop_sequences: tuple[tuple[int, ...], ...] = ()

    def __post_init__(self):
        if self.max_new_tokens < 1 or self.temperature < 0:
            raise ValueError("max_new_tokens must be >= 1 and temperature >= 0")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if any(len(s) == 0 for s in self.stop_sequences):
            raise ValueError("stop sequences must not be empty")


@dataclasses.dataclass(frozen=True)
class Generation:
    """Generated tokens per prompt and why each row stopped (``eos``, ``stop``, ``length``)."""

    tokens: list[list[int]]
    finish_reasons: list[str]


def nucleus(logits: jnp.ndarray, top_p: float) -> jnp.ndarray:
    """[B, V] bool: the most likely tokens whose probabilities sum to at least ``top_p``
    (tokens tied with the least likely kept one stay too); every token when ``top_p`` is 1.
    See `nucleus_of_probs`."""
    if top_p >= 1:
        return jnp.ones(logits.shape, bool)
    return nucleus_of_probs(jax.nn.softmax(logits.astype(jnp.float32), axis=-1), top_p)


def nucleus_of_probs(probs: jnp.ndarray, top_p: float) -> jnp.ndarray:
    """`nucleus` of probabilities [B, V] (float32, each row summing to 1).

    Found without sorting the vocabulary (a sort of [B, V] is the slowest op of a decode
    step on CPU): the threshold is the largest probability t with P(p >= t) >= top_p,
    bisected over the float32 bit patterns of the probabilities (monotonic for
    non-negative floats), one masked sum a step. The search starts at
    ``(1 - top_p) / (2 V)``: the tokens below it hold less than ``1 - top_p`` of the
    mass, so the threshold is above it, and a few of the 32 steps are saved."""
    vocab = probs.shape[-1]
    bits = jax.lax.bitcast_convert_type(probs, jnp.int32)  # [B, V]
    floor = np.float32((1.0 - top_p) / (2.0 * vocab))
    start = int(np.asarray(floor).view(np.int32)) if floor > 0 else 0
    one = int(np.asarray(np.float32(1.0)).view(np.int32))
    steps = max(1, int(np.ceil(np.log2(one - start + 1))))

    def halve(_, bounds):  # invariant: the mass at or above ``low`` is >= top_p
        low, high = bounds
        mid = low + (high - low + 1) // 2
        enough = jnp.sum(jnp.where(bits >= mid[:, None], probs, 0.0), axis=-1) >= top_p
        return jnp.where(enough, mid, low), jnp.where(enough, high, mid - 1)

    high = jnp.max(bits, axis=-1)
    low = jnp.minimum(jnp.full(probs.shape[:1], start, jnp.int32), high)
    low, _ = jax.lax.fori_loop(0, steps, halve, (low, high))
    return bits >= low[:, None]


def categorical(rng: jax.Array, logits: jnp.ndarray) -> jnp.ndarray:
    """[B] int32: one draw per row from softmax(``logits`` [B, V]); see `draw`."""
    return draw(rng, jax.nn.softmax(logits.astype(jnp.float32), axis=-1))


def draw(rng: jax.Array, weights: jnp.ndarray) -> jnp.ndarray:
    """[B] int32: one draw per row in proportion to non-negative ``weights`` [B, V] (not
    necessarily normalised), by inverting the CDF with one uniform number per row (Gumbel
    noise would draw V numbers per row)."""
    cdf = jnp.cumsum(weights, axis=-1)
    u = jax.random.uniform(rng, weights.shape[:1]) * cdf[:, -1]
    index = jnp.sum(cdf <= u[:, None], axis=-1)
    # Rounding may put u at the total mass: the last token of non-zero weight.
    last = weights.shape[-1] - 1 - jnp.argmax(weights[:, ::-1] > 0, axis=-1)
    return jnp.minimum(index, last).astype(jnp.int32)


def sample(logits: jnp.ndarray, rng: jax.Array, config: SamplingConfig) -> jnp.ndarray:
    """Next tokens [B] from ``logits`` [B, V] under ``config``: the probabilities are
    computed once, masked to the top-k and the nucleus, and drawn from unnormalised."""
    if config.temperature == 0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = logits.astype(jnp.float32) / config.temperature
    if config.top_k is not None:
        kth = jax.lax.top_k(logits, config.top_k)[0][:, -1:]  # [B, 1]
        logits = jnp.where(logits < kth, jnp.finfo(jnp.float32).min, logits)
    probs = jax.nn.softmax(logits, axis=-1)
    if config.top_p is not None and config.top_p < 1:
        probs = jnp.where(nucleus_of_probs(probs, config.top_p), probs, 0.0)
    return draw(rng, probs)


def _stopped(out: jnp.ndarray, step: jnp.ndarray, token: jnp.ndarray, config: SamplingConfig):
    """[B] bool: the token just written at ``out[:, step]`` ends its row."""
    done = jnp.zeros(token.shape, bool)
    if config.eos_id is not None:
        done |= token == config.eos_id
    for stop in config.stop_sequences:
        n = len(stop)
        tail = jax.lax.dynamic_slice_in_dim(out, jnp.maximum(step + 1 - n, 0), n, axis=1)
        done |= (step + 1 >= n) & jnp.all(tail == jnp.asarray(stop, jnp.int32), axis=1)
    return done


@functools.partial(jax.jit, static_argnums=0)
def _prefill(config, params, tokens, lengths, cache):
    """Runs the padded prompts [B, T]; returns the logits [B, V] after each real prompt."""
    logits, cache = decoder.Decoder(config).apply(
        {"params": params}, tokens, cache, lengths, method=decoder.Decoder.extend
    )
    last = jnp.take_along_axis(logits, (lengths - 1)[:, None, None], axis=1)[:, 0]  # [B, V]
    return last, cache


def _decode(config: decoder.DecoderConfig, sampling: SamplingConfig, params, logits, cache, rng):
    """The decode loop: returns (tokens [B, max_new_tokens], steps taken per row [B],
    finished flags [B])."""
    b = logits.shape[0]
    model = decoder.Decoder(config)
    out = jnp.zeros((b, sampling.max_new_tokens), jnp.int32)
    state = (0, out, jnp.zeros(b, bool), jnp.zeros(b, jnp.int32), logits, cache)

    def cond(state):
        step, _, done, *_ = state
        return (step < sampling.max_new_tokens) & ~jnp.all(done)

    def body(state):
        step, out, done, count, logits, cache = state
        token = sample(logits, jax.random.fold_in(rng, step), sampling)
        out = out.at[:, step].set(token)
        count = count + (~done).astype(jnp.int32)
        done = done | _stopped(out, step, token, sampling)
        logits, cache = model.apply(
            {"params": params}, token[:, None], cache, method=decoder.Decoder.extend
        )
        return step + 1, out, done, count, logits[:, 0], cache

    _, out, done, count, _, _ = jax.lax.while_loop(cond, body, state)
    return out, count, done


_decode_jit = jax.jit(_decode, static_argnums=(0, 1))


def generate(
    config: decoder.DecoderConfig,
    params,
    prompts: Sequence[Sequence[int]],
    sampling: SamplingConfig = SamplingConfig(),
    seed: int = 0,
    pad_id: int = 0,
    width_multiple: int = 1,
) -> Generation:
    """Continues each prompt (a list of token ids); same seed, same tokens.

    The cache holds ``max(len(prompt)) + max_new_tokens`` slots (the prompt width rounded
    up to ``width_multiple``, so that calls with prompts of similar lengths share one
    compilation); with learned positions that must fit in ``config.max_positions``.
    """
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    lengths = np.array([len(p) for p in prompts], np.int32)
    width = -(-int(lengths.max()) // width_multiple) * width_multiple
    size = width + sampling.max_new_tokens
    if config.position_embedding == "learned" and size > config.max_positions:
        raise ValueError(
            f"prompt ({width}) + max_new_tokens ({sampling.max_new_tokens}) exceeds the "
            f"{config.max_positions} learned positions"
        )
    tokens = np.full((len(prompts), width), pad_id, np.int32)
    for row, prompt in enumerate(prompts):
        tokens[row, : len(prompt)] = prompt
    cache = decoder.init_cache(config, len(prompts), size)
    logits, cache = _prefill(config, params, jnp.asarray(tokens), jnp.asarray(lengths), cache)
    out, count, done = _decode_jit(config, sampling, params, logits, cache, jax.random.key(seed))
    out, count, done = np.asarray(out), np.asarray(count), np.asarray(done)
    results, reasons = [], []
    for row in range(len(prompts)):
        new = out[row, : count[row]].tolist()
        reason = "length"
        if done[row]:
            if sampling.eos_id is not None and new[-1] == sampling.eos_id:
                new, reason = new[:-1], "eos"
            else:
                stop = next(s for s in sampling.stop_sequences if tuple(new[-len(s) :]) == s)
                new, reason = new[: len(new) - len(stop)], "stop"
        results.append(new)
        reasons.append(reason)
    return Generation(results, reasons)
