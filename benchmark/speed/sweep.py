"""Sweep benchmark: 64 simulated nodes over real SSH, quick-level checks.

Compares, in one run: all nodes in parallel vs one node at a time, and one reused connection per
node vs a new connection per check. The simulated nodes are served by a separate process
(``python -m simulator.sshserver``) so server and client do not share a GIL.

    python -m benchmark.speed.sweep [--nodes 64] [--latency-ms 0,50] [--echo]

``--latency-ms`` adds a per-command delay on the server (no CPU) to model the tools' own run time:
the simulator answers instantly, while ``nvidia-smi -q`` on a real node takes tens to hundreds of
milliseconds. Each value gets its own set of runs. The last line is a summary.
"""

from __future__ import annotations

import argparse
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
from diagnostics.types import Status


@dataclass
class Run:
    name: str
    latency_ms: float
    concurrency: int
    reuse: bool
    wall_s: float = 0.0
    checks: int = 0
    ok: int = 0
    connects: int = 0
    errors: tuple[str, ...] = ()

    @property
    def rate(self) -> float:
        return self.checks / self.wall_s if self.wall_s else 0.0


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
    inventory = load_inventory(inventory_path)
    executor = SSHExecutor(inventory, SSHConfig(reuse_connections=run.reuse, use_agent=False, connect_timeout_s=30))
    toolkit = Toolkit(executor=executor, **toolkit_args)
    start = time.perf_counter()
    report = toolkit.sweep(inventory.names, level="quick", concurrency=run.concurrency,
                           tool_params={"gpu_count": {"expected": 8}})
    run.wall_s = time.perf_counter() - start
    run.checks = report.checks_run
    run.ok = sum(1 for r in report.all_results() if r.status in (Status.OK, Status.PROBLEM, Status.NO_DATA))
    run.connects = executor.stats.connects
    run.errors = tuple(sorted({r.error for r in report.all_results() if r.status not in (
        Status.OK, Status.PROBLEM, Status.NO_DATA)}))
    executor.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.speed.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=64)
    parser.add_argument("--latency-ms", default="0,50", help="comma-separated per-command delays to test")
    parser.add_argument("--echo", action="store_true", help="echo nodes and dummy checks instead of the simulator")
    args = parser.parse_args(argv)
    latencies = [float(x) for x in args.latency_ms.split(",") if x.strip()]
    use_sim = not args.echo and real_checks_available()
    registry = default_registry() if use_sim else echo_registry()
    toolkit_args = {"registry": registry, "scheduler": "slurm"}
    quick = [s.name for s in registry.up_to_level("quick")]
    mode = "simulator + registry checks" if use_sim else "echo nodes + 16 dummy checks (simulator checks not available)"
    print(f"sweep benchmark: {args.nodes} nodes over SSH on 127.0.0.1, {len(quick)} quick checks per node; {mode}")

    runs: list[Run] = []
    server_rss = 0.0
    with tempfile.TemporaryDirectory(prefix="clusterdoc-bench-") as tmp:
        scenario = None
        if use_sim:
            scenario = Path(tmp) / "scenario.yaml"
            bench_scenario(scenario, args.nodes)
        for latency in latencies:
            server = ServerProcess(Path(tmp) / f"srv-{latency:g}", args.nodes, latency, scenario)
            try:
                for name, conc, reuse in (
                    ("parallel, reused connections", args.nodes, True),
                    ("sequential, reused connections", 1, True),
                    ("parallel, new connection per check", args.nodes, False),
                    ("sequential, new connection per check", 1, False),
                ):
                    run = Run(name, latency, conc, reuse)
                    run_sweep(toolkit_args, server.inventory_path, run)
                    runs.append(run)
                    print(f"  done: {name} at {latency:g}ms in {run.wall_s:.1f}s", file=sys.stderr, flush=True)
                server_rss = max(server_rss, server.rss_mib())
            finally:
                server.close()

    client_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    header = f"{'run':38} {'latency':>8} {'conc':>5} {'conns':>6} {'checks':>7} {'ok':>6} {'wall s':>8} {'checks/s':>9} {'speed-up':>9}"
    print(header)
    print("-" * len(header))
    summary: list[str] = []
    for latency in latencies:
        group = {r.name: r for r in runs if r.latency_ms == latency}
        seq = group["sequential, reused connections"]
        for r in group.values():
            print(f"{r.name:38} {r.latency_ms:>6g}ms {r.concurrency:>5} {r.connects:>6} {r.checks:>7} {r.ok:>6} "
                  f"{r.wall_s:>8.2f} {r.rate:>9.0f} {seq.wall_s / r.wall_s:>8.1f}x")
        par = group["parallel, reused connections"]
        par_new = group["parallel, new connection per check"]
        seq_new = group["sequential, new connection per check"]
        summary.append(
            f"{latency:g}ms: parallel/sequential {seq.wall_s / par.wall_s:.1f}x, "
            f"reused/new-conn {seq_new.wall_s / seq.wall_s:.1f}x sequential, {par_new.wall_s / par.wall_s:.1f}x parallel"
        )
    for r in runs:
        if r.errors:
            print(f"errors in '{r.name}' at {r.latency_ms:g}ms ({len(r.errors)} distinct): {r.errors[0]}")
    print(f"peak RSS: client {client_peak:.0f} MiB, server process {server_rss:.0f} MiB")
    target = "met" if all(
        next(r for r in runs if r.latency_ms == lat and r.name.startswith("sequential, reused")).wall_s
        / next(r for r in runs if r.latency_ms == lat and r.name.startswith("parallel, reused")).wall_s >= 8
        for lat in latencies if lat > 0
    ) else "NOT met"
    print(f"summary: {args.nodes} nodes, {len(quick)} checks/node; " + "; ".join(summary)
          + f"; target parallel >= 8x sequential (with tool latency) {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
