"""The Diagram-of-Thought graph: typed reasoning nodes joined by dependency edges (a DAG).

Nodes are propositions, critiques, refinements, verifications and summaries. An edge ``a -> b``
says that ``b`` depends on ``a`` (a critique depends on what it criticises). Non-language material
(metric tables, formulas from the performance models, code, log excerpts) rides on a node as
tagged attachments so it never has to be paraphrased into prose.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import networkx as nx

NODE_KINDS: tuple[str, ...] = ("proposition", "critique", "refinement", "verification", "summary")
# Kinds that only make sense pointing at something that already exists.
MUST_REFER: frozenset[str] = frozenset({"critique", "refinement", "verification", "summary"})
ATTACHMENT_TAGS: tuple[str, ...] = (
    "table",
    "formula",
    "code",
    "log",
    "expected",
    "observed",
    "gap",
    "inputs",
    "result",
    "evidence",
    "perf_model",  # perf.xmlreport's block: inputs, formulas, expected/observed, gap, findings
)
_PREFIX = {"proposition": "P", "critique": "C", "refinement": "R", "verification": "V", "summary": "S"}


class DotGraphError(ValueError):
    """A graph that breaks the DAG rules (the message names the node)."""


@dataclass
class Attachment:
    tag: str  # table, formula, code, log, or a perf.xmlreport tag
    content: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DotNode:
    id: str
    kind: str
    text: str
    refs: list[str] = field(default_factory=list)  # ids this node depends on
    attachments: list[Attachment] = field(default_factory=list)
    round: int = 0  # self-play round that produced it (0: outside the loop)
    source: str = "agent"  # "model" (parsed from model output), "agent" (the loop), "evidence"
    status: str = ""  # verification: "supported" | "refuted" | "" ; proposition: "accepted" …

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DotGraph:
    nodes: list[DotNode] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # repairs made while parsing, refusals, cuts

    # ----- building -------------------------------------------------------------------------
    def get(self, node_id: str) -> DotNode | None:
        for n in self.nodes:
            if n.id == node_id:
                return n
        return None

    def new_id(self, kind: str) -> str:
        prefix = _PREFIX.get(kind, "N")
        used = {n.id for n in self.nodes}
        i = sum(1 for n in self.nodes if n.kind == kind) + 1
        while f"{prefix}{i}" in used:
            i += 1
        return f"{prefix}{i}"

    def add(
        self,
        kind: str,
        text: str,
        refs: Iterable[str] = (),
        *,
        attachments: Iterable[Attachment] = (),
        round: int = 0,
        source: str = "agent",
        status: str = "",
        node_id: str | None = None,
    ) -> DotNode:
        """Add a node; refuses (DotGraphError) anything that would break the rules."""
        if kind not in NODE_KINDS:
            raise DotGraphError(f"unknown node kind {kind!r}; one of {', '.join(NODE_KINDS)}")
        refs = [r for r in refs]
        missing = [r for r in refs if self.get(r) is None]
        if missing:
            raise DotGraphError(f"{kind} refers to unknown node(s) {', '.join(missing)}")
        if kind in MUST_REFER and not refs:
            raise DotGraphError(f"a {kind} must refer to an existing node")
        nid = node_id or self.new_id(kind)
        if self.get(nid) is not None:
            raise DotGraphError(f"node id {nid!r} already used")
        node = DotNode(nid, kind, text, refs, list(attachments), round, source, status)
        self.nodes.append(node)
        return node

    def merge(self, other: DotGraph, *, round: int | None = None) -> dict[str, str]:
        """Append another (parsed) graph's nodes, renaming ids that clash. Returns old -> new ids."""
        mapping: dict[str, str] = {}
        for n in other.nodes:
            refs = [mapping.get(r, r) for r in n.refs if mapping.get(r, r) and self.get(mapping.get(r, r))]
            if n.kind in MUST_REFER and not refs:
                self.notes.append(f"dropped {n.kind} {n.id}: it points at nothing in the graph")
                continue
            new = self.add(
                n.kind,
                n.text,
                refs,
                attachments=n.attachments,
                round=n.round if round is None else round,
                source=n.source,
                status=n.status,
            )
            mapping[n.id] = new.id
        self.notes.extend(other.notes)
        return mapping

    # ----- checking -------------------------------------------------------------------------
    def edges(self) -> list[tuple[str, str]]:
        return [(r, n.id) for n in self.nodes for r in n.refs]

    def to_networkx(self) -> nx.DiGraph:
        g = nx.DiGraph()
        for n in self.nodes:
            g.add_node(n.id, kind=n.kind)
        g.add_edges_from(self.edges())
        return g

    def validate(self) -> list[str]:
        """Every problem found (empty when valid): unknown kinds, dangling refs, cycles, dup ids."""
        problems: list[str] = []
        seen: set[str] = set()
        for n in self.nodes:
            if n.id in seen:
                problems.append(f"node id {n.id} used twice")
            seen.add(n.id)
            if n.kind not in NODE_KINDS:
                problems.append(f"node {n.id}: unknown kind {n.kind!r}")
            for r in n.refs:
                if r not in {m.id for m in self.nodes}:
                    problems.append(f"node {n.id} ({n.kind}) points at missing node {r}")
            if n.kind in MUST_REFER and not n.refs:
                problems.append(f"node {n.id}: a {n.kind} must point at an existing node")
        g = self.to_networkx()
        if not nx.is_directed_acyclic_graph(g):
            cycle = nx.find_cycle(g)
            problems.append("cycle: " + " -> ".join(a for a, _ in cycle))
        return problems

    def assert_valid(self) -> None:
        problems = self.validate()
        if problems:
            raise DotGraphError("; ".join(problems))

    # ----- JSON -----------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "nodes": [n.to_dict() for n in self.nodes],
            "edges": [{"from": a, "to": b} for a, b in self.edges()],
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DotGraph:
        """Inverse of ``to_json``; raises DotGraphError naming the bad node."""
        if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
            raise DotGraphError("graph JSON needs a 'nodes' list")
        graph = cls(notes=[str(x) for x in data.get("notes", [])])
        for i, raw in enumerate(data["nodes"]):
            try:
                node = DotNode(
                    id=str(raw["id"]),
                    kind=str(raw["kind"]),
                    text=str(raw.get("text", "")),
                    refs=[str(r) for r in raw.get("refs", [])],
                    attachments=[Attachment(str(a["tag"]), str(a["content"])) for a in raw.get("attachments", [])],
                    round=int(raw.get("round", 0)),
                    source=str(raw.get("source", "agent")),
                    status=str(raw.get("status", "")),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise DotGraphError(f"graph JSON: node #{i} is malformed ({exc})") from exc
            graph.nodes.append(node)
        graph.assert_valid()
        return graph

    def ordered(self) -> list[DotNode]:
        """Nodes in a dependency-respecting order (insertion order breaks ties)."""
        order = {n.id: i for i, n in enumerate(self.nodes)}
        ids = list(nx.lexicographical_topological_sort(self.to_networkx(), key=lambda x: order[x]))
        by_id = {n.id: n for n in self.nodes}
        return [by_id[i] for i in ids]
