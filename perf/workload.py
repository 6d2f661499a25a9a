"""Workload models: what a training step or an inference request should take on given hardware.

Training step (synchronous data parallel, optionally with tensor/pipeline parallel groups):

* ``compute``  — matmul FLOPs (6·N·tokens plus attention 12·L·s·d per token) at the tensor-core
  peak times ``gemm_efficiency``. This is the only part that runs at the SM clock, so it is scaled
  by ``max_sm_clock / sm_clock`` per GPU.
* ``memory``   — memory-bound kernels (norms, activations, softmax, optimizer): bytes / HBM
  bandwidth. HBM keeps its own clock when the SM clock drops, so this part does not scale.
* ``comm``     — gradient all-reduce (ring: 2(n-1)/n · bytes / bus bandwidth, plus a latency term
  per bucket and inter-node hop), tensor-parallel all-reduces and pipeline bubbles.
* ``overhead`` — everything a real job spends that is neither (kernel launch gaps, data loading,
  host work, un-hidden synchronisation). It is calibrated once from a typical healthy model-FLOPs
  utilization (``healthy_mfu``) at nominal clocks and bandwidth and then held fixed.

Every rank waits for the slowest one at the gradient all-reduce, so the step is
``max_i(compute_i + memory + overhead) + comm``.

Activation recomputation (``recompute="full"``: one more forward pass, +1/3 of the FLOPs;
``"selective"``: the attention core's forward again) is paid on top of the healthy calibration,
like a slower fabric: ``healthy_mfu`` describes a job that does not recompute.

``VALIDATED_PARAMS`` is the constant set checked against published figures (perf/validate.py,
docs/perf.md "Validation against published figures"); it differs from the defaults in
``healthy_mfu`` and ``nvlink_hop_latency_s``.

Why one A800 at 200 of 1410 MHz slows the job to ~1/3, not 1/7: with the defaults
(healthy MFU 0.30, GEMMs at 0.85 of peak) the SM-clock-bound share of a healthy step is
0.30/0.85 ≈ 0.35. The throttled rank's compute stretches 1410/200 = 7.05×, the other 0.65 of the
step does not, so the step becomes 0.35·7.05 + 0.65 ≈ 3.1× longer: throughput ≈ 1/3.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from perf.catalog import GPUSpec, NICSpec, get_gpu, nic_for
from perf.errors import PerfInputError, require_non_negative, require_positive, require_whole

BYTES_PER_ELEMENT: dict[str, float] = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1}
RECOMPUTE = ("none", "selective", "full")
# bytes of training state per parameter with mixed precision and Adam: bf16/fp16 weights (2) and
# gradients (2), fp32 master weights (4) and the two Adam moments (4 + 4)
TRAINING_STATE_BYTES_PER_PARAM = 16.0


@dataclass(frozen=True)
class StepModelParams:
    """Efficiency assumptions of the training-step model (all overridable, all documented)."""

    gemm_efficiency: float = 0.85  # fraction of dense peak large GEMMs reach at full SM clock
    healthy_mfu: float = 0.30  # model-FLOPs utilization (attention counted) of a healthy production job
    hbm_efficiency: float = 0.80  # fraction of HBM peak that memory-bound kernels reach
    # bytes moved by memory-bound kernels, per token per layer, in units of hidden size × element
    # size (norms, activations, residuals, dropout fwd+bwd; Korthikanti et al. 2022 activation count)
    activation_traffic_per_hidden: float = 100.0
    optimizer_bytes_per_param: float = 32.0  # Adam with fp32 master weights: read+write states
    bucket_bytes: float = 25e6  # gradient bucket size (PyTorch DDP default 25 MB)
    nvlink_efficiency: float = 0.80  # ring busbw reached over NVLink vs one-direction link peak
    nvlink_hop_latency_s: float = 1e-6  # per ring hop inside a node (small all-reduces pay 2(n-1) of them)
    seq_len: int = 4096
    gpus_per_node: int = 8
    nics_per_node: int | None = None  # None: one NIC per GPU (rail-optimised), as in DGX/HGX nodes


@dataclass
class StepPrediction:
    """Predicted training-step time and its parts (seconds)."""

    total_s: float
    compute_s: float  # SM-clock-bound time of the slowest rank
    memory_s: float
    comm_s: float
    overhead_s: float
    per_gpu_s: list[float]  # each rank's local work (compute + memory + overhead), before the sync
    slowest_gpu: int | None  # index into per_gpu_s when one rank is slower than the others
    breakdown: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        return float(self.breakdown.get("tokens_per_step", 0.0)) / self.total_s


# The constant set validated against published training, all-reduce and decode figures
# (perf/validate.py, perf/data/published.yaml). Two values differ from the defaults above:
# * healthy_mfu 0.41 (default 0.30): the median of the MFUs the published training runs imply
#   (validate.fit_healthy_mfu, rounded); runs written up in papers are tuned (0.31-0.54 implied),
#   while the default describes an ordinary production job;
# * nvlink_hop_latency_s 3.1 µs (default 1 µs): nccl-tests' 32 KiB all-reduce on 8 A100s takes
#   43.8 µs = 2·(8-1) hops of 3.1 µs (stas00/ml-engineering, network/README.md).
# gemm_efficiency 0.85 (A100 87%, H100 80% of dense BF16 peak in the MAMF table of
# stas00/ml-engineering compute/accelerator/README.md), hbm_efficiency 0.80 and nvlink_efficiency
# 0.80 are the defaults.
VALIDATED_PARAMS = StepModelParams(healthy_mfu=0.41, nvlink_hop_latency_s=3.1e-6)


@dataclass
class InferencePrediction:
    """Prefill or decode time and the resource that bounds it."""

    phase: str  # prefill | decode
    time_s: float
    bound: str  # compute | memory
    compute_s: float
    memory_s: float
    breakdown: dict[str, Any] = field(default_factory=dict)
    comm_s: float = 0.0  # tensor-parallel all-reduces, not overlapped (decode)


def transformer_shape(model_params: float) -> tuple[int, int]:
    """(layers, hidden) of a dense decoder with N ≈ 12·L·d² and the usual d/L ≈ 128 aspect ratio."""
    hidden = (require_positive("model_params", model_params) * 128 / 12) ** (1 / 3)
    hidden = max(64, round(hidden / 64) * 64)
    layers = max(1, round(model_params / (12 * hidden * hidden)))
    return layers, hidden


def _shape(model_params: float, layers: int | None, hidden: int | None) -> tuple[int, int]:
    """(layers, hidden): given ones win, the rest from ``transformer_shape``."""
    derived_layers, derived_hidden = transformer_shape(model_params)
    return (require_whole("layers", layers) if layers is not None else derived_layers,
            require_whole("hidden", hidden) if hidden is not None else derived_hidden)


def training_flops(model_params: float, tokens: float, seq_len: int = 4096, *, layers: int | None = None,
                   hidden: int | None = None) -> tuple[float, float]:
    """(dense 6·N·T FLOPs, attention 12·L·s·d·T FLOPs) for one forward+backward pass."""
    n = require_positive("model_params", model_params)
    t = require_positive("tokens_per_step", tokens)
    s = require_positive("seq_len", seq_len)
    n_layers, d = _shape(n, layers, hidden)
    return 6 * n * t, 12 * n_layers * s * d * t


def recompute_flops(dense_flops: float, attention_flops: float, recompute: str) -> float:
    """Extra FLOPs activation recomputation adds: a whole forward pass (full: 1/3 of fwd+bwd) or the
    attention core's forward (selective, Korthikanti et al. 2022: 1/3 of the attention FLOPs)."""
    mode = str(recompute).lower()
    if mode not in RECOMPUTE:
        raise PerfInputError("recompute", f"unknown mode {recompute!r}; known: {', '.join(RECOMPUTE)}")
    if mode == "full":
        return (dense_flops + attention_flops) / 3
    if mode == "selective":
        return attention_flops / 3
    return 0.0


