"""Run commands on this machine through ``bash -c`` (the same command lines SSH would run)."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time

from diagnostics.executors._buffer import DEFAULT_OUTPUT_CAP, CappedBuffer
from diagnostics.types import CommandResult


class LocalExecutor:
    """Executor for the local host: every ``host`` argument means this machine.

    Each command runs in its own process group so a timeout kills the whole pipeline
    (``nvidia-smi | grep …``), not only the shell.
    """

    def __init__(self, *, output_cap: int = DEFAULT_OUTPUT_CAP, shell: str = "/bin/bash") -> None:
        self.output_cap = output_cap
        self.shell = shell

    def run(self, host: str, command: str, timeout_s: float = 30.0) -> CommandResult:
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                [self.shell, "-c", command],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            return CommandResult(host, command, None, "", "", 0.0, "error", f"cannot start {self.shell}: {exc}")
        out, err = CappedBuffer(self.output_cap), CappedBuffer(self.output_cap)
        timed_out = self._pump(proc, out, err, start + timeout_s)
        if timed_out:
            self._kill_group(proc)
        exit_code = proc.wait()
        duration = time.monotonic() - start
        truncated = out.truncated or err.truncated
        if timed_out:
            return CommandResult(
                host, command, None, out.text(), err.text(), duration, "timeout",
                f"command timed out after {timeout_s:g}s (process group killed)", truncated,
            )
        return CommandResult(host, command, exit_code, out.text(), err.text(), duration, "ok", "", truncated)

    @staticmethod
    def _pump(proc: subprocess.Popen[bytes], out: CappedBuffer, err: CappedBuffer, deadline: float) -> bool:
        """Read both pipes until EOF; True when the deadline passed first."""
        assert proc.stdout is not None and proc.stderr is not None
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        try:
            while sel.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return True
                for key, _ in sel.select(timeout=min(remaining, 1.0)):
                    chunk = os.read(key.fd, 65536)
                    if chunk:
                        key.data.write(chunk)
                    else:
                        sel.unregister(key.fileobj)
            # Output closed; the process may still be running (daemonised child holding no pipe).
            remaining = deadline - time.monotonic()
            try:
                proc.wait(timeout=max(remaining, 0.001))
            except subprocess.TimeoutExpired:
                return True
            return False
        finally:
            sel.close()
            proc.stdout.close()
            proc.stderr.close()

    @staticmethod
    def _kill_group(proc: subprocess.Popen[bytes]) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()

    def close(self) -> None:
        """Nothing to release; present for the Executor protocol."""
