"""The paper's five code LLMs as gin files: each is the architecture its published config.json
maps to (sizes as published), and the paper's protocol runs from it on a tiny random
checkpoint of the same family, refusing one of another architecture with the differences."""

import jax
import pytest

import gin
from codeprop import main
from codeprop.checkpoints import hf, hf_config
from codeprop.models import decoder

from conftest import REPO, write_bpe_tokenizer

# config.json of the paper's five models (Hugging Face), the fields codeprop reads.
CONFIGS = {
    "tiny_starcoder_py": {  # bigcode/tiny_starcoder_py
        "model_type": "gpt_bigcode",
        "activation_function": "gelu_pytorch_tanh",
        "multi_query": True,
        "n_embd": 768,
        "n_head": 12,
        "n_inner": 3072,
        "n_layer": 20,
        "n_positions": 8192,
        "layer_norm_epsilon": 1e-05,
        "scale_attn_weights": True,
        "vocab_size": 49152,
        "initializer_range": 0.02,
    },
    "starcoderbase_1b": {  # bigcode/starcoderbase-1b
        "model_type": "gpt_bigcode",
        "activation_function": "gelu_pytorch_tanh",
        "multi_query": True,
        "n_embd": 2048,
        "n_head": 16,
        "n_inner": 8192,
        "n_layer": 24,
        "n_positions": 8192,
        "layer_norm_epsilon": 1e-05,
        "scale_attn_weights": True,
        "vocab_size": 49152,
        "initializer_range": 0.02,
    },
    "starcoderbase_3b": {  # bigcode/starcoderbase-3b
        "model_type": "gpt_bigcode",
        "activation_function": "gelu_pytorch_tanh",
        "multi_query": True,
        "n_embd": 2816,
        "n_head": 22,
        "n_inner": 11264,
        "n_layer": 36,
        "n_positions": 8192,
        "layer_norm_epsilon": 1e-05,
        "scale_attn_weights": True,
        "vocab_size": 49152,
        "initializer_range": 0.02,
    },
    "starcoder2_7b": {  # bigcode/starcoder2-7b
        "model_type": "starcoder2",
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_size": 4608,
        "intermediate_size": 18432,
        "max_position_embeddings": 16384,
        "norm_epsilon": 1e-05,
        "num_attention_heads": 36,
        "num_hidden_layers": 32,
        "num_key_value_heads": 4,
        "rope_theta": 1000000,
        "sliding_window": 4096,
        "use_bias": True,
        "vocab_size": 49152,
        "initializer_range": 0.018042,
    },
    "deepseek_coder_6_7b": {  # deepseek-ai/deepseek-coder-6.7b-base
        "model_type": "llama",
        "attention_bias": False,
        "hidden_act": "silu",
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "max_position_embeddings": 16384,
        "num_attention_heads": 32,
        "num_hidden_layers": 32,
        "num_key_value_heads": 32,
        "rms_norm_eps": 1e-06,
        "rope_scaling": {"factor": 4.0, "type": "linear"},
        "rope_theta": 100000,
        "tie_word_embeddings": False,
        "vocab_size": 32256,
        "initializer_range": 0.02,
    },
}
FAMILIES = {
    "tiny_starcoder_py": ("gpt_bigcode", 164.1e6),
    "starcoderbase_1b": ("gpt_bigcode", 1137.2e6),
    "starcoderbase_3b": ("gpt_bigcode", 3043.3e6),
    "starcoder2_7b": ("starcoder2", 7173.9e6),
    "deepseek_coder_6_7b": ("llama", 6740.5e6),
}
TINY = {"embed_dim": 32, "mlp_dim": 48, "num_layers": 2, "num_heads": 4, "vocab_size": 400}


@pytest.fixture(autouse=True)
def _clear_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def _model_file(name: str, bindings=()) -> dict:
    gin.parse_config_files_and_bindings(
        [str(REPO / "gin/models" / f"{name}.gin")],
        ["CHECKPOINT = 'checkpoints/x'", *bindings],
        finalize_config=False,
    )
    from codeprop.probes import llm_probe

    return gin.get_bindings(llm_probe.run_llm_probe)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_each_model_file_is_its_published_architecture(name):
    family, published = hf_config.from_hf(CONFIGS[name])
    bound = _model_file(name)
    assert family == FAMILIES[name][0]
    assert hf_config.differences(bound["decoder"], published) == []
    assert bound["checkpoint"] == bound["tokenizer"] == "checkpoints/x"
    shapes = jax.eval_shape(lambda: decoder.init_params(bound["decoder"], jax.random.key(0)))
    count = sum(leaf.size for leaf in jax.tree.leaves(shapes))
    assert count == pytest.approx(FAMILIES[name][1], rel=1e-3)


def _tiny_checkpoint(name: str, directory):
    """A random checkpoint of the model's family at tiny sizes, with a tokenizer.json."""
    family = FAMILIES[name][0]
    config = hf_config.from_hf(CONFIGS[name])[1].replace(
        **TINY, num_kv_heads=1 if family == "gpt_bigcode" else 2
    )
    hf.save(config, decoder.init_params(config, jax.random.key(0)), directory, family)
    write_bpe_tokenizer(directory, vocab_size=TINY["vocab_size"])
    return config


@pytest.mark.parametrize("name", ["tiny_starcoder_py", "starcoder2_7b", "deepseek_coder_6_7b"])
def test_the_papers_protocol_runs_from_the_model_file(
    name, raw_dir, tfds_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("CODEPROP_TFDS_DIR", str(tfds_dir))
    config = _tiny_checkpoint(name, tmp_path / "checkpoint")
    files = [str(REPO / "gin/experiments/devmap_amd_llm.gin"), str(REPO / f"gin/models/{name}.gin")]
    quick = [
        f"CHECKPOINT = '{tmp_path / 'checkpoint'}'",
        "EPOCHS = 1",
        "MAX_TOKENS = 48",
        "BATCH_SIZE = 32",
        "llm_probe.run_llm_probe.max_folds = 1",
        f"llm_probe.run_llm_probe.raw_dir = '{raw_dir}'",
    ]
    # The model file's architecture is not the tiny checkpoint's: refused, differences named.
    with pytest.raises(ValueError, match="is not the model the gin file names") as e:
        main.run(files, quick, str(tmp_path / "refused"), [str(REPO)])
    assert "embed_dim: expected" in str(e.value) and "checkpoint 32" in str(e.value)
    # Sized as the checkpoint, the protocol runs: bfloat16, remat, the auxiliary inputs.
    sized = [f"decoder.DecoderConfig.{k} = {getattr(config, k)!r}" for k in (*TINY, "num_kv_heads")]
    results = main.run(files, quick + sized, str(tmp_path / "run"), [str(REPO)])
    (fold,) = results["folds"]
    assert (fold["train"], fold["validation"], fold["test"]) == (551, 61, 68)
    settings = results["settings"]
    assert settings["decoder"]["dtype"] == "bfloat16" and settings["decoder"]["remat"] == "full"
    assert (
        settings["checkpoint"] == str(tmp_path / "checkpoint") and "aux inputs" in results["model"]
    )
