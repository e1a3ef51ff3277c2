"""Decoder LM training throughput: codeprop (JAX) against Hugging Face transformers (torch).

Both train the same architecture — a CodeShell-style decoder (LayerNorm, GELU-tanh MLP,
biases, GQA, RoPE, tied embeddings), which is transformers' Starcoder2 without a sliding
window — with AdamW on next-token cross-entropy over the same random token batches, in
float32 on this machine's CPU, in one process. Reported: tokens/s (median over timed steps)
and model FLOPs utilisation against a measured numpy sgemm peak.

    .venv/bin/python benchmarks/decoder_training.py --steps 20 --out /tmp/bench/decoder.json
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import timing
import torch
import transformers

from codeprop.models import decoder
from codeprop.train import host_memory, optimizers, pretrain


def sgemm_peak(sizes=(1024, 2048), repeats: int = 10) -> float:
    """The machine's float32 matmul peak: the fastest of numpy's sgemm and XLA's dot on
    square products (XLA's kernels beat numpy's on this machine, so numpy alone gave an
    MFU above 1 in a noisy run)."""
    dot = jax.jit(jnp.matmul)
    best = 0.0
    for n in sizes:
        a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
        x = jnp.asarray(a)
        dot(x, x).block_until_ready()
        fns = (lambda b: b @ b, lambda b: dot(b, b).block_until_ready())
        for fn, arg in zip(fns, (a, x), strict=True):
            best = max(best, 2 * n**3 / timing.best_of(fn, [arg], repeats))
    return best


def codeprop_runner(config, tokens, lr, fused_loss=True):
    """A function ``i -> loss`` that runs training step ``i`` (batch ``i % len(tokens)``)."""
    model = decoder.Decoder(config)
    state = {"params": decoder.init_params(config, jax.random.key(0))}
    tx = optax.adamw(lr, b1=0.9, b2=0.95, weight_decay=0.1)
    state["opt"] = tx.init(state["params"])

    def loss_fn(p, batch):
        if fused_loss:  # `Decoder.loss`: output projection + cross-entropy in chunks.
            weights = jnp.full(batch[:, 1:].shape, 1.0 / batch[:, 1:].size)
            return model.apply({"params": p}, batch[:, :-1], batch[:, 1:], weights, method="loss")[
                0
            ]
        logits = model.apply({"params": p}, batch[:, :-1])
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch[:, 1:]).mean()

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(p, o, batch):
        loss, grads = jax.value_and_grad(loss_fn)(p, batch)
        updates, o = tx.update(grads, o, p)
        return optax.apply_updates(p, updates), o, loss

    def run(i):
        batch = jnp.asarray(tokens[i % len(tokens)])
        state["params"], state["opt"], loss = step(state["params"], state["opt"], batch)
        return float(loss)

    return run, decoder.num_params(state["params"])


def starcoder2_config(config: decoder.DecoderConfig, **extra) -> transformers.Starcoder2Config:
    """transformers' Starcoder2 config of the same architecture as a CodeShell-style
    `config` (biases, tied embeddings, RoPE; token 0 as BOS and EOS), plus `extra`."""
    return transformers.Starcoder2Config(
        vocab_size=config.vocab_size,
        hidden_size=config.embed_dim,
        intermediate_size=config.mlp_dim,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads,
        max_position_embeddings=config.max_positions,
        rope_parameters={"rope_type": "default", "rope_theta": config.rope_base},
        use_bias=True,
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_id=0,
        **extra,
    )


def hf_runner(config, tokens, lr, attn_implementation):
    """Like `codeprop_runner`, for transformers' Starcoder2 with the same architecture."""
    hf_config = starcoder2_config(config)
    torch.manual_seed(0)
    model = transformers.Starcoder2ForCausalLM(hf_config).float().train()
    model.config._attn_implementation = attn_implementation
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)

    def run(i):
        batch = torch.from_numpy(tokens[i % len(tokens)].astype(np.int64))
        logits = model(batch[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1)
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    return run


def interleaved(runners: dict, steps: int, warmup: int = 2) -> dict:
    """Times ``steps`` steps of every runner, taking turns step by step (after ``warmup``
    untimed steps each, compilation included), so that a change in the machine's speed
    during the run falls on all of them alike.

    Returns:
      {name: (seconds per timed step, losses of all steps)}.
    """
    times = {name: [] for name in runners}
    losses = {name: [] for name in runners}
    for i in range(warmup + steps):
        for name, run in runners.items():
            start = time.perf_counter()
            losses[name].append(run(i))
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: (times[name], losses[name]) for name in runners}