def check_training_memory(gpu: str | GPUSpec, n_gpus: int, model_params: float) -> float:
    """Raise ``PerfInputError("model_params")`` when the training state alone (16 B/param: weights,
    gradients, fp32 master and Adam moments) is larger than every GPU's memory together, even fully
    sharded; else return the fraction of the cluster's memory it takes."""
    spec = get_gpu(gpu)
    n = require_whole("n_gpus", n_gpus)
    params = require_positive("model_params", model_params)
    need_gb = params * TRAINING_STATE_BYTES_PER_PARAM / 1e9
    have_gb = n * spec.hbm_gb
    if need_gb > have_gb:
        raise PerfInputError(
            "model_params",
            f"{params:.3g} parameters need at least {need_gb:,.0f} GB of training state "
            f"({TRAINING_STATE_BYTES_PER_PARAM:g} B/param) but {n} x {spec.name} have {have_gb:,.0f} GB in all",
        )
    return need_gb / have_gb


def _check_weights_fit(spec: GPUSpec, n_gpus: float, model_params: float, elem: float) -> None:
    need_gb = model_params * elem / 1e9
    have_gb = n_gpus * spec.hbm_gb
    if need_gb > have_gb:
        raise PerfInputError(
            "model_params",
            f"{model_params:.3g} parameters need {need_gb:,.0f} GB of weights but "
            f"{n_gpus:g} x {spec.name} have {have_gb:,.0f} GB in all",
        )


