"""Scenario format version 2: `custom` faults plant exactly what they list (kernel-log lines, job-log
lines, command outputs, hangs), `node: all` puts a fault on every node, `expect.category` and
`expect.verdict` load; every mistake names its field."""

from __future__ import annotations

import pytest

from simulator import SimCluster
from simulator.scenario import ScenarioError, parse_scenario_text, registry_commands

BASE = """\
id: v2
cluster:
  nodes: 3
  gpus_per_node: 2
  gpu: A100-SXM4-80GB
  workload: {kind: llm_training, model_params: 7.0e9}
"""

# Lines from a real Lustre client eviction (written as the kernel prints them).
LUSTRE = """\
faults:
  - kind: custom
    node: node-02
    category: storage
    kernel_log:
      - "LustreError: 11-0: scratch-OST0004-osc-ffff9a: operation ost_write to node 10.0.0.12@o2ib failed: rc = -107"
    job_log:
      - "[rank 3] checkpoint save exceeded 900 s"
    commands:
      "cat /proc/loadavg": {stdout: "96.10 95.80 90.20 3/4120 48200\\n", exit: 0}
      "timeout 15 df": {hang: true}
expect: {node: node-02, gpu: null, fault: custom, remediation: [], category: storage, verdict: unexplained}
"""


def test_custom_fault_plants_exactly_what_it_lists() -> None:
    sc = parse_scenario_text(BASE + LUSTRE)
    assert sc.expect is not None and sc.expect.category == "storage" and sc.expect.verdict == "unexplained"
    sim = SimCluster(sc)
    bad, good = "node-02", "node-01"
    assert "LustreError: 11-0" in sim.handle(bad, "dmesg -T").stdout
    assert "LustreError" not in sim.handle(good, "dmesg -T").stdout
    assert sim.handle(bad, "cat /proc/loadavg").stdout.startswith("96.10 95.80")
    assert not sim.handle(good, "cat /proc/loadavg").stdout.startswith("96.10")
    hung = sim.handle(bad, "timeout 15 df -P -T /scratch", timeout_s=3)
    assert hung.transport == "timeout" and hung.exit_code is None
    assert sim.handle(good, "timeout 15 df -P -T /scratch").transport == "ok"
    log = sim.handle(bad, "tail -n 50 /var/log/clusterdoc/train.log").stdout
    assert "checkpoint save exceeded 900 s" in log
    assert "checkpoint save exceeded" not in sim.handle(good, "tail -n 50 /var/log/clusterdoc/train.log").stdout


def test_custom_fault_round_trips_through_to_dict() -> None:
    sc = parse_scenario_text(BASE + LUSTRE)
    import yaml

    again = parse_scenario_text(yaml.safe_dump(sc.to_dict()))
    assert again.faults[0].custom == sc.faults[0].custom
    assert again.expect == sc.expect


def test_node_all_applies_to_every_node_for_any_kind() -> None:
    sc = parse_scenario_text(BASE + """\
faults:
  - kind: gpu_power_cap
    node: all
    gpu: 0
    power_limit_w: 150
  - kind: custom
    node: all
    category: network
    kernel_log: ["nfs: server storage01 not responding, still trying"]
expect: {node: null, gpu: null, fault: gpu_power_cap, remediation: [restore_power_limit], category: thermal-power}
""")
    assert all(f.node is None for f in sc.faults)
    sim = SimCluster(sc)
    for host in sim.hosts:
        assert "not responding" in sim.handle(host, "dmesg").stdout
        power = sim.handle(host, "nvidia-smi --query-gpu=index,power.limit --format=csv,noheader,nounits").stdout
        assert power.splitlines()[0].split(",")[1].strip().startswith("150")
    assert sc.to_dict()["faults"][0]["node"] == "all"


@pytest.mark.parametrize(("fault", "field", "words"), [
    ("  - {kind: custom, node: node-01, category: plumbing, kernel_log: [x]}", "faults[0].category", "plumbing"),
    ("  - {kind: custom, node: node-01, category: storage, commands: {'rm -rf /': {stdout: x}}}",
     "faults[0].commands.rm -rf /", "no registry check runs"),
    ("  - {kind: custom, node: node-01, category: storage}", "faults[0]", "at least one of"),
    ("  - {kind: custom, node: node-09, category: storage, kernel_log: [x]}", "faults[0].node", "unknown node"),
    ("  - {kind: custom, node: node-01, category: storage, commands: {dmesg: {hang: maybe}}}",
     "faults[0].commands.dmesg.hang", "true or false"),
    ("  - {kind: custom, node: node-01, category: storage, kernel_log: [{a: 1}]}", "faults[0].kernel_log[0]",
     "log line"),
])
def test_custom_fault_mistakes_name_the_field(fault: str, field: str, words: str) -> None:
    with pytest.raises(ScenarioError) as err:
        parse_scenario_text(BASE + "faults:\n" + fault + "\n", "s.yaml")
    assert err.value.field == field and words in str(err.value) and "s.yaml:" in str(err.value)


def test_expect_v2_fields_are_checked() -> None:
    with pytest.raises(ScenarioError, match=r"expect\.verdict"):
        parse_scenario_text(BASE + "expect: {node: null, fault: null, remediation: [], verdict: maybe}\n")
    with pytest.raises(ScenarioError, match=r"expect\.category"):
        parse_scenario_text(BASE + "expect: {node: null, fault: null, remediation: [], category: vibes}\n")
    ok = parse_scenario_text(BASE + "expect: {node: null, fault: null, remediation: [], verdict: clean}\n")
    assert ok.expect is not None and ok.expect.verdict == "clean" and ok.expect.category is None


def test_registry_commands_are_what_the_checks_run() -> None:
    cmds = registry_commands()
    assert any(c.startswith("nvidia-smi") for c in cmds) and any(c.startswith("dmesg") for c in cmds)
    assert not any(c.startswith(("sudo", "timeout")) for c in cmds)
