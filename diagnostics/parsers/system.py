"""System tools: df (-P, -i), stat -f, free, /proc/loadavg, nproc, cpufreq governors, chronyc
tracking and sources, ping, ps, systemctl is-active, systemd unit failures in a journal."""

from __future__ import annotations

import re
from dataclasses import dataclass

from diagnostics.parsers.common import ParseError, clean, parse_size, skip_line


@dataclass(frozen=True)
class DfRow:
    filesystem: str
    mount: str
    total: int  # blocks (see the header's unit) or inodes
    used: int
    available: int
    use_pct: int | None  # None where df prints '-'


_PCT = re.compile(r"^(\d+)%$|^-$")


def _df_value(text: str, human: bool, no: int, line: str) -> int:
    """A df size column: blocks (digits) or, in -h output, a human-readable size in bytes."""
    if text == "-":
        return 0
    if not human and text.isdigit():
        return int(text)
    value = parse_size(text)
    if value is None:
        raise ParseError("df", f"non-numeric column in {line[:60]!r}", no)
    return round(value)


def parse_df(text: str) -> tuple[str, list[DfRow]]:
    """`df [-P] [-h|-m|-i] …` -> (unit from the header, rows). Mount points may contain spaces.

    Human-readable sizes (df -h, BusyBox df: '101.4M', '996.0K', '11G', '0') are read as bytes (the
    unit is then the header's 'Size'); a filesystem name too long for its column (df without -P
    wraps the rest of the row onto the next line) is joined back. Rows pasted without their header
    are read when they have df's shape (… N% /mount). Prompts and chatter are skipped and noted;
    output in which no filesystem row was read is a ParseError, never an empty result."""
    lines = [(no, ln) for no, ln in enumerate(clean(text).split("\n"), 1) if ln.strip()]
    if not lines:
        raise ParseError("df", "empty output")
    start = next((i for i, (_no, ln) in enumerate(lines) if ln.split()[0] == "Filesystem" and len(ln.split()) > 1), None)
    if start is not None:
        for no, _ln in lines[:start]:
            skip_line("df", no)
        unit = lines[start][1].split()[1]
        body = lines[start + 1:]
    else:
        unit, body = "", lines
    human_header = unit.lower() == "size"
    rows = []
    pending: tuple[int, str] | None = None
    for no, line in body:
        parts = line.split()
        if pending is not None:
            if len(parts) >= 5 and _PCT.match(parts[3]):
                parts = [pending[1], *parts]
            else:
                skip_line("df", pending[0])
            pending = None
        if len(parts) == 1 and start is not None:
            pending = (no, parts[0])  # a long device name; its numbers follow on the next line
            continue
        size_like = len(parts) >= 2 and (re.fullmatch(r"\d+|-", parts[1]) or parse_size(parts[1]) is not None)
        if not size_like or (start is None and not (len(parts) >= 6 and _PCT.match(parts[4]))):
            skip_line("df", no)  # not a filesystem row (a prompt, a warning, anything else)
            continue
        if len(parts) < 6:
            raise ParseError("df", f"expected 6 columns, got {len(parts)} (truncated?): {line[:60]!r}", no)
        fs, total, used, avail, pct = parts[:5]
        mount = " ".join(parts[5:])
        pct_m = _PCT.match(pct)
        if pct_m is None:
            raise ParseError("df", f"non-numeric column in {line[:60]!r}", no)
        human = human_header or any(not re.fullmatch(r"\d+|-", v) for v in (total, used, avail))
        rows.append(DfRow(fs, mount, _df_value(total, human, no, line), _df_value(used, human, no, line),
                          _df_value(avail, human, no, line), int(pct_m.group(1)) if pct_m.group(1) else None))
    if pending is not None:
        skip_line("df", pending[0])
    if not rows:
        raise ParseError("df", "no filesystem row (a header alone, or not df output)")
    if start is None:
        unit = "Size" if any(not re.fullmatch(r"\d+|-", p) for ln in body for p in ln[1].split()[1:4]) else "1K-blocks"
    return unit, rows


@dataclass(frozen=True)
class FreeMem:
    total: int
    used: int
    free: int
    available: int | None
    swap_total: int | None
    swap_used: int | None


def _free_value(text: str, no: int, values: list[str]) -> int:
    """A free column: a number in the command's unit, or a human-readable size ('3.6G', '143M',
    '0B', '7.6Gi') converted to MiB."""
    if text.isdigit():
        return int(text)
    value = parse_size(text)
    if value is None or not re.search(r"[A-Za-z]", text):
        raise ParseError("free", f"non-numeric value in Mem: line {values}", no)
    return round(value / 2**20)


