"""Scheduler views of a node: Slurm (sinfo -o '%N %T %E', the default sinfo partition summary,
scontrol show node) and Kubernetes (kubectl get node, kubectl describe node)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from diagnostics.parsers.common import ParseError, clean, skip_line


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
    for no, line in enumerate(clean(text).split("\n"), 1):
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
    for no, line in enumerate(clean(text).split("\n"), 1):
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
    for no, line in enumerate(clean(text).split("\n"), 1):
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


@dataclass(frozen=True)
class SinfoRow:
    partition: str  # '' where sinfo printed one node per line without partitions
    state: str  # as printed: 'drng@', 'fail*', 'idle', 'mix' …
    nodes: int
    nodelist: str
    reason: str = ""

    @property
    def normalised(self) -> str:
        """schedulable | drained | draining | down | unknown (maint and the like: unknown)."""
        return _normalise_slurm(self.state)


_SINFO_COLUMNS = frozenset({"PARTITION", "AVAIL", "TIMELIMIT", "NODES", "STATE", "NODELIST", "REASON", "HOSTNAMES",
                            "CPUS", "S:C:T", "MEMORY", "TMP_DISK", "WEIGHT", "AVAIL_FE", "GRES", "NODES(A/I/O/T)",
                            "CPUS(A/I/O/T)", "USER", "TIMESTAMP", "ROOT", "OVERSUBS", "GROUPS", "JOB_SIZE"})


def parse_sinfo(text: str) -> list[SinfoRow]:
    """`sinfo` as pasted: the default partition summary (PARTITION AVAIL TIMELIMIT NODES STATE
    NODELIST), `sinfo -N` (NODELIST NODES PARTITION STATE), any other layout whose header names
    the columns, or header-less '%N %T %E' lines. A row counts only if its STATE is a Slurm state;
    prompts and other lines are skipped and noted. No row: ParseError."""
    lines = clean(text).split("\n")
    header: list[str] | None = None
    out: list[SinfoRow] = []
    before: list[int] = []
    for no, line in enumerate(lines, 1):
        tokens = line.split()
        if not tokens:
            continue
        if "STATE" in tokens and set(tokens) <= _SINFO_COLUMNS:
            header = tokens
            continue
        if header is None:
            before.append(no)  # before the header: a prompt or chatter (re-read below if no header comes)
            continue
        cells = line.split(None, len(header) - 1)
        if len(cells) < len(header):
            skip_line("sinfo", no)
            continue
        row = dict(zip(header, cells, strict=True))
        state = row["STATE"]
        nodes = row.get("NODES", "1")
        if not is_slurm_state(state) or not nodes.isdigit():
            skip_line("sinfo", no)
            continue
        out.append(SinfoRow(row.get("PARTITION", ""), state, int(nodes),
                            row.get("NODELIST") or row.get("HOSTNAMES", ""), row.get("REASON", "").strip()))
    if header is None:
        out = [SinfoRow("", n.raw_state, 1, n.name, n.reason) for n in parse_sinfo_nodes(text)]
    else:
        for no in before:
            skip_line("sinfo", no)
    if not out:
        raise ParseError("sinfo", "no row with a Slurm node state")
    return out


@dataclass
class K8sNodeDescription:
    name: str
    gpu_resource: str | None  # 'nvidia.com/gpu', 'amd.com/gpu' …
    gpu_capacity: int | None
    gpu_allocatable: int | None
    gpu_requests: int | None
    gpu_limits: int | None
    unschedulable: bool | None
    conditions: dict[str, str]  # Ready -> True/False/Unknown, MemoryPressure -> …
    taints: list[str]


_K8S_SECTION = re.compile(r"^(Name|Roles|Labels|Annotations|CreationTimestamp|Taints|Unschedulable|Lease|Conditions|"
                          r"Addresses|Capacity|Allocatable|System Info|PodCIDRs?|ProviderID|Non-terminated Pods|"
                          r"Allocated resources|Events):\s*(.*)$")
_K8S_GPU = re.compile(r"^(?P<res>[\w.-]+/gpu(?:[\w.-]*)?)\s*:?\s+(?P<a>\d+)(?:\s+(?P<b>\d+))?")


def parse_kubectl_describe_node(text: str) -> K8sNodeDescription:
    """`kubectl describe node NAME`: the node's name, GPU capacity / allocatable (a device plugin
    lowers allocatable below capacity for unhealthy GPUs), requested and limited GPUs, the
    Unschedulable flag, conditions and taints. Without a 'Name:' line or a 'Capacity:' section the
    text is not a node description: ParseError."""
    name = ""
    section = ""
    res: str | None = None
    cap = alloc = req = lim = None
    unsched: bool | None = None
    conditions: dict[str, str] = {}
    taints: list[str] = []
    seen_capacity = False
    for no, raw in enumerate(clean(text).split("\n"), 1):
        if not raw.strip():
            continue
        indented = raw[:1].isspace()
        line = raw.strip()
        sec = _K8S_SECTION.match(line) if not indented else None
        if sec:
            section, value = sec.group(1), sec.group(2).strip()
            if section == "Name" and not name:
                name = value
            elif section == "Unschedulable":
                unsched = value.lower() == "true"
            elif section == "Taints" and value and value != "<none>":
                taints.append(value)
            elif section == "Capacity":
                seen_capacity = True
            continue
        if not indented:
            skip_line("kubectl describe node", no)
            continue
        if section == "Taints":
            taints.append(line)
            continue
        if section == "Conditions":
            parts = line.split()
            if len(parts) >= 2 and parts[1] in ("True", "False", "Unknown"):
                conditions[parts[0]] = parts[1]
            continue
        g = _K8S_GPU.match(line)
        if g is None:
            continue
        res = res or g.group("res")
        if section == "Capacity":
            cap = int(g.group("a"))
        elif section == "Allocatable":
            alloc = int(g.group("a"))
        elif section == "Allocated resources":
            req = int(g.group("a"))
            lim = int(g.group("b")) if g.group("b") else None
    if not name or not (seen_capacity or conditions):
        raise ParseError("kubectl describe node", "no 'Name:' line with a 'Capacity:' or 'Conditions:' section")
    return K8sNodeDescription(name, res, cap, alloc, req, lim, unsched, conditions, taints)
