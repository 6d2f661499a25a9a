"""Evidence without a model: findings -> ranked candidate causes, and the verifier.

The scoring table (severity x specificity, plus priors) is what lets the agent reach a verified
diagnosis with ``llm = none`` and what overrules a weak model: the model may propose and
critique, but only a cause backed by a check's Finding is ever reported as verified.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from diagnostics.types import Finding
from pipelines.api import Cause
from pipelines.faults import DISRUPTIVE_FAULTS, EXPLAINS, SYMPTOM_KINDS, is_fault

SEVERITY_WEIGHT: dict[str, float] = {"critical": 3.0, "warning": 2.0, "info": 0.0}
SPECIFICITY: dict[str, float] = {"gpu": 1.15, "node": 1.0}
SYMPTOM_FACTOR = 0.3  # a symptom (slow rank, low bus bandwidth) is a lead, not a cause
PRIOR_FACTOR = 0.4  # alert keywords / KB records nudge ties, they never outweigh a critical finding
NAMED_BONUS = 0.8  # the user named this node (or GPU)
EXPLAINED_FACTOR = 0.25  # what remains of a finding another finding explains
DISRUPTIVE_BONUS = 0.3  # a fault that stops jobs outranks one that slows them, all else equal
DERIVED_FACTOR = 0.5  # a peer-comparison outlier alone: real evidence, but weaker than a check's threshold


@dataclass
class Candidate:
    fault: str
    node: str | None
    gpu: int | None
    score: float
    findings: list[Finding] = field(default_factory=list)
    explains: list[Finding] = field(default_factory=list)  # findings this cause accounts for
    explained_by: str = ""  # "fault@node/gpu" of a candidate that accounts for this one
    reasons: list[str] = field(default_factory=list)
    derived: bool = False  # only perf.detectors' peer comparison shows it (no check threshold did)

    @property
    def cause(self) -> Cause:
        return Cause(self.fault, self.node, self.gpu)

    @property
    def is_symptom(self) -> bool:
        return self.fault in SYMPTOM_KINDS or not is_fault(self.fault)

    def label(self) -> str:
        where = self.node or "cluster"
        if self.gpu is not None:
            where += f" GPU {self.gpu}"
        return f"{self.fault} on {where}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "fault": self.fault,
            "node": self.node,
            "gpu": self.gpu,
            "score": round(self.score, 3),
            "findings": [f.to_dict() for f in self.findings],
            "explains": [f"{f.kind}@{f.host}" + (f"/{f.gpu}" if f.gpu is not None else "") for f in self.explains],
            "explained_by": self.explained_by,
            "reasons": list(self.reasons),
        }


def relevant(findings: Iterable[Finding]) -> list[Finding]:
    """Findings that can count as evidence of something wrong (info-level facts are context)."""
    return [f for f in findings if f.severity in ("warning", "critical") and (is_fault(f.kind) or f.kind in SYMPTOM_KINDS)]


def rank_candidates(
    findings: Iterable[Finding],
    *,
    priors: Mapping[str, float] | None = None,
    named_nodes: Sequence[str] = (),
    named_gpus: Sequence[int] = (),
) -> list[Candidate]:
    """Group findings into candidate causes and rank them, best first."""
    priors = priors or {}
    groups: dict[tuple[str, str, int | None], list[Finding]] = {}
    for f in relevant(findings):
        groups.setdefault((f.kind, f.host, f.gpu), []).append(f)
    # A node-level finding of the same kind as a GPU-level one on that node (gpu_count vs Xid 79)
    # is the same fault seen less precisely: it joins the GPU-level group.
    for (kind, host, gpu) in [k for k in groups if k[2] is None]:
        precise = [k for k in groups if k[0] == kind and k[1] == host and k[2] is not None]
        if len(precise) == 1:
            groups[precise[0]].extend(groups.pop((kind, host, gpu)))
    # Latency is seen on pairs: the node that shows up in the most slow pairs (as pinger or target)
    # is the slow one, not whichever pinger reported first.
    pairs: dict[str, int] = {}
    for f in relevant(findings):
        if f.kind == "network_latency":
            for node in {f.host, str(f.data.get("target") or "")} - {""}:
                pairs[node] = pairs.get(node, 0) + 1
    cands: list[Candidate] = []
    for (kind, host, gpu), fs in groups.items():
        sev = max(SEVERITY_WEIGHT.get(f.severity, 1.0) for f in fs)
        spec = SPECIFICITY["gpu" if gpu is not None else "node"]
        score = sev * spec * (1.0 + 0.05 * min(len(fs) - 1, 4))
        if kind == "network_latency" and pairs.get(host, 0) > 1:
            score *= 1.0 + 0.25 * (pairs[host] - 1)
        reasons = [f"{len(fs)} finding(s), worst {max(fs, key=lambda f: SEVERITY_WEIGHT.get(f.severity, 1)).severity}"]
        if kind in SYMPTOM_KINDS or not is_fault(kind):
            score *= SYMPTOM_FACTOR
            reasons.append("a symptom, not a root cause")
        derived = all(f.data.get("source") == "perf.detectors" for f in fs)
        if derived:
            score *= DERIVED_FACTOR
            reasons.append("only the peer comparison shows it")
        if kind in DISRUPTIVE_FAULTS:
            score += DISRUPTIVE_BONUS
            reasons.append("stops jobs outright")
        prior = priors.get(kind, 0.0)
        if prior:
            score += PRIOR_FACTOR * min(prior, 2.0)
            reasons.append(f"prior {prior:.2f} from the alert/KB")
        if host in named_nodes:
            score += NAMED_BONUS
            reasons.append("node named in the request")
        if gpu is not None and gpu in named_gpus:
            score += NAMED_BONUS / 2
            reasons.append("GPU named in the request")
        cands.append(Candidate(kind, host or None, gpu, score, list(fs), reasons=reasons, derived=derived))
    # A root cause absorbs the findings it explains on the same node/GPU.
    for a in cands:
        for b in cands:
            if a is b or b.fault not in EXPLAINS.get(a.fault, frozenset()) or a.node != b.node:
                continue
            if a.derived and not b.derived:  # a statistical outlier never overrides a check's finding
                continue
            if a.gpu is not None and b.gpu is not None and a.gpu != b.gpu:
                continue
            if b.explained_by:
                continue
            a.explains.extend(b.findings)
            a.score += 0.5 * b.score
            a.reasons.append(f"explains {b.label()}")
            b.explained_by = a.label()
            b.score *= EXPLAINED_FACTOR
            b.reasons.append(f"explained by {a.label()}")
    cands.sort(key=lambda c: (-c.score, c.node or "", c.gpu if c.gpu is not None else -1, c.fault))
    return cands


def supporting_findings(cause: Cause, findings: Iterable[Finding]) -> list[Finding]:
    """Findings that show exactly this claim: same kind, same node, same GPU when one is named."""
    if cause.fault is None:
        return []
    out = []
    for f in relevant(findings):
        if f.kind != cause.fault:
            continue
        if cause.node is not None and f.host != cause.node:
            continue
        if cause.gpu is not None and f.gpu is not None and f.gpu != cause.gpu:
            continue
        if cause.gpu is not None and f.gpu is None and not cause.fault.startswith(("gpu_fallen", "gpu_xid")):
            continue
        out.append(f)
    return out


@dataclass
class Verdict:
    verified: bool
    support: list[Finding]
    reason: str


def verify_claim(cause: Cause, findings: Iterable[Finding]) -> Verdict:
    """The verifier: a claim stands only when a check's Finding shows it (for "GPU 3 on node-05 is
    throttled" a gpu_clock_throttle finding on node-05 GPU 3)."""
    if cause.fault is None:
        return Verdict(False, [], "no cause claimed")
    if cause.fault in SYMPTOM_KINDS:
        return Verdict(False, [], f"{cause.fault} is a symptom; a root cause needs its own finding")
    support = supporting_findings(cause, findings)
    if support:
        return Verdict(True, support, f"{len(support)} finding(s) show {cause.fault} on {cause.node}")
    where = cause.node or "any node"
    if cause.gpu is not None:
        where += f" GPU {cause.gpu}"
    return Verdict(False, [], f"no check result shows {cause.fault} on {where}")


def confidence(best: Candidate, others: Sequence[Candidate]) -> float:
    """0..1: high when the best candidate is verified and clearly ahead of the next one."""
    runner_up = next((c.score for c in others if c is not best and not c.explained_by), 0.0)
    margin = (best.score - runner_up) / max(best.score, 1e-9)
    sev = max((SEVERITY_WEIGHT.get(f.severity, 1.0) for f in best.findings), default=0.0) / 3.0
    return round(max(0.05, min(0.99, 0.45 + 0.35 * margin + 0.2 * sev)), 2)
