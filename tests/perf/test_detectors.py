from __future__ import annotations

import math
import random
from typing import Any

import pytest

from perf.detectors import EarlyWarning, GpuSample, detect_stragglers, expected_vs_observed, number
from perf.errors import PerfInputError
from perf.workload import predict_training_step

HOSTS = [f"node-{i:02d}" for i in range(1, 9)]


def fleet(rng: random.Random, t: float = 0.0, override: dict[str, dict[str, Any]] | None = None) -> list[GpuSample]:
    """64 healthy busy A800s with realistic noise; ``override[(host, gpu)]`` replaces fields."""
    override = override or {}
    out = []
    for host in HOSTS:
        for gpu in range(8):
            fields: dict[str, Any] = {
                "sm_clock_mhz": rng.choice([1395.0, 1410.0, 1410.0, 1410.0]),
                "max_sm_clock_mhz": 1410.0,
                "power_w": rng.gauss(330, 12),
                "power_limit_w": 400.0,
                "temp_c": rng.gauss(64, 2.5),
                "util_pct": rng.choice([97.0, 98.0, 99.0, 100.0]),
                "xid_count": 0,
                "ecc_dbe": 0,
            }
            fields.update(override.get(f"{host}:{gpu}", {}))
            out.append(GpuSample(host=host, gpu=gpu, t=t, **fields))
    return out


def test_number_treats_na_nan_and_text_as_missing() -> None:
    assert number("[N/A]") is None and number(math.nan) is None and number(None) is None
    assert number("N/A") is None and number(math.inf) is None and number(True) is None
    assert number("1410 MHz") == 1410.0 and number(42) == 42.0


def test_straggler_names_the_throttled_gpu_and_missing_resource() -> None:
    samples = fleet(random.Random(1), override={"node-05:3": {"sm_clock_mhz": 210.0, "power_w": 120.0}})
    findings = detect_stragglers(samples)
    assert [(f.kind, f.host, f.gpu) for f in findings] == [("gpu_clock_throttle", "node-05", 3)]
    f = findings[0]
    assert f.data["sm_clock_mhz"] == 210.0 and "compute" in f.data["missing_resource"]
    assert f.data["evidence"]["sm_clock"]["peer_median"] > 1390


def test_power_cap_is_named_before_the_clock_it_causes() -> None:
    samples = fleet(random.Random(2), override={"node-02:6": {"power_limit_w": 200.0, "sm_clock_mhz": 1005.0}})
    findings = detect_stragglers(samples)
    kinds = [f.kind for f in findings if f.host == "node-02" and f.gpu == 6]
    assert kinds[0] == "gpu_power_cap" and "gpu_clock_throttle" in kinds
    assert all(f.host == "node-02" for f in findings)
    assert next(f for f in findings if f.data["primary"]).kind == "gpu_power_cap"


def test_hot_gpu_is_flagged_thermal() -> None:
    samples = fleet(random.Random(3), override={"node-08:0": {"temp_c": 91.0}})
    findings = detect_stragglers(samples)
    assert [(f.kind, f.host, f.gpu) for f in findings] == [("gpu_thermal", "node-08", 0)]


@pytest.mark.parametrize("seed", range(20))
def test_no_false_positive_on_healthy_noise(seed: int) -> None:
    assert detect_stragglers(fleet(random.Random(seed))) == []


def test_slow_rank_from_step_times() -> None:
    rng = random.Random(4)
    times = {f"{h}:{g}": rng.gauss(34.0, 0.3) for h in HOSTS for g in range(8)}
    assert detect_stragglers([], step_times=times) == []
    times["node-03:1"] = 51.0
    findings = detect_stragglers([], step_times=times)
    assert [(f.kind, f.host, f.gpu) for f in findings] == [("slow_rank", "node-03", 1)]


