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

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from diagnostics.types import CommandResult, Finding, Status, ValidationError

Category = Literal["compute", "memory", "network", "storage", "system", "job"]
Level = Literal["quick", "medium", "long"]
Kind = Literal["read_only", "mutating"]
Risk = Literal["low", "medium", "high"]
ParamType = Literal["int", "float", "str", "bool", "choice"]


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

    def get(self, name: str) -> ToolSpec:
        raise NotImplementedError  # filled in by the toolkit work (raises UnknownToolError)

    def specs(
        self,
        *,
        kind: Kind | None = None,
        level: Level | None = None,
        category: Category | None = None,
    ) -> list[ToolSpec]:
        raise NotImplementedError

    def validate(self, name: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Typed, range-checked, defaults applied; raises InvalidParamsError naming the param."""
        raise NotImplementedError

    def render(self, name: str, params: Mapping[str, Any] | None, *, scheduler: str = "slurm") -> list[str]:
        """Validated params, each value shlex-quoted, substituted into the command templates."""
        raise NotImplementedError

    def describe(self) -> list[dict[str, Any]]:
        """JSON-able description of every tool (name, description, params…) for model prompts."""
        raise NotImplementedError


def default_registry() -> Registry:
    raise NotImplementedError
