"""CodeShell's optimisation recipe: AdamW (0.9, 0.95), weight decay, gradient clipping,
linear warm-up then cosine decay (3e-4 -> 3e-5 over 127k steps in the 7B run)."""

from __future__ import annotations

import dataclasses

import jax
import optax


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """AdamW with a warm-up + cosine schedule (CodeShell-7B's values by default).

    Attributes:
      peak_learning_rate: the rate at the end of the warm-up.
      final_learning_rate: the rate at ``total_steps``.
      warmup_steps: linear warm-up from 0 (1,000 in CodeShell-7B).
      total_steps: steps of the whole schedule (127k in CodeShell-7B); afterwards the rate
        stays at ``final_learning_rate``.
      b1, b2, eps: Adam moments.
      weight_decay: decoupled weight decay, applied to matrices (ndim >= 2) only — not to
        biases and norm scales.
      clip_norm: global gradient-norm clipping; None for none.
    """

    peak_learning_rate: float = 3e-4
    final_learning_rate: float = 3e-5
    warmup_steps: int = 1000
    total_steps: int = 127_000
    b1: float = 0.9
    b2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.1
    clip_norm: float | None = 1.0


def schedule(config: OptimizerConfig) -> optax.Schedule:
    """Learning rate per step: 0 -> peak linearly over the warm-up, then cosine to final."""
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=config.peak_learning_rate,
        warmup_steps=config.warmup_steps,
        decay_steps=max(config.total_steps, config.warmup_steps + 1),
        end_value=config.final_learning_rate,
    )


def _decay_mask(params):
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def optimizer(config: OptimizerConfig) -> optax.GradientTransformation:
    """Clipping (if set), then AdamW with `schedule` and decay on matrices only."""
    adamw = optax.adamw(
        schedule(config),
        b1=config.b1,
        b2=config.b2,
        eps=config.eps,
        weight_decay=config.weight_decay,
        mask=_decay_mask,
    )
    if config.clip_norm is None:
        return adamw
    return optax.chain(optax.clip_by_global_norm(config.clip_norm), adamw)


CODESHELL_7B = OptimizerConfig()
