"""Generic host-health tools: systemctl --failed, ps states, sysfs counter greps (PCIe AER, EDAC,
InfiniBand port counters), ``ip -s link``, ``ethtool -S`` / ``ethtool -i``, /proc/mounts,
``df -P -T``, ``lfs check servers``, ``lfs df``, ``dcgmi diag`` and ``dcgmi discovery`` tables and
``ras-mc-ctl`` reports.

Pure functions: text in, dataclasses out. Lines that are not in a tool's format are skipped and
noted through ``skip_line`` (their text never becomes data); output with no recognisable line at
all raises ``ParseError``. Every entry point strips ANSI colour codes and carriage returns first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from diagnostics.parsers.common import ParseError, skip_line

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def clean_text(text: str | None) -> str:
    """Text with ANSI escape sequences, carriage returns and NULs removed."""
    if not text:
        return ""
    return _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def _int(text: str) -> int | None:
    text = text.strip()
    if re.fullmatch(r"[+-]?\d{1,20}", text):
        return int(text)
    if re.fullmatch(r"0x[0-9a-fA-F]{1,16}", text):
        return int(text, 16)
    return None


# --------------------------------------------------------------------------- systemctl --failed


@dataclass(frozen=True)
class FailedUnit:
    unit: str
    load: str
    active: str
    sub: str
    description: str


_UNIT_SUFFIXES = ("service", "mount", "socket", "target", "timer", "path", "device", "scope", "slice", "swap",
                  "automount")
_UNIT = re.compile(r"^[A-Za-z0-9@_.:\\-]+\.(?:" + "|".join(_UNIT_SUFFIXES) + r")$")
_LOAD_STATES = {"loaded", "not-found", "bad-setting", "error", "merged", "masked", "stub"}


def parse_systemctl_failed(text: str) -> list[FailedUnit]:
    """``systemctl --failed [--no-legend --plain]`` rows. The header, the legend, the 'N loaded
    units listed' footer and bullets ('●', '*', an escaped '\\u25cf') are skipped silently; an
    empty output (or '0 loaded units listed') means no failed unit."""
    units: list[FailedUnit] = []
    skipped: list[int] = []
    for no, raw in enumerate(clean_text(text).splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        tokens = line.split()
        if tokens[0] == "UNIT" or tokens[0].startswith(("LOAD", "ACTIVE", "SUB", "Legend:")) or line.endswith(
                ("units listed.", "units listed", "list-unit-files'.")) or "loaded units listed" in line:
            continue
        if tokens[0] in ("ACTIVE", "SUB") or line.startswith(("To show all", "Pass --all")):
            continue
        # drop bullets and any other junk before the unit name
        start = next((i for i, t in enumerate(tokens) if _UNIT.match(t.rstrip(">"))), None)
        if start is None or len(tokens) < start + 3 or tokens[start + 1] not in _LOAD_STATES:
            skipped.append(no)
            continue
        unit = tokens[start].rstrip(">")
        sub = tokens[start + 3].rstrip(">") if len(tokens) > start + 3 else ""
        description = " ".join(tokens[start + 4:]).rstrip(">").strip()
        units.append(FailedUnit(unit, tokens[start + 1], tokens[start + 2].rstrip(">"), sub, description))
    if skipped and not units:
        raise ParseError("systemctl", "no 'UNIT LOAD ACTIVE SUB DESCRIPTION' row found", skipped[0])
    for no in skipped:
        skip_line("systemctl", no)
    return units


# --------------------------------------------------------------------------- ps


@dataclass(frozen=True)
class Proc:
    pid: int
    stat: str
    wchan: str
    seconds: int | None  # elapsed time since the process started (ps etimes); None when not printed
    comm: str


_PS_HEADER_NAMES = {
    "PID": "pid", "STAT": "stat", "S": "stat", "WCHAN": "wchan", "ELAPSED": "etimes", "ETIMES": "etimes",
    "COMMAND": "comm", "COMM": "comm", "CMD": "comm",
}


def parse_ps_states(text: str) -> list[Proc]:
    """``ps -eo pid,stat,wchan:32,etimes,comm`` (header optional). With a header its column
    names decide the order; without one the order above is assumed, and a row whose fourth
    column is not a number is read as pid, stat, wchan, command (no elapsed time)."""
    lines = [(no, ln) for no, ln in enumerate(clean_text(text).splitlines(), 1) if ln.strip()]
    if not lines:
        return []
    order = ["pid", "stat", "wchan", "etimes", "comm"]
    first = lines[0][1].split()
    if first and first[0] == "PID":
        mapped = [_PS_HEADER_NAMES.get(h) for h in first]
        if "pid" in mapped and "stat" in mapped:
            order = [m or f"_{i}" for i, m in enumerate(mapped)]
        lines = lines[1:]
    procs: list[Proc] = []
    skipped: list[int] = []
    for no, line in lines:
        parts = line.split(None, len(order) - 1)
        row = dict(zip(order, parts, strict=False))
        if order[:5] == ["pid", "stat", "wchan", "etimes", "comm"] and _int(row.get("etimes", "0")) is None:
            # no elapsed-time column (pid,stat,wchan,cmd): the fourth field starts the command
            rest = line.split(None, 3)
            row = dict(zip(["pid", "stat", "wchan", "comm"], rest, strict=False))
        pid = _int(row.get("pid", ""))
        stat = row.get("stat", "")
        if pid is None or not re.fullmatch(r"[DRSTtWXZIKPN<+sl]{1,8}", stat):
            skipped.append(no)
            continue
        etimes = row.get("etimes")
        procs.append(Proc(pid, stat, row.get("wchan", "-"), _int(etimes) if etimes is not None else None,
                          row.get("comm", "").strip()))
    if not procs and skipped:
        raise ParseError("ps", "no 'PID STAT WCHAN …' row found", skipped[0])
    for no in skipped:
        skip_line("ps", no)
    return procs


# --------------------------------------------------------------------------- sysfs greps

# `grep -H . FILES`: "<path>:<line of the file>". PCI paths contain ':' themselves, so the path
# ends at the last "/<attribute name>:" on the line.
_SYSFS_LINE = re.compile(r"^(?P<path>/\S*/(?P<attr>[A-Za-z_][A-Za-z0-9_]*)):(?P<value>.*)$")


@dataclass(frozen=True)
class SysfsValue:
    path: str
    attr: str
    value: str
    line: int


def parse_sysfs_grep(text: str, tool: str = "grep") -> list[SysfsValue]:
    """Every 'path:value' line; grep's own messages ('No such file or directory') and other
    lines are skipped and noted."""
    values: list[SysfsValue] = []
    for no, raw in enumerate(clean_text(text).splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        m = _SYSFS_LINE.match(line)
        if m is None:
            skip_line(tool, no)
            continue
        values.append(SysfsValue(m.group("path"), m.group("attr"), m.group("value").strip(), no))
    return values


_PCI_ADDR = re.compile(r"/(?P<bus>(?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])/aer_dev_"
                       r"(?P<kind>correctable|fatal|nonfatal)$")
_AER_TOTALS = {"correctable": "TOTAL_ERR_COR", "fatal": "TOTAL_ERR_FATAL", "nonfatal": "TOTAL_ERR_NONFATAL"}


@dataclass
class AerDevice:
    bus: str  # as in sysfs, e.g. '0000:4c:00.0'
    counters: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> error name -> count

    def total(self, kind: str) -> int:
        c = self.counters.get(kind, {})
        total = c.get(_AER_TOTALS[kind])
        return total if total is not None else sum(v for k, v in c.items() if not k.startswith("TOTAL_"))


def parse_aer(text: str) -> list[AerDevice]:
    """``grep -H . /sys/bus/pci/devices/*/aer_dev_{correctable,fatal,nonfatal}`` per device."""
    devices: dict[str, AerDevice] = {}
    for v in parse_sysfs_grep(text, "aer"):
        m = _PCI_ADDR.search(v.path)
        parts = v.value.split()
        count = _int(parts[-1]) if len(parts) == 2 else None
        if m is None or count is None:
            skip_line("aer", v.line)
            continue
        dev = devices.setdefault(m.group("bus").lower(), AerDevice(m.group("bus").lower()))
        dev.counters.setdefault(m.group("kind"), {})[parts[0]] = count
    return list(devices.values())


_EDAC_PATH = re.compile(r"/mc/(?P<mc>mc\d+)/(?:(?P<sub>[A-Za-z]+\d+)/)?(?:dimm_)?(?P<kind>ce|ue)_count$")


@dataclass
class EdacController:
    mc: str
    ce: int = 0
    ue: int = 0
    detail: dict[str, dict[str, int]] = field(default_factory=dict)  # dimm/rank/csrow -> {ce, ue}


_SYSFS_PATH_ONLY = re.compile(r"^\s*/sys/\S+/[A-Za-z_][A-Za-z0-9_]*\s*$")
_INT_ONLY = re.compile(r"^\s*(?:\d{1,20}|0x[0-9a-fA-F]{1,16})\s*$")


