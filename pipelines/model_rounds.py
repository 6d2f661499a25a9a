"""Model-led rounds (capable tier): what the model may cite, and the guards on what it answers.

Each round after the first, a ``capable`` model reads the evidence so far as tagged data, with ids
(graph nodes such as ``P2`` or ``V7``, findings as ``F<n>``), and answers with DoT nodes in its own
words, claims, the next registry checks, retrieval keywords and ``done``. This module holds the
pure parts: the evidence view and its ids, and the vetting of each check the model asks for
(registry name, read-only, hosts in the cluster, typed params without shell metacharacters, not a
repeat, within the budget). The agent (``pipelines.agent``) runs what passes through its normal
``_run_plan`` and records everything refused in the graph.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from diagnostics.registry import SHELL_METACHARACTERS, validate_params
from diagnostics.types import Finding, ValidationError
from pipelines.dot.graph import DotGraph
from pipelines.planner import ClusterInfo, ToolPlan, fill_params

MAX_MODEL_CHECKS = 4  # checks one model answer may ask for
MAX_KEYWORDS = 6
_FINDING_ID = re.compile(r"F(\d{1,5})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class Evidence:
    """The evidence of one round as the model sees it, and what its ids point at."""

    text: str
    node_ids: set[str]  # graph node ids the model may cite
    finding_node: dict[str, str]  # "F<n>" -> the verification node of the check that found it
    findings: dict[str, Finding] = field(default_factory=dict)  # "F<n>" -> the finding
    hypotheses: dict[str, str] = field(default_factory=dict)  # hypothesis node id -> fault kind ("" if none)

    def cite(self, ids: Iterable[Any]) -> tuple[list[str], list[str]]:
        """Graph refs for the cited ids (a finding links to its check's node), and the unknown ids."""
        refs: list[str] = []
        unknown: list[str] = []
        for raw in ids:
            key = str(raw).strip()
            ref = self.finding_node.get(key) or (key if key in self.node_ids else "")
            if not ref:
                unknown.append(key[:20] or "''")
            elif ref not in refs:
                refs.append(ref)
        return refs, unknown


def finding_id(index: int) -> str:
    return f"F{index + 1}"


def build_evidence(graph: DotGraph, findings: Sequence[Finding], finding_node: Mapping[int, str],
                   hypotheses: Mapping[str, str], dropped: Iterable[str] = (), *, max_findings: int = 40) -> Evidence:
    """Every graph node (id, kind, source, status, text) and every warning/critical finding with an
    id, as one text for the ``evidence`` data tag."""
    gone = set(dropped)
    lines = ["graph (hypotheses are leads, not evidence; verification nodes are check results):"]
    for n in graph.nodes:
        tags = [n.kind] + ([n.source] if n.source != "agent" else []) + ([n.status] if n.status else [])
        if n.id in gone:
            tags.append("dropped")
        text = " ".join(n.text.split())[:200]
        lines.append(f"{n.id} [{' '.join(tags)}]: {text}")
    shown: dict[str, str] = {}
    by_id: dict[str, Finding] = {}
    flines: list[str] = []
    for i, f in enumerate(findings):
        node = finding_node.get(i)
        if node is None or f.severity not in ("warning", "critical"):
            continue
        fid = finding_id(i)
        shown[fid] = node
        by_id[fid] = f
        if len(flines) < max_findings:
            gpu = "-" if f.gpu is None else str(f.gpu)
            flines.append(f"{fid} (from {node}) {f.host} gpu={gpu} {f.kind} {f.severity}: {' '.join(f.message.split())[:160]}")
    lines.append("findings:" if flines else "findings: none yet")
    lines.extend(flines)
    if len(shown) > len(flines):
        lines.append(f"... {len(shown) - len(flines)} more finding(s) not listed")
    return Evidence("\n".join(lines), {n.id for n in graph.nodes}, shown, by_id,
                    {k: v for k, v in hypotheses.items() if graph.get(k) is not None})


def clean_keywords(raw: Any) -> list[str]:
    """The model's retrieval keywords: short strings, no control characters, at most six."""
    out: list[str] = []
    for k in raw if isinstance(raw, list) else []:
        if not isinstance(k, str):
            continue
        word = " ".join(_CONTROL.sub(" ", k).split())[:40]
        if word and word.lower() not in {w.lower() for w in out}:
            out.append(word)
    return out[:MAX_KEYWORDS]


def _has_metachar(value: str) -> str:
    return "".join(sorted({c for c in value if c in SHELL_METACHARACTERS}))


def _show(value: Any, limit: int = 60) -> str:
    return repr(value)[:limit]


def tool_lines(specs: Iterable[Any]) -> list[str]:
    """The read-only checks a model may ask for, one line each: name(param:type…) [level]: what."""
    out: list[str] = []
    for s in specs:
        if getattr(s, "level", "quick") == "long":
            continue
        params = ", ".join(f"{p.name}:{p.type}" + ("" if p.required else "?")
                           + (f" one of {'|'.join(p.choices)}" if p.choices else "") for p in s.params)
        out.append(f"{s.name}({params}) [{s.level}]: {' '.join(str(s.description).split())[:90]}")
    return out


def vet_check(item: Any, registry: Any, cluster: ClusterInfo, scope: Sequence[str],
              done_plans: Iterable[tuple[str, tuple[str, ...], str]]) -> tuple[ToolPlan | None, str]:
    """A model's check as a ToolPlan, or (None, why it is refused). Refused: a tool not in the
    registry, a mutating tool, a host outside the cluster, a param the registry's rules refuse or
    any shell metacharacter in a value, and a repeat of a check already run on those hosts."""
    if not isinstance(item, Mapping):
        return None, "not a check object"
    tool = item.get("tool")
    if not isinstance(tool, str) or not tool.strip():
        return None, "no tool named"
    try:
        spec = registry.get(tool)
    except ValidationError:
        return None, f"{_show(tool)} is not a registry check"
    if not spec.read_only:
        return None, f"{tool} changes the node (mutating): only an approved proposal may run it"
    if getattr(spec, "level", "quick") == "long":
        return None, f"{tool} is a long test: it is never run automatically"
    raw_hosts = item.get("hosts") or []
    if not isinstance(raw_hosts, list) or not all(isinstance(h, str) for h in raw_hosts):
        return None, "hosts must be a list of host names"
    hosts = list(dict.fromkeys(h.strip() for h in raw_hosts)) or list(scope)
    known = set(cluster.hosts)
    outside = [h for h in hosts if h not in known] if known else [h for h in hosts if _has_metachar(h)]
    if outside:
        return None, f"host(s) outside the cluster: {', '.join(_show(h, 40) for h in outside[:3])}"
    params = item.get("params") or {}
    if not isinstance(params, Mapping):
        return None, "params must be an object"
    for name, value in params.items():
        if not isinstance(value, str | int | float | bool):
            return None, f"param {_show(name, 30)} must be a string, number or boolean"
        bad = _has_metachar(name) or (_has_metachar(value) if isinstance(value, str) else "")
        if bad:
            return None, f"param {_show(name, 30)} = {_show(value)} contains shell metacharacters {bad!r}"
    try:
        checked = validate_params(spec, params)
    except ValidationError as exc:
        return None, f"params refused by the registry: {str(exc)[:200]}"
    given = {k: checked[k] for k in params if checked.get(k) is not None}
    per_host: dict[str, dict[str, Any]] = {}
    filled = fill_params(spec, cluster, hosts, given.get("gpu") if isinstance(given.get("gpu"), int) else None)
    if filled is not None:  # e.g. ping targets per host, where the model set none
        per_host = {h: {k: v for k, v in p.items() if k not in given} for h, p in filled[1].items()}
        per_host = {h: p for h, p in per_host.items() if p}
    plan = ToolPlan(spec.name, hosts, given, per_host, str(item.get("why") or "")[:160])
    key = plan.key()
    for tool_done, hosts_done, params_done in done_plans:
        if tool_done == key[0] and params_done == key[2] and set(hosts) <= set(hosts_done):
            return None, f"repeat: {spec.name} already ran on {', '.join(hosts[:4])} with these params"
    return plan, ""


__all__ = ["MAX_MODEL_CHECKS", "Evidence", "build_evidence", "clean_keywords", "finding_id", "tool_lines", "vet_check"]
