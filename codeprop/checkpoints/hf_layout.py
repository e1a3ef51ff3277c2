"""Tensor layouts: codeprop `Decoder` parameters <-> Hugging Face state-dict tensors.

torch ``Linear`` weights are [out, in]; codeprop kernels are [in, out] with the head axes
split out (query [D, N, H], key/value [D, K, H], attention output [N, H, D]).

Fused attention projections (``c_attn``, [out, D] with out split as below):
- CodeShell and GPTBigCode MQA: [query, all N heads | key, K heads | value, K heads].
- GPTBigCode MHA: per head, [query_h | key_h | value_h] for h = 0 .. N-1.

Both directions are written with jnp operations only, so `jax.eval_shape` of `to_hf`
gives the tensor names and shapes a checkpoint must have without allocating anything.
"""

from __future__ import annotations

import jax.numpy as jnp

from codeprop.models.decoder import DecoderConfig

# Persistent buffers some checkpoints carry that are not parameters (recomputed here).
SKIPPED_SUFFIXES = (".rotary_emb.inv_freq", ".attn.bias", ".attn.masked_bias")


def tensor_names(family: str) -> dict:
    """HF name templates ({i} = layer) of each codeprop parameter module."""
    if family in ("codeshell", "gpt_bigcode"):
        block = "transformer.h.{i}."
        return {
            "embedder": "transformer.wte",
            "position_embedder": "transformer.wpe",
            "final_norm": "transformer.ln_f",
            "pre_attention_norm": block + "ln_1",
            "pre_mlp_norm": block + "ln_2",
            "qkv": block + "attn.c_attn",
            "out": block + "attn.c_proj",
            "fc": block + "mlp.c_fc",
            "proj": block + "mlp.c_proj",
        }
    block = "model.layers.{i}."
    return {
        "embedder": "model.embed_tokens",
        "final_norm": "model.norm",
        "pre_attention_norm": block + "input_layernorm",
        "pre_mlp_norm": block + "post_attention_layernorm",
        "query": block + "self_attn.q_proj",
        "key": block + "self_attn.k_proj",
        "value": block + "self_attn.v_proj",
        "out": block + "self_attn.o_proj",
        "fc": block + "mlp.c_fc",
        "proj": block + "mlp.c_proj",
        "gate": block + "mlp.gate_proj",
        "up": block + "mlp.up_proj",
        "down": block + "mlp.down_proj",
    }


def _fused(family: str) -> bool:
    return family in ("codeshell", "gpt_bigcode")


def _interleaved(config: DecoderConfig, family: str) -> bool:
    return family == "gpt_bigcode" and config.num_kv_heads > 1


def to_hf(params: dict, config: DecoderConfig, family: str) -> dict:
    """HF state-dict tensors (name -> array) of codeprop ``params``."""
    c, names = config, tensor_names(family)
    d, n, k, h = c.embed_dim, c.num_heads, c.num_kv_heads, c.resolved_head_dim
    out = {}

    def norm(src: dict, name: str):
        out[name + ".weight"] = src["scale"]
        if "bias" in src:
            out[name + ".bias"] = src["bias"]

    def linear(src: dict, name: str, kernel_in: int):
        kernel = src["kernel"]  # [in..., out...]
        out[name + ".weight"] = kernel.reshape(kernel_in, -1).T  # [out, in]
        if "bias" in src:
            out[name + ".bias"] = src["bias"].reshape(-1)

    out[names["embedder"] + ".weight"] = params["embedder"]["embedding"]
    if c.position_embedding == "learned":
        out[names["position_embedder"] + ".weight"] = params["position_embedder"]["embedding"]
    for i in range(c.num_layers):
        block = params[f"blocks_{i}"]
        name = {key: template.format(i=i) for key, template in names.items()}
        attention = block["attention"]
        norm(block["pre_attention_norm"], name["pre_attention_norm"])
        norm(block["pre_mlp_norm"], name["pre_mlp_norm"])
        if _fused(family):
            q = attention["query"]["kernel"].reshape(d, n * h)
            kk = attention["key"]["kernel"].reshape(d, k * h)
            v = attention["value"]["kernel"].reshape(d, k * h)
            qb, kb, vb = (attention[p]["bias"].reshape(-1) for p in ("query", "key", "value"))
            if _interleaved(c, family):  # [D, N, 3H]: per head q | k | v
                kernel = jnp.concatenate([x.reshape(d, n, h) for x in (q, kk, v)], axis=-1).reshape(
                    d, -1
                )
                bias = jnp.concatenate([x.reshape(n, h) for x in (qb, kb, vb)], -1).reshape(-1)
            else:
                kernel = jnp.concatenate([q, kk, v], axis=-1)
                bias = jnp.concatenate([qb, kb, vb])
            out[name["qkv"] + ".weight"] = kernel.T
            out[name["qkv"] + ".bias"] = bias
        else:
            for part in ("query", "key", "value"):
                linear(attention[part], name[part], d)
        linear(attention["out"], name["out"], n * h)
        mlp_parts = ("gate", "up", "down") if c.gated_mlp else ("fc", "proj")
        for part in mlp_parts:
            linear(block["mlp"][part], name[part], c.mlp_dim if part in ("down", "proj") else d)
    norm(params["final_norm"], names["final_norm"])
    if not c.tie_embeddings:
        out["lm_head.weight"] = params["lm_head"]["kernel"].T
    return out


