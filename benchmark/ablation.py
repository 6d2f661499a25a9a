"""The ablation table in the method's shape: rows mode x backend, columns metrics A, B, C, S."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmark.cases import METRICS, default_case_files
from benchmark.llm import BenchLLM, available_backends
from benchmark.report import bar_chart, markdown_table, table
from benchmark.results import MODES, RunContext
from benchmark.runner import run

# What each mode means, for the table's notes (the method's column "cheating").
MODE_NOTES = {
    "plain": "no knowledge base, no reasoning graph",
    "rag": "knowledge base (perceivable split) retrieval",
    "rag-dot-selfplay": "RAG + Diagram of Thought + self-play critique",
    "preplan": "a pre-written plan per task (unfair: written knowing the benchmark)",
    "whole-dataset": "RAG + DoT + self-play with the benchmark split retrievable (unfair: a ceiling)",
}


def run_ablation(
    out_dir: str | Path,
    *,
    backends: Sequence[str] | None = None,
    modes: Sequence[str] = MODES,
    files: Sequence[str | Path] | None = None,
    limit: int | None = None,
    only: Sequence[str] | None = None,
    seed: int = 0,
    model: str = "",
    whole_dataset: bool = False,
    progress: bool | None = None,
    llm_timeout_s: float | None = None,
) -> dict[str, Any]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = list(files) if files else [str(p) for p in default_case_files()]
    backends = list(backends) if backends else available_backends()
    rows: list[dict[str, Any]] = []
    shared_kb: dict[bool, Any] = {}
    for backend in backends:
        llm = BenchLLM(backend, model=model, seed=seed, timeout_s=llm_timeout_s)
        variants = [(m, False) for m in modes] + ([("rag-dot-selfplay", True)] if whole_dataset else [])
        for mode, whole in variants:
            ctx = RunContext(llm=llm, mode=mode, seed=seed, whole_dataset=whole)
            if whole in shared_kb:  # load the knowledge base once per split setting
                ctx._kb = shared_kb[whole]
            started = time.perf_counter()
            report, _ = run(files, ctx, only=only, limit=limit, progress=progress)
            if ctx._kb is not None:
                shared_kb[whole] = ctx._kb
            name = f"{backend}-{'whole-dataset' if whole else mode}"
            (out / f"{name}.json").write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
            rows.append({
                "backend": backend,
                "mode": "whole-dataset" if whole else mode,
                "label": f"{backend}/{'whole-dataset' if whole else mode}",
                "metrics": report["metrics"],
                "seconds": round(time.perf_counter() - started, 1),
                "report": f"{name}.json",
            })
    headers = ["backend", "mode", *METRICS, "unsafe executed", "seconds", "note"]
    body = [
        [r["backend"], r["mode"], *[r["metrics"].get(m, {}).get("score") for m in METRICS],
         r["metrics"].get("S", {}).get("unsafe_executed"), r["seconds"], MODE_NOTES.get(r["mode"], "")]
        for r in rows
    ]
    md = (
        "# clusterdoc ablation\n\n"
        f"Cases: {', '.join(Path(f).name for f in files)}"
        + (f" (sample of {limit} per metric, seed {seed})" if limit else "")
        + "\n\n" + markdown_table(headers, body) + "\n\n"
        "A: extraction strict score; B: code generation pass@1; C: attribution accuracy; "
        "S: end-to-end scenario strict score. Backend `none` uses no model: A by patterns, B scores 0, "
        "C by evidence (log + retrieved causes), S by the agent's evidence path.\n"
    )
    (out / "ablation.md").write_text(md, encoding="utf-8")
    png = bar_chart(rows, out / "ablation.png", "clusterdoc ablation (mode x backend)")
    return {"rows": rows, "markdown": out / "ablation.md", "png": png, "text": table(headers, body)}
