"""Model-led rounds (issue 15, part 2): a capable model leads rounds 2..max_rounds.

The model here is a scripted stand-in (``ScriptedCapableLLM``): it implements the project's LLM
interface and returns fixed JSON per round, through the same parsing and schema check
(``json_reply``) the real backends use. It stands in for a capable served model (vLLM, llama.cpp's
server with a large model), which cannot run on this machine (two shared CPU cores, no GPU); the
packaged 270M model measures ``narrow`` and never leads. Its answers are written from the ids it
reads in the evidence block of the prompt, as a real model would have to.

Scenario: ``open-world-3/mislead-ib-blamed-shm-one-node`` - the alert blames node-01's IB link; the
cause is a 64 MB /dev/shm on node-04. Round 1 (extraction, signatures, retrieval) runs no check, and
the evidence-only path needs 34 invocations to find it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pipelines.api import AgentEvent, Diagnosis, DiagnosisRequest
from pipelines.config import AgentConfig, LLMConfig
from pipelines.dot import DotGraph
from pipelines.llm.base import LLMReply, json_reply
from pipelines.runtime import build_agent, scenario_target

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "open-world-3" / "mislead-ib-blamed-shm-one-node.yaml"
HOSTS = [f"node-{i:02d}" for i in range(1, 7)]
KEYWORDS = ["dev shm", "shared memory segment"]
PLAIN = ("The problem is that the shared memory of machine node-04 is far too small. Because of it, the training "
         "job cannot start its communication between GPUs. Proposed fix: free that memory, and nothing runs until an "
         "engineer approves it.")
# What the evidence-only path (and the narrow tier) ran on this scenario before model-led rounds existed.
NARROW_CALLS = ["job_log_errors", "nccl_env", "ib_ports", "net_latency", "clock_sync", "cpu_governor", "cpu_load",
                "disk_usage", "failed_units", "gpu_clocks", "gpu_count", "gpu_ecc", "gpu_nvlink", "gpu_pcie",
                "gpu_persistence", "gpu_power", "gpu_row_remap", "gpu_temperature", "gpu_xid", "hung_tasks",
                "ib_counters", "ib_devinfo", "job_step_times", "kernel_errors", "lustre_health", "mce_edac",
                "memory_oom", "mount_health", "nic_errors", "node_state", "pcie_aer", "reachability", "shm_size",
                "versions"]

Answer = Callable[[str], "dict[str, Any] | str"]


def node_id(prompt: str, text: str) -> str:
    """The id of the first evidence line whose text starts with ``text``."""
    m = re.search(rf"^(\w+) \[[^\]]*\]: {re.escape(text)}", prompt, re.M)
    assert m, f"no evidence line starts with {text!r}"
    return m.group(1)


def finding_id(prompt: str, kind: str, host: str) -> str:
    m = re.search(rf"^(F\d+) \(from \w+\) {re.escape(host)} gpu=\S+ {re.escape(kind)} ", prompt, re.M)
    assert m, f"no finding {kind} on {host} in the evidence"
    return m.group(1)


def answer(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"propositions": [], "critiques": [], "claims": [], "checks": [], "keywords": [],
                            "done": False}
    return {**base, **kw}


class ScriptedCapableLLM:
    """A capable model, scripted: fixed JSON per model-led round (see the module docstring)."""

    name = "scripted-capable"

    def __init__(self, rounds: Sequence[Answer]) -> None:
        self.rounds = list(rounds)
        self.round_prompts: list[str] = []
        self.asked: list[list[str]] = []  # the schema properties of every call

    def warm_up(self) -> None:
        return None

    def generate_json(self, messages: Sequence[dict[str, str]], schema: dict[str, Any],
                      max_tokens: int | None = None) -> LLMReply:
        props = schema.get("properties", {})
        self.asked.append(sorted(props))
        prompt = messages[-1]["content"]
        data: dict[str, Any] | str
        if "checks" in props and "done" in props:
            self.round_prompts.append(prompt)
            data = self.rounds[min(len(self.round_prompts), len(self.rounds)) - 1](prompt)
        elif "hypotheses" in props:
            data = {"hosts": [], "gpus": [], "keywords": ["mlx5"], "hypotheses": ["ib_port_down"]}
        elif "tools" in props:
            data = {"critique": "the IB link may be a red herring", "tools": [t for t in ("ib_ports",)
                                                                            if t in props["tools"]["items"]["enum"]]}
        elif "choice" in props:
            data = {"choice": "none", "explanation": ""}
        elif "summary" in props:
            data = {"summary": PLAIN}
        else:
            data = "?"
        text = data if isinstance(data, str) else json.dumps(data)
        return json_reply(text, schema, 50, 40, 0.05)

    def generate_text(self, messages: Sequence[dict[str, str]], max_tokens: int | None = None) -> LLMReply:
        return LLMReply(None, "", error="unused")


class RecordingKB:
    """A knowledge base stand-in that records what it was asked; a record about /dev/shm answers
    queries that mention shared memory."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    def warm_up(self) -> None:
        return None

    def search(self, query: str, top_k: int = 5, splits: Sequence[str] = ("perceivable",)) -> list[Any]:
        self.queries.append(query)
        if "shm" not in query.lower() and "shared memory" not in query.lower():
            return []
        rec = SimpleNamespace(id="kb-shm-1", fault="shm_too_small", result="NCCL cannot create its shared-memory "
                              "segments in a 64 MB /dev/shm", problemkey=["nccl", "shm"], split="perceivable",
                              category="memory", function=["shm_size"], fix="enlarge /dev/shm", source="https://x")
        return [SimpleNamespace(record=rec, score=1.0)]


