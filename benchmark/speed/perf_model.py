"""Reproduce the paper's multi-resource result (its Fig. 3) on this machine's CPU.

Calibrates equivalent compute (GEMM), memory bandwidth (large copy) and an I/O link (throttled
loopback socket) with repeated runs until each mean rate is stable, and sizes mixed tasks from those
rates. Because this machine is shared, every mix is measured together with its parts run alone, in
shuffled order within each repeat, so the rates the model uses are those of the same minute (the
paper's rate is a random variable; we sample it next to the mix). Each pair's overlap coefficient is
fitted from ONE 50/50 mix; every other mix (other proportions, three-resource mixes) is a held-out
prediction compared with its measured wall time. Prints a table, writes a PNG, ends with a summary.

    python -m benchmark.speed.perf_model [--quick] [--plot PATH]
"""

from __future__ import annotations

import os

# one BLAS thread: the I/O receiver and the other users of this 2-core machine keep the other core
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from perf.calibrate import CpuLab, has_task_clock, task_clock
from perf.resource_model import DEFAULT_OVERLAP, combine, fit_overlap

PAIRS = (("A", "compute", "memory"), ("B", "io", "memory"), ("C", "io", "compute"))


@dataclass
class Point:
    panel: str
    label: str
    share: float  # proportion of the first resource's stand-alone time
    work: dict[str, float]
    measured: float = 0.0
    alone: dict[str, float] | None = None  # best time of each part run alone, next to the mix
    fitted: float = 0.0
    paper: float = 0.0
    roofline: float = 0.0
    used_for_fit: bool = False

    @property
    def error(self) -> float:
        return abs(self.fitted - self.measured) / self.measured


def _counts(lab: CpuLab, work: dict[str, float]) -> tuple[int, int, float]:
    return (round(work.get("compute", 0) / lab.gemm_flops), round(work.get("memory", 0) / lab.slice_bytes),
            work.get("io", 0.0))


def _measure(lab: CpuLab, work: dict[str, float], repeats: int, rng: random.Random) -> tuple[float, dict[str, float]]:
    """Best wall time of the mix, and of each of its parts alone, measured interleaved.

    The minimum over repeats is the run least disturbed by the other users of the machine (their
    load only ever adds time), so it estimates the task's own time better than the mean does."""
    gemms, copies, io_bytes = _counts(lab, work)
    runs: dict[str, tuple[int, int, float]] = {"mix": (gemms, copies, io_bytes)}
    if gemms:
        runs["compute"] = (gemms, 0, 0.0)
    if copies:
        runs["memory"] = (0, copies, 0.0)
    if io_bytes:
        runs["io"] = (0, 0, io_bytes)
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeats):
        order = list(runs)
        rng.shuffle(order)
        for name in order:
            times[name].append(lab.run_mixed(*runs[name]))
    best = {k: min(v) for k, v in times.items()}
    mix = best.pop("mix")
    return mix, best


def _work_for(lab: CpuLab, rates: dict[str, float], times: dict[str, float]) -> dict[str, float]:
    """Work per resource that takes ``times`` alone, rounded to whole micro-tasks."""
    unit = {"compute": lab.gemm_flops, "memory": lab.slice_bytes, "io": 1.0}
    return {r: round(t * rates[r] / unit[r]) * unit[r] for r, t in times.items()}


def run(quick: bool, plot: Path, wall: bool = False) -> list[Point]:
    total = 0.05 if quick else 0.1
    repeats = 4 if quick else 5
    shares = (0.0, 0.2, 0.5, 0.8, 1.0) if quick else (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)
    lab = CpuLab(clock=time.perf_counter if wall else task_clock)
    print("clock: " + ("wall time" if wall or not has_task_clock() else
                       "task clock (wall time less run-queue wait: other processes' load removed)"))
    try:
        t0 = time.perf_counter()
        cal = lab.calibrate(max_seconds=3.0 if quick else 6.0)
        rates = cal.rates()
        print("calibration (95% CI of the mean rate, after warm-up)")
        for name, est, scale, unit in (("compute", cal.compute, 1e9, "GFLOP/s"), ("memory", cal.memory, 1e9, "GB/s"),
                                       ("io", cal.io, 1e6, "MB/s")):
            print(f"  {name:8s} {est.mean / scale:9.2f} {unit:8s} [{est.ci_low / scale:.2f}, {est.ci_high / scale:.2f}]"
                  f"  runs={est.runs}{'' if est.converged else ' (not converged)'}")

        points: list[Point] = []
        for panel, first, second in PAIRS:
            for share in shares:
                times = {first: share * total, second: (1 - share) * total}
                points.append(Point(panel, f"{first}/{second}", share, _work_for(lab, rates, times)))
        # three-resource mixes, predicted with the pairwise overlaps only
        for mix in ((0.4, 0.4, 0.2), (0.3, 0.2, 0.5), (0.2, 0.5, 0.6)):
            times = {"compute": mix[0] * total, "memory": mix[1] * total, "io": mix[2] * total}
            points.append(Point("3R", "compute/memory/io", mix[0], _work_for(lab, rates, times)))

        rng = random.Random(0)
        for p in points:
            p.measured, p.alone = _measure(lab, p.work, repeats, rng)
        singles = [(p.work[r] / rates[r], t) for p in points for r, t in (p.alone or {}).items()]
        drift = statistics.median(abs(pred - t) / t for pred, t in singles)

        # fit each pair's overlap from its 50/50 point only
        overlap = dict(DEFAULT_OVERLAP)
        for panel, first, second in PAIRS:
            mid = next(p for p in points if p.panel == panel and p.share == 0.5)
            mid.used_for_fit = True
            t = mid.alone or {}
            overlap[frozenset({first, second})] = fit_overlap(t.get(first, 0.0), t.get(second, 0.0), mid.measured)
        for p in points:
            alone = p.alone or {}
            p.fitted = combine(alone, overlap)
            p.paper = combine(alone, DEFAULT_OVERLAP)
            p.roofline = max(alone.values(), default=0.0)
        _plot(points, plot)
        print(f"measured {len(points)} mixes x {repeats} repeats (each with its parts alone) in "
              f"{time.perf_counter() - t0:.1f} s")
        print(f"single-resource model (work / calibrated rate) vs parts measured alone: median error {drift:.1%}")
        return _report(points, overlap)
    finally:
        lab.close()


