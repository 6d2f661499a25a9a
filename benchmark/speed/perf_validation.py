"""The perf model against published figures: a table of predicted vs published, median and worst
error, the same with healthy_mfu refitted without each source, a sensitivity line, and a PNG.

Every figure in perf/data/published.yaml (training throughput, NCCL all-reduce bus bandwidth,
batch-1 decode) is predicted from its configuration with one set of constants
(perf.workload.VALIDATED_PARAMS); see perf/validate.py for the constants and why.

    python -m benchmark.speed.perf_validation [--png PATH] [--data FILE]

The PNG is a log-log scatter of predicted against published, one colour per kind, with the y = x
line and a ±15% band. Exit status 1 when median or worst error misses its target (15%, 35%).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from perf.validate import (
    TARGET_MEDIAN,
    TARGET_WORST,
    Summary,
    fit_healthy_mfu,
    format_table,
    leave_one_source_out,
    load_figures,
    validate,
)
from perf.workload import VALIDATED_PARAMS, StepModelParams

DEFAULT_PNG = Path(tempfile.gettempdir()) / "clusterdoc-bench" / "perf_validation.png"
COLOURS = {"training": "tab:blue", "allreduce": "tab:orange", "decode": "tab:green"}


def _plot(summary: Summary, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 6.5))
    for kind, colour in COLOURS.items():
        pts = [r for r in summary.results if r.figure.kind == kind]
        if pts:
            ax.scatter([r.published for r in pts], [r.predicted for r in pts], s=28, color=colour,
                       label=f"{kind} ({len(pts)})", zorder=3)
    values = [v for r in summary.results for v in (r.published, r.predicted)]
    lo, hi = min(values) / 1.5, max(values) * 1.5
    ax.plot([lo, hi], [lo, hi], "-", color="black", lw=1, label="y = x")
    ax.fill_between([lo, hi], [lo * 0.85, hi * 0.85], [lo * 1.15, hi * 1.15], color="grey", alpha=0.2,
                    label="±15%")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("published (each figure in its own unit)")
    ax.set_ylabel("predicted by the perf model")
    worst = summary.worst
    ax.set_title(f"{len(summary.results)} published figures: median |error| {summary.median_abs_error:.1%}, "
                 f"worst {worst.abs_error:.1%}", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(data: Path | None, png: Path | None, params: StepModelParams = VALIDATED_PARAMS) -> Summary:
    figures = load_figures(data)
    summary = validate(figures, params)
    print(format_table(summary))
    held_out = leave_one_source_out(figures, params)
    fitted = fit_healthy_mfu(figures, params)
    print(f"\nhealthy_mfu refitted without each figure's source: median |error| {held_out.median_abs_error:.1%}, "
          f"worst {held_out.worst.abs_error:.1%} ({held_out.worst.figure.id})")
    print(f"healthy_mfu: validated {params.healthy_mfu:.2f}; median the training figures imply {fitted:.3f}; "
          f"default {StepModelParams().healthy_mfu:.2f}")
    sweep = []
    for mfu in (0.30, 0.35, 0.41, 0.45, 0.50):
        s = validate(figures, replace(params, healthy_mfu=mfu))
        sweep.append(f"{mfu:.2f}: {s.median_abs_error:.1%}/{s.worst.abs_error:.1%}")
    print("median/worst |error| by healthy_mfu  " + "  ".join(sweep))
    if png is not None:
        _plot(summary, png)
        print(f"plot written to {png}")
    ok = summary.meets_targets
    print(f"SUMMARY perf_validation: {len(summary.results)} figures, median |error| {summary.median_abs_error:.1%} "
          f"(target <= {TARGET_MEDIAN:.0%}), worst {summary.worst.abs_error:.1%} (target <= {TARGET_WORST:.0%}, "
          f"{summary.worst.figure.id}); {'PASS' if ok else 'FAIL'}")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.speed.perf_validation",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--png", type=Path, default=DEFAULT_PNG, help="where to write the PNG (default: %(default)s)")
    parser.add_argument("--no-png", action="store_true", help="print the table only")
    parser.add_argument("--data", type=Path, default=None, help="figures file (default: perf/data/published.yaml)")
    args = parser.parse_args(argv)
    summary = run(args.data, None if args.no_png else args.png)
    return 0 if summary.meets_targets else 1


if __name__ == "__main__":
    raise SystemExit(main())
