"""Generic anomaly checks: faults that have no fault kind of their own (kernel, host hardware,
network stack, storage, scheduler daemons). The registry includes them (``CHECKS + HEALTH_CHECKS``).

Every check is read-only and parses the real tool's output (``diagnostics.parsers.health``).
Kernel and job logs are matched against the signature catalogue (``diagnostics.signatures``,
imported lazily: a catalogue that fails to load makes these checks say so, never pass); everything else reads counters
and states directly. A parser never raises: a missing tool or device, a permission refusal or an
empty sysfs glob is status no_data (never ok), unreadable output is status error. A command that
times out is reported by the toolkit as status timeout; only ``mount_health`` wraps its ``df`` in
``timeout`` because a hung ``df`` is the very symptom it looks for.

Finding ``data`` always carries a ``category`` (gpu-hardware, memory, network, storage,
scheduler, configuration, kernel, other) so the agent can route an unknown fault.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from diagnostics.parsers import health
from diagnostics.parsers.common import ParseError, collect_skipped, skipped_summary
from diagnostics.registry import Param, ParseInput, ParseOutput, ToolSpec
from diagnostics.types import CommandResult, Finding, Severity, Status

# --------------------------------------------------------------------------- thresholds

TRAIN_LOG = "/var/log/clusterdoc/train.log"  # the same default as diagnostics.checks' job_step_times
_MOUNT_PATTERN = r"/[A-Za-z0-9_./-]{0,200}"
# A process in uninterruptible sleep that has lived this long is suspicious (a fresh one is I/O).
HUNG_TASK_MIN_S = 60
HUNG_TASK_CRITICAL_S = 600
# PCIe AER: any fatal/non-fatal error is a broken link or device; a few correctable ones are normal.
AER_CORRECTABLE_MAX = 100
# EDAC: correctable DRAM errors in the thousands predict an uncorrectable one.
EDAC_CE_MAX = 1000
# NIC: errors above 0.1% of packets, or more than this many, are a bad cable/optic/port.
NIC_ERROR_RATIO = 0.001
NIC_ERRORS_MAX = 1000
# InfiniBand port counters since boot (or the last reset).
IB_SYMBOL_ERRORS_MAX = 100
IB_RCV_ERRORS_MAX = 100
# Warning-level kernel signatures become findings above info only when they repeat this often.
SIGNATURE_REPEAT_WARN = 10
# How long df may take before a mount counts as hung (well under the toolkit's 30 s command timeout).
DF_TIMEOUT_S = 15
# Interfaces that are virtual or belong to container runtimes: their state is not a fault.
VIRTUAL_IF_PREFIXES = ("lo", "docker", "veth", "virbr", "cali", "flannel", "cni", "tunl", "br-", "vxlan", "kube-ipvs",
                       "cilium", "lxc", "weave", "dummy", "bond-slave")
_MAX_UNKNOWN_LINES = 5
_MAX_LINE = 300
_UNKNOWN_CANDIDATES_MAX = 2000  # candidate lines looked up one by one in the catalogue at most

_ERROR_WORDS = re.compile(
    r"\b(?:errors?|fail(?:ed|ure|s)?|Call Trace|panic|Oops|timed? ?out|not responding|blocked for more than|"
    r"soft lockup|hard LOCKUP|segfault|fatal|critical|uncorrect\w*|Hardware Error)\b"
    r"|\bBUG\b", re.IGNORECASE)
_NOT_ERRORS = re.compile(r"\b(?:no errors?|0 errors?|error[_ ]?count[=:] ?0|errors=remount-ro|EDAC .* initialized)\b",
                         re.IGNORECASE)

# --------------------------------------------------------------------------- helpers (not checks._common's: here
# a tool is also absent when root is refused or when it runs under `timeout N`, and a parser bug
# is caught as an error, since these checks must never pass a node by accident)

_DENIED = ("permission denied", "operation not permitted", "must be root", "requires root", "access denied")


def _text(out: CommandResult) -> str:
    return f"{out.stdout}\n{out.stderr}"


def _absent(out: CommandResult) -> str | None:
    """Why the tool could not run at all (not installed, not allowed), or None."""
    prog = out.command.split()[0] if out.command.split() else "tool"
    if prog == "timeout" and len(out.command.split()) > 2:
        prog = out.command.split()[2]
    low = _text(out).lower()
    if out.exit_code == 127 or (out.exit_code not in (0, None) and "command not found" in low):
        return f"{prog} not installed on this node"
    if out.exit_code == 126:
        return f"{prog} is not executable here (permission denied)"
    if out.exit_code not in (0, None) and not out.stdout.strip() and any(d in low for d in _DENIED):
        return f"{prog}: permission denied ({(out.stderr or out.stdout).strip()[:120]})"
    return None


def _guard(*, check: Iterable[int] = (0,)) -> Callable[[Callable[[ParseInput], ParseOutput]],
                                                      Callable[[ParseInput], ParseOutput]]:
    """Absent tools on the commands at positions ``check`` -> no_data; ParseError -> error; any
    other exception -> error (a parser bug must not pass for a healthy node). Skipped lines are
    counted in data."""
    positions = tuple(check)

    def wrap(fn: Callable[[ParseInput], ParseOutput]) -> Callable[[ParseInput], ParseOutput]:
        def parse(inp: ParseInput) -> ParseOutput:
            if not inp.outputs:
                return ParseOutput(Status.ERROR, error="no command output to parse")
            for i in positions:
                if i < len(inp.outputs):
                    why = _absent(inp.outputs[i])
                    if why is not None:
                        return ParseOutput(Status.NO_DATA, error=why)
            with collect_skipped() as skipped:
                try:
                    result = fn(inp)
                except ParseError as exc:
                    result = ParseOutput(Status.ERROR, error=str(exc))
                except Exception as exc:  # never raise into the toolkit, never report ok by accident
                    result = ParseOutput(Status.ERROR, error=f"{fn.__name__} failed: {type(exc).__name__}: {exc}")
            if skipped:
                result.data = {**result.data, **skipped_summary(skipped)}
            return result

        parse.__name__ = getattr(fn, "__name__", "parse")
        parse.__doc__ = fn.__doc__
        return parse

    return wrap


def _result(findings: list[Finding], data: dict[str, Any], error: str = "") -> ParseOutput:
    """Problem when a finding is above info; info-only findings (unrecognised log lines, a failed
    unit of no known importance) are kept but leave the node ok."""
    serious = any(f.severity != "info" for f in findings)
    return ParseOutput(Status.PROBLEM if serious else Status.OK, findings, data, error)


def _cut(text: str, n: int = _MAX_LINE) -> str:
    text = text.strip()
    return text if len(text) <= n else text[: n - 1] + "…"


def _check(name: str, description: str, category: Any, level: Any, params: tuple[Param, ...],
           commands: tuple[str, ...], parse: Callable[[ParseInput], ParseOutput], **kw: Any) -> ToolSpec:
    return ToolSpec(name=name, description=description, category=category, level=level, kind="read_only",
                    params=params, commands=commands, parse=parse, **kw)


# --------------------------------------------------------------------------- signature catalogue


def _catalog() -> tuple[Any, str]:
    """(catalogue, '') or (None, why it is unavailable)."""
    try:
        from diagnostics.signatures import load_catalog  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        return None, f"signature catalogue unavailable ({exc})"
    try:
        return load_catalog(), ""
    except Exception as exc:
        return None, f"signature catalogue failed to load: {type(exc).__name__}: {exc}"


def _matches(catalog: Any, text: str) -> list[Any]:
    """``catalog.match(text)`` as a list, whatever shape it returns (list, iterator, one match, None)."""
    result = catalog.match(text)
    if result is None:
        return []
    if hasattr(result, "signature"):
        return [result]
    return list(result)


def _attr(obj: Any, name: str, default: Any = None) -> Any:
    value = getattr(obj, name, default)
    return default if value is None else value


def _plain(value: Any) -> Any:
    """A catalogue value as JSON-able data (str, number, bool, None, lists and dicts of those)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return str(value)


