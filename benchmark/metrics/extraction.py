"""Metric A: information extraction — hosts, SSH ports and needs-execution from a chat message.

Both extractors are the agent's own (``pipelines.contacts``): the model (schema-constrained JSON)
and the deterministic one (regular expressions plus clause-level "ignore ..." handling) used with
``--llm none``; no benchmark-only extractor. Scoring compares
hosts and ports as sets and needs_execution exactly; strict = all three right.
"""

from __future__ import annotations

import time
from typing import Any

from benchmark.cases import ACase
from benchmark.results import CaseResult, RunContext
from pipelines.contacts import PREPLAN, SCHEMA, SYSTEM, Extraction, normalize_answer, regex_extract


def model_extract(case: ACase, ctx: RunContext) -> tuple[Extraction | None, dict[str, Any], str]:
    """Ask the model (mode-dependent prompt); returns (extraction, tokens, raw text/error)."""
    user = f"<message>\n{case.conversation}\n</message>"
    if ctx.mode == "preplan":
        user = PREPLAN + "\n" + user
    first = ctx.llm.ask_json(SYSTEM, user, SCHEMA)
    tokens = dict(first.tokens)
    result = normalize_answer(first.data)
    raw = first.text or first.error
    if ctx.mode == "rag-dot-selfplay":
        # Self-play: the model critiques its first answer against the deterministic extractor's
        # and settles on one final answer (round 2 of the method's self-play, for extraction).
        baseline = regex_extract(case.conversation)
        critique = (
            user
            + "\n<first_answer>"
            + (str(result.to_dict()) if result else raw[:500])
            + "</first_answer>\n<pattern_answer>"
            + str(baseline.to_dict())
            + "</pattern_answer>\nCheck both answers against the message: drop ignored addresses and "
            "non-SSH ports, add missing ones. Give the final JSON."
        )
        second = ctx.llm.ask_json(SYSTEM, critique, SCHEMA)
        tokens = {k: tokens[k] + second.tokens[k] for k in tokens}
        final = normalize_answer(second.data)
        if final is not None:
            result, raw = final, second.text or raw
        elif result is None:
            result = baseline  # the model failed twice: the evidence-only answer stands
    return result, tokens, raw


def score(case: ACase, ctx: RunContext) -> CaseResult:
    started = time.perf_counter()
    tokens = {"prompt": 0, "completion": 0}
    error = ""
    if ctx.llm.enabled:
        got, tokens, raw = model_extract(case, ctx)
        if got is None:
            error = f"no usable JSON from the model: {raw[:200]}"
    else:
        got, raw = regex_extract(case.conversation), ""
    expected = Extraction(case.hosts, case.ssh_ports, case.needs_execution)
    hosts_ok = got is not None and got.hosts == expected.hosts
    ports_ok = got is not None and got.ssh_ports == expected.ssh_ports
    exec_ok = got is not None and got.needs_execution == expected.needs_execution
    strict = hosts_ok and ports_ok and exec_ok
    return CaseResult(
        id=case.id,
        metric="A",
        score=1.0 if strict else 0.0,
        answer={"extracted": got.to_dict() if got else None, "raw": raw[:2000]},
        expected=expected.to_dict(),
        sub_scores={"hosts": hosts_ok, "ssh_ports": ports_ok, "needs_execution": exec_ok},
        tokens=tokens,
        seconds=time.perf_counter() - started,
        error=error,
        source=case.source,
    )
