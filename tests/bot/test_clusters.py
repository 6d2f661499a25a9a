"""Several clusters behind one bot: the channel or `cluster=` picks one, its agent and executor do
the work, node names resolve against its inventory, history / breaker / report are its own, and every
message about an incident names it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.clusters import BotCluster, ClusterMap, split_cluster
from bot.config import BotConfig
from bot.core import Bot
from bot.events import Alert, Command, Mention, Message, Reaction
from bot.scheduler import Schedules, Watched
from bot.store import Store
from tests.bot.fakes import RecordingOutbox
from tests.bot.test_history import FakeToolkit
from tests.bot.test_safeguards import Clock, DrainAgent, DrainRemediator

LAB1 = [f"node-{i:02d}" for i in range(1, 5)]  # node-01 … node-04
LAB2 = [f"node-{i:02d}" for i in range(1, 9)]  # node-01 … node-08: node-01 exists in both
DAY = 86400.0


class Lab:
    def __init__(self, name: str, nodes: list[str], channels: tuple[str, ...], default: bool = False) -> None:
        self.agent, self.rem = DrainAgent(), DrainRemediator()
        self.cluster = BotCluster(name, self.agent, self.rem, list(nodes), channels=channels, default=default)


def two_labs(tmp_path: Path, *, default: bool = True, max_nodes: int = 1,
             clock: Clock | None = None) -> tuple[Bot, Lab, Lab, RecordingOutbox]:
    cfg = BotConfig()
    cfg.approvals.approvers = ["U_A", "U_B"]
    cfg.approvals.expiry_s = 10_000
    cfg.rate_limit.per_user = 10_000
    cfg.breaker.max_nodes, cfg.breaker.max_fraction = max_nodes, 1.0
    cfg.slack.alert_channels = ["C_ALERTS1", "C_ALERTS2"]
    lab1 = Lab("lab1", LAB1, ("C_LAB1", "C_ALERTS1"), default=default)
    lab2 = Lab("lab2", LAB2, ("C_LAB2", "C_ALERTS2"))
    out = RecordingOutbox()
    bot = Bot(cfg, Store(tmp_path / "state.sqlite"), clusters=[lab1.cluster, lab2.cluster], outbox=out,
              clock=clock or Clock(), send_backoff_s=0.01)
    return bot, lab1, lab2, out


def ask(bot: Bot, channel: str, text: str, name: str = "diagnose", user: str = "U_REQ") -> list[str]:
    replies = bot.dispatch(Command("slack", channel, user, name, text))
    assert bot.wait_idle(10)
    return [r.text for r in replies]


def of_incident(out: RecordingOutbox, incident_id: int) -> list[str]:
    return [r.text for r in out.replies if r.incident_id == str(incident_id)
            or r.proposal_id.startswith(f"{incident_id}.")]


def approve(bot: Bot, out: RecordingOutbox, incident_id: int, user: str = "U_A") -> str:
    msg = out.message_id_of(f"proposal:{incident_id}.p1")
    channel = next(r.channel for r in out.replies if r.key == f"proposal:{incident_id}.p1")
    replies = bot.dispatch(Reaction("slack", channel, user, "white_check_mark", msg))
    bot.wait_idle(10)
    return "\n".join(r.text for r in replies)


def test_the_channel_picks_the_cluster_its_agent_and_every_message_names_it(tmp_path: Path) -> None:
    bot, lab1, lab2, out = two_labs(tmp_path)
    ack = ask(bot, "C_LAB2", "node-05")
    assert ack == ["[lab2] Incident #1 opened: diagnosing node `node-05`…"]
    assert [r.target for r in lab2.agent.requests] == ["node-05"] and lab1.agent.requests == []
    posted = of_incident(out, 1)
    assert len(posted) >= 4 and all(t.startswith("[lab2] ") for t in posted), posted
    assert posted[0].startswith("[lab2] Incident #1: diagnose node node-05")  # the thread's root post
    assert any(t.startswith("[lab2] Incident #1: ") and "fell off the bus" in t for t in posted)  # the diagnosis
    assert bot.store.incident(1) is not None and bot.store.incident(1).cluster == "lab2"  # type: ignore[union-attr]
    # approving runs lab2's executor, not lab1's, and the result names lab2
    assert "executing" in approve(bot, out, 1)
    assert lab2.rem.calls == [("1.p1", "U_A")] and lab1.rem.calls == []
    assert out.replies[-1].text.startswith("[lab2] Proposal `1.p1` executed: ok")
    # the other channel: lab1's agent
    assert ask(bot, "C_LAB1", "node-02")[0].startswith("[lab1] Incident #2 opened")
    assert [r.target for r in lab1.agent.requests] == ["node-02"]
    assert all(t.startswith("[lab1] ") for t in of_incident(out, 2))


def test_nodes_resolve_in_that_cluster_only(tmp_path: Path) -> None:
    bot, lab1, lab2, _ = two_labs(tmp_path)
    refused = ask(bot, "C_LAB1", "node-05")  # node-05 is lab2's; lab1 has node-01 … node-04
    assert refused == ["[lab1] unknown node `node-05`; closest known: `node-04`, `node-03`, `node-02`. "
                       "Nothing was started."]
    mention = bot.dispatch(Mention("slack", "C_LAB1", "U1", "why is node-07 slow?", message_id="1.1"))
    assert mention[0].kind == "error" and mention[0].text.startswith("[lab1] unknown node `node-07`")
    assert bot.store.incidents() == [] and lab1.agent.requests == lab2.agent.requests == []
    # a mention names its cluster too, and the word does not reach the agent
    assert bot.dispatch(Mention("slack", "C_OPS", "U1", "cluster=lab2 why is node-07 slow?", message_id="1.2"))[0] \
        .text.startswith("[lab2] Incident #1 opened")
    bot.wait_idle(10)
    assert lab2.agent.requests[0].target == "node-07" and "cluster=" not in lab2.agent.requests[0].text


def test_cluster_word_unknown_names_and_channels_that_may_not_act(tmp_path: Path) -> None:
    bot, lab1, lab2, _ = two_labs(tmp_path)
    # a channel of no cluster: cluster= picks any, else the default (lab1)
    assert ask(bot, "C_OPS", "cluster=lab2 node-05")[0].startswith("[lab2] Incident #1 opened")
    assert ask(bot, "C_OPS", "node-03 cluster=LAB2 hot")[0].startswith("[lab2] Incident #2 opened")
    assert ask(bot, "C_OPS", "node-03")[0].startswith("[lab1] Incident #3 opened")
    assert [r.target for r in lab2.agent.requests] == ["node-05", "node-03"]
    assert [r.target for r in lab1.agent.requests] == ["node-03"]
    assert lab2.agent.requests[1].text == "diagnose node node-03: hot"
    cases = {
        ("C_OPS", "cluster=lab3 node-05"): "unknown cluster `lab3`; closest: `lab2`, `lab1`. Nothing was started.",
        ("C_OPS", "cluster=prod node-05"): "unknown cluster `prod`; known: `lab1`, `lab2`. Nothing was started.",
        ("C_OPS", "cluster= node-05"): "`cluster=` needs a name",
        ("C_OPS", "cluster=$(reboot) node-05"): "is not a cluster name",
        ("C_LAB1", "cluster=lab2 node-05"): "this channel belongs to cluster `lab1`; it may not act on cluster `lab2`",
        ("C_LAB2", "cluster=lab1 node-01"): "this channel belongs to cluster `lab2`; it may not act on cluster `lab1`",
    }
    for (channel, text), expected in cases.items():
        replies = bot.dispatch(Command("slack", channel, "U1", "diagnose", text))
        assert len(replies) == 1 and replies[0].kind == "error", (text, replies)
        assert expected in replies[0].text, (text, replies[0].text)
    for name in ("history", "status"):  # the other commands that act on a cluster refuse the same way
        refused = bot.dispatch(Command("slack", "C_LAB1", "U1", name, "cluster=lab2 node-01"))[0]
        assert refused.kind == "error" and "may not act on cluster `lab2`" in refused.text
    # naming the channel's own cluster is fine
    assert ask(bot, "C_LAB1", "cluster=lab1 node-01")[0].startswith("[lab1] Incident #4 opened")
    bot.wait_idle(10)
    assert len(bot.store.incidents()) == 4


def test_without_a_default_a_channel_of_no_cluster_must_name_one(tmp_path: Path) -> None:
    bot, _, lab2, out = two_labs(tmp_path, default=False)
    refused = ask(bot, "C_OPS", "node-03")
    assert "which cluster?" in refused[0] and "`lab1`, `lab2`" in refused[0]
    assert ask(bot, "C_OPS", "cluster=lab1 node-03")[0].startswith("[lab1] Incident #1 opened")
    # /status in such a channel shows every cluster, each line named
    status = ask(bot, "C_OPS", "", name="status")[0]
    assert "[lab1] circuit breaker: 0 of 1" in status and "[lab2] circuit breaker: 0 of 1" in status
    # an alert there, without a cluster label: nothing to run on; said, audited, no incident
    bot.dispatch(Alert("alertmanager", "C_OPS", "firing", "fp-x", "GpuHot", "hot", {"node": "node-02"}))
    bot.wait_idle(10)
    assert len(bot.store.incidents()) == 1 and bot.store.audit_log("alert_no_cluster")
    assert "which cluster?" in out.replies[-1].text and "no incident was opened" in out.replies[-1].text
    # with a cluster label naming one, it opens an incident there
    bot.dispatch(Alert("alertmanager", "C_OPS", "firing", "fp-y", "GpuHot", "hot", {"node": "node-06", "cluster": "lab2"}))
    bot.wait_idle(10)
    assert bot.store.incidents()[-1].cluster == "lab2" and lab2.agent.requests[-1].target == "node-06"


def test_alerts_go_to_the_channel_cluster_and_dedupe_per_cluster(tmp_path: Path) -> None:
    bot, lab1, lab2, out = two_labs(tmp_path)
    text = "[FIRING:1] GpuFellOffBus\nalertname = GpuFellOffBus\nnode = node-01\nseverity = critical"

    for channel in ("C_ALERTS1", "C_ALERTS2", "C_ALERTS2"):  # the same alert in both clusters, lab2's twice
        bot.dispatch(Message("slack", channel, "U_AM", text, message_id=f"{channel}.1", from_bot=True))
    bot.wait_idle(10)
    rows = bot.store.incidents()
    assert [(r.cluster, r.target) for r in rows] == [("lab1", "node-01"), ("lab2", "node-01")]
    assert [r.target for r in lab1.agent.requests] == ["node-01"] == [r.target for r in lab2.agent.requests]
    assert all(t.startswith("[lab2] ") for t in of_incident(out, 2))


def test_history_and_breaker_are_kept_per_cluster(tmp_path: Path) -> None:
    clock = Clock()
    bot, lab1, lab2, out = two_labs(tmp_path, clock=clock, max_nodes=1)
    ask(bot, "C_LAB1", "node-01")
    assert "executing" in approve(bot, out, 1)  # lab1's one drain in the hour
    clock.t += 60
    ask(bot, "C_LAB2", "node-01")  # the same node name in lab2: its own breaker count, one approver enough
    assert not any("Needs two approvers" in t for t in of_incident(out, 2))
    assert "executing" in approve(bot, out, 2)
    assert lab1.rem.calls == [("1.p1", "U_A")] and lab2.rem.calls == [("2.p1", "U_A")]
    clock.t += 60
    ask(bot, "C_LAB2", "node-02")  # lab2's second drain in the hour: above its limit of 1
    assert any("⚠ Needs two approvers (circuit breaker): would be the 2nd node drained" in t for t in of_incident(out, 3))
    status = ask(bot, "C_LAB2", "", name="status")[0]
    assert status.startswith("[lab2] Open incidents:\n#3 [proposed] node-02")  # lab2's incidents only
    assert status.endswith("circuit breaker: 1 of 1 nodes drained/reset in the last hour")
    for _ in range(2):
        clock.t += DAY
        ask(bot, "C_LAB1", "node-01")
    # /history in lab1 lists lab1's incidents only; the 3rd Xid 79 is lab1's alone
    listing = ask(bot, "C_LAB1", "node-01", name="history")[0]
    assert listing.startswith("[lab1] History of `node-01`: 3 incident(s) on record")
    assert "#2:" not in listing and "#4:" in listing
    assert any("⚠ 3rd Xid 79 on node-01 GPU 2 in 30 days" in t for t in of_incident(out, 5))
    lab2_listing = ask(bot, "C_LAB2", "node-01", name="history")[0]
    assert lab2_listing.startswith("[lab2] History of `node-01`: 1 incident(s) on record") and "#2:" in lab2_listing


def test_the_morning_report_is_per_cluster_in_its_channel(tmp_path: Path) -> None:
    clock = Clock()
    bot, _, _, out = two_labs(tmp_path, clock=clock)
    kit1, kit2 = FakeToolkit(LAB1), FakeToolkit(LAB2)
    kit2.unreachable = {"node-08"}
    sched = Schedules(bot, clusters=[Watched("lab1", kit1, LAB1, "C_LAB1", platform="slack"),
                                     Watched("lab2", kit2, LAB2, "C_LAB2", platform="slack")],
                      state_path=str(tmp_path / "state.sqlite"))
    for _ in range(3):
        sched.health_report()
        clock.t += DAY
    reports = out.of_kind("report")
    assert [r.channel for r in reports] == ["C_LAB1", "C_LAB2"] * 3
    assert reports[-2].text.startswith("[lab1] Fleet health (4 nodes): 4 healthy")
    assert reports[-1].text.startswith("[lab2] Fleet health (8 nodes): 7 healthy · 0 degraded · 0 drained · 1 unreachable")
    assert "Cluster health report: 8 nodes" in reports[-1].text
    assert reports[-1].image_png is not None and reports[-1].filename.startswith("fleet-health-lab2-")
    kinds = {r[0] for r in bot.store.connection().execute("SELECT kind FROM snapshots")}
    assert {"fleet:lab1", "fleet:lab2", "health:lab1", "health:lab2"} <= kinds
    body = bot.store.connection().execute("SELECT body FROM snapshots WHERE kind='fleet:lab2'").fetchone()[0]
    assert json.loads(body)["counts"]["unreachable"] == 1
    # the persisted jobs: one report per cluster
    bot.config.schedule.health_report_cron = "0 8 * * *"
    sched.start()
    try:
        assert sorted(j for j, _ in sched.jobs()) == ["clusterdoc:health_report:lab1", "clusterdoc:health_report:lab2"]
    finally:
        sched.shutdown()


def test_cluster_map_refuses_a_bad_mapping() -> None:
    a = BotCluster("lab1", DrainAgent(), channels=("C1", "C2"))
    with pytest.raises(ValueError, match=r"channel 'C2' is mapped to two clusters: 'lab1' and 'lab2'"):
        ClusterMap([a, BotCluster("lab2", DrainAgent(), channels=("C2",))])
    with pytest.raises(ValueError, match="two default clusters"):
        ClusterMap([BotCluster("a", DrainAgent(), default=True), BotCluster("b", DrainAgent(), default=True)])
    with pytest.raises(ValueError, match="used twice"):
        ClusterMap([BotCluster("a", DrainAgent()), BotCluster("a", DrainAgent())])
    with pytest.raises(ValueError, match="needs a name"):
        ClusterMap([BotCluster("", DrainAgent()), BotCluster("b", DrainAgent())])
    assert split_cluster("cluster=lab2 node-05 hot") == ("lab2", "node-05 hot")
    assert split_cluster("node-05 cluster=lab2") == ("lab2", "node-05")
    assert split_cluster("node-05 hot") == (None, "node-05 hot")


def test_one_unnamed_cluster_names_nothing(tmp_path: Path) -> None:
    from tests.bot.test_safeguards import make_bot

    out = RecordingOutbox()
    bot = make_bot(tmp_path, out=out)
    assert bot.dispatch(Command("slack", "C1", "U1", "diagnose", "node-03"))[0].text.startswith("Incident #1 opened")
    bot.wait_idle(10)
    assert not any(r.text.startswith("[") for r in out.replies)
    refused = bot.dispatch(Command("slack", "C1", "U1", "diagnose", "cluster=lab2 node-03"))[0]
    assert refused.kind == "error" and "unknown cluster `lab2`" in refused.text


# -- config ------------------------------------------------------------------------------------
TWO = """
[[clusters]]
name = "lab1"
inventory = "/etc/clusterdoc/lab1.yaml"
channels = ["C_LAB1", "!lab1:example.org"]
default = true

