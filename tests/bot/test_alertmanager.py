"""The Alertmanager webhook receiver: auth, payload validation with clear statuses, and alerts
reaching the bot core with its fingerprint de-duplication (over real HTTP on 127.0.0.1)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.alertmanager import AlertmanagerConfig, AlertmanagerReceiver, validate_payload, with_node_label
from bot.config import BotConfig
from bot.core import Bot
from bot.events import Alert, Event, Reply
from bot.store import Store
from tests.bot.fakes import FakeAgent, RecordingOutbox

TOKEN = "am-token-7d1e"
ENV = {"CLUSTERDOC_ALERTMANAGER_TOKEN": TOKEN}
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
NODES = [f"node-{i:02d}" for i in range(1, 9)]


def payload(status: str = "firing", fingerprint: str = "a1b2c3d4e5f60718", **labels: str) -> dict[str, Any]:
    labels = labels or {"alertname": "GpuSmClockBelowPeers", "Hostname": "node-05", "gpu": "3",
                        "instance": "node-05:9400", "job": "dcgm"}
    return {"version": "4", "status": status, "receiver": "clusterdoc", "groupKey": "{}:{}", "groupLabels": {},
            "commonLabels": labels, "commonAnnotations": {}, "externalURL": "http://am:9093", "truncatedAlerts": 0,
            "alerts": [{"status": status, "labels": labels, "fingerprint": fingerprint,
                        "annotations": {"summary": "SM clock below 85% of peers on node-05 GPU 3"},
                        "startsAt": "2026-11-28T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z"}]}


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> list[Reply]:
        self.events.append(event)
        return []


def receiver(dispatch: Any = None, **cfg: Any) -> AlertmanagerReceiver:
    return AlertmanagerReceiver(AlertmanagerConfig(enabled=True, port=0, channel="C_OPS", **cfg),
                                dispatch or Recorder(), env=ENV)


def post(r: AlertmanagerReceiver, body: Any, *, token: str | None = TOKEN, ctype: str = "application/json",
         method: str = "POST", path: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": ctype, "Authorization": f"Bearer {token}"} if token is not None else {"Content-Type": ctype}
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    res = r.handle(method, path or r.config.path, headers, raw)
    return res.status, res.body


def test_refuses_to_run_without_token_or_channel() -> None:
    with pytest.raises(ValueError, match="CLUSTERDOC_ALERTMANAGER_TOKEN is not set"):
        AlertmanagerReceiver(AlertmanagerConfig(channel="C"), Recorder(), env={})
    with pytest.raises(ValueError, match="channel"):
        AlertmanagerReceiver(AlertmanagerConfig(), Recorder(), env=ENV)
    assert TOKEN not in repr(AlertmanagerConfig(token=TOKEN))


def test_auth_path_method_and_type_errors_have_clear_statuses() -> None:
    rec = Recorder()
    r = receiver(rec)
    status, body = post(r, payload(), token=None)
    assert status == 401 and "Bearer" in body["error"]
    assert r.handle("POST", r.config.path, {"Authorization": "Basic abc"}, b"{}").headers["WWW-Authenticate"]
    status, body = post(r, payload(), token="wrong")
    assert status == 403 and TOKEN not in json.dumps(body)
    assert post(r, payload(), path="/other")[0] == 404
    status, _ = post(r, payload(), method="GET")
    assert status == 405
    assert post(r, payload(), ctype="text/plain")[0] == 415
    status, body = post(r, b"{not json")
    assert status == 400 and "not valid JSON" in body["error"]
    assert r.handle("POST", r.config.path, {"Authorization": f"Bearer {TOKEN}"}, None).status == 411
    assert receiver(max_body_bytes=100).handle(
        "POST", "/alertmanager", {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        json.dumps(payload()).encode()).status == 413
    assert r.handle("GET", "/healthz", {}, None).status == 200
    assert rec.events == []  # nothing rejected reached the bot


def test_schema_problems_are_listed_by_field_path() -> None:
    bad = payload()
    bad["alerts"].append({"status": "burning", "labels": {"gpu": 3, "bad-name": "x"}, "fingerprint": "../etc"})
    bad["alerts"].append("nope")
    status, body = post(receiver(), bad)
    assert status == 422
    problems = body["problems"]
    assert "alerts[1].status: 'burning' is not 'firing' or 'resolved'" in problems
    assert any(p.startswith("alerts[1].labels.gpu: expected a string") for p in problems)
    assert any("'bad-name' is not a valid label name" in p for p in problems)
    assert any(p.startswith("alerts[1].fingerprint") for p in problems)
    assert "alerts[2]: expected an object" in problems
    assert validate_payload([]) == ["body: expected a JSON object, got list"]
    assert validate_payload({"version": "3", "alerts": []}) == [
        "version: '3' is not supported (Alertmanager webhook version 4)", "alerts: empty list"]


def test_valid_payload_becomes_alert_events_with_the_node() -> None:
    rec = Recorder()
    status, body = post(receiver(rec), payload())
    assert status == 200 and body == {"status": "ok", "alerts": 1}
    [alert] = rec.events
    assert isinstance(alert, Alert)
    assert (alert.platform, alert.channel, alert.status, alert.fingerprint) == (
        "alertmanager", "C_OPS", "firing", "a1b2c3d4e5f60718")
    assert alert.node == "node-05" and alert.gpu == 3 and alert.name == "GpuSmClockBelowPeers"
    # an explicit node label is kept as it is
    assert with_node_label(payload(node="n9", Hostname="x"))["alerts"][0]["labels"]["node"] == "n9"


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[tuple[Bot, FakeAgent]]:
    agent = FakeAgent()
    b = Bot(BotConfig(), Store(tmp_path / "state.sqlite"), agent, None, known_nodes=NODES,
            outbox=RecordingOutbox(), send_backoff_s=0.01)
    yield b, agent
    b.close()


def http_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with OPENER.open(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_over_http_alerts_open_one_incident_per_fingerprint_and_resolve(bot: tuple[Bot, FakeAgent]) -> None:
    core, agent = bot
    with receiver(core.dispatch) as r:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
        for _ in range(3):  # Alertmanager re-sends the same group: one incident
            assert http_post(r.url, json.dumps(payload()).encode(), headers)[0] == 200
        assert core.wait_idle(10)
        [incident] = core.store.incidents()
        assert (incident.target, incident.source, incident.channel) == ("node-05", "alert", "C_OPS")
        assert core.store.alert_count("a1b2c3d4e5f60718") == 3
        assert len(agent.requests) == 1 and agent.requests[0].target == "node-05"
        other = payload(fingerprint="ffff000011112222", alertname="GpuXid", Hostname="node-02", gpu="1")
        assert http_post(r.url, json.dumps(other).encode(), headers)[0] == 200
        assert core.wait_idle(10)
        assert len(core.store.incidents()) == 2
        assert http_post(r.url, json.dumps(payload("resolved")).encode(), headers)[0] == 200
        # resolved is recorded on the incident; it stays open while its proposal awaits a decision
        assert [a["subject"] for a in core.store.audit_log("alert_resolved")] == ["a1b2c3d4e5f60718"]
        assert len(core.store.incidents()) == 2
        # an announced body over the limit is refused before any of it is read
        port = int(r.url.split(":")[2].split("/")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(f"POST {r.config.path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                         f"Content-Type: application/json\r\nContent-Length: {10**10}\r\n\r\n".encode())
            assert sock.recv(4096).startswith(b"HTTP/1.1 413")
        assert http_post(r.url, b"{}", {"Content-Type": "application/json"})[0] == 401
        assert r.received == 5
