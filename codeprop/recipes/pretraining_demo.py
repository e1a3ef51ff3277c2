"""The pretraining demo: the whole CodeShell recipe, small, on the default corpus, on CPU.

    python -m codeprop.main pretrain_demo --workdir workdir/pretrain_demo

1. the corpus pipeline (`codeprop.corpus.pipeline.run`) on the default corpus (Python standard
   library, installed packages' sources, C headers) -> ``corpus/``;
2. a SentencePiece code tokenizer trained on the kept documents -> ``tokenizer/code.model``;
3. `pretrain.train` of the tiny CodeShell on the seqio mixture (fill-in-the-middle, packed)
   -> ``run/`` (checkpoints, TensorBoard events, ``loss_curve.png``, ``history.jsonl``);
4. the newest checkpoint loaded for generation (a completion of a Python prompt) and
   exported as a Hugging Face checkpoint that stock transformers loads alone (StarCoder2
   layout, the tokenizer as ``tokenizer.json``; `hf.export`) -> ``hf/``, which the LLM
   probes take (``llm_probe.run_llm_probe.checkpoint`` with the tokenizer's ``code.model``);
5. ``report.json`` and ``report.md``: corpus and tokenizer figures, first and last loss,
   validation perplexity, tokens/s, the generated text.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import time

from absl import logging


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo (the defaults take about 10 minutes on 2 CPU cores)."""

    max_files_per_root: int | None = 400
    vocab_size: int = 4096
    steps: int = 1000
    batch_size: int = 8
    seq_len: int = 256
    peak_learning_rate: float = 2e-3
    warmup_steps: int = 30
    eval_every: int = 250
    prompt: str = "def "
    max_new_tokens: int = 48
    # Sampled, not greedy: greedy decoding of a model this small repeats one token.
    temperature: float = 0.8
    top_p: float = 0.95
    seed: int = 0


def run(workdir: str | pathlib.Path, config: DemoConfig = DemoConfig()) -> dict:
    """Runs the five stages into ``workdir``; returns the report."""
    from codeprop.checkpoints import hf
    from codeprop.corpus import pipeline
    from codeprop.data import json_files
    from codeprop.models import decoder, generation
    from codeprop.tokens import tokenization
    from codeprop.train import checkpointing, optimizers, pretrain

    root = pathlib.Path(workdir)
    root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    seconds = {}

    logging.info("corpus pipeline on the default corpus")
    corpus_report = pipeline.run(
        ["default"],
        root / "corpus",
        pipeline.CorpusConfig(max_files_per_root=config.max_files_per_root),
    )
    seconds["corpus"] = time.perf_counter() - start

    logging.info("tokenizer")
    model_file = root / "tokenizer" / "code.model"
    model_file.parent.mkdir(exist_ok=True)
    texts = [text for _, text in tokenization.read_kept(root / "corpus" / "kept.jsonl")]
    model_file.write_bytes(tokenization.train_sentencepiece(texts, config.vocab_size))
    tokenizer = tokenization.SentencePieceTokenizer(model_file)
    seconds["tokenizer"] = time.perf_counter() - start - seconds["corpus"]

    logging.info("pretraining")
    model = decoder.tiny(vocab_size=tokenizer.vocab_size).replace(
        max_positions=max(2048, config.seq_len)
    )
    data = functools.partial(
        pretrain.seqio_batches, corpus_dir=str(root / "corpus"), vocabulary_file=str(model_file)
    )
    summary = pretrain.train(
        workdir=str(root / "run"),
        model=model,
        data=data,
        steps=config.steps,
        batch_size=config.batch_size,
        seq_len=config.seq_len,
        optimizer=optimizers.OptimizerConfig(
            peak_learning_rate=config.peak_learning_rate,
            final_learning_rate=config.peak_learning_rate / 10,
            warmup_steps=config.warmup_steps,
            total_steps=config.steps,
        ),
        log_every=10,
        checkpoint_every=100,
        eval_every=config.eval_every,
    )
    seconds["pretraining"] = time.perf_counter() - start - sum(seconds.values())

    step, params = checkpointing.load_params(root / "run")
    prompt = tokenizer.encode(config.prompt)
    sampling = generation.SamplingConfig(
        max_new_tokens=config.max_new_tokens,
        temperature=config.temperature,
        top_p=config.top_p,
        eos_id=tokenizer.eos_id,
    )
    completion = generation.generate(model, params, [prompt], sampling, seed=config.seed)
    text = tokenizer.decode([t for t in completion.tokens[0] if t != tokenizer.eos_id])
    hf.export(model, params, root / "hf", model_file)
    history = [r for _, r in json_files.lines(root / "run" / "history.jsonl")]
    losses = [h["loss"] for h in history if "loss" in h]
    report = {
        "corpus": corpus_report["totals"],
        "tokenizer": {"vocab_size": tokenizer.vocab_size, "file": str(model_file)},
        "model": {"parameters": summary["parameters"], **dataclasses.asdict(model)},
        "training": {
            "steps": summary["step"],
            "tokens_per_step": config.batch_size * config.seq_len,
            "first_logged_loss": losses[0],
            "last_loss": losses[-1],
            "validation_loss": summary.get("eval_loss"),
            "validation_perplexity": summary.get("eval_perplexity"),
            "tokens_per_s": summary.get("tokens_per_s"),
        },
        "checkpoint_step": step,
        "generation": {
            "prompt": config.prompt,
            "temperature": config.temperature,
            "top_p": config.top_p,
            "seed": config.seed,
            "completion": text,
        },
        "hf_checkpoint": str(root / "hf"),
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }
    (root / "report.json").write_text(json.dumps(report, indent=1))
    (root / "report.md").write_text(markdown(report))
    return report


def markdown(report: dict) -> str:
    t, g = report["training"], report["generation"]
    lines = [
        "# Pretraining demo",
        "",
        f"- corpus: {report['corpus']}",
        f"- tokenizer: {report['tokenizer']['vocab_size']} pieces",
        f"- model: {report['model']['parameters']:,} parameters",
        f"- steps: {t['steps']} x {t['tokens_per_step']} tokens; "
        f"{t['tokens_per_s']:.0f} tokens/s (last window)",
        f"- loss: {t['first_logged_loss']:.3f} (first logged) -> {t['last_loss']:.3f}",
        f"- validation loss {t['validation_loss']:.3f}, perplexity "
        f"{t['validation_perplexity']:.1f}",
        f"- seconds: {report['seconds']}",
        "",
        f"Generation from the checkpoint, prompt `{g['prompt']}`, temperature "
        f"{g['temperature']}, top-p {g['top_p']}, seed {g['seed']}:",
        "",
        "```",
        g["prompt"] + g["completion"],
        "```",
        "",
        "![loss curve](run/loss_curve.png)",
        "",
    ]
    return "\n".join(lines)
