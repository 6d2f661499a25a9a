"""SimCluster: a scenario's cluster, answering shell commands the way real nodes would.

``handle(host, command)`` takes the exact command line an executor would send over SSH: ``$(…)``
substitutions, ``;``/``&&``/``||`` sequences, pipes into a few filters (grep, head, tail, wc,
sort, uniq, tr) and ``2>/dev/null`` redirections are understood; the program is dispatched by
name (nvidia-smi in ``nvsmi.py``, the rest in ``hosttools.py``). Unknown programs answer
``bash: X: command not found`` with exit code 127, as bash does.

The training job's step time comes from ``perf.workload.predict_training_step`` fed with every
GPU's effective SM clock and the job's effective bus bandwidth and latency, so a fault changes
the step time the way the performance model says it should.
"""

from __future__ import annotations

import re
import shlex
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from diagnostics.types import CommandResult
from simulator import health_tools, hosttools, nvsmi
from simulator.scenario import Scenario, load_scenario
from simulator.state import (
    GpuState,
    NodeState,
    apply_fault,
    build_nodes,
    stable_uniform,
)
from simulator.telemetry import GpuReading, gpu_reading

EPOCH = datetime(2026, 11, 28, 9, 40, 0, tzinfo=UTC)  # simulated wall clock at time 0
_SUBST = re.compile(r"\$\(([^()]*)\)|`([^`]*)`")
_FILTERS = ("grep", "egrep", "head", "tail", "wc", "sort", "uniq", "tr", "cut")


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


class SimCluster:
    TRAIN_LOG = "/var/log/clusterdoc/train.log"

    def __init__(self, scenario: Scenario | str) -> None:
        if isinstance(scenario, str):
            scenario = load_scenario(scenario)
        self.scenario = scenario
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

    def drain(self, node: NodeState, reason: str, *, full: bool = True) -> None:
        node.sched_state = "drained"
        node.drain_reason = reason
        if full:
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

    # ------------------------------------------------------------------ shell

    def _run_line(self, node: NodeState, line: str) -> tuple[int, str, str]:
        line = self._substitute(node, line)
        try:
            lex = shlex.shlex(line, posix=True, punctuation_chars=";&|<>")
            lex.whitespace_split = True
            lex.commenters = ""
            tokens = list(lex)
        except ValueError as exc:
            return 2, "", f"bash: syntax error: {exc}\n"
        # sequences: split on ; && ||
        rc, out_all, err_all = 0, [], []
        seq: list[str] = []
        op = ";"
        for tok in [*tokens, ";"]:
            if tok in (";", "&&", "||", "&", ";;"):
                if seq:
                    run = op == ";" or (op == "&&" and rc == 0) or (op == "||" and rc != 0)
                    if run:
                        rc, out, err = self._run_pipeline(node, seq)
                        out_all.append(out)
                        err_all.append(err)
                seq = []
                op = tok if tok in ("&&", "||") else ";"
            else:
                seq.append(tok)
        return rc, "".join(out_all), "".join(err_all)

    def _substitute(self, node: NodeState, line: str) -> str:
        line = line.replace("${HOSTNAME}", node.name).replace("$HOSTNAME", node.name)
        for _ in range(8):
            m = _SUBST.search(line)
            if m is None:
                break
            inner = m.group(1) if m.group(1) is not None else m.group(2)
            _rc, out, _err = self._run_line(node, inner)
            line = line[: m.start()] + out.strip() + line[m.end():]
        return line

    def _run_pipeline(self, node: NodeState, tokens: list[str]) -> tuple[int, str, str]:
        stages: list[list[str]] = [[]]
        for tok in tokens:
            if tok == "|":
                stages.append([])
            else:
                stages[-1].append(tok)
        rc, out, err = 0, "", ""
        for i, stage in enumerate(stages):
            argv, drop_err, merge_err = self._redirections(stage)
            if not argv:
                return 2, out, err + "bash: syntax error near unexpected token `|'\n"
            if i == 0:
                rc, o, e = self._exec(node, argv)
            else:
                rc, o, e = _filter(argv, out)
            if merge_err:
                o, e = o + e, ""
            if drop_err:
                e = ""
            out, err = o, err + e
        return rc, out, err

    @staticmethod
    def _redirections(stage: list[str]) -> tuple[list[str], bool, bool]:
        argv: list[str] = []
        drop_err = merge_err = False
        i = 0
        while i < len(stage):
            tok = stage[i]
            if tok in (">", ">>", ">&", "<"):
                fd = argv.pop() if argv and argv[-1] in ("1", "2") else "1"
                target = stage[i + 1] if i + 1 < len(stage) else ""
                if tok == ">&" or (tok == ">" and target.startswith("&")):
                    merge_err = fd == "2"
                elif target == "/dev/null" and fd == "2":
                    drop_err = True
                i += 2
                continue
            argv.append(tok)
            i += 1
        return argv, drop_err, merge_err

    def _exec(self, node: NodeState, argv: list[str]) -> tuple[int, str, str]:
        while argv and (argv[0] in ("sudo", "env", "nice", "command", "exec") or ("=" in argv[0] and not argv[0].startswith("-"))):
            argv = argv[1:]
            while argv and argv[0].startswith("-") and argv[0] != "-":
                argv = argv[1:]
        if argv and argv[0] == "timeout" and len(argv) > 2:
            argv = argv[2:]
        if not argv:
            return 0, "", ""
        override = node.override_for(" ".join(argv)) if node.overrides else None
        if override is not None:
            if override.hang:
                raise _Hang(" ".join(argv)[:80])
            return override.exit, override.stdout, override.stderr
        prog = argv[0].rsplit("/", 1)[-1]
        args = argv[1:]
        if prog in ("bash", "sh") and len(args) >= 2 and args[0] == "-c":
            return self._run_line(node, args[1])
        if prog == "nvidia-smi":
            ctx = nvsmi.SmiContext(node, lambda g: self.reading(node, g), self.wallclock(self.time_s), self._changed)
            return nvsmi.run(ctx, args)
        healthy = health_tools.health_output(self, node, argv, " ".join(argv))
        if healthy is not None:  # the generic health checks' commands on a node the faults left alone
            text, code = healthy
            return code, text, ""
        handler = hosttools.HANDLERS.get(prog)
        if handler is None:
            if prog in _FILTERS:
                return _filter([prog, *args], "")
            return hosttools.not_found(argv[0])
        return handler(self, node, args)


