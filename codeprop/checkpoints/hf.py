"""Import and export Hugging Face safetensors checkpoints of decoder LMs.

``load(path) -> (DecoderConfig, params)`` reads a checkpoint directory — ``config.json``
(as transformers 4 or 5 write it) and ``model.safetensors`` or the shards listed in
``model.safetensors.index.json`` — of the families in `codeprop.checkpoints.hf_config`:
CodeShell, GPTBigCode (StarCoder, SantaCoder, TinyStarCoderPy), StarCoder2 and Llama
(DeepSeek-Coder). ``save(config, params, path, family)`` writes the same layout back;
``export(config, params, path, tokenizer_model)`` writes a StarCoder2 checkpoint with
codeprop's tokenizer that stock transformers loads alone (`hf_tokenizer`).

Only safetensors are read: pickled ``.bin``/``.pt`` weights are refused, never unpickled.
Every tensor is checked before conversion; a missing, unexpected or wrongly shaped tensor
raises `CheckpointError` listing all of them.

Example::

    config, params = hf.load("checkpoints/tiny_starcoder_py")
    logits = decoder.Decoder(config).apply({"params": params}, tokens)  # [B, T, V]
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from codeprop.checkpoints import hf_config, hf_layout
from codeprop.checkpoints.hf_config import ConfigError  # noqa: F401  (re-exported)
from codeprop.data import json_files
from codeprop.models import decoder

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
PICKLED = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_SHOWN = 20


class CheckpointError(ValueError):
    """A checkpoint whose files or tensors do not match its config."""


def weight_files(path: Path) -> list[Path]:
    """The safetensors files of a checkpoint directory, in shard order."""
    if (path / INDEX).exists():
        index = json_files.read_object(path / INDEX, CheckpointError)
        weight_map = index.get("weight_map")
        if not isinstance(weight_map, dict) or not all(
            isinstance(v, str) for v in weight_map.values()
        ):
            raise CheckpointError(f"{path / INDEX}: no weight_map of tensor name -> shard file")
        shards = sorted(set(weight_map.values()))
        missing = [s for s in shards if not (path / s).exists()]
        if missing:
            raise CheckpointError(f"{path / INDEX}: listed shards are missing: {missing}")
        return [path / s for s in shards]
    files = sorted(path.glob("*.safetensors"))
    if files:
        return files
    pickled = sorted(p.name for p in path.iterdir() if p.suffix in PICKLED)
    if pickled:
        raise CheckpointError(
            f"{path}: only pickled weights {pickled}; codeprop never unpickles. Convert them "
            "to safetensors first (e.g. transformers' save_pretrained(safe_serialization=True) "
            "in an environment you trust)."
        )
    raise CheckpointError(f"{path}: no {SINGLE}, {INDEX} or *.safetensors file")


def _read_tensors(files: list[Path]) -> dict[str, np.ndarray]:
    tensors = {}
    for file in files:
        try:
            with safe_open(file, framework="numpy") as f:
                for name in f.keys():  # noqa: SIM118 (safe_open is not iterable)
                    if name in tensors:
                        raise CheckpointError(
                            f"{file}: tensor {name} also appears in another shard"
                        )
                    tensors[name] = f.get_tensor(name)
        except CheckpointError:
            raise
        except Exception as error:  # noqa: BLE001 - safetensors' errors have no common base
            raise CheckpointError(f"{file}: not a readable safetensors file ({error})") from None
    return tensors


def expected_shapes(config: decoder.DecoderConfig, family: str) -> dict[str, tuple]:
    """HF tensor name -> shape of a checkpoint of ``config`` (computed without memory)."""
    params = jax.eval_shape(lambda: decoder.init_params(config, jax.random.key(0)))
    hf = jax.eval_shape(lambda p: hf_layout.to_hf(p, config, family), params)
    return {name: tuple(s.shape) for name, s in hf.items()}


def _listing(title: str, items: list[str]) -> str:
    more = f" (and {len(items) - _SHOWN} more)" if len(items) > _SHOWN else ""
    return f"{title} ({len(items)}): " + ", ".join(items[:_SHOWN]) + more


def check_tensors(tensors: dict, config: decoder.DecoderConfig, family: str, where: str) -> dict:
    """The tensors the config needs; raises `CheckpointError` listing every mismatch.

    Buffers (`hf_layout.SKIPPED_SUFFIXES`) are dropped, as is a tied ``lm_head.weight``
    equal to the token embedding.
    """
    expected = expected_shapes(config, family)
    tensors = {n: t for n, t in tensors.items() if not n.endswith(hf_layout.SKIPPED_SUFFIXES)}
    problems = []
    if config.tie_embeddings and "lm_head.weight" in tensors:
        head = tensors.pop("lm_head.weight")
        embedding = tensors.get(hf_layout.tensor_names(family)["embedder"] + ".weight")
        if (
            embedding is None
            or head.shape != embedding.shape
            or not np.array_equal(head, embedding)
        ):
            problems.append(
                "lm_head.weight differs from the token embedding but the config ties them "
                "(tie_word_embeddings)"
            )
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    shapes = sorted(
        f"{n} {tuple(tensors[n].shape)} (expected {expected[n]})"
        for n in set(expected) & set(tensors)
        if tuple(tensors[n].shape) != expected[n]
    )
    for title, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if items:
            problems.append(_listing(title, items))
    if problems:
        raise CheckpointError(
            f"{where}: {family} checkpoint does not match its config: " + "; ".join(problems)
        )
    return tensors


def load(path, *, param_dtype: str | None = None) -> tuple[decoder.DecoderConfig, dict]:
    """Reads a Hugging Face checkpoint directory.

    Args:
      path: directory with config.json and safetensors weights.
      param_dtype: dtype of the returned parameters (e.g. ``'bfloat16'`` for large models);
        None keeps the config's default (float32).

    Returns:
      (DecoderConfig, params) for `codeprop.models.decoder.Decoder`.
    """
    path = Path(path)
    config_file = path / "config.json"
    if not config_file.exists():
        raise CheckpointError(f"{path}: no config.json")
    hf = json_files.read_object(config_file, CheckpointError)
    try:
        family, config = hf_config.from_hf(hf)
    except ConfigError as error:
        raise CheckpointError(f"{config_file}: {error}") from None
    except (TypeError, ValueError, KeyError) as error:  # a field of the wrong type
        raise CheckpointError(f"{config_file}: {type(error).__name__}: {error}") from None
    if param_dtype is not None:
        config = config.replace(param_dtype=param_dtype)
    tensors = check_tensors(_read_tensors(weight_files(path)), config, family, str(path))
    dtype = jnp.dtype(config.param_dtype)
    params = hf_layout.to_ours({n: t.astype(dtype) for n, t in tensors.items()}, config, family)
    return config, params


def save(
    config: decoder.DecoderConfig,
    params: dict,
    path,
    family: str = "codeshell",
    *,
    dtype: str | None = None,
    max_shard_bytes: int = 5 * 2**30,
    extra_config: dict | None = None,
) -> list[Path]:
    """Writes ``params`` as a Hugging Face checkpoint of ``family`` into directory ``path``.

    Args:
      config: the model's config (must be expressible in ``family``; see
        `hf_config.check_exportable`).
      params: `Decoder` parameters.
      path: output directory (created; files are written atomically).
      family: ``'codeshell'``, ``'gpt_bigcode'``, ``'starcoder2'`` or ``'llama'``.
      dtype: tensor dtype on disk (e.g. ``'bfloat16'``); None keeps the parameters' dtype.
      max_shard_bytes: larger checkpoints are split into shards with an index file.
      extra_config: more ``config.json`` entries (e.g. ``eos_token_id``).

    Returns:
      The files written.
    """
    hf = hf_config.to_hf(config, family)
    tensors = hf_layout.to_hf(params, config, family)
    tensors = {n: np.ascontiguousarray(np.asarray(t, dtype or t.dtype)) for n, t in tensors.items()}
    hf["torch_dtype"] = hf["dtype"] = str(next(iter(tensors.values())).dtype)
    hf |= extra_config or {}
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    shards: list[dict] = [{}]
    size = 0
    for name in sorted(tensors):
        if shards[-1] and size + tensors[name].nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = tensors[name]
        size += tensors[name].nbytes
    written = []
    if len(shards) == 1:
        names = [SINGLE]
    else:
        names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
        index = {
            "metadata": {"total_size": int(sum(t.nbytes for t in tensors.values()))},
            "weight_map": {n: file for file, shard in zip(names, shards) for n in shard},
        }
        written.append(_atomic(path / INDEX, lambda f: f.write_text(json.dumps(index, indent=2))))
    for file, shard in zip(names, shards):
        written.append(
            _atomic(path / file, lambda f, s=shard: save_file(s, str(f), metadata={"format": "pt"}))
        )
    written.append(
        _atomic(path / "config.json", lambda f: f.write_text(json.dumps(hf, indent=2) + "\n"))
    )
    return written


def export(
    config: decoder.DecoderConfig,
    params: dict,
    path,
    tokenizer_model,
    *,
    family: str = "starcoder2",
    dtype: str | None = None,
) -> list[Path]:
    """Writes a checkpoint that stock transformers loads from ``path`` alone.

    The weights in ``family``'s layout (`save`; StarCoder2 by default, which transformers
    ships, unlike CodeShell), the SentencePiece tokenizer ``tokenizer_model`` (a ``*.model``
    path or its bytes) as ``tokenizer.json`` and its configs
    (`codeprop.checkpoints.hf_tokenizer`), and ``generation_config.json`` with its end and
    padding tokens. Then ``AutoModelForCausalLM.from_pretrained(path)`` and
    ``AutoTokenizer.from_pretrained(path)`` need neither remote code nor codeprop.

    Returns:
      The files written.
    """
    from codeprop.checkpoints import hf_tokenizer
    from codeprop.tokens import tokenization

    tokenizer = tokenization.SentencePieceTokenizer(tokenizer_model)
    if tokenizer.vocab_size > config.vocab_size:
        raise CheckpointError(
            f"{tokenizer_model}: the tokenizer has {tokenizer.vocab_size} tokens, more than "
            f"the model's embedding table ({config.vocab_size})"
        )
    ids = {
        "bos_token_id": tokenizer.eos_id,
        "eos_token_id": tokenizer.eos_id,
        "pad_token_id": tokenizer.pad_id,
    }
    written = save(config, params, path, family, dtype=dtype, extra_config=ids)
    written += hf_tokenizer.write(tokenizer_model, path, max_length=config.max_positions)
    text = json.dumps(ids, indent=2) + "\n"
    written.append(_atomic(Path(path) / "generation_config.json", lambda f: f.write_text(text)))
    return written


def _atomic(target: Path, write) -> Path:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
