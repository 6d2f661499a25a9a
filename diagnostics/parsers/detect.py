"""Read command output a user pasted in chat: recognise which tool printed it, run that tool's
parser and say what a person reading it would see.

``read_pasted(text)`` returns one ``PastedReading`` per tool recognised in the text (a paste may
hold several: an nccl-tests run followed by `nvidia-smi topo -m`), each with a one-line summary,
the anomalies found (``PastedFinding``: message, severity, and where known the GPU index and the
device - PCI bus id, HCA/port, mount point, node) and how many of the paste's lines were not in
that tool's format. It never raises: binary garbage, ANSI escapes, CRLF, markdown fences, prompts
and chatter are taken in stride, and input beyond 10 MB is cut (the summaries say so).

Recognised: the default `nvidia-smi` table, `nvidia-smi -q` (full or an excerpt), `--query-gpu`
CSV, `nvidia-smi -L`, `nvidia-smi topo -m`, `nvidia-smi nvlink -s`, the kernel log (dmesg,
journalctl -k, syslog: Xid, fallen off the bus, OOM kills), `ibstat`, `ibv_devinfo`, `df`, `free`,
nccl-tests output, `chronyc tracking`, `sinfo`, `scontrol show node`, `kubectl describe node` and
`lspci`; and through ``readers``: perfquery / ibportstate, ibqueryerrors, `rdma link`, `ethtool -S`,
`ip -s link`, `lspci -vv` link status, `dcgmi diag` / `discovery` / errors, kernel hardware errors
(AER, EDAC, machine checks, APEI, GPU lost), EDAC sysfs counters, `ras-mc-ctl`, `nvlink -e`,
`nvidia-smi -q -x`, failed systemd units, `kubectl get node -o yaml`, `sinfo -R`, `squeue`,
`chronyc sources` and `stat -f`. Thresholds are the checks' (diagnostics.checks,
diagnostics.health_checks), so a paste and a check agree.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from diagnostics.parsers import infiniband, kernel, nccl, nvidia_smi, readers, scheduler, system
from diagnostics.parsers.common import ParseError, clean, collect_skipped, is_na, to_float
from diagnostics.parsers.pasted import MAX_FINDINGS, PastedFinding, PastedReading, Reader, Severity, plural

# A paste beyond this many characters is cut (10 MB of text); the summaries say so.
MAX_PASTE_CHARS = 10 * 1024 * 1024
_CUT_NOTE = " (input cut at 10 MB; the rest was not read)"

__all__ = ["MAX_FINDINGS", "MAX_PASTE_CHARS", "PastedFinding", "PastedReading", "Reader", "Severity", "read_pasted"]


# --------------------------------------------------------------------------- thresholds (the checks')


def _thresholds() -> dict[str, Any]:
    from diagnostics.checks import gpu, host  # the checks' thresholds: a paste and a check agree

    return {"critical_xids": gpu.CRITICAL_XIDS, "temp_warn_c": gpu.TEMP_WARN_C, "disk_full_pct": host.DISK_FULL_PCT,
            "ignored_fs": host.IGNORED_FS_PREFIXES, "shm_min_free_mb": host.SHM_MIN_FREE_MB,
            "mem_available_min_ratio": host.MEM_AVAILABLE_MIN_RATIO, "clock_skew_max_s": host.CLOCK_SKEW_MAX_S}


# --------------------------------------------------------------------------- readers, one per tool

_BAD_VALUES = ("[Unknown Error]", "[GPU requires reset]", "[GPU is lost]", "ERR!", "Unknown Error", "GPU is lost")


_plural = plural


def _read_table(text: str) -> tuple[str, list[PastedFinding]]:
    th = _thresholds()
    t = nvidia_smi.parse_table(text)
    names = Counter(g.name for g in t.gpus)
    parts = [f"{_plural(len(t.gpus), 'GPU')}" + (f" ({', '.join(f'{n}x {k}' for k, n in names.items())})" if names else "")
             if t.gpus else "the MIG devices section only (no GPU rows)"]
    if t.driver:
        parts.append(f"driver {t.driver}" + (f", CUDA {t.cuda}" if t.cuda else ""))
    if t.processes:
        parts.append(_plural(len(t.processes), "process") + " on GPU(s) " +
                     ", ".join(str(g) for g in sorted({p.gpu for p in t.processes})))
    elif t.no_processes:
        parts.append("no running processes")
    if t.mig_devices:
        parts.append(_plural(len(t.mig_devices), "MIG device") + " on GPU(s) " +
                     ", ".join(str(g) for g in sorted({m.gpu for m in t.mig_devices})))
    findings = []
    for g in t.gpus:
        if g.errors:
            findings.append(PastedFinding(f"GPU {g.index} ({g.bus_id}) reads ERR! in {', '.join(g.errors)} "
                                          "(nvidia-smi cannot read it: a failing or lost GPU, or a transient NVML error)",
                                          "error", g.index, g.bus_id))
        if g.ecc_uncorrected:
            findings.append(PastedFinding(f"GPU {g.index} has {g.ecc_uncorrected} volatile uncorrectable ECC error(s)",
                                          "critical", g.index, g.bus_id))
        if g.temp_c is not None and g.temp_c >= th["temp_warn_c"]:
            findings.append(PastedFinding(f"GPU {g.index} at {g.temp_c:g} C (>= {th['temp_warn_c']:g} C)", "warning",
                                          g.index, g.bus_id))
        for cell, value in g.unknown.items():
            findings.append(PastedFinding(f"GPU {g.index} ({g.bus_id}): {cell} reads {value!r}, not a reading "
                                          "(an unexpected value: check this GPU with nvidia-smi -q)", "warning",
                                          g.index, g.bus_id))
    for bus in t.lost:
        findings.append(PastedFinding(f"nvidia-smi cannot reach the GPU at PCI {bus} (lost from the bus)", "critical",
                                      None, bus))
    indices = sorted(g.index for g in t.gpus)
    for missing in sorted(set(range(indices[0], indices[-1] + 1)) - set(indices)) if indices else []:
        findings.append(PastedFinding(f"GPU {missing} is missing from the table (indices {indices})", "warning", missing))
    return "; ".join(parts), findings


def _read_list(text: str) -> tuple[str, list[PastedFinding]]:
    gpus, lost = nvidia_smi.parse_list(text)
    names = Counter(str(g["name"]) for g in gpus)
    summary = f"{_plural(len(gpus), 'GPU')} listed" + (f" ({', '.join(f'{n}x {k}' for k, n in names.items())})" if names else "")
    return summary, [PastedFinding(f"nvidia-smi cannot reach the GPU at PCI {bus} (lost from the bus)", "critical",
                                   None, bus) for bus in lost]


def _read_nvlink(text: str) -> tuple[str, list[PastedFinding]]:
    r = nvidia_smi.parse_nvlink(text)
    up = sum(1 for links in r.links.values() for s in links.values() if s is not None)
    down = sum(1 for links in r.links.values() for s in links.values() if s is None)
    summary = f"{_plural(len(r.links), 'GPU')}: {_plural(up, 'NVLink link')} up, {down} inactive"
    findings = []
    for idx, links in r.links.items():
        dead = sorted(li for li, s in links.items() if s is None)
        if dead:
            findings.append(PastedFinding(f"GPU {idx}: NVLink link(s) {', '.join(map(str, dead))} inactive "
                                          f"({len(links) - len(dead)} of {len(links)} up)", "critical", idx))
    if r.all_inactive:
        others_up = any(r.links[i] for i in r.links if i not in r.all_inactive)
        summary += f"; NVML: all links inactive on GPU(s) {', '.join(map(str, r.all_inactive))}"
        expected = [i for i in r.all_inactive if others_up or nvidia_smi.expects_nvlink(r.names.get(i, ""))]
        for idx in expected:
            findings.append(PastedFinding(f"GPU {idx} ({r.names.get(idx, '')}): all NVLink links inactive "
                                          "(NVML cannot read any link)", "critical", idx))
        if len(expected) < len(r.all_inactive):
            summary += " (normal for PCIe boards without an NVLink bridge)"
    return summary, findings


def _walk(d: dict[str, Any], path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out.extend(_walk(v, (*path, k)))
        else:
            out.append(((*path, k), str(v)))
    return out


def _read_query(text: str) -> tuple[str, list[PastedFinding]]:
    th = _thresholds()
    q = nvidia_smi.parse_query(text)
    gpus: dict[str, dict[str, Any]] = q["gpus"]
    names = Counter(str(g.get("Product Name")) for g in gpus.values() if g.get("Product Name"))
    if list(gpus) == [""]:
        sections = [k for k, v in gpus[""].items() if isinstance(v, dict)]
        summary = "an excerpt of one GPU's nvidia-smi -q (no banner, bus unknown)" + (
            f": {', '.join(sections[:6])}" if sections else "")
    else:
        summary = f"{_plural(len(gpus), 'GPU')}" + (f" ({', '.join(f'{n}x {k}' for k, n in names.items())})" if names else "")
        if q.get("Driver Version"):
            summary += f", driver {q['Driver Version']}"
    findings = []
    for bus, gpu in gpus.items():
        where = f"GPU {bus}" if bus else "the GPU"
        device = bus or None
        for path, value in _walk(gpu):
            key = " / ".join(path)
            v = value.strip()
            if any(b.lower() in v.lower() for b in _BAD_VALUES):
                findings.append(PastedFinding(f"{where}: {key} reads {v}", "error", None, device))
            elif path[-1] == "Pending" and path[0] in ("Retired Pages", "Remapped Rows", "Page Retirement") and v == "Yes":
                findings.append(PastedFinding(f"{where}: {path[0]} pending (a GPU reset is needed)", "critical", None,
                                              device))
            elif path[-1] in ("Remapping Failure Occurred",) and v == "Yes":
                findings.append(PastedFinding(f"{where}: row remapping failed (the GPU needs replacing)", "critical",
                                              None, device))
            elif path[0] == "ECC Errors" and "Volatile" in path and ("Uncorrectable" in path[-1] or "Double Bit" in path) \
                    and path[-1] not in ("SRAM Threshold Exceeded",) and (to_float_or_none(v) or 0) > 0:
                findings.append(PastedFinding(f"{where}: {key} = {v} (uncorrectable ECC errors since the driver loaded)",
                                              "critical", None, device))
            elif path[0] in ("Clocks Event Reasons", "Clocks Throttle Reasons") and v == "Active" and \
                    path[-1] in ("HW Slowdown", "HW Thermal Slowdown", "HW Power Brake Slowdown", "SW Thermal Slowdown"):
                findings.append(PastedFinding(f"{where}: clocks held back ({path[-1]} active)", "warning", None, device))
        temps = gpu.get("Temperature", {}) if isinstance(gpu.get("Temperature"), dict) else {}
        cur = to_float_or_none(temps.get("GPU Current Temp"))
        slow = to_float_or_none(temps.get("GPU Slowdown Temp"))
        limit = min(x for x in (slow, th["temp_warn_c"]) if x is not None)
        if cur is not None and cur >= limit:
            findings.append(PastedFinding(f"{where} at {cur:g} C (>= {limit:g} C)", "warning", None, device))
    return summary, findings


def to_float_or_none(text: object) -> float | None:
    """'43 C' -> 43.0; anything unreadable -> None."""
    if not isinstance(text, str) or is_na(text):
        return None
    try:
        return to_float(text)
    except ParseError:
        return None


def _read_csv(text: str) -> tuple[str, list[PastedFinding]]:
    th = _thresholds()
    csv = nvidia_smi.parse_query_csv(text)
    columns = list(csv.rows[0]) if csv.rows else []
    summary = f"{_plural(len(csv.rows), 'row')}" + (f" of {', '.join(columns[:8])}" if columns else "")
    findings = []
    for n, row in enumerate(csv.rows):
        idx_text = row.get("index", "")
        idx = int(idx_text) if idx_text.strip().isdigit() else None
        bus = row.get("pci.bus_id")
        label = f"GPU {idx}" if idx is not None else (f"GPU {bus}" if bus else f"row {n + 1}")
        for key, value in row.items():
            v = value.strip()
            if any(b.lower() in v.lower() for b in _BAD_VALUES):
                findings.append(PastedFinding(f"{label}: {key} reads {v}", "error", idx, bus))
        temp = to_float_or_none(row.get("temperature.gpu"))
        if temp is not None and temp >= th["temp_warn_c"]:
            findings.append(PastedFinding(f"{label} at {temp:g} C (>= {th['temp_warn_c']:g} C)", "warning", idx, bus))
        dbe = to_float_or_none(row.get("ecc.errors.uncorrected.volatile.total"))
        if dbe:
            findings.append(PastedFinding(f"{label}: {dbe:g} volatile uncorrectable ECC error(s)", "critical", idx, bus))
        for key in ("remapped_rows.pending", "remapped_rows.failure"):
            if row.get(key, "").strip().lower() in ("yes", "1", "true"):
                findings.append(PastedFinding(f"{label}: {key} = {row[key].strip()}", "critical", idx, bus))
    for bus in csv.lost:
        findings.append(PastedFinding(f"nvidia-smi cannot reach the GPU at PCI {bus} (lost from the bus)", "critical",
                                      None, bus))
    return summary, findings


def _read_topo(text: str) -> tuple[str, list[PastedFinding]]:
    t = nvidia_smi.parse_topo(text)
    gpus = t.gpus
    kinds = Counter(link for i, a in enumerate(gpus) for b in gpus[i + 1:] if (link := t.link(a, b)))
    summary = f"{_plural(len(gpus), 'GPU')}, {_plural(len(t.nics), 'NIC')}"
    if kinds:
        summary += "; GPU pairs: " + ", ".join(f"{n}x {k}" for k, n in kinds.most_common())
    numa = {t.numa_affinity[g] for g in gpus if g in t.numa_affinity}
    if numa - {"N/A"}:
        summary += f"; NUMA node(s) {', '.join(sorted(numa - {'N/A'}))}"
    findings = [PastedFinding(i.problem, "critical" if not i.link.startswith("NV") else "warning", i.gpu)
                for i in nvidia_smi.assess_topo(t)]
    return summary, findings


def _read_kernel(text: str) -> tuple[str, list[PastedFinding]]:
    th = _thresholds()
    try:
        xids = kernel.parse_xids(text)
    except ParseError:
        xids = []  # a cut Xid line: the rest of the log still counts
    fallen = kernel.parse_fallen_off_bus(text)
    ooms = kernel.parse_ooms(text)
    findings = []
    grouped: dict[tuple[str, int], list[kernel.XidEvent]] = {}
    for ev in xids:
        grouped.setdefault((ev.bus, ev.xid), []).append(ev)
    for (bus, xid), evs in grouped.items():
        what = "GPU has fallen off the bus" if xid == 79 else evs[-1].message[:100]
        findings.append(PastedFinding(f"Xid {xid} x{len(evs)} on the GPU at PCI {bus}: {what}",
                                      "critical" if xid in th["critical_xids"] else "warning", None, bus))
    with79 = {nvidia_smi.bus_key(bus) for bus, xid in grouped if xid == 79}
    seen: set[str] = set()
    counts = Counter(nvidia_smi.bus_key(f.bus) for f in fallen)
    for fe in fallen:
        key = nvidia_smi.bus_key(fe.bus)
        if key in with79 or key in seen:
            continue
        seen.add(key)
        count = counts[key]
        findings.append(PastedFinding(f"the GPU at PCI {fe.bus}" + (f" ({fe.pci_id})" if fe.pci_id else "") +
                                      f" has fallen off the bus and is not responding (x{count}, no Xid 79 line)",
                                      "critical", None, fe.bus))
    for k in ooms:
        findings.append(PastedFinding(f"OOM killer killed {k.process} (pid {k.pid})" + (f" at {k.stamp}" if k.stamp else ""),
                                      "error"))
    hw_parts, hw_findings = readers.kernel_hw_findings(text)
    findings.extend(hw_findings)
    summary = (f"kernel log: {_plural(len(xids), 'Xid event')} on {_plural(len({b for b, _ in grouped}), 'GPU')}, "
               f"{_plural(len(seen), 'fallen-off-the-bus GPU')} without Xid 79, {_plural(len(ooms), 'OOM kill')}")
    if hw_parts:
        summary += "; " + "; ".join(hw_parts)
    return summary, findings


def _read_ibstat(text: str) -> tuple[str, list[PastedFinding]]:
    ports = infiniband.parse_ibstat(text)
    active = [p for p in ports if p.active]
    best = max((p.rate_gbps for p in active if p.rate_gbps), default=None)
    summary = f"{_plural(len(ports), 'port')}: {len(active)} active, {len(ports) - len(active)} not"
    layers = sorted({p.link_layer for p in ports if p.link_layer})
    if layers:
        summary += f" ({', '.join(layers)})"
    findings = []
    for p in ports:
        device = f"{p.hca}/{p.port}"
        if not p.active:
            why = " - the cable is up but the port is not: no subnet manager, or a port not brought up" \
                if (p.physical_state or "").lower() == "linkup" else ""
            findings.append(PastedFinding(f"{p.hca} port {p.port} is {p.state} (physical state {p.physical_state}){why}",
                                          "critical", None, device))
        elif best and p.rate_gbps is not None and p.rate_gbps < best:
            findings.append(PastedFinding(f"{p.hca} port {p.port} active at {p.rate_gbps:g} Gb/s, others at {best:g}",
                                          "warning", None, device))
    return summary, findings


def _read_devinfo(text: str) -> tuple[str, list[PastedFinding]]:
    ports = infiniband.parse_ibv_devinfo(text)
    if not ports:
        return "No IB devices found", []
    active = sum(p.active for p in ports)
    summary = f"{_plural(len(ports), 'port')}: {active} PORT_ACTIVE, {len(ports) - active} not"
    return summary, [PastedFinding(f"{p.hca} port {p.port} is {p.state}", "critical", None, f"{p.hca}/{p.port}")
                     for p in ports if not p.active]


def _df_bytes(unit: str) -> float:
    u = unit.lower()
    if u == "size" or u == "":
        return 1.0
    m = re.match(r"^(\d+)([kmg]?)(?:-blocks)?", u)
    if m:
        return int(m.group(1)) * {"": 1, "k": 1024, "m": 2**20, "g": 2**30}[m.group(2)]
    return 1024.0


def _read_df(text: str) -> tuple[str, list[PastedFinding]]:
    th = _thresholds()
    unit, rows = system.parse_df(text)
    inodes = unit.lower().startswith("inode")
    real = [r for r in rows if not r.filesystem.startswith(tuple(p for p in th["ignored_fs"] if p != "overlay"))
            and not r.filesystem.startswith("/dev/loop") and not r.mount.startswith("/snap/")]
    fullest = max((r for r in (real or rows) if r.use_pct is not None), key=lambda r: r.use_pct or 0, default=None)
    summary = f"{_plural(len(rows), 'filesystem')}" + (" (inodes)" if inodes else "")
    if fullest is not None:
        summary += f"; fullest: {fullest.mount} at {fullest.use_pct}%"
    findings = []
    for r in real:
        if r.use_pct is not None and r.use_pct >= th["disk_full_pct"]:
            what = "of its inodes used" if inodes else "full"
            findings.append(PastedFinding(f"{r.mount} ({r.filesystem}) is {r.use_pct}% {what}",
                                          "critical" if r.use_pct >= 97 else "warning", None, r.mount))
        if r.mount == "/dev/shm" and not inodes:
            size_mb = r.total * _df_bytes(unit) / 2**20
            if 0 < size_mb < th["shm_min_free_mb"]:
                findings.append(PastedFinding(f"/dev/shm is only {size_mb:.0f} MB (data loaders and NCCL need more)",
                                              "warning", None, r.mount))
    return summary, findings


def _read_free(text: str) -> tuple[str, list[PastedFinding]]:
    th = _thresholds()
    mem = system.parse_free(text)
    summary = f"memory: total {mem.total}, used {mem.used}, free {mem.free}"
    findings = []
    if mem.available is not None:
        summary += f", available {mem.available}"
        if mem.total:
            summary += f" ({100 * mem.available / mem.total:.0f}%)"
            if mem.available < th["mem_available_min_ratio"] * mem.total:
                findings.append(PastedFinding(f"only {mem.available} of {mem.total} memory available "
                                              f"(< {th['mem_available_min_ratio']:.0%}): the OOM killer is near", "warning"))
    if mem.swap_total is not None:
        summary += f"; swap {mem.swap_used} of {mem.swap_total} used"
    return summary, findings


def _read_nccl(text: str) -> tuple[str, list[PastedFinding]]:
    r = nccl.parse_all_reduce_perf(text)
    sizes = [row.size_bytes for row in r.rows]
    summary = f"{_plural(len(r.rows), 'result row')}"
    if sizes:
        summary += f" ({min(sizes)}..{max(sizes)} B); peak bus bandwidth {r.peak_busbw_gbs:g} GB/s"
    if r.avg_busbw_gbs is not None:
        summary += f", avg {r.avg_busbw_gbs:g} GB/s"
    if r.test:
        summary = f"{r.test}: {summary}"
    if r.ranks:
        summary += f"; {_plural(r.ranks, 'rank')}"
    elif r.n_gpus:
        summary += f"; {_plural(r.n_gpus, 'GPU')}"
    if r.out_of_bounds is not None:
        summary += f"; out of bounds values: {r.out_of_bounds} {'FAILED' if r.out_of_bounds else 'OK'}"
    findings = []
    if r.out_of_bounds:
        findings.append(PastedFinding(f"{r.out_of_bounds} out of bounds values (FAILED): the collective returned wrong "
                                      "results", "critical"))
    for row in r.wrong_rows:
        parts = []
        if row.wrong:
            parts.append(f"out-of-place #wrong {row.wrong}")
        if row.inplace_wrong:
            parts.append(f"in-place #wrong {row.inplace_wrong}")
        findings.append(PastedFinding(f"{' and '.join(parts)} at size {row.size_bytes} B (wrong results)", "critical"))
    for line in r.errors[:3]:
        findings.append(PastedFinding(f"nccl-tests failed: {line[:160]}", "critical"))
    return summary, findings


def _read_chronyc(text: str) -> tuple[str, list[PastedFinding]]:
    th = _thresholds()
    t = system.parse_chronyc_tracking(text)
    side = "fast" if t.offset_s >= 0 else "slow"
    summary = (f"system clock {abs(t.offset_s):.6f} s {side} of NTP time; reference {t.reference or '?'}; "
               f"stratum {t.stratum if t.stratum is not None else '?'}; leap status {t.leap_status}")
    findings = []
    if abs(t.offset_s) > th["clock_skew_max_s"]:
        findings.append(PastedFinding(f"system clock {abs(t.offset_s):.3f} s {side} of NTP time "
                                      f"(> {th['clock_skew_max_s']:g} s)", "warning"))
    if t.leap_status.lower().startswith("not sync"):
        findings.append(PastedFinding("chrony is not synchronised (Leap status: Not synchronised)", "warning"))
    if t.reference.upper().startswith("7F7F0101"):
        findings.append(PastedFinding("synchronised to the local clock only (reference 7F7F0101), not to an NTP server",
                                      "warning"))
    return summary, findings


# --------------------------------------------------------------------------- small formats and excerpts


_SECTION_KV = re.compile(r"^\s*([A-Za-z][A-Za-z /().-]*?)\s*:\s*(.*?)\s*$")
_THROTTLE_BAD = ("HW Slowdown", "HW Thermal Slowdown", "HW Power Brake Slowdown", "SW Thermal Slowdown")


def _section_lines(text: str, title: str) -> list[tuple[str, str]]:
    """The ``key : value`` lines under an nvidia-smi -q section title (indented deeper than it)."""
    out: list[tuple[str, str]] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() != title:
            continue
        indent = len(line) - len(line.lstrip())
        for follow in lines[i + 1:]:
            if not follow.strip():
                continue
            if len(follow) - len(follow.lstrip()) <= indent:
                break
            m = _SECTION_KV.match(follow)
            if m:
                out.append((m.group(1).strip(), m.group(2).strip()))
    return out


def _read_query_sections(text: str) -> tuple[str, list[PastedFinding]]:
    """Excerpts of ``nvidia-smi -q`` (a grep, one section): Remapped Rows, Retired Pages, the clock
    throttle / event reasons."""
    findings: list[PastedFinding] = []
    parts: list[str] = []
    remap = dict(_section_lines(text, "Remapped Rows"))
    if remap:
        pending = remap.get("Pending", "").lower() == "yes"
        failed = remap.get("Remapping Failure Occurred", "").lower() == "yes"
        unc = to_float(remap.get("Uncorrectable Error", ""))
        parts.append(f"remapped rows: {int(unc) if unc is not None else '?'} uncorrectable, pending "
                     f"{'yes' if pending else 'no'}")
        if failed:
            findings.append(PastedFinding("row remapping failed: the GPU must be replaced (RMA)", "critical"))
        if pending:
            findings.append(PastedFinding("a row remap is pending: reset the GPU (or reboot) to apply it", "critical"))
        elif unc:
            findings.append(PastedFinding(f"{int(unc)} rows remapped for uncorrectable errors", "warning"))
    for title in ("Clocks Throttle Reasons", "Clocks Event Reasons"):
        reasons = _section_lines(text, title)
        if not reasons:
            continue
        active = [k for k, v in reasons if v.lower() == "active"]
        parts.append(f"{title.lower()}: {', '.join(active) or 'none active'}")
        bad = [k for k in active if k in _THROTTLE_BAD]
        if bad:
            findings.append(PastedFinding(f"clocks held down by {', '.join(bad)}", "warning"))
        if "SW Power Cap" in active:
            findings.append(PastedFinding("clocks held down by the software power cap", "warning"))
    retired = dict(_section_lines(text, "Retired Pages"))
    if retired:
        pend = retired.get("Pending Page Blacklist", retired.get("Pending", "")).lower() == "yes"
        parts.append(f"retired pages: pending {'yes' if pend else 'no'}")
        if pend:
            findings.append(PastedFinding("a page retirement is pending: reset the GPU to apply it", "critical"))
    if not parts:
        raise ParseError("nvidia-smi -q", "no Remapped Rows, Retired Pages or clock reasons section with values")
    return "; ".join(parts), findings


_IBDEV2NETDEV = re.compile(r"^\s*(\S+)\s+port\s+(\d+)\s+==>\s+(\S+)\s+\((Up|Down)\)", re.MULTILINE)


def _read_ibdev2netdev(text: str) -> tuple[str, list[PastedFinding]]:
    rows = _IBDEV2NETDEV.findall(text)
    down = [f"{hca}/{port} ({netdev})" for hca, port, netdev, state in rows if state == "Down"]
    summary = f"{_plural(len(rows), 'port')}: {len(rows) - len(down)} up, {len(down)} down"
    findings = [PastedFinding(f"{d} is Down", "warning", device=d.split("/")[0]) for d in down[:MAX_FINDINGS]]
    return summary, findings


_SMI_FAILED = re.compile(r"Unable to determine the device handle for GPU\s*([0-9A-Fa-f:.]+)\s*:\s*(.+)|"
                         r"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver|"
                         r"^No devices were found\s*$|Unable to query number of GPUs|"
                         r"Failed to initialize NVML:\s*(.+)", re.MULTILINE)


def _read_smi_failure(text: str) -> tuple[str, list[PastedFinding]]:
    findings: list[PastedFinding] = []
    for m in _SMI_FAILED.finditer(text):
        if m.group(1):
            findings.append(PastedFinding(f"nvidia-smi cannot reach the GPU at {m.group(1)}: {m.group(2).strip()} "
                                          "(lost from the bus or the driver; check the kernel log for Xid 79)",
                                          "critical", device=m.group(1)))
        elif m.group(3):
            findings.append(PastedFinding(f"NVML cannot start: {m.group(3).strip()}", "critical"))
        else:
            findings.append(PastedFinding(f"nvidia-smi failed: {m.group(0).strip()}", "critical"))
    return f"nvidia-smi failed ({_plural(len(findings), 'error')})", findings[:MAX_FINDINGS]


_CSV_ERROR_ROW = re.compile(r"^[^,\n]+(?:,[^,\n]*){2,}$", re.MULTILINE)
_CSV_ERROR_VALUE = re.compile(r"\[(Unknown Error|GPU is lost|ERR!|Not Supported by driver)\]")


def _read_csv_errors(text: str) -> tuple[str, list[PastedFinding]]:
    """Rows of ``--query-gpu`` CSV without a header: only the error values can be read for sure."""
    rows = [r for r in _CSV_ERROR_ROW.findall(text) if not r.lstrip().startswith(("#", "$"))]
    findings: list[PastedFinding] = []
    for i, row in enumerate(rows):
        for j, cell in enumerate(c.strip() for c in row.split(",")):
            m = _CSV_ERROR_VALUE.search(cell)
            if m and m.group(1) != "Not Supported by driver":
                findings.append(PastedFinding(f"row {i + 1} (GPU {i} if listed in order): column {j + 1} reads "
                                              f"[{m.group(1)}]", "critical" if "lost" in m.group(1) else "warning",
                                              gpu=i))
    return f"{_plural(len(rows), 'CSV row')} without a header", findings[:MAX_FINDINGS]


_TIMEDATE_SYNC = re.compile(r"^\s*(?:System clock synchronized|NTP synchronized)\s*:\s*(yes|no)\s*$",
                            re.MULTILINE | re.IGNORECASE)
_TIMEDATE_NTP = re.compile(r"^\s*(?:NTP service|Network time on|NTP enabled)\s*:\s*(\S+)", re.MULTILINE | re.IGNORECASE)


def _read_timedatectl(text: str) -> tuple[str, list[PastedFinding]]:
    sync = _TIMEDATE_SYNC.search(text)
    ntp = _TIMEDATE_NTP.search(text)
    synced = sync is not None and sync.group(1).lower() == "yes"
    summary = f"clock synchronised: {'yes' if synced else 'no'}; NTP service: {ntp.group(1) if ntp else '?'}"
    findings = []
    if sync is not None and not synced:
        findings.append(PastedFinding("the system clock is not synchronised to NTP (timedatectl)", "warning"))
    if ntp is not None and ntp.group(1).lower() in ("inactive", "n/a", "no"):
        findings.append(PastedFinding(f"no NTP service runs (NTP service: {ntp.group(1)})", "warning"))
    return summary, findings



_SINFO_BAD = ("drain", "drng", "down", "fail", "not_responding", "no_respond", "inval")


def _read_sinfo(text: str) -> tuple[str, list[PastedFinding]]:
    rows = scheduler.parse_sinfo(text)
    by_state: Counter[str] = Counter()
    for r in rows:
        by_state[r.state] += r.nodes
    partitions = sorted({r.partition for r in rows if r.partition})
    summary = f"{_plural(sum(by_state.values()), 'node')}" + (f" in {', '.join(partitions)}" if partitions else "") + \
        ": " + ", ".join(f"{n} {s}" for s, n in by_state.most_common())
    findings = [PastedFinding(f"{_plural(r.nodes, 'node')} {r.state}" + (f" in partition {r.partition}" if r.partition else "")
                              + f": {r.nodelist}" + (f" ({r.reason})" if r.reason else ""), "warning", None, r.nodelist)
                for r in rows if any(b in r.state.lower() for b in _SINFO_BAD)]
    findings += [PastedFinding(f"{_plural(r.nodes, 'node')} in partition {r.partition or '?'} neither allocated nor idle "
                               "(NODES(A/I/O/T) 'other': down, drained, failing …)", "warning", None, r.partition or None)
                 for r in rows if r.state == "other"]
    return summary, findings


def _read_scontrol(text: str) -> tuple[str, list[PastedFinding]]:
    n = scheduler.parse_scontrol_node(text)
    summary = f"node {n.name}: {n.raw_state}" + (f" ({n.reason})" if n.reason else "")
    findings = []
    if n.state in ("drained", "draining", "down"):
        findings.append(PastedFinding(f"{n.name} is {n.raw_state}" + (f": {n.reason}" if n.reason else ""), "warning",
                                      None, n.name))
    return summary, findings


def _read_describe(text: str) -> tuple[str, list[PastedFinding]]:
    d = scheduler.parse_kubectl_describe_node(text)
    res = d.gpu_resource or "GPU"
    summary = f"node {d.name or '(name not in the excerpt)'}"
    if d.gpu_capacity is not None:
        summary += f": {res} capacity {d.gpu_capacity}, allocatable {d.gpu_allocatable}"
        if d.gpu_requests is not None:
            summary += f", requested {d.gpu_requests}"
    elif d.gpu_resource is None:
        summary += ": no GPU resource advertised" if d.resources_shown else ": no Capacity/Allocatable section shown"
    others = {r: v for r, v in d.gpu_resources.items() if r != d.gpu_resource}
    if others:
        summary += "; also " + ", ".join(f"{r} " + "/".join(f"{k} {n}" for k, n in v.items()) for r, v in others.items())
    findings = readers.node_resource_findings(d)
    ready = d.conditions.get("Ready")
    if ready in ("False", "Unknown"):
        findings.append(PastedFinding(f"{d.name or 'the node'} is not Ready (Ready={ready})", "critical", None,
                                      d.name or None))
    for cond in ("MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable"):
        if d.conditions.get(cond) == "True":
            findings.append(PastedFinding(f"{d.name}: {cond} is True", "warning", None, d.name))
    if d.unschedulable:
        findings.append(PastedFinding(f"{d.name} is cordoned (Unschedulable: true)", "warning", None, d.name))
    return summary, findings


# --------------------------------------------------------------------------- recognising a paste

_M = re.MULTILINE


def _sigre(pattern: str, flags: int = 0) -> Any:
    """A tool-output signature, on RE2 when it is installed: recognising runs every signature over
    up to MAX_PASTE_CHARS of text, which takes Python's engine seconds and RE2 milliseconds."""
    try:
        import re2

        inline = "".join(f for f, bit in (("m", re.MULTILINE), ("i", re.IGNORECASE)) if flags & bit)
        return re2.compile(f"(?{inline}){pattern}" if inline else pattern)
    except Exception:  # no RE2, or a construct it lacks: the standard engine, same answers
        return re.compile(pattern, flags)
