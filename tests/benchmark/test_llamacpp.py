"""One short run with the embedded model (real llama.cpp, no stand-in)."""

from __future__ import annotations

import importlib.util

import pytest

from benchmark.llm import BenchLLM
from benchmark.metrics.attribution import score
from benchmark.results import RunContext

from .test_attribution import _case

pytestmark = [
    pytest.mark.llm,
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python not installed"),
]


def test_embedded_model_answers_a_multiple_choice_question() -> None:
    ctx = RunContext(llm=BenchLLM("llamacpp", seed=1), mode="plain")
    result = score(_case(), ctx)
    assert result.tokens["prompt"] > 50  # a real prompt went through the real model
    # A 270M model may pick any letter; what must hold is that the answer was read and scored.
    assert result.answer["choice"] in {"A", "B", "C", "D"} or result.error
    assert result.score == (1.0 if result.answer["choice"] == "B" else 0.0)
