"""LLM-probe fine-tuning throughput: codeprop's classifier step against transformers'
sequence-classification fine-tuning of the same architecture, in one process.

Both fine-tune the same decoder — `decoder.tiny` (LayerNorm, GELU-tanh MLP, biases, GQA,
RoPE, tied embeddings), which is transformers' Starcoder2 without a sliding window — with a
104-class head on the last token (`heads.DecoderClassifier`,
`Starcoder2ForSequenceClassification`), AdamW, cross-entropy, float32, on the same random
batches of sequences padded to one length (POJ-104's: 104 classes, 512 tokens). The
codeprop rows are the probe's own jitted steps (`codeprop.train.steps`): one step per call,
and `train_steps`' 16 steps per call as `classifier.fit` runs them. Reported: tokens/s
(median over timed steps; the 16-step call counts per step).

    .venv/bin/python benchmarks/probe_finetuning.py --steps 20 --out /tmp/bench/probe.json

``--breakdown`` times the forward pass and forward + backward of both, with their
attention and with it replaced by the identity, to show where the time goes.
"""

from __future__ import annotations

import argparse
import statistics

import jax
import numpy as np
import timing
import torch
import transformers
from decoder_training import interleaved, starcoder2_config

from codeprop.models import decoder, heads
from codeprop.train import batchers, classifier, host_memory, steps


def batches(args) -> list[dict]:
    """`args.distinct` probe batches of `args.batch` full-length random sequences."""
    rng = np.random.default_rng(0)
    n = args.batch * args.distinct
    sequences = [rng.integers(1, args.vocab, args.seq_len).astype(np.int32) for _ in range(n)]
    labels = rng.integers(0, args.classes, n)
    data = batchers.Examples.one_input_per_row(sequences, labels)
    batcher = batchers.SequenceBatcher.for_data(data, args.batch, pad_id=0)
    return [b for b, _ in batcher.batches(np.arange(n))]


def codeprop_runners(config, probe_batches, args):
    """``i -> loss`` for one step per call, and for 16 steps per call (per step)."""
    model = heads.DecoderClassifier(config, args.classes, pad_id=0)
    tx = steps.adamw(args.lr)
    one = {"state": steps.create_train_state(model, probe_batches[0], 0, tx)}
    many = {"state": steps.create_train_state(model, probe_batches[0], 0, tx)}
    stacked, active = classifier._stack(
        [probe_batches[i % len(probe_batches)] for i in range(16)], 16
    )

    def single(i):
        one["state"], m = steps.train_step(one["state"], probe_batches[i % len(probe_batches)])
        return float(m.compute()["loss"])

    def sixteen(i):
        many["state"], m = steps.train_steps(many["state"], stacked, active)
        return float(m.compute()["loss"])

    return single, sixteen


def hf_runner(config, probe_batches, args):
    """The same step with `Starcoder2ForSequenceClassification` (pads are token 0)."""
    hf_config = starcoder2_config(config, num_labels=args.classes, pad_token_id=0)
    torch.manual_seed(0)
    model = transformers.Starcoder2ForSequenceClassification(hf_config).float().train()
    model.config._attn_implementation = "sdpa"
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    torch_batches = [
        (
            torch.from_numpy(b["inputs"].astype(np.int64)),
            torch.from_numpy(b["labels"][: args.batch]),
        )
        for b in probe_batches
    ]

    def run(i):
        tokens, labels = torch_batches[i % len(torch_batches)]
        loss = torch.nn.functional.cross_entropy(model(tokens).logits, labels.long())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    return run


