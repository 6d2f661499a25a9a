"""Network checks: InfiniBand/RoCE ports (ibstat, ibv_devinfo), the training job's NCCL
environment, ICMP latency and nccl-tests all-reduce bandwidth. Thresholds of these checks live here.

``nccl_env`` reads the running job's environment, but what it judges is the NCCL transport
configuration (IB/P2P/GDR), so it sits with the network checks (and keeps CHECKS' order)."""

from __future__ import annotations

import re
from typing import Any

from diagnostics.checks._common import _HOST_PATTERN, _PROCESS_PATTERN, _check, _guard, _result
from diagnostics.parsers import infiniband, nccl, system
from diagnostics.parsers.common import ParseError
from diagnostics.registry import Param, ParseInput, ParseOutput, ToolSpec
from diagnostics.types import Finding, Status

# --------------------------------------------------------------------------- thresholds

# On a datacenter fabric ICMP RTT is ~0.05-0.2 ms; above 1 ms something is in the path.
LATENCY_MAX_MS = 1.0
# all_reduce_perf below 60% of the bus bandwidth the hardware model expects is a broken path.
BUSBW_MIN_RATIO = 0.6


@_guard
def parse_ib_ports(inp: ParseInput) -> ParseOutput:
    out = inp.outputs[0]
    if not out.stdout.strip():
        if out.exit_code == 0:
            return ParseOutput(Status.NO_DATA, error="no InfiniBand/RoCE HCAs on this node")
        raise ParseError("ibstat", (out.stderr or "").strip()[:200] or f"exit code {out.exit_code}")
    ports = infiniband.parse_ibstat(out.stdout)
    hca = inp.params.get("hca")
    if hca:
        ports = [p for p in ports if p.hca == hca]
    active_rates = [p.rate_gbps for p in ports if p.active and p.rate_gbps]
    # without an explicit rate, the node's best active port is what every rail should reach
    expected = inp.params.get("min_rate_gbps") or (max(active_rates) if active_rates else None)
    findings = []
    rows = []
    for p in ports:
        info = {"hca": p.hca, "port": p.port, "state": p.state, "physical_state": p.physical_state,
                "rate_gbps": p.rate_gbps, "link_layer": p.link_layer}
        rows.append(info)
        if not p.active:
            findings.append(Finding("ib_port_down", inp.host,
                                    f"{p.hca} port {p.port} is {p.state} (physical state {p.physical_state})",
                                    severity="critical", data=info))
        elif expected and p.rate_gbps is not None and p.rate_gbps < expected:
            findings.append(Finding("ib_link_degraded", inp.host,
                                    f"{p.hca} port {p.port} active at {p.rate_gbps:g} Gb/s, expected {expected:g} Gb/s",
                                    severity="warning", data={**info, "expected_rate_gbps": expected}))
    return _result(findings, {"ports": rows})


@_guard
def parse_ib_devinfo(inp: ParseInput) -> ParseOutput:
    out = inp.outputs[0]
    if out.exit_code not in (0, None) and not out.stdout.strip():
        raise ParseError("ibv_devinfo", (out.stderr or "").strip()[:200] or f"exit code {out.exit_code}")
    ports = infiniband.parse_ibv_devinfo(out.stdout)
    if not ports:
        return ParseOutput(Status.NO_DATA, error="no InfiniBand/RoCE devices found")
    findings = []
    rows = []
    for p in ports:
        info = {"hca": p.hca, "port": p.port, "state": p.state, "link_layer": p.link_layer}
        rows.append(info)
        if not p.active:
            findings.append(Finding("ib_port_down", inp.host, f"{p.hca} port {p.port} state {p.state}",
                                    severity="critical", data=info))
    return _result(findings, {"ports": rows})