def _signature_severity(sig_severity: str, count: int) -> Severity:
    s = str(sig_severity).lower()
    if s == "critical":
        return "critical"
    if s == "error":
        return "warning"
    if s == "warning" and count >= SIGNATURE_REPEAT_WARN:
        return "warning"
    return "info"


def _signature_finding(kind: str, host: str, m: Any, where: str) -> Finding:
    sig = _attr(m, "signature")
    count = int(_attr(m, "count", 1) or 1)
    first = _cut(str(_attr(m, "first_line", "")))
    sig_id = str(_attr(sig, "id", "unknown"))
    title = str(_attr(sig, "title", sig_id))
    data = {
        "signature": sig_id, "title": title, "category": str(_attr(sig, "category", "other")),
        "scope": str(_attr(sig, "scope", "")), "fault_kind": _plain(_attr(sig, "fault_kind")),
        "cause": str(_attr(sig, "cause", "")), "fix": str(_attr(sig, "fix", "")), "action": _plain(_attr(sig, "action")),
        "checks": _plain(list(_attr(sig, "checks", ()) or ())), "count": count, "first_line": first,
        "source": str(_attr(sig, "source", "")),
        "signature_severity": str(_attr(sig, "severity", "")),
    }
    groups = _attr(m, "groups")
    if isinstance(groups, dict):
        data["groups"] = {str(k): str(v)[:120] for k, v in groups.items()}
    times = f" x{count}" if count > 1 else ""
    return Finding(kind, host, f"{where}: {title}{times} ({first[:140]})",
                   severity=_signature_severity(data["signature_severity"], count), data=data)


