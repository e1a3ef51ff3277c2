"""Fixed-shape batches of example rows for the classifier loop (`codeprop.train.classifier`).

Examples are rows over shared inputs (`Examples`): devmap's 680 rows read 256 kernels, so
each batch holds each distinct input once and a row-to-input index. Two batchers make the
batches, with the same row fields (``rows`` [R], ``labels`` [R], ``mask`` [R], ``aux``
[R, A]) so one training loop serves both:

- `GraphBatcher`: padded `jraph.GraphsTuple`s with a fixed node/edge/graph budget;
- `SequenceBatcher`: [S, T] token ids, right-padded with the tokenizer's pad id.

Each batcher has `batches` (training: the rows' order, one shape) and `eval_batches`
(evaluation and embedding, whose results the loop puts back in the rows' order: the graph
batcher's are its `batches`; the sequence batcher's group sequences of similar length and
pad each batch only as far as it needs).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from codeprop.graphs import batching


@dataclasses.dataclass(frozen=True)
class Examples:
    """Example rows over (possibly shared) model inputs: graphs or token sequences.

    Attributes:
      inputs: the distinct inputs (`jraph.GraphsTuple`s with ``nodes["type"]``, or int32
        token arrays).
      input_of: [num rows] index into `inputs` of each row; rows with the same source
        (devmap: one kernel on several input sizes) share an input, embedded once a batch.
        -1 marks a row without an input (e.g. a program that did not compile): such rows
        must not be in any split.
      labels: [num rows] class of each row.
      aux: [num rows, A] auxiliary inputs, or None.
    """

    inputs: Sequence
    input_of: np.ndarray
    labels: np.ndarray
    aux: np.ndarray | None = None

    @classmethod
    def one_input_per_row(cls, inputs, labels, aux=None) -> Examples:
        return cls(list(inputs), np.arange(len(inputs)), np.asarray(labels, np.int32), aux)

    def most_rows_per_input(self) -> int:
        return int(np.bincount(self.input_of[self.input_of >= 0]).max())


def row_budget(data: Examples, budget: batching.Budget) -> int:
    """Rows per batch: every real graph slot times the most rows sharing one graph."""
    return (budget.n_graph - 1) * data.most_rows_per_input()


def input_order(data: Examples, rows: np.ndarray) -> dict[int, list[int]]:
    """Rows grouped by input, inputs in order of first appearance."""
    groups: dict[int, list[int]] = {}
    for r in rows:
        groups.setdefault(int(data.input_of[r]), []).append(int(r))
    return groups


def num_batches(data: Examples, rows: np.ndarray, budget: batching.Budget) -> int:
    """How many batches `batches` makes of `rows`."""
    return len(batching.plan(data.inputs, budget, list(input_order(data, rows))))


def batches(data: Examples, rows: np.ndarray, budget: batching.Budget, num_rows: int):
    """Padded batches of `rows`: their graphs packed once each, in first-appearance order.

    Yields:
      (batch, batch_rows): the batch dict (``inputs``, ``rows`` [R], ``labels`` [R],
      ``mask`` [R], ``aux`` [R, A]) and the example indices of its real rows, in order.
    """
    groups = input_order(data, rows)
    for graph, slots in batching.pack(data.inputs, budget, list(groups)):
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

    The classifier loop (`codeprop.train.classifier`) takes any object with the methods
    `batches`, `eval_batches`, `num_batches` and `describe`; `SequenceBatcher` is the
    token-sequence one.
    """

    data: Examples
    budget: batching.Budget
    num_rows: int

    @classmethod
    def for_split(cls, data: Examples, split: dict[str, np.ndarray], batch_size: int):
        """A budget from the training graphs that also holds every evaluation graph."""
        train = np.unique(data.input_of[split["train"]])
        others = np.unique(data.input_of[np.concatenate([split["validation"], split["test"]])])
        budget = batching.estimate_budget(
            [data.inputs[g] for g in train],
            batch_size,
            also_fit=[data.inputs[g] for g in others],
        )
        return cls(data, budget, row_budget(data, budget))

    def batches(self, rows: np.ndarray):
        """(batch, example indices of its real rows) for `rows`, in order; see `batches`."""
        return batches(self.data, rows, self.budget, self.num_rows)

    def eval_batches(self, rows: np.ndarray):
        """As `batches` (one compiled shape)."""
        return self.batches(rows)

    def num_batches(self, rows: np.ndarray) -> int:
        return num_batches(self.data, rows, self.budget)

    def describe(self) -> dict:
        return dataclasses.asdict(self.budget) | {"n_row": self.num_rows}


