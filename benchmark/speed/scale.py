"""Scale benchmark: 64 → 2,000 simulated nodes, over real SSH and through a real Prometheus.

    python -m benchmark.speed.scale [--sizes 64,128,256,512,2000] [--no-prometheus] [--concurrency 64]
                                    [--no-batch]

Part 1, SSH: a quick-level sweep of every node (the simulated nodes served over SSH on 127.0.0.1
by a separate process, ``python -m simulator.sshserver``; paramiko on this side, one
reused connection per node, each node's checks as one batch unless ``--no-batch``). Per size,
two sweeps on one executor: "cold" (connecting every node first, what a one-off ``clusterdoc
check`` pays) and "warm" (connections kept, as the bot keeps them): wall time, this process's CPU
per node, peak RSS of this process during the sweeps and of the server, and whether the injected
throttled GPU is among the findings. Parsers are warmed up once before the first size.

Part 2, telemetry: the same cluster's dcgm-exporter endpoints (``simulator.metrics_server``,
bodies rendered once and served from memory, as a native exporter would answer) scraped by a real Prometheus (if the binary is installed); time until every GPU is in the TSDB,
time of one fleet ``samples()`` query and of the early-warning PromQL set, Prometheus RSS, and
whether the early warning names the throttled GPU.

The growth column is time(N) / time(previous N): ~2x per doubling is linear. Last line: summary.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import resource
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

from benchmark.speed.sweep import ServerProcess, warm_parsers
from diagnostics.executors.ssh import SSHConfig, SSHExecutor
from diagnostics.inventory import load_inventory
from diagnostics.registry import default_registry
from diagnostics.toolkit import Toolkit
from diagnostics.types import Status

GPUS_PER_NODE = 8


def node_name(i: int, nodes: int) -> str:
    return f"node-{i:0{max(2, len(str(nodes)))}d}"


def write_scenario(path: Path, nodes: int) -> tuple[str, int]:
    """A cluster of ``nodes`` A800 nodes running one job, one GPU throttled to 200 MHz."""
    bad_node, bad_gpu = node_name(nodes // 2 + 1, nodes), 3
    data = {
        "id": f"scale-{nodes}", "description": f"scale benchmark, {nodes} nodes, one throttled GPU",
        "cluster": {"nodes": nodes, "gpus_per_node": GPUS_PER_NODE, "gpu": "A800-SXM4-80GB",
                    "interconnect": "infiniband", "scheduler": "slurm",
                    "workload": {"kind": "llm_training", "model_params": 7.0e9, "tokens_per_step": 4194304}},
        "seed": 11,
        "faults": [{"kind": "gpu_clock_throttle", "node": bad_node, "gpu": bad_gpu, "sm_clock_mhz": 200,
                    "reason": "hw_thermal_slowdown"}],
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return bad_node, bad_gpu


class PeakRSS:
    """Samples this process's RSS every 50 ms while running (ru_maxrss only ever grows)."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def peak_mib(self) -> float:
        return self.peak / 2**20

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.base) / 2**20


@dataclass
class SSHRow:
    nodes: int
    wall_s: float = 0.0  # cold: connecting included
    warm_wall_s: float = 0.0
    cpu_ms_node: float = 0.0  # this process's CPU per node, cold
    warm_cpu_ms_node: float = 0.0
    commands: int = 0
    failed: int = 0
    client_peak_mib: float = 0.0
    client_growth_mib: float = 0.0
    server_mib: float = 0.0
    found: bool = False
    error: str = ""


@dataclass
class PromRow:
    nodes: int
    series: int = 0
    ready_s: float = 0.0
    samples_s: float = 0.0
    early_warning_s: float = 0.0
    queries: int = 0
    prom_mib: float = 0.0
    render_ms: float = 0.0  # one node's /metrics body, simulator side
    found: bool = False
    false_alarms: int = 0
    error: str = ""
    notes: list[str] = field(default_factory=list)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ssh_sweep(nodes: int, concurrency: int, tmp: Path, batch: bool = True) -> SSHRow:
    row = SSHRow(nodes)
    scenario = tmp / f"scale-{nodes}.yaml"
    bad_node, bad_gpu = write_scenario(scenario, nodes)
    server = ServerProcess(tmp / f"ssh-{nodes}", nodes, 0.0, scenario)
    try:
        inventory = load_inventory(server.inventory_path)
        executor = SSHExecutor(inventory, SSHConfig(use_agent=False, connect_timeout_s=60, reuse_connections=True,
                                                    batch_sweeps=batch))
        toolkit = Toolkit(default_registry(), executor, scheduler="slurm")
        with PeakRSS() as rss:
            for warm in (False, True):
                cpu0, start = _cpu_s(), time.perf_counter()
                report = toolkit.sweep(inventory.names, level="quick", concurrency=concurrency,
                                       tool_params={"gpu_count": {"expected": GPUS_PER_NODE}})
                wall, cpu_ms = time.perf_counter() - start, (_cpu_s() - cpu0) / nodes * 1000
                if warm:
                    row.warm_wall_s, row.warm_cpu_ms_node = wall, cpu_ms
                else:
                    row.wall_s, row.cpu_ms_node = wall, cpu_ms
        executor.close()
        results = report.all_results()
        row.commands = len(results)
        row.failed = sum(1 for r in results if r.status not in (Status.OK, Status.PROBLEM, Status.NO_DATA))
        row.client_peak_mib, row.client_growth_mib = rss.peak_mib, rss.growth_mib
        row.server_mib = server.rss_mib()
        row.found = any(f.kind == "gpu_clock_throttle" and f.host == bad_node and f.gpu == bad_gpu
                        for f in report.findings())
    except Exception as exc:  # report the size as failed and go on with the next
        row.error = f"{type(exc).__name__}: {exc}"[:200]
    finally:
        server.close()
    return row


