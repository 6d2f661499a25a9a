"""The simulator's own physics of a synchronous data-parallel training step.

This is deliberately *not* ``perf.workload``: the perf model predicts what a job should take, the
simulator plays the cluster that the prediction is checked against, so the two must not share
formulas or constants (only datasheet figures from ``perf.catalog``: peak FLOP/s, HBM, NVLink and
PCIe bandwidths, NIC line rates). The simulated job is plain PyTorch DDP over every GPU, running a
Llama-style decoder with eager (unfused, no FlashAttention) attention at ``SEQ_LEN`` context:

* **compute** (rank i) = 6·N·tokens_i / peak × (1/(``TENSOR_CORE_BUSY`` × clock_i/max_clock) +
  ``GEMM_STALL``). The 6·N FLOPs per token are the weight GEMMs of forward and backward. At full
  clock they reach ``GEMM_EFFICIENCY`` of peak; the tensor cores, whose rate follows the SM clock,
  are busy ``TENSOR_CORE_BUSY`` of the time they have operands, and the rest of the loss
  (``GEMM_STALL`` = 1/0.70 - 1/0.95 of the ideal time) is waiting for tile loads from HBM, whose
  latency is in nanoseconds, not SM cycles, so it does not grow when the clock drops. A GPU at 200
  of 1410 MHz therefore runs its GEMMs 5.5× (not 7.05×) longer; a power- or thermally-capped GPU
  runs at its effective clock.
* **memory** (every rank) = bytes / (HBM bandwidth × ``HBM_EFFICIENCY``): the memory-bound kernels
  (attention's s² score tensors, norms, residuals, activations, the Adam update). HBM has its own
  clock, so this part does not stretch when the SM clock drops.
* **collective** = ring all-reduce of the bf16 gradients in DDP's 25 MB buckets: 2(n-1)/n · bytes
  over the slowest link the rings use (NVLink inside a node; between nodes the NICs, each capped by
  its GPU's PCIe link for GPUDirect RDMA, or one TCP stack per node when NCCL falls back to
  sockets), plus per bucket one trip of hop latencies around the ring for reduce-scatter and one
  for all-gather. With gradient accumulation it runs once, after the last micro-batch: exposed.
* **overhead** = ``STEP_OVERHEAD_S`` of host work on the critical path (optimizer launch, loss and
  grad-norm syncs, data hand-off), stretched on a node whose CPUs are slow or oversubscribed.

step = max_i(compute_i + memory + overhead_i) + collective: every rank waits for the straggler at
the all-reduce.

Why one A800 at 200 of 1410 MHz makes the case-study job ~3.3x slower, not 7x: at 4k context the
eager attention's score tensors (heads × s² per sequence and layer, 60 bytes moved per element
over forward and backward) make the HBM-bound kernels almost half of a healthy step (10.9 of
24.4 s); only the GEMMs (12.6 s) stretch, 5.5×. Memory-bound kernels are assumed to keep
streaming at HBM speed at any SM clock (at 200 MHz an A800's 108 SMs can still issue
108 × 128 B × 200 MHz ≈ 2.8 TB/s of loads, above its 2.0 TB/s HBM).

The healthy step differs from the perf model's on purpose: the perf model assumes one healthy
MFU for every GPU, while here the HBM-bound share grows with a GPU's FLOP/s-to-HBM ratio (A800
153, H100 295, L40S 419 FLOP per byte), so a small model on an H100 or L40S steps slower than
the perf model expects and a large one on an H200 faster (docs/simulator.md, "Physics").

Constants (each the simulator's own, with why):

==========================  =======  ==========================================================
``SEQ_LEN``                 4096     context of the simulated job (Llama-style pretraining)
``HEAD_DIM``                128      attention head width of Llama/GPT models ≥ 1B
``HIDDEN_PER_LAYER``        128      hidden/layers aspect ratio of Llama-7B (4096/32); with
                                     N ≈ 12·L·d² it gives the layer count and width from N
``GEMM_EFFICIENCY``         0.70     share of dense peak the step's GEMM mix reaches at full clock
                                     (cuBLAS gets 80-87% on the best square shapes; the step also
                                     has 4096-row activations and transposed weight-grad GEMMs)
``TENSOR_CORE_BUSY``        0.95     tensor cores' duty in a GEMM main loop when operands are on
                                     time (tile-edge waste, epilogues)
``HBM_EFFICIENCY``          0.85     large elementwise/softmax kernels stream at 85-90% of peak
``SCORE_BYTES``             60       bytes per attention score element, Llama-style eager
                                     attention in bf16 with an fp32 softmax: fwd GEMM write, scale,
                                     mask, softmax, cast, GEMM read (24 B); bwd the same in reverse
                                     plus the softmax gradient (36 B)
``HIDDEN_BYTES``            130      bytes per token, layer and hidden unit of the other
                                     memory-bound kernels (~65 bf16 passes: 2 norms, residuals,
                                     rotary, head transposes, SwiGLU, fwd+bwd)
``ADAM_BYTES_PER_PARAM``    28       Adam with fp32 master weights: read master, m, v and the bf16
                                     grad, write master, m, v and the bf16 weight
``BUCKET_BYTES``            25e6     PyTorch DDP's default gradient bucket (one collective each)
``NVLINK_RING_EFFICIENCY``  0.78     nccl-tests all_reduce busbw on DGX A100 is ~235 of the
                                     300 GB/s one-way NVLink rate
``PCIE_EFFICIENCY``         0.80     DMA payload over a PCIe link after TLP headers
``RDMA_EFFICIENCY``         0.90     NCCL's IB/RoCE payload rate vs the port's line rate
``SOCKET_GBS``              2.5      NCCL's socket transport with default threads/sockets moves
                                     ~20 Gb/s per node through the kernel TCP stack
``*_HOP_S``                 2-50 µs  one ring hop: NVLink, IB, RoCE, TCP
``STEP_OVERHEAD_S``         0.5      host work per step that the GPUs wait for
``POWERSAVE_SLOWDOWN``      2.5      powersave pins the CPUs at their lowest P-state (~40% clock)
==========================  =======  ==========================================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from perf.catalog import GPUSpec, nic_for

SEQ_LEN = 4096
HEAD_DIM = 128
HIDDEN_PER_LAYER = 128
FLOPS_PER_PARAM_TOKEN = 6.0
GEMM_EFFICIENCY = 0.70
TENSOR_CORE_BUSY = 0.95
GEMM_STALL = 1 / GEMM_EFFICIENCY - 1 / TENSOR_CORE_BUSY  # clock-independent part, per ideal GEMM second
HBM_EFFICIENCY = 0.85
SCORE_BYTES = 60.0
HIDDEN_BYTES = 130.0
ADAM_BYTES_PER_PARAM = 28.0
BUCKET_BYTES = 25e6
NVLINK_RING_EFFICIENCY = 0.78
PCIE_EFFICIENCY = 0.80
RDMA_EFFICIENCY = 0.90
SOCKET_GBS = 2.5
NVLINK_HOP_S = 2e-6
RDMA_HOP_S = {"infiniband": 5e-6, "roce": 8e-6}
SOCKET_HOP_S = 50e-6
STEP_OVERHEAD_S = 0.5
POWERSAVE_SLOWDOWN = 2.5
MAX_HOST_SLOWDOWN = 8.0  # an oversubscribed host still gets some CPU time
MIN_LINK_GBS = 0.05  # a ring with every path down still trickles (NCCL retries): keeps times finite

# PCIe payload per lane, GB/s one way, after line encoding (8b/10b up to gen 2, 128b/130b after)
PCIE_LANE_GBS = {1: 0.25, 2: 0.5, 3: 0.985, 4: 1.969, 5: 3.938, 6: 7.563}

_GRAD_BYTES = {"fp32": 4.0, "tf32": 4.0}  # anything else: bf16/fp16 gradients (fp8 keeps bf16 grads)


@dataclass(frozen=True)
class ModelShape:
    layers: int
    hidden: int
    heads: int


def model_shape(model_params: float) -> ModelShape:
    """Layers, width and heads of a decoder with N ≈ 12·L·d² and d = ``HIDDEN_PER_LAYER``·L."""
    if model_params <= 0:
        raise ValueError(f"model_params must be > 0, got {model_params}")
    layers = max(1, round((model_params / (12 * HIDDEN_PER_LAYER**2)) ** (1 / 3)))
    hidden = max(HEAD_DIM, round(math.sqrt(model_params / (12 * layers)) / HEAD_DIM) * HEAD_DIM)
    return ModelShape(layers, hidden, hidden // HEAD_DIM)


def peak_flops(spec: GPUSpec, precision: str) -> float:
    """Dense tensor-core peak at ``precision``; bf16 where the part has no such mode (fp8 on A100)."""
    try:
        return spec.peak_flops(precision)
    except ValueError:
        return spec.peak_flops("bf16")


def rank_compute_s(spec: GPUSpec, model_params: float, tokens: float, clock_ratio: float,
                   precision: str = "bf16") -> float:
    """Weight-GEMM time of one rank's tokens at ``clock_ratio`` of the GPU's max SM clock."""
    ratio = min(1.0, max(clock_ratio, 1e-3))  # a boost-reporting quirk never beats the peak
    ideal = FLOPS_PER_PARAM_TOKEN * model_params * tokens / peak_flops(spec, precision)
    return ideal * (1 / (TENSOR_CORE_BUSY * ratio) + GEMM_STALL)


def rank_memory_s(spec: GPUSpec, model_params: float, tokens: float) -> float:
    """HBM-bound kernels of one rank's tokens, and the optimizer step over all parameters."""
    shape = model_shape(model_params)
    per_token_layer = SCORE_BYTES * shape.heads * SEQ_LEN + HIDDEN_BYTES * shape.hidden
    moved = tokens * shape.layers * per_token_layer + ADAM_BYTES_PER_PARAM * model_params
    return moved / (spec.hbm_bw_gbs * 1e9 * HBM_EFFICIENCY)


