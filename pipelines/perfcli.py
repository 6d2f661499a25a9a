"""`clusterdoc perf`: the model commands from perf (predict, gpus) plus `perf check` and `perf watch`,
which open a cluster and run tools, so they live here above perf."""

from __future__ import annotations

import argparse
from typing import Any

from diagnostics.types import ClusterdocError
from perf.cli import _emit, _fail, _model_args
from perf.cli import register as register_models
from perf.errors import PerfError
from perf.findings import Finding


def register(subparsers: Any) -> None:
    sub = register_models(subparsers)
    check = sub.add_parser("check", help="compare a live or simulated cluster with the model")
    src = check.add_mutually_exclusive_group(required=True)
    src.add_argument("--inventory", help="inventory YAML of real nodes (checked over SSH)")
    src.add_argument("--scenario", help="scenario YAML (checked in the simulator)")
    _model_args(check, required=False)
    check.add_argument("--format", choices=("text", "json", "dot"), default="text")
    check.set_defaults(handler=_check)

    watch = sub.add_parser("watch", help="poll telemetry and raise early warnings before the job slows")
    src = watch.add_mutually_exclusive_group(required=True)
    src.add_argument("--inventory", help="inventory YAML of real nodes (polled over SSH)")
    src.add_argument("--scenario", help="scenario YAML (simulated time advances between polls)")
    watch.add_argument("--samples", type=int, default=30, help="number of polls (default 30)")
    watch.add_argument("--interval-s", type=float, default=10.0, help="seconds between polls (default 10)")
    watch.add_argument("--gpu", help="GPU model, for its slowdown temperature (default: from the file)")
    watch.set_defaults(handler=_watch)



def _check(args: argparse.Namespace) -> int:
    from pipelines.perfcheck import CheckInputs, run_check

    try:
        result = run_check(CheckInputs(
            inventory=args.inventory, scenario=args.scenario, gpu=args.gpu, n_gpus=args.gpus,
            model_params=args.model_params, tokens_per_step=args.tokens_per_step,
            precision=args.precision, interconnect=args.interconnect,
        ))
    except (ClusterdocError, PerfError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot read {args.inventory or args.scenario}: {exc}")
    _emit(args.format, result.prediction, result.findings, result.notes, result.observed_step_s)
    return 1 if any(f.severity != "info" for f in result.findings) else 0


def _watch(args: argparse.Namespace) -> int:
    from pipelines.perfcheck import CheckInputs, watch

    def show(sample: int, f: Finding) -> None:
        where = f.host if f.gpu is None else f"{f.host} GPU {f.gpu}"
        print(f"[sample {sample}] {f.kind} {where}: {f.message}", flush=True)

    try:
        fired, notes = watch(CheckInputs(inventory=args.inventory, scenario=args.scenario, gpu=args.gpu),
                             samples=args.samples, interval_s=args.interval_s, on_warning=show)
    except (ClusterdocError, PerfError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot read {args.inventory or args.scenario}: {exc}")
    print(f"{len(fired)} early warning(s) in {args.samples} samples")
    for note in notes:
        print(f"note: {note}")
    return 1 if fired else 0
