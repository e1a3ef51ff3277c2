"""Jitted steps for classifiers: train state, masked cross-entropy, train and eval steps.

A batch is a dict: ``inputs`` (whatever the model takes, e.g. a padded GraphsTuple),
``labels`` [R] int32, ``mask`` [R] bool (False for padding rows), and optionally ``aux``
[R, A] and ``rows`` [R] (which input each row reads, when rows share inputs). The model is
called as ``apply(vars, inputs, aux, rows, deterministic=...)``.
`train_step(state, batch) -> (state, metrics)` is pure; its dropout key is
``fold_in(state.rng, state.step)``, so a run resumed at step s draws the same keys. Metrics
are a clu `Collection`: merge them on the host across batches and ``compute()`` at the end.
`train_steps` runs several steps in one call (a `lax.scan` over stacked batches): on
XLA:CPU every call maps fresh pages for its temporaries, which for large graph batches costs
a quarter of a step, so one call per several steps is much faster.
"""

# No `from __future__ import annotations` here: clu Collections read their field
# annotations at run time.
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from clu import metrics
from flax import struct
from flax.training import train_state


class TrainState(train_state.TrainState):
    """flax TrainState plus the base RNG key for per-step dropout keys."""

    rng: jax.Array = struct.field(pytree_node=True, default=None)


def adamw(
    learning_rate: float | optax.Schedule, weight_decay: float = 0.0
) -> optax.GradientTransformation:
    """AdamW, the optimiser the paper uses for every probe (a fixed rate or a schedule)."""
    return optax.adamw(learning_rate, weight_decay=weight_decay)


def learning_rate_schedule(
    learning_rate: float, kind: str, total_steps: int, warmup_steps: int = 0
) -> float | optax.Schedule:
    """The learning rate per step.

    Args:
      learning_rate: the peak rate.
      kind: ``'constant'`` (the rate itself) or ``'cosine'`` (linear warm-up over
        `warmup_steps`, then cosine decay to zero at `total_steps`).
      total_steps: steps in the whole run (cosine only).
      warmup_steps: linear warm-up steps from zero (cosine only).
    """
    if kind == "constant":
        return learning_rate
    if kind == "cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0, learning_rate, warmup_steps, max(total_steps, warmup_steps + 1)
        )
    raise ValueError(f"unknown learning-rate schedule {kind!r}; use 'constant' or 'cosine'")


def create_train_state(
    model: nn.Module, batch: dict, seed: int, optimizer: optax.GradientTransformation
) -> TrainState:
    """Initialises parameters from `seed` on an example batch (as plain arrays: logical-
    axis metadata boxes, e.g. the decoder's, are removed)."""
    init_rng, dropout_rng = jax.random.split(jax.random.key(seed))
    variables = nn.meta.unbox(
        model.init(init_rng, batch["inputs"], batch.get("aux"), batch.get("rows"))
    )
    return TrainState.create(
        apply_fn=model.apply, params=variables["params"], tx=optimizer, rng=dropout_rng
    )


def masked_mean(losses: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of the [R] per-row losses over the real (mask=True) rows."""
    weights = mask.astype(losses.dtype)
    return jnp.sum(losses * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def masked_cross_entropy(logits: jax.Array, labels: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy over the real (mask=True) rows of [R, C] logits."""
    return masked_mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels), mask)


@struct.dataclass
class ClassificationMetrics(metrics.Collection):
    """Mean cross-entropy and accuracy over the real rows of the batches merged so far."""

    loss: metrics.Average.from_output("loss")
    accuracy: metrics.Accuracy


def _metrics(logits, labels, mask, losses=None) -> ClassificationMetrics:
    if losses is None:
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)  # [R]
    return ClassificationMetrics.single_from_model_output(
        loss=losses, logits=logits, labels=labels, mask=mask
    )


def _training_losses(state: TrainState, params, batch: dict[str, Any], dropout_rng):
    """([R, C] logits, [R] cross-entropy per row) of a batch in training mode."""
    logits = state.apply_fn(
        {"params": params},
        batch["inputs"],
        batch.get("aux"),
        batch.get("rows"),
        deterministic=False,
        rngs={"dropout": dropout_rng},
    )
    return logits, optax.softmax_cross_entropy_with_integer_labels(logits, batch["labels"])


