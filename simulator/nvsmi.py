"""``nvidia-smi`` as the simulated nodes answer it: --query-gpu CSV, -q, -L, nvlink, remapped
rows, --version, the default table, and the mutating flags (-rgc, -rac, -lgc, -ac, -pl, -pm, -r).

Output follows the real tool's text (header names with units, ``[N/A]``, ``[Not Supported]``,
``0x…`` reason masks, "All done."), so the same parsers read the simulator and real nodes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from simulator.state import REASON_BITS, GpuState, NodeState
from simulator.telemetry import GpuReading

Out = tuple[int, str, str]  # exit code, stdout, stderr


class SmiContext:
    """What nvidia-smi can see on one node at one moment (supplied by the cluster)."""

    def __init__(
        self,
        node: NodeState,
        readings: Callable[[GpuState], GpuReading],
        now: datetime,
        on_change: Callable[[], None],
    ) -> None:
        self.node = node
        self.reading = readings
        self.now = now
        self.changed = on_change


@dataclass(frozen=True)
class Field:
    header: str
    unit: str  # printed after the value unless nounits; "" for none
    get: Callable[[SmiContext, GpuState, GpuReading], str | int | float]


def _fmt_int(v: float) -> str:
    return str(round(v))


def _reason(name: str) -> Callable[[SmiContext, GpuState, GpuReading], str]:
    return lambda c, g, r: "Active" if name in r.reasons else "Not Active"


def _product_name(node: NodeState) -> str:
    spec = node.gpu_spec
    return spec.aliases[0] if spec.aliases and spec.aliases[0].startswith(("NVIDIA", "AMD")) else f"NVIDIA {spec.name}"


def _compute_cap(node: NodeState) -> str:
    name = node.gpu_spec.name
    if name.startswith(("H100", "H800", "H200")):
        return "9.0"
    if name.startswith("B200"):
        return "10.0"
    if name.startswith("L40"):
        return "8.9"
    return "8.0"


def _pstate(r: GpuReading) -> str:
    return "P8" if "gpu_idle" in r.reasons else "P0"


_MAX_SM = lambda c, g, r: c.node.gpu_spec.max_sm_clock_mhz  # noqa: E731
_RR = REASON_BITS

FIELDS: dict[str, Field] = {
    "timestamp": Field("timestamp", "", lambda c, g, r: c.now.strftime("%Y/%m/%d %H:%M:%S.") + "123"),
    "driver_version": Field("driver_version", "", lambda c, g, r: c.node.driver_version),
    "count": Field("count", "", lambda c, g, r: sum(1 for x in c.node.gpus if x.present)),
    "name": Field("name", "", lambda c, g, r: _product_name(c.node)),
    "gpu_name": Field("name", "", lambda c, g, r: _product_name(c.node)),
    "serial": Field("serial", "", lambda c, g, r: g.serial),
    "uuid": Field("uuid", "", lambda c, g, r: g.uuid),
    "gpu_uuid": Field("uuid", "", lambda c, g, r: g.uuid),
    "index": Field("index", "", lambda c, g, r: g.index),
    "pci.bus_id": Field("pci.bus_id", "", lambda c, g, r: g.pci_bus_id),
    "gpu_bus_id": Field("pci.bus_id", "", lambda c, g, r: g.pci_bus_id),
    "persistence_mode": Field("persistence_mode", "", lambda c, g, r: "Enabled" if g.persistence else "Disabled"),
    "pstate": Field("pstate", "", lambda c, g, r: _pstate(r)),
    "fan.speed": Field("fan.speed [%]", "%", lambda c, g, r: "[N/A]"),
    "pcie.link.gen.current": Field("pcie.link.gen.current", "", lambda c, g, r: g.pcie_gen),
    "pcie.link.gen.gpucurrent": Field("pcie.link.gen.gpucurrent", "", lambda c, g, r: g.pcie_gen),
    "pcie.link.gen.max": Field("pcie.link.gen.max", "", lambda c, g, r: c.node.gpu_spec.pcie_gen),
    "pcie.link.gen.gpumax": Field("pcie.link.gen.gpumax", "", lambda c, g, r: c.node.gpu_spec.pcie_gen),
    "pcie.link.width.current": Field("pcie.link.width.current", "", lambda c, g, r: g.pcie_width),
    "pcie.link.width.max": Field("pcie.link.width.max", "", lambda c, g, r: c.node.gpu_spec.pcie_width),
    "utilization.gpu": Field("utilization.gpu [%]", "%", lambda c, g, r: _fmt_int(r.util_pct)),
    "utilization.memory": Field("utilization.memory [%]", "%", lambda c, g, r: _fmt_int(r.mem_util_pct)),
    "memory.total": Field("memory.total [MiB]", "MiB", lambda c, g, r: _fmt_int(c.node.gpu_spec.hbm_gb * 1024)),
    "memory.used": Field("memory.used [MiB]", "MiB", lambda c, g, r: _fmt_int(r.fb_used_mib)),
    "memory.free": Field(
        "memory.free [MiB]", "MiB", lambda c, g, r: _fmt_int(c.node.gpu_spec.hbm_gb * 1024 - r.fb_used_mib - 565)
    ),
    "temperature.gpu": Field("temperature.gpu", "", lambda c, g, r: _fmt_int(r.temp_c)),
    "temperature.memory": Field("temperature.memory", "", lambda c, g, r: _fmt_int(r.mem_temp_c)),
    "power.draw": Field("power.draw [W]", "W", lambda c, g, r: f"{r.power_w:.2f}"),
    "power.draw.instant": Field("power.draw.instant [W]", "W", lambda c, g, r: f"{r.power_w:.2f}"),
    "power.limit": Field("power.limit [W]", "W", lambda c, g, r: f"{g.power_limit_w:.2f}"),
    "enforced.power.limit": Field("enforced.power.limit [W]", "W", lambda c, g, r: f"{g.power_limit_w:.2f}"),
    "power.default_limit": Field(
        "power.default_limit [W]", "W", lambda c, g, r: f"{c.node.gpu_spec.default_power_w:.2f}"
    ),
    "power.min_limit": Field(
        "power.min_limit [W]", "W", lambda c, g, r: f"{c.node.gpu_spec.default_power_w / 4:.2f}"
    ),
    "power.max_limit": Field(
        "power.max_limit [W]", "W", lambda c, g, r: f"{c.node.gpu_spec.default_power_w:.2f}"
    ),
    "clocks.sm": Field("clocks.current.sm [MHz]", "MHz", lambda c, g, r: _fmt_int(r.sm_mhz)),
    "clocks.gr": Field("clocks.current.graphics [MHz]", "MHz", lambda c, g, r: _fmt_int(r.sm_mhz)),
    "clocks.mem": Field("clocks.current.memory [MHz]", "MHz", lambda c, g, r: _fmt_int(r.mem_mhz)),
    "clocks.max.sm": Field("clocks.max.sm [MHz]", "MHz", _MAX_SM),
    "clocks.max.gr": Field("clocks.max.graphics [MHz]", "MHz", _MAX_SM),
    "clocks.max.mem": Field(
        "clocks.max.memory [MHz]", "MHz", lambda c, g, r: c.node.gpu_spec.max_mem_clock_mhz
    ),
    "clocks.applications.gr": Field(
        "clocks.applications.graphics [MHz]", "MHz", lambda c, g, r: _fmt_int(g.app_sm_mhz)
    ),
    "clocks.applications.mem": Field(
        "clocks.applications.memory [MHz]", "MHz", lambda c, g, r: c.node.gpu_spec.max_mem_clock_mhz
    ),
    "clocks.default_applications.gr": Field("clocks.default_applications.graphics [MHz]", "MHz", _MAX_SM),
    "clocks_event_reasons.supported": Field(
        "clocks_event_reasons.supported", "", lambda c, g, r: "0x00000000000001FF"
    ),
    "clocks_event_reasons.active": Field(
        "clocks_event_reasons.active", "", lambda c, g, r: f"0x{r.reason_mask:016X}"
    ),
    "clocks_event_reasons.gpu_idle": Field("clocks_event_reasons.gpu_idle", "", _reason("gpu_idle")),
    "clocks_event_reasons.applications_clocks_setting": Field(
        "clocks_event_reasons.applications_clocks_setting", "", _reason("applications_clocks_setting")
    ),
    "clocks_event_reasons.sw_power_cap": Field("clocks_event_reasons.sw_power_cap", "", _reason("sw_power_cap")),
    "clocks_event_reasons.hw_slowdown": Field("clocks_event_reasons.hw_slowdown", "", _reason("hw_slowdown")),
    "clocks_event_reasons.hw_thermal_slowdown": Field(
        "clocks_event_reasons.hw_thermal_slowdown", "", _reason("hw_thermal_slowdown")
    ),
    "clocks_event_reasons.hw_power_brake_slowdown": Field(
        "clocks_event_reasons.hw_power_brake_slowdown", "", _reason("hw_power_brake_slowdown")
    ),
    "clocks_event_reasons.sw_thermal_slowdown": Field(
        "clocks_event_reasons.sw_thermal_slowdown", "", _reason("sw_thermal_slowdown")
    ),
    "clocks_event_reasons.sync_boost": Field("clocks_event_reasons.sync_boost", "", _reason("sync_boost")),
    "ecc.mode.current": Field("ecc.mode.current", "", lambda c, g, r: "Enabled"),
    "ecc.mode.pending": Field("ecc.mode.pending", "", lambda c, g, r: "Enabled"),
    "ecc.errors.corrected.volatile.total": Field(
        "ecc.errors.corrected.volatile.total", "", lambda c, g, r: g.ecc_sbe_volatile
    ),
    "ecc.errors.uncorrected.volatile.total": Field(
        "ecc.errors.uncorrected.volatile.total", "", lambda c, g, r: g.ecc_dbe_volatile
    ),
    "ecc.errors.corrected.aggregate.total": Field(
        "ecc.errors.corrected.aggregate.total", "", lambda c, g, r: g.ecc_sbe_volatile
    ),
    "ecc.errors.uncorrected.aggregate.total": Field(
        "ecc.errors.uncorrected.aggregate.total", "", lambda c, g, r: g.ecc_dbe_aggregate
    ),
    "vbios_version": Field("vbios_version", "", lambda c, g, r: "92.00.45.00.05"),
    "compute_cap": Field("compute_cap", "", lambda c, g, r: _compute_cap(c.node)),
    "mig.mode.current": Field("mig.mode.current", "", lambda c, g, r: "Disabled"),
    "clocks.video": Field("clocks.current.video [MHz]", "MHz", lambda c, g, r: c.node.gpu_spec.base_sm_clock_mhz),
    "clocks.max.video": Field("clocks.max.video [MHz]", "MHz", lambda c, g, r: c.node.gpu_spec.base_sm_clock_mhz),
    "power.draw.average": Field("power.draw.average [W]", "W", lambda c, g, r: f"{r.power_w:.2f}"),
    "ecc.errors.uncorrected.volatile.dram": Field(
        "ecc.errors.uncorrected.volatile.dram", "", lambda c, g, r: g.ecc_dbe_volatile
    ),
    "ecc.errors.corrected.volatile.dram": Field(
        "ecc.errors.corrected.volatile.dram", "", lambda c, g, r: g.ecc_sbe_volatile
    ),
    "retired_pages.sbe": Field("retired_pages.single_bit_ecc.count", "", lambda c, g, r: "[N/A]"),
    "retired_pages.dbe": Field("retired_pages.double_bit.count", "", lambda c, g, r: "[N/A]"),
    "retired_pages.pending": Field("retired_pages.pending", "", lambda c, g, r: "[N/A]"),
}
# spellings nvidia-smi accepts for the same property
_ALIASES = {
    "gpu_serial": "serial",
    "pci.bus": "pci.bus_id",
    "clocks.current.sm": "clocks.sm",
    "clocks.current.graphics": "clocks.gr",
    "clocks.graphics": "clocks.gr",
    "clocks.current.memory": "clocks.mem",
    "clocks.memory": "clocks.mem",
    "clocks.max.graphics": "clocks.max.gr",
    "clocks.max.memory": "clocks.max.mem",
    "clocks.current.video": "clocks.video",
    "clocks.applications.graphics": "clocks.applications.gr",
    "clocks.applications.memory": "clocks.applications.mem",
    "clocks.default_applications.graphics": "clocks.default_applications.gr",
    "power.management": "persistence_mode",
    "temperature.gpu.tlimit": "temperature.gpu",
    "ecc.errors.uncorrected.volatile": "ecc.errors.uncorrected.volatile.total",
    "ecc.errors.corrected.volatile": "ecc.errors.corrected.volatile.total",
}


def resolve_field(name: str) -> tuple[str, Field] | None:
    """The Field for a query name; the header echoes the spelling asked for, as nvidia-smi does
    for the throttle/event-reason aliases."""
    key = _ALIASES.get(name, name)
    header_override = None
    if key.startswith("clocks_throttle_reasons."):
        header_override = key
        key = "clocks_event_reasons." + key.split(".", 1)[1]
    elif key.startswith("clock_throttle_reasons."):
        header_override = "clocks_throttle_reasons." + key.split(".", 1)[1]
        key = "clocks_event_reasons." + key.split(".", 1)[1]
    f = FIELDS.get(key)
    if f is None:
        return None
    if header_override:
        f = Field(header_override, f.unit, f.get)
    return key, f


# --------------------------------------------------------------------------- argument handling


@dataclass
class SmiArgs:
    ids: list[str]
    query_gpu: list[str] | None = None
    query_remapped: list[str] | None = None
    fmt: set[str] | None = None
    q: bool = False
    xml: bool = False
    displays: set[str] | None = None
    list_gpus: bool = False
    version: bool = False
    sub: str | None = None  # "nvlink"
    nvlink_status: bool = False
    rgc: bool = False
    rac: bool = False
    lgc: str | None = None
    ac: str | None = None
    pl: str | None = None
    pm: str | None = None
    reset: bool = False
    bad: str | None = None


_VALUE_FLAGS = {"-i": "id", "--id": "id", "-pl": "pl", "--power-limit": "pl", "-pm": "pm",
                "--persistence-mode": "pm", "-lgc": "lgc", "--lock-gpu-clocks": "lgc", "-ac": "ac",
                "--applications-clocks": "ac", "-d": "d", "--display": "d", "-f": "file", "--filename": "file"}


def parse_args(argv: list[str]) -> SmiArgs:
    a = SmiArgs(ids=[])
    i = 0
    while i < len(argv):
        tok = argv[i]
        key, eq, val = tok.partition("=")
        if key in _VALUE_FLAGS:
            if not eq:
                if i + 1 >= len(argv):
                    a.bad = f'Option "{key}" requires a value.'
                    return a
                val = argv[i + 1]
                i += 1
            kind = _VALUE_FLAGS[key]
            if kind == "id":
                a.ids.extend(v for v in val.split(",") if v)
            elif kind == "pl":
                a.pl = val
            elif kind == "pm":
                a.pm = val
            elif kind == "lgc":
                a.lgc = val
            elif kind == "ac":
                a.ac = val
            elif kind == "d":
                a.displays = {d.strip().upper() for d in val.split(",")}
        elif key in ("--query-gpu", "--query-remapped-rows") or tok.startswith(("--query-gpu", "--query-remapped-rows")):
            if not eq:
                if i + 1 >= len(argv):
                    a.bad = f'Option "{key}" requires a value.'
                    return a
                val = argv[i + 1]
                i += 1
            fields = [f.strip() for f in val.split(",") if f.strip()]
            if key == "--query-gpu":
                a.query_gpu = fields
            else:
                a.query_remapped = fields
        elif key == "--format":
            a.fmt = {f.strip() for f in val.split(",")}
        elif tok in ("-q", "--query"):
            a.q = True
        elif tok in ("-x", "--xml-format"):
            a.xml = True
        elif tok in ("-L", "--list-gpus"):
            a.list_gpus = True
        elif tok == "--version":
            a.version = True
        elif tok == "nvlink" and a.sub is None:
            a.sub = "nvlink"
        elif tok in ("-s", "--status") and a.sub == "nvlink":
            a.nvlink_status = True
        elif tok in ("-rgc", "--reset-gpu-clocks"):
            a.rgc = True
        elif tok in ("-rac", "--reset-applications-clocks"):
            a.rac = True
        elif tok in ("-r", "--gpu-reset"):
            a.reset = True
        elif tok in ("-u", "--unit"):
            pass
        else:
            a.bad = f"Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.\n(unknown option {tok!r})"
            return a
        i += 1
    return a


def _select(ctx: SmiContext, ids: list[str]) -> tuple[list[GpuState], str]:
    """GPUs selected by -i (index, UUID or PCI bus id); error text when one does not exist."""
    if not ids:
        return list(ctx.node.gpus), ""
    chosen: list[GpuState] = []
    for ident in ids:
        found = None
        for g in ctx.node.gpus:
            if ident == str(g.index) or ident == g.uuid or ident.upper().endswith(g.pci_bus_id[4:]):
                found = g
        if found is None:
            return [], "No devices were found"
        chosen.append(found)
    return chosen, ""


def _lost_line(g: GpuState) -> str:
    return f"Unable to determine the device handle for GPU{g.pci_bus_id[4:]}: Unknown Error"


def run(ctx: SmiContext, argv: list[str]) -> Out:
    if ctx.node.gpu_spec.vendor != "nvidia":
        return 127, "", "bash: nvidia-smi: command not found\n"
    a = parse_args(argv)
    if a.bad:
        return 2, "", a.bad + "\n"
    gpus, err = _select(ctx, a.ids)
    if err:
        return 6, err + "\n", ""
    if a.version:
        return 0, _version(ctx), ""
    if a.query_gpu is not None:
        return _query(ctx, gpus, a.query_gpu, a.fmt or set())
    if a.query_remapped is not None:
        return _query_remapped(ctx, gpus, a.query_remapped, a.fmt or set())
    if a.list_gpus:
        return _list(ctx, gpus)
    if a.sub == "nvlink":
        return _nvlink(ctx, gpus)
    if a.q and a.xml:
        return _xml_query(ctx, gpus)
    if a.q:
        return _full_query(ctx, gpus, a.displays)
    if a.rgc or a.rac or a.lgc or a.ac or a.pl is not None or a.pm is not None or a.reset:
        return _mutate(ctx, a, gpus)
    return _default_table(ctx)


def _version(ctx: SmiContext) -> str:
    v = ctx.node.driver_version
    return (
        f"NVIDIA-SMI version  : {v}\n"
        f"NVML version        : {v.rsplit('.', 1)[0]}\n"
        f"DRIVER version      : {v}\n"
        f"CUDA Version        : {ctx.node.cuda_version}\n"
    )


def _query(ctx: SmiContext, gpus: list[GpuState], names: list[str], fmt: set[str]) -> Out:
    if "csv" not in fmt:
        return 2, "", '"--format" option is required. Please run \'nvidia-smi -h\' for help.\n'
    fields = []
    for name in names:
        resolved = resolve_field(name)
        if resolved is None:
            return 2, "", f'Field "{name}" is not a valid field to query.\n\n'
        fields.append(resolved[1])
    lines: list[str] = []
    if "noheader" not in fmt:
        lines.append(", ".join(f.header if "nounits" not in fmt else f.header.split(" [")[0] for f in fields))
    errors: list[str] = []
    for g in gpus:
        if not g.present:
            errors.append(_lost_line(g))
            continue
        r = ctx.reading(g)
        cells = []
        for f in fields:
            v = f.get(ctx, g, r)
            text = str(v)
            if f.unit and "nounits" not in fmt and not text.startswith("["):
                text = f"{text} {f.unit}"
            cells.append(text)
        lines.append(", ".join(cells))
    err = "".join(e + "\n" for e in errors)
    return 0, "\n".join(lines) + "\n", err


_REMAP_FIELDS = {
    "gpu_bus_id": lambda g: g.pci_bus_id,
    "gpu_uuid": lambda g: g.uuid,
    "remapped_rows.correctable": lambda g: g.remap_correctable,
    "remapped_rows.uncorrectable": lambda g: g.remap_uncorrectable,
    "remapped_rows.pending": lambda g: int(g.remap_pending),
    "remapped_rows.failure": lambda g: int(g.remap_failure),
}


def _query_remapped(ctx: SmiContext, gpus: list[GpuState], names: list[str], fmt: set[str]) -> Out:
    if "csv" not in fmt:
        return 2, "", '"--format" option is required. Please run \'nvidia-smi -h\' for help.\n'
    for name in names:
        if name not in _REMAP_FIELDS:
            return 2, "", f'Field "{name}" is not a valid field to query.\n\n'
    if ctx.node.gpu_spec.hbm_gb < 48 and "L40" in ctx.node.gpu_spec.name:
        return 0, "[Not Supported]\n", ""
    lines = [] if "noheader" in fmt else [", ".join(names)]
    errors = []
    for g in gpus:
        if not g.present:
            errors.append(_lost_line(g))
            continue
        lines.append(", ".join(str(_REMAP_FIELDS[n](g)) for n in names))
    return 0, "\n".join(lines) + "\n", "".join(e + "\n" for e in errors)


def _list(ctx: SmiContext, gpus: list[GpuState]) -> Out:
    lines, errors = [], []
    for g in gpus:
        if g.present:
            lines.append(f"GPU {g.index}: {_product_name(ctx.node)} (UUID: {g.uuid})")
        else:
            errors.append(_lost_line(g))
    return 0, "".join(line + "\n" for line in lines), "".join(e + "\n" for e in errors)


def _nvlink(ctx: SmiContext, gpus: list[GpuState]) -> Out:
    spec = ctx.node.gpu_spec
    per_link = spec.nvlink_bw_gbs / spec.nvlink_links / 2 if spec.nvlink_links else 0.0
    lines, errors = [], []
    for g in gpus:
        if not g.present:
            errors.append(_lost_line(g))
            continue
        lines.append(f"GPU {g.index}: {_product_name(ctx.node)} (UUID: {g.uuid})")
        for li, up in enumerate(g.nvlink_up):
            speed = f"{per_link:.3f}".rstrip("0").rstrip(".")
            lines.append(f"\t Link {li}: {speed} GB/s" if up else f"\t Link {li}: <inactive>")
    return 0, "".join(line + "\n" for line in lines), "".join(e + "\n" for e in errors)


# --------------------------------------------------------------------------- nvidia-smi -q


def _kv(indent: int, key: str, value: object) -> str:
    pad = 4 * indent
    return f"{' ' * pad}{key:<{42 - pad}}: {value}"


def _full_query(ctx: SmiContext, gpus: list[GpuState], displays: set[str] | None) -> Out:
    node = ctx.node
    spec = node.gpu_spec
    want = (lambda d: True) if not displays else (lambda d: d in displays)
    out = [
        "",
        "==============NVSMI LOG==============",
        "",
        _kv(0, "Timestamp", ctx.now.strftime("%a %b %d %H:%M:%S %Y")),
        _kv(0, "Driver Version", node.driver_version),
        _kv(0, "CUDA Version", node.cuda_version),
        "",
        _kv(0, "Attached GPUs", sum(1 for g in node.gpus if g.present)),
    ]
    errors = []
    for g in gpus:
        if not g.present:
            errors.append(_lost_line(g))
            continue
        r = ctx.reading(g)
        out.append(f"GPU {g.pci_bus_id}")
        if not displays:
            out += [
                _kv(1, "Product Name", _product_name(node)),
                _kv(1, "Product Brand", "NVIDIA"),
                _kv(1, "Persistence Mode", "Enabled" if g.persistence else "Disabled"),
                _kv(1, "Serial Number", g.serial),
                _kv(1, "GPU UUID", g.uuid),
                _kv(1, "Minor Number", g.index),
                _kv(1, "VBIOS Version", "92.00.45.00.05"),
                "    PCI",
                _kv(2, "Bus", f"0x{g.bus:02X}"),
                _kv(2, "Device", "0x00"),
                _kv(2, "Domain", "0x0000"),
                _kv(2, "Bus Id", g.pci_bus_id),
                "        GPU Link Info",
                "            PCIe Generation",
                _kv(4, "Max", spec.pcie_gen),
                _kv(4, "Current", g.pcie_gen),
                "            Link Width",
                _kv(4, "Max", f"{spec.pcie_width}x"),
                _kv(4, "Current", f"{g.pcie_width}x"),
                _kv(2, "Replays Since Reset", g.pcie_replays),
                _kv(1, "Fan Speed", "N/A"),
            ]
        if want("PERFORMANCE"):
            out += [_kv(1, "Performance State", _pstate(r)), "    Clocks Event Reasons"]
            for label, name, indent in (
                ("Idle", "gpu_idle", 2),
                ("Applications Clocks Setting", "applications_clocks_setting", 2),
                ("SW Power Cap", "sw_power_cap", 2),
                ("HW Slowdown", "hw_slowdown", 2),
                ("HW Thermal Slowdown", "hw_thermal_slowdown", 3),
                ("HW Power Brake Slowdown", "hw_power_brake_slowdown", 3),
                ("Sync Boost", "sync_boost", 2),
                ("SW Thermal Slowdown", "sw_thermal_slowdown", 2),
                ("Display Clock Setting", "display_clock_setting", 2),
            ):
                out.append(_kv(indent, label, "Active" if name in r.reasons else "Not Active"))
        if want("MEMORY"):
            total = int(spec.hbm_gb * 1024)
            out += [
                "    FB Memory Usage",
                _kv(2, "Total", f"{total} MiB"),
                _kv(2, "Reserved", "565 MiB"),
                _kv(2, "Used", f"{int(r.fb_used_mib)} MiB"),
                _kv(2, "Free", f"{total - 565 - int(r.fb_used_mib)} MiB"),
            ]
        if want("UTILIZATION"):
            out += [
                "    Utilization",
                _kv(2, "Gpu", f"{int(r.util_pct)} %"),
                _kv(2, "Memory", f"{int(r.mem_util_pct)} %"),
                _kv(2, "Encoder", "0 %"),
                _kv(2, "Decoder", "0 %"),
            ]
        if want("ECC"):
            out += [
                "    ECC Mode",
                _kv(2, "Current", "Enabled"),
                _kv(2, "Pending", "Enabled"),
                "    ECC Errors",
                "        Volatile",
                _kv(3, "SRAM Correctable", 0),
                _kv(3, "SRAM Uncorrectable", 0),
                _kv(3, "DRAM Correctable", g.ecc_sbe_volatile),
                _kv(3, "DRAM Uncorrectable", g.ecc_dbe_volatile),
                "        Aggregate",
                _kv(3, "SRAM Correctable", 0),
                _kv(3, "SRAM Uncorrectable", 0),
                _kv(3, "DRAM Correctable", g.ecc_sbe_volatile),
                _kv(3, "DRAM Uncorrectable", g.ecc_dbe_aggregate),
            ]
        if want("PAGE_RETIREMENT"):
            out += [
                "    Retired Pages",
                _kv(2, "Single Bit ECC", "N/A"),
                _kv(2, "Double Bit ECC", "N/A"),
                _kv(2, "Pending Page Blacklist", "N/A"),
            ]
        if want("ROW_REMAPPER"):
            out += [
                "    Remapped Rows",
                _kv(2, "Correctable Error", g.remap_correctable),
                _kv(2, "Uncorrectable Error", g.remap_uncorrectable),
                _kv(2, "Pending", "Yes" if g.remap_pending else "No"),
                _kv(2, "Remapping Failure Occurred", "Yes" if g.remap_failure else "No"),
                "        Bank Remap Availability Histogram",
                _kv(3, "Max", f"{640 - g.remap_uncorrectable} bank(s)"),
                _kv(3, "High", "0 bank(s)"),
                _kv(3, "Partial", f"{g.remap_uncorrectable} bank(s)"),
                _kv(3, "Low", "0 bank(s)"),
                _kv(3, "None", "0 bank(s)"),
            ]
        if want("TEMPERATURE"):
            out += [
                "    Temperature",
                _kv(2, "GPU Current Temp", f"{int(r.temp_c)} C"),
                _kv(2, "GPU T.Limit Temp", "N/A"),
                _kv(2, "GPU Shutdown Temp", f"{spec.slowdown_temp_c + 3} C"),
                _kv(2, "GPU Slowdown Temp", f"{spec.slowdown_temp_c} C"),
                _kv(2, "GPU Max Operating Temp", f"{spec.slowdown_temp_c - 4} C"),
                _kv(2, "GPU Target Temperature", "N/A"),
                _kv(2, "Memory Current Temp", f"{int(r.mem_temp_c)} C"),
                _kv(2, "Memory Max Operating Temp", "95 C"),
            ]
        if want("POWER"):
            out += [
                "    GPU Power Readings",
                _kv(2, "Power Draw", f"{r.power_w:.2f} W"),
                _kv(2, "Current Power Limit", f"{g.power_limit_w:.2f} W"),
                _kv(2, "Requested Power Limit", f"{g.power_limit_w:.2f} W"),
                _kv(2, "Default Power Limit", f"{spec.default_power_w:.2f} W"),
                _kv(2, "Min Power Limit", f"{spec.default_power_w / 4:.2f} W"),
                _kv(2, "Max Power Limit", f"{spec.default_power_w:.2f} W"),
            ]
        if want("CLOCK"):
            out += [
                "    Clocks",
                _kv(2, "Graphics", f"{int(r.sm_mhz)} MHz"),
                _kv(2, "SM", f"{int(r.sm_mhz)} MHz"),
                _kv(2, "Memory", f"{int(r.mem_mhz)} MHz"),
                _kv(2, "Video", f"{int(spec.base_sm_clock_mhz)} MHz"),
                "    Applications Clocks",
                _kv(2, "Graphics", f"{int(g.app_sm_mhz)} MHz"),
                _kv(2, "Memory", f"{spec.max_mem_clock_mhz} MHz"),
                "    Default Applications Clocks",
                _kv(2, "Graphics", f"{spec.max_sm_clock_mhz} MHz"),
                _kv(2, "Memory", f"{spec.max_mem_clock_mhz} MHz"),
                "    Max Clocks",
                _kv(2, "Graphics", f"{spec.max_sm_clock_mhz} MHz"),
                _kv(2, "SM", f"{spec.max_sm_clock_mhz} MHz"),
                _kv(2, "Memory", f"{spec.max_mem_clock_mhz} MHz"),
                _kv(2, "Video", f"{spec.base_sm_clock_mhz} MHz"),
            ]
        out.append("")
    return 0, "\n".join(out) + "\n", "".join(e + "\n" for e in errors)


def _xml_query(ctx: SmiContext, gpus: list[GpuState]) -> Out:
    """`nvidia-smi -q -x`: the same facts in the driver's XML tag names."""
    import xml.etree.ElementTree as ET

    node = ctx.node
    spec = node.gpu_spec
    root = ET.Element("nvidia_smi_log")

    def leaf(parent: ET.Element, tag: str, text: object) -> None:
        ET.SubElement(parent, tag).text = str(text)

    leaf(root, "timestamp", ctx.now.strftime("%a %b %d %H:%M:%S %Y"))
    leaf(root, "driver_version", node.driver_version)
    leaf(root, "cuda_version", node.cuda_version)
    leaf(root, "attached_gpus", sum(1 for g in node.gpus if g.present))
    errors = []
    for g in gpus:
        if not g.present:
            errors.append(_lost_line(g))
            continue
        r = ctx.reading(g)
        el = ET.SubElement(root, "gpu", id=g.pci_bus_id)
        leaf(el, "product_name", _product_name(node))
        leaf(el, "persistence_mode", "Enabled" if g.persistence else "Disabled")
        leaf(el, "serial", g.serial)
        leaf(el, "uuid", g.uuid)
        leaf(el, "minor_number", g.index)
        pci = ET.SubElement(el, "pci")
        leaf(pci, "pci_bus_id", g.pci_bus_id)
        link = ET.SubElement(pci, "pci_gpu_link_info")
        gen = ET.SubElement(link, "pcie_gen")
        leaf(gen, "max_link_gen", spec.pcie_gen)
        leaf(gen, "current_link_gen", g.pcie_gen)
        width = ET.SubElement(link, "link_widths")
        leaf(width, "max_link_width", f"{spec.pcie_width}x")
        leaf(width, "current_link_width", f"{g.pcie_width}x")
        leaf(el, "performance_state", _pstate(r))
        reasons = ET.SubElement(el, "clocks_event_reasons")
        for name in ("gpu_idle", "applications_clocks_setting", "sw_power_cap", "hw_slowdown",
                     "hw_thermal_slowdown", "hw_power_brake_slowdown", "sync_boost", "sw_thermal_slowdown",
                     "display_clock_setting"):
            leaf(reasons, f"clocks_event_reason_{name}", "Active" if name in r.reasons else "Not Active")
        fb = ET.SubElement(el, "fb_memory_usage")
        total = int(spec.hbm_gb * 1024)
        leaf(fb, "total", f"{total} MiB")
        leaf(fb, "used", f"{int(r.fb_used_mib)} MiB")
        leaf(fb, "free", f"{total - 565 - int(r.fb_used_mib)} MiB")
        util = ET.SubElement(el, "utilization")
        leaf(util, "gpu_util", f"{int(r.util_pct)} %")
        leaf(util, "memory_util", f"{int(r.mem_util_pct)} %")
        ecc = ET.SubElement(ET.SubElement(el, "ecc_errors"), "volatile")
        leaf(ecc, "dram_correctable", g.ecc_sbe_volatile)
        leaf(ecc, "dram_uncorrectable", g.ecc_dbe_volatile)
        remap = ET.SubElement(el, "remapped_rows")
        leaf(remap, "remapped_row_corr", g.remap_correctable)
        leaf(remap, "remapped_row_unc", g.remap_uncorrectable)
        leaf(remap, "remapped_row_pending", "Yes" if g.remap_pending else "No")
        leaf(remap, "remapped_row_failure", "Yes" if g.remap_failure else "No")
        temp = ET.SubElement(el, "temperature")
        leaf(temp, "gpu_temp", f"{int(r.temp_c)} C")
        leaf(temp, "gpu_temp_slow_threshold", f"{spec.slowdown_temp_c} C")
        leaf(temp, "memory_temp", f"{int(r.mem_temp_c)} C")
        power = ET.SubElement(el, "gpu_power_readings")
        leaf(power, "power_draw", f"{r.power_w:.2f} W")
        leaf(power, "current_power_limit", f"{g.power_limit_w:.2f} W")
        leaf(power, "default_power_limit", f"{spec.default_power_w:.2f} W")
        clocks = ET.SubElement(el, "clocks")
        leaf(clocks, "graphics_clock", f"{int(r.sm_mhz)} MHz")
        leaf(clocks, "sm_clock", f"{int(r.sm_mhz)} MHz")
        leaf(clocks, "mem_clock", f"{int(r.mem_mhz)} MHz")
        app = ET.SubElement(el, "applications_clocks")
        leaf(app, "graphics_clock", f"{int(g.app_sm_mhz)} MHz")
        leaf(app, "mem_clock", f"{spec.max_mem_clock_mhz} MHz")
        mx = ET.SubElement(el, "max_clocks")
        leaf(mx, "graphics_clock", f"{spec.max_sm_clock_mhz} MHz")
        leaf(mx, "sm_clock", f"{spec.max_sm_clock_mhz} MHz")
        leaf(mx, "mem_clock", f"{spec.max_mem_clock_mhz} MHz")
    ET.indent(root, space="\t")
    body = ET.tostring(root, encoding="unicode")
    head = '<?xml version="1.0" ?>\n<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v12.dtd">\n'
    return 0, head + body + "\n", "".join(e + "\n" for e in errors)


