"""Cached generation throughput: codeprop (jitted prefill + while-loop decode) against
Hugging Face transformers' ``generate`` with its KV cache, the same weights, greedy.

The model is a tiny random StarCoder2 (the CodeShell architecture: GQA, RoPE, LayerNorm,
GELU-tanh, biases) built by transformers and imported into codeprop with
`codeprop.checkpoints.hf.load`; both decode the same prompts for the same number of new
tokens (no early stop), and the run checks that they produce the same tokens.

    .venv/bin/python benchmarks/decoder_generation.py --out /tmp/bench/generation.json
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import timing
import torch
import transformers

from codeprop.checkpoints import hf
from codeprop.models import generation


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--prompt_len", type=int, default=128)
    parser.add_argument("--new_tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    config = transformers.Starcoder2Config(
        vocab_size=8192, hidden_size=128, intermediate_size=512, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, use_bias=True,
        tie_word_embeddings=True, bos_token_id=0, eos_token_id=0, pad_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.Starcoder2ForCausalLM(config).float().eval()
    with tempfile.TemporaryDirectory() as path:
        model.save_pretrained(path)
        our_config, params = hf.load(path)
    prompts = np.random.default_rng(0).integers(1, 8192, size=(args.batch, args.prompt_len))
    sampling = generation.SamplingConfig(max_new_tokens=args.new_tokens)

    def ours():
        return generation.generate(our_config, params, prompts.tolist(), sampling)

    def theirs():
        with torch.no_grad():
            ids = torch.from_numpy(prompts)
            return model.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.new_tokens,
                min_new_tokens=args.new_tokens, do_sample=False, use_cache=True, pad_token_id=0,
            )  # fmt: skip

    ours()  # compile
    theirs()  # warm up
    times = {"codeprop": [], "transformers": []}
    for _ in range(args.repeats):  # interleaved
        for name, fn in (("codeprop", ours), ("transformers", theirs)):
            start = time.perf_counter()
            result = fn()
            times[name].append(time.perf_counter() - start)
            if name == "codeprop":
                our_tokens = np.array(result.tokens)
            else:
                their_tokens = result[:, args.prompt_len :].numpy()
    new = args.batch * args.new_tokens
    out = {
        "machine": timing.machine(),
        "batch": args.batch,
        "prompt_len": args.prompt_len,
        "new_tokens": args.new_tokens,
        "same_tokens_fraction": float((our_tokens == their_tokens).mean()),
    }
    for name, values in times.items():
        out[name] = {"seconds": round(statistics.median(values), 3),
                     "new_tokens_per_s": round(new / statistics.median(values), 1)}  # fmt: skip
    out["speedup"] = round(
        out["codeprop"]["new_tokens_per_s"] / out["transformers"]["new_tokens_per_s"], 2
    )
    timing.emit(out, args.out)


if __name__ == "__main__":
    main()