def join_path_values(text: str) -> str:
    """A sysfs file's path on one line and its value on the next (``for f in …; do echo $f; cat
    $f; done``) becomes grep -H's 'path:value' on the path's line; the value's line is left empty,
    so line numbers do not move."""
    lines = clean_text(text).split("\n")
    for i in range(len(lines) - 1):
        if _SYSFS_PATH_ONLY.match(lines[i]) and _INT_ONLY.match(lines[i + 1]):
            lines[i], lines[i + 1] = f"{lines[i].strip()}:{lines[i + 1].strip()}", ""
    return "\n".join(lines)


def parse_edac(text: str) -> list[EdacController]:
    """``grep -H . …/edac/mc/mc*/{ce,ue}_count`` (also per-DIMM ``dimm_ce_count`` and per-csrow
    lines, which are summed per controller when the controller total is absent; and the path and
    value on two lines, as a ``find … | while read f; do echo $f; cat $f; done`` loop prints them)."""
    ctrls: dict[str, EdacController] = {}
    totals: dict[tuple[str, str], int] = {}
    for v in parse_sysfs_grep(join_path_values(text), "edac"):
        m = _EDAC_PATH.search(v.path)
        count = _int(v.value)
        if m is None or count is None:
            skip_line("edac", v.line)
            continue
        c = ctrls.setdefault(m.group("mc"), EdacController(m.group("mc")))
        kind = m.group("kind")
        if m.group("sub"):
            c.detail.setdefault(m.group("sub"), {})[kind] = count
        else:
            totals[(c.mc, kind)] = count
    for c in ctrls.values():
        for kind in ("ce", "ue"):
            value = totals.get((c.mc, kind))
            if value is None:
                value = sum(d.get(kind, 0) for d in c.detail.values())
            setattr(c, kind, value)
    return list(ctrls.values())


