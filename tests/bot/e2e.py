"""The real services behind the chat e2e tests: the agent (llm=none), the toolkit and the
simulated case-study cluster it diagnoses and repairs, and the knowledge base it learns into."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.services import KBLearner, ToolkitRemediator

REPO = Path(__file__).resolve().parents[2]
CASE_STUDY = REPO / "scenarios" / "a800-throttle.yaml"


@dataclass
class Services:
    agent: Any
    remediator: Any
    learner: Any
    kb: Any
    sim: Any
    nodes: list[str]
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def fixed(self) -> bool:
        """The throttled GPU runs at full clock again: the job's step time is back near baseline."""
        return bool(self.sim.step_time_s() < 1.3 * self.sim.baseline_step_time_s())

    def learned(self) -> int:
        return int(self.kb.stats()["by_origin"].get("incident", 0))

    def close(self) -> None:
        self.stack.close()


@functools.cache
def shared_kb() -> Any:
    from kb.config import KBConfig
    from kb.knowledge import KnowledgeBase

    kb = KnowledgeBase(KBConfig(data_dir=None))
    kb.warm_up()
    return kb


def make_services(tmp_path: Path, *, over_ssh: bool = False, scenario: Path = CASE_STUDY) -> Services:
    from diagnostics.registry import default_registry
    from diagnostics.toolkit import Toolkit
    from pipelines.agent import Agent
    from pipelines.config import AgentConfig
    from simulator import SimCluster

    stack = contextlib.ExitStack()
    sim = SimCluster(str(scenario))
    if over_ssh:
        from simulator.sshserver import serve

        executor: Any = stack.enter_context(serve(sim, workdir=tmp_path / "ssh")).executor()
    else:
        executor = sim.executor()
    close: Callable[[], None] = executor.close
    stack.callback(close)
    toolkit = Toolkit(default_registry(), executor, scheduler="slurm")
    kb = shared_kb()
    agent = Agent(AgentConfig(), toolkit, kb, None, hosts=sim.hosts)
    agent.warm_up()
    return Services(agent, ToolkitRemediator(toolkit), KBLearner(kb), kb, sim, list(sim.hosts), stack)
