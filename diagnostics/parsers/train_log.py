"""The training job's per-rank step log: key=value records such as

    2026-11-28 09:59:58,412 INFO [train.py:412] step=1523 rank=37 local_rank=5 host=node-05 step_time_s=4.812 compute_s=1.234 tokens_per_s=871234

(logfmt fields after the logger prefix; unknown fields are kept, lines without `step=`, `rank=`
and `step_time_s=` are skipped — a log holds other messages too; lines that are not even logger
lines are noted as skipped). ERROR lines count only when ERROR is the line's log level."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from diagnostics.parsers.common import ParseError, skip_line

_KV = re.compile(r"(\w+)=(\S+)")
# An error the job logged: ERROR is the level of a logger line (after its timestamp) ('2024-03-12
# 08:30:07,001 ERROR [checkpoint.py:88] …', 'ERROR:root:…'), or Python's traceback header. Text
# that merely contains the word elsewhere is not an error record.
_ERROR = re.compile(r"^\s*(?:\[?\d{4}-\d\d-\d\d[ T][\d:,.]+\]?\s+(?:\S+\s+)?)?\[?(?:ERROR|CRITICAL|FATAL)\b"
                    r"|^\s*(?:\S+:\s+)?Traceback \(most recent call last\)")
_LOG_PREFIX = re.compile(r"^\s*(?:\[?\d{4}-\d\d-\d\d[ T]\d\d:\d\d|(?:DEBUG|INFO|WARNING|ERROR|CRITICAL):\S*:)")


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
        if _ERROR.match(line):
            errors.append(line.strip())
            continue
        kv = dict(_KV.findall(line))
        if "step" not in kv or "rank" not in kv or "step_time_s" not in kv:
            if line.strip() and not _LOG_PREFIX.match(line):
                skip_line("train log", no)  # not a logger line: noted (other logger lines are normal)
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
