"""Readers of pasted output for the formats added with the third set of real pastes
(tests/diagnostics/fixtures/real3): InfiniBand port counters and PortInfo (perfquery, ibportstate,
ibqueryerrors, rdma link), NIC counters (ethtool -S, ip -s link), PCIe link status (lspci -vv),
DCGM (dcgmi diag, discovery and its error messages), kernel hardware errors (PCIe AER, EDAC,
machine checks, APEI/GHES, NVRM "GPU lost"), EDAC sysfs counters, ras-mc-ctl, nvidia-smi nvlink -e
and -q -x, systemd unit failures, kubectl get node -o yaml, sinfo -R, squeue, chronyc sources and
stat -f.

Each reader takes the cleaned paste and returns (one-line summary, findings); it raises only
``ParseError`` (``detect.read_pasted`` turns it into a 'could not read …' reading). Thresholds are
the checks' (diagnostics.checks, diagnostics.health_checks), so a paste and a check agree.
"""

from __future__ import annotations

import re
from typing import Any

from diagnostics.parsers import health, infiniband, kernel, nvidia_smi, scheduler, system
from diagnostics.parsers.common import ParseError
from diagnostics.parsers.pasted import MAX_FINDINGS, PastedFinding, plural


def _health_thresholds() -> dict[str, Any]:
    from diagnostics import health_checks as hc  # the checks' thresholds: a paste and a check agree

    return {"nic_error_ratio": hc.NIC_ERROR_RATIO, "nic_errors_max": hc.NIC_ERRORS_MAX,
            "virtual_if": hc.VIRTUAL_IF_PREFIXES, "aer_correctable_max": hc.AER_CORRECTABLE_MAX,
            "edac_ce_max": hc.EDAC_CE_MAX}


def _fmt_counts(counts: dict[str, int], limit: int = 8) -> str:
    items = sorted(counts.items(), key=lambda kv: -kv[1])
    text = ", ".join(f"{k} {v}" for k, v in items[:limit])
    return text + (f" and {len(items) - limit} more" if len(items) > limit else "")


# --------------------------------------------------------------------------- InfiniBand


def read_ib_dotted(text: str) -> tuple[str, list[PastedFinding]]:
    """perfquery counters / ibportstate PortInfo blocks."""
    blocks = infiniband.parse_ib_dotted(text)
    if not any(b.link_state or any(b.counter(k) is not None for k in b.values) for b in blocks):
        raise ParseError("perfquery", "no counter value and no link state (cut output?)")
    findings: list[PastedFinding] = []
    parts: list[str] = []
    counters = [b for b in blocks if any(k in b.values for k in (*infiniband.IB_ERROR_COUNTERS, "PortXmitData"))]
    infos = [b for b in blocks if b not in counters]
    for b in counters:
        errors = {k: v for k in infiniband.IB_ERROR_COUNTERS if (v := b.counter(k))}
        wait = b.counter("PortXmitWait")
        parts.append(f"{b.where}: {len([k for k in infiniband.IB_ERROR_COUNTERS if b.counter(k) is not None])} error "
                     "counters, "
                     + (f"nonzero: {_fmt_counts(errors)}" if errors else "all 0"))
        if errors:
            findings.append(PastedFinding(f"{b.where}: error counters nonzero: {_fmt_counts(errors)} (a bad cable, "
                                          "transceiver or switch port; LinkDowned: the link flapped)", "warning",
                                          device=b.where))
        if wait:
            findings.append(PastedFinding(f"{b.where}: PortXmitWait {wait} (congestion: the port waited to send)",
                                          "warning", device=b.where))
    for b in infos:
        state, phys = b.link_state, b.values.get("PhysLinkState")
        speed = b.values.get("LinkSpeedExtActive") if b.values.get("LinkSpeedActive") == "Extended speed" \
            else b.values.get("LinkSpeedActive")
        width = b.values.get("LinkWidthActive")
        if state is None:
            parts.append(f"{b.where}: PortInfo without a link state" + (f" ({width} {speed})" if speed else ""))
            continue
        parts.append(f"{b.where}: {state}/{phys or '?'}" + (f" {width} {speed}" if speed and state == "Active" else ""))
        if state.lower() not in ("active", "armed"):
            findings.append(PastedFinding(f"{b.where}: link {state} (physical state {phys or '?'})"
                                          + (" - disabled by configuration or unused" if (phys or "") == "Disabled"
                                             else ""), "warning", device=b.where))
    summary = f"{plural(len(counters), 'counter block')}, {plural(len(infos), 'PortInfo block')}: " + "; ".join(parts[:8])
    return summary, findings


