"""The agent's case study and scenario accuracy, per model backend.

    python -m benchmark.speed.agent_case_study [--backends none,llamacpp[,ollama]] [--limit N]
        [--scenarios DIR] [--mode rag-dot-selfplay] [--no-kb]

1. The case study (scenarios/a800-throttle.yaml: "step time up 3x", no node named) with the
   embedded model: tool invocations until the GPU is localized (target <= 3) and wall time on this
   machine (target < 60 s; the load average is printed because the 2 cores are shared).
2. Every shipped scenario with each backend (ollama only where OLLAMA_HOST is set): node, GPU,
   fault kind and remediation accuracy (target >= 90% on node and fault kind).
Prints one table per part and a summary line last.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from pipelines.api import DiagnosisRequest
from pipelines.config import AgentConfig, LLMConfig
from pipelines.llm import make_llm
from pipelines.runtime import build_agent, open_kb, scenario_target

ROOT = Path(__file__).resolve().parents[2]


def run_one(path: Path, backend: str, llm: Any, kb: Any, mode: str) -> dict[str, Any]:
    target = scenario_target(str(path))
    sc = target.scenario
    agent = build_agent(target, AgentConfig(mode=mode, llm=LLMConfig(backend=backend)), llm=llm, kb=kb)
    t0 = time.monotonic()
    d = agent.diagnose(DiagnosisRequest(sc.alert or "", source="benchmark"))
    wall = time.monotonic() - t0
    e = sc.expect
    tools = {s.tool for p in d.proposals for s in p.steps}
    rem_ok = (not d.proposals) if e.fault is None else bool(tools & set(e.remediation))
    return {
        "scenario": path.stem,
        "backend": backend,
        "node": d.cause.node == e.node,
        "gpu": (d.cause.gpu == e.gpu) if e.gpu is not None else True,
        "fault": d.cause.fault == e.fault,
        "remediation": rem_ok,
        "invocations": int(d.timings.get("tool_invocations", 0)),
        "invocations_to_cause": int(d.timings.get("invocations_to_cause", 0)),
        "wall_s": wall,
        "tokens": d.tokens["prompt"] + d.tokens["completion"],
        "degraded": bool(d.degraded),
        "got": f"{d.cause.fault}@{d.cause.node}/{d.cause.gpu}",
    }


def pct(rows: list[dict[str, Any]], key: str) -> float:
    return 100.0 * sum(1 for r in rows if r[key]) / max(1, len(rows))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="none,llamacpp" + (",ollama" if os.environ.get("OLLAMA_HOST") else ""))
    ap.add_argument("--limit", type=int, default=0, help="only the first N scenarios per model backend (0: all)")
    ap.add_argument("--scenarios", default=str(ROOT / "scenarios"))
    ap.add_argument("--mode", default="rag-dot-selfplay")
    ap.add_argument("--no-kb", action="store_true")
    args = ap.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    paths = sorted(Path(args.scenarios).glob("*.yaml"))
    case = Path(args.scenarios) / "a800-throttle.yaml"
    kb, why = (None, "") if args.no_kb else open_kb()
    if why:
        print(f"note: {why}")
    llms: dict[str, Any] = {}
    for b in backends:
        llm = make_llm(LLMConfig(backend=b, timeout_s=300.0))
        t0 = time.monotonic()
        llm.warm_up()
        llms[b] = llm
        if b != "none":
            print(f"{b}: warm-up {time.monotonic() - t0:.1f}s")

    print("\n== case study: a800-throttle (no node named) ==")
    print(f"{'backend':<10} {'cause':<34} {'to cause':>11} {'wall_s':>8} {'tokens':>7} {'load1':>6}")
    case_rows = []
    for b in backends:
        r = run_one(case, b, llms[b], kb, args.mode)
        load = os.getloadavg()[0]
        case_rows.append(r)
        print(f"{b:<10} {r['got']:<34} {r['invocations_to_cause']:>11} {r['wall_s']:>8.1f} {r['tokens']:>7} {load:>6.1f}")

    print("\n== shipped scenarios ==")
    print(f"{'backend':<10} {'scenario':<34} {'node':>4} {'gpu':>4} {'fault':>5} {'fix':>4} {'inv':>4} {'wall_s':>7} {'tokens':>6}  got")
    per_backend: dict[str, list[dict[str, Any]]] = {}
    for b in backends:
        chosen = paths if (b == "none" or not args.limit) else paths[: args.limit]
        for p in chosen:
            r = run_one(p, b, llms[b], kb, args.mode)
            per_backend.setdefault(b, []).append(r)
            yn = {True: "y", False: "N"}
            print(f"{b:<10} {r['scenario']:<34} {yn[r['node']]:>4} {yn[r['gpu']]:>4} {yn[r['fault']]:>5} {yn[r['remediation']]:>4} "
                  f"{r['invocations']:>4} {r['wall_s']:>7.1f} {r['tokens']:>6}  {r['got']}")
    print()
    print(f"{'backend':<10} {'n':>3} {'node%':>6} {'gpu%':>6} {'fault%':>7} {'fix%':>6} {'mean_inv':>8} {'mean_s':>7}")
    parts = []
    for b, rows in per_backend.items():
        mean_inv = sum(r["invocations"] for r in rows) / len(rows)
        mean_s = sum(r["wall_s"] for r in rows) / len(rows)
        print(f"{b:<10} {len(rows):>3} {pct(rows, 'node'):>6.0f} {pct(rows, 'gpu'):>6.0f} {pct(rows, 'fault'):>7.0f} "
              f"{pct(rows, 'remediation'):>6.0f} {mean_inv:>8.1f} {mean_s:>7.1f}")
        parts.append(f"{b} n={len(rows)} node {pct(rows, 'node'):.0f}% fault {pct(rows, 'fault'):.0f}% fix {pct(rows, 'remediation'):.0f}%")
    case_txt = ", ".join(f"{r['backend']} {r['invocations_to_cause']} invocations to the cause "
                         f"({r['invocations']} in all) {r['wall_s']:.1f}s" for r in case_rows)
    print(f"\nSUMMARY case study: {case_txt} (targets <= 3 invocations, < 60 s); " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
