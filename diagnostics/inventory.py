"""Inventory: which nodes a cluster has and how to reach them over SSH (YAML).

```yaml
cluster: a800-lab
scheduler: slurm            # slurm | kubernetes | none; or a mapping:
# scheduler: {kind: slurm, controller: slurm-ctl}   # Slurm actions (scontrol) run on the controller
# controller: a host name, an inventory node name, or {host, port, user[, name]}
gpu: A800-SXM4-80GB
gpus_per_node: 8
ssh:                        # defaults for every node
  user: root
  key_file: client_key      # relative paths are relative to this file
  known_hosts: known_hosts
  port: 22
nodes:
  - {name: node-01, host: 10.0.0.11}
  - {name: node-02, host: 10.0.0.12, port: 2222, user: ops}
  - {name: node-03, host: 10.0.0.13, slurm_name: gpu003}   # Slurm NodeName (default: name)
```
Errors name the file, the line and the field.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from diagnostics.scheduling import SlurmPlacement, is_slurm_name
from diagnostics.types import ValidationError

SCHEDULERS = ("slurm", "kubernetes", "none")


class InventoryError(ValidationError):
    """The inventory file is unreadable or a field is invalid (message: file, line, field)."""


@dataclass(frozen=True)
class NodeEntry:
    name: str
    host: str
    port: int | None = None  # None: the ssh default
    user: str | None = None  # None: the ssh default
    slurm_name: str | None = None  # Slurm NodeName; None: the same as name


@dataclass(frozen=True)
class ControllerEntry:
    """The scheduler's controller host (Slurm: where ``scontrol update`` runs for every node)."""

    name: str
    host: str
    port: int | None = None  # None: the ssh default
    user: str | None = None  # None: the ssh default


@dataclass
class SSHDefaults:
    user: str | None = None  # None: the local user name
    key_file: Path | None = None
    known_hosts: Path | None = None  # None: ~/.ssh/known_hosts
    port: int = 22


