"""Sharded language-model pretraining of the CodeShell decoder.

`train` is the gin entry point (``python -m codeprop.main --gin_file=... --workdir=...``):

1. the mesh (`partitioning.MeshConfig`) and the logical-axis rules place every parameter;
   the parameters are initialised directly into their shardings (`jax.eval_shape` for
   shapes, `jax.jit` with ``out_shardings``), the optimizer state follows its parameters;
2. `train_step` is jitted with explicit input/output shardings and a donated state; it
   accumulates gradients over ``accumulation`` micro-batches (a `lax.scan`), in float32,
   whatever the compute dtype;
3. orbax checkpoints (every ``checkpoint_every`` steps, at the end, and on SIGTERM) hold
   the state and the data position, so a restored run continues bitwise as if it had not
   stopped; a checkpoint that does not restore is reported and the previous one is used;
4. clu metric writers (TensorBoard) get loss, learning rate, gradient norm, tokens/s and
   MFU every ``log_every`` steps, and validation loss and perplexity every ``eval_every``;
   the terminal gets a progress line (step, loss, tokens/s, MFU, ETA) every 30 s or so;
5. context extension: a new workdir with ``init_from`` set to a finished run's workdir
   (``SEQ_LEN = 8192``, ``DecoderConfig.max_positions = 8192`` and optionally
   ``rope_scaling``) starts from that run's parameters with a fresh optimizer and
   schedule, as CodeShell did for its last 50B tokens; multi-host runs start
   `jax.distributed` from flags or the environment (`codeprop.train.distributed`).

A batch is a dict of [B, T] arrays with seqio's packed LM features: ``decoder_input_tokens``,
``decoder_target_tokens``, ``decoder_loss_weights``, ``decoder_segment_ids``,
``decoder_positions``. A data source is a callable ``(split, batch_size, seq_len,
start_batch) -> iterator of batches`` that is deterministic, so skipping ``start_batch``
batches resumes it exactly: `seqio_batches` (the corpus mixture) or `synthetic_batches`.
"""

from __future__ import annotations

import json
import math
import pathlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from clu import metric_writers
from flax import struct

import gin
from codeprop.data import json_files
from codeprop.models import decoder
from codeprop.train import checkpointing, host_memory, optimizers, partitioning, progress
from codeprop.train import preemption as preemption_lib

FEATURES = (
    "decoder_input_tokens",
    "decoder_target_tokens",
    "decoder_loss_weights",
    "decoder_segment_ids",
    "decoder_positions",
)


