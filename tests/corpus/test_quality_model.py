"""The learned quality scorer ranks held-out good code above bad code."""

import json
import re

import numpy as np
import pytest

from codeprop.corpus import beam, pipeline, quality_model

OPS = [("add", "+"), ("sub", "-"), ("mul", "*"), ("max_of", "max"), ("min_of", "min")]
NOUNS = ["values", "items", "counts", "prices", "scores", "sizes", "weights", "lengths"]


def _good(name, op, noun):
    body = f"{op}(total, x)" if op.isalpha() else f"total {op} x"
    return (
        f"def {name}_{noun}({noun}):\n"
        f'    """Combine all {noun} with {name}."""\n'
        f"    total = {noun}[0]\n"
        f"    for x in {noun}[1:]:\n"
        f"        total = {body}\n"
        f"    return total\n"
    )


def _bad(text, rng):
    """The same function made unreadable: no docstring, whitespace and indentation
    squeezed out, names replaced by random letters (line-shaped, so the rule filters let
    it through)."""
    names = {
        n: "".join(rng.choice(list("qxzjkv"), 3))
        for n in sorted(set(re.findall(r"[a-z_]{4,}", text)))
    }
    lines = [line for line in text.splitlines() if '"""' not in line]
    lines = [re.sub(r"[a-z_]{4,}", lambda m: names[m.group(0)], line) for line in lines]
    return "\n".join(re.sub(r"\s+", "", line) for line in lines) + "\n"


def _labelled(nouns, seed):
    rng = np.random.default_rng(seed)
    codes, scores = [], []
    for noun in nouns:
        for name, op in OPS:
            good = _good(name, op, noun)
            codes += [good, _bad(good, rng)]
            scores += [int(rng.integers(4, 6)), int(rng.integers(0, 2))]
    return codes, np.array(scores)


@pytest.fixture(scope="module")
def scorer(tmp_path_factory):
    path = tmp_path_factory.mktemp("annotations") / "labels.jsonl"
    codes, scores = _labelled(NOUNS[:6], seed=0)
    path.write_text(
        "".join(json.dumps({"code": c, "score": int(s)}) + "\n" for c, s in zip(codes, scores))
    )
    codes, scores = quality_model.read_annotations(path)
    assert len(codes) == 60 and set(scores.tolist()) <= set(range(6))
    trained = quality_model.train(
        codes, scores, quality_model.ScorerConfig(epochs=40, max_tokens=256, learning_rate=3e-3)
    )
    out = tmp_path_factory.mktemp("scorer")
    trained.save(out)
    return out


def test_scorer_ranks_held_out_good_code_above_bad(scorer):
    loaded = quality_model.QualityScorer.load(scorer)
    codes, scores = _labelled(NOUNS[6:], seed=1)  # nouns never seen in training
    predicted = loaded.score(codes)
    good, bad = predicted[scores >= 4], predicted[scores <= 1]
    pairs = (good[:, None] > bad[None, :]).mean()
    assert pairs > 0.9 and good.mean() > 3.0 > bad.mean()
    assert np.all((predicted >= 0) & (predicted <= 5))


def test_learned_quality_stage_in_process_and_on_beam(scorer, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    rng = np.random.default_rng(2)
    for i, (name, op) in enumerate(OPS):
        good = _good(name, op, NOUNS[6 + i % 2])
        (repo / f"good{i}.py").write_text(good)
        (repo / f"bad{i}.py").write_text(_bad(good, rng))
    config = pipeline.CorpusConfig(
        quality_filter=False, learned_quality=pipeline.LearnedQualityConfig(str(scorer), 2.5)
    )
    local = pipeline.run([str(repo)], tmp_path / "local", config)
    kept = [
        json.loads(x)["path"] for x in (tmp_path / "local" / "kept.jsonl").read_text().splitlines()
    ]
    assert kept and all("/good" in k for k in kept)
    stage = local["stages"]["learned_quality"]["total"]
    assert stage["dropped"]["learned_quality_below_threshold"]["docs"] >= 4
    beam.run_beam([str(repo)], tmp_path / "beam", config)
    for name in ("kept.jsonl", "dropped.jsonl"):
        beam_lines = sorted((tmp_path / "beam" / name).read_text().splitlines())
        assert beam_lines == sorted((tmp_path / "local" / name).read_text().splitlines())


def test_annotation_errors_name_the_line_and_the_rubric_has_the_aspects(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text('{"code": "x = 1", "score": 3}\n{"code": "y", "score": 9}\n')
    with pytest.raises(ValueError, match=r"labels.jsonl:2: .*integer 'score' from 0 to 5"):
        quality_model.read_annotations(path)
    prompt = quality_model.rubric_prompt("int x;", "c", "a.c")
    for word in ("Correctness", "Readability", "Security", "Value", "int x;", "0 to 5"):
        assert word in prompt


def test_commands_train_a_scorer_and_use_it(scorer, tmp_path, capsys):
    from codeprop import main

    codes, scores = _labelled(NOUNS[:2], seed=4)
    labels = tmp_path / "labels.jsonl"
    labels.write_text(
        "".join(json.dumps({"code": c, "score": int(s)}) + "\n" for c, s in zip(codes, scores))
    )
    assert (
        main.quality_model_main(
            ["--annotations", str(labels), "--out", str(tmp_path / "s"), "--epochs", "1"]
        )
        == 0
    )
    assert (tmp_path / "s" / "scorer.safetensors").exists()
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "bad.py").write_text(_bad(_good("add", "+", "weights"), np.random.default_rng(5)))
    args = ["--source", str(repo), "--out", str(tmp_path / "out"), "--no_quality_filter"]
    assert main.corpus_main([*args, "--quality_model", str(scorer)]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert (
        report["stages"]["learned_quality"]["total"]["dropped"]["learned_quality_below_threshold"][
            "docs"
        ]
        == 1
    )
    assert "trained on 20 files" in capsys.readouterr().out
