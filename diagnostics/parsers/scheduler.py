"""Scheduler views of a node: Slurm (sinfo -o '%N %T %E', the default sinfo partition summary, a
'NODES(A/I/O/T)' summary, sinfo -R, scontrol show node, squeue) and Kubernetes (kubectl get node,
kubectl describe node, kubectl get node -o yaml)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

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
    the columns (a '%F' NODES(A/I/O/T) column gives rows 'allocated', 'idle' and 'other' - nodes
    in any other state: down, drained …), or header-less '%N %T %E' lines. A row counts only if its STATE is a Slurm state;
    prompts and other lines are skipped and noted. No row: ParseError."""
    lines = clean(text).split("\n")
    header: list[str] | None = None
    out: list[SinfoRow] = []
    before: list[int] = []
    for no, line in enumerate(lines, 1):
        tokens = line.split()
        if not tokens:
            continue
        if ("STATE" in tokens or "NODES(A/I/O/T)" in tokens) and set(tokens) <= _SINFO_COLUMNS:
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
        aiot = re.fullmatch(r"(\d+)/(\d+)/(\d+)/(\d+)", row.get("NODES(A/I/O/T)", "").strip())
        if "STATE" not in row:
            if aiot is None:
                skip_line("sinfo", no)
                continue
            for state, count in zip(("allocated", "idle", "other"), aiot.groups()[:3], strict=True):
                if int(count):
                    out.append(SinfoRow(row.get("PARTITION", ""), state, int(count), row.get("NODELIST", "")))
            continue
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
    name: str  # '' in an excerpt without the 'Name:' line
    gpu_resource: str | None  # 'nvidia.com/gpu', 'amd.com/gpu' …
    gpu_capacity: int | None
    gpu_allocatable: int | None
    gpu_requests: int | None
    gpu_limits: int | None
    unschedulable: bool | None
    conditions: dict[str, str]  # Ready -> True/False/Unknown, MemoryPressure -> …
    taints: list[str]
    resources_shown: bool = False  # a Capacity or Allocatable section was in the text
    # every GPU-like extended resource ('nvidia.com/gpu', 'deepomatic.com/shared-gpu',
    # 'nvidia.com/mig-1g.10gb' …) -> {'capacity': N, 'allocatable': N} as printed
    gpu_resources: dict[str, dict[str, int]] = field(default_factory=dict)


def _gpu_like(resource: str) -> bool:
    tail = resource.rsplit("/", 1)[-1].lower()
    return "gpu" in tail or tail.startswith("mig-")


_K8S_SECTION = re.compile(r"^(Name|Roles|Labels|Annotations|CreationTimestamp|Taints|Unschedulable|Lease|Conditions|"
                          r"Addresses|Capacity|Allocatable|System Info|PodCIDRs?|ProviderID|Non-terminated Pods|"
                          r"Allocated resources|Events):\s*(.*)$")
_K8S_GPU = re.compile(r"^(?P<res>[\w.-]+/[\w.-]+)\s*:?\s+(?P<a>\d+)(?:\s+\(\d+%\))?(?:\s+(?P<b>\d+))?")


def parse_kubectl_describe_node(text: str) -> K8sNodeDescription:
    """`kubectl describe node NAME`: the node's name, GPU capacity / allocatable (a device plugin
    lowers allocatable below capacity for unhealthy GPUs), requested and limited GPUs, the
    Unschedulable flag, conditions and taints; every GPU-like extended resource's capacity and
    allocatable. An excerpt without the 'Name:' line is read when it shows a Capacity or
    Allocatable section. Neither a name with a Capacity/Conditions/Taints/Unschedulable line nor a
    resource section: not a node description, ParseError."""
    name = ""
    section = ""
    res: str | None = None
    cap = alloc = req = lim = None
    unsched: bool | None = None
    conditions: dict[str, str] = {}
    taints: list[str] = []
    seen_capacity = seen_resources = seen_node_keys = False
    gpu_res: dict[str, dict[str, int]] = {}
    requested: dict[str, tuple[int, int | None]] = {}
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
            seen_resources = seen_resources or section in ("Capacity", "Allocatable")
            seen_node_keys = seen_node_keys or section in ("Conditions", "Taints", "Unschedulable", "Roles")
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
        if g is None or not _gpu_like(g.group("res")):
            continue
        if section in ("Capacity", "Allocatable"):
            gpu_res.setdefault(g.group("res"), {})[section.lower()] = int(g.group("a"))
        elif section == "Allocated resources":
            requested[g.group("res")] = (int(g.group("a")), int(g.group("b")) if g.group("b") else None)
    names = [*gpu_res, *requested]
    res = next((r for r in names if r.endswith("/gpu")), names[0] if names else None)
    if res is not None:
        cap, alloc = gpu_res.get(res, {}).get("capacity"), gpu_res.get(res, {}).get("allocatable")
        req, lim = requested.get(res, (None, None))
    if not ((name and (seen_capacity or conditions or seen_node_keys)) or seen_resources):
        raise ParseError("kubectl describe node", "no 'Name:' line with a 'Capacity:' or 'Conditions:' section")
    return K8sNodeDescription(name, res, cap, alloc, req, lim, unsched, conditions, taints, seen_resources, gpu_res)


_YAML_KV = re.compile(r"^(?P<indent>\s*)(?:-\s+)?(?P<key>[\w./-]+):\s*(?P<value>.*?)\s*$")


