"""Executor backends: where the commands of a sweep actually run.

A backend turns a target description (an inventory file, a scenario, ...) into a ``Cluster``: an
executor plus the facts the agent needs (hosts, GPUs per node, GPU model, scheduler). Real nodes
over SSH are built in; other backends (the simulator) are plugged in by the composition root with
``register_backend`` so nothing below the root imports them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from diagnostics.types import ValidationError


class BackendError(ValidationError):
    """No backend can open the requested target."""


@dataclass
class Cluster:
    """An opened target: run commands with ``executor``; ``close()`` when done."""

    executor: Any
    hosts: list[str]
    scheduler: str = "none"
    gpus_per_node: int | None = None
    gpu_model: str | None = None
    workload: dict[str, Any] | None = None  # the training job (perf model inputs), when described
    kind: str = "inventory"
    handle: Any = None  # backend-specific object (the simulated cluster), for telemetry and tests
    scenario: Any = None
    notes: list[str] = field(default_factory=list)
    slurm: Any = None  # diagnostics.scheduling.SlurmPlacement: controller host, Slurm node names
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self.closers):
            with contextlib.suppress(Exception):  # closing a dead connection must not hide the result
                close()
        self.closers.clear()


Opener = Callable[..., Cluster]
_BACKENDS: dict[str, Opener] = {}


def register_backend(kind: str, opener: Opener) -> None:
    _BACKENDS[kind] = opener


def backend_kinds() -> tuple[str, ...]:
    return tuple(sorted(_BACKENDS))


def open_cluster(kind: str, source: Any, **options: Any) -> Cluster:
    opener = _BACKENDS.get(kind)
    if opener is None:
        raise BackendError(f"no '{kind}' backend is plugged in (have: {', '.join(backend_kinds()) or 'none'}); "
                           "the simulator is plugged in by the clusterdoc command line, the benchmark and tests")
    return opener(source, **options)


def _open_inventory(path: Any, *, ssh_config: Any = None, default_scheduler: str | None = None, **_: Any) -> Cluster:
    from diagnostics.executors.ssh import SSHConfig, SSHExecutor
    from diagnostics.inventory import load_inventory

    inventory = load_inventory(path)
    executor = SSHExecutor(inventory, ssh_config or SSHConfig())
    return Cluster(executor=executor, hosts=list(inventory.names), scheduler=inventory.scheduler or default_scheduler or "none",
                   gpus_per_node=inventory.gpus_per_node, gpu_model=inventory.gpu, workload=inventory.workload,
                   kind="inventory",
                   handle=inventory, closers=[executor.close], slurm=inventory.slurm_placement())


register_backend("inventory", _open_inventory)
