"""Fixtures for the benchmark tests: case files written on the fly and a scripted model."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from benchmark.llm import BenchLLM


@dataclass
class ScriptedReply:
    data: dict[str, Any] | None
    text: str = ""
    prompt_tokens: int = 11
    completion_tokens: int = 7
    error: str = ""


class ScriptedLLM:
    """Stands in for a model backend: answers each generate_json call with ``answer(messages)``."""

    name = "scripted"

    def __init__(self, answer: Callable[[list[dict[str, str]]], dict[str, Any] | None]) -> None:
        self.answer = answer
        self.calls: list[list[dict[str, str]]] = []

    def warm_up(self) -> None:
        return None

    def generate_json(self, messages: list[dict[str, str]], schema: dict[str, Any],
                      max_tokens: int | None = None) -> ScriptedReply:
        self.calls.append(list(messages))
        data = self.answer(messages)
        return ScriptedReply(data=data, text=json.dumps(data) if data is not None else "garbage")


@pytest.fixture
def scripted() -> Callable[[Callable[[list[dict[str, str]]], dict[str, Any] | None]], BenchLLM]:
    def make(answer: Callable[[list[dict[str, str]]], dict[str, Any] | None]) -> BenchLLM:
        return BenchLLM("ollama", llm=ScriptedLLM(answer))

    return make


@pytest.fixture
def write_cases(tmp_path: Path) -> Callable[..., Path]:
    def write(cases: list[Any], name: str = "cases.jsonl") -> Path:
        path = tmp_path / name
        lines = [c if isinstance(c, str) else json.dumps(c) for c in cases]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    return write


HEALTHY = {
    "id": "tiny-healthy",
    "cluster": {"nodes": 2, "gpus_per_node": 2, "gpu": "A100-SXM4-80GB", "interconnect": "infiniband",
                "scheduler": "slurm"},
    "seed": 3,
    "faults": [],
}

THROTTLED = {
    "id": "tiny-throttle",
    "cluster": {"nodes": 3, "gpus_per_node": 4, "gpu": "A100-SXM4-80GB", "interconnect": "infiniband",
                "scheduler": "slurm",
                "workload": {"kind": "llm_training", "model_params": 7.0e9, "tokens_per_step": 4194304}},
    "seed": 3,
    "faults": [{"kind": "gpu_clock_throttle", "node": "node-02", "gpu": 1, "sm_clock_mhz": 200,
                "reason": "hw_slowdown"}],
    "alert": "Job llama-7b-pretrain: step time up 3x",
    "expect": {"node": "node-02", "gpu": 1, "fault": "gpu_clock_throttle",
               "remediation": ["reset_gpu_clocks", "drain_node"]},
}
