"""Task performance models, in the paper's progression.

1. Single resource: ``time = work / rate``. The rate is a random variable; ``measure_rate`` runs
   the task after a warm-up until the confidence interval of the mean rate is narrower than a
   tolerance (law of large numbers), and the prediction carries that interval.
2. Several resources: a task is a mix of sub-tasks on equivalent compute, equivalent memory
   bandwidth and equivalent I/O bandwidth; each pair of resources overlaps by a coefficient in
   [0, 1] (0: one waits for the other, 1: fully parallel). ``MultiResourceModel`` combines them.
3. The roofline model (all resources fully parallel: ``max``) is kept beside it for comparison.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from perf.errors import PerfInputError, require_non_negative, require_positive

RESOURCES = ("compute", "memory", "io")

# two-sided 95% Student t quantiles by degrees of freedom (1..30); beyond that the normal 1.96
_T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042]


def t95(dof: int) -> float:
    return _T95[dof - 1] if 1 <= dof <= len(_T95) else 1.96


@dataclass(frozen=True)
class RateEstimate:
    """Mean rate (work units per second) with its 95% confidence interval."""

    mean: float
    ci_low: float
    ci_high: float
    runs: int
    unit: str = "units/s"
    converged: bool = True
    samples: tuple[float, ...] = field(default=(), repr=False)

    @property
    def rel_half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2 / self.mean if self.mean else math.inf

    @staticmethod
    def from_samples(rates: list[float], unit: str = "units/s", converged: bool = True) -> RateEstimate:
        if not rates:
            raise PerfInputError("rates", "no measurements")
        mean = statistics.fmean(rates)
        half = t95(len(rates) - 1) * statistics.stdev(rates) / math.sqrt(len(rates)) if len(rates) > 1 else math.inf
        return RateEstimate(mean, max(0.0, mean - half), mean + half, len(rates), unit, converged, tuple(rates))


def measure_rate(
    task: Callable[[], object],
    work: float,
    *,
    unit: str = "units/s",
    warmup: int = 2,
    min_runs: int = 5,
    max_runs: int = 200,
    rel_tol: float = 0.03,
    max_seconds: float = 10.0,
    clock: Callable[[], float] = time.perf_counter,
) -> RateEstimate:
    """Run ``task`` (which does ``work`` units) until the 95% CI half-width of the mean rate is under
    ``rel_tol`` of the mean (or ``max_runs`` / ``max_seconds``; then ``converged`` is False)."""
    w = require_positive("work", work)
    for _ in range(warmup):
        task()
    rates: list[float] = []
    started = clock()
    while True:
        t0 = clock()
        task()
        elapsed = clock() - t0
        rates.append(w / max(elapsed, 1e-9))
        if len(rates) >= min_runs:
            est = RateEstimate.from_samples(rates, unit)
            if est.rel_half_width <= rel_tol:
                return est
            if len(rates) >= max_runs or clock() - started >= max_seconds:
                return RateEstimate.from_samples(rates, unit, converged=False)


@dataclass(frozen=True)
class SingleResourceModel:
    """time = work / rate, with the interval that the rate's CI implies."""

    resource: str
    rate: RateEstimate

    def predict(self, work: float) -> tuple[float, float, float]:
        """(expected seconds, low, high)."""
        w = require_non_negative("work", work)
        high = w / self.rate.ci_low if self.rate.ci_low > 0 else math.inf
        return w / self.rate.mean, w / self.rate.ci_high, high


DEFAULT_OVERLAP: dict[frozenset[str], float] = {
    # what the paper measured on GPUs: compute and memory do not overlap at all, while either of them
    # and I/O (DMA engines, NICs) overlap almost fully
    frozenset({"compute", "memory"}): 0.0,
    frozenset({"compute", "io"}): 1.0,
    frozenset({"memory", "io"}): 1.0,
}


def combine(times: Mapping[str, float], overlap: Mapping[frozenset[str], float]) -> float:
    """Time of a task whose sub-tasks take ``times`` alone, given pairwise overlap coefficients.

    Two resources: ``a + b - o·min(a, b)`` (o = 0 serial, o = 1 parallel). Three: compute and memory
    are combined first, then I/O overlaps that stream with the time-weighted coefficient of its
    parts, so the formula reduces to the two-resource one whenever one time is zero.
    """
    t = {r: require_non_negative(f"times[{r}]", times.get(r, 0.0)) for r in RESOURCES}
    for pair, coefficient in overlap.items():
        if not 0.0 <= coefficient <= 1.0:
            raise PerfInputError(
                f"overlap[{'/'.join(sorted(pair))}]", f"must be within [0, 1], got {coefficient}"
            )

    def o(a: str, b: str) -> float:
        return overlap.get(frozenset({a, b}), 0.0)

    tc, tm, ti = t["compute"], t["memory"], t["io"]
    stream = tc + tm - o("compute", "memory") * min(tc, tm)
    if stream == 0 or ti == 0:
        return stream + ti
    o_io = (o("compute", "io") * tc + o("memory", "io") * tm) / (tc + tm)
    return stream + ti - o_io * min(stream, ti)


@dataclass
class MultiResourceModel:
    """Predicts mixed tasks from calibrated rates and pairwise overlaps (paper §4.2)."""

    rates: dict[str, float]  # resource -> rate (work units per second) from measure_rate
    overlap: dict[frozenset[str], float] = field(default_factory=lambda: dict(DEFAULT_OVERLAP))

    def times(self, work: Mapping[str, float]) -> dict[str, float]:
        out = {}
        for resource, amount in work.items():
            if resource not in RESOURCES:
                raise PerfInputError("work", f"unknown resource {resource!r}; known: {', '.join(RESOURCES)}")
            amount = require_non_negative(f"work[{resource}]", amount)
            if amount and resource not in self.rates:
                raise PerfInputError("rates", f"no calibrated rate for {resource!r}")
            out[resource] = amount / self.rates[resource] if amount else 0.0
        return out

    def predict(self, work: Mapping[str, float]) -> float:
        return combine(self.times(work), self.overlap)

    def roofline(self, work: Mapping[str, float]) -> float:
        """Roofline view: every resource fully parallel, the slowest one alone sets the time."""
        return max(self.times(work).values(), default=0.0)

    def serial(self, work: Mapping[str, float]) -> float:
        return sum(self.times(work).values())


def fit_overlap(time_a: float, time_b: float, measured: float) -> float:
    """The overlap coefficient a measured two-resource run implies (clamped to [0, 1])."""
    a = require_non_negative("time_a", time_a)
    b = require_non_negative("time_b", time_b)
    m = require_positive("measured", measured)
    shorter = min(a, b)
    if shorter == 0:
        return 0.0
    return min(1.0, max(0.0, (a + b - m) / shorter))
