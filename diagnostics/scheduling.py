"""Where scheduler actions run: Slurm's ``scontrol update`` on the controller, for a node by its
Slurm name.

``drain_node`` / ``resume_node`` change the scheduler's view of a node, so under Slurm they run on
the cluster's controller host (the inventory's ``scheduler.controller``) and name the node by its
Slurm ``NodeName`` (the inventory's per-node ``slurm_name``, default: the inventory node name).
Without a controller they run on the node itself, still naming it explicitly (never
``$(hostname -s)``), and the proposal says so. A Slurm name is validated here (letters, digits,
``-``, ``_``, ``.``) before it reaches a command line; anything else is refused and nothing runs.

Kubernetes actions are not placed here: they still run ``kubectl`` on the node (see
docs/checks.md for the note on the ``kubernetes`` client).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from diagnostics.types import ValidationError

# Slurm NodeName: letters, digits, '-', '_', '.'; not starting with '-' or '.' (never an option).
SLURM_NAME_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}"
_SLURM_NAME_RE = re.compile(SLURM_NAME_PATTERN)
# What drain_node's ``state`` means under Slurm, as a proposal shows it.
DRAIN_STATES = {
    "drain": "state=drain: jobs running on the node finish first; no new jobs start there",
    "down": "state=down: running jobs on the node are killed now (Slurm requeues or fails them)",
}


class SlurmNameError(ValidationError):
    """A Slurm node name with characters Slurm does not allow; nothing is run."""


def is_slurm_name(name: str) -> bool:
    return isinstance(name, str) and _SLURM_NAME_RE.fullmatch(name) is not None


def check_slurm_name(name: str, *, node: str | None = None) -> str:
    """``name`` if it is a valid Slurm NodeName, else ``SlurmNameError`` saying why."""
    if is_slurm_name(name):
        return name
    of = f" (inventory node {node!r})" if node is not None and node != name else ""
    raise SlurmNameError(
        f"{name!r}{of} is not a valid Slurm node name: only letters, digits, '-', '_' and '.' are allowed "
        "(at most 64, not starting with '-' or '.'); set the node's slurm_name in the inventory. Nothing was run."
    )


@dataclass(frozen=True)
class SlurmPlacement:
    """The inventory's Slurm facts: the controller host (None: run on the node) and node names."""

    controller: str | None = None
    names: Mapping[str, str] = field(default_factory=dict)  # inventory node -> Slurm NodeName

    def slurm_name(self, node: str) -> str:
        return check_slurm_name(self.names.get(node, node), node=node)

    def run_host(self, node: str) -> str:
        return self.controller or node


@dataclass(frozen=True)
class Placed:
    """An action ready to be proposed: where it runs, its full params, its exact command lines."""

    tool: str
    node: str  # the node the action is about
    run_on: str  # the host the commands run on (the Slurm controller, or the node itself)
    params: dict[str, Any]
    commands: list[str]
    note: str = ""  # for people: where it runs and why, shown with the proposal


def place(spec: Any, node: str, params: Mapping[str, Any] | None, *, scheduler: str,
          placement: SlurmPlacement | None) -> tuple[str, dict[str, Any], str]:
    """(run_on, params, note) for ``spec`` about ``node``. Slurm scheduler actions get the node's
    Slurm name as param ``node`` and run on the controller; everything else runs on ``node``."""
    given = dict(params or {})
    if not getattr(spec, "scheduler_action", False) or scheduler != "slurm":
        return node, given, ""
    placement = placement or SlurmPlacement()
    name = placement.slurm_name(node)
    if given.get("node") not in (None, name):
        check_slurm_name(str(given["node"]))
        raise SlurmNameError(f"{spec.name}: param node {given['node']!r} is not the Slurm name of {node} "
                             f"({name!r} in the inventory); nothing was run")
    given["node"] = name
    state = given.get("state") or next((p.default for p in getattr(spec, "params", ()) if p.name == "state"), None)
    what = f"; {DRAIN_STATES[state]}" if isinstance(state, str) and state in DRAIN_STATES else ""
    if placement.controller:
        return placement.controller, given, (
            f"runs on the Slurm controller {placement.controller} for Slurm node {name}{what}")
    return node, given, (
        f"no Slurm controller in the inventory (scheduler.controller): runs on {node} itself, "
        f"as Slurm node {name}{what}")
