"""The classifier loop: train and evaluate a classifier on one split.

`fit` trains on ``split["train"]`` for a number of epochs, evaluates on
``split["validation"]`` after each, keeps the parameters of the best validation epoch
(`TrainConfig.selection`) and returns that model's test predictions and embeddings. The
model is any flax module over batches of `codeprop.train.batchers` (a GNN over graphs, a
decoder with a classification head over tokens); the probes and the learned quality
scorer of the corpus pipeline all train through it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from clu import metric_writers

from codeprop.models import gnn
from codeprop.train import (
    batchers,
    boosted_head,
    epoch_checkpoints,
    linear_head,
    partitioning,
    placement,
    preemption,
    steps,
)

SELECTIONS = ("accuracy", "accuracy_then_loss", "loss")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of a probe.

    Attributes:
      epochs: passes over the training split.
      batch_size: most graphs per batch (batches are filled up to a fixed node budget).
      learning_rate: AdamW (peak) learning rate.
      schedule: ``'constant'`` or ``'cosine'`` (decay to zero over all epochs, after
        `warmup_epochs` of linear warm-up); see `steps.learning_rate_schedule`.
      warmup_epochs: warm-up length of the cosine schedule, in epochs.
      weight_decay: AdamW decoupled weight decay.
      seed: parameter initialisation, dropout and shuffling seed.
      selection: which epoch's parameters are kept: ``'accuracy'`` (the first epoch with
        the best validation accuracy) or ``'accuracy_then_loss'`` (among the epochs with
        the best validation accuracy, the one with the lowest validation loss: on small
        validation parts, such as devmap's 61 rows, many epochs tie on accuracy) or
        ``'loss'`` (the epoch with the lowest validation loss).
      steps_per_call: most training steps run in one jitted call (`steps.train_steps`;
        fewer when an epoch has fewer batches); an epoch's last call is padded with inactive
        steps. Results do not depend on it beyond floating-point reassociation.
      accumulation: micro-batches per optimizer step: the batcher's batches (of
        `batch_size`) are micro-batches, and each step takes the gradient of the union of
        `accumulation` of them (an epoch's last step may have fewer). 1: every batch is a
        step.
      mesh: train on a device mesh (`codeprop.train.placement`; token-sequence batches
        only, `batch_size` a multiple of data x fsdp), or None for the default device.
    """

    epochs: int = 60
    batch_size: int = 64
    learning_rate: float = 1e-3
    schedule: str = "constant"
    warmup_epochs: int = 0
    weight_decay: float = 0.0
    seed: int = 0
    steps_per_call: int = 16
    selection: str = "accuracy"
    accumulation: int = 1
    mesh: partitioning.MeshConfig | None = None

    def __post_init__(self):
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, not {self.selection!r}")
        if self.steps_per_call < 1:
            raise ValueError("steps_per_call must be at least 1")
        if self.accumulation < 1:
            raise ValueError("accumulation must be at least 1")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule must be 'constant' or 'cosine', not {self.schedule!r}")


def _stack(items: list[dict], size: int) -> tuple[dict, np.ndarray]:
    """Stacks batches along a new axis, padded to `size` with inactive copies of the last.

    Returns:
      (stacked batches, [size] bool active flags).
    """
    active = np.arange(size) < len(items)
    items = items + [items[-1]] * (size - len(items))
    return jax.tree.map(lambda *leaves: np.stack(leaves), *items), active


def _micro_group(batches: list[dict], size: int) -> dict:
    """`size` micro-batches stacked along a new axis; missing ones are copies of the last
    with every row masked out (they add nothing to the gradient or the metrics)."""
    padding = [dict(batches[-1], mask=np.zeros_like(batches[-1]["mask"]))]
    items = batches + padding * (size - len(batches))
    return jax.tree.map(lambda *leaves: np.stack(leaves), *items)


