"""`clusterdoc bot --config FILE` as a user runs it: Slack over HTTP (real Bolt, real signatures),
the Web API answered by the local stand-in, the case-study scenario as the cluster."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.testing import SlackStandIn, event_body, signed_post, slash_command_body
from tests.bot.e2e import CASE_STUDY

REPO = Path(__file__).resolve().parents[2]
SECRET = "cli-signing-secret-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(predicate, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.mark.slow
def test_bot_command_serves_slack_and_stops_cleanly(tmp_path: Path) -> None:
    standin = SlackStandIn()
    port = free_port()
    config = tmp_path / "clusterdoc.toml"
    config.write_text(f"""
[bot]
state_path = "{tmp_path / 'state.sqlite'}"
[bot.slack]
enabled = true
mode = "http"
http_host = "127.0.0.1"
http_port = {port}
base_url = "{standin.base_url}"
[bot.approvals]
approvers = ["U_APPROVER"]
[cluster]
scenario = "{CASE_STUDY}"
simulate_over_ssh = false
[llm]
backend = "none"
[kb]
data_dir = "{tmp_path / 'kb'}"
""")
    env = {**os.environ, "SLACK_BOT_TOKEN": "xoxb-cli-test", "SLACK_SIGNING_SECRET": SECRET,
           "NO_PROXY": "127.0.0.1,localhost"}
    proc = subprocess.Popen([sys.executable, "-m", "clusterdoc", "bot", "--config", str(config)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/slack/events"
    try:
        def up() -> bool:
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait(up)
        status, body, seconds = signed_post(url, slash_command_body("/diagnose", "node-05", "U_ALICE", "C_OPS"),
                                            SECRET, content_type="application/x-www-form-urlencoded")
        # acked before the work is done (the 3 s Slack deadline is measured by benchmark.speed.bot_ack)
        assert status == 200 and "Incident #1 opened: diagnosing" in body, (body, seconds)
        wait(lambda: any("React ✅" in p.get("text", "") for p in standin.calls_of("chat.postMessage")))
        proposal = next(p for p in standin.calls_of("chat.postMessage") if "React ✅" in p.get("text", ""))
        signed_post(url, event_body({"type": "reaction_added", "user": "U_APPROVER", "reaction": "white_check_mark",
                                     "item": {"type": "message", "channel": "C_OPS", "ts": proposal["_ts"]}}),
                    SECRET, content_type="application/json")
        wait(lambda: any("verified ✅" in p.get("text", "") for p in standin.calls_of("chat.postMessage")))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        standin.close()
    assert proc.returncode == 0, err[-3000:]
    assert "xoxb-cli-test" not in out + err and SECRET not in out + err  # secrets never logged