def to_ours(tensors: dict, config: DecoderConfig, family: str) -> dict:
    """codeprop params from HF tensors (names and shapes already checked; see `hf.load`)."""
    c, names = config, tensor_names(family)
    d, n, k, h = c.embed_dim, c.num_heads, c.num_kv_heads, c.resolved_head_dim
    t = {name: jnp.asarray(value) for name, value in tensors.items()}

    def norm(name: str) -> dict:
        src = {"scale": t[name + ".weight"]}
        if name + ".bias" in t:
            src["bias"] = t[name + ".bias"]
        return src

    def linear(name: str, kernel_shape: tuple, bias_shape: tuple) -> dict:
        # [out, in] -> [in, out] -> the kernel's head-split shape.
        src = {"kernel": t[name + ".weight"].T.reshape(kernel_shape)}
        if name + ".bias" in t:
            src["bias"] = t[name + ".bias"].reshape(bias_shape)
        return src

    params = {"embedder": {"embedding": t[names["embedder"] + ".weight"]}}
    if c.position_embedding == "learned":
        params["position_embedder"] = {"embedding": t[names["position_embedder"] + ".weight"]}
    for i in range(c.num_layers):
        name = {key: template.format(i=i) for key, template in names.items()}
        if _fused(family):
            kernel = t[name["qkv"] + ".weight"].T  # [D, (N + 2K) H]
            bias = t[name["qkv"] + ".bias"]
            if _interleaved(c, family):
                kernel = kernel.reshape(d, n, 3, h)  # per head: q | k | v
                bias = bias.reshape(n, 3, h)
                parts = [(kernel[:, :, j], bias[:, j]) for j in range(3)]
            else:
                cuts = [n * h, (n + k) * h]
                parts = list(zip(jnp.split(kernel, cuts, axis=1), jnp.split(bias, cuts)))
            heads = (n, k, k)
            attention = {
                part: {"kernel": kw.reshape(d, m, h), "bias": b.reshape(m, h)}
                for part, (kw, b), m in zip(("query", "key", "value"), parts, heads)
            }
        else:
            attention = {
                "query": linear(name["query"], (d, n, h), (n, h)),
                "key": linear(name["key"], (d, k, h), (k, h)),
                "value": linear(name["value"], (d, k, h), (k, h)),
            }
        attention["out"] = linear(name["out"], (n, h, d), (d,))
        if c.gated_mlp:
            mlp = {
                "gate": linear(name["gate"], (d, c.mlp_dim), (c.mlp_dim,)),
                "up": linear(name["up"], (d, c.mlp_dim), (c.mlp_dim,)),
                "down": linear(name["down"], (c.mlp_dim, d), (d,)),
            }
        else:
            mlp = {
                "fc": linear(name["fc"], (d, c.mlp_dim), (c.mlp_dim,)),
                "proj": linear(name["proj"], (c.mlp_dim, d), (d,)),
            }
        params[f"blocks_{i}"] = {
            "attention": attention,
            "mlp": mlp,
            "pre_attention_norm": norm(name["pre_attention_norm"]),
            "pre_mlp_norm": norm(name["pre_mlp_norm"]),
        }
    params["final_norm"] = norm(names["final_norm"])
    if not c.tie_embeddings:
        params["lm_head"] = {"kernel": t["lm_head.weight"].T}
    return params
