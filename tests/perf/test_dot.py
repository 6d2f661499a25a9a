from __future__ import annotations

import pytest

from diagnostics.types import Finding
from perf.workload import predict_training_step
from perf.xmlreport import (
    DotParseError,
    PerfReport,
    parse_reports,
    render_prediction,
    render_report,
    report_from_prediction,
)


def test_prediction_round_trips_through_tagged_text() -> None:
    clocks = [1410.0] * 64
    clocks[35] = 200.0
    pred = predict_training_step("A800-SXM4-80GB", 64, 7e9, 4194304, sm_clocks_mhz=clocks)
    finding = Finding("gpu_clock_throttle", "node-05", "SM clock 200 MHz < peers 1410 & <hot>", gpu=3,
                      severity="critical")
    report = report_from_prediction(pred, observed_step_s=107.5, findings=[finding], notes=["1 [N/A] skipped"])
    text = render_report(report)
    for tag in ("<formula", "<expected", "<observed", "<gap", "<inputs>", "<part", "<finding", "<note>"):
        assert tag in text
    parsed = parse_reports(f"The model says:\n{text}\nand that is all.")
    assert parsed == [report]
    back = parsed[0]
    assert back.expected == pred.total_s and back.parts["compute"] == pred.compute_s
    assert back.inputs["n_gpus"] == 64 and back.inputs["slowest_gpu"] == 35
    assert back.gap == pytest.approx(107.5 - pred.total_s)
    assert back.findings[0].message.endswith("& <hot>")  # escaped and restored


def test_several_blocks_and_types_round_trip() -> None:
    a = PerfReport(model="decode", inputs={"flag": True, "name": 'a "quoted" <b>', "n": 3, "x": 0.1 + 0.2},
                   formulas={"t": "t = bytes / bw"}, parts={"memory": 0.005}, expected=0.005, unit="s")
    b = PerfReport(model="empty")
    assert parse_reports(render_report(a) + "\n---\n" + render_report(b)) == [a, b]


def test_render_prediction_is_report_render() -> None:
    pred = predict_training_step("H100-SXM5-80GB", 16, 1e9, 1e6)
    assert render_prediction(pred) == render_report(report_from_prediction(pred))
    assert parse_reports("no blocks here") == []


def test_malformed_blocks_raise_a_clear_error() -> None:
    with pytest.raises(DotParseError, match="perf_model block 1"):
        parse_reports("<perf_model name='x'><expected>1.0</perf_model>")
    with pytest.raises(DotParseError, match="int"):
        parse_reports('<perf_model name="x"><inputs><input name="n" type="int">many</input></inputs></perf_model>')
    with pytest.raises(DotParseError, match="expected"):
        parse_reports('<perf_model name="x"><expected unit="s">soon</expected></perf_model>')


def test_detector_findings_alone_round_trip() -> None:
    from perf.xmlreport import render_findings

    f = Finding("gpu_power_cap", "node-02", "limit 200 W < 400 W", gpu=1)
    [report] = parse_reports(render_findings([f], ["temp_c [N/A] on node-01 GPU 0"]))
    assert report.model == "telemetry" and report.findings == [f] and report.notes == ["temp_c [N/A] on node-01 GPU 0"]