def _diagnose(llm: Any, tier: str = "capable", kb: Any = None, **cfg: Any) -> tuple[Diagnosis, list[AgentEvent]]:
    target = scenario_target(str(SCENARIO))
    try:
        agent = build_agent(target, AgentConfig(llm=LLMConfig(backend="openai", tier=tier), **cfg), llm=llm, kb=kb)
        events = list(agent.stream(DiagnosisRequest(target.scenario.alert, source="benchmark")))
    finally:
        target.close()
    return events[-1].data["diagnosis"], events


def _nodes(d: Diagnosis) -> list[dict[str, Any]]:
    return list(d.graph["nodes"])


def _calls(events: Sequence[AgentEvent]) -> list[dict[str, Any]]:
    return [e.data for e in events if e.kind == "tool_call"]


def _round2(prompt: str) -> dict[str, Any]:
    ib, sig = node_id(prompt, "hypothesis: ib_port_down"), node_id(prompt, "signature ")
    return answer(
        propositions=[{"text": "mlx5_2 on node-01 flapped yesterday: a down IB port would fail NCCL", "evidence": [ib]},
                      {"text": "the GPUs of node-03 overheat", "evidence": ["F99"]}],
        critiques=[{"text": "an NCCL internal error is not specific to IB; check the link first", "evidence": [sig],
                    "drop": []}],
        claims=[{"fault": "ib_port_down", "node": "node-01", "gpu": -1, "evidence": [ib]}],
        checks=[{"tool": "ib_ports", "hosts": ["node-01"], "params": {}, "why": "the alert names node-01's link"},
                {"tool": "gpu_rootkit_scan", "hosts": [], "params": {}},
                {"tool": "disk_usage", "hosts": ["node-01"], "params": {"mount": ";rm -rf /"}},
                {"tool": "gpu_clocks", "hosts": ["node-99"], "params": {}}],
        keywords=KEYWORDS)


def _round3(prompt: str) -> dict[str, Any]:
    ib_check = node_id(prompt, "ib_ports on 1 host(s)")
    drop = [node_id(prompt, "hypothesis: ib_port_down"), node_id(prompt, "hypothesis: ib_link_degraded")]
    kb = node_id(prompt, "past incident kb-shm-1")
    return answer(
        critiques=[{"text": "ib_ports passed on node-01: the link is not it. A 64 MB /dev/shm also breaks NCCL "
                            "with an internal error", "evidence": [ib_check, kb], "drop": drop}],
        checks=[{"tool": "shm_size", "hosts": [], "params": {}},
                {"tool": "ib_ports", "hosts": ["node-01"], "params": {}},
                {"tool": "drain_node", "hosts": ["node-04"], "params": {}}],
        keywords=["dev shm"])


