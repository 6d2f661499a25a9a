"""The diagnosis agent: an incident in, a stream of events and a verified diagnosis out.

Three self-play rounds (the method's §4.3.3), as a small loop over Haystack components:
1. extract entities and keywords (regex + model, merged), retrieve KB records, form hypotheses;
2. critique the hypotheses, choose registry checks, run them (a fanned-out check counts once);
3. attribute the cause from the checks' findings; a verifier rejects any claim no finding shows;
   unverified -> another round (refine, next hypothesis, then a broad quick sweep) within budget.
The model proposes and critiques; the evidence decides. With no model, or one that fails twice,
the same loop runs on evidence alone and ``Diagnosis.degraded`` says so. A ``capable`` model leads
rounds 2..``max_rounds`` instead (``_model_led``, ``pipelines.model_rounds``): its DoT nodes, claims
and checks are vetted, run or refused; the evidence path completes what it leaves unverified.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from diagnostics.faults import catalog
from diagnostics.types import Finding, Status, ToolResult, cap_text
from pipelines.api import AgentEvent, Cause, Diagnosis, DiagnosisRequest, Proposal
from pipelines.attribution import categorize
from pipelines.components import CheckRunner, EntityExtractor, KBLookup, MergeModelEntities, ModelStep
from pipelines.config import AgentConfig
from pipelines.contacts import regex_extract
from pipelines.dot.graph import Attachment, DotGraph, DotNode
from pipelines.dot.parse import parse_dot
from pipelines.evidence import Candidate, confidence, rank_candidates, verify_claim
from pipelines.expectation import EXPECTATION_CHECKS, RESOURCE_CHECKS, Expectation, compare, reports_slowdown
from pipelines.extract import Entities
from pipelines.faults import (
    EXPLAINS,
    FAULT_CHECKS,
    FLEET_TOOLS,
    GPU_LEVEL_FAULTS,
    RUNBOOK_OF_FAULT,
    RUNBOOKS,
    SYMPTOM_KINDS,
    UNREACHABLE_AFTER,
    is_fault,
)
from pipelines.hypotheses import (
    Hypothesis,
    expansion_terms,
    from_kb_hits,
    from_pasted,
    from_signatures,
    signature_catalog,
)
from pipelines.impact import CAPACITY_TOOLS, NodeJobs, add_impact, list_node_jobs
from pipelines.llm.base import LLM, LLMReply, NoLLM, check_schema
from pipelines.llm.capability import Capability, probe
from pipelines.model_rounds import (
    MAX_MODEL_CHECKS,
    Evidence,
    build_evidence,
    clean_keywords,
    tool_lines,
    vet_check,
)
from pipelines.plain import Facts, check_plain, plain_messages, plain_schema, template_summary
from pipelines.planner import ClusterInfo, ToolPlan, fill_params, ordered_hypotheses, plan_for_fault
from pipelines.prompts import (
    MAX_TOKENS,
    SYSTEM,
    attribution_messages,
    attribution_schema,
    critique_messages,
    critique_schema,
    hypothesis_messages,
    hypothesis_schema,
    model_round_messages,
    model_round_schema,
)
from pipelines.proposals import attach_script, build_fleet_proposals, build_proposals, cap_drains
from pipelines.telemetry import GPU_TELEMETRY_TOOLS, detector_findings, perf_model_block
from pipelines.verdict import (
    UNSWEPT_CONFIRMERS,
    Anomaly,
    check_category,
    checks_for_symptom,
    collect_anomalies,
    is_cluster_wide,
    localize,
    reported_symptom,
    spread,
)

log = logging.getLogger("clusterdoc.pipelines")

SIGNATURE_SCAN_CHARS = 10 * 1024 * 1024
KB_PRIOR = 0.6  # prior weight a retrieved record's fault adds (rank 1; less further down)
MODEL_PRIOR = 0.5  # prior weight a model hypothesis adds


class _Run:
    """Mutable state of one diagnosis."""

    def __init__(self) -> None:
        self.graph = DotGraph()
        self.results: list[ToolResult] = []
        self.findings: list[Finding] = []
        self.tool_calls: list[dict[str, Any]] = []
        self.invocations = 0
        self.done_plans: set[tuple[str, tuple[str, ...], str]] = set()
        self.tokens = {"prompt": 0, "completion": 0}
        self.llm_failures = 0
        self.llm_errors: list[str] = []
        self.timings: dict[str, float] = {}
        self.notes: list[str] = []
        self.silent: dict[str, int] = {}  # host -> timeouts/refusals seen
        self.answered: set[str] = set()  # hosts that answered at least once
        self.unreachable: set[str] = set()
        self.hypotheses: list[Hypothesis] = []  # signature and KB leads (typed, never evidence)
        self.full_text = ""  # the request text before capping (signature matching reads all of it)
        self.expectation: Expectation | None = None  # the job's step time against the perf model
        # model-led rounds (capable tier): what the model may cite and what it changed
        self.finding_node: dict[int, str] = {}  # index in findings -> the check's verification node
        self.hyp_nodes: dict[str, str] = {}  # hypothesis proposition id -> its fault kind ("" if none)
        self.dropped: set[str] = set()  # hypothesis nodes a model critique dropped
        self.lead_of: dict[str, str] = {}  # signature/KB proposition id -> the Hypothesis id
        self.dropped_leads: set[str] = set()  # Hypothesis ids whose node was dropped
        self.kb_seen: set[str] = set()  # record ids already retrieved


@dataclass
class _State:
    """What round 1 established, carried through the later rounds."""

    ent: Entities
    priors: dict[str, float]
    hits: list[Any]
    hyps: list[str]
    scope: list[str]
    root_id: str
    text: str


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        toolkit: Any,
        kb: Any = None,
        llm: LLM | None = None,
        *,
        hosts: Sequence[str] | None = None,
        cluster: ClusterInfo | None = None,
    ) -> None:
        self.config = config
        self.toolkit = toolkit
        self.kb = kb
        self.llm: LLM = llm if llm is not None else NoLLM()
        self.cluster = cluster or ClusterInfo(hosts=list(hosts or []))
        if hosts is not None and not self.cluster.hosts:
            self.cluster.hosts = list(hosts)
        self.extractor = EntityExtractor(self.cluster.hosts)
        self.kb_lookup = KBLookup(kb, config.kb_top_k, config.kb_splits)
        self.model = ModelStep(self.llm)
        self.merge = MergeModelEntities(self.cluster.hosts)
        self.runner = CheckRunner(toolkit)
        self._warm = False
        self._warm_error = ""
        self._signatures: Any = None
        self.capability = Capability("none" if isinstance(self.llm, NoLLM) else "narrow", note="not probed yet")

    # ----- life cycle ---------------------------------------------------------------------
    def warm_up(self) -> None:
        """Load the model and the knowledge base (heavy; call once before serving)."""
        if self._warm:
            return
        if self.config.mode in ("rag", "rag-dot-selfplay"):
            self.kb_lookup.warm_up()
        self._signatures = signature_catalog(self.config.signature_files)
        try:
            self.llm.warm_up()
            self.capability = probe(self.llm, pinned=self.config.llm.tier)
        except Exception as exc:  # a missing model is reported per diagnosis, never fatal here
            self._warm_error = f"model warm-up failed: {exc}"
            self.capability = Capability("none", note=self._warm_error)
        self._warm = True

    def diagnose(self, request: DiagnosisRequest) -> Diagnosis:
        final: Diagnosis | None = None
        for event in self.stream(request):
            if event.kind == "diagnosis":
                final = event.data["diagnosis"]
        assert final is not None
        return final

    # ----- the loop -------------------------------------------------------------------------
    def stream(self, request: DiagnosisRequest) -> Iterator[AgentEvent]:
        started = time.monotonic()
        run = _Run()
        cfg = self.config
        use_model = not isinstance(self.llm, NoLLM) and cfg.mode != "preplan"
        use_kb = cfg.mode in ("rag", "rag-dot-selfplay") and self.kb is not None
        selfplay = cfg.mode == "rag-dot-selfplay"
        if not self._warm:
            self.warm_up()
        warm_error = self._warm_error
        if warm_error and use_model:
            run.llm_failures = cfg.llm_failures_before_degraded
            run.llm_errors.append(warm_error)

        text = (request.text or "").strip()
        # Signatures read the whole paste (bounded at 10 MB: an Xid line may sit in the middle of a
        # long log); everything else works on the capped head and tail.
        run.full_text = text[:SIGNATURE_SCAN_CHARS]
        text, cut = cap_text(text, cfg.input_cap_chars)
        if cut:
            run.notes.append(f"input cut to {cfg.input_cap_chars} characters (head and tail kept)")
            yield AgentEvent("status", {"message": f"long input: kept the first and last {cfg.input_cap_chars // 2} characters"})
        target = (request.target or "").strip() or None
        if not text and not target:
            msg = "nothing to diagnose: the alert text is empty and no node was named"
            yield AgentEvent("error", {"message": msg})
            yield self._final(run, Cause(None), msg, [], 0.0, [], started, verified=False, request=request)
            return

        if not self.cluster.hosts and not target:
            msg = "no hosts to check: the agent was given no inventory (hosts=/cluster=) and the request names no node"
            yield AgentEvent("error", {"message": msg})
            yield self._final(run, Cause(None), msg, [], 0.0, [], started, verified=False, request=request)
            return

        state = yield from self._read_and_hypothesise(run, text, target, use_kb, use_model)
        if self._model_leads(run, use_model, selfplay):
            best, ranked, rounds = yield from self._model_led(run, state, target, use_kb)
        else:
            yield from self._choose_and_run_checks(run, state, use_model, selfplay)
            best, ranked, rounds = yield from self._attribute_and_escalate(run, state, target, use_model, selfplay)
        if best is not None:  # the paper's measure: how many test cases it took to find the cause
            run.timings["invocations_to_cause"] = float(run.invocations)
        if reports_slowdown(text):
            yield from self._expectation(run, rounds)
        # ---- outcome ----
        if best is None:
            yield self._unverified(run, ranked, state.scope, rounds, started, request)
            return
        yield from self._verified(run, best, ranked, use_model, rounds, started, request)

    # ----- the rounds, as named steps ---------------------------------------------------------------
    def _read_and_hypothesise(self, run: _Run, text: str, target: str | None, use_kb: bool,
                              use_model: bool) -> Generator[AgentEvent, None, _State]:
        """Round 1: extract entities, match signatures, retrieve past incidents, form hypotheses."""
        cfg = self.config
        yield AgentEvent("status", {"message": "round 1: reading the alert"})
        ent: Entities = self.extractor.run(text=f"{text}\n{target or ''}")["entities"]
        # The same extractor metric A measures: hosts the message points at (minus "ignore ..."),
        # their SSH ports, whether anything must run. Known hosts it names narrow the scope.
        contacts = regex_extract(text)
        for host in sorted(contacts.hosts):
            if host in self.cluster.hosts and host not in ent.nodes:
                ent.nodes.append(host)
        root = run.graph.add("proposition", f"Incident: {text[:160] or 'diagnose ' + str(target)}", round=1,
                             attachments=[Attachment("log", text[:800])] if text else [])
        priors: dict[str, float] = dict(ent.hypotheses)
        sig_hyps = from_signatures(run.full_text or text, self._signatures)
        run.hypotheses.extend(sig_hyps)
        # Tool output pasted into the request is read by the checks' own parsers: a lead, since no
        # check of ours produced it.
        run.hypotheses.extend(from_pasted(run.full_text or text))
        for sh in sig_hyps:
            if sh.fault_kind:
                priors[sh.fault_kind] = priors.get(sh.fault_kind, 0.0) + sh.weight
        hits: list[Any] = []
        if use_kb:
            t = time.monotonic()
            query = " ".join([*expansion_terms(sig_hyps), *ent.keywords, text[:600]]) or str(target)
            out = self.kb_lookup.run(query=query)
            run.timings["kb_s"] = round(time.monotonic() - t, 3)
            hits = out["hits"]
            if out["error"]:
                run.notes.append(out["error"])
            for i, hit in enumerate(hits):
                fault = getattr(hit.record, "fault", None)
                if fault:
                    priors[fault] = priors.get(fault, 0.0) + KB_PRIOR / (1 + i)
            run.hypotheses.extend(from_kb_hits(hits[:3]))
        if use_model:
            snippets = [f"{h.record.result} ({', '.join(h.record.problemkey[:5])})" for h in hits]
            reply = self._ask(run, hypothesis_messages(text or str(target), snippets, min(cfg.prompt_data_cap_chars, 1200)),
                              hypothesis_schema(), MAX_TOKENS["hypotheses"])
            if reply is not None and reply.data is not None:
                notes = self.merge.run(entities=ent, text=f"{text}\n{target or ''}", reply=reply)["notes"]
                run.graph.notes.extend(notes)
                weight = MODEL_PRIOR * (2.0 if self.capability.steers else 1.0)
                for f in reply.data.get("hypotheses", []):
                    priors[f] = priors.get(f, 0.0) + weight
        hyps = ordered_hypotheses(priors)
        scope = self._scope(target, ent)
        for h in hyps[:3]:
            why = []
            if h in ent.hypotheses:
                why.append("alert keywords " + ", ".join(repr(k) for k in ent.keywords[:3]))
            kb_ids = [hit.record.id for hit in hits if getattr(hit.record, "fault", None) == h]
            if kb_ids:
                why.append("KB " + ", ".join(kb_ids[:2]))
            node = run.graph.add("proposition", f"hypothesis: {h} (prior {priors[h]:.2f}; {'; '.join(why) or 'model'})",
                                 [root.id], round=1)
            run.hyp_nodes[node.id] = h
        for sh in sig_hyps[:3]:
            node = run.graph.add("proposition", f"signature {sh.id}: {sh.title} -> {sh.category}: {sh.cause[:160]}",
                                 [root.id], round=1, source="signature",
                                 attachments=[Attachment("log", sh.line[:300]), Attachment("link", sh.url)])
            run.hyp_nodes[node.id] = sh.fault_kind or ""
            run.lead_of[node.id] = sh.id
        for kh in [h for h in run.hypotheses if h.source == "kb"][:3]:
            node = run.graph.add("proposition", f"past incident {kh.id} ({kh.category}): {kh.cause[:160]}", [root.id],
                                 round=1, source="kb", attachments=[Attachment("link", kh.url)])
            run.hyp_nodes[node.id] = kh.fault_kind or ""
            run.lead_of[node.id] = kh.id
        run.kb_seen.update(str(getattr(hit.record, "id", "")) for hit in hits)
        yield AgentEvent("graph", {"graph": run.graph.to_json(), "round": 1, "entities": ent.to_dict(),
                                   "contacts": contacts.to_dict(),
                                   "kb": [h.record.id for h in hits]})

        return _State(ent, priors, hits, hyps, scope, root.id, text)

    def _choose_and_run_checks(self, run: _Run, state: _State, use_model: bool, selfplay: bool) -> Iterator[AgentEvent]:
        """Round 2: critique the hypotheses, choose registry checks, run them."""
        cfg = self.config
        ent, priors, hyps, scope = state.ent, state.priors, state.hyps, state.scope
        yield AgentEvent("status", {"message": "round 2: choosing checks"})
        scope_text = (f"the request names {', '.join(scope)}" if scope != self.cluster.hosts
                      else f"no node named: one check fans out over all {len(scope)} hosts and counts once")
        critique_of = [n.id for n in run.graph.nodes if n.kind == "proposition" and n.id != state.root_id][:1] or [state.root_id]
        if selfplay:
            run.graph.add("critique", f"scope: {scope_text}; keywords are priors, not evidence: a check must show it",
                          critique_of, round=2)
        model_tools: list[str] = []
        if use_model and selfplay:
            known = {s.name for s in self._read_only_specs()}
            offered = [t for h in hyps[:4] for t in FAULT_CHECKS.get(h, ()) if t in known]
            offered = list(dict.fromkeys(offered))[:8] or sorted(known)[:8]
            reply = self._ask(run, critique_messages(hyps[:3], scope_text, offered), critique_schema(offered),
                              MAX_TOKENS["critique"])
            if reply is not None and reply.data is not None:
                crit = str(reply.data.get("critique", "")).strip()
                if crit:
                    frag = parse_dot(crit, round=2, known_ids={n.id for n in run.graph.nodes})
                    if frag.nodes:
                        run.graph.merge(frag, round=2)
                    else:
                        run.graph.add("critique", crit[:300], critique_of, round=2, source="model")
                asked = [str(t) for t in reply.data.get("tools", []) or []]
                model_tools = [t for t in asked if t in known]
                for bad in [t for t in asked if t not in known][:5]:
                    run.graph.notes.append(f"refused model tool {bad[:60]!r}: not a read-only registry check")
            elif reply is not None and reply.text:
                run.graph.notes.append("model critique unusable: " + reply.error)
        for picked in model_tools:  # the model's picks raise the prior of what they establish
            for fault, checks in FAULT_CHECKS.items():
                if picked in checks:
                    priors[fault] = priors.get(fault, 0.0) + 0.3
        hyps = ordered_hypotheses(priors)
        if cfg.mode == "preplan":
            yield from self._preplan(run, hyps, scope)
        else:
            yield from self._hypothesis_checks(run, scope)
            yield from self._targeted(run, hyps, scope, ent, max_hyps=3 if selfplay else 2, refine=selfplay or cfg.mode == "rag")

        state.hyps = hyps

    def _attribute_and_escalate(self, run: _Run, state: _State, target: str | None, use_model: bool,
                                selfplay: bool, first_round: int = 3,
                                ) -> Generator[AgentEvent, None, tuple[Candidate | None, list[Candidate], int]]:
        """Round 3: attribute and verify; further rounds (next hypotheses, past incidents' checks,
        a quick sweep, every host) while nothing is verified, within the budgets."""
        cfg = self.config
        ent, priors, hyps, scope, text = state.ent, state.priors, state.hyps, state.scope, state.text
        rounds = first_round
        best, ranked = self._attribute(run, priors, ent, text, use_model and selfplay, rounds)
        all_hosts = list(self.cluster.hosts)
        steps: list[tuple[str, Any]] = []
        if cfg.mode != "preplan":
            steps.append(("the next hypotheses", lambda: self._targeted(run, hyps[3:], scope, ent, max_hyps=3, refine=True)))
            if any(h.source == "kb" for h in run.hypotheses):
                steps.append(("the checks similar past incidents name",
                              lambda: self._hypothesis_checks(run, scope, source="kb")))
        steps.append(("a quick sweep of every check", lambda: self._sweep(run, scope)))
        if set(scope) != set(all_hosts) and not target:
            # hosts named only in the text (an alert, a paste) may be wrong or planted: widen
            steps.append(("the hypotheses on every host", lambda: self._targeted(run, hyps, all_hosts, ent, max_hyps=3, refine=True)))
            steps.append(("a quick sweep of every host", lambda: self._sweep(run, all_hosts)))
        for step_why, step in steps[: cfg.max_extra_rounds]:
            if best is not None or run.invocations >= cfg.max_tool_calls:
                break
            rounds += 1
            yield AgentEvent("status", {"message": f"round {rounds}: no verified cause yet; trying {step_why}"})
            yield from step()
            best, ranked = self._attribute(run, priors, ent, text, use_model and selfplay and rounds == first_round + 1,
                                           rounds)
        return best, ranked, rounds

    # ----- model-led rounds (capable tier, pipelines.model_rounds) --------------------------------------
    def _model_leads(self, run: _Run, use_model: bool, selfplay: bool) -> bool:
        """A capable model (tier pinned or measured) leads rounds 2..max_rounds; a narrow one never does."""
        cfg = self.config
        return (use_model and selfplay and self.capability.steers and cfg.max_rounds >= 2
                and run.llm_failures < cfg.llm_failures_before_degraded)

    def _model_led(self, run: _Run, state: _State, target: str | None,
                   use_kb: bool) -> Generator[AgentEvent, None, tuple[Candidate | None, list[Candidate], int]]:
        """Rounds 2..max_rounds led by the model, within the tool budget; the verifier decides. With
        no verified cause at the end, the evidence path (the planner's checks, then the escalation)
        completes the diagnosis with what is left of the budget."""
        cfg = self.config
        scope = state.scope
        scope_text = (f"the request names {', '.join(scope)}" if scope != self.cluster.hosts
                      else f"no node named: one check fans out over all {len(scope)} hosts and counts once")
        critique_of = [n.id for n in run.graph.nodes if n.kind == "proposition" and n.id != state.root_id][:1] or [state.root_id]
        run.graph.add("critique", f"scope: {scope_text}; the model leads rounds 2-{cfg.max_rounds}: its checks are vetted "
                      "against the registry, its claims against the findings", critique_of, round=2)
        rounds = 2
        keywords: list[str] = []
        for round_no in range(2, cfg.max_rounds + 1):
            if run.llm_failures >= cfg.llm_failures_before_degraded:
                run.graph.notes.append(f"model-led rounds stop before round {round_no}: the model failed "
                                       f"{run.llm_failures} time(s)")
                break
            if run.invocations >= cfg.max_tool_calls:
                run.graph.notes.append(f"model-led rounds stop before round {round_no}: the tool budget of "
                                       f"{cfg.max_tool_calls} calls is spent")
                break
            rounds = round_no
            if keywords and use_kb:
                self._retrieve_more(run, state, keywords, round_no)
            yield AgentEvent("status", {"message": f"round {round_no}: the model reads the evidence and chooses checks"})
            done, keywords = yield from self._model_round(run, state, round_no)
            if done:
                run.graph.notes.append(f"model-led rounds end at round {round_no}: the model says it is done")
                break
        else:
            run.graph.notes.append(f"model-led rounds stop: max_rounds ({cfg.max_rounds}) reached")
        run.timings["model_rounds"] = float(rounds - 1)
        state.hyps = ordered_hypotheses(state.priors)
        best, ranked = self._attribute(run, state.priors, state.ent, state.text, True, rounds)
        if best is not None:
            return best, ranked, rounds
        nxt = rounds + 1
        yield AgentEvent("status", {"message": f"round {nxt}: no verified cause from the model-led rounds; "
                                               "the evidence path continues"})
        yield from self._hypothesis_checks(run, scope, round_no=nxt)
        yield from self._targeted(run, state.hyps, scope, state.ent, max_hyps=3, refine=True, round_no=nxt)
        out = yield from self._attribute_and_escalate(run, state, target, True, True, first_round=nxt)
        return out

    def _model_round(self, run: _Run, state: _State, round_no: int) -> Generator[AgentEvent, None, tuple[bool, list[str]]]:
        """One model-led round: the evidence so far as tagged data with ids in; DoT nodes citing ids,
        claims, checks, keywords and ``done`` out. Whatever fails a guard is refused, recorded in the
        graph (status ``refused``) and never run. Returns (done, the keywords for the next retrieval)."""
        cfg = self.config
        ev = build_evidence(run.graph, run.findings, run.finding_node, run.hyp_nodes, run.dropped)
        schema = model_round_schema(MAX_MODEL_CHECKS)
        messages = model_round_messages(round_no, cfg.max_rounds, state.text or "", ev.text,
                                        tool_lines(self._read_only_specs()), list(self.cluster.hosts),
                                        max(cfg.max_tool_calls - run.invocations, 0), cfg.prompt_data_cap_chars,
                                        MAX_MODEL_CHECKS)
        reply = self._ask(run, messages, schema, MAX_TOKENS["round"])
        if reply is None:
            return True, []
        problem = reply.error if reply.data is None else check_schema(reply.data, schema)
        if reply.data is not None and problem:  # a backend (or stand-in) that did not check the schema
            run.llm_failures += 1
            run.llm_errors.append(f"model JSON does not fit the schema: {problem}")
        if reply.data is None or problem:
            self._refuse(run, "critique", f"refused model answer of round {round_no}: {problem or 'no answer'}; "
                         "nothing in it runs", [state.root_id], round_no)
            yield AgentEvent("graph", {"graph": run.graph.to_json(), "round": round_no})
            return False, []
        data = reply.data
        refusals: list[tuple[str, str, list[str]]] = []  # recorded after the checks ran
        changed = False
        for item in data.get("propositions", []):
            self._model_node(run, ev, "proposition", item, round_no, refusals, state.root_id)
        critiques: list[DotNode] = []
        for item in data.get("critiques", []):
            drop = [str(d) for d in item.get("drop", []) or []]
            not_leads = [d[:20] for d in drop if d not in ev.hypotheses]
            if not_leads:
                refusals.append(("critique", f"refused model critique: drop names {', '.join(not_leads)}, not a "
                                 f"hypothesis id — {_quote(item.get('text'))}", [state.root_id]))
                continue
            node = self._model_node(run, ev, "critique", item, round_no, refusals, state.root_id, extra_refs=drop)
            if node is None:
                continue
            critiques.append(node)
            for d in drop:
                if d in run.dropped:
                    continue
                run.dropped.add(d)
                changed = True
                lead_node = run.graph.get(d)
                if lead_node is not None:
                    lead_node.status = "rejected"
                if ev.hypotheses.get(d):
                    state.priors[ev.hypotheses[d]] = 0.0
                if d in run.lead_of:
                    run.dropped_leads.add(run.lead_of[d])
        for item in data.get("claims", []):
            self._model_claim(run, ev, state, item, round_no, refusals)
        conclusion = data.get("conclusion") or {}
        if isinstance(conclusion, dict) and str(conclusion.get("text", "")).strip():
            self._model_node(run, ev, "summary", conclusion, round_no, refusals, state.root_id)
        registry = self.toolkit.registry
        for item in data.get("checks", [])[:MAX_MODEL_CHECKS]:  # the schema allows no more
            plan, why = vet_check(item, registry, self.cluster, state.scope, run.done_plans)
            if plan is not None and run.invocations >= cfg.max_tool_calls:
                plan, why = None, f"the tool budget of {cfg.max_tool_calls} calls is spent"
            if plan is None:
                tool = item.get("tool") if isinstance(item, dict) else item
                refusals.append(("critique", f"refused model check {_quote(tool, 60)}: {why}", [state.root_id]))
                continue
            plan.why = "model: " + (plan.why or "its choice")
            changed = True
            yield from self._run_plan(run, plan, round_no)
        for node in critiques:
            if not changed:
                node.status = "no change"
        if critiques and not changed:
            run.graph.notes.append(f"round {round_no}: the model's critique changed nothing (no new check, "
                                   "no hypothesis dropped): recorded as 'no change'")
        for kind, text, refs in refusals:
            self._refuse(run, kind, text, refs, round_no)
        yield AgentEvent("graph", {"graph": run.graph.to_json(), "round": round_no})
        return data.get("done") is True, clean_keywords(data.get("keywords"))

    def _model_node(self, run: _Run, ev: Evidence, kind: str, item: Any, round_no: int,
                    refusals: list[tuple[str, str, list[str]]], anchor: str,
                    extra_refs: Sequence[str] = ()) -> DotNode | None:
        """A DoT node in the model's words, linked to the evidence it cites; refused when it cites
        an id that does not exist or cites nothing."""
        if not isinstance(item, dict):
            refusals.append((kind, f"refused model {kind}: not an object", [anchor]))
            return None
        text = " ".join(str(item.get("text", "")).split())[:300]
        cited = [str(c) for c in item.get("evidence", []) or []]
        refs, unknown = ev.cite(cited)
        if unknown or not refs or not text:
            why = (f"cites unknown evidence id(s) {', '.join(unknown[:4])}" if unknown
                   else "cites no evidence" if not refs else "has no text")
            refusals.append((kind, f"refused model {kind}: {why} — {_quote(text)}", [anchor]))
            return None
        refs.extend(r for r in extra_refs if r not in refs)
        return run.graph.add(kind, text, refs, round=round_no, source="model",
                             attachments=[Attachment("evidence", ", ".join(c[:16] for c in cited[:8]))])

    def _model_claim(self, run: _Run, ev: Evidence, state: _State, item: Any, round_no: int,
                     refusals: list[tuple[str, str, list[str]]]) -> None:
        """A cause the model holds verified: it stands only when the verifier finds a finding that
        shows it; otherwise it is refused (status ``refused``) whatever the model says."""
        if not isinstance(item, dict):
            return
        fault = str(item.get("fault", "")).strip()
        node = str(item.get("node", "") or "").strip() or None
        gpu_raw = item.get("gpu", -1)
        gpu = gpu_raw if isinstance(gpu_raw, int) and not isinstance(gpu_raw, bool) and gpu_raw >= 0 else None
        label = f"{fault[:48]} on {(node or 'the cluster')[:64]}" + (f" GPU {gpu}" if gpu is not None else "")
        refs, unknown = ev.cite(str(c) for c in item.get("evidence", []) or [])
        anchor = refs or [state.root_id]
        why = ""
        if not is_fault(fault):
            why = f"{fault[:48]!r} is not a known fault kind"
        elif node is not None and self.cluster.hosts and node not in self.cluster.hosts:
            why = f"{node[:64]!r} is not a host of the cluster"
        elif unknown:
            why = f"it cites unknown evidence id(s) {', '.join(unknown[:4])}"
        verdict = verify_claim(Cause(fault, node, gpu), run.findings) if not why else None
        if verdict is None or not verdict.verified:
            why = why or (verdict.reason if verdict is not None else "")
            refusals.append(("verification", f"refused model claim '{label}' as verified: {why}", anchor))
            return
        at = {id(f): i for i, f in enumerate(run.findings)}
        support = [run.finding_node[at[id(f)]] for f in verdict.support if at.get(id(f)) in run.finding_node]
        refs = list(dict.fromkeys([*support, *refs]))
        run.graph.add("verification", f"model claim '{label}' verified: {verdict.reason}", refs, round=round_no,
                      source="model", status="supported",
                      attachments=[Attachment("evidence", "\n".join(f.message for f in verdict.support[:4]))])
        state.priors[fault] = state.priors.get(fault, 0.0) + 2 * MODEL_PRIOR

    def _refuse(self, run: _Run, kind: str, text: str, refs: list[str], round_no: int) -> None:
        """Something the model asked for, refused: a graph node with status ``refused``, a note, a log line."""
        run.graph.add(kind, text, refs, round=round_no, source="agent", status="refused")
        run.graph.notes.append(text)
        log.info("%s", text)

    def _retrieve_more(self, run: _Run, state: _State, keywords: Sequence[str], round_no: int) -> None:
        """The model's keywords go into retrieval: the next round's KB query; new records become
        leads (priors and propositions the model can cite)."""
        t = time.monotonic()
        query = " ".join([*keywords, *state.ent.keywords[:3]])
        out = self.kb_lookup.run(query=query)
        run.timings["kb_s"] = round(run.timings.get("kb_s", 0.0) + time.monotonic() - t, 3)
        if out["error"]:
            run.notes.append(out["error"])
        new = [h for h in out["hits"] if str(getattr(h.record, "id", "")) not in run.kb_seen]
        run.kb_seen.update(str(getattr(h.record, "id", "")) for h in new)
        for i, hit in enumerate(new):
            fault = getattr(hit.record, "fault", None)
            if fault:
                state.priors[fault] = state.priors.get(fault, 0.0) + KB_PRIOR / (1 + i)
        leads = from_kb_hits(new[:3])
        run.hypotheses.extend(leads)
        state.hits.extend(new)
        for kh in leads:
            node = run.graph.add("proposition", f"past incident {kh.id} ({kh.category}): {kh.cause[:160]}",
                                 [state.root_id], round=round_no, source="kb", attachments=[Attachment("link", kh.url)])
            run.hyp_nodes[node.id] = kh.fault_kind or ""
            run.lead_of[node.id] = kh.id
        run.graph.notes.append(f"round {round_no}: knowledge base searched with the model's keywords "
                               f"({', '.join(keywords)}): {len(new)} new record(s)")

    # ----- outcome ------------------------------------------------------------------------------
    def _verified(self, run: _Run, best: Candidate, ranked: list[Candidate], use_model: bool, rounds: int,
                  started: float, request: DiagnosisRequest) -> Iterator[AgentEvent]:
        """A check shows a catalog fault: localize it (one GPU, one node, or the whole cluster) and
        propose the fix that matches its scope."""
        cfg = self.config
        kind = catalog().get(best.fault)
        all_hosts = list(self.cluster.hosts)
        yield from self._check_peers(run, kind, all_hosts, rounds)
        verdict = verify_claim(best.cause, run.findings)
        category = kind.category if kind else None
        hosts_with = spread(best.fault, run.findings, all_hosts)
        props: list[Proposal] = []
        prop_notes: list[str] = []
        if is_cluster_wide(hosts_with, all_hosts):
            scope = "job" if kind is not None and kind.scope == "job" else "cluster"
            cause = Cause(best.fault, None, None, category, scope, kind.description if kind else "")
            affected = sorted({(f.host, f.gpu) for f in run.findings if f.kind == best.fault
                               and f.severity in ("warning", "critical")}, key=lambda x: (x[0], x[1] if x[1] is not None else -1))
            origin = self._setting_origin(best.fault, run.findings)
            run.graph.add("critique", f"{best.fault} shows on {len(hosts_with)} of {len(all_hosts)} nodes: a {scope}-wide "
                          f"cause ({origin}); draining nodes would not fix it", [run.graph.nodes[-1].id], round=rounds)
            props.extend(build_fleet_proposals(cause, affected, self.toolkit, gpu_model=self.cluster.gpu_model,
                                               rationale=f"{best.fault} on {len(hosts_with)}/{len(all_hosts)} nodes; {origin}",
                                               notes=prop_notes))
            where = f"{scope}-wide ({len(hosts_with)}/{len(all_hosts)} nodes)"
        else:
            cause = Cause(best.fault, best.node, best.gpu, category, kind.scope if kind else "node",
                          kind.description if kind else "")
            props.extend(build_proposals(cause, self.toolkit, gpu_model=self.cluster.gpu_model,
                                         rationale="; ".join(f.message for f in verdict.support[:3]), notes=prop_notes))
            where = (best.node or "the cluster") + (f" GPU {best.gpu}" if best.gpu is not None else "")
        others = [c for c in ranked if c is not best and not c.explained_by and not c.is_symptom
                  and verify_claim(c.cause, run.findings).verified and c.fault != best.fault]
        for other in others[:2]:
            okind = catalog().get(other.fault)
            ocause = Cause(other.fault, other.node, other.gpu, okind.category if okind else None,
                           okind.scope if okind else "node")
            props.extend(build_proposals(ocause, self.toolkit, gpu_model=self.cluster.gpu_model, notes=prop_notes)[:1])
        props = cap_drains(props, len(all_hosts) or 1, cfg.max_drain_fraction, prop_notes)
        props = yield from self._job_impact(run, props, prop_notes)
        if cfg.model_scripts and use_model and props:
            props[0] = self._model_script(run, props[0], prop_notes)
        run.graph.notes.extend(prop_notes)
        for p in props:
            yield AgentEvent("proposal", {"proposal": p.to_dict()})
        summary = f"{best.fault} on {where}: " + "; ".join(f.message for f in verdict.support[:2])
        if others:
            summary += " | also found: " + ", ".join(c.label() for c in others[:3])
        if run.expectation is not None and run.expectation.slow:
            summary += " | " + run.expectation.text()
        run.graph.add("summary", f"[verified] {summary}", [run.graph.nodes[-1].id], round=rounds)
        evidence = [f.to_dict() for f in verdict.support + best.explains]
        yield self._final(run, cause, summary, evidence, confidence(best, ranked), props, started,
                          verified=True, request=request, verdict="verified")

    def _job_impact(self, run: _Run, props: list[Proposal], notes: list[str]) -> Generator[AgentEvent, None, list[Proposal]]:
        """Before a drain, a down or a GPU reset is proposed: the jobs on the node (read-only
        node_jobs, job_checkpoint) and what the action costs them (pipelines.impact). These calls
        stay within max_tool_calls but are counted apart (timings ``impact_invocations``): the
        diagnosis' own count is the method's measure."""
        if not any(s.tool in CAPACITY_TOOLS for p in props for s in p.steps):
            return props
        budget = self.config.max_tool_calls
        calls = 0

        def run_tool(tool: str, host: str, params: dict[str, Any]) -> ToolResult:
            nonlocal calls
            if run.invocations + calls >= budget:
                return ToolResult(tool, host, Status.ERROR, error=f"tool budget of {budget} calls spent", params=params)
            calls += 1
            result: ToolResult = self.toolkit.run(tool, host, params)
            run.tool_calls.append(result.to_dict())
            return result

        def lookup(node: str) -> NodeJobs:
            if run.invocations + calls >= budget:
                return NodeJobs(node, False, reason=f"tool budget of {budget} calls spent")
            return list_node_jobs(self.toolkit, node, run_tool)

        yield AgentEvent("status", {"message": "listing the jobs on the node before proposing a drain or reset"})
        out = add_impact(props, self.toolkit, lookup, gpu_model=self.cluster.gpu_model, notes=notes)
        run.timings["impact_invocations"] = float(calls)
        return out

    def _unverified(self, run: _Run, ranked: list[Candidate], scope: list[str], rounds: int, started: float,
                    request: DiagnosisRequest) -> AgentEvent:
        """No catalog fault verified. Anomalies -> unexplained (named, with nodes); a signature or
        KB lead no check confirmed -> suspected (with the checks that would); clean only when the
        checks that could show the symptom ran and passed."""
        anomalies = collect_anomalies(run.results, run.findings, answered=run.answered, is_fault=is_fault,
                                      symptom_kinds=SYMPTOM_KINDS, unreachable=run.unreachable)
        leads = [c for c in ranked if not c.explained_by]
        for lead in leads[:3]:  # an unverified catalog lead (a symptom, a finding the verifier refused)
            for f in lead.findings[:1]:
                anomalies.append(Anomaly(f.host, str(f.data.get("check") or lead.fault), f.message,
                                         catalog().category_of(lead.fault) or check_category(lead.fault),
                                         f.severity, lead.fault, f.gpu))
        anomaly_dicts = [a.to_dict() for a in anomalies[:30]]
        all_hosts = list(self.cluster.hosts) or list(scope)
        if anomalies:
            loc = localize(anomalies, all_hosts)
            lead_a = loc.lead
            known = [a for a in anomalies if a.cause and (loc.node is None or a.host == loc.node)]
            where = loc.node or f"the cluster ({len(loc.hosts)}/{len(all_hosts)} nodes)"
            if known and known[0].severity == "critical":
                top = known[0]
                verdict = "verified"
                description = top.cause
                summary = f"{top.category} fault on {where}: {top.message}"
                if top.source:
                    summary += f" (known cause: {top.cause[:160]}; {top.source})"
            else:
                verdict = "unexplained"
                description = lead_a.message if lead_a else ""
                summary = (f"unexplained anomalies on {where} ({loc.category}): "
                           + "; ".join(a.message for a in anomalies[:3])
                           + ". No check proves the cause yet; these need a closer look.")
            if run.expectation is not None and run.expectation.slow:
                summary += " Job: " + run.expectation.text() + "."
                anomaly_dicts.append(_expectation_anomaly(run.expectation))
            cause = Cause(None, loc.node, lead_a.gpu if (lead_a and loc.node) else None, loc.category,
                          loc.scope if loc.node is None else ("gpu" if lead_a and lead_a.gpu is not None else "node"),
                          description)
            run.graph.add("summary", f"[{verdict}] {summary}", [run.graph.nodes[-1].id], round=rounds)
            conf = 0.5 if verdict == "verified" else 0.3
            return self._final(run, cause, summary, [], conf, [], started, verified=verdict == "verified",
                               request=request, verdict=verdict, anomalies=anomaly_dicts)
        sig = [h for h in run.hypotheses if h.source in ("signature", "pasted")]
        kb = [h for h in run.hypotheses if h.source == "kb"]
        lead_h = sig[0] if sig else None
        if lead_h is not None:
            node = self._named_node(request, scope)
            confirm = [c for c in lead_h.checks if c in self._read_only_names()]
            summary = (f"suspected {lead_h.category} fault: {lead_h.title} ({lead_h.cause[:200]}). "
                       f"No check on the cluster confirmed it" + (f"; confirm with {', '.join(confirm)}" if confirm
                                                                   else "") + (f". Source: {lead_h.url}" if lead_h.url else ". Source: the output pasted in the request"))
            cause = Cause(lead_h.fault_kind, node, None, lead_h.category, lead_h.scope if node is None else "node",
                          lead_h.cause)
            run.graph.add("summary", f"[suspected] {summary}", [run.graph.nodes[-1].id], round=rounds)
            return self._final(run, cause, summary, [], 0.35, [], started, verified=False, request=request,
                               verdict="suspected", confirm_with=confirm)
        relevant_checks = checks_for_symptom([h.category for h in kb], [c for h in kb for c in h.checks])
        ran_ok = {r.tool for r in run.results if r.status.value in ("ok", "problem")}
        failed = {r.tool for r in run.results if r.status.value not in ("ok", "problem", "no_data")}
        try:
            sweepable = {spec.name for spec in self.toolkit.registry.up_to_level(self.config.broaden_level)}
        except Exception:
            sweepable = self._read_only_names()
        # Longer checks (a bus-bandwidth test) are named, not required: the sweep level decides.
        missing = [c for c in relevant_checks if c in sweepable and c not in ran_ok]
        if missing or failed:
            why = ", ".join(sorted(set(missing) | failed)[:8])
            summary = f"no fault found, but not every check that could show it ran and passed ({why})"
            run.graph.add("summary", f"[unexplained] {summary}", [run.graph.nodes[-1].id], round=rounds)
            return self._final(run, Cause(None, None, None, kb[0].category if kb else "other", "cluster"), summary,
                               [], 0.3, [], started, verified=False, request=request, verdict="unexplained",
                               anomalies=[{"host": "-", "check": c, "message": f"{c} did not run or did not pass",
                                           "category": check_category(c)} for c in sorted(set(missing) | failed)[:10]])
        exp = run.expectation
        if exp is not None and exp.slow:
            # Every node passed its own checks, yet the job is slower than its hardware should make
            # it: a slowdown the fleet shares. The resource the measurements lay it at is the lead.
            category = exp.category or "other"
            unmeasured = [c for r, c in RESOURCE_CHECKS.items() if c not in exp.measured and c in self._read_only_names()]
            summary = (f"the job is slower than the hardware should make it, on every node alike: {exp.text()}; "
                       f"{len(ran_ok)} per-node checks ran and passed ({', '.join(sorted(ran_ok)[:8])})")
            if exp.attributed_to in ("", "unexplained") and unmeasured:
                summary += f"; measure with {', '.join(unmeasured)}"
            run.graph.add("summary", f"[unexplained] {summary}", [run.graph.nodes[-1].id], round=rounds)
            return self._final(run, Cause(None, None, None, category, "job", exp.text()), summary, [], 0.35, [],
                               started, verified=False, request=request, verdict="unexplained",
                               anomalies=[_expectation_anomaly(exp)], checks_passed=sorted(ran_ok),
                               confirm_with=unmeasured)
        symptom = reported_symptom(request.text)
        if symptom:
            # The request reports a problem the checks do not explain: saying "nothing wrong" would
            # contradict it. Name what was checked and what could show it but does not run by itself.
            # what the report itself speaks of (RoCE, all-reduce, disk …): its opening words, not a paste
            cues = categorize(request.text[:4000])
            category = (max(cues, key=lambda c: cues[c]) if cues
                        else kb[0].category if kb and kb[0].category else "other")
            summary = (f"the request reports a problem ({symptom}) that no check explains: {len(ran_ok)} checks ran "
                       f"and passed ({', '.join(sorted(ran_ok)[:8])}); a slowdown every node shares can hide from "
                       f"per-node checks: measure it with {', '.join(UNSWEPT_CONFIRMERS)} or compare the job's "
                       f"throughput with its expected rate")
            run.graph.add("summary", f"[unexplained] {summary}", [run.graph.nodes[-1].id], round=rounds)
            return self._final(run, Cause(None, None, None, category, "cluster"), summary, [], 0.25, [], started,
                               verified=False, request=request, verdict="unexplained",
                               anomalies=[{"host": "-", "check": "request", "message": f"reported: {symptom}",
                                           "category": category}],
                               checks_passed=sorted(ran_ok), confirm_with=list(UNSWEPT_CONFIRMERS))
        passed = sorted(ran_ok)
        summary = f"nothing wrong found: {len(passed)} checks ran on {len(scope)} host(s) and passed ({', '.join(passed[:12])}"
        summary += ", …)" if len(passed) > 12 else ")"
        run.graph.add("summary", f"[clean] {summary}", [run.graph.nodes[-1].id], round=rounds)
        return self._final(run, Cause(None), summary, [], 0.8, [], started, verified=False, request=request,
                           verdict="clean", checks_passed=passed)

    def _named_node(self, request: DiagnosisRequest, scope: list[str]) -> str | None:
        if request.target and request.target in self.cluster.hosts:
            return request.target
        return scope[0] if len(scope) == 1 and scope != list(self.cluster.hosts) else None

    def _read_only_names(self) -> set[str]:
        return {s.name for s in self._read_only_specs()}

    @staticmethod
    def _setting_origin(fault: str, findings: Sequence[Finding]) -> str:
        """Where a shared setting came from, as far as the findings say (the job's environment,
        the GPU power limit, the CPU governor...)."""
        for f in findings:
            if f.kind != fault:
                continue
            env = f.data.get("env") or f.data.get("bad") or f.data.get("settings")
            if env:
                return f"set in the job's environment: {env}"
            return f"the same setting on every node, e.g. {f.host}: {f.message[:120]}"
        return "the same setting on every node"

    def _check_peers(self, run: _Run, kind: Any, all_hosts: list[str], rounds: int) -> Iterator[AgentEvent]:
        """A fault that can be fleet-wide (a clock, a setting rolled out everywhere) found on the
        nodes an alert named is checked on their peers once before one node is blamed: the same
        finding on most nodes makes it cluster-wide, and draining one node would fix nothing."""
        if kind is None or not kind.cluster_wide_ok or not kind.checks or len(all_hosts) < 2:
            return
        tool = kind.checks[0]
        checked = {r.host for r in run.results if r.tool == tool}
        peers = [h for h in all_hosts if h not in checked]
        if not peers or run.invocations >= self.config.max_tool_calls or tool not in self._read_only_names():
            return
        filled = fill_params(self.toolkit.registry.get(tool), self.cluster, peers)
        if filled is None:
            return
        run.graph.add("critique", f"{kind.name} can be fleet-wide: checking {tool} on the {len(peers)} other node(s) "
                      "before blaming one", [run.graph.nodes[-1].id], round=rounds)
        yield from self._run_plan(run, ToolPlan(tool, peers, filled[0], filled[1],
                                                f"{kind.name} can be fleet-wide: are the peers affected too?"), rounds)

    def _expectation(self, run: _Run, rounds: int) -> Iterator[AgentEvent]:
        """A reported slowdown: the job's step time against the perf model's expectation (what
        peer comparison cannot see when every GPU shares the slowdown), with the gap laid at the
        resource the checks measured. Needs the job's workload (inventory or scenario)."""
        if not self.cluster.workload or not self.cluster.gpu_model or not self.cluster.hosts:
            return
        hosts = list(self.cluster.hosts)
        for tool in EXPECTATION_CHECKS:
            seen = {r.host for r in run.results if r.tool == tool}
            missing = [h for h in hosts if h not in seen]
            if not missing or tool not in self._read_only_names() or run.invocations >= self.config.max_tool_calls:
                continue
            filled = fill_params(self.toolkit.registry.get(tool), self.cluster, missing)
            if filled is not None:
                yield from self._run_plan(run, ToolPlan(tool, missing, filled[0], filled[1],
                                                        "the job's step time against the perf model"), rounds)
        try:
            run.expectation = compare(self.cluster, run.results)
        except Exception as exc:  # an unknown GPU model or a bad workload: say so, keep the evidence
            run.notes.append(f"perf model comparison skipped: {exc}")
            return
        if run.expectation is None:
            run.notes.append("perf model comparison skipped: no step time in the job's log")
            return
        exp = run.expectation
        run.graph.add("verification", f"expected vs observed: {exp.text()}", [run.graph.nodes[-1].id], round=rounds,
                      source="evidence", status="supported" if exp.slow else "refuted",
                      attachments=[Attachment("perf_model", json.dumps(exp.to_dict(), indent=1, default=str))])

    def _hypothesis_checks(self, run: _Run, scope: list[str], source: str = "signature",
                           round_no: int = 2) -> Iterator[AgentEvent]:
        """The checks the signature matches (or, later, the top past incidents) say would confirm them."""
        known = self._read_only_names()
        wanted: list[str] = []
        for h in [h for h in run.hypotheses if h.source == source and h.id not in run.dropped_leads][:3]:
            wanted.extend(c for c in h.checks[:2] if c in known and c not in wanted)
        for tool in wanted[:4]:
            spec = self.toolkit.registry.get(tool)
            filled = fill_params(spec, self.cluster, scope)
            if filled is None:
                continue
            yield from self._run_plan(run, ToolPlan(tool, list(scope), filled[0], filled[1], "a matched signature or "
                                                    "past incident names this check"), round_no)

    # ----- helpers --------------------------------------------------------------------------
    def _ask(self, run: _Run, messages: list[dict[str, str]], schema: dict[str, Any], max_tokens: int | None = None) -> LLMReply | None:
        """One model call, unless the model already failed too often (then None)."""
        if run.llm_failures >= self.config.llm_failures_before_degraded:
            return None
        t = time.monotonic()
        reply: LLMReply = self.model.run(messages=messages, schema=schema, max_tokens=max_tokens)["reply"]
        run.timings["llm_s"] = round(run.timings.get("llm_s", 0.0) + time.monotonic() - t, 3)
        run.tokens["prompt"] += reply.prompt_tokens
        run.tokens["completion"] += reply.completion_tokens
        if reply.error:
            run.llm_failures += 1
            run.llm_errors.append(reply.error)
            return LLMReply(None, reply.text, reply.prompt_tokens, reply.completion_tokens, reply.error)
        return reply

    def _read_only_specs(self) -> list[Any]:
        try:
            return list(self.toolkit.registry.specs(kind="read_only"))
        except Exception:
            return []

    def _scope(self, target: str | None, ent: Entities) -> list[str]:
        hosts = self.cluster.hosts
        named = [h for h in ent.nodes if h in hosts]
        if target:
            from pipelines.extract import normalize_node

            t = normalize_node(target, hosts) or target
            if t in hosts and t not in named:
                named.insert(0, t)
            if not hosts:  # no inventory: the named node is all we know
                return [t]
        return named or list(hosts)

    def _run_plan(self, run: _Run, plan: ToolPlan, round_no: int) -> Iterator[AgentEvent]:
        if plan.key() in run.done_plans or run.invocations >= self.config.max_tool_calls:
            return
        run.done_plans.add(plan.key())
        if run.unreachable & set(plan.hosts):  # a node known to be silent only costs timeouts
            plan = ToolPlan(plan.tool, [h for h in plan.hosts if h not in run.unreachable], plan.params,
                            plan.per_host_params, plan.why)
            if not plan.hosts:
                return
        if plan.tool in FLEET_TOOLS and self.cluster.hosts and set(plan.hosts) != set(self.cluster.hosts):
            plan = ToolPlan(plan.tool, list(self.cluster.hosts), plan.params, plan.per_host_params,
                            plan.why + " (compared across every node)")
        run.invocations += 1
        first_new = len(run.findings)
        yield AgentEvent("tool_call", {"tool": plan.tool, "hosts": plan.hosts, "params": plan.params, "why": plan.why,
                                       "invocation": run.invocations})
        out = self.runner.run(plan=plan)
        results: list[ToolResult] = out["results"]
        run.results.extend(results)
        run.findings.extend(out["findings"])
        run.findings.extend(promote_known_kinds(out["findings"]))
        run.findings.extend(self._silence(run, results))
        perf_block = ""
        if plan.tool in GPU_TELEMETRY_TOOLS and len(plan.hosts) > 1:
            perf_findings, perf_notes = detector_findings(results, self._slowdown_temp_c())
            run.findings.extend(perf_findings)
            if perf_findings:
                perf_block = perf_model_block(perf_findings, perf_notes)
        run.tool_calls.extend(r.to_dict() for r in results)
        bad = [f for f in out["findings"] if f.severity in ("warning", "critical")]
        statuses: dict[str, int] = {}
        for r in results:
            statuses[r.status.value] = statuses.get(r.status.value, 0) + 1
        table = "\n".join(f"{f.host}\t{'' if f.gpu is None else f.gpu}\t{f.kind}\t{f.message[:100]}" for f in bad[:12])
        verif_of = [n.id for n in run.graph.nodes if n.kind in ("critique", "proposition")][-1:] or [run.graph.nodes[0].id]
        checked = run.graph.add(
            "verification",
            f"{plan.tool} on {len(plan.hosts)} host(s): {len(bad)} finding(s); status {statuses}",
            verif_of,
            attachments=([Attachment("table", table)] if table else []) + ([Attachment("perf_model", perf_block)] if perf_block else []),
            round=round_no,
            source="evidence",
            status="supported" if bad else "refuted",
        )
        for i in range(first_new, len(run.findings)):  # what a model may cite as F<n> (model-led rounds)
            run.finding_node[i] = checked.id
        yield AgentEvent("tool_result", {"tool": plan.tool, "hosts": len(plan.hosts), "statuses": statuses,
                                         "findings": [f.to_dict() for f in bad[:20]], "seconds": round(out["seconds"], 3)})
        yield AgentEvent("graph", {"graph": run.graph.to_json(), "round": round_no})

    def _model_script(self, run: _Run, proposal: Proposal, notes: list[str]) -> Proposal:
        """Optionally let the model write a script for the fix; it joins the proposal (for review,
        never for execution) only if it passes every deny rule."""
        if run.llm_failures >= self.config.llm_failures_before_degraded:
            return proposal
        steps = "\n".join(proposal.commands())
        messages = [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": f"Write a short bash script that applies this fix on {proposal.steps[0].host} "
                                                f"and checks the result.\n<commands>\n{steps}\n</commands>"}]
        reply = self.llm.generate_text(messages, max_tokens=120)
        run.tokens["prompt"] += reply.prompt_tokens
        run.tokens["completion"] += reply.completion_tokens
        if reply.error or not reply.text.strip():
            notes.append(f"model script not written: {reply.error or 'empty answer'}")
            return proposal
        updated, refusals = attach_script(proposal, reply.text.strip()[:4000], gpu_model=self.cluster.gpu_model)
        notes.extend(refusals)
        return updated

    def _slowdown_temp_c(self) -> float:
        try:
            from perf.catalog import get_gpu

            return float(get_gpu(self.cluster.gpu_model).slowdown_temp_c) if self.cluster.gpu_model else 87.0
        except Exception:
            return 87.0

    def _silence(self, run: _Run, results: Sequence[ToolResult]) -> list[Finding]:
        """A node that never answers is itself the finding (node_unreachable), once the
        reachability check or repeated timeouts show it and it never answered anything."""
        new: list[Finding] = []
        for r in results:
            if r.status.value in ("timeout", "unreachable"):
                run.silent[r.host] = run.silent.get(r.host, 0) + (UNREACHABLE_AFTER if r.tool == "reachability" else 1)
            elif r.status.value in ("ok", "problem"):
                run.answered.add(r.host)
            already = any(f.kind == "node_unreachable" and f.host == r.host for f in r.findings)
            if already:
                run.unreachable.add(r.host)
        for host, n in run.silent.items():
            if n >= UNREACHABLE_AFTER and host not in run.answered and host not in run.unreachable:
                run.unreachable.add(host)
                new.append(Finding("node_unreachable", host, f"{host} gave no answer to {n} check(s) (timeouts/refused)",
                                   severity="critical", data={"silent_checks": n}))
        return new

    def _targeted(self, run: _Run, hyps: Sequence[str], scope: list[str], ent: Entities, *, max_hyps: int, refine: bool,
                  round_no: int = 2) -> Iterator[AgentEvent]:
        """Checks for the leading hypotheses, stopping as soon as a root cause is found; then the
        refinement: what could explain it, checked on the localized node/GPU only."""
        registry = self.toolkit.registry
        gpu = ent.gpus[0] if len(ent.gpus) == 1 and scope != self.cluster.hosts else None
        for fault in list(hyps)[:max_hyps]:
            for plan in plan_for_fault(fault, registry, self.cluster, scope, gpu)[:1]:
                yield from self._run_plan(run, plan, round_no)
            ranked = rank_candidates(run.findings)
            roots = [c for c in ranked if not c.is_symptom]
            if roots:
                break
        if not refine:
            return
        ranked = rank_candidates(run.findings)
        roots = [c for c in ranked if not c.is_symptom and not c.explained_by]
        if not roots:
            return
        top = roots[0]
        if top.gpu is None and top.node is not None and top.fault in GPU_LEVEL_FAULTS:
            # a GPU fault seen without its index (e.g. only a PCI address): localize the GPU
            for plan in plan_for_fault(top.fault, registry, self.cluster, [top.node]):
                plan.why = f"which GPU on {top.node} has {top.fault}?"
                yield from self._run_plan(run, plan, round_no)
        explainers = [a for a, bs in EXPLAINS.items() if top.fault in bs and a not in ("node_unreachable", "gpu_fallen_off_bus")]
        for fault in explainers:
            if top.node is None:
                break
            for plan in plan_for_fault(fault, registry, self.cluster, [top.node], top.gpu)[:1]:
                plan.why = f"could {fault} explain {top.label()}?"
                yield from self._run_plan(run, plan, round_no)

    def _preplan(self, run: _Run, hyps: Sequence[str], scope: list[str]) -> Iterator[AgentEvent]:
        kind = RUNBOOK_OF_FAULT.get(hyps[0], "node") if hyps else "node"
        run.graph.add("critique", f"pre-planned runbook '{kind}': every step runs in order", [run.graph.nodes[0].id], round=2)
        for tool in RUNBOOKS[kind]:
            try:
                spec = self.toolkit.registry.get(tool)
            except Exception:
                continue
            filled = fill_params(spec, self.cluster, scope)
            if filled is None:
                continue
            yield from self._run_plan(run, ToolPlan(tool, list(scope), filled[0], filled[1], f"runbook {kind}"), 2)

    def _sweep(self, run: _Run, scope: list[str]) -> Iterator[AgentEvent]:
        """The broad quick sweep: every quick check not yet run, each fanned out once."""
        try:
            specs = self.toolkit.registry.up_to_level(self.config.broaden_level)
        except Exception:
            specs = [s for s in self._read_only_specs() if getattr(s, "level", "quick") == "quick"]
        covered: dict[str, set[str]] = {}
        for tool, hosts, _ in run.done_plans:
            covered.setdefault(tool, set()).update(hosts)
        for spec in specs:
            if set(scope) <= covered.get(spec.name, set()):
                continue
            filled = fill_params(spec, self.cluster, scope)
            if filled is None:
                continue
            yield from self._run_plan(run, ToolPlan(spec.name, list(scope), filled[0], filled[1], "broad quick sweep"), 3)

    def _attribute(self, run: _Run, priors: dict[str, float], ent: Entities, text: str, ask_model: bool, round_no: int) -> tuple[Candidate | None, list[Candidate]]:
        ranked = rank_candidates(run.findings, priors=priors, named_nodes=ent.nodes, named_gpus=ent.gpus)
        roots = [c for c in ranked if not c.is_symptom and not c.explained_by]
        if not roots:
            return None, ranked
        best = roots[0]
        if ask_model and len(roots) > 1:
            labels = [c.label() for c in roots[:5]]
            lines = [f"{f.host} gpu={f.gpu} {f.kind}: {f.message}" for c in roots[:5] for f in c.findings[:2]]
            reply = self._ask(run, attribution_messages(text, lines, labels, self.config.prompt_data_cap_chars),
                              attribution_schema(labels), MAX_TOKENS["attribution"])
            if reply is not None and reply.data is not None:
                choice = reply.data.get("choice")
                picked = next((c for c in roots[:5] if c.label() == choice), None)
                expl = str(reply.data.get("explanation", ""))[:300]
                # a capable model steers the choice among verified leads; a narrow one breaks near-ties
                if picked is not None and picked is not best and (self.capability.steers
                                                                   or picked.score >= 0.8 * best.score):
                    run.graph.add("refinement", f"model prefers {picked.label()}: {expl}", [run.graph.nodes[-1].id], round=round_no, source="model")
                    best = picked
                elif picked is not None and picked is not best:
                    run.graph.add("critique", f"model chose {picked.label()}, but the evidence ranks {best.label()} higher ({expl})",
                                  [run.graph.nodes[-1].id], round=round_no, source="model")
                elif expl:
                    run.graph.add("refinement", f"model: {expl}", [run.graph.nodes[-1].id], round=round_no, source="model")
        verdict = verify_claim(best.cause, run.findings)
        # The claim rests on the check results that found something, not on whichever ran last.
        checks = [n for n in run.graph.nodes if n.kind == "verification" and not n.text.startswith("claim ")
                  and n.status != "refused"]
        ver_of = ([n.id for n in checks if n.status == "supported"] or [n.id for n in checks][-1:]
                  or [run.graph.nodes[-1].id])
        run.graph.add("verification", f"claim '{best.label()}': {verdict.reason}", ver_of, round=round_no,
                      status="supported" if verdict.verified else "refuted",
                      attachments=[Attachment("evidence", "\n".join(f.message for f in verdict.support[:4]))] if verdict.support else [])
        return (best if verdict.verified else None), ranked

    def _final(self, run: _Run, cause: Cause, summary: str, evidence: list[dict[str, Any]], conf: float,
               proposals: list[Proposal], started: float, *, verified: bool, request: DiagnosisRequest,
               verdict: str = "unexplained", anomalies: list[dict[str, Any]] | None = None,
               checks_passed: list[str] | None = None, confirm_with: list[str] | None = None) -> AgentEvent:
        plain = self._plain_summary(run, Facts(
            verdict, cause, proposals, list(anomalies or []), list(confirm_with or []), list(checks_passed or []),
            run.expectation, len(self.cluster.hosts), self._hosts_affected(run, cause, anomalies or []),
            checked=bool(run.results), reason=summary, known_hosts=list(self.cluster.hosts)), summary)
        degraded = ""
        if isinstance(self.llm, NoLLM):
            degraded = "no model configured: diagnosis from the checks' evidence only"
        elif self.config.mode == "preplan":
            degraded = ""
        elif run.llm_failures >= self.config.llm_failures_before_degraded:
            errors = list(dict.fromkeys(run.llm_errors))  # the first failure and the last, when they differ
            said = errors[0] if len(errors) == 1 else f"{errors[0]}; last: {errors[-1]}"
            degraded = f"model failed {run.llm_failures} time(s) ({said}): diagnosis from the checks' evidence only"
        elif run.llm_errors:
            run.graph.notes.append("model errors: " + "; ".join(run.llm_errors))
        run.graph.notes.extend(run.notes)
        run.timings["total_s"] = round(time.monotonic() - started, 3)
        run.timings["tool_invocations"] = float(run.invocations)
        problems = run.graph.validate()
        if problems:  # should never happen; keep the answer, say so
            run.graph.notes.append("graph problems: " + "; ".join(problems))
        diagnosis = Diagnosis(
            summary=summary,
            cause=cause,
            evidence=evidence,
            confidence=conf,
            graph=run.graph.to_json(),
            proposals=proposals,
            tool_calls=run.tool_calls,
            tokens=dict(run.tokens),
            timings=run.timings,
            llm=getattr(self.llm, "name", "none"),
            degraded=degraded,
            verified=verified,
            verdict=verdict,
            anomalies=list(anomalies or []),
            checks_passed=list(checks_passed or []),
            confirm_with=list(confirm_with or []),
            hypotheses=[h.to_dict() for h in run.hypotheses[:8]],
            llm_tier=self.capability.tier,
            llm_capability=self.capability.to_dict(),
            plain_summary=plain,
            similar=[{"id": h.id, "title": h.title, "cause": h.cause, "fix": h.fix, "url": h.url,
                      "category": h.category, "confirmed": _confirmed_here(h, cause, verified)}
                     for h in run.hypotheses if h.source == "kb"][:3],
        )
        return AgentEvent("diagnosis", {"diagnosis": diagnosis})

    def _plain_summary(self, run: _Run, facts: Facts, technical: str) -> str:
        """Three plain sentences (pipelines/plain.py): a capable model's, when it passes the checks,
        else the template's. A refused answer is named in the graph and counts as a model failure."""
        template = template_summary(facts)
        use_model = (not isinstance(self.llm, NoLLM) and self.config.mode != "preplan" and self.capability.steers
                     and facts.checked)
        if not use_model:
            return template
        reply = self._ask(run, plain_messages(facts, template, technical), plain_schema(), MAX_TOKENS["plain"])
        if reply is None or reply.data is None:
            return template
        text = " ".join(str(reply.data.get("summary", "")).split())
        why = check_plain(text, facts, [s.name for s in self._read_only_specs()])
        if why:
            run.llm_failures += 1
            run.llm_errors.append(f"model summary refused: {why}")
            run.graph.notes.append(f"model summary refused ({why}); the template's summary is used")
            return template
        return text

    def _hosts_affected(self, run: _Run, cause: Cause, anomalies: Sequence[dict[str, Any]]) -> int:
        """How many nodes show a cause that no single node owns (for the plain summary)."""
        if cause.node is not None:
            return 1
        if cause.fault:
            return len(spread(cause.fault, run.findings, list(self.cluster.hosts)))
        return len({str(a.get("host")) for a in anomalies if str(a.get("host") or "-") != "-"})


