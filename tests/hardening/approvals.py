"""Helpers shared by the approval, race and restart tests: a real toolkit over the simulated case
study, real proposals rendered by it, and a remediator that counts what it executes."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bot.services import ToolkitRemediator
from bot.store import Store
from pipelines.api import Cause, ExecutionResult, Proposal, ProposalStep

REPO = Path(__file__).resolve().parents[2]
CASE_STUDY = REPO / "scenarios" / "a800-throttle.yaml"


def sim_toolkit() -> tuple[Any, Any]:
    from diagnostics.registry import default_registry
    from diagnostics.toolkit import Toolkit
    from simulator import SimCluster

    sim = SimCluster(str(CASE_STUDY))
    return sim, Toolkit(default_registry(), sim.executor(), scheduler="slurm")


def clock_reset_proposal(toolkit: Any, pid: str = "p1", host: str = "node-05", gpu: int = 3,
                         risk: str = "low") -> Proposal:
    params = {"gpu": gpu}
    return Proposal(
        id=pid, title=f"reset clocks of GPU {gpu} on {host}", risk=risk,  # type: ignore[arg-type]
        steps=(ProposalStep("reset_gpu_clocks", host, params, tuple(toolkit.render("reset_gpu_clocks", params))),),
        cause=Cause("gpu_clock_throttle", host, gpu),
    )


def post_proposal(store: Store, proposal: Proposal, *, message_id: str, requester: str = "U_REQ",
                  channel: str = "C_OPS", expires_in_s: float = 3600.0, now: float | None = None) -> str:
    """Store a proposal as the bot does after posting it (one incident per proposal)."""
    incident = store.create_incident(platform="test", channel=channel, thread=None, requester=requester,
                                     source="command", target=proposal.steps[0].host, text="diagnose")
    pid = f"{incident}.{proposal.id}"
    stored = Proposal(**{**proposal.__dict__, "id": pid})
    store.add_proposal(proposal_id=pid, incident_id=incident, hash=stored.hash, risk=stored.risk,
                       title=stored.title, body=stored.to_dict(), platform="test", channel=channel, thread=None,
                       requester=requester, expires_at=(time.time() if now is None else now) + expires_in_s)
    store.bind_proposal_message(pid, message_id)
    return pid


class CountingRemediator:
    """The real remediator (toolkit + approval digests), counting executions per proposal."""

    def __init__(self, toolkit: Any) -> None:
        self.inner = ToolkitRemediator(toolkit)
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def execute(self, proposal: Proposal, approver: str, approved_at: float) -> ExecutionResult:
        with self._lock:
            self.calls[proposal.id] += 1
            return self.inner.execute(proposal, approver, approved_at)
