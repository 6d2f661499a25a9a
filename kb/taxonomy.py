"""The closed vocabularies a knowledge record is validated against.

Tool names and fault kinds are read from diagnostics (the registry and the scenario format), so a
record can never name a tool the toolkit does not have; only the kb's own vocabularies (categories,
splits, origins, the fault -> category table) are defined here.
"""

from __future__ import annotations

from diagnostics.checks import CHECKS
from diagnostics.faults import REMEDIATIONS, builtin_catalog

CATEGORIES: tuple[str, ...] = (
    "network",
    "gpu_hardware",
    "thermal_power",
    "memory",
    "storage",
    "software_version",
    "configuration",
    "scheduler",
    "other",
)

ORIGINS: tuple[str, ...] = ("seed", "incident")
SPLITS: tuple[str, ...] = ("perceivable", "benchmark")

# Tool names come from the registry itself (one source of truth): a record's `function` may name
# any read-only check and any remediation action the toolkit declares.
CHECK_TOOLS: tuple[str, ...] = tuple(spec.name for spec in CHECKS)
ACTION_TOOLS: tuple[str, ...] = REMEDIATIONS

TOOL_NAMES: frozenset[str] = frozenset(CHECK_TOOLS + ACTION_TOOLS)

# fault kind -> (category, components, checks that show it), from the fault catalog (one source).
FAULTS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    k.name: (k.category.replace("-", "_"), k.components, k.kb_checks) for k in builtin_catalog().kinds
}

FAULT_KINDS: frozenset[str] = frozenset(FAULTS)

# Filter keys a search accepts, and the record field each one tests.
FILTER_KEYS: tuple[str, ...] = ("category", "component", "split", "origin", "fault")
