"""Rendering reports: text tables per metric, run comparisons (table + PNG), the ablation table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmark.cases import METRICS

METRIC_TITLES = {
    "A": "Metric A: extraction (strict = hosts, ports and needs-execution all right)",
    "B": "Metric B: diagnostic code generation (pass@1)",
    "C": "Metric C: attribution (multiple choice accuracy)",
    "S": "Metric S: end-to-end scenarios (strict = detected, node, GPU, fault, remediation right)",
}


class ReportError(ValueError):
    """A report file that cannot be read (the message names the file and what is wrong)."""


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) if cells else len(str(h)) for i, h in enumerate(headers)]
    line = "  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join([line, sep, *body])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    if value is None:
        return "-"
    return str(value)


def metric_tables(report: dict[str, Any], *, per_case: bool = False) -> str:
    """One table per metric: its measures, and (``per_case``) one row per case."""
    parts: list[str] = []
    cases = report.get("cases", [])
    for metric in METRICS:
        summary = report.get("metrics", {}).get(metric)
        if not summary:
            continue
        rows: list[list[Any]] = []
        for key, value in summary.items():
            if isinstance(value, dict):
                rows += [[f"{key}.{k}", v] for k, v in value.items()]
            else:
                rows.append([key, value])
        parts.append(METRIC_TITLES[metric] + "\n" + table(["measure", "value"], rows))
        if per_case:
            mine = [c for c in cases if c["metric"] == metric]
            keys = sorted({k for c in mine for k in c.get("sub_scores", {})})
            crow = [[c["id"], c["score"], *[c["sub_scores"].get(k) for k in keys], round(c["seconds"], 2),
                     (c.get("error") or "")[:60]] for c in mine]
            parts.append(table(["case", "score", *keys, "s", "error"], crow))
    skipped = report.get("skipped", []) + report.get("duplicates", [])
    if skipped:
        parts.append(f"{len(skipped)} case(s) skipped:\n" + "\n".join(
            f"  {s['file']}:{s['line']}: {s['id'] or '?'}: {s['field']}: {s['message']}" for s in skipped))
    return "\n\n".join(parts)


def summary_line(report: dict[str, Any]) -> str:
    metrics = report.get("metrics", {})
    scores = " ".join(f"{m}={metrics[m]['score']:.3f}(n={metrics[m]['n']})" for m in METRICS if m in metrics)
    extra = ""
    if "S" in metrics:
        extra = f" unsafe_executed={metrics['S']['unsafe_executed']}"
    return f"bench {report.get('llm')}/{report.get('mode')}: {scores or 'no cases'}{extra} in {report.get('wall_s', 0):.1f}s"


def load_report(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReportError(f"{p}: cannot read: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ReportError(f"{p}: not JSON (line {exc.lineno}: {exc.msg})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
        raise ReportError(f"{p}: not a bench report (no 'metrics' object)")
    return data


def run_label(report: dict[str, Any], path: str | Path | None = None) -> str:
    label = f"{report.get('llm', '?')}/{report.get('mode', '?')}"
    if report.get("model"):
        label += f" ({report['model']})"
    return label if path is None else f"{label} [{Path(path).name}]"


def compare(paths: Sequence[str | Path]) -> tuple[str, list[dict[str, Any]]]:
    """A table of every run's score per metric, and per pair of runs the cases whose score differs."""
    reports = [load_report(p) for p in paths]
    labels = [run_label(r, p) for r, p in zip(reports, paths, strict=True)]
    rows = []
    for label, rep in zip(labels, reports, strict=True):
        metrics = rep["metrics"]
        rows.append([label, *[metrics[m]["score"] if m in metrics else None for m in METRICS]])
    text = table(["run", *METRICS], rows)
    base = {c["id"]: c["score"] for c in reports[0].get("cases", [])}
    diffs = []
    for label, rep in zip(labels[1:], reports[1:], strict=True):
        other = {c["id"]: c["score"] for c in rep.get("cases", [])}
        common = sorted(set(base) & set(other))
        better = [i for i in common if other[i] > base[i]]
        worse = [i for i in common if other[i] < base[i]]
        diffs.append({"run": label, "common": len(common), "better": better, "worse": worse})
        text += (f"\n{label} vs {labels[0]}: {len(common)} common cases, {len(better)} better, "
                 f"{len(worse)} worse" + (f" (worse: {', '.join(worse[:8])}{' …' if len(worse) > 8 else ''})" if worse else ""))
    return text, [{"label": label, "metrics": r["metrics"]} for label, r in zip(labels, reports, strict=True)]


def bar_chart(runs: Sequence[dict[str, Any]], out: str | Path, title: str) -> Path:
    """Grouped bars: one group per metric, one bar per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in METRICS if any(m in r["metrics"] for r in runs)]
    fig, ax = plt.subplots(figsize=(min(16.0, max(7.0, 0.45 * len(metrics) * max(1, len(runs)) + 4)), 4.5))
    width = 0.8 / max(1, len(runs))
    for i, run in enumerate(runs):
        values = [run["metrics"].get(m, {}).get("score", 0.0) for m in metrics]
        xs = [j + (i - (len(runs) - 1) / 2) * width for j in range(len(metrics))]
        bars = ax.bar(xs, values, width, label=run["label"])
        for bar, v in zip(bars, values, strict=True):
            ax.text(bar.get_x() + bar.get_width() / 2, v + 0.01, f"{v:.2f}", ha="center", fontsize=7)
    ax.set_xticks(range(len(metrics)), [f"Metric {m}" for m in metrics])
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("score")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
