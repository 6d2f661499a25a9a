"""nvidia-smi: --query-gpu / --query-remapped-rows CSV, -L, nvlink --status, -q, --version."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from diagnostics.parsers.common import ParseError, skip_line

TOOL = "nvidia-smi"

# Header spellings -> one canonical key (nvidia-smi echoes aliases differently across drivers).
_CANONICAL = {
    "clocks.current.sm": "clocks.sm",
    "clocks.current.graphics": "clocks.gr",
    "clocks.graphics": "clocks.gr",
    "clocks.current.memory": "clocks.mem",
    "clocks.memory": "clocks.mem",
    "clocks.max.graphics": "clocks.max.gr",
    "clocks.max.memory": "clocks.max.mem",
    "clocks.applications.graphics": "clocks.applications.gr",
    "clocks.applications.memory": "clocks.applications.mem",
    "gpu_bus_id": "pci.bus_id",
    "gpu_uuid": "uuid",
    "gpu_name": "name",
}

_ERROR_LINE = re.compile(
    r"^(Unable to determine the device handle for GPU\s*(?P<bus>[0-9A-Fa-f:.]+)\s*:.*|No devices were found|"
    r"NVIDIA-SMI has failed.*|Failed to initialize NVML.*|.*is not a valid field to query.*)$"
)


def canonical(header: str) -> str:
    """'clocks.current.sm [MHz]' -> 'clocks.sm'; 'clocks_throttle_reasons.x' -> 'clocks_event_reasons.x'."""
    name = header.strip().split(" [", 1)[0].strip()
    if name.startswith("clocks_throttle_reasons.") or name.startswith("clock_throttle_reasons."):
        name = "clocks_event_reasons." + name.split(".", 1)[1]
    return _CANONICAL.get(name, name)


@dataclass
class SmiCsv:
    rows: list[dict[str, str]]
    lost: list[str]  # PCI bus ids nvidia-smi could not get a handle for
    errors: list[str]


# A header cell: 'index', 'clocks.current.sm [MHz]', 'clocks_throttle_reasons.active'.
_HEADER_CELL = re.compile(r"^[a-z][a-z0-9_.]*(?: \[[^\]]*\])?$")
_HEADER_WORDS = ("index", "name", "uuid", "serial", "count", "pstate", "timestamp", "driver_version",
                 "persistence_mode")
_BUS_VALUE = re.compile(r"^[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]$")
# Lines after which nvidia-smi printed nothing usable (fatal unless valid rows are there too).
_FATAL = re.compile(r"^(No devices were found|NVIDIA-SMI has failed.*|Failed to initialize NVML.*|"
                    r".*is not a valid field to query.*)$")


def _is_header(cells: list[str]) -> bool:
    return all(_HEADER_CELL.match(c) for c in cells) and any("." in c or c in _HEADER_WORDS for c in cells)


def _first_value_ok(column: str, value: str) -> bool:
    """Whether a row's first cell has the shape its column's values have (rejects prose)."""
    if column == "index":
        return value.isdigit()
    if column == "pci.bus_id":
        return bool(_BUS_VALUE.match(value))
    if column == "uuid":
        return value.startswith(("GPU-", "MIG-"))
    return bool(value) and len(value) <= 64


def parse_query_csv(text: str, fields: list[str] | None = None) -> SmiCsv:
    """Parse `--format=csv` output. With a header, columns are keyed by canonical field name;
    with `noheader`, pass ``fields`` (the --query-gpu list). Values keep their units
    ('1410 MHz'); use common.to_float. Error lines (a lost GPU) are collected, not fatal.

    Lines not in the CSV's shape (driver warnings, anything a node prints among the rows) are
    skipped and noted (common.skip_line). A line that starts like a row but has the wrong number
    of values is truncated output: ParseError. With no row left, a fatal nvidia-smi message
    ('Failed to initialize NVML', 'NVIDIA-SMI has failed') or the lack of a header is the error."""
    rows: list[dict[str, str]] = []
    lost: list[str] = []
    errors: list[str] = []
    skipped: list[int] = []
    header: list[str] | None = [canonical(f) for f in fields] if fields else None
    header_line = 0
    for no, line in enumerate(text.replace("\r\n", "\n").split("\n"), 1):
        s = line.strip()
        if not s:
            continue
        m = _ERROR_LINE.match(s)
        if m:
            errors.append(s)
            if m.group("bus"):
                lost.append(m.group("bus"))
            else:
                skipped.append(no)  # counted as skipped if valid rows make it a stray line
            continue
        cells = [c.strip() for c in s.split(",")]
        if _is_header(cells):
            names = [canonical(c) for c in cells]
            if header is None or (not rows and not fields and names != header):
                if header is not None:
                    skipped.append(header_line)  # a header-like line before the real one
                header, header_line = names, no  # nvidia-smi prints its header right above the rows
            elif names != header:
                skipped.append(no)
            continue  # a header repeated (or echoed despite noheader) is harmless
        if header is None or not _first_value_ok(header[0], cells[0]):
            skipped.append(no)
            continue
        if len(cells) != len(header):
            raise ParseError(TOOL, f"expected {len(header)} comma-separated values, got {len(cells)} "
                                   f"(truncated output?): {s[:80]!r}", no)
        rows.append(dict(zip(header, cells, strict=True)))
    if not rows and not lost:
        fatal = next((e for e in errors if _FATAL.match(e)), None)
        if fatal is not None:
            raise ParseError(TOOL, fatal[:200])
        if header is None:
            raise ParseError(TOOL, "expected a CSV header line (no header and no rows found)"
                             if text.strip() else "empty output")
    for no in skipped:
        skip_line(TOOL, no)
    return SmiCsv(rows, lost, errors)


_LIST_LINE = re.compile(r"^GPU (?P<index>\d+): (?P<name>.+?) \(UUID: (?P<uuid>[^)]+)\)\s*$")


def parse_list(text: str) -> tuple[list[dict[str, Any]], list[str]]:
    """`nvidia-smi -L` -> ([{index, name, uuid}], lost bus ids). MIG lines are skipped; so are
    lines not in -L's format (noted). Only such lines, or a fatal message alone: ParseError."""
    gpus: list[dict[str, Any]] = []
    lost: list[str] = []
    skipped: list[int] = []
    fatal: str | None = None
    no_devices = False
    for no, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("MIG "):
            continue
        m = _LIST_LINE.match(s)
        if m:
            gpus.append({"index": int(m.group("index")), "name": m.group("name"), "uuid": m.group("uuid")})
            continue
        e = _ERROR_LINE.match(s)
        if e and e.group("bus"):
            lost.append(e.group("bus"))
            continue
        if s == "No devices were found":
            no_devices = True
        elif e and fatal is None:
            fatal = s
        skipped.append(no)
    if not gpus and not lost and not no_devices and (fatal or skipped):
        raise ParseError("nvidia-smi -L", fatal[:200] if fatal else "no 'GPU N: … (UUID: …)' line found",
                         None if fatal else skipped[0])
    for no in skipped:
        if not (no_devices and not gpus and not lost):
            skip_line("nvidia-smi -L", no)
    return gpus, lost


