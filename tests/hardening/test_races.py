"""Approvals under pressure: two approvers reacting to the same proposal at the same moment (1,000
times: exactly one execution each time), and approvals that must be refused — after expiry, on a
changed script, by a non-approver, by the requester where that is forbidden — each audited."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from bot.config import BotConfig
from bot.core import Bot
from bot.events import Reaction, Reply
from bot.store import Store
from diagnostics.approval import Approval, command_digest
from diagnostics.types import Status
from pipelines.execution import approve, execute_proposal
from tests.hardening.approvals import CountingRemediator, clock_reset_proposal, post_proposal, sim_toolkit
from tests.hardening.figures import record

ROUNDS = 1000


def make_bot(tmp_path: Path, remediator: Any, clock: Any = None, **approvals: Any) -> Bot:
    cfg = BotConfig(workers=4)
    cfg.approvals.approvers = ["U_ANN", "U_BOB", "U_REQ"]
    for k, v in approvals.items():
        setattr(cfg.approvals, k, v)
    kwargs: dict[str, Any] = {"clock": clock} if clock is not None else {}
    bot = Bot(cfg, Store(tmp_path / "state.sqlite"), agent=None, remediator=remediator,  # type: ignore[arg-type]
              outbox=lambda reply: None, send_backoff_s=0.0, **kwargs)
    return bot


@pytest.mark.timeout(240)
def test_two_approvers_at_the_same_moment_execute_exactly_once(tmp_path: Path) -> None:
    _sim, toolkit = sim_toolkit()
    remediator = CountingRemediator(toolkit)
    bot = make_bot(tmp_path, remediator)
    base = clock_reset_proposal(toolkit)
    barrier = threading.Barrier(2)
    acks: list[list[Reply]] = [[], []]
    try:
        pids = []
        for i in range(ROUNDS):
            pid = post_proposal(bot.store, base, message_id=f"m{i}")
            pids.append(pid)

            def react(slot: int, user: str, i: int = i) -> None:
                barrier.wait()
                acks[slot] = bot.dispatch(Reaction("test", "C_OPS", user, "white_check_mark", f"m{i}"))

            threads = [threading.Thread(target=react, args=(0, "U_ANN")), threading.Thread(target=react, args=(1, "U_BOB"))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert sum(1 for a in acks if a) == 1, acks  # one "executing" ack, the other silent
        assert bot.wait_idle(120)
        executions = bot.store.executions()
        once = sum(1 for pid in pids if remediator.calls[pid] == 1)
        twice = sum(1 for pid in pids if remediator.calls[pid] > 1)
        decisions = [sorted(d["outcome"] for d in bot.store.approvals(pid)) for pid in pids]
    finally:
        bot.close()
    record("simultaneous double approvals, executed exactly once", f"{once}/{ROUNDS}", target=f"{ROUNDS}/{ROUNDS}",
           group="races and restarts")
    record("simultaneous double approvals, executed twice", twice, target="0", group="races and restarts")
    assert once == ROUNDS and twice == 0
    assert len(executions) == ROUNDS and {e["state"] for e in executions} == {"done"}
    # per proposal: one winner, one loser (refused at the SQLite gate, or seeing the state already moved)
    losers = {"duplicate", "already_executing", "already_executed"}
    assert all(len(d) == 2 and d.count("executing") == 1 and set(d) - {"executing"} <= losers for d in decisions)
    at_gate = sum(1 for d in decisions if "duplicate" in d)
    record("double approvals decided at the SQLite gate itself", f"{at_gate}/{ROUNDS}", target="(any)",
           group="races and restarts")


def _refusal_bot(tmp_path: Path) -> tuple[Bot, Any, Any, list[float]]:
    _sim, toolkit = sim_toolkit()
    now = [1_800_000_000.0]
    remediator = CountingRemediator(toolkit)
    bot = make_bot(tmp_path, remediator, clock=lambda: now[0], expiry_s=600.0, no_self_approval=["high"])
    return bot, remediator, toolkit, now


def test_refused_approvals_are_refused_and_audited(tmp_path: Path) -> None:
    bot, remediator, toolkit, now = _refusal_bot(tmp_path)
    store = bot.store
    cases: dict[str, tuple[str, str]] = {}  # name -> (proposal id, expected decision outcome)
    try:
        # after expiry
        pid = post_proposal(store, clock_reset_proposal(toolkit), message_id="exp", now=now[0], expires_in_s=600)
        now[0] += 601
        bot.dispatch(Reaction("test", "C_OPS", "U_ANN", "✅", "exp"))
        cases["after expiry"] = (pid, "expired")
        # on a changed script: the stored proposal is edited after it was shown (its hash differs)
        pid = post_proposal(store, clock_reset_proposal(toolkit), message_id="chg", now=now[0])
        with sqlite3.connect(store.path) as conn:
            body = json.loads(conn.execute("SELECT body FROM proposals WHERE id=?", (pid,)).fetchone()[0])
            body["steps"][0]["commands"] = ["nvidia-smi -i 3 -rgc; rm -rf /var/lib/slurm"]
            conn.execute("UPDATE proposals SET body=? WHERE id=?", (json.dumps(body), pid))
        bot.dispatch(Reaction("test", "C_OPS", "U_ANN", "✅", "chg"))
        cases["changed script (hash differs)"] = (pid, "hash_mismatch")
        # by a non-approver
        pid = post_proposal(store, clock_reset_proposal(toolkit), message_id="non", now=now[0])
        bot.dispatch(Reaction("test", "C_OPS", "U_MALLORY", "✅", "non"))
        cases["non-approver"] = (pid, "not_approver")
        # by the requester of a high-risk proposal (self-approval forbidden for high risk)
        pid = post_proposal(store, clock_reset_proposal(toolkit, risk="high"), message_id="self",
                            requester="U_REQ", now=now[0])
        bot.dispatch(Reaction("test", "C_OPS", "U_REQ", "✅", "self"))
        cases["requester of a high-risk proposal"] = (pid, "self_approval")
        assert bot.wait_idle(30)
        audit = store.audit_log()
        refused = 0
        for name, (pid, outcome) in cases.items():
            outcomes = [d["outcome"] for d in store.approvals(pid)]
            audited = [a for a in audit if a["subject"] == pid and a["action"] in ("approval_refused", "approval_expired")]
            ok = outcomes == [outcome] and bool(audited) and store.execution(pid) is None and not remediator.calls[pid]
            assert ok, (name, outcomes, audited, store.execution(pid))
            refused += ok
        # control: a proper approval of a fresh proposal still works
        pid = post_proposal(store, clock_reset_proposal(toolkit), message_id="good", now=now[0])
        bot.dispatch(Reaction("test", "C_OPS", "U_ANN", "✅", "good"))
        assert bot.wait_idle(30)
        assert remediator.calls[pid] == 1 and store.execution(pid) is not None
    finally:
        bot.close()
    record("invalid approvals refused and audited", f"{refused}/{len(cases)}", target="100%",
           group="races and restarts")


def test_toolkit_refuses_approvals_that_do_not_cover_the_commands() -> None:
    """The last gate, below the bot: execute_action / execute_proposal re-check the approval."""
    _sim, toolkit = sim_toolkit()
    proposal = clock_reset_proposal(toolkit)
    good = approve(proposal, "U_ANN", now=1_000.0, ttl_s=None)
    changed = clock_reset_proposal(toolkit, gpu=4)
    expired = approve(proposal, "U_ANN", now=1_000.0, ttl_s=60.0)
    refusals = {
        "approval for other commands": toolkit.execute_action("reset_gpu_clocks", "node-05", {"gpu": 4}, approval=good),
        "expired approval": toolkit.execute_action("reset_gpu_clocks", "node-05", {"gpu": 3}, approval=expired),
        "other host": toolkit.execute_action("reset_gpu_clocks", "node-01", {"gpu": 3}, approval=good),
        "no approver": toolkit.execute_action("reset_gpu_clocks", "node-05", {"gpu": 3}, approval=Approval(
            proposal.hash, command_digest(list(proposal.steps[0].commands)), "", 1_000.0)),
        "mutating through run()": toolkit.run("reset_gpu_clocks", "node-05", {"gpu": 3}),
    }
    for name, result in refusals.items():
        assert result.status is Status.ERROR, name
        assert "not run" in result.error or "needs an approved proposal" in result.error, (name, result.error)
    other = execute_proposal(changed, good, toolkit)
    assert not other.ok and "hash differs" in other.message
    # nothing above touched the node: its GPU 3 is still throttled
    check = toolkit.run("gpu_clocks", "node-05", {"gpu": 3})
    assert any(f.kind == "gpu_clock_throttle" for f in check.findings)
