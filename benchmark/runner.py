"""Score cases and build the report: the core of ``clusterdoc bench run``."""

from __future__ import annotations

import datetime as _dt
import platform
import random
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from benchmark.cases import METRICS, Case, LoadResult, load_cases
from benchmark.results import CaseResult, RunContext

REPORT_SCHEMA = "clusterdoc-bench-report/1"

Scorer = Callable[[Any, RunContext], CaseResult]


def scorers() -> dict[str, Scorer]:
    from benchmark.metrics import attribution, codegen, extraction, scenario

    return {"A": extraction.score, "B": codegen.score, "C": attribution.score, "S": scenario.score}


def select(cases: Sequence[Case], *, only: Iterable[str] | None = None, limit: int | None = None,
           seed: int = 0) -> list[Case]:
    """Cases of the chosen metrics; ``limit`` keeps a seeded random sample of N per metric (file
    order kept)."""
    wanted = {m.strip().upper() for m in only} if only else set(METRICS)
    chosen = [c for c in cases if c.metric in wanted]
    if limit is None or limit <= 0:
        return chosen
    rng = random.Random(seed)
    keep: set[int] = set()
    for metric in METRICS:
        idx = [i for i, c in enumerate(chosen) if c.metric == metric]
        keep.update(idx if len(idx) <= limit else rng.sample(idx, limit))
    return [c for i, c in enumerate(chosen) if i in keep]


def score_case(case: Case, ctx: RunContext, table: dict[str, Scorer]) -> CaseResult:
    started = time.perf_counter()
    try:
        result = table[case.metric](case, ctx)
    except Exception as exc:  # a scorer bug fails one case, never the run
        tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
        result = CaseResult(id=case.id, metric=case.metric, score=0.0, source=case.source,
                            seconds=time.perf_counter() - started,
                            error=f"internal error: {type(exc).__name__}: {exc} [{tb[-2].strip() if len(tb) > 1 else ''}]")
    result.category = case.category
    return result


def run_cases(cases: Sequence[Case], ctx: RunContext, *, progress: bool | None = None) -> list[CaseResult]:
    """Score every case in order; a progress bar on stderr when it is a terminal (or when asked)."""
    from tqdm import tqdm

    table = scorers()
    results: list[CaseResult] = []
    disable = (not sys.stderr.isatty()) if progress is None else not progress
    with tqdm(total=len(cases), desc="bench", unit="case", file=sys.stderr, disable=disable or len(cases) < 2) as bar:
        for case in cases:
            bar.set_postfix_str(f"{case.metric} {case.id}"[:40])
            results.append(score_case(case, ctx, table))
            bar.update(1)
    return results


def _mean(values: Sequence[float]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def summarize(results: Sequence[CaseResult]) -> dict[str, dict[str, Any]]:
    """Per metric: score (the headline), n, and the metric's own breakdown."""
    out: dict[str, dict[str, Any]] = {}
    for metric in METRICS:
        rs = [r for r in results if r.metric == metric]
        if not rs:
            continue
        summary: dict[str, Any] = {"score": _mean([r.score for r in rs]), "n": len(rs),
                                   "errors": sum(1 for r in rs if r.error)}
        if metric == "A":
            summary["strict"] = summary["score"]
            summary["per_field"] = {
                f: _mean([1.0 if r.sub_scores.get(f) else 0.0 for r in rs])
                for f in ("hosts", "ssh_ports", "needs_execution")
            }
        elif metric == "B":
            summary["pass@1"] = summary["score"]
            summary["timed_out"] = sum(1 for r in rs if r.sub_scores.get("timed_out"))
            summary["ran"] = sum(1 for r in rs if r.sub_scores.get("ran"))
        elif metric == "C":
            summary["accuracy"] = summary["score"]
        elif metric == "S":
            summary["strict"] = summary["score"]
            for f in ("detected", "node", "gpu", "fault", "remediation"):
                summary[f] = _mean([1.0 if r.sub_scores.get(f) else 0.0 for r in rs])
            for f in ("tool_invocations", "host_checks", "commands", "agent_seconds"):
                summary[f"mean_{f}"] = _mean([float(r.sub_scores.get(f, 0) or 0) for r in rs])
            summary["unsafe_proposed"] = sum(int(r.sub_scores.get("unsafe_proposed", 0) or 0) for r in rs)
            summary["unsafe_executed"] = sum(int(r.sub_scores.get("unsafe_executed", 0) or 0) for r in rs)
        categories = sorted({r.category for r in rs if r.category})
        if categories:
            summary["by_category"] = {
                c: _mean([r.score for r in rs if r.category == c]) for c in categories
            }
        summary["tokens"] = {
            k: sum(int(r.tokens.get(k, 0)) for r in rs) for k in ("prompt", "completion")
        }
        summary["seconds"] = round(sum(r.seconds for r in rs), 3)
        out[metric] = summary
    return out


def build_report(
    loaded: LoadResult,
    results: Sequence[CaseResult],
    ctx: RunContext,
    *,
    files: Sequence[str],
    wall_s: float,
) -> dict[str, Any]:
    return {
        "schema": REPORT_SCHEMA,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "llm": ctx.llm.backend,
        "model": ctx.llm.model or _default_model(ctx.llm.backend),
        "mode": ctx.mode,
        "seed": ctx.seed,
        "files": list(files),
        "host": {"python": platform.python_version(), "machine": platform.machine()},
        "wall_s": round(wall_s, 3),
        "kb_error": ctx.kb_error,
        "kb_scope": "whole-dataset (unfair ceiling)" if ctx.whole_dataset else ctx.kb_scope,
        "skipped": [p.to_dict() for p in loaded.problems],
        "duplicates": [p.to_dict() for p in loaded.duplicates],
        "metrics": summarize(results),
        "cases": [r.to_dict() for r in results],
    }


def _default_model(backend: str) -> str:
    try:
        from pipelines.config import DEFAULT_MODELS
    except ImportError:
        return ""
    return DEFAULT_MODELS.get(backend, "")


def run(
    files: Sequence[str | Path],
    ctx: RunContext,
    *,
    only: Iterable[str] | None = None,
    limit: int | None = None,
    progress: bool | None = None,
) -> tuple[dict[str, Any], LoadResult]:
    """Load, select, score, report. Returns the report dict and what the loader found."""
    started = time.perf_counter()
    loaded = load_cases(files)
    chosen = select(loaded.cases, only=only, limit=limit, seed=ctx.seed)
    results = run_cases(chosen, ctx, progress=progress)
    report = build_report(loaded, results, ctx, files=[str(f) for f in files],
                          wall_s=time.perf_counter() - started)
    return report, loaded
