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
from diagnostics.executors.fanout import ClientLag, client_lag, current_host_clock, verdict
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
    assert time.monotonic() - start < 30  # given up on, not waited for (the command itself lasts 30 s)
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
    assert time.monotonic() - start < 10  # given up on, not waited for (the hung host waits 10 s)
    assert out.results == {"a": "ok", "hung": "timeout", "bad": "error boom", "b": "ok"}
    assert out.timed_out == ["hung"]


def test_fanout_deadline_counts_from_the_command_not_the_connect() -> None:
    def work(host: str) -> str:
        clock = current_host_clock()
        assert clock is not None
        clock.claim()
        time.sleep(0.6)  # connecting: the client's time, not the node's
        clock.sent()
        time.sleep(0.02)  # the node answers quickly
        clock.answered()
        return "ok"

    out = fanout(["a", "b"], work, concurrency=2, deadline_s=0.3, on_timeout=lambda h: "timeout",
                 on_error=lambda h, e: f"error {e}")
    assert out.results == {"a": "ok", "b": "ok"} and out.timed_out == [] and out.not_checked == []
    assert current_host_clock() is None  # only inside a fan-out


def test_fanout_budget_marks_unfinished_hosts_not_checked() -> None:
    release = threading.Event()

    def work(host: str) -> str:
        if host != "quick":
            release.wait(10)
        return "ok"

    out = fanout(["quick", "slow", "late"], work, concurrency=2, deadline_s=5.0, budget_s=0.5,
                 on_timeout=lambda h: "timeout", on_error=lambda h, e: f"error {type(e).__name__}: {e}")
    release.set()
    overloaded = "error ClientOverloaded: not checked: clusterdoc was overloaded"
    assert out.results == {"quick": "ok", "slow": overloaded, "late": overloaded}
    assert out.not_checked == ["slow", "late"] and out.timed_out == []
    out = fanout(["a"], lambda h: "ok", budget_s=0.0, on_timeout=lambda h: "timeout",
                 on_error=lambda h, e: "error", on_overload=lambda h: "not checked")
    assert out.results == {"a": "not checked"} and out.not_checked == ["a"]


class _FakeLag(ClientLag):
    def __init__(self, up: bool) -> None:
        super().__init__()
        self.up = up

    def keeping_up(self) -> bool:
        return self.up


def test_verdict_blames_the_node_only_while_the_client_keeps_up() -> None:
    up, behind = _FakeLag(True), _FakeLag(False)
    assert verdict(0.5, 0.5, 1.0, up) is None  # still within its deadline
    assert verdict(1.2, 1.2, 1.0, up) == "timeout"
    assert verdict(1.2, 1.2, 1.0, behind) is None  # a reply may be sitting unread: wait
    assert verdict(3.1, 3.1, 1.0, behind) == "not_checked"  # past the overload cap
    assert verdict(0.2, 3.1, 1.0, up) == "not_checked"