def _log_findings(inp: ParseInput, text: str, kind: str, where: str, *, unknown: bool) -> ParseOutput:
    text = health.clean_text(text)
    lines = text.splitlines()
    catalog, why = _catalog()
    findings: list[Finding] = []
    matched_ids: list[str] = []
    if catalog is not None:
        try:
            for m in _matches(catalog, text):
                f = _signature_finding(kind, inp.host, m, where)
                findings.append(f)
                matched_ids.append(f.data["signature"])
        except Exception as exc:  # a catalogue bug: keep what the lines themselves say
            why = f"signature matching failed: {type(exc).__name__}: {exc}"
            catalog = None
    data: dict[str, Any] = {"signatures": matched_ids}
    if unknown:
        unknown_lines = _unknown_lines(catalog, lines)
        data["unknown_error_lines"] = len(unknown_lines)
        if unknown_lines:
            findings.append(Finding(
                f"{kind}_unknown", inp.host,
                f"{len(unknown_lines)} {where} line(s) look like errors but match no known signature",
                severity="info",
                data={"category": "kernel", "count": len(unknown_lines),
                      "lines": [_cut(ln) for _no, ln in unknown_lines[:_MAX_UNKNOWN_LINES]]}))
    if why:
        # without the catalogue the check cannot tell a soft lockup from noise: never report ok
        data["catalog"] = why
        return ParseOutput(Status.ERROR, findings, data, why)
    return _result(findings, data)


def _unknown_lines(catalog: Any, lines: list[str]) -> list[tuple[int, str]]:
    """Error-looking lines no signature explains. A line within 40 lines after one a signature
    matched is taken as part of that event (its stack trace, register dump, 'Tainted:' line)."""
    out: list[tuple[int, str]] = []
    last_known = -10**9
    looked = 0
    for no, line in enumerate(lines, 1):
        if not _ERROR_WORDS.search(line) or _NOT_ERRORS.search(line):
            continue
        known = False
        if catalog is not None and looked < _UNKNOWN_CANDIDATES_MAX:
            looked += 1
            try:
                known = bool(_matches(catalog, line))
            except Exception:
                known = False
        if known:
            last_known = no
            continue
        if no - last_known <= 40:
            continue
        out.append((no, line))
    return out


# --------------------------------------------------------------------------- kernel and job logs

# dmesg '[  12.345678] …' / dmesg -T '[Mon Mar 11 08:14:03 2024] …', journalctl -k 'Mar 11 08:14:03 host kernel: …'
# or its -o short-iso form.
_KLOG_LINE = re.compile(r"^\s*(?:<\d>)?\[\s*(?:\d+\.\d+|[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d [\d:]{8} \d{4})\]"
                        r"|^[A-Z][a-z]{2} [ \d]\d [\d:]{8} \S+ kernel: |^\d{4}-\d\d-\d\dT[\d:]{8}\S* \S+ kernel: ")


@_guard()
def parse_kernel_errors(inp: ParseInput) -> ParseOutput:
    """dmesg -T lines grouped by known signature; unrecognised error lines as one info finding."""
    out = inp.outputs[0]
    if out.exit_code not in (0, None) and not out.stdout.strip():
        reason = (out.stderr or out.stdout).strip()[:160] or f"exit code {out.exit_code}"
        if "not permitted" in reason.lower() or "permission" in reason.lower():
            return ParseOutput(Status.NO_DATA, error=f"kernel log not readable: {reason}")
        raise ParseError("dmesg", reason)
    if not out.stdout.strip():
        return ParseOutput(Status.NO_DATA, error="the kernel log is empty (ring buffer cleared or not readable)")
    if not any(_KLOG_LINE.match(ln) for ln in health.clean_text(out.stdout).splitlines()):
        raise ParseError("dmesg", "no '[timestamp] message' kernel log line in the output")
    return _log_findings(inp, out.stdout, "kernel_error", "kernel log", unknown=True)


@_guard()
def parse_job_log_errors(inp: ParseInput) -> ParseOutput:
    """The training job's log tail matched against the signature catalogue."""
    out = inp.outputs[0]
    if out.exit_code not in (0, None):
        return ParseOutput(Status.NO_DATA, error=f"no training log on this node: {(out.stderr or out.stdout).strip()[:160]}")
    if not out.stdout.strip():
        return ParseOutput(Status.NO_DATA, error="the training log is empty")
    result = _log_findings(inp, out.stdout, "job_log_error", "job log", unknown=False)
    result.data["path"] = inp.params.get("path")
    return result


# --------------------------------------------------------------------------- systemd units and processes

