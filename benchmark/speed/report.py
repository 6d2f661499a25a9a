"""Health-report rendering with a big fleet and a long node history (run: python -m benchmark.speed.report).

512 nodes (``--nodes``) × 8 GPUs, 90 days (``--days``) of node history in the bot's SQLite file:
incidents at ``--rate`` per node per day (Xid 79 and friends, a tenth of them on a few repeat
offenders so the recurring-fault list is not empty), half of them with an executed action, and one
fleet snapshot per day. The sweep is a prebuilt SweepReport of every node (12 checks each, a few
unreachable, drained and degraded nodes) handed over by a stand-in toolkit, so what is timed is the
bot's part: fleet states, the trend against last week, incidents per week, recurring faults, the
findings diff, the text and the PNG chart of the last 14 days of fleet health (matplotlib; the first
run also pays for importing it). Target: the whole ``Schedules.health_report()`` under 2 s.

Note: this script drives ``bot`` (the thing it measures).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DAY = 86400.0
FAULTS = [("xid-79", "gpu_fallen_off_bus", "gpu-hardware"), ("xid-48", "gpu_ecc_dbe", "gpu-hardware"),
          (None, "gpu_clock_throttle", "thermal-power"), (None, "ib_port_down", "network"),
          ("xid-13", "gpu_xid", "gpu-hardware")]
TOOLS = ["gpu_clocks", "gpu_power", "gpu_temperature", "gpu_ecc", "gpu_xid", "gpu_count", "node_state", "ib_ports",
         "disk_usage", "shm_size", "service_status", "versions"]


class SweepStandIn:
    """``toolkit.sweep`` answered from a prebuilt report (no SSH)."""

    def __init__(self, report: Any) -> None:
        self.report = report

    def sweep(self, hosts: list[str], level: str = "quick") -> Any:
        return self.report


def build_sweep(nodes: list[str], rng: random.Random) -> Any:
    from diagnostics.toolkit import SweepReport
    from diagnostics.types import Finding, Status, ToolResult

    results: dict[str, list[Any]] = {}
    for node in nodes:
        roll = rng.random()
        if roll < 0.01:
            results[node] = [ToolResult(t, node, Status.UNREACHABLE, error="connection refused") for t in TOOLS]
            continue
        rs = []
        for tool in TOOLS:
            findings = []
            if tool == "node_state" and roll < 0.03:
                findings = [Finding("node_drained", node, f"{node} is drained (clusterdoc)", severity="info")]
            elif tool == "gpu_clocks" and 0.03 <= roll < 0.07:
                findings = [Finding("gpu_clock_throttle", node, "GPU 3 SM clock 300 MHz", gpu=3)]
            rs.append(ToolResult(tool, node, Status.PROBLEM if findings else Status.OK, findings=findings))
        results[node] = rs
    return SweepReport(results=results, level="quick", tools=TOOLS)


def fill_history(bot: Any, nodes: list[str], days: int, rate: float, now: float, rng: random.Random) -> int:
    """Node history and daily fleet snapshots, written straight into the store's tables."""
    import json

    conn = bot.store.connection()
    rows: list[tuple[Any, ...]] = []
    actions: list[tuple[Any, ...]] = []
    offenders = rng.sample(nodes, max(1, len(nodes) // 50))
    total = int(len(nodes) * days * rate)
    for incident in range(1, total + 1):
        node = rng.choice(offenders) if rng.random() < 0.1 else rng.choice(nodes)
        sig, fault, category = rng.choice(FAULTS)
        gpu = rng.randrange(8)
        at = now - rng.random() * days * DAY
        key = f"signature:{sig}" if sig else f"fault:{fault}"
        label = f"Xid {sig.split('-')[1]}" if sig else fault
        rows.append((at, node, gpu, incident, "incident", key, label, category, "verified", f"{label} on {node}"))
        if rng.random() < 0.5:
            actions.append((at + 600, node, gpu, incident, "action", f"{incident}.p1",
                            rng.choice(["drain_node", "reset_gpu", "resume_node"]), 1, 1, fault, category))
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO node_history(at, node, gpu, incident_id, kind, fault_key, label, category, verdict,"
                     " summary) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
    conn.executemany("INSERT INTO node_history(at, node, gpu, incident_id, kind, proposal_id, action, ok, verified,"
                     " label, category) VALUES (?,?,?,?,?,?,?,?,?,?,?)", actions)
    for d in range(days, 0, -1):
        counts = {"healthy": len(nodes) - 30 - d % 5, "degraded": 20 + d % 5, "drained": 6, "unreachable": 4}
        conn.execute("INSERT INTO snapshots(at, kind, body) VALUES (?,?,?)",
                     (now - d * DAY, "fleet", json.dumps({"counts": counts, "at": now - d * DAY})))
    conn.execute("COMMIT")
    return len(rows) + len(actions)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--nodes", type=int, default=512)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--rate", type=float, default=0.2, help="incidents per node per day")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)

    from bot.chart import fleet_chart_png
    from bot.config import BotConfig
    from bot.core import Bot
    from bot.fleet import count_states, fleet_days, fleet_lines, fleet_states
    from bot.scheduler import Schedules
    from bot.store import Store

    rng = random.Random(7)
    tmp = Path(tempfile.mkdtemp(prefix="report-"))
    nodes = [f"node-{i:04d}" for i in range(args.nodes)]
    now = time.time()
    cfg = BotConfig(state_path=str(tmp / "state.sqlite"))
    replies: list[Any] = []

    def outbox(reply: Any) -> str:
        replies.append(reply)
        return f"m{len(replies)}"

    bot = Bot(cfg, Store(cfg.state_path), agent=None, known_nodes=nodes, outbox=outbox,  # type: ignore[arg-type]
              clock=lambda: now)
    t0 = time.perf_counter()
    history_rows = fill_history(bot, nodes, args.days, args.rate, now, rng)
    fill_s = time.perf_counter() - t0
    sweep = build_sweep(nodes, rng)
    sched = Schedules(bot, toolkit=SweepStandIn(sweep), hosts=nodes, channel="C_REPORT", platform="slack")

    full: list[float] = []
    fleet_only: list[float] = []
    chart_only: list[float] = []
    text = ""
    for _ in range(args.runs):
        t0 = time.perf_counter()
        text = sched.health_report()  # the first run imports matplotlib
        full.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        states = fleet_states(sweep, nodes, bot.history.drained_by_us())
        fleet_lines(bot.store, bot.history, count_states(states), now)
        fleet_only.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fleet_chart_png(fleet_days(bot.store, now, 14))
        chart_only.append(time.perf_counter() - t0)
    bot.close()
    assert text.startswith("Fleet health"), text[:200]
    png = replies[-1].image_png
    assert png and png.startswith(b"\x89PNG"), "the report has no chart"
    head = text.splitlines()

    table = [
        ("nodes × days of history", f"{args.nodes} × {args.days}"),
        ("node_history rows (incidents + actions)", f"{history_rows}"),
        ("history written in", f"{fill_s:.2f} s"),
        ("checks in the sweep", f"{sum(len(v) for v in sweep.results.values())}"),
        (f"health_report() median of {args.runs}", f"{statistics.median(full) * 1000:.0f} ms"),
        ("health_report() max", f"{max(full) * 1000:.0f} ms"),
        ("health_report() first run (imports matplotlib)", f"{full[0] * 1000:.0f} ms"),
        ("fleet section alone, median", f"{statistics.median(fleet_only) * 1000:.0f} ms"),
        ("chart alone (14 days, PNG), median", f"{statistics.median(chart_only) * 1000:.0f} ms"),
        ("chart PNG size", f"{len(png) / 1024:.0f} KiB"),
        ("report lines", f"{len(head)}"),
    ]
    width = max(len(k) for k, _ in table)
    print(f"{'metric':<{width}}  value")
    for key, value in table:
        print(f"{key:<{width}}  {value}")
    print("--- report head ---")
    print("\n".join(head[:8]))
    worst = max(full)
    verdict = "PASS" if worst < 2.0 else "FAIL"
    print(f"report: {verdict} max={worst * 1000:.0f}ms median={statistics.median(full) * 1000:.0f}ms (target <2000ms) "
          f"chart={statistics.median(chart_only) * 1000:.0f}ms png={len(png)}B "
          f"nodes={args.nodes} days={args.days} history_rows={history_rows}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
