"""The training job's per-rank step log: key=value records such as

    2026-11-28 09:59:58,412 INFO [train.py:412] step=1523 rank=37 local_rank=5 host=node-05 step_time_s=4.812 compute_s=1.234 tokens_per_s=871234

(logfmt fields after the logger prefix; unknown fields are kept, lines without `step=` and
`rank=` are skipped — a log holds other messages too)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from diagnostics.parsers.common import ParseError

_KV = re.compile(r"(\w+)=(\S+)")


@dataclass(frozen=True)
class StepRecord:
    step: int
    rank: int
    step_time_s: float
    compute_s: float | None
    host: str | None
    local_rank: int | None
    extra: dict[str, str] = field(default_factory=dict)


def parse_step_log(text: str) -> tuple[list[StepRecord], list[str]]:
    """-> (step records, ERROR lines)."""
    records = []
    errors = []
    for no, line in enumerate(text.splitlines(), 1):
        if " ERROR " in line or "Traceback" in line:
            errors.append(line.strip())
            continue
        kv = dict(_KV.findall(line))
        if "step" not in kv or "rank" not in kv:
            continue
        try:
            records.append(StepRecord(
                step=int(kv.pop("step")),
                rank=int(kv.pop("rank")),
                step_time_s=float(kv.pop("step_time_s")),
                compute_s=float(kv.pop("compute_s")) if "compute_s" in kv else None,
                host=kv.pop("host", None),
                local_rank=int(kv.pop("local_rank")) if "local_rank" in kv else None,
                extra=kv,
            ))
        except (KeyError, ValueError) as exc:
            raise ParseError("train log", f"bad step record ({exc}): {line.strip()[:80]!r}", no) from None
    return records, errors
