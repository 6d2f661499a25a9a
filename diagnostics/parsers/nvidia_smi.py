"""nvidia-smi: the default table, --query-gpu / --query-remapped-rows CSV, -L, nvlink --status,
nvlink -e, topo -m, -q, -q -x (XML), --version.

Every parser first takes away what a paste adds (``common.clean``: CRLF, ANSI escapes, markdown
fences, a shared indentation) and skips lines that are not its tool's (prompts, chatter); a parser
that reads no row raises ``ParseError``, so a check never reports ok on output it could not read."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from diagnostics.parsers.common import ParseError, clean, skip_line

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


# A pasted `nvidia-smi --query-gpu=a,b --format=csv,noheader` command: its field list names the columns.
_QUERY_COMMAND = re.compile(r"--query-(?:gpu|remapped-rows|compute-apps)[= ](?P<fields>[\w.,\s]+?)(?:\s+-|\s*$)")


def _fields_from_command(text: str) -> list[str] | None:
    """The field list of a pasted command line asking for a header-less CSV, else None."""
    for line in text.split("\n"):
        m = _QUERY_COMMAND.search(line)
        if m and "noheader" in line:
            fields = [f for f in re.split(r"[,\s]+", m.group("fields").strip()) if f]
            return fields or None
    return None


def _is_header(cells: list[str]) -> bool:
    return all(_HEADER_CELL.match(c) for c in cells) and any("." in c or c in _HEADER_WORDS for c in cells)


def is_csv_header(line: str) -> bool:
    """Whether a line is a `--query-gpu … --format=csv` header ('index, temperature.gpu, …')."""
    return _is_header([c.strip() for c in line.strip().split(",")])


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
    text = clean(text)
    if not fields:
        fields = _fields_from_command(text)
    header: list[str] | None = [canonical(f) for f in fields] if fields else None
    header_line = 0
    for no, line in enumerate(text.split("\n"), 1):
        s = line.strip()
        if not s:
            continue
        if _QUERY_COMMAND.search(s):
            skipped.append(no)  # the pasted command line itself
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
    for no, line in enumerate(clean(text).split("\n"), 1):
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
# What NVML prints under a GPU whose NVLinks are all down (or that has no NVLink bridge/fabric).
_NVLINK_ALL_INACTIVE = re.compile(r"all links are inactive", re.IGNORECASE)


@dataclass
class NvlinkReport:
    links: dict[int, dict[int, float | None]]  # gpu index -> {link: GB/s, None when <inactive>}
    names: dict[int, str]  # gpu index -> product name
    all_inactive: list[int]  # GPUs for which NVML said "all links are inActive"


def parse_nvlink(text: str) -> NvlinkReport:
    """`nvidia-smi nvlink --status` (or -s). A GPU under which NVML printed 'Unable to retrieve
    NVLink information as all links are inActive' is listed in ``all_inactive`` (it is not a GPU
    without links). Lines in no known shape are skipped and noted; without any GPU line the output
    is a ParseError (naming nvidia-smi's own error if it printed one)."""
    out: dict[int, dict[int, float | None]] = {}
    names: dict[int, str] = {}
    inactive: list[int] = []
    current: int | None = None
    skipped: list[int] = []
    fatal: str | None = None
    for no, line in enumerate(clean(text).split("\n"), 1):
        if not line.strip():
            continue
        g = _NVLINK_GPU.match(line.strip())
        if g:
            current = int(g.group("index"))
            out[current] = {}
            names[current] = g.group("name")
            continue
        if current is not None and _NVLINK_ALL_INACTIVE.search(line):
            if current not in inactive:
                inactive.append(current)
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
    return NvlinkReport(out, names, inactive)


def parse_nvlink_status(text: str) -> dict[int, dict[int, float | None]]:
    """`nvidia-smi nvlink --status` -> {gpu index: {link: GB/s, or None when <inactive>}} (see
    ``parse_nvlink`` for the GPUs NVML reports with all links inactive)."""
    return parse_nvlink(text).links


# Product names of boards whose GPUs are always NVLink-connected (SXM/OAM modules, Grace superchips);
# PCIe boards link only through an optional bridge, so "all links inActive" is normal there.
_NVLINK_BOARD = re.compile(r"SXM|HGX|DGX|\bG?B[123]00\b|\bH[128]00\b(?!.*(?:PCIe|NVL))|\bH20\b", re.IGNORECASE)


def expects_nvlink(name: str) -> bool:
    """Whether a GPU of this product name should have NVLinks up (SXM/HGX boards), not a PCIe card."""
    return "PCIE" not in name.upper() and bool(_NVLINK_BOARD.search(name))


_Q_GPU = re.compile(r"^GPU [0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]$")
_Q_BANNER = re.compile(r"^=+\s*NVSMI LOG\s*=+$")


def parse_query(text: str) -> dict[str, Any]:
    """`nvidia-smi -q` -> {'Driver Version': …, 'gpus': {bus_id: {section: {key: value}}}}.

    Sections nest by indentation; values stay text ('1410 MHz', 'N/A'). The banner is optional: an
    excerpt that starts mid-section (pasted without the '==NVSMI LOG==' banner and without any
    'GPU 0000:…' line) is read as one GPU under the key '' (bus unknown). Output with no
    'Key : value' line at all is a ParseError."""
    top: dict[str, Any] = {"gpus": {}}
    lines = clean(text).split("\n")
    # the indentation of the GPU / banner lines is the left margin (a paste may indent all of it, and
    # a stray line at column 0 must not stop that indentation from being taken away)
    margins = [len(ln) - len(ln.lstrip(" ")) for ln in lines if _Q_GPU.match(ln.strip()) or _Q_BANNER.match(ln.strip())]
    base = min(margins, default=0)
    if base:
        lines = [ln[base:] if ln[:base].strip() == "" else ln.strip() for ln in lines]
    has_gpu = any(_Q_GPU.match(ln) for ln in lines)
    has_banner = any(_Q_BANNER.match(ln.strip()) for ln in lines)
    stack: list[tuple[int, dict[str, Any]]] = [(-1, top)]
    excerpt = not has_gpu and not has_banner
    if excerpt:
        gpu0: dict[str, Any] = {}
        top["gpus"][""] = gpu0
        stack = [(-1, gpu0)]
    values = 0
    for no, raw in enumerate(lines, 1):
        if not raw.strip() or _Q_BANNER.match(raw.strip()):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        line = raw.strip()
        if not excerpt and indent == 0 and not _Q_GPU.match(line) and (top["gpus"] or " : " not in line):
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
            values += bool(value.strip())
        else:
            child: dict[str, Any] = {}
            parent[line] = child
            stack.append((indent, child))
    if not values:
        raise ParseError("nvidia-smi -q", "no 'Key : value' line (not -q output, or truncated)")
    if not top["gpus"] and "Attached GPUs" not in top:
        raise ParseError("nvidia-smi -q", "no 'Attached GPUs' line and no GPU section (truncated?)")
    return top


# --------------------------------------------------------------------------- the default table


@dataclass
class SmiGpu:
    index: int
    name: str
    bus_id: str
    persistence: str | None = None  # On | Off
    display: str | None = None
    fan_pct: float | None = None
    temp_c: float | None = None
    perf: str | None = None  # P0 … P12
    power_w: float | None = None
    power_cap_w: float | None = None
    mem_used_mib: float | None = None
    mem_total_mib: float | None = None
    util_pct: float | None = None
    compute_mode: str | None = None
    ecc_uncorrected: int | None = None  # Volatile Uncorr. ECC; None where N/A
    mig_mode: str | None = None
    errors: list[str] = field(default_factory=list)  # fields that read ERR!
    # fields whose value is neither a reading, N/A nor ERR! (e.g. 'On' where the ECC count belongs)
    unknown: dict[str, str] = field(default_factory=dict)


@dataclass
class SmiProcess:
    gpu: int
    pid: int | None
    type: str
    name: str
    mem_mib: float | None
    gi: str | None = None
    ci: str | None = None


@dataclass
class MigDevice:
    gpu: int
    gi: int
    ci: int
    mig_dev: int
    mem_used_mib: float | None
    mem_total_mib: float | None


@dataclass
class SmiTable:
    driver: str | None
    cuda: str | None
    gpus: list[SmiGpu]
    processes: list[SmiProcess]
    mig_devices: list[MigDevice]
    lost: list[str]  # bus ids nvidia-smi printed 'Unable to determine the device handle' for
    no_processes: bool  # 'No running processes found'


_T_HEADER = re.compile(r"NVIDIA-SMI\s+(?P<smi>\S+)\s+Driver Version:\s*(?P<driver>\S+)(?:\s+CUDA Version:\s*(?P<cuda>\S+))?")
_T_GPU = re.compile(r"^(?P<index>\d+)\s+(?P<name>.*?)\s*(?P<pm>\bOn|\bOff|\bN/A|ERR!)?$")
_T_BUS = re.compile(r"^(?P<bus>[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7])\s*(?P<disp>\S+)?$")
_T_STATE = re.compile(r"^(?P<fan>\S+)\s+(?P<temp>\S+)\s+(?P<perf>\S+)\s+(?P<draw>\S+)\s*/\s*(?P<cap>\S+)$")
_T_MEM = re.compile(r"^(?P<used>\S+)\s*/\s*(?P<total>\S+)$")
_T_UTIL = re.compile(r"^(?P<util>\S+)\s+(?P<mode>.+)$")
_T_PROC = re.compile(r"^(?P<gpu>\d+)\s+(?:(?P<gi>\S+)\s+(?P<ci>\S+)\s+)?(?P<pid>\d+)\s+(?P<type>[CGM+]{1,3})\s+"
                     r"(?P<name>.*?)\s+(?P<mem>\d+MiB|\d+MB|N/A)$")
_T_MIG = re.compile(r"^(?P<gpu>\d+)\s+(?P<gi>\d+)\s+(?P<ci>\d+)\s+(?P<dev>\d+)$")


def _num(text: str | None, unit: str = "") -> float | None:
    """'68C' -> 68.0, '76W' -> 76.0, '30%' -> 30.0, '16280MiB' -> 16280.0, 'N/A'/'ERR!' -> None."""
    if text is None:
        return None
    m = re.match(r"^([-+]?\d+(?:\.\d+)?)\s*(GiB|MiB|MB|GB|[A-Za-z%]*)$", text.strip())
    if m is None:
        return None
    value = float(m.group(1))
    if m.group(2) in ("GiB", "GB"):
        value *= 1024
    return value


def parse_table(text: str) -> SmiTable:
    """The default `nvidia-smi` table, from any driver (325 … 580 layouts): per GPU its index,
    name, bus id, fan, temperature, perf state, power draw/cap, memory used/total, utilisation,
    compute mode, volatile uncorrected ECC and MIG mode; a field that reads ``ERR!`` is listed in
    the GPU's ``errors``. Also the processes and MIG devices sections. A table with no GPU row and
    no MIG device row is a ParseError."""
    driver = cuda = None
    gpus: list[SmiGpu] = []
    procs: list[SmiProcess] = []
    migs: list[MigDevice] = []
    lost: list[str] = []
    no_procs = False
    section = "gpus"
    current: SmiGpu | None = None
    row_in_block = 0
    mig: MigDevice | None = None
    skipped: list[int] = []
    for no, raw in enumerate(clean(text).split("\n"), 1):
        line = raw.strip()
        if not line:
            continue
        h = _T_HEADER.search(line)
        if h:
            driver, cuda = h.group("driver"), h.group("cuda")
            continue
        e = _ERROR_LINE.match(line)
        if e and e.group("bus"):
            lost.append(e.group("bus"))
            continue
        if line.startswith(("+", "|=")) or set(line) <= set("+-=| "):
            current, row_in_block, mig = None, 0, None  # a border ends a GPU block
            continue
        if not line.startswith("|"):
            skipped.append(no)  # a prompt, the date line, chatter
            continue
        body = line.strip("|")
        if "MIG devices:" in body:
            section = "mig"
            continue
        if "Processes:" in body or "Compute processes:" in body:
            section = "procs"
            continue
        cells = [c.strip() for c in body.split("|")]
        if cells and re.match(r"^(GPU\s+Name|Fan\s+Temp|GPU\s+GI|GPU\s+PID|ID\s+ID|\s*$)", cells[0]) and \
                not any(re.match(r"^\d", c) for c in cells[1:2]) and not (current is not None and not cells[0]):
            if "No running processes found" in body:
                no_procs = True
            continue  # column titles, a MIG M. row with nothing else, blank cells
        if "No running processes found" in body:
            no_procs = True
            continue
        if section == "procs":
            p = _T_PROC.match(" ".join(cells))
            if p:
                mem = p.group("mem")
                procs.append(SmiProcess(int(p.group("gpu")), int(p.group("pid")), p.group("type"), p.group("name"),
                                        _num(mem), p.group("gi"), p.group("ci")))
            else:
                skipped.append(no)
            continue
        if section == "mig":
            m = _T_MIG.match(cells[0]) if cells else None
            if m and len(cells) >= 2:
                used = _T_MEM.match(cells[1])
                mig = MigDevice(int(m.group("gpu")), int(m.group("gi")), int(m.group("ci")), int(m.group("dev")),
                                _num(used.group("used")) if used else None, _num(used.group("total")) if used else None)
                migs.append(mig)
            elif not (mig is not None and not cells[0]):
                skipped.append(no)
            continue
        g = _T_GPU.match(cells[0]) if cells else None
        if g and current is None and len(cells) >= 2 and _T_BUS.match(cells[1]):
            bus = _T_BUS.match(cells[1])
            assert bus is not None
            current = SmiGpu(int(g.group("index")), g.group("name").strip(), bus.group("bus"), g.group("pm"),
                             bus.group("disp"))
            if g.group("pm") == "ERR!":
                current.errors.append("persistence_mode")
            if len(cells) >= 3:
                ecc = cells[2]
                if "ERR!" in ecc:
                    current.errors.append("ecc")
                elif ecc.isdigit():
                    current.ecc_uncorrected = int(ecc)
                elif ecc and ecc not in ("N/A", "[N/A]", "-"):
                    current.unknown["Volatile Uncorr. ECC"] = ecc[:40]
            gpus.append(current)
            row_in_block = 1
            continue
        if current is None:
            skipped.append(no)
            continue
        row_in_block += 1
        if row_in_block == 2:
            st = _T_STATE.match(cells[0])
            if st:
                for name, key in (("fan", "fan_pct"), ("temp", "temp_c"), ("draw", "power_w"), ("cap", "power_cap_w")):
                    value = st.group(name)
                    if "ERR!" in value:
                        current.errors.append({"draw": "power_draw", "cap": "power_cap"}.get(name, key.rsplit("_", 1)[0]))
                    elif _num(value) is None and value not in ("N/A", "[N/A]", "-"):
                        current.unknown[{"fan": "Fan", "temp": "Temp", "draw": "Pwr:Usage", "cap": "Pwr:Cap"}[name]] = \
                            value[:40]
                    setattr(current, key, _num(value))
                current.perf = None if st.group("perf") in ("N/A", "ERR!") else st.group("perf")
                if st.group("perf") == "ERR!":
                    current.errors.append("perf")
            elif "ERR!" in cells[0]:
                current.errors.append("fan_temp_perf_power")
            if len(cells) >= 2:
                mem = _T_MEM.match(cells[1])
                if mem:
                    current.mem_used_mib, current.mem_total_mib = _num(mem.group("used")), _num(mem.group("total"))
                if "ERR!" in cells[1]:
                    current.errors.append("memory")
            if len(cells) >= 3:
                u = _T_UTIL.match(cells[2])
                if u:
                    current.util_pct, current.compute_mode = _num(u.group("util")), u.group("mode").strip()
                if "ERR!" in cells[2]:
                    current.errors.append("utilization")
        elif row_in_block == 3 and len(cells) >= 3 and cells[2]:
            current.mig_mode = cells[2]
            if "ERR!" in cells[2]:
                current.errors.append("mig_mode")
    if not gpus and not migs:
        raise ParseError("nvidia-smi", "no GPU rows in the table (not nvidia-smi's default output, or cut)")
    for no in skipped:
        skip_line("nvidia-smi", no)
    return SmiTable(driver, cuda, gpus, procs, migs, lost, no_procs)


# --------------------------------------------------------------------------- topo -m

_TOPO_EXTRA = ("CPU Affinity", "NUMA Affinity", "GPU NUMA ID")
_TOPO_MAX_DEVICES = 256  # GPUs + NICs a node can have; more is not a topology (and would make the matrix quadratic)
_TOPO_DEVICE = re.compile(r"^(GPU\d+|NIC\d+|mlx\d*_\d+|mlx\w+|ib\w+|hfi\d+_\d+|bnxt\w+|eth\w+|en\w+)$")
_TOPO_LINK = re.compile(r"^(X|NV\d+|SYS|NODE|PHB|PXB|PIX|SOC|PSB|CNS|GNS|TNS|NS|OK|DR|U|N/A)$")


@dataclass
class SmiTopo:
    devices: list[str]  # the matrix's columns: GPU0 …, NIC0 … or HCA names
    rows: dict[str, dict[str, str]]  # row device -> {column device: connection}
    cpu_affinity: dict[str, str]
    numa_affinity: dict[str, str]
    gpu_numa_id: dict[str, str]
    nic_names: dict[str, str]  # NIC0 -> mlx5_0 from the 'NIC Legend' section, where printed

    @property
    def gpus(self) -> list[str]:
        return [d for d in self.devices if d.startswith("GPU")]

    @property
    def nics(self) -> list[str]:
        return [d for d in self.devices if not d.startswith("GPU")]

    def link(self, a: str, b: str) -> str | None:
        """The connection between two devices, read from either row."""
        return self.rows.get(a, {}).get(b) or self.rows.get(b, {}).get(a)


def parse_topo(text: str) -> SmiTopo:
    """`nvidia-smi topo -m`: the connection matrix (X, NV#, SYS, NODE, PHB, PXB, PIX), CPU and NUMA
    affinity per GPU, and the NIC legend. Space or tab separated; the header row names the columns
    (devices first, then CPU Affinity / NUMA Affinity / GPU NUMA ID where printed). No header or no
    GPU row is a ParseError (an empty matrix is not a topology)."""
    devices: list[str] = []
    extras: list[str] = []
    rows: dict[str, dict[str, str]] = {}
    cpu: dict[str, str] = {}
    numa: dict[str, str] = {}
    gnuma: dict[str, str] = {}
    nic_names: dict[str, str] = {}
    skipped: list[int] = []
    in_legend = False
    for no, raw in enumerate(clean(text).split("\n"), 1):
        line = raw.strip()
        if not line:
            continue
        tokens = line.split()
        if not devices and tokens[0] == "GPU0" and len(tokens) > 1 and not _TOPO_LINK.match(tokens[1]):
            names = []
            for tok in tokens:
                if not _TOPO_DEVICE.match(tok):
                    break
                names.append(tok)
            devices = names
            rest = " ".join(tokens[len(names):])
            extras = [x for x in _TOPO_EXTRA if x in rest]
            continue
        if line.startswith(("Legend", "NIC Legend")):
            in_legend = True
            continue
        leg = re.match(r"^(NIC\d+)\s*:\s*(\S+)$", line)
        if leg:
            nic_names[leg.group(1)] = leg.group(2)
            continue
        if in_legend:
            if not re.match(r"^\S+\s*=\s", line) and not raw[:1].isspace():
                skipped.append(no)  # not a legend line, nor a wrapped one (those are indented)
            continue
        if devices and tokens[0] in devices:
            values = tokens[1:]
            if len(values) < len(devices) or not all(_TOPO_LINK.match(v) for v in values[: len(devices)]):
                skipped.append(no)
                continue
            rows[tokens[0]] = dict(zip(devices, values[: len(devices)], strict=True))
            for name, value in zip(extras, values[len(devices):], strict=False):
                {"CPU Affinity": cpu, "NUMA Affinity": numa, "GPU NUMA ID": gnuma}[name][tokens[0]] = value
            continue
        skipped.append(no)
    if not devices:
        raise ParseError("nvidia-smi topo", "no 'GPU0 GPU1 … CPU Affinity' header line")
    if len(devices) > _TOPO_MAX_DEVICES:
        raise ParseError("nvidia-smi topo", f"{len(devices)} devices in the header: not a node's topology")
    if not any(r.startswith("GPU") for r in rows):
        raise ParseError("nvidia-smi topo", "the matrix has no GPU row (empty or cut before the rows)")
    for no in skipped:
        skip_line("nvidia-smi topo", no)
    return SmiTopo(devices, rows, cpu, numa, gnuma, nic_names)


@dataclass(frozen=True)
class TopoIssue:
    gpu: int  # the GPU whose link is wrong (the one whose row shows the fewest NVLinks)
    peer: int
    link: str  # what the matrix says (SYS, PHB, NV4 …)
    expected: str  # NV#
    problem: str


def _nv(link: str | None) -> int:
    return int(link[2:]) if link and link.startswith("NV") and link[2:].isdigit() else 0


def assess_topo(topo: SmiTopo, *, expect_nvlink: bool = False) -> list[TopoIssue]:
    """GPU pairs connected through PCIe/SMP (SYS, NODE, PHB, PXB, PIX) where NVLink is expected, and
    NVLink pairs with fewer links than the node's others. NVLink is expected between every pair when
    more than half of the GPUs are all NVLinked to each other (an NVSwitch node: DGX/HGX A100, H100 …,
    where a GPU that lost its NVLinks shows SYS to every peer) or when ``expect_nvlink`` says so; a
    hybrid cube mesh (DGX-1: SYS pairs by design, NVLinked groups of half the GPUs) or a PCIe node
    expects nothing."""
    gpus = topo.gpus
    if len(gpus) < 2:
        return []

    def peers_nv(g: str, among: list[str]) -> int:
        return sum(1 for o in among if o != g and _nv(topo.link(g, o)))

    clique = list(gpus)
    while len(clique) > 1 and any(peers_nv(g, clique) < len(clique) - 1 for g in clique):
        clique.remove(min(clique, key=lambda g: peers_nv(g, clique)))
    if not expect_nvlink and not (len(clique) * 2 > len(gpus) and len(clique) > 1):
        return []
    counts = [_nv(topo.link(a, b)) for i, a in enumerate(gpus) for b in gpus[i + 1:] if _nv(topo.link(a, b))]
    usual = max(set(counts), key=counts.count) if counts else 0
    issues = []
    for i, a in enumerate(gpus):
        for b in gpus[i + 1:]:
            link = topo.link(a, b)
            if link is None:
                continue  # the row was cut from the paste
            n = _nv(link)
            if n and n >= usual:
                continue
            # blame the GPU with fewer NVLink peers (the one that lost its links)
            worse, other = (a, b) if peers_nv(a, gpus) <= peers_nv(b, gpus) else (b, a)
            expected = f"NV{usual}" if usual else "NV#"
            problem = (f"{worse}-{other} connected through {link} where {expected} is expected" if not n
                       else f"{worse}-{other} has {link}, fewer NVLinks than the node's {expected}")
            issues.append(TopoIssue(int(worse[3:]), int(other[3:]), link, expected, problem))
    return issues


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



# --------------------------------------------------------------------------- nvlink -e

_NVLINK_GPU_ANY = re.compile(r"^GPU (?P<index>\d+): (?P<name>.+?)(?: \(UUID: [^)]+\))?\s*$")
_NVLINK_ERR = re.compile(r"^Link (?P<link>\d+):\s*(?P<name>[A-Za-z][A-Za-z ]*?(?:Errors?|Count))\s*:\s*(?P<value>\S+)")


@dataclass
class NvlinkErrors:
    counters: dict[int, dict[int, dict[str, int | None]]]  # gpu -> link -> {'Replay Errors': N …}
    names: dict[int, str]


def parse_nvlink_errors(text: str) -> NvlinkErrors:
    """`nvidia-smi nvlink -e` (--errorcounters): under each 'GPU N: name (UUID …)' line, 'Link L:
    Replay Errors: N' / 'Recovery Errors' / 'CRC Errors' / 'Data CRC' … lines (a value that is not
    a number is kept as None). No GPU with a counter line: ParseError."""
    counters: dict[int, dict[int, dict[str, int | None]]] = {}
    names: dict[int, str] = {}
    current: int | None = None
    for no, raw in enumerate(clean(text).split("\n"), 1):
        line = raw.strip()
        if not line:
            continue
        g = _NVLINK_GPU_ANY.match(line)
        if g:
            current = int(g.group("index"))
            names[current] = g.group("name")
            counters.setdefault(current, {})
            continue
        m = _NVLINK_ERR.match(line)
        if m and current is not None:
            value = m.group("value")
            counters[current].setdefault(int(m.group("link")), {})[m.group("name")] = int(value) if value.isdigit() else None
            continue
        skip_line("nvidia-smi nvlink -e", no)
    if not any(counters.values()):
        raise ParseError("nvidia-smi nvlink -e", "no 'Link N: … Errors: N' line under a GPU line")
    return NvlinkErrors(counters, names)


# --------------------------------------------------------------------------- -q -x (XML)

_XML_LEAF = re.compile(r"<(?P<tag>[a-z_0-9]+)>(?P<value>[^<>\n]*)</(?P=tag)>")
_XML_OPEN = re.compile(r"<(?P<tag>[a-z_0-9]+)(?P<attrs>\s[^<>]*)?>\s*$")
_XML_CLOSE = re.compile(r"^</(?P<tag>[a-z_0-9]+)>\s*$")
_XML_GPU = re.compile(r'<gpu id="(?P<bus>[^"]+)">')


def parse_query_xml(text: str) -> dict[str, Any]:
    """`nvidia-smi -q -x`: the same structure as ``parse_query`` (top-level keys such as
    'driver_version', and 'gpus': {bus id: nested dict of tag -> text}), read line by line so a
    pasted excerpt cut mid-document still gives what it holds. No <nvidia_smi_log> or <gpu> and
    no leaf element: ParseError."""
    top: dict[str, Any] = {"gpus": {}}
    gpus: dict[str, dict[str, Any]] = top["gpus"]
    stack: list[dict[str, Any]] = [top]
    base = 1  # the stack's bottom: [top] outside a <gpu>, [top, gpu] inside one
    for no, raw in enumerate(clean(text).split("\n"), 1):
        line = raw.strip()
        if not line or line.startswith(("<?xml", "<!DOCTYPE")):
            continue
        g = _XML_GPU.search(line)
        if g:
            gpu: dict[str, Any] = {}
            gpus[g.group("bus")] = gpu
            stack = [top, gpu]
            base = 2
            continue
        leaf = _XML_LEAF.fullmatch(line)
        if leaf:
            stack[-1][leaf.group("tag")] = leaf.group("value").strip()
            continue
        c = _XML_CLOSE.match(line)
        if c:
            if c.group("tag") == "gpu":
                stack, base = [top], 1
            elif len(stack) > base:
                stack.pop()
            continue
        o = _XML_OPEN.match(line)
        if o and o.group("tag") != "nvidia_smi_log":
            child: dict[str, Any] = {}
            stack[-1][o.group("tag")] = child
            stack.append(child)
            continue
        if o is None:
            skip_line("nvidia-smi -q -x", no)
    if not gpus and len(top) == 1:
        raise ParseError("nvidia-smi -q -x", "no <gpu> element and no value (not nvidia-smi XML)")
    return top
