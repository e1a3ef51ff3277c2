"""Multi-host start-up: one JAX process per host (multi-controller), from flags or the
environment.

On Cloud TPU, GKE and SLURM `jax.distributed.initialize()` finds the coordinator itself;
elsewhere — e.g. several processes on one machine, CPU collectives over gloo — give the
coordinator address, the number of processes and this process's id, as ``--coordinator_address``
/ ``--num_processes`` / ``--process_id`` or ``CODEPROP_COORDINATOR_ADDRESS`` /
``CODEPROP_NUM_PROCESSES`` / ``CODEPROP_PROCESS_ID``.
"""

from __future__ import annotations

import os

import jax


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    auto: bool = False,
) -> bool:
    """Starts JAX's distributed runtime when configured; returns whether it did.

    Args:
      coordinator_address: ``host:port`` of process 0 (else the environment).
      num_processes, process_id: this job's size and this process's rank (else the
        environment).
      auto: call ``jax.distributed.initialize()`` without arguments (TPU pods, SLURM, GKE)
        when nothing is configured.
    """
    env = os.environ
    address = coordinator_address or env.get("CODEPROP_COORDINATOR_ADDRESS")
    count = num_processes or (
        int(env["CODEPROP_NUM_PROCESSES"]) if "CODEPROP_NUM_PROCESSES" in env else None
    )
    rank = (
        process_id
        if process_id is not None
        else (int(env["CODEPROP_PROCESS_ID"]) if "CODEPROP_PROCESS_ID" in env else None)
    )
    if address is None and count is None and rank is None:
        if auto:
            jax.distributed.initialize()
            return True
        return False
    if address is None or count is None or rank is None:
        raise ValueError(
            "multi-host needs all of coordinator_address, num_processes and process_id; got "
            f"{address!r}, {count!r}, {rank!r}"
        )
    jax.distributed.initialize(address, num_processes=count, process_id=rank)
    return True