def train_epoch(
    state: steps.TrainState,
    batcher,
    rows: np.ndarray,
    steps_per_call: int = 16,
    accumulation: int = 1,
    where: placement.Placement = placement.DEFAULT,
    *,
    skip_calls: int = 0,
    merged: steps.ClassificationMetrics | None = None,
    between_calls: Callable[[steps.TrainState, steps.ClassificationMetrics, int], None]
    | None = None,
) -> tuple[steps.TrainState, steps.ClassificationMetrics]:
    """One pass over `rows` in their order, `steps_per_call` steps per jitted call, each
    step on `accumulation` batches, the batches put where `where` says.

    Args:
      state, batcher, rows, steps_per_call, accumulation, where: as above.
      skip_calls: the pass's first calls already ran (a pass resumed in its middle):
        their batches are made and dropped, so the calls after them see the same batches
        as in a pass that never stopped.
      merged: the training metrics of those calls (None when `skip_calls` is 0).
      between_calls: called as ``between_calls(state, merged, calls)`` between two calls
        (never before the first or after the last), with the state and metrics after
        `calls` calls of the pass, computed (at most one call is ever in flight); it may
        save them, report progress or raise (SIGTERM).

    Returns:
      The new state and the merged training metrics of the pass.
    """
    pending: list[dict] = []
    micro: list[dict] = []
    calls = skip_calls
    to_skip = skip_calls * steps_per_call * accumulation  # batches

    def flush(state, merged):
        nonlocal calls
        # JAX dispatches calls asynchronously without bound: unchecked, the host would run
        # calls (and their batches' memory) ahead of the device, the progress would count
        # steps not yet run and a stop would wait for all of them. Wait for the previous
        # call before the next one (its batches were made while it ran).
        jax.block_until_ready((state, merged))
        if between_calls is not None and calls > skip_calls:
            between_calls(state, merged, calls)
        stacked, active = _stack(pending, steps_per_call)
        stacked = where.batch(stacked, leading=2 if accumulation > 1 else 1)
        state, m = steps.train_steps(state, stacked, active, accumulate=accumulation > 1)
        pending.clear()
        calls += 1
        return state, m if merged is None else merged.merge(m)

    def add(step_batch, state, merged):
        pending.append(step_batch)
        if len(pending) == steps_per_call:
            state, merged = flush(state, merged)
        return state, merged

    for batch, _ in batcher.batches(rows):
        if to_skip:
            to_skip -= 1
            continue
        if accumulation == 1:
            state, merged = add(batch, state, merged)
            continue
        micro.append(batch)
        if len(micro) == accumulation:
            state, merged = add(_micro_group(micro, accumulation), state, merged)
            micro.clear()
    if micro:
        state, merged = add(_micro_group(micro, accumulation), state, merged)
    if pending:
        state, merged = flush(state, merged)
    return state, merged


def _metrics_to_json(merged: steps.ClassificationMetrics) -> list:
    """The leaves of training metrics, exactly (float32 and int32 values are exact as JSON
    numbers)."""
    return [[str(np.asarray(x).dtype), np.asarray(x).tolist()] for x in jax.tree.leaves(merged)]


def _metrics_from_json(saved: list) -> steps.ClassificationMetrics:
    treedef = jax.tree.structure(steps.ClassificationMetrics.empty())
    if len(saved) != treedef.num_leaves:
        raise ValueError(
            f"saved training metrics have {len(saved)} values, not {treedef.num_leaves}"
        )
    return jax.tree.unflatten(treedef, [jnp.asarray(v, dtype) for dtype, v in saved])


def _improves(record: dict, best: dict, selection: str) -> bool:
    """Whether an epoch's validation `record` beats the `best` one kept so far."""
    accuracy, loss = record["validation_accuracy"], record["validation_loss"]
    if selection == "loss":
        return loss < best["loss"]
    if accuracy > best["accuracy"]:
        return True
    return (
        selection == "accuracy_then_loss" and accuracy == best["accuracy"] and loss < best["loss"]
    )


def evaluate(
    state,
    batcher,
    rows,
    with_embeddings=False,
    where: placement.Placement = placement.DEFAULT,
    with_logits=True,
    after_batch: Callable[[int, int], None] | None = None,
) -> dict:
    """Logits [n, C] of `rows` (in that order), their mean loss, and optionally the graph
    embeddings [n, D] of each row; ``with_logits=False`` runs only the embedding (one
    forward pass instead of two: the frozen protocol reads no logits). `after_batch`, if
    given, is called after each batch as ``after_batch(rows done, n)`` (progress; it may
    raise to stop).

    The rows run in the batcher's `eval_batches` (sequences grouped by length), so the mean
    loss sums the rows in that order; logits and embeddings are put back in `rows`' order.
    """
    rows = np.asarray(rows)
    logits, embeddings, order, merged, done = [], [], [], None, 0
    for host_batch, batch_rows in batcher.eval_batches(rows):
        batch = where.batch(host_batch)
        n = len(batch_rows)
        order.append(batch_rows)
        if with_logits:
            batch_logits, m = steps.eval_step(state, batch)
            logits.append(np.asarray(batch_logits)[:n])
            merged = m if merged is None else merged.merge(m)
        if with_embeddings:
            graph_embeddings = np.asarray(steps.embed_step(state, batch))
            embeddings.append(graph_embeddings[host_batch["rows"][:n]])
        done += n
        if after_batch is not None:
            after_batch(done, len(rows))
    if not order:
        return {"logits": np.zeros((0, 0)), "embeddings": np.zeros((0, 0)), "loss": float("nan")}
    # Batches group rows by graph: put them back in the order asked for.
    position = {int(r): i for i, r in enumerate(np.concatenate(order))}
    back = np.array([position[int(r)] for r in rows])
    out = {}
    if with_logits:
        out = {"logits": np.concatenate(logits)[back], "loss": float(merged.compute()["loss"])}
    if with_embeddings:
        out["embeddings"] = np.concatenate(embeddings)[back]
    return out