def grad_bytes(model_params: float, precision: str = "bf16") -> float:
    return model_params * _GRAD_BYTES.get(precision.lower(), 2.0)


def pcie_gbs(gen: int, width: int) -> float:
    """DMA payload of a PCIe link (GB/s, one way)."""
    return PCIE_LANE_GBS.get(gen, PCIE_LANE_GBS[1]) * max(width, 0) * PCIE_EFFICIENCY


def host_slowdown(governor: str, load: float, ncpu: int) -> float:
    """How much longer host-side work takes: powersave governor, CPUs shared with a hog."""
    factor = POWERSAVE_SLOWDOWN if governor == "powersave" else 1.0
    if ncpu > 0 and load > ncpu:
        factor *= load / ncpu
    return min(factor, MAX_HOST_SLOWDOWN)


# --------------------------------------------------------------------------- links


@dataclass(frozen=True)
class NodeLinks:
    """What one node's hardware gives the job's rings."""

    nvlink_share: float = 1.0  # the worst GPU's share of its NVLink links that are up
    pcie: Sequence[tuple[int, int]] = ()  # (gen, width) of each GPU's PCIe link, by index
    nic_gbps: Sequence[float | None] = ()  # line rate of each rail's NIC (Gb/s), None where down
    added_latency_s: float = 0.0  # extra egress latency of this node's traffic