# A translated 'Swap:' line: a label ending in ':' and three values ("Partition d'échange:  0  0  0").
_LOCAL_SWAP = re.compile(r"^\s*[^\d\s][^:]*:\s+(?:[\d.,]+[KMGTPE]?i?B?\s+){2}[\d.,]+[KMGTPE]?i?B?\s*$")


def parse_free(text: str) -> FreeMem:
    """`free [-m|-g|-h|-w|-t]`: Mem: and Swap: by the header's columns. Human-readable values
    (free -h) are converted to MiB; in the old procps layout (buffers, cached and a '-/+
    buffers/cache:' line) the memory free for applications stands for 'available'. Under a
    translated header (LANG=fr: 'utilisé libre partagé tamp/cache disponible') the sixth column of
    procps-ng's layout is 'available', and a translated Swap label is read as Swap."""
    mem = swap = None
    header = None
    plus_minus: list[str] | None = None
    for no, line in enumerate(clean(text).split("\n"), 1):
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "total" and header is None:
            header = parts
        elif parts[0] == "Mem:" and mem is None:
            mem = (parts[1:], no)
        elif parts[0] == "Swap:" and swap is None:
            swap = (parts[1:], no)
        elif parts[0] == "-/+" and len(parts) >= 4 and plus_minus is None:
            plus_minus = parts[2:]
        elif mem is not None and swap is None and _LOCAL_SWAP.match(line) and parts[0] not in ("Low:", "High:", "Total:"):
            swap = (line.split(":", 1)[1].split(), no)  # a translated 'Swap:' label ('Partition d'échange:')
        elif parts[0] not in ("Low:", "High:", "Total:", "-/+"):
            skip_line("free", no)
    if mem is None:
        raise ParseError("free", "no 'Mem:' line")
    values, no = mem
    nums = [_free_value(v, no, values) for v in values]
    if len(nums) < 3:
        raise ParseError("free", "Mem: line has fewer than 3 numbers (truncated?)", no)
    available = None
    if header and "available" in header and len(nums) > header.index("available"):
        available = nums[header.index("available")]
    elif header and len(header) == 6 and "/" in header[4] and plus_minus is None and len(nums) == 6:
        available = nums[5]  # procps-ng's layout with translated column names (… tamp/cache disponible)
    elif plus_minus is not None and len(plus_minus) >= 2:
        available = _free_value(plus_minus[1], no, plus_minus)
    s_total = s_used = None
    if swap and len(swap[0]) >= 2:
        s_total, s_used = _free_value(swap[0][0], swap[1], swap[0]), _free_value(swap[0][1], swap[1], swap[0])
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
    for no, line in enumerate(clean(text).split("\n"), 1):
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



# --------------------------------------------------------------------------- chronyc sources


@dataclass(frozen=True)
class ChronySource:
    mode: str  # '^' server, '=' peer, '#' local reference clock
    state: str  # '*' selected, '+' combined, '-' not combined, '?' unusable, 'x' falseticker, '~' too variable
    name: str
    stratum: int
    reach: str  # octal register as printed


_CHRONY_SOURCE = re.compile(r"^(?P<mode>[\^=#])(?P<state>[*+\-?x~ ])\s+(?P<name>\S+)\s+(?P<stratum>\d+)\s+"
                            r"(?P<poll>-?\d+)\s+(?P<reach>[0-7]+)\s+(?P<lastrx>\S+)\s+(?P<sample>.*)$")


def parse_chronyc_sources(text: str) -> tuple[list[ChronySource], bool]:
    """`chronyc sources [-v] [-N]` rows -> (sources, whether '506 Cannot talk to daemon' was
    printed). The -v legend and the header are skipped; no source row and no 506 line: ParseError."""
    out: list[ChronySource] = []
    for no, raw in enumerate(clean(text).split("\n"), 1):
        m = _CHRONY_SOURCE.match(raw.strip())
        if m is None:
            if raw.strip() and not raw.strip().startswith(("MS Name", "===", "210 Number", "|", ".", "/")):
                skip_line("chronyc sources", no)
            continue
        out.append(ChronySource(m.group("mode"), m.group("state"), m.group("name"), int(m.group("stratum")),
                                m.group("reach")))
    cannot = "506 Cannot talk to daemon" in text
    if not out and not cannot:
        raise ParseError("chronyc sources", "no source row ('^* name stratum poll reach …')")
    return out, cannot


# --------------------------------------------------------------------------- stat -f