def _report(points: Sequence[Point], overlap: dict[frozenset[str], float]) -> list[Point]:
    print()
    print(f"{'panel':5s} {'resources':18s} {'share':>5s} {'measured':>9s} {'model':>9s} {'paper-o':>9s} "
          f"{'roofline':>9s} {'error':>7s}")
    for p in points:
        mark = "  (fit)" if p.used_for_fit else "  (alone)" if p.panel != "3R" and p.share in (0.0, 1.0) else ""
        print(f"{p.panel:5s} {p.label:18s} {p.share:5.2f} {p.measured * 1e3:8.1f}ms {p.fitted * 1e3:8.1f}ms "
              f"{p.paper * 1e3:8.1f}ms {p.roofline * 1e3:8.1f}ms {p.error:7.1%}{mark}")
    # a pair's end points are one resource alone (the mix IS its part): repeatability, not prediction
    ends = [p for p in points if p.panel != "3R" and p.share in (0.0, 1.0)]
    held_out = [p for p in points if not p.used_for_fit and p not in ends]
    med = statistics.median(p.error for p in held_out)
    med_paper = statistics.median(abs(p.paper - p.measured) / p.measured for p in held_out)
    med_roof = statistics.median(abs(p.roofline - p.measured) / p.measured for p in held_out)
    fit = ", ".join(f"{'-'.join(sorted(k))}={v:.2f}" for k, v in sorted(overlap.items(), key=lambda kv: sorted(kv[0])))
    med_ends = statistics.median(p.error for p in ends) if ends else 0.0
    print()
    for panel, first, second in (*PAIRS, ("3R", "compute/memory", "io")):
        pts = [p for p in held_out if p.panel == panel]
        if pts:
            model_err = statistics.median(p.error for p in pts)
            roof_err = statistics.median(abs(p.roofline - p.measured) / p.measured for p in pts)
            print(f"panel {panel} ({first} + {second}): median error model {model_err:.1%}, roofline {roof_err:.1%}")
    print(f"single-resource end points (same task run twice): median difference {med_ends:.1%}")
    print(f"perf_model: median error {med:.1%} on {len(held_out)} held-out mixes (paper overlaps {med_paper:.1%}, "
          f"roofline {med_roof:.1%}); fitted overlap {fit}; target <10%: {'PASS' if med < 0.10 else 'FAIL'}")
    return list(points)


def _plot(points: Sequence[Point], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=False)
    for ax, (panel, first, second) in zip(axes, PAIRS, strict=True):
        pts = sorted((p for p in points if p.panel == panel), key=lambda p: p.share)
        xs = [p.share for p in pts]
        ax.plot(xs, [p.measured * 1e3 for p in pts], "o", color="black", label="measured")
        ax.plot(xs, [p.fitted * 1e3 for p in pts], "-", color="tab:blue", label="multi-resource model")
        ax.plot(xs, [p.roofline * 1e3 for p in pts], "--", color="tab:orange", label="roofline (max)")
        ax.set_title(f"{panel}: {first} vs {second}")
        ax.set_xlabel(f"share of {first} in the task")
        ax.set_ylabel("time to complete (ms)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"plot written to {path}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.speed.perf_model", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter mixes (~15 s)")
    parser.add_argument("--wall", action="store_true", help="measure plain wall time (no run-queue correction)")
    parser.add_argument("--plot", type=Path, default=Path(tempfile.gettempdir()) / "clusterdoc-bench" / "perf_model.png",
                        help="where to write the PNG (default: %(default)s)")
    args = parser.parse_args(argv)
    run(args.quick, args.plot, args.wall)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
