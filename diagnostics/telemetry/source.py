"""Where GPU telemetry comes from: a ``TelemetrySource`` gives ``perf.detectors.GpuSample``s.

``PrometheusTelemetrySource`` reads dcgm-exporter metrics through Prometheus (one instant query
for the current fleet, one range query for history) and also runs the early-warning PromQL set
(``diagnostics.telemetry.queries``) server-side, turning its hits into ``Finding``s the agent and
the bot understand. ``SimTelemetrySource`` reads a ``SimCluster`` in-process (tests, demos).

Readings Prometheus does not have (a metric dcgm-exporter is not configured to export, e.g.
``DCGM_FI_DEV_POWER_MGMT_LIMIT``) stay ``None`` in the samples: the detectors skip them and say so.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

from diagnostics.faults import catalog
from diagnostics.telemetry.prometheus import PrometheusClient, PrometheusError, PrometheusUnreachable, Series
from diagnostics.telemetry.queries import (
    QueryParams,
    Rule,
    decode_reasons,
    reasons_expr,
    rules,
)
from diagnostics.types import Finding
from perf.detectors import GpuSample

# dcgm-exporter metric -> GpuSample field
SAMPLE_METRICS: dict[str, str] = {
    "DCGM_FI_DEV_SM_CLOCK": "sm_clock_mhz",
    "DCGM_FI_DEV_MAX_SM_CLOCK": "max_sm_clock_mhz",  # not a default counter; used when exported
    "DCGM_FI_DEV_POWER_USAGE": "power_w",
    "DCGM_FI_DEV_POWER_MGMT_LIMIT": "power_limit_w",
    "DCGM_FI_DEV_GPU_TEMP": "temp_c",
    "DCGM_FI_DEV_GPU_UTIL": "util_pct",
    "DCGM_FI_DEV_XID_ERRORS": "xid_last",  # the last Xid, turned into a count below
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": "ecc_dbe",
}
_EQ_MATCHER_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"')
_CRITICAL_KINDS = frozenset({"gpu_clock_throttle", "gpu_xid", "gpu_ecc_uncorrectable", "gpu_fallen_off_bus"})


@runtime_checkable
class TelemetrySource(Protocol):
    """Anything that can say what every GPU reads now."""

    def samples(self) -> list[GpuSample]: ...


@dataclass
class SimTelemetrySource:
    """Telemetry straight from a simulated cluster (no Prometheus in between)."""

    sim: Any
    hosts: Sequence[str] | None = None

    def samples(self) -> list[GpuSample]:
        return [s for host in (self.hosts or self.sim.hosts) for s in self.sim.gpu_samples(host)]


def host_of(labels: dict[str, str]) -> str:
    """dcgm-exporter's ``Hostname`` label, else the scrape ``instance`` without its port."""
    if labels.get("Hostname"):
        return labels["Hostname"]
    instance = labels.get("instance", "")
    if instance.startswith("["):  # [::1]:9400
        return instance[1:].split("]", 1)[0]
    return instance.rsplit(":", 1)[0] if instance.count(":") == 1 else instance


def gpu_of(labels: dict[str, str]) -> int | None:
    raw = labels.get("gpu", "")
    return int(raw) if raw.isdigit() else None


@lru_cache(maxsize=64)
def _catalog(model_name: str) -> tuple[float | None, float | None]:
    """(max SM clock MHz, slowdown temperature °C) from the hardware catalog for dcgm-exporter's
    ``modelName``; (None, None) for a model the catalog does not know."""
    from perf.catalog import get_gpu

    for name in (model_name, model_name.removeprefix("NVIDIA ").strip()):  # dcgm says "NVIDIA H100 ..."
        try:
            spec = get_gpu(name)
        except Exception:  # an unknown model: the detectors then compare raw clocks
            continue
        return float(spec.max_sm_clock_mhz), float(spec.slowdown_temp_c)
    return None, None


def _catalog_max_clock(model_name: str) -> float | None:
    return _catalog(model_name)[0]