def pretrain_loop(config, args):
    """tokens/s of `pretrain.train` itself (data placement, metrics, the jitted step with
    packed-sequence masks) over the last ``--steps // 2`` steps, on synthetic batches."""
    with tempfile.TemporaryDirectory() as workdir:
        summary = pretrain.train(
            workdir=workdir,
            model=config,
            data=functools.partial(pretrain.synthetic_batches, vocab_size=config.vocab_size),
            steps=args.steps,
            batch_size=args.batch,
            seq_len=args.seq_len,
            optimizer=optimizers.OptimizerConfig(warmup_steps=1, total_steps=args.steps),
            log_every=args.steps // 2,
            checkpoint_every=10**9,
        )
    return summary["tokens_per_s"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq_len", type=int, default=512)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument(
        "--host_memory",
        choices=("keep", "default"),
        default="keep",
        help="'keep': `host_memory.keep_freed_memory` for the whole process (both "
        "frameworks), as `pretrain.train` does; 'default': glibc's own settings.",
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    kept = args.host_memory == "keep" and host_memory.keep_freed_memory()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    config = decoder.tiny(vocab_size=args.vocab).replace(max_positions=max(2048, args.seq_len))
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, args.vocab, size=(4, args.batch, args.seq_len + 1)).astype(np.int32)
    tokens_per_step = args.batch * args.seq_len
    peak = sgemm_peak()
    # The defaults: blockwise attention (hand-written gradient), fused loss in chunks of
    # 1,024 tokens (`Decoder.loss`).
    default_run, params = codeprop_runner(config, tokens, 3e-4)
    runners = {
        "codeprop": default_run,
        "codeprop_einsum_attention": codeprop_runner(
            config.replace(attention_impl="einsum"), tokens, 3e-4
        )[0],
        "codeprop_xla_attention": codeprop_runner(
            config.replace(attention_impl="xla"), tokens, 3e-4
        )[0],
        # Session 4's defaults: einsum attention, loss chunks of 256 tokens.
        "codeprop_session4": codeprop_runner(
            config.replace(attention_impl="einsum", loss_chunk=256), tokens, 3e-4
        )[0],
        # Session-3 baseline: whole-sequence einsum attention, logits + optax loss.
        "codeprop_unblocked_unfused": codeprop_runner(
            config.replace(attention_impl="einsum", attention_query_chunk=None),
            tokens,
            3e-4,
            fused_loss=False,
        )[0],
        "transformers_eager": hf_runner(config, tokens, 3e-4, "eager"),
        "transformers_sdpa": hf_runner(config, tokens, 3e-4, "sdpa"),
    }
    # Before any torch step; it still runs about 15% slower here than in a process without
    # torch (BENCHMARKS.md), as the interleaved rows below do alike.
    loop_tps = pretrain_loop(config, args)
    runs = interleaved(runners, args.steps)
    out = {
        "machine": timing.machine(),
        "config": {
            "embed_dim": config.embed_dim,
            "num_layers": config.num_layers,
            "num_heads": config.num_heads,
            "num_kv_heads": config.num_kv_heads,
            "vocab_size": config.vocab_size,
            "params": params,
            "batch": args.batch,
            "seq_len": args.seq_len,
        },
        "host_memory_kept": kept,
        "sgemm_peak_gflops": round(peak / 1e9, 1),
    }
    fpt = pretrain.flops_per_token(config, params, args.seq_len)

    def summary(times, losses):
        tps = tokens_per_step / statistics.median(times)
        return {
            "tokens_per_s": round(tps, 1),
            "median_step_s": round(statistics.median(times), 4),
            "mfu_vs_sgemm_peak": round(tps * fpt / peak, 3),
            "first_loss": round(losses[0], 4),
            "last_loss": round(losses[-1], 4),
        }

    for name, (times, losses) in runs.items():
        out[name] = summary(times, losses)
    out["codeprop_pretrain_loop"] = {
        "tokens_per_s": round(loop_tps, 1),
        "mfu_vs_sgemm_peak": round(loop_tps * fpt / peak, 3),
    }
    codeprop_rows = [name for name in out if name.startswith("codeprop")]
    for impl in ("eager", "sdpa"):
        for name in codeprop_rows:
            out[f"{name}_speedup_vs_transformers_{impl}"] = round(
                out[name]["tokens_per_s"] / out[f"transformers_{impl}"]["tokens_per_s"], 2
            )
    timing.emit(out, args.out)


if __name__ == "__main__":
    main()
