"""Local GPU checks through NVML (pynvml; the only module that imports it).

Where clusterdoc runs on a GPU node it can read clocks, power and temperature straight from the
driver instead of parsing ``nvidia-smi``. The results have the same shape as the registry checks
``gpu_clocks``, ``gpu_power`` and ``gpu_temperature`` (same tool names, finding kinds and data
keys). Without a driver or GPU every call returns status ``no_data`` ("no NVIDIA driver/GPU"),
never an exception.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

from diagnostics.types import Finding, Status, ToolResult

NO_GPU = "no NVIDIA driver/GPU"
NVML_TOOLS = ("gpu_clocks", "gpu_power", "gpu_temperature")

# NVML clock-event (throttle) reason bits that mean the GPU is held below the clock it could run.
_SLOWDOWN_BITS = {
    0x0000000000000004: "sw_power_cap",
    0x0000000000000008: "hw_slowdown",
    0x0000000000000020: "sw_thermal_slowdown",
    0x0000000000000040: "hw_thermal_slowdown",
    0x0000000000000080: "hw_power_brake_slowdown",
}
_OTHER_BITS = {
    0x0000000000000001: "gpu_idle",
    0x0000000000000002: "applications_clocks_setting",
    0x0000000000000010: "sync_boost",
    0x0000000000000100: "display_clock_setting",
}


def _load_pynvml() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecated "pynvml" shim warns on import
        import pynvml

    return pynvml


class NvmlChecks:
    """gpu_clocks / gpu_power / gpu_temperature on this machine's GPUs."""

    _lock = threading.Lock()

    def __init__(self, host: str | None = None, *, loader: Callable[[], Any] = _load_pynvml) -> None:
        self.host = host or socket.gethostname()
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
            with self._lock:
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

    def run(self, tool: str, gpu: int | None = None) -> ToolResult:
        start = time.monotonic()
        params = {"gpu": gpu}
        if tool not in NVML_TOOLS:
            return ToolResult(tool, self.host, Status.ERROR, error=f"NVML serves {', '.join(NVML_TOOLS)}, not {tool}",
                              params=params)
        self._init()
        if self._nvml is None:
            return ToolResult(tool, self.host, Status.NO_DATA, error=self._why_unavailable or NO_GPU, params=params)
        nvml = self._nvml
        try:
            count = nvml.nvmlDeviceGetCount()
            indices = range(count) if gpu is None else [gpu]
            if gpu is not None and not 0 <= gpu < count:
                return ToolResult(tool, self.host, Status.NO_DATA, error=f"GPU {gpu} not present ({count} GPUs)",
                                  params=params)
            read = {"gpu_clocks": self._clocks, "gpu_power": self._power, "gpu_temperature": self._temperature}[tool]
            rows: list[dict[str, Any]] = []
            findings: list[Finding] = []
            for i in indices:
                row, found = read(nvml, i)
                rows.append(row)
                findings.extend(found)
        except Exception as exc:  # a GPU that stops answering is a result, not a crash
            return ToolResult(tool, self.host, Status.ERROR, error=f"NVML error: {exc or type(exc).__name__}",
                              params=params, duration_s=time.monotonic() - start)
        status = Status.PROBLEM if findings else Status.OK
        return ToolResult(tool, self.host, status, findings, {"gpus": rows, "source": "nvml"},
                          command="nvml", params=params, duration_s=time.monotonic() - start)

    # ---- readers ----------------------------------------------------------------------------
    @staticmethod
    def _opt(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception:  # "Not Supported" on this GPU: the field is absent, not an error
            return None

    def _clocks(self, nvml: Any, i: int) -> tuple[dict[str, Any], list[Finding]]:
        h = nvml.nvmlDeviceGetHandleByIndex(i)
        sm = self._opt(lambda: nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM))
        mem = self._opt(lambda: nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_MEM))
        sm_max = self._opt(lambda: nvml.nvmlDeviceGetMaxClockInfo(h, nvml.NVML_CLOCK_SM))
        getter = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or nvml.nvmlDeviceGetCurrentClocksThrottleReasons
        mask = self._opt(lambda: getter(h)) or 0
        active = [name for bit, name in _SLOWDOWN_BITS.items() if mask & bit]
        other = [name for bit, name in _OTHER_BITS.items() if mask & bit]
        row = {"index": i, "sm_clock_mhz": sm, "mem_clock_mhz": mem, "max_sm_clock_mhz": sm_max,
               "throttle_reasons": active + other}
        findings = []
        if active:
            reason = active[0]
            findings.append(Finding(
                "gpu_clock_throttle", self.host,
                f"GPU {i} SM clock {sm} MHz of max {sm_max} MHz, held down by {', '.join(active)}",
                gpu=i, severity="critical" if sm and sm_max and sm < 0.5 * sm_max else "warning",
                data={"sm_clock_mhz": sm, "max_sm_clock_mhz": sm_max, "reason": reason},
            ))
        return row, findings

    def _power(self, nvml: Any, i: int) -> tuple[dict[str, Any], list[Finding]]:
        h = nvml.nvmlDeviceGetHandleByIndex(i)

        def watts(fn: Callable[[], Any]) -> float | None:
            mw = self._opt(fn)
            return None if mw is None else round(mw / 1000.0, 2)

        draw = watts(lambda: nvml.nvmlDeviceGetPowerUsage(h))
        limit = watts(lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(h))
        default = watts(lambda: nvml.nvmlDeviceGetPowerManagementDefaultLimit(h))
        row = {"index": i, "power_draw_w": draw, "power_limit_w": limit, "default_power_limit_w": default}
        findings = []
        if limit is not None and default is not None and limit < 0.95 * default:
            findings.append(Finding(
                "gpu_power_cap", self.host, f"GPU {i} power limit {limit:g} W below its default {default:g} W",
                gpu=i, data={"power_limit_w": limit, "default_power_limit_w": default},
            ))
        return row, findings

    def _temperature(self, nvml: Any, i: int) -> tuple[dict[str, Any], list[Finding]]:
        h = nvml.nvmlDeviceGetHandleByIndex(i)
        temp = self._opt(lambda: nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU))
        slowdown = self._opt(lambda: nvml.nvmlDeviceGetTemperatureThreshold(h, nvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN))
        row = {"index": i, "temp_c": temp, "slowdown_temp_c": slowdown}
        findings = []
        if temp is not None and slowdown is not None and temp >= slowdown - 3:
            findings.append(Finding(
                "gpu_thermal", self.host, f"GPU {i} at {temp} C, slowdown threshold {slowdown} C",
                gpu=i, severity="critical" if temp >= slowdown else "warning",
                data={"temp_c": temp, "slowdown_temp_c": slowdown},
            ))
        return row, findings