def test_na_and_nan_readings_are_skipped_with_a_note() -> None:
    samples = fleet(random.Random(5), override={
        "node-05:3": {"sm_clock_mhz": 200.0},
        "node-01:0": {"sm_clock_mhz": math.nan, "temp_c": None},
        "node-01:1": {"sm_clock_mhz": "[N/A]", "power_limit_w": "[N/A]"},  # type: ignore[dict-item]
    })
    notes: list[str] = []
    findings = detect_stragglers(samples, notes=notes)
    assert [(f.host, f.gpu) for f in findings] == [("node-05", 3)]
    assert any("sm_clock_mhz" in n and "node-01 GPU 0" in n for n in notes)
    assert any("node-01 GPU 1" in n for n in notes)


def test_empty_or_all_missing_telemetry_gives_notes_not_errors() -> None:
    notes: list[str] = []
    assert detect_stragglers([], notes=notes) == []
    assert notes and "no telemetry" in notes[0]
    blank = [GpuSample("n", i, 0.0) for i in range(8)]
    notes = []
    assert detect_stragglers(blank, notes=notes) == []
    assert any("missing" in n for n in notes)


def test_expected_vs_observed_attributes_gap_to_compute_from_clocks() -> None:
    healthy = predict_training_step("A800-SXM4-80GB", 64, 7e9, 4194304)
    clocks = [1410.0] * 64
    clocks[35] = 200.0
    observed = predict_training_step("A800-SXM4-80GB", 64, 7e9, 4194304, sm_clocks_mhz=clocks).total_s
    findings = expected_vs_observed(healthy, observed, sm_clocks_mhz=clocks, max_sm_clock_mhz=1410)
    assert len(findings) == 1 and findings[0].kind == "slow_job"
    data = findings[0].data
    assert data["attributed_to"] == "compute"
    assert data["attribution_s"]["compute"] == pytest.approx(observed - healthy.total_s, rel=1e-6)
    assert data["throughput_ratio"] == pytest.approx(healthy.total_s / observed)
    assert data["implied_if_alone"]["sm_clock_ratio"] == pytest.approx(200 / 1410, rel=1e-6)


def test_expected_vs_observed_attributes_gap_to_interconnect_from_bus_bandwidth() -> None:
    healthy = predict_training_step("A800-SXM4-80GB", 64, 7e9, 4194304)
    slow = predict_training_step("A800-SXM4-80GB", 64, 7e9, 4194304, bus_bw_gbs=1.0)
    findings = expected_vs_observed(healthy, slow.total_s, measured_bus_bw_gbs=1.0,
                                    sm_clocks_mhz=[1410.0] * 64, max_sm_clock_mhz=1410)
    assert findings and findings[0].data["attributed_to"] == "interconnect"
    assert findings[0].data["attribution_s"]["compute"] == 0.0


def test_expected_vs_observed_quiet_when_on_target_and_rejects_bad_input() -> None:
    healthy = predict_training_step("A800-SXM4-80GB", 64, 7e9, 4194304)
    assert expected_vs_observed(healthy, healthy.total_s * 1.05) == []
    with pytest.raises(PerfInputError, match="observed_step_s"):
        expected_vs_observed(healthy, 0)
    with pytest.raises(PerfInputError, match="observed_step_s"):
        expected_vs_observed(healthy, math.nan)


def test_early_warning_fires_on_a_slow_clock_drift_before_it_costs_10_percent() -> None:
    rng = random.Random(6)
    ew = EarlyWarning()
    fired_at = None
    for step in range(200):
        clock = 1410.0 if step < 50 else max(200.0, 1410.0 - 6.0 * (step - 50))  # -6 MHz per sample
        fired = ew.update(fleet(rng, t=step, override={"node-04:2": {"sm_clock_mhz": round(clock / 15) * 15}}))
        if fired and fired_at is None:
            fired_at = step
            assert [(f.kind, f.host, f.gpu) for f in fired] == [("gpu_clock_throttle", "node-04", 2)]
    assert fired_at is not None
    # a 10% throughput loss needs the clock at ~0.76 of peers (1070 MHz, step ~107)
    assert 50 < fired_at < 80


