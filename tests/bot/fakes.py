"""Small stand-ins for the agent and the executor, used by the core tests (not by the e2e ones)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from bot.events import Reply
from pipelines.api import (
    AgentEvent,
    Cause,
    Diagnosis,
    DiagnosisRequest,
    ExecutionResult,
    Proposal,
    ProposalStep,
)


class FakeAgent:
    """Finds a throttled GPU on whatever node it is asked about and proposes a clock reset."""

    def __init__(self, risk: str = "low", delay_s: float = 0.0, fail: bool = False) -> None:
        self.risk, self.delay_s, self.fail = risk, delay_s, fail
        self.requests: list[DiagnosisRequest] = []

    def diagnosis_for(self, request: DiagnosisRequest) -> Diagnosis:
        node = request.target or "node-01"
        proposal = Proposal(
            id="p1", title=f"reset clocks of GPU 3 on {node}", risk=self.risk,  # type: ignore[arg-type]
            steps=(ProposalStep("reset_gpu_clocks", node, {"gpu": 3}, ("nvidia-smi -i 3 -rgc",)),),
            cause=Cause("gpu_clock_throttle", node, 3),
        )
        graph = {"nodes": [{"id": "a", "role": "proposition", "text": "GPU 3 throttled"},
                           {"id": "b", "role": "critique", "text": "could be power cap"},
                           {"id": "c", "role": "summary", "text": "thermal throttle on GPU 3"}],
                 "edges": [{"source": "a", "target": "b"}, {"source": "b", "target": "c"}]}
        return Diagnosis(summary=f"GPU 3 on {node} is throttled to 200 MHz", cause=proposal.cause,
                         evidence=[{"host": node, "kind": "gpu_clock_throttle", "message": "sm 200 MHz"}],
                         confidence=0.9, graph=graph, proposals=[proposal])

    def stream(self, request: DiagnosisRequest) -> Iterator[AgentEvent]:
        self.requests.append(request)
        yield AgentEvent("status", {"text": "looking at GPUs"})
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("model crashed")
        yield AgentEvent("diagnosis", {"diagnosis": self.diagnosis_for(request)})

    def diagnose(self, request: DiagnosisRequest) -> Diagnosis:
        return self.diagnosis_for(request)


class FakeRemediator:
    def __init__(self, delay_s: float = 0.0, verified: bool = True) -> None:
        self.calls: list[tuple[str, str]] = []
        self.delay_s, self.verified = delay_s, verified
        self._lock = threading.Lock()

    def execute(self, proposal: Proposal, approver: str, approved_at: float) -> ExecutionResult:
        with self._lock:
            self.calls.append((proposal.id, approver))
        if self.delay_s:
            time.sleep(self.delay_s)
        return ExecutionResult(proposal.id, True, [{"tool": "reset_gpu_clocks", "host": "node-05", "status": "ok"}],
                               {"tool": "gpu_clocks", "host": "node-05", "status": "ok" if self.verified else "problem"},
                               self.verified)


@dataclass
class RecordingOutbox:
    """Records every reply; returns increasing message ids; can fail the first N sends."""

    fail_first: int = 0
    replies: list[Reply] = field(default_factory=list)
    failures: int = 0
    _n: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, reply: Reply) -> str:
        with self._lock:
            if self.failures < self.fail_first:
                self.failures += 1
                raise ConnectionError("chat API unavailable")
            self._n += 1
            self.replies.append(reply)
            return f"m{self._n}"

    def of_kind(self, kind: str) -> list[Reply]:
        return [r for r in self.replies if r.kind == kind]

    def message_id_of(self, key: str) -> str:
        for i, r in enumerate(self.replies):
            if r.key == key:
                return f"m{i + 1}"
        raise KeyError(key)
