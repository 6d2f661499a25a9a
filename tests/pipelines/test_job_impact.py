"""Job-aware impact: a proposal that drains, downs or resets a node says what it costs the jobs on
it (node_jobs + job_checkpoint), "no jobs running on …" only when the scheduler listed none,
"unknown: could not list the jobs (…)" when it could not; the gentle drain ("drain after the job
ends") comes before what stops the job; the impact is shown, kept through to_dict/from_dict, and
not part of the approval hash."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bot.render import proposal_text
from diagnostics.registry import default_registry
from diagnostics.scheduling import SlurmPlacement
from diagnostics.toolkit import Toolkit
from diagnostics.types import CommandResult
from pipelines.api import Cause, DiagnosisRequest, Proposal
from pipelines.config import AgentConfig
from pipelines.execution import approve
from pipelines.impact import NodeJobs, add_impact, list_node_jobs
from pipelines.proposals import build_proposals
from pipelines.runtime import build_agent, scenario_target
from simulator import SimCluster
from simulator.scenario import parse_scenario

CASE_STUDY = Path(__file__).resolve().parents[2] / "scenarios" / "a800-throttle.yaml"


class Failing:
    """The simulator's executor, except that squeue (or kubectl) times out."""

    def __init__(self, inner: object, prefix: str = "squeue") -> None:
        self.inner = inner
        self.prefix = prefix
        self.sent: list[tuple[str, str]] = []

    def run(self, host: str, command: str, timeout_s: float = 30.0) -> CommandResult:
        self.sent.append((host, command))
        if command.startswith(self.prefix):
            return CommandResult(host, command, None, "", "", timeout_s, "timeout", f"no answer within {timeout_s:g}s")
        return self.inner.run(host, command, timeout_s)  # type: ignore[attr-defined]

    def close(self) -> None:
        return None


def test_case_study_drain_proposals_show_the_job_they_would_cost() -> None:
    target = scenario_target(str(CASE_STUDY))
    d = build_agent(target, AgentConfig()).diagnose(DiagnosisRequest(target.scenario.alert))
    assert d.proposals[0].steps[0].tool == "reset_gpu_clocks" and d.proposals[0].impact is None  # no capacity taken
    drains = [p for p in d.proposals if any(s.tool == "drain_node" for s in p.steps)]
    gentle, harsh = drains
    assert d.proposals.index(gentle) < d.proposals.index(harsh)  # drain after the job ends comes first
    assert gentle.steps[0].params["state"] == "drain" and harsh.steps[0].params["state"] == "down"
    for p in drains:
        assert p.impact is not None and p.impact.status == "jobs"
        (job,) = p.impact.jobs
        assert (job["id"], job["user"], job["gpus"], job["checkpoint_age_s"]) == ("4412", "alice", 64, 14 * 60)
    assert gentle.impact is not None and gentle.impact.gentle
    assert gentle.impact.text.startswith("drain after the job ends: job 4412 of alice, 64 GPUs, running 3 h 10 min, "
                                         "last checkpoint 14 min ago")
    assert harsh.impact is not None and not harsh.impact.gentle
    assert harsh.impact.text.startswith("stops job 4412 of alice, 64 GPUs, running 3 h 10 min, last checkpoint 14 min ago")
    assert f"Jobs: {harsh.impact.text}" in proposal_text(harsh, 900)
    # the impact calls are read-only, counted apart from the diagnosis' own invocations
    assert d.timings["impact_invocations"] == 2 and d.timings["tool_invocations"] <= 4
    ran = [c["tool"] for c in d.tool_calls]
    assert ran.count("node_jobs") == 1 and ran.count("job_checkpoint") == 1  # once per node, not per proposal
    # shown, stored, not hashed: the approval binds to the commands only
    assert replace(harsh, impact=None).hash == harsh.hash and approve(harsh, "U1").proposal_hash == harsh.hash
    back = Proposal.from_dict(harsh.to_dict())
    assert back.impact == harsh.impact and back.hash == harsh.hash
    assert Proposal.from_dict({**harsh.to_dict(), "impact": None}).impact is None  # stored before this field