_UNIT_CATEGORIES: tuple[tuple[str, str], ...] = (
    (r"^(nvidia-fabricmanager|nvidia-persistenced|nvidia-dcgm|dcgm|nv-hostengine|nvidia-imex)", "gpu-hardware"),
    (r"^(slurmd|slurmctld|slurmdbd|munge|kubelet|containerd|docker|cri-o|crio|pbs_mom|enroot|pyxis)", "scheduler"),
    (r"(\.mount|\.automount)$|^(nfs|lustre|lnet|beegfs|autofs|rpc-statd|rpcbind|gpfs|mmfs|weka|juicefs|ceph)",
     "storage"),
    (r"^(openibd|rdma|ibacm|opensm|NetworkManager|systemd-networkd|networking|network|mlnx|ib_|rshim|lldpd)",
     "network"),
    (r"^(chronyd|chrony|ntpd|ntp|systemd-timesyncd|ptp4l|phc2sys)", "configuration"),
)


def unit_category(unit: str) -> str:
    for pattern, category in _UNIT_CATEGORIES:
        if re.search(pattern, unit):
            return category
    return "other"


@_guard()
def parse_failed_units(inp: ParseInput) -> ParseOutput:
    """systemctl --failed: one failed_unit finding per unit, categorised by its name."""
    out = inp.outputs[0]
    text = health.clean_text(_text(out)).lower()
    if "system has not been booted with systemd" in text or "failed to connect to bus" in text:
        return ParseOutput(Status.NO_DATA, error="systemd is not running on this node (container or init system)")
    if out.exit_code not in (0, None) and not out.stdout.strip():
        raise ParseError("systemctl", (out.stderr or "").strip()[:200] or f"exit code {out.exit_code}")
    units = health.parse_systemctl_failed(out.stdout)
    findings = []
    rows = []
    for u in units:
        category = unit_category(u.unit)
        info = {"unit": u.unit, "load": u.load, "active": u.active, "sub": u.sub, "description": u.description,
                "category": category}
        rows.append(info)
        severity: Severity = "info" if category == "other" else "warning"
        if u.unit.startswith("nvidia-fabricmanager"):
            severity = "critical"  # without it an NVSwitch system's GPUs cannot run CUDA work at all
        findings.append(Finding("failed_unit", inp.host, f"systemd unit {u.unit} has failed ({category})",
                                severity=severity, data=info))
    return _result(findings, {"failed_units": rows})


_STORAGE_WCHAN = ("nfs", "lustre", "ll_", "rpc", "xfs", "ext4", "jbd2", "io", "ptlrpc", "ldlm", "osc_", "mdc_", "beegfs",
                  "fuse", "ceph", "gpfs", "mmfs", "blk", "folio", "wait_on_page", "txg", "zfs", "zio")


def wchan_category(wchan: str) -> str:
    w = wchan.lower()
    return "storage" if any(k in w for k in _STORAGE_WCHAN) else "other"


@_guard()
def parse_hung_tasks(inp: ParseInput) -> ParseOutput:
    """Processes in uninterruptible sleep (state D) for more than a minute."""
    out = inp.outputs[0]
    if out.exit_code not in (0, None) and not out.stdout.strip():
        raise ParseError("ps", (out.stderr or "").strip()[:200] or f"exit code {out.exit_code}")
    procs = health.parse_ps_states(out.stdout)
    if not procs:
        raise ParseError("ps", "no processes listed")
    findings = []
    hung = []
    for p in procs:
        if not p.stat.startswith("D"):
            continue
        if p.seconds is not None and p.seconds <= HUNG_TASK_MIN_S:
            continue
        category = wchan_category(p.wchan)
        info = {"pid": p.pid, "comm": p.comm, "wchan": p.wchan, "seconds": p.seconds, "stat": p.stat,
                "category": category}
        hung.append(info)
        if p.seconds is None:
            severity: Severity = "info"
            age = "for an unknown time (ps printed no elapsed time)"
        else:
            severity = "critical" if p.seconds >= HUNG_TASK_CRITICAL_S and category == "storage" else "warning"
            age = f"and has run {p.seconds} s"
        findings.append(Finding("hung_task", inp.host,
                                f"{p.comm or 'process'} (pid {p.pid}) is in uninterruptible sleep in "
                                f"{p.wchan or '?'} {age}", severity=severity, data=info))
    return _result(findings, {"processes": len(procs), "d_state": hung})


# --------------------------------------------------------------------------- host hardware counters


def _no_sysfs_values(out: CommandResult, what: str) -> ParseOutput | None:
    if not health.parse_sysfs_grep(out.stdout):
        return ParseOutput(Status.NO_DATA, data={"note": f"no {what} exposed"}, error=f"no {what} exposed")
    return None


def _short_bus(bus: str) -> str:
    b = bus.lower()
    return b[5:] if re.match(r"^[0-9a-f]{4}:", b) else b