def read_ibqueryerrors(text: str) -> tuple[str, list[PastedFinding]]:
    lines = infiniband.parse_ibqueryerrors(text)
    findings = []
    for q in lines:
        errors = {k: v for k, v in q.counters.items() if k in infiniband.IB_ERROR_COUNTERS}
        other = {k: v for k, v in q.counters.items() if k not in errors}
        msg = f"{q.node}: " + (f"{_fmt_counts(errors)} (errors)" if errors else "")
        if other:
            msg += ("; " if errors else "") + f"{_fmt_counts(other)}" + \
                   (" (PortXmitWait: congestion)" if "PortXmitWait" in other else "")
        findings.append(PastedFinding(msg, "warning", device=q.node))
    return f"{plural(len(lines), 'port')} over ibqueryerrors' thresholds", findings[:MAX_FINDINGS]


def read_rdma_link(text: str) -> tuple[str, list[PastedFinding]]:
    ports = infiniband.parse_rdma_link(text)
    down = [p for p in ports if not p.active]
    summary = f"{plural(len(ports), 'RDMA link')}: {len(ports) - len(down)} ACTIVE, {len(down)} not"
    findings = [PastedFinding(f"{p.hca}/{p.port} is {p.state} (physical state {p.physical_state or '?'})",
                              "critical" if (p.physical_state or "").upper() == "LINK_UP" else "warning",
                              device=f"{p.hca}/{p.port}") for p in down]
    return summary, findings[:MAX_FINDINGS]


# --------------------------------------------------------------------------- NICs


def read_ethtool(text: str) -> tuple[str, list[PastedFinding]]:
    st = health.parse_ethtool_stats(text)
    bad = {k: v for k, v in st.counters.items() if v > 0 and health.is_error_counter(st.base(k))}
    who = ", ".join(x for x in (st.driver, st.bus) if x)
    summary = f"ethtool -S: {plural(len(st.counters), 'counter')}" + (f" ({who})" if who else "") + \
        (f"; nonzero error/drop counters: {_fmt_counts(bad, 4)}" if bad else "; no error or drop counter above 0")
    findings = []
    if bad:
        rx = st.counters.get("rx_packets") or sum(v for k, v in st.counters.items() if st.base(k) in
                                                  ("rx_packets", "rx_ucast_packets"))
        ratio = f" ({100.0 * sum(bad.values()) / rx:.3g}% of {rx} received packets)" if rx else ""
        findings.append(PastedFinding(f"NIC{' ' + st.bus if st.bus else ''}: error/drop counters above 0: "
                                      f"{_fmt_counts(bad)}{ratio}", "warning", device=st.bus))
    return summary, findings


def read_ip_link(text: str) -> tuple[str, list[PastedFinding]]:
    th = _health_thresholds()
    links = health.parse_ip_s_link(text)
    if not links:
        raise ParseError("ip -s link", "no interface line")
    findings = []
    for link in links:
        if link.name == "lo" or link.name.startswith(th["virtual_if"]):
            continue
        bad = []
        for direction, stats in (("RX", link.rx), ("TX", link.tx)):
            errors, packets = stats.get("errors", 0), stats.get("packets", 0)
            if errors > 0 and (errors > th["nic_errors_max"] or errors > th["nic_error_ratio"] * packets):
                bad.append(f"{direction} errors {errors}" + (f" ({100.0 * errors / packets:.2f}% of {packets} packets)"
                                                             if packets else ""))
        if bad and link.state in ("UP", "UNKNOWN"):
            findings.append(PastedFinding(f"{link.name}: {', '.join(bad)}", "warning", device=link.name))
        if link.admin_up and (link.state == "DOWN" or link.no_carrier):
            findings.append(PastedFinding(f"{link.name} is configured up but its link is down (no carrier: cable, optic "
                                          "or switch port)", "warning", device=link.name))
    parts = []
    for link in links[:8]:
        rx = link.rx
        drops = f", RX dropped {rx['dropped']}" if rx.get("dropped") else ""
        parts.append(f"{link.name} {link.state or '?'} (RX errors {rx.get('errors', '?')}{drops})")
    return f"{plural(len(links), 'interface')}: " + "; ".join(parts), findings


