"""Slash-command acknowledgement latency and bot memory (run: python -m benchmark.speed.bot_ack).

100 ``/diagnose`` commands are sent at once as signed HTTP requests to the Bolt app (real signature
verification) on 127.0.0.1; the Web API goes to a local stand-in. Each request's time to the ack
is measured (Slack's limit is 3 s; target p95 < 1 s) while the diagnoses run in the background
(real agent, llm=none, simulated case-study cluster). Memory is the process RSS with the bot idle
and with 100 open incidents.

Note: this script drives ``bot`` (the thing it measures), the one place a benchmark imports it.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[2]
SECRET = "bench-signing-secret-0123456789"


class IdleAgent:
    """Answers at once with "nothing wrong" (for ``--agent idle``)."""

    def stream(self, request: Any) -> Iterator[Any]:
        from pipelines.api import AgentEvent, Cause, Diagnosis

        yield AgentEvent("diagnosis", {"diagnosis": Diagnosis("idle", Cause(None), [], 0.0, {})})

    def diagnose(self, request: Any) -> Any:
        return next(iter(self.stream(request))).data["diagnosis"]


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--commands", type=int, default=100)
    ap.add_argument("--scenario", default=str(REPO / "scenarios" / "a800-throttle.yaml"))
    ap.add_argument("--agent", choices=["real", "idle"], default="real",
                    help="idle: diagnoses do no work (isolates the ack path from background CPU load)")
    args = ap.parse_args(argv)

    from bot.adapters.slack import SlackAdapter
    from bot.config import BotConfig, SlackConfig
    from bot.core import Bot
    from bot.services import ToolkitRemediator
    from bot.store import Store
    from bot.testing import SlackStandIn, signed_post, slash_command_body
    from diagnostics.registry import default_registry
    from diagnostics.toolkit import Toolkit
    from kb.config import KBConfig
    from kb.knowledge import KnowledgeBase
    from pipelines.agent import Agent
    from pipelines.config import AgentConfig
    from simulator import SimCluster

    tmp = Path(tempfile.mkdtemp(prefix="bot-ack-"))
    sim = SimCluster(args.scenario)
    toolkit = Toolkit(default_registry(), sim.executor(), scheduler="slurm")
    kb = KnowledgeBase(KBConfig(data_dir=None))
    agent: Any = Agent(AgentConfig(), toolkit, kb, None, hosts=sim.hosts)
    agent.warm_up()
    if args.agent == "idle":
        agent = IdleAgent()
    standin = SlackStandIn()
    cfg = BotConfig(state_path=str(tmp / "state.sqlite"), max_open_incidents=10 * args.commands)
    cfg.rate_limit.per_user = 10 * args.commands
    bot = Bot(cfg, Store(cfg.state_path), agent, ToolkitRemediator(toolkit), known_nodes=sim.hosts)
    adapter = SlackAdapter(bot, SlackConfig(enabled=True, mode="http", base_url=standin.base_url,
                                            bot_token="xoxb-bench", signing_secret=SECRET))
    server = adapter.serve_http("127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.server_address[1]}/slack/events"
    idle_mb = rss_mb()

    nodes = sim.hosts

    def one(i: int) -> tuple[int, float, str]:
        body = slash_command_body("/diagnose", nodes[i % len(nodes)], f"U{i:04d}", "C_OPS")
        status, text, seconds = signed_post(url, body, SECRET, content_type="application/x-www-form-urlencoded",
                                            timeout=30)
        return status, seconds, text

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.commands) as pool:
        results = list(pool.map(one, range(args.commands)))
    burst_s = time.perf_counter() - started
    ok = [s for status, s, text in results if status == 200 and "Incident #" in text]
    lat = [s for _, s, _ in results]
    incidents = len(bot.store.incidents())
    burst_mb = rss_mb()
    bot.wait_idle(1800)
    drained_s = time.perf_counter() - started
    open_incidents = bot.store.count_open_incidents()
    busy_mb = rss_mb()
    adapter.close()
    bot.close()
    standin.close()

    rows = [
        ("commands sent at once", f"{args.commands}"),
        ("acks 200 with an incident", f"{len(ok)}"),
        ("ack latency p50", f"{statistics.median(lat) * 1000:.0f} ms"),
        ("ack latency p95", f"{pct(lat, 95) * 1000:.0f} ms"),
        ("ack latency max", f"{max(lat) * 1000:.0f} ms"),
        ("burst wall time", f"{burst_s:.2f} s"),
        ("all diagnoses posted after", f"{drained_s:.1f} s"),
        ("open incidents", f"{open_incidents}"),
        ("RSS idle (bot + agent + KB)", f"{idle_mb:.0f} MiB"),
        (f"RSS with {incidents} incidents just opened", f"{burst_mb:.0f} MiB"),
        (f"RSS after all diagnosed ({open_incidents} still open)", f"{busy_mb:.0f} MiB"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"{'metric':<{width}}  value")
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    p95 = pct(lat, 95)
    verdict = "PASS" if p95 < 1.0 and len(ok) == args.commands else "FAIL"
    print(f"bot_ack: {verdict} p50={statistics.median(lat) * 1000:.0f}ms p95={p95 * 1000:.0f}ms (target <1000ms) "
          f"acks={len(ok)}/{args.commands} rss_idle={idle_mb:.0f}MiB rss_{incidents}_open={burst_mb:.0f}MiB "
          f"rss_after={busy_mb:.0f}MiB agent={args.agent}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
