"""The scenario format of formats/scenario.md: shipped files load, every mistake is named by
file, line and field, unknown extra fields are ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from diagnostics.types import ValidationError
from simulator.scenario import (
    FAULT_KINDS,
    REMEDIATIONS,
    ScenarioError,
    load_scenario,
    parse_scenario,
    parse_scenario_text,
)

SCENARIOS = sorted((Path(__file__).resolve().parents[2] / "scenarios").glob("*.yaml"))

GOOD = """\
id: t
cluster:
  nodes: 3
  gpus_per_node: 4
  gpu: A100-SXM4-80GB
faults:
  - kind: gpu_power_cap
    node: node-02
    gpu: 1
    power_limit_w: 250
"""


def test_shipped_scenarios_cover_every_fault_kind() -> None:
    loaded = [load_scenario(p) for p in SCENARIOS]
    ids = [s.id for s in loaded]
    assert len(ids) == len(set(ids)), "scenario ids must be unique"
    kinds = {f.kind for s in loaded for f in s.faults}
    assert kinds == set(FAULT_KINDS)
    assert all(s.expect is not None for s in loaded)
    assert any(not s.faults and s.expect and s.expect.fault is None and not s.expect.remediation for s in loaded)
    assert any(len(s.faults) >= 2 for s in loaded)
    for s in loaded:
        assert s.expect is not None
        if s.expect.fault is not None:
            assert s.expect.fault in {f.kind for f in s.faults}, s.id
            assert s.expect.remediation, s.id


def test_case_study_exactly_as_specified() -> None:
    s = load_scenario(Path(__file__).resolve().parents[2] / "scenarios" / "a800-throttle.yaml")
    assert (s.cluster.nodes, s.cluster.gpus_per_node, s.cluster.gpu) == (8, 8, "A800-SXM4-80GB")
    (fault,) = s.faults
    assert (fault.kind, fault.node, fault.gpu, fault.get("sm_clock_mhz"), fault.get("reason")) == (
        "gpu_clock_throttle", "node-05", 3, 200.0, "hw_thermal_slowdown")
    assert s.expect is not None and (s.expect.node, s.expect.gpu) == ("node-05", 3)
    assert set(s.expect.remediation) <= set(REMEDIATIONS)
    assert s.alert and "3x" in s.alert


def test_good_scenario_defaults_and_names() -> None:
    s = parse_scenario_text(GOOD, "good.yaml")
    assert s.hosts == ["node-01", "node-02", "node-03"]
    assert s.cluster.interconnect == "infiniband" and s.cluster.scheduler == "slurm" and s.seed == 0
    assert s.faults[0].get("power_limit_w") == 250.0 and s.expect is None
    big = parse_scenario({"id": "b", "cluster": {"nodes": 120, "gpu": "H100-SXM5-80GB"}}, "inline")
    assert big.hosts[0] == "node-001" and big.hosts[-1] == "node-120"


def test_names_instead_of_count_and_inline_dict_round_trip() -> None:
    data = {"id": "n", "cluster": {"names": ["a1", "a2"], "gpu": "A800-SXM4-80GB", "scheduler": "kubernetes"},
            "faults": [{"kind": "nccl_env_misconfig", "env": {"NCCL_IB_DISABLE": 1}}],
            "expect": {"node": None, "gpu": None, "fault": "nccl_env_misconfig", "remediation": ["drain_node"]},
            "future_field": {"anything": True}}
    s = parse_scenario(data, "case s-001")
    assert s.hosts == ["a1", "a2"] and s.faults[0].node is None
    assert s.faults[0].get("env") == {"NCCL_IB_DISABLE": "1"}
    again = parse_scenario(s.to_dict(), "round trip")
    assert again.hosts == s.hosts and again.faults == s.faults and again.expect == s.expect


def test_unknown_extra_fields_are_ignored() -> None:
    text = GOOD.replace("  gpu: A100-SXM4-80GB\n", "  gpu: A100-SXM4-80GB\n  rack_layout: fat-tree\n") + "owner: team-x\n"
    assert parse_scenario_text(text, "x.yaml").cluster.gpu == "A100-SXM4-80GB"


def test_gpu_alias_from_nvidia_smi_name_is_accepted() -> None:
    s = parse_scenario_text(GOOD.replace("gpu: A100-SXM4-80GB", "gpu: NVIDIA A800-SXM4-80GB"), "alias.yaml")
    assert s.cluster.gpu == "A800-SXM4-80GB"


BAD = [
    # (description, text change, expected line, field, words in message)
    ("unknown fault kind", ("kind: gpu_power_cap", "kind: gpu_powercap"), 7, "faults[0].kind", "unknown fault kind"),
    ("unknown GPU model", ("gpu: A100-SXM4-80GB", "gpu: Z100"), 5, "cluster.gpu", "unknown GPU model"),
    ("missing field", ("    power_limit_w: 250\n", ""), 7, "faults[0].power_limit_w", "missing required field"),
    ("wrong type", ("power_limit_w: 250", "power_limit_w: lots"), 10, "faults[0].power_limit_w", "expected a number"),
    ("node that does not exist", ("node: node-02", "node: node-09"), 8, "faults[0].node", "unknown node"),
    ("GPU index out of range", ("    gpu: 1\n", "    gpu: 4\n"), 9, "faults[0].gpu", "does not exist"),
    ("bad interconnect", ("  gpus_per_node: 4\n", "  gpus_per_node: 4\n  interconnect: carrier-pigeon\n"), 5,
     "cluster.interconnect", "expected one of"),
    ("boolean is not a count", ("nodes: 3", "nodes: yes"), 3, "cluster.nodes", "expected an integer"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_input_names_file_line_and_field(case: tuple[str, tuple[str, str], int, str, str]) -> None:
    _desc, (old, new), line, field, words = case
    assert old in GOOD
    with pytest.raises(ScenarioError) as err:
        parse_scenario_text(GOOD.replace(old, new), "bad.yaml")
    e = err.value
    assert isinstance(e, ValidationError)
    assert (e.source, e.line, e.field) == ("bad.yaml", line, field)
    assert f"bad.yaml:{line}" in str(e) and field in str(e) and words in str(e)


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("id: x\ncluster:\n  nodes: [1, 2\n  gpu: A800-SXM4-80GB\n")
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert str(path) in str(err.value) and "malformed YAML" in str(err.value) and err.value.line is not None


def test_missing_file_and_empty_and_wrong_top_level(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no such file"):
        load_scenario(tmp_path / "nope.yaml")
    with pytest.raises(ScenarioError, match="empty scenario"):
        parse_scenario_text("", "empty.yaml")
    with pytest.raises(ScenarioError, match="expected a mapping"):
        parse_scenario_text("- 1\n- 2\n", "list.yaml")
    with pytest.raises(ScenarioError, match="cluster"):
        parse_scenario_text("id: x\n", "nocluster.yaml")


def test_expect_is_validated() -> None:
    with pytest.raises(ScenarioError) as err:
        parse_scenario_text(GOOD + "expect:\n  node: node-02\n  fault: gpu_power_cap\n  remediation: [reboot_node]\n", "e.yaml")
    assert err.value.field == "expect.remediation[0]" and err.value.line == 14
    with pytest.raises(ScenarioError, match="unknown fault kind"):
        parse_scenario_text(GOOD + "expect:\n  fault: cosmic_rays\n", "e.yaml")


def test_inline_errors_name_the_source_without_a_line() -> None:
    with pytest.raises(ScenarioError) as err:
        parse_scenario({"id": "i", "cluster": {"nodes": 2, "gpu": "A800-SXM4-80GB"},
                        "faults": [{"kind": "ib_port_down", "node": "node-01", "hca": "mlx9_0"}]}, "cases.jsonl:3")
    assert err.value.line is None and err.value.field == "faults[0].hca" and "cases.jsonl:3" in str(err.value)


def test_names_and_count_must_agree() -> None:
    with pytest.raises(ScenarioError, match="names lists 2"):
        parse_scenario({"id": "i", "cluster": {"nodes": 3, "names": ["a", "b"], "gpu": "A800-SXM4-80GB"}}, "s")
    with pytest.raises(ScenarioError, match="given twice"):
        parse_scenario({"id": "i", "cluster": {"names": ["a", "a"], "gpu": "A800-SXM4-80GB"}}, "s")


def test_nvlink_fault_on_a_link_the_gpu_lacks_is_refused_with_the_field() -> None:
    data = {
        "id": "bad-link",
        "cluster": {"nodes": 2, "gpus_per_node": 8, "gpu": "A800-SXM4-80GB"},
        "faults": [{"kind": "nvlink_down", "node": "node-01", "gpu": 2, "link": 11}],
    }
    with pytest.raises(ScenarioError) as err:
        parse_scenario(data, "inline")
    assert "faults[0].link" in str(err.value) and "links 0-7" in str(err.value)