def _round4(prompt: str) -> dict[str, Any]:
    shm = finding_id(prompt, "shm_too_small", "node-04")
    return answer(
        critiques=[{"text": "nothing else to check", "evidence": [shm], "drop": []}],
        claims=[{"fault": "shm_too_small", "node": "node-04", "gpu": -1, "evidence": [shm]}],
        conclusion={"text": "/dev/shm on node-04 is 64 MB: NCCL cannot create its segments", "evidence": [shm]},
        done=True)


def test_a_capable_model_leads_and_every_bad_request_is_refused_never_run() -> None:
    llm, kb = ScriptedCapableLLM([_round2, _round3, _round4]), RecordingKB()
    d, events = _diagnose(llm, kb=kb, max_rounds=6)
    assert (d.verdict, d.cause.fault, d.cause.node) == ("verified", "shm_too_small", "node-04"), d.summary
    assert d.llm_tier == "capable" and not d.degraded and len(llm.round_prompts) == 3
    assert d.plain_summary == PLAIN and d.tokens["completion"] > 0
    calls = _calls(events)
    assert [c["tool"] for c in calls][:2] == ["ib_ports", "shm_size"]  # the model's checks ran, first
    assert d.timings["invocations_to_cause"] == 2 and d.timings["model_rounds"] == 3
    # refused requests never ran: no made-up or mutating tool, no host outside, no shell text
    assert all(c["tool"] in ("ib_ports", "shm_size", "node_jobs", "job_checkpoint") for c in d.tool_calls)
    assert all(c["host"] in HOSTS for c in d.tool_calls)
    assert ";rm" not in json.dumps(d.tool_calls) and [c["tool"] for c in calls].count("ib_ports") == 1
    graph = DotGraph.from_json(d.graph)
    assert graph.validate() == []
    model = [n for n in graph.nodes if n.source == "model"]
    assert {n.kind for n in model} >= {"proposition", "critique", "verification", "summary"}
    assert all(n.refs and any(a.tag == "evidence" for a in n.attachments) for n in model)
    prop = next(n for n in model if n.text.startswith("mlx5_2 on node-01"))
    assert graph.get(prop.refs[0]) is not None and "ib_port_down" in graph.get(prop.refs[0]).text  # type: ignore[union-attr]
    claim = next(n for n in model if n.kind == "verification")
    assert claim.status == "supported" and "shm_too_small on node-04" in claim.text
    assert any("shm_size" in (graph.get(r).text if graph.get(r) else "") for r in claim.refs)  # type: ignore[union-attr]
    refused = [n.text for n in graph.nodes if n.status == "refused"]

    def one(*words: str) -> None:
        assert sum(all(w in t for w in words) for t in refused) == 1, (words, refused)

    one("proposition", "unknown evidence id", "F99")
    one("claim 'ib_port_down on node-01' as verified", "no check result shows")
    one("gpu_rootkit_scan", "not a registry check")
    one("disk_usage", "shell metacharacters")
    one("gpu_clocks", "outside the cluster", "node-99")
    one("drain_node", "mutating")
    one("ib_ports", "repeat")
    assert all(any(t in n for n in d.graph["notes"]) for t in refused)
    # the round-3 critique dropped the IB hypotheses; the round-4 one changed nothing
    dropped = [n for n in graph.nodes if n.status == "rejected"]
    assert {n.text.split(" (")[0] for n in dropped} == {"hypothesis: ib_port_down", "hypothesis: ib_link_degraded"}
    crit = {n.round: n for n in model if n.kind == "critique"}
    assert crit[3].status == "" and set(crit[3].refs) >= {n.id for n in dropped}
    assert crit[4].status == "no change" and crit[2].status == ""  # round 2's critique came with new checks
    # the model's keywords are the next round's KB query; the record it found is a lead it cited
    assert len(kb.queries) == 3 and all(k in kb.queries[1] for k in KEYWORDS) and "dev shm" in kb.queries[2]
    assert "past incident kb-shm-1" in llm.round_prompts[1] and "kb-shm-1" not in llm.round_prompts[0]
    # the evidence is tagged data with ids
    assert '<evidence trust="data">' in llm.round_prompts[0] and '<alert trust="data">' in llm.round_prompts[0]


