"""Cross-node comparisons over a sweep's results (pure functions).

driver_mismatch: a node whose driver (or CUDA) version differs from the majority.
gpu count outliers: a node that sees fewer GPUs than most of its peers.
nccl_env_misconfig: a node whose job NCCL environment differs from the majority.
version_skew (no fault kind; category software-version): a node whose NCCL build differs from the majority.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from diagnostics.types import Finding, Status, ToolResult


def _results(report_or_map: Any) -> Mapping[str, Sequence[ToolResult]]:
    results = getattr(report_or_map, "results", report_or_map)
    return results if isinstance(results, Mapping) else {}


def _by_tool(results: Mapping[str, Sequence[ToolResult]], tool: str) -> dict[str, ToolResult]:
    out = {}
    for host, items in results.items():
        for r in items:
            if r.tool == tool and r.status in (Status.OK, Status.PROBLEM):
                out[host] = r
    return out


def _majority(values: Mapping[str, Any]) -> tuple[Any, int] | None:
    counts = Counter(v for v in values.values() if v is not None)
    if not counts:
        return None
    (value, n), *rest = counts.most_common()
    if rest and rest[0][1] == n:
        return None  # no majority: cannot tell which side is wrong
    return value, n


def fleet_findings(results_by_host: Any) -> list[Finding]:
    """Findings no single node can establish. Accepts ``{host: [ToolResult]}`` or a SweepReport."""
    results = _results(results_by_host)
    findings: list[Finding] = []
    versions = _by_tool(results, "versions")
    if len(versions) >= 2:
        for key, label in (("driver", "driver"), ("cuda", "CUDA")):
            values = {h: r.data.get(key) for h, r in versions.items()}
            maj = _majority(values)
            if maj is None:
                continue
            common, n = maj
            for host, value in sorted(values.items()):
                if value is not None and value != common:
                    if key == "cuda" and values_driver_differs(versions, host):
                        continue  # already reported with the driver
                    findings.append(Finding(
                        "driver_mismatch", host,
                        f"{label} version {value} differs from {common} on {n} of {len(values)} nodes",
                        severity="warning",
                        data={"driver": versions[host].data.get("driver"), "cuda": versions[host].data.get("cuda"),
                              "expected_driver": _majority({h: r.data.get("driver") for h, r in versions.items()}),
                              "field": key, "value": value, "majority": common}))
        # NCCL has no fault kind of its own: a node on another NCCL build is a version skew that
        # breaks collectives at init ("internal error", truncated messages), category software-version
        nccl = {h: r.data.get("nccl") for h, r in versions.items()}
        maj = _majority(nccl)
        if maj is not None:
            common, n = maj
            for host, value in sorted(nccl.items()):
                if value is not None and value != common:
                    findings.append(Finding(
                        "version_skew", host, f"NCCL {value} differs from {common} on {n} of {len(nccl)} nodes",
                        severity="warning",
                        data={"component": "nccl", "value": value, "majority": common,
                              "category": "software-version"}))
    counts = _by_tool(results, "gpu_count")
    if len(counts) >= 2:
        visible = {h: r.data.get("visible") for h, r in counts.items()}
        maj = _majority(visible)
        if maj is not None:
            common, n = maj
            for host, value in sorted(visible.items()):
                if isinstance(value, int) and isinstance(common, int) and value < common:
                    already = any(f.kind == "gpu_fallen_off_bus" for f in counts[host].findings)
                    if not already:
                        findings.append(Finding("gpu_fallen_off_bus", host,
                                                f"{value} GPUs visible vs {common} on {n} other nodes",
                                                severity="critical", data={"visible": value, "fleet_majority": common}))
    envs = _by_tool(results, "nccl_env")
    if len(envs) >= 3:
        flat = {h: tuple(sorted((r.data.get("nccl_env") or {}).items())) for h, r in envs.items()}
        maj = _majority(flat)
        if maj is not None:
            common, n = maj
            common_env = dict(common)
            for host, value in sorted(flat.items()):
                if value != common and not envs[host].findings:
                    env = dict(value)
                    diff = {k: env.get(k) for k in set(env) | set(common_env) if env.get(k) != common_env.get(k)}
                    findings.append(Finding("nccl_env_misconfig", host,
                                            f"NCCL environment differs from {n} other nodes: "
                                            + ", ".join(f"{k}={v}" for k, v in sorted(diff.items(), key=lambda kv: kv[0])),
                                            severity="warning", data={"differs": diff}))
    return findings


def values_driver_differs(versions: Mapping[str, ToolResult], host: str) -> bool:
    drivers = {h: r.data.get("driver") for h, r in versions.items()}
    maj = _majority(drivers)
    return maj is not None and drivers.get(host) != maj[0]
