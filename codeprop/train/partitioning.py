"""Device mesh and logical-axis rules for sharded training.

The mesh has three axes: ``data`` (batch), ``fsdp`` (batch, and parameters sharded along
their ``embed`` axis — ZeRO-3 style) and ``tensor`` (heads, MLP and vocabulary — Megatron
style). Parameters and activations carry logical names; they and `RULES`, which maps them to
mesh axes, are defined in `codeprop.models.axes` (gin can replace the rules).
"""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from codeprop.models import axes

MESH_AXES = axes.MESH_AXES
RULES = axes.RULES


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """Sizes of the ``data``, ``fsdp`` and ``tensor`` axes; one may be -1 (the rest)."""

    data: int = -1
    fsdp: int = 1
    tensor: int = 1

    def shape(self, num_devices: int) -> tuple[int, int, int]:
        sizes = [self.data, self.fsdp, self.tensor]
        if sizes.count(-1) > 1:
            raise ValueError(f"MeshConfig: at most one axis may be -1, got {sizes}")
        known = math.prod(s for s in sizes if s != -1)
        if -1 in sizes:
            if num_devices % known:
                raise ValueError(f"MeshConfig {sizes}: {num_devices} devices not divisible")
            sizes[sizes.index(-1)] = num_devices // known
        if math.prod(sizes) != num_devices:
            raise ValueError(
                f"MeshConfig {dict(zip(MESH_AXES, sizes))} needs {math.prod(sizes)} devices; "
                f"there are {num_devices}"
            )
        return tuple(sizes)


DATA_PARALLEL = MeshConfig()  # every device on the data axis


def make_mesh(config: MeshConfig, devices=None) -> Mesh:
    """A ('data', 'fsdp', 'tensor') mesh over ``devices`` (default: all)."""
    devices = jax.devices() if devices is None else devices
    shape = config.shape(len(devices))
    return Mesh(np.asarray(devices).reshape(shape), MESH_AXES)


def logical_shardings(abstract_boxed, mesh: Mesh, rules=RULES):
    """NamedShardings for a tree whose leaves may be flax `nn.Partitioned` boxes (from
    `jax.eval_shape` of an init function); unboxed leaves are replicated."""
    specs = nn.get_partition_spec(abstract_boxed)
    return nn.logical_to_mesh_sharding(specs, mesh, rules)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Batch arrays [B, ...]: rows split over ``data`` x ``fsdp``."""
    return NamedSharding(mesh, PartitionSpec(("data", "fsdp")))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def follow_params(tree, param_shardings, mesh: Mesh):
    """Shardings for an optimizer-state tree: a leaf whose path ends with a parameter's
    path gets that parameter's sharding (Adam's moments); others are replicated."""
    by_path = {
        tuple(path): sharding
        for path, sharding in jax.tree_util.tree_leaves_with_path(param_shardings)
    }

    def pick(path, leaf):
        for length in range(len(path), 0, -1):
            if tuple(path[-length:]) in by_path and np.ndim(leaf) > 0:
                return by_path[tuple(path[-length:])]
        return replicated(mesh)

    return jax.tree_util.tree_map_with_path(pick, tree)
