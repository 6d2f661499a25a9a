"""Honest verdicts: what the checks showed when no fault kind was verified, and how wide a cause is.

* An **anomaly** is anything a check saw that is not "ok": a finding that is not a catalog fault
  (kernel error signatures, failed units, error counters, unresponsive mounts), a check that timed
  out or failed on a node that answers other checks, a symptom no cause explained. A timeout is an
  anomaly, never a pass.
* **Clean** needs the checks that could show the alert's symptom to have run and passed.
* **Scope**: a finding on most nodes is a cluster-wide (or job-wide) cause, not one node's.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from diagnostics.faults import catalog, normalize_category
from diagnostics.types import Finding, ToolResult

# Generic checks (no fault kind of their own) -> the category their trouble points at.
GENERIC_CHECK_CATEGORY: dict[str, str] = {
    "kernel_errors": "other", "job_log_errors": "other", "failed_units": "other", "hung_tasks": "storage",
    "pcie_aer": "gpu-hardware", "mce_edac": "memory", "nic_errors": "network", "ib_counters": "network",
    "mount_health": "storage", "lustre_health": "storage", "dcgm_diag": "gpu-hardware",
    "node_state": "scheduler", "service_status": "other", "job_step_times": "other",
    "nccl_allreduce": "network", "reachability": "network",
}
SEVERITY_RANK = {"critical": 3.0, "warning": 2.0, "info": 0.5}
# A finding on at least this share of the hosts checked (and on 2+ hosts) is cluster-wide.
CLUSTER_WIDE_SHARE = 0.5
# Failure statuses that count as an anomaly of the node (not a missing tool).
FAILED_STATUSES = ("timeout", "error")


# A check that hangs or fails points at the component it talks to, not at the fault it looks for
# (a hung nvidia-smi is the GPU or its driver, whatever the check was after).
COMPONENT_OF_PREFIX: tuple[tuple[str, str], ...] = (
    ("gpu_", "gpu-hardware"), ("dcgm", "gpu-hardware"), ("pcie", "gpu-hardware"), ("ib_", "network"),
    ("net", "network"), ("nic", "network"), ("nccl", "network"), ("reachability", "network"),
    ("disk", "storage"), ("mount", "storage"), ("lustre", "storage"), ("shm", "memory"),
    ("memory", "memory"), ("mce", "memory"), ("node_state", "scheduler"), ("job_", "other"),
    ("hung", "storage"),
)


def component_category(tool: str) -> str:
    for prefix, category in COMPONENT_OF_PREFIX:
        if tool.startswith(prefix):
            return category
    return GENERIC_CHECK_CATEGORY.get(tool, "other")


def check_category(tool: str) -> str:
    """The category a check's trouble points at: the kinds it confirms, else the generic table."""
    cats = Counter(k.category for k in catalog().kinds if tool in k.checks)
    if cats:
        return cats.most_common(1)[0][0]
    return GENERIC_CHECK_CATEGORY.get(tool, "other")


@dataclass
class Anomaly:
    host: str
    check: str
    message: str
    category: str
    severity: str = "warning"
    kind: str = ""
    gpu: int | None = None
    cause: str = ""  # a known cause in plain words (a signature's), when there is one
    source: str = ""  # its source URL

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finding_tool(f: Finding, results: Sequence[ToolResult]) -> str:
    for r in results:
        if r.host == f.host and f in r.findings:
            return r.tool
    return str(f.data.get("check") or f.kind)


# Words with which a request reports a problem (not a routine "is anything wrong?").
_SYMPTOM = re.compile(
    r"\b(?:(?:\d+(?:\.\d+)?\s*(?:x|×)|\d+\s*%)\s*(?:slower|faster|of (?:its|the) (?:old |normal )?speed)|"
    r"slow(?:er|s|ed|down|ly)?|hang(?:s|ing)?|hung|stuck|crash(?:es|ed|ing)?|died|dies|fail(?:s|ed|ing|ure)?|"
    r"errors?|timed? ?out|timeouts?|no progress|degraded|drop(?:ped|s)?|not responding|unreachable|oom|killed|"
    r"nan|diverg\w*|step time (?:up|increased|grew))\b", re.IGNORECASE)