class _Hang(Exception):
    """A command a custom fault makes hang: the caller gets a timeout, as from a stuck tool."""


def _filter(argv: list[str], text: str) -> tuple[int, str, str]:
    """The few text filters a pipeline may end in."""
    prog, args = argv[0], argv[1:]
    lines = text.splitlines()
    if prog in ("grep", "egrep"):
        flags = "".join(a[1:] for a in args if a.startswith("-") and len(a) > 1)
        patterns = [a for a in args if not a.startswith("-")]
        if not patterns:
            return 2, "", "Usage: grep [OPTION]... PATTERNS [FILE]...\n"
        pat = patterns[0]
        try:
            rx = re.compile(pat if ("E" in flags or prog == "egrep") else _basic_re(pat), re.I if "i" in flags else 0)
        except re.error:
            return 2, "", "grep: Invalid regular expression\n"
        hits = [ln for ln in lines if bool(rx.search(ln)) != ("v" in flags)]
        if "c" in flags:
            return (0 if hits else 1), f"{len(hits)}\n", ""
        return (0 if hits else 1), "".join(h + "\n" for h in hits), ""
    if prog in ("head", "tail"):
        n = 10
        for i, a in enumerate(args):
            if a == "-n" and i + 1 < len(args):
                n = int(args[i + 1].lstrip("+-") or 10)
            elif a.startswith("-n"):
                n = int(a[2:])
            elif a.startswith("-") and a[1:].isdigit():
                n = int(a[1:])
        chosen = lines[:n] if prog == "head" else (lines[-n:] if n else [])
        return 0, "".join(c + "\n" for c in chosen), ""
    if prog == "wc":
        if "-l" in args:
            return 0, f"{len(lines)}\n", ""
        return 0, f"{len(lines):>7} {len(text.split()):>7} {len(text):>7}\n", ""
    if prog == "sort":
        out = sorted(lines, reverse="-r" in args)
        if "-u" in args:
            out = list(dict.fromkeys(out))
        return 0, "".join(o + "\n" for o in out), ""
    if prog == "uniq":
        out = [ln for i, ln in enumerate(lines) if i == 0 or ln != lines[i - 1]]
        return 0, "".join(o + "\n" for o in out), ""
    if prog == "tr":
        sets = [a for a in args if not a.startswith("-")]
        if len(sets) == 2:
            src = sets[0].replace("\\0", "\0").replace("\\n", "\n")
            dst = sets[1].replace("\\0", "\0").replace("\\n", "\n")
            if len(src) == len(dst):
                return 0, text.translate(str.maketrans(src, dst)), ""
        return 1, "", "tr: unsupported arguments\n"
    if prog == "cut":
        delim = "\t"
        fields: list[int] = []
        for i, a in enumerate(args):
            if a == "-d" and i + 1 < len(args):
                delim = args[i + 1]
            elif a.startswith("-d") and len(a) > 2:
                delim = a[2:]
            elif a == "-f" and i + 1 < len(args):
                fields = [int(x) for x in args[i + 1].split(",") if x.isdigit()]
            elif a.startswith("-f") and len(a) > 2:
                fields = [int(x) for x in a[2:].split(",") if x.isdigit()]
        out = [delim.join(p for k, p in enumerate(ln.split(delim), 1) if k in fields) for ln in lines]
        return 0, "".join(o + "\n" for o in out), ""
    return 127, "", f"bash: {prog}: command not found\n"


def _basic_re(pat: str) -> str:
    """grep's basic regular expressions: \\| \\( \\) are the operators, bare ones are literals."""
    out = []
    i = 0
    while i < len(pat):
        ch = pat[i]
        if ch == "\\" and i + 1 < len(pat) and pat[i + 1] in "|()+?{}":
            out.append(pat[i + 1])
            i += 2
            continue
        out.append(re.escape(ch) if ch in "|()+?{}" else ch)
        i += 1
    return "".join(out)
