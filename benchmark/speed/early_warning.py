"""Early warning vs visible slowdown, on simulated telemetry from the scenario suite.

For every GPU clock-throttle, power-cap and thermal fault in ``scenarios/*.yaml`` (plus one of each
kind derived from the first scenario's cluster, so all three kinds are always covered) the fault
ramps in linearly over ``--ramp`` samples: ``SimCluster`` runs the healthy cluster and the
benchmark turns the fault's knob (locked clock, power limit, forced temperature) a step per sample.
Each sample is ``SimCluster.gpu_samples`` of every node (the simulator's seeded noise); the job's
throughput is the simulated job's own (``SimCluster.step_time_s``, ``simulator.physics``) with the
knob where it is. We count samples from onset until ``perf.detectors.EarlyWarning`` names the
faulted GPU, and until throughput has dropped 10%. The warning must come first in every case.

Then a clean week for 64 GPUs (one sample a minute): false alarms, target fewer than 1.

    python -m benchmark.speed.early_warning [--quick] [--ramp N] [--interval-s S]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from perf.detectors import EarlyWarning, EarlyWarningConfig, GpuSample
from simulator import NodeState, SimCluster
from simulator.scenario import Fault, Scenario, load_scenario

KINDS = ("gpu_clock_throttle", "gpu_power_cap", "gpu_thermal")
REPO = Path(__file__).resolve().parents[2]


@dataclass
class CaseResult:
    name: str
    kind: str
    target: str
    warn_at: int | None
    drop_at: int | None
    warn_kind: str = ""
    wrong_gpu_alarms: int = 0

    @property
    def ok(self) -> bool:
        if self.warn_at is None:
            return False
        return self.drop_at is None or self.warn_at < self.drop_at


def _samples(sim: SimCluster) -> list[GpuSample]:
    return [sample for host in sim.hosts for sample in sim.gpu_samples(host)]


def _step_s(sim: SimCluster) -> float:
    """The simulated job's synchronous step with the fault's knob where it is now."""
    sim._changed()  # the benchmark turns the knob on node state directly: recompute the job
    return sim.step_time_s()


def _apply(node: NodeState, fault: Fault, frac: float, start_temp: float) -> None:
    """The fault at ``frac`` (0..1) of its full strength: the scenario's value, reached linearly."""
    gpu = node.gpus[fault.gpu or 0]
    spec = node.gpu_spec
    if fault.kind == "gpu_clock_throttle":
        target = float(fault.get("sm_clock_mhz"))
        reason = str(fault.get("reason", "hw_slowdown"))
        gpu.locked_sm_mhz = spec.max_sm_clock_mhz + frac * (target - spec.max_sm_clock_mhz)
        gpu.cap_reasons = {reason} | ({"hw_slowdown"} if reason == "hw_thermal_slowdown" else set())
    elif fault.kind == "gpu_power_cap":
        gpu.power_limit_w = spec.default_power_w + frac * (float(fault.get("power_limit_w")) - spec.default_power_w)
    elif fault.kind == "gpu_thermal":
        gpu.forced_temp_c = start_temp + frac * (float(fault.get("temp_c")) - start_temp)


def run_case(scenario: Scenario, fault: Fault, name: str, ramp: int, warmup: int) -> CaseResult:
    # the simulator runs the healthy cluster; the benchmark turns the fault's knob a step per sample
    sim = SimCluster(dataclasses.replace(scenario, faults=()))
    node = sim.node(fault.node or sim.hosts[0])
    ew = EarlyWarning(EarlyWarningConfig(slowdown_temp_c=node.gpu_spec.slowdown_temp_c))
    baseline = _step_s(sim)  # the healthy cluster's step, noise included
    result = CaseResult(name, fault.kind, f"{fault.node} GPU {fault.gpu}", None, None)
    start_temp = 0.0
    for i in range(warmup + 3 * ramp):
        since = i - warmup
        if since == 0:
            start_temp = sim.reading(node, node.gpus[fault.gpu or 0]).temp_c
        if since >= 0:
            _apply(node, fault, min(1.0, (since + 1) / ramp), start_temp)
        samples = _samples(sim)
        for f in ew.update(samples):
            if f.host == fault.node and f.gpu == fault.gpu:
                if result.warn_at is None and since >= 0:
                    result.warn_at, result.warn_kind = since + 1, f.kind
            else:
                result.wrong_gpu_alarms += 1
        if since >= 0 and result.drop_at is None and baseline / _step_s(sim) <= 0.9:
            result.drop_at = since + 1
        if result.warn_at is not None and result.drop_at is not None:
            break
        sim.advance(10.0)  # one sample every 10 simulated seconds
    return result