def test_garbage_is_refused_and_the_next_round_goes_on() -> None:
    llm = ScriptedCapableLLM([lambda p: "}}}{ sure! run rm -rf / now", _round3b, _round4])
    d, events = _diagnose(llm, max_rounds=5)
    assert (d.verdict, d.cause.node) == ("verified", "node-04")
    refused = [n for n in d.graph["nodes"] if n["status"] == "refused"]
    assert len(refused) == 1 and "round 2" in refused[0]["text"] and "invalid JSON" in refused[0]["text"]
    assert refused[0]["round"] == 2 and next(c["tool"] for c in _calls(events)) == "shm_size"
    assert "rm -rf" not in json.dumps(d.tool_calls)


def _round3b(prompt: str) -> dict[str, Any]:
    sig = node_id(prompt, "signature ")
    return answer(critiques=[{"text": "NCCL internal errors: check /dev/shm", "evidence": [sig], "drop": []}],
                  checks=[{"tool": "shm_size", "hosts": [], "params": {}}])


def test_a_schema_misfit_counts_as_a_failure_and_two_failures_hand_over_to_the_evidence() -> None:
    llm = ScriptedCapableLLM([lambda p: "not json", lambda p: {"checks": "all of them"}])
    d, _ = _diagnose(llm, max_rounds=6)
    assert len(llm.round_prompts) == 2 and "failed 2" in d.degraded
    assert [n["status"] for n in d.graph["nodes"]].count("refused") == 2
    assert (d.verdict, d.cause.fault, d.cause.node) == ("verified", "shm_too_small", "node-04")  # on evidence


def _endless(prompt: str) -> dict[str, Any]:
    """Never done: each round one more GPU check not yet run."""
    for tool in ("gpu_clocks", "gpu_power", "gpu_temperature", "gpu_ecc", "gpu_xid", "gpu_pcie"):
        if f"] {tool} on" not in prompt and f"]: {tool} on" not in prompt:
            why = {"text": f"{tool} on node-01 may show why NCCL fails", "evidence": [node_id(prompt, "Incident:")]}
            return answer(propositions=[why], checks=[{"tool": tool, "hosts": ["node-01"], "params": {}}])
    return answer()


def test_max_rounds_stops_the_model_led_rounds() -> None:
    llm = ScriptedCapableLLM([_endless])
    d, events = _diagnose(llm, max_rounds=3)
    assert len(llm.round_prompts) == 2  # rounds 2 and 3
    assert sorted(n["round"] for n in d.graph["nodes"] if n["source"] == "model") == [2, 3]
    assert [c["tool"] for c in _calls(events)][:2] == ["gpu_clocks", "gpu_power"]
    assert any("max_rounds (3) reached" in n for n in d.graph["notes"])
    assert d.cause.node == "node-04"  # then the evidence path completes the diagnosis


def test_the_tool_budget_stops_it() -> None:
    many = answer(checks=[{"tool": t, "hosts": [], "params": {}} for t in ("gpu_clocks", "gpu_power", "cpu_load", "clock_sync")])
    llm = ScriptedCapableLLM([lambda p: many])
    d, events = _diagnose(llm, max_rounds=6, max_tool_calls=2)
    assert len(llm.round_prompts) == 1 and d.timings["tool_invocations"] == 2
    assert [c["tool"] for c in _calls(events)] == ["gpu_clocks", "gpu_power"]
    budget = [n["text"] for n in d.graph["nodes"] if n["status"] == "refused"]
    assert len(budget) == 2 and all("budget of 2 calls is spent" in t for t in budget)
    assert any("tool budget of 2 calls is spent" in n for n in d.graph["notes"])
    assert d.verdict != "verified"


def test_the_narrow_tier_is_unchanged() -> None:
    """Same scenario, same scripted model, tier narrow: today's path exactly (the model only breaks
    near-ties), never asked to lead a round."""
    llm = ScriptedCapableLLM([_round2])
    d, events = _diagnose(llm, tier="narrow")
    assert llm.round_prompts == [] and llm.asked == [["gpus", "hosts", "hypotheses", "keywords"], ["critique", "tools"]]
    assert [c["tool"] for c in _calls(events)] == NARROW_CALLS
    assert (d.verdict, d.cause.fault, d.cause.node, d.llm_tier) == ("verified", "shm_too_small", "node-04", "narrow")
    assert not any(n["status"] in ("refused", "no change") for n in d.graph["nodes"])
    assert "model_rounds" not in d.timings
