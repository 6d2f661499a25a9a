from __future__ import annotations

import math

import pytest

from diagnostics.types import Status, ToolResult
from perf.detectors import GpuSample, detect_stragglers
from pipelines.perfcheck import samples_from_results, step_times_from_results


def test_telemetry_rows_merge_into_one_sample_per_gpu() -> None:
    clocks = ToolResult("gpu_clocks", "node-01", Status.OK, data={"gpus": [
        {"index": 0, "sm_clock_mhz": 1410, "max_sm_clock_mhz": 1410},
        {"index": 1, "sm_clock_mhz": "[N/A]", "max_sm_clock_mhz": 1410},
    ]})
    power = ToolResult("gpu_power", "node-01", Status.OK, data={"gpus": [
        {"index": 0, "power_draw_w": 320.5, "enforced_power_limit_w": 400},
        {"index": 1, "power_draw_w": math.nan, "power_limit_w": 400},
    ]})
    samples = samples_from_results([clocks, power])
    assert samples == [
        GpuSample("node-01", 0, 0.0, sm_clock_mhz=1410.0, max_sm_clock_mhz=1410.0, power_w=320.5, power_limit_w=400.0),
        GpuSample("node-01", 1, 0.0, sm_clock_mhz=None, max_sm_clock_mhz=1410.0, power_w=None, power_limit_w=400.0),
    ]


def test_step_times_accept_mapping_and_list_shapes() -> None:
    a = ToolResult("job_step_times", "node-01", Status.OK, data={"ranks": {"node-01:0": 34.1, "node-01:1": "[N/A]"}})
    b = ToolResult("job_step_times", "node-02", Status.OK, data={"ranks": [{"rank": "node-02:0", "step_time_s": 35.0}]})
    assert step_times_from_results([a, b]) == {"node-01:0": 34.1, "node-02:0": 35.0}


def test_warm_but_not_hot_slow_gpu_is_a_clock_throttle_first() -> None:
    samples = [GpuSample(f"n{i // 8}", i % 8, 0.0, sm_clock_mhz=1410.0, max_sm_clock_mhz=1410.0, temp_c=60.0 + i % 5)
               for i in range(16)]
    samples[5] = GpuSample("n0", 5, 0.0, sm_clock_mhz=200.0, max_sm_clock_mhz=1410.0, temp_c=84.0)
    findings = detect_stragglers(samples, slowdown_temp_c=89.0)
    assert [f.kind for f in findings] == ["gpu_clock_throttle", "gpu_thermal"]
    hot = detect_stragglers([*samples[:5], GpuSample("n0", 5, 0.0, sm_clock_mhz=600.0, max_sm_clock_mhz=1410.0, temp_c=95.0), *samples[6:]], slowdown_temp_c=89.0)
    assert [f.kind for f in hot] == ["gpu_thermal", "gpu_clock_throttle"]


def test_perf_check_on_the_a800_scenario_names_the_gpu_and_the_gap(repo_root) -> None:  # type: ignore[no-untyped-def]
    from pipelines.perfcheck import CheckInputs, run_check

    result = run_check(CheckInputs(scenario=str(repo_root / "scenarios" / "a800-throttle.yaml")))
    primary = [f for f in result.findings if f.data.get("primary")]
    assert [(f.kind, f.host, f.gpu) for f in primary] == [("gpu_clock_throttle", "node-05", 3)]
    [slow] = [f for f in result.findings if f.kind == "slow_job"]
    assert slow.data["attributed_to"] == "compute"
    # The observed step comes from the simulator's own physics (~3.3x its healthy 24 s), the
    # expected one from the perf model (34 s healthy): not a third exactly, but far below 0.9.
    assert 0.25 < slow.data["throughput_ratio"] < 0.5
    assert len(result.samples) == 64


@pytest.mark.ssh
def test_perf_check_over_ssh_against_the_simulated_cluster(repo_root) -> None:  # type: ignore[no-untyped-def]
    from pipelines.perfcheck import CheckInputs, run_check
    from simulator import SimCluster
    from simulator.sshserver import serve

    sim = SimCluster(str(repo_root / "scenarios" / "a800-throttle.yaml"))
    with serve(sim) as server:
        result = run_check(CheckInputs(inventory=str(server.inventory_path), gpu="A800-SXM4-80GB", n_gpus=64,
                                       model_params=7e9, tokens_per_step=4194304))
    primary = [(f.kind, f.host, f.gpu) for f in result.findings if f.data.get("primary")]
    assert ("gpu_clock_throttle", "node-05", 3) in primary
    assert len(result.samples) == 64


def test_step_times_prefer_each_ranks_own_work_and_name_host_gpu() -> None:
    data = {"step_time_s": 107.2, "rank_step_time_s": {"32": 107.5, "35": 107.3},
            "rank_compute_s": {"32": 34.2, "35": 107.2},
            "ranks": {"32": {"host": "node-05", "gpu": 0}, "35": {"host": "node-05", "gpu": 3}}}
    result = ToolResult("job_step_times", "node-05", Status.PROBLEM, data=data)
    assert step_times_from_results([result]) == {"node-05:0": 34.2, "node-05:3": 107.2}


def test_watch_flags_the_throttled_gpu_and_stays_quiet_on_the_control(repo_root) -> None:  # type: ignore[no-untyped-def]
    from pipelines.perfcheck import CheckInputs, watch

    seen: list[tuple[int, str]] = []
    fired, _notes = watch(CheckInputs(scenario=str(repo_root / "scenarios" / "a800-throttle.yaml")),
                          samples=15, interval_s=10, on_warning=lambda i, f: seen.append((i, f.kind)))
    assert {(f.host, f.gpu) for f in fired} == {("node-05", 3)}
    assert "gpu_clock_throttle" in {f.kind for f in fired} and len(seen) == len(fired)
    quiet, _ = watch(CheckInputs(scenario=str(repo_root / "scenarios" / "no-fault-control.yaml")),
                     samples=15, interval_s=10)
    assert quiet == []


def test_watch_rejects_bad_counts(repo_root) -> None:  # type: ignore[no-untyped-def]
    from diagnostics.types import ClusterdocError
    from pipelines.perfcheck import CheckInputs, watch

    with pytest.raises(ClusterdocError, match="--samples"):
        watch(CheckInputs(scenario=str(repo_root / "scenarios" / "no-fault-control.yaml")), samples=0, interval_s=1)
