"""Matrix end to end against a real Synapse homeserver started on 127.0.0.1 by the test."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.matrix import MatrixAdapter
from bot.config import BotConfig, MatrixConfig
from bot.core import Bot
from bot.store import Store
from tests.bot.e2e import make_services
from tests.bot.synapse_server import Synapse

pytestmark = [pytest.mark.synapse, pytest.mark.slow]


@pytest.fixture(scope="module")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synapse]:
    server = Synapse(tmp_path_factory.mktemp("synapse")).start()
    yield server
    server.stop()


class User:
    def __init__(self, hs: Synapse, name: str) -> None:
        reg = hs.register(f"{name}{uuid.uuid4().hex[:6]}")
        self.hs, self.user_id, self.token = hs, reg["user_id"], reg["access_token"]

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        req = urllib.request.Request(self.hs.url + "/_matrix/client/v3" + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def send(self, room: str, event_type: str, content: dict[str, Any]) -> str:
        path = f"/rooms/{urllib.parse.quote(room)}/send/{event_type}/{uuid.uuid4().hex}"
        return str(self.api("PUT", path, content)["event_id"])

    def react(self, room: str, event_id: str, key: str = "✅") -> str:
        return self.send(room, "m.reaction", {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id,
                                                               "key": key}})

    def messages(self, room: str) -> list[dict[str, Any]]:
        path = f"/rooms/{urllib.parse.quote(room)}/messages?dir=b&limit=200"
        return list(reversed(self.api("GET", path)["chunk"]))


def wait_for(fn: Any, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting for the bot in Matrix")


def test_matrix_diagnose_approve_verify(synapse: Synapse, tmp_path: Path) -> None:
    boss, alice, mallory, botuser = (User(synapse, n) for n in ("boss", "alice", "mallory", "clusterdoc"))
    room = boss.api("POST", "/createRoom", {"preset": "private_chat", "name": "gpu-ops"})["room_id"]
    for u in (alice, mallory, botuser):
        boss.api("POST", f"/rooms/{urllib.parse.quote(room)}/invite", {"user_id": u.user_id})
    for u in (alice, mallory):
        u.api("POST", f"/join/{urllib.parse.quote(room)}", {})

    services = make_services(tmp_path, over_ssh=True)  # the fix goes over real SSH to the simulated node
    cfg = BotConfig()
    cfg.approvals.min_power_level = 100  # the room creator (boss) approves, by power level
    mcfg = MatrixConfig(enabled=True, homeserver=synapse.url, user_id=botuser.user_id, rooms=[room],
                        access_token=botuser.token)
    bot = Bot(cfg, Store(tmp_path / "state.sqlite"), services.agent, services.remediator,
              learner=services.learner, known_nodes=services.nodes)
    adapter = MatrixAdapter(bot, mcfg)
    adapter.start()
    try:
        # the bot joined; a user asks in the room
        root = alice.send(room, "m.room.message", {"msgtype": "m.text", "body": "!diagnose node-05"})

        def in_thread() -> list[dict[str, Any]]:
            return [e for e in alice.messages(room) if e.get("sender") == botuser.user_id
                    and (e["content"].get("m.relates_to") or {}).get("event_id") == root]

        proposal = wait_for(lambda: next((e for e in in_thread() if "React ✅" in e["content"].get("body", "")), None))
        thread = in_thread()
        assert all(e["content"]["m.relates_to"]["rel_type"] == "m.thread" for e in thread)
        images = [e for e in thread if e["content"].get("msgtype") == "m.image"]
        assert images and images[0]["content"]["url"].startswith("mxc://")
        assert any("Reasoning graph" in e["content"].get("body", "") for e in thread)
        assert "```" in proposal["content"]["body"]

        # a non-approver's ✅ does nothing
        mallory.react(room, proposal["event_id"])
        pid = bot.store.proposals()[0].id
        wait_for(lambda: bot.store.approvals(pid))  # the reaction reached the bot …
        bot.wait_idle(30)
        assert bot.store.approvals(pid)[0]["outcome"] == "not_approver"  # … and was refused
        assert bot.store.executions() == []

        # the approver's ✅ executes; the verification is posted in the thread
        boss.react(room, proposal["event_id"])
        result = wait_for(lambda: next((e for e in in_thread() if "Verification" in e["content"].get("body", "")), None))
        assert "verified ✅" in result["content"]["body"]
        bot.wait_idle(30)
        assert len(bot.store.executions()) == 1 and bot.store.executions()[0]["approver"] == boss.user_id
        assert services.fixed()

        # a command in a room the bot is not configured for is ignored
        other = alice.api("POST", "/createRoom", {"preset": "private_chat"})["room_id"]
        alice.api("POST", f"/rooms/{urllib.parse.quote(other)}/invite", {"user_id": botuser.user_id})
        alice.send(other, "m.room.message", {"msgtype": "m.text", "body": "!diagnose node-01"})
        time.sleep(1.5)
        assert len(bot.store.incidents()) == 1
    finally:
        adapter.close()
        bot.close()
        services.close()
