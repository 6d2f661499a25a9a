"""The early-warning PromQL set over dcgm-exporter metrics, and the same rules as a Prometheus rule file.

Each rule is a PromQL expression that returns exactly the GPUs (or nodes) that look wrong, so
Prometheus does the fleet-wide comparison and only the suspects travel to clusterdoc: that is
what keeps one bot cheap at 2,000 nodes. Peer comparisons are made per ``modelName`` (an H100
is not a peer of an A100) and only among busy GPUs (an idle GPU parks its clock at ~210 MHz).

Metric names and labels are dcgm-exporter's (``etc/default-counters.csv``): ``DCGM_FI_DEV_*``
with ``gpu``, ``UUID``, ``device``, ``modelName``, ``Hostname`` (+ ``instance``/``job`` from the
scrape). Clock-event reasons are read under both names: ``DCGM_FI_DEV_CLOCKS_EVENT_REASONS``
(DCGM >= 3.3) and the older ``DCGM_FI_DEV_CLOCK_THROTTLE_REASONS``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

# clocks-event-reason bits (nvml.h NVML_CLOCKS_EVENT_REASON_*); the same in both metric names
REASON_BITS: dict[str, int] = {
    "gpu_idle": 0x1,
    "applications_clocks_setting": 0x2,
    "sw_power_cap": 0x4,
    "hw_slowdown": 0x8,
    "sync_boost": 0x10,
    "sw_thermal_slowdown": 0x20,
    "hw_thermal_slowdown": 0x40,
    "hw_power_brake_slowdown": 0x80,
    "display_clock_setting": 0x100,
}
# reasons that mean "the hardware or the driver is holding the clock down", not normal operation
SLOWDOWN_BITS = ("hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown")

_WINDOW_RE = re.compile(r"^\d+(ms|s|m|h|d)$")
_SELECTOR_RE = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*\s*(=|!=|=~|!~)\s*"(?:[^"\\]|\\.)*"\s*,?\s*)*$')


def decode_reasons(mask: float | int) -> list[str]:
    """Names of the bits set in a clocks-event-reason mask (unknown bits are named ``bit_0x...``)."""
    value = int(mask)
    names = [name for name, bit in REASON_BITS.items() if value & bit]
    known = 0
    for bit in REASON_BITS.values():
        known |= bit
    rest = value & ~known
    bit = 1
    while rest:
        if rest & bit:
            names.append(f"bit_{bit:#x}")
            rest &= ~bit
        bit <<= 1
    return names


@dataclass(frozen=True)
class QueryParams:
    """Knobs of the rule set. ``selector`` narrows every metric (e.g. ``job="dcgm-exporter"``)."""

    window: str = "2m"  # smoothing window; a few scrape intervals at least
    selector: str = ""
    clock_ratio: float = 0.85  # SM clock below this fraction of the busy peers' median
    busy_util_pct: float = 10.0  # a GPU counts as busy (and as a peer) above this utilisation
    temp_over_peers_c: float = 10.0
    temp_abs_c: float = 85.0  # near the slowdown point of current datacenter GPUs
    power_limit_ratio: float = 0.95

    def __post_init__(self) -> None:
        if not _WINDOW_RE.match(self.window):
            raise ValueError(f"telemetry window {self.window!r}: expected a Prometheus duration such as 30s, 2m, 1h")
        if not _SELECTOR_RE.match(self.selector):
            raise ValueError(f'telemetry selector {self.selector!r}: expected label matchers such as job="dcgm"')
        if not 0 < self.clock_ratio < 1:
            raise ValueError(f"telemetry clock_ratio {self.clock_ratio!r}: must be between 0 and 1")
        if not 0 < self.power_limit_ratio < 1:
            raise ValueError(f"telemetry power_limit_ratio {self.power_limit_ratio!r}: must be between 0 and 1")

    def m(self, name: str) -> str:
        """A metric reference with the selector applied."""
        return f"{name}{{{self.selector.strip().rstrip(',')}}}" if self.selector.strip() else name


@dataclass(frozen=True)
class Rule:
    name: str  # also the alert name in the rule file (CamelCase)
    kind: str  # the fault kind (formats/scenario.md) a hit is evidence of
    expr: str  # returns the suspects only
    reference: str  # a per-modelName (or scalar) figure to compare with, '' when none
    summary: str
    per_gpu: bool = True


def reasons_expr(p: QueryParams) -> str:
    return f"({p.m('DCGM_FI_DEV_CLOCKS_EVENT_REASONS')} or {p.m('DCGM_FI_DEV_CLOCK_THROTTLE_REASONS')})"


def busy_clock_expr(p: QueryParams) -> str:
    """Smoothed SM clock of the GPUs that are busy (util above the threshold)."""
    return (f"(avg_over_time({p.m('DCGM_FI_DEV_SM_CLOCK')}[{p.window}]) "
            f"and on(Hostname, gpu) {p.m('DCGM_FI_DEV_GPU_UTIL')} > {p.busy_util_pct:g})")


def rules(p: QueryParams | None = None) -> list[Rule]:
    p = p or QueryParams()
    clock_median = f"quantile by (modelName) (0.5, {busy_clock_expr(p)})"
    reasons = reasons_expr(p)
    slow_bits = " + ".join(f"(floor({reasons} / {REASON_BITS[b]}) % 2)" for b in SLOWDOWN_BITS)
    temp = p.m("DCGM_FI_DEV_GPU_TEMP")
    temp_median = f"quantile by (modelName) (0.5, {temp})"
    limit = p.m("DCGM_FI_DEV_POWER_MGMT_LIMIT")
    limit_median = f"quantile by (modelName) (0.5, {limit})"
    count_gpus = f"count by (Hostname) ({temp})"
    return [
        Rule("GpuSmClockBelowPeers", "gpu_clock_throttle",
             f"{busy_clock_expr(p)} < on(modelName) group_left() ({p.clock_ratio:g} * {clock_median})",
             clock_median,
             f"SM clock below {p.clock_ratio:.0%} of the busy peers' median over {p.window}"),
        Rule("GpuClockSlowdownReason", "gpu_clock_throttle",
             f"({slow_bits}) > 0", "",
             "clocks held down by a hardware/thermal/power-brake slowdown reason"),
        Rule("GpuTempAbovePeers", "gpu_thermal",
             f"{temp} > on(modelName) group_left() ({temp_median} + {p.temp_over_peers_c:g})",
             temp_median, f"temperature more than {p.temp_over_peers_c:g} °C above the peers' median"),
        Rule("GpuTempNearSlowdown", "gpu_thermal", f"{temp} >= {p.temp_abs_c:g}", "",
             f"temperature at or above {p.temp_abs_c:g} °C (near thermal slowdown)"),
        Rule("GpuPowerLimitBelowPeers", "gpu_power_cap",
             f"{limit} < on(modelName) group_left() ({p.power_limit_ratio:g} * {limit_median})",
             limit_median, f"enforced power limit below {p.power_limit_ratio:.0%} of the peers' median"),
        Rule("GpuXid", "gpu_xid", f"{p.m('DCGM_FI_DEV_XID_ERRORS')} > 0", "",
             "an Xid error was reported (value = the last Xid)"),
        Rule("GpuEccDoubleBit", "gpu_ecc_uncorrectable", f"{p.m('DCGM_FI_DEV_ECC_DBE_VOL_TOTAL')} > 0", "",
             "volatile double-bit (uncorrectable) ECC errors"),
        Rule("GpuRowRemap", "gpu_row_remap_pending",
             f"({p.m('DCGM_FI_DEV_ROW_REMAP_FAILURE')} > 0) or ({p.m('DCGM_FI_DEV_ROW_REMAP_PENDING')} > 0)", "",
             "row remapping pending or failed: the GPU needs a reset (or replacement on failure)"),
        Rule("NodeGpuMissing", "gpu_fallen_off_bus",
             f"{count_gpus} < scalar(max({count_gpus}))",
             f"max({count_gpus})", "fewer GPUs report than on the fullest node of the fleet", per_gpu=False),
    ]


def alert_rules_yaml(p: QueryParams | None = None, *, for_: str = "1m", group: str = "clusterdoc-gpu") -> str:
    """The rule set as a Prometheus rule file (``rule_files:``), each alert labelled with the
    node (``node``), the fault kind and the GPU so the bot opens one incident per GPU and fault."""
    if not _WINDOW_RE.match(for_):
        raise ValueError(f"alert 'for' {for_!r}: expected a Prometheus duration such as 0s, 1m")
    out = []
    for r in rules(p):
        labels = {"severity": "warning", "clusterdoc_kind": r.kind, "node": "{{ $labels.Hostname }}"}
        summary = r.summary + (" on {{ $labels.Hostname }} GPU {{ $labels.gpu }}" if r.per_gpu else
                               " on {{ $labels.Hostname }}")
        out.append({"alert": r.name, "expr": r.expr, "for": for_, "labels": labels,
                    "annotations": {"summary": summary + " (value {{ $value }})"}})
    return yaml.safe_dump({"groups": [{"name": group, "rules": out}]}, sort_keys=False, width=200)