_SIG_TABLE = _sigre(r"^\s*\|\s*NVIDIA-SMI\s+\S+|^\s*\|\s+\d+\s+[^|\n]*\|\s*[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:"
                        r"[0-9A-Fa-f]{2}\.[0-7]|^\s*\|\s*MIG devices:", _M)
_SIG_QUERY = _sigre(r"^\s*(Product Name|Bus Id|Power Draw|GPU Current Temp|Performance State|Persistence Mode|"
                        r"VBIOS Version|GPU UUID|Minor Number|Power Management|Default Power Limit|Enforced Power Limit|"
                        r"Attached GPUs|ECC Mode|Retired Pages|Remapped Rows|Memory Current Temp|Display Mode|"
                        r"Clocks Event Reasons|Clocks Throttle Reasons|Max Clocks|Applications Clocks|Inforom Version|"
                        r"Single Bit ECC|Double Bit ECC|GPU Shutdown Temp|Power Readings)\b\s*(?::|$)", _M)
_SIG_CSV = _sigre(r"^\s*[a-z][a-z0-9_.]*(?: \[[^\]\n]*\])?(?:\s*,\s*[a-z][a-z0-9_.]*(?: \[[^\]\n]*\])?)+\s*$|"
                      r"--query-(?:gpu|remapped-rows)[= ]", _M)
