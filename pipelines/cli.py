"""``clusterdoc diagnose``: run the agent once from the command line.

    clusterdoc diagnose [NODE] --scenario FILE | --inventory FILE
        [--llm none|llamacpp|ollama|openai] [--model NAME] [--alert TEXT | --alert-file FILE|-]
        [--mode plain|rag|rag-dot-selfplay|preplan] [--png OUT] [--json] [--no-kb]

Prints the reasoning outline, the evidence and the proposals (nothing is executed: approving and
running a proposal is the chat bot's job). Exit 0: verdict `clean` (the checks that could show the
symptom ran and passed); 1: `verified`, `suspected` or `unexplained`; 2: bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pipelines.config import BACKENDS, MODES, AgentConfig, LLMConfig

EXIT_CLEAN, EXIT_FOUND, EXIT_BAD_INPUT = 0, 1, 2


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("diagnose", help="diagnose a node, a job or an alert (prints reasoning, evidence, proposals)")
    p.add_argument("target", nargs="?", help="node name or job id (optional: the agent finds the node)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--scenario", help="scenario YAML: diagnose the simulated cluster in-process")
    src.add_argument("--inventory", help="inventory YAML of real nodes (SSH)")
    p.add_argument("--llm", choices=BACKENDS, default="none", help="model backend (default none: evidence only)")
    p.add_argument("--model", default="", help="model name (backend default when empty)")
    p.add_argument("--llm-timeout", type=float, default=120.0, help="seconds per model call")
    p.add_argument("--alert", help="alert or log text (default: the scenario's alert)")
    p.add_argument("--alert-file", help="read the alert/log from this file ('-' for stdin)")
    p.add_argument("--mode", choices=MODES, default="rag-dot-selfplay")
    p.add_argument("--png", help="also draw the reasoning graph into this PNG file")
    p.add_argument("--json", action="store_true", help="print the Diagnosis as JSON")
    p.add_argument("--no-kb", action="store_true", help="do not open the knowledge base")
    p.add_argument("--accept-new-host-keys", action="store_true", help="SSH: trust unknown host keys (never changed ones)")
    p.set_defaults(handler=cmd_diagnose)


def _fail(message: str) -> int:
    print(f"clusterdoc diagnose: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _read_alert(args: argparse.Namespace, default: str) -> str:
    if args.alert_file:
        if args.alert_file == "-":
            return sys.stdin.read()
        with open(args.alert_file, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    return args.alert if args.alert is not None else default


def cmd_diagnose(args: argparse.Namespace) -> int:
    from diagnostics.types import ClusterdocError
    from pipelines.api import DiagnosisRequest
    from pipelines.runtime import build_agent, inventory_target, open_kb, scenario_target

    try:
        llm_cfg = LLMConfig(backend=args.llm, model=args.model, timeout_s=args.llm_timeout)
        config = AgentConfig(mode=args.mode, llm=llm_cfg)
    except ValueError as exc:
        return _fail(str(exc))
    try:
        if args.scenario:
            target = scenario_target(args.scenario)
        else:
            from diagnostics.executors.ssh import SSHConfig

            target = inventory_target(args.inventory, SSHConfig(accept_new_host_keys=args.accept_new_host_keys))
    except (ClusterdocError, ValueError, OSError) as exc:
        return _fail(str(exc))
    try:
        alert = _read_alert(args, getattr(target.scenario, "alert", None) or "")
    except OSError as exc:
        return _fail(f"--alert-file: {exc}")
    if args.target and args.target not in target.cluster.hosts:
        from pipelines.extract import normalize_node

        if normalize_node(args.target, target.cluster.hosts) is None and not alert:
            return _fail(f"unknown node {args.target!r}; known: {', '.join(target.cluster.hosts)}")
    kb, why = (None, "knowledge base not used (--no-kb)") if args.no_kb or args.mode in ("plain", "preplan") else open_kb()
    if why and not args.json:
        print(f"note: {why}", file=sys.stderr)
    agent = build_agent(target, config, kb=kb)
    try:
        diagnosis = agent.diagnose(DiagnosisRequest(alert, target=args.target, source="cli"))
    finally:
        target.close()
    if args.png:
        from pipelines.dot import DotGraph, render_png

        render_png(DotGraph.from_json(diagnosis.graph), args.png, title=diagnosis.summary[:90])
    if args.json:
        json.dump(diagnosis.to_dict(), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print(render_text(diagnosis))
        if args.png:
            print(f"graph: {args.png}")
    # Exit 0 only for a clean verdict (the checks that could show the symptom ran and passed).
    return EXIT_CLEAN if diagnosis.verdict == "clean" else EXIT_FOUND


def render_text(diagnosis: Any) -> str:
    from pipelines.dot import DotGraph, outline

    lines = []
    plain = getattr(diagnosis, "plain_summary", "")
    if plain:  # first: what a non-expert needs; the details follow
        lines += ["== in short ==", plain, ""]
    lines += ["== reasoning (Diagram of Thought) ==", outline(DotGraph.from_json(diagnosis.graph)), "", "== diagnosis =="]
    c = diagnosis.cause
    where = f" on {c.node}" + (f" GPU {c.gpu}" if c.gpu is not None else "") if c.node else ""
    scope = f" [{c.scope}-wide]" if c.scope in ("cluster", "job") and c.node is None and diagnosis.verdict != "clean" else ""
    lines.append(f"verdict: {diagnosis.verdict}  category: {c.category or '-'}{scope}")
    lines.append(f"cause: {c.fault or c.description[:120] or 'none'}{where}  (confidence {diagnosis.confidence:.2f})")
    lines.append(f"summary: {diagnosis.summary}")
    for a in diagnosis.anomalies[:8]:
        lines.append(f"anomaly: {a.get('host')} {a.get('check')}: {a.get('message')} ({a.get('category')})")
    if diagnosis.confirm_with:
        lines.append("confirm with: " + ", ".join(diagnosis.confirm_with))
    if diagnosis.checks_passed:
        lines.append("checks that ran and passed: " + ", ".join(diagnosis.checks_passed))
    for sim in diagnosis.similar[:3]:
        seen = "confirmed here" if sim.get("confirmed") else "not confirmed here"
        lines.append(f"similar past incident ({seen}): {sim.get('title')}: {str(sim.get('cause'))[:140]} ({sim.get('url')})")
    if diagnosis.degraded:
        lines.append(f"note: {diagnosis.degraded}")
    if diagnosis.llm != "none":
        cap = getattr(diagnosis, "llm_capability", {}) or {}
        why = f": {cap['note']}" if cap.get("note") else ""
        lines.append(f"model: {diagnosis.llm} (tier {diagnosis.llm_tier}{why})")
    lines.append("")
    lines.append("== evidence ==")
    for f in diagnosis.evidence or []:
        gpu = f" GPU {f['gpu']}" if f.get("gpu") is not None else ""
        lines.append(f"- [{f['severity']}] {f['host']}{gpu} {f['kind']}: {f['message']}")
    if not diagnosis.evidence:
        lines.append("- none")
    lines.append("")
    lines.append("== proposals (nothing runs until approved in chat) ==")
    for p in diagnosis.proposals:
        lines.append(f"- {p.id} [{p.risk}] {p.title}  hash {p.hash[:16]}")
        if p.impact is not None:  # what it costs the jobs on the node (pipelines.impact)
            lines.append(f"    jobs: {p.impact.text}")
        for step in p.steps:
            if step.note:  # where it runs when that needs saying (a Slurm action on the controller)
                lines.append(f"    # {step.tool} on {step.run_host}: {step.note}")
            lines.extend(f"    $ {cmd}" for cmd in step.commands)
    if not diagnosis.proposals:
        lines.append("- none")
    t = diagnosis.timings
    lines.append("")
    lines.append(f"tool invocations: {int(t.get('tool_invocations', 0))}, host-level runs: {len(diagnosis.tool_calls)}, "
                 f"wall {t.get('total_s', 0):.2f}s, llm {diagnosis.llm} tokens {diagnosis.tokens['prompt']}+{diagnosis.tokens['completion']}")
    return "\n".join(lines)
