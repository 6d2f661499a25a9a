"""NCCL: the job's environment (/proc/PID/environ) and nccl-tests all_reduce_perf output.

``assess_nccl_env`` holds the rules for settings that hurt collective performance; the
simulator uses ``nccl_env_effects`` from the same rules, so what the check flags is exactly
what slows the simulated job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from diagnostics.parsers.common import ParseError, clean, skip_line

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
    wrong: int | None  # out-of-place #wrong; None where N/A or where the column is an error value
    inplace_time_us: float
    inplace_algbw_gbs: float
    inplace_busbw_gbs: float
    inplace_wrong: int | None = None
    error: float | None = None  # older nccl-tests print the max error (1e-07) instead of a #wrong count
    inplace_error: float | None = None


@dataclass(frozen=True)
class AllReduceResult:
    rows: list[AllReduceRow]
    avg_busbw_gbs: float | None
    n_gpus: int | None
    errors: list[str]
    out_of_bounds: int | None = None  # 'Out of bounds values : N OK|FAILED'
    ranks: int | None = None  # '#  Rank  N …' lines
    test: str | None = None  # 'all_gather_perf' … where a pasted command line names it

    @property
    def peak_busbw_gbs(self) -> float:
        return max((max(r.busbw_gbs, r.inplace_busbw_gbs) for r in self.rows), default=0.0)

    @property
    def wrong_rows(self) -> list[AllReduceRow]:
        """Rows whose out-of-place or in-place #wrong count is above zero."""
        return [r for r in self.rows if (r.wrong or 0) > 0 or (r.inplace_wrong or 0) > 0]

    @property
    def failed(self) -> bool:
        """nccl-tests found wrong results or failed: out-of-bounds values, #wrong, a test failure."""
        return bool(self.errors or self.wrong_rows or (self.out_of_bounds or 0) > 0)


def _num(value: str, no: int) -> float:
    if value == "N/A":
        return 0.0
    try:
        return float(value)
    except ValueError:
        raise ParseError("all_reduce_perf", f"non-numeric column {value!r}", no) from None


def _count(value: str, no: int) -> int | None:
    if value == "N/A":
        return None
    try:
        return int(float(value))
    except ValueError:
        raise ParseError("all_reduce_perf", f"non-numeric #wrong {value!r}", no) from None


# How nccl-tests reports a failed run ('host: Test NCCL failure common.cu:958 'unhandled cuda error'',
# 'Test CUDA failure …'); a line that merely mentions an error is not one.
_FAILURE = re.compile(r"\bTest (?:NCCL |CUDA )?failure\b")
# mpirun --tag-output / srun --label prefixes: '[1,0]<stdout>:', '0: '.
_TAG = re.compile(r"^(?:\[\d+,\d+\]<std(?:out|err)>:|\d+: (?=\s*[#\d]))")
_OOB = re.compile(r"Out of bounds values\s*:\s*(\d+)")
_AVG = re.compile(r"Avg bus bandwidth\s*:\s*([\d.]+(?:[eE][-+]?\d+)?)")
# Layouts by column count where no header names them: 13 (redop + root, #wrong), 12 (redop, error),
# 11 (no redop, error: nccl-tests before 2.0), 9 (out-of-place only).
_LAYOUTS = {
    13: ["size", "count", "type", "redop", "root", "time", "algbw", "busbw", "#wrong", "time", "algbw", "busbw", "#wrong"],
    12: ["size", "count", "type", "redop", "time", "algbw", "busbw", "error", "time", "algbw", "busbw", "error"],
    11: ["size", "count", "type", "time", "algbw", "busbw", "error", "time", "algbw", "busbw", "error"],
    9: ["size", "count", "type", "redop", "root", "time", "algbw", "busbw", "#wrong"],
}


