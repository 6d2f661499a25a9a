"""Sweeps over real SSH where nodes misbehave, or where clusterdoc's own machine is starved.

- 512 nodes, of which 10% hang, 5% drop the connection in the middle of a command and 5% refuse
  connections: every node must have a result, each failure must show as what it is, and the
  healthy nodes' findings must be complete unless clusterdoc itself fell behind, in which case
  they say "not checked: clusterdoc was overloaded" and are never blamed.
- A starved client: many nodes, a tiny deadline (2 s per command) and CPU hogs on clusterdoc's
  core. No healthy node may be reported as a node timeout.

Wall times are not asserted here (they depend on the machine's load): they are recorded for
``python -m benchmark.speed.hardening``, which reports them against their targets.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from diagnostics.executors.fanout import OVERLOADED
from diagnostics.executors.ssh import SSHConfig, SSHExecutor
from diagnostics.inventory import load_inventory
from diagnostics.registry import Registry, default_registry
from diagnostics.toolkit import SweepReport, Toolkit
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
COMPLETE = (Status.OK, Status.PROBLEM)


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


def statuses(report: SweepReport, hosts: list[str]) -> dict[str, set[Status]]:
    return {h: {r.status for r in report.results[h]} for h in hosts}


def assert_not_checked_is_reported(report: SweepReport) -> None:
    """Hosts clusterdoc could not check are listed, counted in a note, and carry no blame."""
    marked = {h for h, rs in report.results.items() if any(r.status is Status.NOT_CHECKED for r in rs)}
    assert set(report.not_checked) == marked
    for host in marked:
        results = report.results[host]
        assert all(r.error.startswith(OVERLOADED) for r in results if r.status is Status.NOT_CHECKED)
        if all(r.status is Status.NOT_CHECKED for r in results):
            assert not any(f.host == host for f in report.findings())
    notes = [n for n in report.notes if n.startswith(OVERLOADED)]
    if marked:
        assert len(notes) == 1 and f"({len(marked)} host" in notes[0], report.notes
    else:
        assert notes == []


@pytest.mark.slow
@pytest.mark.ssh
@pytest.mark.timeout(300)
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
    not_checked = set(report.not_checked)
    checked_healthy = [h for h in healthy if h not in not_checked]
    healthy_complete = sum(1 for h in healthy if all(r.status in COMPLETE for r in report.results[h]))
    blamed_healthy = [h for h in healthy if any(r.status not in (*COMPLETE, Status.NOT_CHECKED)
                                                for r in report.results[h])]
    found = {(f.kind, f.host) for f in report.findings()} & EXPECTED
    # Figures for the benchmark report (the wall time depends on the machine: it is judged there).
    # Each node's deadline starts when its command is sent, after its connection exists; on 2
    # cores the last of 512 connections are up some 10-20 s in, hence twice the timeout.
    record("512-node sweep wall time", round(wall, 1), unit="s", target=f"<= {COMMAND_TIMEOUT_S * 2:g}",
           group="faults")
    record("nodes with a result", f"{len(report.results)}/{NODES}", target=f"{NODES}/{NODES}", group="faults")
    record("healthy nodes with every check complete", f"{healthy_complete}/{len(healthy)}",
           target="all", group="faults")
    record("healthy nodes blamed (timeout, unreachable, error)", len(blamed_healthy), target="0", group="faults")
    record("nodes not checked: clusterdoc overloaded", len(not_checked), target="0", group="faults")
    record("planted findings reported", f"{len(found)}/{len(EXPECTED)}", target="all", group="faults")

    assert list(report.results) == hosts
    assert all([r.tool for r in report.results[h]] == TOOLS for h in hosts)
    assert_not_checked_is_reported(report)
    # A healthy node is complete, or was not checked because clusterdoc fell behind: never blamed.
    assert blamed_healthy == [], "\n".join(f"{h}: {r.status.value}: {r.error[:200]}" for h in blamed_healthy
                                            for r in report.results[h])
    assert healthy_complete == len(checked_healthy)
    if not not_checked:
        assert healthy_complete == len(healthy)
    assert found == {(kind, host) for kind, host in EXPECTED if host not in not_checked}
    # each failure shows as what it is, never as a healthy result
    hung = [h for h, b in behaviours.items() if b == "hang"]
    assert all(statuses(report, [h])[h] == {Status.TIMEOUT} for h in hung if h not in not_checked)
    assert set(by_behaviour["hang"]) <= {"timeout", "not_checked"}
    assert set(by_behaviour["refuse"]) == {"unreachable"}
    assert set(by_behaviour["drop"]) <= {"error", "unreachable", "timeout", "not_checked"}
    assert "ok" not in by_behaviour["drop"]
    bad_hosts = set(behaviours)
    assert not any(f.kind == "ssh_host_key_refused" for f in report.findings())
    unreachable_marked = {f.host for f in report.findings() if f.kind == "node_unreachable"}
    expected_marked = {h for h, b in behaviours.items() if b in ("hang", "refuse") and h not in not_checked}
    assert expected_marked <= unreachable_marked <= bad_hosts


# ---- a starved client ---------------------------------------------------------------------------
STARVED_NODES = 256
STARVED_TOOLS = ["gpu_clocks", "cpu_load"]
STARVED_COMMAND_TIMEOUT_S = 2.0  # tiny next to the registry's 30 s, still well above a quick node's answer
HOGS = 2


def _pin(pid: int, cpus: set[int]) -> None:
    """Set the CPU affinity of every thread of ``pid`` (threads started later inherit it)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):  # a thread that just ended
            os.sched_setaffinity(int(tid), cpus)


