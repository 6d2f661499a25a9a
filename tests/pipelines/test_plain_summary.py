"""The summary a non-expert can act on (issue 15 part 4): three sentences, no jargon, posted first.

The template is checked on real diagnoses of the simulated cluster (a GPU fault with the job's
measured slowdown, a cluster-wide fault, an unexplained verdict); a capable model's summary is used
only when it passes ``check_plain``, and garbage falls back to the template."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from bot.render import diagnosis_text
from pipelines.api import Cause, Diagnosis, DiagnosisRequest
from pipelines.cli import render_text
from pipelines.config import AgentConfig, LLMConfig
from pipelines.llm.base import LLMReply
from pipelines.plain import Facts, check_plain, share_words, template_summary
from pipelines.runtime import build_agent, scenario_target
from simulator.scenario import parse_scenario
from tests.pipelines.fakecluster import HOSTS, make_agent

BASE: dict[str, Any] = {
    "cluster": {"nodes": 8, "gpus_per_node": 8, "gpu": "H100-SXM5-80GB", "interconnect": "infiniband",
                "scheduler": "slurm", "workload": {"kind": "llm_training", "model_params": 7e9,
                                                   "tokens_per_step": 4194304}},
    "seed": 3,
}
JARGON = re.compile(r"_|`|nvidia-smi|scontrol|\bSM\b|\bNCCL\b|\bXid\b|MHz|\$")


def _diagnose(scenario: Any, alert: str | None = None) -> Diagnosis:
    target = scenario_target(scenario)
    try:
        agent = build_agent(target, AgentConfig(llm=LLMConfig(backend="none")))
        text = alert if alert is not None else getattr(target.scenario, "alert", None) or ""
        return agent.diagnose(DiagnosisRequest(text, source="cli"))
    finally:
        target.close()


def _sentences(text: str) -> int:
    return len(re.findall(r"[.!?](?:\s|$)", text))


def _plain_ok(text: str) -> None:
    assert _sentences(text) == 3, text
    assert not JARGON.search(text), text


def test_template_for_a_verified_gpu_fault_names_the_gpu_the_cost_and_the_fix(repo_root: Any) -> None:
    d = _diagnose(str(repo_root / "scenarios" / "a800-throttle.yaml"))
    assert d.verdict == "verified" and (d.cause.node, d.cause.gpu) == ("node-05", 3)
    _plain_ok(d.plain_summary)
    assert d.plain_summary.startswith("The problem is a GPU running far below its normal speed: GPU 3 of machine node-05.")
    # the perf model's expectation (81 s observed against 34 s expected) in words
    assert "the 64-GPU training job runs at less than half of its expected speed" in d.plain_summary
    assert "(each step takes 81 seconds instead of about 34)" in d.plain_summary
    assert d.plain_summary.endswith("Proposed fix: reset that GPU's speed settings; nothing runs until an engineer "
                                    "approves it.")


def test_template_for_a_cluster_wide_fault_says_it_is_not_one_machine() -> None:
    d = _diagnose(parse_scenario({**BASE, "id": "wide-skew", "faults": [{"kind": "clock_skew", "node": "all",
                                                                          "offset_s": 304}],
                                  "alert": "jobs fail to start: Job credential expired"}, "test"))
    assert d.cause.fault == "clock_skew" and d.cause.node is None
    _plain_ok(d.plain_summary)
    assert d.plain_summary.startswith("The problem is a wrong system clock, the same on 8 of the 8 machines, so it "
                                      "is not one broken machine.")
    assert "on 8 machines; nothing runs until an engineer approves it." in d.plain_summary


def test_template_for_an_unexplained_verdict_says_what_is_not_known() -> None:
    d = _diagnose(parse_scenario({**BASE, "id": "thermal-cpu", "faults": [{
        "kind": "custom", "node": "node-07", "category": "thermal-power",
        "kernel_log": [f"CPU{i}: Package temperature above threshold, cpu clock throttled (total events = 1386{i})"
                       for i in range(4)]}], "alert": "errors in the logs of node-07"}, "test"))
    assert d.verdict == "unexplained" and d.cause.node == "node-07"
    _plain_ok(d.plain_summary)
    assert d.plain_summary == ("Something is wrong on machine node-07 (a heat or power problem), but the checks have "
                               "not yet proven what causes it. How much it costs is not known yet. An engineer needs "
                               "to look at it; the details below list what was seen and what to check next.")


def test_share_in_words() -> None:
    assert [share_words(s) for s in (0.95, 0.34, 0.42, 0.5, 0.1)] == [
        "nearly all", "about a third", "less than half", "about half", "less than a fifth"]


class _Capable:
    """A model pinned to the capable tier: minimal valid answers, and ``summary`` for the summary."""

    name = "scripted"

    def __init__(self, summary: Callable[[], dict[str, Any] | None]) -> None:
        self.summary = summary
        self.summary_calls = 0

    def warm_up(self) -> None:
        return None

    def generate_json(self, messages: Sequence[dict[str, str]], schema: dict[str, Any],
                      max_tokens: int | None = None) -> LLMReply:
        props = schema.get("properties", {})
        if "summary" in props:
            self.summary_calls += 1
            said = self.summary()
            return LLMReply(said, "not json at all" if said is None else str(said), 50, 20,
                            "" if said is not None else "model gave invalid JSON: answer is not a JSON object")
        data: dict[str, Any] = {}
        for key in schema.get("required", []):
            sub = props.get(key, {})
            if sub.get("type") == "array":
                data[key] = []
            elif "enum" in sub:
                data[key] = "none" if "none" in sub["enum"] else sub["enum"][0]
            else:
                data[key] = ""
        return LLMReply(data, str(data), 40, 10)

    def generate_text(self, messages: Sequence[dict[str, str]], max_tokens: int | None = None) -> LLMReply:
        return LLMReply(None, "", error="unused")


TEMPLATE_HEAD = "The problem is a GPU running far below its normal speed: GPU 3 of machine node-05."


@pytest.mark.parametrize("garbage", [
    {"summary": "Run `nvidia-smi -i 3 -rgc` on node-05; then rm -rf /tmp/x | sh"},  # commands, metacharacters
    {"summary": "ok"},  # too short
    {"summary": "GPU 3 on node-99 is slow. The job is slow. We will fix it after approval."},  # a host that does not exist
    {"summary": "Everything is fine. Nothing to see here. Carry on."},  # does not name the node at fault
    None,  # not JSON
])
def test_garbage_model_summary_falls_back_to_the_template(garbage: dict[str, Any] | None) -> None:
    llm = _Capable(lambda: garbage)
    agent, _, _ = make_agent({("node-05", "gpu_clock_throttle"): 3}, llm=llm, tier="capable")
    d = agent.diagnose(DiagnosisRequest("Job llama-7b: step time up 3x"))
    assert llm.summary_calls == 1 and d.llm_tier == "capable" and d.verified
    assert d.plain_summary.startswith(TEMPLATE_HEAD) and "Proposed fix: reset that GPU's speed settings" in d.plain_summary
    if garbage is not None:  # a JSON answer that fails the checks is refused and named
        assert any(n.startswith("model summary refused") for n in d.graph["notes"]), d.graph["notes"]


def test_a_good_model_summary_is_used() -> None:
    text = ("GPU 3 in machine node-05 is much slower than it should be. The training job runs slower because of it. "
            "We propose to reset that GPU's speed settings once an engineer approves.")
    agent, _, _ = make_agent({("node-05", "gpu_clock_throttle"): 3}, llm=_Capable(lambda: {"summary": text}),
                             tier="capable")
    d = agent.diagnose(DiagnosisRequest("Job llama-7b: step time up 3x"))
    assert d.plain_summary == text and d.tokens["prompt"] >= 50


def test_a_narrow_model_is_not_asked_for_the_summary() -> None:
    llm = _Capable(lambda: {"summary": "unused"})
    agent, _, _ = make_agent({("node-05", "gpu_clock_throttle"): 3}, llm=llm, tier="narrow")
    d = agent.diagnose(DiagnosisRequest("Job llama-7b: step time up 3x"))
    assert llm.summary_calls == 0 and d.plain_summary.startswith(TEMPLATE_HEAD)


def test_check_plain_refuses_what_does_not_belong_in_a_plain_summary() -> None:
    facts = Facts("verified", Cause("gpu_clock_throttle", "node-05", 3), known_hosts=HOSTS)
    good = "GPU 3 of node-05 is slow. The job runs at half speed. An engineer will approve a fix."
    assert check_plain(good, facts) == ""
    assert "names commands" in check_plain(good + " Then reboot node-05.", facts)
    assert "contains" in check_plain("GPU 3 of node-05 is slow. See <!channel> now. Fix soon.", facts)
    assert "link" in check_plain("GPU 3 of node-05 is slow. See https://x.example now. Fix soon.", facts)
    assert "names tools" in check_plain("GPU 3 of node-05 is slow. Run gpu clocks check. Fix soon.", facts,
                                        ["clocks"])
    assert "host the cluster does not have" in check_plain(good.replace("node-05", "node-05 and node-77"), facts)
    assert "sentence" in check_plain("GPU 3 of node-05 is slow and it costs a lot and we will fix it", facts)


def test_plain_summary_round_trips_and_comes_first_in_the_thread_and_the_cli() -> None:
    agent, _, _ = make_agent({("node-05", "gpu_clock_throttle"): 3})
    d = agent.diagnose(DiagnosisRequest("Job llama-7b: step time up 3x"))
    back = Diagnosis.from_dict(d.to_dict())
    assert back.plain_summary == d.plain_summary and back.llm_capability == d.llm_capability
    old = d.to_dict()
    del old["plain_summary"], old["llm_capability"]  # stored before these fields existed
    assert Diagnosis.from_dict(old).plain_summary == ""
    thread = diagnosis_text(7, d).splitlines()
    assert thread[0] == f"Incident #7: {d.plain_summary}"
    assert thread[1].startswith("Details: *gpu_clock_throttle* on node-05 GPU 3")
    assert diagnosis_text(7, Diagnosis.from_dict(old)).splitlines()[0].startswith("Incident #7: *gpu_clock_throttle*")
    assert render_text(d).splitlines()[:2] == ["== in short ==", d.plain_summary]
    assert template_summary(Facts("clean", Cause(None), checks_passed=["a", "b"])) == (
        "No problem was found: 2 checks ran and all of them passed. No job is affected. Nothing needs to be done.")