def parse_kubectl_node_yaml(text: str) -> K8sNodeDescription:
    """`kubectl get node NAME -o yaml` (or its status excerpt): name (metadata.name, or the Hostname
    address), capacity / allocatable of every GPU-like resource, conditions and
    spec.unschedulable. No resource line under a capacity or allocatable block: ParseError."""
    name = hostname = ""
    section = ""
    section_indent = -1
    gpu_res: dict[str, dict[str, int]] = {}
    conditions: dict[str, str] = {}
    cond_type = ""
    unsched: bool | None = None
    prev_address = ""
    resource_lines = 0
    for raw in clean(text).split("\n"):
        m = _YAML_KV.match(raw)
        if m is None:
            continue
        indent, key, value = len(m.group("indent")), m.group("key"), m.group("value").strip("'\"")
        if section and indent <= section_indent:
            section = ""
        if key in ("capacity", "allocatable", "conditions") and not value:
            section, section_indent = key, indent
            continue
        if key == "name" and not name and indent <= 4 and not section:
            name = value
        elif key == "address":
            prev_address = value
        elif key == "type" and value == "Hostname" and prev_address and not hostname:
            hostname = prev_address
        elif key == "unschedulable":
            unsched = value.lower() == "true"
        if section in ("capacity", "allocatable") and value:
            resource_lines += 1
            if _gpu_like(key) and value.isdigit():
                gpu_res.setdefault(key, {})[section] = int(value)
        elif section == "conditions":
            if key == "type":
                cond_type = value
            elif key == "status" and cond_type:
                conditions[cond_type] = value
    if not resource_lines:
        raise ParseError("kubectl get node -o yaml", "no resource under a capacity or allocatable block")
    main = next((r for r in gpu_res if r.endswith("/gpu")), next(iter(gpu_res), None))
    cap = gpu_res.get(main, {}).get("capacity") if main else None
    alloc = gpu_res.get(main, {}).get("allocatable") if main else None
    return K8sNodeDescription(name or hostname, main, cap, alloc, None, None, unsched, conditions, [], True, gpu_res)


# --------------------------------------------------------------------------- sinfo -R, squeue


@dataclass(frozen=True)
class SinfoReason:
    reason: str
    user: str
    timestamp: str
    nodelist: str


_SINFO_R = re.compile(r"^(?P<reason>\S.{0,300}?)\s+(?P<user>[\w.$-]+(?:\(\d+\))?)\s+"
                      r"(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d|Unknown|None)\s+(?P<nodes>[\w.,\[\]-]+)$")


def parse_sinfo_reasons(text: str) -> list[SinfoReason]:
    """`sinfo -R` (REASON USER TIMESTAMP NODELIST; the reason may contain spaces), with or without
    its header. Other lines are skipped and noted; no row: ParseError."""
    out: list[SinfoReason] = []
    for no, raw in enumerate(clean(text).split("\n"), 1):
        line = raw.strip()
        if not line or line.split()[:4] == ["REASON", "USER", "TIMESTAMP", "NODELIST"]:
            continue
        m = _SINFO_R.match(line)
        if m is None or m.group("reason").startswith(("sinfo", "$", "#")):
            skip_line("sinfo -R", no)
            continue
        out.append(SinfoReason(m.group("reason"), m.group("user"), m.group("ts"), m.group("nodes")))
    if not out:
        raise ParseError("sinfo -R", "no 'REASON USER TIMESTAMP NODELIST' row")
    return out


@dataclass(frozen=True)
class SqueueJob:
    jobid: str
    partition: str
    name: str
    user: str
    state: str  # 'R', 'PD', 'CG', 'NF' … or the long name (RUNNING, PENDING …)
    nodes: str
    reason: str  # NODELIST(REASON): the nodes of a running job, '(Priority)' … of a pending one


_SQUEUE_HEAD = re.compile(r"^\s*JOBID\s+.*\b(?:ST|STATE)\b.*$")
_SQUEUE_BAD_STATES = {"NF", "NODE_FAIL", "F", "FAILED", "OOM", "OUT_OF_MEMORY", "TO", "TIMEOUT", "BF", "BOOT_FAIL",
                      "DL", "DEADLINE"}
SQUEUE_NODE_REASONS = re.compile(r"ReqNodeNotAvail|NodeDown|Nodes required for job are DOWN|DRAINED|launch failed|"
                                 r"BadConstraints|PartitionDown|PartitionInactive", re.IGNORECASE)


def parse_squeue(text: str) -> list[SqueueJob]:
    """`squeue` with its header (JOBID PARTITION NAME USER ST TIME NODES NODELIST(REASON), or any
    '-o' layout naming JOBID and ST/STATE). The last column keeps its spaces. No job row after a
    header: ParseError."""
    header: list[str] | None = None
    out: list[SqueueJob] = []
    for no, raw in enumerate(clean(text).split("\n"), 1):
        if not raw.strip():
            continue
        if _SQUEUE_HEAD.match(raw):
            header = raw.split()
            continue
        if header is None:
            continue
        cells = raw.split(None, len(header) - 1)
        if len(cells) < len(header) - 1 or not re.match(r"^\d", cells[0]):
            skip_line("squeue", no)
            if not re.match(r"^\d", cells[0]):
                header = None  # the table ended
            continue
        row = dict(zip(header, cells, strict=False))
        state = row.get("ST") or row.get("STATE", "")
        reason = row.get("NODELIST(REASON)") or row.get("REASON") or row.get("NODELIST", "")
        out.append(SqueueJob(row["JOBID"], row.get("PARTITION", ""), row.get("NAME", ""), row.get("USER", ""), state,
                             row.get("NODES", ""), reason.strip()))
    if not out:
        raise ParseError("squeue", "no job row under a 'JOBID … ST …' header")
    return out
