"""System tools: df (-P, -i), free, /proc/loadavg, nproc, cpufreq governors, chronyc tracking,
ping, ps, systemctl is-active."""

from __future__ import annotations

import re
from dataclasses import dataclass

from diagnostics.parsers.common import ParseError


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
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ParseError("df", "empty output")
    head = lines[0].split()
    if not head or head[0] != "Filesystem":
        raise ParseError("df", f"expected a 'Filesystem …' header, got {lines[0][:60]!r}", 1)
    unit = head[1]
    rows = []
    for no, line in enumerate(lines[1:], 2):
        parts = line.split()
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
        if parts[0] == "total":
            header = parts
        elif parts[0] == "Mem:":
            mem = (parts[1:], no)
        elif parts[0] == "Swap:":
            swap = parts[1:]
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


def parse_loadavg(text: str) -> tuple[float, float, float]:
    parts = text.split()
    if len(parts) < 3:
        raise ParseError("/proc/loadavg", f"expected 3 load averages, got {text.strip()[:40]!r}")
    try:
        return float(parts[0]), float(parts[1]), float(parts[2])
    except ValueError:
        raise ParseError("/proc/loadavg", f"non-numeric load average in {text.strip()[:40]!r}") from None


def parse_nproc(text: str) -> int:
    s = text.strip()
    if not s.isdigit() or int(s) == 0:
        raise ParseError("nproc", f"expected a positive CPU count, got {s[:20]!r}")
    return int(s)


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
            raise ParseError("scaling_governor", f"unknown governor {g[:30]!r}", no)
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


def parse_chronyc_tracking(text: str) -> ChronyTracking:
    fields: dict[str, str] = {}
    offset = None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
        m = _SYSTEM_TIME.match(line.strip())
        if m:
            offset = float(m.group("v")) * (1 if m.group("dir") == "fast" else -1)
    if "506 Cannot talk to daemon" in text:
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


def parse_ping(text: str) -> PingStats:
    target = ""
    counts = rtt = None
    for line in text.splitlines():
        h = _PING_HEAD.match(line)
        if h:
            target = h.group("target")
        counts = _PING_COUNTS.search(line) or counts
        rtt = _PING_RTT.search(line) or rtt
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
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or "PID" not in lines[0]:
        raise ParseError("ps", "expected a header line with PID")
    out = []
    for no, line in enumerate(lines[1:], 2):
        parts = line.split(None, 4)
        if len(parts) < 5:
            raise ParseError("ps", f"expected 5 columns: {line[:60]!r}", no)
        try:
            out.append(Process(int(parts[0]), parts[1], float(parts[2]), float(parts[3]), parts[4].strip()))
        except ValueError:
            raise ParseError("ps", f"non-numeric column in {line[:60]!r}", no) from None
    return out


def parse_is_active(text: str) -> list[str]:
    states = [ln.strip() for ln in text.splitlines() if ln.strip()]
    known = {"active", "inactive", "failed", "activating", "deactivating", "reloading", "unknown"}
    for no, s in enumerate(states, 1):
        if s not in known:
            raise ParseError("systemctl is-active", f"unknown state {s[:30]!r}", no)
    if not states:
        raise ParseError("systemctl is-active", "empty output")
    return states