_NVLINK_GPU = re.compile(r"^GPU (?P<index>\d+): (?P<name>.+?) \(UUID: (?P<uuid>[^)]+)\)\s*$")
_NVLINK_LINK = re.compile(r"^\s*Link (?P<link>\d+): (?P<state><inactive>|[\d.]+ GB/s|.+)\s*$")


def parse_nvlink_status(text: str) -> dict[int, dict[int, float | None]]:
    """`nvidia-smi nvlink --status` -> {gpu index: {link: GB/s, or None when <inactive>}}.

    Lines in neither shape (warnings, a link line with an unreadable state) are skipped and noted;
    without any GPU line the output is a ParseError (naming nvidia-smi's own error if it printed one)."""
    out: dict[int, dict[int, float | None]] = {}
    current: int | None = None
    skipped: list[int] = []
    fatal: str | None = None
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        g = _NVLINK_GPU.match(line.strip())
        if g:
            current = int(g.group("index"))
            out[current] = {}
            continue
        m = _NVLINK_LINK.match(line)
        if m and current is not None:
            state = m.group("state").strip()
            if state == "<inactive>":
                out[current][int(m.group("link"))] = None
                continue
            if re.fullmatch(r"[\d.]+ GB/s", state):
                out[current][int(m.group("link"))] = float(state.split()[0])
                continue
        e = _ERROR_LINE.match(line.strip())
        if e and not e.group("bus") and fatal is None:
            fatal = line.strip()
        skipped.append(no)
    if not out and text.strip():
        raise ParseError("nvidia-smi nvlink", fatal[:200] if fatal else "no GPU lines found")
    for no in skipped:
        skip_line("nvidia-smi nvlink", no)
    return out


