"""The read-only checks of the registry (the whitelist's "look" half).

Each check is data: a ``ToolSpec`` with its typed params, the exact command lines it runs and
a parser. Parsers read the real tools' output through ``diagnostics.parsers`` and turn it into
``Finding``s whose ``kind`` is the fault kind of formats/scenario.md they are evidence of, with
the numbers behind them in ``data``. A parser never raises for a node's misbehaviour: output
it cannot read becomes status error (the toolkit keeps the raw text), a missing tool or device
becomes status no_data.

GPU params filter the parsed output; commands always query every GPU, so one template serves
both "this GPU" and "all GPUs" and nothing optional is ever spliced into a command line.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from diagnostics.health_checks import HEALTH_CHECKS
from diagnostics.parsers import infiniband, kernel, nccl, nvidia_smi, scheduler, system, train_log
from diagnostics.parsers.common import ParseError, collect_skipped, skipped_summary, to_bool, to_float, to_int
from diagnostics.registry import Param, ParseInput, ParseOutput, ToolSpec
from diagnostics.types import CommandResult, Finding, Severity, Status

# --------------------------------------------------------------------------- thresholds

# Clock event reasons that mean the GPU is held back by something other than idleness or an
# application clock the operator chose (nvml.h bit values).
THROTTLE_REASON_BITS: dict[int, str] = {
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
}
IDLE_BIT = 0x1
# A busy GPU below half its max SM clock is throttled even if no reason bit says so
# (a reason may be unsupported/[N/A] on some boards); 0.5 leaves room for power-capped boost.
CLOCK_RATIO_MIN = 0.5
# Utilisation above which a GPU counts as busy (idle GPUs legitimately drop to ~210 MHz).
BUSY_UTIL_PCT = 10.0
# Applications clocks set more than 10% below max are a misconfiguration that caps the job.
APP_CLOCK_RATIO_MIN = 0.9
# An enforced power limit 5% or more below the board default is a cap someone (or something) set.
POWER_LIMIT_MIN_RATIO = 0.95
# Datacenter GPUs start thermal slowdown around 85-90 C; 85 C gives warning before clocks drop.
TEMP_WARN_C = 85.0
# Xids that mean broken hardware or a dead GPU (NVIDIA Xid catalogue); others are usually app bugs.
CRITICAL_XIDS = frozenset({48, 62, 63, 64, 74, 79, 92, 94, 95, 119, 120, 123, 140})
# Checkpoints of large models are tens of GB: at 90% a filesystem is one checkpoint from full.
DISK_FULL_PCT = 90
INODE_FULL_PCT = 90
# Pseudo and read-only filesystems that are always "100%" (snap squashfs) or not ours to judge.
IGNORED_FS_PREFIXES = ("/dev/loop", "overlay", "devtmpfs", "udev", "efivarfs", "squashfs")
# /dev/shm below 1 GiB free breaks multi-worker data loaders and NCCL's shared-memory transport
# (Docker's 64 MiB default is the classic failure).
SHM_MIN_FREE_MB = 1024.0
# Less than 5% of memory available: the OOM killer is near.
MEM_AVAILABLE_MIN_RATIO = 0.05
# Run queue longer than the CPU count: data loading and NCCL proxy threads starve.
LOAD_PER_CPU_MAX = 1.0
# NTP offsets above 100 ms garble cross-node log correlation and break token/lease checks.
CLOCK_SKEW_MAX_S = 0.1
# On a datacenter fabric ICMP RTT is ~0.05-0.2 ms; above 1 ms something is in the path.
LATENCY_MAX_MS = 1.0
# all_reduce_perf below 60% of the bus bandwidth the hardware model expects is a broken path.
BUSBW_MIN_RATIO = 0.6
# A rank whose local compute takes 30% longer than its node's median is a straggler.
SLOW_RANK_RATIO = 1.3

TRAIN_LOG = "/var/log/clusterdoc/train.log"
GPU_QUERY = "nvidia-smi --query-gpu={fields} --format=csv"
LSPCI_GPUS = "lspci -d 10de::0302"


# --------------------------------------------------------------------------- helpers


def _gpu_param() -> Param:
    return Param("gpu", "int", "GPU index (nvidia-smi numbering); all GPUs when omitted", required=False,
                 min=0, max=63)


_ABSENT_SIGNS = ("command not found", "couldn't communicate with the nvidia driver", "failed to initialize nvml",
                 "no devices were found")


def _only_message(out: CommandResult) -> bool:
    """Whether the tool failed (non-zero exit) or printed nothing but messages of absence: a
    stray line that merely says 'command not found' among real output must not hide the output."""
    if out.exit_code not in (0, None):
        return True
    lines = [ln.lower() for ln in (out.stdout + "\n" + out.stderr).splitlines() if ln.strip()]
    return all(any(sign in ln for sign in _ABSENT_SIGNS) for ln in lines)


def _no_tool(out: CommandResult) -> str | None:
    """Reason the tool or device is absent (-> no_data), or None."""
    text = (out.stdout + out.stderr).lower()
    if out.exit_code == 127:
        return f"{out.command.split()[0] if out.command else 'tool'} not installed on this node"
    if not _only_message(out):
        return None
    if "command not found" in text:
        return f"{out.command.split()[0] if out.command else 'tool'} not installed on this node"
    if "driver/library version mismatch" in text:
        return None  # a real fault, not an absent driver: the parser turns it into status error
    if "couldn't communicate with the nvidia driver" in text or "failed to initialize nvml" in text:
        return "no NVIDIA driver/GPU on this node"
    if "no devices were found" in text:
        return "no NVIDIA GPU on this node"
    return None


def _guard(fn: Callable[[ParseInput], ParseOutput]) -> Callable[[ParseInput], ParseOutput]:
    """Map ParseError to status error and absent tools to no_data; never raise. Lines the parsers
    skipped as not in their tool's format are counted in data (``ignored_lines``, ``ignored_note``)."""

    def parse(inp: ParseInput) -> ParseOutput:
        for out in inp.outputs:
            why = _no_tool(out)
            if why is not None:
                return ParseOutput(Status.NO_DATA, error=why)
        with collect_skipped() as skipped:
            try:
                result = fn(inp)
            except ParseError as exc:
                result = ParseOutput(Status.ERROR, error=str(exc))
        if skipped:
            result.data = {**result.data, **skipped_summary(skipped)}
        return result

    parse.__name__ = getattr(fn, "__name__", "parse")
    parse.__doc__ = fn.__doc__
    return parse