@dataclass
class Inventory:
    cluster: str
    nodes: list[NodeEntry]
    scheduler: str = "slurm"
    gpu: str | None = None
    gpus_per_node: int | None = None
    ssh: SSHDefaults = field(default_factory=SSHDefaults)
    source: Path | None = None
    # The training job, for the expected step time (perf model): model_params, tokens_per_step,
    # precision, interconnect. None: not described (the agent then compares peers only).
    workload: dict[str, Any] | None = None
    controller: ControllerEntry | None = None  # scheduler.controller (Slurm)

    def __post_init__(self) -> None:
        self._by_name = {n.name: n for n in self.nodes}

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def __iter__(self) -> Iterator[NodeEntry]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def node(self, name: str) -> NodeEntry:
        try:
            return self._by_name[name]
        except KeyError:
            where = f" in {self.source}" if self.source else ""
            raise InventoryError(f"unknown node {name!r}{where}; known: {', '.join(self.names)}") from None

    def address(self, name: str) -> tuple[str, int, str | None]:
        """(host, port, user) of a node (or of the scheduler controller) with the ssh defaults applied."""
        c = self.controller
        if c is not None and name == c.name and name not in self._by_name:
            return c.host, c.port or self.ssh.port, c.user or self.ssh.user
        n = self.node(name)
        return n.host, n.port or self.ssh.port, n.user or self.ssh.user

    def slurm_placement(self) -> SlurmPlacement:
        """Where Slurm actions run (the controller, None: on the node) and each node's Slurm name."""
        return SlurmPlacement(self.controller.name if self.controller else None,
                              {n.name: n.slurm_name or n.name for n in self.nodes})

    def select(self, names: list[str] | None) -> list[str]:
        """The given node names validated (all nodes when None)."""
        if not names:
            return self.names
        for name in names:
            self.node(name)
        return list(dict.fromkeys(names))

    def to_dict(self, relative_to: Path | None = None) -> dict[str, Any]:
        def path_text(p: Path | None) -> str | None:
            if p is None:
                return None
            if relative_to is not None:
                try:
                    return str(p.resolve().relative_to(relative_to.resolve()))
                except ValueError:
                    pass
            return str(p)

        ssh: dict[str, Any] = {"port": self.ssh.port}
        if self.ssh.user:
            ssh["user"] = self.ssh.user
        if self.ssh.key_file:
            ssh["key_file"] = path_text(self.ssh.key_file)
        if self.ssh.known_hosts:
            ssh["known_hosts"] = path_text(self.ssh.known_hosts)
        nodes = []
        for n in self.nodes:
            entry: dict[str, Any] = {"name": n.name, "host": n.host}
            if n.port is not None:
                entry["port"] = n.port
            if n.user is not None:
                entry["user"] = n.user
            if n.slurm_name is not None:
                entry["slurm_name"] = n.slurm_name
            nodes.append(entry)
        scheduler: Any = self.scheduler
        if self.controller is not None:
            c = self.controller
            ctl: dict[str, Any] = {"name": c.name, "host": c.host}
            if c.port is not None:
                ctl["port"] = c.port
            if c.user is not None:
                ctl["user"] = c.user
            scheduler = {"kind": self.scheduler, "controller": ctl}
        d: dict[str, Any] = {"cluster": self.cluster, "scheduler": scheduler}
        if self.gpu:
            d["gpu"] = self.gpu
        if self.gpus_per_node is not None:
            d["gpus_per_node"] = self.gpus_per_node
        if self.workload:
            d["workload"] = dict(self.workload)
        d["ssh"] = ssh
        d["nodes"] = nodes
        return d

    def save(self, path: str | Path) -> Path:
        """Write the inventory as YAML; paths inside the file's folder are stored relative."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(self.to_dict(relative_to=path.parent), sort_keys=False, default_flow_style=None)
        path.write_text(text, encoding="utf-8")
        return path


class _Lines:
    """Line numbers of YAML mapping keys / sequence items, for error messages."""

    def __init__(self, text: str) -> None:
        try:
            self.root: yaml.Node | None = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            self.root = None

    def line(self, *path: str | int) -> int | None:
        node = self.root
        line = None
        for key in path:
            if isinstance(node, yaml.MappingNode):
                match = next((kv for kv in node.value if getattr(kv[0], "value", None) == key), None)
                if match is None:
                    return line
                line = match[0].start_mark.line + 1
                node = match[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
                node = node.value[key]
                line = node.start_mark.line + 1
            else:
                return line
        return line


def load_inventory(path: str | Path) -> Inventory:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read inventory: {exc.strerror or exc}") from None
    return parse_inventory(text, source=path)


def parse_inventory(text: str, source: Path | None = None) -> Inventory:
    name = str(source) if source else "<inventory>"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InventoryError(f"{name}{where}: malformed YAML: {problem}") from None
    lines = _Lines(text)
    base = source.parent if source else Path.cwd()

    def fail(field_path: tuple[str | int, ...], why: str) -> InventoryError:
        line = lines.line(*field_path)
        dotted = ".".join(f"[{p}]" if isinstance(p, int) else p for p in field_path).replace(".[", "[")
        return InventoryError(f"{name}{f':{line}' if line else ''}: field {dotted}: {why}")

    if not isinstance(data, Mapping):
        raise InventoryError(f"{name}: an inventory is a YAML mapping with 'cluster' and 'nodes'")
    # Unknown top-level keys are ignored: files may carry extra notes for people.
    cluster = data.get("cluster", "cluster")
    if not isinstance(cluster, str) or not cluster:
        raise fail(("cluster",), f"must be a non-empty string, got {cluster!r}")
    scheduler = data.get("scheduler", "slurm")
    controller: ControllerEntry | None = None
    if isinstance(scheduler, Mapping):  # {kind: slurm, controller: slurm-ctl}
        sched_raw = scheduler
        unknown = sorted(str(k) for k in sched_raw if k not in ("kind", "controller"))
        if unknown:
            raise fail(("scheduler", unknown[0]), "unknown key; a scheduler mapping has kind and controller")
        scheduler = sched_raw.get("kind", "slurm")
        if scheduler not in SCHEDULERS:
            raise fail(("scheduler", "kind"), f"must be one of {', '.join(SCHEDULERS)}, got {scheduler!r}")
        if sched_raw.get("controller") is not None:
            if scheduler != "slurm":
                raise fail(("scheduler", "controller"), f"only Slurm actions run on a controller (kind is {scheduler!r})")
            controller = _controller(sched_raw["controller"], lambda key, why: fail(("scheduler", "controller", *key), why))
    elif scheduler not in SCHEDULERS:
        raise fail(("scheduler",), f"must be one of {', '.join(SCHEDULERS)}, got {scheduler!r}")
    gpu = data.get("gpu")
    if gpu is not None and not isinstance(gpu, str):
        raise fail(("gpu",), f"must be a GPU model name, got {gpu!r}")
    gpn = data.get("gpus_per_node")
    if gpn is not None and (isinstance(gpn, bool) or not isinstance(gpn, int) or gpn < 0):
        raise fail(("gpus_per_node",), f"must be a non-negative integer, got {gpn!r}")

    workload = _workload(data.get("workload"), lambda key, why: fail(("workload", key) if key else ("workload",), why))

    ssh_raw = data.get("ssh") or {}
    if not isinstance(ssh_raw, Mapping):
        raise fail(("ssh",), "must be a mapping (user, key_file, known_hosts, port)")
    ssh = SSHDefaults(
        user=_opt_str(ssh_raw.get("user"), lambda why: fail(("ssh", "user"), why)),
        key_file=_opt_path(ssh_raw.get("key_file"), base, lambda why: fail(("ssh", "key_file"), why)),
        known_hosts=_opt_path(ssh_raw.get("known_hosts"), base, lambda why: fail(("ssh", "known_hosts"), why)),
        port=_port(ssh_raw.get("port", 22), lambda why: fail(("ssh", "port"), why)) or 22,
    )

    nodes_raw = data.get("nodes")
    if not isinstance(nodes_raw, list) or not nodes_raw:
        raise fail(("nodes",), "must be a non-empty list of {name, host[, port, user]}")
    nodes: list[NodeEntry] = []
    seen: set[str] = set()
    for i, item in enumerate(nodes_raw):
        if isinstance(item, str):  # a bare name: reachable under that name
            item = {"name": item, "host": item}
        if not isinstance(item, Mapping):
            raise fail(("nodes", i), f"must be a mapping with name and host, got {item!r}")
        node_name = item.get("name")
        if not isinstance(node_name, str) or not node_name:
            raise fail(("nodes", i, "name"), f"must be a non-empty string, got {node_name!r}")
        if node_name in seen:
            raise fail(("nodes", i, "name"), f"node {node_name!r} listed twice")
        seen.add(node_name)
        host = item.get("host", node_name)
        if not isinstance(host, str) or not host:
            raise fail(("nodes", i, "host"), f"must be a host name or address, got {host!r}")
        port = _port(item.get("port"), lambda why, i=i: fail(("nodes", i, "port"), why))
        user = _opt_str(item.get("user"), lambda why, i=i: fail(("nodes", i, "user"), why))
        slurm_name = _opt_str(item.get("slurm_name"), lambda why, i=i: fail(("nodes", i, "slurm_name"), why))
        if slurm_name is not None and not is_slurm_name(slurm_name):
            raise fail(("nodes", i, "slurm_name"), f"{slurm_name!r} is not a Slurm node name (letters, digits, "
                       "'-', '_', '.'; not starting with '-' or '.')")
        nodes.append(NodeEntry(node_name, host, port, user, slurm_name))
    return Inventory(cluster, nodes, scheduler, gpu, gpn, ssh, source, workload=workload, controller=controller)


def _controller(raw: Any, fail: Any) -> ControllerEntry:
    """``controller: slurm-ctl`` (a host, or an inventory node's name) or ``{host, port, user[, name]}``."""
    if isinstance(raw, str):
        if not raw:
            raise fail((), "must be a host name or a mapping {host, port, user}")
        return ControllerEntry(raw, raw)
    if not isinstance(raw, Mapping):
        raise fail((), f"must be a host name or a mapping {{host, port, user}}, got {raw!r}")
    unknown = sorted(str(k) for k in raw if k not in ("name", "host", "port", "user"))
    if unknown:
        raise fail((unknown[0],), "unknown key; a controller has host, port, user and name")
    host = _opt_str(raw.get("host"), lambda why: fail(("host",), why))
    if host is None:
        raise fail(("host",), "is required (the controller's host name or address)")
    name = _opt_str(raw.get("name"), lambda why: fail(("name",), why)) or host
    return ControllerEntry(name, host, _port(raw.get("port"), lambda why: fail(("port",), why)),
                           _opt_str(raw.get("user"), lambda why: fail(("user",), why)))


WORKLOAD_PRECISIONS = ("bf16", "fp16", "fp8", "tf32", "fp32")
INTERCONNECTS = ("infiniband", "roce", "ethernet", "nvlink")


def _workload(raw: Any, fail: Callable[[str, str], InventoryError]) -> dict[str, Any] | None:
    """The inventory's optional ``workload`` mapping, validated (numbers positive, names known)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise fail("", "must be a mapping (model_params, tokens_per_step, precision, interconnect)")
    out: dict[str, Any] = {}
    for key in ("model_params", "tokens_per_step"):
        value = raw.get(key)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise fail(key, f"must be a positive number, got {value!r}")
        out[key] = float(value)
    for key, allowed, default in (("precision", WORKLOAD_PRECISIONS, "bf16"),
                                  ("interconnect", INTERCONNECTS, "infiniband")):
        value = raw.get(key, default)
        if value not in allowed:
            raise fail(key, f"must be one of {', '.join(allowed)}, got {value!r}")
        out[key] = value
    return out


def _opt_str(value: Any, fail: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise fail(f"must be a non-empty string, got {value!r}")
    return value


def _opt_path(value: Any, base: Path, fail: Any) -> Path | None:
    text = _opt_str(value, fail)
    if text is None:
        return None
    p = Path(text).expanduser()
    return p if p.is_absolute() else base / p


def _port(value: Any, fail: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise fail(f"must be a TCP port 1-65535, got {value!r}")
    return value
