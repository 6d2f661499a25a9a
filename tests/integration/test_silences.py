"""``/silence`` against a real Alertmanager (the Debian package, started by the test as in
test_alertmanager_webhook.py): the silence exists in Alertmanager with the node matcher, the chat
user as createdBy and the reason as comment; Alertmanager shows a matching alert as suppressed;
the bot opens no incident for it (audited as ``alert_silenced``) while a node that is not silenced
gets one through the real webhook; ``/unsilence`` expires it; bad input and an unreachable
Alertmanager create nothing."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.alertmanager import AlertmanagerConfig, AlertmanagerReceiver
from bot.config import BotConfig
from bot.core import Bot
from bot.events import Command, Message, Reply
from bot.silences import SilenceConfig, install_silences
from bot.store import Store
from diagnostics.telemetry.local import ALERTMANAGER_BINARIES, LocalAlertmanager, find_binary, free_port
from tests.bot.fakes import FakeAgent

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.timeout(120),
    pytest.mark.skipif(find_binary(ALERTMANAGER_BINARIES) is None,
                       reason="prometheus-alertmanager not on PATH (apt-get install prometheus-alertmanager; "
                       ".ci/run does it)"),
]

TOKEN = "test-webhook-token-5e1d"
NODES = [f"node-{i:02d}" for i in range(1, 9)]
APPROVER, STRANGER = "@oncall:example.org", "@visitor:example.org"
ROOM = "!ops:example.org"
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Outbox:
    def __init__(self) -> None:
        self.replies: list[Reply] = []

    def __call__(self, reply: Reply) -> str:
        self.replies.append(reply)
        return f"m{len(self.replies)}"


@dataclass
class Setup:
    bot: Bot
    am: LocalAlertmanager
    receiver: AlertmanagerReceiver


def make_bot(tmp: Path, api_url: str) -> Bot:
    cfg = BotConfig()
    cfg.approvals.approvers = [APPROVER]
    cfg.rate_limit.per_user = 1000
    bot = Bot(cfg, Store(tmp / "state.sqlite"), FakeAgent(), None, known_nodes=NODES, outbox=Outbox())
    install_silences(bot, SilenceConfig(api_url=api_url, max_duration="7d", cache_s=0))
    return bot


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("silences")
    holder: dict[str, Bot] = {}
    cfg = AlertmanagerConfig(enabled=True, port=0, channel="C_OPS")
    with AlertmanagerReceiver(cfg, lambda event: holder["bot"].dispatch(event),
                              env={"CLUSTERDOC_ALERTMANAGER_TOKEN": TOKEN}) as receiver, \
            LocalAlertmanager(receiver.url, token=TOKEN) as am:
        holder["bot"] = make_bot(tmp, am.url)
        yield Setup(holder["bot"], am, receiver)
        holder["bot"].close()


def say(bot: Bot, text: str, user: str = APPROVER) -> list[Reply]:
    """A Matrix message (``!silence …``), through the whole dispatch chain."""
    return bot.dispatch(Message("matrix", ROOM, user, text, message_id=f"$ev{time.monotonic_ns()}"))


def am_get(am: LocalAlertmanager, path: str) -> Any:
    with OPENER.open(am.url + path, timeout=10) as resp:
        return json.load(resp)


def silences_for(am: LocalAlertmanager, node: str, state: str = "active") -> list[dict[str, Any]]:
    return [s for s in am_get(am, "/api/v2/silences") if s["status"]["state"] == state
            and any(m["name"] == "node" and m["value"] == node for m in s["matchers"])]


def post_alerts(am: LocalAlertmanager, *labels: dict[str, str]) -> None:
    body = json.dumps([{"labels": lab, "annotations": {"summary": "test"}} for lab in labels]).encode()
    req = urllib.request.Request(am.url + "/api/v2/alerts", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with OPENER.open(req, timeout=10) as resp:
        assert resp.status == 200


def am_alert_status(am: LocalAlertmanager, node: str, name: str, timeout_s: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for a in am_get(am, "/api/v2/alerts"):
            if a["labels"].get("node") == node and a["labels"].get("alertname") == name:
                return dict(a["status"])
        time.sleep(0.2)
    raise AssertionError(f"Alertmanager never listed {name} on {node}")


def webhook(receiver: AlertmanagerReceiver, node: str, name: str, fingerprint: str) -> None:
    """An alert the bot receives without Alertmanager's silencing in between (another sender)."""
    payload = {"version": "4", "status": "firing", "receiver": "clusterdoc", "alerts": [{
        "status": "firing", "labels": {"alertname": name, "node": node}, "annotations": {"summary": "x"},
        "fingerprint": fingerprint}]}
    req = urllib.request.Request(receiver.url, data=json.dumps(payload).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
    with OPENER.open(req, timeout=10) as resp:
        assert resp.status == 200


def incidents_on(bot: Bot, node: str) -> list[Any]:
    return [i for i in bot.store.incidents() if i.target == node]


def test_silence_is_created_suppresses_the_alert_and_opens_no_incident(setup: Setup) -> None:
    bot, am = setup.bot, setup.am
    replies = say(bot, "!silence node-05 2h fan replacement in rack 4")
    assert len(replies) == 1 and replies[0].kind == "text", replies
    [silence] = silences_for(am, "node-05")
    assert f"Silence `{silence['id']}` created" in replies[0].text and 'node="node-05"' in replies[0].text
    assert silence["matchers"] == [{"name": "node", "value": "node-05", "isRegex": False, "isEqual": True}]
    assert silence["createdBy"] == APPROVER and silence["comment"] == "fan replacement in rack 4"
    length = (time.mktime(time.strptime(silence["endsAt"][:19], "%Y-%m-%dT%H:%M:%S"))
              - time.mktime(time.strptime(silence["startsAt"][:19], "%Y-%m-%dT%H:%M:%S")))
    assert abs(length - 7200) <= 60
    # Alertmanager itself suppresses the node's alert; another node's alert stays active
    post_alerts(am, {"alertname": "GpuXidErrors", "node": "node-05", "gpu": "3"},
                {"alertname": "GpuXidErrors", "node": "node-06", "gpu": "1"})
    muted = am_alert_status(am, "node-05", "GpuXidErrors")
    assert muted["state"] == "suppressed" and muted["silencedBy"] == [silence["id"]]
    assert am_alert_status(am, "node-06", "GpuXidErrors")["state"] == "active"
    # the unsilenced node reaches the bot through the real webhook and opens an incident
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not incidents_on(bot, "node-06"):
        time.sleep(0.2)
    assert incidents_on(bot, "node-06")
    # the same alert for node-05 reaching the bot another way opens nothing, and the audit says why
    webhook(setup.receiver, "node-05", "GpuXidErrors", "f5f5f5f5")
    assert bot.wait_idle(10)
    assert incidents_on(bot, "node-05") == []
    [audit] = [a for a in bot.store.audit_log("alert_silenced") if a["subject"] == "f5f5f5f5"]
    assert silence["id"] in audit["detail"] and "no incident opened" in audit["detail"]
    [created] = [a for a in bot.store.audit_log("silence_created") if a["subject"] == silence["id"]]
    assert created["actor"] == APPROVER
    # /silences lists it (Slack's one slash command: `/diagnose silences`)
    listing = bot.dispatch(Command("slack", "C1", "U_ANYONE", "diagnose", "silences"))
    assert silence["id"] in listing[0].text and 'node="node-05"' in listing[0].text


def test_unsilence_expires_it_and_the_node_alerts_again(setup: Setup) -> None:
    bot, am = setup.bot, setup.am
    say(bot, "!silence node-07 30m firmware update")
    [silence] = silences_for(am, "node-07")
    webhook(setup.receiver, "node-07", "GpuSmClockBelowPeers", "a7a7a7a7")
    assert bot.wait_idle(10) and incidents_on(bot, "node-07") == []
    denied = say(bot, f"!unsilence {silence['id']}", user=STRANGER)
    assert "Only approvers" in denied[0].text and silences_for(am, "node-07")
    replies = say(bot, f"!unsilence {silence['id'][:8]}")  # a unique prefix is enough
    assert f"Silence `{silence['id']}`" in replies[0].text and "expired" in replies[0].text
    assert silences_for(am, "node-07") == [] and [s["id"] for s in silences_for(am, "node-07", "expired")] == [silence["id"]]
    post_alerts(am, {"alertname": "GpuSmClockBelowPeers", "node": "node-07"})
    assert am_alert_status(am, "node-07", "GpuSmClockBelowPeers")["state"] == "active"
    webhook(setup.receiver, "node-07", "GpuSmClockBelowPeers", "b7b7b7b7")
    assert bot.wait_idle(10)
    assert len(incidents_on(bot, "node-07")) == 1
    assert bot.store.audit_log("silence_expired")[-1]["subject"] == silence["id"]
    again = say(bot, f"!unsilence {silence['id']}")
    assert again[0].kind == "error" and "no active silence" in again[0].text


@pytest.mark.parametrize(("text", "user", "expected"), [
    ("!silence node-04", APPROVER, "needs a duration"),
    ("!silence node-04 -2h reason", APPROVER, "must be positive"),
    ("!silence node-04 0m reason", APPROVER, "must be positive"),
    ("!silence node-04 soon reason", APPROVER, "is not a duration"),
    ("!silence node-04 8d reason", APPROVER, "longer than the longest silence allowed from chat (7d)"),
    ("!silence node-4 2h reason", APPROVER, "unknown node `node-4`; closest known: `node-04`"),
    ("!silence node-04 2h", APPROVER, "needs a reason"),
    ("!silence node-04;reboot 2h x", APPROVER, "is not a node name"),
    ("!silence", APPROVER, "needs a node, a duration and a reason"),
    ("!silence node-04 2h reason", STRANGER, "Only approvers may create or end silences"),
    ("!unsilence not/an/id", APPROVER, "is not a silence id"),
])
def test_bad_input_gets_a_clear_line_and_creates_nothing(setup: Setup, text: str, user: str, expected: str) -> None:
    replies = say(setup.bot, text, user=user)
    assert len(replies) == 1 and replies[0].kind == "error" and expected in replies[0].text, replies
    assert replies[0].ephemeral_to == user
    assert silences_for(setup.am, "node-04") == [] and silences_for(setup.am, "node-4") == []


def test_unreachable_alertmanager_creates_nothing_and_says_so(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    bot = make_bot(tmp_path, url)
    try:
        replies = say(bot, "!silence node-03 1h cabling")
        assert replies[0].kind == "error", replies
        assert f"Alertmanager at {url} is unreachable" in replies[0].text and "no silence was created" in replies[0].text
        assert bot.store.audit_log("silence_created") == [] and bot.store.audit_log("silence_failed")
        # alert intake keeps working without it: the alert opens an incident as before
        from bot.events import Alert

        bot.dispatch(Alert("alertmanager", "C_OPS", "firing", "c3c3c3c3", "GpuXidErrors", "x", {"node": "node-03"}))
        assert bot.wait_idle(10) and len(incidents_on(bot, "node-03")) == 1
    finally:
        bot.close()