@struct.dataclass
class TrainState:
    """Step, parameters (float32 master weights) and optimizer state."""

    step: jax.Array
    params: Any
    opt_state: Any


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the run stopped without saving that state."""


# ----------------------------------------------------------------------------- data


def synthetic_batches(
    split: str, batch_size: int, seq_len: int, start_batch: int, *, vocab_size: int, seed: int = 0
) -> Iterator[dict[str, np.ndarray]]:
    """Random token batches (one document per row), batch i from ``seed``, split and i —
    for smoke tests and throughput measurements."""
    i = start_batch
    while True:
        rng = np.random.default_rng([seed, 0 if split == "train" else 1, i])
        tokens = rng.integers(1, vocab_size, size=(batch_size, seq_len + 1), dtype=np.int32)
        yield {
            "decoder_input_tokens": tokens[:, :-1],
            "decoder_target_tokens": tokens[:, 1:],
            "decoder_loss_weights": np.ones((batch_size, seq_len), np.float32),
            "decoder_segment_ids": np.ones((batch_size, seq_len), np.int32),
            "decoder_positions": np.broadcast_to(
                np.arange(seq_len, dtype=np.int32), (batch_size, seq_len)
            ).copy(),
        }
        i += 1


def seqio_batches(
    split: str,
    batch_size: int,
    seq_len: int,
    start_batch: int,
    *,
    corpus_dir: str,
    vocabulary_file: str,
    mixture: str = "codeprop_corpus",
    fim_rate: float = 0.5,
    seed: int = 0,
) -> Iterator[dict[str, np.ndarray]]:
    """Packed FIM batches of the corpus mixture (`codeprop.train.input_pipeline`), repeated forever
    (the training split reshuffled by epoch, deterministically from ``seed``)."""
    from codeprop.train import input_pipeline  # TensorFlow and seqio load only when used.

    input_pipeline.register_corpus(mixture, corpus_dir, vocabulary_file, fim_rate=fim_rate)
    dataset = input_pipeline.packed_dataset(
        mixture, seq_len, split=split, seed=seed, shuffle=split == "train"
    )
    dataset = dataset.repeat().batch(batch_size, drop_remainder=True).skip(start_batch)
    for batch in dataset.as_numpy_iterator():
        yield {name: np.asarray(batch[name]) for name in FEATURES}


# ----------------------------------------------------------------------------- state


def _param_shardings(config: decoder.DecoderConfig, mesh, rules):
    return nn.logical_to_mesh_sharding(decoder.logical_axes(config), mesh, rules)


def state_shardings(model_config, tx, mesh, rules=partitioning.RULES) -> TrainState:
    """The NamedSharding of every leaf of the train state."""
    params = _param_shardings(model_config, mesh, rules)
    abstract_params = jax.eval_shape(lambda: decoder.init_params(model_config, jax.random.key(0)))
    opt_state = partitioning.follow_params(jax.eval_shape(tx.init, abstract_params), params, mesh)
    return TrainState(step=partitioning.replicated(mesh), params=params, opt_state=opt_state)


def init_state(model_config, tx, seed: int, shardings: TrainState) -> TrainState:
    """Parameters from ``seed`` and a fresh optimizer state, created in their shardings."""

    def init():
        params = decoder.init_params(model_config, jax.random.key(seed))
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))

    return jax.jit(init, out_shardings=shardings)()


# ----------------------------------------------------------------------------- step


def _loss_terms(model, params, batch, total_weight):
    loss, correct = model.apply(
        {"params": params},
        batch["decoder_input_tokens"],
        batch["decoder_target_tokens"],
        batch["decoder_loss_weights"] / total_weight,
        positions=batch["decoder_positions"],
        segment_ids=batch["decoder_segment_ids"],
        method="loss",
    )
    return loss, jnp.sum(correct * (batch["decoder_loss_weights"] > 0))


def train_step(state: TrainState, batch: dict, *, model, tx, accumulation: int = 1):
    """One optimizer step on a global batch [A * B, T] in ``accumulation`` (A) micro-batches.

    The loss is the mean cross-entropy over the real target tokens of the whole batch
    (weights normalised by their global sum); micro-batch b takes rows b, b + A, ... so
    that each stays spread over the batch shards.

    Returns:
      (new state, metrics: loss, accuracy, grad_norm, tokens).
    """
    total_weight = jnp.maximum(jnp.sum(batch["decoder_loss_weights"]), 1.0)
    grad_fn = jax.value_and_grad(lambda p, b: _loss_terms(model, p, b, total_weight), has_aux=True)
    if accumulation == 1:
        (loss, correct), grads = grad_fn(state.params, batch)
    else:

        def split(x):
            rows = x.shape[0] // accumulation
            return x.reshape(rows, accumulation, *x.shape[1:]).swapaxes(0, 1)

        def body(carry, micro):
            (loss, correct), grads = grad_fn(state.params, micro)
            acc_loss, acc_correct, acc_grads = carry
            acc_grads = jax.tree.map(lambda a, g: a + g.astype(jnp.float32), acc_grads, grads)
            return (acc_loss + loss, acc_correct + correct, acc_grads), None

        zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), state.params)
        init = (jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32), zeros)
        (loss, correct, grads), _ = jax.lax.scan(body, init, jax.tree.map(split, batch))
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {
        "loss": loss,
        "accuracy": correct / total_weight,
        "grad_norm": optax.tree.norm(grads),
        "tokens": jnp.sum(batch["decoder_loss_weights"]),
    }
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics


def eval_step(params, batch, *, model):
    """(summed loss, summed weight) of a batch, for the mean validation loss."""
    loss, _ = model.apply(
        {"params": params},
        batch["decoder_input_tokens"],
        batch["decoder_target_tokens"],
        batch["decoder_loss_weights"],
        positions=batch["decoder_positions"],
        segment_ids=batch["decoder_segment_ids"],
        method="loss",
    )
    return loss, jnp.sum(batch["decoder_loss_weights"])


def flops_per_token(config: decoder.DecoderConfig, num_params: int, seq_len: int) -> float:
    """Training FLOPs per token: 6 per parameter plus causal attention (forward + backward)."""
    attention = 6 * config.num_layers * config.num_heads * config.resolved_head_dim * seq_len
    return 6 * num_params + attention


def _state_from(init_from, model_config, tx, shardings) -> TrainState:
    """Step 0 with the parameters of another run's newest checkpoint and a fresh optimizer
    (context extension: the same architecture, longer sequences, optionally RoPE scaling)."""
    diff = checkpointing.architecture_differences(init_from, model_config)
    if diff:
        raise ValueError(f"init_from={init_from} is another model; differences: {diff}")
    _, params = checkpointing.load_params(init_from)

    def start(p):
        return TrainState(step=jnp.zeros((), jnp.int32), params=p, opt_state=tx.init(p))

    return jax.jit(start, out_shardings=shardings)(params)


# ----------------------------------------------------------------------------- loop


@gin.configurable(denylist=["workdir"])
def train(
    *,
    workdir: str,
    model: decoder.DecoderConfig = gin.REQUIRED,
    data: Callable[..., Iterator[dict]] = gin.REQUIRED,
    steps: int = gin.REQUIRED,
    batch_size: int = gin.REQUIRED,
    seq_len: int = gin.REQUIRED,
    accumulation: int = 1,
    optimizer: optimizers.OptimizerConfig = optimizers.CODESHELL_7B,
    mesh: partitioning.MeshConfig = partitioning.DATA_PARALLEL,
    rules: tuple = partitioning.RULES,
    seed: int = 0,
    log_every: int = 10,
    checkpoint_every: int = 100,
    keep_checkpoints: int = 3,
    eval_every: int = 0,
    eval_batches: int = 4,
    peak_flops: float | None = None,
    init_from: str | None = None,
) -> dict:
    """Pretrains ``model`` on ``data`` for ``steps`` optimizer steps (resuming if the
    workdir has a checkpoint).

    Args:
      workdir: checkpoints, TensorBoard events, ``model_config.json``, ``summary.json``.
      model: the decoder configuration (e.g. ``@decoder.tiny()`` in gin).
      data: a data source ``(split, batch_size, seq_len, start_batch) -> iterator``.
      steps: optimizer steps in total (a resumed run stops at the same step).
      batch_size: rows per optimizer step (all micro-batches, all hosts).
      seq_len: tokens per row.
      accumulation: micro-batches per step (gradient accumulation).
      optimizer: AdamW + schedule (`optimizers.OptimizerConfig`).
      mesh: the mesh axes' sizes; rules: logical-axis rules.
      seed: parameter initialisation seed.
      log_every, checkpoint_every, eval_every: intervals in steps (0: never evaluate).
      eval_batches: validation batches per evaluation.
      peak_flops: the devices' peak FLOP/s in total, for MFU (None: MFU not reported).
      init_from: a finished run's workdir whose newest parameters start this run (with a
        fresh optimizer and schedule) when the workdir has no checkpoint of its own — how a
        2048-token run is extended to 8192 (set ``seq_len``, ``model.max_positions`` and,
        optionally, ``model.rope_scaling``).

    Returns:
      A summary dict: final step, last loss, tokens/s, validation loss and perplexity.

    Raises:
      NonFiniteLossError: the loss became NaN/inf (the last checkpoint is the last good one).
      ValueError: the workdir holds a run of another architecture.
    """
    host_memory.keep_freed_memory()  # Fully effective only before JAX's first computation.
    workdir_path = pathlib.Path(workdir)
    checkpointing.check_workdir(workdir_path, model)
    if batch_size % accumulation:
        raise ValueError(
            f"batch_size {batch_size} is not a multiple of accumulation {accumulation}"
        )
    device_mesh = partitioning.make_mesh(mesh)
    tx = optimizers.optimizer(optimizer)
    learning_rate = optimizers.schedule(optimizer)
    shardings = state_shardings(model, tx, device_mesh, rules)
    module = decoder.Decoder(model)
    batch_shardings = {name: partitioning.batch_sharding(device_mesh) for name in FEATURES}

    # Initialised (or restored) outside the mesh context: flax's DenseGeneral initialises
    # its kernels flattened, which a logical sharding constraint would refuse; the jit's
    # out_shardings place them.
    manager = checkpointing.checkpoint_manager(workdir_path, keep_checkpoints)
    abstract = jax.eval_shape(lambda: init_state(model, tx, seed, shardings))
    restored = checkpointing.restore_latest(manager, shardings, abstract)
    if restored is None and init_from:
        state, consumed = _state_from(init_from, model, tx, shardings), 0
        logging.info("initialised from %s", init_from)
    elif restored is None:
        state, consumed = init_state(model, tx, seed, shardings), 0
    else:
        state, consumed = restored
        logging.info("resumed from step %d (%d batches consumed)", int(state.step), consumed)

    with nn.logical_axis_rules(rules), jax.set_mesh(device_mesh):
        step_fn = jax.jit(
            lambda s, b: train_step(s, b, model=module, tx=tx, accumulation=accumulation),
            in_shardings=(shardings, batch_shardings),
            out_shardings=(shardings, partitioning.replicated(device_mesh)),
            donate_argnums=0,
        )
        eval_fn = jax.jit(
            lambda p, b: eval_step(p, b, model=module),
            in_shardings=(shardings.params, batch_shardings),
        )
        num_params = decoder.num_params(state.params)
        fpt = flops_per_token(model, num_params, seq_len)
        # TensorBoard events from process 0; the terminal gets a progress line every 30 s
        # or so, and the validation figures.
        lead = jax.process_index() == 0
        writer = (
            metric_writers.SummaryWriter(str(workdir_path))
            if lead
            else metric_writers.MultiWriter([])
        )
        run_start, start_step = time.perf_counter(), int(state.step)
        printed = run_start
        batches = data("train", batch_size, seq_len, consumed)
        summary: dict[str, Any] = {"parameters": num_params}
        history: list[dict] = _read_history(workdir_path)
        last_good = int(state.step)
        window_start, window_tokens = time.perf_counter(), 0.0
        with preemption_lib.Preemption() as preemption:
            while int(state.step) < steps:
                batch = jax.device_put(next(batches), batch_shardings)
                state, metrics = step_fn(state, batch)
                consumed += 1
                step = int(state.step)
                loss = float(metrics["loss"])
                if not math.isfinite(loss):
                    raise NonFiniteLossError(
                        f"loss is {loss} at step {step} (gradient norm "
                        f"{float(metrics['grad_norm'])}); stopped without saving. The last "
                        f"checkpoint, step {last_good}, is in {manager.directory}."
                    )
                window_tokens += float(metrics["tokens"])
                if step % log_every == 0 or step == steps:
                    elapsed = time.perf_counter() - window_start
                    scalars = {
                        "loss": loss,
                        "accuracy": float(metrics["accuracy"]),
                        "grad_norm": float(metrics["grad_norm"]),
                        "learning_rate": float(learning_rate(step - 1)),
                        "tokens_per_s": window_tokens / elapsed,
                    }
                    if peak_flops:
                        scalars["mfu"] = scalars["tokens_per_s"] * fpt / peak_flops
                    writer.write_scalars(step, scalars)
                    if lead and (time.perf_counter() - printed >= 30 or step == steps):
                        print(progress_line(step, steps, scalars, run_start, start_step))
                        printed = time.perf_counter()
                    summary.update(scalars)
                    history.append({"step": step, **scalars})
                    window_start, window_tokens = time.perf_counter(), 0.0
                if eval_every and (step % eval_every == 0 or step == steps):
                    evaluation = evaluate(
                        eval_fn,
                        state.params,
                        data,
                        batch_size,
                        seq_len,
                        eval_batches,
                        batch_shardings,
                    )
                    writer.write_scalars(step, evaluation)
                    if lead:
                        print(
                            f"step {step}/{steps}  "
                            + "  ".join(f"{k} {v:.3f}" for k, v in evaluation.items())
                        )
                    summary.update(evaluation)
                    history.append({"step": step, **evaluation})
                if step % checkpoint_every == 0 or step == steps or preemption.requested:
                    checkpointing.save(manager, state, consumed)
                    last_good = step
                if preemption.requested:
                    logging.warning("SIGTERM: saved step %d and stopped", step)
                    summary["preempted"] = True
                    break
        writer.flush()
        manager.close()
    summary["step"] = int(state.step)
    summary["processes"] = jax.process_count()
    if jax.process_index() == 0:
        (workdir_path / "summary.json").write_text(json.dumps(summary, indent=1))
        (workdir_path / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
        plot_losses(history, workdir_path / "loss_curve.png")
    return summary


def progress_line(step: int, steps: int, scalars: dict, start: float, start_step: int) -> str:
    """``step 500/1000  loss 2.314  12,851 tokens/s  MFU 0.38  ETA 3m 5s``."""
    done = step - start_step
    left = (time.perf_counter() - start) / max(done, 1) * (steps - step)
    parts = [f"step {step}/{steps}", f"loss {scalars['loss']:.3f}"]
    parts.append(f"{scalars['tokens_per_s']:,.0f} tokens/s")
    if "mfu" in scalars:
        parts.append(f"MFU {scalars['mfu']:.2f}")
    if step < steps:
        parts.append(f"ETA {progress.duration(left)}")
    return "  ".join(parts)


def _read_history(workdir: pathlib.Path) -> list[dict]:
    path = workdir / "history.jsonl"
    return [record for _, record in json_files.lines(path)] if path.exists() else []


def plot_losses(history: list[dict], path: pathlib.Path) -> None:
    """Training loss (and validation loss, where evaluated) against step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    if train:
        ax.plot(*zip(*train), label="training loss")
    if evals:
        ax.plot(*zip(*evals), "o-", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats per token)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def evaluate(eval_fn, params, data, batch_size, seq_len, num_batches, batch_shardings) -> dict:
    """Mean validation loss over ``num_batches`` batches and its perplexity."""
    total_loss = total_weight = 0.0
    batches = data("validation", batch_size, seq_len, 0)
    for _ in range(num_batches):
        loss, weight = eval_fn(params, jax.device_put(next(batches), batch_shardings))
        total_loss += float(loss)
        total_weight += float(weight)
    mean = total_loss / max(total_weight, 1.0)
    return {"eval_loss": mean, "eval_perplexity": float(np.exp(mean))}
