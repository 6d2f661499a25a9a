"""`clusterdoc perf …`: predict a training step, check a live or simulated cluster against it.

    clusterdoc perf predict --gpu H100-SXM5-80GB --gpus 64 --model-params 7e9 --tokens-per-step 4194304
    clusterdoc perf predict ... --step-log train.log --observed-step-s 41   # healthy MFU from the job
    clusterdoc perf check --scenario scenarios/a800-throttle.yaml
    clusterdoc perf check --inventory inventory.yaml --gpu A800-SXM4-80GB --model-params 7e9 --tokens-per-step 4194304
    clusterdoc perf gpus            # the hardware catalog
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from perf.catalog import (
    PRECISIONS,
    UnknownHardwareError,
    get_gpu,
    get_nic,
    gpu_names,
    interconnect_kinds,
    nic_names,
)
from perf.errors import PerfError
from perf.findings import Finding
from perf.history import calibrate_healthy_mfu, parse_step_times
from perf.workload import StepPrediction, check_training_memory, predict_training_step


def register(subparsers: Any) -> Any:
    """Add `perf predict|gpus`; returns the `perf` sub-command group so a layer above can add more."""
    perf = subparsers.add_parser("perf", help="performance models: expected step time, stragglers, early warning")
    sub = perf.add_subparsers(dest="perf_command", metavar="PERF_COMMAND")
    perf.set_defaults(handler=lambda args: _usage(perf))

    predict = sub.add_parser("predict", help="expected training-step time and its breakdown")
    _model_args(predict, required=True)
    predict.add_argument("--sm-clock", action="append", default=[], metavar="GPU=MHZ",
                         help="override one GPU's SM clock, e.g. --sm-clock 35=200 (repeatable)")
    predict.add_argument("--bus-bw-gbs", type=float, help="measured all-reduce bus bandwidth (GB/s)")
    predict.add_argument("--added-latency-ms", type=float, default=0.0)
    predict.add_argument("--tensor-parallel", type=int, default=1)
    predict.add_argument("--pipeline-parallel", type=int, default=1)
    predict.add_argument("--observed-step-s", type=float, help="measured step time: report the gap")
    predict.add_argument("--healthy-step-s", type=float, action="append", default=[], metavar="SECONDS",
                         help="a step time from a healthy stretch of this job (repeatable): the healthy MFU is "
                              "fitted to them instead of assumed")
    predict.add_argument("--step-log", metavar="FILE",
                         help="healthy step times, one per line or Megatron 'elapsed time per iteration' lines")
    predict.add_argument("--skip-steps", type=int, default=0, metavar="N",
                         help="drop the first N healthy steps (warm-up)")
    predict.add_argument("--format", choices=("text", "json", "dot"), default="text")
    predict.set_defaults(handler=_predict)

    gpus = sub.add_parser("gpus", help="list the hardware catalog")
    gpus.set_defaults(handler=_list)
    return sub


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _model_args(p: argparse.ArgumentParser, *, required: bool) -> None:
    p.add_argument("--gpu", required=required, help=f"GPU model ({', '.join(gpu_names())})")
    p.add_argument("--gpus", type=int, required=required, help="number of GPUs in the job")
    p.add_argument("--model-params", type=float, required=required, help="model parameters, e.g. 7e9")
    p.add_argument("--tokens-per-step", type=float, required=required, help="global batch in tokens")
    p.add_argument("--precision", default=None, help=f"one of {', '.join(PRECISIONS)} (default bf16)")
    p.add_argument("--interconnect", default=None,
                   help=f"{' | '.join(interconnect_kinds())} or a NIC ({', '.join(nic_names())})")


def _fail(message: str) -> int:
    print(f"clusterdoc perf: error: {message}", file=sys.stderr)
    return 2


def _parse_clocks(items: list[str], n: int, max_mhz: float) -> list[float] | None:
    if not items:
        return None
    clocks = [max_mhz] * n
    for item in items:
        gpu, sep, mhz = item.partition("=")
        if not sep or not gpu.strip().isdigit():
            raise PerfError(f"--sm-clock {item!r}: expected GPU=MHZ, e.g. 35=200")
        index = int(gpu)
        if index >= n:
            raise PerfError(f"--sm-clock {item!r}: GPU index {index} is not below --gpus {n}")
        try:
            clocks[index] = float(mhz)
        except ValueError:
            raise PerfError(f"--sm-clock {item!r}: {mhz!r} is not a number") from None
    return clocks


def _healthy_steps(args: argparse.Namespace) -> list[float]:
    steps = list(args.healthy_step_s)
    if args.step_log:
        try:
            with open(args.step_log, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError as exc:
            raise PerfError(f"--step-log {args.step_log}: {exc.strerror or exc}") from None
        parsed = parse_step_times(text, name=args.step_log)
        if not parsed:
            raise PerfError(f"--step-log {args.step_log}: no step times found")
        steps += parsed
    return steps


def _predict(args: argparse.Namespace) -> int:
    try:
        spec = get_gpu(args.gpu)
        clocks = _parse_clocks(args.sm_clock, args.gpus, spec.max_sm_clock_mhz) if args.gpus > 0 else None
        job: dict[str, Any] = {
            "precision": args.precision or "bf16", "interconnect": args.interconnect or "infiniband",
            "tensor_parallel": args.tensor_parallel, "pipeline_parallel": args.pipeline_parallel,
        }
        check_training_memory(spec, args.gpus, args.model_params)
        healthy = calibrate_healthy_mfu(spec, args.gpus, args.model_params, args.tokens_per_step,
                                        _healthy_steps(args), skip_first=args.skip_steps, **job)
        pred = predict_training_step(
            spec, args.gpus, args.model_params, args.tokens_per_step, sm_clocks_mhz=clocks,
            bus_bw_gbs=args.bus_bw_gbs, added_latency_ms=args.added_latency_ms, params=healthy.params, **job,
        )
        pred.breakdown["healthy_mfu_source"] = healthy.source
        findings: list[Finding] = []
        if args.observed_step_s is not None:
            from perf.detectors import expected_vs_observed

            findings = expected_vs_observed(pred, args.observed_step_s, sm_clocks_mhz=clocks,
                                            max_sm_clock_mhz=spec.max_sm_clock_mhz)
    except UnknownHardwareError as exc:
        return _fail(f"{exc.argument}: {exc}" if exc.argument else str(exc))
    except PerfError as exc:
        return _fail(str(exc))
    notes = [f"healthy MFU {healthy.healthy_mfu:.1%}, source: {healthy.source}"
             + (f" (median {healthy.step_s:.4g} s, spread {healthy.spread:.1%})" if healthy.step_s else "")]
    if healthy.note:
        notes.append(healthy.note)
    _emit(args.format, pred, findings, notes, args.observed_step_s)
    return 0


def format_prediction(pred: StepPrediction) -> str:
    b = pred.breakdown
    lines = [
        f"{b['gpu']} x {b['n_gpus']} ({b['precision']}, {b['interconnect']}): "
        f"{b['model_params']:.3g} params, {b['tokens_per_step']:.4g} tokens/step",
        f"expected step time  {pred.total_s:10.3f} s   ({pred.tokens_per_s:,.0f} tokens/s, MFU {b['mfu']:.1%})",
        f"  compute (SM clock) {pred.compute_s:10.3f} s   {b['flops_per_gpu']:.3g} FLOP/GPU at "
        f"{b['gemm_efficiency']:.0%} of {b['peak_flops'] / 1e12:g} TFLOP/s x clock {b['min_clock_ratio']:.3f}",
        f"  memory-bound       {pred.memory_s:10.3f} s   {b['memory_bytes_per_gpu'] / 1e9:.3g} GB at "
        f"{b['hbm_bw_gbs']:g} GB/s HBM",
        f"  communication      {pred.comm_s:10.3f} s   ring all-reduce of {b['grad_bytes'] / 1e9:.3g} GB at "
        f"{b['bus_bw_gbs']:.1f} GB/s bus bandwidth",
        f"  other (host, gaps) {pred.overhead_s:10.3f} s   calibrated from a healthy MFU of {b['healthy_mfu']:.1%}"
        + (f" ({b['healthy_mfu_source']})" if b.get("healthy_mfu_source") else ""),
        f"SM-clock-bound share of a healthy step: {b['clock_bound_share']:.2f}",
    ]
    if pred.slowest_gpu is not None:
        healthy = b["healthy_step_s"]
        lines.append(f"slowest GPU: #{pred.slowest_gpu} sets the synchronous step: {pred.total_s / healthy:.2f}x "
                     f"the healthy {healthy:.3f} s (throughput {healthy / pred.total_s:.0%})")
    return "\n".join(lines)


def _emit(fmt: str, pred: StepPrediction | None, findings: list[Finding], notes: list[str],
          observed: float | None) -> None:
    if fmt == "json":
        out: dict[str, Any] = {"findings": [f.to_dict() for f in findings], "notes": notes}
        if pred is not None:
            out["prediction"] = {"total_s": pred.total_s, "compute_s": pred.compute_s, "memory_s": pred.memory_s,
                                 "comm_s": pred.comm_s, "overhead_s": pred.overhead_s,
                                 "slowest_gpu": pred.slowest_gpu, "breakdown": pred.breakdown}
        if observed is not None:
            out["observed_step_s"] = observed
        print(json.dumps(out, indent=2, default=str))
        return
    if fmt == "dot":
        from perf.xmlreport import PerfReport, render_prediction, render_report

        if pred is not None:
            print(render_prediction(pred, observed_step_s=observed, findings=findings, notes=notes))
        else:
            print(render_report(PerfReport(model="telemetry", findings=findings, notes=notes)))
        return
    if pred is not None:
        print(format_prediction(pred))
    if observed is not None and pred is not None:
        print(f"observed step time  {observed:10.3f} s   ({pred.total_s / observed:.0%} of expected throughput)")
    if findings:
        print(f"findings ({len(findings)}):")
        for f in findings:
            where = f.host if f.gpu is None else f"{f.host} GPU {f.gpu}"
            print(f"  [{f.severity}] {f.kind} {where}: {f.message}")
    elif pred is None or observed is not None:
        print("no findings: the cluster performs as the model expects")
    for note in notes:
        print(f"note: {note}")


def _list(args: argparse.Namespace) -> int:
    print(f"{'GPU':16s} {'bf16 TF':>8s} {'fp8 TF':>7s} {'HBM GB':>7s} {'HBM GB/s':>9s} {'SM MHz':>7s} "
          f"{'power W':>8s} {'NVLink GB/s':>12s}")
    for name in gpu_names():
        g = get_gpu(name)
        print(f"{g.name:16s} {g.peak_tflops['bf16']:8g} {g.peak_tflops.get('fp8', 0):7g} {g.hbm_gb:7g} "
              f"{g.hbm_bw_gbs:9g} {g.max_sm_clock_mhz:7d} {g.default_power_w:8d} {g.nvlink_bw_gbs:12g}")
    print()
    for name in nic_names():
        n = get_nic(name)
        print(f"{n.name:14s} {n.kind:10s} {n.rate_gbps:5g} Gb/s  ~{n.effective_gbs:g} GB/s effective")
    return 0
