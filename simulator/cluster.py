"""SimCluster: a scenario's cluster, answering shell commands the way real nodes would.

The pieces live by domain: node state and faults in ``state.py``, the shell interpreter in
``shell.py``, the training job in ``job.py``, the tools in ``nvsmi.py`` / ``hosttools.py`` /
``health_tools.py``, telemetry in ``telemetry.py`` and ``dcgm.py``; this class holds the state and
the public API (``handle``, ``advance``, telemetry, the changes mutating commands make).

``handle(host, command)`` takes the exact command line an executor would send over SSH: ``$(…)``
substitutions, ``;``/``&&``/``||`` sequences, pipes into a few filters (grep, head, tail, wc,
sort, uniq, tr) and ``2>/dev/null`` redirections are understood; the program is dispatched by
name (nvidia-smi in ``nvsmi.py``, the rest in ``hosttools.py``). Unknown programs answer
``bash: X: command not found`` with exit code 127, as bash does.

The training job's step time comes from the simulator's own physics (``physics.py``, via
``job.py``) fed with every GPU's effective SM clock and every node's links, NCCL settings and
latency, so a fault changes the step time the way the hardware would, independently of the
``perf`` model that clusterdoc checks the job against.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from diagnostics.types import CommandResult
from simulator.job import JobMixin, JobState
from simulator.scenario import Scenario, load_scenario
from simulator.shell import ShellMixin, _Hang
from simulator.state import (
    GpuState,
    NodeState,
    apply_fault,
    build_nodes,
)
from simulator.telemetry import GpuReading, gpu_reading

EPOCH = datetime(2026, 11, 28, 9, 40, 0, tzinfo=UTC)  # simulated wall clock at time 0

class SimExecutor:
    """An in-process ``diagnostics.types.Executor`` over a SimCluster."""

    def __init__(self, sim: SimCluster) -> None:
        self.sim = sim
        self.commands_run = 0

    def run(self, host: str, command: str, timeout_s: float = 30.0) -> CommandResult:
        self.commands_run += 1
        return self.sim.handle(host, command, timeout_s=timeout_s)

    def close(self) -> None:
        return None


class SimCluster(JobMixin, ShellMixin):
    TRAIN_LOG = "/var/log/clusterdoc/train.log"

    def __init__(self, scenario: Scenario | str, *, slurm_controller: str | None = None) -> None:
        if isinstance(scenario, str):
            scenario = load_scenario(scenario)
        self.scenario = scenario
        # a host that is not a node and answers scontrol/sinfo for all of them (simulator.controller)
        self.slurm_controller = slurm_controller
        self.nodes: dict[str, NodeState] = build_nodes(scenario)
        self.time_s = 0.0
        self.uptime_offset_s = 86_400.0 * 12 + 3_600.0  # nodes booted 12 days before time 0
        self._version = 0
        self._lock = threading.RLock()
        self._applied: set[int] = set()
        self._job_cache: tuple[int, JobState | None] | None = None
        self._baseline: float | None = None
        self._reading_cache: dict[tuple[str, int], tuple[int, int, GpuReading]] = {}
        self._apply_due_faults()

    # ------------------------------------------------------------------ public API

    @property
    def hosts(self) -> list[str]:
        return list(self.nodes)

    def node(self, host: str) -> NodeState:
        try:
            return self.nodes[host]
        except KeyError:
            raise KeyError(f"no simulated node {host!r}; nodes: {', '.join(self.nodes)}") from None

    def executor(self) -> SimExecutor:
        return SimExecutor(self)

    def advance(self, seconds: float) -> None:
        """Move simulated time on: telemetry noise changes, faults with a later ``at_s`` start."""
        if seconds < 0:
            raise ValueError("advance(seconds): seconds must be >= 0")
        with self._lock:
            self.time_s += seconds
            self._apply_due_faults()

    def wallclock(self, t: float) -> datetime:
        return EPOCH + timedelta(seconds=t)

    def ip_of(self, host: str) -> str:
        i = self.hosts.index(host) if host in self.nodes else 0
        return f"10.0.{i // 250}.{i % 250 + 11}"

    def handle(self, host: str, command: str, timeout_s: float = 30.0) -> CommandResult:
        """Answer one command line as the node would; never raises."""
        start = time.perf_counter()
        node = self.nodes.get(host)
        if node is None and host == self.slurm_controller and self.scenario.cluster.scheduler == "slurm":
            from simulator.controller import controller_command

            with self._lock:
                try:
                    rc, out, err = controller_command(self, host, command)
                except Exception as exc:  # a simulator bug must look like a failing tool
                    rc, out, err = 1, "", f"simulator error: {type(exc).__name__}: {exc}\n"
            return CommandResult(host, command, rc, out, err, time.perf_counter() - start)
        if node is None:
            return CommandResult(host, command, None, "", "", 0.0, "unreachable",
                                 f"unknown host {host!r} (not a node of scenario {self.scenario.id})")
        if node.unreachable:
            return CommandResult(host, command, None, "", "", float(timeout_s), "timeout",
                                 f"no answer from {host} within {timeout_s:g} s")
        with self._lock:
            try:
                rc, out, err = self._run_line(node, command)
            except _Hang as hang:  # a custom fault's `hang: true`: the command never returns
                return CommandResult(host, command, None, "", "", float(timeout_s), "timeout",
                                     f"no answer from {host} within {timeout_s:g} s ({hang})")
            except Exception as exc:  # a simulator bug must look like a failing tool, not crash a sweep
                rc, out, err = 1, "", f"simulator error: {type(exc).__name__}: {exc}\n"
        return CommandResult(host, command, rc, out, err, time.perf_counter() - start)

    # job / workload ------------------------------------------------------------

    def gpu_samples(self, host: str) -> list[Any]:
        """Telemetry of every visible GPU of a node as ``perf.detectors.GpuSample``s."""
        from perf.detectors import GpuSample

        node = self.node(host)
        with self._lock:
            samples = []
            for g in node.gpus:
                if not g.present:
                    continue
                r = self.reading(node, g)
                samples.append(
                    GpuSample(
                        host=host,
                        gpu=g.index,
                        t=self.time_s,
                        sm_clock_mhz=r.sm_mhz,
                        max_sm_clock_mhz=float(node.gpu_spec.max_sm_clock_mhz),
                        power_w=r.power_w,
                        power_limit_w=g.power_limit_w,
                        temp_c=r.temp_c,
                        util_pct=r.util_pct,
                        xid_count=self._xid_count(node, g),
                        ecc_dbe=g.ecc_dbe_volatile,
                    )
                )
            return samples

    def dcgm_metrics(self, host: str) -> str:
        """The node's metrics as dcgm-exporter's /metrics endpoint prints them."""
        from simulator.dcgm import render_metrics

        node = self.node(host)
        with self._lock:
            return render_metrics(self, node)

    # state changes used by mutating commands ---------------------------------------

    def drain(self, node: NodeState, reason: str, *, full: bool = True, down: bool = False) -> None:
        """Slurm ``state=drain`` (or ``state=down``: the node is DOWN and its job killed)."""
        node.sched_state = "down" if down else "drained"
        node.drain_reason = reason
        if full or down:
            node.job_running = False  # the job's ranks leave the node (requeued elsewhere)
        self._changed()

    def resume(self, node: NodeState) -> None:
        has_job = self.scenario.cluster.workload is not None and self.scenario.cluster.workload.kind != "none"
        node.sched_state = "allocated" if has_job else "idle"
        node.drain_reason = ""
        node.job_running = has_job
        self._changed()

    def restart_service(self, node: NodeState, unit: str) -> None:
        node.services[unit] = "active"
        if unit == "chronyd":
            node.ntp_offset_s = 0.0  # chronyd steps the clock at start (makestep)
            node.ntp_synced = True
        if unit == "nvidia-persistenced":
            for g in node.gpus:
                g.persistence = True
        self._changed()

    def remove_shm(self, node: NodeState, name: str) -> None:
        node.shm_files.pop(name, None)
        self._changed()

    # ------------------------------------------------------------------ internals

    def _changed(self) -> None:
        self._version += 1
        self._reading_cache.clear()

    def _apply_due_faults(self) -> None:
        for i, fault in enumerate(self.scenario.faults):
            if i in self._applied or fault.at_s > self.time_s:
                continue
            self._applied.add(i)
            targets = [self.nodes[fault.node]] if fault.node is not None else list(self.nodes.values())
            for node in targets:
                apply_fault(node, fault, max(fault.at_s, 0.0) if fault.at_s else self.time_s - 60.0,
                            scenario=self.scenario)
            self._changed()

    def reading(self, node: NodeState, g: GpuState) -> GpuReading:
        tick = int(self.time_s)
        key = (node.name, g.index)
        hit = self._reading_cache.get(key)
        if hit is not None and hit[0] == self._version and hit[1] == tick:
            return hit[2]
        busy = node.job_running
        fraction = 1.0
        job = self._job() if busy else None
        if job is not None:
            i = job.rank_of.get((node.name, g.index))
            if i is not None:
                local = job.local_s[i] + job.node_extra_s.get(node.name, 0.0)
                fraction = min(1.0, (local + job.comm_s * 0.5) / job.step_time_s)
        r = gpu_reading(self.scenario.seed, node, g, tick, busy=busy, busy_fraction=fraction)
        self._reading_cache[key] = (self._version, tick, r)
        return r

    def _xid_count(self, node: NodeState, g: GpuState) -> int:
        tag = f"NVRM: Xid (PCI:{g.xid_bus})"
        return sum(1 for e in node.kernel_log if e.t <= self.time_s and e.text.startswith(tag))
