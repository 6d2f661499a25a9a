"""The simulator as an executor backend: ``plug()`` registers it under the kind "scenario".

Only the composition root (``clusterdoc``), the benchmark and tests call ``plug()``; everything
below them opens a scenario through ``diagnostics.backends.open_cluster("scenario", ...)``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from diagnostics.backends import Cluster, register_backend
from simulator.cluster import SimCluster
from simulator.scenario import Scenario, load_scenario


def scenario_workload(scenario: Scenario) -> dict[str, Any] | None:
    """The scenario's training job as the perf model's inputs (what an inventory's ``workload`` says)."""
    spec = scenario.cluster
    w = spec.workload
    if w is None or w.kind != "llm_training":
        return None
    return {"model_params": w.model_params, "tokens_per_step": w.tokens_per_step, "precision": w.precision,
            "interconnect": spec.interconnect}


def open_scenario(source: Any, *, over_ssh: bool = False, workdir: str | Path | None = None, **_: Any) -> Cluster:
    """A simulated cluster from a Scenario or a path: in-process, or served over real SSH on
    127.0.0.1 (falls back to in-process, with a note, when no SSH server can start)."""
    scenario = source if isinstance(source, Scenario) else load_scenario(source)
    sim = SimCluster(scenario)
    spec = scenario.cluster
    cluster = Cluster(executor=None, hosts=list(sim.hosts), scheduler=spec.scheduler,
                      gpus_per_node=spec.gpus_per_node, gpu_model=spec.gpu, kind="scenario", handle=sim,
                      scenario=scenario, workload=scenario_workload(scenario))
    if over_ssh:
        try:
            from simulator.sshserver import serve

            stack = contextlib.ExitStack()
            server = stack.enter_context(serve(sim, workdir=workdir))
            cluster.closers.append(stack.close)
            cluster.executor = server.executor()
        except Exception as exc:  # asyncssh missing or no loopback sockets: stay in-process
            cluster.notes.append(f"simulated nodes run in-process (SSH server unavailable: {exc})")
    if cluster.executor is None:
        cluster.executor = sim.executor()
    cluster.closers.append(cluster.executor.close)
    return cluster


def plug() -> None:
    register_backend("scenario", open_scenario)
