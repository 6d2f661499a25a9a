"""Detectors over GPU telemetry: stragglers, expected-vs-observed step time, early warning.

All three return ``diagnostics.types.Finding`` objects whose ``kind`` is the fault kind of
formats/scenario.md they are evidence of, with the numbers behind them in ``data``.
Readings that are missing (``None``), ``NaN`` or the ``[N/A]`` text ``nvidia-smi`` prints are
skipped and counted in ``notes``; a detector never crashes on them and never turns them into 0.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from perf.errors import PerfInputError, require_positive
from perf.findings import Finding
from perf.workload import StepPrediction


@dataclass(frozen=True)
class GpuSample:
    """One telemetry reading of one GPU. Any metric may be None where the tool printed ``[N/A]``."""

    host: str
    gpu: int
    t: float  # seconds (any epoch; only differences matter)
    sm_clock_mhz: float | None = None
    max_sm_clock_mhz: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    temp_c: float | None = None
    util_pct: float | None = None
    xid_count: int | None = None
    ecc_dbe: int | None = None


METRICS = ("sm_clock_mhz", "max_sm_clock_mhz", "power_w", "power_limit_w", "temp_c", "util_pct", "xid_count", "ecc_dbe")

# what a GPU that is an outlier on each signal is short of (said in the finding)
MISSING_RESOURCE = {
    "gpu_clock_throttle": "compute: the SM clock is below its peers, so its matmuls run slower",
    "gpu_power_cap": "power: the enforced power limit is below its peers, so the clock cannot hold",
    "gpu_thermal": "cooling: the GPU runs hotter than its peers and will (or does) thermally throttle",
    "slow_rank": "this rank's own step time is long: check its clocks, power, PCIe/NVLink and host",
    "gpu_low_utilization": "work: the GPU idles while its peers compute (host, data loader or input)",
}


def number(value: Any) -> float | None:
    """A finite float, or None for None / NaN / inf / '[N/A]' / any text that is not a number."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip().split()[0] if value.strip() else ""
        try:
            value = float(text)
        except ValueError:
            return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


@dataclass
class Notes:
    """Skipped readings grouped by reason, so 64 GPUs without a power reading make one line.
    Counts, not copies, so a week of ticks stays small."""

    subjects: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, reason: str, subject: str = "") -> None:
        counts = self.subjects.setdefault(reason, {})
        counts[subject] = counts.get(subject, 0) + 1

    def lines(self) -> list[str]:
        out = []
        for reason, counts in sorted(self.subjects.items()):
            total = sum(counts.values())
            named = [x for x in counts if x]
            if not named:
                out.append(reason if total == 1 else f"{reason} ({total}x)")
                continue
            shown = ", ".join(named[:4]) + (f" and {len(named) - 4} more" if len(named) > 4 else "")
            times = f", {total} readings" if total > len(named) else ""
            out.append(f"{reason}: {shown}{times}")
        return out


def _label(host: str, gpu: int | None) -> str:
    return host if gpu is None else f"{host} GPU {gpu}"


def robust_z(values: Sequence[float], floor: float) -> tuple[float, float, list[float]]:
    """(median, scale, z-scores) with scale = 1.4826·MAD, never below ``floor``."""
    med = statistics.median(values)
    mad = statistics.median(abs(v - med) for v in values)
    scale = max(1.4826 * mad, floor)
    return med, scale, [(v - med) / scale for v in values]


def latest_per_gpu(samples: Iterable[GpuSample]) -> dict[tuple[str, int], GpuSample]:
    latest: dict[tuple[str, int], GpuSample] = {}
    for s in samples:
        key = (s.host, s.gpu)
        if key not in latest or s.t >= latest[key].t:
            latest[key] = s
    return latest


def _metric(samples: Mapping[tuple[str, int], GpuSample], name: str, notes: Notes) -> dict[tuple[str, int], float]:
    out: dict[tuple[str, int], float] = {}
    for key, s in samples.items():
        v = number(getattr(s, name))
        if v is None:
            notes.add(f"{name} missing, NaN or [N/A], reading skipped", _label(*key))
        else:
            out[key] = v
    return out


IDLE_UTIL_PCT = 5.0  # below this a GPU has no work: its clock drops to idle by design


