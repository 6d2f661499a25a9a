"""The tool registry: the whitelist of every check and action clusterdoc may run.

A tool is data (``ToolSpec``): name, description, typed parameters, category, level, whether it
mutates, the command templates it runs and the parser that turns their output into a
``ParseOutput``. The agent can only pick a registry name and fill its parameters; ``validate``
checks them and ``render`` shell-quotes every value before it reaches a command line.

CONTRACT (other layers code against these names):
    Param, ToolSpec, ParseInput, ParseOutput, Registry, UnknownToolError, InvalidParamsError,
    default_registry()
"""

from __future__ import annotations

import difflib
import math
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from diagnostics.types import CommandResult, Finding, Status, ValidationError

Category = Literal["compute", "memory", "network", "storage", "system", "job"]
Level = Literal["quick", "medium", "long"]
Kind = Literal["read_only", "mutating"]
Risk = Literal["low", "medium", "high"]
ParamType = Literal["int", "float", "str", "bool", "choice"]

LEVELS: tuple[Level, ...] = ("quick", "medium", "long")

# Characters a shell gives meaning to. A "str" param containing any of them is refused unless the
# param's own ``pattern`` explicitly allows it: quoting alone would make them harmless, but a value
# like ``$(reboot)`` is never a legitimate HCA, mount or service name, so refusing it is clearer.
SHELL_METACHARACTERS = frozenset(";&|$`<>(){}[]*?!~#\\'\"\n\r\t\x00")
MAX_STR_PARAM_LEN = 256

# ``{name}`` or ``{name?PREFIX}`` placeholders; only names declared as params are substituted, so
# braces in awk programs and the like stay as written.
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?:\?([^{}]*))?\}")
_INT_TEXT = re.compile(r"[+-]?\d{1,18}")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class UnknownToolError(ValidationError):
    """A tool name that is not in the registry (the message lists close names)."""


class InvalidParamsError(ValidationError):
    """A parameter is missing, unknown, of the wrong type or out of range (message names it)."""


@dataclass(frozen=True)
class Param:
    name: str
    type: ParamType
    description: str
    required: bool = True
    default: Any = None
    choices: tuple[str, ...] = ()
    pattern: str | None = None  # full-match regex for "str" params (e.g. HCA names, mounts)
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class ParseInput:
    host: str
    params: Mapping[str, Any]
    outputs: list[CommandResult]  # one per command template, in order


@dataclass
class ParseOutput:
    status: Status
    findings: list[Finding] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    error: str = ""


Parser = Callable[[ParseInput], ParseOutput]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    category: Category
    level: Level
    kind: Kind
    params: tuple[Param, ...]
    # Command templates; ``{param}`` placeholders are filled with shell-quoted validated values.
    commands: tuple[str, ...]
    parse: Parser
    risk: Risk = "low"
    # For mutating actions: the read-only check that proves the fix worked, and its params
    # (templated from the action's params by name).
    verify_with: str | None = None
    # For actions whose commands differ by scheduler (drain_node): scheduler -> templates.
    commands_by_scheduler: Mapping[str, tuple[str, ...]] | None = None
    # Per-command timeout the toolkit gives the executor (long tests such as nccl-tests need more).
    timeout_s: float = 30.0
    # A scheduler action (drain_node, resume_node): under Slurm it runs on the inventory's controller
    # with the node's Slurm name in param ``node`` (``Toolkit.place``, diagnostics.scheduling).
    scheduler_action: bool = False

    @property
    def read_only(self) -> bool:
        return self.kind == "read_only"


