"""A real Prometheus on 127.0.0.1 scrapes the simulated cluster's dcgm-exporter endpoints; the
early-warning PromQL set finds the case study's throttled GPU (node-05 GPU 3) and nothing on a
fault-free cluster scraped by the same server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from diagnostics.telemetry import PrometheusClient, PrometheusError, PrometheusTelemetrySource, QueryParams
from diagnostics.telemetry.local import PROMETHEUS_BINARIES, LocalPrometheus, find_binary
from perf.detectors import detect_stragglers
from simulator import SimCluster
from simulator.metrics_server import MetricsServer

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.timeout(120),
    pytest.mark.skipif(find_binary(PROMETHEUS_BINARIES) is None,
                       reason="prometheus binary not on PATH (apt-get install prometheus; .ci/run does it)"),
]

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@dataclass
class Stack:
    prom: LocalPrometheus
    case: PrometheusTelemetrySource
    control: PrometheusTelemetrySource


def wait_for_gpus(source: PrometheusTelemetrySource, n: int, timeout_s: float = 45.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if len(source.samples()) >= n:
            return
        time.sleep(0.25)
    raise AssertionError(f"Prometheus did not hold {n} GPUs within {timeout_s:g} s")


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    case_sim = SimCluster(str(SCENARIOS / "a800-throttle.yaml"))
    control_sim = SimCluster(str(SCENARIOS / "no-fault-control.yaml"))
    with MetricsServer(case_sim, follow_wallclock=True) as case_srv, \
            MetricsServer(control_sim, follow_wallclock=True, per_node_ports=True) as control_srv:
        scrape = [case_srv.scrape_config("case", "1s"), control_srv.scrape_config("control", "1s")]
        with LocalPrometheus(scrape) as prom:
            client = PrometheusClient(prom.url)
            case = PrometheusTelemetrySource(client, QueryParams(window="5s", selector='job="case"'))
            control = PrometheusTelemetrySource(client, QueryParams(window="5s", selector='job="control"'))
            gpus = sum(len(control_sim.gpu_samples(h)) for h in control_sim.hosts)
            wait_for_gpus(case, 64)
            wait_for_gpus(control, gpus)
            time.sleep(2.5)  # a few scrapes in the smoothing window
            yield Stack(prom, case, control)


def test_early_warning_promql_finds_the_throttled_gpu(stack: Stack) -> None:
    findings = stack.case.early_warnings()
    clock = [f for f in findings if f.data["rule"] == "GpuSmClockBelowPeers"]
    assert [(f.kind, f.host, f.gpu) for f in clock] == [("gpu_clock_throttle", "node-05", 3)], findings
    f = clock[0]
    assert f.data["value"] < 300 and f.data["peer_reference"] > 1200  # 200 MHz vs ~1400 MHz peers
    assert {"hw_thermal_slowdown"} <= set(f.data["clock_event_reasons"])
    assert f.data["modelName"] == "NVIDIA A800-SXM4-80GB" and f.data["instance"] == "node-05:9400"
    # every rule that fires points at the same GPU: no false suspects elsewhere
    assert {(x.host, x.gpu) for x in findings} == {("node-05", 3)}
    assert findings[0].kind == "gpu_clock_throttle" and findings[0].data["primary"]  # warm, not at slowdown
    assert sum(x.data["primary"] for x in findings) == 1
    assert stack.case.findings_for("node-01") == []
    assert stack.case.findings_for("node-05")


def test_fault_free_cluster_raises_no_early_warning(stack: Stack) -> None:
    assert stack.control.early_warnings() == []
    assert stack.control.scrape_health() == []


def test_samples_feed_the_perf_straggler_detector(stack: Stack) -> None:
    samples = stack.case.samples()
    assert len(samples) == 64 and len({(s.host, s.gpu) for s in samples}) == 64
    throttled = next(s for s in samples if (s.host, s.gpu) == ("node-05", 3))
    assert throttled.sm_clock_mhz == 200 and throttled.max_sm_clock_mhz == 1410
    assert throttled.power_limit_w and throttled.temp_c and throttled.xid_count == 0 and throttled.ecc_dbe == 0
    findings = detect_stragglers(samples)
    primary = [f for f in findings if f.data.get("primary")]
    assert [(f.host, f.gpu) for f in primary] == [("node-05", 3)]
    assert primary[0].kind == "gpu_clock_throttle"


def test_history_gives_ticks_of_the_whole_fleet(stack: Stack) -> None:
    end = time.time()
    ticks = stack.case.history(end - 4, end, 1.0)
    assert len(ticks) >= 4
    assert all(len(t) == 64 for t in ticks[-3:])
    assert all(s.sm_clock_mhz == 200 for t in ticks for s in t if (s.host, s.gpu) == ("node-05", 3))


def test_bad_promql_is_a_clear_error(stack: Stack) -> None:
    client = PrometheusClient(stack.prom.url)
    with pytest.raises(PrometheusError, match=r"HTTP 400: bad_data: .*parse error"):
        client.query("sum(DCGM_FI_DEV_SM_CLOCK")


def test_bot_runtime_reads_fleet_telemetry_from_prometheus(stack: Stack) -> None:
    from clusterdoc.runtime import Runtime
    from diagnostics.telemetry.local import free_port

    def runtime(telemetry: object) -> Runtime:
        return Runtime(agent=None, toolkit=None, kb=None, remediator=None, learner=None,  # type: ignore[arg-type]
                       known_nodes=[], llm_name="none", telemetry=telemetry)

    samples = runtime(stack.case).gpu_samples()
    assert len(samples) == 64 and any(s.sm_clock_mhz == 200 for s in samples)
    down = PrometheusTelemetrySource(PrometheusClient(f"http://127.0.0.1:{free_port()}", timeout_s=2))
    assert runtime(down).gpu_samples() == []  # logged, not raised: the scheduler skips the tick