_SIG_TOPO = _sigre(r"^\s*GPU0\s+X\b", _M)
_SIG_NVLINK = _sigre(r"^\s*Link \d+: (?:<inactive>|[\d.]+ GB/s)|all links are inactive", _M | re.IGNORECASE)
_SIG_LIST = _sigre(r"^\s*GPU \d+: .+\(UUID: ", _M)
_SIG_KERNEL = _sigre(r"NVRM: |Out of memory: Killed process|Memory cgroup out of memory|PCIe Bus Error|AER: |"
                     r"EDAC (?:\w+ )?MC\d+: \d+ [CU]E\b|\[Hardware Error\]")
_SIG_IBSTAT = _sigre(r"^\s*CA '[^'\n]+'\s*$", _M)
_SIG_DEVINFO = _sigre(r"^\s*hca_id:\s*\S+", _M)
_SIG_DF = _sigre(r"^\s*Filesystem\s+(?:Size|\d*[KMGkmg]?-?blocks|Inodes|Type)\b|"
                     r"^\S+\s+[\d.,]+[KMGTPE]?\s+[\d.,]+[KMGTPE]?\s+[\d.,]+[KMGTPE]?\s+\d{1,3}%\s+/", _M)
_SIG_FREE = _sigre(r"^\s*Mem:\s+[\d.,]+[KMGTPE]?i?B?\s+[\d.,]+[KMGTPE]?i?B?\s", _M)
_SIG_NCCL = _sigre(r"Avg bus bandwidth|Out of bounds values|#wrong|nThread \d+ nGpus|"
                       r"^\s*\d+\s+\d+\s+(?:float|double|half|bfloat16|int8|uint8|int32|uint32|int64|uint64|fp8\w*)\s", _M)
