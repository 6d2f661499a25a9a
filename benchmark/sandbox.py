"""Parent side of the metric-B sandbox: run a candidate program in a limited subprocess.

Each run gets a fresh temporary directory as its working directory, a wall-clock deadline (the
whole process group is killed when it passes), CPU-time, address-space, file-size and open-file
limits (``resource`` rlimits), stdout/stderr redirected to size-capped files, and no stdin beyond a
one-line token. A candidate that loops, crashes, floods its output or writes outside its directory
becomes a failed case; the runner itself never hangs and nothing outside the sandbox changes.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_MEMORY_MB = 2048
DEFAULT_OUTPUT_BYTES = 1 << 20  # per stream and per file the candidate writes
RESULT_CAP = 64 * 1024
CHILD = Path(__file__).resolve().parent / "_sandbox_child.py"
TAIL = 2000


@dataclass(frozen=True)
class SandboxResult:
    passed: bool
    error: str
    seconds: float
    timed_out: bool = False
    returncode: int | None = None
    stdout_tail: str = ""
    stderr_tail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "timed_out": self.timed_out,
            "returncode": self.returncode,
            "stdout_tail": self.stdout_tail,
            "stderr_tail": self.stderr_tail,
        }


def _limits(cpu_s: int, memory_mb: int, output_bytes: int) -> None:
    """Runs in the child between fork and exec."""
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    resource.setrlimit(resource.RLIMIT_FSIZE, (output_bytes, output_bytes))
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - TAIL))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _child_env() -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "HOME", "VIRTUAL_ENV", "SYSTEMROOT")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    # One BLAS/OpenMP thread: the simulator's numpy must not reserve memory per core.
    env.update({"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"})
    return env


def run_candidate(
    code: str,
    tests: str,
    entry_point: str,
    *,
    scenario: Mapping[str, Any] | None = None,
    scenario_path: str | None = None,
    timeout_s: float = 60.0,
    memory_mb: int = DEFAULT_MEMORY_MB,
    output_bytes: int = DEFAULT_OUTPUT_BYTES,
) -> SandboxResult:
    """Run ``code`` then ``check(candidate, executor, hosts)`` from ``tests`` in a subprocess."""
    started = time.perf_counter()
    sandbox = Path(tempfile.mkdtemp(prefix="clusterdoc-bench-b-"))
    job = {
        "code": code,
        "tests": tests,
        "entry_point": entry_point,
        "scenario": dict(scenario) if scenario is not None else None,
        "scenario_path": scenario_path,
    }
    job_path = sandbox / ".job.json"
    job_path.write_text(json.dumps(job, default=str), encoding="utf-8")
    token = secrets.token_hex(16)
    out_path, err_path = sandbox / ".stdout", sandbox / ".stderr"
    read_fd, write_fd = os.pipe()
    cpu_s = max(2, int(timeout_s) + 1)
    proc: subprocess.Popen[bytes] | None = None
    timed_out = False
    try:
        with out_path.open("wb") as out, err_path.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-B", str(CHILD), str(job_path), str(write_fd)],
                cwd=sandbox,
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=err,
                pass_fds=(write_fd,),
                env=_child_env(),
                start_new_session=True,
                preexec_fn=lambda: _limits(cpu_s, memory_mb, output_bytes),
            )
        os.close(write_fd)
        write_fd = -1
        try:
            assert proc.stdin is not None
            proc.stdin.write((token + "\n").encode())
            proc.stdin.close()
        except OSError:
            pass  # the child died at once; its exit code and stderr tell why
        try:
            proc.wait(timeout=timeout_s + 10.0)  # + the harness's own start-up (imports, the sim)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
        else:
            _kill_group(proc)  # stray grandchildren (none should exist) go with it
        verdict = _read_verdict(read_fd, token)
    finally:
        if write_fd >= 0:
            os.close(write_fd)
        os.close(read_fd)
        if proc is not None and proc.poll() is None:
            _kill_group(proc)
    stdout_tail, stderr_tail = _tail(out_path), _tail(err_path)
    shutil.rmtree(sandbox, ignore_errors=True)
    seconds = time.perf_counter() - started
    rc = proc.returncode if proc is not None else None
    if timed_out:
        return SandboxResult(False, f"timed out after {timeout_s:g} s (killed)", seconds, True, rc,
                             stdout_tail, stderr_tail)
    if verdict is None:
        why = _death_reason(rc, stderr_tail)
        cpu_limit = rc is not None and rc == -signal.SIGXCPU
        return SandboxResult(False, why, seconds, cpu_limit, rc, stdout_tail, stderr_tail)
    return SandboxResult(bool(verdict.get("passed")), str(verdict.get("error", "")), seconds, False, rc,
                         stdout_tail, stderr_tail)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _read_verdict(fd: int, token: str) -> dict[str, Any] | None:
    os.set_blocking(fd, False)
    chunks: list[bytes] = []
    size = 0
    while size < RESULT_CAP:
        try:
            chunk = os.read(fd, 8192)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    try:
        data = json.loads(b"".join(chunks).decode("utf-8", "replace"))
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("token") != token:
        return None  # no verdict from the harness (or a forged one): the candidate failed
    return data


def _death_reason(rc: int | None, stderr_tail: str) -> str:
    if rc is not None and rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        hint = {"SIGXCPU": " (CPU time limit)", "SIGKILL": " (killed: memory or time limit)",
                "SIGSEGV": " (crashed)", "SIGXFSZ": " (output size limit)"}.get(name, "")
        return f"the program died from {name}{hint}"
    last = stderr_tail.strip().splitlines()[-1] if stderr_tail.strip() else ""
    if "MemoryError" in stderr_tail:
        return "the program ran out of memory (MemoryError)"
    return f"the program ended without a verdict (exit code {rc}){': ' + last if last else ''}"
