"""Run commands on this machine through ``bash -c`` (the same command lines SSH would run).

The timeout counts from when the command started and, like the SSH executor's, expires only while
this process is keeping up (``fanout.ClientLag``); a command still running when this process has
been behind for ``overload_cap_s(timeout)`` of wall time is killed and reported ``not_checked``."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time

from diagnostics.executors._buffer import DEFAULT_OUTPUT_CAP, CappedBuffer
from diagnostics.executors.fanout import OVERLOADED, Stopwatch, client_lag, current_host_clock
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
        clock = current_host_clock()
        if clock is not None:
            clock.claim()
        with client_lag().running():
            if clock is None:
                return self._run(host, command, timeout_s)
            clock.sent()
            try:
                return self._run(host, command, timeout_s)
            finally:
                clock.answered()

    def _run(self, host: str, command: str, timeout_s: float) -> CommandResult:
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
        watch = Stopwatch()
        outcome = self._pump(proc, out, err, watch, timeout_s)
        if outcome != "ok":
            self._kill_group(proc)
        exit_code = proc.wait()
        duration = time.monotonic() - start
        truncated = out.truncated or err.truncated
        if outcome == "timeout":
            return CommandResult(
                host, command, None, out.text(), err.text(), duration, "timeout",
                f"command timed out after {timeout_s:g}s (process group killed)", truncated,
            )
        if outcome == "not_checked":
            return CommandResult(
                host, command, None, out.text(), err.text(), duration, "not_checked",
                f"{OVERLOADED}: the command took {watch.wall():.1f}s, but this process was running "
                f"{watch.lag():.1f}s late meanwhile (process group killed)", truncated,
            )
        return CommandResult(host, command, exit_code, out.text(), err.text(), duration, "ok", "", truncated)

    @staticmethod
    def _pump(
        proc: subprocess.Popen[bytes], out: CappedBuffer, err: CappedBuffer, watch: Stopwatch, timeout_s: float
    ) -> str:
        """Read both pipes until EOF: "ok", "timeout" (the command had its full timeout while this
        process kept up) or "not_checked" (the overload cap passed first)."""
        assert proc.stdout is not None and proc.stderr is not None

        def expired() -> str | None:
            return watch.verdict(timeout_s)

        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        try:
            while sel.get_map():
                for key, _ in sel.select(timeout=min(max(timeout_s - watch.wall(), 0.001), 1.0)):
                    chunk = os.read(key.fd, 65536)
                    if chunk:
                        key.data.write(chunk)
                    else:
                        sel.unregister(key.fileobj)
                if sel.get_map() and (why := expired()) is not None:
                    return why
            # Output closed; the process may still be running (daemonised child holding no pipe).
            while True:
                try:
                    proc.wait(timeout=min(max(timeout_s - watch.wall(), 0.001), 1.0))
                    return "ok"
                except subprocess.TimeoutExpired:
                    if (why := expired()) is not None:
                        return why
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
