"""Kernel log (dmesg, dmesg -T, journalctl -k): NVIDIA Xid events, OOM kills; and lspci."""

from __future__ import annotations

import re
from dataclasses import dataclass

from diagnostics.parsers.common import ParseError, skip_line

_XID = re.compile(
    r"NVRM: Xid \((?:PCI:)?(?P<bus>[0-9A-Fa-f:.]+)\): (?P<xid>\d+),\s*(?P<rest>.*)$"
)
_PID = re.compile(r"^pid=(?P<pid>'?<?[\w ]+>?'?|\d+),\s*(?:name=(?P<name>[^,]*),\s*)?")
_DMESG_T = re.compile(r"^\[(?P<stamp>[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4})\]")
_DMESG_MONO = re.compile(r"^\[\s*(?P<secs>\d+\.\d+)\]")
_JOURNAL = re.compile(r"^(?P<stamp>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?P<host>\S+) kernel: ")
_OOM_KILLED = re.compile(r"(?:Out of memory|Memory cgroup out of memory): Killed process (?P<pid>\d+) \((?P<proc>[^)]*)\)")
_OOM_INVOKED = re.compile(r"(?P<proc>\S+) invoked oom-killer:")


@dataclass(frozen=True)
class XidEvent:
    bus: str  # as printed, e.g. '0000:8a:00'
    xid: int
    message: str
    pid: str | None
    process: str | None
    stamp: str | None  # the line's timestamp text, when it has one
    line: int


@dataclass(frozen=True)
class OomEvent:
    pid: int
    process: str
    stamp: str | None
    line: int


def _stamp(line: str) -> str | None:
    for rx in (_DMESG_T, _JOURNAL, _DMESG_MONO):
        m = rx.match(line)
        if m:
            return m.group(1)
    return None


def parse_xids(text: str) -> list[XidEvent]:
    """Every 'NVRM: Xid (PCI:…): N, …' line, in order. Other lines are ignored (a kernel log is
    mostly unrelated text); a Xid line cut off before its number is reported as ParseError."""
    events = []
    for no, line in enumerate(text.splitlines(), 1):
        if "NVRM: Xid" not in line:
            continue
        m = _XID.search(line)
        if m is None:
            raise ParseError("dmesg", f"malformed Xid line {line.strip()[:80]!r}", no)
        rest = m.group("rest")
        pid = proc = None
        p = _PID.match(rest)
        if p:
            pid = p.group("pid").strip("'")
            proc = (p.group("name") or "").strip() or None
            rest = rest[p.end():]
        events.append(XidEvent(m.group("bus"), int(m.group("xid")), rest.strip(), pid, proc, _stamp(line), no))
    return events


def parse_ooms(text: str) -> list[OomEvent]:
    """OOM-killer kills ('Out of memory: Killed process PID (name)')."""
    out = []
    for no, line in enumerate(text.splitlines(), 1):
        m = _OOM_KILLED.search(line)
        if m:
            out.append(OomEvent(int(m.group("pid")), m.group("proc"), _stamp(line), no))
    return out


_LSPCI = re.compile(r"^(?P<addr>(?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]) (?P<cls>[^:]+): "
                    r"(?P<desc>.*?)(?: \(rev (?P<rev>[0-9a-fA-F]{2})\))?$")


@dataclass(frozen=True)
class PciDevice:
    address: str
    device_class: str
    description: str
    rev: str | None

    @property
    def lost(self) -> bool:
        """Config space reads as all ones when a device has dropped off the bus."""
        return self.rev == "ff"


def parse_lspci(text: str) -> list[PciDevice]:
    """`lspci [-d …]` device lines; other lines (pcilib warnings …) are skipped and noted, but
    output with no device line at all is a ParseError."""
    out = []
    skipped: list[int] = []
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _LSPCI.match(line.strip())
        if m is None:
            skipped.append(no)
            continue
        out.append(PciDevice(m.group("addr"), m.group("cls"), m.group("desc"), m.group("rev")))
    if not out and skipped:
        raise ParseError("lspci", "no 'BUS:DEV.F class: device' line found", skipped[0])
    for no in skipped:
        skip_line("lspci", no)
    return out