def test_when_node_jobs_fails_the_impact_is_unknown_never_no_jobs() -> None:
    target = scenario_target(str(CASE_STUDY))
    target.toolkit.executor = Failing(target.toolkit.executor)
    d = build_agent(target, AgentConfig()).diagnose(DiagnosisRequest(target.scenario.alert))
    drains = [p for p in d.proposals if any(s.tool == "drain_node" for s in p.steps)]
    assert drains
    for p in drains:
        assert p.impact is not None and p.impact.status == "unknown" and p.impact.jobs == ()
        assert p.impact.text.startswith("unknown: could not list the jobs (node_jobs timeout: no answer within")
        assert "no jobs" not in p.impact.text
    # a spent tool budget says so, too
    target2 = scenario_target(str(CASE_STUDY))
    d2 = build_agent(target2, AgentConfig(max_tool_calls=3)).diagnose(DiagnosisRequest(target2.scenario.alert))
    impacts = [p.impact for p in d2.proposals if p.impact is not None]
    assert impacts and all(i.text == "unknown: could not list the jobs (tool budget of 3 calls spent)" for i in impacts)


def cluster(scheduler: str = "slurm", controller: str | None = None) -> tuple[SimCluster, Toolkit]:
    scenario = parse_scenario({"id": "t", "seed": 1, "faults": [], "cluster": {
        "nodes": 2, "gpus_per_node": 4, "gpu": "A800-SXM4-80GB", "scheduler": scheduler,
        "workload": {"kind": "llm_training"}}}, "test")
    sim = SimCluster(scenario, slurm_controller=controller)
    return sim, Toolkit(default_registry(), sim.executor(), scheduler=scheduler,
                        slurm=SlurmPlacement(controller, {}))


XID = Cause("gpu_xid", "node-02", 3, "compute", "gpu", "")


def test_drain_and_reset_gets_a_gentle_drain_first_and_idle_nodes_say_no_jobs() -> None:
    _sim, tk = cluster(controller="slurm-ctl")
    props = add_impact(build_proposals(XID, tk), tk, lambda n: list_node_jobs(tk, n))
    first, second, third = props
    assert [s.tool for s in first.steps] == ["drain_node"] and first.steps[0].params["state"] == "drain"
    assert first.steps[0].run_on == "slurm-ctl" and first.title.startswith("drain after the job ends")
    assert first.impact is not None and first.impact.text.startswith("drain after the job ends: job 4412 of alice")
    assert [s.tool for s in second.steps] == ["drain_node", "reset_gpu"] and second.title.startswith("alternative:")
    assert second.impact is not None and "(reset_gpu needs the GPU free of processes)" in second.impact.text
    assert second.impact.text.startswith("stops job 4412 of alice, 8 GPUs, running 3 h 10 min")
    assert third.risk == "high" and third.impact is not None and not third.impact.gentle
    # no job on the node: nothing added, and the impact says so
    sim2, tk2 = cluster(controller="slurm-ctl")
    sim2.node("node-02").job_running = False
    idle = add_impact(build_proposals(XID, tk2), tk2, lambda n: list_node_jobs(tk2, n))
    assert [p.impact.text for p in idle if p.impact] == ["no jobs running on node-02"] * 2


def test_a_lookup_that_could_not_list_is_unknown_and_adds_nothing() -> None:
    _sim, tk = cluster()
    props = build_proposals(XID, tk)
    out = add_impact(props, tk, lambda n: NodeJobs(n, False, reason="squeue: error: slurm_load_jobs error"))
    assert [p.id for p in out] == [p.id for p in props]
    assert all(p.impact is not None and p.impact.text == "unknown: could not list the jobs "
               "(squeue: error: slurm_load_jobs error)" for p in out)


def test_kubernetes_drain_says_which_pod_it_evicts() -> None:
    _sim, tk = cluster("kubernetes")
    props = add_impact(build_proposals(XID, tk), tk, lambda n: list_node_jobs(tk, n))
    assert props and all(p.impact is not None for p in props)
    assert props[0].impact is not None and props[0].impact.text.startswith(
        "stops pod alice/llama-7b-pretrain-worker-1, 4 GPUs on node-02, running 3 h 10 min, last checkpoint 14 min ago")
