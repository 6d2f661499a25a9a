"""Performance-model results as XML-tagged text for the reasoning agent, and the parser back.

The agent's Diagram-of-Thought prompt embeds blocks like::

    <perf_model name="training_step">
    <inputs><input name="gpu" type="str">A800-SXM4-80GB</input> …</inputs>
    <formula name="compute">compute_s = flops_per_gpu / (peak_flops · gemm_efficiency · clock_ratio)</formula>
    <part name="compute" unit="s">12.07</part> …
    <expected unit="s">34.2</expected><observed unit="s">107.2</observed>
    <gap unit="s" ratio="0.319" attributed_to="compute">73.0</gap>
    <finding kind="gpu_clock_throttle" host="node-05" gpu="3">…</finding>
    <note>…</note>
    </perf_model>

Every value is escaped; numbers are written with ``repr`` so that parsing gives back the same float.
``parse_reports`` finds every block inside a longer text and ignores the text around them.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from perf.errors import PerfInputError
from perf.findings import Finding
from perf.workload import StepPrediction

TRAINING_FORMULAS: dict[str, str] = {
    "flops": "flops = 6 · model_params · tokens_per_step + 12 · layers · seq_len · hidden · tokens_per_step",
    "compute": "compute_s = flops / n_gpus / (peak_flops · gemm_efficiency · sm_clock / max_sm_clock)  [slowest GPU]",
    "memory": "memory_s = (activation_bytes + optimizer_bytes) / (hbm_bw · hbm_efficiency)  [not clock-scaled]",
    "comm": "comm_s = 2 (n-1)/n · grad_bytes / bus_bw + buckets · 2 (nodes-1) · hop_latency",
    "overhead": "overhead_s = flops / n_gpus / (peak_flops · healthy_mfu) - (compute + memory + comm) at nominal",
    "step": "step_s = max over GPUs (compute_i + memory + overhead) + comm  [synchronous: all wait for the slowest]",
    "slowdown": "slowdown = share · max_sm_clock / sm_clock + (1 - share), share = compute / step at full clock",
}


@dataclass
class PerfReport:
    """One model evaluation: inputs, formulas, parts and expected vs observed."""

    model: str
    inputs: dict[str, Any] = field(default_factory=dict)  # str | int | float | bool values
    formulas: dict[str, str] = field(default_factory=dict)
    parts: dict[str, float] = field(default_factory=dict)
    expected: float | None = None
    observed: float | None = None
    gap: float | None = None
    gap_attributes: dict[str, str] = field(default_factory=dict)  # e.g. ratio, attributed_to
    unit: str = "s"
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class DotParseError(PerfInputError):
    """A perf block that is not well-formed (the message says where)."""


def _typed(value: Any) -> tuple[str, str]:
    if isinstance(value, bool):
        return "bool", "true" if value else "false"
    if isinstance(value, int):
        return "int", str(value)
    if isinstance(value, float):
        return "float", repr(value)
    return "str", str(value)


def render_report(report: PerfReport) -> str:
    """The XML-tagged text of one report."""
    unit = quoteattr(report.unit)
    lines = [f"<perf_model name={quoteattr(report.model)}>", "<inputs>"]
    for name, value in report.inputs.items():
        kind, text = _typed(value)
        lines.append(f"<input name={quoteattr(name)} type={quoteattr(kind)}>{escape(text)}</input>")
    lines.append("</inputs>")
    for name, text in report.formulas.items():
        lines.append(f"<formula name={quoteattr(name)}>{escape(text)}</formula>")
    for name, seconds in report.parts.items():
        lines.append(f"<part name={quoteattr(name)} unit={unit}>{float(seconds)!r}</part>")
    if report.expected is not None:
        lines.append(f"<expected unit={unit}>{float(report.expected)!r}</expected>")
    if report.observed is not None:
        lines.append(f"<observed unit={unit}>{float(report.observed)!r}</observed>")
    if report.gap is not None:
        attrs = "".join(f" {k}={quoteattr(v)}" for k, v in report.gap_attributes.items())
        lines.append(f"<gap unit={unit}{attrs}>{float(report.gap)!r}</gap>")
    for f in report.findings:
        gpu = "" if f.gpu is None else f" gpu={quoteattr(str(f.gpu))}"
        lines.append(f"<finding kind={quoteattr(f.kind)} host={quoteattr(f.host)}{gpu} "
                     f"severity={quoteattr(f.severity)}>{escape(f.message)}</finding>")
    for note in report.notes:
        lines.append(f"<note>{escape(note)}</note>")
    lines.append("</perf_model>")
    return "\n".join(lines)


_BLOCK = re.compile(r"<perf_model\b.*?</perf_model>", re.DOTALL)


def _value(kind: str, text: str, where: str) -> Any:
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bool":
            if text not in ("true", "false"):
                raise ValueError(text)
            return text == "true"
    except ValueError:
        raise DotParseError(where, f"{text!r} is not a valid {kind}") from None
    return text


def _float(el: ET.Element, where: str) -> float:
    return float(_value("float", (el.text or "").strip(), where))


def parse_reports(text: str) -> list[PerfReport]:
    """Every ``<perf_model>`` block in ``text`` (surrounding prose is ignored)."""
    reports = []
    for index, match in enumerate(_BLOCK.finditer(text)):
        where = f"perf_model block {index + 1}"
        try:
            root = ET.fromstring(match.group(0))
        except ET.ParseError as exc:
            raise DotParseError(where, f"not well-formed XML ({exc})") from None
        report = PerfReport(model=root.get("name", ""))
        for el in root:
            name = el.get("name", "")
            tag_where = f"{where} <{el.tag} name={name!r}>"
            if el.tag == "inputs":
                for inp in el:
                    report.inputs[inp.get("name", "")] = _value(inp.get("type", "str"), inp.text or "",
                                                                f"{where} input {inp.get('name')!r}")
            elif el.tag == "formula":
                report.formulas[name] = el.text or ""
            elif el.tag == "part":
                report.parts[name] = _float(el, tag_where)
                report.unit = el.get("unit", report.unit)
            elif el.tag in ("expected", "observed"):
                setattr(report, el.tag, _float(el, tag_where))
                report.unit = el.get("unit", report.unit)
            elif el.tag == "gap":
                report.gap = _float(el, tag_where)
                report.gap_attributes = {k: v for k, v in el.attrib.items() if k != "unit"}
            elif el.tag == "finding":
                gpu = el.get("gpu")
                report.findings.append(Finding(
                    kind=el.get("kind", ""), host=el.get("host", ""), message=el.text or "",
                    gpu=int(gpu) if gpu is not None and gpu.isdigit() else None,
                    severity=el.get("severity", "warning"),  # type: ignore[arg-type]
                ))
            elif el.tag == "note":
                report.notes.append(el.text or "")
            # unknown tags are ignored: newer writers may add more
        reports.append(report)
    return reports


def report_from_prediction(
    prediction: StepPrediction,
    *,
    observed_step_s: float | None = None,
    findings: Iterable[Finding] = (),
    notes: Iterable[str] = (),
    inputs: Mapping[str, Any] | None = None,
) -> PerfReport:
    """A training-step report: the model's inputs, formulas, parts, and the gap when observed."""
    b = prediction.breakdown
    keys = ("gpu", "n_gpus", "precision", "interconnect", "model_params", "tokens_per_step", "layers", "hidden",
            "seq_len", "peak_flops", "gemm_efficiency", "healthy_mfu", "min_clock_ratio", "hbm_bw_gbs",
            "bus_bw_gbs", "added_latency_ms", "clock_bound_share")
    report = PerfReport(
        model="training_step",
        inputs={k: b[k] for k in keys if k in b} | dict(inputs or {}),
        formulas=dict(TRAINING_FORMULAS),
        parts={"compute": prediction.compute_s, "memory": prediction.memory_s, "comm": prediction.comm_s,
               "overhead": prediction.overhead_s},
        expected=prediction.total_s,
        findings=list(findings),
        notes=list(notes),
    )
    if prediction.slowest_gpu is not None:
        report.inputs["slowest_gpu"] = prediction.slowest_gpu
    if observed_step_s is not None:
        report.observed = float(observed_step_s)
        report.gap = report.observed - prediction.total_s
        report.gap_attributes = {"ratio": f"{prediction.total_s / report.observed:.4g}"}
        for f in report.findings:
            if f.kind == "slow_job" and "attributed_to" in f.data:
                report.gap_attributes["attributed_to"] = str(f.data["attributed_to"])
    return report


def render_prediction(prediction: StepPrediction, **kwargs: Any) -> str:
    return render_report(report_from_prediction(prediction, **kwargs))


def render_findings(findings: Iterable[Finding], notes: Iterable[str] = (), *, model: str = "telemetry") -> str:
    """Detector output alone (stragglers, early warnings) as a ``<perf_model>`` block."""
    return render_report(PerfReport(model=model, findings=list(findings), notes=list(notes)))
