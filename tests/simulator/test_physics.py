"""The simulator's own step-time physics (simulator/physics.py): the step follows the slowest GPU's
clock and the slowest link, the case study slows ~3x, and none of it comes from perf.workload."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from perf.catalog import get_gpu
from simulator import SimCluster, physics
from simulator.scenario import load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[2]
CASE_STUDY = ROOT / "scenarios" / "a800-throttle.yaml"
A800 = get_gpu("A800-SXM4-80GB")


def small(faults: list[dict[str, Any]], tokens: float = 4_194_304.0) -> SimCluster:
    cluster = {"nodes": 2, "gpus_per_node": 4, "gpu": "A800-SXM4-80GB", "interconnect": "infiniband",
               "workload": {"kind": "llm_training", "model_params": 7e9, "tokens_per_step": tokens}}
    return SimCluster(parse_scenario({"id": "t", "seed": 1, "cluster": cluster, "faults": faults}, "test"))


def throttled(mhz: float) -> SimCluster:
    return small([{"kind": "gpu_clock_throttle", "node": "node-02", "gpu": 1, "sm_clock_mhz": mhz,
                   "reason": "hw_slowdown"}])


# --------------------------------------------------------------------------- compute follows the clock


def test_gemm_time_follows_the_sm_clock_and_memory_does_not() -> None:
    def compute(ratio: float) -> float:
        return physics.rank_compute_s(A800, 7e9, 65536, ratio)

    # the clock-bound part is inverse to the clock; the HBM-latency stall part is not
    assert compute(0.25) - compute(1.0) == pytest.approx(3 * (compute(0.5) - compute(1.0)))
    assert compute(1.0) == pytest.approx(6 * 7e9 * 65536 / (312e12 * physics.GEMM_EFFICIENCY))
    assert compute(1.2) == pytest.approx(compute(1.0))  # never above peak
    step = physics.synchronous_step(A800, 7e9, 4 * 65536, [1.0, 1.0, 1.0, 0.25], physics.Fabric(156.0, None),
                                    n_nodes=1)
    assert step.straggler == 3
    assert step.compute_s[3] == pytest.approx(compute(0.25))
    assert step.step_s == pytest.approx(step.compute_s[3] + step.memory_s + physics.STEP_OVERHEAD_S + step.comm_s)


def test_step_time_scales_with_the_throttled_gpus_clock() -> None:
    healthy = small([])
    base = healthy.step_time_s()
    steps = {mhz: throttled(mhz) for mhz in (1050.0, 705.0, 352.5)}
    times = [sim.step_time_s() for sim in steps.values()]
    assert base < times[0] < times[1] < times[2]
    # the throttled rank's extra local time is its clock-bound GEMM time x (max_clock / clock - 1)
    clock_bound = 6 * 7e9 * (4_194_304 / 8) / 312e12 / physics.TENSOR_CORE_BUSY
    for mhz, sim in steps.items():
        local = sim.rank_step_times()
        extra = local[("node-02", 1)] - min(local.values())
        assert extra == pytest.approx(clock_bound * (1410 / mhz - 1), rel=0.02)
    # resetting the clock brings the step back
    sim = steps[352.5]
    assert sim.handle("node-02", "nvidia-smi -i 1 -rgc").exit_code == 0
    assert sim.step_time_s() == pytest.approx(base, rel=0.02)


# --------------------------------------------------------------------------- the collective follows the slowest link


def test_a_slower_inter_node_link_raises_the_collective_time() -> None:
    def fabric(rate_gbps: float) -> physics.Fabric:
        node = physics.NodeLinks(pcie=[(4, 16)] * 4, nic_gbps=[200.0] * 4)
        slow = physics.NodeLinks(pcie=[(4, 16)] * 4, nic_gbps=[200.0, rate_gbps, 200.0, 200.0])
        return physics.build_fabric(A800, "infiniband", [node, slow], 8, rails=4)

    grads = physics.grad_bytes(7e9)
    nominal, degraded = fabric(200.0), fabric(100.0)
    assert degraded.inter_gbs is not None and nominal.inter_gbs is not None
    assert degraded.inter_gbs == pytest.approx(nominal.inter_gbs / 2)  # even split: the slow NIC paces all rings
    assert physics.allreduce_s(8, 2, grads, degraded) > 1.5 * physics.allreduce_s(8, 2, grads, nominal)


def test_link_faults_in_the_simulator_lengthen_the_step() -> None:
    base = small([]).step_time_s()
    degraded = small([{"kind": "ib_link_degraded", "node": "node-01", "hca": "mlx5_2", "rate_gbps": 50}])
    down = small([{"kind": "ib_port_down", "node": "node-02", "hca": "mlx5_0"}])
    pcie = small([{"kind": "pcie_downgrade", "node": "node-01", "gpu": 0, "width": 4, "gen": 3}])
    tcp = small([{"kind": "nccl_env_misconfig", "node": "node-01", "env": {"NCCL_IB_DISABLE": "1"}}])
    for sim in (degraded, down, pcie):
        assert sim.step_time_s() > base
    assert tcp.step_time_s() > base + 5.0  # 14 GB of bf16 gradients through one TCP stack per node


def test_a_port_down_moves_its_ring_onto_another_nic() -> None:
    assert physics.node_nic_gbs([20.0] * 8, 8) == pytest.approx(160.0)
    assert physics.node_nic_gbs([20.0] * 7 + [None], 8) == pytest.approx(80.0)  # one NIC carries two rings
    assert physics.node_nic_gbs([None] * 8, 8) == 0.0


def test_host_slowdown() -> None:
    assert physics.host_slowdown("performance", 0.0, 128) == 1.0
    assert physics.host_slowdown("powersave", 0.0, 128) == physics.POWERSAVE_SLOWDOWN
    assert physics.host_slowdown("performance", 512.0, 128) == 4.0
    assert physics.host_slowdown("powersave", 1e6, 128) == physics.MAX_HOST_SLOWDOWN


# --------------------------------------------------------------------------- the case study


def test_case_study_slows_the_job_between_2_5_and_3_5_times() -> None:
    sim = SimCluster(load_scenario(CASE_STUDY))
    ratio = sim.step_time_s() / sim.baseline_step_time_s()
    assert 2.5 <= ratio <= 3.5, ratio


@pytest.mark.parametrize("name", ["a800-throttle", "no-fault-control"])
def test_healthy_step_agrees_with_the_perf_model_within_tolerance(name: str) -> None:
    # Two independent models of the same job need not agree exactly. The tolerance: the healthy
    # simulated step may be up to 40% faster than the perf model expects (the perf model assumes
    # one healthy MFU for every GPU; here the HBM-bound share depends on the GPU), but never more
    # than 10% slower, or `perf check` (slow below 90% of expected throughput) would call a
    # healthy cluster slow.
    from perf.workload import predict_training_step

    scenario = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
    c = scenario.cluster
    assert c.workload is not None
    expected = predict_training_step(c.gpu, c.nodes * c.gpus_per_node, c.workload.model_params,
                                     c.workload.tokens_per_step, interconnect=c.interconnect).total_s
    assert 0.6 <= SimCluster(scenario).baseline_step_time_s() / expected <= 1.1


# --------------------------------------------------------------------------- independence from perf.workload


def _perf_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "perf"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "perf":
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if node.module == "perf"}
    return found


def test_no_simulator_module_imports_perf_workload() -> None:
    modules = sorted((ROOT / "simulator").glob("*.py"))
    assert modules
    for path in modules:
        assert not any(m.startswith("perf.workload") for m in _perf_imports(path)), path.name
    assert _perf_imports(ROOT / "simulator" / "physics.py") == {"perf.catalog"}


def test_running_the_job_never_loads_perf_workload() -> None:
    code = ("import sys, simulator; sim = simulator.SimCluster(sys.argv[1]); sim.step_time_s(); "
            "sim.baseline_step_time_s(); sim.train_log(sim.node('node-05')); "
            "sim.handle('node-05', 'all_reduce_perf -b 8M -e 64M -f 2 -g 8'); "
            "print('perf.workload' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(CASE_STUDY)], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False", out.stderr
