"""The simulated training job: one synchronous data-parallel job over every GPU, its step time
(the simulator's own physics, ``simulator.physics``, fed with each GPU's effective SM clock, each
node's links and NCCL settings, so a fault slows it the way the hardware would, independently of
the ``perf`` model that clusterdoc checks it against), and the per-rank step log the job-log checks
tail (plus the lines a ``custom`` fault appends), and what the scheduler says of it (``squeue``,
Kubernetes pods: one job over every node, a made-up id and owner, started before the scenario's
time 0, saving a checkpoint every half hour)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simulator import physics
from simulator.scenario import hca_count
from simulator.state import NodeState, stable_uniform
from simulator.telemetry import gpu_reading

if TYPE_CHECKING:
    from datetime import datetime
    from threading import RLock

    from simulator.scenario import Scenario


# The scheduler's view of the simulated job (made up, stable): Slurm job id and user (the Kubernetes
# namespace), when it started (sim time: 3 h 10 min before the scenario's time 0) and its checkpoints
# (every 30 min from 26 min in: at time 0 the last one is 14 min old).
JOB_ID = 4412
JOB_USER = "alice"
JOB_STARTED_S = -(3 * 3600 + 10 * 60)
CHECKPOINT_EVERY_S = 1800.0
CHECKPOINT_FIRST_S = 26 * 60.0
CHECKPOINT_DIR = "/checkpoints"


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
        c = self.scenario.cluster
        w = c.workload
        if w is None or w.kind != "llm_training":
            return None
        active = [n for n in self.nodes.values() if n.job_running and not n.drained]
        ranks: list[tuple[str, int]] = []
        ratios: list[float] = []
        hosts: list[float] = []
        for n in active:
            factor = physics.host_slowdown(n.governor, n.extra_load, n.ncpu)
            for g in n.gpus:
                if not g.present:
                    continue
                r = gpu_reading(self.scenario.seed, n, g, -1, busy=True)
                ranks.append((n.name, g.index))
                ratios.append(max(r.sm_mhz, 1.0) / n.gpu_spec.max_sm_clock_mhz)
                hosts.append(factor)
        if not ranks:
            return None
        spec = active[0].gpu_spec
        nodes_in_job = len({h for h, _g in ranks})
        fabric = self._fabric(active, len(ranks))
        step = physics.synchronous_step(spec, w.model_params, w.tokens_per_step, ratios, fabric,
                                        n_nodes=nodes_in_job, precision=w.precision, host_factors=hosts)
        # local work at nominal host speed, and what a slow host adds to each of its ranks
        nominal = [cs + step.memory_s + physics.STEP_OVERHEAD_S for cs in step.compute_s]
        extra = {h: step.overhead_s[i] - physics.STEP_OVERHEAD_S for i, (h, _g) in enumerate(ranks)}
        if self._baseline is None:
            gpn = max(c.gpus_per_node, 1)
            n_nodes = len(self.nodes)
            healthy = physics.healthy_fabric(spec, c.interconnect, n_nodes, gpn, self._rails())
            self._baseline = physics.synchronous_step(
                spec, w.model_params, w.tokens_per_step, [1.0] * (n_nodes * gpn), healthy,
                n_nodes=n_nodes, precision=w.precision,
            ).step_s
        rank_of = {r: i for i, r in enumerate(ranks)}
        return JobState(step.step_s, self._baseline, ranks, nominal, step.comm_s, extra, rank_of)

    def _rails(self) -> int:
        c = self.scenario.cluster
        return hca_count(c) if c.interconnect != "ethernet" else 0

    def _fabric(self, active: list[NodeState], n_ranks: int) -> physics.Fabric:
        """The job's all-reduce links as the nodes' state has them (faults, NCCL settings)."""
        from diagnostics.parsers.nccl import nccl_env_effects

        effects: dict[str, float] = {}
        for n in active:
            for effect, factor in nccl_env_effects(n.nccl_env).items():
                effects[effect] = min(effects.get(effect, 1.0), factor)
        links = [self._node_links(n) for n in active]
        return physics.build_fabric(active[0].gpu_spec, self.scenario.cluster.interconnect, links, n_ranks,
                                    rails=self._rails(), nccl_effects=effects)

    @staticmethod
    def _node_links(n: NodeState) -> physics.NodeLinks:
        shares = [sum(g.nvlink_up) / len(g.nvlink_up) for g in n.gpus if g.present and g.nvlink_up]
        return physics.NodeLinks(
            nvlink_share=min(shares, default=1.0),
            pcie=[(g.pcie_gen, g.pcie_width) for g in n.gpus],
            nic_gbps=[h.rate_gbps if h.up else None for h in n.hcas],
            added_latency_s=n.added_latency_ms / 1000.0,
        )

    def node_allreduce_busbw_gbs(self, node: NodeState, ngpus: int) -> float:
        """Peak bus bandwidth of a single-node all_reduce_perf run over ``ngpus`` GPUs."""
        from diagnostics.parsers.nccl import nccl_env_effects

        if ngpus <= 1:
            return 0.0
        gpus = [g for g in node.gpus if g.present][:ngpus]
        shares = [sum(g.nvlink_up) / len(g.nvlink_up) for g in gpus if g.nvlink_up]
        links = physics.NodeLinks(nvlink_share=min(shares, default=1.0),
                                  pcie=[(g.pcie_gen, g.pcie_width) for g in gpus])
        effects = nccl_env_effects(node.nccl_env)
        bw = physics.intra_node_gbs(node.gpu_spec, links, ngpus)
        return bw * effects.get("intra", 1.0) * effects.get("channels", 1.0)

    def job_nodes(self) -> list[NodeState]:
        """The nodes the scheduler has the job on (none without a workload)."""
        w = self.scenario.cluster.workload
        if w is None or w.kind == "none":
            return []
        return [n for n in self.nodes.values() if n.job_running]

    def job_elapsed_s(self) -> float:
        return max(0.0, self.time_s - JOB_STARTED_S)

    def checkpoint_times(self, count: int = 2) -> list[float]:
        """Sim times of the job's last ``count`` checkpoint saves, oldest first."""
        first = JOB_STARTED_S + CHECKPOINT_FIRST_S
        if self.time_s < first:
            return []
        last = int((self.time_s - first) // CHECKPOINT_EVERY_S)
        return [first + k * CHECKPOINT_EVERY_S for k in range(max(0, last - count + 1), last + 1)]

    def train_log(self, node: NodeState) -> str:
        """Recent lines of the job's per-rank step log on this node (its last checkpoint saves, then
        the last steps)."""
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
        for t in self.checkpoint_times():
            step = max(0, 1000 + int((t + 3600.0) / max(job.step_time_s, 1e-3)))
            stamp = self.wallclock(t).isoformat(sep=" ", timespec="milliseconds")[:23].replace(".", ",")
            lines.append(f"{stamp} INFO [checkpoint.py:61] rank={node.index * gpn} saved checkpoint to "
                         f"{CHECKPOINT_DIR}/{w.name}/global_step{step} at step {step} (3.1 s)")
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
