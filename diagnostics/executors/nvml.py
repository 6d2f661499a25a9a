"""Local GPU checks through NVML (pynvml; the only module that imports it).

Where clusterdoc runs on a GPU node it can read clocks, power and temperature straight from the
driver instead of running ``nvidia-smi``. To give exactly the same results as the registry checks
``gpu_clocks``, ``gpu_power`` and ``gpu_temperature`` (finding kinds, thresholds, data keys), the
NVML readings are written out as the CSV that check's ``nvidia-smi --query-gpu=… --format=csv``
command would print, and the check's own parser reads it. Without a driver or GPU every call
returns status ``no_data`` ("no NVIDIA driver/GPU: …"), never an exception.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from diagnostics.registry import ParseInput, ParseOutput
from diagnostics.types import CommandResult, Status, ToolResult

if TYPE_CHECKING:
    from diagnostics.registry import Registry

NO_GPU = "no NVIDIA driver/GPU"
NVML_TOOLS = ("gpu_clocks", "gpu_power", "gpu_temperature")
NA = "[N/A]"
_QUERY = re.compile(r"--query-gpu=([A-Za-z0-9_.,]+)")

# clocks_event_reasons bits (nvml.h) for the per-reason query fields
_REASON_BITS = {"sw_power_cap": 0x4, "hw_slowdown": 0x8, "sw_thermal_slowdown": 0x20, "hw_thermal_slowdown": 0x40}


def _load_pynvml() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecated "pynvml" shim warns on import
        import pynvml

    return pynvml


def _mhz(v: Any) -> str:
    return f"{int(v)} MHz"


def _watts(mw: Any) -> str:
    return f"{mw / 1000.0:.2f} W"


def _reason_mask(nvml: Any, h: Any) -> int:
    getter = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or nvml.nvmlDeviceGetCurrentClocksThrottleReasons
    return int(getter(h))


def _active(bit: int) -> Callable[[Any, Any], str]:
    return lambda nvml, h: "Active" if _reason_mask(nvml, h) & bit else "Not Active"


def _bus_id(nvml: Any, h: Any) -> str:
    bus = nvml.nvmlDeviceGetPciInfo(h).busId
    return bus.decode() if isinstance(bus, bytes) else str(bus)


# nvidia-smi query field -> how to read it from NVML, formatted as nvidia-smi prints it
FIELDS: dict[str, Callable[[Any, Any], str]] = {
    "pci.bus_id": _bus_id,
    "clocks.sm": lambda n, h: _mhz(n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM)),
    "clocks.current.sm": lambda n, h: _mhz(n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM)),
    "clocks.mem": lambda n, h: _mhz(n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_MEM)),
    "clocks.max.sm": lambda n, h: _mhz(n.nvmlDeviceGetMaxClockInfo(h, n.NVML_CLOCK_SM)),
    "clocks.applications.graphics": lambda n, h: _mhz(n.nvmlDeviceGetApplicationsClock(h, n.NVML_CLOCK_GRAPHICS)),
    "clocks.applications.gr": lambda n, h: _mhz(n.nvmlDeviceGetApplicationsClock(h, n.NVML_CLOCK_GRAPHICS)),
    "utilization.gpu": lambda n, h: f"{int(n.nvmlDeviceGetUtilizationRates(h).gpu)} %",
    "temperature.gpu": lambda n, h: str(int(n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU))),
    "power.draw": lambda n, h: _watts(n.nvmlDeviceGetPowerUsage(h)),
    "power.limit": lambda n, h: _watts(n.nvmlDeviceGetPowerManagementLimit(h)),
    "enforced.power.limit": lambda n, h: _watts(n.nvmlDeviceGetEnforcedPowerLimit(h)),
    "power.default_limit": lambda n, h: _watts(n.nvmlDeviceGetPowerManagementDefaultLimit(h)),
    "power.max_limit": lambda n, h: _watts(n.nvmlDeviceGetPowerManagementLimitConstraints(h)[1]),
    "clocks_throttle_reasons.active": lambda n, h: f"0x{_reason_mask(n, h):016x}",
    "clocks_event_reasons.active": lambda n, h: f"0x{_reason_mask(n, h):016x}",
    **{f"clocks_throttle_reasons.{name}": _active(bit) for name, bit in _REASON_BITS.items()},
    **{f"clocks_event_reasons.{name}": _active(bit) for name, bit in _REASON_BITS.items()},
}


class NvmlChecks:
    """gpu_clocks / gpu_power / gpu_temperature on this machine's GPUs, through NVML."""

    _init_lock = threading.Lock()

    def __init__(
        self,
        host: str | None = None,
        *,
        registry: Registry | None = None,
        loader: Callable[[], Any] = _load_pynvml,
    ) -> None:
        self.host = host or socket.gethostname()
        self._registry = registry
        self._loader = loader
        self._nvml: Any = None
        self._why_unavailable: str | None = None

    def available(self) -> tuple[bool, str]:
        """(True, "") when NVML initialised; else (False, why)."""
        self._init()
        return self._nvml is not None, self._why_unavailable or ""

    def _init(self) -> None:
        if self._nvml is not None or self._why_unavailable is not None:
            return
        try:
            nvml = self._loader()
            with self._init_lock:
                nvml.nvmlInit()
            if nvml.nvmlDeviceGetCount() < 1:
                self._why_unavailable = f"{NO_GPU}: the driver reports no GPU"
                return
            self._nvml = nvml
        except ImportError:
            self._why_unavailable = f"{NO_GPU}: pynvml (nvidia-ml-py) is not installed"
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, …
            self._why_unavailable = f"{NO_GPU}: {exc or type(exc).__name__}"

    def close(self) -> None:
        if self._nvml is not None:
            with contextlib.suppress(Exception):  # already shut down / driver reloaded
                self._nvml.nvmlShutdown()
            self._nvml = None

    def _spec(self, tool: str) -> Any:
        if self._registry is None:
            from diagnostics.registry import default_registry

            self._registry = default_registry()
        return self._registry.get(tool)

    def run(self, tool: str, gpu: int | None = None) -> ToolResult:
        start = time.monotonic()
        params: dict[str, Any] = {"gpu": gpu}
        if tool not in NVML_TOOLS:
            return ToolResult(tool, self.host, Status.ERROR, error=f"NVML serves {', '.join(NVML_TOOLS)}, not {tool}",
                              params=params)
        self._init()
        if self._nvml is None:
            return ToolResult(tool, self.host, Status.NO_DATA, error=self._why_unavailable or NO_GPU, params=params)
        try:
            spec = self._spec(tool)
            match = _QUERY.search(spec.commands[0])
            if match is None:
                raise ValueError(f"check {tool} has no --query-gpu command to mirror")
            fields = match.group(1).split(",")
            count = self._nvml.nvmlDeviceGetCount()
            if gpu is not None and not 0 <= gpu < count:
                return ToolResult(tool, self.host, Status.NO_DATA, error=f"GPU {gpu} not present ({count} GPUs)",
                                  params=params)
            csv = self.query_csv(fields)
        except Exception as exc:  # a GPU that stops answering is a result, not a crash
            return ToolResult(tool, self.host, Status.ERROR, error=f"NVML error: {exc or type(exc).__name__}",
                              params=params, duration_s=time.monotonic() - start)
        command = f"nvml --query-gpu={','.join(fields)}"
        output = CommandResult(self.host, command, 0, csv)
        try:
            parsed = spec.parse(ParseInput(self.host, params, [output]))
        except Exception as exc:
            parsed = ParseOutput(Status.ERROR, error=f"could not parse NVML readings: {type(exc).__name__}: {exc}")
        data = {**parsed.data, "source": "nvml"}
        return ToolResult(tool, self.host, parsed.status, list(parsed.findings), data, raw=csv, error=parsed.error,
                          command=command, params=params, duration_s=time.monotonic() - start)

    def query_csv(self, fields: list[str]) -> str:
        """What ``nvidia-smi --query-gpu=FIELDS --format=csv`` would print, read through NVML;
        a field this GPU or driver does not support reads ``[N/A]``, as nvidia-smi prints it."""
        nvml = self._nvml
        lines = [", ".join(fields)]
        for i in range(nvml.nvmlDeviceGetCount()):
            h = nvml.nvmlDeviceGetHandleByIndex(i)
            cells = []
            for name in fields:
                if name == "index":
                    cells.append(str(i))
                    continue
                reader = FIELDS.get(name)
                try:
                    cells.append(reader(nvml, h) if reader else NA)
                except Exception:  # NVMLError_NotSupported and the like
                    cells.append(NA)
            lines.append(", ".join(cells))
        return "\n".join(lines) + "\n"
