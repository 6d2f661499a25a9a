from __future__ import annotations

import pytest

from bot.alerts import alerts_from_webhook, fingerprint_of, parse_alert_text
from bot.commands import CommandError, parse_command, split_command, target_from_text
from bot.events import Alert
from bot.render import graph_outline, graph_png

NODES = [f"node-{i:02d}" for i in range(1, 17)] + ["gpu-a1", "gpu-a2"]


@pytest.mark.parametrize(
    ("text", "kind", "name", "rest"),
    [
        ("node-05", "node", "node-05", ""),
        ("NODE-05 hot since noon", "node", "node-05", "hot since noon"),
        ("job 4412 slow", "job", "4412", "slow"),
        ("job-4412", "job", "4412", ""),
        ("4412", "job", "4412", ""),
        ("llama-7b-pretrain", "job", "llama-7b-pretrain", ""),
        ("node gpu-a2", "node", "gpu-a2", ""),
    ],
)
def test_targets(text: str, kind: str, name: str, rest: str) -> None:
    parsed = parse_command("diagnose", text, NODES)
    assert (parsed.target.kind, parsed.target.name, parsed.text) == (kind, name, rest)


@pytest.mark.parametrize(("typo", "expected"), [("node-5", "node-05"), ("nod-12", "node-12"), ("node13", "node-13"),
                                                 ("gpu-a3", "gpu-a1"), ("node-99", "node-09")])
def test_unknown_nodes_get_closest_names(typo: str, expected: str) -> None:
    with pytest.raises(CommandError) as err:
        parse_command("diagnose", typo, NODES)
    assert f"unknown node `{typo}`" in str(err.value) and expected in str(err.value)


@pytest.mark.parametrize("bad", ["", "   ", "`rm -rf /`", "$(reboot)", "a;b", "x" * 300])
def test_malformed_commands_get_usage(bad: str) -> None:
    with pytest.raises(CommandError, match="usage"):
        parse_command("diagnose", bad, NODES)


def test_split_and_free_text() -> None:
    assert split_command("!diagnose node-05 now") == ("diagnose", "node-05 now")
    assert split_command("/Diagnose") == ("diagnose", "")
    assert split_command("hello") is None
    assert target_from_text("why is job 4412 slow?", NODES).name == "4412"
    assert target_from_text("is Node-07 ok", NODES).name == "node-07"
    assert target_from_text("everything is slow", NODES).kind == "none"


def test_alertmanager_default_slack_template() -> None:
    text = ("[FIRING:2] GPUClockThrottle (node-05:9400 gpu-cluster)\n*Alert:* GPU SM clock low - `critical`\n"
            "*Description:* SM clock 200 MHz\n*Details:*\n • *alertname:* `GPUClockThrottle`\n"
            " • *instance:* `node-05:9400`\n • *gpu:* `3`\n")
    alert = parse_alert_text(text, platform="slack", channel="C1", message_id="1.1")
    assert alert is not None and alert.status == "firing"
    assert alert.labels["alertname"] == "GPUClockThrottle" and alert.node == "node-05" and alert.gpu == 3
    again = parse_alert_text(text.replace("[FIRING:2]", "[FIRING:3]"), platform="slack", channel="C1")
    assert again is not None and again.fingerprint == alert.fingerprint  # same labels, same incident
    resolved = parse_alert_text(text.replace("[FIRING:2]", "[RESOLVED]"), platform="slack", channel="C1")
    assert resolved is not None and resolved.status == "resolved" and resolved.fingerprint == alert.fingerprint


def test_prometheus_style_labels_and_non_alerts() -> None:
    alert = parse_alert_text('status: firing\nDCGMXid {alertname="DCGMXid", Hostname="node-02", gpu="1"}',
                             platform="matrix", channel="!r")
    assert alert is not None and alert.labels["Hostname"] == "node-02" and alert.gpu == 1
    assert parse_alert_text("coffee is ready", platform="slack", channel="C") is None


def test_webhook_payload() -> None:
    payload = {"status": "firing", "alerts": [
        {"status": "firing", "labels": {"alertname": "X", "node": "node-03"}, "annotations": {"summary": "s"},
         "fingerprint": "abc123"},
        {"status": "resolved", "labels": {"alertname": "Y", "instance": "10.0.0.5:9100"}},
        "garbage",
    ]}
    alerts = alerts_from_webhook(payload, channel="C1")
    assert [a.status for a in alerts] == ["firing", "resolved"]
    assert alerts[0].fingerprint == "abc123" and alerts[0].node == "node-03"
    assert alerts[1].fingerprint == fingerprint_of({"alertname": "Y", "instance": "10.0.0.5:9100"})
    assert alerts[1].node == "10.0.0.5"
    assert Alert("test", "c", "firing", "f", labels={"instance": "[::1]:9100"}).node == "[::1]:9100"


def test_graph_rendering_tolerates_shapes() -> None:
    dot = {"nodes": [{"id": "P1", "kind": "proposition", "text": "GPU 3 slow"},
                     {"id": "V1", "kind": "verification", "text": "gpu_clocks: 200 MHz", "refs": ["P1"]},
                     {"id": "S1", "kind": "summary", "text": "throttled", "refs": ["V1"]}],
           "edges": [{"from": "P1", "to": "V1"}, {"from": "V1", "to": "S1"}]}
    outline = graph_outline(dot)
    assert outline.index("P1") < outline.index("V1") < outline.index("S1")
    png = graph_png(dot)
    assert png is not None and png.startswith(b"\x89PNG")
    other = {"nodes": [{"name": "a", "label": "root"}, {"name": "b", "label": "child"}], "edges": [["a", "b"]]}
    assert "  - [node] child" in graph_outline(other)
    assert (graph_png(other) or b"").startswith(b"\x89PNG")
    assert graph_outline({}) == "(no reasoning graph)" and graph_png({}) is None