@_guard
def parse_nccl_env(inp: ParseInput) -> ParseOutput:
    out = inp.outputs[0]
    if out.exit_code not in (0, None):
        return ParseOutput(Status.NO_DATA, error=f"no running process matching {inp.params.get('process')!r} "
                                                 f"(or its environment is unreadable): {out.stderr.strip()[:120]}")
    env = nccl.parse_environ(out.stdout)
    nccl_vars = {k: v for k, v in env.items() if k.startswith("NCCL_")}
    findings = [
        Finding("nccl_env_misconfig", inp.host, f"{i.var}={i.value}: {i.problem}", severity="critical" if i.effect == "tcp" else "warning",
                data={"var": i.var, "value": i.value, "effect": i.effect, "bandwidth_factor": i.factor})
        for i in nccl.assess_nccl_env(nccl_vars)
    ]
    return _result(findings, {"nccl_env": nccl_vars})


@_guard
def parse_net_latency(inp: ParseInput) -> ParseOutput:
    out = inp.outputs[0]
    if "Name or service not known" in out.stderr or "unknown host" in out.stderr.lower():
        return ParseOutput(Status.NO_DATA, error=f"ping: cannot resolve {inp.params.get('target')!r}")
    stats = system.parse_ping(out.stdout)
    data = {"target": stats.target, "rtt_avg_ms": stats.rtt_avg_ms, "rtt_min_ms": stats.rtt_min_ms,
            "rtt_max_ms": stats.rtt_max_ms, "loss_pct": stats.loss_pct, "threshold_ms": LATENCY_MAX_MS}
    findings = []
    if stats.received == 0:
        findings.append(Finding("network_latency", inp.host, f"no replies from {stats.target} ({stats.loss_pct:g}% loss)",
                                severity="critical", data=data))
    elif stats.rtt_avg_ms is not None and stats.rtt_avg_ms > LATENCY_MAX_MS:
        findings.append(Finding("network_latency", inp.host,
                                f"RTT to {stats.target} averages {stats.rtt_avg_ms:g} ms (> {LATENCY_MAX_MS:g} ms)",
                                severity="warning", data=data))
    elif stats.loss_pct > 0:
        findings.append(Finding("network_latency", inp.host, f"{stats.loss_pct:g}% packet loss to {stats.target}",
                                severity="warning", data=data))
    return _result(findings, data)


def _expected_busbw(gpu_name: str, n_gpus: int) -> float | None:
    """What the hardware model says one node's all-reduce should reach (None if unknown)."""
    try:
        from perf.catalog import get_gpu
        from perf.workload import StepModelParams, bus_bandwidth_gbs

        return float(bus_bandwidth_gbs(get_gpu(gpu_name.strip()), n_gpus, "infiniband",
                                       StepModelParams(gpus_per_node=max(n_gpus, 1))))
    except Exception:  # unknown model or perf not importable: fall back to the explicit threshold
        return None


_GPU_NAME = re.compile(r"^(?:NVIDIA|Tesla|Quadro|GeForce|RTX|TITAN|Graphics Device)\b[\w .()/-]{0,60}$")


def _gpu_model(names: str, n_gpus: int) -> tuple[str, float | None]:
    """The GPU name nvidia-smi printed and the model's bus bandwidth for it. A warning line may
    come first: the first of the first few lines the catalogue knows wins; else the first line."""
    lines = [ln.strip() for ln in names.splitlines() if ln.strip()]
    for line in lines[:4]:
        model = _expected_busbw(line, n_gpus)
        if model is not None:
            return line, model
    return next((ln for ln in lines if _GPU_NAME.match(ln)), ""), None


