"""Next-token losses computed from final hidden states, without materialising [N, V] logits.

`fused_cross_entropy` is the output projection and the softmax cross-entropy in one
function with a custom gradient. It walks over the tokens in chunks of C rows: for each
chunk it forms the [C, V] logits, their log-sum-exp and the loss, and at once the chunk's
gradient ``softmax - one_hot`` and its contributions to the gradients of the hidden states
and of the output matrix. Those two gradients are the residuals, so the backward pass only
scales them. Compared with ``logits = h @ E.T`` followed by a cross-entropy, the FLOPs are
the same (three [N, D] x [D, V] products) but the [N, V] logits, probabilities and their
gradient never exist in memory at once, and there is no scatter for the label gradient.

Letters: N tokens (any leading shape, flattened), D hidden width, V vocabulary, C chunk.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def _chunk_terms(output_matrix, output_matrix_t, hidden, targets, weights):
    """Loss sum and gradients of one chunk.

    Args:
      output_matrix: [V, D] (the tied embedding, or the LM head's kernel transposed).
      output_matrix_t: the same, transposed: [D, V] float32.
      hidden: [C, D]; targets: [C] int; weights: [C] float32.

    Returns:
      (weighted loss sum, [C] correct-prediction flags, d hidden [C, D] float32,
      d output_matrix transposed [D, V] float32).
    """
    logits = jnp.einsum("cd,vd->cv", hidden, output_matrix, preferred_element_type=jnp.float32)
    top = jnp.max(logits, axis=-1, keepdims=True)  # [C, 1]
    exp = jnp.exp(logits - top)
    total = jnp.sum(exp, axis=-1, keepdims=True)
    log_normaliser = (top + jnp.log(total))[:, 0]  # [C]
    picked = jnp.take_along_axis(logits, targets[:, None], axis=-1)[:, 0]
    loss = jnp.sum(weights * (log_normaliser - picked))
    correct = picked >= top[:, 0]
    labels = jnp.arange(logits.shape[-1], dtype=targets.dtype)[None, :] == targets[:, None]
    d_logits = (exp / total - labels) * weights[:, None]  # [C, V]
    # Both products contract the minor axis of the large [C, V] operand with a [., V] or
    # [D, C] one: XLA:CPU's matmul kernels are 1.5-2x faster in these layouts than in
    # "cv,vd->cd" and "cv,cd->vd" (BENCHMARKS.md).
    d_hidden = jnp.einsum("cv,dv->cd", d_logits, output_matrix_t)
    d_matrix_t = jnp.einsum("dc,cv->dv", hidden.astype(jnp.float32).T, d_logits)
    return loss, correct, d_hidden, d_matrix_t


def _scan(hidden, output_matrix, targets, weights, chunk_size):
    n, d = hidden.shape
    chunk = min(chunk_size, n)
    pad = -n % chunk
    if pad:
        hidden = jnp.pad(hidden, ((0, pad), (0, 0)))
        targets = jnp.pad(targets, (0, pad))
        weights = jnp.pad(weights, (0, pad))  # Padded rows weigh 0.
    steps = (n + pad) // chunk
    xs = (
        hidden.reshape(steps, chunk, d),
        targets.reshape(steps, chunk),
        weights.reshape(steps, chunk),
    )

    matrix_t = output_matrix.astype(jnp.float32).T  # [D, V]

    def body(carry, x):
        loss, d_matrix_t = carry
        chunk_loss, correct, d_hidden, chunk_d_matrix_t = _chunk_terms(output_matrix, matrix_t, *x)
        return (loss + chunk_loss, d_matrix_t + chunk_d_matrix_t), (correct, d_hidden)

    init = (jnp.zeros((), jnp.float32), jnp.zeros(matrix_t.shape, jnp.float32))
    (loss, d_matrix_t), (correct, d_hidden) = jax.lax.scan(body, init, xs)
    return loss, correct.reshape(-1)[:n], d_hidden.reshape(-1, d)[:n], d_matrix_t.T


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _fused(hidden, output_matrix, targets, weights, chunk_size):
    loss, correct, _, _ = _scan(hidden, output_matrix, targets, weights, chunk_size)
    return loss, correct


def _fused_fwd(hidden, output_matrix, targets, weights, chunk_size):
    loss, correct, d_hidden, d_matrix = _scan(hidden, output_matrix, targets, weights, chunk_size)
    residuals = (d_hidden.astype(hidden.dtype), d_matrix.astype(output_matrix.dtype), weights)
    return (loss, correct), residuals


def _fused_bwd(chunk_size, residuals, cotangents):
    del chunk_size
    d_hidden, d_matrix, weights = residuals
    g = cotangents[0]  # The flags have no gradient.
    return (
        g.astype(d_hidden.dtype) * d_hidden,
        g.astype(d_matrix.dtype) * d_matrix,
        None,
        jnp.zeros_like(weights),
    )


_fused.defvjp(_fused_fwd, _fused_bwd)


def fused_cross_entropy(
    hidden: jnp.ndarray,
    output_matrix: jnp.ndarray,
    targets: jnp.ndarray,
    weights: jnp.ndarray | None = None,
    chunk_size: int = 256,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Weighted softmax cross-entropy of ``hidden @ output_matrix.T`` against ``targets``.

    Args:
      hidden: [..., D] final hidden states (any float dtype; logits are float32).
      output_matrix: [V, D] output projection (the tied token embedding, or the LM head's
        [D, V] kernel transposed).
      targets: [...] int token ids.
      weights: [...] per-token weights (0 for padding; e.g. ``1 / num_real_tokens`` for a
        mean), treated as constants (their gradient is zero); None for all ones.
      chunk_size: C, tokens per chunk (the [C, V] logits of one chunk are the largest
        temporary).

    Returns:
      (scalar ``sum(weights * -log softmax(logits)[targets])`` in float32, [...] bool
      whether the target is the arg-max). Differentiable in ``hidden`` and
      ``output_matrix``; the gradient equals that of the unfused computation.
    """
    shape = targets.shape
    d = hidden.shape[-1]
    if hidden.shape[:-1] != shape:
        raise ValueError(f"hidden {hidden.shape} does not match targets {shape}")
    if output_matrix.ndim != 2 or output_matrix.shape[1] != d:
        raise ValueError(f"output_matrix must be [V, {d}], got {output_matrix.shape}")
    weights = jnp.ones(shape, jnp.float32) if weights is None else weights.astype(jnp.float32)
    loss, correct = _fused(
        hidden.reshape(-1, d),
        output_matrix,
        targets.reshape(-1).astype(jnp.int32),
        weights.reshape(-1),
        chunk_size,
    )
    return loss, correct.reshape(shape)
