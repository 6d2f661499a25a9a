"""Targets that exist, the circuit breaker across incidents (two approvers above it) and dry run."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bot.config import BotConfig
from bot.core import Bot
from bot.events import Command, Mention, Reaction
from bot.store import Store
from pipelines.api import Cause, Diagnosis, DiagnosisRequest, ExecutionResult, Proposal, ProposalStep
from tests.bot.fakes import FakeAgent, FakeRemediator, RecordingOutbox

NODES = [f"node-{i:02d}" for i in range(1, 17)]


class Clock:
    def __init__(self) -> None:
        self.t = 2_000_000.0

    def __call__(self) -> float:
        return self.t


def drain_proposal(node: str, pid: str = "p1") -> Proposal:
    return Proposal(id=pid, title=f"drain {node}", risk="medium",
                    steps=(ProposalStep("drain_node", node, {"reason": "clusterdoc"},
                                        ('scontrol update nodename="$(hostname -s)" state=drain reason=clusterdoc',)),),
                    cause=Cause("gpu_fallen_off_bus", node, 2, category="gpu-hardware"))


class DrainAgent(FakeAgent):
    """Finds GPU 2 of the node asked about fallen off the bus (Xid 79) and proposes draining it."""

    def diagnosis_for(self, request: DiagnosisRequest) -> Diagnosis:
        node = request.target or "node-01"
        proposal = drain_proposal(node)
        return Diagnosis(summary=f"GPU 2 on {node} fell off the bus", cause=proposal.cause,
                         evidence=[{"host": node, "kind": "gpu_fallen_off_bus", "message": "Xid 79"}],
                         confidence=0.9, graph={}, proposals=[proposal], verified=True, verdict="verified",
                         hypotheses=[{"source": "signature", "id": "xid-79", "title": "GPU has fallen off the bus",
                                      "fault_kind": "gpu_fallen_off_bus"}])


class DrainRemediator(FakeRemediator):
    def execute(self, proposal: Proposal, approver: str, approved_at: float) -> ExecutionResult:
        with self._lock:
            self.calls.append((proposal.id, approver))
        steps = [{"tool": s.tool, "host": s.host, "status": "ok"} for s in proposal.steps]
        return ExecutionResult(proposal.id, True, steps, {"tool": "node_state", "status": "ok"}, True)


def make_bot(tmp_path: Path, *, nodes: list[str] | None = None, inventory: list[str] | None = None,
             out: RecordingOutbox | None = None, rem: FakeRemediator | None = None, clock: Clock | None = None,
             agent: FakeAgent | None = None, jobs: object = None, **breaker: object) -> Bot:
    cfg = BotConfig()
    cfg.approvals.approvers = ["U_A", "U_B", "U_C"]
    cfg.approvals.expiry_s = 10_000
    cfg.rate_limit.per_user = 10_000
    for k, v in breaker.items():
        if k == "dry_run":
            cfg.dry_run = bool(v)
        else:
            setattr(cfg.breaker, k, v)
    live = inventory
    return Bot(cfg, Store(tmp_path / "state.sqlite"), agent or DrainAgent(), rem or DrainRemediator(),
               known_nodes=nodes if nodes is not None else NODES, outbox=out or RecordingOutbox(),
               clock=clock or Clock(), send_backoff_s=0.01, jobs=jobs,  # type: ignore[arg-type]
               inventory=(lambda: list(live)) if live is not None else None)


def diagnose(bot: Bot, node: str, user: str = "U_REQ") -> str:
    acks = bot.dispatch(Command("slack", "C1", user, "diagnose", node))
    assert acks and acks[0].kind == "ack", acks
    assert bot.wait_idle(10)
    out = bot.outbox
    assert isinstance(out, RecordingOutbox)
    return out.message_id_of(f"proposal:{acks[0].incident_id}.p1")


def react(bot: Bot, user: str, msg: str) -> str:
    replies = bot.dispatch(Reaction("slack", "C1", user, "white_check_mark", msg))
    bot.wait_idle(10)
    return "\n".join(r.text for r in replies)


# -- targets -----------------------------------------------------------------------------------
def test_unknown_ambiguous_and_malformed_targets_start_nothing(tmp_path: Path) -> None:
    agent = DrainAgent()
    bot = make_bot(tmp_path, agent=agent, nodes=["dgx-a001", "dgx-a002", "gpu-b10", "gpu-b11", "gpu-b12"])
    cases = {
        "node-99": "unknown node `node-99`",  # not close to any name: still a node, not a whole-cluster job
        "dgx-a003": "unknown node `dgx-a003`; closest known: `dgx-a002`, `dgx-a001`",
        "gpu-b1": "ambiguous node `gpu-b1`: it matches `gpu-b10`, `gpu-b11`, `gpu-b12`",
        "dgx-a00": "ambiguous node `dgx-a00`",
        "gpu-b10;reboot": "is not a node name or job id",
        "node-05$(reboot)": "is not a node name or job id",
        "`node-05|sh`": "is not a node name or job id",
    }
    for text, expected in cases.items():
        replies = bot.dispatch(Command("slack", "C1", "U1", "diagnose", text))
        assert len(replies) == 1 and replies[0].kind == "error", (text, replies)
        assert expected in replies[0].text, (text, replies[0].text)
    mention = bot.dispatch(Mention("slack", "C1", "U1", "why is dgx-a099 so slow?", message_id="1.1"))
    assert mention[0].kind == "error" and "unknown node `dgx-a099`" in mention[0].text
    bot.wait_idle(5)
    assert bot.store.incidents() == [] and agent.requests == []
    # a mention about a known node, or about nothing node-shaped, still opens an incident
    assert bot.dispatch(Mention("slack", "C1", "U1", "is gpu-b11 ok?", message_id="1.2"))[0].kind == "ack"
    assert bot.dispatch(Mention("slack", "C1", "U1", "everything is slow", message_id="1.3"))[0].kind == "ack"
    bot.wait_idle(10)
    assert [r.target for r in agent.requests] == ["gpu-b11", None]


class Jobs:
    def __init__(self, known: set[str], broken: bool = False) -> None:
        self.known, self.broken = known, broken

    def job_exists(self, job_id: str) -> bool:
        if self.broken:
            raise ConnectionError("slurmctld down")
        return job_id in self.known


def test_job_the_scheduler_does_not_know_is_refused(tmp_path: Path) -> None:
    agent = DrainAgent()
    bot = make_bot(tmp_path, agent=agent, jobs=Jobs({"4412"}))
    refused = bot.dispatch(Command("slack", "C1", "U1", "diagnose", "job 9999 slow"))
    assert refused[0].kind == "error" and "unknown job `9999`" in refused[0].text
    assert bot.store.incidents() == []
    assert bot.dispatch(Command("slack", "C1", "U1", "diagnose", "job 4412 slow"))[0].kind == "ack"
    bot.jobs = Jobs(set(), broken=True)  # the scheduler cannot be asked: a read-only diagnosis still runs
    assert bot.dispatch(Command("slack", "C1", "U1", "diagnose", "job 77"))[0].kind == "ack"
    bot.wait_idle(10)
    assert sorted(r.target or "" for r in agent.requests) == ["4412", "77"]  # two workers: either may start first


def test_node_that_left_the_inventory_is_not_run(tmp_path: Path) -> None:
    live = list(NODES)
    rem, out = DrainRemediator(), RecordingOutbox()
    bot = make_bot(tmp_path, inventory=live, rem=rem, out=out)
    msg = diagnose(bot, "node-05")
    live.remove("node-05")  # decommissioned between proposal and approval
    text = react(bot, "U_A", msg)
    assert "`node-05` is no longer in the inventory" in text and "not run" in text
    assert rem.calls == [] and bot.store.proposals()[0].state == "pending"
    assert bot.store.audit_log("approval_refused")[-1]["subject"] == bot.store.proposals()[0].id
    # a command for it now gets the closest names, and nothing starts
    replies = bot.dispatch(Command("slack", "C1", "U1", "diagnose", "node-05"))
    assert replies[0].kind == "error" and "unknown node `node-05`" in replies[0].text
    live.append("node-05")  # back in the inventory: the same approval is accepted
    assert "executing" in react(bot, "U_A", msg) and len(rem.calls) == 1


def test_proposal_host_with_shell_metacharacters_is_refused(tmp_path: Path) -> None:
    rem = DrainRemediator()
    bot = make_bot(tmp_path, nodes=[], rem=rem)  # no inventory to compare with: the name check still applies
    bad = drain_proposal("node-05;reboot", "x1")
    incident = bot.store.create_incident(platform="slack", channel="C1", thread=None, requester="U_REQ",
                                         source="command", target="node-05", text="t")
    bot.store.add_proposal(proposal_id="x1", incident_id=incident, hash=bad.hash, risk="medium", title="t",
                           body=bad.to_dict(), platform="slack", channel="C1", thread=None, requester="U_REQ",
                           expires_at=bot.clock() + 100)
    bot.store.bind_proposal_message("x1", "mX")
    text = react(bot, "U_A", "mX")
    assert "not a plain node name" in text and rem.calls == []


# -- circuit breaker ---------------------------------------------------------------------------
def test_breaker_needs_two_distinct_approvers_above_the_limit(tmp_path: Path) -> None:
    rem, out, clock = DrainRemediator(), RecordingOutbox(), Clock()
    bot = make_bot(tmp_path, rem=rem, out=out, clock=clock, max_nodes=2, max_fraction=0.5)
    for node in ("node-01", "node-02"):
        assert "executing" in react(bot, "U_A", diagnose(bot, node))
    assert len(rem.calls) == 2
    msg = diagnose(bot, "node-03")
    posted = out.of_kind("proposal")[-1].text
    assert "Needs two approvers" in posted and "would be the 3rd node drained in the last hour; limit 2" in posted
    first = react(bot, "U_A", msg)
    assert "needs two approvers" in first and "1 of 2" in first and len(rem.calls) == 2  # one approver: not run
    again = react(bot, "U_A", msg)
    assert "needs a second, different approver" in again and len(rem.calls) == 2  # same approver twice: not run
    second = react(bot, "U_B", msg)
    assert "Approved by U_A and U_B" in second and len(rem.calls) == 3  # a second distinct approver: run
    assert react(bot, "U_C", msg) == "" and len(rem.calls) == 3  # and only once
    approved = bot.store.audit_log("proposal_approved")[-1]
    assert '"first_approver": "U_A"' in approved["detail"] and approved["actor"] == "U_B"
    # the window slides: an hour later one approver is enough again
    clock.t += 3601
    assert "executing" in react(bot, "U_A", diagnose(bot, "node-04")) and len(rem.calls) == 4


def test_breaker_counts_survive_a_restart_and_use_the_smaller_limit(tmp_path: Path) -> None:
    clock, rem, out = Clock(), DrainRemediator(), RecordingOutbox()
    bot = make_bot(tmp_path, rem=rem, clock=clock, out=out)  # defaults: 2 nodes or 5% of 16 -> 0, never below 1
    assert "circuit breaker: 0 of 1 nodes" in bot.dispatch(Command("slack", "C1", "U1", "status", ""))[0].text
    assert "executing" in react(bot, "U_A", diagnose(bot, "node-01"))
    bot.close()
    bot2 = make_bot(tmp_path, rem=rem, clock=clock, out=out)  # a restart on the same state file
    assert "circuit breaker: 1 of 1 nodes" in bot2.dispatch(Command("slack", "C1", "U1", "status", ""))[0].text
    text = react(bot2, "U_A", diagnose(bot2, "node-02"))
    assert "would be the 2nd node drained in the last hour; limit 1" in text and len(rem.calls) == 1
    # draining a node already counted in the window adds nothing: one approver
    assert "executing" in react(bot2, "U_A", diagnose(bot2, "node-01")) and len(rem.calls) == 2


def test_concurrent_approvals_never_exceed_the_limit(tmp_path: Path) -> None:
    nodes = [f"gpu-{i:04d}" for i in range(400)]
    rem = DrainRemediator()
    bot = make_bot(tmp_path, nodes=nodes, rem=rem, max_nodes=3, max_fraction=0.05)
    ids = []
    for i in range(200):  # 200 drain proposals on 200 nodes across 40 incidents
        incident = 1 + i % 40
        if i < 40:
            bot.store.create_incident(platform="slack", channel="C1", thread=None, requester="U_REQ",
                                      source="command", target=nodes[i], text="t")
        p = drain_proposal(nodes[i], f"c{i}")
        bot.store.add_proposal(proposal_id=p.id, incident_id=incident, hash=p.hash, risk="medium", title="t",
                               body=p.to_dict(), platform="slack", channel="C1", thread=None, requester="U_REQ",
                               expires_at=bot.clock() + 1000)
        bot.store.bind_proposal_message(p.id, f"m{i}")
        ids.append(f"m{i}")
    barrier = threading.Barrier(16)

    def approve(chunk: list[str]) -> None:
        barrier.wait()
        for msg in chunk:
            bot.dispatch(Reaction("slack", "C1", "U_A", "white_check_mark", msg))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(approve, [ids[k::16] for k in range(16)]))
    bot.wait_idle(30)
    executed = bot.store.executions()
    assert 1 <= len(executed) <= 3 and len(rem.calls) == len(executed)
    counted = bot.store.connection().execute("SELECT COUNT(DISTINCT node) FROM breaker_actions").fetchone()[0]
    assert counted == len(executed)
    assert sum(1 for p in bot.store.proposals() if p.state in ("executing", "executed")) == len(executed)


# -- dry run -----------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["config", "env"])
def test_dry_run_shows_the_commands_and_runs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      how: str) -> None:
    if how == "env":
        monkeypatch.setenv("CLUSTERDOC_DRY_RUN", "1")
    rem, out = DrainRemediator(), RecordingOutbox()
    bot = make_bot(tmp_path, rem=rem, out=out, dry_run=how == "config")
    msg = diagnose(bot, "node-05")
    assert "DRY RUN is on" in out.of_kind("proposal")[-1].text
    replies = bot.dispatch(Reaction("slack", "C1", "U_A", "white_check_mark", msg))
    bot.wait_idle(10)
    assert replies[0].kind == "result" and "DRY RUN" in replies[0].text and "nothing was run" in replies[0].text
    assert 'scontrol update nodename="$(hostname -s)" state=drain' in replies[0].code and "[node-05]" in replies[0].code
    assert rem.calls == [] and bot.store.executions() == []
    assert bot.store.proposals()[0].state == "dry_run"
    assert bot.store.connection().execute("SELECT COUNT(*) FROM breaker_actions").fetchone()[0] == 0
    assert bot.dispatch(Reaction("slack", "C1", "U_B", "white_check_mark", msg))[0].kind == "text"  # not pending
    assert rem.calls == []


def test_inventory_watch_drops_nodes_removed_from_the_file(tmp_path: Path) -> None:
    import os

    from clusterdoc.runtime import InventoryWatch

    path = tmp_path / "inv.yaml"
    path.write_text("cluster: lab\nnodes: [node-01, node-02, node-03]\n")
    watch = InventoryWatch(path, ["node-01", "node-02", "node-03"])
    assert watch() == ["node-01", "node-02", "node-03"]
    path.write_text("cluster: lab\nnodes: [node-01, node-03, node-04]\n")  # node-02 left, node-04 is new
    os.utime(path, (1, 1))
    assert watch() == ["node-01", "node-03"]  # a new node is not reachable before a restart: not added
    path.write_text("cluster: [broken\n")
    os.utime(path, (2, 2))
    assert watch() == ["node-01", "node-03"]  # an invalid file keeps the last good list