def _row(tokens: list[str], columns: list[str], no: int) -> AllReduceRow:
    where: dict[str, list[int]] = {}
    for i, name in enumerate(columns):
        where.setdefault(name, []).append(i)

    def col(name: str, k: int = 0) -> str | None:
        idx = where.get(name, [])
        return tokens[idx[k]] if len(idx) > k else None

    wrong_name = "#wrong" if "#wrong" in where else "error"
    out_w, in_w = col(wrong_name), col(wrong_name, 1)
    is_count = wrong_name == "#wrong"
    in_time = col("time", 1)
    return AllReduceRow(
        int(tokens[0]), int(tokens[1]), col("type") or "", col("redop") or "",
        _num(col("time") or "N/A", no), _num(col("algbw") or "N/A", no), _num(col("busbw") or "N/A", no),
        _count(out_w, no) if is_count and out_w is not None else None,
        _num(in_time or "N/A", no), _num(col("algbw", 1) or "N/A", no), _num(col("busbw", 1) or "N/A", no),
        _count(in_w, no) if is_count and in_w is not None else None,
        None if is_count or out_w in (None, "N/A") else _num(out_w, no),
        None if is_count or in_w in (None, "N/A") else _num(in_w, no),
    )


# A pasted nccl-tests command line: './build/all_gather_perf -b 16M -e 1G -g 2' (its -g: GPUs per process).
_COMMAND = re.compile(r"(?P<test>\b[a-z_]+_perf)\b(?:.*?\s-g\s*(?P<g>\d+))?")


def parse_all_reduce_perf(text: str) -> AllReduceResult:
    """The result table of nccl-tests (all_reduce_perf and its siblings), of any version: the header
    row names the columns where printed (with or without '#'), else the column count tells the
    layout (13: redop, root and #wrong; 12: redop and an error value; 11: the oldest, no redop;
    9: out-of-place only). Out-of-place and in-place #wrong, 'Out of bounds values : N FAILED' and
    'Avg bus bandwidth' are read with or without their '#'; a pasted command line gives the test's
    name and its -g (GPUs per process) where no 'nGpus' header says it. mpirun's '[1,0]<stdout>:' tags, NCCL
    INFO chatter and anything else are skipped and noted; a short row is truncated output, and a
    table with no row (and no failure) is a ParseError."""
    rows: list[AllReduceRow] = []
    avg = None
    ngpus = None
    oob = None
    ranks = 0
    errors = []
    test: str | None = None
    columns: list[str] | None = None
    for no, raw in enumerate(clean(text).split("\n"), 1):
        s = _TAG.sub("", raw.strip()).strip()
        if not s:
            continue
        body = s.lstrip("#").strip()
        m = _AVG.search(body)
        if m:
            avg = float(m.group(1))
            continue
        o = _OOB.search(body)
        if o:
            oob = int(o.group(1))
            continue
        g = re.search(r"\bnGpus (\d+)", body)
        if g:
            ngpus = int(g.group(1))
            continue
        cmd = _COMMAND.search(body)
        if cmd and not body[:1].isdigit() and not s.startswith("#"):
            test = test or cmd.group("test")
            if ngpus is None and cmd.group("g"):
                ngpus = int(cmd.group("g"))  # the pasted command's -g (GPUs per process)
            skip_line("all_reduce_perf", no)
            continue
        tokens = body.split()
        if tokens and tokens[0] == "Rank" and len(tokens) > 1 and tokens[1].isdigit():
            ranks += 1
            continue
        if {"size", "count", "type"} <= set(tokens) and "time" in tokens:
            columns = tokens
            continue
        if s.startswith("#") or (tokens and tokens[0] in ("(B)", "out-of-place", "in-place")):
            continue
        if _FAILURE.search(s):
            errors.append(s)
            continue
        if len(tokens) < 2 or not tokens[0].isdigit() or not tokens[1].isdigit():
            skip_line("all_reduce_perf", no)  # NCCL INFO/WARN chatter, prompts, warnings, anything else
            continue
        layout = columns or _LAYOUTS.get(len(tokens))
        if layout is None or len(tokens) != len(layout):
            expected = len(layout) if layout else "9, 11, 12 or 13"
            raise ParseError("all_reduce_perf", f"expected {expected} columns, got {len(tokens)} (truncated?): {s[:60]!r}",
                             no)
        rows.append(_row(tokens, layout, no))
    if not rows and not errors:
        raise ParseError("all_reduce_perf", "no result rows")
    return AllReduceResult(rows, avg, ngpus, errors, oob, ranks or None, test)
