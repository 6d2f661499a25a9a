"""The performance detectors over what the GPU checks returned: cross-GPU outliers as evidence.

A check flags a GPU against fixed thresholds; ``perf.detectors.detect_stragglers`` compares every
GPU with its peers (median/MAD), which catches a GPU that is slower than the others without being
below any threshold. Both kinds of findings then go through the same ranking and verifier.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from diagnostics.types import Finding, Status, ToolResult

GPU_TELEMETRY_TOOLS = frozenset({"gpu_clocks", "gpu_power", "gpu_temperature"})
_FIELDS = ("sm_clock_mhz", "max_sm_clock_mhz", "power_w", "power_limit_w", "temp_c", "util_pct")
MIN_GPUS = 8  # fewer GPUs than this give the median/MAD comparison too little to stand on


def samples_from_results(results: Iterable[ToolResult]) -> list[Any]:
    """GpuSamples built from the ``data["gpus"]`` rows of GPU checks (one per host and GPU)."""
    try:
        from perf.detectors import GpuSample
    except ImportError:
        return []
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for r in results:
        if r.tool not in GPU_TELEMETRY_TOOLS or r.status not in (Status.OK, Status.PROBLEM):
            continue
        for g in r.data.get("gpus", []) or []:
            if not isinstance(g, dict) or not isinstance(g.get("gpu"), int):
                continue
            row = rows.setdefault((r.host, g["gpu"]), {})
            for f in _FIELDS:
                if isinstance(g.get(f), (int, float)) and not isinstance(g.get(f), bool):
                    row[f] = float(g[f])
    return [GpuSample(host=h, gpu=i, t=0.0, **vals) for (h, i), vals in sorted(rows.items())]


def detector_findings(results: Iterable[ToolResult], slowdown_temp_c: float = 87.0) -> tuple[list[Finding], list[str]]:
    """Straggler findings (tagged ``data["source"] = "perf.detectors"``) and the detector's notes."""
    samples = samples_from_results(results)
    if len(samples) < MIN_GPUS:
        return [], []
    try:
        from perf.detectors import detect_stragglers
    except ImportError:
        return [], ["perf.detectors unavailable"]
    notes: list[str] = []
    try:
        found = detect_stragglers(samples, slowdown_temp_c=slowdown_temp_c, notes=notes)
    except Exception as exc:  # a detector bug must not lose the checks' own evidence
        return [], [f"perf detectors failed: {type(exc).__name__}: {exc}"]
    out = [Finding(f.kind, f.host, f.message, f.gpu, f.severity, {**f.data, "source": "perf.detectors"}) for f in found]
    return out, notes[:5]


def perf_model_block(findings: list[Finding], notes: list[str]) -> str:
    """The detectors' findings as perf.dot's ``<perf_model>`` block (a DoT attachment)."""
    try:
        from perf.dot import render_findings
    except ImportError:
        return ""
    try:
        return str(render_findings(findings, notes, model="stragglers"))
    except Exception:  # rendering is decoration; the findings themselves are already evidence
        return ""