_IB_PATH = re.compile(r"/infiniband/(?P<hca>[^/\s]+)/ports/(?P<port>\d+)/counters/(?P<name>\w+)$")


@dataclass
class IbPortCounters:
    hca: str
    port: int
    counters: dict[str, int | None] = field(default_factory=dict)  # None: 'N/A (no PMA)'


def parse_ib_counters(text: str) -> list[IbPortCounters]:
    """``grep -H . /sys/class/infiniband/*/ports/*/counters/NAME …`` per HCA port."""
    ports: dict[tuple[str, int], IbPortCounters] = {}
    for v in parse_sysfs_grep(text, "ib counters"):
        m = _IB_PATH.search(v.path)
        if m is None:
            skip_line("ib counters", v.line)
            continue
        count = _int(v.value)
        if count is None and not v.value.upper().startswith("N/A"):
            skip_line("ib counters", v.line)
            continue
        key = (m.group("hca"), int(m.group("port")))
        ports.setdefault(key, IbPortCounters(*key)).counters[m.group("name")] = count
    return list(ports.values())


# --------------------------------------------------------------------------- ip -s link


@dataclass
class NetLink:
    index: int
    name: str
    flags: tuple[str, ...]
    state: str
    rx: dict[str, int] = field(default_factory=dict)  # bytes, packets, errors, dropped, overrun/missed, mcast
    tx: dict[str, int] = field(default_factory=dict)  # bytes, packets, errors, dropped, carrier, collsns

    @property
    def admin_up(self) -> bool:
        return "UP" in self.flags

    @property
    def no_carrier(self) -> bool:
        return "NO-CARRIER" in self.flags


_LINK_HEAD = re.compile(r"^(?P<idx>\d+):\s+(?P<name>[^:\s]+?)(?:@\S+)?:\s+<(?P<flags>[^>]*)>(?P<rest>.*)$")
_STATS_HEAD = re.compile(r"^\s*(?P<dir>RX|TX):\s+(?P<cols>[a-z ]+)$")


