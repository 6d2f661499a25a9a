from __future__ import annotations

import itertools

import pytest

from perf.calibrate import CpuLab, ThrottledLink, task_clock
from perf.errors import PerfInputError


def test_task_clock_never_runs_backwards() -> None:
    readings = [task_clock() for _ in range(1000)]
    assert all(b >= a for a, b in itertools.pairwise(readings))


def test_small_lab_calibrates_and_runs_mixes() -> None:
    lab = CpuLab(gemm_n=32, buffer_mb=2, slice_mb=1, io_rate_mbs=500.0)
    try:
        assert lab.gemm_flops == 2 * 32**3 and lab.slice_bytes == 2 * 1024 * 1024
        cal = lab.calibrate(rel_tol=0.5, max_seconds=0.5)
        rates = cal.rates()
        assert set(rates) == {"compute", "memory", "io"} and all(r > 0 for r in rates.values())
        assert cal.compute.ci_low <= cal.compute.mean <= cal.compute.ci_high
        assert lab.run_mixed(2, 2, 100_000) > 0
        assert lab.run_mixed(0, 0, 0) >= 0
    finally:
        lab.close()


def test_link_rejects_bad_sizes() -> None:
    with pytest.raises(PerfInputError, match="rate_bytes_s"):
        ThrottledLink(0)
    link = ThrottledLink(1e9)
    try:
        link.send(0)
        link.send(3 * 1024 * 1024 + 7)  # more than one payload chunk, not a multiple of it
        with pytest.raises(PerfInputError, match="nbytes"):
            link.send(-1)
    finally:
        link.close()
