"""The memory plan: exact parameter and optimizer bytes per device on a sharded mesh, an
activation estimate that follows the remat policy, and a refusal that shows the plan."""

import dataclasses

import pytest

from codeprop.models import decoder
from codeprop.train import memory_plan

from conftest import run_on_simulated_devices

SHARDED = r"""
import json, sys
import jax, optax
from codeprop.models import decoder
from codeprop.train import memory_plan, partitioning, pretrain

config = decoder.tiny(vocab_size=96).replace(embed_dim=32, mlp_dim=64, num_heads=4, num_kv_heads=2)
tx = optax.adamw(1e-3)
out = {}
for name, mesh_config in {
    "fsdp 2 x tensor 2 x data 2": partitioning.MeshConfig(data=2, fsdp=2, tensor=2),
    "fsdp 8": partitioning.MeshConfig(data=1, fsdp=8),
}.items():
    mesh = partitioning.make_mesh(mesh_config)
    shardings = pretrain.state_shardings(config, tx, mesh)
    state = pretrain.init_state(config, tx, 0, shardings)
    plan = memory_plan.plan(
        config, state.params, shardings.params, state.opt_state, shardings.opt_state, mesh,
        batch_size=16, seq_len=32, accumulation=2)
    held = {}
    for part in ("params", "opt_state"):
        per_device = {}
        for leaf in jax.tree.leaves(getattr(state, part)):
            for shard in leaf.addressable_shards:
                per_device[shard.device.id] = per_device.get(shard.device.id, 0) + shard.data.nbytes
        held[part] = sorted(set(per_device.values()))
    out[name] = {"plan": [plan.parameters, plan.optimizer, plan.gradients, plan.micro_batch],
                 "held": held, "table": plan.table()}
json.dump(out, sys.stdout)
"""


def test_parameter_and_optimizer_bytes_equal_what_each_device_holds():
    out = run_on_simulated_devices(SHARDED)
    for name, got in out.items():
        parameters, optimizer, gradients, micro_batch = got["plan"]
        # Every device holds the same bytes (a list of one value), the plan's.
        assert got["held"]["params"] == [parameters], name
        assert got["held"]["opt_state"] == [optimizer], name
        assert gradients == 2 * parameters  # float32 gradients and their accumulator
        assert micro_batch == 16 // 4 // 2 if name.startswith("fsdp 2") else 16 // 8 // 2
        assert "parameters" in got["table"] and "activations (estimate" in got["table"]
    # Sharding over 8 devices holds less per device than over 2 x 2 parameter shards.
    assert out["fsdp 8"]["plan"][0] < out["fsdp 2 x tensor 2 x data 2"]["plan"][0]


def test_activations_follow_the_remat_policy_and_the_sizes():
    config = decoder.codeshell_1b().replace(dtype="bfloat16")
    sizes = {
        remat: memory_plan.activation_bytes(config.replace(remat=remat), 4, 2048)
        for remat in ("none", "dots", "full")
    }
    assert sizes["none"] > sizes["dots"] > sizes["full"]
    full = config.replace(remat="full")
    assert memory_plan.activation_bytes(full, 8, 2048) > memory_plan.activation_bytes(full, 4, 2048)
    assert memory_plan.activation_bytes(full, 4, 2048, tensor=4) < sizes["full"]
    # float32 compute doubles the stored block inputs.
    f32 = memory_plan.activation_bytes(full.replace(dtype="float32"), 4, 2048)
    assert f32 > sizes["full"]


def test_a_plan_that_does_not_fit_is_refused_with_the_plan():
    plan = memory_plan.MemoryPlan(
        mesh={"data": 1, "fsdp": 8, "tensor": 1},
        parameters=3 << 30,
        gradients=3 << 30,
        optimizer=6 << 30,
        activations=70 << 30,
        capacity=80 << 30,
        micro_batch=8,
        seq_len=2048,
    )
    assert plan.total == 82 << 30 and not plan.fits()
    with pytest.raises(memory_plan.MemoryPlanError, match="needs 82.00 GiB of 80.00 GiB") as e:
        memory_plan.check(plan)
    assert "optimizer state" in str(e.value) and "fsdp 8" in str(e.value)
    unknown = dataclasses.replace(plan, capacity=None)  # a platform that does not say
    assert unknown.fits() and memory_plan.check(unknown) is unknown
