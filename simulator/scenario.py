"""The scenario format of ../shared/formats/scenario.md: a simulated cluster, injected faults,
the alert and the expected diagnosis.

``load_scenario(path)`` reads YAML; ``parse_scenario(data, source)`` takes an already-decoded
dict (e.g. a scenario embedded inline in a benchmark case). Every mistake raises
``ScenarioError`` naming the source, the line (for YAML files) and the field. Unknown extra
fields are ignored so files written for newer versions still load.

Extensions (all optional, compatible): ``fault.at_s`` (onset time in simulated seconds),
``cluster.driver_version`` / ``cuda_version`` / ``nccl_version``, ``cluster.hcas_per_node``,
``workload.precision`` / ``workload.name``, and ``node: null`` for the kinds in
``CLUSTER_WIDE_KINDS`` (then the fault applies to every node).

Version 2: ``kind: custom`` faults (kernel-log and job-log lines, command overrides, ``hang``),
``node: all`` for any kind, ``expect.category`` and ``expect.verdict``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from diagnostics.faults import REMEDIATIONS, builtin_catalog
from diagnostics.types import ValidationError

FieldType = Literal["int", "float", "str", "map", "choice"]

INTERCONNECTS = ("infiniband", "roce", "ethernet")
SCHEDULERS = ("slurm", "kubernetes", "none")
WORKLOAD_KINDS = ("llm_training", "llm_inference", "none")
VERDICTS = ("verified", "suspected", "unexplained", "clean")
CUSTOM = "custom"  # version 2: a fault with no kind of its own
ALL_NODES = "all"  # version 2: `node: all` applies a fault to every node
THROTTLE_REASONS = ("hw_slowdown", "hw_thermal_slowdown", "sw_power_cap", "sw_thermal_slowdown")


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: FieldType
    required: bool = True
    default: Any = None
    choices: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None


def _field(spec: Any) -> FieldSpec:
    return FieldSpec(spec.name, spec.type, spec.required, spec.default, spec.choices, spec.min, spec.max)


# kind -> its fields besides `node`, read from the fault catalog (diagnostics/data/faults.yaml):
# the kinds the simulator can plant are the catalog's `simulated` kinds.
FAULT_FIELDS: dict[str, tuple[FieldSpec, ...]] = {
    k.name: tuple(_field(f) for f in k.fields) for k in builtin_catalog().kinds if k.simulated
}
FAULT_KINDS: tuple[str, ...] = tuple(FAULT_FIELDS)

# Kinds that may omit `node` (or set it null): they then apply to every node of the cluster.
CLUSTER_WIDE_KINDS = frozenset(k.name for k in builtin_catalog().kinds if k.simulated and k.cluster_wide_ok)


class ScenarioError(ValidationError):
    """A scenario could not be read; the message names the source, line and field."""

    def __init__(self, source: str, field_path: str, problem: str, line: int | None = None) -> None:
        self.source = source
        self.field = field_path
        self.line = line
        self.problem = problem
        where = f"{source}:{line}" if line is not None else source
        label = f" field '{field_path}'" if field_path else ""
        super().__init__(f"{where}:{label}: {problem}" if label else f"{where}: {problem}")


@dataclass(frozen=True)
class WorkloadSpec:
    kind: str = "llm_training"
    model_params: float = 7.0e9
    tokens_per_step: float = 4_194_304.0
    precision: str = "bf16"
    name: str = "llama-7b-pretrain"


@dataclass(frozen=True)
class ClusterSpec:
    nodes: int
    names: tuple[str, ...]
    gpus_per_node: int
    gpu: str
    interconnect: str = "infiniband"
    scheduler: str = "slurm"
    workload: WorkloadSpec | None = None
    hcas_per_node: int | None = None
    driver_version: str = "535.161.08"
    cuda_version: str = "12.2"
    nccl_version: str = "2.18.5"


@dataclass(frozen=True)
class CommandOverride:
    """What one command prints on the faulty node (``custom`` faults): the key is the start of the
    command line; ``hang`` means it never returns (the caller sees a timeout)."""

    prefix: str
    stdout: str = ""
    stderr: str = ""
    exit: int = 0
    hang: bool = False

    def to_dict(self) -> dict[str, Any]:
        if self.hang:
            return {"hang": True}
        return {"stdout": self.stdout, "stderr": self.stderr, "exit": self.exit}


@dataclass(frozen=True)
class CustomFault:
    """A fault with no kind of its own (format version 2): exactly what it lists, nothing else."""

    category: str
    kernel_log: tuple[str, ...] = ()
    job_log: tuple[str, ...] = ()
    commands: tuple[CommandOverride, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"category": self.category}
        if self.kernel_log:
            out["kernel_log"] = list(self.kernel_log)
        if self.job_log:
            out["job_log"] = list(self.job_log)
        if self.commands:
            out["commands"] = {c.prefix: c.to_dict() for c in self.commands}
        return out


@dataclass(frozen=True)
class Fault:
    kind: str
    node: str | None  # None: every node (`node: all`, or null for CLUSTER_WIDE_KINDS)
    gpu: int | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)  # the kind's fields, defaults applied
    at_s: float = 0.0  # onset in simulated seconds (extension)
    custom: CustomFault | None = None  # kind == "custom"

    def get(self, name: str, default: Any = None) -> Any:
        value = self.fields.get(name)
        return default if value is None else value

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "node": self.node if self.node is not None else "all"}
        if self.gpu is not None:
            out["gpu"] = self.gpu
        out.update({k: (dict(v) if isinstance(v, Mapping) else v) for k, v in self.fields.items()})
        if self.custom is not None:
            out.update(self.custom.to_dict())
        if self.at_s:
            out["at_s"] = self.at_s
        return out


@dataclass(frozen=True)
class Expect:
    node: str | None = None
    gpu: int | None = None
    fault: str | None = None
    remediation: tuple[str, ...] = ()
    category: str | None = None  # version 2: the category a right diagnosis names
    verdict: str | None = None  # version 2: verified | suspected | unexplained | clean

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"node": self.node, "gpu": self.gpu, "fault": self.fault,
                               "remediation": list(self.remediation)}
        if self.category is not None:
            out["category"] = self.category
        if self.verdict is not None:
            out["verdict"] = self.verdict
        return out


@dataclass(frozen=True)
class Scenario:
    id: str
    cluster: ClusterSpec
    description: str = ""
    seed: int = 0
    faults: tuple[Fault, ...] = ()
    alert: str | None = None
    expect: Expect | None = None
    source: str = "<inline>"

    @property
    def hosts(self) -> list[str]:
        return list(self.cluster.names)

    def to_dict(self) -> dict[str, Any]:
        c = self.cluster
        cluster: dict[str, Any] = {
            "names": list(c.names),
            "gpus_per_node": c.gpus_per_node,
            "gpu": c.gpu,
            "interconnect": c.interconnect,
            "scheduler": c.scheduler,
            "driver_version": c.driver_version,
            "cuda_version": c.cuda_version,
            "nccl_version": c.nccl_version,
        }
        if c.hcas_per_node is not None:
            cluster["hcas_per_node"] = c.hcas_per_node
        if c.workload is not None:
            w = c.workload
            cluster["workload"] = {
                "kind": w.kind,
                "model_params": w.model_params,
                "tokens_per_step": w.tokens_per_step,
                "precision": w.precision,
                "name": w.name,
            }
        out: dict[str, Any] = {
            "id": self.id,
            "description": self.description,
            "cluster": cluster,
            "seed": self.seed,
            "faults": [f.to_dict() for f in self.faults],
        }
        if self.alert is not None:
            out["alert"] = self.alert
        if self.expect is not None:
            out["expect"] = self.expect.to_dict()
        return out


# --------------------------------------------------------------------------- line numbers


def _line_map(node: yaml.Node, path: tuple[str | int, ...], out: dict[tuple[str | int, ...], int]) -> None:
    """Map every field path to the 1-based line where it appears (the key's line for mappings)."""
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            out[(*path, key)] = key_node.start_mark.line + 1
            _line_map(value_node, (*path, key), out)
            # the key's line wins over the value's own start
            out[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, (*path, i), out)


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario YAML file; every error names the file, line and field."""
    p = Path(path)
    source = str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ScenarioError(source, "", "no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(source, "", f"cannot read: {exc}") from exc
    return parse_scenario_text(text, source)


def parse_scenario_text(text: str, source: str = "<string>") -> Scenario:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ScenarioError(source, "", f"malformed YAML: {exc.problem or exc}", line) from exc
    except yaml.YAMLError as exc:
        raise ScenarioError(source, "", f"malformed YAML: {exc}") from exc
    lines: dict[tuple[str | int, ...], int] = {}
    if root is not None:
        _line_map(root, (), lines)
    return parse_scenario(data, source, lines=lines)


# --------------------------------------------------------------------------- parsing


class _Reader:
    """Field access with errors that carry the field path and its line."""

    def __init__(self, source: str, lines: Mapping[tuple[str | int, ...], int] | None) -> None:
        self.source = source
        self.lines = lines or {}

    def error(self, path: tuple[str | int, ...], problem: str) -> ScenarioError:
        line = None
        probe = path
        while line is None:
            line = self.lines.get(probe)
            if not probe:
                break
            probe = probe[:-1]
        return ScenarioError(self.source, _path_text(path), problem, line)

    def mapping(self, value: Any, path: tuple[str | int, ...]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(path, f"expected a mapping, got {_describe(value)}")
        return value

    def get(
        self,
        data: Mapping[str, Any],
        path: tuple[str | int, ...],
        spec: FieldSpec,
    ) -> Any:
        name = spec.name
        fpath = (*path, name)
        if name not in data or data[name] is None:
            if spec.required:
                raise self.error(fpath, "missing required field")
            return spec.default
        return self.convert(data[name], fpath, spec)

    def convert(self, value: Any, fpath: tuple[str | int, ...], spec: FieldSpec) -> Any:
        t = spec.type
        if t == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                else:
                    raise self.error(fpath, f"expected an integer, got {_describe(value)}")
        elif t == "float":
            if isinstance(value, bool) or not isinstance(value, int | float):
                # YAML 1.1 reads 7.0e9 as a float but "7e9" as a string: accept numeric strings
                try:
                    value = float(str(value))
                except ValueError:
                    raise self.error(fpath, f"expected a number, got {_describe(value)}") from None
            value = float(value)
            if value != value:  # NaN
                raise self.error(fpath, "expected a number, got NaN")
        elif t == "str":
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise self.error(fpath, f"expected a string, got {_describe(value)}")
            value = str(value)
        elif t == "choice":
            if not isinstance(value, str) or value not in spec.choices:
                raise self.error(fpath, f"expected one of {', '.join(spec.choices)}; got {_describe(value)}")
        elif t == "map":
            if not isinstance(value, Mapping):
                raise self.error(fpath, f"expected a mapping, got {_describe(value)}")
            return {str(k): ("" if v is None else str(v)) for k, v in value.items()}
        if spec.min is not None and value < spec.min:
            raise self.error(fpath, f"must be >= {spec.min:g}, got {value}")
        if spec.max is not None and value > spec.max:
            raise self.error(fpath, f"must be <= {spec.max:g}, got {value}")
        return value


def _path_text(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def default_names(count: int) -> tuple[str, ...]:
    width = max(2, len(str(count)))
    return tuple(f"node-{i:0{width}d}" for i in range(1, count + 1))


def parse_scenario(
    data: Any,
    source: str = "<inline>",
    *,
    lines: Mapping[tuple[str | int, ...], int] | None = None,
) -> Scenario:
    """Build a Scenario from decoded YAML/JSON; raises ScenarioError naming the bad field."""
    r = _Reader(source, lines)
    if data is None:
        raise r.error((), "empty scenario")
    top = r.mapping(data, ())
    sid = r.get(top, (), FieldSpec("id", "str"))
    description = r.get(top, (), FieldSpec("description", "str", required=False, default=""))
    seed = r.get(top, (), FieldSpec("seed", "int", required=False, default=0))
    alert = r.get(top, (), FieldSpec("alert", "str", required=False, default=None))
    if "cluster" not in top or top["cluster"] is None:
        raise r.error(("cluster",), "missing required field")
    cluster = _parse_cluster(r, r.mapping(top["cluster"], ("cluster",)))
    raw_faults = top.get("faults") or []
    if not isinstance(raw_faults, list):
        raise r.error(("faults",), f"expected a list, got {_describe(raw_faults)}")
    faults = tuple(_parse_fault(r, item, i, cluster) for i, item in enumerate(raw_faults))
    expect = None
    if top.get("expect") is not None:
        expect = _parse_expect(r, r.mapping(top["expect"], ("expect",)), cluster)
    return Scenario(
        id=sid,
        cluster=cluster,
        description=description,
        seed=seed,
        faults=faults,
        alert=alert,
        expect=expect,
        source=source,
    )


def _parse_cluster(r: _Reader, c: Mapping[str, Any]) -> ClusterSpec:
    p: tuple[str | int, ...] = ("cluster",)
    names: tuple[str, ...]
    if c.get("names") is not None:
        raw = c["names"]
        if not isinstance(raw, list) or not raw:
            raise r.error((*p, "names"), f"expected a non-empty list of node names, got {_describe(raw)}")
        for i, n in enumerate(raw):
            if not isinstance(n, str) or not n.strip() or any(ch.isspace() for ch in n):
                raise r.error((*p, "names", i), f"expected a node name without spaces, got {_describe(n)}")
        if len(set(raw)) != len(raw):
            dup = next(n for n in raw if raw.count(n) > 1)
            raise r.error((*p, "names"), f"node name {dup!r} given twice")
        names = tuple(raw)
        if c.get("nodes") is not None:
            count = r.get(c, p, FieldSpec("nodes", "int", min=1))
            if count != len(names):
                raise r.error((*p, "nodes"), f"nodes is {count} but names lists {len(names)} nodes")
    else:
        count = r.get(c, p, FieldSpec("nodes", "int", min=1, max=100_000))
        names = default_names(count)
    gpus = r.get(c, p, FieldSpec("gpus_per_node", "int", required=False, default=8, min=1, max=64))
    gpu = r.get(c, p, FieldSpec("gpu", "str"))
    try:
        from perf.catalog import get_gpu

        gpu = get_gpu(gpu).name
    except ValueError as exc:  # UnknownHardwareError (a ValueError or ValidationError subclass)
        raise r.error((*p, "gpu"), str(exc)) from None
    except ValidationError as exc:
        raise r.error((*p, "gpu"), str(exc)) from None
    interconnect = r.get(
        c, p, FieldSpec("interconnect", "choice", required=False, default="infiniband", choices=INTERCONNECTS)
    )
    scheduler = r.get(c, p, FieldSpec("scheduler", "choice", required=False, default="slurm", choices=SCHEDULERS))
    hcas = r.get(c, p, FieldSpec("hcas_per_node", "int", required=False, default=None, min=0, max=32))
    driver = r.get(c, p, FieldSpec("driver_version", "str", required=False, default="535.161.08"))
    cuda = r.get(c, p, FieldSpec("cuda_version", "str", required=False, default="12.2"))
    nccl = r.get(c, p, FieldSpec("nccl_version", "str", required=False, default="2.18.5"))
    workload = None
    if c.get("workload") is not None:
        wp = (*p, "workload")
        w = r.mapping(c["workload"], wp)
        kind = r.get(w, wp, FieldSpec("kind", "choice", required=False, default="llm_training", choices=WORKLOAD_KINDS))
        workload = WorkloadSpec(
            kind=kind,
            model_params=r.get(w, wp, FieldSpec("model_params", "float", required=False, default=7.0e9, min=1)),
            tokens_per_step=r.get(
                w, wp, FieldSpec("tokens_per_step", "float", required=False, default=4_194_304.0, min=1)
            ),
            precision=r.get(w, wp, FieldSpec("precision", "str", required=False, default="bf16")),
            name=r.get(w, wp, FieldSpec("name", "str", required=False, default="llama-7b-pretrain")),
        )
    return ClusterSpec(
        nodes=len(names),
        names=names,
        gpus_per_node=gpus,
        gpu=gpu,
        interconnect=interconnect,
        scheduler=scheduler,
        workload=workload,
        hcas_per_node=hcas,
        driver_version=driver,
        cuda_version=cuda,
        nccl_version=nccl,
    )


def _parse_fault(r: _Reader, item: Any, index: int, cluster: ClusterSpec) -> Fault:
    p: tuple[str | int, ...] = ("faults", index)
    f = r.mapping(item, p)
    if f.get("kind") is None:
        raise r.error((*p, "kind"), "missing required field")
    kind = f["kind"]
    if kind == CUSTOM:
        return _parse_custom(r, f, p, cluster)
    if not isinstance(kind, str) or kind not in FAULT_FIELDS:
        import difflib

        close = difflib.get_close_matches(str(kind), FAULT_KINDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f"; known kinds: {', '.join(FAULT_KINDS)}"
        raise r.error((*p, "kind"), f"unknown fault kind {kind!r}{hint}")
    node = _fault_node(r, f, p, cluster, cluster_wide_ok=kind in CLUSTER_WIDE_KINDS, kind=kind)
    fields: dict[str, Any] = {}
    for spec in FAULT_FIELDS[kind]:
        fields[spec.name] = r.get(f, p, spec)
    gpu = fields.pop("gpu", None)
    if gpu is not None and gpu >= cluster.gpus_per_node:
        raise r.error(
            (*p, "gpu"), f"GPU index {gpu} does not exist: the nodes have {cluster.gpus_per_node} GPUs (0-{cluster.gpus_per_node - 1})"
        )
    if kind == "nvlink_down":
        from perf.catalog import get_gpu

        links = get_gpu(cluster.gpu).nvlink_links
        if int(fields["link"]) >= links:
            # A link the GPU does not have would inject nothing and make the scenario silently fault-free.
            have = f"links 0-{links - 1}" if links else "no NVLink"
            raise r.error((*p, "link"), f"NVLink {fields['link']} does not exist: {cluster.gpu} has {have}")
    if kind == "pcie_downgrade" and fields.get("width") is None and fields.get("gen") is None:
        raise r.error(p, "pcie_downgrade needs 'width', 'gen' or both")
    if kind in ("ib_port_down", "ib_link_degraded") and cluster.interconnect == "ethernet":
        raise r.error((*p, "kind"), f"{kind} needs an infiniband or roce cluster, this one is ethernet")
    if kind in ("ib_port_down", "ib_link_degraded"):
        hca = str(fields["hca"])
        n_hcas = _hca_count(cluster)
        valid = {f"mlx5_{i}" for i in range(n_hcas)}
        if hca not in valid:
            raise r.error((*p, "hca"), f"unknown HCA {hca!r}; nodes have mlx5_0 … mlx5_{n_hcas - 1}")
    at_s = r.get(f, p, FieldSpec("at_s", "float", required=False, default=0.0, min=0))
    return Fault(kind=kind, node=node, gpu=gpu, fields=fields, at_s=at_s)


def _fault_node(r: _Reader, f: Mapping[str, Any], p: tuple[str | int, ...], cluster: ClusterSpec, *,
                cluster_wide_ok: bool, kind: str) -> str | None:
    """The fault's node; None for `node: all` (any kind) or a missing node of a cluster-wide kind."""
    node = f.get("node")
    if node == ALL_NODES:
        return None
    if node is None:
        if not cluster_wide_ok:
            raise r.error((*p, "node"), f"missing required field (a {kind} fault needs the node it is on, or 'all')")
        return None
    if not isinstance(node, str) or node not in cluster.names:
        raise r.error((*p, "node"), f"unknown node {node!r}; the cluster has {_names_hint(cluster.names)} (or 'all')")
    return node


def _lines(r: _Reader, f: Mapping[str, Any], p: tuple[str | int, ...], name: str) -> tuple[str, ...]:
    raw = f.get(name)
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise r.error((*p, name), f"expected a list of log lines, got {_describe(raw)}")
    out: list[str] = []
    for i, line in enumerate(raw):
        if not isinstance(line, str | int | float) or isinstance(line, bool):
            raise r.error((*p, name, i), f"expected a log line (text), got {_describe(line)}")
        out.extend(str(line).splitlines() or [""])
    return tuple(out)


def strip_wrappers(command: str) -> str:
    """A command line without the sudo / timeout N wrappers the checks put around tools."""
    words = command.split()
    while words and words[0] in ("sudo", "env", "nice", "command", "exec"):
        words = words[1:]
    if words and words[0] == "timeout":
        words = words[1:]
        while words and words[0].startswith("-"):
            words = words[2:] if words[0] in ("-s", "-k", "--signal", "--kill-after") else words[1:]
        words = words[1:]
    return " ".join(words)


@functools.lru_cache(maxsize=1)
def registry_commands() -> tuple[str, ...]:
    """The literal start of every command the registry's tools run (each shell segment, wrappers
    stripped, up to the first parameter): what a ``custom`` command override may name."""
    import re

    from diagnostics.registry import InvalidParamsError, default_registry, templates_for

    reg = default_registry()
    out: set[str] = set()
    for name in reg.names():
        spec = reg.get(name)
        for scheduler in SCHEDULERS:
            try:
                templates = templates_for(spec, scheduler)
            except InvalidParamsError:  # a tool with no commands for this scheduler
                continue
            for template in templates:
                for segment in re.split(r";|&&|\|\||\|", template):
                    literal = strip_wrappers(segment.split("{", 1)[0].strip())
                    if literal:
                        out.add(literal)
    return tuple(sorted(out))


def _known_command(prefix: str) -> bool:
    key = strip_wrappers(prefix)
    return bool(key) and any(c.startswith(key) or key.startswith(c) for c in registry_commands())


def _parse_custom(r: _Reader, f: Mapping[str, Any], p: tuple[str | int, ...], cluster: ClusterSpec) -> Fault:
    node = _fault_node(r, f, p, cluster, cluster_wide_ok=False, kind=CUSTOM)
    from diagnostics.faults import CATEGORIES, normalize_category

    raw_cat = f.get("category")
    if raw_cat is None:
        raise r.error((*p, "category"), f"missing required field (one of {', '.join(CATEGORIES)})")
    category = normalize_category(str(raw_cat))
    if category not in CATEGORIES:
        raise r.error((*p, "category"), f"unknown category {raw_cat!r}; expected one of {', '.join(CATEGORIES)}")
    commands: list[CommandOverride] = []
    raw_cmds = f.get("commands")
    if raw_cmds is not None:
        cp = (*p, "commands")
        for prefix, spec in r.mapping(raw_cmds, cp).items():
            kp = (*cp, str(prefix))
            if not isinstance(prefix, str) or not prefix.strip():
                raise r.error(kp, "a command override needs the start of a command line as its key")
            if not _known_command(prefix):
                raise r.error(kp, f"no registry check runs a command starting with {prefix!r}; "
                                  "an override there would never be seen")
            spec = r.mapping(spec, kp)
            hang = spec.get("hang", False)
            if not isinstance(hang, bool):
                raise r.error((*kp, "hang"), f"expected true or false, got {_describe(hang)}")
            code = r.get(spec, kp, FieldSpec("exit", "int", required=False, default=0, min=0, max=255))
            out = r.get(spec, kp, FieldSpec("stdout", "str", required=False, default=""))
            err = r.get(spec, kp, FieldSpec("stderr", "str", required=False, default=""))
            if not hang and "stdout" not in spec and "stderr" not in spec and "exit" not in spec:
                raise r.error(kp, "an override gives stdout, stderr, exit or hang: true")
            commands.append(CommandOverride(prefix.strip(), out, err, code, hang))
    custom = CustomFault(category=category, kernel_log=_lines(r, f, p, "kernel_log"),
                         job_log=_lines(r, f, p, "job_log"), commands=tuple(commands))
    if not (custom.kernel_log or custom.job_log or custom.commands):
        raise r.error(p, "a custom fault lists at least one of kernel_log, job_log, commands")
    at_s = r.get(f, p, FieldSpec("at_s", "float", required=False, default=0.0, min=0))
    return Fault(kind=CUSTOM, node=node, at_s=at_s, custom=custom)


def _hca_count(cluster: ClusterSpec) -> int:
    if cluster.hcas_per_node is not None:
        return max(cluster.hcas_per_node, 1)
    # One rail per GPU is the usual layout for IB training nodes; at least one HCA.
    return max(cluster.gpus_per_node, 1) if cluster.interconnect != "ethernet" else 1


def hca_count(cluster: ClusterSpec) -> int:
    """How many HCAs (mlx5_N) each node has."""
    return _hca_count(cluster)


def _names_hint(names: Sequence[str]) -> str:
    if len(names) <= 6:
        return ", ".join(names)
    return f"{names[0]} … {names[-1]} ({len(names)} nodes)"


def _parse_expect(r: _Reader, e: Mapping[str, Any], cluster: ClusterSpec) -> Expect:
    p: tuple[str | int, ...] = ("expect",)
    node = e.get("node")
    if node is not None and (not isinstance(node, str) or node not in cluster.names):
        raise r.error((*p, "node"), f"unknown node {node!r}; the cluster has {_names_hint(cluster.names)}")
    gpu = r.get(e, p, FieldSpec("gpu", "int", required=False, default=None, min=0))
    if gpu is not None and gpu >= cluster.gpus_per_node:
        raise r.error((*p, "gpu"), f"GPU index {gpu} does not exist (nodes have {cluster.gpus_per_node} GPUs)")
    fault = e.get("fault")
    if fault is not None and (not isinstance(fault, str) or (fault not in FAULT_FIELDS and fault != CUSTOM)):
        raise r.error((*p, "fault"), f"unknown fault kind {fault!r}; known kinds: {', '.join(FAULT_KINDS)}, custom")
    from diagnostics.faults import CATEGORIES, normalize_category

    category = e.get("category")
    if category is not None:
        category = normalize_category(str(category))
        if category not in CATEGORIES:
            raise r.error((*p, "category"), f"unknown category {e.get('category')!r}; expected one of "
                                            f"{', '.join(CATEGORIES)}")
    verdict = r.get(e, p, FieldSpec("verdict", "choice", required=False, default=None, choices=VERDICTS))
    raw = e.get("remediation") or []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise r.error((*p, "remediation"), f"expected a list of remediation names, got {_describe(raw)}")
    for i, name in enumerate(raw):
        if name not in REMEDIATIONS:
            raise r.error(
                (*p, "remediation", i), f"unknown remediation {name!r}; known: {', '.join(REMEDIATIONS)}"
            )
    return Expect(node=node, gpu=gpu, fault=fault, remediation=tuple(raw), category=category, verdict=verdict)
