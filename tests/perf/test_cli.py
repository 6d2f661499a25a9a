from __future__ import annotations

import json

import pytest

from clusterdoc.cli import main
from perf.workload import predict_training_step
from perf.xmlreport import parse_reports

PREDICT = ["perf", "predict", "--gpu", "H100-SXM5-80GB", "--gpus", "64", "--model-params", "7e9",
           "--tokens-per-step", "4194304"]


def test_predict_prints_step_time_and_breakdown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(PREDICT) == 0
    out = capsys.readouterr().out
    expected = predict_training_step("H100-SXM5-80GB", 64, 7e9, 4194304)
    assert f"{expected.total_s:.3f} s" in out
    for part in ("compute", "memory", "communication", "other"):
        assert part in out
    assert f"{expected.comm_s:.3f}" in out


def test_predict_json_and_slow_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["perf", "predict", "--gpu", "A800", "--gpus", "64", "--model-params", "7e9", "--tokens-per-step",
            "4194304", "--sm-clock", "35=200", "--format", "json"]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["prediction"]["slowest_gpu"] == 35
    healthy = predict_training_step("A800-SXM4-80GB", 64, 7e9, 4194304).total_s
    assert 2.6 < data["prediction"]["total_s"] / healthy < 3.6


def test_predict_dot_with_observed_gap(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*PREDICT, "--observed-step-s", "30", "--format", "dot"]) == 0
    [report] = parse_reports(capsys.readouterr().out)
    assert report.observed == 30.0 and report.gap is not None and report.gap > 0
    assert any(f.kind == "slow_job" for f in report.findings)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--gpu", "GTX-480"], "unknown GPU model 'GTX-480'"),
        (["--gpus", "0"], "n_gpus"),
        (["--model-params", "nan"], "model_params"),
        (["--precision", "fp4"], "precision"),
        (["--interconnect", "smoke-signals"], "unknown interconnect"),
        (["--sm-clock", "99=200"], "--sm-clock"),
    ],
)
def test_predict_bad_input_is_a_clear_error_not_a_trace(
    change: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = list(PREDICT)
    flag = change[0]
    if flag in args:
        i = args.index(flag)
        args[i + 1] = change[1]
    else:
        args += change
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_gpus_lists_the_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["perf", "gpus"]) == 0
    out = capsys.readouterr().out
    assert "MI300X" in out and "IB-NDR" in out