def test_early_warning_power_limit_temperature_and_counters() -> None:
    rng = random.Random(7)
    ew = EarlyWarning()
    for step in range(10):
        assert ew.update(fleet(rng, t=step)) == []
    fired = ew.update(fleet(rng, t=10, override={"node-01:1": {"power_limit_w": 380.0}, "node-02:2": {"xid_count": 1},
                                           "node-03:3": {"ecc_dbe": 2}}))
    assert {(f.kind, f.host, f.gpu) for f in fired} == {
        ("gpu_power_cap", "node-01", 1), ("gpu_xid", "node-02", 2), ("gpu_ecc_uncorrectable", "node-03", 3)}
    # the same state does not fire again; the counter must rise again
    again = ew.update(fleet(rng, t=11, override={"node-01:1": {"power_limit_w": 380.0}, "node-02:2": {"xid_count": 1},
                                           "node-03:3": {"ecc_dbe": 2}}))
    assert again == []
    fired_temp = []
    for step in range(12, 40):
        fired_temp += ew.update(fleet(rng, t=step, override={"node-06:5": {"temp_c": 64 + (step - 12) * 0.8}}))
    assert fired_temp and fired_temp[0].kind == "gpu_thermal" and fired_temp[0].host == "node-06"
    assert fired_temp[0].data["temp_c"] < 80  # long before the 87 °C slowdown


def test_early_warning_quiet_on_noise_and_survives_missing_values() -> None:
    rng = random.Random(8)
    ew = EarlyWarning()
    for step in range(1500):
        samples = fleet(rng, t=step)
        if step % 97 == 0:  # occasional [N/A] and NaN readings
            samples[5] = GpuSample(samples[5].host, samples[5].gpu, step, sm_clock_mhz=math.nan, temp_c=None)
        assert ew.update(samples) == [], step
    assert ew.update([]) == []
    assert any("sm_clock_mhz" in n for n in ew.notes.lines())


def test_all_ranks_of_one_host_slow_points_at_the_host() -> None:
    rng = random.Random(9)
    times = {f"{h}:{g}": rng.gauss(34.0, 0.3) for h in HOSTS for g in range(8)}
    for g in range(8):
        times[f"node-06:{g}"] = 44.0 + g * 0.1
    findings = detect_stragglers([], step_times=times)
    assert {f.host for f in findings} == {"node-06"} and len(findings) == 8
    assert all(f.data["host_wide"] for f in findings)
    times = {k: (v if not k.startswith("node-06") else 34.0) for k, v in times.items()}
    times["node-06:2"] = 44.0
    [single] = detect_stragglers([], step_times=times)
    assert "host_wide" not in single.data


def test_idle_gpus_of_a_drained_node_are_not_throttled() -> None:
    rng = random.Random(10)
    idle = {f"node-03:{g}": {"sm_clock_mhz": 210.0, "util_pct": 0.0, "power_w": 60.0} for g in range(8)}
    notes: list[str] = []
    assert detect_stragglers(fleet(rng, override=idle), notes=notes) == []
    assert any("idle" in n for n in notes)
    ew = EarlyWarning()
    for step in range(40):
        assert ew.update(fleet(rng, t=step, override=idle if step > 15 else None)) == []


def test_gpu_already_throttled_when_watching_starts_is_not_learnt_as_normal() -> None:
    rng = random.Random(11)
    ew = EarlyWarning()
    fired = []
    for step in range(20):
        fired += ew.update(fleet(rng, t=step, override={"node-07:7": {"sm_clock_mhz": 600.0}}))
    assert [(f.kind, f.host, f.gpu) for f in fired] == [("gpu_clock_throttle", "node-07", 7)]


def test_a_repaired_gpu_re_arms_and_can_warn_again() -> None:
    rng = random.Random(12)
    ew = EarlyWarning()
    slow = {"node-02:4": {"sm_clock_mhz": 700.0}}
    kinds = []
    for step in range(300):
        broken = 20 <= step < 200 or step >= 260  # throttled, reset at 200, throttled again at 260
        kinds += [f.kind for f in ew.update(fleet(rng, t=step, override=slow if broken else None))
                  if f.data["signal"] == "sm_clock_cusum"]
    assert kinds == ["gpu_clock_throttle", "gpu_clock_throttle"]
