"""Node history: recurring faults flagged in the thread, /history, the fleet-health head of the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.core import Bot
from bot.events import Command, Mention
from bot.scheduler import Schedules
from diagnostics.toolkit import SweepReport
from diagnostics.types import Finding, Status, ToolResult
from tests.bot.fakes import RecordingOutbox
from tests.bot.test_safeguards import NODES, Clock, diagnose, make_bot, react

DAY = 86400.0


def flagged(out: RecordingOutbox) -> list[str]:
    return [r.text for r in out.replies if "RMA candidate" in r.text]


def test_third_xid_79_on_one_gpu_in_30_days_is_flagged(tmp_path: Path) -> None:
    out, clock = RecordingOutbox(), Clock()
    bot = make_bot(tmp_path, out=out, clock=clock, max_nodes=100, max_fraction=1.0)
    diagnose(bot, "node-07")
    clock.t += 40 * DAY  # the first one falls out of the 30-day window
    diagnose(bot, "node-07")
    clock.t += 10 * DAY
    diagnose(bot, "node-07")
    assert flagged(out) == []  # only 2 within 30 days
    diagnose(bot, "node-08")  # another node does not count
    clock.t += 1 * DAY
    diagnose(bot, "node-07")
    lines = flagged(out)
    assert len(lines) == 1 and "⚠ 3rd Xid 79 on node-07 GPU 2 in 30 days: RMA candidate" in lines[0]
    assert lines[0].startswith("Incident #5")
    assert bot.store.audit_log("recurring_fault")[-1]["subject"] == "node-07 GPU 2"


def test_history_command_lists_incidents_actions_and_verification(tmp_path: Path) -> None:
    out, clock = RecordingOutbox(), Clock()
    bot = make_bot(tmp_path, out=out, clock=clock, max_nodes=100, max_fraction=1.0)
    msg = diagnose(bot, "node-03")
    assert "executing" in react(bot, "U_A", msg)
    clock.t += DAY
    diagnose(bot, "node-03")
    reply = bot.dispatch(Command("slack", "C1", "U1", "history", "node-03"))[0]
    assert reply.kind == "text"
    lines = reply.text.splitlines()
    assert lines[0] == "History of `node-03`: 2 incident(s) on record:"
    assert "#2: Xid 79 GPU 2 — verified" in lines[1]  # newest first
    assert "#1: Xid 79 GPU 2 — verified · drain_node ok, verified ✅" in lines[2]
    assert lines[2].startswith("• 1970-01-24 03:33 UTC #1")  # the bot's clock, in UTC
    one = bot.dispatch(Command("slack", "C1", "U1", "history", "node-03 1"))[0].text
    assert "the last 1:" in one and "#1:" not in one
    empty = bot.dispatch(Command("slack", "C1", "U1", "history", "node-04"))[0].text
    assert "No history for `node-04`" in empty
    for text, expected in {"node-99": "unknown node `node-99`", "node-1": "ambiguous node `node-1`",
                           "$(reboot)": "is not a node name", "": "needs a node",
                           "node-03 x": "usage: /history"}.items():
        r = bot.dispatch(Command("slack", "C1", "U1", "history", text))[0]
        assert r.kind == "error" and expected in r.text, (text, r.text)
    # the mention form and the usage know the command too
    mention = bot.dispatch(Mention("slack", "C1", "U1", "history node-03", message_id="9.9"))[0]
    assert mention.text == reply.text
    assert "/history <node>" in bot.dispatch(Command("slack", "C1", "U1", "help", ""))[0].text


class FakeToolkit:
    """A quick sweep with set outcomes per host (no SSH): what the fleet line is computed from."""

    def __init__(self, hosts: list[str]) -> None:
        self.hosts = hosts
        self.unreachable: set[str] = set()
        self.drained: set[str] = set()
        self.degraded: set[str] = set()

    def sweep(self, hosts: list[str], level: str = "quick") -> SweepReport:
        results: dict[str, list[ToolResult]] = {}
        for h in hosts:
            if h in self.unreachable:
                results[h] = [ToolResult("gpu_clocks", h, Status.UNREACHABLE, error="connection refused")]
                continue
            state = [Finding("node_drained", h, f"{h} is drained", severity="info")] if h in self.drained else []
            gpu = [Finding("gpu_clock_throttle", h, "GPU 1 at 300 MHz", gpu=1)] if h in self.degraded else []
            results[h] = [ToolResult("node_state", h, Status.PROBLEM if state else Status.OK, findings=state),
                          ToolResult("gpu_clocks", h, Status.PROBLEM if gpu else Status.OK, findings=gpu)]
        return SweepReport(results=results, level=level, tools=["node_state", "gpu_clocks"])


def _schedules(bot: Bot, toolkit: FakeToolkit) -> Schedules:
    return Schedules(bot, toolkit=toolkit, hosts=toolkit.hosts, channel="C_REPORT", platform="slack")


def test_report_leads_with_fleet_health_and_its_trend(tmp_path: Path) -> None:
    out, clock = RecordingOutbox(), Clock()
    bot = make_bot(tmp_path, out=out, clock=clock, max_nodes=100, max_fraction=1.0)
    toolkit = FakeToolkit(NODES)
    toolkit.unreachable, toolkit.drained, toolkit.degraded = {"node-01"}, {"node-02"}, {"node-03", "node-04"}
    sched = _schedules(bot, toolkit)
    first = sched.health_report().splitlines()
    assert first[0] == "Fleet health (16 nodes): 12 healthy · 2 degraded · 1 drained · 1 unreachable"
    assert first[1].startswith("vs last week: no report from a week ago yet; node incidents 0 this week")
    for _ in range(3):  # three Xid 79 on node-09 GPU 2 this week
        clock.t += 3600
        diagnose(bot, "node-09")
    assert "executing" in react(bot, "U_A", out.message_id_of(f"proposal:{bot.store.incidents()[-1].id}.p1"))
    clock.t += 7 * DAY - 4 * 3600
    toolkit.unreachable, toolkit.degraded = set(), {"node-03"}
    second = sched.health_report().splitlines()
    # node-09 was drained by clusterdoc, and the sweep's scheduler state says so: its own entry decides
    assert second[0] == "Fleet health (16 nodes): 14 healthy · 1 degraded · 1 drained · 0 unreachable"
    assert "healthy +2, degraded −1, drained ±0, unreachable −1" in second[1]
    assert "node incidents 3 this week (0 the week before)" in second[1]
    assert second[2].startswith("Recurring faults (≥3 in 30 days):")
    assert second[3] == "• Xid 79 on node-09 GPU 2 ×3 in 30 days: RMA candidate"
    assert any(line.startswith("Cluster health report: 16 nodes") for line in second)
    assert out.replies[-1].kind == "report" and out.replies[-1].text.startswith("Fleet health")


def test_fleet_states_fall_back_to_our_own_drains(tmp_path: Path) -> None:
    from bot.fleet import count_states, fleet_states

    report: Any = SweepReport(results={"a": [ToolResult("gpu_clocks", "a", Status.OK)],
                                       "b": [ToolResult("gpu_clocks", "b", Status.TIMEOUT)],
                                       "c": [ToolResult("node_state", "c", Status.OK)]},
                              level="quick", tools=[], not_checked=["d"])
    states = fleet_states(report, ["a", "b", "c", "d", "e"], drained_by_us={"a", "c"})
    # a: no scheduler state read, clusterdoc drained it; c: the scheduler says schedulable (resumed by hand)
    assert states == {"a": "drained", "b": "unreachable", "c": "healthy", "d": "not checked", "e": "unknown"}
    assert count_states(states) == {"healthy": 1, "degraded": 0, "drained": 1, "unreachable": 1,
                                    "not checked": 1, "unknown": 1}
    assert fleet_states(None, ["a"]) == {"a": "unknown"}