def ring_allreduce_s(
    n_ranks: int, message_bytes: float, bus_bw_gbs: float, *, hop_latency_s: float = 0.0, hops: int | None = None
) -> float:
    """Ring all-reduce time: 2(n-1)/n · bytes / bus bandwidth + 2·hops·latency (hops default n-1)."""
    n = int(require_positive("n_ranks", n_ranks))
    if n == 1:
        return 0.0
    size = require_non_negative("message_bytes", message_bytes)
    bw = require_positive("bus_bw_gbs", bus_bw_gbs) * 1e9
    latency_hops = (n - 1) if hops is None else hops
    return 2 * (n - 1) / n * size / bw + 2 * latency_hops * hop_latency_s


def bus_bandwidth_gbs(
    gpu: str | GPUSpec,
    n_gpus: int,
    interconnect: str | NICSpec = "infiniband",
    params: StepModelParams | None = None,
) -> float:
    """Ring all-reduce bus bandwidth per rank: NVLink inside one node, else the node's NICs."""
    spec = get_gpu(gpu)
    p = params or StepModelParams()
    intra = spec.nvlink_bw_gbs / 2 * p.nvlink_efficiency if spec.nvlink_bw_gbs else spec.pcie_bw_gbs * 0.8
    if n_gpus <= p.gpus_per_node:
        return intra
    nic = nic_for(spec, interconnect)
    nics = p.nics_per_node if p.nics_per_node is not None else p.gpus_per_node
    if nic.kind == "ethernet":
        nics = 1  # NCCL over sockets: one host stack per node, not one ring per NIC
    # the node's NICs carry one ring each; busbw is their aggregate, never above NVLink's
    return min(intra, nics * nic.effective_gbs)


