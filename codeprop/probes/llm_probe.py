"""LLM probes: benchmark -> tokens -> decoder + classification head, under the protocol.

`run_llm_probe` is the gin entry point for the LLM arm of the comparison
(``gin/runs/llm_probe.gin``, ``gin/experiments/*_decoder_*.gin``). The decoder is either
trained from scratch from a `DecoderConfig` or starts from a checkpoint
(`codeprop.checkpoints.hf.load`), and the whole model is fine-tuned with a linear head on
the pooled final hidden states (`codeprop.models.heads.DecoderClassifier`). Splits,
training, metrics and the result files (the pooled test embeddings in ``embeddings.npz``)
are `codeprop.probes.protocol`'s, the same as the graph probes'.

At scale: ``dtype='bfloat16'`` computes in bfloat16 with float32 master weights and
optimizer state, ``remat`` rematerialises each block in the backward pass,
``classifier.TrainConfig.accumulation`` accumulates micro-batches and
``classifier.TrainConfig.mesh`` shards the model over a device mesh. Before the state is
allocated, every fine-tuning run prints its memory plan per device
(`codeprop.train.memory_plan`) and refuses, with the plan, one that does not fit.
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np
from absl import logging

from codeprop.checkpoints import hf, hf_config
from codeprop.data import benchmarks
from codeprop.models import decoder as decoder_lib
from codeprop.models import heads
from codeprop.probes import protocol as protocol_lib
from codeprop.tokens import tokenization
from codeprop.train import batchers, classifier, memory_plan


def tokenize_benchmark(bench: benchmarks.Benchmark, tokenizer, max_tokens: int, source_of) -> dict:
    """Token ids of every distinct source, truncated to the first ``max_tokens``.

    Args:
      bench: the benchmark.
      tokenizer: a `codeprop.tokens.tokenization` tokenizer.
      max_tokens: the most tokens kept of a source (its start).
      source_of: ``(bench, example) -> source text``.

    Returns:
      ``sequences`` (int32 arrays), ``input_of`` [num examples] (each example's sequence)
      and a report: examples, distinct sources, truncated sources, token counts, seconds.
    """
    index: dict[str, int] = {}
    sequences, input_of, full_lengths = [], [], []
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
        input_of.append(index[text])
    lengths = np.array(full_lengths)
    report = {
        "examples": len(input_of),
        "distinct_sources": len(sequences),
        "max_tokens": max_tokens,
        "truncated_sources": int((lengths > max_tokens).sum()),
        "tokens_mean": round(float(lengths.mean()), 1),
        "tokens_max": int(lengths.max()),
        "seconds": round(time.perf_counter() - start, 2),
    }
    return {"sequences": sequences, "input_of": np.array(input_of), "report": report}


def run_llm_probe(
    *,
    workdir: str | os.PathLike,
    benchmark: str,
    train: classifier.TrainConfig,
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
    frozen: bool = False,
    dtype: str | None = None,
    remat: str | None = None,
    device_memory_gib: float | None = None,
    checkpoint_every: float = 600.0,
) -> dict:
    """Fine-tunes a decoder with a classification head on a benchmark; writes the results.

    Args:
      workdir: output directory (created).
      benchmark: ``devmap/amd``, ``devmap/nvidia`` or ``poj104``.
      train: optimisation settings (``batch_size`` counts sequences).
      decoder: the architecture when training from scratch; with a checkpoint, the
        architecture the checkpoint must have (its config.json is checked against it and
        every difference named), or None to take the checkpoint's as it is.
      checkpoint: a Hugging Face checkpoint directory to start from, or None.
      tokenizer: ``'bytes'`` or a tokenizer.json path (a checkpoint's own tokenizer).
      max_tokens: sources are truncated to their first ``max_tokens`` tokens (counted).
      pooling: ``'last'`` (last non-pad token, as transformers) or ``'mean'``.
      protocol, num_folds, split_seed, max_folds, aux_inputs, source_field, raw_dir: as in
        `codeprop.probes.graph_probe.run_graph_probe`.
      frozen: no fine-tuning: the decoder keeps the checkpoint's weights (or its random
        initialisation from ``train.seed``) and a linear head is trained on its pooled
        embeddings (`codeprop.train.classifier.fit_frozen`).
      dtype: the decoder's computation dtype (e.g. ``'bfloat16'``), replacing the config's
        or the checkpoint's; parameters stay float32. None keeps it.
      remat: the decoder's rematerialisation per block (``'none'``, ``'dots'``,
        ``'full'``), replacing the config's; None keeps it.
      device_memory_gib: the memory per device the plan must fit, in GiB; None takes
        what the device reports (accelerators do, CPUs do not: then nothing is refused).
      checkpoint_every: least seconds of training between two saves of an unfinished
        fold's training state, from which the same command resumes it (0: every epoch).

    Returns:
      The results dict also written to ``workdir/results.json``.
    """
    if decoder is None and checkpoint is None:
        raise ValueError("give a decoder config (training from scratch) or a checkpoint")
    bench = benchmarks.load(benchmark, raw_dir=raw_dir)
    protocol_lib.check_aux_inputs(bench, aux_inputs)
    pretrained = None
    if checkpoint is not None:
        named = decoder
        decoder, pretrained = hf.load(checkpoint)
        if named is not None and (diff := hf_config.differences(named, decoder)):
            raise ValueError(
                f"{checkpoint}/config.json is not the model the gin file names "
                f"(llm_probe.run_llm_probe.decoder): {'; '.join(diff)}"
            )
    numerics = {"dtype": dtype, "remat": remat}
    decoder = decoder.replace(**{k: v for k, v in numerics.items() if v is not None})
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
    built = tokenize_benchmark(
        bench, tok, max_tokens, lambda b, e: protocol_lib.source_of(b, e, source_field)
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

    planned = []

    def fit_fold(split, aux, fit_kwargs):
        data = batchers.Examples(built["sequences"], built["input_of"], labels, aux)
        batcher = batchers.SequenceBatcher.for_data(data, train.batch_size, tok.pad_id)
        if frozen:
            result = classifier.fit_frozen(
                model, data, split, train, batcher=batcher, initial_params=initial, **fit_kwargs
            )
            return result, {}

        def check(abstract, shardings, mesh):
            capacity = -1 if device_memory_gib is None else int(device_memory_gib * 2**30)
            plan = memory_plan.plan(
                decoder,
                abstract.params,
                shardings.params,
                abstract.opt_state,
                shardings.opt_state,
                mesh,
                batch_size=train.batch_size * train.accumulation,
                seq_len=batcher.length,
                accumulation=train.accumulation,
                capacity=capacity,
            )
            if not planned:  # once per run: every fold plans the same
                print(plan.table(), flush=True)
                planned.append(plan)
            memory_plan.check(plan)

        result = classifier.fit(
            model,
            data,
            split,
            train,
            batcher=batcher,
            initial_params=initial,
            memory_check=check,
            **fit_kwargs,
        )
        return result, {}

    start = "checkpoint" if checkpoint else ("random init" if frozen else "from scratch")
    name = f"decoder ({start}, {'frozen, linear head, ' if frozen else ''}{pooling} pooling)"
    return protocol_lib.run(
        workdir=workdir,
        bench=bench,
        input_of=built["input_of"],
        fit_fold=fit_fold,
        train=train,
        header={
            "representation": "tokens",
            "model": name,
            "settings": {
                "decoder": dataclasses.asdict(decoder),
                "checkpoint": checkpoint,
                "tokenizer": tokenizer,
                "pooling": pooling,
                "frozen": frozen,
            },
            "data": {"sequences": built["report"]},
        },
        protocol=protocol,
        num_folds=num_folds,
        split_seed=split_seed,
        max_folds=max_folds,
        aux_inputs=aux_inputs,
        checkpoint_every=checkpoint_every,
    )