[[clusters]]
name = "lab2"
scenario = "scenarios/gpu-power-cap.yaml"
channels = ["C_LAB2"]
report_channel = "C_LAB2_REPORTS"
"""


def test_config_lists_several_clusters(tmp_path: Path) -> None:
    from clusterdoc.config import load_config

    path = tmp_path / "c.toml"
    path.write_text('[cluster]\nscheduler = "kubernetes"\n' + TWO)
    cfg = load_config(path, env={})
    assert [(c.name, c.inventory, c.scenario, c.channels, c.default) for c in cfg.clusters] == [
        ("lab1", "/etc/clusterdoc/lab1.yaml", "", ["C_LAB1", "!lab1:example.org"], True),
        ("lab2", "", "scenarios/gpu-power-cap.yaml", ["C_LAB2"], False)]
    assert [c.scheduler for c in cfg.clusters] == ["kubernetes", "kubernetes"]  # [cluster]'s, as their default
    assert cfg.cluster_list() == cfg.clusters
    from clusterdoc.runtime import report_channel

    assert report_channel(cfg, "lab1") == "C_LAB1" and report_channel(cfg, "lab2") == "C_LAB2_REPORTS"
    # the single-inventory config is unchanged: no [[clusters]], one unnamed cluster
    path.write_text('[cluster]\ninventory = "/etc/clusterdoc/inventory.yaml"\n')
    single = load_config(path, env={})
    assert single.clusters == [] and single.cluster_list() == [single.cluster]
    assert single.cluster.inventory == "/etc/clusterdoc/inventory.yaml"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (TWO.replace('channels = ["C_LAB2"]', 'channels = ["C_LAB2", "C_LAB1"]'),
         r"clusters\[1\] \(lab2\)\.channels: channel 'C_LAB1' is mapped to two clusters: 'lab1' and 'lab2'"),
        (TWO.replace('name = "lab2"', 'name = "LAB1"'), r"clusters\[1\] \(LAB1\)\.name: 'LAB1' is used twice"),
        (TWO.replace('name = "lab2"\n', ''), r"clusters\[1\]\.name is required"),
        (TWO.replace('name = "lab2"', 'name = "lab 2"'), r"'lab 2': letters, digits"),
        (TWO.replace('scenario = "scenarios/gpu-power-cap.yaml"\n', ''), r"clusters\[1\] \(lab2\): set inventory"),
        (TWO.replace('report_channel = "C_LAB2_REPORTS"', 'report_channel = "C_LAB1"'),
         r"report_channel: 'C_LAB1' belongs to cluster 'lab1'"),
        (TWO.replace('report_channel = "C_LAB2_REPORTS"', 'default = true'), r"two defaults, 'lab1' and 'lab2'"),
        (TWO.replace('channels = ["C_LAB2"]', 'channels = "C_LAB2"'), r"clusters\[1\]\.channels: expected a list"),
        (TWO.replace('default = true', 'defualt = true'), r"unknown key clusters\[0\]\.defualt"),
        ('[cluster]\ninventory = "/x.yaml"\n' + TWO, r"\[cluster\] inventory/scenario and \[\[clusters\]\] are both set"),
        ("clusters = []\n", r"list at least one \[\[clusters\]\]"),
    ],
)
def test_bad_cluster_config_names_the_key_and_why(tmp_path: Path, text: str, message: str) -> None:
    from clusterdoc.config import ConfigError, load_config

    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path, env={})


@pytest.mark.timeout(300)
def test_the_root_builds_one_agent_per_cluster_and_each_diagnoses_its_own(tmp_path: Path) -> None:
    """Two simulated clusters through the composition root: lab1 the A800 case study (node-05 GPU 3
    throttled), lab2 a power cap on node-02 GPU 1; each channel's question reaches its own agent."""
    from clusterdoc.config import config_from_mapping
    from clusterdoc.runtime import bot_clusters, build_runtimes

    repo = Path(__file__).resolve().parents[2]
    cfg = config_from_mapping({
        "bot": {"state_path": str(tmp_path / "state.sqlite")},
        "clusters": [
            {"name": "lab1", "scenario": str(repo / "scenarios/a800-throttle.yaml"), "simulate_over_ssh": False,
             "channels": ["C_LAB1"], "default": True},
            {"name": "lab2", "scenario": str(repo / "scenarios/gpu-power-cap.yaml"), "simulate_over_ssh": False,
             "channels": ["C_LAB2"]}],
        "llm": {"backend": "none"}, "kb": {"store": "memory", "data_dir": str(tmp_path / "kb")}}, "t.toml", {})
    runtimes = build_runtimes(cfg)
    try:
        assert [(r.name, len(r.known_nodes)) for r in runtimes] == [("lab1", 8), ("lab2", 4)]
        assert runtimes[0].toolkit is not runtimes[1].toolkit and runtimes[0].agent is not runtimes[1].agent
        assert runtimes[0].kb is runtimes[1].kb  # one knowledge base (and one model) for both
        clusters = bot_clusters(cfg, runtimes)
        assert clusters is not None and [(c.name, c.channels, c.default) for c in clusters] == [
            ("lab1", ("C_LAB1",), True), ("lab2", ("C_LAB2",), False)]
        out = RecordingOutbox()
        bot = Bot(cfg.bot, Store(cfg.bot.state_path), learner=runtimes[0].learner, clusters=clusters, outbox=out)
        try:
            assert bot.dispatch(Command("slack", "C_LAB2", "U1", "diagnose", "node-05"))[0].text.startswith(
                "[lab2] unknown node `node-05`")  # lab2 has 4 nodes
            assert bot.dispatch(Command("slack", "C_LAB1", "U1", "diagnose", "node-05"))[0].text.startswith(
                "[lab1] Incident #1 opened")
            assert bot.dispatch(Command("slack", "C_LAB2", "U1", "diagnose", "node-02"))[0].text.startswith(
                "[lab2] Incident #2 opened")
            assert bot.wait_idle(240)
            causes = {i: (bot.store.diagnosis_json(i) or {}).get("cause", {}) for i in (1, 2)}
            assert (causes[1].get("fault"), causes[1].get("node"), causes[1].get("gpu")) == ("gpu_clock_throttle", "node-05", 3)
            assert (causes[2].get("fault"), causes[2].get("node"), causes[2].get("gpu")) == ("gpu_power_cap", "node-02", 1)
            assert all(t.startswith("[lab1] ") for t in of_incident(out, 1))
            assert all(t.startswith("[lab2] ") for t in of_incident(out, 2))
        finally:
            bot.close()
    finally:
        for r in runtimes:
            r.close()


def test_example_config_documents_clusters_and_its_block_loads(tmp_path: Path) -> None:
    import dataclasses
    import re

    from clusterdoc.config import NamedClusterConfig, load_config

    example = Path(__file__).resolve().parents[2] / "deploy" / "config.example.toml"
    text = example.read_text()
    for f in dataclasses.fields(NamedClusterConfig):
        assert re.search(rf"^#?\s*{f.name}\s*=.*#", text, re.MULTILINE), f"clusters.{f.name} undocumented"
    # uncomment the [[clusters]] block (and drop [cluster]'s inventory): it loads as two clusters
    start, end = text.index("# [[clusters]]"), text.index("[telemetry]")
    block = "\n".join(line[2:] if line.startswith("# ") else line for line in text[start:end].splitlines())
    block = (text[:start] + block + "\n" + text[end:]).replace('inventory = "/etc/clusterdoc/inventory.yaml"',
                                                              'inventory = ""', 1)
    path = tmp_path / "c.toml"
    path.write_text(block)
    cfg = load_config(path, env={"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"})
    assert [(c.name, c.scheduler, c.default) for c in cfg.clusters] == [("lab1", "slurm", True),
                                                                        ("lab2", "kubernetes", False)]