# Checks that could show a fleet-wide slowdown but are too long to run unasked.
UNSWEPT_CONFIRMERS = ("nccl_allreduce",)


def reported_symptom(text: str) -> str:
    """The first words of ``text`` that report a problem, or "" for a routine question."""
    m = _SYMPTOM.search((text or "")[:20000])  # the report's own words come first; a paste may follow
    if not m:
        return ""
    start = max(0, m.start() - 40)
    return " ".join(text[start:m.end() + 40].split())[:120]


# Log findings (kernel or job log lines a signature reads, or error lines no signature knows) that
# stay below warning on their own: on a minority of the nodes they are what sets a node apart.
LOG_LINE_KINDS = frozenset({"kernel_error", "kernel_error_unknown", "job_log_error", "job_log_error_unknown"})


def _outlier_log_lines(findings: Sequence[Finding], results: Sequence[ToolResult],
                       answered: set[str]) -> list[Anomaly]:
    """Log lines the checks rated below warning that still mean trouble: lines a signature knows as
    a problem (warning or worse in the catalog, however rarely they repeat), wherever they show, and
    error lines no signature knows when fewer than half of the nodes that answered have them (a
    node whose log has error lines its peers lack has not passed)."""
    known: list[Finding] = []
    unknown: list[Finding] = []
    for f in findings:
        if f.kind in LOG_LINE_KINDS and f.severity not in ("warning", "critical"):
            bad = str((f.data or {}).get("signature_severity", "")) in ("warning", "error", "critical")
            (known if bad else unknown).append(f)
    if unknown and len({f.host for f in unknown}) * 2 > max(len(answered), 1):
        unknown = []  # the same lines everywhere: the fleet's normal noise
    out = []
    for f, note in [(f, "") for f in known] + [(f, " (not on its peers)") for f in unknown]:
        data = f.data or {}
        tool = _finding_tool(f, results)
        category = normalize_category(str(data.get("category") or check_category(tool)))
        out.append(Anomaly(f.host, tool, f"{f.message}{note}", category, "warning", f.kind, f.gpu,
                           str(data.get("cause") or ""), str(data.get("source") or "")))
    return out


def _signature_of(text: str) -> Any:
    """The most severe signature that reads a failed check's message, or None."""
    if not text.strip():
        return None
    try:
        from diagnostics.signatures import load_catalog

        matches = load_catalog().match(text[:20000])
    except Exception:  # the catalog is an aid here; the failure is an anomaly either way
        return None
    return matches[0].signature if matches else None


def collect_anomalies(results: Sequence[ToolResult], findings: Sequence[Finding], *,
                      answered: Iterable[str], is_fault: Any, symptom_kinds: Iterable[str],
                      unreachable: Iterable[str] = ()) -> list[Anomaly]:
    """Everything not-ok that no catalog fault kind covers, most severe first."""
    out: list[Anomaly] = []
    symptoms = set(symptom_kinds)
    for f in findings:
        if f.severity not in ("warning", "critical"):
            continue
        if is_fault(f.kind) and f.kind not in symptoms:
            continue  # a catalog fault: the evidence ranking handles it
        data = f.data or {}
        tool = _finding_tool(f, results)
        category = normalize_category(str(data.get("category") or check_category(tool)))
        out.append(Anomaly(f.host, tool, f.message, category, f.severity, f.kind, f.gpu,
                           str(data.get("cause") or ""), str(data.get("source") or "")))
    answered_hosts = set(answered)
    out += _outlier_log_lines(findings, results, answered_hosts)
    silent = set(unreachable)
    for r in results:
        status = getattr(r.status, "value", str(r.status))
        if status not in FAILED_STATUSES or r.host in silent:
            continue
        if status == "error" and r.host not in answered_hosts:
            continue
        detail = (r.error or status).strip().splitlines()[0][:160] if (r.error or status) else status
        msg = (f"{r.tool} timed out on {r.host}" if status == "timeout"
               else f"{r.tool} failed on {r.host}: {detail}")
        # A hung command on a node that answers other checks is the node's trouble, not a pass. A
        # failure whose message a signature reads ("Driver/library version mismatch") says more.
        sig = _signature_of(r.error or "")
        out.append(Anomaly(r.host, r.tool, msg, sig.category if sig else component_category(r.tool),
                           "critical" if status == "timeout" else "warning", f"check_{status}",
                           cause=sig.cause if sig else "", source=sig.source if sig else ""))
    out.sort(key=lambda a: (-SEVERITY_RANK.get(a.severity, 1.0), a.host, a.check))
    return out


