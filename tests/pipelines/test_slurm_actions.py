"""Slurm drain/resume run on the inventory's controller for the node's Slurm name (no
``$(hostname -s)``), the reason shell-quoted; without a controller they run on the node itself
and the proposal says so; a bad Slurm name runs nothing; the gentle drain is proposed first and
``state=down`` (kills jobs) is offered as the last alternative; the simulator answers it all."""

from __future__ import annotations

from typing import Any

import pytest

from bot.render import proposal_text
from diagnostics.registry import default_registry
from diagnostics.scheduling import SlurmNameError, SlurmPlacement
from diagnostics.toolkit import Toolkit
from diagnostics.types import CommandResult, ValidationError
from pipelines.api import Cause, Proposal
from pipelines.execution import approve, execute_proposal
from pipelines.proposals import build_proposals
from simulator import SimCluster
from simulator.scenario import parse_scenario


class Recording:
    """The simulator's executor, remembering (host, command) of everything sent."""

    def __init__(self, sim: SimCluster) -> None:
        self.inner = sim.executor()
        self.sent: list[tuple[str, str]] = []

    def run(self, host: str, command: str, timeout_s: float = 30.0) -> CommandResult:
        self.sent.append((host, command))
        return self.inner.run(host, command, timeout_s)

    def close(self) -> None:
        return None


def cluster(controller: str | None, names: dict[str, str] | None = None) -> tuple[SimCluster, Toolkit, Recording]:
    scenario = parse_scenario({"id": "t", "seed": 1, "faults": [], "cluster": {
        "nodes": 2, "gpus_per_node": 4, "gpu": "A800-SXM4-80GB", "workload": {"kind": "llm_training"}}}, "test")
    sim = SimCluster(scenario, slurm_controller=controller)
    rec = Recording(sim)
    return sim, Toolkit(default_registry(), rec, scheduler="slurm", slurm=SlurmPlacement(controller, names or {})), rec


CAUSE = Cause("gpu_xid", "node-02", 3, "compute", "gpu", "")


def drains(tk: Toolkit) -> list[Proposal]:
    return [p for p in build_proposals(CAUSE, tk) if p.steps[0].tool == "drain_node"]


def test_drain_runs_on_the_controller_with_the_slurm_name_and_a_quoted_reason() -> None:
    _sim, tk, rec = cluster("slurm-ctl", {"node-02": "gpu-002"})
    placed = tk.place("drain_node", "node-02", {"reason": "GPU 3 Xid 79 (fell off the bus)"})
    assert placed.run_on == "slurm-ctl"
    assert placed.commands == ["scontrol update nodename=gpu-002 state=drain reason='GPU 3 Xid 79 (fell off the bus)'"]
    assert "Slurm controller slurm-ctl" in placed.note and "jobs running on the node finish" in placed.note
    assert rec.sent == []  # placing runs nothing
    assert tk.place("resume_node", "node-02").commands == ["scontrol update nodename=gpu-002 state=resume"]


def test_without_a_controller_it_runs_on_the_node_by_name_and_says_so() -> None:
    _sim, tk, _rec = cluster(None)
    placed = tk.place("drain_node", "node-01", {"reason": "x"})
    assert placed.run_on == "node-01" and "$(" not in placed.commands[0]
    assert placed.commands == ["scontrol update nodename=node-01 state=drain reason=x"]
    assert placed.note.startswith("no Slurm controller in the inventory (scheduler.controller): runs on node-01 itself")


@pytest.mark.parametrize(("names", "params", "match"), [
    ({"node-02": "gpu 002"}, {}, "not a valid Slurm node name"),
    ({"node-02": "gpu$(reboot)"}, {}, "not a valid Slurm node name"),
    ({}, {"node": "node-01"}, "is not the Slurm name of node-02"),  # a param cannot retarget the action
    ({}, {"node": "x;reboot"}, "not a valid Slurm node name"),
    ({}, {"reason": "$(reboot)"}, "does not match the allowed pattern"),
    ({}, {"state": "resume"}, "must be one of drain, down"),
])
def test_bad_names_and_params_are_refused_and_nothing_runs(names: dict[str, str], params: dict[str, Any], match: str) -> None:
    sim, tk, rec = cluster("slurm-ctl", names)
    with pytest.raises(ValidationError, match=match):
        tk.place("drain_node", "node-02", params)
    notes: list[str] = []
    if names:  # the agent's proposals skip it with a note, and nothing is sent anywhere
        assert drains_or_notes(tk, notes) == [] and any("Slurm node name" in n for n in notes)
    assert rec.sent == [] and sim.node("node-02").sched_state == "allocated"


