"""Where a classifier's train state and batches live: the default device, or a mesh.

On a mesh (`codeprop.train.partitioning`) the parameters are laid out by their logical
axes and the rules (a decoder's ``embed`` axis over ``fsdp``, heads and MLP over
``tensor``), the optimizer state follows the parameters, and a batch's token sequences
are split over ``data`` x ``fsdp``; the per-row arrays (labels, masks, which sequence each
row reads, auxiliary inputs) are small and replicated. The state is created directly in
its shardings (a jitted initialisation with ``out_shardings``), so no device ever holds
the whole model; the jitted steps then follow the data's shardings.

Before anything is allocated, `Placement.init_state` hands the abstract state and its
shardings to a check (the LLM probe's memory plan, `codeprop.train.memory_plan`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from codeprop.train import partitioning, steps


@dataclasses.dataclass(frozen=True)
class Placement:
    """The mesh a classifier trains on, or None for the default device.

    Attributes:
      mesh: the device mesh (axes ``data``, ``fsdp``, ``tensor``), or None.
      rules: logical-axis rules for the parameters.
    """

    mesh: Mesh | None = None
    rules: tuple = partitioning.RULES

    @classmethod
    def of(cls, config: partitioning.MeshConfig | None) -> Placement:
        return cls(None if config is None else partitioning.make_mesh(config))

    @property
    def rows_per_shard(self) -> int:
        """How many shards a batch's sequences are split into (data x fsdp)."""
        if self.mesh is None:
            return 1
        return self.mesh.shape["data"] * self.mesh.shape["fsdp"]

    def plan_mesh(self) -> Mesh:
        """The mesh a memory plan counts on: this one, or the first device alone."""
        if self.mesh is not None:
            return self.mesh
        return partitioning.make_mesh(partitioning.MeshConfig(), [jax.devices()[0]])

    def state_shardings(self, model, first: dict, abstract: steps.TrainState, mesh: Mesh):
        """NamedShardings of every leaf of the abstract train state on `mesh`."""
        boxed = jax.eval_shape(
            lambda: model.init(
                jax.random.key(0), first["inputs"], first.get("aux"), first.get("rows")
            )
        )["params"]
        params = partitioning.logical_shardings(boxed, mesh, self.rules)
        opt_state = partitioning.follow_params(abstract.opt_state, params, mesh)
        replicated = partitioning.replicated(mesh)
        return abstract.replace(step=replicated, params=params, opt_state=opt_state, rng=replicated)

    def init_state(
        self,
        model,
        first: dict,
        seed: int,
        tx,
        initial_params: Callable | None = None,
        check: Callable | None = None,
    ) -> steps.TrainState:
        """A fresh train state (parameters from `seed`, `initial_params` applied), created
        in its shardings; `check(abstract_state, shardings, mesh)` runs first."""

        def init():
            return steps.create_train_state(model, first, seed, tx)

        if self.mesh is None and check is None:
            state = init()
            if initial_params is not None:
                params = initial_params(state.params)
                state = state.replace(params=params, opt_state=state.tx.init(params))
            return state
        abstract = jax.eval_shape(init)
        mesh = self.plan_mesh()
        shardings = self.state_shardings(model, first, abstract, mesh)
        if check is not None:
            check(abstract, shardings, mesh)
        if self.mesh is None:
            return self.init_state(model, first, seed, tx, initial_params)
        state = jax.jit(init, out_shardings=shardings)()
        if initial_params is not None:
            params = jax.device_put(initial_params(state.params), shardings.params)
            opt_state = jax.jit(tx.init, out_shardings=shardings.opt_state)(params)
            state = state.replace(params=params, opt_state=opt_state)
        return state

    def batch(self, batch: dict, leading: int = 0) -> dict:
        """A batch put on the mesh: ``inputs`` [*lead, S, T] split along S, the rest
        replicated (unchanged without a mesh). `leading`: stacked axes before S."""
        if self.mesh is None:
            return batch
        split = NamedSharding(self.mesh, PartitionSpec(*[None] * leading, ("data", "fsdp")))
        replicated = partitioning.replicated(self.mesh)
        return {
            name: jax.device_put(value, split if name == "inputs" else replicated)
            for name, value in batch.items()
        }


DEFAULT = Placement()
"""The default device."""
