"""Honest verdicts and scope: clean only after the relevant checks passed, a fault every node
shares is cluster/job-wide (node null, nothing drained), the drain cap holds."""

from __future__ import annotations

from typing import Any

from pipelines.api import Cause, DiagnosisRequest, Proposal, ProposalStep
from pipelines.config import AgentConfig, LLMConfig
from pipelines.proposals import cap_drains
from pipelines.runtime import build_agent, scenario_target
from pipelines.verdict import Anomaly, localize
from simulator.scenario import parse_scenario

BASE: dict[str, Any] = {
    "cluster": {"nodes": 8, "gpus_per_node": 8, "gpu": "H100-SXM5-80GB", "interconnect": "infiniband",
                "scheduler": "slurm", "workload": {"kind": "llm_training", "model_params": 7e9,
                                                   "tokens_per_step": 4194304}},
    "seed": 3,
}


def _diagnose(data: dict[str, Any], base: dict[str, Any] | None = None) -> Any:
    scenario = parse_scenario({**(BASE if base is None else base), **data}, "test")
    target = scenario_target(scenario)
    try:
        agent = build_agent(target, AgentConfig(llm=LLMConfig(backend="none")))
        return agent.diagnose(DiagnosisRequest(scenario.alert or "", source="benchmark"))
    finally:
        target.close()


def test_a_setting_on_every_node_is_job_wide_and_nothing_is_drained() -> None:
    d = _diagnose({"id": "wide-nccl", "faults": [{"kind": "nccl_env_misconfig", "node": None,
                                                  "env": {"NCCL_IB_DISABLE": "1"}}],
                   "alert": "all-reduce bandwidth collapsed on the whole job after the launcher change"})
    assert d.verdict == "verified" and d.cause.fault == "nccl_env_misconfig"
    assert d.cause.node is None and d.cause.scope in ("job", "cluster") and d.cause.category == "configuration"
    assert not any(s.tool == "drain_node" for p in d.proposals for s in p.steps)
    assert "job" in d.summary or "cluster" in d.summary


def test_a_healthy_cluster_is_clean_and_names_the_checks_that_passed() -> None:
    d = _diagnose({"id": "healthy", "faults": [], "alert": "routine check: anything wrong?"})
    assert d.verdict == "clean" and d.cause.fault is None and not d.proposals
    assert {"gpu_clocks", "ib_ports", "disk_usage"} <= set(d.checks_passed)


def test_one_node_fault_stays_on_its_node_with_a_category() -> None:
    d = _diagnose({"id": "one", "faults": [{"kind": "disk_full", "node": "node-03", "mount": "/", "used_pct": 99}],
                   "alert": "checkpoint writes failing"})
    assert d.verdict == "verified" and d.cause.node == "node-03" and d.cause.category == "storage"


def test_the_drain_cap_never_drains_more_than_its_share() -> None:
    def drain(host: str) -> Proposal:
        step = ProposalStep("drain_node", host, {}, (f"scontrol update nodename={host} state=drain",))
        return Proposal(f"p-{host}", f"drain {host}", "medium", (step,), Cause("gpu_xid", host))

    notes: list[str] = []
    kept = cap_drains([drain(f"node-{i:02d}") for i in range(1, 9)], 40, 0.1, notes)
    assert [p.id for p in kept] == ["p-node-01", "p-node-02", "p-node-03", "p-node-04"]
    assert len(notes) == 4 and "max_drain_fraction" in notes[0]
    assert len(cap_drains([drain("a"), drain("b")], 8, 0.1)) == 1  # at least one node may always be drained


def test_anomalies_on_most_nodes_are_cluster_wide() -> None:
    hosts = [f"n{i}" for i in range(8)]
    wide = [Anomaly(h, "mount_health", "df hung", "storage", "critical", "check_timeout") for h in hosts[:6]]
    loc = localize(wide, hosts)
    assert loc.node is None and loc.scope == "cluster" and loc.category == "storage"
    one = [Anomaly("n3", "kernel_errors", "LustreError", "storage", "critical", "kernel_error", cause="client evicted"),
           Anomaly("n5", "nic_errors", "rx errors", "network", "warning", "nic_errors")]
    loc = localize(one, hosts)
    assert loc.node == "n3" and loc.category == "storage"


def test_hostile_input_is_read_not_fatal() -> None:
    scenario = parse_scenario({**BASE, "id": "hostile", "faults": [
        {"kind": "gpu_clock_throttle", "node": "node-02", "gpu": 1, "sm_clock_mhz": 300}]}, "test")
    target = scenario_target(scenario)
    try:
        agent = build_agent(target, AgentConfig(llm=LLMConfig(backend="none")))
        for text in (bytes(range(256)).decode("latin-1") * 4000,  # binary garbage
                     "\x1b[31mstep time up 3x\x1b[0m\r\nNCCL WARN timeout\r\n",  # ANSI and CRLF
                     "训练任务的步时增加了三倍, le temps de pas a triplé",  # another language
                     "INFO all good here\n" * 600_000):  # ~11 MB
            d = agent.diagnose(DiagnosisRequest(text, source="cli"))
            assert d.verdict == "verified" and d.cause.node == "node-02" and d.cause.gpu == 1
    finally:
        target.close()


def test_an_alert_naming_one_node_does_not_blame_it_for_a_fleet_wide_fault() -> None:
    """Every clock is 5 minutes off; the alert names node-01. The peers are checked before one
    node is blamed: the cause is cluster-wide and nothing is drained."""
    d = _diagnose({"id": "wide-skew", "faults": [{"kind": "clock_skew", "node": "all", "offset_s": 304}],
                   "alert": "srun: error: Task launch for 1466614.0 failed on node node-01: Job credential expired"})
    assert d.cause.fault == "clock_skew" and d.cause.node is None
    assert not any(s.tool == "drain_node" for p in d.proposals for s in p.steps)
    assert {c["host"] for c in d.tool_calls if c["tool"] == "clock_sync"} == {f"node-0{i}" for i in range(1, 9)}


def test_error_lines_only_one_node_has_are_not_clean() -> None:
    """A custom fault whose only trace is a repeated warning-level kernel line on one node."""
    d = _diagnose({"id": "thermal-cpu", "faults": [{
        "kind": "custom", "node": "node-07", "category": "thermal-power",
        "kernel_log": [f"CPU{i}: Package temperature above threshold, cpu clock throttled (total events = 1386{i})"
                       for i in range(4)]}],
        "alert": "step time +35% since the afternoon, worst on node-07"})
    assert d.verdict != "clean" and d.cause.node == "node-07" and d.cause.category == "thermal-power"
