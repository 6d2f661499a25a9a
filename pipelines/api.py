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
# How sure a diagnosis is (formats/scenario.md `expect.verdict`):
#   verified    a check's finding shows the cause
#   suspected   a signature or KB match that no check has confirmed (``confirm_with`` names the checks)
#   unexplained anomalies were seen but their cause is not proven (``anomalies`` lists them, with nodes)
#   clean       only when the checks that could show the symptom all ran and passed (``checks_passed``)
Verdict = Literal["verified", "suspected", "unexplained", "clean"]
VERDICTS: tuple[str, ...] = ("verified", "suspected", "unexplained", "clean")
# Where a cause lives: one GPU, one node, one job's settings, or the whole cluster.
Scope = Literal["gpu", "node", "job", "cluster"]


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
    fault: str | None  # a fault kind of the fault catalog, or None (nothing wrong, or a fault with no kind)
    node: str | None = None  # None when the cause is cluster- or job-wide
    gpu: int | None = None
    category: str | None = None  # one of diagnostics.faults.CATEGORIES; set for every verdict but clean
    scope: str | None = None  # gpu | node | job | cluster
    description: str = ""  # the cause in plain words (a signature's or record's cause, a kind's description)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Cause:
        data = data or {}
        gpu = data.get("gpu")
        return cls(fault=data.get("fault"), node=data.get("node"), gpu=int(gpu) if gpu is not None else None,
                   category=data.get("category"), scope=data.get("scope"),
                   description=str(data.get("description") or ""))


@dataclass(frozen=True)
class ProposalStep:
    tool: str  # a mutating registry action
    host: str
    params: dict[str, Any]
    commands: tuple[str, ...]  # exactly what will run, already rendered and quoted
    # Where the commands run when that is not ``host`` (a Slurm action: the controller); in the hash.
    run_on: str = ""
    note: str = ""  # for people (where it runs and why); shown with the proposal, not hashed

    @property
    def run_host(self) -> str:
        return self.run_on or self.host


ImpactStatus = Literal["jobs", "none", "unknown"]


@dataclass(frozen=True)
class Impact:
    """What a proposal that drains, downs or resets a node costs the jobs on it (``node_jobs``,
    ``job_checkpoint``; pipelines.impact). Shown with the proposal, never part of its hash: it
    describes the cluster at proposal time (run times and checkpoint ages move on), while the hash
    binds an approval to what runs."""

    status: ImpactStatus  # jobs: some run there; none: the scheduler listed none; unknown: not listed
    text: str  # the line shown: "stops job 4412 of alice, …" / "no jobs running on node-05" / "unknown: …"
    nodes: tuple[str, ...] = ()
    # one per job or pod: id, user, name, state, elapsed_s, nodes, gpus, node, kind, stops,
    # checkpoint_age_s, checkpoint_step
    jobs: tuple[dict[str, Any], ...] = ()
    gentle: bool = False  # the action lets running jobs finish (Slurm state=drain)
    reason: str = ""  # unknown: why the jobs could not be listed

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "text": self.text, "nodes": list(self.nodes),
                "jobs": [dict(j) for j in self.jobs], "gentle": self.gentle, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Impact | None:
        if not data:
            return None
        status = data.get("status")
        return cls(status=status if status in ("jobs", "none", "unknown") else "unknown",
                   text=str(data.get("text") or ""), nodes=tuple(str(n) for n in data.get("nodes") or ()),
                   jobs=tuple(dict(j) for j in data.get("jobs") or () if isinstance(j, dict)),
                   gentle=bool(data.get("gentle", False)), reason=str(data.get("reason") or ""))


