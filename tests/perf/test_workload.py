from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perf.catalog import get_gpu, gpu_names
from perf.errors import PerfInputError, UnknownPrecisionError
from perf.workload import (
    StepModelParams,
    bus_bandwidth_gbs,
    predict_decode,
    predict_prefill,
    predict_training_step,
    ring_allreduce_s,
    training_flops,
    transformer_shape,
)

A800 = "A800-SXM4-80GB"
N, TOKENS = 7e9, 4194304


def test_training_flops_are_six_n_t_plus_attention() -> None:
    dense, attn = training_flops(N, TOKENS, 4096)
    assert dense == 6 * N * TOKENS
    layers, hidden = transformer_shape(N)
    assert attn == 12 * layers * 4096 * hidden * TOKENS
    assert 0.05 < attn / dense < 0.3  # attention is a modest add-on at 7B / 4k context
    assert 12 * layers * hidden**2 == pytest.approx(N, rel=0.1)


def test_ring_allreduce_formula() -> None:
    assert ring_allreduce_s(1, 1e9, 10) == 0.0
    assert ring_allreduce_s(4, 8e9, 10) == pytest.approx(2 * 3 / 4 * 8e9 / 10e9)
    assert ring_allreduce_s(64, 14e9, 100, hop_latency_s=1e-3, hops=7) == pytest.approx(
        2 * 63 / 64 * 14e9 / 100e9 + 2 * 7 * 1e-3)


def test_one_gpu_at_200_of_1410_mhz_gives_about_one_third_not_one_seventh() -> None:
    healthy = predict_training_step(A800, 64, N, TOKENS)
    clocks = [1410.0] * 64
    clocks[35] = 200.0
    slow = predict_training_step(A800, 64, N, TOKENS, sm_clocks_mhz=clocks)
    throughput = healthy.total_s / slow.total_s
    assert 0.28 < throughput < 0.38, throughput  # the paper observed ~1/3
    assert throughput > 1.5 * (200 / 1410)  # clearly not the 1/7 of a fully clock-bound step
    assert slow.slowest_gpu == 35 and healthy.slowest_gpu is None
    # the arithmetic in the docs: slowdown = share · 1410/200 + (1 - share)
    share = healthy.breakdown["clock_bound_share"]
    assert slow.total_s / healthy.total_s == pytest.approx(share * 1410 / 200 + (1 - share), rel=1e-6)
    # memory-bound kernels and communication do not slow with the SM clock
    assert slow.memory_s == healthy.memory_s and slow.comm_s == healthy.comm_s
    assert slow.compute_s == pytest.approx(healthy.compute_s * 1410 / 200)


def test_healthy_step_parts_add_up_and_are_positive() -> None:
    p = predict_training_step(A800, 64, N, TOKENS)
    assert p.total_s == pytest.approx(p.compute_s + p.memory_s + p.overhead_s + p.comm_s)
    assert min(p.compute_s, p.memory_s, p.comm_s, p.overhead_s) > 0
    assert p.breakdown["mfu"] == pytest.approx(StepModelParams().healthy_mfu)
    assert len(p.per_gpu_s) == 64 and max(p.per_gpu_s) == min(p.per_gpu_s)


def test_faster_gpu_and_more_gpus_give_shorter_steps() -> None:
    a800 = predict_training_step(A800, 64, N, TOKENS).total_s
    h100 = predict_training_step("H100-SXM5-80GB", 64, N, TOKENS).total_s
    a800_128 = predict_training_step(A800, 128, N, TOKENS).total_s
    assert h100 < a800 and a800_128 < a800


def test_interconnect_bandwidth_and_latency_slow_the_step() -> None:
    base = predict_training_step(A800, 64, N, TOKENS)
    tcp = predict_training_step(A800, 64, N, TOKENS, interconnect="ethernet")
    degraded = predict_training_step(A800, 64, N, TOKENS, bus_bw_gbs=base.breakdown["bus_bw_gbs"] / 8)
    latency = predict_training_step(A800, 64, N, TOKENS, added_latency_ms=2.0)
    assert tcp.comm_s > 10 * base.comm_s and tcp.total_s > base.total_s
    bw_term = 2 * 63 / 64 * 14e9 / (base.breakdown["bus_bw_gbs"] * 1e9)  # bf16 gradients of 7e9 params
    assert degraded.comm_s - base.comm_s == pytest.approx(7 * bw_term)
    assert latency.comm_s > base.comm_s and latency.compute_s == base.compute_s


