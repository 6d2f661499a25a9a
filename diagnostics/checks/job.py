"""Checks of the training job itself: per-rank step and compute times from its log, and the last
checkpoint it wrote."""

from __future__ import annotations

import statistics
from typing import Any

from diagnostics.checks._common import _MOUNT_PATTERN, _check, _guard, _result
from diagnostics.parsers import jobs as jobs_parser
from diagnostics.parsers import train_log
from diagnostics.registry import Param, ParseInput, ParseOutput, ToolSpec
from diagnostics.types import Finding, Status

# --------------------------------------------------------------------------- thresholds

# A rank whose local compute takes 30% longer than its node's median is a straggler.
SLOW_RANK_RATIO = 1.3

TRAIN_LOG = "/var/log/clusterdoc/train.log"


@_guard
def parse_job_step_times(inp: ParseInput) -> ParseOutput:
    out = inp.outputs[0]
    if out.exit_code not in (0, None):
        return ParseOutput(Status.NO_DATA, error=f"no training log on this node: {out.stderr.strip()[:120]}")
    records, errors = train_log.parse_step_log(out.stdout)
    if not records:
        return ParseOutput(Status.NO_DATA, data={"errors": errors[-5:]}, error="no step records in the log")
    last_step = max(r.step for r in records)
    latest = [r for r in records if r.step == last_step]
    per_rank = {str(r.rank): r.step_time_s for r in latest}
    compute = {str(r.rank): r.compute_s for r in latest if r.compute_s is not None}
    data: dict[str, Any] = {"step": last_step, "step_time_s": statistics.median(per_rank.values()),
                            "rank_step_time_s": per_rank, "rank_compute_s": compute, "errors": errors[-5:],
                            "ranks": {str(r.rank): {"host": r.host, "gpu": r.local_rank} for r in latest}}
    findings = []
    if len(compute) >= 2:
        median = statistics.median(compute.values())
        for r in latest:
            if r.compute_s is not None and median > 0 and r.compute_s > SLOW_RANK_RATIO * median:
                findings.append(Finding("slow_rank", inp.host,
                                        f"rank {r.rank} (GPU {r.local_rank}) computes in {r.compute_s:.3f} s vs "
                                        f"median {median:.3f} s ({r.compute_s / median:.1f}x)",
                                        gpu=r.local_rank, severity="critical",
                                        data={"rank": r.rank, "compute_s": r.compute_s, "median_compute_s": median,
                                              "ratio": r.compute_s / median, "step_time_s": r.step_time_s}))
    for line in errors[-3:]:
        kind = "disk_full" if "No space left" in line else "job_error"
        findings.append(Finding(kind, inp.host, line[:200], severity="warning", data={"log_line": line[:500]}))
    return _result(findings, data)


@_guard
def parse_job_checkpoint(inp: ParseInput) -> ParseOutput:
    """The last checkpoint save in the job's log and its age by the node's clock (the first command
    prints the node's local time with its zone, the log's stamps are its local time). Formats read:
    diagnostics.parsers.jobs (Megatron-LM, DeepSpeed, HF Trainer, Lightning, torchtitan, the simulator)."""
    clock, log = inp.outputs[0], inp.outputs[-1]
    path = inp.params.get("path") or TRAIN_LOG
    if "no such file" in log.stderr.lower() or log.exit_code not in (0, 1, None):
        return ParseOutput(Status.NO_DATA, error=f"no job log at {path}")
    now = jobs_parser.parse_stamp(clock.stdout)
    last = jobs_parser.last_checkpoint(log.stdout)
    data: dict[str, Any] = {"path": path, "now": now.isoformat() if now else None,
                            "checkpoint": last.to_dict() if last else None,
                            "age_s": jobs_parser.age_s(last.at, now) if last else None}
    return ParseOutput(Status.OK, data=data)


# The lines that may record a save (the parser decides), last 50 only: a long log stays cheap.
CHECKPOINT_GREP = "grep -a -i -E 'checkpoint|saving model to' {path} | tail -n 50"

JOB_CHECKS: tuple[ToolSpec, ...] = (
    _check("job_step_times", "Per-rank step and compute times of the training job from its log; finds slow_rank",
           "job", "quick",
           (Param("path", "str", "the job's step log", required=False, default=TRAIN_LOG, pattern=_MOUNT_PATTERN),),
           ("tail -n 400 {path}",), parse_job_step_times),
    _check("job_checkpoint", "The last checkpoint the training job saved, from its log, and how old it is by "
           "the node's clock (what a drain or reset would lose since then)", "job", "medium",
           (Param("path", "str", "the job's log", required=False, default=TRAIN_LOG, pattern=_MOUNT_PATTERN),),
           ("date '+%Y-%m-%dT%H:%M:%S%z'", CHECKPOINT_GREP), parse_job_checkpoint),
)
