"""InfiniBand: ibstat, ibv_devinfo, perfquery / ibportstate ('Key:.....value' blocks),
ibqueryerrors and `rdma link`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from diagnostics.parsers.common import ParseError, clean, skip_line


@dataclass(frozen=True)
class IbPort:
    hca: str
    port: int
    state: str  # Active, Down, Initializing, Armed, PORT_ACTIVE …
    physical_state: str | None  # LinkUp, Disabled, Polling … (ibstat only)
    rate_gbps: float | None
    link_layer: str | None

    @property
    def active(self) -> bool:
        return self.state.upper() in ("ACTIVE", "PORT_ACTIVE")


_CA = re.compile(r"^CA '(?P<name>[^']+)'\s*$")
_PORT = re.compile(r"^Port (?P<port>\d+):\s*$")


_IBSTAT_CA_KEYS = frozenset({"CA type", "Number of ports", "Firmware version", "Hardware version", "Node GUID",
                             "System image GUID"})
_IBSTAT_PORT_KEYS = frozenset({"State", "Physical state", "Rate", "Base lid", "LMC", "SM lid", "Capability mask",
                               "Port GUID", "Link layer"})


def parse_ibstat(text: str) -> list[IbPort]:
    """`ibstat` -> one IbPort per port. Lines that are not ibstat's (keys it never prints, text
    before the first CA) are skipped and noted; a port without a State line is truncated output."""
    ports: list[IbPort] = []
    hca: str | None = None
    port: int | None = None
    fields: dict[str, str] = {}

    def flush(no: int) -> None:
        if hca is not None and port is not None:
            if "State" not in fields:
                raise ParseError("ibstat", f"port {port} of {hca} has no 'State' line (truncated?)", no)
            rate = fields.get("Rate")
            try:
                rate_v = float(rate) if rate is not None else None
            except ValueError:
                raise ParseError("ibstat", f"Rate of {hca} port {port} is not a number: {rate!r}", no) from None
            ports.append(IbPort(hca, port, fields["State"], fields.get("Physical state"), rate_v, fields.get("Link layer")))

    lines = clean(text).split("\n")
    for no, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        m = _CA.match(line)
        if m:
            flush(no)
            hca, port, fields = m.group("name"), None, {}
            continue
        p = _PORT.match(line)
        if p and hca is not None:
            flush(no)
            port, fields = int(p.group("port")), {}
            continue
        key, sep, value = line.partition(":")
        known = _IBSTAT_PORT_KEYS if port is not None else _IBSTAT_CA_KEYS
        if not sep or hca is None or key.strip() not in known:
            skip_line("ibstat", no)  # ibwarn/ibpanic, driver chatter, anything else a node prints
            continue
        if port is not None:
            fields[key.strip()] = value.strip()
    flush(len(lines))
    if not ports and text.strip():
        raise ParseError("ibstat", "no ports found (no \"CA '…'\" / 'Port N:' lines)")
    return ports


_HCA_ID = re.compile(r"^hca_id:\s*(?P<name>\S+)")
_DEV_PORT = re.compile(r"^port:\s*(?P<port>\d+)")
_DEVINFO_KEY = re.compile(r"^[a-z][a-z0-9_]*$")  # ibv_devinfo's keys: transport, fw_ver, state, link_layer …


def parse_ibv_devinfo(text: str) -> list[IbPort]:
    ports: list[IbPort] = []
    hca: str | None = None
    port: int | None = None
    fields: dict[str, str] = {}

    def flush(no: int) -> None:
        if hca is not None and port is not None:
            if not fields.get("state"):  # absent, or "state:" with nothing after it
                raise ParseError("ibv_devinfo", f"port {port} of {hca} has no 'state' value (truncated?)", no)
            state = fields["state"].split()[0]
            ports.append(IbPort(hca, port, state, None, None, fields.get("link_layer")))

    lines = clean(text).split("\n")
    no_devices = False
    skipped: list[int] = []
    for no, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        if line == "No IB devices found":
            no_devices = True  # only believed when no device follows (a stray copy must not hide ports)
            skipped.append(no)
            continue
        m = _HCA_ID.match(line)
        if m:
            flush(no)
            hca, port, fields = m.group("name"), None, {}
            continue
        p = _DEV_PORT.match(line)
        if p and hca is not None:
            flush(no)
            port, fields = int(p.group("port")), {}
            continue
        key, sep, value = line.partition(":")
        if not sep or hca is None or not _DEVINFO_KEY.match(key.strip()):
            skipped.append(no)
            continue
        if port is not None:
            fields[key.strip()] = value.strip()
    flush(len(lines))
    if not ports and no_devices:
        return []
    if not ports and text.strip():
        raise ParseError("ibv_devinfo", "no ports found (no 'hca_id:' / 'port:' lines)")
    for no in skipped:
        skip_line("ibv_devinfo", no)
    return ports


# --------------------------------------------------------------------------- perfquery, ibportstate

# 'PortRcvErrors:...................0', 'LinkState:.......................Active'
_DOTTED = re.compile(r"^(?P<key>[A-Za-z][A-Za-z0-9_]*):\.{2,}\s*(?P<value>.*?)\s*$")
# '# Port counters: Lid 5 port 1 (CapMask: 0x...)', '# Port extended counters: …', '# Port info: Lid 2 port 24',
# '# Port info: Lid 1 DR path slid 2; dlid 65535; 0,7 port 1'
_DOTTED_HEAD = re.compile(r"^#\s*Port (?P<kind>counters|extended counters|info):\s*Lid (?P<lid>\d+)\b.*?\bport (?P<port>\d+|ALL)",
                          re.IGNORECASE)
_PEER = re.compile(r"^Peer PortInfo:\s*$")
# The pasted command line, where no '# Port …' header follows: 'perfquery 5 1', 'ibportstate 2 25'.
_DOTTED_CMD = re.compile(r"\b(?P<tool>perfquery|ibportstate)(?:\s+-[A-Za-z]+)*\s+(?P<lid>\d+)\s+(?P<port>\d+)\s*$")

# Counters that count errors (IBA PortCounters); PortXmitWait counts congestion, the rest traffic.
IB_ERROR_COUNTERS = ("SymbolErrorCounter", "LinkErrorRecoveryCounter", "LinkDownedCounter", "PortRcvErrors",
                     "PortRcvRemotePhysicalErrors", "PortRcvSwitchRelayErrors", "PortXmitDiscards",
                     "PortXmitConstraintErrors", "PortRcvConstraintErrors", "LocalLinkIntegrityErrors",
                     "ExcessiveBufferOverrunErrors", "VL15Dropped", "QP1Dropped", "PortMalformedPktErrors",
                     "PortSwLifetimeLimitDiscards", "PortBufferOverrunErrors", "PortLocalPhysicalErrors")


@dataclass
class IbDottedBlock:
    """One block of `perfquery` counters or `ibportstate` PortInfo: the header's LID and port where
    printed (None in a pasted excerpt without it), whether it is the peer's PortInfo, its keys."""
    lid: int | None
    port: str | None  # '1', '24', 'ALL'
    kind: str  # 'counters', 'extended counters', 'info', '' (no header)
    peer: bool
    values: dict[str, str]
    line: int

    def counter(self, name: str) -> int | None:
        v = self.values.get(name, "")
        return int(v, 16) if v.lower().startswith("0x") else (int(v) if v.isdigit() else None)

    @property
    def link_state(self) -> str | None:
        return self.values.get("LinkState")

    @property
    def where(self) -> str:
        if self.lid is None and self.port is None:
            return "the port"
        return f"LID {self.lid} port {self.port}" + (" (peer)" if self.peer else "")