@_guard()
def parse_pcie_aer(inp: ParseInput) -> ParseOutput:
    """PCIe AER error counters per device; NVIDIA devices named from lspci."""
    out = inp.outputs[0]
    empty = _no_sysfs_values(out, "AER counters")
    if empty is not None:
        return empty
    devices = health.parse_aer(out.stdout)
    if not devices:
        raise ParseError("aer", "no 'aer_dev_*:NAME COUNT' line found")
    nvidia: dict[str, str] = {}
    if len(inp.outputs) > 1 and inp.outputs[1].exit_code == 0:
        for raw in health.clean_text(inp.outputs[1].stdout).splitlines():
            m = re.match(r"^((?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])\s+(.*)$", raw.strip())
            if m:
                nvidia[_short_bus(m.group(1))] = m.group(2)
    findings = []
    rows = []
    for d in devices:
        cor, fatal, nonfatal = d.total("correctable"), d.total("fatal"), d.total("nonfatal")
        desc = nvidia.get(_short_bus(d.bus))
        is_gpu = desc is not None and ("3D controller" in desc or "VGA" in desc or "Display" in desc)
        device = desc if desc else "PCIe device"
        info = {"bus": d.bus, "device": device, "correctable": cor, "fatal": fatal, "nonfatal": nonfatal,
                "category": "gpu-hardware" if desc is not None else "host-hardware",
                "nonzero": {k: {n: c for n, c in v.items() if c and not n.startswith("TOTAL_")}
                            for k, v in d.counters.items()}}
        rows.append({k: info[k] for k in ("bus", "device", "correctable", "fatal", "nonfatal")})
        what = "GPU" if is_gpu else ("NVIDIA device" if desc is not None else "PCIe device")
        if fatal or nonfatal:
            findings.append(Finding("pcie_aer_errors", inp.host,
                                    f"{what} {d.bus}: {fatal} fatal and {nonfatal} non-fatal PCIe errors "
                                    f"({cor} correctable)", severity="critical", data=info))
        elif cor > AER_CORRECTABLE_MAX:
            findings.append(Finding("pcie_aer_errors", inp.host,
                                    f"{what} {d.bus}: {cor} correctable PCIe errors (> {AER_CORRECTABLE_MAX}; "
                                    "a marginal link or riser)", severity="warning", data=info))
    return _result(findings, {"devices": rows})


@_guard()
def parse_mce_edac(inp: ParseInput) -> ParseOutput:
    """Corrected/uncorrected DRAM error counts per EDAC memory controller."""
    out = inp.outputs[0]
    empty = _no_sysfs_values(out, "EDAC memory controllers")
    if empty is not None:
        return empty
    ctrls = health.parse_edac(out.stdout)
    if not ctrls:
        raise ParseError("edac", "no 'mc*/ce_count:N' line found")
    findings = []
    rows = []
    for c in ctrls:
        info = {"mc": c.mc, "ce": c.ce, "ue": c.ue, "category": "memory",
                "dimms": {k: v for k, v in c.detail.items() if any(v.values())}}
        rows.append({"mc": c.mc, "ce": c.ce, "ue": c.ue})
        if c.ue > 0:
            findings.append(Finding("memory_ecc_errors", inp.host,
                                    f"memory controller {c.mc}: {c.ue} uncorrectable DRAM error(s) ({c.ce} corrected)",
                                    severity="critical", data=info))
        elif c.ce > EDAC_CE_MAX:
            findings.append(Finding("memory_ecc_errors", inp.host,
                                    f"memory controller {c.mc}: {c.ce} corrected DRAM errors (> {EDAC_CE_MAX}; a DIMM "
                                    "is failing)", severity="warning", data=info))
    return _result(findings, {"controllers": rows})


@_guard()
def parse_nic_errors(inp: ParseInput) -> ParseOutput:
    """RX/TX error rates of every physical interface, and interfaces up but without carrier."""
    out = inp.outputs[0]
    if out.exit_code not in (0, None) and not out.stdout.strip():
        raise ParseError("ip -s link", (out.stderr or "").strip()[:200] or f"exit code {out.exit_code}")
    links = health.parse_ip_s_link(out.stdout)
    if not links:
        raise ParseError("ip -s link", "no interface listed")
    findings = []
    rows = []
    for link in links:
        rows.append({"name": link.name, "state": link.state, "flags": list(link.flags),
                     "rx": dict(link.rx), "tx": dict(link.tx)})
        if link.name == "lo" or link.name.startswith(VIRTUAL_IF_PREFIXES):
            continue
        info = {"interface": link.name, "state": link.state, "flags": list(link.flags), "category": "network",
                "rx_packets": link.rx.get("packets"), "rx_errors": link.rx.get("errors"),
                "rx_dropped": link.rx.get("dropped"), "tx_packets": link.tx.get("packets"),
                "tx_errors": link.tx.get("errors"), "tx_dropped": link.tx.get("dropped")}
        bad = []
        for direction, stats in (("RX", link.rx), ("TX", link.tx)):
            errors, packets = stats.get("errors", 0), stats.get("packets", 0)
            if errors > 0 and (errors > NIC_ERRORS_MAX or errors > NIC_ERROR_RATIO * packets):
                pct = f" ({100.0 * errors / packets:.2f}% of {packets} packets)" if packets else ""
                bad.append(f"{direction} errors {errors}{pct}")
        if bad and link.state in ("UP", "UNKNOWN"):
            findings.append(Finding("nic_errors", inp.host, f"{link.name}: {', '.join(bad)}", severity="warning",
                                    data=info))
        if link.admin_up and (link.state == "DOWN" or link.no_carrier):
            findings.append(Finding("nic_errors", inp.host,
                                    f"{link.name} is configured up but its link is down (no carrier: cable, optic or "
                                    "switch port)", severity="warning", data={**info, "link_down": True}))
    return _result(findings, {"interfaces": rows})


