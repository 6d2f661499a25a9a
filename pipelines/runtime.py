"""Building an agent against a cluster: a scenario (the in-process simulator) or a real inventory.

Shared by the CLI, the benchmark and the bot's composition root, so they all wire the toolkit,
the cluster facts and the knowledge base the same way.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from pipelines.agent import Agent
from pipelines.config import AgentConfig, LLMConfig
from pipelines.llm import make_llm
from pipelines.llm.base import LLM
from pipelines.planner import ClusterInfo


@dataclass
class Target:
    """A cluster opened for the agent: its toolkit, the facts it plans with, and what to close."""

    toolkit: Any
    cluster: ClusterInfo
    executor: Any
    sim: Any = None  # the simulated cluster when the target is a scenario
    scenario: Any = None
    notes: list[str] = field(default_factory=list)
    backend: Any = None  # the diagnostics.backends.Cluster it was opened from

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
            return
        with contextlib.suppress(Exception):  # closing a dead connection must not hide the result
            self.executor.close()


def open_target(kind: str, source: Any, **options: Any) -> Target:
    """The one place a target is assembled: a backend (``inventory``; ``scenario`` once the root has
    plugged the simulator in) opened, a toolkit over its executor, the cluster facts for planning."""
    from diagnostics.backends import open_cluster
    from diagnostics.registry import default_registry
    from diagnostics.toolkit import Toolkit

    opened = open_cluster(kind, source, **options)
    try:
        toolkit = Toolkit(default_registry(), opened.executor, scheduler=opened.scheduler,
                          slurm=getattr(opened, "slurm", None))
    except BaseException:
        opened.close()
        raise
    info = ClusterInfo(hosts=list(opened.hosts), gpus_per_node=opened.gpus_per_node, gpu_model=opened.gpu_model,
                       scheduler=opened.scheduler, workload=opened.workload)
    return Target(toolkit, info, opened.executor, opened.handle if opened.kind == "scenario" else None,
                  opened.scenario, list(opened.notes), opened)


def scenario_target(scenario: Any, **options: Any) -> Target:
    """A simulated cluster from a Scenario (or a path to one); needs the simulator plugged in."""
    return open_target("scenario", scenario, **options)


def inventory_target(path: str, ssh_config: Any = None) -> Target:
    """Real nodes over SSH (paramiko), from an inventory YAML."""
    return open_target("inventory", path, ssh_config=ssh_config)


def open_kb(kb_config: Any = None) -> tuple[Any, str]:
    """The knowledge base, warmed up; (None, why) when it cannot be opened."""
    try:
        from kb import KnowledgeBase
        from kb.config import KBConfig

        kb = KnowledgeBase(kb_config or KBConfig())
        kb.warm_up()
        return kb, ""
    except Exception as exc:  # the agent works without a KB; say why it has none
        return None, f"knowledge base unavailable: {type(exc).__name__}: {exc}"


def build_agent(target: Target, config: AgentConfig, *, llm: LLM | None = None, kb: Any = None) -> Agent:
    return Agent(config, target.toolkit, kb, llm if llm is not None else make_llm(config.llm), cluster=target.cluster)


__all__ = ["LLMConfig", "Target", "build_agent", "inventory_target", "open_kb", "open_target", "scenario_target"]