@dataclass(frozen=True)
class Fabric:
    """The all-reduce's links, per rank and one way (GB/s), and the latency of each kind of hop."""

    intra_gbs: float
    inter_gbs: float | None  # None: every rank on one node
    inter_hop_s: float = 0.0
    added_s: float = 0.0  # extra egress latency, summed over the nodes the ring passes

    @property
    def bottleneck_gbs(self) -> float:
        bw = self.intra_gbs if self.inter_gbs is None else min(self.intra_gbs, self.inter_gbs)
        return max(bw, MIN_LINK_GBS)


def intra_node_gbs(spec: GPUSpec, node: NodeLinks, ngpus: int) -> float:
    """Ring bandwidth per GPU inside a node: NVLink (the worst GPU's live links), else PCIe."""
    if spec.nvlink_bw_gbs:
        return spec.nvlink_bw_gbs / 2 * NVLINK_RING_EFFICIENCY * node.nvlink_share
    links = list(node.pcie)[:ngpus] or [(spec.pcie_gen, spec.pcie_width)]
    return min(pcie_gbs(g, w) for g, w in links)


def node_nic_gbs(rail_gbs: Sequence[float | None], rings: int) -> float:
    """What a node's NICs give ``rings`` rings that split the data evenly.

    Each ring leaves the node through one NIC; rings are dealt round-robin to the NICs that are up,
    so a port down makes another NIC carry two rings, and the NIC with the most data per GB/s
    paces them all (NCCL does not rebalance by bandwidth)."""
    up = [b for b in rail_gbs if b is not None and b > 0]
    if not up or rings < 1:
        return 0.0
    worst = 0.0
    for i, bw in enumerate(up):
        carried = rings // len(up) + (1 if i < rings % len(up) else 0)
        worst = max(worst, carried / bw)
    return rings / worst if worst else 0.0