def fit(
    model: nn.Module,
    data: batchers.Examples,
    split: dict[str, np.ndarray],
    config: TrainConfig,
    writer: metric_writers.MetricWriter | None = None,
    step_offset: int = 0,
    batcher=None,
    initial_params=None,
    progress: Callable[[dict], None] | None = None,
    embed_all: bool = False,
    memory_check: Callable | None = None,
    stop: Callable[[], bool] | None = None,
    checkpoints: epoch_checkpoints.EpochCheckpoints | None = None,
    step_progress: Callable[[str, int, int, str], None] | None = None,
) -> dict:
    """Trains `model` on one split with best-validation model selection.

    Args:
      model: a flax module called as ``model.apply(vars, inputs, aux, rows,
        deterministic=...)`` with an ``embed`` method (e.g. `codeprop.models.gnn.GCN`,
        `codeprop.models.heads.DecoderClassifier`).
      data: the example rows and their inputs (graphs or token sequences).
      split: row index arrays ``train``, ``validation``, ``test``.
      config: optimisation settings.
      writer: clu metric writer for per-epoch scalars (losses, accuracies), or None.
      step_offset: added to the epoch number when writing scalars (separates folds).
      batcher: makes the batches; None for a `batchers.GraphBatcher` sized for this split.
      initial_params: a function ``params -> params`` applied to the freshly initialised
        parameters (e.g. to put a pretrained decoder in), or None.
      progress: called after every epoch with its record (``epoch``, ``steps``, losses and
        accuracies; e.g. `codeprop.train.progress.Progress.epoch`), or None.
      embed_all: also embed the training and validation rows with the selected model.
      memory_check: called as ``memory_check(abstract_state, shardings, mesh)`` before
        the state is allocated (the LLM probe's memory plan), or None.
      stop: checked after every epoch but the last and between two jitted calls of steps
        inside an epoch; when it returns True (SIGTERM, `codeprop.train.preemption`) the
        fit raises `preemption.Preempted`.
      checkpoints: where the training state is saved (when due, and when `stop` stops
        the fit), after an epoch or between two calls inside one, and resumed from,
        exactly (`epoch_checkpoints`), or None.
      step_progress: called between two calls inside an epoch as
        ``step_progress('epoch 2/10', steps done, steps in the epoch, 'step')`` (e.g.
        `codeprop.train.progress.Progress.within`, for epochs of minutes or hours), or
        None.

    Returns:
      ``params`` (best), ``num_params``, ``best_epoch``, ``best_validation_accuracy``,
      ``history`` (per-epoch train loss and accuracy, validation loss and accuracy),
      ``test_logits`` [T, C], ``test_embeddings`` [T, D], ``budget`` (the padded batch
      sizes used) and, with `embed_all`, ``embeddings`` [n, D] of ``rows`` [n] (the split's
      training, validation and test rows, in that order).
    """

    if batcher is None:
        batcher = batchers.GraphBatcher.for_split(data, split, config.batch_size)
    first, _ = next(batcher.batches(split["train"][:1]))
    # Batches per epoch vary slightly with the shuffled order: the schedule is set from the
    # training rows in split order (a cosine schedule holds at zero past its end).
    per_epoch = -(-batcher.num_batches(split["train"]) // config.accumulation)  # steps
    learning_rate = steps.learning_rate_schedule(
        config.learning_rate,
        config.schedule,
        per_epoch * config.epochs,
        per_epoch * config.warmup_epochs,
    )
    where = placement.Placement.of(config.mesh)
    if config.mesh is not None:
        _check_placeable(batcher, where)
    state = where.init_state(
        model,
        first,
        config.seed,
        steps.adamw(learning_rate, config.weight_decay),
        initial_params,
        memory_check,
    )
    shuffle = np.random.default_rng(config.seed)
    best = {"accuracy": -1.0, "loss": np.inf, "epoch": 0, "params": state.params}
    history = []
    val_labels = data.labels[split["validation"]]
    per_call = None
    first_epoch = 1
    skip_calls, partial_metrics = 0, None  # of an epoch resumed in its middle
    resumed = checkpoints.restore(state, state.params) if checkpoints is not None else None
    if resumed is not None:
        state, best_params, saved = resumed
        best = _best_from_json(saved["best"]) | {"params": best_params}
        history, per_call = saved["history"], saved["per_call"]
        shuffle.bit_generator.state = saved["shuffle"]
        first_epoch = saved["epoch"] + 1
        if "partial" in saved:  # stopped inside epoch `first_epoch`
            skip_calls = saved["partial"]["calls"]
            partial_metrics = _metrics_from_json(saved["partial"]["metrics"])

    def save(state, epoch_done: int, shuffle_state: dict, partial: dict | None = None) -> None:
        """Saves `state` after `epoch_done` epochs, and `partial` calls of the next."""
        saved = {
            "epoch": epoch_done,
            "best": _best_to_json(best),
            "history": history,
            "per_call": per_call,
            "shuffle": shuffle_state,
        }
        if partial is not None:
            saved["partial"] = partial
        checkpoints.save(int(state.step), state, best["params"], saved)

    def between_calls(epoch: int, shuffled: dict, state_now, merged_now, calls: int) -> None:
        """Inside `epoch` (its permutation drawn from the generator state `shuffled`),
        after `calls` calls: progress, a save when due or stopping, and the stop."""
        done = calls * per_call
        if step_progress is not None:
            step_progress(f"epoch {epoch}/{config.epochs}", done, per_epoch, "step")
        stopping = stop is not None and stop()
        if checkpoints is not None and (stopping or checkpoints.due()):
            partial = {"calls": calls, "metrics": _metrics_to_json(merged_now)}
            save(state_now, epoch - 1, shuffled, partial)
        if stopping:
            raise preemption.Preempted(
                f"stopped in epoch {epoch} of {config.epochs}, after {done} of its "
                f"{per_epoch} steps"
            )

    for epoch in range(first_epoch, config.epochs + 1):
        epoch_shuffle = shuffle.bit_generator.state  # before this epoch's permutation
        order = shuffle.permutation(split["train"])
        if per_call is None:  # Fixed for the run (one compilation), from the first epoch.
            epoch_steps = -(-batcher.num_batches(order) // config.accumulation)
            per_call = min(config.steps_per_call, epoch_steps + 1)

        state, merged = train_epoch(
            state,
            batcher,
            order,
            per_call,
            config.accumulation,
            where,
            skip_calls=skip_calls,
            merged=partial_metrics,
            between_calls=functools.partial(between_calls, epoch, epoch_shuffle),
        )
        skip_calls, partial_metrics = 0, None
        computed = merged.compute()
        record = {
            "epoch": epoch,
            "train_loss": float(computed["loss"]),
            "train_accuracy": float(computed["accuracy"]),
        }
        if len(split["validation"]):
            val = evaluate(state, batcher, split["validation"], where=where)
            record["validation_loss"] = val["loss"]
            record["validation_accuracy"] = float(np.mean(val["logits"].argmax(-1) == val_labels))
            improved = _improves(record, best, config.selection)
        else:  # Without a validation split the last epoch is kept.
            improved = True
        history.append(record)
        if writer is not None:
            writer.write_scalars(
                step_offset + epoch, {k: v for k, v in record.items() if k != "epoch"}
            )
        if progress is not None:
            progress(record | {"steps": int(state.step)})
        if improved:
            best = {
                "accuracy": record.get("validation_accuracy", float("nan")),
                "loss": record.get("validation_loss", float("nan")),
                "epoch": epoch,
                "params": state.params,
            }
        stopping = stop is not None and epoch < config.epochs and stop()
        if checkpoints is not None and epoch < config.epochs and (stopping or checkpoints.due()):
            save(state, epoch, shuffle.bit_generator.state)
        if stopping:
            raise preemption.Preempted(f"stopped after epoch {epoch} of {config.epochs}")
    state = state.replace(params=best["params"])
    params = jax.device_get(best["params"])
    out = {
        "params": params,
        "num_params": gnn.num_params(params),
        "best_epoch": best["epoch"],
        "best_validation_accuracy": best["accuracy"],
        "history": history,
        "budget": batcher.describe(),
    }
    return out | embed_split(state, batcher, split, embed_all, where, step_progress)


def _best_to_json(best: dict) -> dict:
    """The best epoch's metrics as JSON (no infinities: the loss of no epoch yet)."""
    loss = best["loss"]
    return {"accuracy": best["accuracy"], "loss": None if np.isinf(loss) else loss,
            "epoch": best["epoch"]}  # fmt: skip


def _best_from_json(saved: dict) -> dict:
    return {
        "accuracy": saved["accuracy"],
        "loss": np.inf if saved["loss"] is None else saved["loss"],
        "epoch": saved["epoch"],
    }


def _check_placeable(batcher, where: placement.Placement) -> None:
    if not isinstance(batcher, batchers.SequenceBatcher):
        raise ValueError("TrainConfig.mesh places token-sequence batches (the LLM probe) only")
    if batcher.batch_size % where.rows_per_shard:
        raise ValueError(
            f"TrainConfig.batch_size {batcher.batch_size} is not a multiple of the mesh's "
            f"data x fsdp ({where.rows_per_shard})"
        )


def _embedding_pass(
    step_progress: Callable[[str, int, int, str], None] | None,
    stop: Callable[[], bool] | None = None,
) -> Callable[[int, int], None]:
    """`evaluate`'s ``after_batch`` for an embedding pass: its progress to `step_progress`
    and, with `stop`, `preemption.Preempted` after any batch but the last once it is
    True."""

    def after_batch(done: int, total: int) -> None:
        if step_progress is not None:
            step_progress("embedding", done, total, "row")
        if stop is not None and done < total and stop():
            raise preemption.Preempted(f"stopped while embedding, after {done} of {total} rows")

    return after_batch


def embed_split(
    state,
    batcher,
    split: dict[str, np.ndarray],
    embed_all: bool,
    where: placement.Placement = placement.DEFAULT,
    step_progress: Callable[[str, int, int, str], None] | None = None,
) -> dict:
    """``test_logits``, ``test_embeddings`` and, with `embed_all`, ``rows`` (training,
    validation and test rows) and their ``embeddings``, in one pass (its progress to
    `step_progress`, as `fit` says)."""
    rows = linear_head.concatenated(split)[0] if embed_all else np.asarray(split["test"])
    after = _embedding_pass(step_progress)
    out = evaluate(state, batcher, rows, with_embeddings=True, where=where, after_batch=after)
    num_test = len(split["test"])
    tail = slice(len(rows) - num_test, len(rows))
    result = {
        "test_logits": out["logits"][tail],
        "test_embeddings": out["embeddings"][tail] if num_test else out.get("embeddings"),
    }
    if embed_all:
        result.update(rows=rows, embeddings=out["embeddings"])
    return result


HEAD_NAMES = ("head", "score")
"""Names of the classification layers of codeprop's classifiers (`codeprop.models.gnn`,
`codeprop.models.rgcn`: ``head``; `codeprop.models.heads.DecoderClassifier`: ``score``)."""


def fit_frozen(
    model: nn.Module,
    data: batchers.Examples,
    split: dict[str, np.ndarray],
    config: TrainConfig,
    batcher=None,
    initial_params=None,
    embed_all: bool = False,
    regularisations: tuple[float, ...] = linear_head.REGULARISATIONS,
    memory_check: Callable | None = None,
    stop: Callable[[], bool] | None = None,
    step_progress: Callable[[str, int, int, str], None] | None = None,
    **unused,
) -> dict:
    """A frozen encoder read by a linear head: nothing of `model` is trained.

    The model's parameters are its initialisation from ``config.seed`` (a random-init
    baseline), or what `initial_params` puts in (a pretrained decoder). Every row of the
    split is embedded once — on ``config.mesh`` when it is set, the parameters split as
    in `fit` — the auxiliary inputs, when the data has them, are appended; and a
    logistic-regression head (`codeprop.train.linear_head`) is trained on the training
    rows with its L2 strength chosen on the validation rows. No optimizer state is made.

    Args:
      model, data, split, config, batcher, initial_params, embed_all, memory_check: as in
        `fit` (``config.epochs`` and the optimiser settings are not used).
      regularisations: the grid of the head's ``C``.
      stop: checked after every batch of the embedding pass but the last; when it
        returns True the fit raises `preemption.Preempted` (a frozen fit has no epochs
        to save or resume: a stopped one starts over).
      step_progress: the embedding pass's progress, ``step_progress('embedding', rows
        done, rows, 'row')``, or None.
      unused: `fit`'s writer, step offset, progress and checkpoints, accepted and ignored.

    Returns:
      As `fit`, with ``best_epoch`` 0, ``history`` the validation accuracy of each ``C``,
      ``regularisation`` the chosen one, and ``num_params`` the encoder's parameters
      (without its own, unused, classification layer) plus the head's.
    """
    del unused
    if batcher is None:
        batcher = batchers.GraphBatcher.for_split(data, split, config.batch_size)
    where = placement.Placement.of(config.mesh)
    if config.mesh is not None:
        _check_placeable(batcher, where)
    first, _ = next(batcher.batches(split["train"][:1]))
    state = where.init_state(
        model, first, config.seed, optax.set_to_zero(), initial_params, memory_check
    )
    rows, _ = linear_head.concatenated(split)
    after = _embedding_pass(step_progress, stop)
    embeddings = evaluate(state, batcher, rows, True, where, with_logits=False, after_batch=after)
    embeddings = embeddings["embeddings"]
    params = jax.device_get(state.params)
    encoder = {k: v for k, v in params.items() if k not in HEAD_NAMES}
    result = read_by_linear_head(
        embeddings, data.labels, data.aux, split, regularisations, gnn.num_params(encoder)
    )
    result.update(params=encoder, budget=batcher.describe())
    if not embed_all:
        del result["rows"], result["embeddings"]
    return result


def read_by_linear_head(
    embeddings: np.ndarray,
    labels: np.ndarray,
    aux: np.ndarray | None,
    split: dict[str, np.ndarray],
    regularisations: tuple[float, ...] = linear_head.REGULARISATIONS,
    encoder_params: int = 0,
) -> dict:
    """A fold's result (as `fit` returns it) from fixed embeddings and a linear head.

    Args:
      embeddings: [n, D] of the split's rows in `linear_head.concatenated` order
        (training, validation, test).
      labels: [N] of every row; aux: [N, A] auxiliary inputs appended to the embeddings,
        or None.
      split: the fold's row index arrays.
      regularisations: the grid of the head's ``C``, chosen on the validation rows.
      encoder_params: parameters of what made the embeddings (0 for a histogram).

    Returns:
      ``num_params`` (encoder and head), ``best_epoch`` 0, ``best_validation_accuracy``,
      ``regularisation``, ``history`` (per ``C``), ``test_logits``, ``test_embeddings``,
      ``rows`` and ``embeddings``.
    """
    rows, local = linear_head.concatenated(split)
    head = linear_head.fit_linear_head(
        _with_aux(embeddings, aux, rows), labels[rows], local, regularisations
    )
    return _read_result(head, embeddings, rows, local, encoder_params) | {
        "regularisation": head["regularisation"]
    }


def read_by_boosted_head(
    embeddings: np.ndarray,
    labels: np.ndarray,
    aux: np.ndarray | None,
    split: dict[str, np.ndarray],
    grid: tuple[dict, ...] = boosted_head.GRID,
    encoder_params: int = 0,
    seed: int = 0,
    combine: str = "best",
    choose_on: str = "validation",
) -> dict:
    """As `read_by_linear_head`, with gradient-boosted trees (`codeprop.train.boosted_head`,
    their setting chosen from `grid` on the validation rows or on `choose_on`, or with
    ``combine="mean"`` all of them averaged) for the head; ``head_setting`` holds the
    chosen setting instead of ``regularisation``."""
    rows, local = linear_head.concatenated(split)
    head = boosted_head.fit_boosted_head(
        _with_aux(embeddings, aux, rows),
        labels[rows],
        local,
        grid,
        seed,
        combine=combine,
        choose_on=choose_on,
    )
    return _read_result(head, embeddings, rows, local, encoder_params) | {
        "head_setting": head["setting"]
    }


def _with_aux(embeddings, aux, rows) -> np.ndarray:
    return embeddings if aux is None else np.concatenate([embeddings, aux[rows]], axis=1)


def _read_result(head: dict, embeddings, rows, local, encoder_params: int) -> dict:
    """A fold's result from a head fitted on fixed embeddings (no epochs)."""
    return {
        "num_params": encoder_params + head["num_params"],
        "best_epoch": 0,
        "best_validation_accuracy": head["validation_accuracy"],
        "history": head["history"],
        "test_logits": head["test_logits"],
        "test_embeddings": embeddings[local["test"]],
        "rows": rows,
        "embeddings": embeddings,
    }
