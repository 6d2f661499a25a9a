"""Kernel log (dmesg, dmesg -T, journalctl -k, syslog): NVIDIA Xid events, GPUs fallen off the bus
(with or without an Xid 79 line, in the wrapped multi-line form newer drivers print) or lost
(NV_ERR_GPU_IS_LOST), OOM kills, PCIe AER errors, EDAC memory errors, machine checks and APEI/GHES
hardware error records; and lspci (device lines, LnkCap/LnkSta link status, AER status bits)."""

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



# --------------------------------------------------------------------------- GPU lost (no Xid line)

_GPU_LOST = re.compile(r"NVRM: .*?(?:GPU lost from the bus|NV_ERR_GPU_IS_LOST|GPU is lost)"
                       r"(?:.*?\(PCI:(?P<bus>[0-9A-Fa-f:.]+)\))?")


@dataclass(frozen=True)
class GpuLost:
    bus: str | None
    count: int
    first_line: int


def parse_gpu_lost(text: str) -> GpuLost | None:
    """NVRM messages saying the driver lost the GPU (NV_ERR_GPU_IS_LOST, 'GPU lost from the bus'),
    which newer drivers print from their RPC/assert paths without an Xid 79 line. None when absent."""
    hits = [(no, m) for no, line in enumerate(clean(text).split("\n"), 1) if (m := _GPU_LOST.search(line))]
    if not hits:
        return None
    bus = next((m.group("bus") for _no, m in hits if m.group("bus")), None)
    return GpuLost(bus, len(hits), hits[0][0])


# --------------------------------------------------------------------------- PCIe AER

_BDF = r"(?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]"
_AER_BUS_ERROR = re.compile(rf"(?P<bus>{_BDF}): (?:AER: )?PCIe Bus Error: severity=(?P<sev>[^,]+), type=(?P<type>[^,(]+)")
_AER_DETAIL = re.compile(rf"(?P<bus>{_BDF}): (?:AER: )?\s*\[\s*\d+\] (?P<name>[A-Za-z][\w ]*?)\s*(?:\(First\))?\s*$")
_AER_RECEIVED = re.compile(rf"(?P<bus>{_BDF}): AER: (?:Multiple )?(?P<sev>Corrected|Uncorrected \(Non-Fatal\)|"
                           rf"Uncorrected \(Fatal\)|Uncorrected|Fatal|Non-Fatal) error received:?\s*(?:id=\S+|(?P<src>{_BDF}))?",
                           re.IGNORECASE)


@dataclass
class AerEvent:
    bus: str  # the device that logged it, e.g. '0000:00:1c.1'
    severity: str  # 'Corrected', 'Uncorrected (Non-Fatal)', 'Uncorrected (Fatal)'
    types: set[str]  # 'Physical Layer', 'Data Link Layer', 'Transaction Layer'
    errors: dict[str, int]  # 'RxErr' / 'Receiver Error' / 'Timeout' … -> count
    count: int  # 'PCIe Bus Error' lines (or 'error received' lines where none)

    @property
    def fatal(self) -> bool:
        return "fatal" in self.severity.lower() or self.severity.lower().startswith("uncorrect")


def parse_aer(text: str) -> list[AerEvent]:
    """PCIe AER messages in a kernel log, whatever its prefix ('[ 41.67] pcieport 0000:00:1c.1: …',
    'Jun 03 … kernel: pcieport …: AER: …', localized journal dates): per reporting device and
    severity, the error types and names ('[12] Timeout', '[ 0] RxErr') and how often."""
    events: dict[tuple[str, str], AerEvent] = {}
    last: dict[str, AerEvent] = {}
    received: dict[tuple[str, str], int] = {}
    for line in clean(text).split("\n"):
        if "AER" not in line and "PCIe Bus Error" not in line and "] " not in line:
            continue
        m = _AER_BUS_ERROR.search(line)
        if m:
            bus, sev = m.group("bus").lower(), m.group("sev").strip()
            ev = events.setdefault((bus, sev), AerEvent(bus, sev, set(), {}, 0))
            ev.types.add(m.group("type").strip())
            ev.count += 1
            last[bus] = ev
            continue
        r = _AER_RECEIVED.search(line)
        if r:
            key = (r.group("bus").lower(), r.group("sev").strip())
            received[key] = received.get(key, 0) + 1
            continue
        d = _AER_DETAIL.search(line)
        if d and d.group("bus").lower() in last:
            ev = last[d.group("bus").lower()]
            name = d.group("name").strip()
            ev.errors[name] = ev.errors.get(name, 0) + 1
    for (bus, sev), n in received.items():
        same = next((e for (b, s), e in events.items() if b == bus and s.lower() == sev.lower()), None)
        if same is None and not any(b == bus for b, _s in events):
            events[(bus, sev)] = AerEvent(bus, sev, set(), {}, n)
        elif same is not None:
            same.count = max(same.count, n)  # an excerpt may cut an event's detail lines, not its 'received' line
    return list(events.values())