@dataclass
class PrometheusTelemetrySource:
    """GPU telemetry and early warnings from dcgm-exporter metrics held by Prometheus."""

    client: PrometheusClient
    params: QueryParams = field(default_factory=QueryParams)
    notes: list[str] = field(default_factory=list)

    # -- samples -------------------------------------------------------------------------------
    def metrics_selector(self) -> str:
        names = "|".join(sorted(SAMPLE_METRICS))
        extra = self.params.selector.strip().rstrip(",")
        return f'{{__name__=~"{names}"{", " + extra if extra else ""}}}'

    def samples(self, at: float | None = None) -> list[GpuSample]:
        """The newest reading of every GPU Prometheus knows (one sample per GPU)."""
        series = self.client.query(self.metrics_selector(), at=at)
        changes = self.client.query(f"changes({self.params.m('DCGM_FI_DEV_XID_ERRORS')}[{self.params.window}])", at=at)
        xid_changes = {k: int(s.value) for s in changes if (k := self._key(s.labels)) is not None}
        rows = self._rows((s.labels, s.t, s.value) for s in series)
        out = []
        for key, row in sorted(rows.items()):
            last = row.pop("xid_last", None)
            if last is not None:
                n = xid_changes.get(key, 0)
                row["xid_count"] = n + (1 if last and n == 0 else 0)  # a standing Xid counts once
            out.append(self._sample(key, row))
        return out

    def history(self, start: float, end: float, step_s: float) -> list[list[GpuSample]]:
        """Ticks of samples (oldest first) from ``start`` to ``end``: warms up ``EarlyWarning``."""
        series = self.client.query_range(self.metrics_selector(), start, end, step_s)
        points: dict[float, list[tuple[dict[str, str], float, float]]] = {}
        for s in series:
            for t, v in s.values:
                points.setdefault(t, []).append((s.labels, t, v))
        ticks: list[list[GpuSample]] = []
        last_xid: dict[tuple[str, int], float] = {}
        xid_count: dict[tuple[str, int], int] = {}
        for t in sorted(points):
            rows = self._rows(points[t])
            tick = []
            for key, row in sorted(rows.items()):
                xid = row.pop("xid_last", None)
                if xid is not None:
                    if xid and xid != last_xid.get(key, 0.0):  # a new Xid value: one more event
                        xid_count[key] = xid_count.get(key, 0) + 1
                    last_xid[key] = xid
                    row["xid_count"] = xid_count.get(key, 0)
                tick.append(self._sample(key, row))
            ticks.append(tick)
        return ticks

    def _key(self, labels: dict[str, str]) -> tuple[str, int] | None:
        gpu = gpu_of(labels)
        host = host_of(labels)
        if gpu is None or not host:
            return None
        return host, gpu

    def _rows(self, points: Iterable[tuple[dict[str, str], float, float]]) -> dict[tuple[str, int], dict[str, Any]]:
        rows: dict[tuple[str, int], dict[str, Any]] = {}
        for labels, t, value in points:
            key = self._key(labels)
            name = labels.get("__name__", "")
            if key is None:
                self._note(f"series {name or labels} has no gpu/Hostname label: skipped")
                continue
            row = rows.setdefault(key, {"t": t, "model": labels.get("modelName", "")})
            row["t"] = max(row["t"], t)
            fld = SAMPLE_METRICS.get(name)
            if fld and math.isfinite(value):
                row[fld] = value
        return rows

    def _sample(self, key: tuple[str, int], row: dict[str, Any]) -> GpuSample:
        model = row.pop("model", "")
        if "max_sm_clock_mhz" not in row and model:
            row["max_sm_clock_mhz"] = _catalog_max_clock(model)
        for name in ("xid_count", "ecc_dbe"):
            if row.get(name) is not None:
                row[name] = int(row[name])
        return GpuSample(host=key[0], gpu=key[1], **row)

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    # -- early warning (server-side PromQL) ----------------------------------------------------
    def early_warnings(self, at: float | None = None, *, hosts: Sequence[str] | None = None) -> list[Finding]:
        """Run every rule of the PromQL set; one Finding per suspect GPU (or node) and rule.

        A rule that fails (e.g. a metric this exporter does not export) is skipped with a note;
        an unreachable Prometheus raises ``PrometheusError`` (nothing could be checked)."""
        findings: list[Finding] = []
        wanted = set(hosts) if hosts else None
        for rule in rules(self.params):
            try:
                hits = self.client.query(rule.expr, at=at)
            except PrometheusUnreachable:
                raise
            except PrometheusError as exc:
                self._note(f"rule {rule.name} skipped: {exc}")
                continue
            if not hits:
                continue
            reference = self._reference(rule, at)
            reasons = self._reasons(rule, at) if rule.kind == "gpu_clock_throttle" else {}
            for s in hits:
                f = self._finding(rule, s, reference, reasons)
                if wanted is None or f.host in wanted:
                    findings.append(f)
        return rank_findings(findings)

    def findings_for(self, host: str) -> list[Finding]:
        """Early warnings about one node (for the agent's evidence about a named target)."""
        return self.early_warnings(hosts=[host])

    def scrape_health(self) -> list[Finding]:
        """A ``node_unreachable`` finding per scrape target that is down (exporter or node gone).
        Targets are narrowed by the selector's ``label="value"`` matchers (others are ignored)."""
        wanted = dict(_EQ_MATCHER_RE.findall(self.params.selector))
        out = []
        for t in self.client.targets():
            labels = {str(k): str(v) for k, v in (t.get("labels") or {}).items()}
            if any(labels.get(k) != v for k, v in wanted.items()):
                continue
            if t.get("health") == "down":
                host = host_of(labels)
                out.append(Finding(kind="node_unreachable", host=host, gpu=None, severity="critical",
                                   message=f"metrics target {labels.get('instance', host)} is down: "
                                   f"{t.get('lastError') or 'no answer'}",
                                   data={"scrape_url": t.get("scrapeUrl", ""), "last_error": t.get("lastError", "")}))
        return out

    def _reference(self, rule: Rule, at: float | None) -> dict[str, float]:
        if not rule.reference:
            return {}
        try:
            return {s.labels.get("modelName", ""): s.value for s in self.client.query(rule.reference, at=at)}
        except PrometheusError as exc:
            self._note(f"reference of {rule.name} unavailable: {exc}")
            return {}

    def _reasons(self, rule: Rule, at: float | None) -> dict[tuple[str, int], int]:
        """Clock-event reason masks of this rule's suspects only (not the whole fleet)."""
        try:
            series = self.client.query(f"{reasons_expr(self.params)} and on(Hostname, gpu) ({rule.expr})", at=at)
        except PrometheusError:
            return {}
        return {k: int(s.value) for s in series if (k := self._key(s.labels)) is not None and math.isfinite(s.value)}

    def _finding(self, rule: Rule, s: Series, reference: dict[str, float], reasons: dict[tuple[str, int], int]) -> Finding:
        host = host_of(s.labels)
        gpu = gpu_of(s.labels) if rule.per_gpu else None
        kind = rule.kind
        data: dict[str, Any] = {"rule": rule.name, "promql": rule.expr, "value": s.value, "t": s.t,
                                "source": "prometheus"}
        if reference:
            ref = reference.get(s.labels.get("modelName", ""), next(iter(reference.values())))
            data["peer_reference"] = ref
        if gpu is not None and (host, gpu) in reasons:
            data["clock_event_reasons"] = decode_reasons(reasons[(host, gpu)])
            data["clock_event_mask"] = reasons[(host, gpu)]
        if rule.name == "GpuXid":
            data["xid"] = int(s.value)
            suggests = xid_suggests(int(s.value))
            if suggests:
                data["suggests"] = suggests
            if int(s.value) == 79:
                kind = "gpu_fallen_off_bus"
        if kind == "gpu_thermal":
            slowdown = _catalog(s.labels.get("modelName", ""))[1]
            if slowdown is not None:
                data["slowdown_temp_c"] = slowdown
                data["at_slowdown"] = s.value >= slowdown  # then heat explains a low clock
        for label in ("modelName", "UUID", "instance"):
            if s.labels.get(label):
                data[label] = s.labels[label]
        where = host if gpu is None else f"{host} GPU {gpu}"
        ref_text = f" (peers: {data['peer_reference']:g})" if "peer_reference" in data else ""
        reasons_text = f"; reasons: {', '.join(data['clock_event_reasons'])}" if data.get("clock_event_reasons") else ""
        return Finding(kind=kind, host=host, gpu=gpu, severity="critical" if kind in _CRITICAL_KINDS else "warning",
                       message=f"early warning (PromQL {rule.name}) on {where}: {rule.summary}; value {s.value:g}"
                       f"{ref_text}{reasons_text}", data=data)


