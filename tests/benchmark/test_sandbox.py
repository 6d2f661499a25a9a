"""Metric B's sandbox: a misbehaving candidate is a failed case, never a hung or damaged runner."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from benchmark.sandbox import run_candidate

from .conftest import THROTTLED

TESTS = (
    "def check(candidate, executor, hosts):\n"
    "    got = candidate(executor, hosts)\n"
    "    assert sorted(got) == [('node-02', 1)], got\n"
)
RIGHT = (
    "def find_throttled(executor, hosts):\n"
    "    out = []\n"
    "    for h in hosts:\n"
    "        r = executor.run(h, 'nvidia-smi --query-gpu=index,clocks.sm,clocks.max.sm --format=csv,noheader,nounits')\n"
    "        for line in r.stdout.splitlines():\n"
    "            i, sm, mx = [float(x) for x in line.split(',')]\n"
    "            if sm < mx / 2:\n"
    "                out.append((h, int(i)))\n"
    "    return out\n"
)


def run(code: str, timeout_s: float = 20.0, **kw: object) -> object:
    return run_candidate(code, TESTS, "find_throttled", scenario=THROTTLED, timeout_s=timeout_s, **kw)  # type: ignore[arg-type]


def test_right_program_passes_against_the_simulated_cluster() -> None:
    result = run(RIGHT)
    assert result.passed, result  # type: ignore[attr-defined]


def test_wrong_answer_fails_with_the_assertion() -> None:
    result = run("def find_throttled(executor, hosts):\n    return [('node-01', 0)]\n")
    assert not result.passed and "AssertionError" in result.error  # type: ignore[attr-defined]


def test_missing_entry_point_and_syntax_error_fail() -> None:
    assert "does not define find_throttled" in run("def other(e, h):\n    return []\n").error  # type: ignore[attr-defined]
    assert "SyntaxError" in run("def find_throttled(e, h) return 1\n").error  # type: ignore[attr-defined]


def test_crash_fails() -> None:
    result = run("def find_throttled(executor, hosts):\n    raise RuntimeError('boom')\n")
    assert not result.passed and "RuntimeError: boom" in result.error  # type: ignore[attr-defined]


def test_infinite_loop_is_killed_within_the_limit() -> None:
    # How fast it is killed depends on the machine's load: not asserted here (timed_out is the behaviour).
    result = run("def find_throttled(executor, hosts):\n    while True:\n        pass\n", timeout_s=2)
    assert not result.passed and result.timed_out  # type: ignore[attr-defined]


def test_sleeping_forever_is_killed_at_the_wall_clock_deadline() -> None:
    started = time.monotonic()
    result = run("import time\ndef find_throttled(executor, hosts):\n    time.sleep(3600)\n", timeout_s=1)
    assert not result.passed and result.timed_out  # type: ignore[attr-defined]
    assert time.monotonic() - started < 3600  # killed, not waited for (the candidate sleeps an hour)


def test_megabytes_of_output_fail_and_stay_capped() -> None:
    result = run("def find_throttled(executor, hosts):\n    while True:\n        print('x' * 100000)\n")
    assert not result.passed  # type: ignore[attr-defined]
    assert len(result.stdout_tail) <= 4096  # type: ignore[attr-defined]


def test_writes_outside_the_sandbox_are_refused_and_nothing_changes(tmp_path: Path) -> None:
    target = tmp_path / f"escape-{uuid.uuid4().hex}.txt"
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    code = (
        "import os, shutil\n"
        "def find_throttled(executor, hosts):\n"
        f"    try:\n        open({str(target)!r}, 'w').write('x')\n    except PermissionError:\n        pass\n"
        f"    try:\n        os.remove({str(victim)!r})\n    except PermissionError:\n        pass\n"
        f"    try:\n        os.symlink('/etc', 'etc-link')\n        open('etc-link/evil', 'w')\n    except (PermissionError, OSError):\n        pass\n"
        "    open('inside.txt', 'w').write('fine')\n"
        f"    open({str(target)!r}, 'w').write('x')\n"
    )
    result = run(code)
    assert not result.passed and "outside the sandbox" in result.error  # type: ignore[attr-defined]
    assert not target.exists() and victim.read_text() == "keep me"


def test_processes_and_sockets_are_refused() -> None:
    for body in ("import os\n    os.system('true')", "import subprocess\n    subprocess.run(['true'])",
                 "import socket\n    socket.create_connection(('127.0.0.1', 22), timeout=1)"):
        code = f"def find_throttled(executor, hosts):\n    {body}\n    return [('node-02', 1)]\n"
        result = run(code)
        assert not result.passed and "refused" in result.error, (body, result)  # type: ignore[attr-defined]


@pytest.mark.parametrize("body", ["import sys\n    sys.exit(0)", "import os\n    os._exit(0)"])
def test_exiting_early_never_counts_as_a_pass(body: str) -> None:
    result = run(f"def find_throttled(executor, hosts):\n    {body}\n")
    assert not result.passed  # type: ignore[attr-defined]


def test_memory_hog_fails() -> None:
    result = run("def find_throttled(executor, hosts):\n    x = bytearray(16 << 30)\n    return x\n")
    assert not result.passed and "Memory" in result.error  # type: ignore[attr-defined]


def test_sandbox_directory_is_removed() -> None:
    code = "import os\ndef find_throttled(executor, hosts):\n    print(os.getcwd())\n    return [('node-02', 1)]\n"
    result = run(code)
    assert result.passed  # type: ignore[attr-defined]
    cwd = result.stdout_tail.strip().splitlines()[-1]  # type: ignore[attr-defined]
    assert "clusterdoc-bench-b-" in cwd and not os.path.exists(cwd)
