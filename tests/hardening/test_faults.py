"""Faults around an incident: the model server stops in the middle of a diagnosis, the chat API
answers with errors and rate limits, the SQLite file is locked by another process for a while.
Each time the incident continues (or fails with a clear message) and nothing is lost."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bot.config import BotConfig
from bot.core import Bot
from bot.events import Command, Reaction, Reply
from bot.store import Store
from tests.bot.e2e import make_services
from tests.hardening.figures import record


def _fill(schema: dict[str, Any]) -> Any:
    """A plausible schema-valid answer (what a small real model would send)."""
    if "enum" in schema:
        return "gpu_clock_throttle" if "gpu_clock_throttle" in schema["enum"] else schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {k: _fill(v) for k, v in (schema.get("properties") or {}).items()}
    if kind == "array":
        item = schema.get("items") or {}
        return [_fill(item)] if item.get("type") != "string" or "enum" in item else ["node-05"]
    if kind == "integer":
        return 3
    return "GPU 3 on node-05 looks throttled"


class DyingModelServer:
    """An OpenAI-compatible chat endpoint on 127.0.0.1 that answers ``answers`` requests and then
    stops listening (the model server crashed mid-diagnosis)."""

    def __init__(self, answers: int = 1) -> None:
        self.answers = answers
        self.requests = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                owner.requests += 1
                schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema") or {}
                content = json.dumps(_fill(schema)) if schema else "ok"
                payload = json.dumps({
                    "id": "c1", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": content}}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(payload)
                if owner.requests >= owner.answers:
                    threading.Thread(target=owner.stop, daemon=True).start()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.stopped = threading.Event()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if not self.stopped.is_set():
            self.stopped.set()
            self.server.shutdown()
            self.server.server_close()


def _bot(tmp_path: Path, services: Any, outbox: Any, **kw: Any) -> Bot:
    cfg = BotConfig(workers=2)
    cfg.approvals.approvers = ["U_APPROVER"]
    return Bot(cfg, Store(tmp_path / "state.sqlite"), services.agent, services.remediator, learner=services.learner,
               known_nodes=services.nodes, outbox=outbox, send_backoff_s=0.01, **kw)


class Recorder:
    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.lock = threading.Lock()

    def __call__(self, reply: Reply) -> str:
        with self.lock:
            self.replies.append(reply)
            return f"m{len(self.replies)}"


@pytest.mark.timeout(120)
def test_model_server_stops_mid_diagnosis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.agent import Agent
    from pipelines.config import AgentConfig, LLMConfig
    from pipelines.llm import make_llm

    monkeypatch.setenv("OPENAI_API_KEY", "sk-hardening-test")
    model = DyingModelServer(answers=1)
    services = make_services(tmp_path)
    llm = make_llm(LLMConfig(backend="openai", host=model.url, timeout_s=5))
    services.agent = Agent(AgentConfig(), services.agent.toolkit, services.kb, llm, hosts=services.nodes)
    out = Recorder()
    bot = _bot(tmp_path, services, out)
    try:
        bot.dispatch(Command("test", "C_OPS", "U_ALICE", "diagnose", "node-05 training slow"))
        assert bot.wait_idle(90)
        incident = bot.store.incidents()[0]
        diagnosis = bot.store.diagnosis_json(incident.id) or {}
    finally:
        bot.close()
        services.close()
        model.stop()
    assert model.requests == 1 and model.stopped.is_set()  # it answered once, then died
    assert diagnosis.get("cause", {}).get("fault") == "gpu_clock_throttle"  # the diagnosis went on
    # the model's failure is stated (degraded note, or the reasoning graph's notes), naming the server
    said = diagnosis.get("degraded", "") + json.dumps(diagnosis.get("graph", {}))
    assert model.url in said and "failed" in said, said[-500:]
    assert incident.status == "proposed" and bot.store.proposals(incident.id)
    record("model server killed mid-diagnosis: diagnosis completed (evidence only)", "yes", target="yes",
           group="faults")


@pytest.mark.timeout(120)
def test_chat_api_errors_and_rate_limits_lose_nothing(tmp_path: Path) -> None:
    from bot.adapters.slack import SlackAdapter
    from bot.config import SlackConfig
    from bot.testing import SlackStandIn

    standin = SlackStandIn()
    services = make_services(tmp_path)
    bot = _bot(tmp_path, services, None)
    adapter = SlackAdapter(bot, SlackConfig(enabled=True, mode="http", base_url=standin.base_url,
                                            bot_token="xoxb-hardening", signing_secret="s" * 32))
    try:
        # rate limits (retried by the client), then an outage: every call answers {"ok": false}
        standin.fail_next("chat.postMessage", 429, 429, *([200] * 400))
        bot.dispatch(Command("slack", "C_OPS", "U_ALICE", "diagnose", "node-05"))
        assert bot.wait_idle(90)
        posted_during_outage = len(standin.calls_of("chat.postMessage"))
        deferred = len(bot.store.outbox_items())
        standin.failures.clear()  # the API recovers
        sent = bot.flush_outbox()
        posts = standin.calls_of("chat.postMessage")
        proposal = next(p for p in posts if "React ✅" in str(p.get("text")))
        # the proposal delivered late is still approvable: its message id was bound at delivery
        bot.dispatch(Reaction("slack", "C_OPS", "U_APPROVER", "white_check_mark", str(proposal["_ts"])))
        assert bot.wait_idle(60)
        executions = bot.store.executions()
        # a short blip (one 500, one 429) is absorbed by the client's retries: nothing deferred
        before = len(standin.calls_of("chat.postMessage"))
        standin.fail_next("chat.postMessage", 500, 429)
        bot.dispatch(Command("slack", "C_OPS", "U_ALICE", "diagnose", "node-02"))
        assert bot.wait_idle(60)
        blip_posts = len(standin.calls_of("chat.postMessage")) - before
        blip_deferred = len(bot.store.outbox_items())
    finally:
        adapter.close()
        bot.close()
        standin.close()
        services.close()
    record("chat API outage: replies kept and delivered after recovery", f"{sent}/{deferred}", target="all",
           group="faults")
    assert posted_during_outage == 0 and deferred > 0 and sent == deferred
    assert not bot.store.outbox_items()
    assert len(executions) == 1 and executions[0]["verified"] == 1
    assert blip_posts > 0 and blip_deferred == 0


LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN EXCLUSIVE")
print("LOCKED", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


@pytest.mark.timeout(120)
def test_sqlite_locked_by_another_process_for_a_while(tmp_path: Path) -> None:
    services = make_services(tmp_path)
    out = Recorder()
    bot = _bot(tmp_path, services, out)
    lock_s = 3.0
    try:
        locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(tmp_path / "state.sqlite"), str(lock_s)],
                                  stdout=subprocess.PIPE, text=True)
        assert locker.stdout is not None and locker.stdout.readline().strip() == "LOCKED"
        started = time.monotonic()
        acks = bot.dispatch(Command("test", "C_OPS", "U_ALICE", "diagnose", "node-05"))
        waited = time.monotonic() - started
        locker.wait(timeout=30)
        assert bot.wait_idle(60)
        incidents = bot.store.incidents()
        proposals = bot.store.proposals()
    finally:
        bot.close()
        services.close()
    record("SQLite locked by another process: incident waited, then continued", f"{waited:.1f}s wait",
           target=f"~{lock_s:g}s, nothing lost", group="faults")
    assert waited >= lock_s * 0.8  # it waited for the lock instead of failing
    assert acks and acks[0].kind != "error", acks
    assert len(incidents) == 1 and incidents[0].status == "proposed" and proposals
    assert any(r.kind == "proposal" for r in out.replies)