def _quote(value: Any, limit: int = 120) -> str:
    """A model's text quoted for a refusal record (one line, capped)."""
    return repr(" ".join(str(value or "").split())[:limit])


def _expectation_anomaly(exp: Expectation) -> dict[str, Any]:
    return {"host": "-", "check": "perf_model", "message": exp.text(), "category": exp.category or "other",
            "severity": "warning", "data": exp.to_dict()}


def _confirmed_here(record: Hypothesis, cause: Cause, verified: bool) -> bool:
    """A past incident is confirmed here when a check verified the same fault kind (or, for a
    record with no kind, the same category)."""
    if not verified:
        return False
    if record.fault_kind:
        return record.fault_kind == cause.fault
    return bool(record.category) and record.category == cause.category


def promote_known_kinds(findings: Sequence[Finding]) -> list[Finding]:
    """A generic anomaly whose signature names a catalog fault kind (a kernel line with Xid 79) is
    evidence of that kind too: the kernel log is a check's output, so the verifier may use it."""
    out: list[Finding] = []
    for f in findings:
        kind = (f.data or {}).get("fault_kind")
        if not kind or kind == f.kind or not is_fault(kind) or f.severity not in ("warning", "critical"):
            continue
        out.append(Finding(kind, f.host, f.message, f.gpu, f.severity, {**f.data, "promoted_from": f.kind}))
    return out


def graph_of(diagnosis: Diagnosis) -> DotGraph:
    """The diagnosis's DoT graph as an object (for rendering)."""
    return DotGraph.from_json(diagnosis.graph)


__all__ = ["Agent", "ClusterInfo", "DotNode", "graph_of"]
