"""Sweep benchmark: 64 simulated nodes over real SSH, quick-level checks.

Each node's checks go out as one batch (one SSH channel, one script: ``SSHConfig.batch_sweeps``,
the default) or one SSH channel per command (the old way). For each mode: all nodes in parallel
and one node at a time, the client's CPU per node (this process only: the simulated nodes run in
a separate process, ``python -m simulator.sshserver``, so server and client do not share a GIL),
and each sweep twice on the same executor: "cold" (connecting first) and "warm" (connections
kept, as the bot keeps them).

    python -m benchmark.speed.sweep [--nodes 64] [--latency-ms 0,50] [--sequential-nodes 8]
                                    [--repeat 2] [--parse-modes] [--echo]

``--latency-ms`` adds a per-command delay on the server (no CPU) to model the tools' own run time:
the simulator answers instantly, while ``nvidia-smi -q`` on a real node takes tens to hundreds of
milliseconds. A node at 50 ms per tool needs ~2.3 s for its 46 quick commands however they are
sent, so one node at a time is timed on ``--sequential-nodes`` nodes and scaled to all of them
(per-node times of a sequential sweep add up). ``--parse-modes`` also times the batched parallel
sweep with each ``Toolkit.sweep(parse=...)`` mode. ``--repeat`` runs everything again (the
machine is shared: quote both). The signature catalog some parsers load once per process (~1-2 s)
is loaded before any timing and reported on its own. The last line is a summary.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import yaml

from diagnostics.executors.ssh import SSHConfig, SSHExecutor
from diagnostics.inventory import load_inventory
from diagnostics.registry import ParseInput, ParseOutput, Registry, ToolSpec, default_registry
from diagnostics.toolkit import Toolkit
from diagnostics.types import CommandResult, Status


@dataclass
class Run:
    name: str
    latency_ms: float
    concurrency: int
    batch: bool
    nodes: int = 0
    parse: str = "thread"
    cold_wall_s: float = 0.0
    warm_wall_s: float = 0.0
    cold_cpu_s: float = 0.0
    warm_cpu_s: float = 0.0
    checks: int = 0
    ok: int = 0
    connects: int = 0
    batches: int = 0
    errors: tuple[str, ...] = ()

    def cpu_ms(self, warm: bool = True) -> float:
        return (self.warm_cpu_s if warm else self.cold_cpu_s) / max(1, self.nodes) * 1000

    def wall(self, nodes: int, warm: bool = True) -> float:
        """Wall time of this run, scaled to ``nodes`` for a sequential run timed on fewer."""
        wall = self.warm_wall_s if warm else self.cold_wall_s
        return wall * nodes / self.nodes if self.concurrency == 1 and self.nodes else wall


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _echo_parse(data: ParseInput) -> ParseOutput:
    return ParseOutput(Status.OK if data.outputs[0].exit_code == 0 else Status.ERROR)


def echo_registry(n: int = 16) -> Registry:
    return Registry(ToolSpec(f"echo_{i:02d}", "echo", "system", "quick", "read_only", (), (f"check {i}",), _echo_parse)
                    for i in range(n))


def bench_scenario(path: Path, nodes: int) -> None:
    data = {
        "id": f"sweep-bench-{nodes}",
        "description": "no-fault control for the sweep benchmark",
        "cluster": {"nodes": nodes, "gpus_per_node": 8, "gpu": "A800-SXM4-80GB",
                    "interconnect": "infiniband", "scheduler": "slurm"},
        "seed": 1,
        "faults": [],
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def real_checks_available() -> bool:
    try:
        checks = importlib.import_module("diagnostics.checks")
        sim = importlib.import_module("simulator")
    except ImportError:
        return False
    return bool(getattr(checks, "CHECKS", None)) and hasattr(sim, "SimCluster")


class ServerProcess:
    def __init__(self, workdir: Path, nodes: int, latency_ms: float, scenario: Path | None) -> None:
        cmd = [sys.executable, "-m", "simulator.sshserver", "--workdir", str(workdir),
               "--latency-ms", str(latency_ms)]
        cmd += [str(scenario)] if scenario else ["--echo-nodes", str(nodes)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("READY "):
            self.close()
            raise RuntimeError(f"simulated SSH server did not start (got {line!r})")
        self.inventory_path = Path(line.split(" ", 1)[1].strip())

    def rss_mib(self) -> float:
        try:
            return psutil.Process(self.proc.pid).memory_info().rss / 2**20
        except psutil.Error:
            return float("nan")

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_sweep(toolkit_args: dict[str, Any], inventory_path: Path, run: Run) -> None:
    """A cold then a warm sweep of ``run.nodes`` nodes on one executor."""
    inventory = load_inventory(inventory_path)
    hosts = inventory.names[:run.nodes]
    executor = SSHExecutor(inventory, SSHConfig(use_agent=False, connect_timeout_s=30, batch_sweeps=run.batch))
    toolkit = Toolkit(executor=executor, **toolkit_args)
    try:
        for warm in (False, True):
            cpu0, start = cpu_s(), time.perf_counter()
            report = toolkit.sweep(hosts, level="quick", concurrency=run.concurrency,
                                   tool_params={"gpu_count": {"expected": 8}}, parse=run.parse)  # type: ignore[arg-type]
            wall, cpu = time.perf_counter() - start, cpu_s() - cpu0
            if warm:
                run.warm_wall_s, run.warm_cpu_s = wall, cpu
            else:
                run.cold_wall_s, run.cold_cpu_s = wall, cpu
        run.checks = report.checks_run
        run.ok = sum(1 for r in report.all_results() if r.status in (Status.OK, Status.PROBLEM, Status.NO_DATA))
        run.connects = executor.stats.connects
        run.batches = executor.stats.batches
        run.errors = tuple(sorted({r.error for r in report.all_results() if r.status not in (
            Status.OK, Status.PROBLEM, Status.NO_DATA)}))
    finally:
        executor.close()


def warm_parsers(registry: Registry) -> float:
    """Parse one output of every check once (lazy catalogs load now, not inside a timing)."""
    start = time.perf_counter()
    for spec in registry.up_to_level("quick"):
        with contextlib.suppress(Exception):
            line = "[Sat Nov 28 09:40:00 2026] warm-up\n"  # a kernel-log line: log checks load the catalog
            spec.parse(ParseInput("warm-up", {}, [CommandResult("warm-up", c, 0, line) for c in spec.commands]))
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.speed.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=64)
    parser.add_argument("--latency-ms", default="0,50", help="comma-separated per-command delays to test")
    parser.add_argument("--sequential-nodes", type=int, default=8,
                        help="nodes a one-at-a-time sweep is timed on (scaled to --nodes)")
    parser.add_argument("--repeat", type=int, default=1, help="run everything this many times")
    parser.add_argument("--parse-modes", action="store_true", help="also time each Toolkit.sweep parse mode")
    parser.add_argument("--echo", action="store_true", help="echo nodes and dummy checks instead of the simulator")
    args = parser.parse_args(argv)
    latencies = [float(x) for x in args.latency_ms.split(",") if x.strip()]
    seq_nodes = max(1, min(args.sequential_nodes, args.nodes))
    use_sim = not args.echo and real_checks_available()
    registry = default_registry() if use_sim else echo_registry()
    toolkit_args = {"registry": registry, "scheduler": "slurm"}
    quick = [s.name for s in registry.up_to_level("quick")]
    mode = "simulator + registry checks" if use_sim else "echo nodes + 16 dummy checks (simulator checks not available)"
    print(f"sweep benchmark: {args.nodes} nodes over SSH on 127.0.0.1, {len(quick)} quick checks per node; {mode}")
    catalog_s = warm_parsers(registry)

    plan: list[tuple[str, int, bool, str]] = [
        ("parallel, batched", args.nodes, True, "thread"),
        ("parallel, one channel per command", args.nodes, False, "thread"),
        ("sequential, batched", 1, True, "thread"),
        ("sequential, one channel per command", 1, False, "thread"),
    ]
    if args.parse_modes:
        plan += [(f"parallel, batched, parse={m}", args.nodes, True, m) for m in ("inline", "after")]
    runs: list[Run] = []
    server_rss = 0.0
    with tempfile.TemporaryDirectory(prefix="clusterdoc-bench-") as tmp:
        scenario = None
        if use_sim:
            scenario = Path(tmp) / "scenario.yaml"
            bench_scenario(scenario, args.nodes)
        for rep in range(args.repeat):
            for latency in latencies:
                server = ServerProcess(Path(tmp) / f"srv-{rep}-{latency:g}", args.nodes, latency, scenario)
                try:
                    for name, conc, batch, parse in plan:
                        run = Run(name, latency, conc, batch, seq_nodes if conc == 1 else args.nodes, parse)
                        run_sweep(toolkit_args, server.inventory_path, run)
                        runs.append(run)
                        print(f"  done: {name} at {latency:g}ms: {run.warm_wall_s:.1f}s warm, "
                              f"{run.cpu_ms():.1f} ms CPU/node", file=sys.stderr, flush=True)
                    server_rss = max(server_rss, server.rss_mib())
                finally:
                    server.close()

    client_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    header = (f"{'run':44} {'latency':>7} {'nodes':>5} {'batches':>7} {'checks':>6} {'ok':>5} {'cold s':>7} "
              f"{'warm s':>7} {'CPU ms/node cold':>16} {'warm':>6}")
    print(header)
    print("-" * len(header))
    for r in runs:
        print(f"{r.name:44} {r.latency_ms:>5g}ms {r.nodes:>5} {r.batches:>7} {r.checks:>6} {r.ok:>5} "
              f"{r.cold_wall_s:>7.2f} {r.warm_wall_s:>7.2f} {r.cpu_ms(warm=False):>16.1f} {r.cpu_ms():>6.1f}")
    for r in runs:
        if r.errors:
            print(f"errors in '{r.name}' at {r.latency_ms:g}ms ({len(r.errors)} distinct): {r.errors[0]}")
    print(f"sequential runs timed on {seq_nodes} nodes, wall times scaled to {args.nodes}; parsers warmed up "
          f"first ({catalog_s:.1f} s, once per process)")
    print(f"peak RSS: client {client_peak:.0f} MiB, server process {server_rss:.0f} MiB")

    def pick(name: str, latency: float) -> list[Run]:
        return [r for r in runs if r.name == name and r.latency_ms == latency]

    summary: list[str] = []
    speedups: list[float] = []
    cpus: list[float] = []
    for latency in latencies:
        for par, seq in zip(pick("parallel, batched", latency), pick("sequential, batched", latency), strict=True):
            speedups += [seq.wall(args.nodes) / par.warm_wall_s] if latency > 0 else []
            old = pick("parallel, one channel per command", latency)
            if latency == 0:
                cpus.append(par.cpu_ms())
            summary.append(
                f"{latency:g}ms: batched CPU {par.cpu_ms():.1f} ms/node warm ({par.cpu_ms(warm=False):.1f} cold) vs "
                f"{old[0].cpu_ms():.1f} per command; parallel {par.warm_wall_s:.2f}s = "
                f"{seq.wall(args.nodes) / par.warm_wall_s:.1f}x sequential")
    cpu_ok = "met" if cpus and max(cpus) <= 20 else "NOT met"
    speed_ok = "met" if speedups and min(speedups) >= 8 else "NOT met" if speedups else "not measured"
    print(f"summary: {args.nodes} nodes, {len(quick)} checks/node; " + "; ".join(summary)
          + f"; targets: client CPU <= 20 ms/node {cpu_ok}, parallel >= 8x sequential at 50 ms/tool {speed_ok}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
