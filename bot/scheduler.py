"""Scheduled work (APScheduler 3.x): the morning health report and early-warning polls.

Jobs live in the bot's SQLite file (``SQLAlchemyJobStore``), so a restart keeps their schedule
and next run time. A job is stored by reference (``bot.scheduler:run_job`` + the bot's name) and
finds its live ``Schedules`` object in a module-level registry when it fires.

* Health report (cron): a quick read-only sweep through the Toolkit, the performance check
  (straggler detection over current GPU telemetry), and what changed since the last report
  (a stored snapshot of the finding keys), posted to the configured channel/room, with a PNG
  chart of fleet health over the last 14 days attached (``bot.chart``).
* Several clusters: one report (and one early-warning poll) per cluster, each over that cluster's
  toolkit and nodes, posted to that cluster's channel and keyed by its name (job ids
  ``<bot>:health_report:<cluster>``, snapshots ``health:<cluster>`` / ``fleet:<cluster>``).
* Early warning (interval): GPU telemetry goes through ``perf.detectors.EarlyWarning``; each
  detector that fires becomes an ``Alert`` dispatched to the bot, so it opens (and de-duplicates)
  an incident exactly like an Alertmanager alert.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.chart import fleet_chart_png
from bot.core import Bot
from bot.events import Alert, Reply
from bot.fleet import count_states, fleet_days, fleet_lines, fleet_states, save_counts
from pipelines.health import early_warning, quick_sweep, stragglers

log = logging.getLogger("clusterdoc.bot.scheduler")
_INSTANCES: dict[str, Schedules] = {}
_LOCK = threading.Lock()


CHART_DAYS = 14  # days of fleet health the report's chart shows


def run_job(kind: str, key: str, cluster: str = "") -> None:
    """Entry point of every persisted job (referenced by name so the job store can pickle it)."""
    with _LOCK:
        schedules = _INSTANCES.get(key)
    if schedules is None:
        log.warning("scheduled %s for %s fired but that bot is not running", kind, key)
        return
    if cluster not in schedules.watched:
        log.warning("scheduled %s for cluster %r fired but that cluster is not configured", kind, cluster)
        return
    if kind == "health_report":
        schedules.health_report(cluster)
    elif kind == "early_warning":
        schedules.early_warning(cluster)


def _finding_key(f: Any) -> str:
    d = f if isinstance(f, dict) else f.to_dict()
    gpu = d.get("gpu")
    return f"{d.get('kind')}@{d.get('host')}" + (f"/gpu{gpu}" if gpu is not None else "")


@dataclass
class Watched:
    """One cluster the schedules cover: its toolkit and nodes, where its report goes, its telemetry."""

    name: str  # "" for a bot serving one unnamed cluster
    toolkit: Any
    hosts: list[str]
    channel: str
    samples: Callable[[], list[Any]] = list
    platform: str | None = None
    warning: Any = field(default=None, repr=False)  # its perf.detectors.EarlyWarning, made on first poll

    def suffix(self, kind: str) -> str:
        return f"{kind}:{self.name}" if self.name else kind


class Schedules:
    """The scheduled jobs of one bot. One cluster: ``toolkit``, ``hosts``, ``channel``, ``samples``;
    several: ``clusters`` (one ``Watched`` each) instead."""

    def __init__(
        self,
        bot: Bot,
        *,
        toolkit: Any = None,
        hosts: list[str] | None = None,
        channel: str = "",
        samples: Callable[[], list[Any]] = list,
        platform: str | None = None,
        state_path: str | None = None,
        clusters: Sequence[Watched] | None = None,
    ) -> None:
        self.bot = bot
        if clusters is None:
            clusters = [Watched("", toolkit, list(hosts or []), channel, samples, platform)]
        self.watched: dict[str, Watched] = {}
        for w in clusters:
            w.platform = w.platform or bot.platform_of(w.channel) or "console"
            self.watched[w.name] = w
        self.state_path = state_path or bot.config.state_path
        self.key = bot.config.name
        self._scheduler: Any = None

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
        wanted: set[str] = set()
        for w in self.watched.values():  # one report and one poll per cluster
            if cfg.health_report_cron:
                job_id = f"{self.key}:{w.suffix('health_report')}"
                wanted.add(job_id)
                scheduler.add_job(run_job, CronTrigger.from_crontab(cfg.health_report_cron, timezone=cfg.timezone),
                                  args=["health_report", self.key, w.name], id=job_id, replace_existing=True)
            if cfg.early_warning_interval_s > 0:
                job_id = f"{self.key}:{w.suffix('early_warning')}"
                wanted.add(job_id)
                scheduler.add_job(run_job, IntervalTrigger(seconds=cfg.early_warning_interval_s),
                                  args=["early_warning", self.key, w.name], id=job_id, replace_existing=True)
        for job in scheduler.get_jobs():  # switched off, or a cluster no longer configured
            if job.id.startswith(f"{self.key}:") and job.id not in wanted:
                scheduler.remove_job(job.id)
        self._scheduler = scheduler

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
    def _targets(self, cluster: str | None) -> list[Watched]:
        return list(self.watched.values()) if cluster is None else [self.watched[cluster]]

    def health_report(self, cluster: str | None = None) -> str:
        """Each cluster's report (``cluster``: that one only); the text posted (reports apart by a blank line)."""
        return "\n\n".join(self._health_report(w) for w in self._targets(cluster))

    def _health_report(self, w: Watched) -> str:
        """Run the sweep and the performance check, compare with the last report, post it with the chart."""
        started = time.monotonic()
        findings: list[dict[str, Any]] = []
        counts: dict[str, int] = {}
        report: Any = None
        try:
            report = quick_sweep(w.toolkit, w.hosts)
            findings = [f.to_dict() for f in report.findings()]
            counts = report.counts()
        except Exception as exc:  # the report still goes out, saying the sweep failed
            log.exception("health sweep failed")
            findings = [{"kind": "sweep_failed", "host": "-", "message": str(exc)[:200]}]
        perf: list[dict[str, Any]] = []
        try:
            perf = [f.to_dict() for f in stragglers(w.samples())]
        except Exception as exc:
            perf = [{"kind": "perf_check_failed", "host": "-", "message": str(exc)[:200]}]
        keys = sorted({_finding_key(f) for f in findings + perf})
        previous = self.bot.store.last_snapshot(w.suffix("health"))
        new = sorted(set(keys) - set(previous["keys"])) if previous else keys
        cleared = sorted(set(previous["keys"]) - set(keys)) if previous else []
        self.bot.store.put_snapshot(w.suffix("health"), {"keys": keys, "counts": counts, "at": time.time()})
        text = self._render(w, findings, perf, counts, new, cleared, previous is not None, time.monotonic() - started)
        fleet = self._fleet(w, report)  # stores today's counts: the chart's last day
        chart, chart_line = self._chart(w)
        # the report leads with fleet health (bot.fleet), then says what the attached chart shows
        text = "\n".join([*fleet, chart_line, text])
        self.bot.store.audit("scheduler", "health_report", w.channel, {"findings": len(keys), "new": new,
                                                                       "cluster": w.name, "chart": chart is not None})
        day = time.strftime("%Y-%m-%d", time.gmtime(self.bot.clock()))
        self.bot._post(Reply("report", w.channel, text, image_png=chart, cluster=w.name,
                             filename=f"fleet-health-{w.name or 'cluster'}-{day}.png" if chart else ""))
        return text

    def _fleet(self, w: Watched, report: Any) -> list[str]:
        """Fleet health, the trend against last week and recurring faults; stores today's counts."""
        now = self.bot.clock()
        try:
            states = fleet_states(report, w.hosts, self.bot.history.drained_by_us(w.name))
            fleet = count_states(states)
            lines = fleet_lines(self.bot.store, self.bot.history, fleet, now, sweep_ok=report is not None,
                                cluster=w.name)
            if report is not None:
                save_counts(self.bot.store, fleet, now, w.name)
            return lines
        except Exception as exc:  # the rest of the report still goes out
            log.exception("fleet health failed")
            return [f"Fleet health: unavailable ({type(exc).__name__})"]

    def _chart(self, w: Watched) -> tuple[bytes | None, str]:
        """The PNG of fleet health over the last ``CHART_DAYS`` days, and the report's line about it.
        With no day before today on record there is nothing to draw yet, and the line says so."""
        try:
            days = fleet_days(self.bot.store, self.bot.clock(), CHART_DAYS, w.name)
            if len(days) < 2:
                return None, ("Fleet chart: no fleet history yet (each report stores the day's counts; the chart "
                              "starts with the next day's report)")
            title = f"Fleet health{f' of {w.name}' if w.name else ''}, last {len(days)} days with a report"
            png = fleet_chart_png(days, title)
            first, last = (time.strftime("%Y-%m-%d", time.gmtime(at)) for at in (days[0][0], days[-1][0]))
            return png, f"Fleet chart attached: healthy / degraded / drained / unreachable per day, {first} … {last}"
        except Exception as exc:  # the report goes out without its chart
            log.exception("fleet chart failed")
            return None, f"Fleet chart: unavailable ({type(exc).__name__})"

    def _render(self, w: Watched, findings: list[dict[str, Any]], perf: list[dict[str, Any]], counts: dict[str, int],
                new: list[str], cleared: list[str], had_previous: bool, took_s: float) -> str:
        lines = [f"Cluster health report: {len(w.hosts)} nodes, {sum(counts.values())} checks "
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

    def early_warning(self, cluster: str | None = None) -> int:
        """Feed each cluster's current telemetry to its detectors; open an incident per new warning."""
        return sum(self._early_warning(w) for w in self._targets(cluster))

    def _early_warning(self, w: Watched) -> int:
        if w.warning is None:
            w.warning = early_warning()
        fired = w.warning.update(w.samples())
        for f in fired:
            labels = {"alertname": f"early_warning_{f.kind}", "node": f.host}
            if f.gpu is not None:
                labels["gpu"] = str(f.gpu)
            if w.name:
                labels["cluster"] = w.name  # the alert is about this cluster, whatever channel it goes to
            fingerprint = f"early-warning:{f.kind}:{f.host}:{f.gpu}"
            self.bot.dispatch(Alert(w.platform, w.channel, "firing", fingerprint,  # type: ignore[arg-type]
                                    labels["alertname"], f.message, labels))
        return len(fired)