# --------------------------------------------------------------------------- EDAC, machine checks, APEI

# 'EDAC MC0: 1 CE memory read error on CPU_SrcID#0_Ha#0_Chan#2_DIMM#0 (…)', 'EDAC MC1: 1 CE memory
# scrubbing error on …', older 'EDAC MC0: 4 CE error on CPU#0Channel#2_DIMM#0 (…)', 'EDAC MC3: 1 UE …'
_EDAC = re.compile(r"EDAC (?:\w+ )?MC(?P<mc>\d+): (?P<n>\d+) (?P<kind>CE|UE)\b(?P<what>[^(]*?)\s+on\s+(?P<loc>\S+)")


@dataclass
class EdacEvent:
    mc: str  # 'MC0'
    kind: str  # 'CE' | 'UE'
    location: str  # the DIMM label the driver printed
    count: int
    what: str  # 'memory read error', 'memory scrubbing error', 'error'


def parse_edac_events(text: str) -> list[EdacEvent]:
    """EDAC corrected (CE) / uncorrected (UE) memory error lines, summed per controller, kind and DIMM."""
    out: dict[tuple[str, str, str], EdacEvent] = {}
    for line in clean(text).split("\n"):
        if "EDAC" not in line:
            continue
        m = _EDAC.search(line)
        if m is None:
            continue
        key = (f"MC{m.group('mc')}", m.group("kind"), m.group("loc"))
        ev = out.setdefault(key, EdacEvent(*key, 0, m.group("what").strip() or "error"))
        ev.count += int(m.group("n"))
    return list(out.values())


_MCE_LOGGED = re.compile(r"mce: \[Hardware Error\]: Machine check events logged")
_MCE_FATAL = re.compile(r"\[Hardware Error\]: (?:Uncorrected|Fatal|.*Machine check: Processor context corrupt|"
                        r".*(?:PANIC|panic))", re.IGNORECASE)
_MCE_CORRECTED = re.compile(r"\[Hardware Error\]: Corrected error")
_MCE_BANK = re.compile(r"\b(?:(?P<smca>MC\d+)_STATUS|Machine Check(?: Event)?: \d+ Bank (?P<bank>\d+))")


@dataclass(frozen=True)
class MceSummary:
    logged: int  # 'Machine check events logged' lines
    corrected: int  # decoded 'Corrected error' records
    uncorrected: int  # decoded uncorrected / fatal records
    banks: tuple[str, ...]  # 'MC17', 'Bank 5' …


def parse_mce(text: str) -> MceSummary | None:
    """Machine check messages: 'mce: [Hardware Error]: Machine check events logged' and the AMD/Intel
    decoders' '[Hardware Error]: Corrected error …' / 'MC17_STATUS[…]' / 'Machine Check: 0 Bank 4'
    lines. None when there is none."""
    logged = corrected = uncorrected = 0
    banks: list[str] = []
    for line in clean(text).split("\n"):
        if "Hardware Error" not in line and "Machine Check" not in line and "Machine check" not in line:
            continue
        if _MCE_LOGGED.search(line):
            logged += 1
        elif _MCE_CORRECTED.search(line):
            corrected += 1
        elif _MCE_FATAL.search(line) and "APEI" not in line and "{" not in line:
            uncorrected += 1
        b = _MCE_BANK.search(line)
        if b:
            bank = b.group("smca") or f"Bank {b.group('bank')}"
            if bank not in banks:
                banks.append(bank)
    if not (logged or corrected or uncorrected or banks):
        return None
    return MceSummary(logged, corrected, uncorrected, tuple(banks))