@dataclass(frozen=True)
class StatFs:
    path: str
    fs_type: str
    block_size: int
    blocks_total: int
    blocks_free: int
    blocks_available: int
    inodes_total: int | None
    inodes_free: int | None

    @property
    def used_pct(self) -> int | None:
        """As df computes Use%: used / (used + available), rounded."""
        used = self.blocks_total - self.blocks_free
        base = used + self.blocks_available
        return round(100 * used / base) if base > 0 else None

    @property
    def inodes_used_pct(self) -> int | None:
        if not self.inodes_total or self.inodes_free is None:
            return None
        return round(100 * (self.inodes_total - self.inodes_free) / self.inodes_total)


_STAT_FILE = re.compile(r'File: "(?P<path>[^"]*)"')
_STAT_TYPE = re.compile(r"\bType: (?P<type>\S+)")
_STAT_BSIZE = re.compile(r"Block size: (?P<bs>\d+)")
_STAT_BLOCKS = re.compile(r"Blocks: Total: (?P<t>\d+)\s+Free: (?P<f>\d+)\s+Available: (?P<a>\d+)")
_STAT_INODES = re.compile(r"Inodes: Total: (?P<t>\d+)\s+Free: (?P<f>\d+)")


def parse_stat_f(text: str) -> list[StatFs]:
    """`stat -f PATH…` records (File / ID Namelen Type / Block size / Blocks / Inodes lines), the
    lines found anywhere on a line (a journal or a script may prefix them). A record without its
    Blocks line is truncated output: ParseError; no record at all: ParseError."""
    out: list[StatFs] = []
    cur: dict[str, str] = {}

    def flush() -> None:
        if not cur:
            return
        if "t" not in cur:
            raise ParseError("stat -f", f"the record of {cur.get('path', '?')} has no 'Blocks:' line (truncated?)")
        out.append(StatFs(cur.get("path", "?"), cur.get("type", "?"), int(cur.get("bs", "0")), int(cur["t"]),
                          int(cur["f"]), int(cur["a"]), int(cur["it"]) if "it" in cur else None,
                          int(cur["if"]) if "if" in cur else None))
        cur.clear()

    for line in clean(text).split("\n"):
        if (m := _STAT_FILE.search(line)) is not None:
            flush()
            cur["path"] = m.group("path")
        elif (t := _STAT_TYPE.search(line)) is not None and "Namelen" in line:
            cur["type"] = t.group("type")
        elif (b := _STAT_BSIZE.search(line)) is not None:
            cur["bs"] = b.group("bs")
        elif (k := _STAT_BLOCKS.search(line)) is not None:
            cur.update(t=k.group("t"), f=k.group("f"), a=k.group("a"))
        elif (i := _STAT_INODES.search(line)) is not None:
            cur.update(it=i.group("t"), **{"if": i.group("f")})
    flush()
    if not out:
        raise ParseError("stat -f", "no 'Blocks: Total: … Free: … Available: …' line")
    return out


# --------------------------------------------------------------------------- systemd unit failures in a log

_UNIT_FAIL = re.compile(
    r"(?P<unit>[\w@.:\\-]+\.(?:service|mount|socket|target|timer|path|scope|swap|automount)): "
    r"(?P<what>(?:Main|Control) process exited, code=\w+, status=(?P<status>\S+)|Failed with result '[^']+'|"
    r"Start request repeated too quickly|Failed to start[^.]*)"
    r"|Failed to start (?P<desc>.+?)\.?\s*$"
    r"|Job for (?P<job>[\w@.:\\-]+\.service) failed")


@dataclass
class UnitFailure:
    unit: str  # 'nvidia-fabricmanager.service', or the description systemd printed
    reasons: list[str]


def parse_unit_failures(text: str) -> list[UnitFailure]:
    """systemd's messages about units that failed, in a journal or a `systemctl start` reply:
    'X.service: Control process exited, code=exited, status=1/FAILURE', "… Failed with result
    'exit-code'", 'Failed to start DESCRIPTION.', 'Job for X.service failed because …'. One entry
    per unit, with what was said about it."""
    out: dict[str, UnitFailure] = {}
    for line in clean(text).split("\n"):
        m = _UNIT_FAIL.search(line)
        if m is None:
            continue
        unit = m.group("unit") or m.group("job") or m.group("desc")
        what = m.group("what") or ("job failed" if m.group("job") else "failed to start")
        entry = out.setdefault(unit, UnitFailure(unit, []))
        if what not in entry.reasons:
            entry.reasons.append(what)
    return list(out.values())