_SIG_CHRONY = _sigre(r"^\s*System time\s*:", _M)
_SIG_SINFO = _sigre(r"^\s*(?:PARTITION\s+AVAIL|NODELIST\s+NODES|HOSTNAMES\s+\S)", _M)
_SIG_SCONTROL = _sigre(r"^\s*NodeName=\S+", _M)
_SIG_DESCRIBE = _sigre(r"^Name:\s+\S+", _M)
_SIG_DESCRIBE2 = _sigre(r"^(?:Capacity|Allocatable|Conditions):", _M)
# An excerpt without the Name line: a Capacity/Allocatable section with its indented resources.
_SIG_DESCRIBE3 = _sigre(r"^(?:Capacity|Allocatable):[ \t]*\n[ \t]+[\w./-]+:[ \t]+\d", _M)
_SIG_QUERY_SECTION = _sigre(r"^\s*(?:Remapped Rows|Retired Pages|Clocks (?:Throttle|Event) Reasons)\s*$", _M)
_SIG_IBDEV2NETDEV = _sigre(r"^\s*\S+\s+port\s+\d+\s+==>\s+\S+\s+\((?:Up|Down)\)", _M)
_SIG_SMI_FAILED = _sigre(r"Unable to determine the device handle for GPU|NVIDIA-SMI has failed because it couldn't "
                         r"communicate|^No devices were found\s*$|Failed to initialize NVML", _M)
