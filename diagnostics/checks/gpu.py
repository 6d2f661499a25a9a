"""GPU checks: clocks, power, temperature, ECC, row remapping, Xid, PCIe, NVLink, GPU count,
persistence mode. Thresholds of these checks live here."""

from __future__ import annotations

from diagnostics.checks._common import (
    GPU_QUERY,
    LSPCI_GPUS,
    _check,
    _csv_rows,
    _gpu_data,
    _gpu_param,
    _guard,
    _index,
    _lost_findings,
    _result,
    _selected_rows,
    _wanted,
)
from diagnostics.parsers import kernel, nvidia_smi
from diagnostics.parsers.common import ParseError, to_bool, to_float, to_int
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
    # 'fallen off the bus' messages the driver prints without (or before) an Xid 79 line
    with_xid79 = {bus for bus, xid in grouped if xid == 79}
    fallen: dict[str, list[kernel.FallenOffBus]] = {}
    for fe in kernel.parse_fallen_off_bus(log.stdout):
        fallen.setdefault(nvidia_smi.bus_key(fe.bus), []).append(fe)
    for bus, fes in fallen.items():
        idx = order.get(bus)
        if bus in with_xid79 or (inp.params.get("gpu") is not None and idx != inp.params["gpu"]):
            continue
        last_fe = fes[-1]
        where = f"GPU {idx}" if idx is not None else f"GPU at PCI {last_fe.bus}"
        findings.append(Finding("gpu_fallen_off_bus", inp.host,
                                f"{where} has fallen off the bus (driver message, no Xid 79 line) x{len(fes)}",
                                gpu=idx, severity="critical",
                                data={"xid": None, "count": len(fes), "pci_bus": last_fe.bus, "pci_id": last_fe.pci_id,
                                      "message": "fallen off the bus and is not responding to commands",
                                      "last_seen": last_fe.stamp, "process": None}))
    return _result(findings, {"xid_events": len(events), "fallen_off_bus_events": sum(map(len, fallen.values()))})


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
    report = nvidia_smi.parse_nvlink(out.stdout)
    links = report.links
    findings = []
    # 'Unable to retrieve NVLink information as all links are inActive': a GPU whose NVLinks are all
    # down - a fault where NVLink is expected (other GPUs have links up, or an SXM/HGX board), the
    # normal state of a PCIe card without a bridge
    others_up = any(links[i] for i in links if i not in report.all_inactive)
    for idx in report.all_inactive:
        if inp.params.get("gpu") is not None and idx != inp.params["gpu"]:
            continue
        name = report.names.get(idx, "")
        if others_up or nvidia_smi.expects_nvlink(name):
            findings.append(Finding("nvlink_down", inp.host,
                                    f"GPU {idx} ({name}): all NVLink links inactive (NVML cannot read any link)",
                                    gpu=idx, severity="critical",
                                    data={"gpu": idx, "inactive_links": [], "links": 0, "link": None,
                                          "all_inactive": True, "name": name}))
    if not any(links.values()) and not findings:
        if report.all_inactive:
            names = sorted({report.names.get(i, "") for i in report.all_inactive})
            return ParseOutput(Status.NO_DATA, data={"gpus": len(links), "all_inactive": report.all_inactive},
                               error=f"NVML reports all NVLink links inactive on GPU(s) "
                                     f"{', '.join(map(str, report.all_inactive))} ({', '.join(names)}): PCIe boards "
                                     "without an NVLink bridge have none")
        return ParseOutput(Status.NO_DATA, data={"gpus": len(links)}, error="no NVLink links on this node's GPUs")
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
    return _result(findings, {"links": {str(k): {str(li): s for li, s in v.items()} for k, v in links.items()},
                              "all_inactive": report.all_inactive})


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



GPU_CHECKS: tuple[ToolSpec, ...] = (
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
)
