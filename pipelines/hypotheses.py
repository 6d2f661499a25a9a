"""Typed hypotheses from any text (alert, job log, kernel log, a log pasted in chat): the signature
catalog's matches and the knowledge base's records, in one shape the agent, the bot and the
attribution benchmark share.

A hypothesis is a lead, never evidence: it names a category, a cause in plain words, the scope,
the fault kind where one exists, and the read-only checks that would confirm it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from diagnostics.faults import normalize_category

log = logging.getLogger("clusterdoc.pipelines")

SEVERITY_WEIGHT = {"critical": 1.2, "error": 1.0, "warning": 0.5, "info": 0.2}


@dataclass(frozen=True)
class Hypothesis:
    source: str  # "signature" | "kb"
    id: str
    title: str
    category: str | None
    cause: str
    scope: str | None = None
    fault_kind: str | None = None
    checks: tuple[str, ...] = ()
    fix: str = ""
    url: str = ""
    line: str = ""  # the text line that matched (signatures)
    weight: float = 1.0
    keywords: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["checks"] = list(self.checks)
        d["keywords"] = list(self.keywords)
        return d


def signature_catalog(extra_files: Sequence[str] = ()) -> Any:
    """The signature catalog (built-in plus operator files), or None when it cannot be loaded."""
    try:
        from diagnostics.signatures import load_catalog

        return load_catalog(list(extra_files))
    except Exception as exc:  # the agent still works from checks alone; say why once
        log.warning("signature catalog unavailable: %s", exc)
        return None


def from_signatures(text: str, catalog: Any = None, *, limit: int = 8) -> list[Hypothesis]:
    """Hypotheses from every signature that matches ``text`` (most severe first)."""
    if not text:
        return []
    catalog = catalog if catalog is not None else signature_catalog()
    if catalog is None:
        return []
    try:
        matches = catalog.match(text)
    except Exception as exc:
        log.warning("signature matching failed: %s", exc)
        return []
    out: list[Hypothesis] = []
    for m in matches[:limit]:
        sig = m.signature
        out.append(Hypothesis(
            source="signature", id=sig.id, title=sig.title, category=normalize_category(sig.category),
            cause=sig.cause, scope=sig.scope, fault_kind=sig.fault_kind, checks=tuple(sig.checks),
            fix=sig.fix, url=sig.source, line=m.first_line, weight=SEVERITY_WEIGHT.get(sig.severity, 0.5),
            keywords=tuple(getattr(sig, "keywords", ()) or ()),
        ))
    return out


def from_kb_hits(hits: Sequence[Any], *, limit: int = 5) -> list[Hypothesis]:
    """Hypotheses from retrieved knowledge records (rank 1 weighs most)."""
    out: list[Hypothesis] = []
    for rank, hit in enumerate(list(hits)[:limit]):
        rec = hit.record
        category = getattr(rec, "category", None)
        keys = [str(k) for k in getattr(rec, "problemkey", []) or []]
        out.append(Hypothesis(
            source="kb", id=str(getattr(rec, "id", "")), title=", ".join(keys[:4]),
            category=normalize_category(category) if category else None, cause=str(getattr(rec, "result", "")),
            fault_kind=getattr(rec, "fault", None),
            checks=tuple(str(c) for c in getattr(rec, "function", []) or [] if c),
            fix=str(getattr(rec, "fix", "") or ""), url=str(getattr(rec, "source", "") or ""),
            weight=round(0.8 / (1 + rank), 3), keywords=tuple(keys[:6]),
        ))
    return out


def expansion_terms(hyps: Sequence[Hypothesis], *, limit: int = 24) -> list[str]:
    """Query expansion for retrieval: a matched signature's title, keywords and cause words."""
    terms: list[str] = []
    for h in hyps:
        if h.source != "signature":
            continue
        terms.extend(h.keywords)
        terms.append(h.title)
    return list(dict.fromkeys(t for t in terms if t))[:limit]


# What a pasted tool's trouble points at (the tool read, not the fault named).
PASTED_TOOL_CATEGORY: dict[str, str] = {
    "nvidia-smi": "gpu-hardware", "nvidia-smi -q": "gpu-hardware", "nvidia-smi csv": "gpu-hardware",
    "nvidia-smi topo": "gpu-hardware", "nvidia-smi nvlink": "gpu-hardware", "dmesg": "other", "journalctl": "other",
    "ibstat": "network", "ibv_devinfo": "network", "df": "storage", "free": "memory", "nccl-tests": "network",
    "chronyc": "configuration", "sinfo": "scheduler", "scontrol": "scheduler", "kubectl": "scheduler",
    "nvidia-smi -q (excerpt)": "gpu-hardware", "ibdev2netdev": "network", "nvidia-smi error": "gpu-hardware",
    "nvidia-smi --query-gpu (no header)": "gpu-hardware", "timedatectl": "configuration",
}


def from_pasted(text: str, *, limit: int = 6) -> list[Hypothesis]:
    """Hypotheses from tool output a user pasted (nvidia-smi tables, ibstat, df, nccl-tests, ...):
    each reading's anomalies, as read by the same parsers the checks use."""
    try:
        from diagnostics.parsers.detect import read_pasted
    except ImportError:
        return []
    try:
        readings = read_pasted(text)
    except Exception as exc:  # reading a paste is an aid; it must never break a diagnosis
        log.warning("reading pasted output failed: %s", exc)
        return []
    out: list[Hypothesis] = []
    for reading in readings:
        tool = str(getattr(reading, "tool", ""))
        category = PASTED_TOOL_CATEGORY.get(tool) or PASTED_TOOL_CATEGORY.get(tool.split()[0] if tool else "", "other")
        for finding in getattr(reading, "findings", [])[:limit]:
            severity = str(getattr(finding, "severity", "warning"))
            if severity not in ("critical", "error", "warning"):
                continue
            out.append(Hypothesis(
                source="pasted", id=f"pasted:{tool}", title=f"pasted {tool} output", category=category,
                cause=str(getattr(finding, "message", "")), scope="gpu" if getattr(finding, "gpu", None) is not None
                else "node", line=str(getattr(reading, "summary", ""))[:300], weight=SEVERITY_WEIGHT.get(severity, 0.5),
            ))
    return out[:limit]
