from __future__ import annotations

import threading
from pathlib import Path

import pytest

from bot.config import BotConfig
from bot.core import Bot
from bot.events import Alert, Command, Mention, Message, Reaction
from bot.store import Store
from tests.bot.fakes import FakeAgent, FakeRemediator, RecordingOutbox

NODES = [f"node-{i:02d}" for i in range(1, 9)]


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def make_bot(tmp_path: Path, *, agent: FakeAgent | None = None, remediator: FakeRemediator | None = None,
             outbox: RecordingOutbox | None = None, clock: Clock | None = None, **approvals: object) -> Bot:
    cfg = BotConfig()
    cfg.approvals.approvers = ["U_APPROVER", "U_APPROVER2"]
    cfg.approvals.expiry_s = 600
    for k, v in approvals.items():
        setattr(cfg.approvals, k, v)
    return Bot(cfg, Store(tmp_path / "state.sqlite"), agent or FakeAgent(), remediator or FakeRemediator(),
               known_nodes=NODES, outbox=outbox or RecordingOutbox(), identity=["U_BOT"],
               alert_channels=["C_ALERTS"], clock=clock or Clock(), send_backoff_s=0.01)


def diagnose(bot: Bot, user: str = "U_ALICE", text: str = "node-05") -> str:
    acks = bot.dispatch(Command("slack", "C1", user, "diagnose", text))
    assert acks and acks[0].kind == "ack", acks
    assert bot.wait_idle(10)
    outbox = bot.outbox
    assert isinstance(outbox, RecordingOutbox)
    return outbox.message_id_of(f"proposal:{acks[0].incident_id}.p1")


def test_command_opens_incident_and_posts_graph_and_proposal(tmp_path: Path) -> None:
    out = RecordingOutbox()
    bot = make_bot(tmp_path, outbox=out)
    diagnose(bot)
    kinds = [r.kind for r in out.replies]
    assert kinds[0] == "status" and "image" in kinds and "proposal" in kinds
    image = out.of_kind("image")[0]
    assert image.image_png and image.image_png.startswith(b"\x89PNG")
    assert "[proposition" in image.text and "thermal throttle" in image.text
    proposal = out.of_kind("proposal")[0]
    assert "nvidia-smi -i 3 -rgc" in proposal.code
    root_id = "m1"  # the root post became the thread of everything after it
    assert all(r.thread == root_id for r in out.replies[1:])
    assert bot.store.proposals()[0].message_id == out.message_id_of(proposal.key)


def test_approver_reaction_executes_once_and_posts_verification(tmp_path: Path) -> None:
    out, rem = RecordingOutbox(), FakeRemediator()
    bot = make_bot(tmp_path, outbox=out, remediator=rem)
    msg = diagnose(bot)
    acks = bot.dispatch(Reaction("slack", "C1", "U_APPROVER", "white_check_mark", msg))
    assert "executing" in acks[0].text
    assert bot.dispatch(Reaction("slack", "C1", "U_APPROVER2", "heavy_check_mark", msg)) == []
    bot.wait_idle(10)
    assert len(rem.calls) == 1
    result = out.of_kind("result")[0]
    assert "verified ✅" in result.text
    assert bot.store.executions()[0]["verified"] == 1
    actions = [a["action"] for a in bot.store.audit_log()]
    assert "proposal_approved" in actions and "proposal_executed" in actions


def test_stranger_and_unrelated_reactions_do_nothing(tmp_path: Path) -> None:
    rem = FakeRemediator()
    bot = make_bot(tmp_path, remediator=rem)
    msg = diagnose(bot)
    replies = bot.dispatch(Reaction("slack", "C1", "U_STRANGER", "white_check_mark", msg))
    assert replies and replies[0].ephemeral_to == "U_STRANGER"
    assert bot.dispatch(Reaction("slack", "C1", "U_APPROVER", "white_check_mark", "not-a-proposal")) == []
    assert bot.dispatch(Reaction("slack", "C1", "U_APPROVER", "tada", msg)) == []
    assert bot.dispatch(Reaction("slack", "C_OTHER", "U_APPROVER", "white_check_mark", msg)) == []
    bot.wait_idle(5)
    assert rem.calls == []
    assert bot.store.proposals()[0].state == "pending"
    assert bot.store.approvals(bot.store.proposals()[0].id)[0]["outcome"] == "not_approver"


