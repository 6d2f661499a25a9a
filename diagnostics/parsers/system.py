"""System tools: df (-P, -i), free, /proc/loadavg, nproc, cpufreq governors, chronyc tracking,
ping, ps, systemctl is-active."""

from __future__ import annotations

import re
from dataclasses import dataclass

from diagnostics.parsers.common import ParseError, skip_line


@dataclass(frozen=True)
class DfRow:
    filesystem: str
    mount: str
    total: int  # blocks (see the header's unit) or inodes
    used: int
    available: int
    use_pct: int | None  # None where df prints '-'


def parse_df(text: str) -> tuple[str, list[DfRow]]:
    """`df -P [-m|-i] …` -> (unit from the header, rows). Mount points may contain spaces."""
    lines = [(no, ln) for no, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    if not lines:
        raise ParseError("df", "empty output")
    start = next((i for i, (_no, ln) in enumerate(lines) if ln.split()[0] == "Filesystem" and len(ln.split()) > 1), None)
    if start is None:
        raise ParseError("df", f"expected a 'Filesystem …' header, got {lines[0][1][:60]!r}", lines[0][0])
    for no, _ln in lines[:start]:
        skip_line("df", no)
    unit = lines[start][1].split()[1]
    rows = []
    for no, line in lines[start + 1:]:
        parts = line.split()
        if len(parts) < 2 or not re.fullmatch(r"\d+|-", parts[1]):
            skip_line("df", no)  # not a filesystem row (a warning, anything else): its 2nd column is a size
            continue
        if len(parts) < 6:
            raise ParseError("df", f"expected 6 columns, got {len(parts)} (truncated?): {line[:60]!r}", no)
        fs, total, used, avail, pct = parts[:5]
        mount = " ".join(parts[5:])
        try:
            pct_v = None if pct == "-" else int(pct.rstrip("%"))
            rows.append(DfRow(fs, mount, int(total) if total != "-" else 0, int(used) if used != "-" else 0,
                              int(avail) if avail != "-" else 0, pct_v))
        except ValueError:
            raise ParseError("df", f"non-numeric column in {line[:60]!r}", no) from None
    return unit, rows


@dataclass(frozen=True)
class FreeMem:
    total: int
    used: int
    free: int
    available: int | None
    swap_total: int | None
    swap_used: int | None


def parse_free(text: str) -> FreeMem:
    mem = swap = None
    header = None
    for no, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "total" and header is None:
            header = parts
        elif parts[0] == "Mem:" and mem is None:
            mem = (parts[1:], no)
        elif parts[0] == "Swap:" and swap is None:
            swap = parts[1:]
        elif parts[0] not in ("Low:", "High:", "Total:", "-/+"):
            skip_line("free", no)
    if mem is None:
        raise ParseError("free", "no 'Mem:' line")
    values, no = mem
    try:
        nums = [int(v) for v in values]
    except ValueError:
        raise ParseError("free", f"non-numeric value in Mem: line {values}", no) from None
    if len(nums) < 3:
        raise ParseError("free", "Mem: line has fewer than 3 numbers (truncated?)", no)
    available = None
    if header and "available" in header and len(nums) > header.index("available"):
        available = nums[header.index("available")]
    s_total = s_used = None
    if swap and len(swap) >= 2:
        try:
            s_total, s_used = int(swap[0]), int(swap[1])
        except ValueError:
            raise ParseError("free", f"non-numeric value in Swap: line {swap}") from None
    return FreeMem(nums[0], nums[1], nums[2], available, s_total, s_used)


_LOADAVG = re.compile(r"^(\d+\.\d+) (\d+\.\d+) (\d+\.\d+)(?: \d+/\d+ \d+)?$")


def parse_loadavg(text: str) -> tuple[float, float, float]:
    """The first '/proc/loadavg' line ('0.52 0.58 0.59 2/1403 91337'); other lines skipped."""
    found = None
    for no, line in enumerate(text.splitlines(), 1):
        m = _LOADAVG.match(line.strip())
        if m and found is None:
            found = (float(m.group(1)), float(m.group(2)), float(m.group(3)))
        elif line.strip():
            skip_line("/proc/loadavg", no)
    if found is None:
        raise ParseError("/proc/loadavg", f"expected 3 load averages, got {text.strip()[:40]!r}")
    return found


def parse_nproc(text: str) -> int:
    """The first line that is a positive integer; other lines skipped."""
    found = None
    for no, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if s.isdigit() and int(s) > 0 and found is None:
            found = int(s)
        elif s:
            skip_line("nproc", no)
    if found is None:
        raise ParseError("nproc", f"expected a positive CPU count, got {text.strip()[:20]!r}")
    return found


_GOVERNORS = frozenset({"performance", "powersave", "ondemand", "conservative", "schedutil", "userspace"})


def parse_governors(text: str) -> dict[str, int]:
    """Lines of scaling_governor files (one per CPU) -> {governor: number of CPUs}."""
    counts: dict[str, int] = {}
    for no, line in enumerate(text.splitlines(), 1):
        g = line.strip()
        if not g:
            continue
        if ":" in g:  # `grep . /sys/…/scaling_governor` prefixes the path
            g = g.rsplit(":", 1)[1].strip()
        if g not in _GOVERNORS:
            skip_line("scaling_governor", no)
            continue
        counts[g] = counts.get(g, 0) + 1
    if not counts:
        raise ParseError("scaling_governor", "no governor lines (cpufreq not available?)")
    return counts


@dataclass(frozen=True)
class ChronyTracking:
    offset_s: float  # signed: positive = system clock ahead of NTP time
    leap_status: str
    stratum: int | None
    reference: str


_SYSTEM_TIME = re.compile(r"^System time\s*:\s*(?P<v>[\d.]+) seconds (?P<dir>fast|slow) of NTP time")


_CHRONY_KEYS = frozenset({"Reference ID", "Stratum", "Ref time (UTC)", "System time", "Last offset", "RMS offset",
                          "Frequency", "Residual freq", "Skew", "Root delay", "Root dispersion", "Update interval",
                          "Leap status"})


def parse_chronyc_tracking(text: str) -> ChronyTracking:
    """`chronyc tracking`; lines with keys chronyc never prints are skipped and noted."""
    fields: dict[str, str] = {}
    offset = None
    for no, line in enumerate(text.splitlines(), 1):
        key, sep, value = line.partition(":")
        if not line.strip():
            continue
        if not sep or key.strip() not in _CHRONY_KEYS or key.strip() in fields:
            skip_line("chronyc tracking", no)
            continue
        fields[key.strip()] = value.strip()
        m = _SYSTEM_TIME.match(line.strip())
        if m:
            offset = float(m.group("v")) * (1 if m.group("dir") == "fast" else -1)
    if offset is None and "506 Cannot talk to daemon" in text:
        raise ParseError("chronyc tracking", "chronyd is not running (506 Cannot talk to daemon)")
    if offset is None:
        raise ParseError("chronyc tracking", "no 'System time' line")
    stratum = None
    if fields.get("Stratum", "").isdigit():
        stratum = int(fields["Stratum"])
    return ChronyTracking(offset, fields.get("Leap status", "unknown"), stratum, fields.get("Reference ID", ""))


@dataclass(frozen=True)
class PingStats:
    target: str
    transmitted: int
    received: int
    loss_pct: float
    rtt_min_ms: float | None
    rtt_avg_ms: float | None
    rtt_max_ms: float | None


_PING_HEAD = re.compile(r"^PING (?P<target>\S+)")
_PING_COUNTS = re.compile(r"(?P<tx>\d+) packets transmitted, (?P<rx>\d+) (?:packets )?received.*?(?P<loss>[\d.]+)% packet loss")
_PING_RTT = re.compile(r"(?:rtt|round-trip) min/avg/max/(?:mdev|stddev) = (?P<min>[\d.]+)/(?P<avg>[\d.]+)/(?P<max>[\d.]+)")


# Per-packet and framing lines ping prints besides the summary.
_PING_OTHER = re.compile(r"^(\d+ bytes from |From |Request timeout|--- .* ping statistics ---$|PING |"
                         r"no answer yet|ping: |Warning: )")


def parse_ping(text: str) -> PingStats:
    """`ping -q` (or full) output. The summary must start its line: a stray line that merely
    contains 'packets transmitted' is not believed; lines of no ping shape are noted."""
    target = ""
    counts = rtt = None
    for no, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        h = _PING_HEAD.match(s)
        if h:
            target = target or h.group("target")
            continue
        c = _PING_COUNTS.match(s)
        if c:
            counts = counts or c
            continue
        r = _PING_RTT.match(s)
        if r:
            rtt = rtt or r
            continue
        if s and not _PING_OTHER.match(s):
            skip_line("ping", no)
    if counts is None:
        raise ParseError("ping", "no 'packets transmitted' summary line (truncated?)")
    return PingStats(
        target,
        int(counts.group("tx")),
        int(counts.group("rx")),
        float(counts.group("loss")),
        float(rtt.group("min")) if rtt else None,
        float(rtt.group("avg")) if rtt else None,
        float(rtt.group("max")) if rtt else None,
    )


@dataclass(frozen=True)
class Process:
    pid: int
    user: str
    cpu_pct: float
    mem_pct: float
    command: str


def parse_ps(text: str) -> list[Process]:
    """`ps -eo pid,user,pcpu,pmem,comm` (header 'PID USER %CPU %MEM COMMAND')."""
    lines = [(no, ln) for no, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    start = next((i for i, (_no, ln) in enumerate(lines) if ln.split()[0] == "PID"), None)
    if start is None:
        raise ParseError("ps", "expected a header line with PID")
    out = []
    for no, _line in lines[:start]:
        skip_line("ps", no)
    for no, line in lines[start + 1:]:
        parts = line.split(None, 4)
        try:
            out.append(Process(int(parts[0]), parts[1], float(parts[2]), float(parts[3]), parts[4].strip()))
        except (ValueError, IndexError):
            skip_line("ps", no)  # not a process row
    return out


_UNIT_STATES = frozenset({"active", "inactive", "failed", "activating", "deactivating", "reloading", "unknown",
                          "maintenance", "refreshing"})


def parse_is_active(text: str) -> list[str]:
    """States, one a line; other lines are skipped and noted (none left: ParseError)."""
    states = []
    for no, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if s in _UNIT_STATES:
            states.append(s)
        elif s:
            skip_line("systemctl is-active", no)
    if not states:
        raise ParseError("systemctl is-active", "no unit state line" if text.strip() else "empty output")
    return states
