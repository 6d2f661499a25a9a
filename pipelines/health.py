"""Scheduled health work for the bot: the quick sweep and the performance detectors.

The bot talks only to pipelines; this module is its seam to the toolkit and perf's detectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from perf.detectors import EarlyWarning, detect_stragglers


def quick_sweep(toolkit: Any, hosts: Sequence[str]) -> Any:
    """Every quick read-only check on every host (a diagnostics SweepReport)."""
    return toolkit.sweep(list(hosts), level="quick")


def stragglers(samples: Sequence[Any]) -> list[Any]:
    """GPUs slower than their peers (median/MAD), as Findings."""
    return list(detect_stragglers(list(samples))) if samples else []


def early_warning() -> EarlyWarning:
    """A fresh early-warning detector (CUSUM over the telemetry it is fed)."""
    return EarlyWarning()