def _result(findings: list[Finding], data: dict[str, Any]) -> ParseOutput:
    return ParseOutput(Status.PROBLEM if findings else Status.OK, findings, data)


def _csv_rows(out: CommandResult) -> nvidia_smi.SmiCsv:
    if out.exit_code not in (0, None) and not out.stdout.strip():
        raise ParseError("nvidia-smi", (out.stderr or out.stdout).strip()[:200] or f"exit code {out.exit_code}")
    return nvidia_smi.parse_query_csv(out.stdout + ("\n" + out.stderr if "device handle" in out.stderr else ""))


def _wanted(inp: ParseInput, index: int) -> bool:
    gpu = inp.params.get("gpu")
    return gpu is None or int(gpu) == index


def _index(row: dict[str, str]) -> int:
    value = to_int(row.get("index"), tool="nvidia-smi", field="index")
    if value is None:
        raise ParseError("nvidia-smi", "row without a GPU index")
    return value


def _selected_rows(inp: ParseInput, csv: nvidia_smi.SmiCsv) -> list[tuple[int, dict[str, str]]]:
    """(GPU index, row) for every row of the GPU the check asked about, or of all GPUs."""
    return [(idx, row) for row in csv.rows if _wanted(inp, idx := _index(row))]


def _lost_findings(host: str, csv: nvidia_smi.SmiCsv) -> list[Finding]:
    return [
        Finding("gpu_fallen_off_bus", host, f"nvidia-smi cannot reach the GPU at PCI {bus} (lost from the bus)",
                severity="critical", data={"pci_bus_id": bus})
        for bus in csv.lost
    ]


def _gpu_data(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"gpus": list(rows)}


# --------------------------------------------------------------------------- GPU checks

_CLOCK_FIELDS = ("index,pci.bus_id,clocks.sm,clocks.max.sm,clocks.applications.graphics,utilization.gpu,"
                 "temperature.gpu,power.limit,power.default_limit,clocks_throttle_reasons.active")


@_guard
def parse_gpu_clocks(inp: ParseInput) -> ParseOutput:
    csv = _csv_rows(inp.outputs[0])
    findings: list[Finding] = _lost_findings(inp.host, csv)
    gpus = []
    for idx, row in _selected_rows(inp, csv):
        sm = to_float(row.get("clocks.sm"), tool="nvidia-smi", field="clocks.sm")
        max_sm = to_float(row.get("clocks.max.sm"), tool="nvidia-smi", field="clocks.max.sm")
        app = to_float(row.get("clocks.applications.gr"), tool="nvidia-smi", field="clocks.applications.graphics")
        util = to_float(row.get("utilization.gpu"), tool="nvidia-smi", field="utilization.gpu")
        temp = to_float(row.get("temperature.gpu"), tool="nvidia-smi", field="temperature.gpu")
        limit = to_float(row.get("power.limit"), tool="nvidia-smi", field="power.limit")
        default = to_float(row.get("power.default_limit"), tool="nvidia-smi", field="power.default_limit")
        mask = to_int(row.get("clocks_event_reasons.active"), tool="nvidia-smi", field="clocks_event_reasons.active")
        reasons = [name for bit, name in THROTTLE_REASON_BITS.items() if mask is not None and mask & bit]
        info = {"gpu": idx, "sm_clock_mhz": sm, "max_sm_clock_mhz": max_sm, "app_clock_mhz": app,
                "util_pct": util, "reasons": reasons, "reason_mask": mask}
        gpus.append(info)
        busy = (util or 0.0) >= BUSY_UTIL_PCT or (mask is not None and not mask & IDLE_BIT)
        low_clock = sm is not None and max_sm and busy and sm < CLOCK_RATIO_MIN * max_sm
        low_app = app is not None and max_sm and app < APP_CLOCK_RATIO_MIN * max_sm
        if not (reasons or low_clock or low_app):
            continue
        if low_app and not reasons and not low_clock:
            reasons = ["applications_clocks_setting"]
        explained_by = None
        if limit is not None and default and limit < POWER_LIMIT_MIN_RATIO * default and set(reasons) <= {"sw_power_cap"}:
            explained_by = "gpu_power_cap"
        elif temp is not None and temp >= TEMP_WARN_C and set(reasons) & {"sw_thermal_slowdown", "hw_thermal_slowdown"}:
            explained_by = "gpu_thermal"
        ratio = (sm / max_sm) if sm is not None and max_sm else None
        severity: Severity = "critical" if ratio is not None and ratio < CLOCK_RATIO_MIN else "warning"
        if explained_by:
            severity = "info"
        text = f"GPU {idx} SM clock {sm:g} of {max_sm:g} MHz" if sm is not None and max_sm else f"GPU {idx} clocks held back"
        text += f" ({', '.join(reasons)})" if reasons else " with no reason reported"
        if explained_by:
            text += f"; explained by {explained_by}"
        findings.append(Finding("gpu_clock_throttle", inp.host, text, gpu=idx, severity=severity,
                                data={**info, "clock_ratio": ratio, "explained_by": explained_by,
                                      "temp_c": temp, "power_limit_w": limit, "default_power_limit_w": default}))
    return _result(findings, _gpu_data(gpus))


