"""InfiniBand: ibstat and ibv_devinfo."""

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
