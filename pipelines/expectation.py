"""The job's observed step time against what the hardware should give (the perf model).

Peer comparison cannot see a slowdown every GPU shares (a fleet-wide power cap, NCCL on TCP
everywhere): every node looks like its neighbours. The training job itself can: its step time is
compared with ``perf.workload.predict_training_step`` for the cluster's GPUs and the job's model
size and tokens per step (the inventory's ``workload`` or the scenario's), and the gap is laid at
the resources the checks measured (SM clocks from ``gpu_clocks``, bus bandwidth from
``nccl_allreduce``). What no measurement explains is said to be unexplained, with how far each
resource alone would have to fall to explain it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from diagnostics.types import ToolResult
from pipelines.perfcheck import observed_step, samples_from_results, step_times_from_results

# A job below this share of its expected throughput is slow (the perf CLI's default).
SLOW_SHARE = 0.9
# A measured resource that explains at least this share of the gap is named as its cause.
EXPLAINS_SHARE = 0.25
# The checks the comparison reads, run on every node when a slowdown is reported.
EXPECTATION_CHECKS = ("job_step_times", "gpu_clocks")
# Words with which a request reports a slower job (not a crash or a hang).
_SLOWDOWN = re.compile(r"\b(?:slow\w*|throughput|step[ -]?times?|tokens?/s|samples?/s|it/s|mfu|tflops|"
                       r"(?:lower|low|dropped|degraded) (?:speed|performance|utili[sz]ation)|"
                       r"\d+(?:\.\d+)?\s*(?:x|×)\s*slower|of (?:its|the) (?:old |normal |usual )?speed)\b", re.IGNORECASE)


def reports_slowdown(text: str) -> bool:
    """Whether a request speaks of the job running slower than it should (its opening words)."""
    return bool(_SLOWDOWN.search((text or "")[:4000]))
# The resource that explains most of the gap -> the benchmark category it belongs to.
RESOURCE_CATEGORY = {"compute": "thermal-power", "interconnect": "network", "memory": "gpu-hardware"}
# The checks that measure each resource, to name when the gap stays unexplained.
RESOURCE_CHECKS = {"compute": "gpu_clocks", "interconnect": "nccl_allreduce", "memory": "gpu_hbm_bandwidth"}


@dataclass
class Expectation:
    expected_s: float
    observed_s: float
    share: float  # expected / observed: the share of the expected throughput the job gets
    attributed_to: str = ""  # compute | interconnect | memory | unexplained; "" when not slow
    attribution_s: dict[str, float] = field(default_factory=dict)
    implied: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    measured: list[str] = field(default_factory=list)  # the checks whose numbers went in

    @property
    def slow(self) -> bool:
        return self.share < SLOW_SHARE

    @property
    def category(self) -> str | None:
        return RESOURCE_CATEGORY.get(self.attributed_to)

    def text(self) -> str:
        """One sentence with the numbers (a DoT node, the thread message)."""
        w = self.inputs
        head = (f"the job's step takes {self.observed_s:.3g} s; the model expects {self.expected_s:.3g} s for "
                f"{w.get('model_params', 0) / 1e9:.3g}B parameters, {w.get('tokens_per_step', 0):.0f} tokens/step "
                f"on {w.get('n_gpus')} x {w.get('gpu')}: {self.share:.0%} of the expected throughput")
        if not self.slow:
            return head + " (within the expected range)"
        gap = self.observed_s - self.expected_s
        if self.attributed_to in ("", "unexplained"):
            alone = _implied_text(self.implied)
            return (f"{head}; no measurement explains the {gap:.3g} s gap"
                    + (f" (alone, it would take {alone})" if alone else ""))
        share = self.attribution_s.get(self.attributed_to, 0.0)
        rest = self.attribution_s.get("unexplained", 0.0)
        return (f"{head}; {self.attributed_to} explains {share:.3g} s of the {gap:.3g} s gap "
                f"(measured by {', '.join(self.measured) or 'the checks'})"
                + (f", {rest:.3g} s unexplained" if rest >= 0.05 * gap else ""))

    def to_dict(self) -> dict[str, Any]:
        return {"expected_step_s": self.expected_s, "observed_step_s": self.observed_s, "share": self.share,
                "attributed_to": self.attributed_to, "attribution_s": dict(self.attribution_s),
                "implied_if_alone": dict(self.implied), "inputs": dict(self.inputs), "measured": list(self.measured)}


def _implied_text(implied: Mapping[str, Any]) -> str:
    parts = []
    if implied.get("sm_clock_ratio"):
        parts.append(f"SM clocks at {implied['sm_clock_ratio']:.0%} of their maximum")
    if implied.get("bus_bw_gbs"):
        parts.append(f"a bus bandwidth of {implied['bus_bw_gbs']:.3g} GB/s")
    if implied.get("hbm_bw_fraction"):
        parts.append(f"HBM at {implied['hbm_bw_fraction']:.0%} of its bandwidth")
    return " or ".join(parts)


def _bus_bandwidth(results: Sequence[ToolResult]) -> float | None:
    """The slowest measured all-reduce bus bandwidth (the ring runs at its slowest member)."""
    values = []
    for r in results:
        if r.tool == "nccl_allreduce" and r.status.value in ("ok", "problem"):
            v = r.data.get("peak_busbw_gbs")
            if isinstance(v, (int, float)) and v > 0:
                values.append(float(v))
    return min(values) if values else None


def compare(cluster: Any, results: Sequence[ToolResult]) -> Expectation | None:
    """The job's step time against the model; None when the workload, the GPU model or an observed
    step time is missing, or when the model cannot be evaluated (unknown GPU: said by the caller)."""
    workload = getattr(cluster, "workload", None)
    gpu = getattr(cluster, "gpu_model", None)
    per_node = getattr(cluster, "gpus_per_node", None)
    hosts = list(getattr(cluster, "hosts", []) or [])
    if not workload or not gpu or not per_node or not hosts:
        return None
    steps = [r for r in results if r.tool == "job_step_times" and r.status.value in ("ok", "problem")]
    if not steps:
        return None
    observed = observed_step(steps, step_times_from_results(steps))
    if observed is None or observed <= 0:
        return None
    from perf.detectors import expected_vs_observed, number
    from perf.workload import predict_training_step

    n_gpus = len(hosts) * int(per_node)
    inputs = {"gpu": gpu, "n_gpus": n_gpus, "model_params": float(workload["model_params"]),
              "tokens_per_step": float(workload["tokens_per_step"]),
              "precision": workload.get("precision") or "bf16", "interconnect": workload.get("interconnect") or "infiniband"}
    prediction = predict_training_step(gpu, n_gpus, inputs["model_params"], inputs["tokens_per_step"],
                                       precision=inputs["precision"], interconnect=inputs["interconnect"])
    samples = samples_from_results([r for r in results if r.tool == "gpu_clocks"])
    clocks = [s.sm_clock_mhz for s in samples if s.sm_clock_mhz is not None]
    peak = max((m for s in samples if (m := number(s.max_sm_clock_mhz)) is not None), default=None)
    bus = _bus_bandwidth(results)
    measured = (["gpu_clocks"] if clocks else []) + (["nccl_allreduce"] if bus else [])
    found = expected_vs_observed(prediction, observed, threshold=SLOW_SHARE, host="job",
                                 sm_clocks_mhz=clocks or None, max_sm_clock_mhz=peak, measured_bus_bw_gbs=bus)
    share = prediction.total_s / observed
    if not found:
        return Expectation(prediction.total_s, observed, share, inputs=inputs, measured=measured)
    data = found[0].data
    attribution = {k: float(v) for k, v in data["attribution_s"].items()}
    # The measured resource that explains most of the gap leads when it explains a fair share of
    # it; the rest is reported as unexplained (the model's overheads are assumptions, not evidence).
    gap = max(float(data["gap_s"]), 1e-9)
    top = max(("compute", "memory", "interconnect"), key=lambda k: attribution.get(k, 0.0))
    if attribution.get(top, 0.0) < EXPLAINS_SHARE * gap:
        top = "unexplained"
    return Expectation(prediction.total_s, observed, share, top, attribution, dict(data["implied_if_alone"]),
                       inputs, measured)


__all__ = ["EXPECTATION_CHECKS", "RESOURCE_CATEGORY", "RESOURCE_CHECKS", "SLOW_SHARE", "Expectation", "compare",
           "reports_slowdown"]