_SIG_CSV_ERROR = _sigre(r"^[^,\n]+(?:,[^,\n]*){2,}\[(?:Unknown Error|GPU is lost|ERR!)\]", _M)
_SIG_TIMEDATECTL = _sigre(r"^\s*(?:System clock synchronized|NTP synchronized)\s*:", _M)
_SIG_LSPCI = _sigre(r"^\s*(?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7] [^:\n]+: \S|^\s*LnkSta:\s*Speed", _M)
_SIG_IB_DOTTED = _sigre(r"^\s*(?:SymbolErrorCounter|PortXmitData|PortRcvErrors|LinkDownedCounter|PortXmitWait|LinkState|"
                        r"PhysLinkState|LinkSpeedActive|LinkWidthActive):\.{2,}", _M)
_SIG_IBQUERYERRORS = _sigre(r"\[\w+ == \d+")
_SIG_RDMA_LINK = _sigre(r"^\s*link \S+/\d+ .*\bstate [A-Z_]+", _M)
_SIG_ETHTOOL = _sigre(r"^\s*NIC statistics:\s*$", _M)
_SIG_IP_LINK = _sigre(r"^\s*\d+: [^:\s]+(?:@\S+)?: <[A-Z0-9_,-]*>.*\bmtu\b", _M)
_SIG_DCGM_DIAG = _sigre(r"^\s*[|+]-{2,}\s+(?:Metadata|Deployment|Hardware|Integration|Stress|Software|Plugins?)\s+-{2,}[+|]|"
                        r"Successfully ran diagnostic for group", _M)