# --------------------------------------------------------------------------- lspci -vv


def read_lspci(text: str) -> tuple[str, list[PastedFinding]]:
    """Device lines (a device reading '(rev ff)' has fallen off the bus) and, in -vv output, each
    link's LnkCap/LnkSta (a downgraded speed or width) and AER status bits."""
    try:
        devices = kernel.parse_lspci(text)
    except ParseError:
        devices = []
    links = kernel.parse_lspci_links(text)
    if not devices and not links:
        raise ParseError("lspci", "no 'BUS:DEV.F class: device' line and no LnkSta line")
    nvidia = [d for d in devices if "NVIDIA" in d.description]
    gpus = [d for d in nvidia if re.search(r"VGA|3D|Display", d.device_class)]
    parts = []
    if devices:
        parts.append(f"{plural(len(devices), 'PCI device')}, {len(nvidia)} NVIDIA ({plural(len(gpus), 'GPU')})")
    findings = []
    seen: set[str] = set()
    for d in devices:
        bus = d.address.rsplit(".", 1)[0]
        if d.lost and bus not in seen:
            seen.add(bus)
            findings.append(PastedFinding(f"{d.address} {d.description} reads (rev ff): its config space is all ones, "
                                          "the device has fallen off the bus", "critical", None, d.address))
    with_sta = [lk for lk in links if lk.speed]
    if with_sta:
        down = [lk for lk in with_sta if lk.speed_downgraded or lk.width_downgraded]
        parts.append(f"{plural(len(with_sta), 'PCIe link')}, {len(down)} downgraded")
    for lk in links:
        where = lk.address or "the device (no address in the excerpt)"
        if lk.speed and (lk.speed_downgraded or lk.width_downgraded):
            what = []
            if lk.speed_downgraded:
                what.append(f"Speed {lk.speed}" + (f" of {lk.cap_speed}" if lk.cap_speed else "") + " (downgraded)")
            if lk.width_downgraded:
                what.append(f"Width {lk.width}" + (f" of {lk.cap_width}" if lk.cap_width else "") + " (downgraded)")
            findings.append(PastedFinding(f"PCIe link of {where} trained down: LnkSta {', '.join(what)} - a riser, slot, "
                                          "seating or signal problem (an idle GPU may also drop its speed to save "
                                          "power)", "warning", None, lk.address))
        if lk.aer_uncorrectable:
            findings.append(PastedFinding(f"{where}: AER uncorrectable error status set ({', '.join(lk.aer_uncorrectable)})",
                                          "error", None, lk.address))
        if lk.aer_correctable:
            findings.append(PastedFinding(f"{where}: AER correctable error status set ({', '.join(lk.aer_correctable)})",
                                          "warning", None, lk.address))
    return "; ".join(parts), findings[:MAX_FINDINGS]


# --------------------------------------------------------------------------- DCGM