_GHES = re.compile(r"\{\d+\}\[Hardware Error\]:\s*(?P<body>.*)$")


@dataclass
class ApeiRecord:
    severity: str  # 'recoverable', 'fatal', 'corrected' …
    section: str  # 'PCIe error', 'memory error', …
    device: str | None  # PCI device of a PCIe section


def parse_apei(text: str) -> list[ApeiRecord]:
    """Firmware-first (APEI/GHES) records: '{1}[Hardware Error]: event severity: recoverable',
    '… section_type: PCIe error', '… device_id: 0000:5e:00.0'."""
    out: list[ApeiRecord] = []
    cur: ApeiRecord | None = None
    for line in clean(text).split("\n"):
        m = _GHES.search(line)
        if m is None:
            continue
        body = m.group("body").strip()
        if body.startswith("Hardware error from APEI"):
            cur = ApeiRecord("", "", None)
            out.append(cur)
            continue
        if cur is None:
            cur = ApeiRecord("", "", None)
            out.append(cur)
        key, _, value = body.partition(":")
        key, value = key.strip(), value.strip()
        if key == "event severity" and not cur.severity:
            cur.severity = value
        elif key == "section_type" and not cur.section:
            cur.section = value
        elif key == "device_id" and cur.device is None and re.fullmatch(_BDF, value):
            cur.device = value
    return out


# --------------------------------------------------------------------------- lspci -vv link status

_LNKCAP = re.compile(r"^LnkCap:\s*(?:Port #\d+,\s*)?Speed (?P<speed>[\d.]+GT/s|unknown)[^,]*,\s*Width (?P<width>x\d+)")
_LNKSTA = re.compile(r"^LnkSta:\s*Speed (?P<speed>[\d.]+GT/s|unknown)\s*(?P<sdown>\((?:downgraded|ok)\))?,?\s*"
                     r"Width (?P<width>x\d+)\s*(?P<wdown>\((?:downgraded|ok)\))?")
_AER_STATUS = re.compile(r"^(?P<reg>UESta|CESta):\s*(?P<bits>.*)$")


@dataclass
class PciLink:
    address: str | None  # the device line above it, None in an excerpt without one
    cap_speed: str | None
    cap_width: str | None
    speed: str
    width: str
    speed_downgraded: bool
    width_downgraded: bool
    aer_uncorrectable: list[str]  # UESta bits set ('+')
    aer_correctable: list[str]  # CESta bits set


def _gts(speed: str | None) -> float | None:
    m = re.match(r"([\d.]+)GT/s", speed or "")
    return float(m.group(1)) if m else None


def parse_lspci_links(text: str) -> list[PciLink]:
    """LnkCap / LnkSta pairs of `lspci -vv` (tabs or spaces, with or without the device line above:
    a pasted excerpt often starts mid-device). A link is downgraded where lspci says so, or where
    LnkSta is slower or narrower than LnkCap (older lspci prints no '(downgraded)')."""
    out: list[PciLink] = []
    address: str | None = None
    cap: tuple[str | None, str | None] = (None, None)
    current: PciLink | None = None
    for raw in clean(text).split("\n"):
        line = raw.strip()
        dev = _LSPCI.match(line)
        if dev and not raw[:1].isspace():
            address, cap, current = dev.group("addr"), (None, None), None
            continue
        c = _LNKCAP.match(line)
        if c:
            cap = (c.group("speed"), c.group("width"))
            continue
        s = _LNKSTA.match(line)
        if s:
            speed, width = s.group("speed"), s.group("width")
            cs, cw = _gts(cap[0]), int(cap[1][1:]) if cap[1] else None
            sdown = s.group("sdown") == "(downgraded)" or (cs is not None and (_gts(speed) or cs) < cs)
            wdown = s.group("wdown") == "(downgraded)" or (cw is not None and int(width[1:]) < cw)
            current = PciLink(address, cap[0], cap[1], speed, width, sdown, wdown, [], [])
            out.append(current)
            continue
        a = _AER_STATUS.match(line)
        if a:
            bits = [b[:-1] for b in a.group("bits").split() if b.endswith("+")]
            if current is None:
                current = PciLink(address, None, None, "", "", False, False, [], [])
            (current.aer_uncorrectable if a.group("reg") == "UESta" else current.aer_correctable).extend(bits)
    return out
