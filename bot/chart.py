"""The health report's chart: fleet health per day (healthy / degraded / drained / unreachable),
stacked bars over the last days of stored fleet counts (``bot.fleet.fleet_days``), as a PNG.

Drawn with matplotlib's object API on the Agg canvas (no pyplot state), so it is safe on the
scheduler's thread and costs one small figure per report (``benchmark/speed/report.py``).
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence

STATE_COLORS = (("healthy", "#55A868"), ("degraded", "#DD8452"), ("drained", "#4C72B0"),
                ("unreachable", "#C44E52"))
OTHER_COLOR = "#B0B0B0"  # not checked / unknown


def fleet_chart_png(days: Sequence[tuple[float, dict[str, int]]], title: str = "Fleet health") -> bytes:
    """Stacked bars, one per day (``(epoch seconds, counts)``, oldest first); raises ValueError with no day."""
    if not days:
        raise ValueError("no fleet counts to draw")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = [time.strftime("%m-%d", time.gmtime(at)) for at, _ in days]
    x = list(range(len(days)))
    fig = Figure(figsize=(8.0, 3.4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    bottom = [0] * len(days)
    known = {state for state, _ in STATE_COLORS}
    series = [(state, color, [int(c.get(state, 0)) for _, c in days]) for state, color in STATE_COLORS]
    other = [sum(int(v) for k, v in c.items() if k not in known) for _, c in days]
    if any(other):
        series.append(("not checked / unknown", OTHER_COLOR, other))
    for state, color, values in series:
        ax.bar(x, values, bottom=bottom, color=color, label=state, width=0.8)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=7, rotation=45 if len(days) > 10 else 0)
    ax.set_ylabel("nodes", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_ylim(0, max(max(bottom), 1) * 1.02)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=len(series), loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.88, bottom=0.32)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