def drains_or_notes(tk: Toolkit, notes: list[str]) -> list[Proposal]:
    return [p for p in build_proposals(CAUSE, tk, notes=notes) if p.steps[0].tool == "drain_node"]


def test_slurm_name_error_is_a_validation_error() -> None:
    with pytest.raises(SlurmNameError):
        SlurmPlacement(None, {"a": "-a"}).slurm_name("a")


def test_gentle_drain_first_then_down_and_the_approved_one_runs_on_the_controller() -> None:
    sim, tk, rec = cluster("slurm-ctl")
    gentle, harsh = drains(tk)
    assert gentle.steps[0].params["state"] == "drain" and harsh.steps[0].params["state"] == "down"
    assert harsh.risk == "high" and "kills running jobs" in harsh.title and harsh.title.startswith("alternative:")
    step = gentle.steps[0]
    assert (step.host, step.run_on) == ("node-02", "slurm-ctl")
    text = proposal_text(gentle, 3600)
    assert f"on `slurm-ctl`: `{step.commands[0]}`" in text and "Slurm controller slurm-ctl" in text
    # the approval covers where each step's lines run (drain: the controller; reset_gpu: the node),
    # and the hash covers run_on
    assert [s.tool for s in gentle.steps] == ["drain_node", "reset_gpu"]
    assert approve(gentle, "U1").hosts == ("node-02", "slurm-ctl")
    moved = Proposal(gentle.id, gentle.title, gentle.risk, (type(step)(step.tool, step.host, step.params, step.commands,
                     run_on="other-ctl"),), gentle.cause)
    assert moved.hash != gentle.hash
    result = execute_proposal(gentle, approve(gentle, "U1"), tk)
    assert result.ok and result.verified, result.message
    mutating = [(h, c) for h, c in rec.sent if c.startswith("scontrol update")]
    assert mutating == [("slurm-ctl", step.commands[0])]  # on the controller, never on node-02
    assert sim.node("node-02").sched_state == "drained" and sim.node("node-01").sched_state == "allocated"


def test_down_kills_the_job_in_the_simulator() -> None:
    sim, tk, _rec = cluster("slurm-ctl")
    harsh = drains(tk)[1]
    result = execute_proposal(harsh, approve(harsh, "U1"), tk)
    assert result.ok, result.message
    node = sim.node("node-02")
    assert node.sched_state == "down" and not node.job_running


def test_a_controller_changed_after_approval_runs_nothing() -> None:
    _sim, tk, rec = cluster("slurm-ctl")
    gentle = drains(tk)[0]
    tk.slurm = SlurmPlacement("new-ctl")
    result = execute_proposal(gentle, approve(gentle, "U1"), tk)
    assert not result.ok and "would now run on new-ctl" in result.message
    tk.slurm = SlurmPlacement("slurm-ctl", {"node-02": "renamed-02"})
    result = execute_proposal(gentle, approve(gentle, "U1"), tk)
    assert not result.ok and "'renamed-02' in the inventory" in result.message
    assert rec.sent == []


def test_a_stored_proposal_keeps_where_it_runs() -> None:
    _sim, tk, _rec = cluster("slurm-ctl")
    gentle = drains(tk)[0]
    back = Proposal.from_dict(gentle.to_dict())
    assert back.hash == gentle.hash and back.steps[0].run_on == "slurm-ctl" and back.steps[0].note == gentle.steps[0].note


def test_simulated_controller_answers_only_slurm_client_commands() -> None:
    sim, _tk, _rec = cluster("slurm-ctl")
    assert "NodeName=node-01" in sim.handle("slurm-ctl", "scontrol show node node-01").stdout
    assert sim.handle("slurm-ctl", "sinfo -h -N -n node-02 -o '%N %T'").stdout.split() == ["node-02", "allocated"]
    assert sim.handle("slurm-ctl", "nvidia-smi").exit_code == 127
    assert sim.handle("slurm-ctl", "scontrol update nodename=node-01 state=drain reason=x; reboot").exit_code == 2
    assert sim.handle("slurm-ctl", "scontrol update nodename=nope state=drain reason=x").exit_code == 1
    assert sim.handle("other-host", "hostname").transport == "unreachable"
