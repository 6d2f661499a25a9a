"""Prometheus evaluates clusterdoc's alert rules over the simulated dcgm-exporter fleet, a real
Alertmanager delivers the webhook (with a bearer token) to ``bot/alertmanager.py``, and the bot
core opens an incident about node-05, diagnosed by the real agent (llm=none)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.alertmanager import AlertmanagerConfig, AlertmanagerReceiver
from bot.config import BotConfig
from bot.core import Bot
from bot.events import Reply
from bot.store import Store
from diagnostics.registry import default_registry
from diagnostics.telemetry import QueryParams, alert_rules_yaml
from diagnostics.telemetry.local import (
    ALERTMANAGER_BINARIES,
    PROMETHEUS_BINARIES,
    LocalAlertmanager,
    LocalPrometheus,
    find_binary,
)
from diagnostics.toolkit import Toolkit
from simulator import SimCluster
from simulator.metrics_server import MetricsServer

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.timeout(150),
    pytest.mark.skipif(find_binary(PROMETHEUS_BINARIES) is None or find_binary(ALERTMANAGER_BINARIES) is None,
                       reason="prometheus / prometheus-alertmanager not on PATH (apt-get install prometheus "
                       "prometheus-alertmanager; .ci/run does it)"),
]

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "a800-throttle.yaml"
TOKEN = "test-webhook-token-3f9c"


class Outbox:
    def __init__(self) -> None:
        self.replies: list[Reply] = []

    def __call__(self, reply: Reply) -> str:
        self.replies.append(reply)
        return f"m{len(self.replies)}"


@dataclass
class Flow:
    bot: Bot
    outbox: Outbox
    receiver: AlertmanagerReceiver


def real_agent(sim: SimCluster) -> object:
    from pipelines.agent import Agent
    from pipelines.config import AgentConfig, LLMConfig
    from pipelines.llm import make_llm

    agent = Agent(AgentConfig(), Toolkit(default_registry(), sim.executor()), None,
                  make_llm(LLMConfig(backend="none")), hosts=sim.hosts)
    agent.warm_up()
    return agent


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    tmp = tmp_path_factory.mktemp("am")
    sim = SimCluster(str(SCENARIO))
    outbox = Outbox()
    bot = Bot(BotConfig(), Store(tmp / "state.sqlite"), real_agent(sim), None,  # type: ignore[arg-type]
              known_nodes=sim.hosts, outbox=outbox)
    rules = tmp / "clusterdoc-gpu.rules.yml"
    rules.write_text(alert_rules_yaml(QueryParams(window="5s"), for_="0s"))
    cfg = AlertmanagerConfig(enabled=True, port=0, channel="C_OPS")
    with AlertmanagerReceiver(cfg, bot.dispatch, env={"CLUSTERDOC_ALERTMANAGER_TOKEN": TOKEN}) as receiver, \
            MetricsServer(sim, follow_wallclock=True) as metrics, \
            LocalAlertmanager(receiver.url, token=TOKEN) as am, \
            LocalPrometheus([metrics.scrape_config("dcgm", "1s")], rule_files=[rules], alertmanager_url=am.url):
        deadline = time.monotonic() + 60  # the peer-comparison rule needs a few scrapes in its window
        while time.monotonic() < deadline and not any("GpuSmClockBelowPeers" in i.text for i in bot.store.incidents()):
            time.sleep(0.25)
        assert bot.wait_idle(30)
        yield Flow(bot, outbox, receiver)
    bot.close()


def test_alertmanager_webhook_opens_an_incident_on_the_throttled_node(flow: Flow) -> None:
    incidents = flow.bot.store.incidents()
    assert incidents, "no incident opened from the Alertmanager webhook"
    assert flow.receiver.received >= 1
    assert {i.target for i in incidents} == {"node-05"}  # the rules suspect no other node
    assert all(i.source == "alert" and i.channel == "C_OPS" for i in incidents)
    texts = " ".join(i.text for i in incidents)
    assert "GpuSmClockBelowPeers" in texts and "gpu=3" in texts
    # the real agent (llm=none) diagnosed it from the simulated node's tools
    posted = " ".join(r.text for r in flow.outbox.replies)
    assert "node-05" in posted and "gpu_clock_throttle" in posted


def test_repeated_notification_is_deduplicated(flow: Flow) -> None:
    incident = flow.bot.store.incidents()[0]
    assert incident.fingerprint
    seen = flow.bot.store.alert_count(incident.fingerprint)
    payload = {"version": "4", "status": "firing", "receiver": "clusterdoc", "alerts": [{
        "status": "firing", "labels": {"alertname": "GpuSmClockBelowPeers", "node": "node-05", "gpu": "3"},
        "annotations": {"summary": "again"}, "fingerprint": incident.fingerprint}]}
    req = urllib.request.Request(flow.receiver.url, data=json.dumps(payload).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=10) as resp:
        assert resp.status == 200
    # same fingerprint: counted on its incident, nothing new opened (other rules' alerts for the
    # same GPU may still be arriving from Alertmanager, each with its own fingerprint)
    same = [i for i in flow.bot.store.incidents() if i.fingerprint == incident.fingerprint]
    assert [i.id for i in same] == [incident.id]
    assert flow.bot.store.alert_count(incident.fingerprint) >= seen + 1
