"""Tolerant parser for the model's XML-tagged reasoning steps.

The model is asked to write steps such as::

    <proposition id="p1">GPU 3 on node-05 is throttled</proposition>
    <critique id="c1" of="p1">the alert names no node; check every GPU's clock</critique>
    <verification id="v1" of="p1" result="supported">gpu_clocks <table>…</table></verification>
    <summary of="v1">node-05 GPU 3 throttled to 200 MHz</summary>

A weak model breaks this in every way: unclosed tags, missing ids, references to nothing,
cycles, stray prose. We never use an XML parser that would reject the whole answer; each step is
recovered or dropped on its own, and every repair leaves a note in ``DotGraph.notes``.
"""

from __future__ import annotations

import html
import re

import networkx as nx

from pipelines.dot.graph import ATTACHMENT_TAGS, MUST_REFER, NODE_KINDS, Attachment, DotGraph, DotNode

_KINDS = "|".join(NODE_KINDS)
_OPEN = re.compile(rf"<\s*({_KINDS})\b([^>]*)>", re.I)
_ATTR = re.compile(r"([a-zA-Z_][\w-]*)\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s\"'>/]+)")
_ATTACH = re.compile(rf"<\s*({'|'.join(ATTACHMENT_TAGS)})\b[^>]*>(.*?)(?:<\s*/\s*\1\s*>|$)", re.I | re.S)
_ANY_TAG = re.compile(r"<\s*/?\s*[a-zA-Z][\w-]*[^>]*>")
MAX_TEXT = 2000  # one step's text kept in the graph (chat stays readable)


def _attrs(raw: str) -> dict[str, str]:
    return {k.lower(): v.strip("\"'") for k, v in _ATTR.findall(raw)}


def parse_dot(text: str, *, round: int = 0, known_ids: set[str] | None = None) -> DotGraph:
    """Parse model output into a valid DotGraph; never raises. ``known_ids`` are nodes of the
    graph this fragment will be merged into (references to them are kept)."""
    graph = DotGraph()
    known = set(known_ids or ())
    opens = list(_OPEN.finditer(text or ""))
    if not opens:
        if text and text.strip():
            graph.notes.append("model output had no DoT steps; ignored")
        return graph
    id_map: dict[str, str] = {}
    pending: list[tuple[DotNode, list[str]]] = []
    for i, m in enumerate(opens):
        kind = m.group(1).lower()
        attrs = _attrs(m.group(2))
        end_of_region = opens[i + 1].start() if i + 1 < len(opens) else len(text)
        region = text[m.end() : end_of_region]
        close = re.search(rf"<\s*/\s*{kind}\s*>", region, re.I)
        if close:
            body = region[: close.start()]
        else:
            body = region
            graph.notes.append(f"{kind} #{i + 1}: closing tag missing; text up to the next step kept")
        attachments = [Attachment(t.lower(), c.strip()) for t, c in _ATTACH.findall(body)]
        prose = _ATTACH.sub(" ", body)
        prose = html.unescape(_ANY_TAG.sub(" ", prose))
        prose = re.sub(r"\s+", " ", prose).strip()[:MAX_TEXT]
        if not prose and not attachments:
            graph.notes.append(f"{kind} #{i + 1}: empty step dropped")
            continue
        raw_id = attrs.get("id", "")
        nid = graph.new_id(kind)
        while nid in known:
            nid = nid + "m"
        if raw_id:
            if raw_id in id_map:
                graph.notes.append(f"{kind} #{i + 1}: id {raw_id!r} reused; renamed {nid}")
            id_map[raw_id] = nid
        refs_raw = re.split(r"[\s,]+", " ".join(attrs.get(k, "") for k in ("of", "refs", "ref", "on", "depends")))
        refs_raw = [r for r in refs_raw if r]
        node = DotNode(
            nid,
            kind,
            prose,
            [],
            attachments,
            round,
            "model",
            attrs.get("result", attrs.get("status", "")).lower(),
        )
        graph.nodes.append(node)
        pending.append((node, refs_raw))
    # Resolve references once every id is known (a model may point forward).
    for node, refs_raw in pending:
        for r in refs_raw:
            target = id_map.get(r) or (r if r in known else None)
            if target is None:
                graph.notes.append(f"{node.kind} {node.id}: reference {r!r} points at nothing; dropped")
            elif target == node.id:
                graph.notes.append(f"{node.kind} {node.id}: refers to itself; dropped")
            elif target not in node.refs:
                node.refs.append(target)
    # A critique (etc.) that points at nothing: attach to the latest earlier node.
    for i, node in enumerate(graph.nodes):
        if node.kind in MUST_REFER and not node.refs and i > 0:
            node.refs.append(graph.nodes[i - 1].id)
            graph.notes.append(f"{node.kind} {node.id}: no valid target; attached to {graph.nodes[i - 1].id}")
    # Break cycles by dropping the edge that closes each one.
    while True:
        local = {n.id for n in graph.nodes}
        g = nx.DiGraph()
        g.add_nodes_from(local)
        g.add_edges_from((r, n.id) for n in graph.nodes for r in n.refs if r in local)
        try:
            cycle = nx.find_cycle(g)
        except nx.NetworkXNoCycle:
            break
        src, dst = cycle[-1][0], cycle[-1][1]
        dst_node = next(n for n in graph.nodes if n.id == dst)
        dst_node.refs.remove(src)
        graph.notes.append(f"cycle broken: dropped edge {src} -> {dst}")
    # Whatever still points at nothing is dropped (repeat: a drop may orphan another node).
    changed = True
    while changed:
        changed = False
        ids = {n.id for n in graph.nodes} | known
        for node in list(graph.nodes):
            node.refs = [r for r in node.refs if r in ids]
            if node.kind in MUST_REFER and not node.refs:
                graph.nodes.remove(node)
                graph.notes.append(f"{node.kind} {node.id}: no valid target; dropped")
                changed = True
                break
    return graph


def graph_to_xml(graph: DotGraph) -> str:
    """The graph in the same tag language (what the model is shown as its own earlier steps)."""
    out = []
    for n in graph.ordered():
        attrs = f' id="{n.id}"'
        if n.refs:
            attrs += f' of="{" ".join(n.refs)}"'
        if n.status:
            attrs += f' result="{n.status}"'
        inner = html.escape(n.text, quote=False)
        for a in n.attachments:
            inner += f"<{a.tag}>{html.escape(a.content, quote=False)}</{a.tag}>"
        out.append(f"<{n.kind}{attrs}>{inner}</{n.kind}>")
    return "\n".join(out)