@dataclass
class Localization:
    node: str | None  # None: cluster-wide
    category: str | None
    scope: str
    hosts: list[str] = field(default_factory=list)
    lead: Anomaly | None = None


def localize(anomalies: Sequence[Anomaly], cluster_hosts: Sequence[str]) -> Localization:
    """Where the anomalies point: the node with the most (and worst) of them, and their category;
    cluster-wide when the same kind of anomaly shows on most hosts."""
    if not anomalies:
        return Localization(None, None, "cluster")
    by_kind_hosts: dict[tuple[str, str], set[str]] = {}
    for a in anomalies:
        by_kind_hosts.setdefault((a.kind, a.check), set()).add(a.host)
    n_hosts = max(len(cluster_hosts), 1)
    wide = [(k, hs) for k, hs in by_kind_hosts.items() if len(hs) >= 2 and len(hs) >= CLUSTER_WIDE_SHARE * n_hosts]
    if wide:
        (kind, check), hosts = max(wide, key=lambda kv: len(kv[1]))
        lead = next(a for a in anomalies if a.kind == kind and a.check == check)
        return Localization(None, lead.category, "cluster", sorted(hosts), lead)
    score: dict[str, float] = {}
    for a in anomalies:
        score[a.host] = score.get(a.host, 0.0) + SEVERITY_RANK.get(a.severity, 1.0)
    node = max(score, key=lambda h: (score[h], -sorted(score).index(h)))
    mine = [a for a in anomalies if a.host == node]
    cats: dict[str, float] = {}
    for a in mine:
        # a known cause (a signature) names its category more surely than a timed-out check does
        cats[a.category] = cats.get(a.category, 0.0) + SEVERITY_RANK.get(a.severity, 1.0) * (1.5 if a.cause else 1.0)
    category = max(cats, key=lambda c: cats[c]) if cats else None
    lead = max(mine, key=lambda a: (SEVERITY_RANK.get(a.severity, 1.0), bool(a.cause)))
    return Localization(node, category, "node", [node], lead)


def spread(fault: str, findings: Sequence[Finding], checked_hosts: Sequence[str]) -> list[str]:
    """Hosts (of those checked) that show ``fault``."""
    checked = set(checked_hosts)
    return sorted({f.host for f in findings if f.kind == fault and f.host in checked
                   and f.severity in ("warning", "critical")})


def is_cluster_wide(hosts_with: Sequence[str], cluster_hosts: Sequence[str]) -> bool:
    n = len(cluster_hosts)
    return n >= 2 and len(hosts_with) >= 2 and len(hosts_with) >= CLUSTER_WIDE_SHARE * n


def checks_for_symptom(categories: Iterable[str | None], hypothesis_checks: Iterable[str]) -> list[str]:
    """The checks that could show the alert's symptom: those its hypotheses name, plus every
    catalog check of the categories it points at."""
    wanted = list(dict.fromkeys(c for c in hypothesis_checks if c))
    cats = {normalize_category(c) for c in categories if c}
    for kind in catalog().kinds:
        if kind.category in cats:
            wanted.extend(c for c in kind.checks if c not in wanted)
    return wanted