def _busy_only(
    clocks: dict[tuple[str, int], float], samples: Mapping[tuple[str, int], GpuSample], notes: Notes
) -> dict[tuple[str, int], float]:
    """Leave idle GPUs (a drained node, a finished job) out of clock comparisons: an idle clock is
    not a throttle. GPUs whose utilisation is unknown stay in."""
    busy = {}
    for key, mhz in clocks.items():
        util = number(samples[key].util_pct)
        if util is not None and util < IDLE_UTIL_PCT:
            notes.add(f"idle (utilization < {IDLE_UTIL_PCT:g}%), clock not compared", _label(*key))
        else:
            busy[key] = mhz
    return busy


def detect_stragglers(
    samples: Iterable[GpuSample],
    *,
    step_times: Mapping[str, float] | None = None,
    z_threshold: float = 4.0,
    min_peers: int = 4,
    slowdown_temp_c: float = 87.0,
    notes: list[str] | None = None,
) -> list[Finding]:
    """Robust (median/MAD) outliers among the GPUs of a job or node, newest sample per GPU.

    ``slowdown_temp_c`` (the catalog's figure for the GPU model) decides whether a hot, slow GPU
    is thermal (at or past it) or clock-throttled and merely warm.

    ``step_times`` maps a rank label (e.g. ``"node-05:3"`` or ``"7"``) to its step time in s.
    Relative floors on the MAD scale (1% of clock, 3% of power limit, 1.5 °C, 5% step time) keep
    identical peers from making a rounding difference look like an outlier.
    """
    skipped = Notes()
    latest = latest_per_gpu(samples)
    findings: list[Finding] = []
    if not latest:
        skipped.add("no telemetry samples given: nothing to compare")

    clocks = _busy_only(_metric(latest, "sm_clock_mhz", skipped), latest, skipped)
    maxima = _metric(latest, "max_sm_clock_mhz", skipped)
    ratios = {k: v / maxima[k] for k, v in clocks.items() if k in maxima and maxima[k] > 0}
    clock_signal = ratios if len(ratios) >= min_peers else {k: v for k, v in clocks.items()}
    limits = _metric(latest, "power_limit_w", skipped)
    temps = _metric(latest, "temp_c", skipped)
    utils = {k: v for k, v in _metric(latest, "util_pct", skipped).items() if v >= IDLE_UTIL_PCT}
    power = _metric(latest, "power_w", skipped)

    per_gpu: dict[tuple[str, int], dict[str, Any]] = {}

    def outliers(signal: Mapping[tuple[str, int], float], rel_floor: float, abs_floor: float, low: bool, name: str) -> None:
        if len(signal) < min_peers:
            if signal:
                skipped.add(f"{name}: only {len(signal)} GPUs reported it (need {min_peers}); not compared")
            return
        keys = list(signal)
        values = [signal[k] for k in keys]
        med, _scale, zs = robust_z(values, max(abs_floor, rel_floor * abs(statistics.median(values))))
        for key, v, z in zip(keys, values, zs, strict=True):
            if (low and z <= -z_threshold) or (not low and z >= z_threshold):
                per_gpu.setdefault(key, {})[name] = {"value": v, "peer_median": med, "robust_z": round(z, 2)}

    outliers(clock_signal, 0.01, 1e-9, True, "sm_clock")
    outliers(limits, 0.03, 1.0, True, "power_limit")
    outliers(temps, 0.0, 1.5, False, "temp")
    outliers(utils, 0.0, 5.0, True, "util")
    for key, evidence in per_gpu.items():
        if "sm_clock" in evidence and clock_signal is ratios:  # say it in MHz, not as a ratio
            evidence["sm_clock"] |= {"value": clocks[key],
                                     "peer_median": round(statistics.median(clocks.values()), 1),
                                     "ratio_to_max": round(ratios[key], 4)}
    for key, evidence in sorted(per_gpu.items()):
        host, gpu = key
        data: dict[str, Any] = {"evidence": evidence}
        for name, src in (("sm_clock_mhz", clocks), ("max_sm_clock_mhz", maxima), ("power_w", power),
                          ("power_limit_w", limits), ("temp_c", temps), ("util_pct", utils)):
            if key in src:
                data[name] = src[key]
        kinds = _classify(evidence, slowdown_temp_c)
        for kind in kinds:
            data_k = dict(data, missing_resource=MISSING_RESOURCE[kind], primary=kind == kinds[0])
            findings.append(Finding(
                kind=kind, host=host, gpu=gpu, severity="critical" if "sm_clock" in evidence else "warning",
                message=_straggler_message(kind, host, gpu, evidence), data=data_k,
            ))

    if step_times:
        findings.extend(_slow_ranks(step_times, z_threshold, min_peers, skipped))
    if notes is not None:
        notes.extend(skipped.lines())
    return findings


