"""The fleet-health head of the scheduled report: nodes healthy / degraded / drained / unreachable,
the trend against the report of a week ago, and the recurring faults of the node history.

Per node, from the quick sweep: *unreachable* when its checks could not connect (or all timed
out), *drained* when the scheduler says so (``node_drained``) or — where no scheduler state was
read — clusterdoc's own last drain/resume action was a drain, *degraded* with any warning or
critical finding, else *healthy*. Each report stores its counts (``snapshots``, kind ``fleet``, or
``fleet:<cluster>`` per named cluster); the trend compares with the newest one at least 6.5 days
old, and the chart (``bot.chart``) draws the last one of each of the last 14 days. Incidents per week come from
``node_history``. Everything is a handful of indexed queries, so the report stays fast with
months of history (``benchmark/speed/report.py``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

from bot.history import NodeHistory, recurring_lines
from bot.store import Store

STATES = ("healthy", "degraded", "drained", "unreachable")
WEEK_S = 7 * 86400.0
_DOWN = {"unreachable", "timeout"}


def _status(result: Any) -> str:
    status = getattr(result, "status", "")
    return str(getattr(status, "value", status))


def fleet_states(report: Any, hosts: Sequence[str], drained_by_us: Iterable[str] = ()) -> dict[str, str]:
    """Each host's state from a SweepReport (duck-typed: ``results`` host -> tool results with
    ``status``/``findings``, ``fleet`` findings, ``not_checked`` hosts). Hosts the sweep did not
    cover are ``unknown``; hosts clusterdoc itself fell behind on are ``not checked``."""
    ours = set(drained_by_us)
    results: dict[str, list[Any]] = dict(getattr(report, "results", None) or {})
    not_checked = set(getattr(report, "not_checked", None) or ())
    fleet_hosts = {getattr(f, "host", None) for f in getattr(report, "fleet", None) or ()
                   if getattr(f, "severity", "") in ("warning", "critical")}
    states: dict[str, str] = {}
    for host in hosts:
        rs = results.get(host)
        if host in not_checked:
            states[host] = "not checked"
            continue
        if not rs:
            states[host] = "drained" if host in ours else "unknown"
            continue
        statuses = {_status(r) for r in rs}
        findings = [f for r in rs for f in getattr(r, "findings", ()) or ()]
        read_state = any(getattr(r, "tool", "") == "node_state" and _status(r) in ("ok", "problem") for r in rs)
        if "unreachable" in statuses or statuses <= _DOWN:
            states[host] = "unreachable"
        elif any(getattr(f, "kind", "") == "node_drained" for f in findings) or (host in ours and not read_state):
            states[host] = "drained"
        elif host in fleet_hosts or any(getattr(f, "severity", "") in ("warning", "critical") for f in findings):
            states[host] = "degraded"
        else:
            states[host] = "healthy"
    return states


def count_states(states: dict[str, str]) -> dict[str, int]:
    counts = dict.fromkeys(STATES, 0)
    for state in states.values():
        counts[state] = counts.get(state, 0) + 1
    return counts


def fleet_kind(cluster: str = "") -> str:
    """The snapshot kind of a cluster's fleet counts (``fleet`` for a bot serving one unnamed cluster)."""
    return f"fleet:{cluster}" if cluster else "fleet"


def save_counts(store: Store, counts: dict[str, int], now: float, cluster: str = "") -> None:
    store.connection().execute("INSERT INTO snapshots(at, kind, body) VALUES (?,?,?)",
                               (now, fleet_kind(cluster), json.dumps({"counts": counts, "at": now})))


def _counts(body: str) -> dict[str, int]:
    return {k: int(v) for k, v in json.loads(body).get("counts", {}).items()}


def week_ago_counts(store: Store, now: float, cluster: str = "") -> tuple[float, dict[str, int]] | None:
    row = store.connection().execute(
        "SELECT at, body FROM snapshots WHERE kind=? AND at<=? ORDER BY at DESC LIMIT 1",
        (fleet_kind(cluster), now - WEEK_S + 43200.0)).fetchone()
    if row is None:
        return None
    return float(row[0]), _counts(row[1])


def fleet_days(store: Store, now: float, days: int = 14, cluster: str = "") -> list[tuple[float, dict[str, int]]]:
    """The fleet counts of each of the last ``days`` UTC days that has a report (its last one), oldest first."""
    start = (now // 86400.0 - (days - 1)) * 86400.0  # midnight UTC, ``days - 1`` days before today
    last: dict[int, tuple[float, str]] = {}
    for at, body in store.connection().execute(
            "SELECT at, body FROM snapshots WHERE kind=? AND at>=? AND at<=? ORDER BY at, id",
            (fleet_kind(cluster), start, now)):
        last[int(float(at) // 86400.0)] = (float(at), str(body))
    return [(at, _counts(body)) for _, (at, body) in sorted(last.items())]


def _delta(n: int) -> str:
    return f"+{n}" if n > 0 else (f"−{-n}" if n < 0 else "±0")


def fleet_lines(store: Store, history: NodeHistory, counts: dict[str, int], now: float,
                sweep_ok: bool = True, cluster: str = "") -> list[str]:
    """The report's first lines: fleet health and its trend, then recurring faults (RMA candidates)."""
    total = sum(counts.values())
    parts = [f"{counts.get(s, 0)} {s}" for s in STATES]
    parts += [f"{counts[s]} {s}" for s in sorted(counts) if s not in STATES and counts[s]]
    head = f"Fleet health ({total} nodes): " + " · ".join(parts)
    if not sweep_ok:
        head += " (the sweep failed: states unknown)"
    before = week_ago_counts(store, now, cluster)
    if before is None:
        trend = "vs last week: no report from a week ago yet"
    else:
        at, old = before
        trend = (f"vs last week ({time.strftime('%Y-%m-%d', time.gmtime(at))}): "
                 + ", ".join(f"{s} {_delta(counts.get(s, 0) - old.get(s, 0))}" for s in STATES))
    this_week = history.incidents_between(now - WEEK_S, now, cluster)
    last_week = history.incidents_between(now - 2 * WEEK_S, now - WEEK_S, cluster)
    lines = [head, f"{trend}; node incidents {this_week} this week ({last_week} the week before)"]
    recurring = recurring_lines(history, now, cluster=cluster)
    if recurring:
        cfg = history.config
        lines.append(f"Recurring faults (≥{cfg.recurring_count} in {cfg.recurring_days:g} days):")
        lines += list(recurring)
    return lines
