"""Running an approved proposal: each step through ``Toolkit.execute_action``, then its verify check.

The bot calls this only after an authorised approval. The approval must bind to this proposal's
hash; each step's rendered commands are re-checked by the toolkit against the approval's digests and
by the deny rules here, so a proposal changed after approval never runs.
"""

from __future__ import annotations

import time
from typing import Any

from diagnostics.approval import Approval, command_digest
from diagnostics.types import Status, ToolResult, ValidationError
from pipelines.api import ExecutionResult, Proposal
from pipelines.safety import check_commands


def approve(proposal: Proposal, approver: str, *, ttl_s: float | None = 900.0, now: float | None = None) -> Approval:
    """An Approval covering every step of ``proposal`` (what the bot builds from a ✅ reaction)."""
    digests = tuple(command_digest(s.commands) for s in proposal.steps)
    t = time.time() if now is None else now
    return Approval(
        proposal_hash=proposal.hash,
        command_digest=digests[0] if digests else "",
        approver=approver,
        approved_at=t,
        command_digests=digests[1:],
        hosts=tuple(sorted({s.run_host for s in proposal.steps})),  # where each step's commands run
        expires_at=(t + ttl_s) if ttl_s is not None else None,
    )


def _changed_since_approval(toolkit: Any, step: Any) -> str:
    """Why ``step`` may not run now: it renders other commands, or would run on another host (the
    inventory's Slurm controller or node name changed since it was approved); '' when unchanged."""
    place = getattr(toolkit, "place", None)
    try:
        if place is not None:
            placed = place(step.tool, step.host, step.params)
            rendered, run_on = list(placed.commands), placed.run_on
        else:
            rendered, run_on = list(toolkit.render(step.tool, step.params)), step.host
    except ValidationError as exc:
        return f"{step.tool} on {step.host} cannot be rendered any more: {exc}"
    if rendered != list(step.commands):
        return f"{step.tool} now renders different commands than the approved ones"
    if run_on != step.run_host:
        return f"{step.tool} would now run on {run_on}, but was approved to run on {step.run_host}"
    return ""


def execute_proposal(proposal: Proposal, approval: Approval, toolkit: Any) -> ExecutionResult:
    """Run the approved steps in order (stop at the first failure), then the verify check of the
    last action; ``verified`` is True only when that check finds nothing wrong."""
    if not isinstance(approval, Approval) or approval.proposal_hash != proposal.hash:
        return ExecutionResult(proposal.id, False, [], None, False, "not run: the approval is for another proposal (hash differs)")
    violations = check_commands(proposal.commands(), declared_action=proposal.steps[0].tool if proposal.steps else None)
    if proposal.script:
        return ExecutionResult(proposal.id, False, [], None, False,
                               "not run: model-written scripts are shown for review only; approve the registry steps instead")
    if violations:
        return ExecutionResult(proposal.id, False, [], None, False, f"not run: deny rule {violations[0].rule}: {violations[0].message}")
    results: list[ToolResult] = []
    for step in proposal.steps:
        why = _changed_since_approval(toolkit, step)
        if why:
            return ExecutionResult(proposal.id, False, [r.to_dict() for r in results], None, False, f"not run: {why}")
        # a Slurm action runs on the controller it was approved for (step.run_on), about step.host
        r = toolkit.execute_action(step.tool, step.run_host, step.params, approval=approval)
        results.append(r)
        if r.status not in (Status.OK, Status.PROBLEM):
            return ExecutionResult(proposal.id, False, [x.to_dict() for x in results], None, False,
                                   f"{step.tool} on {step.run_host} failed: {r.error or r.status.value}")
    verification: ToolResult | None = None
    verified = False
    message = "done"
    for step in reversed(proposal.steps):
        call = toolkit.registry.verify_call(step.tool, step.params)
        if call is None:
            continue
        check, params = call
        verification = toolkit.run(check, step.host, params)
        fault = proposal.cause.fault
        still = [f for f in verification.findings if f.kind == fault and (proposal.cause.gpu is None or f.gpu in (None, proposal.cause.gpu))]
        verified = verification.status in (Status.OK, Status.PROBLEM) and not still and (
            verification.status is Status.OK or step.tool in ("drain_node",) or not verification.findings
        )
        message = f"verified by {check}" if verified else f"{check} still shows a problem: {verification.error or '; '.join(f.message for f in verification.findings[:3])}"
        break
    else:
        message = "done; no verify check declared"
    return ExecutionResult(
        proposal.id,
        True,
        [r.to_dict() for r in results],
        verification.to_dict() if verification is not None else None,
        verified,
        message,
    )
