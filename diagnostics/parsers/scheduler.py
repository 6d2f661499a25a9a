"""Scheduler views of a node: Slurm (sinfo -o '%N %T %E', scontrol show node) and Kubernetes
(kubectl get node)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from diagnostics.parsers.common import ParseError


@dataclass(frozen=True)
class NodeSched:
    name: str
    state: str  # normalised: schedulable | drained | draining | down | unknown
    raw_state: str
    reason: str


_DRAINED = ("drained", "drain", "drng", "draining")


def _normalise_slurm(state: str) -> str:
    s = state.lower().rstrip("*~#!%$@^-")
    if "drng" in s or "draining" in s:
        return "draining"
    if "drain" in s:
        return "drained"
    if s.startswith("down") or "fail" in s:
        return "down"
    if s in ("idle", "alloc", "allocated", "mix", "mixed", "comp", "completing", "plnd", "planned", "resv", "reserved"):
        return "schedulable"
    return "unknown"


def parse_sinfo_nodes(text: str) -> list[NodeSched]:
    """`sinfo -h -N -o '%N %T %E'` lines -> node, state, reason (the reason may contain spaces)."""
    out = []
    for no, line in enumerate(text.splitlines(), 1):
        parts = line.split(None, 2)
        if not parts:
            continue
        if parts[0] in ("NODELIST", "HOSTNAMES"):
            continue
        if len(parts) < 2:
            raise ParseError("sinfo", f"expected 'NODE STATE [REASON]', got {line.strip()[:60]!r}", no)
        reason = parts[2].strip() if len(parts) > 2 else ""
        out.append(NodeSched(parts[0], _normalise_slurm(parts[1]), parts[1], "" if reason == "none" else reason))
    if not out:
        raise ParseError("sinfo", "no node lines (is the node known to Slurm?)")
    return out


def parse_scontrol_node(text: str) -> NodeSched:
    m = re.search(r"NodeName=(\S+)", text)
    s = re.search(r"\bState=(\S+)", text)
    if not m or not s:
        raise ParseError("scontrol show node", "no NodeName=/State= fields")
    r = re.search(r"\bReason=(.*?)(?: \[[^\]]*\])?\s*$", text, re.M)
    return NodeSched(m.group(1), _normalise_slurm(s.group(1).replace("+", " ").split()[-1] if "DRAIN" in s.group(1) else s.group(1)),
                     s.group(1), r.group(1).strip() if r else "")


def parse_kubectl_nodes(text: str) -> list[NodeSched]:
    """`kubectl get node NAME [--no-headers]` -> name, state (SchedulingDisabled = drained)."""
    out = []
    for no, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts or parts[0] == "NAME":
            continue
        if len(parts) < 2:
            raise ParseError("kubectl get node", f"expected 'NAME STATUS …', got {line.strip()[:60]!r}", no)
        status = parts[1]
        if "SchedulingDisabled" in status:
            state = "drained"
        elif status.startswith("NotReady") or status == "Unknown":
            state = "down"
        elif status.startswith("Ready"):
            state = "schedulable"
        else:
            state = "unknown"
        out.append(NodeSched(parts[0], state, status, ""))
    if not out:
        raise ParseError("kubectl get node", "no node lines")
    return out
