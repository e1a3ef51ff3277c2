"""A model's pass@k on HumanEval, MBPP or HumanEval infilling, from a gin file.

    python -m codeprop.main --gin_file=gin/experiments/eval_humaneval.gin \\
        --gin_bindings="CHECKPOINT = 'workdir/code_lm'" --workdir=workdir/eval_humaneval

``checkpoint`` is a Hugging Face checkpoint directory (``config.json``, safetensors and a
``tokenizer.json``), a pretraining run's workdir (``model_config.json`` and orbax
``checkpoints/``), or a workdir of the code LM or the pretraining demo (``run/`` and
``tokenizer/code.model``). Completions come from `codeprop.evals.generate`, are scored by
`codeprop.evals.execute` in the sandbox, and ``workdir`` gets ``samples.jsonl``,
``results.json`` (pass@k, outcomes, the generation's counts) and ``results.md``.
"""

from __future__ import annotations

import dataclasses
import pathlib

from codeprop.data import json_files
from codeprop.evals import generate
from codeprop.models import decoder


def load_model(checkpoint: str | pathlib.Path, tokenizer: str | None = None):
    """(DecoderConfig, params, tokenizer) of ``checkpoint`` (see the module docstring).

    Raises:
      FileNotFoundError: ``checkpoint`` is none of those layouts.
    """
    from codeprop.checkpoints import hf
    from codeprop.tokens import tokenization
    from codeprop.train import checkpointing

    root = pathlib.Path(checkpoint)
    if (root / "config.json").is_file():
        config, params = hf.load(root)
        spec = tokenizer or str(root)
    else:
        run = root / "run" if (root / "run" / checkpointing.MODEL_CONFIG).is_file() else root
        if not (run / checkpointing.MODEL_CONFIG).is_file():
            raise FileNotFoundError(
                f"{root}: neither a Hugging Face checkpoint (config.json) nor a pretraining "
                f"workdir ({checkpointing.MODEL_CONFIG}, checkpoints/)"
            )
        fields = json_files.read_object(run / checkpointing.MODEL_CONFIG, hf.CheckpointError)
        try:
            config = decoder.DecoderConfig(**fields)
        except TypeError as error:
            raise hf.CheckpointError(f"{run / checkpointing.MODEL_CONFIG}: {error}") from None
        _, params = checkpointing.load_params(run)
        spec = tokenizer or str(root / "tokenizer" / "code.model")
    return config, params, tokenization.load(spec)


def run_eval(
    *,
    workdir: str | pathlib.Path,
    task: str,
    checkpoint: str,
    tokenizer: str | None = None,
    settings: generate.Settings | None = None,
    max_problems: int | None = None,
    wall_s: float = 10.0,
    workers: int | None = None,
) -> dict:
    """Generates, runs and scores; returns the summary (also ``workdir/results.json``).

    Args:
      workdir: output directory.
      task: one of `codeprop.evals.tasks.TASKS`.
      checkpoint: the model (see `load_model`); tokenizer: overrides its tokenizer.
      settings: how completions are drawn (`generate.Settings`: samples, temperature,
        top-p, length, batch size, FIM mode, seed; its defaults when None).
      max_problems: the first N problems only (smoke tests), None for all.
      wall_s: the sandbox's wall-clock limit per program; workers: programs at a time.
    """
    from codeprop.evals import execute, sandbox, tasks

    settings = settings or generate.Settings()
    problems = tasks.load(task)[:max_problems]
    config, params, tok = load_model(checkpoint, tokenizer)
    drawn, report = generate.completions(config, params, tok, problems, settings)
    limits = dataclasses.replace(sandbox.Limits(), wall_s=wall_s)
    result = execute.score(problems, drawn, limits, workers)
    for record, sample in zip(result["samples"], drawn, strict=True):
        record.update(sample=sample["sample"], stopped=sample["stopped"])
    result["summary"]["generation"] = {
        **report,
        "checkpoint": str(checkpoint),
        "settings": dataclasses.asdict(settings),
    }
    execute.write(workdir, task, str(checkpoint), result)
    return result["summary"]
