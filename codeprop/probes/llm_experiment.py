"""LLM-probe experiments: benchmark -> tokens -> folds -> decoder + classification head.

`run_llm_probe` is the gin entry point for the LLM arm of the comparison (see
``gin/experiments/*_decoder_*.gin``). The decoder is either trained from scratch from a
`DecoderConfig` or starts from a checkpoint (`codeprop.checkpoints.hf.load`), and the
whole model is fine-tuned with a linear head on the pooled final hidden states
(`codeprop.models.heads.DecoderClassifier`), under the same splits, seeds, metrics and
output files as the graph probes (`codeprop.probes.experiment`): ``results.json``,
``results.md``, ``embeddings.npz`` (the pooled test embeddings) and ``metrics/``.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import time

import numpy as np
from absl import logging
from clu import metric_writers

from codeprop.checkpoints import hf
from codeprop.data import benchmarks, tokenization
from codeprop.models import decoder as decoder_lib
from codeprop.models import heads
from codeprop.probes import experiment, graph_probe, report, sequences


def run_llm_probe(
    *,
    workdir: str | os.PathLike,
    benchmark: str,
    train: graph_probe.TrainConfig,
    decoder: decoder_lib.DecoderConfig | None = None,
    checkpoint: str | None = None,
    tokenizer: str = "bytes",
    max_tokens: int = 512,
    pooling: str = "last",
    protocol: str = "kfold",
    num_folds: int = 10,
    split_seed: int = 204,
    max_folds: int | None = None,
    aux_inputs: bool = False,
    source_field: str | None = None,
    raw_dir: str | None = None,
) -> dict:
    """Fine-tunes a decoder with a classification head on a benchmark; writes the results.

    Args:
      workdir: output directory (created).
      benchmark: ``devmap/amd``, ``devmap/nvidia`` or ``poj104``.
      train: optimisation settings (``batch_size`` counts sequences).
      decoder: the architecture when training from scratch; ignored with a checkpoint.
      checkpoint: a Hugging Face checkpoint directory to start from, or None.
      tokenizer: ``'bytes'`` or a tokenizer.json path (a checkpoint's own tokenizer).
      max_tokens: sources are truncated to their first ``max_tokens`` tokens (counted).
      pooling: ``'last'`` (last non-pad token, as transformers) or ``'mean'``.
      protocol, num_folds, split_seed, max_folds, aux_inputs, source_field, raw_dir: as in
        `codeprop.probes.experiment.run_graph_probe`.

    Returns:
      The results dict also written to ``workdir/results.json``.
    """
    if decoder is None and checkpoint is None:
        raise ValueError("give a decoder config (training from scratch) or a checkpoint")
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    bench = benchmarks.load(benchmark, raw_dir=raw_dir)
    if aux_inputs and not bench.platform:
        raise ValueError("aux_inputs are devmap's transfer and wgsize; not available for POJ-104")
    pretrained = None
    if checkpoint is not None:
        decoder, pretrained = hf.load(checkpoint)
    tok = tokenization.load(tokenizer)
    if tok.vocab_size > decoder.vocab_size:
        raise ValueError(
            f"tokenizer {tokenizer!r} has {tok.vocab_size} tokens; the decoder only "
            f"{decoder.vocab_size}"
        )
    if decoder.position_embedding == "learned" and max_tokens > decoder.max_positions:
        raise ValueError(
            f"max_tokens {max_tokens} > the decoder's {decoder.max_positions} positions"
        )
    built = sequences.tokenize_benchmark(
        bench, tok, max_tokens, lambda b, e: experiment.source_of(b, e, source_field)
    )
    logging.info("sequences: %s", built["report"])
    labels = np.array(bench.labels, np.int32)
    model = heads.DecoderClassifier(
        decoder,
        bench.num_classes,
        pad_id=tok.pad_id,
        pooling=pooling,
        num_aux=2 if aux_inputs else 0,
    )
    initial = None
    if pretrained is not None:
        initial = lambda params: {**params, "decoder": pretrained}  # noqa: E731
    writer = metric_writers.create_default_writer(str(workdir / "metrics"), just_logging=False)
    folds, embeddings = [], []
    test_fold = np.full(len(labels), -1, np.int32)
    for i, split in enumerate(
        experiment.make_splits(labels, protocol, num_folds, split_seed)[:max_folds]
    ):
        start = time.perf_counter()
        data = graph_probe.Examples(
            built["sequences"],
            built["graph_of"],
            labels,
            experiment.aux_inputs_of(bench.examples, split["train"]) if aux_inputs else None,
        )
        batcher = sequences.SequenceBatcher.for_data(data, train.batch_size, tok.pad_id)
        result = graph_probe.fit(
            model,
            data,
            split,
            train,
            writer=writer,
            step_offset=i * (train.epochs + 1),
            batcher=batcher,
            initial_params=initial,
        )
        fold = experiment.fold_record(i, split, bench, result, start)
        folds.append(fold)
        test_fold[split["test"]] = i
        embeddings.append((split["test"], result["test_embeddings"]))
        logging.info("fold %d: %s", i, {k: fold[k] for k in ("accuracy", "f1", "best_epoch")})
    writer.flush()
    name = f"decoder ({'checkpoint' if checkpoint else 'from scratch'}, {pooling} pooling)"
    results = {
        "benchmark": benchmark,
        "representation": "tokens",
        "model": name + (" + aux inputs" if aux_inputs else ""),
        "protocol": protocol,
        "num_folds_run": len(folds),
        "split_seed": split_seed,
        "settings": {
            "decoder": dataclasses.asdict(decoder),
            "checkpoint": checkpoint,
            "tokenizer": tokenizer,
            "train": vars(train),
            "aux_inputs": aux_inputs,
        },
        "data": {"benchmark": bench.report, "sequences": built["report"]},
        "folds": folds,
        "aggregate": report.aggregate(folds),
    }
    experiment.write_results(workdir, results, embeddings, labels, test_fold)
    return results