class Registry:
    """Holds ToolSpecs by name. Filled by ``default_registry()`` from diagnostics.checks and
    diagnostics.actions."""

    def __init__(self, specs: Iterable[ToolSpec] = ()) -> None:
        self._specs: dict[str, ToolSpec] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: ToolSpec) -> None:
        if spec.name in self._specs:
            raise ValueError(f"tool {spec.name!r} declared twice")
        self._specs[spec.name] = spec

    def names(self) -> list[str]:
        return sorted(self._specs)


    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __len__(self) -> int:
        return len(self._specs)

    def get(self, name: str) -> ToolSpec:
        spec = self._specs.get(name) if isinstance(name, str) else None
        if spec is None:
            close = difflib.get_close_matches(str(name), list(self._specs), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known tools: {', '.join(self.names())}"
            raise UnknownToolError(f"unknown tool {name!r}{hint}")
        return spec

    def specs(
        self,
        *,
        kind: Kind | None = None,
        level: Level | None = None,
        category: Category | None = None,
    ) -> list[ToolSpec]:
        """Specs matching every given filter (``level`` is exact; see ``up_to_level``), by name."""
        return [
            s
            for _, s in sorted(self._specs.items())
            if (kind is None or s.kind == kind)
            and (level is None or s.level == level)
            and (category is None or s.category == category)
        ]

    def up_to_level(self, level: Level, *, kind: Kind = "read_only") -> list[ToolSpec]:
        """Specs of ``kind`` whose level is ``level`` or cheaper: a medium sweep includes quick."""
        if level not in LEVELS:
            raise InvalidParamsError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}")
        allowed = LEVELS[: LEVELS.index(level) + 1]
        return [s for s in self.specs(kind=kind) if s.level in allowed]

    def validate(self, name: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Typed, range-checked, defaults applied; raises InvalidParamsError naming the param."""
        spec = self.get(name)
        return validate_params(spec, params)

    def render(self, name: str, params: Mapping[str, Any] | None, *, scheduler: str = "slurm") -> list[str]:
        """Validated params, each value shlex-quoted, substituted into the command templates."""
        spec = self.get(name)
        return render_commands(spec, validate_params(spec, params), scheduler=scheduler)

    def verify_call(self, name: str, params: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]] | None:
        """The check that verifies action ``name`` and its params (the action's params passed on
        by name where the check declares them); None when the action names no check."""
        spec = self.get(name)
        if not spec.verify_with:
            return None
        check = self.get(spec.verify_with)
        # The action's own defaults (e.g. drain_node's reason) must reach the verify check too.
        given = validate_params(spec, params)
        declared = {p.name for p in check.params}
        return check.name, validate_params(check, {k: v for k, v in given.items() if k in declared and v is not None})

    def describe(self) -> list[dict[str, Any]]:
        """JSON-able description of every tool (name, description, params…) for model prompts."""
        return [describe_spec(s) for _, s in sorted(self._specs.items())]


def _param_schema(p: Param) -> dict[str, Any]:
    d: dict[str, Any] = {"name": p.name, "type": p.type, "description": p.description, "required": p.required}
    if p.default is not None:
        d["default"] = p.default
    if p.choices:
        d["choices"] = list(p.choices)
    if p.pattern:
        d["pattern"] = p.pattern
    if p.min is not None:
        d["min"] = p.min
    if p.max is not None:
        d["max"] = p.max
    return d


def describe_spec(spec: ToolSpec) -> dict[str, Any]:
    """One tool as JSON-able data: what a model needs to choose it and fill its params."""
    d: dict[str, Any] = {
        "name": spec.name,
        "description": spec.description,
        "category": spec.category,
        "level": spec.level,
        "kind": spec.kind,
        "risk": spec.risk,
        "params": [_param_schema(p) for p in spec.params],
    }
    if spec.verify_with:
        d["verify_with"] = spec.verify_with
    return d


def _bad(spec: ToolSpec, param: str, why: str) -> InvalidParamsError:
    return InvalidParamsError(f"tool {spec.name}: param {param!r} {why}")


def _coerce(spec: ToolSpec, p: Param, value: Any) -> Any:
    """One param value checked and converted to its declared type (raises naming the param)."""
    if p.type == "int":
        if isinstance(value, bool):
            raise _bad(spec, p.name, f"must be an integer, got {value!r}")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
            value = int(value.strip())
        if not isinstance(value, int):
            raise _bad(spec, p.name, f"must be an integer, got {value!r}")
        _check_range(spec, p, value)
        return value
    if p.type == "float":
        if isinstance(value, bool):
            raise _bad(spec, p.name, f"must be a number, got {value!r}")
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise _bad(spec, p.name, f"must be a number, got {value!r}") from None
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise _bad(spec, p.name, f"must be a finite number, got {value!r}")
        _check_range(spec, p, value)
        return float(value)
    if p.type == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower() if isinstance(value, str | int) else None
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise _bad(spec, p.name, f"must be true or false, got {value!r}")
    if p.type == "choice":
        if not isinstance(value, str) or value not in p.choices:
            raise _bad(spec, p.name, f"must be one of {', '.join(p.choices)}; got {value!r}")
        return value
    if p.type == "str":
        if not isinstance(value, str):
            raise _bad(spec, p.name, f"must be a string, got {value!r}")
        if len(value) > MAX_STR_PARAM_LEN:
            raise _bad(spec, p.name, f"is longer than {MAX_STR_PARAM_LEN} characters")
        if p.pattern is not None:
            if not re.fullmatch(p.pattern, value):
                raise _bad(spec, p.name, f"{value!r} does not match the allowed pattern {p.pattern}")
            return value
        bad = sorted({c for c in value if c in SHELL_METACHARACTERS})
        if bad:
            raise _bad(spec, p.name, f"contains shell metacharacters {''.join(bad)!r}; refused")
        if value.startswith("-"):
            raise _bad(spec, p.name, f"may not start with '-' (it would be read as an option): {value!r}")
        if not value.strip():
            raise _bad(spec, p.name, "is empty")
        return value
    raise _bad(spec, p.name, f"has an unknown declared type {p.type!r}")  # a registry bug


def _check_range(spec: ToolSpec, p: Param, value: float) -> None:
    if p.min is not None and value < p.min:
        raise _bad(spec, p.name, f"must be >= {p.min:g}, got {value}")
    if p.max is not None and value > p.max:
        raise _bad(spec, p.name, f"must be <= {p.max:g}, got {value}")


def validate_params(spec: ToolSpec, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Checked params of ``spec``: unknown and missing names refused, defaults filled in,
    optional params without a value present as None."""
    if not isinstance(params, Mapping | None):
        raise InvalidParamsError(f"tool {spec.name}: params must be a mapping, got {type(params).__name__}")
    given = dict(params or {})
    declared = {p.name: p for p in spec.params}
    unknown = sorted(k for k in given if k not in declared)
    if unknown:
        known = ", ".join(declared) or "none"
        raise InvalidParamsError(f"tool {spec.name}: unknown param(s) {', '.join(map(repr, unknown))}; it takes: {known}")
    out: dict[str, Any] = {}
    missing: list[str] = []
    for p in spec.params:
        value = given.get(p.name)
        if value is None:
            if p.default is not None:
                value = p.default
            elif p.required:
                missing.append(p.name)
                continue
            else:
                out[p.name] = None
                continue
        out[p.name] = _coerce(spec, p, value)
    if missing:
        raise InvalidParamsError(f"tool {spec.name}: missing required param(s) {', '.join(map(repr, missing))}")
    return out


def _render_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return shlex.quote(str(value))


def templates_for(spec: ToolSpec, scheduler: str) -> tuple[str, ...]:
    """The command templates ``spec`` runs under ``scheduler``."""
    if spec.commands_by_scheduler:
        if scheduler in spec.commands_by_scheduler:
            return spec.commands_by_scheduler[scheduler]
        if not spec.commands:
            known = ", ".join(sorted(spec.commands_by_scheduler))
            raise InvalidParamsError(f"tool {spec.name} has no commands for scheduler {scheduler!r} (it supports: {known})")
    return spec.commands


def render_commands(spec: ToolSpec, params: Mapping[str, Any], *, scheduler: str = "slurm") -> list[str]:
    """Fill ``{name}`` / ``{name?PREFIX}`` placeholders of already-validated params.

    ``{name}`` becomes the shell-quoted value; an unset optional param there is refused (the
    command needs it: drain_node's Slurm ``node``); ``{name?PREFIX}`` becomes PREFIX followed by
    the quoted value, or nothing when unset, e.g. ``nvidia-smi -q -d CLOCK{gpu? -i }``.
    """
    declared = {p.name for p in spec.params}

    def fill(match: re.Match[str]) -> str:
        name, prefix = match.group(1), match.group(2)
        if name not in declared:
            return match.group(0)
        value = params.get(name)
        if value is None:
            if prefix is None:
                where = f" under scheduler {scheduler!r}" if spec.commands_by_scheduler else ""
                raise InvalidParamsError(f"tool {spec.name}: param {name!r} is required by its command{where}")
            return ""
        return f"{prefix or ''}{_render_value(value)}"

    return [_PLACEHOLDER.sub(fill, t) for t in templates_for(spec, scheduler)]


def default_registry() -> Registry:
    """Every declared check and action. Imported lazily so the registry module stays cheap and
    usable while diagnostics.checks / diagnostics.actions are absent."""
    import importlib

    specs: list[ToolSpec] = []
    for module_name, attr in (("diagnostics.checks", "CHECKS"), ("diagnostics.actions", "ACTIONS")):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        specs.extend(getattr(module, attr, ()))
    return Registry(specs)
