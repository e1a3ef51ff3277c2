"""Train and evaluate a graph classifier on one split: the jitted probe loop.

`fit` trains on ``split["train"]`` for a number of epochs, evaluates on
``split["validation"]`` after each, keeps the parameters of the best validation accuracy
(earliest on ties) and returns that model's test predictions and embeddings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import flax.linen as nn
import jax
import jraph
import numpy as np
from clu import metric_writers

from codeprop.graphs import batching
from codeprop.train import steps

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

    def __post_init__(self):
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, not {self.selection!r}")
        if self.steps_per_call < 1:
            raise ValueError("steps_per_call must be at least 1")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule must be 'constant' or 'cosine', not {self.schedule!r}")


@dataclasses.dataclass(frozen=True)
class Examples:
    """Example rows over (possibly shared) graphs.

    Attributes:
      graphs: the distinct graphs (with ``nodes["type"]`` model inputs).
      graph_of: [num rows] index into `graphs` of each row; rows with the same source
        (devmap: one kernel on several input sizes) share a graph, embedded once a batch.
        -1 marks a row without a graph (e.g. a program that did not compile): such rows
        must not be in any split.
      labels: [num rows] class of each row.
      aux: [num rows, A] auxiliary inputs, or None.
    """

    graphs: Sequence[jraph.GraphsTuple]
    graph_of: np.ndarray
    labels: np.ndarray
    aux: np.ndarray | None = None

    @classmethod
    def one_graph_per_row(cls, graphs, labels, aux=None) -> Examples:
        return cls(list(graphs), np.arange(len(graphs)), np.asarray(labels, np.int32), aux)


def row_budget(data: Examples, budget: batching.Budget) -> int:
    """Rows per batch: every real graph slot times the most rows sharing one graph."""
    most = int(np.bincount(data.graph_of[data.graph_of >= 0]).max())
    return (budget.n_graph - 1) * most


def graph_order(data: Examples, rows: np.ndarray) -> dict[int, list[int]]:
    """Rows grouped by graph, graphs in order of first appearance."""
    groups: dict[int, list[int]] = {}
    for r in rows:
        groups.setdefault(int(data.graph_of[r]), []).append(int(r))
    return groups


def num_batches(data: Examples, rows: np.ndarray, budget: batching.Budget) -> int:
    """How many batches `batches` makes of `rows`."""
    return len(batching.plan(data.graphs, budget, list(graph_order(data, rows))))


def batches(data: Examples, rows: np.ndarray, budget: batching.Budget, num_rows: int):
    """Padded batches of `rows`: their graphs packed once each, in first-appearance order.

    Yields:
      (batch, batch_rows): the batch dict (``inputs``, ``rows`` [R], ``labels`` [R],
      ``mask`` [R], ``aux`` [R, A]) and the example indices of its real rows, in order.
    """
    groups = graph_order(data, rows)
    for graph, slots in batching.pack(data.graphs, budget, list(groups)):
        # Padding rows read the padding graph, the last slot.
        batch, batch_rows = row_fields(data, groups, slots, num_rows, budget.n_graph - 1)
        yield {"inputs": graph, **batch}, batch_rows


def row_fields(data: Examples, groups: dict, slots: list[int], num_rows: int, pad_slot: int):
    """The row part of a batch whose input slots hold the graphs (or sequences) `slots`.

    Returns:
      (``rows`` [R] slot of each row, ``labels`` [R], ``mask`` [R] and ``aux`` [R, A] when
      the data has it; the example indices of the real rows, in order). Padding rows read
      ``pad_slot``.
    """
    batch_rows = np.concatenate([groups[g] for g in slots]).astype(np.int64)
    n = len(batch_rows)
    batch = {
        "rows": np.full(num_rows, pad_slot, np.int32),
        "labels": np.zeros(num_rows, np.int32),
        "mask": np.zeros(num_rows, bool),
    }
    batch["rows"][:n] = np.repeat(np.arange(len(slots)), [len(groups[g]) for g in slots])
    batch["labels"][:n] = data.labels[batch_rows]
    batch["mask"][:n] = True
    if data.aux is not None:
        batch["aux"] = np.zeros((num_rows, data.aux.shape[1]), np.float32)
        batch["aux"][:n] = data.aux[batch_rows]
    return batch, batch_rows


@dataclasses.dataclass(frozen=True)
class GraphBatcher:
    """Padded graph batches of example rows with a fixed budget (one compiled shape).

    The probe loop (`fit`, `train_epoch`, `evaluate`) takes any object with these two
    methods; `codeprop.probes.sequences.SequenceBatcher` is the token-sequence one.
    """

    data: Examples
    budget: batching.Budget
    num_rows: int

    @classmethod
    def for_split(cls, data: Examples, split: dict[str, np.ndarray], batch_size: int):
        """A budget from the training graphs that also holds every evaluation graph."""
        train = np.unique(data.graph_of[split["train"]])
        others = np.unique(data.graph_of[np.concatenate([split["validation"], split["test"]])])
        budget = batching.estimate_budget(
            [data.graphs[g] for g in train],
            batch_size,
            also_fit=[data.graphs[g] for g in others],
        )
        return cls(data, budget, row_budget(data, budget))

    def batches(self, rows: np.ndarray):
        """(batch, example indices of its real rows) for `rows`, in order; see `batches`."""
        return batches(self.data, rows, self.budget, self.num_rows)

    def num_batches(self, rows: np.ndarray) -> int:
        return num_batches(self.data, rows, self.budget)

    def describe(self) -> dict:
        return dataclasses.asdict(self.budget) | {"n_row": self.num_rows}


def _stack(items: list[dict], size: int) -> tuple[dict, np.ndarray]:
    """Stacks batches along a new axis, padded to `size` with inactive copies of the last.

    Returns:
      (stacked batches, [size] bool active flags).
    """
    active = np.arange(size) < len(items)
    items = items + [items[-1]] * (size - len(items))
    return jax.tree.map(lambda *leaves: np.stack(leaves), *items), active


def train_epoch(
    state: steps.TrainState,
    batcher: GraphBatcher,
    rows: np.ndarray,
    steps_per_call: int = 16,
) -> tuple[steps.TrainState, steps.ClassificationMetrics]:
    """One pass over `rows` in their order, `steps_per_call` steps per jitted call.

    Returns:
      The new state and the merged training metrics of the pass.
    """
    merged = None
    pending: list[dict] = []

    def flush(state, merged):
        stacked, active = _stack(pending, steps_per_call)
        state, m = steps.train_steps(state, stacked, active)
        pending.clear()
        return state, m if merged is None else merged.merge(m)

    for batch, _ in batcher.batches(rows):
        pending.append(batch)
        if len(pending) == steps_per_call:
            state, merged = flush(state, merged)
    if pending:
        state, merged = flush(state, merged)
    return state, merged


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


def evaluate(state, batcher: GraphBatcher, rows, with_embeddings=False) -> dict:
    """Logits [n, C] of `rows` (in that order), their mean loss, and optionally the graph
    embeddings [n, D] of each row."""
    rows = np.asarray(rows)
    logits, embeddings, order, merged = [], [], [], None
    for batch, batch_rows in batcher.batches(rows):
        batch_logits, m = steps.eval_step(state, batch)
        n = len(batch_rows)
        logits.append(np.asarray(batch_logits)[:n])
        order.append(batch_rows)
        merged = m if merged is None else merged.merge(m)
        if with_embeddings:
            graph_embeddings = np.asarray(steps.embed_step(state, batch))
            embeddings.append(graph_embeddings[batch["rows"][:n]])
    if not order:
        return {"logits": np.zeros((0, 0)), "embeddings": np.zeros((0, 0)), "loss": float("nan")}
    # Batches group rows by graph: put them back in the order asked for.
    position = {int(r): i for i, r in enumerate(np.concatenate(order))}
    back = np.array([position[int(r)] for r in rows])
    out = {"logits": np.concatenate(logits)[back], "loss": float(merged.compute()["loss"])}
    if with_embeddings:
        out["embeddings"] = np.concatenate(embeddings)[back]
    return out


def fit(
    model: nn.Module,
    data: Examples,
    split: dict[str, np.ndarray],
    config: TrainConfig,
    writer: metric_writers.MetricWriter | None = None,
    step_offset: int = 0,
    batcher=None,
    initial_params=None,
) -> dict:
    """Trains `model` on one split with best-validation model selection.

    Args:
      model: a flax module called as ``model.apply(vars, inputs, aux, rows,
        deterministic=...)`` with an ``embed`` method (e.g. `codeprop.models.gnn.GCN`,
        `codeprop.models.heads.DecoderClassifier`).
      data: the example rows and their graphs (or token sequences).
      split: row index arrays ``train``, ``validation``, ``test``.
      config: optimisation settings.
      writer: clu metric writer for per-epoch scalars (losses, accuracies), or None.
      step_offset: added to the epoch number when writing scalars (separates folds).
      batcher: makes the batches; None for a `GraphBatcher` sized for this split.
      initial_params: a function ``params -> params`` applied to the freshly initialised
        parameters (e.g. to put a pretrained decoder in), or None.

    Returns:
      ``params`` (best), ``best_epoch``, ``history`` (per-epoch train loss and accuracy,
      validation loss and accuracy), ``test_logits`` [T, C], ``test_embeddings`` [T, D]
      and ``budget`` (the padded batch sizes used).
    """

    if batcher is None:
        batcher = GraphBatcher.for_split(data, split, config.batch_size)
    first, _ = next(batcher.batches(split["train"][:1]))
    # Batches per epoch vary slightly with the shuffled order: the schedule is set from the
    # training rows in split order (a cosine schedule holds at zero past its end).
    per_epoch = batcher.num_batches(split["train"])
    learning_rate = steps.learning_rate_schedule(
        config.learning_rate,
        config.schedule,
        per_epoch * config.epochs,
        per_epoch * config.warmup_epochs,
    )
    state = steps.create_train_state(
        model, first, config.seed, steps.adamw(learning_rate, config.weight_decay)
    )
    if initial_params is not None:
        params = initial_params(state.params)
        state = state.replace(params=params, opt_state=state.tx.init(params))
    shuffle = np.random.default_rng(config.seed)
    best = {"accuracy": -1.0, "loss": np.inf, "epoch": 0, "params": state.params}
    history = []
    val_labels = data.labels[split["validation"]]
    per_call = None
    for epoch in range(1, config.epochs + 1):
        order = shuffle.permutation(split["train"])
        if per_call is None:  # Fixed for the run (one compilation), from the first epoch.
            per_call = min(config.steps_per_call, batcher.num_batches(order) + 1)
        state, merged = train_epoch(state, batcher, order, per_call)
        computed = merged.compute()
        record = {
            "epoch": epoch,
            "train_loss": float(computed["loss"]),
            "train_accuracy": float(computed["accuracy"]),
        }
        if len(split["validation"]):
            val = evaluate(state, batcher, split["validation"])
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
        if improved:
            best = {
                "accuracy": record.get("validation_accuracy", float("nan")),
                "loss": record.get("validation_loss", float("nan")),
                "epoch": epoch,
                "params": state.params,
            }
    state = state.replace(params=best["params"])
    test = evaluate(state, batcher, split["test"], with_embeddings=True)
    return {
        "params": jax.device_get(best["params"]),
        "best_epoch": best["epoch"],
        "history": history,
        "test_logits": test["logits"],
        "test_embeddings": test.get("embeddings"),
        "budget": batcher.describe(),
    }