def build_fabric(
    spec: GPUSpec,
    interconnect: str,
    nodes: Sequence[NodeLinks],
    n_ranks: int,
    *,
    rails: int,
    nccl_effects: dict[str, float] | None = None,
) -> Fabric:
    """The job's fabric from each node's links and the NCCL settings' bandwidth factors.

    ``nccl_effects`` (``diagnostics.parsers.nccl.nccl_env_effects``): ``tcp`` < 1 makes NCCL use
    sockets, ``intra`` scales NVLink (P2P off), ``gdr`` the NICs (no GPUDirect RDMA), ``channels``
    everything (too few channels or too small buffers)."""
    effects = nccl_effects or {}
    per_node = max(1, math.ceil(n_ranks / max(len(nodes), 1)))
    intra = min((intra_node_gbs(spec, n, min(n_ranks, per_node)) for n in nodes), default=0.0)
    intra *= effects.get("intra", 1.0)
    channels = effects.get("channels", 1.0)
    added = sum(n.added_latency_s for n in nodes)
    if len(nodes) <= 1:
        return Fabric(intra * channels, None, 0.0, added)
    sockets = interconnect == "ethernet" or effects.get("tcp", 1.0) < 1.0 or not rails
    if sockets:
        return Fabric(intra * channels, SOCKET_GBS * channels, SOCKET_HOP_S, added)
    try:
        hop = RDMA_HOP_S.get(nic_for(spec, interconnect).kind, RDMA_HOP_S["roce"])
    except ValueError:
        hop = RDMA_HOP_S["roce"]
    inter = math.inf
    for n in nodes:
        rail_gbs: list[float | None] = []
        for r in range(rails):
            rate = n.nic_gbps[r] if r < len(n.nic_gbps) else None
            if rate is None or rate <= 0:
                rail_gbs.append(None)
                continue
            bw = rate / 8 * RDMA_EFFICIENCY
            if r < len(n.pcie):  # GPUDirect RDMA: the rail's traffic crosses its GPU's PCIe link
                bw = min(bw, pcie_gbs(*n.pcie[r]))
            rail_gbs.append(bw * effects.get("gdr", 1.0))
        inter = min(inter, node_nic_gbs(rail_gbs, rails))
    return Fabric(intra * channels, inter * channels, hop, added)


