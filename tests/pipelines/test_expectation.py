"""The job's step time against the perf model: a slowdown every GPU shares is found and quantified
(peer comparison cannot see it), with the resource the measurements lay the gap at."""

from __future__ import annotations

from typing import Any

import pytest

from diagnostics.inventory import InventoryError, parse_inventory
from diagnostics.types import Status, ToolResult
from pipelines.expectation import compare, reports_slowdown
from pipelines.planner import ClusterInfo
from tests.pipelines.test_verdicts import _diagnose as diagnose_scenario

WORKLOAD = {"model_params": 7e9, "tokens_per_step": 4194304, "precision": "bf16", "interconnect": "infiniband"}
BASE: dict[str, Any] = {
    "cluster": {"nodes": 4, "gpus_per_node": 8, "gpu": "H100-SXM5-80GB", "interconnect": "infiniband",
                "scheduler": "slurm", "workload": {"kind": "llm_training", "model_params": 7e9,
                                                   "tokens_per_step": 4194304}},
    "seed": 5,
}


def _diagnose(data: dict[str, Any]) -> Any:
    return diagnose_scenario(data, BASE)


def _steps(host: str, seconds: float) -> ToolResult:
    return ToolResult("job_step_times", host, Status.OK, data={"step_time_s": seconds})


def _clocks(host: str, mhz: float) -> ToolResult:
    rows = [{"index": g, "sm_clock_mhz": mhz, "max_sm_clock_mhz": 1980} for g in range(8)]
    return ToolResult("gpu_clocks", host, Status.OK, data={"gpus": rows})


def test_a_job_at_its_expected_pace_is_not_slow() -> None:
    cluster = ClusterInfo(hosts=["a", "b"], gpus_per_node=8, gpu_model="H100-SXM5-80GB", workload=WORKLOAD)
    exp = compare(cluster, [_steps("a", 1.0)])
    assert exp is not None
    fast = compare(cluster, [_steps("a", exp.expected_s * 1.02)])
    assert fast is not None and not fast.slow and "within the expected range" in fast.text()


def test_low_clocks_on_every_gpu_explain_the_gap_as_compute() -> None:
    cluster = ClusterInfo(hosts=["a", "b"], gpus_per_node=8, gpu_model="H100-SXM5-80GB", workload=WORKLOAD)
    expected = compare(cluster, [_steps("a", 1.0)])
    assert expected is not None
    slow = expected.expected_s * 2.5
    exp = compare(cluster, [_steps("a", slow), _steps("b", slow), _clocks("a", 700), _clocks("b", 700)])
    assert exp is not None and exp.slow and exp.attributed_to == "compute" and exp.category == "thermal-power"
    assert "gpu_clocks" in exp.measured and f"{slow:.3g} s" in exp.text()
    # the same gap with full clocks: nothing measured explains it
    exp = compare(cluster, [_steps("a", slow), _clocks("a", 1980), _clocks("b", 1980)])
    assert exp is not None and exp.slow and exp.attributed_to == "unexplained" and "no measurement explains" in exp.text()


def test_no_workload_or_no_step_time_means_no_comparison() -> None:
    assert compare(ClusterInfo(hosts=["a"], gpus_per_node=8, gpu_model="H100-SXM5-80GB"), [_steps("a", 3.0)]) is None
    cluster = ClusterInfo(hosts=["a"], gpus_per_node=8, gpu_model="H100-SXM5-80GB", workload=WORKLOAD)
    assert compare(cluster, [_clocks("a", 1980)]) is None


def test_slowdown_words() -> None:
    assert reports_slowdown("Training throughput ~25% below baseline")
    assert reports_slowdown("step time up 3x since the driver update")
    assert not reports_slowdown("job crashed with NCCL error")


def test_every_gpu_throttled_alike_is_cluster_wide_with_the_numbers() -> None:
    faults = [{"kind": "gpu_clock_throttle", "node": "all", "gpu": g, "sm_clock_mhz": 900, "reason": "sw_power_cap"}
              for g in range(8)]
    d = _diagnose({"id": "all-throttled", "faults": faults,
                   "alert": "training step time 2x slower on the whole job since the BIOS rollout"})
    assert d.cause.node is None
    assert not any(s.tool == "drain_node" for p in d.proposals for s in p.steps)
    assert "the model expects" in d.summary and "compute explains" in d.summary
    assert any(n["kind"] == "verification" and n["text"].startswith("expected vs observed")
               for n in d.graph["nodes"])


def test_a_slowdown_no_per_node_check_shows_is_unexplained_never_clean() -> None:
    # The job log says every rank steps 3x slower than the hardware should; every node's own
    # checks pass (a fleet-wide cause no check knows): the comparison is the evidence.
    log = "".join(f"2026-12-01 10:00:0{k},000 INFO [train.py:412] step={100 + k} rank={g} local_rank={g} host=h "
                  f"step_time_s=66.0 compute_s=20.0 tokens_per_s=63550\n" for k in range(3) for g in range(8))
    fault = {"kind": "custom", "node": "all", "category": "other",
             "commands": {"tail -n 400 /var/log/clusterdoc/train.log": {"stdout": log, "exit": 0}}}
    d = _diagnose({"id": "wide-slow", "faults": [fault],
                   "alert": "tokens/s down to a third on every node since Monday; nothing in the logs"})
    assert d.verdict == "unexplained" and d.cause.node is None
    assert "the model expects" in d.summary and "66" in d.summary
    assert any(a.get("check") == "perf_model" for a in d.anomalies)
    assert not d.proposals


@pytest.mark.parametrize(("workload", "field"), [
    ({"model_params": -1, "tokens_per_step": 10}, "workload.model_params"),
    ({"model_params": 7e9, "tokens_per_step": 0}, "workload.tokens_per_step"),
    ({"model_params": 7e9, "tokens_per_step": 10, "precision": "int3"}, "workload.precision"),
    ("seven billion", "workload"),
])
def test_inventory_workload_errors_name_the_field(workload: Any, field: str) -> None:
    import yaml

    text = yaml.safe_dump({"cluster": "c", "nodes": ["n1"], "workload": workload})
    with pytest.raises(InventoryError, match=field.replace(".", r"\.")):
        parse_inventory(text)


def test_inventory_workload_round_trips() -> None:
    import yaml

    inv = parse_inventory(yaml.safe_dump({"cluster": "c", "nodes": ["n1"], "gpu": "H100-SXM5-80GB",
                                          "workload": {"model_params": "7e9", "tokens_per_step": 4194304}}))
    assert inv.workload == {"model_params": 7e9, "tokens_per_step": 4194304.0, "precision": "bf16",
                            "interconnect": "infiniband"}
    assert parse_inventory(yaml.safe_dump(inv.to_dict())).workload == inv.workload
