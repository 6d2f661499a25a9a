"""The OpenAI-compatible backend against a real server: ``python -m llama_cpp.server`` on 127.0.0.1
serving the packaged gemma3 270M GGUF (the ``llm`` extra brings the server's dependencies).

Covered: a full diagnosis of the case study through ``clusterdoc diagnose --llm openai --json``
(evidence-verified, tokens counted, the tier shown in the JSON and the thread), streamed answers,
a timeout, and a server killed while a request is in flight (before any answer, and mid-stream).
The Ollama backend runs against ``OllamaStandIn`` (ours, not Ollama: no real Ollama server can run
here; see tests/integration/llamaserver.py) in front of the same server.
The kill goes through a small TCP relay so that it lands while the request is in flight by
construction, not by timing. Nothing here asserts wall time.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.render import diagnosis_text
from clusterdoc.cli import main as clusterdoc_main
from pipelines.api import Diagnosis, DiagnosisRequest
from pipelines.config import AgentConfig, LLMConfig
from pipelines.llm import make_llm
from pipelines.runtime import build_agent, scenario_target
from tests.integration.llamaserver import LlamaServer, OllamaStandIn

pytestmark = [pytest.mark.llm, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
CASE_STUDY = REPO / "scenarios" / "a800-throttle.yaml"
ALERT = "Job llama-7b-pretrain: step time up 3x in the last 20 minutes"
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string", "enum": ["A", "B", "C", "D"]}},
          "required": ["answer"]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    srv = LlamaServer(tmp_path_factory.mktemp("llama-server") / "server.log")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[LlamaServer]:
    """A server of its own, for the tests that kill it."""
    srv = LlamaServer(tmp_path / "server.log")
    try:
        yield srv
    finally:
        srv.stop()


class KillingRelay:
    """A TCP relay in front of the server. Once armed, the next chat-completion request kills the
    server (SIGKILL) either as soon as the request has been handed to it (``on="request"``: no
    answer has started) or when the first bytes of its answer arrive (``on="response"``: a streamed
    answer has started); the client's connection is then cut, as a dying server's would be."""

    def __init__(self, server: LlamaServer, on: str) -> None:
        self.server, self.on = server, on
        self.armed = False
        self.killed = threading.Event()
        self.forwarded_before_kill = 0  # answer bytes the client got before the kill
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _kill(self) -> None:
        if not self.killed.is_set():
            self.server.kill()
            self.killed.set()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.server.port), timeout=600)
        except OSError:  # the server is gone: the client sees a closed connection
            client.close()
            return
        chat = threading.Event()

        def down() -> None:  # server -> client
            try:
                while data := upstream.recv(65536):
                    if self.killed.is_set():
                        break
                    if self.armed and chat.is_set() and self.on == "response":
                        client.sendall(data)
                        self.forwarded_before_kill += len(data)
                        self._kill()
                        break
                    client.sendall(data)
            except OSError:
                pass
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            client.close()

        threading.Thread(target=down, daemon=True).start()
        try:
            while data := client.recv(65536):
                upstream.sendall(data)
                if self.armed and b"/chat/completions" in data:
                    chat.set()
                    if self.on == "request":
                        self._kill()
                        break
        except OSError:
            pass
        with contextlib.suppress(OSError):
            upstream.close()

    def close(self) -> None:
        self._listener.close()


def _case_study(config: LLMConfig, *, arm: KillingRelay | None = None) -> Diagnosis:
    target = scenario_target(str(CASE_STUDY))
    try:
        agent = build_agent(target, AgentConfig(llm=config))
        agent.warm_up()  # the self-test runs before the relay is armed
        if arm is not None:
            arm.armed = True
        return agent.diagnose(DiagnosisRequest(ALERT, source="cli"))
    finally:
        target.close()


def _is_the_case_study_answer(d: Diagnosis) -> None:
    assert d.verdict == "verified" and d.verified
    assert (d.cause.fault, d.cause.node, d.cause.gpu) == ("gpu_clock_throttle", "node-05", 3)
    assert d.proposals and d.proposals[0].steps[0].tool == "reset_gpu_clocks"
    assert d.plain_summary.startswith("The problem is") or d.llm_tier == "capable"


def test_the_cli_diagnoses_the_case_study_through_the_server(server: LlamaServer, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-secret-0042")
    code = clusterdoc_main(["diagnose", "--scenario", str(CASE_STUDY), "--llm", "openai", "--model", "gemma",
                            "--no-kb", "--json", "--alert", ALERT])
    out = capsys.readouterr()
    assert code == 1, out.err
    data = json.loads(out.out)
    d = Diagnosis.from_dict(data)
    _is_the_case_study_answer(d)  # the evidence still decides
    assert d.llm == "openai" and d.tokens["prompt"] > 0 and d.tokens["completion"] > 0  # the server's usage
    assert data["llm_tier"] in ("narrow", "capable") and data["llm_capability"]["probes"] == 3
    assert not data["llm_capability"]["pinned"] and "probes right" in data["llm_capability"]["note"]
    assert f"model openai ({d.llm_tier} tier)" in diagnosis_text(1, d)
    assert "sk-test-not-a-secret-0042" not in out.out + out.err  # the key never shows
    print(f"tier of the packaged 270M model through llama_cpp.server: {d.llm_tier} ({data['llm_capability']['note']})")


def test_streamed_answers_through_the_server(server: LlamaServer) -> None:
    config = LLMConfig(backend="openai", host=server.url, model="gemma", stream=True, fold_system=True,
                       timeout_s=240, tier="narrow")
    llm = make_llm(config)
    reply = llm.generate_json([{"role": "system", "content": "Answer with JSON."},
                               {"role": "user", "content": "Which is a GPU? A. NIC B. H100 C. CPU D. switch. "
                                                           'Answer {"answer": letter}.'}], SCHEMA, max_tokens=24)
    assert reply.ok and reply.data is not None and reply.data["answer"] in "ABCD", reply.error
    assert reply.completion_tokens > 0 and reply.prompt_tokens > 0
    # llama-cpp-python's server refuses response_format json_schema: the backend moved to json_object + schema
    assert getattr(llm, "_format", "") == "json_object"
    d = _case_study(config)
    _is_the_case_study_answer(d)
    assert d.tokens["prompt"] > 0 and d.tokens["completion"] > 0 and d.llm_tier == "narrow"


def test_a_timeout_ends_on_evidence_and_names_the_model_failure(server: LlamaServer) -> None:
    d = _case_study(LLMConfig(backend="openai", host=server.url, model="gemma", timeout_s=0.05))
    _is_the_case_study_answer(d)
    assert d.llm_tier == "narrow" and d.llm_capability["passed"] == 0 and "Timeout" in d.llm_capability["note"]
    assert d.degraded.startswith("model failed 2 time(s)") and "APITimeoutError" in d.degraded
    assert "(evidence-only: model failed 2 time(s)" in diagnosis_text(3, d)


@pytest.mark.parametrize("on", ["request", "response"])
def test_a_server_killed_mid_request_ends_on_evidence(own_server: LlamaServer, on: str) -> None:
    relay = KillingRelay(own_server, on)
    try:
        # tier auto: the self-test at warm-up (before the relay is armed) also teaches the backend
        # which response_format this server takes, so the armed request is the agent's own
        config = LLMConfig(backend="openai", host=relay.url, model="gemma", stream=(on == "response"),
                           timeout_s=240)
        d = _case_study(config, arm=relay)
    finally:
        relay.close()
    assert relay.killed.is_set() and own_server.proc.poll() is not None  # the server really died in flight
    _is_the_case_study_answer(d)
    assert d.degraded.startswith("model failed 2 time(s)"), d.degraded
    first = d.degraded.split("; last: ")[0]
    assert relay.url in first
    if on == "response":  # the answer had started streaming
        assert relay.forwarded_before_kill > 0 and "failed mid-answer" in first
    else:  # the request was in flight, no answer had started
        assert "APIConnectionError" in first and "disconnected" in first.lower()
    text = diagnosis_text(4, d)
    assert "(evidence-only: model failed 2 time(s)" in text and relay.url in text


def test_ollama_backend_through_a_stand_in_ollama_api_not_ollama_itself(server: LlamaServer) -> None:
    """What this covers: the Ollama backend's real client stack (ollama-haystack -> ollama) speaking
    Ollama's /api/chat wire format, and a real model's answers coming back through it. What it does
    not: Ollama itself (its chat templates, its schema-constrained decoding), which cannot run here."""
    stand_in = OllamaStandIn(server.url)
    try:
        d = _case_study(LLMConfig(backend="ollama", host=stand_in.url, model="gemma3:270m", timeout_s=240,
                                  tier="narrow"))
    finally:
        stand_in.close()
    _is_the_case_study_answer(d)
    assert d.llm == "ollama" and d.tokens["prompt"] > 0 and d.tokens["completion"] > 0
    assert d.llm_tier == "narrow" and d.llm_capability["pinned"]  # pinned in config: no self-test
    sent = stand_in.requests
    assert len(sent) >= 2 and all(r["model"] == "gemma3:270m" and r.get("stream") is False for r in sent)
    structured = [r for r in sent if isinstance(r.get("format"), dict)]  # the JSON schema as Ollama's format
    assert structured and all(r["format"].get("type") == "object" for r in structured)
    assert any(r.get("options", {}).get("num_predict") for r in sent) and all(
        r.get("options", {}).get("seed") == 7 for r in sent)
