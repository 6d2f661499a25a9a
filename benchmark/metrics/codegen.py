"""Metric B: diagnostic code generation, pass@1, HumanEval-style but against a (simulated) cluster.

The model writes a Python program defining ``entry_point``; the case's hidden ``check(candidate,
executor, hosts)`` runs it in a sandboxed subprocess (``benchmark.sandbox``) against the case's
scenario through the project's executor API.

With ``--llm none`` there is no program to run: metric B scores 0 for every case and says so
(``error: no model``). We chose this over a template generator because a generator keyed to the
task wording would measure the templates' author, not the system.
"""

from __future__ import annotations

import re
import time
from typing import Any

from benchmark.cases import BCase
from benchmark.results import CaseResult, RunContext
from benchmark.sandbox import run_candidate

DEFAULT_SCENARIO: dict[str, Any] = {
    "id": "bench-default-healthy",
    "description": "A small healthy cluster for code tasks that name no scenario",
    "cluster": {"nodes": 4, "gpus_per_node": 8, "gpu": "A100-SXM4-80GB", "interconnect": "infiniband",
                "scheduler": "slurm"},
    "seed": 1,
    "faults": [],
}

CODE_TOKENS = 600  # a short diagnostic function; JSON answers elsewhere need far less

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"code": {"type": "string"}},
    "required": ["code"],
}

API_NOTES = """\
You write one Python 3 function for a GPU cluster. Available inside your program:
- executor.run(host, command, timeout_s=30.0) -> CommandResult with .stdout .stderr .exit_code .ok;
  the nodes answer real tools: nvidia-smi (--query-gpu=index,clocks.sm,clocks.max.sm,power.draw,
  power.limit,temperature.gpu,... --format=csv,noheader,nounits), ibstat, df -P, free -m,
  cat /proc/loadavg, chronyc tracking, dmesg, env of the job, etc.
- Or the project's checks: from diagnostics.registry import default_registry;
  from diagnostics.toolkit import Toolkit; tk = Toolkit(default_registry(), executor);
  r = tk.run("gpu_clocks", host) -> ToolResult(.status, .findings [Finding(kind, host, gpu, message,
  data)], .data). Check names: gpu_clocks gpu_power gpu_temperature gpu_ecc gpu_row_remap gpu_xid
  gpu_pcie gpu_nvlink gpu_count gpu_persistence ib_ports ib_devinfo nccl_env net_latency disk_usage
  shm_size memory_oom cpu_load cpu_governor clock_sync versions reachability job_step_times.
- hosts: the list of node names. Use only the standard library and the modules above; do not start
  processes, open sockets or write files outside the current directory.
Answer with JSON whose "code" field holds the complete Python source, for example
{"code": "def count_hosts(executor, hosts):\\n    return len(hosts)\\n"}."""

PREPLAN = (
    "Plan: 1. For each host, run the one check (or nvidia-smi / ibstat query) that shows the property. "
    "2. Parse its output or findings. 3. Collect exactly the items the task asks for, in the asked "
    "shape and order. 4. Return them; print nothing."
)


def extract_code(data: dict[str, Any] | None, text: str) -> str:
    """The program from the model's JSON, or from a fenced block in its text."""
    if isinstance(data, dict) and isinstance(data.get("code"), str) and data["code"].strip():
        code = data["code"]
    else:
        code = text or ""
    fenced = re.search(r"```(?:python|py)?\s*\n(.*?)```", code, re.DOTALL)
    return fenced.group(1) if fenced else code


def _kb_context(case: BCase, ctx: RunContext) -> str:
    if not ctx.uses_kb or ctx.kb() is None:
        return ""
    try:
        excluded = {s.rstrip("/") for s in ctx.excluded(case)}
        hits = [h for h in ctx.kb().search(case.task, top_k=2 + len(excluded), splits=list(ctx.kb_splits()))
                if str(h.record.source).rstrip("/") not in excluded][:2]
    except Exception:
        return ""
    lines = [f"<record>{h.record.result} (checks: {', '.join(h.record.function)})</record>" for h in hits]
    return "<knowledge>\n" + "\n".join(lines) + "\n</knowledge>\n" if lines else ""


def generate(case: BCase, ctx: RunContext) -> tuple[str, dict[str, int], str]:
    """Ask the model for the program; returns (code, tokens, error)."""
    user = f"{_kb_context(case, ctx)}<task>\n{case.task}\n</task>\nDefine {case.entry_point}."
    if ctx.mode == "preplan":
        user = PREPLAN + "\n" + user
    first = ctx.llm.ask_json(API_NOTES, user, SCHEMA, max_tokens=CODE_TOKENS)
    tokens = dict(first.tokens)
    code = extract_code(first.data, first.text)
    if ctx.mode == "rag-dot-selfplay" and code.strip():
        critique = (
            f"{user}\n<draft>\n{code[:6000]}\n</draft>\nReview the draft: does it define "
            f"{case.entry_point} with the asked signature, handle hosts that fail or return no data, "
            "and return exactly the asked shape? Give the corrected whole program."
        )
        second = ctx.llm.ask_json(API_NOTES, critique, SCHEMA, max_tokens=CODE_TOKENS)
        tokens = {k: tokens[k] + second.tokens[k] for k in tokens}
        revised = extract_code(second.data, second.text)
        if f"def {case.entry_point}" in revised:
            code = revised
    error = "" if code.strip() else (first.error or "the model returned no program")
    return code, tokens, error


def run_program(case: BCase, code: str) -> Any:
    scenario = case.scenario if case.scenario is not None or case.scenario_path else DEFAULT_SCENARIO
    return run_candidate(code, case.tests, case.entry_point, scenario=scenario,
                         scenario_path=case.scenario_path, timeout_s=case.timeout_s)


def score(case: BCase, ctx: RunContext) -> CaseResult:
    started = time.perf_counter()
    if not ctx.llm.enabled:
        return CaseResult(id=case.id, metric="B", score=0.0, answer=None, expected="pass",
                          sub_scores={"ran": False}, seconds=time.perf_counter() - started,
                          error="no model: metric B needs a generated program (scored 0)", source=case.source)
    code, tokens, error = generate(case, ctx)
    result = None
    if code.strip():
        result = run_program(case, code)
        error = "" if result.passed else result.error
    return CaseResult(
        id=case.id,
        metric="B",
        score=1.0 if result is not None and result.passed else 0.0,
        answer={"code": code[:20000], "run": result.to_dict() if result else None},
        expected="pass",
        sub_scores={"ran": result is not None, "timed_out": bool(result and result.timed_out)},
        tokens=tokens,
        seconds=time.perf_counter() - started,
        error=error,
        source=case.source,
    )