_SIG_DCGM_DISCOVERY = _sigre(r"^\s*\|\s*GPU ID\s*\|\s*Device Information", _M)
_SIG_DCGM_ERROR = _sigre(r"MIG configuration is incompatible with the diagnostic|Health watches not enabled|"
                         r"Unable to complete diagnostic|Unable to connect to host engine|Unable to establish a connection "
                         r"to the specified host|Error: requested test")
_SIG_EDAC_SYSFS = _sigre(r"/edac/mc/mc\d+/(?:\S+/)?(?:dimm_)?[cu]e_count")
_SIG_RAS = _sigre(r"^\s*(?:No Memory errors\.|MCE records summary:|Label\s+CE\s+UE\b)", _M)
_SIG_NVLINK_ERRORS = _sigre(r"^\s*Link \d+: (?:Replay|Recovery|CRC|Data CRC|Flit CRC)[^:\n]*Errors?\s*:", _M)
_SIG_XML = _sigre(r"<nvidia_smi_log>|<gpu id=\"")
_SIG_SYSTEMD = _sigre("^\\s*(?:\u25cf|\\*)?" r"\s*\S+\.(?:service|mount|socket|target|timer|path|swap)\s+(?:loaded|not-found|"
                      r"masked|error)\s+\S+\s+failed|\.(?:service|mount|socket): (?:Main|Control) process exited|"
                      r"Failed with result '|Job for \S+\.service failed", _M)