def test_reject_then_approve_does_not_run(tmp_path: Path) -> None:
    rem = FakeRemediator()
    bot = make_bot(tmp_path, remediator=rem)
    msg = diagnose(bot)
    assert "rejected" in bot.dispatch(Reaction("slack", "C1", "U_APPROVER", "x", msg))[0].text
    late = bot.dispatch(Reaction("slack", "C1", "U_APPROVER", "white_check_mark", msg))
    assert "already rejected" in late[0].text and late[0].ephemeral_to == "U_APPROVER"
    bot.wait_idle(5)
    assert rem.calls == []


def test_expired_proposal_never_runs(tmp_path: Path) -> None:
    clock, rem = Clock(), FakeRemediator()
    bot = make_bot(tmp_path, clock=clock, remediator=rem)
    msg = diagnose(bot)
    clock.t += 601
    replies = bot.dispatch(Reaction("slack", "C1", "U_APPROVER", "white_check_mark", msg))
    assert "expired" in replies[0].text
    bot.wait_idle(5)
    assert rem.calls == [] and bot.store.proposals()[0].state == "expired"


def test_high_risk_requester_cannot_self_approve(tmp_path: Path) -> None:
    rem = FakeRemediator()
    bot = make_bot(tmp_path, agent=FakeAgent(risk="high"), remediator=rem)
    msg = diagnose(bot, user="U_APPROVER")
    replies = bot.dispatch(Reaction("slack", "C1", "U_APPROVER", "white_check_mark", msg))
    assert "other than the requester" in replies[0].text
    bot.dispatch(Reaction("slack", "C1", "U_APPROVER2", "white_check_mark", msg))
    bot.wait_idle(5)
    assert rem.calls == [("1.p1", "U_APPROVER2")]


