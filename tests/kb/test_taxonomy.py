from __future__ import annotations

from diagnostics.faults import builtin_catalog
from diagnostics.registry import default_registry
from kb.taxonomy import ACTION_TOOLS, CHECK_TOOLS, FAULT_KINDS, FAULTS, TOOL_NAMES
from simulator.scenario import FAULT_KINDS as SCENARIO_FAULT_KINDS


def test_fault_table_points_at_known_checks() -> None:
    for fault, (_, _, checks) in FAULTS.items():
        assert checks and set(checks) <= set(CHECK_TOOLS), fault


def test_fault_table_covers_exactly_the_fault_catalog() -> None:
    # One list of kinds: the KB, the scenario format and the catalog agree.
    assert set(builtin_catalog().names) == FAULT_KINDS
    assert set(SCENARIO_FAULT_KINDS) == set(builtin_catalog().simulated_names) <= FAULT_KINDS


def test_tool_names_are_the_registry_names() -> None:
    registry = default_registry()
    assert set(registry.names()) == TOOL_NAMES
    assert {s.name for s in registry.specs(kind="mutating")} == set(ACTION_TOOLS)