@contextlib.contextmanager
def starved_client(server_pid: int) -> Iterator[None]:
    """CPU hogs on the core this process runs on, the simulated nodes on the other cores: the
    client is starved while the nodes stay as quick as real nodes on their own machines."""
    cpus = sorted(os.sched_getaffinity(0))
    client_cpu, node_cpus = {cpus[0]}, set(cpus[1:])
    hogs: list[subprocess.Popen[bytes]] = []
    try:
        _pin(server_pid, node_cpus)
        _pin(os.getpid(), client_cpu)
        for _ in range(HOGS):
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            hogs.append(hog)
            _pin(hog.pid, client_cpu)
        time.sleep(0.2)
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        _pin(os.getpid(), set(cpus))


@pytest.mark.slow
@pytest.mark.ssh
@pytest.mark.timeout(180)
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or not os.path.isdir("/proc/self/task"),
                    reason="needs Linux CPU affinity to keep the simulated nodes off the starved core")
def test_starved_client_never_blames_healthy_nodes(served_cluster: Any) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 CPUs: one for the starved client, one for the simulated nodes")
    scenario = {
        "id": "starved-client", "description": "many nodes, a tiny deadline, a starved client",
        "cluster": {"nodes": STARVED_NODES, "gpus_per_node": 8, "gpu": "A800-SXM4-80GB",
                    "interconnect": "infiniband", "scheduler": "slurm"},
        "seed": 5, "faults": [],
    }
    hosts = [f"node-{i:03d}" for i in range(1, STARVED_NODES + 1)]
    hung = hosts[7::32]
    served = served_cluster(scenario, dict.fromkeys(hung, "hang"))
    inventory = load_inventory(served.inventory_path)
    registry = Registry(dataclasses.replace(s, timeout_s=STARVED_COMMAND_TIMEOUT_S)
                        for s in default_registry().specs())
    executor = SSHExecutor(inventory, SSHConfig(connect_timeout_s=10.0, use_agent=False))
    toolkit = Toolkit(registry, executor)
    healthy = [h for h in hosts if h not in hung]
    try:
        # Connect everything first (handshakes cost the simulated nodes far more than commands).
        warm = toolkit.sweep(hosts, tools=["cpu_load"], concurrency=STARVED_NODES, host_deadline_s=5.0)
        assert list(warm.results) == hosts
        with starved_client(served.proc.pid):
            # The host deadline is the sum of its checks' timeouts (as the sweep's default is).
            report = toolkit.sweep(hosts, tools=STARVED_TOOLS, concurrency=STARVED_NODES,
                                   host_deadline_s=STARVED_COMMAND_TIMEOUT_S * len(STARVED_TOOLS))
    finally:
        executor.close()

    record("starved client: healthy nodes reported as node timeouts",
           sum(1 for h in healthy if Status.TIMEOUT in statuses(report, [h])[h]), target="0", group="faults")
    record("starved client: healthy nodes not checked (overloaded)",
           f"{len(set(report.not_checked) - set(hung))}/{len(healthy)}", target="(any)", group="faults")
    record("starved client: lag measured", round(report.client_lag_s, 1), unit="s", target="(any)", group="faults")

    assert list(report.results) == hosts and all(len(rs) == len(STARVED_TOOLS) for rs in report.results.values())
    assert report.client_lag_s > 0  # the client was starved indeed
    assert_not_checked_is_reported(report)
    by_host = statuses(report, hosts)
    # The point: clusterdoc's overload is never put on a healthy node.
    wrongly_blamed = [h for h in healthy if not by_host[h] <= {*COMPLETE, Status.NOT_CHECKED}]
    assert wrongly_blamed == [], "\n".join(f"{h}: {r.status.value}: {r.error[:200]}" for h in wrongly_blamed
                                            for r in report.results[h])
    # A hung node is a timeout, or not checked when clusterdoc could not give it its deadline.
    assert all(by_host[h] <= {Status.TIMEOUT, Status.NOT_CHECKED} for h in hung), {h: by_host[h] for h in hung}
