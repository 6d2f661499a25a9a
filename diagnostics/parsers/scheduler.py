"""Scheduler views of a node: Slurm (sinfo -o '%N %T %E', scontrol show node) and Kubernetes
(kubectl get node)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from diagnostics.parsers.common import ParseError, skip_line


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


# Slurm node state names (sinfo %T, scontrol State=), without flag suffixes and '+' combinations.
_SLURM_STATES = frozenset({
    "allocated", "alloc", "completing", "comp", "down", "drained", "drain", "draining", "drng", "fail", "failing",
    "future", "futr", "idle", "maint", "mixed", "mix", "perfctrs", "npc", "planned", "plnd", "power_down",
    "powered_down", "powering_down", "powering_up", "pow_dn", "pow_up", "reboot_issued", "reboot_requested",
    "reserved", "resv", "unknown", "unk", "inval", "blocked", "cloud", "not_responding", "no_respond",
    "dynamic_future", "dynamic_norm", "invalid_reg", "power_save", "powered_off",
})
_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")


def is_slurm_state(state: str) -> bool:
    """'drained*', 'idle+drain', 'MIXED+DRAIN' are states; 'PREVIOUS' is not."""
    parts = [p.rstrip("*~#!%$@^-") for p in state.lower().split("+")]
    return bool(parts) and all(p in _SLURM_STATES for p in parts)


def parse_sinfo_nodes(text: str) -> list[NodeSched]:
    """`sinfo -h -N -o '%N %T %E'` lines -> node, state, reason (the reason may contain spaces).

    A line counts only if its second word is a Slurm state; other lines are skipped and noted."""
    out = []
    for no, line in enumerate(text.splitlines(), 1):
        parts = line.split(None, 2)
        if not parts:
            continue
        if parts[0] in ("NODELIST", "HOSTNAMES"):
            continue
        if len(parts) < 2 or not _NODE_NAME.match(parts[0]) or not is_slurm_state(parts[1]):
            skip_line("sinfo", no)
            continue
        reason = parts[2].strip() if len(parts) > 2 else ""
        out.append(NodeSched(parts[0], _normalise_slurm(parts[1]), parts[1], "" if reason == "none" else reason))
    if not out:
        raise ParseError("sinfo", "no 'NODE STATE [REASON]' line with a Slurm state (is the node known to Slurm?)")
    return out


def parse_scontrol_node(text: str) -> NodeSched:
    """`scontrol show node NAME`: the record starts at 'NodeName=' at the left margin and goes on in
    indented lines; lines outside it are skipped (noted)."""
    kept = []
    inside = False
    for no, line in enumerate(text.splitlines(), 1):
        if line.startswith("NodeName=") and not inside:
            inside = True
        elif not (inside and line[:1].isspace()):
            if line.strip():
                skip_line("scontrol show node", no)
            continue
        kept.append(line)
    text = "\n".join(kept)
    m = re.search(r"NodeName=(\S+)", text)
    s = re.search(r"\bState=(\S+)", text)
    if not m or not s:
        raise ParseError("scontrol show node", "no NodeName=/State= fields")
    r = re.search(r"\bReason=(.*?)(?: \[[^\]]*\])?\s*$", text, re.M)
    return NodeSched(m.group(1), _normalise_slurm(s.group(1).replace("+", " ").split()[-1] if "DRAIN" in s.group(1) else s.group(1)),
                     s.group(1), r.group(1).strip() if r else "")


_K8S_STATUS = re.compile(r"^(?:Ready|NotReady|Unknown)(?:,[A-Za-z]+)*$")


def looks_like_kubectl(text: str) -> bool:
    """Whether some line is a `kubectl get node` row (NAME then a node STATUS)."""
    return any(len(p) >= 2 and _K8S_STATUS.match(p[1]) for p in (ln.split() for ln in text.splitlines()))


def parse_kubectl_nodes(text: str) -> list[NodeSched]:
    """`kubectl get node NAME [--no-headers]` -> name, state (SchedulingDisabled = drained)."""
    out = []
    for no, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts or parts[0] == "NAME":
            continue
        if len(parts) < 2 or not _NODE_NAME.match(parts[0]) or not _K8S_STATUS.match(parts[1]):
            skip_line("kubectl get node", no)  # warnings ('W0312 …'), anything that is not a node row
            continue
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