def prometheus_detection(nodes: int, scrape_interval_s: int, tmp: Path) -> PromRow:
    from diagnostics.telemetry.local import LocalPrometheus
    from simulator import SimCluster
    from simulator.metrics_server import MetricsServer

    row = PromRow(nodes)
    scenario = tmp / f"scale-{nodes}.yaml"
    bad_node, bad_gpu = write_scenario(scenario, nodes)
    sim = SimCluster(str(scenario))
    t0 = time.perf_counter()
    for host in sim.hosts[:16]:
        sim.dcgm_metrics(host)
    row.render_ms = (time.perf_counter() - t0) / min(16, len(sim.hosts)) * 1000
    interval = f"{scrape_interval_s}s"
    try:
        # telemetry frozen at one simulated instant and each node's body rendered once: the
        # simulator's Python rendering must not be what is measured (real exporters are native)
        with MetricsServer(sim, cache_bodies=True) as metrics:
            for host in sim.hosts:
                metrics.render(host)  # fill the body cache before the first scrape
            prom = LocalPrometheus([metrics.scrape_config("dcgm", interval)], workdir=tmp / f"prom-{nodes}",
                                   scrape_interval=interval)
            try:
                _measure(prom, nodes, scrape_interval_s, bad_node, bad_gpu, row)
            finally:
                prom.close()
    except Exception as exc:
        row.error = f"{type(exc).__name__}: {exc}"[:300]
    return row


def _measure(prom: Any, nodes: int, scrape_interval_s: int, bad_node: str, bad_gpu: int, row: PromRow) -> None:
    """Wait until Prometheus holds every GPU, then time one fleet read and the early-warning set."""
    from diagnostics.telemetry import PrometheusClient, PrometheusTelemetrySource, QueryParams

    client = PrometheusClient(prom.url, timeout_s=60)
    source = PrometheusTelemetrySource(client, QueryParams(window=f"{3 * scrape_interval_s}s"))
    start = time.perf_counter()
    want = nodes * GPUS_PER_NODE
    deadline = start + 120
    while time.perf_counter() < deadline:
        if len(source.samples()) >= want:
            break
        time.sleep(0.5)
    else:
        raise TimeoutError(f"Prometheus held fewer than {want} GPUs after 120 s")
    row.ready_s = time.perf_counter() - start
    time.sleep(2 * scrape_interval_s)  # a few points in the smoothing window
    requests0 = client.stats["requests"]
    t = time.perf_counter()
    samples = source.samples()
    row.samples_s = time.perf_counter() - t
    t = time.perf_counter()
    findings = source.early_warnings()
    row.early_warning_s = time.perf_counter() - t
    row.queries = int(client.stats["requests"] - requests0)
    row.series = int(client.query("count({__name__=~\"DCGM_FI_DEV_.*\"})")[0].value)
    row.found = any(f.host == bad_node and f.gpu == bad_gpu and f.kind == "gpu_clock_throttle" for f in findings)
    row.false_alarms = len({(f.host, f.gpu) for f in findings} - {(bad_node, bad_gpu)})
    row.notes = source.notes[:3]
    assert len(samples) == want
    with contextlib.suppress(psutil.Error):
        row.prom_mib = psutil.Process(prom.proc.pid).memory_info().rss / 2**20  # type: ignore[union-attr]


