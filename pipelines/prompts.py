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
MAX_TOKENS = {"hypotheses": 72, "critique": 64, "attribution": 56, "plain": 200, "round": 900}


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


# ----- model-led rounds (capable tier, pipelines.model_rounds) -------------------------------------
def model_round_schema(max_checks: int = 4) -> dict[str, Any]:
    """One model-led round: DoT nodes citing evidence ids, claims, next checks, keywords, done.
    Tools, hosts and ids are plain strings on purpose: each is vetted on its own, so one made-up
    name is refused (and shown as refused) without losing the rest of the answer."""
    ids = {"type": "array", "items": {"type": "string", "maxLength": 16}, "maxItems": 8}
    node = {"type": "object", "properties": {"text": {"type": "string", "maxLength": 300}, "evidence": ids},
            "required": ["text", "evidence"]}
    critique = {"type": "object",
                "properties": {"text": {"type": "string", "maxLength": 300}, "evidence": ids, "drop": ids},
                "required": ["text", "evidence", "drop"]}
    claim = {"type": "object",
             "properties": {"fault": {"type": "string", "maxLength": 48}, "node": {"type": "string", "maxLength": 64},
                            "gpu": {"type": "integer", "minimum": -1, "maximum": 63}, "evidence": ids},
             "required": ["fault", "node", "gpu", "evidence"]}
    check = {"type": "object",
             "properties": {"tool": {"type": "string", "maxLength": 64},
                            "hosts": {"type": "array", "items": {"type": "string", "maxLength": 64}, "maxItems": 64},
                            "params": {"type": "object",
                                       "additionalProperties": {"type": ["string", "integer", "number", "boolean"]}},
                            "why": {"type": "string", "maxLength": 160}},
             "required": ["tool", "hosts", "params"]}
    return {
        "type": "object",
        "properties": {
            "propositions": {"type": "array", "items": node, "maxItems": 4},
            "critiques": {"type": "array", "items": critique, "maxItems": 3},
            "conclusion": node,  # the DoT summary node (not "summary": that names the plain summary's schema)
            "claims": {"type": "array", "items": claim, "maxItems": 3},
            "checks": {"type": "array", "items": check, "maxItems": max_checks},
            "keywords": {"type": "array", "items": {"type": "string", "maxLength": 40}, "maxItems": 6},
            "done": {"type": "boolean"},
        },
        # conclusion and done may be left out (no summary node yet; not done)
        "required": ["propositions", "critiques", "claims", "checks", "keywords"],
    }


def model_round_messages(round_no: int, max_rounds: int, alert: str, evidence: str, tools: Sequence[str],
                         hosts: Sequence[str], budget_left: int, cap: int, max_checks: int = 4) -> list[Message]:
    """The model leads a round: the alert and the evidence so far as tagged data (with ids), the
    read-only checks it may ask for, the cluster's hosts and the tool budget left."""
    shown_hosts = ", ".join(hosts[:48]) + (f" … ({len(hosts)} in all)" if len(hosts) > 48 else "")
    user = (
        f"Round {round_no} of at most {max_rounds}. You lead the diagnosis. Read the alert and the evidence "
        "below (each item has an id) and answer with JSON only:\n"
        "- propositions and critiques in your own words, each citing the evidence ids it rests on "
        "(an id that is not listed gets the node refused); a critique must change the next round: ask for "
        "new checks or drop hypotheses (drop: their ids);\n"
        "- claims: a cause you hold verified (fault kind, node or \"\" for cluster-wide, gpu or -1), citing "
        "the finding ids (F…) that show it; the verifier refuses a claim no finding shows;\n"
        "- conclusion: what the evidence says so far, in your words, citing ids (leave it out if nothing yet);\n"
        f"- checks: at most {max_checks} read-only checks to run next, from the list, with hosts from the "
        "cluster ([] = the incident's scope) and typed params; one already run is refused as a repeat;\n"
        "- keywords: words for the knowledge-base search of the next round;\n"
        "- done: true when the evidence settles the cause or nothing more can be checked.\n"
        f"Tool budget left: {budget_left} call(s).\n"
        f"{tag_data('alert', alert, cap=min(cap, 600))}\n"
        f"{tag_data('evidence', evidence, cap=max(cap * 2, 4000))}\n"
        "Checks you may run, name(params): what it shows:\n" + "\n".join(tools) + "\n"
        f"Cluster hosts: {shown_hosts or 'none listed'}\nAnswer with JSON only."
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
