"""nvidia-smi: --query-gpu / --query-remapped-rows CSV, -L, nvlink --status, -q, --version."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from diagnostics.parsers.common import ParseError

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


def parse_query_csv(text: str, fields: list[str] | None = None) -> SmiCsv:
    """Parse `--format=csv` output. With a header, columns are keyed by canonical field name;
    with `noheader`, pass ``fields`` (the --query-gpu list). Values keep their units
    ('1410 MHz'); use common.to_float. Error lines (a lost GPU) are collected, not fatal."""
    lines = [ln for ln in text.replace("\r\n", "\n").split("\n") if ln.strip()]
    rows: list[dict[str, str]] = []
    lost: list[str] = []
    errors: list[str] = []
    header: list[str] | None = [canonical(f) for f in fields] if fields else None
    for no, line in enumerate(lines, 1):
        m = _ERROR_LINE.match(line.strip())
        if m:
            errors.append(line.strip())
            if m.group("bus"):
                lost.append(m.group("bus"))
            continue
        cells = [c.strip() for c in line.split(",")]
        if header is None:
            if not any("." in c or c in ("index", "name", "uuid", "serial", "count", "pstate", "timestamp",
                                             "driver_version", "persistence_mode") for c in cells):
                raise ParseError(TOOL, f"expected a CSV header line, got {line[:60]!r}", no)
            header = [canonical(c) for c in cells]
            continue
        if len(cells) != len(header):
            raise ParseError(TOOL, f"expected {len(header)} comma-separated values, got {len(cells)} "
                                   f"(truncated output?): {line[:80]!r}", no)
        rows.append(dict(zip(header, cells, strict=True)))
    if header is None and not errors:
        raise ParseError(TOOL, "empty output")
    if header is None and errors and not lost:
        raise ParseError(TOOL, errors[0])
    return SmiCsv(rows, lost, errors)


_LIST_LINE = re.compile(r"^GPU (?P<index>\d+): (?P<name>.+?) \(UUID: (?P<uuid>[^)]+)\)\s*$")


def parse_list(text: str) -> tuple[list[dict[str, Any]], list[str]]:
    """`nvidia-smi -L` -> ([{index, name, uuid}], lost bus ids). MIG lines are skipped."""
    gpus: list[dict[str, Any]] = []
    lost: list[str] = []
    for no, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("MIG "):
            continue
        m = _LIST_LINE.match(s)
        if m:
            gpus.append({"index": int(m.group("index")), "name": m.group("name"), "uuid": m.group("uuid")})
            continue
        e = _ERROR_LINE.match(s)
        if e:
            if e.group("bus"):
                lost.append(e.group("bus"))
            continue
        raise ParseError("nvidia-smi -L", f"unexpected line {s[:60]!r}", no)
    return gpus, lost


_NVLINK_GPU = re.compile(r"^GPU (?P<index>\d+): (?P<name>.+?) \(UUID: (?P<uuid>[^)]+)\)\s*$")
_NVLINK_LINK = re.compile(r"^\s*Link (?P<link>\d+): (?P<state><inactive>|[\d.]+ GB/s|.+)\s*$")


def parse_nvlink_status(text: str) -> dict[int, dict[int, float | None]]:
    """`nvidia-smi nvlink --status` -> {gpu index: {link: GB/s, or None when <inactive>}}."""
    out: dict[int, dict[int, float | None]] = {}
    current: int | None = None
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
            elif state.endswith("GB/s"):
                out[current][int(m.group("link"))] = float(state.split()[0])
            else:
                raise ParseError("nvidia-smi nvlink", f"unknown link state {state!r}", no)
            continue
        if _ERROR_LINE.match(line.strip()):
            continue
        raise ParseError("nvidia-smi nvlink", f"unexpected line {line.strip()[:60]!r}", no)
    if not out and text.strip():
        raise ParseError("nvidia-smi nvlink", "no GPU lines found")
    return out


def parse_query(text: str) -> dict[str, Any]:
    """`nvidia-smi -q` -> {'Driver Version': …, 'gpus': {bus_id: {section: {key: value}}}}.

    Sections nest by indentation (4 spaces a level); values stay text ('1410 MHz', 'N/A')."""
    top: dict[str, Any] = {"gpus": {}}
    if "NVSMI LOG" not in text:
        raise ParseError("nvidia-smi -q", "no '==============NVSMI LOG==============' banner")
    stack: list[tuple[int, dict[str, Any]]] = [(-1, top)]
    for raw in text.splitlines():
        if not raw.strip() or raw.startswith("====="):
            continue
        if raw.strip().startswith("=====") and raw.strip().endswith("====="):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        line = raw.strip()
        if line.startswith("GPU ") and ":" in line and indent == 0 and " : " not in line:
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