def growth(values: list[float]) -> list[str]:
    out = ["-"]
    for prev, cur in itertools.pairwise(values):
        out.append(f"{cur / prev:.2f}x" if prev > 0 else "-")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.speed.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,128,256,512,2000", help="comma-separated node counts")
    parser.add_argument("--concurrency", type=int, default=64, help="nodes swept at the same time over SSH")
    parser.add_argument("--scrape-interval", type=int, default=5, help="Prometheus scrape interval in seconds")
    parser.add_argument("--no-ssh", action="store_true")
    parser.add_argument("--no-prometheus", action="store_true")
    parser.add_argument("--no-batch", action="store_true", help="one SSH channel per command (the old way)")
    args = parser.parse_args(argv)
    try:
        sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--sizes {args.sizes!r}: expected comma-separated integers such as 64,128")
    if not sizes or min(sizes) < 4:
        parser.error("--sizes: give node counts of at least 4")
    from diagnostics.telemetry.local import PROMETHEUS_BINARIES, find_binary

    has_prom = find_binary(PROMETHEUS_BINARIES) is not None and not args.no_prometheus
    checks = len(default_registry().up_to_level("quick"))
    print(f"scale benchmark: sizes {sizes}, {GPUS_PER_NODE} GPUs/node, {checks} quick checks/node over SSH "
          f"(concurrency {args.concurrency}, {'one channel per command' if args.no_batch else 'batched'}); "
          f"Prometheus: {'yes' if has_prom else 'skipped (binary not found)' if not args.no_prometheus else 'skipped'}")
    if not args.no_ssh:
        print(f"parsers warmed up in {warm_parsers(default_registry()):.1f} s (once per process)")
    ssh_rows: list[SSHRow] = []
    prom_rows: list[PromRow] = []
    with tempfile.TemporaryDirectory(prefix="clusterdoc-scale-") as tmpdir:
        tmp = Path(tmpdir)
        for n in sizes:
            if not args.no_ssh:
                ssh_rows.append(ssh_sweep(n, args.concurrency, tmp, batch=not args.no_batch))
                print(f"  ssh {n} nodes: {ssh_rows[-1].wall_s:.1f} s cold, {ssh_rows[-1].warm_wall_s:.1f} s warm "
                      f"{ssh_rows[-1].error}", flush=True)
            if has_prom:
                prom_rows.append(prometheus_detection(n, args.scrape_interval, tmp))
                print(f"  prometheus {n} nodes: ready {prom_rows[-1].ready_s:.1f} s {prom_rows[-1].error}", flush=True)

    summary: list[str] = []
    if ssh_rows:
        print()
        print("SSH sweep (quick level, real SSH on 127.0.0.1; cold: connecting first, warm: connections kept)")
        header = (f"{'nodes':>6} {'cmds':>6} {'failed':>6} {'cold s':>7} {'growth':>7} {'warm s':>7} {'CPU ms/node':>11} "
                  f"{'warm':>5} {'client MiB':>10} {'+MiB':>6} {'server MiB':>10} {'found':>6}")
        print(header)
        print("-" * len(header))
        grow = growth([r.wall_s for r in ssh_rows])
        for r, g in zip(ssh_rows, grow, strict=True):
            print(f"{r.nodes:>6} {r.commands:>6} {r.failed:>6} {r.wall_s:>7.2f} {g:>7} {r.warm_wall_s:>7.2f} "
                  f"{r.cpu_ms_node:>11.1f} {r.warm_cpu_ms_node:>5.1f} {r.client_peak_mib:>10.0f} "
                  f"{r.client_growth_mib:>6.0f} {r.server_mib:>10.0f} {'yes' if r.found else 'NO':>6}"
                  + (f"  error: {r.error}" if r.error else ""))
        ok = [r for r in ssh_rows if not r.error and r.wall_s > 0]
        if ok:
            per_node_ms = statistics.median(r.wall_s / r.nodes * 1000 for r in ok)
            parts = [f"SSH sweep {r.nodes} nodes {r.wall_s:.1f} s cold / {r.warm_wall_s:.1f} s warm, "
                     f"peak client {r.client_peak_mib:.0f} MiB" for r in ok if r.nodes in (512, 2000) or r is ok[-1]]
            summary.append("; ".join(dict.fromkeys(parts)) + f" ({per_node_ms:.0f} ms/node median cold, "
                           f"found {sum(r.found for r in ok)}/{len(ok)}; targets 512 < 15 s, 2,000 < 60 s)")
    if prom_rows:
        print()
        print(f"Telemetry through Prometheus (scrape every {args.scrape_interval} s; early-warning PromQL set)")
        header = (f"{'nodes':>6} {'series':>7} {'ready s':>8} {'samples s':>9} {'growth':>7} {'warn s':>7} {'growth':>7} "
                  f"{'queries':>7} {'prom MiB':>8} {'render ms':>9} {'found':>6} {'false':>5}")
        print(header)
        print("-" * len(header))
        g_samples = growth([r.samples_s for r in prom_rows])
        g_warn = growth([r.early_warning_s for r in prom_rows])
        for p, gs, gw in zip(prom_rows, g_samples, g_warn, strict=True):
            print(f"{p.nodes:>6} {p.series:>7} {p.ready_s:>8.1f} {p.samples_s:>9.3f} {gs:>7} {p.early_warning_s:>7.3f} "
                  f"{gw:>7} {p.queries:>7} {p.prom_mib:>8.0f} {p.render_ms:>9.2f} {'yes' if p.found else 'NO':>6} "
                  f"{p.false_alarms:>5}" + (f"  error: {p.error}" if p.error else ""))
        ok_p = [p for p in prom_rows if not p.error]
        if ok_p:
            last = ok_p[-1]
            summary.append(f"Prometheus {last.nodes} nodes: early warning {last.early_warning_s:.2f} s, fleet samples "
                           f"{last.samples_s:.2f} s, found {sum(p.found for p in ok_p)}/{len(ok_p)}, "
                           f"false alarms {sum(p.false_alarms for p in ok_p)}")
    print()
    print("summary: " + ("; ".join(summary) if summary else "nothing measured"))
    return 0 if all(not r.error for r in ssh_rows) and all(not r.error for r in prom_rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
