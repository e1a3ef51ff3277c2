"""Token sequences of benchmark sources and their padded batches for the probe loop.

`tokenize_benchmark` encodes each distinct source once (devmap rows share a kernel);
`SequenceBatcher` packs rows into fixed-shape batches — [S, T] tokens, right-padded with
the tokenizer's pad id — with the same row fields as graph batches, so
`codeprop.probes.graph_probe.fit` trains a `codeprop.models.heads.DecoderClassifier` on
them unchanged.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from codeprop.data import benchmarks
from codeprop.probes import graph_probe


def tokenize_benchmark(bench: benchmarks.Benchmark, tokenizer, max_tokens: int, source_of) -> dict:
    """Token ids of every distinct source, truncated to the first ``max_tokens``.

    Returns:
      ``sequences`` (int32 arrays), ``graph_of`` [num examples] (each example's sequence)
      and a report: examples, distinct sources, truncated sources, token counts, seconds.
    """
    index: dict[str, int] = {}
    sequences, graph_of, full_lengths = [], [], []
    start = time.perf_counter()
    for example in bench.examples:
        text = source_of(bench, example)
        if text not in index:
            index[text] = len(sequences)
            ids = tokenizer.encode(text)
            if not ids:
                ids = [tokenizer.pad_id]  # An empty source: one pad token, pooled as is.
            full_lengths.append(len(ids))
            sequences.append(np.asarray(ids[:max_tokens], np.int32))
        graph_of.append(index[text])
    lengths = np.array(full_lengths)
    report = {
        "examples": len(graph_of),
        "distinct_sources": len(sequences),
        "max_tokens": max_tokens,
        "truncated_sources": int((lengths > max_tokens).sum()),
        "tokens_mean": round(float(lengths.mean()), 1),
        "tokens_max": int(lengths.max()),
        "seconds": round(time.perf_counter() - start, 2),
    }
    return {"sequences": sequences, "graph_of": np.array(graph_of), "report": report}


@dataclasses.dataclass(frozen=True)
class SequenceBatcher:
    """Batches of up to ``batch_size`` distinct sequences, padded to one length.

    Attributes:
      data: rows over token sequences (`graph_probe.Examples` with sequences as graphs).
      batch_size: S, sequences per batch.
      length: T, the padded length (the longest sequence).
      pad_id: the padding token.
      num_rows: R, rows per batch (S times the most rows sharing one sequence).
    """

    data: graph_probe.Examples
    batch_size: int
    length: int
    pad_id: int
    num_rows: int

    @classmethod
    def for_data(cls, data: graph_probe.Examples, batch_size: int, pad_id: int):
        length = max(len(s) for s in data.graphs)
        most = int(np.bincount(data.graph_of[data.graph_of >= 0]).max())
        return cls(data, batch_size, length, pad_id, batch_size * most)

    def batches(self, rows: np.ndarray):
        """(batch, example indices of its real rows) for ``rows``, in first-appearance order."""
        groups = graph_probe.graph_order(self.data, rows)
        order = list(groups)
        for first in range(0, len(order), self.batch_size):
            slots = order[first : first + self.batch_size]
            tokens = np.full((self.batch_size, self.length), self.pad_id, np.int32)  # [S, T]
            for slot, sequence in enumerate(slots):
                ids = self.data.graphs[sequence]
                tokens[slot, : len(ids)] = ids
            batch, batch_rows = graph_probe.row_fields(self.data, groups, slots, self.num_rows, 0)
            yield {"inputs": tokens, **batch}, batch_rows

    def num_batches(self, rows: np.ndarray) -> int:
        return -(-len(np.unique(self.data.graph_of[rows])) // self.batch_size)

    def describe(self) -> dict:
        return {"n_sequence": self.batch_size, "length": self.length, "n_row": self.num_rows}
