"""`perf check` (moved up from perf: it opens clusters and runs tools): collect telemetry from a live or simulated cluster and run the perf detectors.

Telemetry comes through ``diagnostics.toolkit.Toolkit`` (the read-only checks ``gpu_clocks``,
``gpu_power``, ``gpu_temperature`` and ``job_step_times``) so the same code path serves real nodes
over SSH and the simulator, through pipelines.runtime.open_target.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from diagnostics.types import ClusterdocError, Finding, ToolResult
from perf.detectors import GpuSample, detect_stragglers, expected_vs_observed, number
from perf.workload import StepPrediction, predict_training_step

TELEMETRY_TOOLS = ("gpu_clocks", "gpu_power", "gpu_temperature")

# the names the checks' parsed data may use for each GpuSample field
_ALIASES: dict[str, tuple[str, ...]] = {
    "sm_clock_mhz": ("sm_clock_mhz", "clocks_sm_mhz", "sm_mhz", "clock_sm_mhz", "clocks.sm", "sm_clock"),
    "max_sm_clock_mhz": ("max_sm_clock_mhz", "clocks_max_sm_mhz", "max_sm_mhz", "clocks.max.sm", "max_sm_clock"),
    "power_w": ("power_w", "power_draw_w", "power.draw", "power_draw"),
    "power_limit_w": ("power_limit_w", "enforced_power_limit_w", "power.limit", "enforced_power_limit", "power_limit"),
    "temp_c": ("temp_c", "temperature_c", "temperature.gpu", "gpu_temp_c", "temperature"),
    "util_pct": ("util_pct", "utilization_pct", "utilization.gpu", "gpu_util_pct", "utilization"),
}


@dataclass
class CheckInputs:
    inventory: str | None = None
    scenario: str | None = None
    gpu: str | None = None
    n_gpus: int | None = None
    model_params: float | None = None
    tokens_per_step: float | None = None
    precision: str | None = None
    interconnect: str | None = None


@dataclass
class CheckResult:
    samples: list[GpuSample]
    findings: list[Finding]
    prediction: StepPrediction | None = None
    observed_step_s: float | None = None
    step_times: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _gpu_rows(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    for key in ("gpus", "per_gpu", "devices"):
        rows = data.get(key)
        if isinstance(rows, list):
            return [r for r in rows if isinstance(r, Mapping)]
        if isinstance(rows, Mapping):  # {"0": {...}, "1": {...}}
            return [dict(v, index=k) for k, v in rows.items() if isinstance(v, Mapping)]
    return []


def samples_from_results(results: Iterable[ToolResult], t: float = 0.0) -> list[GpuSample]:
    """Merge the per-GPU rows of the telemetry checks into one GpuSample per (host, gpu)."""
    merged: dict[tuple[str, int], dict[str, Any]] = {}
    for result in results:
        for row in _gpu_rows(result.data):
            index = number(row.get("index", row.get("gpu")))
            if index is None:
                continue
            fields = merged.setdefault((result.host, int(index)), {})
            for name, aliases in _ALIASES.items():
                for alias in aliases:
                    if alias in row and fields.get(name) is None:
                        fields[name] = number(row[alias])
                        break
    return [GpuSample(host=h, gpu=g, t=t, **f) for (h, g), f in sorted(merged.items())]


def step_times_from_results(results: Iterable[ToolResult]) -> dict[str, float]:
    """Per-rank local step time (``"host:gpu"`` -> seconds) from ``job_step_times`` results.

    A synchronous job's ranks all *finish* a step together, so the useful per-rank figure is the
    time each spends on its own work before waiting at the all-reduce (``rank_compute_s``); the
    plain per-rank step time is the fallback. ``ranks`` maps rank ids to their host and GPU."""
    out: dict[str, float] = {}
    for result in results:
        data = result.data
        names: dict[str, str] = {}
        ranks = data.get("ranks")
        if isinstance(ranks, Mapping):
            for rank, where in ranks.items():
                if isinstance(where, Mapping) and "host" in where:
                    names[str(rank)] = f"{where['host']}:{where.get('gpu', rank)}"
        per_rank = next((data[k] for k in ("rank_compute_s", "rank_step_time_s", "step_times")
                         if isinstance(data.get(k), Mapping)), None)
        if per_rank is None and isinstance(ranks, Mapping):
            per_rank = ranks  # {label: seconds} or {label: {"step_time_s": …}}
        if isinstance(per_rank, Mapping):
            for rank, value in per_rank.items():
                v = number(value.get("step_time_s") if isinstance(value, Mapping) else value)
                if v is not None:
                    out[names.get(str(rank), str(rank))] = v
        elif isinstance(ranks, list):
            for i, row in enumerate(ranks):
                if isinstance(row, Mapping):
                    label = row.get("rank", row.get("label", f"{result.host}:{row.get('gpu', i)}"))
                    v = number(row.get("step_time_s", row.get("seconds")))
                else:
                    label, v = f"{result.host}:{i}", number(row)
                if v is not None:
                    out[str(label)] = v
    return out


def observed_step(results: Iterable[ToolResult], step_times: Mapping[str, float]) -> float | None:
    for result in results:
        for key in ("step_time_s", "job_step_time_s", "observed_step_s"):
            v = number(result.data.get(key))
            if v is not None and v > 0:
                return v
    return max(step_times.values()) if step_times else None  # synchronous: the slowest rank sets the pace


class PerfProbe:
    """A live (inventory, over SSH) or simulated (scenario) cluster, polled through the Toolkit."""

    def __init__(self, inputs: CheckInputs) -> None:
        from pipelines.runtime import open_target

        self.model: dict[str, Any] = {
            "gpu": inputs.gpu, "n_gpus": inputs.n_gpus, "model_params": inputs.model_params,
            "tokens_per_step": inputs.tokens_per_step, "precision": inputs.precision,
            "interconnect": inputs.interconnect,
        }
        if inputs.scenario:
            target = open_target("scenario", inputs.scenario)
        elif inputs.inventory:
            target = open_target("inventory", inputs.inventory)
        else:
            raise ClusterdocError("perf check needs --inventory FILE or --scenario FILE")
        self.target = target
        self.sim: Any = target.sim
        self.hosts = list(target.cluster.hosts)
        _default(self.model, "gpu", target.cluster.gpu_model)
        if target.cluster.gpus_per_node:
            _default(self.model, "n_gpus", len(self.hosts) * target.cluster.gpus_per_node)
        scenario = target.scenario
        if scenario is not None:
            _default(self.model, "interconnect", scenario.cluster.interconnect)
            workload = scenario.cluster.workload
            if workload is not None and workload.kind == "llm_training":
                _default(self.model, "model_params", workload.model_params)
                _default(self.model, "tokens_per_step", workload.tokens_per_step)
                _default(self.model, "precision", workload.precision)
        self.executor = target.executor
        self.toolkit = target.toolkit

    def now(self) -> float:
        return float(self.sim.time_s) if self.sim is not None else time.time()

    def poll(self, *, steps: bool = True) -> tuple[list[GpuSample], list[ToolResult], list[str]]:
        """(GPU samples, job_step_times results, notes) from one pass over every host."""
        failures: dict[str, list[str]] = {}  # "tool: status error" -> hosts, so 100 nodes give one note
        telemetry: list[ToolResult] = []
        step_results: list[ToolResult] = []
        tools = (*TELEMETRY_TOOLS, "job_step_times") if steps else TELEMETRY_TOOLS
        for host in self.hosts:
            for tool in tools:
                result = self.toolkit.run(tool, host)
                if result.status.value in ("ok", "problem"):
                    (step_results if tool == "job_step_times" else telemetry).append(result)
                elif result.status.value != "no_data":
                    why = f"{tool}: {result.status.value} {result.error.split(';')[0]}".strip()
                    failures.setdefault(why, []).append(host)
        notes = []
        for why, where in failures.items():
            shown = ", ".join(where[:5]) + (f" and {len(where) - 5} more" if len(where) > 5 else "")
            notes.append(f"{why} (on {shown})")
        samples = samples_from_results(telemetry, t=self.now())
        if not samples and self.sim is not None:
            samples = [s for h in self.hosts for s in self.sim.gpu_samples(h)]
            notes.append("telemetry checks returned no per-GPU rows; used the simulator's samples directly")
        return samples, step_results, notes

    def wait(self, seconds: float) -> None:
        """Let time pass: simulated time in a scenario, real time on a live cluster."""
        if self.sim is not None:
            self.sim.advance(seconds)
        else:
            time.sleep(seconds)

    def slowdown_temp_c(self) -> float:
        if self.model.get("gpu"):
            from perf.catalog import get_gpu

            return float(get_gpu(self.model["gpu"]).slowdown_temp_c)
        return 87.0

    def close(self) -> None:
        self.target.close()


def run_check(inputs: CheckInputs) -> CheckResult:
    """One pass: stragglers among the GPUs and ranks, and the job's step time against the model."""
    source = PerfProbe(inputs)
    try:
        samples, step_results, notes = source.poll()
        observed_sim = source.sim.step_time_s() if source.sim is not None else None
    finally:
        source.close()
    model = source.model
    step_times = step_times_from_results(step_results)
    observed = observed_step(step_results, step_times) or observed_sim or None

    findings = detect_stragglers(samples, step_times=step_times, slowdown_temp_c=source.slowdown_temp_c(),
                                 notes=notes)
    prediction = None
    if all(model.get(k) for k in ("gpu", "n_gpus", "model_params", "tokens_per_step")):
        prediction = predict_training_step(
            model["gpu"], int(model["n_gpus"]), float(model["model_params"]), float(model["tokens_per_step"]),
            precision=model.get("precision") or "bf16", interconnect=model.get("interconnect") or "infiniband",
        )
        if observed is not None:
            clocks = [s.sm_clock_mhz for s in samples]
            peak = max((m for s in samples if (m := number(s.max_sm_clock_mhz)) is not None), default=None)
            findings += expected_vs_observed(prediction, observed, sm_clocks_mhz=clocks or None,
                                             max_sm_clock_mhz=peak, host="job", notes=notes)
        else:
            notes.append("no job step time available: expected-vs-observed skipped")
    else:
        notes.append("no workload given (--gpu --gpus --model-params --tokens-per-step): model comparison skipped")
    return CheckResult(samples, findings, prediction, observed, step_times, notes)


