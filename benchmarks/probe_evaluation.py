"""LLM-probe evaluation (and frozen embedding) throughput on POJ-104's real program lengths:
codeprop's `classifier.evaluate` with sequences grouped by length against the same with
every batch padded to full length, and against transformers' sequence-classification
forward with batches padded to their longest sequence in data order (what its
`DataCollatorWithPadding` does), in one process.

The decoder is the code LM's architecture (`gin/experiments/code_lm.gin`: 6 layers, width
256, GQA 8/2, RoPE) with a 104-class head on the last token, random weights (the time does
not depend on them); the programs are the first ``--programs`` of POJ-104's archive,
tokenized with ``--tokenizer`` (the code LM's by default) and cut at 512 tokens as the
probe does. Each side runs one untimed pass (compilation) and then ``--repeats`` timed
passes, taking turns; reported: seconds of the fastest pass and real tokens/s.

    CODEPROP_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/probe_evaluation.py \
        --tokenizer workdir/code_lm/hf/tokenizer.json --out /tmp/bench/probe_eval.json
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import tarfile
import time

import jax
import numpy as np
import optax
import timing
import torch
import transformers
from decoder_training import starcoder2_config

from codeprop.models import decoder, heads
from codeprop.tokens import tokenization
from codeprop.train import batchers, classifier, host_memory, placement

# code_lm.gin's decoder: tiny's 2 KV groups and 2,048 positions, wider and deeper.
CODE_LM = decoder.tiny(8192).replace(embed_dim=256, mlp_dim=1024, num_layers=6, num_heads=8)


def programs(data_dir: pathlib.Path, n: int) -> list[str]:
    """The first `n` programs of POJ-104's archive, in archive order."""
    path = data_dir / "poj104" / "poj104_programs.tar.gz"
    out = []
    with tarfile.open(path) as archive:
        for member in archive:
            if member.isfile():
                out.append(archive.extractfile(member).read().decode("utf-8", "replace"))
                if len(out) == n:
                    break
    if len(out) < n:
        raise ValueError(f"{path}: {len(out)} programs, fewer than the {n} asked for")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--programs", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max_tokens", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tokenizer", default="workdir/code_lm/hf/tokenizer.json")
    parser.add_argument("--data_dir", default=os.environ.get("CODEPROP_DATA_DIR", "data"))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    host_memory.keep_freed_memory()
    tok = tokenization.load(args.tokenizer)
    sequences = [
        np.asarray(tok.encode(p)[: args.max_tokens], np.int32)
        for p in programs(pathlib.Path(args.data_dir), args.programs)
    ]
    lengths = np.array([len(s) for s in sequences])
    rows = np.arange(len(sequences))
    data = batchers.Examples.one_input_per_row(sequences, rows % 104)
    by_length = batchers.SequenceBatcher.for_data(data, args.batch, tok.pad_id)
    full = dataclasses.replace(by_length, length_multiple=by_length.length)
    config = CODE_LM.replace(vocab_size=max(CODE_LM.vocab_size, tok.vocab_size))
    model = heads.DecoderClassifier(config, 104, pad_id=tok.pad_id)
    first, _ = next(by_length.batches(rows[:1]))
    state = placement.DEFAULT.init_state(model, first, 0, optax.set_to_zero())

    hf_config = starcoder2_config(config, num_labels=104, pad_token_id=tok.pad_id)
    torch.manual_seed(0)
    hf = transformers.Starcoder2ForSequenceClassification(hf_config).float().eval()
    hf.config._attn_implementation = "sdpa"
    hf_batches = []
    for start in range(0, len(sequences), args.batch):
        chunk = sequences[start : start + args.batch]
        tokens = np.full((len(chunk), max(len(s) for s in chunk)), tok.pad_id, np.int64)
        for i, s in enumerate(chunk):
            tokens[i, : len(s)] = s
        hf_batches.append(torch.from_numpy(tokens))

    def hf_pass():
        with torch.no_grad():
            for tokens in hf_batches:
                hf(tokens)

    runners = {
        "codeprop, grouped by length (eval_batches)": lambda: classifier.evaluate(
            state, by_length, rows
        ),
        "codeprop, every batch at full length": lambda: classifier.evaluate(state, full, rows),
        "transformers sdpa, padded to each batch's longest": hf_pass,
    }
    seconds = {name: [] for name in runners}
    for repeat in range(1 + args.repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            jax.block_until_ready(run())
            if repeat:
                seconds[name].append(time.perf_counter() - start)
    padded = {
        "codeprop, grouped by length (eval_batches)": sum(
            b["inputs"].size for b, _ in by_length.eval_batches(rows)
        ),
        "codeprop, every batch at full length": sum(
            b["inputs"].size for b, _ in full.eval_batches(rows)
        ),
        "transformers sdpa, padded to each batch's longest": sum(b.numel() for b in hf_batches),
    }
    real = int(lengths.sum())
    result = {
        "machine": timing.machine(),
        "programs": len(sequences),
        "batch": args.batch,
        "real_tokens": real,
        "mean_length": round(float(lengths.mean()), 1),
        "rows": {
            name: {
                "seconds": round(min(times), 3),
                "real_tokens_per_s": round(real / min(times)),
                "padded_tokens": padded[name],
            }
            for name, times in seconds.items()
        },
    }
    timing.emit(result, args.out)


if __name__ == "__main__":
    main()