@_guard
def parse_nccl_allreduce(inp: ParseInput) -> ParseOutput:
    names, out = inp.outputs[0], inp.outputs[1]
    if out.exit_code not in (0, None) and "Avg bus bandwidth" not in out.stdout:
        raise ParseError("all_reduce_perf", (out.stderr or out.stdout).strip()[:200] or f"exit code {out.exit_code}")
    result = nccl.parse_all_reduce_perf(out.stdout)
    n = result.n_gpus or int(inp.params.get("gpus") or 1)
    expected = inp.params.get("min_busbw_gbs")
    gpu_name, model = _gpu_model(names.stdout, n)
    model = model if expected is None else None
    threshold = float(expected) if expected is not None else (model * BUSBW_MIN_RATIO if model else None)
    peak = result.peak_busbw_gbs
    data: dict[str, Any] = {
        "peak_busbw_gbs": peak, "avg_busbw_gbs": result.avg_busbw_gbs, "n_gpus": n, "gpu": gpu_name,
        "expected_busbw_gbs": model, "threshold_gbs": threshold,
        "rows": [{"size": r.size_bytes, "busbw_gbs": r.busbw_gbs} for r in result.rows],
        "out_of_bounds": result.out_of_bounds, "wrong_sizes": [r.size_bytes for r in result.wrong_rows]}
    if result.failed:
        what = []
        if result.out_of_bounds:
            what.append(f"{result.out_of_bounds} out-of-bounds values (FAILED)")
        if result.wrong_rows:
            what.append(f"#wrong at {len(result.wrong_rows)} size(s)")
        if result.errors:
            what.append(result.errors[0][:120])
        return _result([Finding("low_bus_bandwidth", inp.host,
                                "all_reduce_perf reported errors or wrong results: " + "; ".join(what),
                                severity="critical", data=data)], data)
    if threshold is None:
        return ParseOutput(Status.OK, data=data, error="no expected bandwidth known for this GPU; pass min_busbw_gbs")
    if peak < threshold:
        return _result([Finding("low_bus_bandwidth", inp.host,
                                f"all-reduce bus bandwidth {peak:.1f} GB/s, expected >= {threshold:.1f} GB/s",
                                severity="warning", data=data)], data)
    return ParseOutput(Status.OK, data=data)


NETWORK_CHECKS: tuple[ToolSpec, ...] = (
    _check("ib_ports", "InfiniBand/RoCE ports (ibstat): state, physical state, rate; finds ib_port_down and "
           "ib_link_degraded (rate below min_rate_gbps or below the node's other ports)", "network", "quick",
           (Param("hca", "str", "only this HCA, e.g. mlx5_0", required=False, pattern=r"[A-Za-z0-9_]{1,32}"),
            Param("min_rate_gbps", "float", "expected link rate in Gb/s", required=False, min=1, max=3200)),
           ("ibstat",), parse_ib_ports),
    _check("ib_devinfo", "HCA port states from ibv_devinfo; finds ib_port_down", "network", "quick", (),
           ("ibv_devinfo",), parse_ib_devinfo),
    _check("nccl_env", "NCCL_* environment of the running training process; finds nccl_env_misconfig "
           "(IB disabled, P2P disabled, channel/buffer limits, GDR off)", "network", "quick",
           (Param("process", "str", "pattern pgrep -f matches against the training process", required=False,
                  default="train", pattern=_PROCESS_PATTERN),),
           ("cat /proc/$(pgrep -o -f -- {process})/environ",), parse_nccl_env),
    _check("net_latency", "ICMP round-trip time to a target (default: the default gateway); finds network_latency",
           "network", "quick",
           (Param("target", "str", "host name or address to ping", required=False, default="_gateway",
                  pattern=_HOST_PATTERN),),
           ("ping -c 5 -i 0.2 -q {target}",), parse_net_latency),
    _check("nccl_allreduce", "nccl-tests all_reduce_perf across this node's GPUs vs the bus bandwidth the hardware "
           "model expects; finds low_bus_bandwidth", "network", "long",
           (Param("gpus", "int", "GPUs to use (-g)", required=False, default=8, min=1, max=64),
            Param("min_busbw_gbs", "float", "expected minimum bus bandwidth; default 60% of the model's",
                  required=False, min=0.1, max=10_000)),
           ("nvidia-smi --query-gpu=name --format=csv,noheader -i 0", "all_reduce_perf -b 8M -e 1G -f 2 -g {gpus}"),
           parse_nccl_allreduce, timeout_s=300.0),
)
