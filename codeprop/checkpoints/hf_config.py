"""Hugging Face ``config.json`` <-> `DecoderConfig`, per architecture family.

Families (the ``family`` strings used throughout `codeprop.checkpoints`):

- ``codeshell``: CodeShell (``model_type`` ``codeshell`` or ``kclgpt``; its modeling code
  ships with the checkpoint, not with transformers). GPT-2 names, fused ``c_attn``,
  ``rope_scaling`` as ``{"type", "factor"}``, RoPE base fixed at 10000.
- ``gpt_bigcode``: StarCoder, SantaCoder, TinyStarCoderPy. Learned positions; MQA
  (``multi_query``) or MHA.
- ``starcoder2``: StarCoder2. GQA, RoPE, optional sliding window, LayerNorm with biases.
- ``llama``: Llama family, DeepSeek-Coder. RMSNorm, SwiGLU, no biases by default.

RoPE settings are read from transformers 4 (``rope_theta`` and ``rope_scaling``) and
transformers 5 (``rope_parameters``) layouts; exports write both, so either version reads
them.
"""

from __future__ import annotations

from codeprop.models.decoder import DecoderConfig

FAMILIES = ("codeshell", "gpt_bigcode", "starcoder2", "llama")
_MODEL_TYPES = {
    "codeshell": "codeshell",
    "kclgpt": "codeshell",
    "gpt_bigcode": "gpt_bigcode",
    "starcoder2": "starcoder2",
    "llama": "llama",
}
_ARCHITECTURES = {
    "codeshell": "CodeShellForCausalLM",
    "gpt_bigcode": "GPTBigCodeForCausalLM",
    "starcoder2": "Starcoder2ForCausalLM",
    "llama": "LlamaForCausalLM",
}
_ACTIVATIONS = {
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_new": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "gelu": "gelu",
    "silu": "silu",
    "swish": "silu",
    "relu": "relu",
}
_HF_ACTIVATIONS = {"gelu_tanh": "gelu_pytorch_tanh", "gelu": "gelu", "silu": "silu", "relu": "relu"}
CODESHELL_ROPE_BASE = 10000.0


class ConfigError(ValueError):
    """A config.json that codeprop cannot map to a `DecoderConfig` (or back)."""


def family_of(hf: dict) -> str:
    """The family of a config.json dict, from ``model_type`` (else ``architectures``)."""
    model_type = hf.get("model_type")
    if model_type in _MODEL_TYPES:
        return _MODEL_TYPES[model_type]
    for arch in hf.get("architectures") or []:
        for family, name in _ARCHITECTURES.items():
            if arch == name:
                return family
    raise ConfigError(
        f"unknown architecture: model_type={model_type!r}, "
        f"architectures={hf.get('architectures')!r}; codeprop reads {sorted(_MODEL_TYPES)}"
    )