def read_dcgmi_diag(text: str) -> tuple[str, list[PastedFinding]]:
    tests = health.parse_dcgmi_diag(text)
    if not tests:
        raise ParseError("dcgmi diag", "a result table without any test row")
    by: dict[str, int] = {}
    for t in tests:
        by[t.result] = by.get(t.result, 0) + 1
    summary = f"dcgmi diag: {plural(len(tests), 'test')} (" + ", ".join(f"{n} {r}" for r, n in by.items()) + ")"
    findings = []
    for t in tests:
        if t.result not in ("Fail", "Warn"):
            continue
        bad = sorted(g for g, r in t.gpu_results.items() if r == t.result)
        good = sorted(g for g, r in t.gpu_results.items() if r == "Pass")
        where = (" on " + ", ".join(f"GPU {g}" for g in bad)) if bad else ""
        also = (" (Pass on " + ", ".join(f"GPU {g}" for g in good) + ")") if good else ""
        why = f": {t.messages[0][:200]}" if t.messages else ""
        findings.append(PastedFinding(f"DCGM {t.section + ' / ' if t.section else ''}{t.name}: {t.result}{where}{also}{why}",
                                      "critical" if t.result == "Fail" else "warning", bad[0] if len(bad) == 1 else None))
    return summary, findings


_NULL_NAMES = ("<<<NULL>>>", "", "N/A", "Unknown", "Unknown Error")


def read_dcgmi_discovery(text: str) -> tuple[str, list[PastedFinding]]:
    found, devices = health.parse_dcgmi_discovery(text)
    names = {d.name for d in devices if d.name}
    summary = (f"{found} GPUs found; " if found is not None else "") + f"{plural(len(devices), 'GPU')} listed" + \
        (f" ({', '.join(sorted(names))})" if names else "")
    findings = [PastedFinding(f"DCGM GPU {d.gpu_id}" + (f" ({d.bus})" if d.bus else "") +
                              f": name reads {d.name!r} (DCGM cannot read it from NVML: a DCGM/driver mismatch or a GPU "
                              "NVML cannot query)", "warning", d.gpu_id, d.bus)
                for d in devices if d.name is not None and d.name.strip() in _NULL_NAMES]
    return summary, findings


_DCGM_ERRORS = re.compile(
    r"(?P<mig>GPU (?P<gpu>\d+)'s MIG configuration is incompatible with the diagnostic[^\n]*)|"
    r"(?P<msg>Error: (?:Health watches not enabled[^\n]*|Unable to complete diagnostic[^\n]*|"
    r"Unable to connect to host engine[^\n]*|[^\n]*DCGM_ST_\w+[^\n]*)|Unable to establish a connection to the specified "
    r"host[^\n]*|Error: requested test [^\n]*)")


def read_dcgmi_error(text: str) -> tuple[str, list[PastedFinding]]:
    findings: list[PastedFinding] = []
    seen: set[str] = set()
    for m in _DCGM_ERRORS.finditer(text):
        line = m.group(0).strip()
        if line in seen:
            continue
        seen.add(line)
        if m.group("mig"):
            findings.append(PastedFinding(f"dcgmi diag did not run: {line} (disable MIG on that GPU, or run the "
                                          "diagnostic on GPUs without MIG)", "error", int(m.group("gpu"))))
        elif "Health watches not enabled" in line:
            findings.append(PastedFinding(f"dcgmi health did not check anything: {line} (enable them first: dcgmi "
                                          "health -s a)", "error"))
        else:
            findings.append(PastedFinding(f"dcgmi failed: {line[:200]}", "error"))
    return f"dcgmi error ({plural(len(findings), 'message')})", findings[:MAX_FINDINGS]


# --------------------------------------------------------------------------- kernel hardware errors


