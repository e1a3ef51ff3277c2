"""The pretraining demo end to end, small: corpus -> tokenizer -> train -> generate/export."""

import json

import jax
import numpy as np

from codeprop.checkpoints import hf
from codeprop.recipes import pretraining_demo
from codeprop.train import checkpointing


def test_demo_runs_every_stage_and_its_checkpoint_loads(tmp_path):
    config = pretraining_demo.DemoConfig(
        max_files_per_root=15, vocab_size=1024, steps=6, batch_size=2, seq_len=64,
        warmup_steps=2, eval_every=3, max_new_tokens=8,
    )  # fmt: skip
    report = pretraining_demo.run(tmp_path, config)
    assert report["corpus"]["documents"] == report["corpus"]["kept"] + report["corpus"]["dropped"]
    assert report["tokenizer"]["vocab_size"] == 1024
    training = report["training"]
    assert training["steps"] == 6 and report["checkpoint_step"] == 6
    assert np.isfinite(training["last_loss"]) and training["validation_perplexity"] > 1
    assert report["generation"]["prompt"] == "def " and report["generation"]["completion"]
    assert (report["generation"]["temperature"], report["generation"]["top_p"]) == (0.8, 0.95)
    for name in ("report.md", "report.json", "run/loss_curve.png", "run/summary.json"):
        assert (tmp_path / name).is_file(), name
    assert json.loads((tmp_path / "report.json").read_text())["checkpoint_step"] == 6
    # The exported Hugging Face checkpoint holds the trained parameters exactly, in a
    # layout stock transformers has, with the tokenizer beside it.
    exported = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert exported["model_type"] == "starcoder2" and (tmp_path / "hf" / "tokenizer.json").is_file()
    config_hf, params_hf = hf.load(tmp_path / "hf")
    _, params = checkpointing.load_params(tmp_path / "run")
    assert config_hf.vocab_size == 1024 and config_hf.num_layers == 4
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(params_hf)):
        np.testing.assert_array_equal(a, b)