def _default_table(ctx: SmiContext) -> Out:
    node = ctx.node
    spec = node.gpu_spec
    sep = "+-----------------------------------------+----------------------+----------------------+"
    lines = [
        ctx.now.strftime("%a %b %d %H:%M:%S %Y"),
        "+---------------------------------------------------------------------------------------+",
        f"| NVIDIA-SMI {node.driver_version:<19} Driver Version: {node.driver_version:<14} "
        f"CUDA Version: {node.cuda_version:<8} |",
        sep,
        "| GPU  Name                 Persistence-M | Bus-Id        Disp.A | Volatile Uncorr. ECC |",
        "| Fan  Temp   Perf          Pwr:Usage/Cap |         Memory-Usage | GPU-Util  Compute M. |",
        "|                                         |                      |               MIG M. |",
        sep.replace("-", "="),
    ]
    errors = []
    for g in node.gpus:
        if not g.present:
            errors.append(_lost_line(g))
            continue
        r = ctx.reading(g)
        name = _product_name(node).replace("NVIDIA ", "NVIDIA ")[:24]
        total = int(spec.hbm_gb * 1024)
        lines += [
            f"| {g.index:>3}  {name:<24}  {'On' if g.persistence else 'Off':>3}  | "
            f"{g.pci_bus_id:<16} Off | {g.ecc_dbe_volatile:>20} |",
            f"| N/A  {int(r.temp_c):>3}C    {_pstate(r):<3} {int(r.power_w):>9}W / {int(g.power_limit_w):>4}W | "
            f"{int(r.fb_used_mib):>8}MiB / {total:>6}MiB | {int(r.util_pct):>6}%      Default |",
            "|                                         |                      |             Disabled |",
            sep,
        ]
    return 0, "\n".join(lines) + "\n", "".join(e + "\n" for e in errors)