def kernel_hw_findings(text: str) -> tuple[list[str], list[PastedFinding]]:
    """Summary parts and findings of the kernel log's hardware-error lines: PCIe AER, EDAC, machine
    checks, APEI/GHES records and NVRM 'GPU lost' messages (Xid, fallen-off-the-bus and OOM lines are
    detect's kernel reader's)."""
    th = _health_thresholds()
    parts: list[str] = []
    findings: list[PastedFinding] = []
    lost = kernel.parse_gpu_lost(text)
    if lost:
        parts.append("the driver lost a GPU")
        where = f"the GPU at PCI {lost.bus}" if lost.bus else "a GPU (no bus id in these lines)"
        findings.append(PastedFinding(f"NVRM: {where} was lost from the bus (NV_ERR_GPU_IS_LOST, x{lost.count}; no Xid 79 "
                                      "line): the GPU is unreachable until a reset or reboot", "critical", None, lost.bus))
    aer = kernel.parse_aer(text)
    if aer:
        parts.append(f"PCIe AER errors on {plural(len({a.bus for a in aer}), 'device')}")
    for a in aer:
        detail = ", ".join(sorted(a.types)) + (f": {_fmt_counts(a.errors)}" if a.errors else "")
        sev = "critical" if "fatal" in a.severity.lower() and "non" not in a.severity.lower() else \
            ("error" if a.fatal else ("warning" if a.count <= th["aer_correctable_max"] else "error"))
        findings.append(PastedFinding(f"PCIe AER {a.severity} error x{a.count} on {a.bus}" + (f" ({detail})" if detail else "")
                                      + (" - the link or device is failing" if a.fatal else
                                         " - corrected by the link, but repeated ones point at a marginal link, riser "
                                         "or device"), sev, None, a.bus))
    edac = kernel.parse_edac_events(text)
    if edac:
        ce = sum(e.count for e in edac if e.kind == "CE")
        ue = sum(e.count for e in edac if e.kind == "UE")
        parts.append(f"EDAC: {ce} corrected (CE), {ue} uncorrected (UE) memory errors")
    for e in edac:
        if e.kind == "UE":
            findings.append(PastedFinding(f"EDAC {e.mc}: {e.count} uncorrected (UE) memory error(s) on {e.location} "
                                          f"({e.what}): replace the DIMM", "critical", None, e.location))
        else:
            findings.append(PastedFinding(f"EDAC {e.mc}: {e.count} corrected (CE) memory error(s) on {e.location} "
                                          f"({e.what}): watch the DIMM; many predict an uncorrectable one",
                                          "error" if e.count > th["edac_ce_max"] else "warning", None, e.location))
    mce = kernel.parse_mce(text)
    if mce:
        banks = f" (banks {', '.join(mce.banks)})" if mce.banks else ""
        parts.append(f"{plural(max(mce.logged, mce.corrected + mce.uncorrected), 'machine check event')}")
        if mce.uncorrected:
            findings.append(PastedFinding(f"{mce.uncorrected} uncorrected machine check error(s){banks}: a CPU or memory "
                                          "hardware fault", "critical"))
        elif not edac:  # the EDAC lines above already say what the machine checks were
            n = mce.corrected or mce.logged
            findings.append(PastedFinding(f"{n} machine check event(s) logged{banks}"
                                          + (", corrected" if mce.corrected else "") +
                                          " (CPU/memory hardware errors; mcelog or rasdaemon decodes them)", "warning"))
    for rec in kernel.parse_apei(text):
        sev = rec.severity or "?"
        parts.append(f"APEI {rec.section or 'hardware error'} ({sev})")
        findings.append(PastedFinding(f"firmware (APEI/GHES) reports a {sev} {rec.section or 'hardware error'}"
                                      + (f" on {rec.device}" if rec.device else ""),
                                      "critical" if sev.lower() == "fatal" else ("error" if sev.lower() == "recoverable"
                                                                                 else "warning"), None, rec.device))
    return parts, findings


def read_edac_counters(text: str) -> tuple[str, list[PastedFinding]]:
    th = _health_thresholds()
    ctrls = health.parse_edac(text)
    if not ctrls:
        raise ParseError("edac", "no '…/edac/mc/mcN/ce_count' value")
    summary = "EDAC: " + "; ".join(f"{c.mc} {c.ce} CE, {c.ue} UE" for c in ctrls[:8])
    findings = []
    for c in ctrls:
        if c.ue:
            findings.append(PastedFinding(f"EDAC {c.mc}: {c.ue} uncorrected (UE) memory error(s)", "critical", device=c.mc))
        if c.ce:
            findings.append(PastedFinding(f"EDAC {c.mc}: {c.ce} corrected (CE) memory error(s)",
                                          "error" if c.ce > th["edac_ce_max"] else "warning", device=c.mc))
    return summary, findings