def xid_suggests(xid: int) -> str | None:
    """The fault kind NVIDIA's Xid catalog says a standing Xid most likely means (the signature
    catalog's ``xid-N`` entry), when it is more specific than gpu_xid."""
    try:
        from diagnostics.signatures import load_catalog

        sig = load_catalog().get(f"xid-{xid}")
    except Exception:  # the catalog is an aid to the alert; the Xid finding stands without it
        return None
    kind = sig.fault_kind if sig is not None else None
    return kind if kind and kind != "gpu_xid" else None


def rank_findings(findings: list[Finding]) -> list[Finding]:
    """Per GPU (or node), mark the finding whose kind best explains the others ``primary`` and put
    it first: a lowered power limit explains a low clock, a GPU at or past its catalog slowdown
    temperature explains it by heat (merely warm is a symptom), an Xid is usually a symptom.
    Order across GPUs is kept."""
    def rank(f: Finding, kinds: set[str]) -> tuple[int, bool, int]:
        # what a kind explains comes from the fault catalog; a GPU merely warm explains nothing
        # and, like an Xid, is usually a symptom of something else
        kind = catalog().get(f.kind)
        symptom = f.kind == "gpu_xid" or (f.kind == "gpu_thermal" and not f.data.get("at_slowdown"))
        if kind is None or symptom:
            explains = 0
        else:
            explains = sum(1 for k in kinds if k != f.kind and ("*" in kind.explains or k in kind.explains))
        critical = kind is not None and kind.severity == "critical"
        return (-explains, symptom, 0 if critical else 1)

    groups: dict[tuple[str, int | None], list[Finding]] = {}
    for f in findings:
        groups.setdefault((f.host, f.gpu), []).append(f)
    out: list[Finding] = []
    for group in groups.values():
        kinds = {f.kind for f in group}
        group.sort(key=lambda f: rank(f, kinds))
        for i, f in enumerate(group):
            f.data["primary"] = i == 0
            out.append(f)
    return out


def with_window(source: PrometheusTelemetrySource, window: str) -> PrometheusTelemetrySource:
    """The same source with another smoothing window (e.g. seconds in tests, minutes in production)."""
    return replace(source, params=replace(source.params, window=window))