def cases(paths: Sequence[Path]) -> list[tuple[str, Scenario, Fault]]:
    out = []
    for path in paths:
        scenario = load_scenario(path)
        for fault in scenario.faults:
            if fault.kind in KINDS and fault.node is not None and fault.gpu is not None:
                out.append((path.stem, scenario, fault))
    base = out[0][1] if out else load_scenario(paths[0]) if paths else None
    if base is not None:  # one of each kind on the same cluster, so every kind is always measured
        node = base.cluster.names[min(2, len(base.cluster.names) - 1)]
        spec_power = 0.4  # fraction of the default power limit (about the minimum a driver allows)
        from perf.catalog import get_gpu

        spec = get_gpu(base.cluster.gpu)
        derived = [
            Fault("gpu_clock_throttle", node, 1, {"sm_clock_mhz": 300.0, "reason": "hw_slowdown"}),
            Fault("gpu_power_cap", node, 2, {"power_limit_w": round(spec.default_power_w * spec_power)}),
            Fault("gpu_thermal", node, 4, {"temp_c": float(spec.slowdown_temp_c + 8)}),
        ]
        for fault in derived:
            out.append((f"derived:{fault.kind}", dataclasses.replace(base, faults=(fault,)), fault))
    return out


def clean_week(scenario: Scenario, samples_count: int, interval_s: int) -> tuple[int, int, list[str]]:
    """(false alarms, GPU-samples seen, alarm descriptions) on fault-free telemetry."""
    sim = SimCluster(dataclasses.replace(scenario, faults=()))
    ew = EarlyWarning(EarlyWarningConfig(slowdown_temp_c=sim.node(sim.hosts[0]).gpu_spec.slowdown_temp_c))
    alarms: list[str] = []
    seen = 0
    for _ in range(samples_count):
        samples = _samples(sim)
        seen += len(samples)
        alarms += [f"t={f.data.get('t')} {f.host} GPU {f.gpu} {f.kind} ({f.data.get('signal')})" for f in ew.update(samples)]
        sim.advance(interval_s)
    return len(alarms), seen, alarms


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.speed.early_warning", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one simulated day instead of a week")
    parser.add_argument("--ramp", type=int, default=60, help="samples over which each fault ramps in (default 60)")
    parser.add_argument("--interval-s", type=int, default=60, help="clean-week sampling interval (default 60 s)")
    parser.add_argument("--scenarios", type=Path, default=REPO / "scenarios")
    args = parser.parse_args(argv)
    if args.ramp < 1 or args.interval_s < 1:
        parser.error("--ramp and --interval-s must be >= 1")
    paths = sorted(args.scenarios.glob("*.yaml"))
    if not paths:
        parser.error(f"no scenario files in {args.scenarios}")

    t0 = time.perf_counter()
    print(f"fault ramps over {args.ramp} samples (10 s apart); counts are samples after onset")
    print(f"{'case':38s} {'kind':19s} {'gpu':16s} {'warning':>8s} {'-10% tput':>10s} {'first':>6s} {'fired as':19s}")
    results = []
    for name, scenario, fault in cases(paths):
        r = run_case(scenario, fault, name, args.ramp, warmup=20)
        results.append(r)
        drop = "never" if r.drop_at is None else str(r.drop_at)
        print(f"{name[:38]:38s} {r.kind:19s} {r.target:16s} {r.warn_at if r.warn_at is not None else 'never':>8} "
              f"{drop:>10s} {'warn' if r.ok else 'DROP':>6s} {r.warn_kind:19s}")
    wrong = sum(r.wrong_gpu_alarms for r in results)

    days = 1 if args.quick else 7
    count = days * 86400 // args.interval_s
    base = load_scenario(paths[0])
    base = dataclasses.replace(base, cluster=dataclasses.replace(base.cluster, nodes=8, gpus_per_node=8,
                                                                 names=tuple(f"node-{i:02d}" for i in range(1, 9))))
    alarms, seen, text = clean_week(base, count, args.interval_s)
    print()
    print(f"clean telemetry: {days} day(s), 64 GPUs, {count} samples each ({seen} GPU-samples): {alarms} false alarm(s)")
    for line in text[:10]:
        print(f"  {line}")
    first = sum(r.ok for r in results)
    print(f"(wrong-GPU alarms during fault cases: {wrong}; took {time.perf_counter() - t0:.1f} s)")
    print()
    print(f"early_warning: warning first in {first}/{len(results)} fault cases "
          f"(median lead {_median_lead(results)} samples before a 10% drop); {alarms} false alarm(s) in {days} day(s) x 64 GPUs; "
          f"target all-first and <1: {'PASS' if first == len(results) and alarms < 1 else 'FAIL'}")
    return 0


def _median_lead(results: Sequence[CaseResult]) -> str:
    """Median samples between the warning and the 10% drop, over the cases that did drop."""
    leads = sorted(r.drop_at - r.warn_at for r in results if r.warn_at is not None and r.drop_at is not None)
    return str(leads[len(leads) // 2]) if leads else "n/a"


if __name__ == "__main__":
    raise SystemExit(main())
