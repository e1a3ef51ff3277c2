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

import jax
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


def _rotate_half(x: jnp.ndarray) -> jnp.ndarray:
    half = x.shape[-1] // 2
    return jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def _rotate_half_transposed(y: jnp.ndarray) -> jnp.ndarray:
    """The transpose of `_rotate_half` (its inverse): ``[y2, -y1]``."""
    half = y.shape[-1] // 2
    return jnp.concatenate([y[..., half:], -y[..., :half]], axis=-1)


@jax.custom_vjp
def _rotate(x, sin, cos):
    """x [B, T, N, H] rotated by [B, T, 1, H] float32 angles, in float32."""
    return x.astype(jnp.float32) * cos + _rotate_half(x).astype(jnp.float32) * sin


def _rotate_fwd(x, sin, cos):
    return _rotate(x, sin, cos), (x, sin, cos)


def _rotate_bwd(residuals, g):
    # Written out because autodiff of the concatenation above gives XLA:CPU two pads and
    # an add per call, a separate pass over q or k; this is one fused pass (5% of the
    # tiny decoder's training step, BENCHMARKS.md). The angles' cotangents are exact and
    # cost nothing when unused (positions are integers), as XLA drops them.
    x, sin, cos = residuals
    x32 = x.astype(jnp.float32)
    d_x = g * cos + _rotate_half_transposed(g * sin)
    d_sin = jnp.sum(g * _rotate_half(x32), axis=2, keepdims=True)
    d_cos = jnp.sum(g * x32, axis=2, keepdims=True)
    return d_x.astype(x.dtype), d_sin, d_cos


_rotate.defvjp(_rotate_fwd, _rotate_bwd)


def apply_rope(x: jnp.ndarray, sin: jnp.ndarray, cos: jnp.ndarray) -> jnp.ndarray:
    """Rotates queries or keys ``x`` [B, T, N, H] by the [B, T, H] angles; same dtype out.

    ``out = x * cos + rotate_half(x) * sin`` with ``rotate_half(x) = [-x2, x1]`` (x1, x2 the
    two halves of the head dimension), computed in float32.
    """
    sin, cos = sin[:, :, None, :], cos[:, :, None, :]  # [B, T, 1, H]
    return _rotate(x, sin.astype(jnp.float32), cos.astype(jnp.float32)).astype(x.dtype)