def test_double_approval_race_executes_exactly_once(tmp_path: Path) -> None:
    rem = FakeRemediator(delay_s=0.05)
    bot = make_bot(tmp_path, remediator=rem)
    msg = diagnose(bot)
    barrier = threading.Barrier(8)
    results: list[int] = []

    def approve(i: int) -> None:
        barrier.wait()
        replies = bot.dispatch(Reaction("slack", "C1", "U_APPROVER" if i % 2 else "U_APPROVER2", "✅", msg))
        results.append(sum("executing proposal" in r.text for r in replies))

    threads = [threading.Thread(target=approve, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bot.wait_idle(10)
    assert len(rem.calls) == 1
    assert sum(results) == 1
    assert len(bot.store.executions()) == 1


def test_restart_pending_runs_once_and_interrupted_is_reported(tmp_path: Path) -> None:
    clock, rem = Clock(), FakeRemediator()
    bot = make_bot(tmp_path, clock=clock, remediator=rem)
    msg = diagnose(bot)
    diagnose(bot, text="node-06")  # a second incident that will be "mid-execution" at the crash
    second = bot.store.proposals()[1]
    assert bot.store.claim_for_execution(second.id, second.hash, "U_APPROVER", clock.t)
    bot.close()

    out2 = RecordingOutbox()
    bot2 = make_bot(tmp_path, clock=clock, remediator=rem, outbox=out2)
    bot2.start()
    assert any("interrupted" in r.text and second.id in r.text for r in out2.replies)
    assert bot2.store.proposal(second.id).state == "interrupted"  # type: ignore[union-attr]
    bot2.dispatch(Reaction("slack", "C1", "U_APPROVER", "white_check_mark", msg))
    bot2.dispatch(Reaction("slack", "C1", "U_APPROVER", "white_check_mark", msg))
    bot2.wait_idle(5)
    assert rem.calls == [("1.p1", "U_APPROVER")]  # the interrupted one was never retried

    clock.t += 10_000
    bot3 = make_bot(tmp_path, clock=clock, remediator=rem)
    bot3.start()
    assert all(p.state != "pending" for p in bot3.store.proposals())


def test_expired_at_restart(tmp_path: Path) -> None:
    clock, rem = Clock(), FakeRemediator()
    bot = make_bot(tmp_path, clock=clock, remediator=rem)
    msg = diagnose(bot)
    clock.t += 601
    out = RecordingOutbox()
    bot2 = make_bot(tmp_path, clock=clock, remediator=rem, outbox=out)
    bot2.start()
    assert any("expired" in r.text for r in out.replies)
    assert "already expired" in bot2.dispatch(Reaction("slack", "C1", "U_APPROVER", "white_check_mark", msg))[0].text
    bot2.wait_idle(5)
    assert rem.calls == []


def test_alert_flood_opens_one_incident_and_resolves(tmp_path: Path) -> None:
    agent, out = FakeAgent(), RecordingOutbox()
    bot = make_bot(tmp_path, agent=agent, outbox=out)
    alert = Alert("alertmanager", "C_ALERTS", "firing", "fp1", "GPUThrottle", "SM clock low",
                  {"alertname": "GPUThrottle", "instance": "node-05:9400", "gpu": "3"})
    for _ in range(50):
        bot.dispatch(alert)
    bot.wait_idle(10)
    assert len(agent.requests) == 1 and agent.requests[0].target == "node-05"
    assert agent.requests[0].source == "alert"
    assert bot.store.alert_count("fp1") == 50
    assert len(bot.store.incidents()) == 1
    bot.dispatch(Alert("alertmanager", "C_ALERTS", "resolved", "fp1", "GPUThrottle"))
    bot.wait_idle(5)
    assert any("resolved" in r.text for r in out.replies)


def test_alert_channel_post_is_parsed(tmp_path: Path) -> None:
    agent = FakeAgent()
    bot = make_bot(tmp_path, agent=agent)
    text = ("[FIRING:1] GPUClockThrottle (node-03:9400 3)\n*Alert:* SM clock low\n*Labels:*\n"
            " - alertname = GPUClockThrottle\n - instance = node-03:9400\n - gpu = 3\n")
    for i in range(3):
        bot.dispatch(Message("slack", "C_ALERTS", "U_AM", text, message_id=f"t{i}", from_bot=True))
    bot.wait_idle(5)
    assert [r.target for r in agent.requests] == ["node-03"]
    assert bot.store.incidents()[0].thread == "t0"


def test_unknown_node_gets_suggestions_and_malformed_gets_usage(tmp_path: Path) -> None:
    agent = FakeAgent()
    bot = make_bot(tmp_path, agent=agent)
    reply = bot.dispatch(Command("slack", "C1", "U_ALICE", "diagnose", "node-5"))[0]
    assert reply.kind == "error" and "node-05" in reply.text
    reply = bot.dispatch(Command("slack", "C1", "U_ALICE", "diagnose", "nod-07"))[0]
    assert "node-07" in reply.text
    assert "usage" in bot.dispatch(Command("slack", "C1", "U_ALICE", "diagnose", ""))[0].text
    assert "usage" in bot.dispatch(Command("slack", "C1", "U_ALICE", "diagnose", "$(rm -rf /)"))[0].text
    assert "did you mean" in bot.dispatch(Command("slack", "C1", "U_ALICE", "diagnoze", "node-05"))[0].text
    bot.wait_idle(5)
    assert agent.requests == []


def test_mentions_and_jobs(tmp_path: Path) -> None:
    agent = FakeAgent()
    bot = make_bot(tmp_path, agent=agent)
    bot.dispatch(Mention("slack", "C1", "U_ALICE", "why is job 4412 slow?", message_id="t9"))
    bot.dispatch(Message("matrix", "!room", "@bob:hs", "!diagnose job 77", message_id="$e1"))
    bot.dispatch(Mention("slack", "C1", "U_ALICE", "is NODE-02 ok?", message_id="t10"))
    bot.wait_idle(5)
    assert sorted(r.target or "" for r in agent.requests) == ["4412", "77", "node-02"]
    assert {r.source for r in agent.requests} == {"mention", "command"}


def test_own_messages_ignored_authz_and_rate_limit(tmp_path: Path) -> None:
    agent = FakeAgent()
    bot = make_bot(tmp_path, agent=agent, diagnose_users=["U_ALICE"])
    assert bot.dispatch(Message("slack", "C1", "U_BOT", "!diagnose node-05")) == []
    assert bot.dispatch(Reaction("slack", "C1", "U_BOT", "white_check_mark", "m1")) == []
    denied = bot.dispatch(Command("slack", "C1", "U_EVE", "diagnose", "node-05"))[0]
    assert "not allowed" in denied.text
    bot.config.rate_limit.per_user = 2
    bot.rate.limit = 2
    kinds = [bot.dispatch(Command("slack", "C1", "U_ALICE", "diagnose", "node-01"))[0].kind for _ in range(4)]
    assert kinds == ["ack", "ack", "error", "error"]
    bot.wait_idle(5)
    assert len(agent.requests) == 2


def test_chat_api_errors_are_retried_and_nothing_lost(tmp_path: Path) -> None:
    out = RecordingOutbox(fail_first=2)
    bot = make_bot(tmp_path, outbox=out)
    diagnose(bot)  # the first post fails twice, then succeeds within the retry budget
    assert out.failures == 2 and out.replies[0].kind == "status"
    out2 = RecordingOutbox(fail_first=10**6)
    bot2 = make_bot(tmp_path / "b", outbox=out2)
    bot2.dispatch(Command("slack", "C1", "U_ALICE", "diagnose", "node-05"))
    bot2.wait_idle(10)
    pending = bot2.store.outbox_items()
    assert len(pending) >= 3  # root, diagnosis, graph, proposal… all kept
    out2.fail_first = 0
    assert bot2.flush_outbox() == len(pending)
    assert bot2.store.outbox_items() == []
    assert any(r.kind == "proposal" for r in out2.replies)
    assert bot2.store.proposals()[0].message_id is not None


def test_agent_failure_is_reported(tmp_path: Path) -> None:
    out = RecordingOutbox()
    bot = make_bot(tmp_path, agent=FakeAgent(fail=True), outbox=out)
    bot.dispatch(Command("slack", "C1", "U_ALICE", "diagnose", "node-05"))
    bot.wait_idle(5)
    assert any(r.kind == "error" and "model crashed" in r.text for r in out.replies)
    assert bot.store.incidents()[0].status == "failed"


def test_audit_log_is_append_only_and_secret_free(tmp_path: Path) -> None:
    from bot.store import register_secret

    register_secret("supersecret-token-123")
    store = Store(tmp_path / "s.sqlite")
    store.audit("U1", "x", "y", "token xoxb-1234-abcd and supersecret-token-123")
    detail = store.audit_log()[0]["detail"]
    assert "xoxb" not in detail and "supersecret" not in detail
    import sqlite3

    with pytest.raises(sqlite3.DatabaseError):
        store._conn().execute("DELETE FROM audit")
    with pytest.raises(sqlite3.DatabaseError):
        store._conn().execute("UPDATE audit SET actor='x'")


def test_diagnosis_interrupted_by_a_crash_is_reported(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.sqlite")
    incident = store.create_incident(platform="slack", channel="C1", thread="t1", requester="U_ALICE",
                                     source="command", target="node-05", text="diagnose node node-05")
    store.set_incident(incident, status="diagnosing")
    out, agent = RecordingOutbox(), FakeAgent()
    bot = make_bot(tmp_path, outbox=out, agent=agent)
    bot.start()
    bot.start()  # idempotent: reported once
    assert [r.thread for r in out.replies if "interrupted" in r.text] == ["t1"]
    assert bot.store.incident(incident).status == "interrupted"  # type: ignore[union-attr]
    assert agent.requests == []  # not silently re-run
