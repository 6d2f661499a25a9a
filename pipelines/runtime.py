"""Building an agent against a cluster: a scenario (the in-process simulator) or a real inventory.

Shared by the CLI, the benchmark and the bot's composition root, so they all wire the toolkit,
the cluster facts and the knowledge base the same way.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from pipelines.agent import Agent
from pipelines.config import AgentConfig, LLMConfig
from pipelines.llm import make_llm
from pipelines.llm.base import LLM
from pipelines.planner import ClusterInfo


@dataclass
class Target:
    toolkit: Any
    cluster: ClusterInfo
    executor: Any
    sim: Any = None  # the SimCluster when the target is a scenario
    scenario: Any = None

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a dead connection must not hide the result
            self.executor.close()


def scenario_target(scenario: Any) -> Target:
    """A simulated cluster from a Scenario (or a path to one) with an in-process executor."""
    from diagnostics.registry import default_registry
    from diagnostics.scenario import load_scenario
    from diagnostics.sim import SimCluster
    from diagnostics.toolkit import Toolkit

    if isinstance(scenario, str) or hasattr(scenario, "read_text"):
        scenario = load_scenario(scenario)
    sim = SimCluster(scenario)
    executor = sim.executor()
    spec = scenario.cluster
    toolkit = Toolkit(default_registry(), executor, scheduler=spec.scheduler)
    info = ClusterInfo(hosts=list(sim.hosts), gpus_per_node=spec.gpus_per_node, gpu_model=spec.gpu, scheduler=spec.scheduler)
    return Target(toolkit, info, executor, sim, scenario)


def inventory_target(path: str, ssh_config: Any = None) -> Target:
    """Real nodes over SSH (paramiko), from an inventory YAML."""
    from diagnostics.executors.ssh import SSHConfig, SSHExecutor
    from diagnostics.inventory import load_inventory
    from diagnostics.registry import default_registry
    from diagnostics.toolkit import Toolkit

    inventory = load_inventory(path)
    executor = SSHExecutor(inventory, ssh_config or SSHConfig())
    toolkit = Toolkit(default_registry(), executor, scheduler=inventory.scheduler)
    info = ClusterInfo(hosts=inventory.names, gpus_per_node=inventory.gpus_per_node, gpu_model=inventory.gpu,
                       scheduler=inventory.scheduler)
    return Target(toolkit, info, executor)


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


__all__ = ["LLMConfig", "Target", "build_agent", "inventory_target", "open_kb", "scenario_target"]
