"""Kernel log (dmesg, dmesg -T, journalctl -k): NVIDIA Xid events, GPUs fallen off the bus (with or
without an Xid 79 line, in the wrapped multi-line form newer drivers print), OOM kills; and lspci."""

from __future__ import annotations

import re
from dataclasses import dataclass

from diagnostics.parsers.common import ParseError, clean, skip_line

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
    for no, line in enumerate(clean(text).split("\n"), 1):
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


@dataclass(frozen=True)
class FallenOffBus:
    bus: str  # as printed, e.g. '0000:b3:00.0'
    pci_id: str | None  # vendor:device, e.g. '10de:26b5', where printed
    stamp: str | None
    line: int


# The line prefixes a kernel message carries: dmesg's '[  12.345]' / '[Mon Mar  4 …]', journalctl's
# 'Mar 07 19:30:42 host kernel: ', syslog's 'Jan  3 07:39:45 host kernel: [17257.355375] '.
_PREFIX = re.compile(r"^(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ kernel: |kernel: )?(?:\[[^\]]{1,40}\]\s*)?")
_FALLEN_START = re.compile(r"NVRM: The NVIDIA GPU (?P<bus>[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7])")
_FALLEN_ONE_LINE = re.compile(r"NVRM: (?:GPU at (?:PCI:)?|GPU )(?P<bus>[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}"
                              r"(?:\.[0-7])?)(?::| has)? (?:GPU )?has fallen off the bus|"
                              r"NVRM: GPU at (?P<bus2>[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]) has fallen off")
_PCI_ID = re.compile(r"PCI ID: (?P<id>[0-9A-Fa-f]{4}:[0-9A-Fa-f]{4})")


def parse_fallen_off_bus(text: str) -> list[FallenOffBus]:
    """GPUs the driver says have fallen off the bus, whether or not an 'Xid …: 79' line came with it:

    - 'NVRM: The NVIDIA GPU 0000:b3:00.0 (PCI ID: 10de:26b5) installed in this system has' /
      'NVRM: fallen off the bus and is not responding to commands.', wrapped over two or three
      lines (continuation lines indented, or each with its own journal/dmesg prefix);
    - 'NVRM: GPU at 0000:01:00.0 has fallen off the bus.' and 'NVRM: GPU 0000:5d:00.0: GPU has
      fallen off the bus.' (one line).

    Xid 79 lines themselves are parse_xids'. One event per message, in order."""
    lines = clean(text).split("\n")
    bodies = [_PREFIX.sub("", ln).strip() for ln in lines]
    out: list[FallenOffBus] = []
    for i, body in enumerate(bodies):
        start = _FALLEN_START.search(body)
        if start:
            window = " ".join(bodies[i:i + 4])
            cut = window.find("NVRM: The NVIDIA GPU", len("NVRM: The NVIDIA GPU"))
            window = window if cut < 0 else window[:cut]
            if "fallen off the bus" in window:
                pid = _PCI_ID.search(window)
                out.append(FallenOffBus(start.group("bus"), pid.group("id") if pid else None, _stamp(lines[i]), i + 1))
            continue
        one = _FALLEN_ONE_LINE.search(body)
        if one and "Xid" not in body:
            out.append(FallenOffBus(one.group("bus") or one.group("bus2"), None, _stamp(lines[i]), i + 1))
    return out


def parse_ooms(text: str) -> list[OomEvent]:
    """OOM-killer kills ('Out of memory: Killed process PID (name)')."""
    out = []
    for no, line in enumerate(clean(text).split("\n"), 1):
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
    for no, line in enumerate(clean(text).split("\n"), 1):
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