@_guard
def parse_gpu_power(inp: ParseInput) -> ParseOutput:
    csv = _csv_rows(inp.outputs[0])
    findings: list[Finding] = _lost_findings(inp.host, csv)
    gpus = []
    for idx, row in _selected_rows(inp, csv):
        draw = to_float(row.get("power.draw"), tool="nvidia-smi", field="power.draw")
        limit = to_float(row.get("enforced.power.limit") or row.get("power.limit"), tool="nvidia-smi", field="power.limit")
        default = to_float(row.get("power.default_limit"), tool="nvidia-smi", field="power.default_limit")
        capped = to_bool(row.get("clocks_event_reasons.sw_power_cap"), tool="nvidia-smi", field="sw_power_cap")
        info = {"gpu": idx, "power_w": draw, "power_limit_w": limit, "default_power_limit_w": default,
                "sw_power_cap": capped}
        gpus.append(info)
        if limit is not None and default and limit < POWER_LIMIT_MIN_RATIO * default:
            findings.append(Finding(
                "gpu_power_cap", inp.host,
                f"GPU {idx} power limit {limit:g} W is below its default {default:g} W"
                + (" and the SW power cap is active" if capped else ""),
                gpu=idx, severity="warning", data=info))
    return _result(findings, _gpu_data(gpus))


@_guard
def parse_gpu_temperature(inp: ParseInput) -> ParseOutput:
    csv = _csv_rows(inp.outputs[0])
    findings: list[Finding] = _lost_findings(inp.host, csv)
    gpus = []
    for idx, row in _selected_rows(inp, csv):
        temp = to_float(row.get("temperature.gpu"), tool="nvidia-smi", field="temperature.gpu")
        mem = to_float(row.get("temperature.memory"), tool="nvidia-smi", field="temperature.memory")
        hw = to_bool(row.get("clocks_event_reasons.hw_thermal_slowdown"), tool="nvidia-smi", field="hw_thermal_slowdown")
        sw = to_bool(row.get("clocks_event_reasons.sw_thermal_slowdown"), tool="nvidia-smi", field="sw_thermal_slowdown")
        info = {"gpu": idx, "temp_c": temp, "memory_temp_c": mem, "hw_thermal_slowdown": hw,
                "sw_thermal_slowdown": sw, "threshold_c": TEMP_WARN_C}
        gpus.append(info)
        if temp is not None and temp >= TEMP_WARN_C:
            slowing = " and thermal slowdown is active" if hw or sw else ""
            findings.append(Finding("gpu_thermal", inp.host, f"GPU {idx} at {temp:g} C (>= {TEMP_WARN_C:g} C){slowing}",
                                    gpu=idx, severity="critical" if hw or sw else "warning", data=info))
    return _result(findings, _gpu_data(gpus))


@_guard
def parse_gpu_ecc(inp: ParseInput) -> ParseOutput:
    csv = _csv_rows(inp.outputs[0])
    findings: list[Finding] = _lost_findings(inp.host, csv)
    gpus = []
    for idx, row in _selected_rows(inp, csv):
        mode = row.get("ecc.mode.current", "")
        sbe = to_int(row.get("ecc.errors.corrected.volatile.total"), tool="nvidia-smi", field="corrected.volatile")
        dbe = to_int(row.get("ecc.errors.uncorrected.volatile.total"), tool="nvidia-smi", field="uncorrected.volatile")
        agg = to_int(row.get("ecc.errors.uncorrected.aggregate.total"), tool="nvidia-smi", field="uncorrected.aggregate")
        info = {"gpu": idx, "ecc_mode": mode, "sbe_volatile": sbe, "dbe_volatile": dbe, "dbe_aggregate": agg}
        gpus.append(info)
        if dbe:
            findings.append(Finding("gpu_ecc_uncorrectable", inp.host,
                                    f"GPU {idx} has {dbe} uncorrectable (double-bit) ECC error(s) since the last reset",
                                    gpu=idx, severity="critical", data=info))
    return _result(findings, _gpu_data(gpus))


@_guard
def parse_gpu_row_remap(inp: ParseInput) -> ParseOutput:
    remap_out, index_out = inp.outputs[0], inp.outputs[1]
    not_supported = any(ln.strip() in ("[Not Supported]", "Not Supported") for ln in remap_out.stdout.splitlines())
    try:
        remap = _csv_rows(remap_out)
    except ParseError:
        if not not_supported:
            raise
        remap = None
    if remap is None or (not_supported and not remap.rows and not remap.lost):
        return ParseOutput(Status.NO_DATA, error="row remapping not supported on this GPU (no HBM)")
    index_rows = _csv_rows(index_out).rows
    if any("pci.bus_id" not in r for r in index_rows):
        raise ParseError("nvidia-smi", "index/bus-id table has no pci.bus_id column (header line missing?)")
    by_bus = {nvidia_smi.bus_key(r["pci.bus_id"]): _index(r) for r in index_rows}
    findings: list[Finding] = _lost_findings(inp.host, remap)
    gpus = []
    for row in remap.rows:
        bus = row.get("pci.bus_id", "")
        idx = by_bus.get(nvidia_smi.bus_key(bus))
        if idx is None:
            raise ParseError("nvidia-smi", f"remapped-rows line for unknown bus {bus!r}")
        if not _wanted(inp, idx):
            continue
        pending = to_bool(row.get("remapped_rows.pending"), tool="nvidia-smi", field="remapped_rows.pending")
        failure = to_bool(row.get("remapped_rows.failure"), tool="nvidia-smi", field="remapped_rows.failure")
        unc = to_int(row.get("remapped_rows.uncorrectable"), tool="nvidia-smi", field="remapped_rows.uncorrectable")
        cor = to_int(row.get("remapped_rows.correctable"), tool="nvidia-smi", field="remapped_rows.correctable")
        info = {"gpu": idx, "pci_bus_id": bus, "pending": pending, "failure": failure,
                "uncorrectable_rows": unc, "correctable_rows": cor}
        gpus.append(info)
        if pending or failure:
            what = "row remapping FAILED (GPU needs replacement)" if failure else "row remapping pending (GPU reset needed)"
            findings.append(Finding("gpu_row_remap_pending", inp.host, f"GPU {idx}: {what}", gpu=idx,
                                    severity="critical", data=info))
    return _result(findings, _gpu_data(gpus))