def _classify(evidence: Mapping[str, Any], slowdown_temp_c: float) -> list[str]:
    """Kinds this GPU shows, the most likely root cause first.

    A lowered power limit is a configuration and explains a low clock. A GPU at or above its
    slowdown temperature explains its low clock by heat. A low clock on a GPU that is warm but
    below the slowdown point is a clock throttle (locked clocks, HW slowdown), with heat secondary."""
    kinds: list[str] = []
    hot = "temp" in evidence and evidence["temp"]["value"] >= slowdown_temp_c
    if "power_limit" in evidence:
        kinds.append("gpu_power_cap")
    if hot:
        kinds.append("gpu_thermal")
    if "sm_clock" in evidence:
        kinds.append("gpu_clock_throttle")
    if "temp" in evidence and not hot:
        kinds.append("gpu_thermal")
    if "util" in evidence and not kinds:
        kinds.append("gpu_low_utilization")
    return kinds


def _straggler_message(kind: str, host: str, gpu: int, evidence: Mapping[str, Any]) -> str:
    parts = []
    units = {"sm_clock": " MHz", "power_limit": " W", "temp": " °C", "util": " %"}
    for name, e in evidence.items():
        parts.append(f"{name} {e['value']:g}{units[name]} vs peer median {e['peer_median']:g}{units[name]}")
    return f"{_label(host, gpu)} is a straggler ({kind}): " + "; ".join(parts) + f". Missing: {MISSING_RESOURCE[kind]}"


def _slow_ranks(step_times: Mapping[str, float], z_threshold: float, min_peers: int, skipped: Notes) -> list[Finding]:
    clean = {}
    for rank, value in step_times.items():
        v = number(value)
        if v is None or v <= 0:
            skipped.add("step time missing, non-positive or NaN, rank skipped", str(rank))
        else:
            clean[str(rank)] = v
    if len(clean) < min_peers:
        if clean:
            skipped.add(f"step_times: only {len(clean)} ranks (need {min_peers}); not compared")
        return []
    ranks = list(clean)
    med, _scale, zs = robust_z([clean[r] for r in ranks], 0.05 * statistics.median(clean.values()))
    findings = []
    for rank, z in zip(ranks, zs, strict=True):
        if z >= z_threshold:
            host, gpu = _split_rank(rank)
            findings.append(Finding(
                kind="slow_rank", host=host, gpu=gpu, severity="warning",
                message=f"rank {rank} takes {clean[rank]:.3g} s per step vs peer median {med:.3g} s "
                f"({clean[rank] / med:.2f}x). Missing: {MISSING_RESOURCE['slow_rank']}",
                data={"rank": rank, "step_time_s": clean[rank], "peer_median_s": med, "robust_z": round(z, 2),
                      "missing_resource": MISSING_RESOURCE["slow_rank"]},
            ))
    # every rank of one host slow together points at the host (CPU, governor, data loader), not a GPU
    per_host: dict[str, int] = {}
    for rank in ranks:
        per_host[_split_rank(rank)[0]] = per_host.get(_split_rank(rank)[0], 0) + 1
    slow_per_host: dict[str, int] = {}
    for f in findings:
        slow_per_host[f.host] = slow_per_host.get(f.host, 0) + 1
    out = []
    for f in findings:
        if slow_per_host[f.host] >= 2 and slow_per_host[f.host] == per_host[f.host]:
            f = Finding(f.kind, f.host, f.message + f" All {per_host[f.host]} ranks of {f.host} are slow: "
                        "look at the host (CPU load, governor, data loading) before its GPUs.",
                        f.gpu, f.severity, dict(f.data, host_wide=True))
        out.append(f)
    return out


def _split_rank(rank: str) -> tuple[str, int | None]:
    host, sep, gpu = rank.rpartition(":")
    if sep and gpu.isdigit():
        return host, int(gpu)
    return rank, None


# ---------------------------------------------------------------- expected vs observed


