"""Shared pieces of the hardening suite: a simulated cluster served over SSH from a child
process (with per-node behaviours), and small helpers."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


class ServedCluster:
    """A ``sim_server_child`` process; ``inventory_path`` once it is READY."""

    def __init__(self, proc: subprocess.Popen[str], inventory_path: Path) -> None:
        self.proc = proc
        self.inventory_path = inventory_path

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_served_cluster(scenario: dict[str, Any], workdir: Path, behaviours: dict[str, str]) -> ServedCluster:
    workdir.mkdir(parents=True, exist_ok=True)
    scenario_path = workdir / "scenario.yaml"
    scenario_path.write_text(yaml.safe_dump(scenario, sort_keys=False), encoding="utf-8")
    behaviours_path = workdir / "behaviours.json"
    behaviours_path.write_text(json.dumps(behaviours), encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.hardening.sim_server_child", str(scenario_path), "--workdir",
         str(workdir / "ssh"), "--behaviours", str(behaviours_path)],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"simulated SSH server did not start: {line!r}")
    return ServedCluster(proc, Path(line.split(" ", 1)[1]))


@pytest.fixture
def served_cluster(tmp_path: Path) -> Iterator[Callable[..., ServedCluster]]:
    started: list[ServedCluster] = []

    def start(scenario: dict[str, Any], behaviours: dict[str, str] | None = None) -> ServedCluster:
        served = start_served_cluster(scenario, tmp_path / f"cluster{len(started)}", behaviours or {})
        started.append(served)
        return served

    yield start
    for served in started:
        served.close()