def predict_training_step(
    gpu: str | GPUSpec,
    n_gpus: int,
    model_params: float,
    tokens_per_step: float,
    *,
    precision: str = "bf16",
    interconnect: str | NICSpec = "infiniband",
    sm_clocks_mhz: Sequence[float] | None = None,
    bus_bw_gbs: float | None = None,
    added_latency_ms: float = 0.0,
    tensor_parallel: int = 1,
    pipeline_parallel: int = 1,
    micro_batches: int = 8,
    params: StepModelParams | None = None,
    layers: int | None = None,
    hidden: int | None = None,
    seq_len: int | None = None,
    recompute: str = "none",
) -> StepPrediction:
    """Expected step time of a dense transformer training job (see module docstring).

    ``layers``/``hidden`` default to the shape ``transformer_shape`` derives from the size,
    ``seq_len`` to ``params.seq_len``; ``recompute`` is none | selective | full."""
    spec = get_gpu(gpu)
    p = params or StepModelParams()
    n = require_whole("n_gpus", n_gpus)
    require_positive("model_params", model_params)
    require_positive("tokens_per_step", tokens_per_step)
    added_latency_s = require_non_negative("added_latency_ms", added_latency_ms) / 1000
    tp = require_whole("tensor_parallel", tensor_parallel)
    pp = require_whole("pipeline_parallel", pipeline_parallel)
    mb = require_whole("micro_batches", micro_batches)
    if n % (tp * pp):
        raise PerfInputError("n_gpus", f"{n} is not divisible by tensor_parallel·pipeline_parallel = {tp * pp}")
    dp = n // (tp * pp)
    peak = spec.peak_flops(precision)
    elem = BYTES_PER_ELEMENT[precision.lower()]

    clocks = _clock_ratios(spec, n, sm_clocks_mhz)
    seq = require_whole("seq_len", seq_len) if seq_len is not None else p.seq_len

    layers, hidden = _shape(model_params, layers, hidden)
    dense_flops, attn_flops = training_flops(model_params, tokens_per_step, seq, layers=layers, hidden=hidden)
    flops_per_gpu = (dense_flops + attn_flops) / n
    compute_nominal = flops_per_gpu / (peak * p.gemm_efficiency)
    # recomputation is paid on top of the healthy calibration (healthy_mfu: a job that does not recompute)
    recompute_per_gpu = recompute_flops(dense_flops, attn_flops, recompute) / n
    recompute_s = recompute_per_gpu / (peak * p.gemm_efficiency)

    # memory-bound kernels: activation traffic for this rank's tokens and layers, plus the optimizer
    tokens_per_rank = tokens_per_step / dp
    layers_per_rank = layers / pp
    act_bytes = tokens_per_rank * layers_per_rank * hidden * elem * p.activation_traffic_per_hidden / tp
    opt_bytes = model_params / (tp * pp) * p.optimizer_bytes_per_param
    memory_s = (act_bytes + opt_bytes) / (spec.hbm_bw_gbs * 1e9 * p.hbm_efficiency)

    nominal_bw = bus_bandwidth_gbs(spec, n, interconnect, p)
    bw = require_positive("bus_bw_gbs", bus_bw_gbs) if bus_bw_gbs is not None else nominal_bw
    nic_latency_s = nic_for(spec, interconnect).latency_us * 1e-6 if n > p.gpus_per_node else p.nvlink_hop_latency_s
    # nodes one data-parallel ring crosses: its members sit tensor_parallel ranks apart (Megatron's
    # rank order: TP innermost), so a node holds gpus_per_node / TP of them
    g = p.gpus_per_node
    nodes = min(math.ceil(n / g), math.ceil(dp * min(tp, g) / g))
    comm_nominal = _comm_s(model_params, elem, dp, tp, pp, mb, tokens_per_rank, hidden, layers,
                           spec, p, nominal_bw, nic_latency_s, nodes)
    # the healthy MFU describes a job on a proper RDMA fabric: calibrate the overhead against
    # InfiniBand, so a job on RoCE or TCP sockets pays its slower all-reduce on top
    ref_bw = bus_bandwidth_gbs(spec, n, "infiniband", p)
    ref_latency = nic_for(spec, "infiniband").latency_us * 1e-6 if n > p.gpus_per_node else p.nvlink_hop_latency_s
    comm_reference = _comm_s(model_params, elem, dp, tp, pp, mb, tokens_per_rank, hidden, layers,
                             spec, p, ref_bw, ref_latency, nodes)
    comm_s = _comm_s(model_params, elem, dp, tp, pp, mb, tokens_per_rank, hidden, layers,
                     spec, p, bw, nic_latency_s + added_latency_s, nodes)
    bubble = (pp - 1) / (mb + pp - 1) if pp > 1 else 0.0

    # overhead: what a healthy job spends beyond the modelled parts, calibrated at nominal conditions
    healthy_total = flops_per_gpu / (peak * p.healthy_mfu)
    modelled = compute_nominal + memory_s + comm_reference
    overhead_s = max(0.0, healthy_total * (1 - bubble) - modelled)

    compute_all = compute_nominal + recompute_s
    per_gpu = [(compute_all / r + memory_s + overhead_s) / (1 - bubble) for r in clocks]
    slowest_local = max(per_gpu)
    total_s = slowest_local + comm_s
    slowest = per_gpu.index(slowest_local) if max(clocks) - min(clocks) > 1e-9 else None
    compute_s = compute_all / min(clocks)
    clock_bound_share = compute_all / (compute_all + memory_s + overhead_s + comm_nominal)

    breakdown: dict[str, Any] = {
        "gpu": spec.name,
        "n_gpus": n,
        "data_parallel": dp,
        "tensor_parallel": tp,
        "pipeline_parallel": pp,
        "precision": precision.lower(),
        "interconnect": interconnect.name if isinstance(interconnect, NICSpec) else interconnect,
        "model_params": float(model_params),
        "tokens_per_step": float(tokens_per_step),
        "layers": layers,
        "hidden": hidden,
        "seq_len": seq,
        "recompute": str(recompute).lower(),
        "recompute_flops_per_gpu": recompute_per_gpu,
        "dense_flops": dense_flops,
        "attention_flops": attn_flops,
        "flops_per_gpu": flops_per_gpu,
        "peak_flops": peak,
        "gemm_efficiency": p.gemm_efficiency,
        "healthy_mfu": p.healthy_mfu,
        "min_clock_ratio": min(clocks),
        "memory_bytes_per_gpu": act_bytes + opt_bytes,
        "hbm_bw_gbs": spec.hbm_bw_gbs,
        "grad_bytes": model_params / (tp * pp) * elem,
        "bus_bw_gbs": bw,
        "nominal_bus_bw_gbs": nominal_bw,
        "added_latency_ms": float(added_latency_ms),
        "pipeline_bubble": bubble,
        "clock_bound_share": clock_bound_share,
        "healthy_step_s": compute_all + memory_s + overhead_s + comm_nominal
        if bubble == 0
        else (compute_all + memory_s + overhead_s) / (1 - bubble) + comm_nominal,
        "mfu": flops_per_gpu / peak / total_s,
    }
    return StepPrediction(
        total_s=total_s,
        compute_s=compute_s,
        memory_s=memory_s,
        comm_s=comm_s,
        overhead_s=overhead_s,
        per_gpu_s=per_gpu,
        slowest_gpu=slowest,
        breakdown=breakdown,
    )


