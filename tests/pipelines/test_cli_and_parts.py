from pathlib import Path

import pytest

from clusterdoc.cli import main
from diagnostics.types import Finding, Status, ToolResult
from pipelines.api import Cause
from pipelines.components import round_one_pipeline
from pipelines.evidence import rank_candidates, verify_claim
from pipelines.telemetry import detector_findings

ROOT = Path(__file__).resolve().parents[2]


def test_cli_diagnose_scenario_prints_outline_evidence_proposals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "g.png"
    rc = main(["diagnose", "--scenario", str(ROOT / "scenarios" / "a800-throttle.yaml"), "--no-kb", "--png", str(png)])
    out = capsys.readouterr().out
    assert rc == 1
    assert "== reasoning" in out and "gpu_clock_throttle on node-05 GPU 3" in out
    # three checks find and localize it; a fourth (the job's step log) sets it against the perf model
    assert "$ nvidia-smi -i 3 -rgc" in out and "tool invocations: 4" in out
    assert "the model expects" in out and "compute explains" in out
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_cli_no_fault_exit_zero_and_bad_input_exit_two(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", "--scenario", str(ROOT / "scenarios" / "no-fault-control.yaml"), "--no-kb"]) == 0
    assert main(["diagnose", "--scenario", "/nonexistent.yaml", "--no-kb"]) == 2
    err = capsys.readouterr().err
    assert "nonexistent.yaml" in err and "Traceback" not in err


def _clock_result(host: str, clocks: list[float]) -> ToolResult:
    gpus = [{"gpu": i, "sm_clock_mhz": c, "max_sm_clock_mhz": 1410.0, "util_pct": 95.0} for i, c in enumerate(clocks)]
    return ToolResult("gpu_clocks", host, Status.OK, data={"gpus": gpus})


def test_detectors_find_a_gpu_slower_than_its_peers() -> None:
    results = [_clock_result(f"n{i}", [1410.0] * 8) for i in range(4)]
    results[2] = _clock_result("n2", [1410.0] * 5 + [700.0] + [1410.0] * 2)
    found, _ = detector_findings(results)
    assert [(f.host, f.gpu) for f in found] == [("n2", 5)]
    assert found[0].data["source"] == "perf.detectors"
    assert detector_findings([_clock_result(f"n{i}", [1410.0] * 8) for i in range(4)])[0] == []


def test_verifier_needs_the_exact_gpu() -> None:
    fs = [Finding("gpu_clock_throttle", "node-05", "low clock", gpu=3, severity="critical")]
    assert verify_claim(Cause("gpu_clock_throttle", "node-05", 3), fs).verified
    assert not verify_claim(Cause("gpu_clock_throttle", "node-05", 2), fs).verified
    assert not verify_claim(Cause("gpu_clock_throttle", "node-06", 3), fs).verified
    assert not verify_claim(Cause("gpu_thermal", "node-05", 3), fs).verified
    assert rank_candidates([Finding("versions", "n1", "info", severity="info")]) == []


class _KB:
    def search(self, query: str, top_k: int = 5, filters: object = None, splits: object = None) -> list[object]:
        assert "step time" in query
        return []


def test_round_one_is_a_haystack_pipeline() -> None:
    out = round_one_pipeline(["node-05"], _KB()).run({"extract": {"text": "step time up 3x on node-05"}},
                                                     include_outputs_from={"extract"})
    assert out["extract"]["entities"].nodes == ["node-05"]
    assert out["kb"]["hits"] == []


def test_ranking_merges_imprecise_findings_and_keeps_detectors_secondary() -> None:
    fs = [Finding("gpu_fallen_off_bus", "n8", "lost at PCI 0000:CB:00.0", severity="critical"),
          Finding("gpu_fallen_off_bus", "n8", "Xid 79", gpu=7, severity="critical")]
    top = rank_candidates(fs)[0]
    assert (top.node, top.gpu, len(top.findings)) == ("n8", 7, 2)
    check = Finding("gpu_clock_throttle", "n5", "200 MHz", gpu=3, severity="critical")
    outlier = Finding("gpu_thermal", "n5", "hotter than peers", gpu=3, severity="warning", data={"source": "perf.detectors"})
    ranked = rank_candidates([check, outlier])
    assert ranked[0].fault == "gpu_clock_throttle" and not ranked[0].explained_by
    real_heat = Finding("gpu_thermal", "n5", "92 C", gpu=3, severity="critical")
    assert rank_candidates([check, real_heat])[0].fault == "gpu_thermal"


def test_latency_is_blamed_on_the_node_in_the_most_slow_pairs() -> None:
    # Ring pings: node-01 -> node-02 and node-02 -> node-03 are slow; node-02 is the common end.
    slow = [
        Finding("network_latency", "node-01", "RTT to node-02 averages 40 ms", data={"target": "node-02"}),
        Finding("network_latency", "node-02", "RTT to node-03 averages 41 ms", data={"target": "node-03"}),
    ]
    best = rank_candidates(slow)[0]
    assert (best.cause.fault, best.cause.node) == ("network_latency", "node-02")


def test_planner_pings_around_a_ring() -> None:
    from diagnostics.registry import default_registry
    from pipelines.planner import ClusterInfo, fill_params

    hosts = ["node-01", "node-02", "node-03"]
    filled = fill_params(default_registry().get("net_latency"), ClusterInfo(hosts=hosts), hosts)
    assert filled is not None
    targets = {h: p["target"] for h, p in filled[1].items()}
    assert targets == {"node-01": "node-02", "node-02": "node-03", "node-03": "node-01"}
