"""The services behind the chat e2e tests: the agent, the executor, the cluster it acts on.

Uses the real agent (llm=none) over the simulated case-study cluster when those layers are
installed; until then, the small fakes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.bot.fakes import FakeAgent, FakeRemediator

NODES = [f"node-{i:02d}" for i in range(1, 9)]


@dataclass
class Services:
    agent: Any
    remediator: Any
    nodes: list[str]
    fixed: Callable[[], bool]
    closers: list[Callable[[], None]] = field(default_factory=list)
    real: bool = False

    def close(self) -> None:
        for fn in reversed(self.closers):
            fn()


def make_services(tmp_path: Path) -> Services:
    rem = FakeRemediator()
    return Services(FakeAgent(), rem, NODES, fixed=lambda: bool(rem.calls))
