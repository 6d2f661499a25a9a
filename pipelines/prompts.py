"""Prompts and their JSON schemas for the three self-play rounds.

Untrusted text enters only through ``safety.tag_data``; every answer is a schema-constrained JSON
object whose enums come from the registry and the fault table, so the model can only pick names
that exist. Prompts are short because the embedded model runs on two CPU cores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipelines.faults import FAULT_KINDS
from pipelines.llm.base import Message
from pipelines.safety import DATA_RULE, tag_data

SYSTEM = "You are clusterdoc, a GPU cluster diagnosis assistant. " + DATA_RULE
# Completion budgets per round: the JSON answers are short, and the embedded model is slow.
MAX_TOKENS = {"hypotheses": 72, "critique": 64, "attribution": 56, "plain": 200}


def hypothesis_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "hosts": {"type": "array", "items": {"type": "string", "maxLength": 40}, "maxItems": 2},
            "gpus": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 63}, "maxItems": 2},
            "keywords": {"type": "array", "items": {"type": "string", "maxLength": 30}, "maxItems": 3},
            "hypotheses": {"type": "array", "items": {"type": "string", "enum": list(FAULT_KINDS)}, "maxItems": 3},
        },
        "required": ["hosts", "gpus", "keywords", "hypotheses"],
    }


def hypothesis_messages(text: str, kb_snippets: Sequence[str], cap: int) -> list[Message]:
    kb = "\n".join(tag_data("kb_record", s, cap=200) for s in kb_snippets[:2])
    user = (
        "Round 1. From the alert below, list the hosts, GPU indices and keywords it mentions, and up to "
        "three likely fault kinds.\n"
        f"{tag_data('alert', text, cap=cap)}\n{kb}\nAnswer with JSON only."
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def critique_schema(tools: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "critique": {"type": "string", "maxLength": 160},
            "tools": {"type": "array", "items": {"type": "string", "enum": list(tools)}, "maxItems": 2},
        },
        "required": ["critique", "tools"],
    }


def critique_messages(hypotheses: Sequence[str], scope: str, tools: Sequence[str]) -> list[Message]:
    user = (
        "Round 2. Your hypotheses: " + ", ".join(hypotheses or ["none"]) + f".\nScope: {scope}.\n"
        "Critique them in one sentence, then choose at most two read-only checks that would prove or "
        f"refute the best one, from: {', '.join(tools)}.\nAnswer with JSON only."
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def attribution_schema(choices: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "choice": {"type": "string", "enum": [*choices, "none"]},
            "explanation": {"type": "string", "maxLength": 160},
        },
        "required": ["choice", "explanation"],
    }


def attribution_messages(text: str, evidence_lines: Sequence[str], choices: Sequence[str], cap: int) -> list[Message]:
    user = (
        "Round 3. Attribute the incident to one cause, using only the check results.\n"
        f"{tag_data('alert', text, cap=min(cap, 300))}\n"
        f"{tag_data('tool_output', chr(10).join(evidence_lines), cap=cap)}\n"
        "Candidate causes: " + "; ".join(choices) + "\nAnswer with JSON only."
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
