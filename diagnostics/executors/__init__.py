"""Executors: where a rendered command line actually runs (local shell, SSH, simulator) and the
fan-out that runs many hosts at once. ``SSHExecutor`` and ``nvml`` import their third-party
clients lazily, so importing this package stays cheap."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from diagnostics.executors.fanout import FanoutResult, fanout
from diagnostics.executors.local import LocalExecutor

if TYPE_CHECKING:
    from diagnostics.executors.ssh import SSHConfig, SSHExecutor

__all__ = ["FanoutResult", "LocalExecutor", "SSHConfig", "SSHExecutor", "fanout"]


def __getattr__(name: str) -> Any:
    if name in ("SSHExecutor", "SSHConfig"):
        from diagnostics.executors import ssh

        return getattr(ssh, name)
    if name == "nvml":
        import importlib

        return importlib.import_module("diagnostics.executors.nvml")
    raise AttributeError(name)