_SIG_K8S_YAML = _sigre(r"^\s*allocatable:\s*$", _M)  # a node's status (a PV's YAML has capacity only)
_SIG_SINFO_R = _sigre(r"^\s*REASON\s+USER\s+TIMESTAMP\s+NODELIST\s*$|"
                      r"^\S[^\n]{0,300}\s\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\s+[\w.,\[\]-]+\s*$", _M)
_SIG_SQUEUE = _sigre(r"^\s*JOBID\s+.*\b(?:ST|STATE)\b", _M)
_SIG_CHRONY_SOURCES = _sigre(r"^\s*MS Name/IP address|^\s*506 Cannot talk to daemon|"
                             r"^[\^=#][*+\-?x~ ]\s+\S+\s+\d+\s+-?\d+\s+[0-7]+\s[^\n]*\+/-", _M)
_SIG_STAT_F = _sigre(r"Blocks: Total: \d+\s+Free: \d+")


def _recognised(text: str) -> list[tuple[str, Reader]]:
    """The tools whose output the text holds, in reading order."""
    found: list[tuple[str, Reader]] = []
    if _SIG_TABLE.search(text):
        found.append(("nvidia-smi", _read_table))
    if len({m.group(1) for m in _SIG_QUERY.finditer(text)}) >= 2 or "NVSMI LOG" in text:
        found.append(("nvidia-smi -q", _read_query))
    if any(m.group(0).startswith("--") or nvidia_smi.is_csv_header(m.group(0)) for m in _SIG_CSV.finditer(text)):
        found.append(("nvidia-smi --query-gpu", _read_csv))
    if _SIG_TOPO.search(text):
        found.append(("nvidia-smi topo -m", _read_topo))
    nvlink = bool(_SIG_NVLINK.search(text))
    if nvlink:
        found.append(("nvidia-smi nvlink", _read_nvlink))
    elif _SIG_LIST.search(text):
        found.append(("nvidia-smi -L", _read_list))
    if _SIG_KERNEL.search(text):
        found.append(("kernel log", _read_kernel))
    if _SIG_IBSTAT.search(text):
        found.append(("ibstat", _read_ibstat))
    if _SIG_DEVINFO.search(text) or "No IB devices found" in text:
        found.append(("ibv_devinfo", _read_devinfo))
    if _SIG_DF.search(text):
        found.append(("df", _read_df))
    if _SIG_FREE.search(text):
        found.append(("free", _read_free))
    if _SIG_NCCL.search(text):
        found.append(("nccl-tests", _read_nccl))
    if _SIG_CHRONY.search(text) and "Reference ID" in text:
        found.append(("chronyc tracking", _read_chronyc))
    if _SIG_SINFO.search(text):
        found.append(("sinfo", _read_sinfo))
    if _SIG_SCONTROL.search(text):
        found.append(("scontrol show node", _read_scontrol))
    if (_SIG_DESCRIBE.search(text) and _SIG_DESCRIBE2.search(text)) or _SIG_DESCRIBE3.search(text):
        found.append(("kubectl describe node", _read_describe))
    if _SIG_LSPCI.search(text):
        found.append(("lspci", readers.read_lspci))
    if not any(tool == "nvidia-smi -q" for tool, _ in found) and _SIG_QUERY_SECTION.search(text):
        found.append(("nvidia-smi -q (excerpt)", _read_query_sections))
    if _SIG_IBDEV2NETDEV.search(text):
        found.append(("ibdev2netdev", _read_ibdev2netdev))
    if _SIG_SMI_FAILED.search(text):
        found.append(("nvidia-smi error", _read_smi_failure))
    if not any(tool.startswith("nvidia-smi --query") for tool, _ in found) and _SIG_CSV_ERROR.search(text):
        found.append(("nvidia-smi --query-gpu (no header)", _read_csv_errors))
    if _SIG_TIMEDATECTL.search(text):
        found.append(("timedatectl", _read_timedatectl))
    for tool, sig, reader in _MORE:
        if sig.search(text):
            found.append((tool, reader))
    return found


