"""Turning a diagnosis into chat: the reasoning graph (text outline + PNG), proposals, results.

The graph comes from the agent as JSON (``{"nodes": [...], "edges": [...]}``); field names are
read tolerantly (``id``/``name``, ``text``/``label``, ``kind``/``role``/``type``,
``source``/``target`` or ``from``/``to``) so a renderer change in the agent never breaks chat.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from pipelines.api import Diagnosis, ExecutionResult, Proposal

ROLE_COLORS = {
    "proposition": "#4C72B0", "propose": "#4C72B0", "hypothesis": "#4C72B0",
    "critique": "#DD8452", "critic": "#DD8452",
    "verification": "#55A868", "verify": "#55A868", "evidence": "#55A868", "tool": "#8C8C8C",
    "summary": "#C44E52", "summarize": "#C44E52", "conclusion": "#C44E52",
}


def _node_id(node: dict[str, Any], index: int) -> str:
    return str(node.get("id", node.get("name", index)))


def _node_role(node: dict[str, Any]) -> str:
    return str(node.get("role") or node.get("kind") or node.get("type") or "node")


def _node_text(node: dict[str, Any]) -> str:
    return str(node.get("text") or node.get("label") or node.get("content") or node.get("summary") or "")


def _edges(graph: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    for node in graph.get("nodes") or []:  # DoT nodes carry their dependencies as refs
        if isinstance(node, dict):
            for ref in node.get("refs") or []:
                out.append((str(ref), str(node.get("id")), "refs"))
    for e in graph.get("edges") or []:
        if isinstance(e, dict):
            src = e.get("source", e.get("from", e.get("src")))
            dst = e.get("target", e.get("to", e.get("dst")))
            label = str(e.get("kind") or e.get("label") or e.get("type") or "")
        elif isinstance(e, list | tuple) and len(e) >= 2:
            src, dst, label = e[0], e[1], str(e[2]) if len(e) > 2 else ""
        else:
            continue
        if src is not None and dst is not None:
            out.append((str(src), str(dst), label))
    return out


def _dot_graph(graph: dict[str, Any]) -> Any:
    """The agent's own ``DotGraph`` when the JSON is one (then its renderers are used)."""
    try:
        from pipelines.dot.graph import DotGraph

        return DotGraph.from_json(graph)
    except Exception:  # another shape, or pipelines.dot absent: the tolerant renderer below
        return None


def graph_outline(graph: dict[str, Any], width: int = 110, limit: int = 40) -> str:
    """An indented text outline of the graph, children under parents, roots first."""
    dot = _dot_graph(graph)
    if dot is not None and dot.nodes:
        from pipelines.dot.render import outline

        lines = outline(dot, width=width, attachments=False).splitlines()
        return "\n".join(lines[:limit] + ([f"… {len(lines) - limit} more lines"] if len(lines) > limit else []))
    return _outline(graph, width, limit)


def _outline(graph: dict[str, Any], width: int, limit: int) -> str:
    nodes = [n for n in graph.get("nodes") or [] if isinstance(n, dict)]
    if not nodes:
        return "(no reasoning graph)"
    by_id = {_node_id(n, i): n for i, n in enumerate(nodes)}
    edges = _edges(graph)
    children: dict[str, list[str]] = {}
    has_parent: set[str] = set()
    for src, dst, _ in edges:
        if src in by_id and dst in by_id:
            children.setdefault(src, []).append(dst)
            has_parent.add(dst)
    roots = [nid for nid in by_id if nid not in has_parent] or list(by_id)[:1]
    lines: list[str] = []
    seen: set[str] = set()

    def walk(nid: str, depth: int) -> None:
        if nid in seen or len(lines) >= limit:
            return
        seen.add(nid)
        node = by_id[nid]
        rnd = node.get("round")
        tag = f"{_node_role(node)}{f' r{rnd}' if rnd is not None else ''}"
        text = " ".join(_node_text(node).split())
        line = f"{'  ' * depth}- [{tag}] {text}"
        lines.append(line if len(line) <= width else line[: width - 1] + "…")
        for child in children.get(nid, []):
            walk(child, depth + 1)

    for root in roots:
        walk(root, 0)
    for nid in by_id:  # nodes only reachable through cycles
        walk(nid, 0)
    if len(seen) < len(by_id):
        lines.append(f"… {len(by_id) - len(seen)} more nodes")
    return "\n".join(lines)


