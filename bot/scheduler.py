"""Scheduled work (APScheduler 3.x): the morning health report and early-warning polls.

Jobs live in the bot's SQLite file (``SQLAlchemyJobStore``), so a restart keeps their schedule
and next run time. A job is stored by reference (``bot.scheduler:run_job`` + the bot's name) and
finds its live ``Schedules`` object in a module-level registry when it fires.

* Health report (cron): a quick read-only sweep through the Toolkit, the performance check
  (straggler detection over current GPU telemetry), and what changed since the last report
  (a stored snapshot of the finding keys), posted to the configured channel/room.
* Early warning (interval): GPU telemetry goes through ``perf.detectors.EarlyWarning``; each
  detector that fires becomes an ``Alert`` dispatched to the bot, so it opens (and de-duplicates)
  an incident exactly like an Alertmanager alert.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from bot.core import Bot
from bot.events import Alert, Reply
from bot.fleet import count_states, fleet_lines, fleet_states, save_counts
from pipelines.health import early_warning, quick_sweep, stragglers

log = logging.getLogger("clusterdoc.bot.scheduler")
_INSTANCES: dict[str, Schedules] = {}
_LOCK = threading.Lock()


def run_job(kind: str, key: str) -> None:
    """Entry point of every persisted job (referenced by name so the job store can pickle it)."""
    with _LOCK:
        schedules = _INSTANCES.get(key)
    if schedules is None:
        log.warning("scheduled %s for %s fired but that bot is not running", kind, key)
        return
    if kind == "health_report":
        schedules.health_report()
    elif kind == "early_warning":
        schedules.early_warning()


def _finding_key(f: Any) -> str:
    d = f if isinstance(f, dict) else f.to_dict()
    gpu = d.get("gpu")
    return f"{d.get('kind')}@{d.get('host')}" + (f"/gpu{gpu}" if gpu is not None else "")


class Schedules:
    def __init__(
        self,
        bot: Bot,
        *,
        toolkit: Any,
        hosts: list[str],
        channel: str,
        samples: Callable[[], list[Any]] = list,
        platform: str | None = None,
        state_path: str | None = None,
    ) -> None:
        self.bot = bot
        self.toolkit = toolkit
        self.hosts = hosts
        self.channel = channel
        self.samples = samples
        self.platform = platform or bot.platform_of(channel) or "console"
        self.state_path = state_path or bot.config.state_path
        self.key = bot.config.name
        self._scheduler: Any = None
        self._warning: Any = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        cfg = self.bot.config.schedule
        with _LOCK:
            _INSTANCES[self.key] = self
        scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(url=f"sqlite:///{self.state_path}", tablename="scheduler_jobs")},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
            timezone=cfg.timezone,
        )
        scheduler.start()
        if cfg.health_report_cron:
            scheduler.add_job(run_job, CronTrigger.from_crontab(cfg.health_report_cron, timezone=cfg.timezone),
                              args=["health_report", self.key], id=f"{self.key}:health_report", replace_existing=True)
        else:
            self._remove(scheduler, f"{self.key}:health_report")
        if cfg.early_warning_interval_s > 0:
            scheduler.add_job(run_job, IntervalTrigger(seconds=cfg.early_warning_interval_s),
                              args=["early_warning", self.key], id=f"{self.key}:early_warning", replace_existing=True)
        else:
            self._remove(scheduler, f"{self.key}:early_warning")
        self._scheduler = scheduler

    @staticmethod
    def _remove(scheduler: Any, job_id: str) -> None:
        if scheduler.get_job(job_id) is not None:
            scheduler.remove_job(job_id)

    def jobs(self) -> list[tuple[str, Any]]:
        return [(j.id, j.next_run_time) for j in self._scheduler.get_jobs()] if self._scheduler else []

    def shutdown(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        with _LOCK:
            if _INSTANCES.get(self.key) is self:
                del _INSTANCES[self.key]

    # -- the jobs ------------------------------------------------------------------------------
    def health_report(self) -> str:
        """Run the sweep and the performance check, compare with the last report, post it."""
        started = time.monotonic()
        findings: list[dict[str, Any]] = []
        counts: dict[str, int] = {}
        report: Any = None
        try:
            report = quick_sweep(self.toolkit, self.hosts)
            findings = [f.to_dict() for f in report.findings()]
            counts = report.counts()
        except Exception as exc:  # the report still goes out, saying the sweep failed
            log.exception("health sweep failed")
            findings = [{"kind": "sweep_failed", "host": "-", "message": str(exc)[:200]}]
        perf: list[dict[str, Any]] = []
        try:
            perf = [f.to_dict() for f in stragglers(self.samples())]
        except Exception as exc:
            perf = [{"kind": "perf_check_failed", "host": "-", "message": str(exc)[:200]}]
        keys = sorted({_finding_key(f) for f in findings + perf})
        previous = self.bot.store.last_snapshot("health")
        new = sorted(set(keys) - set(previous["keys"])) if previous else keys
        cleared = sorted(set(previous["keys"]) - set(keys)) if previous else []
        self.bot.store.put_snapshot("health", {"keys": keys, "counts": counts, "at": time.time()})
        text = self._render(findings, perf, counts, new, cleared, previous is not None, time.monotonic() - started)
        text = "\n".join([*self._fleet(report), text])  # the report leads with fleet health (bot.fleet)
        self.bot.store.audit("scheduler", "health_report", self.channel, {"findings": len(keys), "new": new})
        self.bot._post(Reply("report", self.channel, text))
        return text

    def _fleet(self, report: Any) -> list[str]:
        """Fleet health, the trend against last week and recurring faults; stores today's counts."""
        now = self.bot.clock()
        try:
            states = fleet_states(report, self.hosts, self.bot.history.drained_by_us())
            fleet = count_states(states)
            lines = fleet_lines(self.bot.store, self.bot.history, fleet, now, sweep_ok=report is not None)
            if report is not None:
                save_counts(self.bot.store, fleet, now)
            return lines
        except Exception as exc:  # the rest of the report still goes out
            log.exception("fleet health failed")
            return [f"Fleet health: unavailable ({type(exc).__name__})"]

    def _render(self, findings: list[dict[str, Any]], perf: list[dict[str, Any]], counts: dict[str, int],
                new: list[str], cleared: list[str], had_previous: bool, took_s: float) -> str:
        lines = [f"Cluster health report: {len(self.hosts)} nodes, {sum(counts.values())} checks "
                 f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items())) or 'none'}), {took_s:.1f} s"]
        problems = [f for f in findings if f.get("severity") != "info"]
        lines.append(f"Quick sweep: {len(problems)} finding(s)" + (":" if problems else " — all clear"))
        lines += [f"• {f.get('host')}: {f.get('message')}" for f in problems[:15]]
        if len(problems) > 15:
            lines.append(f"… and {len(problems) - 15} more")
        lines.append(f"Performance check: {len(perf)} straggler(s)" + (":" if perf else " — none"))
        lines += [f"• {f.get('host')}: {f.get('message')}" for f in perf[:10]]
        if had_previous:
            lines.append(f"Since the last report: {len(new)} new, {len(cleared)} cleared")
            lines += [f"  + {k}" for k in new[:10]] + [f"  − {k}" for k in cleared[:10]]
        else:
            lines.append("First report: nothing to compare with yet.")
        return "\n".join(lines)

    def early_warning(self) -> int:
        """Feed the current telemetry to the detectors; open an incident per new warning."""
        if self._warning is None:
            self._warning = early_warning()
        fired = self._warning.update(self.samples())
        for f in fired:
            labels = {"alertname": f"early_warning_{f.kind}", "node": f.host}
            if f.gpu is not None:
                labels["gpu"] = str(f.gpu)
            fingerprint = f"early-warning:{f.kind}:{f.host}:{f.gpu}"
            self.bot.dispatch(Alert(self.platform, self.channel, "firing", fingerprint,  # type: ignore[arg-type]
                                    labels["alertname"], f.message, labels))
        return len(fired)