def test_client_lag_notices_a_stalled_process() -> None:
    lag = client_lag()
    assert isinstance(lag, ClientLag)
    with lag.running():
        time.sleep(0.2)
        before = lag.lag()
        started = time.monotonic()
        sum(range(40_000_000))  # one C call holding the GIL: no other thread here can run meanwhile
        stalled = time.monotonic() - started
        behind_now = not lag.keeping_up()
        measured = lag.lag() - before
    assert measured >= 0.5 * stalled, (measured, stalled)
    if stalled > 2 * lag.BEHIND_SHARE * lag.RECENT_S:
        assert behind_now


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
    """The slice of the pynvml API the checks use: GPU 1 hot and throttled, GPU 2 power-capped."""

    NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_CLOCK_GRAPHICS = 1, 2, 0
    NVML_TEMPERATURE_GPU = 0

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int:
        return 3

    def nvmlDeviceGetHandleByIndex(self, i: int) -> Any:
        return SimpleNamespace(i=i)

    def nvmlDeviceGetPciInfo(self, h: Any) -> Any:
        return SimpleNamespace(busId=f"00000000:{h.i + 7:02X}:00.0".encode())

    def nvmlDeviceGetClockInfo(self, h: Any, kind: int) -> int:
        return 200 if h.i == 1 else 1410

    def nvmlDeviceGetMaxClockInfo(self, h: Any, kind: int) -> int:
        return 1410

    def nvmlDeviceGetApplicationsClock(self, h: Any, kind: int) -> int:
        raise RuntimeError("Not Supported")  # shows up as [N/A], as nvidia-smi prints it

    def nvmlDeviceGetUtilizationRates(self, h: Any) -> Any:
        return SimpleNamespace(gpu=100, memory=40)

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: Any) -> int:
        return {1: 0x40, 2: 0x4}.get(h.i, 0)

    def nvmlDeviceGetPowerUsage(self, h: Any) -> int:
        return 95_000

    def nvmlDeviceGetPowerManagementLimit(self, h: Any) -> int:
        return 250_000 if h.i == 2 else 400_000

    nvmlDeviceGetEnforcedPowerLimit = nvmlDeviceGetPowerManagementLimit

    def nvmlDeviceGetPowerManagementDefaultLimit(self, h: Any) -> int:
        return 400_000

    def nvmlDeviceGetPowerManagementLimitConstraints(self, h: Any) -> tuple[int, int]:
        return 100_000, 400_000

    def nvmlDeviceGetTemperature(self, h: Any, sensor: int) -> int:
        return 91 if h.i == 1 else 45


def test_nvml_readings_go_through_the_registry_checks_parsers() -> None:
    pytest.importorskip("diagnostics.checks")
    from diagnostics.registry import default_registry

    checks = NvmlChecks("n5", loader=FakeNvml)
    clocks = checks.run("gpu_clocks")
    assert clocks.status is Status.PROBLEM and clocks.data["source"] == "nvml"
    throttled = {f.gpu: f for f in clocks.findings if f.kind == "gpu_clock_throttle"}
    assert set(throttled) == {1, 2}
    assert "hw_thermal_slowdown" in throttled[1].data["reasons"] and throttled[1].data["sm_clock_mhz"] == 200
    power = checks.run("gpu_power", gpu=2)
    assert [f.kind for f in power.findings] == ["gpu_power_cap"]
    temp = checks.run("gpu_temperature")
    assert [(f.kind, f.gpu) for f in temp.findings] == [("gpu_thermal", 1)]
    assert checks.run("gpu_clocks", gpu=7).status is Status.NO_DATA
    assert checks.run("gpu_ecc").status is Status.ERROR
    # Same shape as the nvidia-smi path: the check's data keys per GPU are all present.
    assert set(clocks.data["gpus"][0]) >= {"gpu", "sm_clock_mhz", "max_sm_clock_mhz", "reasons"}
    assert NvmlChecks("n5", registry=default_registry(), loader=FakeNvml).run("gpu_power").status is Status.PROBLEM


def test_nvml_csv_looks_like_nvidia_smi() -> None:
    checks = NvmlChecks("n5", loader=FakeNvml)
    assert checks.available() == (True, "")
    text = checks.query_csv(["index", "pci.bus_id", "clocks.sm", "clocks.applications.graphics", "power.draw",
                             "clocks_throttle_reasons.active", "clocks_throttle_reasons.sw_power_cap", "bogus.field"])
    lines = text.splitlines()
    assert lines[0] == ("index, pci.bus_id, clocks.sm, clocks.applications.graphics, power.draw, "
                        "clocks_throttle_reasons.active, clocks_throttle_reasons.sw_power_cap, bogus.field")
    assert lines[3] == "2, 00000000:09:00.0, 1410 MHz, [N/A], 95.00 W, 0x0000000000000004, Active, [N/A]"