def parse_ip_s_link(text: str) -> list[NetLink]:
    """``ip -s link`` / ``ip -s -s link``: every interface with its state and RX/TX counters
    (iproute2's older 'bytes packets errors dropped overrun mcast' and newer 'bytes packets errors
    dropped missed mcast' headers both work; an 'RX errors:' detail block is read too)."""
    links: list[NetLink] = []
    pending: tuple[str, list[str]] | None = None  # the stats header whose numbers come next
    skipped: list[int] = []
    for no, raw in enumerate(clean_text(text).splitlines(), 1):
        if not raw.strip():
            continue
        head = _LINK_HEAD.match(raw)
        if head:
            state = re.search(r"\bstate (\S+)", head.group("rest"))
            links.append(NetLink(int(head.group("idx")), head.group("name"),
                                 tuple(f for f in head.group("flags").split(",") if f),
                                 state.group(1) if state else ""))
            pending = None
            continue
        if not links:
            skipped.append(no)
            continue
        cur = links[-1]
        line = raw.strip()
        if not cur.state and (m := re.match(r"^state (\S+)", line)):  # a header wrapped onto two lines
            cur.state = m.group(1)
            continue
        sh = _STATS_HEAD.match(raw)
        if sh:
            pending = (sh.group("dir"), sh.group("cols").split())
            continue
        detail = re.match(r"^(RX|TX) errors:\s+(?P<cols>[a-z ]+)$", line)
        if detail:
            pending = (detail.group(1) + "_detail", detail.group("cols").split())
            continue
        if pending is not None and re.fullmatch(r"[\d\s]+", line):
            direction, cols = pending
            values = [int(x) for x in line.split()]
            target = cur.rx if direction.startswith("RX") else cur.tx
            for col, val in zip(cols, values, strict=False):
                key = col if not direction.endswith("_detail") else f"{col}_errors"
                target.setdefault(key, val)
            pending = None
            continue
        if line.startswith(("link/", "alias ", "altname ", "prop ", "vf ", "inet", "valid_lft")):
            continue
        skipped.append(no)
    if not links and skipped:
        raise ParseError("ip -s link", "no 'N: name: <FLAGS> …' interface line found", skipped[0])
    for no in skipped:
        skip_line("ip -s link", no)
    return links


# --------------------------------------------------------------------------- mounts and df


@dataclass(frozen=True)
class Mount:
    device: str
    mountpoint: str
    fstype: str
    options: str


NETWORK_FS = frozenset({"nfs", "nfs4", "lustre", "beegfs", "gpfs", "cifs", "smb3", "smbfs", "ceph", "glusterfs",
                        "wekafs", "panfs", "orangefs", "pvfs2", "9p", "afs"})


def is_network_fs(fstype: str) -> bool:
    """Network and parallel filesystems (and FUSE ones: juicefs, s3fs, gcsfuse, sshfs, ceph-fuse …)
    whose server can hang every process that touches them."""
    if fstype in NETWORK_FS:
        return True
    return fstype.startswith("fuse.") and fstype not in ("fuse.portal", "fuse.gvfsd-fuse", "fuse.lxcfs")


