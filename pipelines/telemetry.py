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
MIN_GPUS = 8  # fewer GPUs than this give the median/MAD comparison too little to stand on


def gpu_samples(results: Iterable[ToolResult]) -> list[Any]:
    """GpuSamples from the GPU telemetry checks that ran and parsed (one per host and GPU); the
    merging itself is ``pipelines.perfcheck.samples_from_results`` (one implementation)."""
    from pipelines.perfcheck import samples_from_results

    usable = [r for r in results if r.tool in GPU_TELEMETRY_TOOLS and r.status in (Status.OK, Status.PROBLEM)]
    return list(samples_from_results(usable))


def detector_findings(results: Iterable[ToolResult], slowdown_temp_c: float = 87.0) -> tuple[list[Finding], list[str]]:
    """Straggler findings (tagged ``data["source"] = "perf.detectors"``) and the detector's notes."""
    samples = gpu_samples(results)
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
    """The detectors' findings as perf.xmlreport's ``<perf_model>`` block (a DoT attachment)."""
    try:
        from perf.xmlreport import render_findings
    except ImportError:
        return ""
    try:
        return str(render_findings(findings, notes, model="stragglers"))
    except Exception:  # rendering is decoration; the findings themselves are already evidence
        return ""
