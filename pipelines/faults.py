"""What the agent knows about fault kinds, read from the fault catalog (diagnostics/data/faults.yaml).

The tables below are live views of the catalog in force (``diagnostics.faults.catalog()``), so kinds
an operator adds from a file, or the learning loop adds at run time, are seen everywhere without a
restart. No fault kind is named in this module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from diagnostics.faults import FaultCatalog, catalog

V = TypeVar("V")


class _View(Mapping[str, V], Generic[V]):
    """A read-only mapping computed from the active catalog on every access (the catalog is small)."""

    def __init__(self, build: Callable[[FaultCatalog], dict[str, V]]) -> None:
        self._build = build

    def _data(self) -> dict[str, V]:
        return self._build(catalog())

    def __getitem__(self, key: str) -> V:
        return self._data()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())


class _NameSet:
    """A live set of kind names selected by a predicate (membership, iteration, len)."""

    def __init__(self, pick: Callable[[Any], bool]) -> None:
        self._pick = pick

    def _names(self) -> tuple[str, ...]:
        return tuple(k.name for k in catalog().kinds if self._pick(k))

    def __contains__(self, name: object) -> bool:
        kind = catalog().get(name) if isinstance(name, str) else None
        return kind is not None and self._pick(kind)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


def _plans(cat: FaultCatalog) -> dict[str, tuple[tuple[tuple[str, tuple[str, ...]], ...], ...]]:
    return {k.name: tuple(tuple((s.action, s.params) for s in plan) for plan in k.remediation) for k in cat.kinds}


# Kinds that can be a root cause ("simulated" ones are also the scenario format's kinds).
FAULT_KINDS = _NameSet(lambda k: True)
# Findings that are symptoms, not root causes: they point at where to look, they never end a diagnosis.
SYMPTOM_KINDS: frozenset[str] = catalog().symptom_kinds
# fault kind -> read-only checks that establish it (first: the cheapest decisive one)
FAULT_CHECKS: Mapping[str, tuple[str, ...]] = _View(lambda c: {k.name: k.checks for k in c.kinds})
# When a finding of kind A and one of kind B sit on the same GPU (or node), A explains B.
EXPLAINS: Mapping[str, frozenset[str]] = _View(lambda c: {k.name: c.explained_by(k.name) for k in c.kinds})
# Remediation plans: fault -> ordered proposals, each a list of (action, params-from-cause).
REMEDIATIONS: Mapping[str, tuple[tuple[tuple[str, tuple[str, ...]], ...], ...]] = _View(_plans)
# Pre-planned runbooks (the method's "pre-plan" ablation): alert type -> checks, all run in order.
RUNBOOKS: Mapping[str, tuple[str, ...]] = _View(lambda c: dict(c.runbooks))
RUNBOOK_OF_FAULT: Mapping[str, str] = _View(lambda c: {k.name: k.runbook for k in c.kinds if k.runbook})
# Faults of one GPU: a finding without a GPU index is localized with the fault's other checks.
GPU_LEVEL_FAULTS = _NameSet(lambda k: k.scope == "gpu")
# Faults that stop jobs outright outrank ones that only slow them when nothing else separates two.
DISRUPTIVE_FAULTS = _NameSet(lambda k: k.severity == "critical")
# Symptom vocabulary: regex (case-insensitive, on the alert/log) -> {fault: weight}; priors, never evidence.
SYMPTOMS: tuple[tuple[str, dict[str, float]], ...] = tuple((s.pattern, dict(s.weights)) for s in catalog().symptoms)
# Checks whose findings come from comparing nodes (driver_mismatch): always run on every host.
FLEET_TOOLS: frozenset[str] = frozenset({"versions"})
# A host is called unreachable after this many timeouts/refusals with no answer at all.
UNREACHABLE_AFTER = 2


def is_fault(kind: str) -> bool:
    return kind in FAULT_KINDS


def checks_for(fault: str) -> tuple[str, ...]:
    return FAULT_CHECKS.get(fault, ())


def category_of(fault: str | None) -> str | None:
    return catalog().category_of(fault)