def read_ras_mc_ctl(text: str) -> tuple[str, list[PastedFinding]]:
    rep = health.parse_ras_mc_ctl(text)
    parts = []
    if rep.memory_errors is not None:
        parts.append(f"{rep.memory_errors} memory errors")
    if rep.aer_errors is not None:
        parts.append(f"{rep.aer_errors} PCIe AER errors")
    parts.append(f"machine check (MCE) records: {rep.mce_corrected} corrected, {rep.mce_uncorrected} uncorrected")
    if rep.error_count:
        ce = sum(v[0] for v in rep.error_count.values())
        ue = sum(v[1] for v in rep.error_count.values())
        parts.append(f"error-count: {ce} CE, {ue} UE on {plural(len(rep.error_count), 'DIMM label')}")
    findings = []
    what = f": {rep.mce_events[0][:160]}" if rep.mce_events else ""
    if rep.mce_uncorrected:
        findings.append(PastedFinding(f"{rep.mce_uncorrected} uncorrected machine check error(s){what}", "critical"))
    elif rep.mce_corrected:
        findings.append(PastedFinding(f"{rep.mce_corrected} corrected machine check error(s){what}", "warning"))
    for label, (ce, ue) in rep.error_count.items():
        if ue:
            findings.append(PastedFinding(f"{label}: {ue} uncorrected (UE) memory error(s)", "critical", device=label))
        elif ce:
            findings.append(PastedFinding(f"{label}: {ce} corrected (CE) memory error(s)", "warning", device=label))
    return "ras-mc-ctl: " + "; ".join(parts), findings[:MAX_FINDINGS]


# --------------------------------------------------------------------------- nvidia-smi nvlink -e, -q -x


def read_nvlink_errors(text: str) -> tuple[str, list[PastedFinding]]:
    r = nvidia_smi.parse_nvlink_errors(text)
    links = sum(len(v) for v in r.counters.values())
    findings = []
    for gpu, per_link in r.counters.items():
        for link, counts in per_link.items():
            bad = {k: v for k, v in counts.items() if v}
            unknown = [k for k, v in counts.items() if v is None]
            if bad:
                findings.append(PastedFinding(f"GPU {gpu} NVLink {link}: {_fmt_counts(bad)} (a marginal link: reseat or "
                                              "run field diagnostics if it grows)", "warning", gpu))
            if unknown:
                findings.append(PastedFinding(f"GPU {gpu} NVLink {link}: {', '.join(unknown)} not readable", "warning", gpu))
    summary = f"nvlink -e: {plural(len(r.counters), 'GPU')}, {plural(links, 'link')}, " + \
        ("error counters above 0 on some links" if findings else "every error counter 0")
    return summary, findings[:MAX_FINDINGS]


_XML_BAD = ("[Unknown Error]", "Unknown Error", "[GPU is lost]", "GPU is lost", "ERR!", "[GPU requires reset]")


