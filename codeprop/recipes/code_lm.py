"""A code LM pretrained here, from code that is on the machine, for the LLM probes.

    python -m codeprop.main --gin_file=gin/experiments/code_lm.gin --workdir=workdir/code_lm

Stages, each kept in ``workdir`` and skipped when a rerun finds it done (so the run may
be stopped — Ctrl-C or SIGTERM — and started again with the same command):

1. ``corpus/``: the corpus pipeline over ``sources`` — by default POJ-104's training
   programs only (``poj104-train``: never a program that a probe split validates or tests
   on) and the machine's Python standard library, Python and system C/C++ headers and a
   few installed packages (``default``); never the devmap kernels;
2. ``tokenizer/code.model``: the SentencePiece code tokenizer (FIM sentinels included);
3. ``run/``: `codeprop.train.pretrain.train` of ``model`` on the FIM mixture (resumes
   from its newest checkpoint);
4. ``hf/``: the newest checkpoint as a standalone Hugging Face checkpoint
   (`codeprop.checkpoints.hf.export`: stock transformers loads it alone);
5. ``report.json`` / ``report.md``: corpus figures, parameters, tokens seen, training and
   held-out loss per language on the same evaluator (`language_losses`), and greedy
   completions of ``prompts``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import time

import jax
import numpy as np
from absl import logging

import gin
from codeprop.data import json_files
from codeprop.models import decoder
from codeprop.recipes import workdir as workdir_lib

MIXTURE = "codeprop_code_lm"

PROMPTS = (
    '#include <stdio.h>\n\nint main() {\n    int n;\n    scanf("%d", &n);\n',
    "#include <iostream>\nusing namespace std;\n\nint gcd(int a, int b) {\n",
    "def fibonacci(n):\n    ",
    "static PyObject *\n",
)


def _stage_done(path: pathlib.Path, record: dict) -> bool:
    """Whether ``path`` (a stage's record) exists with the same settings."""
    return path.exists() and json_files.read(path, workdir_lib.WorkdirError) == record


def language_losses(
    model: decoder.DecoderConfig,
    params,
    corpus_dir: pathlib.Path,
    vocabulary_file: pathlib.Path,
    *,
    seq_len: int,
    batch_size: int,
    max_tokens: int,
    fim_rate: float,
) -> dict:
    """Mean loss (nats per token) per language of the training and held-out documents.

    Both splits go through the training's own input pipeline (FIM at ``fim_rate``,
    packing) without shuffling, up to ``max_tokens`` target tokens each, so the two
    figures differ only by the documents: ``{language: {"train": {"loss", "tokens"},
    "validation": {...}}}``. The training documents are ``train_sample``'s, drawn by a hash
    of their id as the held-out ones are: the first tokens of the training split in file
    order would be one directory's files (e.g. Python's own C headers), not the mix.
    """
    from codeprop.train import input_pipeline, pretrain

    input_pipeline.register_corpus(MIXTURE, corpus_dir, vocabulary_file, fim_rate=fim_rate)
    report = json_files.read_object(corpus_dir / "report.json", workdir_lib.WorkdirError)
    languages = sorted(r["language"] for r in report["languages"] if r["files_after"])
    module = decoder.Decoder(model)
    step = jax.jit(functools.partial(pretrain.eval_step, model=module))
    out = {}
    for language in languages:
        task = f"{MIXTURE}_{language.replace('-', '_')}"
        out[language] = {}
        for split, source in (("train", "train_sample"), ("validation", "validation")):
            dataset = input_pipeline.packed_dataset(task, seq_len, split=source, shuffle=False)
            loss = weight = 0.0
            for batch in dataset.batch(batch_size).as_numpy_iterator():
                batch = {k: np.asarray(batch[k]) for k in pretrain.FEATURES}
                summed, counted = step(params, batch)
                loss, weight = loss + float(summed), weight + float(counted)
                if weight >= max_tokens:
                    break
            out[language][split] = {
                "loss": loss / weight if weight else None,
                "tokens": int(weight),
            }
    return out


def run(
    *,
    workdir: str | pathlib.Path,
    model: decoder.DecoderConfig = gin.REQUIRED,
    steps: int = gin.REQUIRED,
    batch_size: int = gin.REQUIRED,
    seq_len: int = gin.REQUIRED,
    sources: tuple[str, ...] = ("poj104-train", "default"),
    max_files_per_root: int | None = None,
    vocab_size: int = 8192,
    tokenizer_max_chunks: int = 200_000,
    fim_rate: float = 0.5,
    eval_tokens_per_language: int = 200_000,
    prompts: tuple[str, ...] = PROMPTS,
    max_new_tokens: int = 48,
) -> dict:
    """Runs the stages into ``workdir`` (see the module docstring); returns the report, or
    ``{"preempted": True, "step", "steps"}`` when SIGTERM stopped pretraining (saved).

    Args:
      workdir: the run's directory (stages kept, resumable).
      model: the decoder; its ``vocab_size`` must equal ``vocab_size``.
      steps, batch_size, seq_len: pretraining's (`pretrain.train`, which takes its other
        settings — optimizer, mesh, intervals — from gin).
      sources: corpus source specs (`codeprop.corpus.sources.read`).
      max_files_per_root: cap per root of the ``default`` source (None: every file).
      vocab_size: SentencePiece pieces.
      tokenizer_max_chunks: chunks SentencePiece trains on (a sample of the corpus).
      fim_rate: fill-in-the-middle rate of pretraining and of the loss evaluation.
      eval_tokens_per_language: target tokens per language and split for the report.
      prompts: greedy completions shown in the report.
      max_new_tokens: tokens per completion.
    """
    from codeprop.checkpoints import hf
    from codeprop.corpus import pipeline
    from codeprop.models import generation
    from codeprop.tokens import tokenization
    from codeprop.train import checkpointing, pretrain

    if model.vocab_size != vocab_size:
        raise ValueError(
            f"model.vocab_size {model.vocab_size} differs from the tokenizer's vocab_size "
            f"{vocab_size}: set both from one macro"
        )
    root = pathlib.Path(workdir)
    root.mkdir(parents=True, exist_ok=True)
    seconds = {}
    start = time.perf_counter()

    corpus_dir = root / "corpus"
    record = {"sources": list(sources), "max_files_per_root": max_files_per_root}
    if not _stage_done(corpus_dir / "settings.json", record):
        logging.info("corpus pipeline over %s", ", ".join(sources))
        pipeline.run(
            list(sources), corpus_dir, pipeline.CorpusConfig(max_files_per_root=max_files_per_root)
        )
        (corpus_dir / "settings.json").write_text(json.dumps(record))
    corpus = json_files.read_object(corpus_dir / "report.json", workdir_lib.WorkdirError)
    seconds["corpus"] = time.perf_counter() - start

    model_file = root / "tokenizer" / "code.model"
    record = {"corpus": corpus["totals"], "vocab_size": vocab_size, "chunks": tokenizer_max_chunks}
    if not _stage_done(model_file.parent / "settings.json", record):
        logging.info("tokenizer (%d pieces)", vocab_size)
        model_file.parent.mkdir(exist_ok=True)
        texts = (text for _, text in tokenization.read_kept(corpus_dir / "kept.jsonl"))
        model_file.write_bytes(
            tokenization.train_sentencepiece(texts, vocab_size, max_chunks=tokenizer_max_chunks)
        )
        (model_file.parent / "settings.json").write_text(json.dumps(record))
    tokenizer = tokenization.SentencePieceTokenizer(model_file)
    seconds["tokenizer"] = time.perf_counter() - start - sum(seconds.values())

    logging.info("pretraining")
    data = functools.partial(
        pretrain.seqio_batches,
        corpus_dir=str(corpus_dir),
        vocabulary_file=str(model_file),
        mixture=MIXTURE,
        fim_rate=fim_rate,
    )
    summary = pretrain.train(
        workdir=str(root / "run"), model=model, data=data, steps=steps,
        batch_size=batch_size, seq_len=seq_len,
    )  # fmt: skip
    seconds["pretraining"] = time.perf_counter() - start - sum(seconds.values())
    if summary.get("preempted"):  # SIGTERM: the checkpoint is saved; no export, no report
        print(
            f"pretraining stopped by SIGTERM at step {summary['step']} of {steps} (saved); "
            "the same command resumes it"
        )
        return {"preempted": True, "step": summary["step"], "steps": steps}

    step, params = checkpointing.load_params(root / "run")
    hf.export(model, params, root / "hf", model_file)
    history = [
        r for _, r in json_files.lines(root / "run" / "history.jsonl", workdir_lib.WorkdirError)
    ]
    losses = language_losses(
        model, params, corpus_dir, model_file, seq_len=seq_len,
        batch_size=8, max_tokens=eval_tokens_per_language, fim_rate=fim_rate,
    )  # fmt: skip
    sampling = generation.SamplingConfig(max_new_tokens=max_new_tokens, eos_id=tokenizer.eos_id)
    completions = generation.generate(
        model, params, [tokenizer.encode(p) for p in prompts], sampling, seed=0
    )
    seconds["report"] = time.perf_counter() - start - sum(seconds.values())
    train_losses = [h["loss"] for h in history if "loss" in h]
    evals = [h for h in history if "eval_loss" in h]
    report = {
        "sources": corpus["sources"],
        "corpus": corpus["totals"],
        "tokenizer": {"vocab_size": tokenizer.vocab_size, "file": str(model_file)},
        "model": {"parameters": summary["parameters"], "config": dataclasses.asdict(model)},
        "training": {
            "steps": step,
            "tokens_seen": step * batch_size * seq_len,
            "last_loss": train_losses[-1],
            "mean_loss_last_50_logged": float(np.mean(train_losses[-50:])),
            # From the history: a rerun of a finished run trains no step here.
            "validation_loss": next((h["eval_loss"] for h in evals[::-1]), None),
            "tokens_per_s": next(
                (h["tokens_per_s"] for h in history[::-1] if "tokens_per_s" in h), None
            ),
        },
        "loss_per_language": losses,
        "completions": [
            {"prompt": p, "completion": tokenizer.decode(t)}
            for p, t in zip(prompts, completions.tokens, strict=True)
        ],
        "hf_checkpoint": str(root / "hf"),
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }
    (root / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    (root / "report.md").write_text(markdown(report))
    return report


def markdown(report: dict) -> str:
    """The report as Markdown: sizes, losses per language, completions."""
    t = report["training"]
    lines = [
        "# Code LM",
        "",
        f"- corpus: {report['corpus']}",
        f"- tokenizer: {report['tokenizer']['vocab_size']} pieces",
        f"- model: {report['model']['parameters']:,} parameters",
        f"- training: {t['steps']} steps, {t['tokens_seen']:,} tokens seen, "
        f"last loss {t['last_loss']:.3f}, validation loss "
        + ("(none yet)" if t["validation_loss"] is None else f"{t['validation_loss']:.3f}"),
        "",
        "| language | training loss | held-out loss | tokens (each) |",
        "|---|---|---|---|",
    ]
    for language, split in report["loss_per_language"].items():
        train, held = split["train"], split["validation"]
        shown = [
            f"{x['loss']:.3f}" if x["loss"] is not None else "(no document)" for x in split.values()
        ]
        lines.append(
            f"| {language} | {shown[0]} | {shown[1]} | {train['tokens']:,} / {held['tokens']:,} |"
        )
    lines += ["", "Greedy completions:", ""]
    for c in report["completions"]:
        lines += ["```", c["prompt"] + c["completion"], "```", ""]
    return "\n".join(lines)
