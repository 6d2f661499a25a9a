"""The model's capability tier: a self-test at warm-up, pinnable in config."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from pipelines.llm.base import LLMReply, NoLLM
from pipelines.llm.capability import probe


class _Scripted:
    name = "scripted"

    def __init__(self, answer: Callable[[str], dict[str, Any] | None], tokens: int = 20, seconds: float = 0.5):
        self.answer, self.tokens, self.seconds = answer, tokens, seconds

    def warm_up(self) -> None:
        return None

    def generate_json(self, messages: Sequence[dict[str, str]], schema: dict[str, Any],
                      max_tokens: int | None = None) -> LLMReply:
        data = self.answer(messages[-1]["content"])
        return LLMReply(data, "", 10, self.tokens, "" if data is not None else "no JSON", self.seconds)

    def generate_text(self, messages: Sequence[dict[str, str]], max_tokens: int | None = None) -> LLMReply:
        return LLMReply(None, "", error="unused")


def _right(prompt: str) -> dict[str, Any]:
    if "Which of these is a GPU" in prompt:
        return {"answer": "B"}
    if "host names" in prompt:
        return {"hosts": ["node-07", "node-09"]}
    return {"throttled": True}


def test_a_model_that_answers_every_probe_quickly_is_capable() -> None:
    cap = probe(_Scripted(_right))  # type: ignore[arg-type]
    assert cap.tier == "capable" and cap.passed == 3 and cap.steers


def test_wrong_slow_or_broken_answers_make_it_narrow() -> None:
    assert probe(_Scripted(lambda p: {"answer": "A", "hosts": [], "throttled": False})).tier == "narrow"  # type: ignore[arg-type]
    assert probe(_Scripted(_right, tokens=1, seconds=5.0)).tier == "narrow"  # type: ignore[arg-type]
    broken = probe(_Scripted(lambda p: None))  # type: ignore[arg-type]
    assert broken.tier == "narrow" and broken.passed == 0 and "no JSON" in broken.note


def test_no_model_and_pinned_tiers() -> None:
    assert probe(NoLLM()).tier == "none"
    assert probe(_Scripted(lambda p: None), pinned="capable").tier == "capable"  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"llm\.tier"):
        probe(_Scripted(_right), pinned="genius")  # type: ignore[arg-type]
