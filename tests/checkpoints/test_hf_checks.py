"""Checkpoint files and tensors that do not match: clear errors, never unpickling."""

import json

import jax
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from codeprop.checkpoints import hf, hf_config
from codeprop.models import decoder

CONFIG = decoder.tiny(vocab_size=64).replace(embed_dim=32, mlp_dim=64, num_layers=2)


def _saved(tmp_path, family="codeshell", config=CONFIG):
    params = decoder.init_params(config, jax.random.key(0))
    hf.save(config, params, tmp_path, family)
    return params


@pytest.mark.parametrize(
    "family, config",
    [
        ("codeshell", CONFIG),
        ("starcoder2", CONFIG.replace(sliding_window=16)),
        ("gpt_bigcode", CONFIG.replace(position_embedding="learned", num_kv_heads=1)),
        (
            "llama",
            CONFIG.replace(
                norm="rmsnorm",
                gated_mlp=True,
                activation="silu",
                attention_bias=False,
                mlp_bias=False,
                tie_embeddings=False,
                rope_scaling="linear",
                rope_scaling_factor=2.0,
            ),
        ),
    ],
)
def test_save_load_round_trip_per_family(tmp_path, family, config):
    params = _saved(tmp_path, family, config)
    loaded_config, loaded = hf.load(tmp_path)
    assert loaded_config == config
    assert jax.tree.structure(loaded) == jax.tree.structure(params)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(loaded)):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    assert json.loads((tmp_path / "config.json").read_text())["architectures"][0].endswith(
        "ForCausalLM"
    )


def test_mismatched_tensors_are_listed(tmp_path):
    _saved(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    del tensors["transformer.h.1.mlp.c_fc.bias"]
    tensors["transformer.h.0.attn.extra.weight"] = np.zeros(3, np.float32)
    tensors["transformer.ln_f.weight"] = np.ones(31, np.float32)
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(hf.CheckpointError) as error:
        hf.load(tmp_path)
    message = str(error.value)
    assert "missing (1): transformer.h.1.mlp.c_fc.bias" in message
    assert "unexpected (1): transformer.h.0.attn.extra.weight" in message
    assert "wrong shape (1): transformer.ln_f.weight (31,) (expected (32,))" in message
    assert str(tmp_path) in message


def test_untied_head_under_a_tying_config_is_an_error(tmp_path):
    _saved(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    tensors["lm_head.weight"] = tensors["transformer.wte.weight"] + 1.0
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(hf.CheckpointError, match="lm_head.weight differs"):
        hf.load(tmp_path)
    tensors["lm_head.weight"] = tensors["transformer.wte.weight"].copy()  # tied: accepted
    save_file(tensors, str(tmp_path / "model.safetensors"))
    assert hf.load(tmp_path)[0].tie_embeddings


def test_pickled_weights_are_refused_and_unknown_architectures_named(tmp_path):
    _saved(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    (tmp_path / "pytorch_model.bin").write_bytes(b"not unpickled")
    with pytest.raises(hf.CheckpointError, match="never unpickles"):
        hf.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mamba"}))
    with pytest.raises(hf.CheckpointError, match="unknown architecture: model_type='mamba'"):
        hf.load(tmp_path)


def test_rope_settings_from_transformers_4_and_5_layouts():
    v4 = {
        "model_type": "llama",
        "vocab_size": 8,
        "hidden_size": 8,
        "intermediate_size": 8,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "max_position_embeddings": 16,
        "rope_theta": 100000.0,
        "rope_scaling": {"type": "linear", "factor": 4.0},
    }
    v5 = {k: v for k, v in v4.items() if not k.startswith("rope")} | {
        "rope_parameters": {"rope_type": "linear", "rope_theta": 100000.0, "factor": 4.0}
    }
    for layout in (v4, v5):
        family, config = hf_config.from_hf(layout)
        assert family == "llama"
        assert (config.rope_base, config.rope_scaling, config.rope_scaling_factor) == (
            1e5,
            "linear",
            4.0,
        )
        assert config.num_kv_heads == 2 and config.norm == "rmsnorm" and config.gated_mlp
    with pytest.raises(hf_config.ConfigError, match="unsupported RoPE scaling 'yarn'"):
        hf_config.from_hf(v4 | {"rope_scaling": {"type": "yarn", "factor": 2.0}})


def test_export_refuses_what_the_family_cannot_express():
    with pytest.raises(hf_config.ConfigError, match="num_kv_heads must be 1"):
        hf_config.to_hf(CONFIG.replace(position_embedding="learned"), "gpt_bigcode")
    with pytest.raises(hf_config.ConfigError, match="RoPE base is fixed"):
        hf_config.to_hf(CONFIG.replace(rope_base=500.0), "codeshell")
    with pytest.raises(hf_config.ConfigError, match="no sliding window"):
        hf_config.to_hf(CONFIG.replace(sliding_window=8), "codeshell")


def test_presets_match_the_published_shapes():
    big = decoder.codeshell_7b()
    shapes = hf.expected_shapes(big, "codeshell")
    assert shapes["transformer.h.0.attn.c_attn.weight"] == (4096 + 2 * 8 * 128, 4096)
    assert shapes["transformer.wte.weight"] == (70144, 4096)
    assert len([n for n in shapes if n.endswith("c_attn.weight")]) == 42
    total = sum(int(np.prod(s)) for s in shapes.values())
    assert 7.5e9 < total < 8.0e9  # 7.68B: 42 blocks of 176M and the tied embedding
    small = sum(
        int(np.prod(s)) for s in hf.expected_shapes(decoder.codeshell_1b(), "codeshell").values()
    )
    assert 1.0e9 < small < 1.3e9
