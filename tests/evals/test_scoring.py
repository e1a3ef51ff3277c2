"""The tasks' reference solutions pass their own tests in the sandbox; wrong ones score 0;
pass@k is the unbiased estimator; bad samples files are named by file and line."""

import gzip
import json
import math
import shutil

import pytest

from codeprop.data import raw
from codeprop.evals import execute, sandbox, tasks

# Limits for the references' own tests. MBPP task 123's reference takes about 6 s alone on
# our 2-core machine, near the default 10 s; beside the other test worker it ran out.
LOADED = sandbox.Limits(wall_s=60.0, cpu_s=30)


@pytest.fixture(scope="module")
def humaneval(raw_dir):
    return tasks.load("humaneval", raw_dir)


def _references(problems):
    return [{"task_id": p.task_id, "completion": p.reference} for p in problems]


def test_humaneval_references_pass_and_empty_or_wrong_completions_fail(humaneval):
    assert len(humaneval) == 164 and humaneval[0].task_id == "HumanEval/0"
    result = execute.score(humaneval, _references(humaneval), workers=4, limits=LOADED)
    assert result["summary"]["outcomes"] == {"passed": 164}
    assert result["summary"]["pass_at_k"] == {"pass@1": 1.0}
    wrong = [
        {"task_id": p.task_id, "completion": c}
        for p in humaneval[:20]
        for c in ("", "    return None\n")
    ]
    result = execute.score(humaneval, wrong, workers=4)
    assert result["summary"]["pass_at_k"]["pass@1"] == 0.0
    assert result["summary"]["tasks_without_samples"] == 144


def test_mbpp_test_split_references_pass_except_task_341(raw_dir):
    problems = tasks.load("mbpp", raw_dir)
    assert [p.task_id for p in problems] == [str(i) for i in range(11, 511)]
    assert problems[0].prompt.count("[BEGIN]") == 4 and problems[0].prompt.endswith("[BEGIN]\n")
    assert problems[0].prompt.endswith('assert remove_Occ("PHP","P") == "H"\n[BEGIN]\n')
    result = execute.score(problems, _references(problems), workers=4, limits=LOADED)
    failing = [
        (s["task_id"], s["status"], s["error"])
        for s in result["samples"]
        if s["status"] != "passed"
    ]
    # Task 341's reference returns tuple(set(...)), whose order fails its third assert.
    assert failing == [("341", "failed", "AssertionError")]


def test_infilling_tasks_load_and_light_references_pass(raw_dir):
    sizes = {
        t: len(tasks.load(t, raw_dir)) for t in ("infilling-single-line", "infilling-multi-line")
    }
    assert sizes == {"infilling-single-line": 1033, "infilling-multi-line": 5815}
    light = tasks.load("infilling-random-span-light", raw_dir)
    assert len(light) == 164 and all(p.suffix is not None for p in light)
    result = execute.score(light, _references(light), workers=4, limits=LOADED)
    assert result["summary"]["outcomes"] == {"passed": 164}


def test_completions_are_cut_at_the_first_stop_string(humaneval):
    problem = humaneval[0]
    tail = "\ndef extra():\n    assert False\n"
    sample = {"task_id": problem.task_id, "completion": problem.reference + tail}
    result = execute.score(humaneval, [sample], workers=1)
    assert result["samples"][0]["completion"] == problem.reference
    assert result["samples"][0]["status"] == "passed"


@pytest.mark.parametrize("n,c", [(1, 0), (1, 1), (5, 1), (10, 3), (200, 17), (200, 0), (20, 20)])
def test_pass_at_k_is_the_unbiased_estimator(n, c):
    for k in (1, 10, 100):
        if k > n:
            with pytest.raises(ValueError):
                execute.pass_at_k(n, c, k)
            continue
        exact = 1 - math.comb(n - c, k) / math.comb(n, k)
        assert execute.pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12)


def test_bad_samples_files_are_named_by_line(humaneval, tmp_path):
    good = json.dumps({"task_id": "HumanEval/0", "completion": "    pass\n"})
    cases = {
        b"\xff\xfe\n": "not UTF-8",
        b"{not json\n": "not JSON",
        b'{"task_id": "HumanEval/0"}\n': "missing completion",
        b'{"task_id": "HumanEval/999", "completion": ""}\n': "unknown task_id 'HumanEval/999'",
        b'{"task_id": "HumanEval/0", "completion": "", "sample": 0}\n' * 2: "repeats sample 0",
    }
    for i, (line, message) in enumerate(cases.items()):
        path = tmp_path / f"samples{i}.jsonl"
        path.write_bytes(good.encode() + b"\n" + line)
        with pytest.raises(execute.SamplesError, match=rf"samples{i}\.jsonl:(2|3): {message}"):
            execute.read_samples(path, humaneval)


def test_a_changed_data_file_fails_its_checksum(raw_dir, tmp_path):
    target = tmp_path / "codegen_evals" / "HumanEval.jsonl.gz"
    target.parent.mkdir()
    shutil.copy(raw_dir / "codegen_evals" / "HumanEval.jsonl.gz", target)
    with gzip.open(target, "ab") as f:
        f.write(b"\n")
    with pytest.raises(raw.RawDataError, match=r"HumanEval\.jsonl\.gz: sha256 .* does not match"):
        tasks.load("humaneval", tmp_path)


def test_the_command_scores_a_samples_file(humaneval, raw_dir, tmp_path):
    samples = tmp_path / "samples.jsonl"
    lines = [{"task_id": p.task_id, "completion": p.reference, "sample": 0} for p in humaneval[:10]]
    lines += [{"task_id": p.task_id, "completion": "", "sample": 1} for p in humaneval[:10]]
    samples.write_text("".join(json.dumps(x) + "\n" for x in lines))
    code = execute.main([str(samples), "--task", "humaneval", "--out", str(tmp_path / "out"),
                         "--raw_dir", str(raw_dir), "--workers", "2"])  # fmt: skip
    assert code == 0
    summary = json.loads((tmp_path / "out" / "results.json").read_text())
    assert summary["pass_at_k"] == {"pass@1": 0.5} and summary["samples"] == 20
    assert summary["outcomes"]["passed"] == 10 and summary["tasks_scored"] == 10
    scored = (tmp_path / "out" / "samples.jsonl").read_text().splitlines()
    assert len(scored) == 20 and "pass@1 | 50.0%" in (tmp_path / "out" / "results.md").read_text()
