"""Calibrating ``healthy_mfu`` from the job's own healthy history instead of assuming it.

The training-step model prices everything it cannot see (launch gaps, data loading, host work,
un-hidden synchronisation) as an "other" term sized so that a healthy job reaches ``healthy_mfu``.
That number belongs to the job's software stack, not to the hardware: published runs imply 0.31 to
0.54 (perf/validate.py), production jobs often sit near the 0.30 default. When the job has a healthy
stretch of step times, ``calibrate_healthy_mfu`` fits the ``healthy_mfu`` at which the model gives
their median step time, and the other term follows from it. The result says where the number came
from: ``source`` is ``"job history (N steps)"`` or ``"assumed default"``.

Step times come as floats or as a log: ``parse_step_times`` reads one step per line, either a bare
number of seconds or a Megatron/DeepSpeed line with ``elapsed time per iteration (ms): …`` or
``(s): …``; other lines are skipped.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from perf.catalog import GPUSpec
from perf.errors import PerfInputError, require_non_negative, require_positive
from perf.workload import StepModelParams, StepPrediction, predict_training_step

ASSUMED_DEFAULT = "assumed default"

_ITERATION = re.compile(r"elapsed time per iteration \((ms|s)\)\s*:\s*([-+0-9.eE]+)")
_BARE = re.compile(r"^\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(s|sec|ms)?\s*$")


def history_source(n_steps: int) -> str:
    return f"job history ({n_steps} step{'s' if n_steps != 1 else ''})"


@dataclass(frozen=True)
class HealthyCalibration:
    """The ``healthy_mfu`` the model uses, the "other" time it implies, and where it came from."""

    healthy_mfu: float
    overhead_s: float
    source: str  # "job history (N steps)" | "assumed default"
    n_steps: int = 0
    step_s: float | None = None  # the healthy step time matched (median of the steps used)
    spread: float = 0.0  # median absolute deviation of those steps / their median
    params: StepModelParams = field(default_factory=StepModelParams)
    note: str = ""

    @property
    def from_history(self) -> bool:
        return self.n_steps > 0

    def to_dict(self) -> dict[str, Any]:
        return {"healthy_mfu": self.healthy_mfu, "overhead_s": self.overhead_s, "source": self.source,
                "n_steps": self.n_steps, "step_s": self.step_s, "spread": self.spread, "note": self.note}


def parse_step_times(text: str, *, name: str = "step log") -> list[float]:
    """Step times in seconds from a log: bare numbers (seconds, or with an ``s``/``ms`` suffix) one per
    line, or Megatron/DeepSpeed ``elapsed time per iteration (ms|s): X`` lines. A zero or negative
    step is an error naming the line; lines that are neither are skipped."""
    steps: list[float] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        match = _ITERATION.search(line)
        if match:
            unit, value = match.group(1), match.group(2)
        else:
            bare = _BARE.match(line)
            if not bare:
                continue
            value, unit = bare.group(1), bare.group(2) or "s"
        seconds = require_positive(f"{name}:{lineno}", value)
        steps.append(seconds / 1000 if unit == "ms" else seconds)
    return steps


def calibrate_healthy_mfu(
    gpu: str | GPUSpec,
    n_gpus: int,
    model_params: float,
    tokens_per_step: float,
    step_times: Sequence[float] | None = None,
    *,
    skip_first: int = 0,
    params: StepModelParams | None = None,
    **step_kwargs: Any,
) -> HealthyCalibration:
    """Fit ``healthy_mfu`` to a job's healthy step times (seconds), or fall back to the assumed one.

    The first ``skip_first`` steps (warm-up, compilation) are dropped; the median of the rest is the
    healthy step, so an occasional checkpoint or evaluation step does not move it. ``step_kwargs``
    (precision, interconnect, tensor_parallel, …) describe the job as for ``predict_training_step``.
    Every step must be a finite number > 0; the error names ``step_times[i]``."""
    p = params or StepModelParams()

    def predict(mfu: float) -> StepPrediction:
        return predict_training_step(gpu, n_gpus, model_params, tokens_per_step,
                                     params=replace(p, healthy_mfu=mfu), **step_kwargs)

    steps = [require_positive(f"step_times[{i}]", s) for i, s in enumerate(step_times or [])]
    skip = int(require_non_negative("skip_first", skip_first))
    used = steps[skip:]
    if not used:
        note = f"all {len(steps)} steps were skipped as warm-up" if steps else ""
        return HealthyCalibration(p.healthy_mfu, predict(p.healthy_mfu).overhead_s, ASSUMED_DEFAULT,
                                  params=p, note=note)

    target = statistics.median(used)
    spread = statistics.median(abs(s - target) for s in used) / target
    source = history_source(len(used))

    def gap(mfu: float) -> float:
        return math.log(predict(mfu).total_s / target)

    lo, hi = 1e-3, 1.0
    note = ""
    if gap(hi) > 0:
        # even with no "other" time the modelled compute, memory and communication take longer
        pred = predict(hi)
        achieved = pred.breakdown["flops_per_gpu"] / pred.breakdown["peak_flops"] / target
        note = (f"the healthy step ({target:.4g} s) is shorter than the modelled compute, memory and "
                f"communication alone ({pred.total_s:.4g} s): the GEMM/HBM efficiency assumptions are "
                f"pessimistic for this job; healthy_mfu is the achieved MFU and the other time is 0")
        fitted = min(1.0, achieved)
        return HealthyCalibration(fitted, 0.0, source, len(used), target, spread, replace(p, healthy_mfu=fitted), note)
    if gap(lo) < 0:
        raise PerfInputError("step_times", f"a healthy step of {target:.4g} s is longer than the model gives at "
                                           f"{lo:.1%} MFU: check the workload (GPUs, model size, tokens per step)")
    for _ in range(60):  # bisection in log space; total_s falls as healthy_mfu rises
        mid = math.sqrt(lo * hi)
        if gap(mid) > 0:
            lo = mid
        else:
            hi = mid
    fitted = math.sqrt(lo * hi)
    return HealthyCalibration(fitted, predict(fitted).overhead_s, source, len(used), target, spread,
                              replace(p, healthy_mfu=fitted), note)
