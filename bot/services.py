"""What the bot needs from the layers below, as small protocols (the seam of pipelines/api.py).

The real agent (``pipelines.agent.Agent``) already satisfies ``AgentService``; ``ToolkitRemediator``
and ``KBLearner`` wrap ``pipelines.execution.execute_proposal`` and ``kb.KnowledgeBase`` so the core
never imports them and tests can pass small fakes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from pipelines.api import (
    AgentEvent,
    Diagnosis,
    DiagnosisRequest,
    ExecutionResult,
    Proposal,
)


@runtime_checkable
class AgentService(Protocol):
    def stream(self, request: DiagnosisRequest) -> Iterator[AgentEvent]: ...

    def diagnose(self, request: DiagnosisRequest) -> Diagnosis: ...


class Remediator(Protocol):
    """Runs an approved proposal's steps, then its verify check."""

    def execute(self, proposal: Proposal, approver: str, approved_at: float) -> ExecutionResult: ...


class Learner(Protocol):
    """Feeds a verified fix back into the knowledge base."""

    def learn(self, incident_text: str, diagnosis: Diagnosis | None, proposal: Proposal, result: ExecutionResult) -> None: ...


class Corrector(Protocol):
    """Stores an operator's correction of a diagnosis (``/wrong …``); returns the record's id."""

    def correct(self, incident_text: str, said: str, correction: str, category: str, *, node: str | None,
                author: str, incident_id: str) -> str: ...


class Directory(Protocol):
    """Platform facts the approval policy needs (Slack user groups, Matrix power levels)."""

    def groups_of(self, user: str) -> set[str]: ...

    def power_level(self, user: str, channel: str) -> int | None: ...


class NoDirectory:
    def groups_of(self, user: str) -> set[str]:
        return set()

    def power_level(self, user: str, channel: str) -> int | None:
        return None


class ToolkitRemediator:
    """The real remediator: builds the ``diagnostics.approval.Approval`` bound to the proposal's
    hash and each step's exact commands (``pipelines.execution.approve``) and hands it to
    ``pipelines.execution.execute_proposal``, which re-checks everything before running."""

    def __init__(self, toolkit: Any) -> None:
        self.toolkit = toolkit

    def execute(self, proposal: Proposal, approver: str, approved_at: float) -> ExecutionResult:
        from pipelines.execution import approve, execute_proposal

        # one Approval covering each step's exact command digest, on the proposal's hosts only
        approval = approve(proposal, approver, now=approved_at)
        return execute_proposal(proposal, approval, self.toolkit)


class KBLearner:
    """Feeds a verified fix to ``kb.KnowledgeBase.learn_from_incident`` (and saves the KB when it can)."""

    def __init__(self, kb: Any) -> None:
        self.kb = kb

    def learn(self, incident_text: str, diagnosis: Diagnosis | None, proposal: Proposal, result: ExecutionResult) -> None:
        cause = proposal.cause
        if not result.verified or not (cause.fault or cause.category):
            return
        evidence = [f"{e.get('host', '')} {e.get('kind', '')}: {e.get('message', '')}".strip()
                    for e in (diagnosis.evidence if diagnosis else [])]
        if result.verification:
            v = result.verification
            evidence.append(f"after the fix {v.get('tool', '')} on {v.get('host', '')}: {v.get('status', '')}")
        summary = (diagnosis.summary if diagnosis and diagnosis.summary else incident_text) or proposal.title
        self.kb.learn_from_incident(
            summary, cause.fault, cause.node, cause.gpu, evidence, [s.tool for s in proposal.steps], True,
            # proposal ids restart with each state file: add a random suffix so two incidents never
            # collapse into one KB record
            incident_id=f"{proposal.id}-{uuid.uuid4().hex[:8]}", category=cause.category,
        )


    def correct(self, incident_text: str, said: str, correction: str, category: str, *, node: str | None,
                author: str, incident_id: str) -> str:
        record = self.kb.learn_correction(incident_text, said, correction, category, node=node, author=author,
                                          incident_id=incident_id)
        return str(record.id)


def proposal_from_dict(data: dict[str, Any]) -> Proposal:
    """Rebuild a stored proposal; the one serialized form is ``pipelines.api.Proposal``'s."""
    return Proposal.from_dict(data)


def diagnosis_from_dict(data: dict[str, Any]) -> Diagnosis:
    return Diagnosis.from_dict(data)


def run_agent(agent: AgentService, request: DiagnosisRequest, on_event: Any = None) -> Diagnosis:
    """Drive the agent's event stream (progress to ``on_event``) and return the final diagnosis.

    The final event is ``kind="diagnosis"`` carrying the ``Diagnosis`` (or its dict) under
    ``data["diagnosis"]`` (or as ``data`` itself); an agent without ``stream`` is simply called.
    """
    stream = getattr(agent, "stream", None)
    if stream is None:
        return agent.diagnose(request)
    final: Diagnosis | None = None
    for event in stream(request):
        if event.kind == "diagnosis":
            payload = event.data.get("diagnosis", event.data)
            final = payload if isinstance(payload, Diagnosis) else diagnosis_from_dict(dict(payload))
        elif on_event is not None:
            on_event(event)
    if final is None:
        raise RuntimeError("the agent's stream ended without a diagnosis event")
    return final


def now() -> float:
    return time.time()