def _clock_ratios(spec: GPUSpec, n: int, sm_clocks_mhz: Sequence[float] | None) -> list[float]:
    if sm_clocks_mhz is None:
        return [1.0] * n
    clocks = list(sm_clocks_mhz)
    if len(clocks) != n:
        raise PerfInputError("sm_clocks_mhz", f"has {len(clocks)} entries, expected one per GPU ({n})")
    ratios = []
    for i, c in enumerate(clocks):
        mhz = require_positive(f"sm_clocks_mhz[{i}]", c)
        # a clock above max (boost reporting quirks) never makes a GPU faster than its peak
        ratios.append(min(1.0, mhz / spec.max_sm_clock_mhz))
    return ratios


def _comm_s(
    model_params: float,
    elem: float,
    dp: int,
    tp: int,
    pp: int,
    mb: int,
    tokens_per_rank: float,
    hidden: int,
    layers: int,
    spec: GPUSpec,
    p: StepModelParams,
    bus_bw: float,
    hop_latency_s: float,
    nodes: int,
) -> float:
    grad_bytes = model_params / (tp * pp) * elem
    buckets = max(1, math.ceil(grad_bytes / p.bucket_bytes))
    # only hops that leave a node pay the network latency: 2(nodes-1) per all-reduce per bucket, where
    # nodes is how many nodes one data-parallel ring spans
    dp_comm = ring_allreduce_s(dp, grad_bytes, bus_bw) + (
        buckets * 2 * (nodes - 1) * hop_latency_s if dp > 1 else 0.0
    )
    tp_comm = 0.0
    if tp > 1:  # Megatron: 4 all-reduces of the activations per layer (2 fwd, 2 bwd), inside a node
        act = tokens_per_rank * hidden * elem
        nvlink = spec.nvlink_bw_gbs / 2 * p.nvlink_efficiency if spec.nvlink_bw_gbs else spec.pcie_bw_gbs
        tp_comm = 4 * (layers / pp) * ring_allreduce_s(tp, act, nvlink)
    pp_comm = 0.0
    if pp > 1:  # point-to-point activations between stages, fwd and bwd, per micro-batch
        pp_comm = 2 * tokens_per_rank * hidden * elem / (bus_bw * 1e9) + 2 * mb * hop_latency_s
    return dp_comm + tp_comm + pp_comm


