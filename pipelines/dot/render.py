"""Two chat renderings of a DoT graph: a text outline and a PNG (matplotlib Agg + networkx)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from pipelines.dot.graph import DotGraph

_COLORS = {
    "proposition": "#8ecae6",
    "critique": "#ffb703",
    "refinement": "#bde0a8",
    "verification": "#90be6d",
    "summary": "#cdb4db",
}


def outline(graph: DotGraph, *, width: int = 100, attachments: bool = True) -> str:
    """Indented outline: each node under the node it depends on (first reference)."""
    lines: list[str] = []
    depth: dict[str, int] = {}
    for n in graph.ordered():
        d = max((depth.get(r, 0) + 1 for r in n.refs), default=0)
        depth[n.id] = d
        mark = f" [{n.status}]" if n.status else ""
        also = f" (on {', '.join(n.refs)})" if n.refs else ""
        head = f"{'  ' * d}{n.id} {n.kind}{mark}{also}: "
        body = textwrap.shorten(n.text, width=max(20, width - len(head)), placeholder=" …") if n.text else ""
        lines.append(head + body)
        if attachments:
            for a in n.attachments:
                first = a.content.strip().splitlines()[:4]
                lines.append(f"{'  ' * (d + 1)}<{a.tag}>")
                lines.extend(f"{'  ' * (d + 2)}{line[: width - 2 * d]}" for line in first)
    for note in graph.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)


_STATUS_COLORS = {"supported": "#90be6d", "refuted": "#e5989b", "accepted": "#8ecae6", "rejected": "#d9d9d9",
                  "refused": "#f28482", "no change": "#eeeeee"}  # refused / no change: model-led rounds


def _node_color(kind: str, status: str) -> str:
    # A refuted verification must not look like a supported one: status wins over kind.
    return _STATUS_COLORS.get(status, _COLORS.get(kind, "#dddddd"))


def render_png(graph: DotGraph, path: str | Path, *, title: str = "") -> Path:
    """Draw the DAG left to right by dependency depth as labelled boxes; returns the written path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx

    g = graph.to_networkx()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    layers = list(nx.topological_generations(g)) if g.number_of_nodes() else []
    pos: dict[str, tuple[float, float]] = {}
    for x, layer in enumerate(layers):
        for y, nid in enumerate(sorted(layer)):
            pos[nid] = (x * 3.2, -y * 1.6 + (len(layer) - 1) * 0.8)
    tallest = max((len(layer) for layer in layers), default=1)
    fig, ax = plt.subplots(figsize=(min(max(6.0, 3.0 * len(layers)), 40), min(max(2.5, 1.5 * tallest), 30)))
    by_id = {n.id: n for n in graph.nodes}
    boxes = {}
    for nid, (px, py) in pos.items():
        node = by_id[nid]
        head = f"{nid} {node.kind}" + (f" [{node.status}]" if node.status else "")
        body = textwrap.fill(textwrap.shorten(node.text, 90, placeholder=" …"), 30)
        boxes[nid] = ax.text(px, py, f"{head}\n{body}", ha="center", va="center", fontsize=6.5, zorder=2,
                             bbox={"boxstyle": "round,pad=0.4", "fc": _node_color(node.kind, node.status), "ec": "#333333"})
    for a, b in g.edges:
        # patchA/patchB clip the arrow at the boxes' borders at draw time, so the heads stay visible.
        ax.annotate("", xy=pos[b], xytext=pos[a], zorder=1,
                    arrowprops={"arrowstyle": "-|>", "color": "#555555", "lw": 0.8, "shrinkA": 2, "shrinkB": 2,
                                "patchA": boxes[a].get_bbox_patch(), "patchB": boxes[b].get_bbox_patch()})
    if pos:
        xs, ys = [p[0] for p in pos.values()], [p[1] for p in pos.values()]
        ax.set_xlim(min(xs) - 1.6, max(xs) + 1.6)
        ax.set_ylim(min(ys) - 0.9, max(ys) + 0.9)
    ax.set_title(title or "Diagram of Thought", fontsize=10)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
