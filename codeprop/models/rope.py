"""Rotary position embedding (RoPE) in the half-split ("rotate_half") form, with scaling.

The head dimension H is split in two halves; feature i of the first half and feature
i + H/2 of the second are rotated together by the angle ``position * inv_freq[i]``. This is
the layout of GPT-NeoX, Llama, StarCoder2 and CodeShell checkpoints (not the interleaved
pairs of the RoFormer paper).

Scaling, for context extension:
- ``linear`` (position interpolation): every frequency is divided by the factor.
- ``dynamic`` (dynamic NTK): when the sequence (the largest position + 1) is longer than
  ``max_positions``, the base becomes ``base * (factor * L / max_positions - (factor - 1))
  ** (H / (H - 2))``. As in transformers, one base is used for the whole batch; unlike
  transformers' module, nothing is remembered between calls.
"""

from __future__ import annotations

import jax.numpy as jnp

SCALINGS = (None, "linear", "dynamic")


def inverse_frequencies(
    head_dim: int,
    base: float,
    scaling: str | None = None,
    factor: float = 1.0,
    max_positions: int | None = None,
    seq_len: jnp.ndarray | int | None = None,
) -> jnp.ndarray:
    """The [H/2] float32 rotation frequencies.

    Args:
      head_dim: H, even.
      base: RoPE base (theta), e.g. 10000.
      scaling: None, ``'linear'`` or ``'dynamic'``.
      factor: the scaling factor.
      max_positions: the trained context (dynamic scaling only).
      seq_len: the current sequence length (dynamic scaling only; may be traced).
    """
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head dimension, got {head_dim}")
    if scaling not in SCALINGS:
        raise ValueError(f"unknown RoPE scaling {scaling!r}; expected one of {SCALINGS}")
    exponents = jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim  # [H/2]
    if scaling == "dynamic":
        if max_positions is None or seq_len is None:
            raise ValueError("dynamic RoPE scaling needs max_positions and seq_len")
        length = jnp.maximum(jnp.asarray(seq_len, jnp.float32), max_positions)
        base = base * ((factor * length / max_positions) - (factor - 1)) ** (
            head_dim / (head_dim - 2)
        )
    inv_freq = 1.0 / (jnp.asarray(base, jnp.float32) ** exponents)
    if scaling == "linear":
        inv_freq = inv_freq / factor
    return inv_freq


def sin_cos(positions: jnp.ndarray, inv_freq: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Sines and cosines [B, T, H] of ``positions`` [B, T] (both halves repeated)."""
    angles = positions.astype(jnp.float32)[..., None] * inv_freq  # [B, T, H/2]
    angles = jnp.concatenate([angles, angles], axis=-1)  # [B, T, H]
    return jnp.sin(angles), jnp.cos(angles)


def apply_rope(x: jnp.ndarray, sin: jnp.ndarray, cos: jnp.ndarray) -> jnp.ndarray:
    """Rotates queries or keys ``x`` [B, T, N, H] by the [B, T, H] angles; same dtype out."""
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)  # rotate_half(x)
    sin, cos = sin[:, :, None, :], cos[:, :, None, :]  # [B, T, 1, H]
    out = x.astype(jnp.float32) * cos + rotated.astype(jnp.float32) * sin
    return out.astype(x.dtype)