def predict_prefill(
    gpu: str | GPUSpec,
    model_params: float,
    prompt_tokens: float,
    *,
    precision: str = "bf16",
    n_gpus: int = 1,
    gemm_efficiency: float = 0.7,
) -> InferencePrediction:
    """Prefill: 2·N FLOPs per prompt token; compute-bound for any realistic prompt length."""
    spec = get_gpu(gpu)
    n = require_positive("model_params", model_params)
    t = require_positive("prompt_tokens", prompt_tokens)
    g = require_positive("n_gpus", n_gpus)
    peak = spec.peak_flops(precision)
    elem = BYTES_PER_ELEMENT[precision.lower()]
    _check_weights_fit(spec, g, n, elem)
    compute = 2 * n * t / (peak * gemm_efficiency * g)
    memory = n * elem / (spec.hbm_bw_gbs * 1e9 * g)  # the weights are read once
    return InferencePrediction(
        "prefill", max(compute, memory), "compute" if compute >= memory else "memory", compute, memory,
        {"flops": 2 * n * t, "weight_bytes": n * elem, "peak_flops": peak, "hbm_bw_gbs": spec.hbm_bw_gbs},
    )


def predict_decode(
    gpu: str | GPUSpec,
    model_params: float,
    *,
    batch: int = 1,
    context_tokens: float = 2048,
    precision: str = "bf16",
    n_gpus: int = 1,
    hbm_efficiency: float | None = None,
    layers: int | None = None,
    hidden: int | None = None,
    params: StepModelParams | None = None,
) -> InferencePrediction:
    """One decode step: weights plus KV cache read from HBM per token; memory-bound at small batch.

    With ``n_gpus`` > 1 (tensor parallel) every layer adds two all-reduces of the activations, which
    are not overlapped: at batch 1 their latency (2(n-1) hops each) is what they cost.
    ``hbm_efficiency`` defaults to ``params.hbm_efficiency``."""
    spec = get_gpu(gpu)
    p = params or StepModelParams()
    n = require_positive("model_params", model_params)
    b = require_positive("batch", batch)
    ctx = require_positive("context_tokens", context_tokens)
    g = require_whole("n_gpus", n_gpus)
    hbm_eff = require_positive("hbm_efficiency", hbm_efficiency if hbm_efficiency is not None else p.hbm_efficiency)
    peak = spec.peak_flops(precision)
    elem = BYTES_PER_ELEMENT[precision.lower()]
    _check_weights_fit(spec, g, n, elem)
    n_layers, d = _shape(n, layers, hidden)
    kv_bytes = 2 * n_layers * d * elem * ctx * b  # K and V for every cached token
    memory = (n * elem + kv_bytes) / (spec.hbm_bw_gbs * 1e9 * hbm_eff * g)
    compute = 2 * n * b / (peak * 0.7 * g)
    comm = 0.0
    if g > 1:
        hop = p.nvlink_hop_latency_s if g <= p.gpus_per_node else nic_for(spec, "infiniband").latency_us * 1e-6
        bw = bus_bandwidth_gbs(spec, g, "infiniband", p)
        comm = 2 * n_layers * ring_allreduce_s(g, b * d * elem, bw, hop_latency_s=hop)
    step = max(compute, memory) + comm
    return InferencePrediction(
        "decode", step, "memory" if memory >= compute else "compute", compute, memory,
        {"weight_bytes": n * elem, "kv_bytes": kv_bytes, "tokens_per_s": b / step, "layers": n_layers,
         "hidden": d, "allreduces": 2 * n_layers if g > 1 else 0},
        comm_s=comm,
    )
