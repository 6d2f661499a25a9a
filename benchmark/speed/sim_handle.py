"""How fast the simulated cluster answers the quick-level checks' commands.

For 64, 256 and 512 nodes x 8 GPUs (one fault injected): time to build the cluster, time to
compute the job's step time, and the per-command latency of ``SimCluster.handle`` over every
command a quick sweep sends to 64 of the nodes; peak Python memory of building the cluster and one sweep (tracemalloc, measured in a separate pass).
Target: well under 1 ms per command on average.

    python -m benchmark.speed.sim_handle [--nodes 64,256,512] [--repeat 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

from diagnostics.checks import CHECKS
from diagnostics.registry import render_commands, validate_params
from simulator import SimCluster
from simulator.scenario import parse_scenario

TARGET_MS = 1.0


def quick_commands(scheduler: str = "slurm") -> list[str]:
    cmds: list[str] = []
    for spec in CHECKS:
        if spec.level != "quick" or any(p.required and p.default is None for p in spec.params):
            continue
        cmds += render_commands(spec, validate_params(spec, None), scheduler=scheduler)
    return cmds


def bench(nodes: int, repeat: int) -> dict[str, float]:
    scenario = parse_scenario({
        "id": f"bench-{nodes}", "seed": 1,
        "cluster": {"nodes": nodes, "gpus_per_node": 8, "gpu": "H100-SXM5-80GB",
                    "workload": {"kind": "llm_training", "model_params": 70e9, "tokens_per_step": 8388608}},
        "faults": [{"kind": "gpu_clock_throttle", "node": scenario_node(nodes), "gpu": 3, "sm_clock_mhz": 300}],
    }, "benchmark")
    t0 = time.perf_counter()
    sim = SimCluster(scenario)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    sim.step_time_s()
    job_s = time.perf_counter() - t0
    cmds = quick_commands()
    lat: list[float] = []
    for _ in range(repeat):
        for host in sim.hosts[:64]:
            for c in cmds:
                t = time.perf_counter()
                sim.handle(host, c)
                lat.append(time.perf_counter() - t)
        sim.advance(1.0)  # new second: telemetry caches refill, as in a periodic sweep
    lat.sort()
    # memory in a separate pass: tracemalloc slows every allocation and would distort the timings
    tracemalloc.start()
    probe = SimCluster(scenario)
    for host in probe.hosts[:64]:
        for c in cmds:
            probe.handle(host, c)
    _cur, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"nodes": nodes, "build_s": build_s, "job_s": job_s, "commands": len(lat),
            "mean_ms": statistics.fmean(lat) * 1e3, "p50_ms": lat[len(lat) // 2] * 1e3,
            "p99_ms": lat[int(len(lat) * 0.99)] * 1e3, "peak_mib": peak / 2**20,
            "slowdown": sim.step_time_s() / sim.baseline_step_time_s()}


def scenario_node(nodes: int) -> str:
    width = max(2, len(str(nodes)))
    return f"node-{min(5, nodes):0{width}d}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", default="64,256,512", help="comma-separated cluster sizes")
    ap.add_argument("--repeat", type=int, default=2, help="passes over the 64 probed nodes")
    args = ap.parse_args(argv)
    sizes = [int(n) for n in args.nodes.split(",") if n.strip()]
    rows = [bench(n, args.repeat) for n in sizes]
    print(f"{'nodes':>6} {'build s':>8} {'job s':>7} {'cmds':>6} {'mean ms':>8} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'peak MiB':>9} {'job x':>6}")
    for r in rows:
        print(f"{r['nodes']:>6} {r['build_s']:>8.3f} {r['job_s']:>7.3f} {r['commands']:>6} {r['mean_ms']:>8.3f} "
              f"{r['p50_ms']:>7.3f} {r['p99_ms']:>7.3f} {r['peak_mib']:>9.1f} {r['slowdown']:>6.2f}")
    worst = max(r["mean_ms"] for r in rows)
    verdict = "OK" if worst < TARGET_MS else "SLOW"
    print(f"summary: SimCluster.handle mean {worst:.3f} ms/command at worst over {','.join(map(str, sizes))} nodes "
          f"(target < {TARGET_MS:g} ms): {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