def _gpu_order(lspci_out: CommandResult) -> dict[str, int]:
    """PCI bus -> nvidia-smi index: nvidia-smi enumerates GPUs in PCI bus order."""
    devices = kernel.parse_lspci(lspci_out.stdout) if lspci_out.exit_code == 0 else []
    buses = sorted(nvidia_smi.bus_key(d.address) for d in devices)
    return {b: i for i, b in enumerate(buses)}


@_guard
def parse_gpu_xid(inp: ParseInput) -> ParseOutput:
    log = inp.outputs[0]
    if log.exit_code not in (0, None) and not log.stdout.strip():
        raise ParseError("dmesg", (log.stderr or "").strip()[:200] or f"exit code {log.exit_code}")
    events = kernel.parse_xids(log.stdout)
    order = _gpu_order(inp.outputs[1]) if len(inp.outputs) > 1 else {}
    grouped: dict[tuple[str, int], list[kernel.XidEvent]] = {}
    for ev in events:
        grouped.setdefault((nvidia_smi.bus_key(ev.bus), ev.xid), []).append(ev)
    findings = []
    for (bus, xid), evs in grouped.items():
        idx = order.get(bus)
        if inp.params.get("gpu") is not None and idx != inp.params["gpu"]:
            continue
        last = evs[-1]
        kind = "gpu_fallen_off_bus" if xid == 79 else "gpu_xid"
        severity: Severity = "critical" if xid in CRITICAL_XIDS else "warning"
        where = f"GPU {idx}" if idx is not None else f"GPU at PCI {last.bus}"
        findings.append(Finding(kind, inp.host, f"{where}: Xid {xid} x{len(evs)} ({last.message[:120]})", gpu=idx,
                                severity=severity,
                                data={"xid": xid, "count": len(evs), "pci_bus": last.bus, "message": last.message,
                                      "last_seen": last.stamp, "process": last.process}))
    return _result(findings, {"xid_events": len(events)})


@_guard
def parse_gpu_pcie(inp: ParseInput) -> ParseOutput:
    csv = _csv_rows(inp.outputs[0])
    findings: list[Finding] = _lost_findings(inp.host, csv)
    gpus = []
    for idx, row in _selected_rows(inp, csv):
        gen = to_int(row.get("pcie.link.gen.current"), tool="nvidia-smi", field="pcie.link.gen.current")
        gen_max = to_int(row.get("pcie.link.gen.max"), tool="nvidia-smi", field="pcie.link.gen.max")
        width = to_int(row.get("pcie.link.width.current"), tool="nvidia-smi", field="pcie.link.width.current")
        width_max = to_int(row.get("pcie.link.width.max"), tool="nvidia-smi", field="pcie.link.width.max")
        util = to_float(row.get("utilization.gpu"), tool="nvidia-smi", field="utilization.gpu")
        info = {"gpu": idx, "gen": gen, "gen_max": gen_max, "width": width, "width_max": width_max, "util_pct": util}
        gpus.append(info)
        narrow = width is not None and width_max is not None and width < width_max
        # idle GPUs drop their link generation to save power; only a busy GPU's gen counts
        slow = gen is not None and gen_max is not None and gen < gen_max and (util or 0) >= BUSY_UTIL_PCT
        if narrow or slow:
            findings.append(Finding("pcie_downgrade", inp.host,
                                    f"GPU {idx} PCIe link at Gen{gen} x{width}, capable of Gen{gen_max} x{width_max}",
                                    gpu=idx, severity="warning", data=info))
    return _result(findings, _gpu_data(gpus))


@_guard
def parse_gpu_nvlink(inp: ParseInput) -> ParseOutput:
    out = inp.outputs[0]
    if out.exit_code not in (0, None) and not out.stdout.strip():
        raise ParseError("nvidia-smi nvlink", (out.stderr or "").strip()[:200] or f"exit code {out.exit_code}")
    links = nvidia_smi.parse_nvlink_status(out.stdout)
    if not any(links.values()):
        return ParseOutput(Status.NO_DATA, data={"gpus": len(links)}, error="no NVLink links on this node's GPUs")
    findings = []
    for idx, states in links.items():
        if inp.params.get("gpu") is not None and idx != inp.params["gpu"]:
            continue
        down = sorted(link for link, speed in states.items() if speed is None)
        if down:
            findings.append(Finding("nvlink_down", inp.host,
                                    f"GPU {idx} NVLink link(s) {', '.join(map(str, down))} inactive "
                                    f"({len(states) - len(down)} of {len(states)} up)",
                                    gpu=idx, severity="critical",
                                    data={"gpu": idx, "inactive_links": down, "links": len(states),
                                          "link": down[0]}))
    return _result(findings, {"links": {str(k): {str(li): s for li, s in v.items()} for k, v in links.items()}})


