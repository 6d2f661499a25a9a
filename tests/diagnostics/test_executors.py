from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from diagnostics.executors import LocalExecutor, fanout
from diagnostics.executors._buffer import CappedBuffer
from diagnostics.executors.nvml import NO_GPU, NvmlChecks
from diagnostics.types import Executor, Status


def test_local_executor_runs_bash() -> None:
    ex = LocalExecutor()
    assert isinstance(ex, Executor)
    r = ex.run("localhost", "echo out; echo err >&2; exit 3")
    assert (r.exit_code, r.stdout, r.stderr, r.transport) == (3, "out\n", "err\n", "ok")
    assert ex.run("localhost", "for i in 1 2; do echo $i; done | tr -d '\\n'").stdout == "12"


def test_local_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    start = time.monotonic()
    r = LocalExecutor().run("localhost", f"sleep 30 & echo $! > {pidfile}; wait", timeout_s=0.5)
    assert r.transport == "timeout" and "timed out after 0.5s" in r.error
    assert time.monotonic() - start < 5
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("background child survived the timeout")


def test_local_output_cap() -> None:
    r = LocalExecutor(output_cap=1000).run("localhost", "head -c 100000 /dev/zero | tr '\\0' x; echo; echo END")
    assert r.truncated and len(r.stdout) < 1100 and r.stdout.rstrip().endswith("END") and "bytes cut" in r.stdout


def test_capped_buffer_keeps_head_and_tail() -> None:
    buf = CappedBuffer(10)
    for chunk in (b"abc", b"defgh", b"ijklmnop", b"qrstuvwxyz"):
        buf.write(chunk)
    assert buf.truncated and buf.text().startswith("abcde") and buf.text().endswith("vwxyz")
    small = CappedBuffer(10)
    small.write(b"hello")
    assert not small.truncated and small.text() == "hello"


def _ok(host: str) -> str:
    return f"done {host}"


def test_fanout_bounds_concurrency_and_keeps_order() -> None:
    active, peak = 0, 0
    lock = threading.Lock()

    def work(host: str) -> str:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.05)
        with lock:
            active -= 1
        return host.upper()

    hosts = [f"h{i}" for i in range(12)]
    out = fanout(hosts, work, concurrency=3, on_timeout=_ok, on_error=lambda h, e: str(e))
    assert list(out.results) == hosts and out.results["h5"] == "H5"
    assert peak == 3  # ran in parallel, never more than the bound


def test_fanout_deadline_and_errors_do_not_stall() -> None:
    release = threading.Event()

    def work(host: str) -> str:
        if host == "hung":
            release.wait(10)
        if host == "bad":
            raise RuntimeError("boom")
        return "ok"

    start = time.monotonic()
    out = fanout(["a", "hung", "bad", "b"], work, concurrency=2, deadline_s=0.3,
                 on_timeout=lambda h: "timeout", on_error=lambda h, e: f"error {e}")
    release.set()
    assert time.monotonic() - start < 5  # the hung host waits 10 s
    assert out.results == {"a": "ok", "hung": "timeout", "bad": "error boom", "b": "ok"}
    assert out.timed_out == ["hung"]


def test_fanout_progress_bar_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    fanout(["a", "b"], _ok, concurrency=2, on_timeout=_ok, on_error=lambda h, e: "", progress=True, desc="test sweep")
    captured = capsys.readouterr()
    assert captured.out == "" and "test sweep" in captured.err


def test_fanout_rejects_zero_concurrency() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        fanout(["a"], _ok, concurrency=0, on_timeout=_ok, on_error=lambda h, e: "")


# ---- NVML -------------------------------------------------------------------------------------
def test_nvml_without_driver_is_no_data() -> None:
    def missing() -> Any:
        raise ImportError("no pynvml")

    checks = NvmlChecks("gpu-host", loader=missing)
    assert checks.available() == (False, f"{NO_GPU}: pynvml (nvidia-ml-py) is not installed")
    for tool in ("gpu_clocks", "gpu_power", "gpu_temperature"):
        r = checks.run(tool)
        assert r.status is Status.NO_DATA and NO_GPU in r.error and r.host == "gpu-host"