# Formats read by ``readers`` (the third set of real pastes), in reading order.
_MORE: list[tuple[str, Any, Reader]] = [
    ("perfquery / ibportstate", _SIG_IB_DOTTED, readers.read_ib_dotted),
    ("ibqueryerrors", _SIG_IBQUERYERRORS, readers.read_ibqueryerrors),
    ("rdma link", _SIG_RDMA_LINK, readers.read_rdma_link),
    ("ethtool -S", _SIG_ETHTOOL, readers.read_ethtool),
    ("ip -s link", _SIG_IP_LINK, readers.read_ip_link),
    ("dcgmi diag", _SIG_DCGM_DIAG, readers.read_dcgmi_diag),
    ("dcgmi discovery", _SIG_DCGM_DISCOVERY, readers.read_dcgmi_discovery),
    ("dcgmi error", _SIG_DCGM_ERROR, readers.read_dcgmi_error),
    ("EDAC counters", _SIG_EDAC_SYSFS, readers.read_edac_counters),
    ("ras-mc-ctl", _SIG_RAS, readers.read_ras_mc_ctl),
    ("nvidia-smi nvlink -e", _SIG_NVLINK_ERRORS, readers.read_nvlink_errors),
    ("nvidia-smi -q -x", _SIG_XML, readers.read_query_xml),
    ("systemd units", _SIG_SYSTEMD, readers.read_systemd_failures),
    ("kubectl get node -o yaml", _SIG_K8S_YAML, readers.read_kubectl_yaml),
    ("sinfo -R", _SIG_SINFO_R, readers.read_sinfo_reasons),
    ("squeue", _SIG_SQUEUE, readers.read_squeue),
    ("chronyc sources", _SIG_CHRONY_SOURCES, readers.read_chronyc_sources),
    ("stat -f", _SIG_STAT_F, readers.read_stat_f),
]


def read_pasted(text: str) -> list[PastedReading]:
    """Recognise the tool output(s) in a pasted text and read them: one PastedReading per tool found
    (tool, one-line summary, findings, lines not in the tool's format). Output that looks like a
    tool's but cannot be read gets a reading whose summary starts 'could not read'. Never raises;
    input longer than MAX_PASTE_CHARS is cut and every summary says so."""
    try:
        return _read_pasted(text)
    except Exception:  # a reader bug must never reach the chat: say nothing rather than crash
        return []


def _read_pasted(text: str) -> list[PastedReading]:
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", errors="replace")
    if not isinstance(text, str) or not text.strip():
        return []
    note = ""
    if len(text) > MAX_PASTE_CHARS:
        cut = text.rfind("\n", 0, MAX_PASTE_CHARS)
        text = text[: cut if cut > 0 else MAX_PASTE_CHARS]
        note = _CUT_NOTE
    text = clean(text)
    readings = []
    for tool, reader in _recognised(text):
        with collect_skipped() as skipped:
            try:
                summary, findings = reader(text)
            except ParseError as exc:
                summary, findings = f"could not read it as {tool} output: {exc.problem}", []
            except Exception:  # one reader's bug must not hide the others' readings
                continue
        if len(findings) > MAX_FINDINGS:
            more = len(findings) - (MAX_FINDINGS - 1)
            worst = "critical" if any(f.severity == "critical" for f in findings[MAX_FINDINGS - 1:]) else "warning"
            findings = [*findings[: MAX_FINDINGS - 1],
                        PastedFinding(f"... and {more} more finding(s) of the same kinds, not listed", worst)]
        readings.append(PastedReading(tool, summary + note, findings, len(skipped)))
    return readings