@_guard
def parse_gpu_count(inp: ParseInput) -> ParseOutput:
    smi, pci = inp.outputs[0], inp.outputs[1]
    listed, lost = nvidia_smi.parse_list(smi.stdout + "\n" + smi.stderr) if smi.stdout.strip() or smi.stderr.strip() else ([], [])
    devices = kernel.parse_lspci(pci.stdout) if pci.exit_code == 0 else []
    order = {nvidia_smi.bus_key(d.address): i for i, d in enumerate(sorted(devices, key=lambda d: nvidia_smi.bus_key(d.address)))}
    expected = inp.params.get("expected")
    if expected is None:
        expected = len(devices) if devices else None
    if expected is None:
        return ParseOutput(Status.NO_DATA, data={"visible": len(listed)},
                           error="cannot tell how many GPUs to expect (no lspci; pass expected)")
    visible = len(listed)
    lost_idx = sorted({order[b] for b in (nvidia_smi.bus_key(x) for x in lost) if b in order}
                      | {order[nvidia_smi.bus_key(d.address)] for d in devices if d.lost})
    data = {"visible": visible, "expected": expected, "lost_gpus": lost_idx,
            "pci_devices": len(devices), "gpus": listed}
    if visible >= expected:
        return ParseOutput(Status.OK, data=data)
    findings = []
    if lost_idx:
        for idx in lost_idx:
            findings.append(Finding("gpu_fallen_off_bus", inp.host,
                                    f"GPU {idx} is missing: {visible} of {expected} GPUs visible to nvidia-smi",
                                    gpu=idx, severity="critical", data=data))
    else:
        findings.append(Finding("gpu_fallen_off_bus", inp.host, f"only {visible} of {expected} GPUs visible",
                                severity="critical", data=data))
    return _result(findings, data)


@_guard
def parse_gpu_persistence(inp: ParseInput) -> ParseOutput:
    csv = _csv_rows(inp.outputs[0])
    findings: list[Finding] = []
    gpus = []
    for row in csv.rows:
        idx = _index(row)
        if not _wanted(inp, idx):
            continue
        on = to_bool(row.get("persistence_mode"), tool="nvidia-smi", field="persistence_mode")
        gpus.append({"gpu": idx, "persistence_mode": on})
        if on is False:
            findings.append(Finding("persistence_mode_off", inp.host,
                                    f"GPU {idx} persistence mode is off (driver reloads between jobs, slow starts)",
                                    gpu=idx, severity="info", data={"gpu": idx}))
    return _result(findings, _gpu_data(gpus))


# --------------------------------------------------------------------------- network


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
    data = {"peak_busbw_gbs": peak, "avg_busbw_gbs": result.avg_busbw_gbs, "n_gpus": n, "gpu": gpu_name,
            "expected_busbw_gbs": model, "threshold_gbs": threshold,
            "rows": [{"size": r.size_bytes, "busbw_gbs": r.busbw_gbs} for r in result.rows]}
    if threshold is None:
        return ParseOutput(Status.OK, data=data, error="no expected bandwidth known for this GPU; pass min_busbw_gbs")
    if result.errors or any(r.wrong for r in result.rows):
        return _result([Finding("low_bus_bandwidth", inp.host, "all_reduce_perf reported errors or wrong results",
                                severity="critical", data=data)], data)
    if peak < threshold:
        return _result([Finding("low_bus_bandwidth", inp.host,
                                f"all-reduce bus bandwidth {peak:.1f} GB/s, expected >= {threshold:.1f} GB/s",
                                severity="warning", data=data)], data)
    return ParseOutput(Status.OK, data=data)


# --------------------------------------------------------------------------- storage, memory, system


def _pseudo(fs: str) -> bool:
    return fs.startswith(IGNORED_FS_PREFIXES) or fs == "tmpfs"


@_guard
def parse_disk_usage(inp: ParseInput) -> ParseOutput:
    _u, blocks = system.parse_df(inp.outputs[0].stdout)
    _iu, inodes = system.parse_df(inp.outputs[1].stdout) if len(inp.outputs) > 1 else ("", [])
    inode_pct = {r.mount: r.use_pct for r in inodes}
    mount = inp.params.get("mount")
    findings = []
    rows = []
    for r in blocks:
        if _pseudo(r.filesystem) or (mount and r.mount != mount):
            continue
        ipct = inode_pct.get(r.mount)
        info = {"mount": r.mount, "filesystem": r.filesystem, "used_pct": r.use_pct, "inodes_used_pct": ipct}
        rows.append(info)
        if r.use_pct is not None and r.use_pct >= DISK_FULL_PCT:
            findings.append(Finding("disk_full", inp.host, f"{r.mount} is {r.use_pct}% full",
                                    severity="critical" if r.use_pct >= 97 else "warning", data=info))
        elif ipct is not None and ipct >= INODE_FULL_PCT:
            findings.append(Finding("disk_full", inp.host, f"{r.mount} has used {ipct}% of its inodes",
                                    severity="warning", data=info))
    if mount and not rows:
        return ParseOutput(Status.NO_DATA, error=f"no filesystem mounted at {mount}")
    return _result(findings, {"filesystems": rows})


@_guard
def parse_shm_size(inp: ParseInput) -> ParseOutput:
    unit, rows = system.parse_df(inp.outputs[0].stdout)
    row = next((r for r in rows if r.mount == "/dev/shm"), None)
    if row is None:
        return ParseOutput(Status.NO_DATA, error="/dev/shm is not mounted")
    scale = 1.0 if unit.startswith("1M") else (1 / 1024 if unit.startswith("1024") or unit.startswith("1K") else 1 / 1024 / 1024)
    size_mb, free_mb = row.total * scale, row.available * scale
    data = {"size_mb": round(size_mb, 1), "available_mb": round(free_mb, 1), "used_pct": row.use_pct,
            "threshold_mb": SHM_MIN_FREE_MB}
    if free_mb < SHM_MIN_FREE_MB:
        why = "is only" if size_mb < SHM_MIN_FREE_MB else "has only"
        text = (f"/dev/shm {why} {size_mb:.0f} MB" if size_mb < SHM_MIN_FREE_MB
                else f"/dev/shm {why} {free_mb:.0f} MB free of {size_mb:.0f} MB ({row.use_pct}% used, stale segments?)")
        return _result([Finding("shm_too_small", inp.host, text, severity="warning", data=data)], data)
    return ParseOutput(Status.OK, data=data)