def watch(
    inputs: CheckInputs,
    *,
    samples: int,
    interval_s: float,
    on_warning: Callable[[int, Finding], None] | None = None,
) -> tuple[list[Finding], list[str]]:
    """Poll telemetry ``samples`` times, ``interval_s`` apart, through the early-warning detector."""
    from perf.detectors import EarlyWarning, EarlyWarningConfig

    if samples < 1:
        raise ClusterdocError(f"--samples must be >= 1, got {samples}")
    if not interval_s > 0:
        raise ClusterdocError(f"--interval-s must be > 0, got {interval_s}")
    source = PerfProbe(inputs)
    early = EarlyWarning(EarlyWarningConfig(slowdown_temp_c=source.slowdown_temp_c()))
    fired: list[Finding] = []
    poll_notes: dict[str, None] = {}
    try:
        for i in range(samples):
            tick, _steps, notes = source.poll(steps=False)
            poll_notes.update(dict.fromkeys(notes))
            for finding in early.update(tick):
                fired.append(finding)
                if on_warning is not None:
                    on_warning(i + 1, finding)
            if i + 1 < samples:
                source.wait(interval_s)
    finally:
        source.close()
    return fired, [*poll_notes, *early.notes.lines()]


def _default(model: dict[str, Any], key: str, value: Any) -> None:
    if model.get(key) is None and value is not None:
        model[key] = value