def test_bus_bandwidth_nvlink_inside_a_node_nics_across() -> None:
    a800 = get_gpu(A800)
    assert bus_bandwidth_gbs(A800, 8) == pytest.approx(a800.nvlink_bw_gbs / 2 * 0.8)
    assert bus_bandwidth_gbs(A800, 64, "ethernet") < bus_bandwidth_gbs(A800, 64, "roce") <= bus_bandwidth_gbs(A800, 8)


def test_tensor_and_pipeline_parallel_terms() -> None:
    dp = predict_training_step(A800, 64, 70e9, TOKENS)
    tp = predict_training_step(A800, 64, 70e9, TOKENS, tensor_parallel=8)
    pp = predict_training_step(A800, 64, 70e9, TOKENS, tensor_parallel=8, pipeline_parallel=2, micro_batches=4)
    assert tp.breakdown["data_parallel"] == 8 and pp.breakdown["data_parallel"] == 4
    assert pp.breakdown["pipeline_bubble"] == pytest.approx(1 / 5)
    assert tp.comm_s != dp.comm_s
    with pytest.raises(PerfInputError, match="n_gpus"):
        predict_training_step(A800, 64, N, TOKENS, tensor_parallel=3)


def test_inference_prefill_compute_bound_decode_memory_bound() -> None:
    prefill = predict_prefill("H100-SXM5-80GB", N, 4096)
    decode = predict_decode("H100-SXM5-80GB", N, batch=1)
    assert prefill.bound == "compute" and decode.bound == "memory"
    assert prefill.time_s == pytest.approx(2 * N * 4096 / (989.5e12 * 0.7))
    # decode of one token reads all weights once: at least bytes / HBM bandwidth
    assert decode.time_s >= N * 2 / 3350e9
    big_batch = predict_decode("H100-SXM5-80GB", N, batch=4096, context_tokens=16)
    assert big_batch.compute_s > decode.compute_s


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"n_gpus": 0}, "n_gpus"),
        ({"n_gpus": -8}, "n_gpus"),
        ({"n_gpus": 2.5}, "n_gpus"),
        ({"n_gpus": True}, "n_gpus"),
        ({"tensor_parallel": 1.5}, "tensor_parallel"),
        ({"model_params": 0}, "model_params"),
        ({"model_params": math.nan}, "model_params"),
        ({"tokens_per_step": -1}, "tokens_per_step"),
        ({"added_latency_ms": -1}, "added_latency_ms"),
        ({"bus_bw_gbs": 0}, "bus_bw_gbs"),
        ({"sm_clocks_mhz": [1410.0] * 63}, "sm_clocks_mhz"),
        ({"sm_clocks_mhz": [1410.0] * 63 + [math.nan]}, "sm_clocks_mhz[63]"),
    ],
)
def test_bad_inputs_name_the_argument(kwargs: dict, argument: str) -> None:
    args = {"gpu": A800, "n_gpus": 64, "model_params": N, "tokens_per_step": TOKENS} | kwargs
    with pytest.raises(PerfInputError) as err:
        predict_training_step(**args)
    assert err.value.argument == argument
    assert str(err.value).startswith(argument)


def test_unknown_precision_is_a_value_error_naming_precision() -> None:
    with pytest.raises(UnknownPrecisionError, match="precision") as err:
        predict_training_step(A800, 64, N, TOKENS, precision="fp4")
    assert isinstance(err.value, ValueError)
    with pytest.raises(UnknownPrecisionError):
        predict_prefill("A100-SXM4-80GB", N, 10, precision="fp8")


@settings(max_examples=60, deadline=None)
@given(
    gpu=st.sampled_from(gpu_names()),
    nodes=st.integers(1, 64),
    params=st.floats(1e8, 4e11),
    tokens=st.floats(1e4, 1e8),
    interconnect=st.sampled_from(["infiniband", "roce", "ethernet"]),
    slow_mhz=st.floats(50, 3000),
)
def test_any_valid_job_has_a_finite_step_and_a_slower_gpu_never_helps(
    gpu: str, nodes: int, params: float, tokens: float, interconnect: str, slow_mhz: float
) -> None:
    n = nodes * 8
    healthy = predict_training_step(gpu, n, params, tokens, interconnect=interconnect)
    assert 0 < healthy.total_s < math.inf
    assert healthy.total_s == pytest.approx(
        healthy.compute_s + healthy.memory_s + healthy.overhead_s + healthy.comm_s, rel=1e-9)
    clocks = [float(get_gpu(gpu).max_sm_clock_mhz)] * n
    clocks[n - 1] = slow_mhz
    slowed = predict_training_step(gpu, n, params, tokens, interconnect=interconnect, sm_clocks_mhz=clocks)
    assert slowed.total_s >= healthy.total_s * (1 - 1e-12)