def graph_png(graph: dict[str, Any], title: str = "") -> bytes | None:
    """Render the graph as a PNG (layers by round/role); None when there is nothing to draw."""
    nodes = [n for n in graph.get("nodes") or [] if isinstance(n, dict)]
    if not nodes:
        return None
    dot = _dot_graph(graph)
    if dot is not None:
        import tempfile

        from pipelines.dot.render import render_png

        with tempfile.TemporaryDirectory() as tmp:
            return render_png(dot, Path(tmp) / "graph.png", title=title).read_bytes()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx

    g = nx.DiGraph()
    for i, n in enumerate(nodes):
        g.add_node(_node_id(n, i), role=_node_role(n), text=_node_text(n))
    for src, dst, label in _edges(graph):
        if src in g and dst in g:
            g.add_edge(src, dst, label=label)
    try:
        for layer, group in enumerate(nx.topological_generations(g)):
            for nid in group:
                g.nodes[nid]["layer"] = layer
        pos = nx.multipartite_layout(g, subset_key="layer", align="horizontal")
        pos = {k: (x, -y) for k, (x, y) in pos.items()}
    except nx.NetworkXUnfeasible:  # a cycle: fall back to a spring layout
        pos = nx.spring_layout(g, seed=1)
    height = max(4.0, 1.1 * (1 + max((d.get("layer", 0) for _, d in g.nodes(data=True)), default=0)))
    fig, ax = plt.subplots(figsize=(12, height), dpi=90)
    colors = [ROLE_COLORS.get(d["role"].lower(), "#999999") for _, d in g.nodes(data=True)]
    nx.draw_networkx_nodes(g, pos, ax=ax, node_color=colors, node_size=900, alpha=0.9)
    nx.draw_networkx_edges(g, pos, ax=ax, arrows=True, arrowsize=12, edge_color="#555555")
    labels = {nid: _wrap(f"{d['role']}: {d['text']}", 28, 3) for nid, d in g.nodes(data=True)}
    nx.draw_networkx_labels(g, pos, labels=labels, ax=ax, font_size=7)
    ax.set_title(title or "reasoning graph", fontsize=10)
    ax.axis("off")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _wrap(text: str, width: int, max_lines: int) -> str:
    words, lines, line = text.split(), [], ""
    for w in words:
        if len(line) + len(w) + 1 > width:
            lines.append(line)
            line = w
            if len(lines) == max_lines:
                break
        else:
            line = f"{line} {w}".strip()
    if line and len(lines) < max_lines:
        lines.append(line)
    return "\n".join(lines)


def diagnosis_text(incident_id: int, diagnosis: Diagnosis) -> str:
    cause = diagnosis.cause
    where = " ".join(p for p in (cause.node or "", f"GPU {cause.gpu}" if cause.gpu is not None else "") if p)
    verdict = getattr(diagnosis, "verdict", "verified" if diagnosis.verified else "unexplained")
    if verdict == "clean":
        what = "nothing wrong found"
    else:
        label = cause.fault or (f"{cause.category} problem" if cause.category else "unexplained anomaly")
        wide = f"the {cause.scope}" if cause.scope in ("cluster", "job") and not cause.node else "the cluster"
        what = f"*{label}* on {where or wide}"
    plain = getattr(diagnosis, "plain_summary", "").strip()
    # The plain summary comes first (what is broken, what it costs, what will be done); details after.
    head = (f"Incident #{incident_id}: {plain}\nDetails: {what} — _{verdict}_" if plain
            else f"Incident #{incident_id}: {what} — _{verdict}_")
    tier = getattr(diagnosis, "llm_tier", "none")
    model = diagnosis.llm + (f" ({tier} tier)" if diagnosis.llm != "none" else "")
    lines = [head, diagnosis.summary.strip(), f"confidence {diagnosis.confidence:.0%} · model {model}"]
    if diagnosis.degraded:
        lines.append(f"(evidence-only: {diagnosis.degraded})")
    for ev in diagnosis.evidence[:5]:
        lines.append(f"• {ev.get('host', '')} {ev.get('kind', '')}: {ev.get('message', '')}".rstrip())
    for a in getattr(diagnosis, "anomalies", [])[:5]:
        lines.append(f"• anomaly {a.get('host', '')} {a.get('check', '')}: {a.get('message', '')}".rstrip())
    if getattr(diagnosis, "confirm_with", None):
        lines.append("To confirm: " + ", ".join(diagnosis.confirm_with))
    similar = getattr(diagnosis, "similar", [])[:3]
    if similar:
        lines.append("Similar past incidents:")
        for sim in similar:
            fix = f" — fix: {str(sim.get('fix'))[:100]}" if sim.get("fix") else ""
            seen = " (confirmed here)" if sim.get("confirmed") else " (not confirmed here)"
            lines.append(f"  ◦ {str(sim.get('title'))[:80]}{seen}: {str(sim.get('cause'))[:140]}{fix} <{sim.get('url')}>")
    return "\n".join(line for line in lines if line)


def proposal_text(proposal: Proposal, expiry_s: float) -> str:
    minutes = max(1, round(expiry_s / 60))
    # where each step runs when that needs saying (a Slurm action on the controller), with its exact lines
    where = "".join(f"• on `{s.run_host}`: `{' ; '.join(s.commands)}`\n  ({s.tool}: {s.note})\n"
                    for s in proposal.steps if s.note)
    # what it costs the jobs on the node (pipelines.impact): "stops job …", "no jobs running on …", "unknown: …"
    impact = f"Jobs: {proposal.impact.text}\n" if proposal.impact is not None and proposal.impact.text else ""
    return (
        f"Proposal `{proposal.id}` ({proposal.risk} risk): {proposal.title}\n{impact}"
        f"hash `{proposal.hash[:16]}`\n{where}"
        f"React ✅ to approve (approvers only), ❌ to reject. Expires in {minutes} min."
    )


def proposal_code(proposal: Proposal) -> str:
    body = "\n".join(proposal.commands())
    if proposal.script:
        body = f"{body}\n# script\n{proposal.script}" if body else proposal.script
    return body


def result_text(proposal: Proposal, result: ExecutionResult) -> str:
    lines = [f"Proposal `{proposal.id}` executed: {'ok' if result.ok else 'FAILED'}"]
    for step in result.step_results[:10]:
        lines.append(f"• {step.get('tool', '')} on {step.get('host', '')}: {step.get('status', '')} {step.get('error', '')}".rstrip())
    if result.verification is not None:
        v = result.verification
        outcome = "verified ✅" if result.verified else "NOT verified ❌"
        lines.append(f"Verification {v.get('tool', '')} on {v.get('host', '')}: {v.get('status', '')} → {outcome}")
    else:
        lines.append("Verification: none ran" + ("" if result.ok else " (steps failed)"))
    if result.message:
        lines.append(result.message)
    return "\n".join(lines)