_IB_WATCHED = ("symbol_error", "link_downed", "port_rcv_errors", "link_error_recovery", "excessive_buffer_overrun_errors")


@_guard()
def parse_ib_counters(inp: ParseInput) -> ParseOutput:
    """InfiniBand port error counters from sysfs."""
    out = inp.outputs[0]
    empty = _no_sysfs_values(out, "InfiniBand port counters")
    if empty is not None:
        return empty
    ports = health.parse_ib_counters(out.stdout)
    if not ports:
        raise ParseError("ib counters", "no '…/infiniband/HCA/ports/N/counters/NAME:VALUE' line found")
    if all(v is None for p in ports for v in p.counters.values()):
        return ParseOutput(Status.NO_DATA, data={"ports": [{"hca": p.hca, "port": p.port} for p in ports]},
                           error="the RDMA devices expose no port counters (N/A, no PMA: iWARP/RoCE soft device)")
    findings = []
    rows = []
    for p in ports:
        c = p.counters
        watched = {k: c.get(k) for k in _IB_WATCHED if k in c}
        info = {"hca": p.hca, "port": p.port, "counters": watched, "category": "network"}
        rows.append({"hca": p.hca, "port": p.port, **watched})
        bad = []
        if (c.get("link_downed") or 0) > 0:
            bad.append(f"link went down {c['link_downed']} time(s)")
        if (c.get("symbol_error") or 0) > IB_SYMBOL_ERRORS_MAX:
            bad.append(f"{c['symbol_error']} symbol errors")
        if (c.get("port_rcv_errors") or 0) > IB_RCV_ERRORS_MAX:
            bad.append(f"{c['port_rcv_errors']} receive errors")
        if bad:
            findings.append(Finding("ib_port_errors", inp.host, f"{p.hca} port {p.port}: {', '.join(bad)} "
                                    "(cable, transceiver or switch port)", severity="warning", data=info))
    return _result(findings, {"ports": rows})


# --------------------------------------------------------------------------- storage


def _df_hung(out: CommandResult) -> bool:
    return out.transport == "timeout" or out.exit_code in (124, 137) or (
        out.exit_code not in (0, None) and "timed out" in out.stderr.lower() and not out.stdout.strip())


def _under(path: str, mount: str) -> bool:
    return path == mount or path.startswith(mount.rstrip("/") + "/") or mount.startswith(path.rstrip("/") + "/")


