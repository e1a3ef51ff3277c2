"""The code LM from its gin file, small: every stage, the report's figures, the standalone
export, and a rerun that reuses every finished stage."""

import json
import os
import signal

import jax
import numpy as np
import pytest

from codeprop import main
from codeprop.analysis import lm_losses
from codeprop.checkpoints import hf
from codeprop.tokens import tokenization
from codeprop.train import checkpointing, input_pipeline

SMALL = [
    "VOCAB_SIZE = 1024",
    "STEPS = 6",
    "BATCH_SIZE = 2",
    "SEQ_LEN = 64",
    "code_lm.run.sources = ('default',)",
    "code_lm.run.max_files_per_root = 15",
    "code_lm.run.eval_tokens_per_language = 3000",
    "code_lm.run.max_new_tokens = 8",
    "decoder.DecoderConfig.embed_dim = 64",
    "decoder.DecoderConfig.mlp_dim = 128",
    "decoder.DecoderConfig.num_layers = 2",
    "decoder.DecoderConfig.num_heads = 4",
    "optimizers.OptimizerConfig.warmup_steps = 2",
    "pretrain.train.checkpoint_every = 3",
    "pretrain.train.eval_every = 3",
    "pretrain.train.eval_batches = 2",
]


def _run(workdir, extra=()):
    return main.run(["gin/experiments/code_lm.gin"], [*SMALL, *extra], str(workdir))


def test_the_code_lm_runs_every_stage_and_a_rerun_reuses_them(tmp_path):
    report = _run(tmp_path)
    corpus = report["corpus"]
    assert corpus["documents"] == corpus["kept"] + corpus["dropped"] > 0
    assert report["tokenizer"]["vocab_size"] == 1024
    assert report["training"]["steps"] == 6 and report["training"]["tokens_seen"] == 6 * 2 * 64
    losses = report["loss_per_language"]
    assert {"python", "c"} <= set(losses)
    for split in (s for language in losses.values() for s in language.values()):
        assert split["tokens"] <= 3000 + 8 * 64
        assert (split["loss"] is None) == (split["tokens"] == 0)
        assert split["loss"] is None or 0 < split["loss"] < np.log(1024) + 1
    # The training figure is train_sample's: hash-drawn documents, not the first in the file.
    kept = [json.loads(line) for line in (tmp_path / "corpus" / "kept.jsonl").open()]
    tokenizer = tokenization.SentencePieceTokenizer(tmp_path / "tokenizer" / "code.model")
    for language, split in losses.items():
        sample = [
            d
            for d in kept
            if d["language"] == language
            and input_pipeline.training_sample_of(d["id"], input_pipeline.VALIDATION_EVERY) == 0
        ]
        in_sample = sum(len(tokenizer.encode(d["content"])) + 1 for d in sample)
        assert (split["train"]["tokens"] == 0) == (in_sample == 0), language
    # Per-document losses: every kept document scored once, in validation or in one of the
    # 100 hash-drawn training parts; each mean inside its bootstrap interval.
    scored = lm_losses.run(tmp_path, samples=100)
    for language, samples in scored.items():
        expected = sum(
            len(tokenizer.encode(d["content"])) + 1 for d in kept if d["language"] == language
        )
        assert sum(s["tokens"] for s in samples.values()) == expected, language
        for s in samples.values():
            low, high = s["interval"]
            assert low - 1e-9 <= s["loss"] <= high + 1e-9 and s["documents"] > 0
    assert json.loads((tmp_path / "loss_samples.json").read_text()) == json.loads(
        json.dumps(scored)
    )
    assert len(report["completions"]) == 4 and all(c["prompt"] for c in report["completions"])
    # The export is the newest checkpoint, with the tokenizer beside it.
    _, params = checkpointing.load_params(tmp_path / "run")
    _, exported = hf.load(tmp_path / "hf")
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(exported), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (tmp_path / "hf" / "tokenizer.json").is_file()
    assert "| python |" in (tmp_path / "report.md").read_text()

    stamps = {
        p: (tmp_path / p).stat().st_mtime_ns for p in ("corpus/kept.jsonl", "tokenizer/code.model")
    }
    again = _run(tmp_path)
    assert {p: (tmp_path / p).stat().st_mtime_ns for p in stamps} == stamps
    assert again["loss_per_language"] == losses
    assert again["completions"] == report["completions"]
    assert json.loads((tmp_path / "report.json").read_text())["training"]["steps"] == 6


def test_a_model_and_tokenizer_of_different_sizes_is_refused(tmp_path):
    with pytest.raises(ValueError, match="model.vocab_size 512 differs from the tokenizer's"):
        _run(tmp_path, ["decoder.DecoderConfig.vocab_size = 512"])


def test_sigterm_stops_before_the_export_and_the_same_command_resumes(tmp_path, monkeypatch):
    from codeprop.train import pretrain

    real = pretrain.seqio_batches

    def preempting(*args, **kwargs):
        for i, batch in enumerate(real(*args, **kwargs)):
            if i == 1 and kwargs.get("split", args[0] if args else None) == "train":
                os.kill(os.getpid(), signal.SIGTERM)  # arrives during step 2
            yield batch

    monkeypatch.setattr(pretrain, "seqio_batches", preempting)
    stopped = _run(tmp_path)
    assert stopped == {"preempted": True, "step": 2, "steps": 6}
    assert not (tmp_path / "hf").exists() and not (tmp_path / "report.json").exists()
    assert not (tmp_path / "operative_config.gin").exists()  # not a finished run
    monkeypatch.setattr(pretrain, "seqio_batches", real)
    finished = _run(tmp_path)
    assert finished["training"]["steps"] == 6 and (tmp_path / "hf" / "config.json").is_file()
    assert (tmp_path / "operative_config.gin").is_file()
