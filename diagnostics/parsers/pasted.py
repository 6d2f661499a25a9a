"""The shapes `read_pasted` returns (``PastedFinding``, ``PastedReading``) and what its readers
share, kept apart from ``detect`` so the readers of further formats (``readers``) can use them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

Severity = str  # 'critical' | 'error' | 'warning'
# Findings kept per reading: a chat answer lists the first ones and says how many more there were.
MAX_FINDINGS = 100


@dataclass(frozen=True)
class PastedFinding:
    message: str
    severity: Severity  # 'critical' | 'error' | 'warning'
    gpu: int | None = None
    device: str | None = None


@dataclass
class PastedReading:
    tool: str
    summary: str
    findings: list[PastedFinding] = field(default_factory=list)
    skipped_lines: int = 0


Reader = Callable[[str], tuple[str, list[PastedFinding]]]


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else ('es' if word.endswith('ss') else 's')}"