@_guard(check=(0, 1))
def parse_mount_health(inp: ParseInput) -> ParseOutput:
    """Network/parallel filesystems from /proc/mounts; a df that hangs (killed by timeout) or
    reports 'Stale file handle' / 'Transport endpoint is not connected' is mount_unresponsive."""
    mounts_out = inp.outputs[0]
    if mounts_out.exit_code not in (0, None) and not mounts_out.stdout.strip():
        return ParseOutput(Status.NO_DATA, error=f"/proc/mounts not readable: {mounts_out.stderr.strip()[:120]}")
    mounts = health.parse_proc_mounts(mounts_out.stdout)
    if not mounts:
        raise ParseError("/proc/mounts", "no mount listed")
    path = inp.params.get("path")
    net = [m for m in mounts if health.is_network_fs(m.fstype) and (not path or _under(path, m.mountpoint))]
    net_rows = [{"mountpoint": m.mountpoint, "fstype": m.fstype, "source": m.device} for m in net]
    data: dict[str, Any] = {"network_mounts": net_rows, "path": path}
    if len(inp.outputs) < 2:
        return ParseOutput(Status.OK, data=data)
    df = inp.outputs[1]
    if _df_hung(df):
        scope = f" under {path}" if path else ""
        if net:
            names = ", ".join(f"{m.mountpoint} ({m.fstype})" for m in net[:6])
            text = f"df did not return within {DF_TIMEOUT_S} s: a network filesystem{scope} is hung ({names})"
        else:
            text = f"df did not return within {DF_TIMEOUT_S} s although no network filesystem{scope} is mounted"
        return _result([Finding("mount_unresponsive", inp.host, text, severity="critical",
                                data={"category": "storage", "mounts": net_rows, "reason": "df timed out"})],
                       {**data, "df": "timed out"})
    errors = health.parse_df_errors(df.stderr)
    if df.exit_code not in (0, None) and not df.stdout.strip() and not errors:
        raise ParseError("df", (df.stderr or "").strip()[:200] or f"exit code {df.exit_code}")
    rows = health.parse_df_t(df.stdout) if df.stdout.strip() else []
    data["df_rows"] = len(rows)
    findings = []
    by_mount = {m.mountpoint: m for m in mounts}
    for bad_path, error in errors:
        if path and not _under(path, bad_path):
            continue
        m = by_mount.get(bad_path)
        low = error.lower()
        if not any(k in low for k in ("stale", "not connected", "timed out", "input/output", "host is down",
                                      "no route", "resource temporarily", "connection")):
            continue
        findings.append(Finding("mount_unresponsive", inp.host, f"{bad_path}: {error}", severity="critical",
                                data={"category": "storage", "mounts": [{"mountpoint": bad_path,
                                                                         "fstype": m.fstype if m else None,
                                                                         "source": m.device if m else None}],
                                      "reason": error}))
    return _result(findings, data)


@_guard(check=(0, 1))
def parse_lustre_health(inp: ParseInput) -> ParseOutput:
    """Lustre targets this client cannot reach (lfs check servers) or sees inactive (lfs df)."""
    check = inp.outputs[0]
    text = health.clean_text(_text(check))
    low = text.lower()
    if any(k in low for k in ("no suitable lustre mount", "no lustre", "not a lustre", "no such device")) and \
            "active." not in low:
        return ParseOutput(Status.NO_DATA, error="no Lustre filesystem mounted on this node")
    if any(d in low for d in _DENIED) and "active." not in low:
        return ParseOutput(Status.NO_DATA, error=f"lfs check servers needs root: {text.strip()[:120]}")
    targets = health.parse_lfs_check_servers(text)
    df_rows = health.parse_lfs_df(inp.outputs[1].stdout + "\n" + inp.outputs[1].stderr) if len(inp.outputs) > 1 else []
    if not targets and not df_rows:
        if not text.strip():
            return ParseOutput(Status.NO_DATA, error="no Lustre targets listed (no Lustre filesystem mounted)")
        raise ParseError("lfs check servers", f"no 'TARGET active.' line: {text.strip()[:120]}")
    problems: dict[str, list[str]] = {}
    for t in targets:
        if not t.ok:
            problems.setdefault(t.target, []).append(f"check servers: {t.status}")
    for r in df_rows:
        if not r.ok:
            problems.setdefault(r.target, []).append(f"lfs df: {r.status}")
    findings = [
        Finding("lustre_unhealthy", inp.host, f"Lustre target {target} is unavailable ({'; '.join(why)})",
                severity="critical", data={"category": "storage", "target": target, "reasons": why})
        for target, why in problems.items()
    ]
    data = {"targets": [{"name": t.name, "target": t.target, "status": t.status} for t in targets],
            "df": [{"target": r.target, "used_pct": r.used_pct, "status": r.status} for r in df_rows]}
    return _result(findings, data)


# --------------------------------------------------------------------------- DCGM

_DCGM_ABSENT = ("unable to connect to host engine", "unable to establish a connection", "host engine is not running",
                "error connecting to", "nv-hostengine", "connection refused", "is the host engine running")


@_guard()
def parse_dcgm_diag(inp: ParseInput) -> ParseOutput:
    """dcgmi diag result table: one dcgm_diag_failed finding per failed test."""
    out = inp.outputs[0]
    text = health.clean_text(_text(out))
    low = text.lower()
    if "|" not in text and any(k in low for k in _DCGM_ABSENT):
        return ParseOutput(Status.NO_DATA, error=f"DCGM host engine not reachable: {text.strip()[:160]}")
    if "|" not in text:
        raise ParseError("dcgmi diag", text.strip()[:200] or f"no output (exit code {out.exit_code})")
    tests = health.parse_dcgmi_diag(out.stdout + "\n" + out.stderr)
    if not tests:
        raise ParseError("dcgmi diag", "a result table without any test row")
    findings = []
    for t in tests:
        failed_gpus = sorted(g for g, r in t.gpu_results.items() if r.lower().startswith("fail"))
        info = {"test": t.name, "section": t.section, "result": t.detail, "gpus_failed": failed_gpus,
                "messages": [_cut(m) for m in t.messages[:4]], "category": "gpu-hardware"}
        gpu = failed_gpus[0] if len(failed_gpus) == 1 else None
        if t.result == "Fail":
            why = f": {_cut(t.messages[0], 160)}" if t.messages else ""
            findings.append(Finding("dcgm_diag_failed", inp.host, f"DCGM diagnostic '{t.name}' ({t.section}) failed{why}",
                                    gpu=gpu, severity="critical", data=info))
        elif t.result == "Warn":
            why = f": {_cut(t.messages[0], 160)}" if t.messages else ""
            findings.append(Finding("dcgm_diag_warning", inp.host,
                                    f"DCGM diagnostic '{t.name}' ({t.section}) warned{why}", gpu=gpu,
                                    severity="warning", data=info))
    data = {"tests": [{"test": t.name, "section": t.section, "result": t.detail,
                       "gpus": {str(g): r for g, r in t.gpu_results.items()}} for t in tests]}
    return _result(findings, data)


