from __future__ import annotations

import itertools

import pytest

from perf.errors import PerfInputError
from perf.resource_model import (
    MultiResourceModel,
    RateEstimate,
    SingleResourceModel,
    combine,
    fit_overlap,
    measure_rate,
)

PAPER = {frozenset({"compute", "memory"}): 0.0, frozenset({"compute", "io"}): 1.0,
         frozenset({"memory", "io"}): 1.0}


class FakeTime:
    """A clock that only moves when the fake task runs, by the next of ``durations``."""

    def __init__(self, durations: list[float]) -> None:
        self.now = 0.0
        self.steps = itertools.cycle(durations)
        self.runs = 0

    def task(self) -> None:
        self.runs += 1
        self.now += next(self.steps)

    def clock(self) -> float:
        return self.now


def test_measure_rate_stops_when_the_mean_is_stable() -> None:
    fake = FakeTime([1.0, 1.02, 0.98])
    est = measure_rate(fake.task, 100.0, warmup=3, min_runs=5, rel_tol=0.05, clock=fake.clock)
    assert est.converged and est.runs >= 5
    assert est.ci_low < 100.0 < est.ci_high and est.rel_half_width <= 0.05
    assert fake.runs == 3 + est.runs  # warm-up runs are not measured


def test_measure_rate_reports_non_convergence() -> None:
    fake = FakeTime([1.0, 3.0])
    est = measure_rate(fake.task, 1.0, warmup=0, min_runs=3, max_runs=6, rel_tol=0.001, clock=fake.clock)
    assert not est.converged and est.runs == 6


def test_single_resource_prediction_carries_the_interval() -> None:
    model = SingleResourceModel("compute", RateEstimate.from_samples([9.0, 10.0, 11.0, 10.0]))
    t, low, high = model.predict(50.0)
    assert t == pytest.approx(5.0) and low < t < high
    with pytest.raises(PerfInputError, match="work"):
        model.predict(-1)


def test_two_resource_overlap_extremes() -> None:
    assert combine({"compute": 2.0, "memory": 3.0}, PAPER) == pytest.approx(5.0)  # no overlap: sum
    assert combine({"compute": 2.0, "io": 3.0}, PAPER) == pytest.approx(3.0)  # full overlap: max
    half = {frozenset({"compute", "io"}): 0.5}
    assert combine({"compute": 2.0, "io": 3.0}, half) == pytest.approx(4.0)


def test_three_resources_io_hides_under_the_compute_memory_stream() -> None:
    assert combine({"compute": 1.0, "memory": 1.0, "io": 1.5}, PAPER) == pytest.approx(2.0)
    assert combine({"compute": 1.0, "memory": 1.0, "io": 3.0}, PAPER) == pytest.approx(3.0)


def test_multi_resource_model_vs_roofline_and_serial() -> None:
    m = MultiResourceModel({"compute": 10.0, "memory": 5.0, "io": 2.0})
    work = {"compute": 10.0, "memory": 5.0, "io": 1.0}
    assert m.predict(work) == pytest.approx(2.0)
    assert m.roofline(work) == pytest.approx(1.0)
    assert m.serial(work) == pytest.approx(2.5)
    with pytest.raises(PerfInputError, match="unknown resource"):
        m.predict({"disk": 1.0})
    with pytest.raises(PerfInputError, match="overlap"):
        combine({"compute": 1.0}, {frozenset({"compute", "io"}): 1.5})


def test_fit_overlap_inverts_combine() -> None:
    for o in (0.0, 0.3, 1.0):
        t = combine({"compute": 2.0, "io": 1.0}, {frozenset({"compute", "io"}): o})
        assert fit_overlap(2.0, 1.0, t) == pytest.approx(o)
    assert fit_overlap(1.0, 1.0, 5.0) == 0.0  # slower than serial clamps to no overlap
