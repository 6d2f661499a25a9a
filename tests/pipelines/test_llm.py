import socket

import pytest

from pipelines.api import DiagnosisRequest
from pipelines.config import AgentConfig, LLMConfig
from pipelines.llm import make_llm
from pipelines.llm.base import check_schema, extract_json_object, fold_system, json_reply
from tests.pipelines.fakecluster import make_agent

SCHEMA = {
    "type": "object",
    "properties": {"hosts": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
                   "fault": {"type": "string", "enum": ["gpu_clock_throttle", "disk_full"]}},
    "required": ["hosts", "fault"],
}


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_json_helpers() -> None:
    assert extract_json_object('sure! ```json\n{"a": 1}\n``` bye') == {"a": 1}
    assert extract_json_object("no json here") is None
    assert check_schema({"hosts": [], "fault": "x"}, SCHEMA).endswith("is not one of ['gpu_clock_throttle', 'disk_full']")
    assert check_schema({"hosts": ["a"], "fault": "disk_full"}, SCHEMA) == ""
    assert "empty answer" in json_reply("", SCHEMA, 1, 0, 0.0).error
    assert fold_system([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]) == [{"role": "user", "content": "S\n\nU"}]


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"llm\.backend"):
        LLMConfig(backend="gpt5")
    with pytest.raises(ValueError, match=r"agent\.mode"):
        AgentConfig(mode="yolo")


def test_none_backend_says_so() -> None:
    reply = make_llm(LLMConfig(backend="none")).generate_json([{"role": "user", "content": "x"}], SCHEMA)
    assert reply.data is None and "no model" in reply.error


@pytest.mark.parametrize("backend", ["ollama", "openai"])
def test_server_down_is_a_clear_error_not_a_raise(backend: str) -> None:
    """Only a closed port. Real answers: the OpenAI-compatible backend against llama.cpp's server, the
    Ollama backend against a stand-in for Ollama's API (no real Ollama server can run here), both in
    tests/integration/test_llama_server.py."""
    host = f"http://127.0.0.1:{_closed_port()}" + ("/v1" if backend == "openai" else "")
    llm = make_llm(LLMConfig(backend=backend, host=host, timeout_s=3))
    reply = llm.generate_json([{"role": "user", "content": "hi"}], SCHEMA)
    assert reply.data is None and "127.0.0.1" in reply.error


@pytest.mark.llm
def test_llamacpp_schema_output_parses() -> None:
    llm = make_llm(LLMConfig(backend="llamacpp", max_tokens=48, timeout_s=240))
    reply = llm.generate_json(
        [{"role": "system", "content": "Answer in JSON."},
         {"role": "user", "content": "GPU 3 on node-05 runs at 200 MHz. Which hosts and which fault?"}],
        SCHEMA,
    )
    assert reply.error == "" and reply.data is not None
    assert reply.data["fault"] in ("gpu_clock_throttle", "disk_full")
    assert reply.prompt_tokens > 10 and reply.completion_tokens > 0


@pytest.mark.llm
def test_agent_with_real_embedded_model_stays_evidence_verified() -> None:
    llm = make_llm(LLMConfig(backend="llamacpp", max_tokens=64, timeout_s=240))
    agent, _, _ = make_agent({("node-05", "gpu_clock_throttle"): 3}, llm=llm)
    d = agent.diagnose(DiagnosisRequest("Job llama-7b-pretrain: step time up 3x in the last 20 minutes"))
    assert d.llm == "llamacpp" and d.tokens["prompt"] > 0
    assert (d.cause.fault, d.cause.node, d.cause.gpu) == ("gpu_clock_throttle", "node-05", 3) and d.verified
    assert d.timings["invocations_to_cause"] <= 3


def test_slow_server_times_out_with_a_clear_error() -> None:
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]
    held: list[socket.socket] = []

    def accept_and_stall() -> None:
        try:
            conn, _ = srv.accept()
            held.append(conn)  # read nothing, answer nothing
        except OSError:
            pass

    threading.Thread(target=accept_and_stall, daemon=True).start()
    llm = make_llm(LLMConfig(backend="openai", host=f"http://127.0.0.1:{port}/v1", timeout_s=1.5))
    reply = llm.generate_json([{"role": "user", "content": "hi"}], SCHEMA)  # the server never answers
    assert reply.data is None and "Timeout" in reply.error
    srv.close()
    for c in held:
        c.close()


def test_truncated_json_is_repaired_without_half_values() -> None:
    from pipelines.llm.base import repair_truncated_json

    text = '{ "fault": "gpu_clock_throttle", "hosts": [ "node-05", "10.10.10.10", "10.1'
    assert repair_truncated_json(text) == {"fault": "gpu_clock_throttle", "hosts": ["node-05", "10.10.10.10"]}
    assert json_reply(text, SCHEMA, 1, 1, 0.0).data == {"fault": "gpu_clock_throttle", "hosts": ["node-05", "10.10.10.10"]}
    assert json_reply('{"hosts": ["a", "b', SCHEMA, 1, 1, 0.0).error  # the required "fault" never came
    assert repair_truncated_json("no json") is None
