"""Authentication at every door: Slack request signatures (forged, stale, replayed), Matrix rooms
that are not configured, SSH host keys that changed, and the Alertmanager webhook's token."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.alertmanager import AlertmanagerConfig, AlertmanagerReceiver
from bot.config import BotConfig, MatrixConfig, SlackConfig
from bot.core import Bot
from bot.events import Event, Reply
from bot.store import Store
from bot.testing import SlackStandIn, event_body, sign, signed_post, slash_command_body
from tests.bot.fakes import FakeAgent, FakeRemediator
from tests.hardening.figures import record

SECRET = "hardening-signing-secret-3141592653"


# ---------------------------------------------------------------------------- Slack
class SlackEnv:
    def __init__(self, tmp_path: Path) -> None:
        from bot.adapters.slack import SlackAdapter

        self.standin = SlackStandIn()
        cfg = BotConfig()
        cfg.approvals.approvers = ["U_APPROVER"]
        self.agent = FakeAgent()
        self.bot = Bot(cfg, Store(tmp_path / "state.sqlite"), self.agent, FakeRemediator(),
                       known_nodes=[f"node-{i:02d}" for i in range(1, 9)], send_backoff_s=0.01)
        scfg = SlackConfig(enabled=True, mode="http", http_port=0, base_url=self.standin.base_url,
                           bot_token="xoxb-hardening-test", signing_secret=SECRET)
        self.adapter = SlackAdapter(self.bot, scfg)
        server = self.adapter.serve_http("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{server.server_address[1]}/slack/events"

    def close(self) -> None:
        self.bot.wait_idle(30)
        self.adapter.close()
        self.bot.close()
        self.standin.close()


@pytest.fixture
def slack(tmp_path: Path) -> Iterator[SlackEnv]:
    env = SlackEnv(tmp_path)
    yield env
    env.close()


def _raw_post(url: str, body: str, headers: dict[str, str]) -> int:
    req = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_slack_forged_stale_and_replayed_requests_are_rejected(slack: SlackEnv) -> None:
    form = "application/x-www-form-urlencoded"
    now = int(time.time())
    command = slash_command_body("/diagnose", "node-05", "U_MALLORY", "C_OPS")
    mention = event_body({"type": "app_mention", "user": "U_MALLORY", "text": "<@U_BOT> diagnose node-05",
                          "channel": "C_OPS", "ts": "1700000000.000001"})
    good_sig = sign(SECRET, command, now)
    attempts: dict[str, int] = {
        "forged: signed with another secret": signed_post(slack.url, command, "not-the-secret", content_type=form)[0],
        "forged: random signature": signed_post(slack.url, command, SECRET, content_type=form,
                                                signature="v0=" + "ab" * 32)[0],
        "forged: body changed after signing": _raw_post(slack.url, command.replace("node-05", "node-01"), {
            "Content-Type": form, "X-Slack-Request-Timestamp": str(now), "X-Slack-Signature": good_sig}),
        "forged: timestamp changed after signing": _raw_post(slack.url, command, {
            "Content-Type": form, "X-Slack-Request-Timestamp": str(now + 1), "X-Slack-Signature": good_sig}),
        "forged: no signature headers": _raw_post(slack.url, command, {"Content-Type": form}),
        "forged: v1 scheme": signed_post(slack.url, command, SECRET, content_type=form,
                                         signature=good_sig.replace("v0=", "v1="))[0],
        "forged: event with another secret": signed_post(slack.url, mention, "x" * 32,
                                                         content_type="application/json")[0],
        "stale: 6 minutes old": signed_post(slack.url, command, SECRET, content_type=form, timestamp=now - 360)[0],
        "stale: 1 day old": signed_post(slack.url, mention, SECRET, content_type="application/json",
                                        timestamp=now - 86400)[0],
        "stale: 10 minutes in the future": signed_post(slack.url, command, SECRET, content_type=form,
                                                       timestamp=now + 600)[0],
    }
    # a replay: the very same signed request (captured in transit) sent again within the window
    replay_body = slash_command_body("/diagnose", "node-03", "U_ALICE", "C_OPS")
    replay_ts = int(time.time())
    first = signed_post(slack.url, replay_body, SECRET, content_type=form, timestamp=replay_ts)[0]
    attempts["replayed: same signed slash command"] = signed_post(slack.url, replay_body, SECRET,
                                                                 content_type=form, timestamp=replay_ts)[0]
    replay_event = event_body({"type": "app_mention", "user": "U_ALICE", "text": "<@U_BOT> diagnose node-04",
                               "channel": "C_OPS", "ts": "1700000000.000002"})
    first_event = signed_post(slack.url, replay_event, SECRET, content_type="application/json",
                              timestamp=replay_ts)[0]
    attempts["replayed: same signed event"] = signed_post(slack.url, replay_event, SECRET,
                                                         content_type="application/json", timestamp=replay_ts)[0]
    slack.bot.wait_idle(30)
    rejected = {k: v for k, v in attempts.items() if v in (401, 403)}
    record("Slack forged/stale/replayed requests rejected", f"{len(rejected)}/{len(attempts)}",
           target="100%", group="authentication")
    assert first == 200 and first_event == 200  # the genuine requests work
    assert rejected == attempts, {k: v for k, v in attempts.items() if k not in rejected}
    # only the two genuine requests reached the agent
    targets = sorted(r.target or "" for r in slack.agent.requests)
    assert targets == ["node-03", "node-04"], targets


# ---------------------------------------------------------------------------- Matrix
def _nio_text(room_id: str, sender: str, body: str, event_id: str) -> Any:
    from nio import RoomMessageText

    return RoomMessageText.from_dict({
        "type": "m.room.message", "event_id": event_id, "sender": sender, "origin_server_ts": 1,
        "room_id": room_id, "content": {"msgtype": "m.text", "body": body},
    })


def _nio_reaction(room_id: str, sender: str, reacts_to: str, event_id: str) -> Any:
    from nio import ReactionEvent

    return ReactionEvent.from_dict({
        "type": "m.reaction", "event_id": event_id, "sender": sender, "origin_server_ts": 1, "room_id": room_id,
        "content": {"m.relates_to": {"rel_type": "m.annotation", "event_id": reacts_to, "key": "✅"}},
    })


def test_matrix_events_from_unconfigured_rooms_are_ignored(tmp_path: Path) -> None:
    from nio import MatrixRoom

    from bot.adapters.matrix import MatrixAdapter

    cfg = BotConfig()
    cfg.approvals.approvers = ["@boss:hs"]
    bot = Bot(cfg, Store(tmp_path / "state.sqlite"), FakeAgent(), FakeRemediator(), known_nodes=["node-05"])
    mcfg = MatrixConfig(enabled=True, homeserver="http://127.0.0.1:9", user_id="@clusterdoc:hs",
                        rooms=["!ops:hs"], alert_rooms=["!alerts:hs"], access_token="syt_hardening_token")
    adapter = MatrixAdapter(bot, mcfg)
    seen: list[Event] = []
    real_dispatch = bot.dispatch

    def counting(event: Event) -> list[Reply]:
        seen.append(event)
        return real_dispatch(event)

    bot.dispatch = counting  # type: ignore[method-assign]

    async def nothing(*_a: Any, **_k: Any) -> None:
        return None

    adapter._send = nothing  # type: ignore[method-assign]  # no homeserver here: replies go nowhere
    bot.set_outbox(lambda reply: None)
    outsiders = ["!elsewhere:hs", "!evil:other-hs", "!OPS:hs", "!ops:hs2"]
    sent = 0
    try:
        for n, room_id in enumerate(outsiders):
            room = MatrixRoom(room_id, "@clusterdoc:hs")
            for i, ev in enumerate([
                _nio_text(room_id, "@mallory:hs", "!diagnose node-05", f"$t{n}a"),
                _nio_text(room_id, "@mallory:hs", "@clusterdoc:hs diagnose node-05 now", f"$t{n}b"),
                _nio_text(room_id, "@boss:hs", "[FIRING:1] GPUThrottle\n- node = node-05", f"$t{n}c"),
                _nio_reaction(room_id, "@boss:hs", "$proposal", f"$t{n}d"),
            ]):
                handler = adapter._on_reaction if i == 3 else adapter._on_text
                adapter.loop.run_until_complete(handler(room, ev))
                sent += 1
        ignored = sent - len(seen)
        # the configured room is served (the same events are not dropped for another reason)
        adapter.loop.run_until_complete(adapter._on_text(MatrixRoom("!ops:hs", "@clusterdoc:hs"),
                                                         _nio_text("!ops:hs", "@alice:hs", "!diagnose node-05", "$ok")))
        bot.wait_idle(30)
    finally:
        bot.close()
        adapter.loop.close()
    record("Matrix events from unconfigured rooms ignored", f"{ignored}/{sent}", target="100%",
           group="authentication")
    assert ignored == sent
    assert seen and all(e.channel == "!ops:hs" for e in seen)  # (the core re-dispatches a command once)


# ---------------------------------------------------------------------------- SSH host keys
class CountingCluster:
    def __init__(self, n: int = 3) -> None:
        self.hosts = [f"node-{i:02d}" for i in range(1, n + 1)]
        self.calls: dict[str, int] = {}

    def handle(self, host: str, command: str) -> Any:
        from diagnostics.types import CommandResult

        self.calls[host] = self.calls.get(host, 0) + 1
        return CommandResult(host, command, 0, f"{host} ok\n")


@pytest.mark.ssh
def test_ssh_host_key_mismatch_and_unknown_keys_are_refused(tmp_path: Path) -> None:
    from diagnostics.registry import Registry
    from diagnostics.toolkit import Toolkit
    from diagnostics.types import Status
    from simulator.sshserver import serve
    from tests.diagnostics.test_ssh import echo_registry

    cluster = CountingCluster(3)
    with serve(cluster, workdir=tmp_path / "ssh") as server:
        lines = server.known_hosts_path.read_text().splitlines()
        # node-02's entry now records node-01's key: what an intercepted or reinstalled node looks like
        key_01 = lines[0].split(" ", 1)[1]
        name_02 = lines[1].split(" ", 1)[0]
        # node-03's entry is gone: an unknown key
        server.known_hosts_path.write_text("\n".join([lines[0], f"{name_02} {key_01}"]) + "\n")
        attempts = 0
        refused = 0
        for accept_new in (False, True):
            ex = server.executor(connect_timeout_s=5, accept_new_host_keys=accept_new)
            registry: Registry = echo_registry(timeout_s=5)
            tk = Toolkit(registry, ex)
            r01 = tk.run("hello", "node-01")
            r02 = tk.run("hello", "node-02")
            assert r01.status is Status.OK
            assert r02.status is Status.UNREACHABLE and "HOST KEY MISMATCH" in r02.error
            assert [f.kind for f in r02.findings] == ["ssh_host_key_refused"]
            assert "ssh-keygen -R" in r02.error  # says how to fix it when the change is expected
            attempts += 1
            refused += r02.status is Status.UNREACHABLE
            if not accept_new:
                r03 = tk.run("hello", "node-03")
                assert r03.status is Status.UNREACHABLE and "not in known_hosts" in r03.error
                attempts += 1
                refused += r03.status is Status.UNREACHABLE
            ex.close()
        assert "node-02" not in cluster.calls  # nothing ever ran on the node with the changed key
    record("SSH host-key mismatches/unknown keys refused", f"{refused}/{attempts}", target="100%",
           group="authentication")
    assert refused == attempts


# ---------------------------------------------------------------------------- Alertmanager webhook
def test_webhook_rejects_requests_without_the_configured_token() -> None:
    token = "am-hardening-token-271828"
    received: list[Event] = []

    def dispatch(event: Event) -> list[Reply]:
        received.append(event)
        return []

    payload = json.dumps({"version": "4", "status": "firing", "alerts": [
        {"status": "firing", "labels": {"alertname": "GPUThrottle", "node": "node-05"},
         "annotations": {"summary": "slow"}, "fingerprint": "abc123"}]}).encode()
    cfg = AlertmanagerConfig(enabled=True, port=0, channel="C_ALERTS")
    with AlertmanagerReceiver(cfg, dispatch, env={"CLUSTERDOC_ALERTMANAGER_TOKEN": token}) as receiver:
        url = receiver.url

        def post(headers: dict[str, str], target: str = url) -> int:
            req = urllib.request.Request(target, data=payload, method="POST",
                                         headers={"Content-Type": "application/json", **headers})
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    return int(resp.status)
            except urllib.error.HTTPError as exc:
                return int(exc.code)

        bad = {
            "no Authorization header": post({}),
            "wrong token": post({"Authorization": "Bearer not-the-token"}),
            "token prefix only": post({"Authorization": f"Bearer {token[:-1]}"}),
            "token with a suffix": post({"Authorization": f"Bearer {token}x"}),
            "Basic scheme": post({"Authorization": f"Basic {token}"}),
            "empty bearer": post({"Authorization": "Bearer "}),
            "token in the query string": post({}, f"{url}?token={token}"),
            "token in another header": post({"X-Token": token}),
        }
        assert received == []
        good = post({"Authorization": f"Bearer {token}"})
    rejected = sum(1 for v in bad.values() if v in (401, 403))
    record("webhook requests without the configured token rejected", f"{rejected}/{len(bad)}", target="100%",
           group="authentication")
    assert rejected == len(bad), bad
    assert good == 200 and len(received) == 1


def test_webhook_refuses_to_start_without_a_token() -> None:
    with pytest.raises(ValueError, match="CLUSTERDOC_ALERTMANAGER_TOKEN"):
        AlertmanagerReceiver(AlertmanagerConfig(enabled=True, channel="C"), lambda e: [], env={})
