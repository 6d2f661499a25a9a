"""Metric B scoring: the model's program is run by the hidden tests; no model -> 0, said so."""

from __future__ import annotations

from benchmark.cases import BCase
from benchmark.llm import BenchLLM
from benchmark.metrics.codegen import extract_code, score
from benchmark.results import RunContext

from .conftest import THROTTLED
from .test_sandbox import RIGHT, TESTS


def _case() -> BCase:
    return BCase(id="b-x", file="f", line=1, task="find throttled GPUs", entry_point="find_throttled",
                 tests=TESTS, scenario=THROTTLED, timeout_s=20)


def test_right_program_passes_and_wrong_fails(scripted) -> None:
    right = score(_case(), RunContext(llm=scripted(lambda m: {"code": RIGHT}), mode="plain"))
    wrong = score(_case(), RunContext(llm=scripted(lambda m: {"code": "def find_throttled(e, h):\n    return []\n"}),
                                      mode="plain"))
    assert right.score == 1.0 and right.answer["run"]["passed"] and right.tokens["prompt"] == 11
    assert wrong.score == 0.0 and "AssertionError" in wrong.error


def test_no_model_scores_zero_and_says_why() -> None:
    result = score(_case(), RunContext(llm=BenchLLM("none"), mode="plain"))
    assert result.score == 0.0 and "no model" in result.error and result.sub_scores["ran"] is False


def test_empty_answer_is_a_failed_case(scripted) -> None:
    result = score(_case(), RunContext(llm=scripted(lambda m: None), mode="plain"))
    assert result.score == 0.0 and result.error


def test_code_is_taken_from_a_fenced_block() -> None:
    assert extract_code(None, "here:\n```python\nx = 1\n```\nbye") == "x = 1\n"
    assert extract_code({"code": "y = 2"}, "") == "y = 2"