def parse_ib_dotted(text: str) -> list[IbDottedBlock]:
    """`perfquery [-x]` counters and `ibportstate` PortInfo, both printed as 'Key:.....value'
    lines under an optional '# Port counters|extended counters|info: Lid N port M' header (a
    'Peer PortInfo:' line starts the peer's block). Lines of other shapes (prompts, ibwarn, set -x
    '+' lines) are skipped and noted. No dotted line at all: ParseError."""
    blocks: list[IbDottedBlock] = []
    head: tuple[int | None, str | None, str, int] | None = None
    peer = False
    current: IbDottedBlock | None = None
    for no, raw in enumerate(clean(text).split("\n"), 1):
        line = raw.strip()
        if not line:
            continue
        h = _DOTTED_HEAD.match(line)
        if h:
            head = (int(h.group("lid")), h.group("port"), h.group("kind").lower(), no)
            current = None
            continue
        if _PEER.match(line):
            peer, head, current = True, None, None
            continue
        if line == "PortInfo:":
            peer, head, current = False, None, None
            continue
        d = _DOTTED.match(line)
        cmd = _DOTTED_CMD.search(line) if d is None else None
        if cmd:
            head = (int(cmd.group("lid")), cmd.group("port"), "info" if cmd.group("tool") == "ibportstate" else "counters",
                    no)
            skip_line("perfquery", no)
            current = None
            continue
        if d is None:
            skip_line("perfquery", no)
            if line.startswith(("[", "#", "+", "ibwarn", "$")) or "@" in line:
                current = None  # a prompt or a new command: the next dotted lines are a new block
            continue
        if current is None or d.group("key") in current.values:
            lid, port, kind, hno = head if head else (None, None, "", no)
            current = IbDottedBlock(lid, port, kind, peer, {}, hno)
            blocks.append(current)
            head = None
        current.values[d.group("key")] = d.group("value")
    if not blocks:
        raise ParseError("perfquery", "no 'Key:....value' line (perfquery / ibportstate output)")
    return blocks


