"""Node history: per node and GPU, the incidents (fault, verdict), the actions taken and whether
they were verified — kept in the bot's SQLite file (table ``node_history``).

A fault counts as recurring by node + GPU + *fault key*: the log signature when one matched (e.g.
``xid-79``, shown as "Xid 79"), else the fault kind. The ``recurring_count``-th occurrence within
``recurring_days`` is flagged in the thread ("3rd Xid 79 on node-17 GPU 2 in 30 days: RMA
candidate"); ``/history node-17`` lists the node's last incidents; the health report uses the same
table for its trend and its list of recurring faults (``bot.fleet``).
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.commands import CommandError
from bot.config import BotConfig, HistoryConfig
from bot.events import Command, Reply
from bot.safeguards import ordinal
from bot.store import IncidentRow, ProposalRow, Store, add_column
from bot.targets import resolve_node
from pipelines.api import Diagnosis, ExecutionResult, Proposal

if TYPE_CHECKING:
    from bot.clusters import BotCluster

log = logging.getLogger("clusterdoc.bot")

SCHEMA = """
CREATE TABLE IF NOT EXISTS node_history (
  id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, node TEXT NOT NULL, gpu INTEGER,
  incident_id INTEGER, kind TEXT NOT NULL, fault_key TEXT, label TEXT NOT NULL DEFAULT '',
  category TEXT, verdict TEXT NOT NULL DEFAULT '', proposal_id TEXT, action TEXT, ok INTEGER,
  verified INTEGER, summary TEXT NOT NULL DEFAULT '', cluster TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS node_history_node ON node_history(node, at);
CREATE INDEX IF NOT EXISTS node_history_fault ON node_history(kind, at, fault_key);
"""
DAY_S = 86400.0
_XID = re.compile(r"^xid-(\d+)$", re.IGNORECASE)
_HARDWARE = ("gpu-hardware", "memory")


def fault_identity(diagnosis: Diagnosis) -> tuple[str, str] | None:
    """(key, label) a recurring fault is counted by: the matched log signature, else the fault kind."""
    cause = diagnosis.cause
    if diagnosis.verdict == "clean":
        return None
    signature = next((h for h in diagnosis.hypotheses if isinstance(h, dict) and h.get("source") == "signature"
                      and h.get("id") and (not cause.fault or h.get("fault_kind") in (None, cause.fault))), None)
    if signature is not None:
        sig_id = str(signature["id"])
        m = _XID.match(sig_id)
        return f"signature:{sig_id}", (f"Xid {m.group(1)}" if m else str(signature.get("title") or sig_id))
    if cause.fault:
        return f"fault:{cause.fault}", cause.fault
    return None


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(at))


@dataclass(frozen=True)
class Recurring:
    node: str
    gpu: int | None
    label: str
    count: int
    category: str | None

    def where(self) -> str:
        return self.node + (f" GPU {self.gpu}" if self.gpu is not None else "")

    def advice(self) -> str:
        hardware = self.category in _HARDWARE or (self.category is None and self.gpu is not None)
        return "RMA candidate" if hardware else "recurring: find what keeps causing it"


class NodeHistory:
    """Every method takes the ``cluster`` (its name; "" for a bot serving one unnamed cluster): node
    names are only unique within a cluster, so history, counts and listings never mix two."""

    def __init__(self, store: Store, config: HistoryConfig) -> None:
        self.store = store
        self.config = config
        conn = self.store.connection()
        conn.executescript(SCHEMA)
        add_column(conn, "node_history", "cluster", "TEXT NOT NULL DEFAULT ''")  # older state files

    def _conn(self) -> sqlite3.Connection:
        return self.store.connection()

    # -- writing ------------------------------------------------------------------------------
    def record_diagnosis(self, incident_id: int, node: str | None, diagnosis: Diagnosis, at: float,
                         cluster: str = "") -> Recurring | None:
        """Store the incident's verdict on its node (the cause's node, else the node asked about);
        return the recurring fault it makes, when it reaches ``recurring_count``."""
        cause = diagnosis.cause
        node = cause.node or node
        if not node:
            return None  # a cluster- or job-wide cause with no node: nothing to keep per node
        ident = fault_identity(diagnosis)
        key, label = ident if ident else (None, cause.fault or "")
        self._conn().execute(
            "INSERT INTO node_history(at, node, gpu, incident_id, kind, fault_key, label, category, verdict, summary,"
            " cluster) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (at, node, cause.gpu, incident_id, "incident", key, label, cause.category, diagnosis.verdict,
             diagnosis.summary[:300], cluster))
        if key is None:
            return None
        since = at - self.config.recurring_days * DAY_S
        count = int(self._conn().execute(
            "SELECT COUNT(*) FROM node_history WHERE kind='incident' AND node=? AND gpu IS ? AND fault_key=? AND at>?"
            " AND cluster=?", (node, cause.gpu, key, since, cluster)).fetchone()[0])
        if count < self.config.recurring_count:
            return None
        return Recurring(node, cause.gpu, label, count, cause.category)

    def record_actions(self, incident_id: int, proposal_id: str, proposal: Proposal, result: ExecutionResult,
                       at: float, cluster: str = "") -> None:
        statuses = {(str(r.get("tool")), str(r.get("host"))): str(r.get("status")) for r in result.step_results}
        rows = []
        for step in dict.fromkeys((s.tool, s.host, s.params.get("gpu")) for s in proposal.steps):
            tool, host, gpu = step
            status = statuses.get((tool, host))
            ok = (status == "ok") if status is not None else result.ok
            rows.append((at, host, gpu if isinstance(gpu, int) else None, incident_id, "action", proposal_id, tool,
                         int(ok), int(result.verified), proposal.cause.fault or "", proposal.cause.category, cluster))
        self._conn().executemany(
            "INSERT INTO node_history(at, node, gpu, incident_id, kind, proposal_id, action, ok, verified, label,"
            " category, cluster) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)

    # -- reading ------------------------------------------------------------------------------
    def nodes(self, cluster: str = "") -> list[str]:
        return [str(r[0]) for r in self._conn().execute("SELECT DISTINCT node FROM node_history WHERE cluster=?",
                                                         (cluster,)).fetchall()]

    def has(self, node: str, cluster: str = "") -> bool:
        return self._conn().execute("SELECT 1 FROM node_history WHERE node=? AND cluster=? LIMIT 1",
                                    (node, cluster)).fetchone() is not None

    def recurring(self, since: float, minimum: int, limit: int = 20, node: str | None = None,
                  cluster: str = "") -> list[Recurring]:
        sql = ("SELECT node, gpu, MAX(label), COUNT(*) AS c, MAX(category) FROM node_history"
               " WHERE kind='incident' AND at>? AND fault_key IS NOT NULL AND cluster=?" + (" AND node=?" if node else "") +
               " GROUP BY node, gpu, fault_key HAVING c>=? ORDER BY c DESC, node, gpu LIMIT ?")
        args: tuple[Any, ...] = ((since, cluster, node, minimum, limit) if node else (since, cluster, minimum, limit))
        return [Recurring(str(r[0]), r[1], str(r[2]), int(r[3]), r[4]) for r in self._conn().execute(sql, args)]

    def incidents_between(self, start: float, end: float, cluster: str = "") -> int:
        row = self._conn().execute("SELECT COUNT(DISTINCT incident_id) FROM node_history WHERE kind='incident'"
                                   " AND at>? AND at<=? AND cluster=?", (start, end, cluster)).fetchone()
        return int(row[0])

    def drained_by_us(self, cluster: str = "") -> set[str]:
        """Nodes whose last successful drain_node/resume_node by clusterdoc was a drain."""
        last: dict[str, str] = {}
        for node, action in self._conn().execute(
                "SELECT node, action FROM node_history WHERE kind='action' AND ok=1 AND action IN"
                " ('drain_node', 'resume_node') AND cluster=? ORDER BY at, id", (cluster,)):
            last[str(node)] = str(action)
        return {n for n, a in last.items() if a == "drain_node"}

    def listing(self, node: str, limit: int, now: float, cluster: str = "") -> str:
        conn = self._conn()
        total = int(conn.execute("SELECT COUNT(DISTINCT incident_id) FROM node_history WHERE node=? AND cluster=?",
                                 (node, cluster)).fetchone()[0])
        if not total:
            return f"No history for `{node}` yet: no incident or action of clusterdoc's named it."
        ids = [int(r[0]) for r in conn.execute(
            "SELECT incident_id, MAX(at) AS last FROM node_history WHERE node=? AND cluster=? GROUP BY incident_id"
            " ORDER BY last DESC LIMIT ?", (node, cluster, limit)).fetchall()]
        marks = ",".join("?" * len(ids))
        rows = conn.execute(f"SELECT * FROM node_history WHERE node=? AND cluster=? AND incident_id IN ({marks})"
                            " ORDER BY at, id", (node, cluster, *ids)).fetchall()
        by_incident: dict[int, list[sqlite3.Row]] = {i: [] for i in ids}
        for r in rows:
            by_incident[int(r["incident_id"])].append(r)
        lines = [f"History of `{node}`: {total} incident(s) on record" + (f", the last {len(ids)}:" if total > len(ids)
                                                                            else ":")]
        for incident_id in ids:
            entries = by_incident[incident_id]
            incident = next((r for r in entries if r["kind"] == "incident"), None)
            at = (incident or entries[0])["at"]
            if incident is not None:
                gpu = f" GPU {incident['gpu']}" if incident["gpu"] is not None else ""
                what = f"{incident['label'] or 'no fault found'}{gpu} — {incident['verdict']}"
            else:
                what = "acted on in another node's incident"
            acts = [f"{r['action']}{' GPU ' + str(r['gpu']) if r['gpu'] is not None else ''} "
                    f"{'ok' if r['ok'] else 'FAILED'}{', verified ✅' if r['verified'] else ', not verified'}"
                    for r in entries if r["kind"] == "action"]
            lines.append(f"• {_when(float(at))} UTC #{incident_id}: {what}" + (f" · {'; '.join(acts)}" if acts else ""))
        recurring = self.recurring(now - self.config.recurring_days * DAY_S, self.config.recurring_count, node=node,
                                   cluster=cluster)
        for r in recurring:
            lines.append(f"⚠ {r.label} on {r.where()} ×{r.count} in {self.config.recurring_days:g} days: {r.advice()}")
        return "\n".join(lines)


class HistoryMixin:
    """The Bot's side of node history: record, flag recurring faults, answer ``/history``."""

    config: BotConfig
    store: Store
    history: NodeHistory
    clock: Callable[[], float]

    if TYPE_CHECKING:  # provided by SafeguardsMixin
        def nodes_now(self, cluster: str | None = None) -> list[str]: ...

    def _init_history(self) -> None:
        self.history = NodeHistory(self.store, self.config.history)

    def _history_note(self, incident: IncidentRow, diagnosis: Diagnosis) -> str:
        """Record the diagnosis per node; a line for the thread when the fault is recurring."""
        try:
            node = incident.target if incident.target and incident.target in self.nodes_now(incident.cluster) else None
            rec = self.history.record_diagnosis(incident.id, node, diagnosis, self.clock(), incident.cluster)
        except Exception:  # history is a record, not a gate: the diagnosis is posted regardless
            log.exception("recording node history of incident %s failed", incident.id)
            return ""
        if rec is None:
            return ""
        self.store.audit("bot", "recurring_fault", rec.where(), {"label": rec.label, "count": rec.count,
                                                                 "incident": incident.id})
        return (f"\n⚠ {ordinal(rec.count)} {rec.label} on {rec.where()} in "
                f"{self.config.history.recurring_days:g} days: {rec.advice()}")

    def _record_execution(self, row: ProposalRow, proposal: Proposal, result: ExecutionResult) -> None:
        try:
            self.history.record_actions(row.incident_id, row.id, proposal, result, self.clock(),
                                        self.store.cluster_of(row.incident_id))
        except Exception:
            log.exception("recording node history of %s failed", row.id)

    def _history_command(self, event: Command, text: str, cluster: BotCluster) -> list[Reply]:
        words = text.split()
        limit = self.config.history.list_limit
        try:
            if not words:
                raise CommandError("`history` needs a node, e.g. `/history node-17`")
            if len(words) > 1:
                if not words[1].isdigit() or not 1 <= int(words[1]) <= 100:
                    raise CommandError("usage: /history <node> [how many incidents, 1-100]")
                limit = int(words[1])
            # that cluster's inventory, and its nodes with history that have left it since
            node = resolve_node(words[0], cluster.nodes_now(), self.history.nodes(cluster.name))
        except CommandError as exc:
            return [Reply("error", event.channel, str(exc), thread=event.thread, ephemeral_to=event.user,
                          cluster=cluster.name)]
        return [Reply("text", event.channel, self.history.listing(node, limit, self.clock(), cluster.name),
                      thread=event.thread, cluster=cluster.name)]


def recurring_lines(history: NodeHistory, now: float, shown: int = 10, cluster: str = "") -> Sequence[str]:
    cfg = history.config
    found = history.recurring(now - cfg.recurring_days * DAY_S, cfg.recurring_count, limit=shown + 1, cluster=cluster)
    lines = [f"• {r.label} on {r.where()} ×{r.count} in {cfg.recurring_days:g} days: {r.advice()}" for r in found[:shown]]
    if len(found) > shown:
        lines.append("… and more (/history <node>)")
    return lines