@_guard
def parse_memory_oom(inp: ParseInput) -> ParseOutput:
    mem = system.parse_free(inp.outputs[0].stdout)
    log = inp.outputs[1] if len(inp.outputs) > 1 else None
    kills = kernel.parse_ooms(log.stdout) if log is not None else []
    data = {"total_mb": mem.total, "used_mb": mem.used, "available_mb": mem.available,
            "oom_kills": [{"pid": k.pid, "process": k.process, "when": k.stamp} for k in kills]}
    findings = [
        Finding("host_oom", inp.host, f"OOM killer killed {k.process} (pid {k.pid})" + (f" at {k.stamp}" if k.stamp else ""),
                severity="critical", data={"pid": k.pid, "process": k.process, "when": k.stamp})
        for k in kills
    ]
    if mem.available is not None and mem.total and mem.available < MEM_AVAILABLE_MIN_RATIO * mem.total:
        findings.append(Finding("host_oom", inp.host, f"only {mem.available} of {mem.total} MB memory available",
                                severity="warning", data={"available_mb": mem.available, "total_mb": mem.total}))
    return _result(findings, data)


@_guard
def parse_cpu_load(inp: ParseInput) -> ParseOutput:
    l1, l5, l15 = system.parse_loadavg(inp.outputs[0].stdout)
    ncpu = system.parse_nproc(inp.outputs[1].stdout)
    procs = system.parse_ps(inp.outputs[2].stdout) if len(inp.outputs) > 2 and inp.outputs[2].stdout.strip() else []
    top = [{"pid": p.pid, "user": p.user, "cpu_pct": p.cpu_pct, "command": p.command} for p in procs[:5]]
    data = {"load1": l1, "load5": l5, "load15": l15, "cpus": ncpu, "load_per_cpu": l1 / ncpu, "top": top}
    if l1 / ncpu > LOAD_PER_CPU_MAX:
        hog = next((p for p in procs if p.user != "train" and p.command not in ("python", "python3", "torchrun")), None)
        text = f"load average {l1:.1f} on {ncpu} CPUs ({l1 / ncpu:.1f} per CPU)"
        if hog:
            text += f"; top non-job process: {hog.command} (pid {hog.pid}, {hog.cpu_pct:g}% CPU)"
        return _result([Finding("cpu_overload", inp.host, text, severity="warning",
                                data={**data, "hog": hog.command if hog else None})], data)
    return ParseOutput(Status.OK, data=data)


@_guard
def parse_cpu_governor(inp: ParseInput) -> ParseOutput:
    out = inp.outputs[0]
    if out.exit_code not in (0, None) and not out.stdout.strip():
        return ParseOutput(Status.NO_DATA, error="no cpufreq scaling governor (virtual machine or cpufreq disabled)")
    counts = system.parse_governors(out.stdout)
    data = {"governors": counts}
    if counts.get("powersave"):
        return _result([Finding("cpu_governor_powersave", inp.host,
                                f"{counts['powersave']} of {sum(counts.values())} CPUs use the powersave governor",
                                severity="warning", data=data)], data)
    return ParseOutput(Status.OK, data=data)


@_guard
def parse_clock_sync(inp: ParseInput) -> ParseOutput:
    t = system.parse_chronyc_tracking(inp.outputs[0].stdout)
    data = {"offset_s": t.offset_s, "leap_status": t.leap_status, "stratum": t.stratum, "reference": t.reference,
            "threshold_s": CLOCK_SKEW_MAX_S}
    unsynced = t.leap_status.lower().startswith("not sync")
    if abs(t.offset_s) > CLOCK_SKEW_MAX_S or unsynced:
        text = f"clock {abs(t.offset_s):.3f} s {'ahead of' if t.offset_s >= 0 else 'behind'} NTP time"
        if unsynced:
            text += " and not synchronised"
        return _result([Finding("clock_skew", inp.host, text, severity="warning", data=data)], data)
    return ParseOutput(Status.OK, data=data)


@_guard
def parse_versions(inp: ParseInput) -> ParseOutput:
    smi, libs = inp.outputs[0], inp.outputs[1]
    v = nvidia_smi.parse_version(smi.stdout)
    nccl_version = None
    for line in libs.stdout.split():
        name = line.strip().rsplit("/", 1)[-1]
        if name.startswith("libnccl.so.") and name.count(".") >= 4:
            nccl_version = name[len("libnccl.so."):]
    data: dict[str, Any] = {"driver": v.get("driver"), "cuda": v.get("cuda"), "nccl": nccl_version}
    findings = []
    if len(inp.outputs) > 2 and inp.outputs[2].exit_code == 0:
        kmod = inp.outputs[2].stdout.split("Kernel Module", 1)
        if len(kmod) == 2 and kmod[1].split():
            data["kernel_module"] = kmod[1].split()[0]
            if data["driver"] and data["kernel_module"] != data["driver"]:
                findings.append(Finding("driver_mismatch", inp.host,
                                        f"kernel module {data['kernel_module']} != user-space driver {data['driver']} "
                                        "(Driver/library version mismatch; reboot or reload the module)",
                                        severity="critical", data=dict(data)))
    return _result(findings, data)


_UPTIME = re.compile(r"\bup\b.*\bload averages?: [\d.,]+")


@_guard
def parse_reachability(inp: ParseInput) -> ParseOutput:
    # the node answered: that is the result; only uptime's own line is kept as data (a motd or any
    # other line a node prints must not reach the agent as if it were uptime's)
    lines = [ln.strip() for ln in inp.outputs[0].stdout.splitlines() if ln.strip()]
    uptime = next((ln for ln in lines if _UPTIME.search(ln)), "")
    data: dict[str, Any] = {"uptime": uptime}
    if len(lines) > (1 if uptime else 0):
        data.update(skipped_summary([("uptime", no) for no, ln in enumerate(lines, 1) if ln != uptime]))
    return ParseOutput(Status.OK, data=data)