def breakdown(config, args) -> dict:
    """Where the step's time goes: seconds of the forward pass and of forward + backward
    (the loss's gradient, no optimizer), each with the model's attention and with the
    attention replaced by the identity (the queries pass through; every other layer is
    unchanged), for codeprop and transformers, taking turns call by call."""
    import optax

    from codeprop.models import attention as attention_lib

    rng = np.random.default_rng(1)
    tokens_np = rng.integers(1, args.vocab, (args.batch, args.seq_len))
    labels_np = rng.integers(0, args.classes, args.batch)
    tokens, labels = jax.numpy.asarray(tokens_np, "int32"), jax.numpy.asarray(labels_np)
    model = heads.DecoderClassifier(config, args.classes, pad_id=0)
    params = model.init(jax.random.key(0), tokens)["params"]

    def jax_fns():
        def loss(p):
            logits = model.apply({"params": p}, tokens)
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        forward, gradient = jax.jit(loss), jax.jit(jax.grad(loss))
        return (
            lambda: jax.block_until_ready(forward(params)),
            lambda: jax.block_until_ready(gradient(params)),
        )

    runners = {}
    runners["codeprop"] = jax_fns()
    original = attention_lib.attention
    attention_lib.attention = lambda q, k, v, *a, **kw: q  # traced now, restored below
    try:
        runners["codeprop, identity attention"] = jax_fns()
        for fn in runners["codeprop, identity attention"]:
            fn()
    finally:
        attention_lib.attention = original

    transformers.AttentionInterface.register(
        "codeprop_identity", lambda module, q, k, v, mask, **kw: (q.transpose(1, 2), None)
    )
    tt, tl = torch.from_numpy(tokens_np), torch.from_numpy(labels_np)
    for name, impl in (("transformers", "sdpa"), ("transformers, identity attention",
                                                   "codeprop_identity")):  # fmt: skip
        hf_config = starcoder2_config(config, num_labels=args.classes, pad_token_id=0)
        torch.manual_seed(0)
        hf = transformers.Starcoder2ForSequenceClassification(hf_config).float().train()
        hf.config._attn_implementation = impl

        def torch_loss(hf=hf):
            return torch.nn.functional.cross_entropy(hf(tt).logits, tl)

        def torch_grad(hf=hf):
            hf.zero_grad(set_to_none=True)
            torch_loss(hf).backward()

        runners[name] = (lambda f=torch_loss: f().item(), torch_grad)
    calls = {}
    for name, (forward, gradient) in runners.items():
        calls[f"{name}: forward"] = lambda i, f=forward: f()
        calls[f"{name}: forward + backward"] = lambda i, f=gradient: f()
    timed = interleaved(calls, args.steps)
    return {name: round(statistics.median(times), 4) for name, (times, _) in timed.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq_len", type=int, default=512)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--classes", type=int, default=104)
    parser.add_argument("--distinct", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="time forward and forward + backward with and without attention instead",
    )
    args = parser.parse_args()
    host_memory.keep_freed_memory()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    config = decoder.tiny(vocab_size=args.vocab).replace(max_positions=max(2048, args.seq_len))
    if args.breakdown:
        seconds = breakdown(config, args)
        timing.emit({"machine": timing.machine(), "median_seconds": seconds}, args.out)
        return
    probe_batches = batches(args)
    assert all(b["inputs"].shape == (args.batch, args.seq_len) for b in probe_batches)
    single, sixteen = codeprop_runners(config, probe_batches, args)
    runs = interleaved(
        {"codeprop": single, "transformers_sdpa": hf_runner(config, probe_batches, args)},
        args.steps,
    )
    # 16 steps per call: a few calls, timed alone after the interleaved rows.
    calls = interleaved({"codeprop_16_steps_per_call": sixteen}, max(2, args.steps // 8))
    tokens = args.batch * args.seq_len
    rows = {name: statistics.median(times) for name, (times, _) in runs.items()}
    rows["codeprop_16_steps_per_call"] = (
        statistics.median(calls["codeprop_16_steps_per_call"][0]) / 16
    )
    hf = rows["transformers_sdpa"]
    result = {
        "machine": timing.machine(),
        "devices": [str(d) for d in jax.devices()],
        "batch": args.batch,
        "seq_len": args.seq_len,
        "classes": args.classes,
        "rows": {
            name: {
                "step_s": round(s, 4),
                "tokens_per_s": round(tokens / s),
                "vs_transformers": round(hf / s, 2),
            }
            for name, s in rows.items()
        },
        "first_losses": {
            name: [round(x, 3) for x in losses[:3]] for name, (_, losses) in runs.items()
        },
    }
    timing.emit(result, args.out)


if __name__ == "__main__":
    main()
