"""How fast the benchmark itself runs (no model): loading, each metric's scorer, the B sandbox.

    python -m benchmark.speed.bench_runner [--quick]

Prints one row per stage (cases, wall time, cases/s, p50/p95 per case) and the runner's peak RSS,
then a summary line. Model backends are not timed here: their cost is the model's, and it is
reported per case (seconds, tokens) in every ``bench run`` report.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import psutil

from benchmark.cases import BCase, default_case_files, load_cases
from benchmark.llm import BenchLLM
from benchmark.report import table
from benchmark.results import RunContext
from benchmark.sandbox import run_candidate


def _timed(items: Sequence[Any], fn: Callable[[Any], Any]) -> tuple[float, list[float], list[Any]]:
    per: list[float] = []
    out: list[Any] = []
    start = time.perf_counter()
    for item in items:
        t0 = time.perf_counter()
        out.append(fn(item))
        per.append(time.perf_counter() - t0)
    return time.perf_counter() - start, per, out


def _row(stage: str, n: int, wall: float, per: list[float], note: str = "") -> list[Any]:
    p95 = sorted(per)[max(0, round(0.95 * len(per)) - 1)] if per else 0.0
    return [stage, n, round(wall, 3), round(n / wall, 1) if wall else 0.0,
            round(1000 * statistics.median(per), 1) if per else 0.0, round(1000 * p95, 1), note]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer B and S cases")
    args = ap.parse_args(argv)
    from benchmark.metrics import attribution, extraction, scenario

    rows: list[list[Any]] = []
    t0 = time.perf_counter()
    loaded = load_cases(default_case_files())
    load_s = time.perf_counter() - t0
    rows.append(_row("load + validate all case files", len(loaded.cases), load_s, [load_s / max(1, len(loaded.cases))]))

    none = BenchLLM("none")
    plain = RunContext(llm=none, mode="plain")
    a_cases = loaded.by_metric("A")
    wall, per, res = _timed(a_cases, lambda c: extraction.score(c, plain))
    rows.append(_row("A: pattern extractor", len(a_cases), wall, per, f"strict {statistics.mean(r.score for r in res):.3f}"))

    c_cases = loaded.by_metric("C")
    wall, per, res = _timed(c_cases, lambda c: attribution.score(c, plain))
    rows.append(_row("C: evidence, no KB", len(c_cases), wall, per, f"accuracy {statistics.mean(r.score for r in res):.3f}"))
    rag = RunContext(llm=none, mode="rag")
    t0 = time.perf_counter()
    rag.kb()
    kb_s = time.perf_counter() - t0
    rows.append(_row("KB load (fair split)", 1, kb_s, [kb_s], rag.kb_error[:40]))
    wall, per, res = _timed(c_cases, lambda c: attribution.score(c, rag))
    rows.append(_row("C: evidence + KB", len(c_cases), wall, per, f"accuracy {statistics.mean(r.score for r in res):.3f}"))

    b_cases = [c for c in loaded.by_metric("B") if isinstance(c, BCase)][: 6 if args.quick else None]

    def run_b(case: BCase) -> Any:
        return run_candidate(case.canonical_solution, case.tests, case.entry_point, scenario=case.scenario,
                             scenario_path=case.scenario_path, timeout_s=case.timeout_s)

    wall, per, res = _timed(b_cases, run_b)
    rows.append(_row("B: sandboxed run (canonical)", len(b_cases), wall, per,
                     f"passed {sum(r.passed for r in res)}/{len(res)}"))
    loop = "def f(executor, hosts):\n    while True:\n        pass\n"
    check = "def check(candidate, executor, hosts):\n    candidate(executor, hosts)\n"
    wall, per, res = _timed([1], lambda _: run_candidate(loop, check, "f", scenario=b_cases[0].scenario, timeout_s=2))
    rows.append(_row("B: endless loop, 2 s limit", 1, wall, per, f"killed={res[0].timed_out}"))

    s_cases = loaded.by_metric("S")[: 8 if args.quick else None]
    agent = RunContext(llm=none, mode="rag-dot-selfplay")
    agent._kb = rag.kb()
    wall, per, res = _timed(s_cases, lambda c: scenario.score(c, agent))
    rows.append(_row("S: agent, llm none", len(s_cases), wall, per,
                     f"strict {statistics.mean(r.score for r in res):.3f}, "
                     f"unsafe executed {sum(int(r.sub_scores.get('unsafe_executed', 0)) for r in res)}"))

    rss_mb = psutil.Process().memory_info().rss / 2**20
    print(table(["stage", "cases", "wall s", "cases/s", "p50 ms", "p95 ms", "result"], rows))
    print(f"runner peak RSS now: {rss_mb:.0f} MiB")
    b_row = rows[5]
    print(f"summary: 150-question set without a model scores in {sum(r[2] for r in rows):.1f}s on this machine; "
          f"B sandbox p50 {b_row[4]:.0f} ms per program; S agent p50 {rows[-1][4]:.0f} ms per scenario")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
