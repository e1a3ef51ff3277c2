"""Parity with Hugging Face transformers on tiny random models built offline.

Each family's model is made by transformers from a config, its weights randomised (larger
than the default init, so that every tensor matters), saved with ``save_pretrained``
(safetensors), imported with `hf.load`, and run on the same tokens. Exports are read back
by transformers and by `hf.load`.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from codeprop.checkpoints import hf, hf_layout
from codeprop.models import decoder, heads

VOCAB = 101
SPECIAL = {"bos_token_id": 0, "eos_token_id": 0}
TOKENS = np.random.default_rng(0).integers(0, VOCAB, size=(2, 13)).astype(np.int32)

torch.set_num_threads(1)


def _randomise(model, seed=0):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator) * 0.15
            p.copy_(1.0 + noise if name.endswith("norm.weight") or ".ln_" in name else noise)
    return model.eval()


def _starcoder2(**changes):
    config = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    )
    return transformers.Starcoder2Config(**(config | SPECIAL | changes))


def _gpt_bigcode(**changes):
    config = dict(vocab_size=VOCAB, n_embd=32, n_inner=64, n_layer=2, n_head=4, n_positions=64)
    return transformers.GPTBigCodeConfig(**(config | SPECIAL | changes))


def _llama(**changes):
    config = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rope_parameters={"rope_type": "default", "rope_theta": 500.0},
    )
    return transformers.LlamaConfig(**(config | SPECIAL | changes))


CASES = {
    "starcoder2_gqa_tied": lambda: _starcoder2(),
    "starcoder2_sliding_window_untied": lambda: _starcoder2(
        sliding_window=5, tie_word_embeddings=False
    ),
    "starcoder2_mqa_no_bias": lambda: _starcoder2(num_key_value_heads=1, use_bias=False),
    "gpt_bigcode_mqa": lambda: _gpt_bigcode(multi_query=True),
    "gpt_bigcode_mha": lambda: _gpt_bigcode(multi_query=False),
    "gpt_bigcode_unscaled_untied": lambda: _gpt_bigcode(
        scale_attn_weights=False, tie_word_embeddings=False
    ),
    "llama_gqa": lambda: _llama(),
    "llama_mha_tied_biases": lambda: _llama(
        num_key_value_heads=4, tie_word_embeddings=True, attention_bias=True, mlp_bias=True
    ),
    "llama_mqa_head_dim": lambda: _llama(num_key_value_heads=1, head_dim=16),
    "llama_linear_rope": lambda: _llama(
        rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0}
    ),
    # max_position_embeddings 8 < 13 tokens: the dynamic NTK base is in use.
    "llama_dynamic_rope": lambda: _llama(
        max_position_embeddings=8,
        rope_parameters={"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0},
    ),
}
FAMILY = {"starcoder2": "starcoder2", "gpt": "gpt_bigcode", "llama": "llama"}


def _torch_model(case):
    config = CASES[case]()
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    return _randomise(model.float())


def _torch_logits(model, tokens=TOKENS):
    with torch.no_grad():
        return model(torch.from_numpy(tokens.astype(np.int64))).logits.numpy()


def _ours(config, params, tokens=TOKENS):
    return np.asarray(decoder.Decoder(config).apply({"params": params}, jnp.asarray(tokens)))


@pytest.mark.parametrize("case", sorted(CASES))
def test_import_matches_transformers_logits(case, tmp_path):
    model = _torch_model(case)
    model.save_pretrained(tmp_path)
    config, params = hf.load(tmp_path)
    ours = _ours(config, params)
    expected = _torch_logits(model)
    assert ours.shape == expected.shape == (2, 13, VOCAB)
    assert np.abs(ours - expected).max() < 1e-5
    assert np.abs(expected).max() > 0.5  # The weights are not negligible.


@pytest.mark.parametrize(
    "case", ["starcoder2_sliding_window_untied", "gpt_bigcode_mha", "llama_gqa"]
)
def test_export_round_trip_is_exact_and_transformers_reads_it(case, tmp_path):
    model = _torch_model(case)
    model.save_pretrained(tmp_path / "hf")
    config, params = hf.load(tmp_path / "hf")
    family = FAMILY[case.split("_")[0]]
    hf.save(config, params, tmp_path / "out", family)
    config2, params2 = hf.load(tmp_path / "out")
    assert config2 == config
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(params2), strict=True):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    reread = (
        transformers.AutoModelForCausalLM.from_pretrained(
            tmp_path / "out", attn_implementation="eager"
        )
        .float()
        .eval()
    )
    original = model.state_dict()
    for name, tensor in reread.state_dict().items():
        assert torch.equal(tensor, original[name]), name
    np.testing.assert_array_equal(_torch_logits(reread), _torch_logits(model))


def test_sharded_export_with_index(tmp_path):
    model = _torch_model("llama_gqa")
    model.save_pretrained(tmp_path / "hf")
    config, params = hf.load(tmp_path / "hf")
    files = hf.save(config, params, tmp_path / "out", "llama", max_shard_bytes=20_000)
    shards = [f for f in files if f.name.startswith("model-")]
    assert len(shards) > 2 and (tmp_path / "out" / hf.INDEX).exists()
    _, params2 = hf.load(tmp_path / "out")
    np.testing.assert_array_equal(_ours(config, params2), _ours(config, params))


def test_gradients_match_transformers(tmp_path):
    model = _torch_model("llama_gqa")
    model.save_pretrained(tmp_path)
    config, params = hf.load(tmp_path)
    weights = np.random.default_rng(1).normal(size=(2, 13, VOCAB)).astype(np.float32)

    logits = model(torch.from_numpy(TOKENS.astype(np.int64))).logits
    (logits * torch.from_numpy(weights)).sum().backward()
    expected = {name: p.grad.numpy() for name, p in model.named_parameters()}

    def loss(p):
        return jnp.sum(decoder.Decoder(config).apply({"params": p}, TOKENS) * weights)

    grads = hf_layout.to_hf(jax.grad(loss)(params), config, "llama")
    assert set(grads) == set(expected)
    for name, grad in grads.items():
        scale = max(1.0, float(np.abs(expected[name]).max()))
        assert np.abs(np.asarray(grad) - expected[name]).max() < 1e-5 * scale, name


def _codeshell_checkpoint(model, path):
    """CodeShell's layout, written here from a Starcoder2 model with the same mathematics:
    GPT-2 names, c_attn = [q all heads | k groups | v groups], the rotary buffer CodeShell
    checkpoints carry, and CodeShell's config.json keys."""
    from safetensors.torch import save_file

    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    cfg = model.config
    out = {
        "transformer.wte.weight": sd["model.embed_tokens.weight"],
        "transformer.ln_f.weight": sd["model.norm.weight"],
        "transformer.ln_f.bias": sd["model.norm.bias"],
    }
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, head_dim, 2).float() / head_dim))
    for i in range(cfg.num_hidden_layers):
        src, dst = f"model.layers.{i}.", f"transformer.h.{i}."
        attn = src + "self_attn."
        for part in ("weight", "bias"):
            out[dst + f"attn.c_attn.{part}"] = torch.cat(
                [sd[attn + f"{p}_proj.{part}"] for p in "qkv"], dim=0
            )
            out[dst + f"attn.c_proj.{part}"] = sd[attn + f"o_proj.{part}"]
            out[dst + f"ln_1.{part}"] = sd[src + f"input_layernorm.{part}"]
            out[dst + f"ln_2.{part}"] = sd[src + f"post_attention_layernorm.{part}"]
            out[dst + f"mlp.c_fc.{part}"] = sd[src + f"mlp.c_fc.{part}"]
            out[dst + f"mlp.c_proj.{part}"] = sd[src + f"mlp.c_proj.{part}"]
        out[dst + "attn.rotary_emb.inv_freq"] = inv_freq.clone()
    path.mkdir()
    save_file({k: v.contiguous() for k, v in out.items()}, str(path / "model.safetensors"))
    config = {
        "architectures": ["CodeShellForCausalLM"],
        "model_type": "codeshell",
        "activation_function": "gelu_pytorch_tanh",
        "group_query_attention": True,
        "num_query_groups": cfg.num_key_value_heads,
        "position_embedding_type": "rope",
        "rope_scaling": None,
        "vocab_size": cfg.vocab_size,
        "n_embd": cfg.hidden_size,
        "n_inner": cfg.intermediate_size,
        "n_layer": cfg.num_hidden_layers,
        "n_head": cfg.num_attention_heads,
        "n_positions": cfg.max_position_embeddings,
        "layer_norm_epsilon": cfg.norm_epsilon,
        "attn_pdrop": 0.1,
    }
    (path / "config.json").write_text(json.dumps(config))


