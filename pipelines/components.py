"""The agent's steps as Haystack components (typed inputs/outputs, cheap ``__init__``, heavy
``warm_up``). ``pipelines.agent.Agent`` drives them in a small self-play loop; each can also be put
in a ``haystack.Pipeline`` on its own (see ``round_one_pipeline``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from haystack import Pipeline, component

from diagnostics.types import Finding, Status, ToolResult, ValidationError
from pipelines.extract import Entities, extract_entities, merge_model_entities
from pipelines.llm.base import LLM, LLMReply, Message
from pipelines.planner import ToolPlan


@component
class EntityExtractor:
    """Round 1, deterministic: entities, symptom keywords and fault priors from the text."""

    def __init__(self, known_hosts: Sequence[str] = ()) -> None:
        self.known_hosts = list(known_hosts)

    @component.output_types(entities=Entities, query=str)
    def run(self, text: str) -> dict[str, Any]:
        ent = extract_entities(text, self.known_hosts)
        query = " ".join([*ent.keywords, text[:400]]).strip()
        return {"entities": ent, "query": query}


@component
class KBLookup:
    """Round 1, retrieval: records of past failures (perceivable split unless configured)."""

    def __init__(self, kb: Any, top_k: int = 5, splits: Sequence[str] = ("perceivable",)) -> None:
        self.kb = kb
        self.top_k = top_k
        self.splits = tuple(splits)

    def warm_up(self) -> None:
        if self.kb is not None and hasattr(self.kb, "warm_up"):
            self.kb.warm_up()

    @component.output_types(hits=list, error=str)
    def run(self, query: str) -> dict[str, Any]:
        if self.kb is None or not query.strip():
            return {"hits": [], "error": "" if self.kb is not None else "no knowledge base"}
        try:
            hits = self.kb.search(query[:2000], top_k=self.top_k, splits=self.splits)
        except TypeError:  # a KB without the splits argument
            hits = self.kb.search(query[:2000], top_k=self.top_k)
        except Exception as exc:  # a KB that is down must not stop the diagnosis
            return {"hits": [], "error": f"knowledge base search failed: {type(exc).__name__}: {exc}"}
        hits = [h for h in hits if getattr(h.record, "split", "perceivable") in self.splits]
        return {"hits": hits, "error": ""}


@component
class ModelStep:
    """One schema-constrained model call; counts tokens and failures; never raises."""

    def __init__(self, llm: LLM) -> None:
        self.llm = llm

    @component.output_types(reply=LLMReply)
    def run(self, messages: list[Message], schema: dict[str, Any], max_tokens: int | None = None) -> dict[str, Any]:
        try:
            try:
                reply = self.llm.generate_json(messages, schema, max_tokens=max_tokens)
            except TypeError:  # a backend without per-call budgets
                reply = self.llm.generate_json(messages, schema)
        except Exception as exc:  # a backend bug is reported like a server failure
            reply = LLMReply(None, "", error=f"{getattr(self.llm, 'name', 'llm')} failed: {type(exc).__name__}: {exc}")
        return {"reply": reply}


@component
class MergeModelEntities:
    def __init__(self, known_hosts: Sequence[str] = ()) -> None:
        self.known_hosts = list(known_hosts)

    @component.output_types(entities=Entities, notes=list)
    def run(self, entities: Entities, text: str, reply: LLMReply | None = None) -> dict[str, Any]:
        notes = merge_model_entities(entities, reply.data if reply is not None else None, text, self.known_hosts)
        return {"entities": entities, "notes": notes}


@component
class CheckRunner:
    """Round 2: runs one planned read-only check on all its hosts (one invocation)."""

    def __init__(self, toolkit: Any, concurrency: int = 32) -> None:
        self.toolkit = toolkit
        self.concurrency = concurrency

    @component.output_types(results=list, findings=list, seconds=float)
    def run(self, plan: ToolPlan) -> dict[str, Any]:
        started = time.monotonic()
        results: list[ToolResult] = []
        try:
            spec = self.toolkit.registry.get(plan.tool)
        except ValidationError as exc:
            results = [ToolResult(plan.tool, h, Status.ERROR, error=f"refused: {exc}") for h in plan.hosts]
            return {"results": results, "findings": [], "seconds": time.monotonic() - started}
        if not spec.read_only:  # the agent itself never runs a mutating tool
            results = [ToolResult(plan.tool, h, Status.ERROR, error=f"refused: {plan.tool} is mutating; it needs an approved proposal") for h in plan.hosts]
            return {"results": results, "findings": [], "seconds": time.monotonic() - started}
        if plan.per_host_params:

            def one(host: str) -> ToolResult:
                params = {**plan.params, **plan.per_host_params.get(host, {})}
                return self.toolkit.run(plan.tool, host, params)

            with ThreadPoolExecutor(max_workers=max(1, min(self.concurrency, len(plan.hosts)))) as pool:
                results = list(pool.map(one, plan.hosts))
            findings = [f for r in results for f in r.findings]
        else:
            try:
                report = self.toolkit.sweep(plan.hosts, tools=[plan.tool], tool_params={plan.tool: plan.params},
                                            concurrency=self.concurrency)
                results = report.all_results()
                findings = report.findings()
            except ValidationError as exc:
                results = [ToolResult(plan.tool, h, Status.ERROR, error=str(exc)) for h in plan.hosts]
                findings = []
        return {"results": results, "findings": findings, "seconds": time.monotonic() - started}


def round_one_pipeline(known_hosts: Sequence[str], kb: Any, top_k: int = 5, splits: Sequence[str] = ("perceivable",)) -> Pipeline:
    """Extraction -> retrieval as a Haystack Pipeline (used by the CLI's explain mode and tests)."""
    pipe = Pipeline()
    pipe.add_component("extract", EntityExtractor(known_hosts))
    pipe.add_component("kb", KBLookup(kb, top_k, splits))
    pipe.connect("extract.query", "kb.query")
    return pipe


def findings_of(results: Sequence[ToolResult]) -> list[Finding]:
    return [f for r in results for f in r.findings]
