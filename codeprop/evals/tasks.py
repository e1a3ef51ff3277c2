"""The code-generation tasks: HumanEval, MBPP and HumanEval infilling, as `Problem`s.

Files are the published ones (``<raw_dir>/codegen_evals/``, or downloaded from their
canonical source or ``CODEPROP_MIRROR_URL`` into the cache), checked against their sha256
(`codeprop.data.raw`):

- ``humaneval``: 164 problems; the model completes the prompt (signature and docstring);
  the program is prompt + completion + the task's ``check`` run on its entry point;
- ``mbpp``: the test split (task ids 11-510) with the original paper's prompt — the
  description and the three asserts, after three solved examples (task ids 2-4), each
  solution between ``[BEGIN]`` and ``[DONE]``; the program is the completion, the task's
  setup code and its asserts;
- ``infilling-single-line`` (1,033), ``infilling-multi-line`` (5,815),
  ``infilling-random-span-light`` (164): the model fills the middle between ``prompt``
  and ``suffix``; the program is prompt + middle + suffix + the check.

Example::

    problems = tasks.load("humaneval")
    program = problems[0].program(problems[0].reference)  # passes its tests
"""

from __future__ import annotations

import dataclasses
import os

from codeprop.data import json_files, raw

_HUMAN_EVAL = "https://raw.githubusercontent.com/openai/human-eval/master/data"
_INFILLING = "https://raw.githubusercontent.com/openai/human-eval-infilling/master/data"
_MBPP = "https://raw.githubusercontent.com/google-research/google-research/master/mbpp"

FILES = {
    "humaneval": raw.RawFile(
        "codegen_evals/HumanEval.jsonl.gz",
        "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef",
        f"{_HUMAN_EVAL}/HumanEval.jsonl.gz",
    ),
    "mbpp": raw.RawFile(
        "codegen_evals/mbpp.jsonl",
        "0b7004a79cd62d9ec7ecdd5a6e5f0ef1210ff00b286df3c5d5b57bf38c58e19a",
        f"{_MBPP}/mbpp.jsonl",
    ),
    "infilling-single-line": raw.RawFile(
        "codegen_evals/HumanEval-SingleLineInfilling.jsonl.gz",
        "1277073e7ddce163ef68598c2bca777f688a53df99422f097e37362090f88e1f",
        f"{_INFILLING}/HumanEval-SingleLineInfilling.jsonl.gz",
    ),
    "infilling-multi-line": raw.RawFile(
        "codegen_evals/HumanEval-MultiLineInfilling.jsonl.gz",
        "2f341612eee1d35da1357a4f365e0c0b3ba6e2b62eb491e88aaefa4855af0349",
        f"{_INFILLING}/HumanEval-MultiLineInfilling.jsonl.gz",
    ),
    "infilling-random-span-light": raw.RawFile(
        "codegen_evals/HumanEval-RandomSpanInfillingLight.jsonl.gz",
        "1432250ecac0cb56e6f97f8faf0970419ef892a98fda7e1f5aa4c4b87209b760",
        f"{_INFILLING}/HumanEval-RandomSpanInfillingLight.jsonl.gz",
    ),
}
TASKS = tuple(FILES)

HUMANEVAL_STOP = ("\ndef ", "\nclass ", "\nif ", "\nprint(", "\n#")
MBPP_STOP = ("[DONE]",)
MBPP_TEST_IDS = range(11, 511)
MBPP_FEW_SHOT_IDS = (2, 3, 4)


@dataclasses.dataclass(frozen=True)
class Problem:
    """One task.

    Attributes:
      task_id: the dataset's id (e.g. ``HumanEval/0``, ``11`` for MBPP).
      prompt: what the model continues (infilling: the prefix).
      suffix: the text after the hole (infilling only), else None.
      reference: the dataset's solution (the completion or middle that passes).
      stop: strings that end a completion (it is cut before the first).
      before, after: the program is ``before + completion + after``.
    """

    task_id: str
    prompt: str
    suffix: str | None
    reference: str
    stop: tuple[str, ...]
    before: str
    after: str

    def program(self, completion: str) -> str:
        """The program that tests ``completion`` (Python source)."""
        return self.before + completion + self.after


def truncate(completion: str, stop: tuple[str, ...]) -> str:
    """``completion`` cut before the first stop string."""
    cut = min((i for i in (completion.find(s) for s in stop) if i >= 0), default=len(completion))
    return completion[:cut]


def _records(task: str, raw_dir=None) -> list[dict]:
    path = raw.fetch(FILES[task], raw_dir)
    return [record for _, record in json_files.lines(path, raw.RawDataError)]


def _humaneval(record: dict) -> Problem:
    check = f"\n{record['test']}\ncheck({record['entry_point']})\n"
    return Problem(
        task_id=record["task_id"],
        prompt=record["prompt"],
        suffix=None,
        reference=record["canonical_solution"],
        stop=HUMANEVAL_STOP,
        before=record["prompt"],
        after=check,
    )


def _infilling(record: dict) -> Problem:
    check = f"\n{record['test']}\ncheck({record['entry_point']})\n"
    return Problem(
        task_id=record["task_id"],
        prompt=record["prompt"],
        suffix=record["suffix"],
        reference=record["canonical_solution"],
        stop=(),
        before=record["prompt"],
        after=record["suffix"] + check,
    )


def mbpp_prompt(record: dict) -> str:
    """The MBPP paper's prompt of one task: its description and its three asserts."""
    tests = "\n".join(record["test_list"])
    return (
        f"You are an expert Python programmer, and here is your task: {record['text']} "
        f"Your code should pass these tests:\n\n{tests}\n"
    )


def _mbpp(records: list[dict]) -> list[Problem]:
    by_id = {r["task_id"]: r for r in records}
    shots = "".join(
        f"{mbpp_prompt(by_id[i])}[BEGIN]\n{by_id[i]['code']}\n[DONE]\n" for i in MBPP_FEW_SHOT_IDS
    )
    problems = []
    for task_id in MBPP_TEST_IDS:
        r = by_id[task_id]
        tests = "\n".join([r.get("test_setup_code") or "", *r["test_list"]])
        problems.append(
            Problem(
                task_id=str(task_id),
                prompt=f"{shots}{mbpp_prompt(r)}[BEGIN]\n",
                suffix=None,
                reference=r["code"],
                stop=MBPP_STOP,
                before="",
                after=f"\n{tests}\n",
            )
        )
    return problems


def load(task: str, raw_dir: str | os.PathLike | None = None) -> list[Problem]:
    """The problems of ``task`` (one of `TASKS`), in the dataset's order."""
    if task not in FILES:
        raise ValueError(f"unknown task {task!r}; one of {TASKS}")
    records = _records(task, raw_dir)
    if task == "mbpp":
        return _mbpp(records)
    return [(_humaneval if task == "humaneval" else _infilling)(r) for r in records]