def allreduce_s(n_ranks: int, n_nodes: int, message_bytes: float, fabric: Fabric) -> float:
    """Ring all-reduce of ``message_bytes`` in DDP buckets (alpha-beta: latency + size/bandwidth)."""
    if n_ranks <= 1 or message_bytes <= 0:
        return 0.0
    transfer = 2 * (n_ranks - 1) / n_ranks * message_bytes / (fabric.bottleneck_gbs * 1e9)
    inter_hops = n_nodes if n_nodes > 1 else 0  # the ring leaves every node once
    trip = (n_ranks - inter_hops) * NVLINK_HOP_S + inter_hops * fabric.inter_hop_s + fabric.added_s
    buckets = max(1, math.ceil(message_bytes / BUCKET_BYTES))
    return transfer + buckets * 2 * trip  # reduce-scatter and all-gather: one trip each


# --------------------------------------------------------------------------- the step


@dataclass(frozen=True)
class StepTimes:
    """One synchronous step: per-rank local work, the collective, and the step they make."""

    step_s: float
    compute_s: list[float]  # per rank, clock-bound
    memory_s: float  # per rank, HBM-bound (the same on every rank)
    overhead_s: list[float]  # per rank, host work (stretched on slow hosts)
    comm_s: float
    breakdown: dict[str, float] = field(default_factory=dict)

    @property
    def local_s(self) -> list[float]:
        """Each rank's work before it waits at the all-reduce."""
        return [c + self.memory_s + o for c, o in zip(self.compute_s, self.overhead_s, strict=True)]

    @property
    def straggler(self) -> int:
        local = self.local_s
        return local.index(max(local))


def synchronous_step(
    spec: GPUSpec,
    model_params: float,
    tokens_per_step: float,
    clock_ratios: Sequence[float],
    fabric: Fabric,
    *,
    n_nodes: int,
    precision: str = "bf16",
    host_factors: Sequence[float] | None = None,
) -> StepTimes:
    """The step of a data-parallel job with one rank per entry of ``clock_ratios``."""
    n = len(clock_ratios)
    if n == 0:
        raise ValueError("a job needs at least one rank")
    if tokens_per_step <= 0:
        raise ValueError(f"tokens_per_step must be > 0, got {tokens_per_step}")
    tokens = tokens_per_step / n
    compute = [rank_compute_s(spec, model_params, tokens, r, precision) for r in clock_ratios]
    memory = rank_memory_s(spec, model_params, tokens)
    factors = list(host_factors) if host_factors is not None else [1.0] * n
    if len(factors) != n:
        raise ValueError(f"host_factors has {len(factors)} entries for {n} ranks")
    overhead = [STEP_OVERHEAD_S * f for f in factors]
    comm = allreduce_s(n, n_nodes, grad_bytes(model_params, precision), fabric)
    local = [c + memory + o for c, o in zip(compute, overhead, strict=True)]
    step = max(local) + comm
    breakdown = {"bus_gbs": fabric.bottleneck_gbs, "intra_gbs": fabric.intra_gbs,
                 "inter_gbs": fabric.inter_gbs if fabric.inter_gbs is not None else 0.0,
                 "tokens_per_rank": tokens}
    return StepTimes(step, compute, memory, overhead, comm, breakdown)


def healthy_fabric(spec: GPUSpec, interconnect: str, n_nodes: int, gpus_per_node: int, rails: int) -> Fabric:
    """The fabric of the same cluster with every link at its rated speed."""
    nic = 0.0
    if interconnect != "ethernet" and rails:
        try:
            nic = float(nic_for(spec, interconnect).rate_gbps)
        except ValueError:  # an interconnect the catalog does not know: the nodes were built with HDR
            nic = 200.0
    node = NodeLinks(1.0, [(spec.pcie_gen, spec.pcie_width)] * gpus_per_node, [nic] * rails)
    return build_fabric(spec, interconnect, [node] * n_nodes, n_nodes * gpus_per_node, rails=rails)
