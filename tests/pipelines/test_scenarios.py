"""Every shipped scenario, against the real simulator, with llm=none: node and fault right, a
correct remediation proposed, nothing proposed when nothing is wrong."""

from pathlib import Path

import pytest

from pipelines.api import DiagnosisRequest
from pipelines.config import AgentConfig
from pipelines.dot import DotGraph
from pipelines.execution import approve, execute_proposal
from pipelines.runtime import build_agent, scenario_target
from pipelines.safety import check_commands

SCENARIOS = sorted((Path(__file__).resolve().parents[2] / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_evidence_only_diagnosis_of_shipped_scenario(path: Path) -> None:
    target = scenario_target(str(path))
    expect = target.scenario.expect
    agent = build_agent(target, AgentConfig())
    d = agent.diagnose(DiagnosisRequest(target.scenario.alert or "", source="benchmark"))
    assert d.cause.fault == expect.fault, d.summary
    assert d.cause.node == expect.node
    if expect.gpu is not None:
        assert d.cause.gpu == expect.gpu
    tools = {s.tool for p in d.proposals for s in p.steps}
    if expect.fault is None:
        assert d.proposals == [] and not d.verified
    else:
        assert d.verified and tools & set(expect.remediation), tools
        assert d.degraded  # llm=none says the evidence-only path was taken
    assert DotGraph.from_json(d.graph).validate() == []
    for p in d.proposals:
        assert check_commands(p.commands(), declared_action=p.steps[0].tool, gpu_model=target.cluster.gpu_model) == []


def test_case_study_needs_at_most_three_invocations_and_fix_verifies() -> None:
    target = scenario_target(str(SCENARIOS[0].parent / "a800-throttle.yaml"))
    agent = build_agent(target, AgentConfig())
    d = agent.diagnose(DiagnosisRequest(target.scenario.alert))
    assert d.timings["invocations_to_cause"] <= 3
    # one more reads the job's step log to set the slowdown against the perf model
    assert d.timings["tool_invocations"] <= 4 and "the model expects" in d.summary
    prop = d.proposals[0]
    assert prop.steps[0].tool == "reset_gpu_clocks"
    result = execute_proposal(prop, approve(prop, "U_ONCALL"), target.toolkit)
    assert result.ok and result.verified, result.message
    again = build_agent(target, AgentConfig()).diagnose(DiagnosisRequest(target.scenario.alert))
    assert again.cause.fault is None and again.proposals == []


def test_unapproved_or_tampered_proposal_never_runs() -> None:
    target = scenario_target(str(SCENARIOS[0].parent / "a800-throttle.yaml"))
    d = build_agent(target, AgentConfig()).diagnose(DiagnosisRequest(target.scenario.alert))
    prop, other = d.proposals[0], d.proposals[1]
    res = execute_proposal(prop, approve(other, "U_ONCALL"), target.toolkit)
    assert not res.ok and res.step_results == []
    still = build_agent(target, AgentConfig()).diagnose(DiagnosisRequest(target.scenario.alert))
    assert still.cause.fault == "gpu_clock_throttle"
