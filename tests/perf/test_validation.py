"""The perf model against published figures, calibration from a job's own history, bad input."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from clusterdoc.cli import main
from perf.catalog import NICSpec, UnknownHardwareError, get_gpu
from perf.detectors import expected_vs_observed
from perf.errors import PerfInputError
from perf.history import ASSUMED_DEFAULT, calibrate_healthy_mfu, parse_step_times
from perf.validate import (
    TARGET_MEDIAN,
    TARGET_WORST,
    Figure,
    data_path,
    fit_healthy_mfu,
    leave_one_source_out,
    load_figures,
    validate,
)
from perf.workload import (
    VALIDATED_PARAMS,
    StepModelParams,
    bus_bandwidth_gbs,
    check_training_memory,
    predict_decode,
    predict_training_step,
)

A800, H100 = "A800-SXM4-80GB", "H100-SXM5-80GB"


@pytest.fixture(scope="module")
def figures() -> list[Figure]:
    return load_figures()


# --- the data file ------------------------------------------------------------------------------


def test_the_packaged_figures_load_and_every_one_names_its_source(figures: list[Figure]) -> None:
    assert data_path().name == "published.yaml" and data_path().is_file()
    assert len(figures) >= 14
    assert {f.kind for f in figures} == {"training", "allreduce", "decode"}
    assert len({f.id for f in figures}) == len(figures)
    for f in figures:
        assert f.source.startswith("https://"), f.id
        assert f.locator and f.measured and f.unit, f.id
        assert f.value > 0 and f.gpus >= 1, f.id
        get_gpu(f.gpu)
    # the distinct primary sources, not one table copied many times
    assert len({f.source for f in figures}) >= 6


def test_a_figure_without_a_source_is_rejected_naming_the_field() -> None:
    entry = {"id": "x", "kind": "training", "measured": "m", "metric": "mfu", "value": 0.4, "unit": "u",
             "gpu": H100, "gpus": 8, "precision": "bf16", "locator": "Table 1", "source": ""}
    with pytest.raises(PerfInputError) as err:
        Figure.from_dict(entry)
    assert err.value.argument.endswith(".source")
    with pytest.raises(PerfInputError, match="expected a URL"):
        Figure.from_dict(entry | {"source": "my notes"})
    with pytest.raises(UnknownHardwareError):
        Figure.from_dict(entry | {"source": "https://example.org", "gpu": "Z100"})


# --- the validation itself ----------------------------------------------------------------------


def test_the_model_meets_its_targets_on_the_published_figures(figures: list[Figure]) -> None:
    summary = validate(figures)
    assert summary.params == VALIDATED_PARAMS
    assert summary.median_abs_error <= TARGET_MEDIAN, summary.median_abs_error
    assert summary.worst.abs_error <= TARGET_WORST, (summary.worst.figure.id, summary.worst.error)
    by_kind = {k: [r for r in summary.results if r.figure.kind == k] for k in ("training", "allreduce", "decode")}
    # all-reduce bus bandwidth is pure hardware: it must be much tighter than the training figures
    assert max(r.abs_error for r in by_kind["allreduce"]) < 0.08


def test_the_one_fitted_constant_is_what_the_figures_imply_and_holds_out_of_sample(figures: list[Figure]) -> None:
    assert fit_healthy_mfu(figures) == pytest.approx(VALIDATED_PARAMS.healthy_mfu, abs=0.01)
    held_out = leave_one_source_out(figures)
    assert held_out.median_abs_error <= TARGET_MEDIAN and held_out.worst.abs_error <= TARGET_WORST
    # the assumed production default is honestly worse on tuned published runs
    default = validate(figures, replace(VALIDATED_PARAMS, healthy_mfu=StepModelParams().healthy_mfu))
    assert default.median_abs_error > validate(figures).median_abs_error


def test_recomputation_is_paid_on_top_of_the_healthy_step() -> None:
    kw: dict[str, Any] = {"layers": 96, "hidden": 12288, "seq_len": 2048, "tensor_parallel": 8, "pipeline_parallel": 8,
          "micro_batches": 64}
    plain = predict_training_step(A800, 512, 175e9, 1536 * 2048, **kw)
    full = predict_training_step(A800, 512, 175e9, 1536 * 2048, recompute="full", **kw)
    selective = predict_training_step(A800, 512, 175e9, 1536 * 2048, recompute="selective", **kw)
    assert full.breakdown["recompute_flops_per_gpu"] == pytest.approx(plain.breakdown["flops_per_gpu"] / 3)
    assert plain.total_s < selective.total_s < full.total_s
    assert full.overhead_s == pytest.approx(plain.overhead_s)  # the healthy calibration is unchanged
    with pytest.raises(PerfInputError) as err:
        predict_training_step(A800, 512, 175e9, 1536 * 2048, recompute="sometimes", **kw)
    assert err.value.argument == "recompute"


def test_a_data_parallel_ring_pays_latency_only_for_the_nodes_it_crosses() -> None:
    # TP8 fills a node: the 8 data-parallel ranks of a 64-GPU job sit on 8 nodes -> 2·7 hops per bucket
    base = predict_training_step(A800, 64, 7e9, 4194304, tensor_parallel=8)
    slow = predict_training_step(A800, 64, 7e9, 4194304, tensor_parallel=8, added_latency_ms=1.0)
    grad_bytes = 7e9 / 8 * 2
    buckets = -(-grad_bytes // StepModelParams().bucket_bytes)
    assert slow.comm_s - base.comm_s == pytest.approx(buckets * 2 * 7 * 1e-3)


def test_fabrics_outside_the_catalog_from_their_line_rate() -> None:
    efa = NICSpec.rdma("EFA 400G", 400, kind="efa")
    assert efa.effective_gbs == pytest.approx(46.0)
    # 4 nodes of 8 B200 with 8 x 400G: the NICs, not NVLink, bound the ring
    assert bus_bandwidth_gbs("B200", 32, efa) == pytest.approx(8 * 46.0)
    assert bus_bandwidth_gbs("B200", 8, efa) == pytest.approx(1800 / 2 * 0.8)


def test_tensor_parallel_decode_pays_two_all_reduces_per_layer() -> None:
    one = predict_decode("A100-SXM4-80GB", 69e9, n_gpus=2, layers=80, hidden=8192, params=VALIDATED_PARAMS)
    eight = predict_decode("A100-SXM4-80GB", 69e9, n_gpus=8, layers=80, hidden=8192, params=VALIDATED_PARAMS)
    assert one.breakdown["allreduces"] == 160 and eight.comm_s > one.comm_s > 0
    assert eight.time_s == pytest.approx(max(eight.compute_s, eight.memory_s) + eight.comm_s)
    assert predict_decode("A100-SXM4-80GB", 7e9).comm_s == 0.0


# --- calibration from the job's own history -----------------------------------------------------


def _synthetic_steps(true_mfu: float, **kw: Any) -> list[float]:
    step = predict_training_step(A800, 64, 7e9, 4194304, params=StepModelParams(healthy_mfu=true_mfu), **kw).total_s
    jitter = [1.0, 0.99, 1.01, 1.005, 0.995, 1.02, 0.98, 1.0, 1.003, 0.997] * 5
    steps = [step * j for j in jitter]
    steps[7] *= 1.6  # a checkpoint save
    steps[23] *= 2.5  # an evaluation step
    return [step * 3.0, step * 1.4, *steps]  # two warm-up steps first


@pytest.mark.parametrize("true_mfu", [0.22, 0.37, 0.48])
def test_calibration_recovers_a_known_mfu_from_synthetic_step_times(true_mfu: float) -> None:
    steps = _synthetic_steps(true_mfu)
    cal = calibrate_healthy_mfu(A800, 64, 7e9, 4194304, steps, skip_first=2)
    assert cal.healthy_mfu == pytest.approx(true_mfu, rel=0.01)
    assert cal.source == "job history (50 steps)" and cal.from_history and cal.n_steps == 50
    expected = predict_training_step(A800, 64, 7e9, 4194304, params=StepModelParams(healthy_mfu=true_mfu))
    assert cal.overhead_s == pytest.approx(expected.overhead_s, rel=0.03)
    assert cal.spread < 0.02


def test_calibration_with_the_job_layout_and_without_history() -> None:
    kw: dict[str, Any] = {"tensor_parallel": 8, "pipeline_parallel": 2, "interconnect": "roce"}
    cal = calibrate_healthy_mfu(A800, 64, 7e9, 4194304, _synthetic_steps(0.33, **kw)[2:], **kw)
    assert cal.healthy_mfu == pytest.approx(0.33, rel=0.01)
    assumed = calibrate_healthy_mfu(A800, 64, 7e9, 4194304, None)
    assert assumed.source == ASSUMED_DEFAULT == "assumed default" and not assumed.from_history
    assert assumed.healthy_mfu == StepModelParams().healthy_mfu
    warmup_only = calibrate_healthy_mfu(A800, 64, 7e9, 4194304, [40.0, 30.0], skip_first=2)
    assert warmup_only.source == ASSUMED_DEFAULT and "skipped" in warmup_only.note


def test_a_step_faster_than_the_modelled_parts_is_said_not_hidden() -> None:
    floor = predict_training_step(A800, 64, 7e9, 4194304, params=StepModelParams(healthy_mfu=0.99)).total_s
    cal = calibrate_healthy_mfu(A800, 64, 7e9, 4194304, [floor * 0.5] * 5)
    assert cal.overhead_s == 0.0 and "pessimistic" in cal.note and cal.source == "job history (5 steps)"


def test_step_logs_parse_megatron_lines_and_bare_numbers() -> None:
    log = ("iteration 10/100 | elapsed time per iteration (ms): 1500.5 | lm loss: 2.1\n"
           " [default7]: iteration 12695/115311 | elapsed time per iteration (s): 105.22 | TFLOPs: 149.02 |\n"
           "saving checkpoint\n41.5\n420 ms\n\n")
    assert parse_step_times(log) == pytest.approx([1.5005, 105.22, 41.5, 0.42])
    with pytest.raises(PerfInputError) as err:
        parse_step_times("41.0\n0\n", name="train.log")
    assert err.value.argument == "train.log:2"


# --- bad input names the field ------------------------------------------------------------------


@pytest.mark.parametrize("steps", [[41.0, 0.0], [41.0, -3.0], [float("nan")]])
def test_a_zero_or_negative_observed_step_names_it(steps: list[float]) -> None:
    with pytest.raises(PerfInputError) as err:
        calibrate_healthy_mfu(A800, 64, 7e9, 4194304, steps)
    assert err.value.argument.startswith("step_times[")
    healthy = predict_training_step(A800, 64, 7e9, 4194304)
    with pytest.raises(PerfInputError) as err:
        expected_vs_observed(healthy, 0.0)
    assert err.value.argument == "observed_step_s"


@pytest.mark.parametrize("n", [0, -8])
def test_zero_or_negative_gpu_counts_name_n_gpus(n: int) -> None:
    for call in (lambda: predict_training_step(A800, n, 7e9, 4194304),
                 lambda: predict_decode(A800, 7e9, n_gpus=n),
                 lambda: check_training_memory(A800, n, 7e9),
                 lambda: calibrate_healthy_mfu(A800, n, 7e9, 4194304, [30.0])):
        with pytest.raises(PerfInputError) as err:
            call()
        assert err.value.argument == "n_gpus"


def test_unknown_gpu_names_the_gpu_argument() -> None:
    with pytest.raises(UnknownHardwareError) as err:
        predict_training_step("Z100", 8, 7e9, 4194304)
    assert err.value.argument == "gpu" and "Z100" in str(err.value) and "H100-SXM5-80GB" in str(err.value)


def test_a_model_bigger_than_the_cluster_names_model_params() -> None:
    assert check_training_memory(A800, 64, 7e9) < 1
    with pytest.raises(PerfInputError, match="training state") as err:
        check_training_memory(A800, 8, 70e9)  # 1120 GB of weights, gradients and Adam states vs 640 GB
    assert err.value.argument == "model_params"
    # gpt-fast reports Llama-2-70B in bf16 as OOM on one A100-80GB: 138 GB of weights
    with pytest.raises(PerfInputError, match="weights") as err:
        predict_decode("A100-SXM4-80GB", 68.98e9)
    assert err.value.argument == "model_params"
    predict_decode("A100-SXM4-80GB", 68.98e9, n_gpus=2)


# --- the CLI says which healthy MFU it used ------------------------------------------------------

PREDICT = ["perf", "predict", "--gpu", A800, "--gpus", "64", "--model-params", "7e9", "--tokens-per-step", "4194304"]


def test_cli_says_the_healthy_mfu_is_assumed_without_history(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(PREDICT) == 0
    out = capsys.readouterr().out
    assert "healthy MFU 30.0%" in out and "source: assumed default" in out


def test_cli_fits_the_healthy_mfu_to_a_step_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    steps = _synthetic_steps(0.37)
    log = tmp_path / "train.log"
    log.write_text("".join(f"iteration {i} | elapsed time per iteration (ms): {s * 1000:.1f} |\n"
                           for i, s in enumerate(steps)))
    assert main([*PREDICT, "--step-log", str(log), "--skip-steps", "2", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["prediction"]["breakdown"]["healthy_mfu_source"] == "job history (50 steps)"
    assert data["prediction"]["breakdown"]["healthy_mfu"] == pytest.approx(0.37, rel=0.01)
    assert any("job history (50 steps)" in n for n in data["notes"])
    assert main([*PREDICT, "--healthy-step-s", "25", "--healthy-step-s", "25.4"]) == 0
    assert "job history (2 steps)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--gpu", "Z100"], "gpu: unknown GPU model 'Z100'"),
        (["--gpus", "-8"], "n_gpus"),
        (["--gpus", "8", "--model-params", "70e9"], "model_params: 7e+10 parameters need at least"),
        (["--healthy-step-s", "0"], "step_times[0]"),
        (["--observed-step-s", "0"], "observed_step_s"),
        (["--step-log", "/nonexistent/train.log"], "--step-log /nonexistent/train.log"),
    ],
)
def test_cli_bad_input_is_one_line_naming_the_field(
    change: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = list(PREDICT)
    for flag, value in zip(change[::2], change[1::2], strict=True):
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
