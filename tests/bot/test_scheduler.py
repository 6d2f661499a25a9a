from __future__ import annotations

import sqlite3
from pathlib import Path

from bot.config import BotConfig
from bot.core import Bot
from bot.scheduler import Schedules, run_job
from bot.store import Store
from tests.bot.e2e import CASE_STUDY
from tests.bot.fakes import FakeAgent, RecordingOutbox

LATE_FAULT = """
id: late-throttle
cluster: {nodes: 2, gpus_per_node: 8, gpu: A800-SXM4-80GB, interconnect: infiniband, scheduler: slurm,
          workload: {kind: llm_training, model_params: 7.0e9, tokens_per_step: 4194304}}
seed: 3
faults:
  - {kind: gpu_clock_throttle, node: node-02, gpu: 1, sm_clock_mhz: 300, reason: hw_slowdown, at_s: 1800}
"""


def _toolkit(scenario: str):  # type: ignore[no-untyped-def]
    from diagnostics.registry import default_registry
    from diagnostics.toolkit import Toolkit
    from simulator import SimCluster

    sim = SimCluster(scenario)
    return sim, Toolkit(default_registry(), sim.executor(), scheduler="slurm")


def _bot(tmp_path: Path, agent: FakeAgent | None = None, **schedule: object) -> tuple[Bot, RecordingOutbox]:
    cfg = BotConfig(state_path=str(tmp_path / "state.sqlite"))
    for k, v in schedule.items():
        setattr(cfg.schedule, k, v)
    out = RecordingOutbox()
    bot = Bot(cfg, Store(cfg.state_path), agent or FakeAgent(), None, outbox=out, known_nodes=[])
    return bot, out


def test_health_report_sweeps_checks_perf_and_diffs(tmp_path: Path) -> None:
    sim, toolkit = _toolkit(str(CASE_STUDY))
    bot, out = _bot(tmp_path)
    sched = Schedules(bot, toolkit=toolkit, hosts=sim.hosts, channel="C_REPORT", platform="slack",
                      samples=lambda: [s for h in sim.hosts for s in sim.gpu_samples(h)])
    first = sched.health_report()
    assert out.replies[-1].channel == "C_REPORT" and out.replies[-1].kind == "report"
    assert "8 nodes" in first and "First report" in first
    assert "node-05" in first and "200" in first  # the throttled GPU, from the sweep
    assert "node-05 GPU 3 is a straggler (gpu_clock_throttle)" in first  # the performance check
    second = sched.health_report()
    assert "Since the last report: 0 new, 0 cleared" in second
    sim.handle("node-05", "nvidia-smi -i 3 -rgc")  # someone fixes it by hand
    third = sched.health_report()
    assert "cleared" in third and "− gpu_clock_throttle@node-05/gpu3" in third
    assert "Performance check: 0 straggler" in third


def test_jobs_persist_in_the_state_file(tmp_path: Path) -> None:
    sim, toolkit = _toolkit(str(CASE_STUDY))
    bot, _ = _bot(tmp_path, health_report_cron="0 8 * * *", early_warning_interval_s=300.0)
    sched = Schedules(bot, toolkit=toolkit, hosts=sim.hosts, channel="C_REPORT", platform="slack")
    sched.start()
    ids = sorted(j for j, _ in sched.jobs())
    sched.shutdown()
    assert ids == ["clusterdoc:early_warning", "clusterdoc:health_report"]
    with sqlite3.connect(tmp_path / "state.sqlite") as conn:
        stored = sorted(r[0] for r in conn.execute("SELECT id FROM scheduler_jobs"))
    assert stored == ids
    bot2, _ = _bot(tmp_path, health_report_cron="30 7 * * 1-5")  # restart with early warnings off
    sched2 = Schedules(bot2, toolkit=toolkit, hosts=sim.hosts, channel="C_REPORT", platform="slack")
    sched2.start()
    jobs = dict(sched2.jobs())
    sched2.shutdown()
    assert list(jobs) == ["clusterdoc:health_report"]
    assert jobs["clusterdoc:health_report"].hour == 7 and jobs["clusterdoc:health_report"].minute == 30


def test_early_warning_opens_one_incident(tmp_path: Path) -> None:
    scenario = tmp_path / "late.yaml"
    scenario.write_text(LATE_FAULT)
    sim, toolkit = _toolkit(str(scenario))
    agent = FakeAgent()
    bot, _ = _bot(tmp_path, agent=agent)

    def samples() -> list[object]:
        sim.advance(60)
        return [s for h in sim.hosts for s in sim.gpu_samples(h)]

    sched = Schedules(bot, toolkit=toolkit, hosts=sim.hosts, channel="C_REPORT", platform="slack", samples=samples)
    sched.start()  # registers the instance run_job looks up
    try:
        fired_at: list[int] = []
        for i in range(60):
            run_job("early_warning", "clusterdoc")
            if bot.store.incidents() and not fired_at:
                fired_at.append(i)
    finally:
        sched.shutdown()
    bot.wait_idle(10)
    assert fired_at and fired_at[0] * 60 >= 1800 - 60, "no warning before the fault's onset"
    incidents = bot.store.incidents()
    assert len(incidents) == 1 and incidents[0].source == "alert" and incidents[0].platform == "slack"
    assert incidents[0].fingerprint == "early-warning:gpu_clock_throttle:node-02:1"
    assert [r.target for r in agent.requests] == ["node-02"]  # the warning names the node it is about