def expected_vs_observed(
    prediction: StepPrediction,
    observed_step_s: float,
    *,
    threshold: float = 0.9,
    host: str = "cluster",
    sm_clocks_mhz: Sequence[float | None] | None = None,
    max_sm_clock_mhz: float | None = None,
    measured_bus_bw_gbs: float | None = None,
    measured_hbm_bw_gbs: float | None = None,
    notes: list[str] | None = None,
) -> list[Finding]:
    """A ``slow_job`` finding when expected/observed throughput falls below ``threshold``.

    The gap (observed - expected seconds) is attributed to the resources the evidence explains:
    compute from the slowest GPU's clock, interconnect from a measured bus bandwidth, memory from a
    measured HBM bandwidth; what none explains stays ``unexplained``. Without evidence the finding
    says how far each resource alone would have to fall to explain the gap.
    """
    observed = require_positive("observed_step_s", observed_step_s)
    expected = prediction.total_s
    ratio = expected / observed
    b = prediction.breakdown
    compute0 = prediction.compute_s * b.get("min_clock_ratio", 1.0)  # at full clock
    gap = max(0.0, observed - expected)
    attribution: dict[str, float] = {"compute": 0.0, "memory": 0.0, "interconnect": 0.0}
    skipped = Notes()

    if sm_clocks_mhz is not None:
        clocks = []
        for i, c in enumerate(sm_clocks_mhz):
            v = number(c)
            if v is None or v <= 0:
                skipped.add(f"sm_clocks_mhz[{i}] missing, [N/A] or non-positive: skipped")
            else:
                clocks.append(v)
        peak = number(max_sm_clock_mhz) or (max(clocks) if clocks else None)
        if clocks and peak:
            r = min(1.0, min(clocks) / peak)
            attribution["compute"] = max(0.0, compute0 / r - prediction.compute_s)
    if measured_bus_bw_gbs is not None:
        bw = require_positive("measured_bus_bw_gbs", measured_bus_bw_gbs)
        attribution["interconnect"] = max(0.0, prediction.comm_s * (b.get("bus_bw_gbs", bw) / bw - 1))
    if measured_hbm_bw_gbs is not None:
        hbm = require_positive("measured_hbm_bw_gbs", measured_hbm_bw_gbs)
        attribution["memory"] = max(0.0, prediction.memory_s * (b.get("hbm_bw_gbs", hbm) * 0.8 / hbm - 1))
    explained = sum(attribution.values())
    if explained > gap > 0:  # evidence over-explains: scale to the gap, keep the proportions
        attribution = {k: v * gap / explained for k, v in attribution.items()}
    attribution["unexplained"] = max(0.0, gap - sum(attribution.values()))

    # how far each resource alone would have to drop to explain the whole gap
    implied = {
        "sm_clock_ratio": compute0 / (compute0 + gap) if compute0 > 0 else None,
        "bus_bw_gbs": b["bus_bw_gbs"] * prediction.comm_s / (prediction.comm_s + gap)
        if prediction.comm_s > 0 and "bus_bw_gbs" in b else None,
        "hbm_bw_fraction": prediction.memory_s / (prediction.memory_s + gap) if prediction.memory_s > 0 else None,
    }
    if notes is not None:
        notes.extend(skipped.lines())
    if ratio >= threshold:
        return []
    top = max(attribution, key=lambda k: attribution[k])
    data = {
        "expected_step_s": expected,
        "observed_step_s": observed,
        "throughput_ratio": ratio,
        "gap_s": gap,
        "threshold": threshold,
        "attribution_s": attribution,
        "attributed_to": top,
        "implied_if_alone": implied,
    }
    return [Finding(
        kind="slow_job", host=host, gpu=None, severity="critical" if ratio < 0.5 else "warning",
        message=f"step takes {observed:.3g} s vs {expected:.3g} s expected ({ratio:.0%} of expected "
        f"throughput); largest share of the {gap:.3g} s gap: {top} ({attribution[top]:.3g} s)",
        data=data,
    )]


# ---------------------------------------------------------------- early warning


@dataclass(frozen=True)
class EarlyWarningConfig:
    cusum_k: float = 1.0  # allowance, in noise sigmas, before deviation accumulates
    cusum_h: float = 10.0  # alarm level, in sigmas (ARL on clean Gaussian noise ~1e8 samples)
    clock_sigma_floor: float = 0.01  # clock ratio noise never assumed below 1% (clock bins are ~15 MHz)
    temp_sigma_floor_c: float = 1.0
    baseline_alpha: float = 0.01  # how fast a GPU's normal offset from its peers is learnt
    max_clock_offset: float = 0.03  # the most a healthy busy GPU's clock sits from its peers' median
    max_temp_offset_c: float = 12.0  # the most a healthy GPU runs hotter/cooler than the median
    warmup_samples: int = 10  # samples per GPU before its CUSUMs may fire
    power_limit_drop: float = 0.02  # relative drop of the enforced limit that counts as a change
    temp_margin_c: float = 5.0  # warn this far below the slowdown temperature
    temp_hysteresis_c: float = 3.0  # and re-arm only once it is this much cooler again
    slowdown_temp_c: float = 87.0


