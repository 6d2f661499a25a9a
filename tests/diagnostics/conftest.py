"""Shared fixtures for diagnostics tests (other packages' tests may import them too).

- ``sim_ssh``: factory fixture. ``sim_ssh(sim_or_scenario_path, **kwargs)`` serves a SimCluster
  (or any object with ``hosts`` and ``handle(host, command)``) over real SSH on 127.0.0.1 and
  returns the running ``SimSSHServer`` (``.inventory``, ``.executor()``, ``.set_behaviour()``);
  everything is closed after the test. Outside pytest use ``simulator.sshserver.serve``.
- ``FakeSim``: a tiny stand-in cluster that echoes commands (for transport tests).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from diagnostics.types import CommandResult


class FakeSim:
    """Answers ``echo``-style commands; ``big N`` prints N bytes; counts calls per host."""

    def __init__(self, n: int = 4, prefix: str = "node") -> None:
        self.hosts = [f"{prefix}-{i:02d}" for i in range(1, n + 1)]
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def handle(self, host: str, command: str) -> CommandResult:
        with self._lock:
            self.calls[host] = self.calls.get(host, 0) + 1
        if command.startswith("big "):
            return CommandResult(host, command, 0, "x" * int(command.split()[1]))
        if command.startswith("fail"):
            return CommandResult(host, command, 3, "", "failed on purpose\n")
        return CommandResult(host, command, 0, f"{host} ran: {command}\n")


def _make_sim(target: Any) -> Any:
    if isinstance(target, str | Path):
        from simulator.scenario import load_scenario

        sim_module = pytest.importorskip("simulator")
        return sim_module.SimCluster(load_scenario(target))
    return target


@pytest.fixture
def sim_ssh(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    from simulator.sshserver import SimSSHServer

    servers: list[SimSSHServer] = []

    def start(target: Any, **kwargs: Any) -> SimSSHServer:
        kwargs.setdefault("workdir", tmp_path / f"sim{len(servers)}")
        server = SimSSHServer(_make_sim(target), **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def fake_sim() -> FakeSim:
    return FakeSim()