def _xml_leaves(d: dict[str, Any], path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out.extend(_xml_leaves(v, (*path, k)))
        else:
            out.append(((*path, k), str(v)))
    return out


def read_query_xml(text: str) -> tuple[str, list[PastedFinding]]:
    from diagnostics.checks import gpu as gpu_checks  # the checks' threshold

    q = nvidia_smi.parse_query_xml(text)
    gpus: dict[str, dict[str, Any]] = q["gpus"]
    names = sorted({str(g.get("product_name")) for g in gpus.values() if g.get("product_name")})
    summary = f"nvidia-smi -q -x: {plural(len(gpus), 'GPU')}" + (f" ({', '.join(names)})" if names else "")
    if q.get("driver_version"):
        summary += f", driver {q['driver_version']}"
    attached = q.get("attached_gpus", "")
    findings = []
    if attached.isdigit() and gpus and int(attached) > len(gpus) and "</nvidia_smi_log>" in text:
        findings.append(PastedFinding(f"{attached} GPUs attached but {len(gpus)} listed", "warning"))
    for bus, g in gpus.items():
        for path, value in _xml_leaves(g):
            if any(b.lower() == value.lower() for b in _XML_BAD):
                findings.append(PastedFinding(f"GPU {bus}: {'/'.join(path)} reads {value}", "error", None, bus))
            elif path[-1] in ("pending_retirement", "remapped_row_pending", "pending") and value.lower() == "yes":
                findings.append(PastedFinding(f"GPU {bus}: {'/'.join(path)} = Yes (a GPU reset is needed)", "critical",
                                              None, bus))
            elif path[-1] == "gpu_temp":
                m = re.match(r"(\d+)", value)
                if m and float(m.group(1)) >= gpu_checks.TEMP_WARN_C:
                    findings.append(PastedFinding(f"GPU {bus} at {m.group(1)} C (>= {gpu_checks.TEMP_WARN_C:g} C)",
                                                  "warning", None, bus))
            elif "volatile" in path and path[-1] in ("total", "dram_uncorrectable") and "double_bit" in path \
                    and value.isdigit() and int(value) > 0:
                findings.append(PastedFinding(f"GPU {bus}: {'/'.join(path)} = {value} (uncorrectable ECC errors)",
                                              "critical", None, bus))
    return summary, findings[:MAX_FINDINGS]


# --------------------------------------------------------------------------- systemd units


def read_systemd_failures(text: str) -> tuple[str, list[PastedFinding]]:
    """`systemctl --failed` / `systemctl list-units | grep failed` rows and systemd's failure
    messages in a journal or a `systemctl start` reply."""
    try:
        rows = [u for u in health.parse_systemctl_failed(text) if u.active == "failed" or u.sub == "failed"]
    except ParseError:
        rows = []
    logged = system.parse_unit_failures(text)
    if not rows and not logged:
        raise ParseError("systemd", "no failed unit row and no unit failure message")
    findings = [PastedFinding(f"{u.unit} failed ({u.load}/{u.active}/{u.sub}" + (f": {u.description}" if u.description
                                                                                  else "") + ")", "error", device=u.unit)
                for u in rows]
    listed = {u.unit for u in rows}
    for f in logged:
        if f.unit in listed:
            continue
        hint = " (no NVSwitch found: Fabric Manager is only for NVSwitch systems)" if \
            "fabricmanager" in f.unit and "NV_WARN_NOTHING_TO_DO" in text else ""
        findings.append(PastedFinding(f"{f.unit} failed: {'; '.join(f.reasons)}{hint}", "error", device=f.unit))
    names = [f.device or "" for f in findings]
    return f"{plural(len(findings), 'failed unit')}: {', '.join(names[:6])}", findings[:MAX_FINDINGS]


# --------------------------------------------------------------------------- Kubernetes


def node_resource_findings(d: scheduler.K8sNodeDescription) -> list[PastedFinding]:
    """GPU-like extended resources not (all) allocatable, or none advertised where the node's
    resources are shown."""
    who = d.name or "the node"
    findings = []
    for res, v in d.gpu_resources.items():
        cap, alloc = v.get("capacity"), v.get("allocatable")
        if cap is not None and alloc is not None and alloc < cap:
            findings.append(PastedFinding(f"{res} allocatable {alloc} < capacity {cap} on {who}: {cap - alloc} not "
                                          "allocatable (marked unhealthy by the device plugin?)", "warning", None,
                                          d.name or None))
        elif alloc == 0 and cap is None:
            findings.append(PastedFinding(f"{res} allocatable 0 on {who}: the device plugin advertises none of it",
                                          "warning", None, d.name or None))
    if d.resources_shown and not d.gpu_resources:
        findings.append(PastedFinding(f"no GPU resource (nvidia.com/gpu …) in {who}'s capacity: on a GPU node the device "
                                      "plugin is not running or has not registered", "warning", None, d.name or None))
    return findings


def read_kubectl_yaml(text: str) -> tuple[str, list[PastedFinding]]:
    d = scheduler.parse_kubectl_node_yaml(text)
    res = d.gpu_resource or "GPU"
    summary = f"node {d.name or '?'} (yaml)"
    summary += f": {res} capacity {d.gpu_capacity}, allocatable {d.gpu_allocatable}" if d.gpu_resource \
        else ": no GPU resource"
    findings = node_resource_findings(d)
    if d.conditions.get("Ready") in ("False", "Unknown"):
        findings.append(PastedFinding(f"{d.name} is not Ready (Ready={d.conditions['Ready']})", "critical", None, d.name))
    if d.unschedulable:
        findings.append(PastedFinding(f"{d.name} is cordoned (unschedulable: true)", "warning", None, d.name))
    return summary, findings


# --------------------------------------------------------------------------- Slurm


def read_sinfo_reasons(text: str) -> tuple[str, list[PastedFinding]]:
    rows = scheduler.parse_sinfo_reasons(text)
    findings = [PastedFinding(f"{r.nodelist} is down/drained: {r.reason} (set by {r.user} at {r.timestamp})", "warning",
                              None, r.nodelist) for r in rows]
    return f"sinfo -R: {plural(len(rows), 'node entry')}: " + ", ".join(r.nodelist for r in rows[:8]), findings[:MAX_FINDINGS]


def read_squeue(text: str) -> tuple[str, list[PastedFinding]]:
    jobs = scheduler.parse_squeue(text)
    running = [j for j in jobs if j.state in ("R", "RUNNING")]
    pending = [j for j in jobs if j.state in ("PD", "PENDING")]
    summary = f"squeue: {plural(len(jobs), 'job')}, {len(running)} running, {len(pending)} pending"
    if pending:
        summary += "; pending: " + ", ".join(f"{j.jobid} {j.reason}" for j in pending[:5])
    findings = []
    for j in jobs:
        if j.state in ("NF", "NODE_FAIL", "BF", "BOOT_FAIL"):
            findings.append(PastedFinding(f"job {j.jobid} ended by a node failure ({j.state}) on {j.reason}", "warning",
                                          None, j.reason))
        elif j.state in ("PD", "PENDING") and scheduler.SQUEUE_NODE_REASONS.search(j.reason):
            findings.append(PastedFinding(f"job {j.jobid} waits on unavailable nodes: {j.reason}", "warning"))
    return summary, findings[:MAX_FINDINGS]


# --------------------------------------------------------------------------- time, filesystems


def read_chronyc_sources(text: str) -> tuple[str, list[PastedFinding]]:
    sources, cannot = system.parse_chronyc_sources(text)
    selected = [s for s in sources if s.state == "*"]
    findings = []
    if cannot:
        findings.append(PastedFinding("chronyc could not reach chronyd ('506 Cannot talk to daemon')"
                                      + (" on one try; other lines answered" if sources else ": is chronyd running?"),
                                      "warning"))
    if sources and not selected:
        findings.append(PastedFinding("no source is selected ('^*'): chrony is not synchronised", "warning"))
    unusable = [s.name for s in sources if s.state in ("?", "x", "~")]
    if unusable:
        findings.append(PastedFinding(f"{plural(len(unusable), 'source')} unusable, false or too variable "
                                      f"('?', 'x', '~'): {', '.join(unusable[:6])}", "warning"))
    summary = f"chronyc sources: {plural(len(sources), 'source')}" + \
        (f"; selected: {selected[0].name} (stratum {selected[0].stratum})" if selected else "; none selected")
    return summary, findings


def read_stat_f(text: str) -> tuple[str, list[PastedFinding]]:
    from diagnostics.checks import host  # the checks' threshold

    records = system.parse_stat_f(text)
    parts = []
    findings = []
    for r in records:
        pct, ipct = r.used_pct, r.inodes_used_pct
        parts.append(f"{r.path} ({r.fs_type}): {pct if pct is not None else '?'}% of "
                     f"{r.blocks_total * r.block_size / 2**20:.0f} MiB used"
                     + (f", {ipct}% of inodes" if ipct is not None else ""))
        if pct is not None and pct >= host.DISK_FULL_PCT:
            findings.append(PastedFinding(f"{r.path} is {pct}% full", "critical" if pct >= 97 else "warning",
                                          device=r.path))
        if ipct is not None and ipct >= host.DISK_FULL_PCT:
            findings.append(PastedFinding(f"{r.path} has used {ipct}% of its inodes", "warning", device=r.path))
    return "stat -f: " + "; ".join(parts), findings
