"""The benchmark's model adapter: bad backend names, no-model answers, backend failures."""

from __future__ import annotations

import pytest

from benchmark.llm import BenchLLM, available_backends

from .conftest import ScriptedLLM


def test_unknown_backend_names_the_choices() -> None:
    with pytest.raises(ValueError, match="none, llamacpp, ollama, openai"):
        BenchLLM("gpt5")


def test_none_answers_without_a_model() -> None:
    answer = BenchLLM("none").ask_json("s", "u", {"type": "object"})
    assert answer.data is None and "no model" in answer.error


def test_a_crashing_backend_is_an_error_answer_not_an_exception() -> None:
    def boom(messages: object) -> dict:
        raise ConnectionError("server down")

    answer = BenchLLM("ollama", llm=ScriptedLLM(boom)).ask_json("s", "u", {"type": "object"})
    assert answer.data is None and "ConnectionError: server down" in answer.error


def test_config_carries_model_seed_and_timeout() -> None:
    cfg = BenchLLM("ollama", model="llama3.1:70b", seed=5, timeout_s=300).config()
    assert (cfg.backend, cfg.model, cfg.seed, cfg.timeout_s, cfg.temperature) == ("ollama", "llama3.1:70b", 5, 300, 0.0)


def test_available_backends_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("CLUSTERDOC_OPENAI_BASE_URL", raising=False)
    base = available_backends()
    assert base[0] == "none" and "ollama" not in base and "openai" not in base
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:11434")
    assert "ollama" in available_backends()
