"""Generic anomaly checks: faults that have no fault kind of their own (kernel, host hardware,
network stack, storage). Filled in by the open-world work; the registry includes them."""

from __future__ import annotations

from diagnostics.registry import ToolSpec

HEALTH_CHECKS: tuple[ToolSpec, ...] = ()
