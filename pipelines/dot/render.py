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


def render_png(graph: DotGraph, path: str | Path, *, title: str = "") -> Path:
    """Draw the DAG left to right by dependency depth; returns the written path."""
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
            pos[nid] = (float(x), -float(y) + (len(layer) - 1) / 2.0)
    width = max(6.0, 2.6 * max(1, len(layers)))
    height = max(3.0, 1.3 * max((len(layer) for layer in layers), default=1))
    fig, ax = plt.subplots(figsize=(min(width, 40), min(height, 30)))
    by_id = {n.id: n for n in graph.nodes}
    labels = {nid: f"{nid} {by_id[nid].kind}\n" + textwrap.fill(textwrap.shorten(by_id[nid].text, 60), 22) for nid in g}
    colors = [_COLORS.get(by_id[nid].kind, "#dddddd") for nid in g]
    if g.number_of_nodes():
        nx.draw_networkx_edges(g, pos, ax=ax, arrows=True, arrowsize=12, edge_color="#555555", node_size=2600)
        nx.draw_networkx_nodes(g, pos, ax=ax, node_color=colors, node_size=2600, edgecolors="#333333")
        nx.draw_networkx_labels(g, pos, labels=labels, ax=ax, font_size=6)
    ax.set_title(title or "Diagram of Thought", fontsize=10)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