@dataclass(frozen=True)
class Proposal:
    id: str
    title: str
    risk: Risk
    steps: tuple[ProposalStep, ...]
    cause: Cause
    script: str = ""  # optional model-written script, already passed the deny rules
    rationale: str = ""
    impact: Impact | None = None  # what it costs the jobs on the node (shown, not hashed)

    @property
    def hash(self) -> str:
        """Content hash an approval binds to: any change to a command changes it."""
        payload = {
            "steps": [[s.tool, s.host, sorted(s.params.items()), list(s.commands)] + ([s.run_on] if s.run_on else [])
                      for s in self.steps],
            "script": self.script,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    def commands(self) -> list[str]:
        return [c for s in self.steps for c in s.commands]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["impact"] = self.impact.to_dict() if self.impact is not None else None
        d["hash"] = self.hash
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Proposal:
        """Rebuild a stored proposal (``to_dict``); the caller compares the hash."""
        steps = tuple(
            ProposalStep(tool=str(s["tool"]), host=str(s["host"]), params=dict(s.get("params") or {}),
                         commands=tuple(str(c) for c in s.get("commands") or ()),
                         run_on=str(s.get("run_on") or ""), note=str(s.get("note") or ""))
            for s in data.get("steps") or ()
        )
        return cls(id=str(data["id"]), title=str(data.get("title", "")), risk=data.get("risk", "medium"),
                   steps=steps, cause=Cause.from_dict(data.get("cause")), script=str(data.get("script", "")),
                   rationale=str(data.get("rationale", "")), impact=Impact.from_dict(data.get("impact")))


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
    verified: bool = False  # the cause is backed by a check result (verdict == "verified")
    verdict: str = "unexplained"  # one of VERDICTS; never "clean" unless the relevant checks passed
    anomalies: list[dict[str, Any]] = field(default_factory=list)  # {host, check, message, category}
    checks_passed: list[str] = field(default_factory=list)  # for clean: the checks that ran and passed
    confirm_with: list[str] = field(default_factory=list)  # for suspected: checks that would confirm it
    hypotheses: list[dict[str, Any]] = field(default_factory=list)  # signature / KB matches (typed)
    similar: list[dict[str, Any]] = field(default_factory=list)  # top past incidents from the KB
    llm_tier: str = "none"  # the model's capability tier (none | narrow | capable)
    llm_capability: dict[str, Any] = field(default_factory=dict)  # the self-test: tier, passed, probes, tokens_per_s, pinned, note
    plain_summary: str = ""  # three sentences without jargon: what is broken, what it costs, what will be done

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["proposals"] = [p.to_dict() for p in self.proposals]
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Diagnosis:
        return cls(
            summary=str(data.get("summary", "")),
            cause=Cause.from_dict(data.get("cause")),
            evidence=list(data.get("evidence") or []),
            confidence=float(data.get("confidence", 0.0)),
            graph=dict(data.get("graph") or {}),
            proposals=[p if isinstance(p, Proposal) else Proposal.from_dict(p) for p in data.get("proposals") or []],
            tool_calls=list(data.get("tool_calls") or []),
            tokens=dict(data.get("tokens") or {"prompt": 0, "completion": 0}),
            timings=dict(data.get("timings") or {}),
            llm=str(data.get("llm", "none")),
            degraded=str(data.get("degraded", "")),
            verified=bool(data.get("verified", False)),
            verdict=str(data.get("verdict") or ("verified" if data.get("verified") else "unexplained")),
            anomalies=list(data.get("anomalies") or []),
            checks_passed=list(data.get("checks_passed") or []),
            confirm_with=list(data.get("confirm_with") or []),
            hypotheses=list(data.get("hypotheses") or []),
            similar=list(data.get("similar") or []),
            llm_tier=str(data.get("llm_tier") or "none"),
            llm_capability=dict(data.get("llm_capability") or {}),
            plain_summary=str(data.get("plain_summary") or ""),
        )


@dataclass
class ExecutionResult:
    proposal_id: str
    ok: bool
    step_results: list[dict[str, Any]]  # ToolResult.to_dict()s of each action
    verification: dict[str, Any] | None  # ToolResult.to_dict() of the verify check
    verified: bool
    message: str = ""