@_guard
def parse_job_step_times(inp: ParseInput) -> ParseOutput:
    out = inp.outputs[0]
    if out.exit_code not in (0, None):
        return ParseOutput(Status.NO_DATA, error=f"no training log on this node: {out.stderr.strip()[:120]}")
    records, errors = train_log.parse_step_log(out.stdout)
    if not records:
        return ParseOutput(Status.NO_DATA, data={"errors": errors[-5:]}, error="no step records in the log")
    last_step = max(r.step for r in records)
    latest = [r for r in records if r.step == last_step]
    per_rank = {str(r.rank): r.step_time_s for r in latest}
    compute = {str(r.rank): r.compute_s for r in latest if r.compute_s is not None}
    data: dict[str, Any] = {"step": last_step, "step_time_s": statistics.median(per_rank.values()),
                            "rank_step_time_s": per_rank, "rank_compute_s": compute, "errors": errors[-5:],
                            "ranks": {str(r.rank): {"host": r.host, "gpu": r.local_rank} for r in latest}}
    findings = []
    if len(compute) >= 2:
        median = statistics.median(compute.values())
        for r in latest:
            if r.compute_s is not None and median > 0 and r.compute_s > SLOW_RANK_RATIO * median:
                findings.append(Finding("slow_rank", inp.host,
                                        f"rank {r.rank} (GPU {r.local_rank}) computes in {r.compute_s:.3f} s vs "
                                        f"median {median:.3f} s ({r.compute_s / median:.1f}x)",
                                        gpu=r.local_rank, severity="critical",
                                        data={"rank": r.rank, "compute_s": r.compute_s, "median_compute_s": median,
                                              "ratio": r.compute_s / median, "step_time_s": r.step_time_s}))
    for line in errors[-3:]:
        kind = "disk_full" if "No space left" in line else "job_error"
        findings.append(Finding(kind, inp.host, line[:200], severity="warning", data={"log_line": line[:500]}))
    return _result(findings, data)


@_guard
def parse_node_state(inp: ParseInput) -> ParseOutput:
    out = inp.outputs[0]
    text = out.stdout.strip()
    if text.startswith("scheduler: none"):
        return ParseOutput(Status.NO_DATA, error="no scheduler configured")
    if out.exit_code not in (0, None):
        raise ParseError("scheduler", (out.stderr or out.stdout).strip()[:200] or f"exit code {out.exit_code}")
    tool = out.command.split()[0] if out.command.split() else ""
    kubectl = tool == "kubectl" or (tool != "sinfo" and scheduler.looks_like_kubectl(text))
    nodes = scheduler.parse_kubectl_nodes(text) if kubectl else scheduler.parse_sinfo_nodes(text)
    n = nodes[0]
    data = {"node": n.name, "state": n.state, "raw_state": n.raw_state, "reason": n.reason}
    # a drain reason (passed on from drain_node) means the node must now be drained
    expect = inp.params.get("expect") or ("drained" if inp.params.get("reason") else "schedulable")
    ok = n.state in ("drained", "draining") if expect == "drained" else n.state == "schedulable"
    if ok:
        return ParseOutput(Status.OK, data=data)
    if n.state in ("drained", "draining"):
        kind, text2 = "node_drained", f"{n.name} is {n.raw_state} ({n.reason or 'no reason'})"
    elif n.state == "down":
        kind, text2 = "node_down", f"{n.name} is {n.raw_state} in the scheduler"
    else:
        kind, text2 = "node_schedulable", f"{n.name} is {n.raw_state}, expected {expect}"
    return _result([Finding(kind, inp.host, text2, severity="info", data=data)], data)


@_guard
def parse_service_status(inp: ParseInput) -> ParseOutput:
    states = system.parse_is_active(inp.outputs[0].stdout)
    service = inp.params.get("service")
    data = {"service": service, "state": states[0]}
    if states[0] == "active":
        return ParseOutput(Status.OK, data=data)
    return _result([Finding("service_down", inp.host, f"service {service} is {states[0]}", severity="warning",
                            data=data)], data)


# --------------------------------------------------------------------------- declarations

SERVICES = ("nvidia-persistenced", "nvidia-fabricmanager", "nvidia-dcgm", "dcgm", "nv-hostengine", "chronyd",
            "chrony", "slurmd", "kubelet", "containerd", "docker", "openibd", "sshd")
_PROCESS_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,63}"
_HOST_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,252}"
_MOUNT_PATTERN = r"/[A-Za-z0-9_./-]{0,200}"


def _check(name: str, description: str, category: Any, level: Any, params: tuple[Param, ...],
           commands: tuple[str, ...], parse: Callable[[ParseInput], ParseOutput], **kw: Any) -> ToolSpec:
    return ToolSpec(name=name, description=description, category=category, level=level, kind="read_only",
                    params=params, commands=commands, parse=parse, **kw)


