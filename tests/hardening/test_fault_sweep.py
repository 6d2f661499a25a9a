"""A 512-node sweep over real SSH where 10% of the nodes hang, 5% drop the connection in the
middle of a command and 5% refuse connections: it must finish within the command timeout + 10%,
every node must have a result, and the healthy nodes' findings must be complete."""

from __future__ import annotations

import dataclasses
import random
import time
from collections import Counter
from typing import Any

import pytest

from diagnostics.executors.ssh import SSHConfig, SSHExecutor
from diagnostics.inventory import load_inventory
from diagnostics.registry import Registry, default_registry
from diagnostics.toolkit import Toolkit
from diagnostics.types import Status
from tests.hardening.figures import record

NODES = 512
COMMAND_TIMEOUT_S = 30.0  # the registry's default per-command timeout
TOOLS = ["gpu_clocks", "gpu_ecc", "cpu_load", "disk_usage"]
# faults on healthy nodes: the sweep must report each of them
FAULTS: list[dict[str, Any]] = [
    {"kind": "gpu_clock_throttle", "node": "node-005", "gpu": 3, "sm_clock_mhz": 210},
    {"kind": "disk_full", "node": "node-300", "mount": "/"},
    {"kind": "gpu_ecc_uncorrectable", "node": "node-451", "gpu": 6},
]
EXPECTED = {("gpu_clock_throttle", "node-005"), ("disk_full", "node-300"), ("gpu_ecc_uncorrectable", "node-451")}


def plan_behaviours(hosts: list[str], seed: int = 9) -> dict[str, str]:
    """10% hang, 5% drop, 5% refuse, chosen at random among the nodes without a planted fault."""
    faulty = {f["node"] for f in FAULTS}
    pool = [h for h in hosts if h not in faulty]
    random.Random(seed).shuffle(pool)
    n_hang, n_drop, n_refuse = round(0.10 * NODES), round(0.05 * NODES), round(0.05 * NODES)
    plan = {h: "hang" for h in pool[:n_hang]}
    plan.update({h: "drop" for h in pool[n_hang:n_hang + n_drop]})
    plan.update({h: "refuse" for h in pool[n_hang + n_drop:n_hang + n_drop + n_refuse]})
    return plan


@pytest.mark.slow
@pytest.mark.ssh
@pytest.mark.timeout(180)
def test_512_node_sweep_with_hanging_dropping_and_refusing_nodes(served_cluster: Any) -> None:
    scenario = {
        "id": "hardening-512", "description": "512 nodes, three faults, many misbehaving nodes",
        "cluster": {"nodes": NODES, "gpus_per_node": 8, "gpu": "A800-SXM4-80GB",
                    "interconnect": "infiniband", "scheduler": "slurm"},
        "seed": 3, "faults": FAULTS,
    }
    hosts = [f"node-{i:03d}" for i in range(1, NODES + 1)]
    behaviours = plan_behaviours(hosts)
    served = served_cluster(scenario, behaviours)
    inventory = load_inventory(served.inventory_path)
    assert inventory.names == hosts
    registry = Registry(dataclasses.replace(s, timeout_s=COMMAND_TIMEOUT_S) for s in default_registry().specs())
    executor = SSHExecutor(inventory, SSHConfig(connect_timeout_s=COMMAND_TIMEOUT_S / 2,
                                                command_timeout_s=COMMAND_TIMEOUT_S, use_agent=False))
    toolkit = Toolkit(registry, executor)
    try:
        start = time.monotonic()
        report = toolkit.sweep(hosts, tools=TOOLS, concurrency=NODES, host_deadline_s=COMMAND_TIMEOUT_S)
        wall = time.monotonic() - start
    finally:
        executor.close()

    by_behaviour: dict[str, Counter[str]] = {}
    for host, results in report.results.items():
        by_behaviour.setdefault(behaviours.get(host, "ok"), Counter()).update(r.status.value for r in results)
    healthy = [h for h in hosts if h not in behaviours]
    healthy_complete = sum(
        1 for h in healthy
        if [r.tool for r in report.results[h]] == TOOLS
        and all(r.status in (Status.OK, Status.PROBLEM) for r in report.results[h])
    )
    found = {(f.kind, f.host) for f in report.findings()} & EXPECTED
    record("512-node sweep wall time", round(wall, 1), unit="s", target=f"<= {COMMAND_TIMEOUT_S * 1.1:g}",
           group="faults")
    record("nodes with a result", f"{len(report.results)}/{NODES}", target=f"{NODES}/{NODES}", group="faults")
    record("healthy nodes with every check complete", f"{healthy_complete}/{len(healthy)}",
           target="all", group="faults")
    record("planted findings reported", f"{len(found)}/{len(EXPECTED)}", target="all", group="faults")

    assert wall <= COMMAND_TIMEOUT_S * 1.1, f"sweep took {wall:.1f}s"
    assert list(report.results) == hosts
    assert all(len(report.results[h]) == len(TOOLS) for h in hosts)
    assert healthy_complete == len(healthy), {h: [r.status.value for r in report.results[h]] for h in healthy
                                              if any(r.status not in (Status.OK, Status.PROBLEM)
                                                     for r in report.results[h])}
    assert found == EXPECTED
    # each failure shows as what it is, never as a healthy result
    assert set(by_behaviour["hang"]) == {"timeout"}
    assert set(by_behaviour["refuse"]) == {"unreachable"}
    assert set(by_behaviour["drop"]) <= {"error", "unreachable", "timeout"} and "ok" not in by_behaviour["drop"]
    bad_hosts = {h for h in behaviours}
    assert not any(f.kind == "ssh_host_key_refused" for f in report.findings())
    unreachable_marked = {f.host for f in report.findings() if f.kind == "node_unreachable"}
    assert {h for h, b in behaviours.items() if b in ("hang", "refuse")} <= unreachable_marked <= bad_hosts
