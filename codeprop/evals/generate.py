"""Completions of the code-generation tasks with codeprop's batched KV-cache generator.

`completions(config, params, tokenizer, problems, ...)` turns each `tasks.Problem` into
token ids — the prompt (HumanEval, MBPP), or a fill-in-the-middle prompt with the
tokenizer's sentinels in PSM or SPM order (`codeprop.tokens.fim`) for the infilling
tasks — generates ``samples`` completions per problem in batches (greedy, or sampled with
temperature and top-p, seeded per batch), stops at end-of-text or at each stop string's
token sequence, and cuts the decoded text at the first stop string (a string has more than
one tokenisation). A prompt that does not fit the context with ``max_new_tokens`` keeps
its last tokens and is counted (``prompt_truncated``).

Example::

    samples, report = generate.completions(config, params, tokenizer, problems[:8])
    samples[0]  # {"task_id": "HumanEval/0", "sample": 0, "completion": "...", ...}
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Sequence

from codeprop.evals import tasks
from codeprop.models import decoder, generation
from codeprop.tokens import fim

WIDTH_MULTIPLE = 128


def prompt_ids(problem: tasks.Problem, tokenizer, mode: str = "psm") -> list[int]:
    """The token ids the model continues: the prompt, or (infilling) the FIM prompt."""
    if problem.suffix is None:
        return tokenizer.encode(problem.prompt)
    sentinels = fim.Sentinels.from_vocab(tokenizer.token_to_id)
    return fim.infilling_prompt(
        tokenizer.encode(problem.prompt), tokenizer.encode(problem.suffix), sentinels, mode
    )


@dataclasses.dataclass(frozen=True)
class Settings:
    """How completions are drawn.

    Attributes:
      samples: completions per problem (more than one needs ``temperature`` > 0).
      temperature: 0 for greedy decoding.
      top_p: nucleus sampling, or None.
      max_new_tokens: longest completion.
      batch_size: prompts per generation call.
      mode: ``psm`` or ``spm``: the FIM order of the infilling tasks.
      seed: sampling seed (batch i uses ``seed + i * batch_size``).
    """

    samples: int = 1
    temperature: float = 0.0
    top_p: float | None = None
    max_new_tokens: int = 256
    batch_size: int = 16
    mode: str = "psm"
    seed: int = 0


def completions(
    config: decoder.DecoderConfig,
    params,
    tokenizer,
    problems: Sequence[tasks.Problem],
    settings: Settings = Settings(),
) -> tuple[list[dict], dict]:
    """``settings.samples`` completions of every problem.

    Returns:
      (samples: ``{"task_id", "sample", "completion", "stopped"}`` each, in problem
      order; report: ``prompt_truncated``, ``stopped`` counts (``eos``, ``stop``,
      ``length``), ``new_tokens``, ``completions``.)
    """
    samples, max_new_tokens, batch_size = (
        settings.samples,
        settings.max_new_tokens,
        settings.batch_size,
    )
    if samples > 1 and settings.temperature == 0:
        raise ValueError("several samples per problem need temperature > 0")
    limit = config.max_positions - max_new_tokens
    if limit < 1:
        raise ValueError(f"max_new_tokens {max_new_tokens} leaves no room for a prompt")
    rows, truncated = [], 0
    for problem in problems:
        ids = prompt_ids(problem, tokenizer, settings.mode)
        if len(ids) > limit:
            ids, truncated = ids[-limit:], truncated + 1
        rows += [(problem, i, ids) for i in range(samples)]
    out, stopped, new_tokens = [], collections.Counter(), 0
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        stops = sorted({s for problem, _, _ in batch for s in problem.stop})
        sampling = generation.SamplingConfig(
            max_new_tokens=max_new_tokens,
            temperature=settings.temperature,
            top_p=settings.top_p,
            eos_id=tokenizer.eos_id,
            stop_sequences=tuple(tuple(tokenizer.encode(s)) for s in stops if s),
        )
        # Every call has batch_size rows (the last one filled with copies of its first)
        # and a prompt width rounded up to WIDTH_MULTIPLE: few compilations in all.
        prompts = [ids for _, _, ids in batch]
        prompts += [prompts[0]] * (batch_size - len(prompts))
        result = generation.generate(
            config, params, prompts, sampling, seed=settings.seed + start,
            pad_id=tokenizer.pad_id, width_multiple=min(WIDTH_MULTIPLE, limit),
        )  # fmt: skip
        for (problem, i, _), tokens, reason in zip(
            batch, result.tokens, result.finish_reasons, strict=False
        ):
            text = tasks.truncate(tokenizer.decode(tokens), problem.stop)
            out.append(
                {"task_id": problem.task_id, "sample": i, "completion": text, "stopped": reason}
            )
            stopped[reason] += 1
            new_tokens += len(tokens)
        print(f"generated {len(out)} of {len(rows)} completions", flush=True)
    report = {
        "prompt_truncated": truncated,
        "stopped": dict(stopped),
        "new_tokens": new_tokens,
        "completions": len(out),
    }
    return out, report
