"""The fact type every layer reports: a Finding (one fact a check or a detector established).

It lives in perf, the bottom leaf, so perf's detectors and diagnostics' checks share one type.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["info", "warning", "critical"]


@dataclass(frozen=True)
class Finding:
    """One fact a check established. ``kind`` uses the fault-kind names of formats/scenario.md
    (``gpu_clock_throttle``, ``ib_port_down`` …) whenever the finding is evidence of one."""

    kind: str
    host: str
    message: str
    gpu: int | None = None
    severity: Severity = "warning"
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


