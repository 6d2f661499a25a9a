"""``clusterdoc bench``: run, compare, ablation, baseline, build-cases."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from benchmark.llm import BACKENDS
from benchmark.results import MODES


def register(subparsers: Any) -> None:
    bench = subparsers.add_parser("bench", help="benchmark: metrics A/B/C/S, comparisons, ablation, baseline")
    sub = bench.add_subparsers(dest="bench_command", metavar="SUBCOMMAND")
    bench.set_defaults(handler=lambda args: (bench.print_help(), 2)[1])

    run = sub.add_parser("run", help="score case files (JSONL) and print one table per metric")
    run.add_argument("files", nargs="*", metavar="FILE",
                     help="case files or directories (default: the shipped benchmark/cases/)")
    _model_args(run)
    run.add_argument("--mode", choices=MODES, default="rag-dot-selfplay")
    run.add_argument("--out", metavar="REPORT.json", help="write the JSON report here")
    run.add_argument("--per-case", action="store_true", help="also print one row per case")
    run.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="progress bar on stderr (default: when stderr is a terminal)")
    run.set_defaults(handler=cmd_run)

    cmp_ = sub.add_parser("compare", help="compare run reports case by case (table + optional PNG)")
    cmp_.add_argument("reports", nargs="+", metavar="REPORT.json")
    cmp_.add_argument("--png", metavar="OUT.png", help="write a bar chart of the runs")
    cmp_.set_defaults(handler=cmd_compare)

    abl = sub.add_parser("ablation", help="mode x backend table of metrics A, B, C, S (markdown + PNG)")
    abl.add_argument("files", nargs="*", metavar="FILE", help="case files (default: benchmark/cases/)")
    abl.add_argument("--llm", action="append", choices=BACKENDS, dest="backends",
                     help="backend to include (repeatable; default: every one available here)")
    abl.add_argument("--model", default="", help="model name for the model backends")
    abl.add_argument("--modes", default=",".join(MODES), help=f"comma list of modes (default: {','.join(MODES)})")
    abl.add_argument("--out-dir", default="bench-ablation", help="where reports, ablation.md and ablation.png go")
    abl.add_argument("--limit", type=int, default=None, help="sample N cases per metric")
    abl.add_argument("--only", default=None, help="metrics to run, e.g. A,C")
    abl.add_argument("--seed", type=int, default=0)
    abl.add_argument("--llm-timeout", type=float, default=None, metavar="S", help="seconds per model call")
    abl.add_argument("--whole-dataset", action="store_true",
                     help="add the unfair 'whole dataset' row (benchmark split retrievable): a ceiling")
    abl.set_defaults(handler=cmd_ablation)

    base = sub.add_parser("baseline", help="full sweep (every check on every node) vs the agent on S cases")
    base.add_argument("files", nargs="*", metavar="FILE", help="case files (default: benchmark/cases/)")
    _model_args(base)
    base.add_argument("--mode", choices=MODES, default="rag-dot-selfplay")
    base.add_argument("--level", choices=("quick", "medium", "long"), default="long",
                      help="checks the sweep runs (default long: every check)")
    base.add_argument("--no-agent", action="store_true", help="only the sweep")
    base.add_argument("--ssh", action="store_true",
                      help="reach the simulated nodes over real SSH on 127.0.0.1 (paramiko), not in-process")
    base.add_argument("--out", metavar="OUT.json")
    base.set_defaults(handler=cmd_baseline)

    build = sub.add_parser("build-cases", help="regenerate benchmark/cases/ from the knowledge base seed")
    build.add_argument("--seed-file", default=None, help="seed JSONL (default kb/data/seed.jsonl)")
    build.add_argument("--out-dir", default=None, help="default benchmark/cases/")
    build.set_defaults(handler=cmd_build)


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--llm", choices=BACKENDS, default="none", help="model backend (default none)")
    p.add_argument("--kb", choices=("all", "split"), default="all",
                   help="knowledge base: 'all' records minus each case's own thread (default, as in production) "
                        "or 'split' (the paper's rule: the perceivable 20%% only)")
    p.add_argument("--model", default="", help="model name (default: the backend's default)")
    p.add_argument("--limit", type=int, default=None, help="sample N cases per metric (seeded)")
    p.add_argument("--only", default=None, help="metrics to run, e.g. A,C")
    p.add_argument("--seed", type=int, default=0, help="seed for sampling and for the model")
    p.add_argument("--llm-timeout", type=float, default=None, metavar="S",
                   help="seconds per model call (default: the backend's; raise it on a slow machine)")


def _files(args: argparse.Namespace) -> list[str] | None:
    from benchmark.cases import default_case_files, expand_paths

    files = list(getattr(args, "files", []) or [])
    if not files:
        return [str(p) for p in default_case_files()]
    missing = [f for f in files if not Path(f).exists()]
    if missing:
        print(f"clusterdoc bench: no such file: {', '.join(missing)}", file=sys.stderr)
        return None
    if not expand_paths(files):
        print(f"clusterdoc bench: no *.jsonl files in {', '.join(files)}", file=sys.stderr)
        return None
    return files


def _only(text: str | None) -> list[str] | None:
    if not text:
        return None
    wanted = [m.strip().upper() for m in text.split(",") if m.strip()]
    bad = [m for m in wanted if m not in ("A", "B", "C", "S")]
    if bad:
        raise SystemExit(f"clusterdoc bench: --only: unknown metric(s) {', '.join(bad)}; use A, B, C, S")
    return wanted


def _context(args: argparse.Namespace) -> Any:
    from benchmark.llm import BenchLLM
    from benchmark.results import RunContext

    llm = BenchLLM(args.llm, model=args.model, seed=args.seed, timeout_s=args.llm_timeout)
    return RunContext(llm=llm, mode=args.mode, seed=args.seed, kb_scope=getattr(args, "kb", "all"))


def _print_problems(loaded: Any) -> None:
    for problem in [*loaded.problems, *loaded.duplicates]:
        print(f"skipped: {problem}", file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    from benchmark.report import metric_tables, summary_line
    from benchmark.runner import run

    files = _files(args)
    if files is None:
        return 2
    report, loaded = run(files, _context(args), only=_only(args.only), limit=args.limit, progress=args.progress)
    _print_problems(loaded)
    if not report["cases"]:
        print("clusterdoc bench: no valid cases to score", file=sys.stderr)
        return 2
    print(metric_tables(report, per_case=args.per_case))
    if args.out:
        out = Path(args.out)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
        except OSError as exc:
            print(f"clusterdoc bench: cannot write the report to {out}: {exc.strerror}", file=sys.stderr)
            print(summary_line(report))
            return 2
        print(f"report written to {out}")
    print(summary_line(report))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from benchmark.report import ReportError, bar_chart, compare

    try:
        text, runs = compare(args.reports)
    except ReportError as exc:
        print(f"clusterdoc bench compare: {exc}", file=sys.stderr)
        return 2
    print(text)
    if args.png:
        try:
            path = bar_chart(runs, args.png, "clusterdoc benchmark runs")
        except OSError as exc:
            print(f"clusterdoc bench compare: cannot write {args.png}: {exc.strerror}", file=sys.stderr)
            return 2
        print(f"chart written to {path}")
    return 0


def cmd_ablation(args: argparse.Namespace) -> int:
    from benchmark.ablation import run_ablation

    files = _files(args)
    if files is None:
        return 2
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad:
        print(f"clusterdoc bench ablation: --modes: unknown {', '.join(bad)}; choose from {', '.join(MODES)}",
              file=sys.stderr)
        return 2
    try:
        result = run_ablation(args.out_dir, backends=args.backends, modes=modes, files=files, limit=args.limit,
                              only=_only(args.only), seed=args.seed, model=args.model,
                              whole_dataset=args.whole_dataset, llm_timeout_s=args.llm_timeout)
    except OSError as exc:
        print(f"clusterdoc bench ablation: cannot write to {args.out_dir}: {exc.strerror}", file=sys.stderr)
        return 2
    print(result["text"])
    print(f"written: {result['markdown']} {result['png']}")
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from benchmark.baseline import run_baseline
    from benchmark.cases import SCase, load_cases
    from benchmark.report import table
    from benchmark.runner import select

    files = _files(args)
    if files is None:
        return 2
    loaded = load_cases(files)
    _print_problems(loaded)
    cases = [c for c in select(loaded.cases, only=["S"], limit=args.limit, seed=args.seed) if isinstance(c, SCase)]
    if not cases:
        print("clusterdoc bench baseline: no S cases in the given files", file=sys.stderr)
        return 2
    rows = run_baseline(cases, None if args.no_agent else _context(args), level=args.level, ssh=args.ssh)
    headers = ["case", "sweep inv", "sweep s", "sweep found", "findings", "agent inv", "agent host checks",
               "agent s", "agent right", "error"]
    body = [[r.id, r.sweep_invocations, r.sweep_seconds, r.sweep_found, r.sweep_findings, r.agent_invocations,
             r.agent_host_checks, r.agent_seconds, r.agent_right, r.error[:50]] for r in rows]
    print(table(headers, body))
    ok = [r for r in rows if not r.error]
    sweep_inv = sum(r.sweep_invocations for r in ok)
    sweep_s = sum(r.sweep_seconds for r in ok)
    line = f"baseline: {len(ok)} scenarios, sweep {sweep_inv} check runs in {sweep_s:.2f}s, found {sum(r.sweep_found for r in ok)}"
    if not args.no_agent:
        agent_inv = sum(r.agent_invocations or 0 for r in ok)
        agent_hc = sum(r.agent_host_checks or 0 for r in ok)
        agent_s = sum(r.agent_seconds or 0.0 for r in ok)
        line += (f"; agent {agent_inv} tool invocations ({agent_hc} host-level runs) in {agent_s:.2f}s, "
                 f"right {sum(bool(r.agent_right) for r in ok)}")
    if args.out:
        try:
            Path(args.out).write_text(json.dumps([r.to_dict() for r in rows], indent=1), encoding="utf-8")
        except OSError as exc:
            print(f"clusterdoc bench baseline: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
            return 2
    print(line)
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from benchmark.build_cases import build

    try:
        counts = build(seed_file=args.seed_file, out_dir=args.out_dir)
    except OSError as exc:
        print(f"clusterdoc bench build-cases: {exc.filename or args.seed_file}: {exc.strerror}", file=sys.stderr)
        return 2
    except (ValueError, KeyError) as exc:
        print(f"clusterdoc bench build-cases: bad seed record: {exc}", file=sys.stderr)
        return 2
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    return 0
