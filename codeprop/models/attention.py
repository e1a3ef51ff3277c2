"""Grouped-query attention kernels and masks (pure functions).

Letters: B batch, T query length, S key length, N query heads, K key/value heads,
G = N // K query heads sharing one key/value head, H head dimension.

Masks are boolean [B, T, S] (True = may attend). They are built from *slots*: the index of
each query and key in the sequence (or in the KV cache), so causality and the sliding
window follow the order of tokens, and from segment ids, so packed sequences do not see
each other.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from codeprop.models import blockwise_attention

IMPLEMENTATIONS = ("einsum", "xla", "cudnn", "blockwise")
# `attention` splits long sequences into at most this many query blocks (graph size).
MAX_QUERY_CHUNKS = 16


def causal_mask(
    q_slots: jnp.ndarray,
    kv_slots: jnp.ndarray,
    q_segments: jnp.ndarray | None = None,
    kv_segments: jnp.ndarray | None = None,
    sliding_window: int | None = None,
) -> jnp.ndarray:
    """Which keys each query may attend to.

    Args:
      q_slots: [B, T] int slot of each query.
      kv_slots: [B, S] int slot of each key.
      q_segments, kv_segments: [B, T] and [B, S] segment ids (packed sequences), or None.
      sliding_window: keys at most ``sliding_window - 1`` slots back are visible (the query
        itself included), as in StarCoder2 and transformers; None for no window.

    Returns:
      [B, T, S] bool.
    """
    distance = q_slots[:, :, None] - kv_slots[:, None, :]  # [B, T, S]
    mask = distance >= 0
    if sliding_window is not None:
        mask &= distance < sliding_window
    if q_segments is not None:
        mask &= q_segments[:, :, None] == kv_segments[:, None, :]
    return mask


def einsum_attention(
    q: jnp.ndarray, k: jnp.ndarray, v: jnp.ndarray, mask: jnp.ndarray, scale: float
) -> jnp.ndarray:
    """Reference GQA: softmax in float32, no K/V tiling.

    Args:
      q: [B, T, N, H]; k, v: [B, S, K, H]; mask: [B, T, S] bool; scale: logit scale.

    Returns:
      [B, T, N, H] in q's dtype.
    """
    b, t, n, h = q.shape
    kv_heads = k.shape[2]
    q = q.reshape(b, t, kv_heads, n // kv_heads, h)  # [B, T, K, G, H]
    logits = jnp.einsum("BTKGH,BSKH->BKGTS", q, k, preferred_element_type=jnp.float32)
    logits = logits * scale
    # A very negative finite value (not -inf): a fully masked row gives a uniform softmax
    # instead of NaNs (such rows are padding and are never read).
    big_neg = jnp.finfo(jnp.float32).min
    logits = jnp.where(mask[:, None, None, :, :], logits, big_neg)
    probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)  # [B, K, G, T, S]
    out = jnp.einsum("BKGTS,BSKH->BTKGH", probs, v)
    return out.reshape(b, t, n, h)  # [B, T, N, H]


def attention(
    q: jnp.ndarray,
    k: jnp.ndarray,
    v: jnp.ndarray,
    mask: jnp.ndarray | None,
    scale: float,
    implementation: str = "einsum",
    sliding_window: int | None = None,
    query_chunk: int | None = None,
) -> jnp.ndarray:
    """GQA with the chosen kernel; shapes as in `einsum_attention`.

    ``'einsum'`` is the reference above; ``'xla'`` and ``'cudnn'`` call
    `jax.nn.dot_product_attention` (``'cudnn'`` is its flash-attention kernel on NVIDIA
    GPUs, which needs bfloat16/float16 inputs). ``mask=None`` means plain causal attention
    over one sequence per row (with ``sliding_window``): the cuDNN kernel then builds the
    mask itself instead of reading a [B, T, S] array.

    ``query_chunk`` (self-attention only: the keys are the queries' own sequence, T == S,
    and ``mask`` is causal, as every mask of `causal_mask` over the same slots is) splits
    the queries into blocks of at least that many rows — at most `MAX_QUERY_CHUNKS`
    blocks — and gives each block only the keys it can see: the ones up to its last query
    (and back to its first query's sliding window). The result is the same; about half of
    the [T, S] scores (the blocks above the diagonal) are never computed, and each block's
    scores are small enough to stay in cache, which is what makes it faster on CPUs.
    Ignored by ``'cudnn'``, which skips those blocks itself.
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"unknown attention implementation {implementation!r}; {IMPLEMENTATIONS}")
    if mask is None and implementation == "cudnn":
        window = None if sliding_window is None else (sliding_window - 1, 0)
        return jax.nn.dot_product_attention(
            q, k, v, scale=scale, is_causal=True, local_window_size=window, implementation="cudnn"
        )
    if implementation == "blockwise":
        if q.shape[1] != k.shape[1]:  # A KV cache: the einsum reference.
            return attention(q, k, v, mask, scale, "einsum", sliding_window)
        chunk = query_chunk or 64
        return blockwise_attention.blockwise_attention(q, k, v, mask, scale, chunk, sliding_window)
    t = q.shape[1]
    if query_chunk is None or implementation == "cudnn":
        chunk = t
    else:
        if k.shape[1] != t:
            raise ValueError(
                f"query_chunk needs self-attention (T == S), got T={t}, S={k.shape[1]}"
            )
        chunk = max(query_chunk, -(-t // MAX_QUERY_CHUNKS))
    outputs = []
    for start in range(0, t, chunk):
        stop = min(start + chunk, t)
        first = 0 if sliding_window is None else max(0, start - sliding_window + 1)
        if mask is None:
            b = q.shape[0]
            q_slots = jnp.broadcast_to(jnp.arange(start, stop, dtype=jnp.int32), (b, stop - start))
            kv_slots = jnp.broadcast_to(jnp.arange(first, stop, dtype=jnp.int32), (b, stop - first))
            block_mask = causal_mask(q_slots, kv_slots, sliding_window=sliding_window)
        else:
            block_mask = mask[:, start:stop, first:stop] if chunk < t else mask
        q_block = q[:, start:stop] if chunk < t else q
        k_block = k[:, first:stop] if chunk < t else k
        v_block = v[:, first:stop] if chunk < t else v
        if implementation == "einsum":
            outputs.append(einsum_attention(q_block, k_block, v_block, block_mask, scale))
        else:
            outputs.append(
                jax.nn.dot_product_attention(
                    q_block,
                    k_block,
                    v_block,
                    mask=block_mask[:, None, :, :],
                    scale=scale,
                    implementation=implementation,
                )
            )
    return outputs[0] if len(outputs) == 1 else jnp.concatenate(outputs, axis=1)
