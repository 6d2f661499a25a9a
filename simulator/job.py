"""The simulated training job: one synchronous data-parallel job over every GPU, its step time
(``perf.workload.predict_training_step`` fed with each GPU's effective SM clock and the job's bus
bandwidth and latency, so a fault slows it the way the performance model says), and the per-rank
step log the job-log checks tail (plus the lines a ``custom`` fault appends)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simulator.state import NodeState, stable_uniform
from simulator.telemetry import gpu_reading

if TYPE_CHECKING:
    from datetime import datetime
    from threading import RLock

    from simulator.scenario import Scenario


@dataclass(frozen=True)
class JobState:
    """The training job's current and healthy step times, and who is slow."""

    step_time_s: float
    baseline_step_time_s: float
    ranks: list[tuple[str, int]]  # (host, gpu) per rank
    local_s: list[float]  # per-rank local work before the all-reduce
    comm_s: float
    node_extra_s: dict[str, float]
    rank_of: dict[tuple[str, int], int]  # (host, gpu) -> index into ranks



class JobMixin:
    """SimCluster's job model (a mixin: the cluster holds the state)."""

    if TYPE_CHECKING:
        scenario: Scenario
        nodes: dict[str, NodeState]
        time_s: float
        _lock: RLock
        _version: int
        _job_cache: tuple[int, JobState | None] | None
        _baseline: float | None

        def wallclock(self, t: float) -> datetime: ...
        def reading(self, node: NodeState, g: Any) -> Any: ...

    def step_time_s(self) -> float:
        """The synchronous job's current step time (0.0 without a training workload)."""
        with self._lock:
            job = self._job()
        return job.step_time_s if job else 0.0

    def baseline_step_time_s(self) -> float:
        """The same job's step time on the healthy cluster (all nodes, no faults)."""
        with self._lock:
            job = self._job()
        return job.baseline_step_time_s if job else 0.0

    def rank_step_times(self) -> dict[tuple[str, int], float]:
        """Each rank's local work per step (before waiting at the all-reduce)."""
        with self._lock:
            job = self._job()
        if not job:
            return {}
        return {r: job.local_s[i] + job.node_extra_s.get(r[0], 0.0) for i, r in enumerate(job.ranks)}

    def _job(self) -> JobState | None:
        if self._job_cache is not None and self._job_cache[0] == self._version:
            return self._job_cache[1]
        job = self._compute_job()
        self._job_cache = (self._version, job)
        return job

    def _compute_job(self) -> JobState | None:
        from perf.workload import StepModelParams, predict_training_step

        c = self.scenario.cluster
        w = c.workload
        if w is None or w.kind != "llm_training":
            return None
        active = [n for n in self.nodes.values() if n.job_running and not n.drained]
        ranks: list[tuple[str, int]] = []
        clocks: list[float] = []
        for n in active:
            for g in n.gpus:
                if not g.present:
                    continue
                r = gpu_reading(self.scenario.seed, n, g, -1, busy=True)
                ranks.append((n.name, g.index))
                clocks.append(max(r.sm_mhz, 1.0))
        if not ranks:
            return None
        gpn = max(c.gpus_per_node, 1)
        params = StepModelParams(gpus_per_node=gpn)
        bw, latency_ms = self._bus_bandwidth(active, len(ranks), params)
        precision = w.precision
        try:
            pred = predict_training_step(
                c.gpu, len(ranks), w.model_params, w.tokens_per_step, precision=precision,
                interconnect=c.interconnect, sm_clocks_mhz=clocks, bus_bw_gbs=bw,
                added_latency_ms=latency_ms, params=params,
            )
        except ValueError:
            pred = predict_training_step(
                c.gpu, len(ranks), w.model_params, w.tokens_per_step, interconnect=c.interconnect,
                sm_clocks_mhz=clocks, bus_bw_gbs=bw, added_latency_ms=latency_ms, params=params,
            )
        extra = {n.name: self._host_slowdown_s(n, pred.overhead_s) for n in active}
        slowest_local = max(pred.per_gpu_s[i] + extra[h] for i, (h, _g) in enumerate(ranks))
        total = slowest_local + pred.comm_s
        if self._baseline is None:
            all_gpus = sum(1 for _ in self.nodes.values()) * gpn
            try:
                base = predict_training_step(c.gpu, all_gpus, w.model_params, w.tokens_per_step,
                                             precision=precision, interconnect=c.interconnect, params=params)
            except ValueError:
                base = predict_training_step(c.gpu, all_gpus, w.model_params, w.tokens_per_step,
                                             interconnect=c.interconnect, params=params)
            self._baseline = base.total_s
        rank_of = {r: i for i, r in enumerate(ranks)}
        return JobState(total, self._baseline, ranks, list(pred.per_gpu_s), pred.comm_s, extra, rank_of)

    @staticmethod
    def _host_slowdown_s(n: NodeState, overhead_s: float) -> float:
        """Host-side work (data loading, launches) slows with a powersave governor or CPU hogs."""
        extra = 0.0
        if n.governor == "powersave":
            extra += overhead_s * 0.25
        if n.extra_load > n.ncpu:
            extra += overhead_s * min(1.0, (n.extra_load / n.ncpu - 1.0) * 0.5)
        return extra

    def _bus_bandwidth(self, active: list[NodeState], n_gpus: int, params: Any) -> tuple[float, float]:
        """Effective ring bus bandwidth (GB/s) and added latency (ms) of the job's all-reduce."""
        from diagnostics.parsers.nccl import nccl_env_effects
        from perf.catalog import nic_for
        from perf.workload import bus_bandwidth_gbs

        c = self.scenario.cluster
        spec = active[0].gpu_spec
        gpn = max(c.gpus_per_node, 1)
        intra = bus_bandwidth_gbs(spec, min(n_gpus, gpn), c.interconnect, params)
        link_factor = 1.0
        for n in active:
            for g in n.gpus:
                if g.present and g.nvlink_up:
                    link_factor = min(link_factor, sum(g.nvlink_up) / len(g.nvlink_up))
        effects: dict[str, float] = {}
        for n in active:
            for effect, factor in nccl_env_effects(n.nccl_env).items():
                effects[effect] = min(effects.get(effect, 1.0), factor)
        intra *= link_factor * effects.get("intra", 1.0)
        latency = max((n.added_latency_ms for n in active), default=0.0)
        if n_gpus <= gpn:
            return intra * effects.get("channels", 1.0), latency
        tcp = c.interconnect == "ethernet" or effects.get("tcp", 1.0) < 1.0
        if tcp:
            inter = bus_bandwidth_gbs(spec, n_gpus, "ethernet", params)
        else:
            nic = nic_for(spec, c.interconnect)
            rails = max((len(n.hcas) for n in active), default=0)
            inter = 0.0
            for r in range(rails):
                worst = 1.0
                for n in active:
                    if r >= len(n.hcas):
                        worst = 0.0
                        continue
                    h = n.hcas[r]
                    f = (h.rate_gbps / h.max_rate_gbps if h.max_rate_gbps else 0.0) if h.up else 0.0
                    if r < len(n.gpus):  # GPUDirect RDMA runs through the GPU's PCIe link
                        g = n.gpus[r]
                        f = min(f, (g.pcie_width / spec.pcie_width) * 2.0 ** (g.pcie_gen - spec.pcie_gen) * 1.6)
                    worst = min(worst, f)
                inter += nic.effective_gbs * worst
            inter *= effects.get("gdr", 1.0)
        bw = min(intra, inter) * effects.get("channels", 1.0)
        return max(bw, 0.05), latency

    def node_allreduce_busbw_gbs(self, node: NodeState, ngpus: int) -> float:
        """Peak bus bandwidth of a single-node all_reduce_perf run over ``ngpus`` GPUs."""
        from diagnostics.parsers.nccl import nccl_env_effects
        from perf.workload import StepModelParams, bus_bandwidth_gbs

        spec = node.gpu_spec
        if ngpus <= 1:
            return 0.0
        bw = bus_bandwidth_gbs(spec, ngpus, self.scenario.cluster.interconnect,
                               StepModelParams(gpus_per_node=max(ngpus, 1)))
        gpus = [g for g in node.gpus if g.present][:ngpus]
        factors = [sum(g.nvlink_up) / len(g.nvlink_up) for g in gpus if g.nvlink_up]
        if factors:
            bw *= min(factors)
        effects = nccl_env_effects(node.nccl_env)
        bw *= effects.get("intra", 1.0) * effects.get("channels", 1.0)
        return bw

    def train_log(self, node: NodeState) -> str:
        """Recent lines of the job's per-rank step log on this node."""
        job = self._job()
        w = self.scenario.cluster.workload
        if job is None or w is None:
            return "".join(line + "\n" for line in node.job_log)
        lines: list[str] = []
        step_now = 1000 + int((self.time_s + 3600.0) / max(job.step_time_s, 1e-3))
        gpn = max(self.scenario.cluster.gpus_per_node, 1)
        local_ranks = [(i, (node.name, g.index)) for g in node.gpus
                       if (i := job.rank_of.get((node.name, g.index))) is not None]
        if not local_ranks:
            return "".join(line + "\n" for line in node.job_log)
        extra = job.node_extra_s.get(node.name, 0.0)
        for k in range(3, 0, -1):
            step = step_now - k
            t = self.time_s - k * job.step_time_s
            stamp = self.wallclock(t).isoformat(sep=" ", timespec="milliseconds")[:23].replace(".", ",")
            for i, (host, gpu) in local_ranks:
                u = stable_uniform(self.scenario.seed, host, gpu, "step", step)
                step_s = job.step_time_s * (0.995 + 0.01 * u)
                compute = (job.local_s[i] + extra) * (0.99 + 0.02 * u)
                rank = node.index * gpn + gpu
                tps = w.tokens_per_step / step_s
                lines.append(
                    f"{stamp} INFO [train.py:412] step={step} rank={rank} local_rank={gpu} host={host} "
                    f"step_time_s={step_s:.3f} compute_s={compute:.3f} tokens_per_s={tps:.0f}"
                )
        for mount, (size, used, _i, _iu) in node.disks.items():
            if size and used / size >= 0.97:
                stamp = self.wallclock(self.time_s - 30).strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
                lines.append(f"{stamp} ERROR [checkpoint.py:88] rank={node.index * gpn} failed to save checkpoint "
                             f"to {mount}: OSError: [Errno 28] No space left on device")
        lines.extend(node.job_log)
        return "".join(line + "\n" for line in lines)