@dataclass(frozen=True)
class IbQueryErrorsLine:
    node: str  # 'GUID 0x… port ALL' or the node description ibqueryerrors printed
    counters: dict[str, int]
    line: int


_IBQE_LINE = re.compile(r"^(?P<node>.*?(?:GUID\s+0x[0-9a-fA-F]+|\bLid\s+\d+).*?):\s*(?P<rest>(?:\[[^\]]+\]\s*)+)$")
_IBQE_COUNTER = re.compile(r"\[(?P<name>\w+)\s*==\s*(?P<value>\d+)")


def parse_ibqueryerrors(text: str) -> list[IbQueryErrorsLine]:
    """`ibqueryerrors`: lines 'GUID 0x… port N: [Counter == value (…)] [Counter == value]…' (one per
    port with counters over its threshold). Summary and header lines are skipped."""
    out: list[IbQueryErrorsLine] = []
    for no, raw in enumerate(clean(text).split("\n"), 1):
        m = _IBQE_LINE.match(raw.strip())
        if m is None:
            continue
        counters = {c.group("name"): int(c.group("value")) for c in _IBQE_COUNTER.finditer(m.group("rest"))}
        if counters:
            out.append(IbQueryErrorsLine(m.group("node").strip(), counters, no))
    if not out:
        raise ParseError("ibqueryerrors", "no 'GUID … port …: [Counter == N]' line")
    return out


# --------------------------------------------------------------------------- rdma link

_RDMA_LINK = re.compile(r"^link (?P<dev>[^/\s]+)/(?P<port>\d+)\b(?P<rest>.*)$")


def parse_rdma_link(text: str) -> list[IbPort]:
    """`rdma link [show]` (iproute2): 'link mlx5_0/1 … state ACTIVE physical_state LINK_UP [netdev …]'.
    Other lines are skipped and noted; no link line: ParseError."""
    ports: list[IbPort] = []
    for no, raw in enumerate(clean(text).split("\n"), 1):
        line = raw.strip()
        if not line:
            continue
        m = _RDMA_LINK.match(line)
        state = re.search(r"\bstate (\S+)", m.group("rest")) if m else None
        if m is None or state is None:
            skip_line("rdma link", no)
            continue
        phys = re.search(r"\bphysical_state (\S+)", m.group("rest"))
        ports.append(IbPort(m.group("dev"), int(m.group("port")), state.group(1), phys.group(1) if phys else None, None,
                            None))
    if not ports:
        raise ParseError("rdma link", "no 'link DEV/PORT … state …' line")
    return ports