@dataclasses.dataclass(frozen=True)
class SequenceBatcher:
    """Batches of up to ``batch_size`` distinct sequences, padded to one length.

    Attributes:
      data: rows over token sequences (`Examples` whose inputs are int32 arrays).
      batch_size: S, sequences per batch.
      length: T, the padded length (the longest sequence).
      pad_id: the padding token.
      num_rows: R, rows per batch (S times the most rows sharing one sequence).
      length_multiple: `eval_batches` pads a batch to its longest sequence rounded up to
        a multiple of this (at most `length`), so that it compiles at most
        ``length / length_multiple`` shapes. The default is the decoder's attention query
        block (`DecoderConfig.attention_query_chunk`), so every query sees the same key
        blocks as at full length. Each sequence's logits and embeddings then equal those
        at full length up to float rounding (tested): on XLA:CPU bitwise for the code LM
        and tiny decoders at S = 32, within 3e-6 at S = 16, where the matmuls' kernels
        depend on the padded shape.
    """

    data: Examples
    batch_size: int
    length: int
    pad_id: int
    num_rows: int
    length_multiple: int = 64

    @classmethod
    def for_data(cls, data: Examples, batch_size: int, pad_id: int):
        length = max(len(s) for s in data.inputs)
        return cls(data, batch_size, length, pad_id, batch_size * data.most_rows_per_input())

    def batches(self, rows: np.ndarray):
        """(batch, example indices of its real rows) for ``rows``, in first-appearance order;
        every batch [S, `length`]."""
        groups = input_order(self.data, rows)
        yield from self._batches(groups, list(groups), by_length=False)

    def eval_batches(self, rows: np.ndarray):
        """As `batches`, but the sequences longest first and each batch [S, T_b] with T_b
        its longest sequence rounded up to `length_multiple` (at most `length`).

        For evaluation and embedding, whose results are put back in the rows' order: on
        POJ-104 (mean 279 of at most 512 code-LM tokens) this runs 61% of the tokens.
        """
        groups = input_order(self.data, rows)
        order = sorted(groups, key=lambda g: -len(self.data.inputs[g]))  # stable
        yield from self._batches(groups, order, by_length=True)

    def _batches(self, groups: dict, order: list[int], by_length: bool):
        for first in range(0, len(order), self.batch_size):
            slots = order[first : first + self.batch_size]
            length = self.length
            if by_length:
                longest = max(len(self.data.inputs[g]) for g in slots)
                multiple = self.length_multiple
                length = min(self.length, max(1, -(-longest // multiple)) * multiple)
            tokens = np.full((self.batch_size, length), self.pad_id, np.int32)  # [S, T]
            for slot, sequence in enumerate(slots):
                ids = self.data.inputs[sequence]
                tokens[slot, : len(ids)] = ids
            batch, batch_rows = row_fields(self.data, groups, slots, self.num_rows, 0)
            yield {"inputs": tokens, **batch}, batch_rows

    def num_batches(self, rows: np.ndarray) -> int:
        return -(-len(np.unique(self.data.input_of[rows])) // self.batch_size)

    def describe(self) -> dict:
        return {"n_sequence": self.batch_size, "length": self.length, "n_row": self.num_rows}
