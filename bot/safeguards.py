"""Safeguards between an approval and an execution: targets that still exist, the circuit breaker
across incidents, and the global dry-run switch.

**Circuit breaker.** At most ``limit = max(1, min(max_nodes, floor(max_fraction × fleet)))`` distinct
nodes may be drained or reset (``breaker.actions``, default ``drain_node`` and ``reset_gpu``) by
clusterdoc per ``window_s``. Every claimed execution of such an action writes one row per node to
``breaker_actions`` *in the same* ``BEGIN IMMEDIATE`` *transaction as the claim*, so the count
survives restarts and concurrent approvals cannot overshoot it. A proposal that would take the
window above the limit needs two distinct approvers: the first ✅ is recorded (``approvals`` row,
outcome ``first_of_two``) and nothing runs; a ✅ from a second, different approver runs it; the same
approver twice does nothing. A proposal marked at posting time stays marked.

**Dry run.** ``bot.dry_run = true`` or ``CLUSTERDOC_DRY_RUN=1`` in the bot's environment: an
approval that passes every check shows the exact commands and marks the proposal ``dry_run``;
nothing is executed and nothing counts towards the breaker. The per-incident hard limit
(``agent.max_drain_fraction``, applied when proposals are built) is unchanged.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from bot.config import BotConfig, BreakerConfig
from bot.events import Reaction, Reply
from bot.store import ProposalRow, Store, add_column
from bot.targets import host_problem
from pipelines.api import Proposal

if TYPE_CHECKING:
    from bot.clusters import ClusterMap
    from bot.middleware import ApprovalPolicy

log = logging.getLogger("clusterdoc.bot")

DRY_RUN_ENV = "CLUSTERDOC_DRY_RUN"
SCHEMA = """
CREATE TABLE IF NOT EXISTS breaker_actions (
  id INTEGER PRIMARY KEY AUTOINCREMENT, proposal_id TEXT NOT NULL, node TEXT NOT NULL,
  tool TEXT NOT NULL, approvers TEXT NOT NULL, at REAL NOT NULL, cluster TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS breaker_actions_at ON breaker_actions(at);
CREATE TABLE IF NOT EXISTS breaker_marks (
  proposal_id TEXT PRIMARY KEY, reason TEXT NOT NULL, at REAL NOT NULL
);
"""
_VERBS = {"drain_node": "drained", "reset_gpu": "reset"}

Outcome = Literal["claimed", "needs_second", "same_approver", "duplicate", "dry_run"]


def dry_run_on(config: BotConfig, env: Any = None) -> bool:
    env = os.environ if env is None else env
    return bool(config.dry_run) or str(env.get(DRY_RUN_ENV, "")).strip().lower() in ("1", "true", "yes", "on")


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def window_text(seconds: float) -> str:
    if seconds == 3600:
        return "the last hour"
    if seconds % 3600 == 0:
        return f"the last {int(seconds // 3600)} hours"
    if seconds >= 60:
        return f"the last {seconds / 60:g} min"
    return f"the last {seconds:g} s"


@dataclass(frozen=True)
class Assessment:
    nodes: tuple[str, ...]  # nodes this proposal would drain or reset
    used: int  # distinct nodes drained/reset in the window so far
    limit: int
    needs_two: bool
    reason: str  # why two approvers are needed ("" when not)


@dataclass(frozen=True)
class ClaimResult:
    outcome: Outcome
    assessment: Assessment
    first_approver: str = ""  # for a two-approver run: who approved first


class Breaker:
    """The breaker's state in the bot's SQLite file; every decision in one immediate transaction.
    Counted per cluster (``cluster``: its name; "" for a bot serving one unnamed cluster)."""

    def __init__(self, store: Store, config: BreakerConfig) -> None:
        self.store = store
        self.config = config
        conn = self.store.connection()
        conn.executescript(SCHEMA)
        add_column(conn, "breaker_actions", "cluster", "TEXT NOT NULL DEFAULT ''")  # older state files

    def limit(self, fleet: int) -> int:
        cap = self.config.max_nodes
        if fleet > 0:
            cap = min(cap, math.floor(self.config.max_fraction * fleet))
        return max(1, cap)

    def counted_nodes(self, proposal: Proposal) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.host for s in proposal.steps if s.tool in self.config.actions))

    def _verb(self, proposal: Proposal) -> str:
        verbs = sorted({_VERBS.get(s.tool, "acted on") for s in proposal.steps if s.tool in self.config.actions})
        return " or ".join(verbs) or "drained"

    def nodes_in_window(self, now: float, conn: sqlite3.Connection | None = None, cluster: str = "") -> set[str]:
        conn = conn or self.store.connection()
        rows = conn.execute("SELECT DISTINCT node FROM breaker_actions WHERE at>? AND cluster=?",
                            (now - self.config.window_s, cluster))
        return {str(r[0]) for r in rows.fetchall()}

    def assess(self, proposal: Proposal, fleet: int, now: float, conn: sqlite3.Connection | None = None,
               proposal_id: str | None = None, cluster: str = "") -> Assessment:
        conn = conn or self.store.connection()
        nodes = self.counted_nodes(proposal)
        limit = self.limit(fleet)
        if not nodes:
            return Assessment((), 0, limit, False, "")
        used = self.nodes_in_window(now, conn, cluster)
        after = used | set(nodes)
        over = len(after) > limit and bool(set(nodes) - used)
        reason = ""
        window, verb = window_text(self.config.window_s), self._verb(proposal)
        if over:
            new = len(set(nodes) - used)
            reason = (f"would be the {ordinal(len(after))} node {verb} in {window}; limit {limit}" if new == 1 else
                      f"would bring the nodes {verb} in {window} to {len(after)}; limit {limit}")
        if proposal_id is not None:
            mark = conn.execute("SELECT reason FROM breaker_marks WHERE proposal_id=?", (proposal_id,)).fetchone()
            if mark is not None and not over:
                over, reason = True, f"marked when proposed: {mark[0]}"
        return Assessment(nodes, len(used), limit, over, reason)

    def mark(self, proposal_id: str, proposal: Proposal, fleet: int, now: float, cluster: str = "") -> Assessment:
        """At posting time: a proposal above the limit is marked "needs two approvers" (sticky)."""
        assessment = self.assess(proposal, fleet, now, cluster=cluster)
        if assessment.needs_two:
            self.store.connection().execute(
                "INSERT OR REPLACE INTO breaker_marks(proposal_id, reason, at) VALUES (?,?,?)",
                (proposal_id, assessment.reason, now))
        return assessment

    def claim(self, row: ProposalRow, proposal: Proposal, approver: str, now: float, fleet: int,
              dry_run: bool = False, cluster: str = "") -> ClaimResult:
        """Decide and claim in one transaction: count the window, record a first of two approvals,
        or claim the proposal (``Store.claim_in``) and record its nodes."""
        with self.store.tx() as conn:
            state = conn.execute("SELECT state FROM proposals WHERE id=? AND hash=? AND expires_at>?",
                                 (row.id, row.hash, now)).fetchone()
            assessment = self.assess(proposal, fleet, now, conn, proposal_id=row.id, cluster=cluster)
            if state is None or state[0] != "pending":
                return ClaimResult("duplicate", assessment)
            first = ""
            if assessment.needs_two:
                firsts = [str(r[0]) for r in conn.execute(
                    "SELECT DISTINCT user FROM approvals WHERE proposal_id=? AND hash=? AND outcome='first_of_two'"
                    " ORDER BY id", (row.id, row.hash)).fetchall()]
                if approver in firsts:
                    return ClaimResult("same_approver", assessment)
                if not firsts:
                    conn.execute("INSERT INTO approvals(proposal_id, hash, user, decision, outcome, at)"
                                 " VALUES (?,?,?,?,?,?)", (row.id, row.hash, approver, "approve", "first_of_two", now))
                    return ClaimResult("needs_second", assessment)
                first = firsts[0]
            if dry_run:
                cur = conn.execute("UPDATE proposals SET state='dry_run', decided_by=?, decided_at=?"
                                   " WHERE id=? AND state='pending'", (approver, now, row.id))
                return ClaimResult("dry_run" if cur.rowcount == 1 else "duplicate", assessment, first)
            if not Store.claim_in(conn, row.id, row.hash, approver, now):
                return ClaimResult("duplicate", assessment, first)
            approvers = ",".join(a for a in (first, approver) if a)
            by_node = {s.host: s.tool for s in proposal.steps if s.tool in self.config.actions}
            conn.executemany("INSERT INTO breaker_actions(proposal_id, node, tool, approvers, at, cluster)"
                             " VALUES (?,?,?,?,?,?)",
                             [(row.id, node, tool, approvers, now, cluster) for node, tool in by_node.items()])
            return ClaimResult("claimed", assessment, first)


class SafeguardsMixin:
    """The Bot's approval tail: targets, breaker, dry run, then the claim and the execution."""

    config: BotConfig
    store: Store
    policy: ApprovalPolicy
    clusters: ClusterMap
    breaker: Breaker
    clock: Callable[[], float]

    if TYPE_CHECKING:  # provided by the Bot / ApprovalsMixin
        def _submit(self, fn: Callable[..., Any], *args: Any) -> None: ...
        def _execute(self, row: ProposalRow, proposal: Proposal, approver: str, approved_at: float) -> None: ...

    def _init_safeguards(self) -> None:
        self.breaker = Breaker(self.store, self.config.breaker)

    def nodes_now(self, cluster: str | None = None) -> list[str]:
        """A cluster's inventory as it is now (the root's live view), else the nodes known at start.
        ``cluster`` None: the default cluster's (every cluster's when there is no default)."""
        found = self.clusters.get(cluster) if cluster is not None else self.clusters.default
        if found is not None:
            return found.nodes_now()
        if cluster is not None:
            return []  # a cluster no longer configured: no node of it exists now
        return list(dict.fromkeys(n for c in self.clusters for n in c.nodes_now()))

    def _breaker_note(self, proposal_id: str, proposal: Proposal, cluster: str = "") -> str:
        """Lines under a proposal as it is posted: two approvers needed (and why), dry run."""
        lines = []
        assessment = self.breaker.mark(proposal_id, proposal, len(self.nodes_now(cluster)), self.clock(), cluster)
        if assessment.needs_two:
            lines.append(f"⚠ Needs two approvers (circuit breaker): {assessment.reason}.")
        if dry_run_on(self.config):
            lines.append("DRY RUN is on: approving shows the commands; nothing runs.")
        return ("\n" + "\n".join(lines)) if lines else ""

    def _approve(self, event: Reaction, row: ProposalRow, proposal: Proposal, now: float) -> list[Reply]:
        """Everything after the approver, expiry and hash checks: targets, breaker, dry run, claim."""
        cluster = self.store.cluster_of(row.incident_id)
        nodes = self.nodes_now(cluster)  # that cluster's inventory and breaker only
        problem = host_problem(proposal, nodes)
        if problem is None and not nodes and self.clusters.get(cluster) is None:
            problem = f"cluster `{cluster}` is not configured any more; not run"
        if problem is not None:
            self.store.record_decision(row.id, row.hash, event.user, "approve", "target_refused")
            self.store.audit(event.user, "approval_refused", row.id, problem)
            return [Reply("error", event.channel, f"Proposal `{row.id}`: {problem}.", thread=row.thread,
                          proposal_id=row.id)]
        dry = dry_run_on(self.config)
        result = self.breaker.claim(row, proposal, event.user, now, len(nodes), dry_run=dry, cluster=cluster)
        why = result.assessment.reason
        if result.outcome == "duplicate":
            self.store.record_decision(row.id, row.hash, event.user, "approve", "duplicate")
            return []  # someone else's approval won the race, or it just expired
        if result.outcome == "same_approver":
            self.store.record_decision(row.id, row.hash, event.user, "approve", "same_approver")
            return [Reply("error", event.channel, f"{event.user} already approved `{row.id}`; it needs a second, "
                          f"different approver ({why}). Nothing runs yet.", thread=row.thread,
                          ephemeral_to=event.user, proposal_id=row.id)]
        if result.outcome == "needs_second":
            self.store.audit(event.user, "approval_first_of_two", row.id, {"hash": row.hash, "why": why})
            return [Reply("text", event.channel, f"Proposal `{row.id}` needs two approvers: {why}. ✅ from "
                          f"{event.user} counted (1 of 2); a second, different approver must react ✅. "
                          "Nothing runs yet.", thread=row.thread, proposal_id=row.id)]
        who = f"{result.first_approver} and {event.user}" if result.first_approver else event.user
        if result.outcome == "dry_run":
            self.store.record_decision(row.id, row.hash, event.user, "approve", "dry_run")
            self.store.audit(event.user, "proposal_dry_run", row.id, {"hash": row.hash, "commands": proposal.commands()})
            self.store.set_incident(row.incident_id, status="dry_run")
            code = "\n".join(f"[{s.host}{f' via {s.run_on}' if getattr(s, 'run_on', '') else ''}] {c}"
                             for s in proposal.steps for c in s.commands)
            return [Reply("result", event.channel, f"DRY RUN: proposal `{row.id}` approved by {who}; nothing was "
                          "run. These commands would run:", thread=row.thread, code=code, proposal_id=row.id,
                          incident_id=str(row.incident_id))]
        self.store.record_decision(row.id, row.hash, event.user, "approve", "executing")
        detail: dict[str, Any] = {"hash": row.hash, "commands": proposal.commands()}
        if result.first_approver:
            detail.update(first_approver=result.first_approver, breaker=why)
        self.store.audit(event.user, "proposal_approved", row.id, detail)
        self.store.set_incident(row.incident_id, status="executing")
        self._submit(self._execute, row, proposal, event.user, now)
        two = f" (two approvers: {why})" if result.first_approver else ""
        return [Reply("text", event.channel, f"Approved by {who}{two}: executing proposal `{row.id}`…",
                      thread=row.thread, proposal_id=row.id)]

    def breaker_status(self, nodes: Sequence[str] | None = None, cluster: str = "") -> str:
        """One line: a cluster's nodes drained/reset in the window vs the limit (for /status)."""
        fleet = len(self.nodes_now(cluster) if nodes is None else nodes)
        used = len(self.breaker.nodes_in_window(self.clock(), cluster=cluster))
        return (f"circuit breaker: {used} of {self.breaker.limit(fleet)} nodes drained/reset in "
                f"{window_text(self.config.breaker.window_s)}" + (" · DRY RUN on" if dry_run_on(self.config) else ""))