_Q_GPU = re.compile(r"^GPU [0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]$")


def parse_query(text: str) -> dict[str, Any]:
    """`nvidia-smi -q` -> {'Driver Version': …, 'gpus': {bus_id: {section: {key: value}}}}.

    Sections nest by indentation (4 spaces a level); values stay text ('1410 MHz', 'N/A')."""
    top: dict[str, Any] = {"gpus": {}}
    if "NVSMI LOG" not in text:
        raise ParseError("nvidia-smi -q", "no '==============NVSMI LOG==============' banner")
    stack: list[tuple[int, dict[str, Any]]] = [(-1, top)]
    for no, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.startswith("====="):
            continue
        if raw.strip().startswith("=====") and raw.strip().endswith("====="):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        line = raw.strip()
        if indent == 0 and not _Q_GPU.match(line) and (top["gpus"] or " : " not in line):
            # -q prints only 'Key : value' lines before the first GPU and only GPU lines at the left
            # margin after it: anything else there is a stray line, and must not reset the nesting
            skip_line("nvidia-smi -q", no)
            continue
        if indent == 0 and _Q_GPU.match(line):
            bus = line[4:].strip()
            gpu: dict[str, Any] = {}
            top["gpus"][bus] = gpu
            stack = [(-1, top), (0, gpu)]
            continue
        while len(stack) > 1 and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        if " : " in line or line.endswith(":"):
            key, _, value = line.partition(":")
            parent[key.strip()] = value.strip()
        else:
            child: dict[str, Any] = {}
            parent[line] = child
            stack.append((indent, child))
    if not top["gpus"] and "Attached GPUs" not in top:
        raise ParseError("nvidia-smi -q", "no 'Attached GPUs' line and no GPU section (truncated?)")
    return top


def parse_version(text: str) -> dict[str, str]:
    """`nvidia-smi --version` (or the default table header) -> {'driver': …, 'cuda': …}."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            k = key.strip().lower()
            if k == "driver version":
                out["driver"] = value.strip()
            elif k == "cuda version":
                out["cuda"] = value.strip()
            elif k == "nvml version":
                out["nvml"] = value.strip()
        m = re.search(r"Driver Version:\s*(\S+)\s+CUDA Version:\s*(\S+)", line)
        if m:
            out["driver"], out["cuda"] = m.group(1), m.group(2)
    if "driver" not in out:
        raise ParseError("nvidia-smi --version", "no 'DRIVER version' line")
    return out


def bus_key(bus_id: str) -> str:
    """Normalise any PCI address spelling ('00000000:8A:00.0', '0000:8a:00', '8a:00.0') to '8a'."""
    s = bus_id.strip().lower()
    s = s.split("pci:")[-1]
    parts = s.split(":")
    return parts[-2] if len(parts) >= 2 else s
