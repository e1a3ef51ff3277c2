"""What a sharded decoder training step holds per device, known before anything is allocated.

`plan` lays the train state out as the mesh and the partitioning rules say and counts, per
device:

- parameters, gradients and optimizer state: exact. Each leaf of the abstract state
  (`jax.eval_shape`) takes ``prod(sharding.shard_shape(shape)) * itemsize`` bytes on every
  device that holds a shard (a `NamedSharding` gives every device a shard of the same
  shape); gradients have the parameters' shapes and dtype, plus a float32 accumulator when
  the step accumulates micro-batches;
- activations: an estimate from the model's sizes for one micro-batch on one device (the
  rows of the batch over ``data`` x ``fsdp``, heads and MLP over ``tensor``): what the
  backward pass keeps per block under the rematerialisation policy (``none``: every
  block's intermediates; ``dots``: the matmul outputs; ``full``: only each block's input)
  plus one block's intermediates being recomputed, and the float32 attention scores of
  one query chunk. XLA's own temporaries are not counted.

`check` raises `MemoryPlanError` with the plan's table when the total exceeds the device's
memory (``bytes_limit`` of `jax.Device.memory_stats`, when the platform reports it).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np

from codeprop.models import decoder as decoder_lib

_GIB = 1 << 30


class MemoryPlanError(ValueError):
    """A configuration whose plan does not fit the device; the message holds the plan."""


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
    """Bytes per device.

    Attributes:
      mesh: mesh axis name -> size.
      parameters, gradients, optimizer: exact (see the module docstring).
      activations: the estimate.
      capacity: the device's memory in bytes, or None where the platform does not say.
      micro_batch: sequences per device per micro-batch; seq_len: their length.
    """

    mesh: dict[str, int]
    parameters: int
    gradients: int
    optimizer: int
    activations: int
    capacity: int | None
    micro_batch: int
    seq_len: int

    @property
    def total(self) -> int:
        return self.parameters + self.gradients + self.optimizer + self.activations

    def fits(self) -> bool:
        return self.capacity is None or self.total <= self.capacity

    def table(self) -> str:
        """The plan as aligned lines (GiB per device)."""
        mesh = " x ".join(f"{k} {v}" for k, v in self.mesh.items())
        rows = [
            ("parameters", self.parameters),
            ("gradients", self.gradients),
            ("optimizer state", self.optimizer),
            (
                f"activations (estimate, {self.micro_batch} x {self.seq_len} tokens)",
                self.activations,
            ),
            ("total", self.total),
        ]
        if self.capacity is not None:
            rows.append(("device memory", self.capacity))
        width = max(len(name) for name, _ in rows)
        lines = [f"memory per device (mesh {mesh}):"]
        lines += [f"  {name:<{width}}  {value / _GIB:9.3f} GiB" for name, value in rows]
        return "\n".join(lines)


def sharded_bytes(abstract, shardings) -> int:
    """Bytes each device holds of a tree of arrays (or `jax.ShapeDtypeStruct`) laid out by
    a matching tree of `NamedSharding`."""
    total = 0
    for leaf, sharding in zip(jax.tree.leaves(abstract), jax.tree.leaves(shardings), strict=True):
        shape = sharding.shard_shape(tuple(leaf.shape))
        total += math.prod(shape) * np.dtype(leaf.dtype).itemsize
    return total


def activation_bytes(
    config: decoder_lib.DecoderConfig, micro_batch: int, seq_len: int, tensor: int = 1
) -> int:
    """The estimate of the activations the backward pass needs on one device.

    Args:
      config: the decoder (its ``dtype``, ``remat``, sizes and attention query chunk).
      micro_batch: sequences per device per micro-batch.
      seq_len: tokens per sequence.
      tensor: the ``tensor`` mesh axis size (splits heads and the MLP).
    """
    itemsize = np.dtype(config.dtype).itemsize
    tokens = micro_batch * seq_len
    head_dim = config.resolved_head_dim
    qkv = (config.num_heads + 2 * config.num_kv_heads) * head_dim // tensor
    mlp = config.mlp_dim // tensor * (3 if config.gated_mlp else 2)
    # One block: two norm outputs, q/k/v, the attention output, the MLP's hidden values.
    block = tokens * itemsize * (2 * config.embed_dim + qkv + config.embed_dim + mlp)
    saved = {
        "none": block,
        "dots": tokens * itemsize * (qkv + 2 * config.embed_dim + mlp // 2),
        "full": tokens * itemsize * config.embed_dim,
    }[config.remat]
    chunk = min(seq_len, config.attention_query_chunk or seq_len)
    scores = micro_batch * max(config.num_heads // tensor, 1) * chunk * seq_len * 4
    residual = tokens * config.embed_dim * 4  # the float32 embeddings and final hidden
    return config.num_layers * saved + block + scores + 2 * residual


def device_capacity(device: jax.Device | None = None) -> int | None:
    """The device's memory in bytes (``bytes_limit``), or None where it is not reported."""
    device = device or jax.devices()[0]
    try:
        stats = device.memory_stats()
    except (AttributeError, NotImplementedError, RuntimeError):
        return None
    return int(stats["bytes_limit"]) if stats and "bytes_limit" in stats else None


def plan(
    config: decoder_lib.DecoderConfig,
    params,
    param_shardings,
    opt_state,
    opt_shardings,
    mesh: jax.sharding.Mesh,
    batch_size: int,
    seq_len: int,
    accumulation: int = 1,
    capacity: int | None = -1,
) -> MemoryPlan:
    """The per-device plan of one training step.

    Args:
      config: the decoder.
      params, opt_state: abstract (`jax.eval_shape`) or real trees.
      param_shardings, opt_shardings: their `NamedSharding` trees.
      mesh: the device mesh (axes ``data``, ``fsdp``, ``tensor``).
      batch_size: sequences per optimizer step (all devices, all micro-batches).
      seq_len: tokens per sequence.
      accumulation: micro-batches per step.
      capacity: the device memory in bytes; -1 asks the first device, None for unknown.
    """
    shape = dict(mesh.shape)
    rows = shape.get("data", 1) * shape.get("fsdp", 1)
    if batch_size % (rows * accumulation):
        raise ValueError(
            f"batch size {batch_size} is not a multiple of data x fsdp ({rows}) x "
            f"accumulation ({accumulation})"
        )
    parameters = sharded_bytes(params, param_shardings)
    gradients = parameters
    if accumulation > 1:  # float32 sums of the micro-batches' gradients
        f32 = jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, np.float32), params)
        gradients += sharded_bytes(f32, param_shardings)
    micro_batch = batch_size // rows // accumulation
    return MemoryPlan(
        mesh=shape,
        parameters=parameters,
        gradients=gradients,
        optimizer=sharded_bytes(opt_state, opt_shardings),
        activations=activation_bytes(config, micro_batch, seq_len, shape.get("tensor", 1)),
        capacity=device_capacity(mesh.devices.flat[0]) if capacity == -1 else capacity,
        micro_batch=micro_batch,
        seq_len=seq_len,
    )


def check(memory: MemoryPlan) -> MemoryPlan:
    """The plan, or `MemoryPlanError` with its table when it does not fit."""
    if not memory.fits():
        raise MemoryPlanError(
            f"this configuration does not fit the device: it needs {memory.total / _GIB:.2f} "
            f"GiB of {memory.capacity / _GIB:.2f} GiB per device\n{memory.table()}\n"
            "Shard the parameters further (fsdp, tensor), accumulate more micro-batches, "
            "use remat='full' or shorten the sequences."
        )
    return memory