def test_codeshell_import_matches_starcoder2_logits(tmp_path):
    model = _torch_model("starcoder2_gqa_tied")
    _codeshell_checkpoint(model, tmp_path / "codeshell")
    config, params = hf.load(tmp_path / "codeshell")
    assert (config.num_heads, config.num_kv_heads, config.rope_base) == (4, 2, 10000.0)
    assert np.abs(_ours(config, params) - _torch_logits(model)).max() < 1e-5
    # Export back to CodeShell's layout: the same tensors as written above, buffer aside.
    hf.save(config, params, tmp_path / "again", "codeshell")
    from safetensors.numpy import load_file

    before = load_file(tmp_path / "codeshell" / "model.safetensors")
    after = load_file(tmp_path / "again" / "model.safetensors")
    before = {k: v for k, v in before.items() if not k.endswith("inv_freq")}
    assert sorted(before) == sorted(after)
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])


@pytest.mark.parametrize("case", ["starcoder2_gqa_tied", "llama_gqa"])
def test_classification_head_matches_transformers_sequence_classification(case, tmp_path):
    config = CASES[case]()
    config.num_labels, config.pad_token_id = 3, 0
    classifier = _randomise(
        transformers.AutoModelForSequenceClassification.from_config(
            config, attn_implementation="eager"
        ).float()
    )
    lm = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    missing = lm.load_state_dict(classifier.state_dict(), strict=False).missing_keys
    assert set(missing) <= {"lm_head.weight"}
    lm.save_pretrained(tmp_path)
    dec_config, dec_params = hf.load(tmp_path)
    tokens = np.where(TOKENS == 0, 1, TOKENS)
    tokens[0, 9:] = 0  # right padding: row 0 has 9 tokens, row 1 all 13
    with torch.no_grad():
        expected = classifier(torch.from_numpy(tokens.astype(np.int64))).logits.numpy()
    params = {
        "decoder": dec_params,
        "score": {"kernel": classifier.score.weight.detach().numpy().T},
    }
    model = heads.DecoderClassifier(dec_config, num_classes=3, pad_id=0)
    ours = np.asarray(model.apply({"params": params}, jnp.asarray(tokens)))
    assert ours.shape == (2, 3)
    assert np.abs(ours - expected).max() < 1e-5
