"""The seam between the bot and the agent: an incident in, events and a diagnosis out.

The bot never sees a Haystack object and the agent never sees a chat object; both speak these
plain dataclasses (JSON-able through ``to_dict``) so they can be stored in SQLite and replayed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

RequestSource = Literal["command", "mention", "alert", "schedule", "cli", "benchmark"]
EventKind = Literal["status", "graph", "tool_call", "tool_result", "diagnosis", "proposal", "error"]
Risk = Literal["low", "medium", "high"]


@dataclass(frozen=True)
class DiagnosisRequest:
    text: str  # the alert, the pasted log, or the command's free text
    target: str | None = None  # node name or job id, when one was named
    source: RequestSource = "command"
    requester: str = ""  # platform user id of who asked (empty for alerts/schedules)
    incident_id: str = ""


@dataclass(frozen=True)
class AgentEvent:
    kind: EventKind
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Cause:
    fault: str | None  # a fault kind of formats/scenario.md, or None for "nothing wrong"
    node: str | None = None
    gpu: int | None = None


@dataclass(frozen=True)
class ProposalStep:
    tool: str  # a mutating registry action
    host: str
    params: dict[str, Any]
    commands: tuple[str, ...]  # exactly what will run, already rendered and quoted


@dataclass(frozen=True)
class Proposal:
    id: str
    title: str
    risk: Risk
    steps: tuple[ProposalStep, ...]
    cause: Cause
    script: str = ""  # optional model-written script, already passed the deny rules
    rationale: str = ""

    @property
    def hash(self) -> str:
        """Content hash an approval binds to: any change to a command changes it."""
        payload = {
            "steps": [[s.tool, s.host, sorted(s.params.items()), list(s.commands)] for s in self.steps],
            "script": self.script,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    def commands(self) -> list[str]:
        return [c for s in self.steps for c in s.commands]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hash"] = self.hash
        return d


@dataclass
class Diagnosis:
    summary: str
    cause: Cause
    evidence: list[dict[str, Any]]  # Finding.to_dict()s that support the cause
    confidence: float  # 0..1
    graph: dict[str, Any]  # the DoT graph as JSON (nodes, edges)
    proposals: list[Proposal] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # ToolResult.to_dict()s
    tokens: dict[str, int] = field(default_factory=lambda: {"prompt": 0, "completion": 0})
    timings: dict[str, float] = field(default_factory=dict)
    llm: str = "none"  # backend actually used
    degraded: str = ""  # why the evidence-only path was taken, when it was
    verified: bool = False  # the cause is backed by a check result

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["proposals"] = [p.to_dict() for p in self.proposals]
        return d


@dataclass
class ExecutionResult:
    proposal_id: str
    ok: bool
    step_results: list[dict[str, Any]]  # ToolResult.to_dict()s of each action
    verification: dict[str, Any] | None  # ToolResult.to_dict() of the verify check
    verified: bool
    message: str = ""