# --------------------------------------------------------------------------- mutations


def _mutate(ctx: SmiContext, a: SmiArgs, gpus: list[GpuState]) -> Out:
    node = ctx.node
    spec = node.gpu_spec
    out: list[str] = []
    if a.reset and not a.ids:
        return 2, "", "GPU reset requires -i, --id to be specified.\n"
    for g in gpus:
        if not g.present:
            return 15, "", _lost_line(g) + "\n"
    if a.reset:
        if node.job_running and not node.drained:
            busy = ", ".join(g.pci_bus_id for g in gpus)
            return (
                255,
                f"GPU {busy} is currently in use by another process.\n\n"
                "1 device is currently being used by one or more other processes (e.g., Fabric Manager, "
                "CUDA application, graphics application such as an X server, or a monitoring application "
                "such as another instance of nvidia-smi). Please first kill all processes using this "
                "device and all compute applications running in the system.\n",
                "",
            )
        for g in gpus:
            g.locked_sm_mhz = None
            g.cap_reasons = set()
            g.app_sm_mhz = float(spec.max_sm_clock_mhz)
            g.power_limit_w = float(spec.default_power_w)
            g.ecc_dbe_volatile = 0
            g.ecc_sbe_volatile = 0
            if g.remap_pending:
                g.remap_pending = False
            g.nvlink_up = [True] * len(g.nvlink_up)
            g.pcie_gen, g.pcie_width = spec.pcie_gen, spec.pcie_width
            out.append(f"GPU {g.pci_bus_id} was successfully reset.")
        out.append("All done.")
        ctx.changed()
        return 0, "\n".join(out) + "\n", ""
    if a.pl is not None:
        try:
            watts = float(a.pl)
        except ValueError:
            return 2, "", f'Invalid value "{a.pl}" for power limit.\n'
        lo, hi = spec.default_power_w / 4, float(spec.default_power_w)
        for g in gpus:
            if not lo <= watts <= hi:
                return (
                    2,
                    f"Provided power limit {watts:.2f} W is not a valid power limit which should be between "
                    f"{lo:.2f} W and {hi:.2f} W for GPU {g.pci_bus_id}\nTerminating early due to previous errors.\n",
                    "",
                )
            old = g.power_limit_w
            g.power_limit_w = watts
            out.append(f"Power limit for GPU {g.pci_bus_id} was set to {watts:.2f} W from {old:.2f} W.")
    if a.pm is not None:
        on = a.pm.strip().upper() in ("1", "ENABLED")
        if a.pm.strip().upper() not in ("0", "1", "ENABLED", "DISABLED"):
            return 2, "", f'Invalid value "{a.pm}" for persistence mode.\n'
        for g in gpus:
            was = g.persistence
            g.persistence = on
            state = "Enabled" if on else "Disabled"
            if was == on:
                out.append(f"Persistence mode is already {state} for GPU {g.pci_bus_id}.")
            else:
                out.append(f"{state} persistence mode for GPU {g.pci_bus_id}.")
    if a.rgc:
        for g in gpus:
            g.locked_sm_mhz = None
            g.cap_reasons = set()
            out.append(f'GPU clocks reset to "default" for GPU {g.pci_bus_id}')
    if a.rac:
        for g in gpus:
            g.app_sm_mhz = float(spec.max_sm_clock_mhz)
            g.locked_sm_mhz = None
            g.cap_reasons = set()
            out.append(
                f'Applications clocks set to "(MEM {spec.max_mem_clock_mhz}, SM {spec.max_sm_clock_mhz})" '
                f"for GPU {g.pci_bus_id}"
            )
    if a.lgc is not None:
        parts = a.lgc.split(",")
        try:
            lo_c, hi_c = float(parts[0]), float(parts[-1])
        except ValueError:
            return 2, "", f'Invalid value "{a.lgc}" for locked clocks.\n'
        for g in gpus:
            g.locked_sm_mhz = min(hi_c, float(spec.max_sm_clock_mhz))
            g.cap_reasons = {"applications_clocks_setting"}
            out.append(f'GPU clocks set to "(gpcclk Min {int(lo_c)}, gpcclk Max {int(hi_c)})" for GPU {g.pci_bus_id}')
    if a.ac is not None:
        try:
            _mem, sm = (float(x) for x in a.ac.split(","))
        except ValueError:
            return 2, "", f'Invalid value "{a.ac}" for applications clocks.\n'
        for g in gpus:
            g.app_sm_mhz = min(sm, float(spec.max_sm_clock_mhz))
            out.append(f'Applications clocks set to "(MEM {int(_mem)}, SM {int(sm)})" for GPU {g.pci_bus_id}')
    out.append("All done.")
    ctx.changed()
    return 0, "\n".join(out) + "\n", ""


def utc_now(epoch: datetime, seconds: float) -> datetime:
    from datetime import timedelta

    return (epoch + timedelta(seconds=seconds)).astimezone(UTC)
