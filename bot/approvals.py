"""Approvals by reaction: a ✅ from a configured approver runs the proposal it is bound to, once;
a ❌ rejects it. The proposal is stored before it is posted, so a restart loses nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from bot.config import BotConfig
from bot.events import APPROVE_EMOJI, REJECT_EMOJI, Reaction, Reply, normalize_emoji
from bot.middleware import ApprovalPolicy
from bot.render import proposal_code, proposal_text, result_text
from bot.services import Learner, Remediator, diagnosis_from_dict, proposal_from_dict
from bot.store import ProposalRow, Store
from pipelines.api import ExecutionResult, Proposal

log = logging.getLogger("clusterdoc.bot")


class ApprovalsMixin:
    config: BotConfig
    store: Store
    policy: ApprovalPolicy
    learner: Learner | None
    clock: Callable[[], float]

    if TYPE_CHECKING:  # provided by the Bot; declared for the type checker only
        def _post(self, reply: Reply) -> str | None: ...
        def _post_async(self, reply: Reply) -> None: ...
        def _submit(self, fn: Callable[..., Any], *args: Any) -> None: ...
        def _approve(self, event: Reaction, row: ProposalRow, proposal: Proposal, now: float) -> list[Reply]: ...
        def _breaker_note(self, proposal_id: str, proposal: Proposal, cluster: str = "") -> str: ...
        def _remediator_of(self, incident_id: int) -> Remediator | None: ...
        def _record_execution(self, row: ProposalRow, proposal: Proposal, result: ExecutionResult) -> None: ...

    def _on_reaction(self, event: Reaction) -> list[Reply]:
        emoji = normalize_emoji(event.emoji)
        approve, reject = emoji in APPROVE_EMOJI, emoji in REJECT_EMOJI
        if not (approve or reject):
            return []
        row = self.store.proposal_by_message(event.platform, event.channel, event.message_id)
        if row is None:
            return []  # a reaction on some unrelated message
        decision = "approve" if approve else "reject"
        if not self.policy.is_approver(event.user, event.channel):
            self.store.record_decision(row.id, row.hash, event.user, decision, "not_approver")
            self.store.audit(event.user, "approval_refused", row.id, "not an approver")
            return [Reply("error", event.channel, f"{event.user} is not an approver; reaction ignored.",
                          thread=row.thread, ephemeral_to=event.user, proposal_id=row.id)]
        if row.state != "pending":
            self.store.record_decision(row.id, row.hash, event.user, decision, f"already_{row.state}")
            if row.state in ("executing", "executed") and row.decided_by != event.user:
                return []  # a second approver of a fix already running: nothing to add
            return [Reply("text", event.channel, f"Proposal `{row.id}` is already {row.state}; nothing runs.",
                          thread=row.thread, ephemeral_to=event.user, proposal_id=row.id)]
        now = self.clock()
        if now >= row.expires_at:
            self.store.expire_due(now)
            self.store.record_decision(row.id, row.hash, event.user, decision, "expired")
            self.store.audit(event.user, "approval_expired", row.id)
            return [Reply("error", event.channel, f"Proposal `{row.id}` has expired; run /diagnose again.",
                          thread=row.thread, proposal_id=row.id)]
        if reject:
            if self.store.reject(row.id, event.user):
                self.store.record_decision(row.id, row.hash, event.user, "reject", "rejected")
                self.store.audit(event.user, "proposal_rejected", row.id)
                return [Reply("text", event.channel, f"Proposal `{row.id}` rejected by {event.user}.",
                              thread=row.thread, proposal_id=row.id)]
            return []
        if event.user == row.requester and self.policy.self_approval_forbidden(row.risk):
            self.store.record_decision(row.id, row.hash, event.user, "approve", "self_approval")
            self.store.audit(event.user, "approval_refused", row.id, f"requester may not approve {row.risk}-risk")
            return [Reply("error", event.channel, f"{row.risk}-risk proposals need an approver other than the "
                          "requester.", thread=row.thread, proposal_id=row.id)]
        proposal = proposal_from_dict(row.body)
        if proposal.hash != row.hash:  # the stored body no longer matches what was shown
            self.store.record_decision(row.id, row.hash, event.user, "approve", "hash_mismatch")
            self.store.audit(event.user, "approval_refused", row.id, "hash mismatch")
            return [Reply("error", event.channel, f"Proposal `{row.id}` changed since it was posted; not run.",
                          thread=row.thread, proposal_id=row.id)]
        # targets still in the inventory, circuit breaker (two approvers above it), dry run, then the
        # exactly-once claim and the execution: bot.safeguards
        return self._approve(event, row, proposal, now)

    # -- background work ---------------------------------------------------------------------
    def _propose(self, incident_id: int, platform: str, channel: str, thread: str | None, requester: str,
                 proposal: Proposal) -> None:
        pid = f"{incident_id}.{proposal.id}"
        stored = proposal_from_dict({**proposal.to_dict(), "id": pid})
        self.store.add_proposal(
            proposal_id=pid, incident_id=incident_id, hash=stored.hash, risk=stored.risk, title=stored.title,
            body=stored.to_dict(), platform=platform, channel=channel, thread=thread, requester=requester,
            expires_at=self.clock() + self.config.approvals.expiry_s,
        )
        self.store.audit("agent", "proposal_posted", pid, {"hash": stored.hash, "commands": stored.commands()})
        # "needs two approvers" (the circuit breaker of the incident's cluster), dry run
        note = self._breaker_note(pid, stored, self.store.cluster_of(incident_id))
        self._post(Reply("proposal", channel, proposal_text(stored, self.config.approvals.expiry_s) + note,
                         thread=thread, code=proposal_code(stored), incident_id=str(incident_id),
                         proposal_id=pid, key=f"proposal:{pid}"))

    def _execute(self, row: ProposalRow, proposal: Proposal, approver: str, approved_at: float) -> None:
        remediator = self._remediator_of(row.incident_id)  # the executor of the incident's cluster
        if remediator is None:
            self.store.finish_execution(row.id, False, False, {"message": "no remediator configured"})
            self._post(Reply("error", row.channel, "This bot has no executor configured; nothing ran.", thread=row.thread,
                             proposal_id=row.id))
            return
        try:
            result = remediator.execute(proposal, approver, approved_at)
        except Exception as exc:
            log.exception("execution of %s failed", row.id)
            self.store.finish_execution(row.id, False, False, {"error": repr(exc)[:1000]})
            self.store.audit("bot", "execution_failed", row.id, repr(exc)[:500])
            self.store.set_incident(row.incident_id, status="failed")
            self._post(Reply("error", row.channel, f"Execution of `{row.id}` failed: {type(exc).__name__}: "
                             f"{str(exc)[:200]}", thread=row.thread, proposal_id=row.id))
            return
        self.store.finish_execution(row.id, result.ok, result.verified, asdict(result))
        self._record_execution(row, proposal, result)  # node history (bot.history)
        self.store.audit(approver, "proposal_executed", row.id,
                         {"ok": result.ok, "verified": result.verified, "steps": result.step_results,
                          "verification": result.verification})
        self.store.set_incident(row.incident_id, status="resolved" if result.verified else "failed")
        self._post(Reply("result", row.channel, result_text(proposal, result), thread=row.thread,
                         proposal_id=row.id, incident_id=str(row.incident_id)))
        if result.verified and self.learner is not None:
            incident = self.store.incident(row.incident_id)
            data = self.store.diagnosis_json(row.incident_id)
            try:
                self.learner.learn(incident.text if incident else "", diagnosis_from_dict(data) if data else None,
                                   proposal, result)
                self.store.audit("bot", "learned", row.id)
            except Exception as exc:  # learning is best effort; the fix itself is done
                log.exception("learning from %s failed", row.id)
                self.store.audit("bot", "learn_failed", row.id, repr(exc)[:500])

    # -- delivery ----------------------------------------------------------------------------