def _unescape_mount(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def parse_proc_mounts(text: str) -> list[Mount]:
    """``cat /proc/mounts`` (octal escapes such as '\\040' decoded)."""
    mounts: list[Mount] = []
    skipped: list[int] = []
    for no, raw in enumerate(clean_text(text).splitlines(), 1):
        parts = raw.split()
        if not parts:
            continue
        if len(parts) < 4 or not parts[1].startswith("/"):
            skipped.append(no)
            continue
        mounts.append(Mount(_unescape_mount(parts[0]), _unescape_mount(parts[1]), parts[2], parts[3]))
    if not mounts and skipped:
        raise ParseError("/proc/mounts", "no 'device mountpoint fstype options' line found", skipped[0])
    for no in skipped:
        skip_line("/proc/mounts", no)
    return mounts


@dataclass(frozen=True)
class DfTRow:
    filesystem: str
    fstype: str
    total_kb: int
    used_kb: int
    available_kb: int
    use_pct: int | None
    mount: str


def parse_df_t(text: str) -> list[DfTRow]:
    """``df -P -T`` rows (Filesystem Type 1024-blocks Used Available Capacity Mounted-on)."""
    rows: list[DfTRow] = []
    skipped: list[int] = []
    header = False
    for no, raw in enumerate(clean_text(text).splitlines(), 1):
        parts = raw.split()
        if not parts:
            continue
        if parts[0] == "Filesystem":
            header = True
            continue
        if len(parts) >= 7 and all(re.fullmatch(r"\d+|-", p) for p in parts[2:5]) and re.fullmatch(r"\d+%|-", parts[5]):
            nums = [int(p) if p != "-" else 0 for p in parts[2:5]]
            pct = int(parts[5].rstrip("%")) if parts[5] != "-" else None
            rows.append(DfTRow(parts[0], parts[1], nums[0], nums[1], nums[2], pct, " ".join(parts[6:])))
        else:
            skipped.append(no)
    if not rows and not header:
        raise ParseError("df", "no 'Filesystem Type …' header or row found", skipped[0] if skipped else None)
    for no in skipped:
        skip_line("df", no)
    return rows


_DF_ERROR = re.compile(r"^df: [‘'`\"]?(?P<path>[^’'`\"]+?)[’'`\"]?: (?P<error>.+)$")


def parse_df_errors(text: str) -> list[tuple[str, str]]:
    """(path, error) for each 'df: PATH: Stale file handle' style message on stderr."""
    out = []
    for raw in clean_text(text).splitlines():
        m = _DF_ERROR.match(raw.strip())
        if m:
            out.append((m.group("path"), m.group("error").strip()))
    return out


# --------------------------------------------------------------------------- Lustre


@dataclass(frozen=True)
class LustreTarget:
    name: str  # e.g. 'scratch-OST0001-osc-ffff8a0d3c2b5000' or 'scratch-OST0001_UUID'
    target: str  # 'scratch-OST0001' (or 'OST0001' when lfs printed no fsname)
    status: str  # 'active', 'inactive', or the error text
    ok: bool


_LUSTRE_TARGET = re.compile(r"(?P<target>(?:[A-Za-z0-9_]+-)?(?:OST|MDT)[0-9a-fA-F]{4})")


def _target_of(name: str) -> str:
    m = _LUSTRE_TARGET.search(name)
    return m.group("target") if m else name


def parse_lfs_check_servers(text: str) -> list[LustreTarget]:
    """``lfs check servers`` (stdout and stderr together): 'NAME active.' per reachable target,
    "error: check 'NAME': REASON" (or 'error: check NAME: REASON') per unreachable one."""
    out: list[LustreTarget] = []
    for no, raw in enumerate(clean_text(text).splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        m = re.match(r"^(?P<name>\S+) (?P<state>active|inactive)\.?$", line)
        if m:
            out.append(LustreTarget(m.group("name"), _target_of(m.group("name")), m.group("state"),
                                    m.group("state") == "active"))
            continue
        e = re.match(r"^error: check '?(?P<name>[^':\s]+)'?:?\s*(?P<why>.*)$", line)
        if e:
            out.append(LustreTarget(e.group("name"), _target_of(e.group("name")),
                                    e.group("why").strip() or "check failed", False))
            continue
        skip_line("lfs check servers", no)
    return out


@dataclass(frozen=True)
class LfsDfRow:
    uuid: str
    target: str
    used_pct: int | None
    mount: str
    status: str  # 'ok', 'inactive device' or the error lfs printed
    ok: bool


def parse_lfs_df(text: str) -> list[LfsDfRow]:
    """``lfs df`` per-target rows ('filesystem summary' lines and headers are skipped)."""
    rows: list[LfsDfRow] = []
    for no, raw in enumerate(clean_text(text).splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("UUID", "filesystem summary", "filesystem_summary")):
            continue
        m = re.match(r"^(?P<uuid>\S+)\s+(?P<total>\d+)\s+(?P<used>\d+)\s+(?P<avail>\d+)\s+(?P<pct>\d+|-)%?\s+(?P<mount>\S.*)$",
                     line)
        if m:
            pct = None if m.group("pct") == "-" else int(m.group("pct"))
            rows.append(LfsDfRow(m.group("uuid"), _target_of(m.group("uuid")), pct, m.group("mount"), "ok", True))
            continue
        bad = re.match(r"^(?P<uuid>\S+)\s*:\s*(?P<why>.+)$", line)
        if bad and _LUSTRE_TARGET.search(bad.group("uuid")):
            rows.append(LfsDfRow(bad.group("uuid"), _target_of(bad.group("uuid")), None, "", bad.group("why").strip(),
                                 False))
            continue
        skip_line("lfs df", no)
    return rows


# --------------------------------------------------------------------------- dcgmi diag


@dataclass
class DcgmTest:
    name: str
    section: str
    result: str  # 'Pass', 'Fail', 'Warn', 'Skip' (first word of the result cell)
    detail: str  # the whole result cell, e.g. 'Fail - All'
    gpu_results: dict[int, str] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)  # Warning/Info rows, continuation lines joined


_DCGM_ROW = re.compile(r"^\|(?P<name>[^|]*)\|(?P<value>[^|]*)\|$")
_DCGM_SECTION = re.compile(r"^[|+]-+\s+(?P<section>[A-Za-z][A-Za-z ]*?)\s+-+\+")


# DCGM 3.x prints per-GPU results as 'Pass - GPU: 1' on the test's row and 'Fail - GPU: 0' on the
# rows under it ('Pass - All' when every GPU agrees).
_DCGM_PER_GPU = re.compile(r"^(?P<result>Pass|Fail|Warn|Skip)\s*-\s*GPUs?\s*:\s*(?P<gpus>\d+(?:\s*,\s*\d+)*)")
_DCGM_RANK = {"Fail": 4, "Warn": 3, "Pass": 2, "Skip": 1, "Not Run": 0}


def _worsen(test: DcgmTest, result: str) -> None:
    """A test's overall result is its worst per-GPU result."""
    if _DCGM_RANK.get(result, 0) > _DCGM_RANK.get(test.result, 0):
        test.result = result


def parse_dcgmi_diag(text: str) -> list[DcgmTest]:
    """``dcgmi diag -r N`` tables (DCGM 3.x '| PCIe | Fail - All |' or '| GPU Memory | Pass - GPU: 1 |'
    with '| | Fail - GPU: 0 |' rows, and 4.x '| pcie | Fail |' with '| | GPU0: Pass |' rows). A test's
    result is its worst per-GPU result. Metadata rows are skipped; Warning/Info rows and their
    wrapped continuation lines become the preceding test's messages (an excerpt's leading
    continuation rows, before any test, are dropped)."""
    tests: list[DcgmTest] = []
    section = ""
    current_msg: list[str] | None = None
    last_cell = ""
    found_table = False
    for no, raw in enumerate(clean_text(text).splitlines(), 1):
        line = raw.rstrip()
        if not line.strip():
            continue
        sec = _DCGM_SECTION.match(line.strip())
        if sec:
            section, current_msg = sec.group("section").strip(), None
            found_table = True
            continue
        if re.fullmatch(r"\+[-=+]+\+", line.strip()):
            found_table = True
            continue
        m = _DCGM_ROW.match(line.strip())
        if m is None:
            if not line.startswith(("Successfully ran diagnostic", "Executing in Pod", "Defaulted container")):
                skip_line("dcgmi diag", no)
            continue
        found_table = True
        name, cell = m.group("name").strip(), m.group("value")
        cell = cell[1:] if cell.startswith(" ") else cell
        value = cell.strip()
        if name == "Diagnostic" and value == "Result":
            continue
        if section == "Metadata":
            continue
        if name in ("Warning", "Info", "Error"):
            if tests:
                tests[-1].messages.append(value)
                current_msg = tests[-1].messages
                last_cell = cell
            continue
        if not name:
            g = re.match(r"^GPU\s?(\d+)\s*:\s*(\w+)", value)
            g3 = _DCGM_PER_GPU.match(value)
            if g and tests:
                tests[-1].gpu_results[int(g.group(1))] = g.group(2)
                _worsen(tests[-1], g.group(2))
                current_msg = None
            elif g3 and tests:
                for gpu in re.findall(r"\d+", g3.group("gpus")):
                    tests[-1].gpu_results[int(gpu)] = g3.group("result")
                _worsen(tests[-1], g3.group("result"))
                tests[-1].detail += f"; {value}"
                current_msg = None
            elif current_msg:
                # DCGM wraps messages at the cell width: a chunk that filled its cell was cut mid-word
                full = len(last_cell.rstrip()) >= len(last_cell) - 2
                current_msg[-1] = current_msg[-1] + ("" if full else " ") + cell.rstrip()
                current_msg[-1] = re.sub(r"\s{2,}", " ", current_msg[-1])
                last_cell = cell
            continue
        word = value.split()[0] if value.split() else ""
        if word not in ("Pass", "Fail", "Warn", "Skip", "Not"):
            skip_line("dcgmi diag", no)
            continue
        test = DcgmTest(name, section, "Not Run" if word == "Not" else word, value)
        g3 = _DCGM_PER_GPU.match(value)
        if g3:
            for gpu in re.findall(r"\d+", g3.group("gpus")):
                test.gpu_results[int(gpu)] = g3.group("result")
        tests.append(test)
        current_msg = None
    if not found_table:
        raise ParseError("dcgmi diag", "no result table in the output")
    return tests



# --------------------------------------------------------------------------- dcgmi discovery


@dataclass
class DcgmDevice:
    gpu_id: int
    name: str | None = None
    bus: str | None = None
    uuid: str | None = None


_DISC_FOUND = re.compile(r"^(?P<n>\d+) GPUs? found\.?$")
_DISC_ROW = re.compile(r"^\|\s*(?P<id>\d*)\s*\|\s*(?P<body>.*?)\s*\|?$")


def parse_dcgmi_discovery(text: str) -> tuple[int | None, list[DcgmDevice]]:
    """``dcgmi discovery -l``: the 'N GPUs found.' count and, per GPU ID, its Name / PCI Bus ID /
    Device UUID rows (CPU and NvSwitch tables are skipped). No GPU row: ParseError."""
    found: int | None = None
    devices: list[DcgmDevice] = []
    in_gpus = False
    for no, raw in enumerate(clean_text(text).splitlines(), 1):
        line = raw.strip()
        if not line or re.fullmatch(r"\+[-=+]+\+?", line):
            continue
        m = _DISC_FOUND.match(line)
        if m:
            found = int(m.group("n")) if "GPU" in line else found
            in_gpus = "GPU" in line
            continue
        if re.match(r"^\|\s*(?:GPU|Switch|CPU|Link)\s*ID\s*\|", line):
            in_gpus = "GPU" in line
            continue
        r = _DISC_ROW.match(line)
        if r is None or not in_gpus:
            skip_line("dcgmi discovery", no)
            continue
        if r.group("id"):
            devices.append(DcgmDevice(int(r.group("id"))))
        if not devices:
            continue
        key, _, value = r.group("body").partition(":")
        key, value = key.strip(), value.strip()
        if key == "Name":
            devices[-1].name = value
        elif key == "PCI Bus ID":
            devices[-1].bus = value
        elif key == "Device UUID":
            devices[-1].uuid = value
    if not devices:
        raise ParseError("dcgmi discovery", "no '| GPU ID | Device Information |' row")
    return found, devices


# --------------------------------------------------------------------------- ras-mc-ctl


@dataclass
class RasReport:
    memory_errors: int | None = None  # None: not reported
    aer_errors: int | None = None
    mce_corrected: int = 0
    mce_uncorrected: int = 0
    mce_events: list[str] = field(default_factory=list)  # 'Corrected error …, CPU 2, bank Unified Memory Controller'
    error_count: dict[str, tuple[int, int]] = field(default_factory=dict)  # label -> (CE, UE)


_RAS_NONE = re.compile(r"^No (?P<what>Memory|PCIe AER|ARM processor|Extlog|devlink|disk|MCE) errors?\.?$", re.IGNORECASE)
_RAS_MCE_SUMMARY = re.compile(r"^(?P<n>\d+) (?P<kind>Corrected|Uncorrected|Fatal|Deferred)\b", re.IGNORECASE)
_RAS_MCE_EVENT = re.compile(r"^\d+ .*?error: (?P<what>.*)$")
_RAS_COUNT = re.compile(r"^(?P<label>\S+)\s+(?P<ce>\d+)\s+(?P<ue>\d+)$")


def parse_ras_mc_ctl(text: str) -> RasReport:
    """``ras-mc-ctl --summary`` / ``--errors`` / ``--error-count`` (rasdaemon), any of them or all
    pasted together: 'No Memory errors.', the MCE records summary and events, and the per-DIMM
    CE/UE table. Nothing of these: ParseError."""
    rep = RasReport()
    section = ""
    seen = False
    for raw in clean_text(text).splitlines():
        line = raw.strip()
        if not line:
            continue
        n = _RAS_NONE.match(line)
        if n:
            seen = True
            what = n.group("what").lower()
            if what == "memory":
                rep.memory_errors = 0
            elif what == "pcie aer":
                rep.aer_errors = 0
            continue
        if line.endswith(":") and ("summary" in line.lower() or "events" in line.lower()):
            section, seen = line.lower(), True
            continue
        if line.split()[:3] == ["Label", "CE", "UE"]:
            section, seen = "error-count", True
            continue
        if section.startswith("mce records summary"):
            m = _RAS_MCE_SUMMARY.match(line)
            if m:
                if m.group("kind").lower() == "corrected":
                    rep.mce_corrected += int(m.group("n"))
                else:
                    rep.mce_uncorrected += int(m.group("n"))
            continue
        if section.startswith("mce events"):
            e = _RAS_MCE_EVENT.match(line)
            if e:
                rep.mce_events.append(e.group("what")[:200])
            continue
        if section == "error-count":
            c = _RAS_COUNT.match(line)
            if c:
                rep.error_count[c.group("label")] = (int(c.group("ce")), int(c.group("ue")))
            continue
    if rep.mce_events and not (rep.mce_corrected or rep.mce_uncorrected):
        for ev in rep.mce_events:
            if ev.lower().startswith("corrected"):
                rep.mce_corrected += 1
            else:
                rep.mce_uncorrected += 1
    if not seen:
        raise ParseError("ras-mc-ctl", "no ras-mc-ctl summary, events or error-count table")
    return rep


# --------------------------------------------------------------------------- ethtool -S / -i


@dataclass
class EthtoolStats:
    driver: str | None
    bus: str | None
    counters: dict[str, int]  # as printed, a per-queue prefix kept: '[0]: rx_discards', 'rxq0: rx_bytes'

    def base(self, key: str) -> str:
        """The counter's name without a per-queue prefix."""
        return key.rsplit(": ", 1)[-1]


# A counter that counts trouble (errors, drops, misses, CRC/FIFO/frame problems), not traffic.
_ETH_BAD = re.compile(r"err|drop|discard|miss|crc|fifo|overrun|no_?buf|timeout|collision|jabber|fail|abort|"
                      r"carrier|heartbeat|underrun|illegal|frame|runt|fragment|oversize|undersize|symbol|align|"
                      r"out_of_buffer|lost", re.IGNORECASE)
_ETH_NOT_BAD = re.compile(r"_ok$|good|frames?_(?:rx|tx)_|_frames?$|csum_(?:none|complete|unnecessary|partial)",
                          re.IGNORECASE)
_ETH_LINE = re.compile(r"^(?P<key>(?:\[\d+\]|[a-z]+q?\d+|ch\d+|queue_\d+):?\s*)?(?P<name>[A-Za-z][\w.\-]*)\s*:\s*"
                       r"(?P<value>-?\d+)$")


def is_error_counter(name: str) -> bool:
    return bool(_ETH_BAD.search(name)) and not _ETH_NOT_BAD.search(name)


def parse_ethtool_stats(text: str) -> EthtoolStats:
    """``ethtool -S IFACE`` ('NIC statistics:' then 'name: value' lines, with per-queue prefixes
    '[0]: name: value' / 'rxq0: name: value'), with the ``ethtool -i`` driver / bus-info lines
    where pasted alongside. Other lines are skipped and noted; no counter: ParseError."""
    counters: dict[str, int] = {}
    driver = bus = None
    in_stats = False
    for no, raw in enumerate(clean_text(text).splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("NIC statistics:"):
            in_stats = True
            continue
        if line.startswith("driver:"):
            driver = line.split(":", 1)[1].strip() or None
            continue
        if line.startswith("bus-info:"):
            bus = line.split(":", 1)[1].strip() or None
            continue
        m = _ETH_LINE.match(line) if in_stats else None
        if m is None:
            skip_line("ethtool -S", no)
            continue
        prefix = (m.group("key") or "").strip().rstrip(":")
        counters[f"{prefix}: {m.group('name')}" if prefix else m.group("name")] = int(m.group("value"))
    if not counters:
        raise ParseError("ethtool -S", "no 'NIC statistics:' counter line")
    return EthtoolStats(driver, bus, counters)