@dataclass
class _Track:
    seen: int = 0
    clock_offset: float = 0.0  # learnt normal (ratio to peers - 1)
    temp_offset: float = 0.0  # learnt normal (temp - peer median)
    s_clock: float = 0.0
    s_temp: float = 0.0
    first_limit: float | None = None
    xid: float | None = None
    ecc: float | None = None
    active: set[str] = field(default_factory=set)


class EarlyWarning:
    """Stateful change detector over telemetry ticks, fed with ``update(samples)``.

    Per GPU: a one-sided CUSUM on its SM clock relative to the peer median (in units of the peer
    spread), a CUSUM on its temperature excess over peers, a power-limit change against its first
    reading and its peers, an absolute near-slowdown temperature, and Xid / ECC counter increments.
    Each signal fires once, and again only after it has returned to normal.
    """

    def __init__(self, config: EarlyWarningConfig | None = None) -> None:
        self.config = config or EarlyWarningConfig()
        self._tracks: dict[tuple[str, int], _Track] = {}
        self.notes = Notes()
        self.fired: list[Finding] = []

    def update(self, samples: Iterable[GpuSample]) -> list[Finding]:
        cfg = self.config
        tick = latest_per_gpu(samples)
        out: list[Finding] = []
        if not tick:
            self.notes.add("empty telemetry tick: skipped")
            return out
        clocks = _busy_only(_metric(tick, "sm_clock_mhz", self.notes), tick, self.notes)
        temps = _metric(tick, "temp_c", self.notes)
        limits = {k: v for k, s in tick.items() if (v := number(s.power_limit_w)) is not None}
        clock_med, clock_sigma = self._peer_stats(clocks, cfg.clock_sigma_floor, relative=True)
        temp_med, temp_sigma = self._peer_stats(temps, cfg.temp_sigma_floor_c, relative=False)
        limit_med = statistics.median(limits.values()) if len(limits) >= 3 else None

        for key, s in tick.items():
            tr = self._tracks.setdefault(key, _Track())
            tr.seen += 1
            armed = tr.seen > cfg.warmup_samples
            if key in clocks and clock_med:
                dev = clocks[key] / clock_med - 1 - tr.clock_offset
                z = -dev / clock_sigma  # positive when slower than peers
                # capped at 2h so a repaired GPU re-arms within ~20 samples instead of hours later
                tr.s_clock = min(2 * cfg.cusum_h, max(0.0, tr.s_clock + min(z, cfg.cusum_h / 2) - cfg.cusum_k))
                alpha = cfg.baseline_alpha if armed else 1 / tr.seen  # running mean while warming up
                if not armed or abs(z) < 2:  # symmetric window: an unbiased estimate of the normal offset
                    tr.clock_offset += alpha * (clocks[key] / clock_med - 1 - tr.clock_offset)
                    # a GPU's normal place among its peers is close to them: a GPU already throttled
                    # when watching starts must not be learnt as "normal"
                    tr.clock_offset = max(-cfg.max_clock_offset, min(cfg.max_clock_offset, tr.clock_offset))
                if armed:
                    out += self._edge(key, s, "sm_clock_cusum", tr.s_clock > cfg.cusum_h, tr.s_clock == 0,
                                      "gpu_clock_throttle",
                                      f"SM clock {clocks[key]:g} MHz persistently below peer median {clock_med:g} MHz",
                                      {"sm_clock_mhz": clocks[key], "peer_median_mhz": clock_med,
                                       "cusum": round(tr.s_clock, 2), "threshold": cfg.cusum_h})
            if key in temps and temp_med is not None:
                dev_t = temps[key] - temp_med - tr.temp_offset
                zt = dev_t / temp_sigma
                tr.s_temp = min(2 * cfg.cusum_h, max(0.0, tr.s_temp + min(zt, cfg.cusum_h / 2) - cfg.cusum_k))
                alpha = cfg.baseline_alpha if armed else 1 / tr.seen
                if not armed or abs(zt) < 2:
                    tr.temp_offset += alpha * (temps[key] - temp_med - tr.temp_offset)
                    tr.temp_offset = max(-cfg.max_temp_offset_c, min(cfg.max_temp_offset_c, tr.temp_offset))
                if armed:
                    out += self._edge(key, s, "temp_cusum", tr.s_temp > cfg.cusum_h, tr.s_temp == 0, "gpu_thermal",
                                      f"temperature {temps[key]:g} °C persistently above peer median {temp_med:g} °C",
                                      {"temp_c": temps[key], "peer_median_c": temp_med,
                                       "cusum": round(tr.s_temp, 2), "threshold": cfg.cusum_h})
            if key in temps:
                near = temps[key] >= cfg.slowdown_temp_c - cfg.temp_margin_c
                cooled = temps[key] < cfg.slowdown_temp_c - cfg.temp_margin_c - cfg.temp_hysteresis_c
                out += self._edge(key, s, "temp_near_slowdown", near, cooled, "gpu_thermal",
                                  f"temperature {temps[key]:g} °C within {cfg.temp_margin_c:g} °C of slowdown "
                                  f"({cfg.slowdown_temp_c:g} °C)",
                                  {"temp_c": temps[key], "slowdown_temp_c": cfg.slowdown_temp_c})
            if key in limits:
                lim = limits[key]
                if tr.first_limit is None:
                    tr.first_limit = lim
                ref = max(tr.first_limit, limit_med or 0.0)
                dropped = lim < ref * (1 - cfg.power_limit_drop)
                out += self._edge(key, s, "power_limit", dropped, not dropped, "gpu_power_cap",
                                  f"enforced power limit {lim:g} W below its usual {ref:g} W",
                                  {"power_limit_w": lim, "reference_w": ref})
            out += self._counter(key, s, tr, "xid", s.xid_count, "gpu_xid")
            out += self._counter(key, s, tr, "ecc", s.ecc_dbe, "gpu_ecc_uncorrectable")
        self.fired.extend(out)
        return out

    def _peer_stats(self, values: Mapping[tuple[str, int], float], floor: float, relative: bool) -> tuple[float | None, float]:
        """Peer median and the noise scale of each GPU's deviation *after* its learnt offset.

        Using residuals (not raw values) keeps GPUs that always run a few degrees warmer from
        inflating the scale and hiding a real drift."""
        if len(values) < 3:
            if values:
                self.notes.add("fewer than 3 GPUs in a tick: peer comparison skipped for that tick")
            return None, floor
        med = statistics.median(values.values())
        if relative and med <= 0:
            return None, floor
        residuals = []
        for key, v in values.items():
            tr = self._tracks.get(key)
            if relative:
                residuals.append(v / med - 1 - (tr.clock_offset if tr else 0.0))
            else:
                residuals.append(v - med - (tr.temp_offset if tr else 0.0))
        centre = statistics.median(residuals)
        mad = statistics.median(abs(r - centre) for r in residuals)
        return med, max(1.4826 * mad, floor)

    def _edge(self, key: tuple[str, int], s: GpuSample, signal: str, firing: bool, clear: bool, kind: str,
              text: str, data: dict[str, Any]) -> list[Finding]:
        tr = self._tracks[key]
        if firing and signal not in tr.active:
            tr.active.add(signal)
            return [Finding(kind=kind, host=key[0], gpu=key[1], severity="warning",
                            message=f"early warning on {_label(*key)}: {text}",
                            data={"signal": signal, "t": s.t, **data})]
        if clear:
            tr.active.discard(signal)
        return []

    def _counter(self, key: tuple[str, int], s: GpuSample, tr: _Track, name: str, raw: Any, kind: str) -> list[Finding]:
        value = number(raw)
        if value is None:
            return []
        prev = tr.xid if name == "xid" else tr.ecc
        if name == "xid":
            tr.xid = value
        else:
            tr.ecc = value
        if prev is None:
            if value > 0:  # already non-zero on first sight: report once, it is current state
                return [Finding(kind=kind, host=key[0], gpu=key[1], severity="critical",
                                message=f"{_label(*key)}: {name} counter already at {value:g}",
                                data={"signal": name, "t": s.t, "count": value, "increment": value})]
            return []
        if value > prev:
            return [Finding(kind=kind, host=key[0], gpu=key[1], severity="critical",
                            message=f"{_label(*key)}: {name} counter rose {prev:g} -> {value:g}",
                            data={"signal": name, "t": s.t, "count": value, "increment": value - prev})]
        return []


def require_samples(samples: Sequence[GpuSample], argument: str = "samples") -> Sequence[GpuSample]:
    """Raise naming ``argument`` when a detector is handed no telemetry at all."""
    if not samples:
        raise PerfInputError(argument, "no telemetry samples given (empty)")
    return samples
