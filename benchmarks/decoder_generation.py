"""Cached generation throughput: codeprop (jitted prefill + while-loop decode) against
Hugging Face transformers' ``generate`` with its KV cache, the same weights and settings.

The model is a tiny random StarCoder2 (the CodeShell architecture: GQA, RoPE, LayerNorm,
GELU-tanh, biases) built by transformers and imported into codeprop with
`codeprop.checkpoints.hf.load`, or with ``--checkpoint`` a Hugging Face directory that
both load (the code LM's standalone export, ``workdir/code_lm/hf``). Both decode the same
prompts for the same number of new tokens (no early stop), greedy (the run checks that both
produce the same tokens) and sampled (temperature 0.8, top-p 0.95, as code evaluations
sample; tokens differ between the two random generators).

    .venv/bin/python benchmarks/decoder_generation.py --out /tmp/bench/generation.json
    .venv/bin/python benchmarks/decoder_generation.py --checkpoint workdir/code_lm/hf \
        --batch 16 --out /tmp/bench/generation_code_lm.json
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
    parser.add_argument("--checkpoint", default=None, help="Hugging Face directory")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--prompt_len", type=int, default=128)
    parser.add_argument("--new_tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.checkpoint:
        model = transformers.AutoModelForCausalLM.from_pretrained(args.checkpoint)
        our_config, params = hf.load(args.checkpoint)
    else:
        config = transformers.Starcoder2Config(
            vocab_size=8192, hidden_size=128, intermediate_size=512, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, use_bias=True,
            tie_word_embeddings=True, bos_token_id=0, eos_token_id=0, pad_token_id=0,
        )  # fmt: skip
        model = transformers.Starcoder2ForCausalLM(config)
        with tempfile.TemporaryDirectory() as path:
            model.save_pretrained(path)
            our_config, params = hf.load(path)
    model = model.float().eval()
    vocab = our_config.vocab_size
    prompts = np.random.default_rng(0).integers(1, vocab, size=(args.batch, args.prompt_len))
    modes = {"greedy": {}, "sampled": {"temperature": 0.8, "top_p": 0.95}}
    out = {
        "machine": timing.machine(),
        "model": args.checkpoint or "tiny random StarCoder2",
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "batch": args.batch,
        "prompt_len": args.prompt_len,
        "new_tokens": args.new_tokens,
    }
    for mode, settings in modes.items():
        sampling = generation.SamplingConfig(max_new_tokens=args.new_tokens, **settings)

        def ours(sampling=sampling):
            return np.array(
                generation.generate(our_config, params, prompts.tolist(), sampling, seed=0).tokens
            )

        def theirs(settings=settings):
            with torch.no_grad():
                ids = torch.from_numpy(prompts)
                result = model.generate(
                    ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.new_tokens,
                    min_new_tokens=args.new_tokens, do_sample=bool(settings), top_k=None,
                    use_cache=True, pad_token_id=0, **settings,
                )  # fmt: skip
            return result[:, args.prompt_len :].numpy()

        ours()  # compile
        theirs()  # warm up
        times = {"codeprop": [], "transformers": []}
        tokens = {}
        for _ in range(args.repeats):  # interleaved
            for name, fn in (("codeprop", ours), ("transformers", theirs)):
                start = time.perf_counter()
                tokens[name] = fn()
                times[name].append(time.perf_counter() - start)
        new = args.batch * args.new_tokens
        row = {}
        for name, values in times.items():
            row[name] = {"seconds": round(statistics.median(values), 3),
                         "new_tokens_per_s": round(new / statistics.median(values), 1)}  # fmt: skip
        row["speedup"] = round(
            row["codeprop"]["new_tokens_per_s"] / row["transformers"]["new_tokens_per_s"], 2
        )
        if mode == "greedy":
            row["same_tokens_fraction"] = float(
                (tokens["codeprop"] == tokens["transformers"]).mean()
            )
        out[mode] = row
    timing.emit(out, args.out)


if __name__ == "__main__":
    main()
