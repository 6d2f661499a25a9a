"""node_jobs and job_checkpoint: the jobs on a node (Slurm squeue -w on the controller, Kubernetes
pods by spec.nodeName) and the last checkpoint in the job's log, on real-format output; bad node
names refused with nothing sent; the simulator answers the same commands.

Fixtures (``fixtures/jobs/``) are written by hand in the tools' documented formats, not captured
from a cluster: squeue lines in ``-h -o '%i|%u|%T|%M|%D|%b|%j'`` as squeue(1) and
``src/squeue/opts.c`` (SchedMD/slurm) define the letters (``%b`` is the vestigial gres letter, now
tres-per-node: ``gres/gpu:8`` since Slurm 22.05, ``gres:gpu:8`` in 21.08, ``gpu:v100:2`` before, as
TengdaHan/slurm_web PR #8 notes), array (``4415_3``) and heterogeneous (``4420+1``) ids, ``%M`` as
``[days-]hours:minutes:seconds`` and ``INVALID``, a job name holding the separator, a slurmctld
warning line; a ``kubectl get pods -o json`` List with a device-plugin DaemonSet pod, a Kubeflow
PyTorchJob worker and a finished Job pod; checkpoint lines in the forms DeepSpeed, HF Trainer,
Lightning, torchtitan and Megatron-LM print (diagnostics.parsers.jobs lists them).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from diagnostics.checks import CHECKS_BY_NAME
from diagnostics.parsers import jobs
from diagnostics.registry import ParseInput, default_registry, validate_params
from diagnostics.scheduling import SlurmPlacement
from diagnostics.toolkit import Toolkit
from diagnostics.types import CommandResult, Status, ValidationError
from simulator import SimCluster
from simulator.scenario import parse_scenario

FIX = Path(__file__).parent / "fixtures" / "jobs"


def fx(name: str) -> str:
    return (FIX / name).read_text()


def out(text: str, command: str = "squeue -w node-05 -h -o x", rc: int = 0, stderr: str = "") -> CommandResult:
    return CommandResult("slurm-ctl", command, rc, text, stderr)


def run_parse(tool: str, outputs: list[CommandResult], **params: Any) -> Any:
    spec = CHECKS_BY_NAME[tool]
    return spec.parse(ParseInput("slurm-ctl", validate_params(spec, params), outputs))


# --------------------------------------------------------------------------- squeue


def test_squeue_slurm23_lines() -> None:
    found = jobs.parse_squeue(fx("squeue_w_slurm23.txt"))
    got = [(j.id, j.user, j.state, j.elapsed_s, j.nodes, j.gpus_per_node, j.gpus) for j in found]
    assert got == [
        ("4412", "alice", "RUNNING", 3 * 3600 + 10 * 60 + 5, 8, 8, 64),
        ("4415_3", "bob", "RUNNING", 14 * 60 + 5, 1, 2, 2),
        ("4420+1", "carol", "COMPLETING", 93784, 2, 4, 8),
        ("4433", "erin", "RUNNING", 300, 1, None, None),  # N/A: GPUs asked per job (--gpus), not per node
    ]  # the PENDING job holds nothing on the node
    assert found[1].name == "sweep lr=3e-4?bs=512"  # %j is last: a '|' in the name stays in it (made safe)


def test_squeue_slurm21_formats_and_stray_lines() -> None:
    r = run_parse("node_jobs", [out(fx("squeue_w_slurm21.txt"))], node="node-05")
    assert r.status is Status.OK and r.data["scheduler"] == "slurm"
    got = [(j["id"], j["gpus_per_node"], j["gpus"], j["elapsed_s"], j["state"]) for j in r.data["jobs"]]
    assert got == [("981234", 8, 128, 183845, "RUNNING"), ("981240", 3, 3, 2710, "SUSPENDED"),
                   ("981241", 1, 1, None, "RUNNING")]
    assert r.data["ignored_lines"] == 1  # slurmctld's warning is skipped, counted, never quoted


@pytest.mark.parametrize(("tres", "gpus"), [
    ("gres/gpu:8", 8), ("gres:gpu:8", 8), ("gpu:8", 8), ("gres/gpu:h100:4(IDX:0-3)", 4), ("gres/gpu", 1),
    ("gres/gpu:2,gres/shard:1", 2), ("gres/gpumem:40G", 0), ("N/A", None), ("", None),
])
def test_gpus_per_node_from_tres(tres: str, gpus: int | None) -> None:
    assert jobs.gpus_in_tres(tres) == gpus


def test_empty_answer_is_no_jobs_and_a_failure_is_not() -> None:
    none = run_parse("node_jobs", [out("")], node="node-05")
    assert none.status is Status.OK and none.data["jobs"] == []
    bad = run_parse("node_jobs", [out("", rc=1, stderr="squeue: error: Invalid node name specified: node-99\n")],
                    node="node-99")
    assert bad.status is Status.ERROR and "Invalid node name" in bad.error
    absent = run_parse("node_jobs", [out("", rc=127, stderr="bash: squeue: command not found\n")], node="node-05")
    assert absent.status is Status.NO_DATA
    noscheduler = run_parse("node_jobs", [out("scheduler: none\n", command="echo 'scheduler: none'")], node="n")
    assert noscheduler.status is Status.NO_DATA
    garbled = run_parse("node_jobs", [out("4412|alice|running now|1:00|1|gpu:1|x\n")], node="node-05")
    assert garbled.status is Status.ERROR


# --------------------------------------------------------------------------- Kubernetes pods


def test_kubectl_pods_skip_daemonsets_and_finished_pods() -> None:
    cmd = "kubectl get pods -A --field-selector spec.nodeName=gpu-node-05 -o json"
    r = run_parse("node_jobs", [out(fx("kubectl_pods_node.json"), command=cmd),
                                out("2026-11-28T09:40:00Z\n", command="date -u +%Y-%m-%dT%H:%M:%SZ")],
                  node="gpu-node-05")
    assert r.status is Status.OK and r.data["scheduler"] == "kubernetes"
    (pod,) = r.data["jobs"]
    assert (pod["id"], pod["user"], pod["gpus"], pod["elapsed_s"], pod["name"], pod["kind"]) == (
        "team-llm/llama-7b-pretrain-worker-4", "team-llm", 8, 3 * 3600 + 10 * 60, "PyTorchJob/llama-7b-pretrain", "pod")
    with pytest.raises(jobs.ParseError):
        jobs.parse_pods("error: the server doesn't have a resource type \"pods\"")


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_lines_of_common_trainers() -> None:
    text = fx("train_log_checkpoints.txt")
    found = jobs.checkpoint_lines(text)
    assert [c.step for c in found] == [1000, 1500, 1800, None, 2000, 2100, 2100]  # load and failure are not saves
    last = jobs.last_checkpoint(text)
    assert last is not None and last.step == 2100 and last.at == datetime(2026, 11, 28, 9, 26)  # Megatron's pair
    unstamped = jobs.last_checkpoint("  successfully saved checkpoint at iteration     500 to /ckpt\n")
    assert unstamped is not None and (unstamped.step, unstamped.at) == (500, None)
    assert jobs.last_checkpoint("step=5 rank=0 step_time_s=1.0\nloading checkpoint from /ckpt\n") is None


def test_job_checkpoint_age_by_the_node_clock() -> None:
    grep = "grep -a -i -E 'checkpoint|saving model to' /var/log/clusterdoc/train.log | tail -n 50"
    r = run_parse("job_checkpoint", [out("2026-11-28T09:40:00+0000\n", command="date"),
                                     out(fx("train_log_checkpoints.txt"), command=grep)])
    assert r.status is Status.OK and r.data["age_s"] == 14 * 60 and r.data["checkpoint"]["step"] == 2100
    none = run_parse("job_checkpoint", [out("2026-11-28T09:40:00+0000\n", command="date"), out("", command=grep)])
    assert none.status is Status.OK and none.data["checkpoint"] is None
    missing = run_parse("job_checkpoint", [out("2026-11-28T09:40:00+0000\n", command="date"),
                                           out("", command=grep, stderr="grep: /x.log: No such file or directory\n")])
    assert missing.status is Status.NO_DATA
    assert jobs.age_s(datetime(2026, 11, 28, 10, 0), datetime(2026, 11, 28, 9, 0, tzinfo=UTC)) is None  # future


# --------------------------------------------------------------------------- names, placement, simulator


class Recording:
    def __init__(self, sim: SimCluster) -> None:
        self.inner = sim.executor()
        self.sent: list[tuple[str, str]] = []

    def run(self, host: str, command: str, timeout_s: float = 30.0) -> CommandResult:
        self.sent.append((host, command))
        return self.inner.run(host, command, timeout_s)

    def close(self) -> None:
        return None


def sim_toolkit(scheduler: str = "slurm", controller: str | None = None,
                names: dict[str, str] | None = None) -> tuple[SimCluster, Toolkit, Recording]:
    scenario = parse_scenario({"id": "t", "seed": 1, "faults": [], "cluster": {
        "nodes": 2, "gpus_per_node": 4, "gpu": "A800-SXM4-80GB", "scheduler": scheduler,
        "workload": {"kind": "llm_training"}}}, "test")
    sim = SimCluster(scenario, slurm_controller=controller)
    rec = Recording(sim)
    slurm = SlurmPlacement(controller, names or {})
    return sim, Toolkit(default_registry(), rec, scheduler=scheduler, slurm=slurm), rec


@pytest.mark.parametrize("name", ["node-01;reboot", "$(reboot)", "-w", "node 01", "a" * 80, ""])
def test_bad_node_names_are_refused_and_nothing_is_sent(name: str) -> None:
    _sim, tk, rec = sim_toolkit(controller="slurm-ctl")
    r = tk.run("node_jobs", "slurm-ctl", {"node": name})
    assert r.status is Status.ERROR and rec.sent == []
    with pytest.raises(ValidationError):
        default_registry().render("node_jobs", {"node": name}, scheduler="kubernetes")
    _sim, tk, rec = sim_toolkit(controller="slurm-ctl", names={"node-01": name})
    with pytest.raises(ValidationError):
        tk.place("node_jobs", "node-01")
    assert rec.sent == []


def test_node_jobs_runs_on_the_controller_for_the_slurm_name_and_the_simulator_answers() -> None:
    _sim, tk, rec = sim_toolkit(controller="slurm-ctl")
    placed = tk.place("node_jobs", "node-02")
    assert placed.run_on == "slurm-ctl"
    assert placed.commands == ["squeue -w node-02 -h -o '%i|%u|%T|%M|%D|%b|%j'"]
    r = tk.run("node_jobs", placed.run_on, placed.params)
    assert r.status is Status.OK, r.error
    (job,) = r.data["jobs"]
    assert (job["id"], job["user"], job["gpus"], job["nodes"], job["elapsed_s"]) == ("4412", "alice", 8, 2, 11400)
    assert rec.sent == [("slurm-ctl", placed.commands[0])]
    ck = tk.run("job_checkpoint", "node-02")
    assert ck.status is Status.OK and ck.data["age_s"] == 14 * 60 and ck.data["checkpoint"]["step"] is not None
    unknown = tk.run("node_jobs", "slurm-ctl", {"node": "node-99"})
    assert unknown.status is Status.ERROR and "Invalid node name" in unknown.error


def test_simulator_squeue_on_a_node_and_kubectl_pods() -> None:
    sim, _tk, _rec = sim_toolkit()
    r = sim.handle("node-01", "squeue -w node-01 -h -o '%i|%u|%T|%M|%D|%b|%j'")
    assert r.exit_code == 0 and r.stdout == "4412|alice|RUNNING|3:10:00|2|gres/gpu:4|llama-7b-pretrain\n"
    sim.node("node-02").job_running = False
    assert sim.handle("node-01", "squeue -w node-02 -h -o '%i'").stdout == ""
    assert sim.handle("node-01", "squeue").stdout.splitlines()[0].split()[0] == "JOBID"
    ksim, ktk, _ = sim_toolkit("kubernetes")
    r2 = ktk.run("node_jobs", "node-02", {"node": "node-02"})
    assert r2.status is Status.OK, r2.error
    (pod,) = r2.data["jobs"]
    assert (pod["id"], pod["gpus"], pod["elapsed_s"], pod["kind"]) == ("alice/llama-7b-pretrain-worker-1", 4, 11400, "pod")
    assert ksim.handle("node-01", "squeue").exit_code == 127  # no Slurm on a Kubernetes cluster