CHECKS: tuple[ToolSpec, ...] = (
    _check("gpu_clocks", "SM clock vs max, applications clocks and active clock event (throttle) reasons per GPU; "
           "finds gpu_clock_throttle", "compute", "quick", (_gpu_param(),),
           (GPU_QUERY.format(fields=_CLOCK_FIELDS),), parse_gpu_clocks),
    _check("gpu_power", "Power draw, enforced power limit vs the board default, SW power cap; finds gpu_power_cap",
           "compute", "quick", (_gpu_param(),),
           (GPU_QUERY.format(fields="index,power.draw,power.limit,enforced.power.limit,power.default_limit,"
                                    "power.max_limit,clocks_throttle_reasons.sw_power_cap"),), parse_gpu_power),
    _check("gpu_temperature", "GPU and HBM temperature and thermal slowdown flags; finds gpu_thermal", "compute", "quick",
           (_gpu_param(),),
           (GPU_QUERY.format(fields="index,temperature.gpu,temperature.memory,"
                                    "clocks_throttle_reasons.hw_thermal_slowdown,"
                                    "clocks_throttle_reasons.sw_thermal_slowdown"),), parse_gpu_temperature),
    _check("gpu_ecc", "Volatile and aggregate ECC error counts; finds gpu_ecc_uncorrectable", "memory", "quick",
           (_gpu_param(),),
           (GPU_QUERY.format(fields="index,pci.bus_id,ecc.mode.current,ecc.errors.corrected.volatile.total,"
                                    "ecc.errors.uncorrected.volatile.total,ecc.errors.uncorrected.aggregate.total"),),
           parse_gpu_ecc),
    _check("gpu_row_remap", "HBM row remapping: pending remaps (need a GPU reset) and remap failures; finds "
           "gpu_row_remap_pending", "memory", "quick", (_gpu_param(),),
           ("nvidia-smi --query-remapped-rows=gpu_bus_id,remapped_rows.correctable,remapped_rows.uncorrectable,"
            "remapped_rows.pending,remapped_rows.failure --format=csv",
            GPU_QUERY.format(fields="index,pci.bus_id")), parse_gpu_row_remap),
    _check("gpu_xid", "NVIDIA Xid errors in the kernel log (dmesg), mapped to GPU indices; finds gpu_xid "
           "(data.xid) and gpu_fallen_off_bus (Xid 79)", "compute", "quick", (_gpu_param(),),
           ("dmesg -T", LSPCI_GPUS), parse_gpu_xid),
    _check("gpu_pcie", "PCIe link generation and width vs the GPU's maximum; finds pcie_downgrade", "compute", "quick",
           (_gpu_param(),),
           (GPU_QUERY.format(fields="index,pci.bus_id,pcie.link.gen.current,pcie.link.gen.max,"
                                    "pcie.link.width.current,pcie.link.width.max,utilization.gpu"),), parse_gpu_pcie),
    _check("gpu_nvlink", "State of every NVLink link per GPU; finds nvlink_down", "network", "quick", (_gpu_param(),),
           ("nvidia-smi nvlink --status",), parse_gpu_nvlink),
    _check("gpu_count", "GPUs visible to the driver vs present on the PCI bus (or `expected`); finds gpu_fallen_off_bus",
           "compute", "quick",
           (Param("expected", "int", "GPUs the node should have; default: the NVIDIA GPUs lspci lists", required=False,
                  min=0, max=64),),
           ("nvidia-smi -L", LSPCI_GPUS), parse_gpu_count),
    _check("gpu_persistence", "Persistence mode per GPU; finds persistence_mode_off", "compute", "quick",
           (_gpu_param(),), (GPU_QUERY.format(fields="index,persistence_mode"),), parse_gpu_persistence),
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
    _check("disk_usage", "Space and inode use of every real filesystem (df); finds disk_full", "storage", "quick",
           (Param("mount", "str", "only this mount point", required=False, pattern=_MOUNT_PATTERN),),
           ("df -P", "df -P -i"), parse_disk_usage),
    _check("shm_size", "Size and free space of /dev/shm; finds shm_too_small", "storage", "quick", (),
           ("df -P -m /dev/shm",), parse_shm_size),
    _check("memory_oom", "Free memory and OOM-killer kills in the kernel log; finds host_oom", "memory", "quick", (),
           ("free -m", "dmesg -T"), parse_memory_oom),
    _check("cpu_load", "Load average per CPU and the busiest processes; finds cpu_overload", "system", "quick", (),
           ("cat /proc/loadavg", "nproc", "ps -eo pid,user,pcpu,pmem,comm --sort=-pcpu"), parse_cpu_load),
    _check("cpu_governor", "CPU frequency scaling governor of every CPU; finds cpu_governor_powersave", "system",
           "quick", (), ("cat /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor",), parse_cpu_governor),
    _check("clock_sync", "NTP synchronisation and offset (chronyc tracking); finds clock_skew", "system", "quick", (),
           ("chronyc tracking",), parse_clock_sync),
    _check("versions", "NVIDIA driver, CUDA and NCCL versions (compared across nodes: driver_mismatch); also the "
           "kernel module vs user-space driver", "system", "quick", (),
           ("nvidia-smi --version", "ls /usr/lib/x86_64-linux-gnu/libnccl.so.*", "cat /proc/driver/nvidia/version"),
           parse_versions),
    _check("reachability", "Whether the node answers at all (a timeout or refusal means node_unreachable)", "system",
           "quick", (), ("uptime",), parse_reachability, timeout_s=15.0),
    _check("job_step_times", "Per-rank step and compute times of the training job from its log; finds slow_rank",
           "job", "quick",
           (Param("path", "str", "the job's step log", required=False, default=TRAIN_LOG, pattern=_MOUNT_PATTERN),),
           ("tail -n 400 {path}",), parse_job_step_times),
    _check("node_state", "The node's state in the scheduler (Slurm sinfo / Kubernetes node); finds node_drained "
           "when it should be schedulable, or node_schedulable when it should be drained (expect=drained or a "
           "reason given)", "job", "quick",
           (Param("expect", "choice", "the state the node should be in (default: schedulable, or drained when "
                  "a drain reason is given)", required=False, choices=("schedulable", "drained")),
            Param("reason", "str", "the drain reason drain_node recorded; implies expect=drained", required=False,
                  pattern=r"[A-Za-z0-9 _.,:/@#()+=-]{1,120}")),
           ("echo 'scheduler: none'",), parse_node_state,
           commands_by_scheduler={
               "slurm": ('sinfo -h -N -n "$(hostname -s)" -o "%N %T %E"',),
               "kubernetes": ('kubectl get node "$(hostname -s)" --no-headers',),
               "none": ("echo 'scheduler: none'",),
           }),
    _check("service_status", "Whether a systemd service is active; finds service_down", "system", "medium",
           (Param("service", "choice", "the systemd unit", choices=SERVICES),),
           ("systemctl is-active {service}",), parse_service_status),
)

CHECKS = CHECKS + HEALTH_CHECKS
CHECKS_BY_NAME: dict[str, ToolSpec] = {c.name: c for c in CHECKS}