def _activation(name: str) -> str:
    if name not in _ACTIVATIONS:
        raise ConfigError(f"unsupported activation {name!r}; known: {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]


def _rope(hf: dict, default_base: float = 10000.0) -> dict:
    """RoPE base and scaling from either transformers layout."""
    params = hf.get("rope_parameters") or {}
    scaling = hf.get("rope_scaling") or {}
    base = params.get("rope_theta", hf.get("rope_theta", default_base))
    kind = params.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
    factor = params.get("factor", scaling.get("factor", 1.0))
    if kind not in ("default", "linear", "dynamic"):
        raise ConfigError(f"unsupported RoPE scaling {kind!r}; codeprop has linear and dynamic")
    return {
        "rope_base": float(base),
        "rope_scaling": None if kind == "default" else kind,
        "rope_scaling_factor": float(factor),
    }


def _rope_out(config: DecoderConfig) -> dict:
    kind = config.rope_scaling or "default"
    params = {"rope_type": kind, "rope_theta": config.rope_base}
    out = {"rope_theta": config.rope_base, "rope_parameters": params, "rope_scaling": None}
    if config.rope_scaling:
        params["factor"] = config.rope_scaling_factor
        out["rope_scaling"] = {
            "rope_type": kind,
            "type": kind,
            "factor": config.rope_scaling_factor,
        }
    return out


def from_hf(hf: dict) -> tuple[str, DecoderConfig]:
    """(family, DecoderConfig) of a config.json dict."""
    family = family_of(hf)
    try:
        return family, _FROM_HF[family](hf)
    except KeyError as missing:
        raise ConfigError(f"{family} config.json lacks {missing}") from None


def _codeshell(hf: dict) -> DecoderConfig:
    d, n = hf["n_embd"], hf["n_head"]
    positions = hf.get("position_embedding_type", "rope")
    if positions not in ("rope", "learned_absolute"):
        raise ConfigError(f"unsupported CodeShell position_embedding_type {positions!r}")
    rope = _rope({"rope_scaling": hf.get("rope_scaling")}, CODESHELL_ROPE_BASE)
    return DecoderConfig(
        vocab_size=hf["vocab_size"],
        embed_dim=d,
        mlp_dim=hf.get("n_inner") or 4 * d,
        num_layers=hf["n_layer"],
        num_heads=n,
        num_kv_heads=hf["num_query_groups"] if hf.get("group_query_attention", True) else n,
        max_positions=hf["n_positions"],
        position_embedding="rope" if positions == "rope" else "learned",
        norm_eps=hf.get("layer_norm_epsilon", 1e-5),
        activation=_activation(hf.get("activation_function", "gelu_pytorch_tanh")),
        tie_embeddings=hf.get("tie_word_embeddings", True),
        **rope,
    )


def _gpt_bigcode(hf: dict) -> DecoderConfig:
    d, n = hf["n_embd"], hf["n_head"]
    return DecoderConfig(
        vocab_size=hf["vocab_size"],
        embed_dim=d,
        mlp_dim=hf.get("n_inner") or 4 * d,
        num_layers=hf["n_layer"],
        num_heads=n,
        num_kv_heads=1 if hf.get("multi_query", True) else n,
        max_positions=hf["n_positions"],
        position_embedding="learned",
        norm_eps=hf.get("layer_norm_epsilon", 1e-5),
        activation=_activation(hf.get("activation_function", "gelu_pytorch_tanh")),
        tie_embeddings=hf.get("tie_word_embeddings", True),
        attention_scale=None if hf.get("scale_attn_weights", True) else 1.0,
    )


def _sizes(hf: dict) -> dict:
    """The sizes of a transformers-style (StarCoder2 / Llama) config."""
    n = hf["num_attention_heads"]
    return dict(
        vocab_size=hf["vocab_size"],
        embed_dim=hf["hidden_size"],
        mlp_dim=hf["intermediate_size"],
        num_layers=hf["num_hidden_layers"],
        num_heads=n,
        num_kv_heads=hf.get("num_key_value_heads") or n,
        max_positions=hf["max_position_embeddings"],
    )


def _starcoder2(hf: dict) -> DecoderConfig:
    return DecoderConfig(
        **_sizes(hf),
        sliding_window=hf.get("sliding_window"),
        norm_eps=hf.get("norm_epsilon", 1e-5),
        activation=_activation(hf.get("hidden_act", "gelu_pytorch_tanh")),
        attention_bias=hf.get("use_bias", True),
        mlp_bias=hf.get("use_bias", True),
        tie_embeddings=hf.get("tie_word_embeddings", True),
        **_rope(hf),
    )


def _llama(hf: dict) -> DecoderConfig:
    n = hf["num_attention_heads"]
    head_dim = hf.get("head_dim")
    if head_dim == hf["hidden_size"] // n:
        head_dim = None  # The default, written out by transformers 5.
    return DecoderConfig(
        **_sizes(hf),
        head_dim=head_dim,
        norm="rmsnorm",
        norm_eps=hf.get("rms_norm_eps", 1e-6),
        activation=_activation(hf.get("hidden_act", "silu")),
        gated_mlp=True,
        attention_bias=hf.get("attention_bias", False),
        mlp_bias=hf.get("mlp_bias", False),
        tie_embeddings=hf.get("tie_word_embeddings", False),
        **_rope(hf),
    )


_FROM_HF = {
    "codeshell": _codeshell,
    "gpt_bigcode": _gpt_bigcode,
    "starcoder2": _starcoder2,
    "llama": _llama,
}


def check_exportable(config: DecoderConfig, family: str) -> None:
    """Raises `ConfigError` naming every setting ``family``'s layout cannot express."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown family {family!r}; one of {FAMILIES}")
    c, problems = config, []
    gpt2_like = family in ("codeshell", "gpt_bigcode")
    if gpt2_like and (
        c.norm != "layernorm" or c.gated_mlp or not (c.attention_bias and c.mlp_bias)
    ):
        problems.append("needs LayerNorm, an ungated MLP and biases everywhere")
    if family != "llama" and c.head_dim not in (None, c.embed_dim // c.num_heads):
        problems.append("head_dim must be embed_dim // num_heads")
    if family == "codeshell" and c.rope_base != CODESHELL_ROPE_BASE:
        problems.append(f"RoPE base is fixed at {CODESHELL_ROPE_BASE:g} in CodeShell")
    if family == "gpt_bigcode":
        if c.position_embedding != "learned":
            problems.append("needs learned positions")
        if c.num_kv_heads not in (1, c.num_heads):
            problems.append("num_kv_heads must be 1 (MQA) or num_heads (MHA)")
        if c.attention_scale not in (None, 1.0):
            problems.append("attention_scale must be head_dim**-0.5 or 1")
    elif c.attention_scale is not None:
        problems.append("attention_scale must be head_dim**-0.5")
    if family in ("starcoder2", "llama") and c.position_embedding != "rope":
        problems.append("needs RoPE")
    if family == "starcoder2" and (
        c.norm != "layernorm" or c.gated_mlp or c.attention_bias != c.mlp_bias
    ):
        problems.append("needs LayerNorm, an ungated MLP and one use_bias for all projections")
    if family == "llama" and (c.norm != "rmsnorm" or not c.gated_mlp):
        problems.append("needs RMSNorm and a gated MLP")
    if family != "starcoder2" and c.sliding_window is not None:
        problems.append("has no sliding window")
    if problems:
        raise ConfigError(f"cannot export to {family}: " + "; ".join(problems))


def to_hf(config: DecoderConfig, family: str) -> dict:
    """The config.json dict of ``config`` in ``family``'s layout."""
    check_exportable(config, family)
    c = config
    activation = _HF_ACTIVATIONS[c.activation]
    out = {"architectures": [_ARCHITECTURES[family]], "vocab_size": c.vocab_size}
    if family in ("codeshell", "gpt_bigcode"):
        out |= {
            "model_type": family,
            "n_embd": c.embed_dim,
            "n_inner": c.mlp_dim,
            "n_layer": c.num_layers,
            "n_head": c.num_heads,
            "n_positions": c.max_positions,
            "layer_norm_epsilon": c.norm_eps,
            "activation_function": activation,
            "tie_word_embeddings": c.tie_embeddings,
        }
    if family == "codeshell":
        out |= {
            "group_query_attention": True,
            "num_query_groups": c.num_kv_heads,
            "position_embedding_type": "rope"
            if c.position_embedding == "rope"
            else "learned_absolute",
            "rope_scaling": (
                {"type": c.rope_scaling, "factor": c.rope_scaling_factor}
                if c.rope_scaling
                else None
            ),
        }
    elif family == "gpt_bigcode":
        out |= {
            "multi_query": c.num_kv_heads == 1,
            "scale_attn_weights": c.attention_scale is None,
            "attn_pdrop": 0.0,
            "embd_pdrop": 0.0,
            "resid_pdrop": 0.0,
        }
    else:
        out |= {
            "model_type": family,
            "hidden_size": c.embed_dim,
            "intermediate_size": c.mlp_dim,
            "num_hidden_layers": c.num_layers,
            "num_attention_heads": c.num_heads,
            "num_key_value_heads": c.num_kv_heads,
            "max_position_embeddings": c.max_positions,
            "hidden_act": activation,
            "tie_word_embeddings": c.tie_embeddings,
            **_rope_out(c),
        }
    if family == "starcoder2":
        out |= {
            "norm_epsilon": c.norm_eps,
            "use_bias": c.attention_bias,
            "sliding_window": c.sliding_window,
            "attention_dropout": 0.0,
            "residual_dropout": 0.0,
            "embedding_dropout": 0.0,
        }
    elif family == "llama":
        out |= {
            "rms_norm_eps": c.norm_eps,
            "head_dim": c.resolved_head_dim,
            "attention_bias": c.attention_bias,
            "mlp_bias": c.mlp_bias,
        }
    return out


NUMERICS = (
    "dtype",
    "param_dtype",
    "remat",
    "attention_impl",
    "attention_query_chunk",
    "loss_chunk",
    "initializer_range",
)
"""`DecoderConfig` fields that are how a model runs or was initialised, not what it is."""


def differences(expected: DecoderConfig, actual: DecoderConfig) -> list[str]:
    """``'field: expected X, checkpoint Y'`` for every architecture field that differs
    (`NUMERICS` are not compared); empty when `actual` is the model `expected` names."""
    ours, theirs = vars(expected), vars(actual)
    return [
        f"{k}: expected {ours[k]!r}, checkpoint {theirs[k]!r}"
        for k in ours
        if k not in NUMERICS and ours[k] != theirs[k]
    ]