def _train_step(
    state: TrainState, batch: dict[str, Any]
) -> tuple[TrainState, ClassificationMetrics]:
    dropout_rng = jax.random.fold_in(state.rng, state.step)

    def loss_fn(params):
        logits, losses = _training_losses(state, params, batch, dropout_rng)
        return masked_mean(losses, batch["mask"]), (logits, losses)

    (_, (logits, losses)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = state.apply_gradients(grads=grads)
    return state, _metrics(logits, batch["labels"], batch["mask"], losses)


def _accumulated_step(
    state: TrainState, micro: dict[str, Any]
) -> tuple[TrainState, ClassificationMetrics]:
    """One AdamW step on A stacked micro-batches (every leaf [A, ...]).

    The gradient is that of the masked mean cross-entropy over the real rows of all A
    (the sum of the micro-batches' summed-loss gradients, divided by their row count), so
    the step equals `_train_step` on their union up to floating-point reassociation;
    micro-batch k draws dropout from ``fold_in(fold_in(rng, step), k)``.
    """
    dropout_rng = jax.random.fold_in(state.rng, state.step)

    def loss_sum(params, batch, key):
        logits, losses = _training_losses(state, params, batch, key)
        return jnp.sum(losses * batch["mask"].astype(losses.dtype)), (logits, losses)

    grad_fn = jax.value_and_grad(loss_sum, has_aux=True)

    def body(carry, slot):
        grads, merged = carry
        batch, k = slot
        (_, (logits, losses)), g = grad_fn(state.params, batch, jax.random.fold_in(dropout_rng, k))
        grads = jax.tree.map(lambda a, b: a + b.astype(a.dtype), grads, g)
        return (grads, merged.merge(_metrics(logits, batch["labels"], batch["mask"], losses))), None

    zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), state.params)
    count = jnp.maximum(jnp.sum(micro["mask"]), 1).astype(jnp.float32)
    num_micro = micro["labels"].shape[0]
    (grads, merged), _ = jax.lax.scan(
        body, (zeros, ClassificationMetrics.empty()), (micro, jnp.arange(num_micro))
    )
    grads = jax.tree.map(lambda g, p: (g / count).astype(p.dtype), grads, state.params)
    return state.apply_gradients(grads=grads), merged


@jax.jit
def train_step(
    state: TrainState, batch: dict[str, Any]
) -> tuple[TrainState, ClassificationMetrics]:
    """One AdamW step on the masked cross-entropy; returns the batch's metrics."""
    return _train_step(state, batch)


def _train_steps(
    state: TrainState, batches: dict[str, Any], active: jax.Array, accumulate: bool = False
) -> tuple[TrainState, ClassificationMetrics]:
    """`train_step` on K stacked batches in order, in one call; returns merged metrics.

    Args:
      state: the train state.
      batches: K batches stacked along a new leading axis (every leaf [K, ...]); with
        `accumulate`, K steps of A micro-batches each (every leaf [K, A, ...]).
      active: [K] bool; inactive slots (padding, so every call has the same K and compiles
        once) leave the state and the metrics unchanged.
      accumulate: each step is `_accumulated_step` over its A micro-batches.

    Returns:
      The state after the active steps (as many `train_step` calls would give) and the
      metrics of the active batches merged.
    """
    step = _accumulated_step if accumulate else _train_step

    def body(carry, slot):
        state, merged = carry
        batch, on = slot
        state, m = jax.lax.cond(
            on, step, lambda s, _: (s, ClassificationMetrics.empty()), state, batch
        )
        return (state, merged.merge(m)), None

    (state, merged), _ = jax.lax.scan(
        body, (state, ClassificationMetrics.empty()), (batches, active)
    )
    return state, merged


train_steps = jax.jit(_train_steps, static_argnames="accumulate")


@jax.jit
def eval_step(state: TrainState, batch: dict[str, Any]) -> tuple[jax.Array, ClassificationMetrics]:
    """[R, C] logits of a batch and its metrics (no dropout)."""
    logits = state.apply_fn(
        {"params": state.params}, batch["inputs"], batch.get("aux"), batch.get("rows")
    )
    return logits, _metrics(logits, batch["labels"], batch["mask"])


@jax.jit
def embed_step(state: TrainState, batch: dict[str, Any]) -> jax.Array:
    """[G, D] embeddings of the batch's inputs from the model's ``embed`` method."""
    return state.apply_fn({"params": state.params}, batch["inputs"], method="embed")
