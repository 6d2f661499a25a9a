"""NCCL: the job's environment (/proc/PID/environ) and nccl-tests all_reduce_perf output.

``assess_nccl_env`` holds the rules for settings that hurt collective performance; the
simulator uses ``nccl_env_effects`` from the same rules, so what the check flags is exactly
what slows the simulated job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from diagnostics.parsers.common import ParseError, skip_line

_ENV_LINE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def parse_environ(text: str) -> dict[str, str]:
    """NUL- or newline-separated KEY=VALUE entries (cat /proc/PID/environ, `env`)."""
    env: dict[str, str] = {}
    entries = [e for e in re.split(r"[\0\n]", text) if e.strip()]
    skipped = []
    for no, entry in enumerate(entries, 1):
        if not _ENV_LINE.match(entry):
            skipped.append(no)  # a continuation of a multi-line value, or a stray line
            continue
        key, _, value = entry.partition("=")
        env.setdefault(key, value)  # the kernel lists each variable once: a later copy is not believed
    if not env:
        raise ParseError("environ", f"no KEY=VALUE entry: {entries[0][:60]!r}" if entries else "empty environment",
                         1 if entries else None)
    for no in skipped:
        skip_line("environ", no)
    return env


@dataclass(frozen=True)
class EnvIssue:
    var: str
    value: str
    problem: str
    effect: str  # tcp | intra | channels | gdr
    factor: float  # bandwidth multiplier the setting causes (simulator and explanations)


def _is_on(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def assess_nccl_env(env: dict[str, str]) -> list[EnvIssue]:
    """NCCL settings that make collectives slow on a GPU training cluster."""
    issues = []
    for var, value in env.items():
        v = value.strip()
        if var == "NCCL_IB_DISABLE" and _is_on(v):
            issues.append(EnvIssue(var, v, "InfiniBand/RoCE disabled: NCCL falls back to TCP sockets", "tcp", 0.05))
        elif var == "NCCL_NET" and v.lower() == "socket":
            issues.append(EnvIssue(var, v, "network plugin forced to sockets (TCP)", "tcp", 0.05))
        elif var == "NCCL_IB_HCA" and v.strip("=^") and not v.lstrip("=^").startswith("mlx"):
            issues.append(EnvIssue(var, v, "HCA filter matches no Mellanox device: NCCL falls back to TCP", "tcp", 0.05))
        elif var == "NCCL_P2P_DISABLE" and _is_on(v):
            issues.append(EnvIssue(var, v, "GPU peer-to-peer (NVLink) disabled: intra-node traffic goes through host memory", "intra", 0.25))
        elif var == "NCCL_P2P_LEVEL" and v.upper() in ("LOC", "0"):
            issues.append(EnvIssue(var, v, "peer-to-peer restricted to the same GPU: NVLink unused", "intra", 0.25))
        elif var == "NCCL_SHM_DISABLE" and _is_on(v) and _is_on(env.get("NCCL_P2P_DISABLE", "0")):
            issues.append(EnvIssue(var, v, "shared memory and P2P both disabled: intra-node traffic over sockets", "intra", 0.05))
        elif var in ("NCCL_MAX_NCHANNELS", "NCCL_MAX_NRINGS", "NCCL_MIN_NCHANNELS") and v.isdigit() and int(v) <= 2 and var != "NCCL_MIN_NCHANNELS":
            issues.append(EnvIssue(var, v, f"only {v} channel(s): bandwidth capped far below the links'", "channels", 0.25))
        elif var == "NCCL_BUFFSIZE" and v.isdigit() and int(v) < 1 << 20:
            issues.append(EnvIssue(var, v, f"buffer of {int(v)} bytes (< 1 MiB) starves the pipeline", "channels", 0.5))
        elif var == "NCCL_NET_GDR_LEVEL" and v.upper() in ("LOC", "0"):
            issues.append(EnvIssue(var, v, "GPUDirect RDMA disabled: network traffic is staged through host memory", "gdr", 0.7))
        elif var == "NCCL_SOCKET_IFNAME" and v in ("lo", "=lo", "docker0") and (_is_on(env.get("NCCL_IB_DISABLE", "0")) or env.get("NCCL_NET", "").lower() == "socket"):
            issues.append(EnvIssue(var, v, f"sockets bound to {v}: inter-node traffic cannot flow", "tcp", 0.01))
        elif var == "NCCL_ALGO" and v.lower() in ("tree",) and False:
            pass
        elif var == "NCCL_PROTO" and v.upper() == "LL":
            issues.append(EnvIssue(var, v, "low-latency protocol only: large messages reach a fraction of the bandwidth", "channels", 0.5))
    return issues


def nccl_env_effects(env: dict[str, str]) -> dict[str, float]:
    """Worst bandwidth factor per effect (tcp, intra, channels, gdr) of an environment."""
    effects: dict[str, float] = {}
    for issue in assess_nccl_env(env):
        effects[issue.effect] = min(effects.get(issue.effect, 1.0), issue.factor)
    return effects


@dataclass(frozen=True)
class AllReduceRow:
    size_bytes: int
    count: int
    dtype: str
    redop: str
    time_us: float
    algbw_gbs: float
    busbw_gbs: float
    wrong: int | None
    inplace_time_us: float
    inplace_algbw_gbs: float
    inplace_busbw_gbs: float


@dataclass(frozen=True)
class AllReduceResult:
    rows: list[AllReduceRow]
    avg_busbw_gbs: float | None
    n_gpus: int | None
    errors: list[str]

    @property
    def peak_busbw_gbs(self) -> float:
        return max((max(r.busbw_gbs, r.inplace_busbw_gbs) for r in self.rows), default=0.0)


def _num(value: str, no: int) -> float:
    if value == "N/A":
        return 0.0
    try:
        return float(value)
    except ValueError:
        raise ParseError("all_reduce_perf", f"non-numeric column {value!r}", no) from None


# How nccl-tests reports a failed run ('host: Test NCCL failure common.cu:958 'unhandled cuda error'',
# 'Test CUDA failure …'); a line that merely mentions an error is not one.
_FAILURE = re.compile(r"\bTest (?:NCCL |CUDA )?failure\b")


def parse_all_reduce_perf(text: str) -> AllReduceResult:
    """The result table of all_reduce_perf. '#' lines carry nGpus and the average; lines that are
    neither rows nor nccl-tests failures are skipped and noted; a short row is truncated output."""
    rows: list[AllReduceRow] = []
    avg = None
    ngpus = None
    errors = []
    for no, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            m = re.search(r"Avg bus bandwidth\s*:\s*([\d.]+)", s)
            if m:
                avg = float(m.group(1))
            g = re.search(r"nGpus (\d+)", s)
            if g:
                ngpus = int(g.group(1))
            continue
        if _FAILURE.search(s):
            errors.append(s)
            continue
        parts = s.split()
        if not parts[0].isdigit():
            skip_line("all_reduce_perf", no)  # NCCL INFO/WARN chatter, warnings, anything else
            continue
        if len(parts) != 13:
            raise ParseError("all_reduce_perf", f"expected 13 columns, got {len(parts)} (truncated?): {s[:60]!r}", no)
        rows.append(AllReduceRow(
            int(parts[0]), int(parts[1]), parts[2], parts[3], _num(parts[5], no), _num(parts[6], no),
            _num(parts[7], no), None if parts[8] == "N/A" else int(_num(parts[8], no)), _num(parts[9], no),
            _num(parts[10], no), _num(parts[11], no),
        ))
    if not rows and not errors:
        raise ParseError("all_reduce_perf", "no result rows")
    return AllReduceResult(rows, avg, ngpus, errors)