# --------------------------------------------------------------------------- declarations

_AER_GLOBS = " ".join(f"/sys/bus/pci/devices/*/aer_dev_{k}" for k in ("correctable", "fatal", "nonfatal"))
_EDAC_GLOBS = "/sys/devices/system/edac/mc/mc*/ce_count /sys/devices/system/edac/mc/mc*/ue_count"
_IB_GLOBS = " ".join(f"/sys/class/infiniband/*/ports/*/counters/{c}" for c in _IB_WATCHED)

HEALTH_CHECKS: tuple[ToolSpec, ...] = (
    _check("kernel_errors", "Kernel log (dmesg) errors grouped by known signature (soft lockups, hung tasks, "
           "Lustre/NFS errors, Xids, MCEs, PCIe AER …) with cause and fix; unrecognised error lines as info; "
           "finds kernel_error, kernel_error_unknown", "system", "quick", (), ("dmesg -T",), parse_kernel_errors),
    _check("job_log_errors", "The training job's log matched against the known error signatures (NCCL timeouts, "
           "CUDA errors, OOM …); finds job_log_error", "job", "quick",
           (Param("path", "str", "the job's log", required=False, default=TRAIN_LOG, pattern=_MOUNT_PATTERN),),
           ("tail -n 2000 {path}",), parse_job_log_errors),
    _check("failed_units", "systemd units in the failed state (fabric manager, slurmd, kubelet, mounts, openibd …); "
           "finds failed_unit", "system", "quick", (), ("systemctl --failed --no-legend --plain",),
           parse_failed_units),
    _check("hung_tasks", "Processes stuck in uninterruptible sleep (D state) for over a minute and where they wait "
           "(NFS/Lustre/block I/O); finds hung_task", "system", "quick", (),
           ("ps -eo pid,stat,wchan:32,etimes,comm",), parse_hung_tasks),
    _check("pcie_aer", "PCIe Advanced Error Reporting counters of every device (GPUs named); finds pcie_aer_errors",
           "compute", "quick", (), (f"grep -H . {_AER_GLOBS}", "lspci -d 10de:"), parse_pcie_aer),
    _check("mce_edac", "Corrected and uncorrected DRAM (ECC) errors per EDAC memory controller; finds "
           "memory_ecc_errors", "memory", "quick", (), (f"grep -H . {_EDAC_GLOBS}",), parse_mce_edac),
    _check("nic_errors", "RX/TX error counters and carrier of every physical network interface (ip -s link); "
           "finds nic_errors", "network", "quick", (), ("ip -s link",), parse_nic_errors),
    _check("ib_counters", "InfiniBand port error counters (symbol errors, link downs, receive errors) from sysfs; "
           "finds ib_port_errors", "network", "quick", (), (f"grep -H . {_IB_GLOBS}",), parse_ib_counters),
    _check("mount_health", "Whether network/parallel filesystems (NFS, Lustre, BeeGFS, GPFS, FUSE) answer: df is "
           f"given {DF_TIMEOUT_S} s; finds mount_unresponsive", "storage", "quick",
           (Param("path", "str", "only the network filesystem mounted at or above this path", required=False,
                  pattern=_MOUNT_PATTERN),),
           ("cat /proc/mounts", f"timeout {DF_TIMEOUT_S} df -P -T{{path? }}"), parse_mount_health),
    _check("lustre_health", "Lustre client view of its servers (lfs check servers, lfs df): unreachable or inactive "
           "OSTs/MDTs; finds lustre_unhealthy", "storage", "quick", (), ("lfs check servers", "lfs df"),
           parse_lustre_health),
    _check("dcgm_diag", "DCGM diagnostics (dcgmi diag -r 1: deployment, software and quick hardware tests); finds "
           "dcgm_diag_failed per failed test", "compute", "medium", (), ("dcgmi diag -r 1",), parse_dcgm_diag,
           timeout_s=180.0),
)
