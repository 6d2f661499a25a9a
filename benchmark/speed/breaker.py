"""Circuit breaker under load (run: python -m benchmark.speed.breaker).

1,000 drain proposals across 50 incidents are posted concurrently (one thread per incident) through
the bot core, then approved concurrently from 64 threads by one approver — every ``Reaction`` goes
through ``Bot.dispatch``, the breaker's decision and the exactly-once claim share one SQLite
transaction. Asserted: never more than the limit N executed by a single approver in the window.
Then the two-approver path: a second, distinct approver runs proposals above the limit (one per
incident: the others were superseded), the first approver reacting again runs nothing.

The remediator is a counting stand-in (no cluster): this measures the gate, not SSH.
Note: this script drives ``bot`` (the thing it measures).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


class CountingRemediator:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def execute(self, proposal: Any, approver: str, approved_at: float) -> Any:
        from pipelines.api import ExecutionResult

        with self._lock:
            self.calls.append((proposal.id, approver))
        steps = [{"tool": s.tool, "host": s.host, "status": "ok"} for s in proposal.steps]
        return ExecutionResult(proposal.id, True, steps, {"tool": "node_state", "status": "ok"}, True)


class Outbox:
    def __init__(self) -> None:
        self._n = 0
        self._lock = threading.Lock()

    def __call__(self, reply: Any) -> str:
        with self._lock:
            self._n += 1
            return f"m{self._n}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--proposals", type=int, default=1000)
    ap.add_argument("--incidents", type=int, default=50)
    ap.add_argument("--threads", type=int, default=64)
    ap.add_argument("--max-nodes", type=int, default=2, help="breaker.max_nodes (N)")
    ap.add_argument("--second", type=int, default=5, help="proposals approved by a second approver")
    args = ap.parse_args(argv)

    from bot.config import BotConfig
    from bot.core import Bot
    from bot.events import Reaction
    from bot.store import Store
    from pipelines.api import Cause, Proposal, ProposalStep

    tmp = Path(tempfile.mkdtemp(prefix="breaker-"))
    nodes = [f"gpu-{i:04d}" for i in range(args.proposals)]
    cfg = BotConfig(state_path=str(tmp / "state.sqlite"), max_open_incidents=10 * args.incidents)
    cfg.approvals.approvers = ["U_A", "U_B"]
    cfg.approvals.expiry_s = 3600
    cfg.breaker.max_nodes = args.max_nodes
    rem = CountingRemediator()
    bot = Bot(cfg, Store(cfg.state_path), agent=None, remediator=rem, known_nodes=nodes,  # type: ignore[arg-type]
              outbox=Outbox())
    limit = bot.breaker.limit(len(nodes))

    def drain(i: int) -> Proposal:
        node = nodes[i]
        return Proposal(id=f"d{i}", title=f"drain {node}", risk="medium",
                        steps=(ProposalStep("drain_node", node, {"reason": "bench"},
                                            ('scontrol update nodename="$(hostname -s)" state=drain reason=bench',)),),
                        cause=Cause("gpu_fallen_off_bus", node, 0, category="gpu-hardware"))

    incidents = [bot.store.create_incident(platform="slack", channel="C1", thread=None, requester="U_REQ",
                                           source="command", target=nodes[k], text="bench")
                 for k in range(args.incidents)]

    def post(k: int) -> None:
        for i in range(k, args.proposals, args.incidents):
            bot._propose(incidents[k], "slack", "C1", None, "U_REQ", drain(i))

    started = time.perf_counter()
    with ThreadPoolExecutor(args.incidents) as pool:
        list(pool.map(post, range(args.incidents)))
    post_s = time.perf_counter() - started
    rows = bot.store.proposals()
    messages = [r.message_id or "" for r in rows]
    marked = bot.store.connection().execute("SELECT COUNT(*) FROM breaker_marks").fetchone()[0]

    latencies: list[float] = []
    lat_lock = threading.Lock()
    barrier = threading.Barrier(args.threads)

    def approve(chunk: list[str], user: str) -> None:
        barrier.wait()
        mine = []
        for msg in chunk:
            t0 = time.perf_counter()
            bot.dispatch(Reaction("slack", "C1", user, "white_check_mark", msg))
            mine.append(time.perf_counter() - t0)
        with lat_lock:
            latencies.extend(mine)

    started = time.perf_counter()
    with ThreadPoolExecutor(args.threads) as pool:
        list(pool.map(lambda k: approve(messages[k::args.threads], "U_A"), range(args.threads)))
    bot.wait_idle(600)
    approve_s = time.perf_counter() - started
    single = len(rem.calls)
    counted = bot.store.connection().execute("SELECT COUNT(DISTINCT node) FROM breaker_actions").fetchone()[0]
    first_of_two = bot.store.connection().execute(
        "SELECT COUNT(*) FROM approvals WHERE outcome='first_of_two'").fetchone()[0]
    assert single <= limit, f"{single} executed with one approver; limit {limit}"
    assert counted == single

    # the two-approver path: the same approver again runs nothing; a second, distinct one runs it
    pending = bot.store.proposals(state="pending")
    per_incident: dict[int, str] = {}
    for r in pending:
        per_incident.setdefault(r.incident_id, r.message_id or "")
    picked = list(per_incident.values())[:args.second]
    for msg in picked:
        bot.dispatch(Reaction("slack", "C1", "U_A", "white_check_mark", msg))
    bot.wait_idle(60)
    same_again = len(rem.calls) - single
    assert same_again == 0, "the same approver twice must not run anything"
    barrier = threading.Barrier(len(picked)) if picked else barrier
    with ThreadPoolExecutor(max(1, len(picked))) as pool:
        list(pool.map(lambda m: approve([m], "U_B"), picked))
    bot.wait_idle(60)
    two = len(rem.calls) - single
    assert two == len(picked), f"{two} of {len(picked)} two-approver proposals ran"
    bot.close()

    table = [
        ("proposals posted (threads)", f"{len(rows)} ({args.incidents})"),
        ("posting wall time", f"{post_s:.2f} s"),
        ("marked 'needs two approvers' when posted", f"{marked}"),
        ("approvals dispatched (threads)", f"{len(messages)} ({args.threads})"),
        ("approval wall time", f"{approve_s:.2f} s ({len(messages) / approve_s:.0f}/s)"),
        ("dispatch latency p50 / p95 / max", f"{statistics.median(latencies) * 1000:.1f} / "
         f"{pct(latencies, 95) * 1000:.1f} / {max(latencies) * 1000:.1f} ms"),
        (f"executed with one approver (limit {limit})", f"{single}"),
        ("first-of-two approvals recorded", f"{first_of_two}"),
        ("same approver again: executed", f"{same_again}"),
        ("second distinct approver: executed", f"{two} of {len(picked)}"),
    ]
    width = max(len(k) for k, _ in table)
    print(f"{'metric':<{width}}  value")
    for key, value in table:
        print(f"{key:<{width}}  {value}")
    print(f"breaker: PASS executed_one_approver={single} limit={limit} two_approver_runs={two}/{len(picked)} "
          f"same_approver_runs=0 approvals={len(messages)} threads={args.threads} wall={approve_s:.2f}s "
          f"p95={pct(latencies, 95) * 1000:.1f}ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
