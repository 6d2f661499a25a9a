"""Metric C: attribution — pick the root cause of a real error log among multiple choices.

With a model: it answers one letter (schema-constrained JSON); ``rag`` modes add records retrieved
from the knowledge base's perceivable split; ``rag-dot-selfplay`` adds a critique round.
Every mode goes through the agent's own attribution path (``pipelines.attribution.attribute``):
signature matches, retrieval expanded with their terms, evidence scores, and the model when enabled.
The knowledge base holds what ``RunContext.kb_scope`` says, never the case's own thread.
"""

from __future__ import annotations

import time
from typing import Any

from benchmark.cases import CCase
from benchmark.results import CaseResult, RunContext
from pipelines.attribution import attribute

PREPLAN = (
    "Plan: 1. Name the failing component in the log (NCCL transport, GPU, driver, memory, disk, "
    "scheduler, network). 2. Note the exact error (code, Xid, errno, signal). 3. Drop choices about "
    "another component. 4. Pick the choice that explains the exact error."
)


def score(case: CCase, ctx: RunContext) -> CaseResult:
    """Metric C through the agent's own attribution path (pipelines.attribution): signatures, the
    knowledge base (fair split in a fair run), evidence scores, and the model when one is enabled."""
    started = time.perf_counter()
    ask = None
    if ctx.llm.enabled:
        def ask(system: str, user: str, schema: dict[str, Any]) -> tuple[Any, str, dict[str, int]]:
            if ctx.mode == "preplan":
                user = PREPLAN + "\n" + user
            reply = ctx.llm.ask_json(system, user, schema)
            return reply.data, reply.text, dict(reply.tokens)
    kb = ctx.kb() if ctx.uses_kb else None
    # The packaged 270M model breaks near-ties only; a served model (Ollama, OpenAI-compatible) steers.
    result = attribute(case.log, list(case.choices), kb=kb, ask=ask, question=case.question,
                       critique=ctx.mode == "rag-dot-selfplay", model_steers=ctx.llm.backend != "llamacpp",
                       kb_splits=ctx.kb_splits(), exclude_sources=ctx.excluded(case))
    chosen = result.answer
    error = "" if chosen else "no candidate chosen"
    if result.model.get("fallback"):
        error = str(result.model["fallback"])
    raw: dict[str, Any] = {"evidence_scores": result.scores, "explanation": result.explanation,
                           "signatures": [h.id for h in result.hypotheses if h.source == "signature"]}
    if result.model:
        raw["model"] = result.model
    return CaseResult(
        id=case.id,
        metric="C",
        score=1.0 if chosen == case.answer else 0.0,
        answer={"choice": chosen, **raw, "retrieved": result.retrieved},
        expected=case.answer,
        sub_scores={"kb_hits": len(result.retrieved)},
        tokens=result.tokens,
        seconds=time.perf_counter() - started,
        error=error,
        source=case.source,
    )
