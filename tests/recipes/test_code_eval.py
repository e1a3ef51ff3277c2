"""The evaluation experiments end to end on a tiny random model: generation (prompt and
FIM), sandboxed scoring and the result files; and each checkpoint layout loads."""

import functools
import json
import pathlib
import shutil
import sysconfig

import jax
import numpy as np
import pytest

from codeprop import main
from codeprop.checkpoints import hf
from codeprop.evals import generate, tasks
from codeprop.models import decoder
from codeprop.recipes import code_eval
from codeprop.tokens import tokenization
from codeprop.train import checkpointing, pretrain


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A random 2-layer decoder with a 1,000-piece code tokenizer, exported for HF."""
    stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
    texts = [p.read_text() for p in sorted(stdlib.glob("[a-c]*.py"))[:25]]
    root = tmp_path_factory.mktemp("model")
    (root / "code.model").write_bytes(tokenization.train_sentencepiece(texts, vocab_size=1000))
    config = decoder.DecoderConfig(
        vocab_size=1000, embed_dim=32, mlp_dim=64, num_layers=2, num_heads=4, num_kv_heads=2,
        max_positions=2048,
    )  # fmt: skip
    hf.export(
        config, decoder.init_params(config, jax.random.key(0)), root / "hf", root / "code.model"
    )
    return root


def _eval(gin_file, workdir, bindings):
    return main.run([gin_file], bindings, str(workdir))


def test_humaneval_from_the_gin_file(model_dir, tmp_path, raw_dir, monkeypatch):
    monkeypatch.setenv("CODEPROP_DATA_DIR", str(raw_dir))
    summary = _eval(
        "gin/experiments/eval_humaneval.gin",
        tmp_path,
        [f"CHECKPOINT = '{model_dir / 'hf'}'", "code_eval.run_eval.max_problems = 3",
         "generate.Settings.max_new_tokens = 12", "code_eval.run_eval.workers = 2"],
    )  # fmt: skip
    assert summary["samples"] == 3 and summary["tasks_scored"] == 3
    assert summary["pass_at_k"] == {"pass@1": 0.0}  # a random model
    assert sum(summary["outcomes"].values()) == 3
    generation = summary["generation"]
    assert generation["new_tokens"] <= 3 * 12 and generation["prompt_truncated"] == 0
    assert sum(generation["stopped"].values()) == generation["completions"] == 3
    assert generation["settings"]["max_new_tokens"] == 12
    lines = [json.loads(x) for x in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert [x["task_id"] for x in lines] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    assert all(x["status"] in ("failed", "error") for x in lines)
    assert "pass@1 | 0.0%" in (tmp_path / "results.md").read_text()


def test_infilling_prompts_put_the_sentinels_in_psm_and_spm_order(model_dir, raw_dir):
    tok = tokenization.load(str(model_dir / "code.model"))
    problem = tasks.load("infilling-single-line", raw_dir)[0]
    pre, suf = tok.encode(problem.prompt), tok.encode(problem.suffix)
    ids = {m: generate.prompt_ids(problem, tok, m) for m in ("psm", "spm")}
    p, s, m = (tok.token_to_id(t) for t in ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"))
    assert ids["psm"] == [p, *pre, s, *suf, m]
    assert ids["spm"] == [p, s, *suf, m, *pre]
    config, params, _ = code_eval.load_model(model_dir / "hf", str(model_dir / "code.model"))
    drawn, report = generate.completions(
        config.replace(max_positions=64),
        params,
        tok,
        [problem],
        generate.Settings(max_new_tokens=8, mode="spm"),
    )
    assert report["prompt_truncated"] == 1 and len(drawn) == 1 and drawn[0]["sample"] == 0
    with pytest.raises(ValueError, match="need temperature > 0"):
        generate.completions(config, params, tok, [problem], generate.Settings(samples=2))


def test_a_pretraining_workdir_loads_with_its_tokenizer(model_dir, tmp_path):
    config = decoder.DecoderConfig(
        vocab_size=1000, embed_dim=32, mlp_dim=64, num_layers=2, num_heads=4, num_kv_heads=2
    )
    data = functools.partial(pretrain.synthetic_batches, vocab_size=1000)
    pretrain.train(workdir=str(tmp_path / "run"), model=config, data=data, steps=2,
                   batch_size=2, seq_len=16, checkpoint_every=2)  # fmt: skip
    (tmp_path / "tokenizer").mkdir()
    shutil.copy(model_dir / "code.model", tmp_path / "tokenizer" / "code.model")
    loaded, params, tok = code_eval.load_model(tmp_path)
    _, saved = checkpointing.load_params(tmp_path / "run")
    assert loaded.vocab_size == tok.vocab_size == 1000
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(saved), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(FileNotFoundError, match="neither a Hugging Face checkpoint"):
        code_eval.load_model(tmp_path / "tokenizer")