def test_nvml_on_this_machine_never_raises() -> None:
    checks = NvmlChecks()
    ok, why = checks.available()
    r = checks.run("gpu_clocks")
    if ok:
        assert r.status in (Status.OK, Status.PROBLEM) and r.data["gpus"]
    else:
        assert r.status is Status.NO_DATA and why.startswith(NO_GPU)
    checks.close()


class FakeNvml:
    """The slice of the pynvml API the checks use, with one GPU throttled and power-capped."""

    NVML_CLOCK_SM, NVML_CLOCK_MEM = 1, 2
    NVML_TEMPERATURE_GPU, NVML_TEMPERATURE_THRESHOLD_SLOWDOWN = 0, 1

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> Any:
        return SimpleNamespace(i=i)

    def nvmlDeviceGetClockInfo(self, h: Any, kind: int) -> int:
        return (200 if h.i == 1 else 1410) if kind == 1 else 1593

    def nvmlDeviceGetMaxClockInfo(self, h: Any, kind: int) -> int:
        return 1410

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: Any) -> int:
        return 0x40 if h.i == 1 else 0x1

    def nvmlDeviceGetPowerUsage(self, h: Any) -> int:
        return 95_000

    def nvmlDeviceGetEnforcedPowerLimit(self, h: Any) -> int:
        return 250_000 if h.i == 1 else 400_000

    def nvmlDeviceGetPowerManagementDefaultLimit(self, h: Any) -> int:
        return 400_000

    def nvmlDeviceGetTemperature(self, h: Any, sensor: int) -> int:
        return 91 if h.i == 1 else 45

    def nvmlDeviceGetTemperatureThreshold(self, h: Any, kind: int) -> int:
        raise RuntimeError("Not Supported")


def test_nvml_readers_produce_registry_shaped_findings() -> None:
    checks = NvmlChecks("n5", loader=FakeNvml)
    clocks = checks.run("gpu_clocks")
    assert clocks.status is Status.PROBLEM
    [f] = clocks.findings
    assert (f.kind, f.gpu, f.severity, f.data["reason"]) == ("gpu_clock_throttle", 1, "critical", "hw_thermal_slowdown")
    assert clocks.data["gpus"][0]["throttle_reasons"] == ["gpu_idle"]
    power = checks.run("gpu_power", gpu=1)
    assert [x.kind for x in power.findings] == ["gpu_power_cap"] and power.data["gpus"][0]["power_limit_w"] == 250
    temp = checks.run("gpu_temperature")  # threshold "Not Supported": no finding, no error
    assert temp.status is Status.OK and temp.data["gpus"][1]["slowdown_temp_c"] is None
    assert checks.run("gpu_clocks", gpu=7).status is Status.NO_DATA
    assert checks.run("gpu_ecc").status is Status.ERROR


def test_toolkit_over_the_local_shell_quotes_hostile_values(tmp_path: Path) -> None:
    from diagnostics.registry import Param, ParseInput, ParseOutput, Registry, ToolSpec
    from diagnostics.toolkit import Toolkit

    def parse(data: ParseInput) -> ParseOutput:
        out = data.outputs[0]
        return ParseOutput(Status.OK if out.exit_code == 0 else Status.NO_DATA, data={"text": out.stdout})

    reg = Registry([ToolSpec("ls_dir", "list a folder", "storage", "quick", "read_only",
                             (Param("path", "str", "folder", pattern=r"[^\x00]+"),), ("ls -1 -- {path}",), parse)])
    target = tmp_path / "a dir; touch pwned"
    target.mkdir()
    (target / "file.txt").write_text("x")
    tk = Toolkit(reg, LocalExecutor())
    r = tk.run("ls_dir", "localhost", {"path": str(target)})
    assert r.status is Status.OK and r.data["text"] == "file.txt\n"
    r = tk.run("ls_dir", "localhost", {"path": f"{tmp_path}/$(touch pwned2)"})
    assert r.status is Status.NO_DATA  # no such folder: the $(...) was a literal name, never run
    assert not (tmp_path / "pwned").exists() and not Path("pwned2").exists() and not (tmp_path / "pwned2").exists()
