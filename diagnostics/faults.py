"""The fault catalog: every fault kind clusterdoc knows, read from data (``data/faults.yaml``).

One source of truth for the scenario loader and simulator (a kind's fields), the agent (checks,
explanations, remediation plans, symptom hints, runbooks), the knowledge base (category,
components) and the benchmark. Operators add kinds from their own YAML files (same schema); a bad
entry there is reported as ``file:line: ...`` and skipped, and the built-in catalog keeps working.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diagnostics.types import ValidationError
from diagnostics.yamlfile import YamlFileError, choice, read_yaml, str_list

BUILTIN_FILE = Path(__file__).parent / "data" / "faults.yaml"

# The benchmark's categories (formats/scenario.md, `custom` faults and `expect.category`).
CATEGORIES: tuple[str, ...] = (
    "network", "gpu-hardware", "storage", "memory", "scheduler", "configuration", "software-version",
    "thermal-power", "other",
)
SCOPES: tuple[str, ...] = ("gpu", "node", "job", "cluster")
SEVERITIES: tuple[str, ...] = ("critical", "warning")
FIELD_TYPES: tuple[str, ...] = ("int", "float", "str", "map", "choice")
# Actions a remediation plan may name: the scenario format's remediation names.
REMEDIATIONS: tuple[str, ...] = (
    "reset_gpu_clocks", "restore_power_limit", "enable_persistence_mode", "reset_gpu", "drain_node",
    "resume_node", "clean_shm", "restart_service",
)


def normalize_category(value: str) -> str:
    """'gpu_hardware', 'GPU-Hardware' and 'gpu hardware' all name the same category."""
    return value.strip().lower().replace("_", "-").replace(" ", "-")


class FaultCatalogError(ValidationError):
    """A fault catalog entry is wrong; the message starts with ``file:line``."""


@dataclass(frozen=True)
class FieldSpec:
    """One scenario field of a fault kind (besides `node`)."""

    name: str
    type: str
    required: bool = True
    default: Any = None
    choices: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class PlanStep:
    action: str
    params: tuple[str, ...] = ()


@dataclass(frozen=True)
class FaultKind:
    name: str
    description: str
    category: str
    scope: str
    severity: str
    checks: tuple[str, ...] = ()
    kb_checks: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    explains: tuple[str, ...] = ()  # '*' = every other kind
    remediation: tuple[tuple[PlanStep, ...], ...] = ()
    runbook: str | None = None
    simulated: bool = False
    fields: tuple[FieldSpec, ...] = ()
    cluster_wide_ok: bool = False
    source: str = ""  # file:line it came from


@dataclass(frozen=True)
class Symptom:
    """A phrase in an alert or log that makes some kinds worth checking first (a prior, never evidence)."""

    pattern: str
    weights: Mapping[str, float]


@dataclass(frozen=True)
class FaultCatalog:
    kinds: tuple[FaultKind, ...]
    symptoms: tuple[Symptom, ...] = ()
    symptom_kinds: frozenset[str] = frozenset()
    runbooks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    errors: tuple[str, ...] = ()  # problems in operator files, each "file:line: ..."

    @functools.cached_property
    def by_name(self) -> dict[str, FaultKind]:
        return {k.name: k for k in self.kinds}

    def get(self, name: str | None) -> FaultKind | None:
        return self.by_name.get(name) if name else None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.kinds)

    @property
    def simulated_names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.kinds if k.simulated)

    def explained_by(self, cause: str) -> frozenset[str]:
        kind = self.get(cause)
        if kind is None:
            return frozenset()
        if "*" in kind.explains:
            return frozenset(self.names) - {cause}
        return frozenset(kind.explains)

    def category_of(self, name: str | None) -> str | None:
        kind = self.get(name)
        return kind.category if kind else None


def _field_spec(raw: Any) -> FieldSpec:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
        raise ValueError("field 'fields': each entry needs a 'name'")
    ftype = raw.get("type", "str")
    if ftype not in FIELD_TYPES:
        raise ValueError(f"field 'fields.{raw['name']}.type': {ftype!r} is not one of {', '.join(FIELD_TYPES)}")
    return FieldSpec(name=raw["name"], type=ftype, required=bool(raw.get("required", True)),
                     default=raw.get("default"), choices=str_list(raw.get("choices"), "choices"),
                     min=raw.get("min"), max=raw.get("max"))


def _plans(raw: Any, known_actions: Iterable[str]) -> tuple[tuple[PlanStep, ...], ...]:
    if raw is None:
        return ()
    allowed = set(known_actions)
    plans: list[tuple[PlanStep, ...]] = []
    if not isinstance(raw, list):
        raise ValueError("field 'remediation': must be a list of plans (each a list of steps)")
    for plan in raw:
        if not isinstance(plan, list):
            raise ValueError("field 'remediation': each plan must be a list of {action, params}")
        steps = []
        for step in plan:
            action = step.get("action") if isinstance(step, Mapping) else None
            if action not in allowed:
                raise ValueError(f"field 'remediation': unknown action {action!r}; known: {', '.join(sorted(allowed))}")
            steps.append(PlanStep(action, str_list(step.get("params"), "remediation.params")))
        plans.append(tuple(steps))
    return tuple(plans)


def _kind(raw: Mapping[str, Any], where: str, known_checks: frozenset[str] | None) -> FaultKind:
    name = raw.get("name")
    if not isinstance(name, str) or not name.replace("_", "").isalnum() or not name[:1].isalpha():
        raise ValueError(f"field 'name': {name!r} must be a lower_case identifier")
    category = normalize_category(str(raw.get("category", "")))
    if category not in CATEGORIES:
        raise ValueError(f"field 'category': {raw.get('category')!r} is not one of {', '.join(CATEGORIES)}")
    scope = choice(raw, "scope", SCOPES, "node")
    severity = choice(raw, "severity", SEVERITIES, "warning")
    description = raw.get("description")
    if not isinstance(description, str) or not description.strip():
        raise ValueError("field 'description': a one-line plain description is required")
    checks = str_list(raw.get("checks"), "checks")
    kb_checks = str_list(raw.get("kb_checks"), "kb_checks")
    if known_checks is not None:
        unknown = [c for c in (*checks, *kb_checks) if c not in known_checks]
        if unknown:
            raise ValueError(f"field 'checks': unknown check name(s) {', '.join(unknown)}")
    return FaultKind(
        name=name, description=description.strip(), category=category, scope=scope, severity=severity,
        checks=checks, kb_checks=kb_checks or checks, components=str_list(raw.get("components"), "components"),
        explains=str_list(raw.get("explains"), "explains"),
        remediation=_plans(raw.get("remediation"), REMEDIATIONS),
        runbook=raw.get("runbook"), simulated=bool(raw.get("simulated", False)),
        fields=tuple(_field_spec(f) for f in raw.get("fields") or ()),
        cluster_wide_ok=bool(raw.get("cluster_wide_ok", False)), source=where,
    )


def _read(path: Path) -> Any:
    try:
        return read_yaml(path)
    except YamlFileError as exc:
        raise FaultCatalogError(str(exc)) from exc


def _parse(path: Path, data: Any, seen: set[str], known_checks: frozenset[str] | None,
           strict: bool) -> tuple[list[FaultKind], list[Symptom], dict[str, tuple[str, ...]], list[str]]:
    errors: list[str] = []
    if not isinstance(data, Mapping) or not isinstance(data.get("kinds", []), list):
        raise FaultCatalogError(f"{path}: a fault catalog is a mapping with a 'kinds' list")
    kinds: list[FaultKind] = []
    for raw in data.get("kinds") or ():
        line = raw.get("__line__", "?") if isinstance(raw, Mapping) else "?"
        where = f"{path}:{line}"
        try:
            if not isinstance(raw, Mapping):
                raise ValueError("each kind must be a mapping")
            kind = _kind(raw, where, known_checks)
            if kind.name in seen:
                raise ValueError(f"field 'name': duplicate kind {kind.name!r}")
        except ValueError as exc:
            if strict:
                raise FaultCatalogError(f"{where}: {exc}") from None
            errors.append(f"{where}: {exc}")
            continue
        seen.add(kind.name)
        kinds.append(kind)
    symptoms = [Symptom(s["pattern"], {k: float(v) for k, v in s["weights"].items() if k != "__line__"})
                for s in data.get("symptoms") or ()]
    runbooks = {k: tuple(v) for k, v in (data.get("runbooks") or {}).items() if k != "__line__"}
    return kinds, symptoms, runbooks, errors


@functools.lru_cache(maxsize=1)
def builtin_catalog() -> FaultCatalog:
    """The shipped catalog; any error in it is a bug, so it raises."""
    data = _read(BUILTIN_FILE)
    kinds, symptoms, runbooks, _ = _parse(BUILTIN_FILE, data, set(), None, strict=True)
    return FaultCatalog(tuple(kinds), tuple(symptoms), frozenset(data.get("symptom_kinds") or ()), runbooks)


def load_catalog(extra_files: Sequence[str | Path] = (), known_checks: Iterable[str] | None = None) -> FaultCatalog:
    """The built-in catalog plus operator files. A bad operator entry (or file) is skipped and
    reported in ``errors`` as ``file:line: ...``; the built-in kinds always load."""
    base = builtin_catalog()
    if not extra_files:
        return base
    checks = frozenset(known_checks) if known_checks is not None else None
    seen = set(base.names)
    kinds, symptoms, runbooks = list(base.kinds), list(base.symptoms), dict(base.runbooks)
    errors: list[str] = []
    for name in extra_files:
        path = Path(name)
        try:
            more, more_symptoms, more_runbooks, errs = _parse(path, _read(path), seen, checks, strict=False)
        except FaultCatalogError as exc:
            errors.append(str(exc))
            continue
        except OSError as exc:
            errors.append(f"{path}: cannot read: {exc.strerror or exc}")
            continue
        kinds += more
        symptoms += more_symptoms
        runbooks.update(more_runbooks)
        errors += errs
    return FaultCatalog(tuple(kinds), tuple(symptoms), base.symptom_kinds, runbooks, tuple(errors))


def catalog() -> FaultCatalog:
    """The catalog in force: the built-in one plus any kinds registered at run time."""
    return _active[0]


_active: list[FaultCatalog] = []


def use_catalog(cat: FaultCatalog | None) -> None:
    """Install the catalog the process uses (the composition root does this from config)."""
    _active[:] = [cat or builtin_catalog()]


def add_kind(kind: FaultKind) -> FaultCatalog:
    """Add one kind at run time (the learning loop); a duplicate name is refused."""
    current = catalog()
    if kind.name in current.by_name:
        raise FaultCatalogError(f"{kind.source or '<runtime>'}: field 'name': duplicate kind {kind.name!r}")
    updated = FaultCatalog((*current.kinds, kind), current.symptoms, current.symptom_kinds, current.runbooks,
                           current.errors)
    use_catalog(updated)
    return updated


use_catalog(None)
