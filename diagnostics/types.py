"""Core value types shared by every layer: command results, findings, tool results.

These are the contract between executors, checks, the simulated cluster, the agent and the bot.
Everything here is plain data (JSON-able through ``to_dict``) so it can be logged, stored in
SQLite, rendered in chat and fed to a model as tagged text.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Literal, Protocol, runtime_checkable

# Findings are produced by checks here and by perf's detectors below; the type lives in the bottom
# leaf (perf) so both share it without perf importing diagnostics. Re-exported for every layer.
from perf.findings import Finding as Finding
from perf.findings import Severity as Severity

# Raw tool output kept in a result is capped so one chatty node cannot flood memory or chat.
RAW_OUTPUT_CAP = 64 * 1024


class Status(str, Enum):  # noqa: UP042  (kept: StrEnum would change str() output callers rely on)
    """Outcome of one tool on one host."""

    OK = "ok"  # ran, parsed, nothing wrong
    PROBLEM = "problem"  # ran, parsed, found something wrong (see findings)
    ERROR = "error"  # ran but failed, or output could not be parsed (raw kept)
    NO_DATA = "no_data"  # ran, but the thing is absent (no GPU, no IB HCA, tool not installed)
    TIMEOUT = "timeout"  # the command or connection timed out
    UNREACHABLE = "unreachable"  # could not connect (refused, DNS, auth, host key refused)
    # Not the node's outcome: clusterdoc itself fell behind (its machine was overloaded) before it
    # could give this host its full deadline; the host was not checked and is not blamed.
    NOT_CHECKED = "not_checked"


TransportStatus = Literal["ok", "timeout", "unreachable", "error", "not_checked"]


@dataclass(frozen=True)
class CommandResult:
    """What an executor returns for one command on one host. Never raised, always returned."""

    host: str
    command: str
    exit_code: int | None
    stdout: str
    stderr: str = ""
    duration_s: float = 0.0
    transport: TransportStatus = "ok"
    error: str = ""  # human-readable reason when transport != "ok"
    truncated: bool = False  # stdout/stderr were cut at the executor's output cap

    @property
    def ok(self) -> bool:
        return self.transport == "ok" and self.exit_code == 0


@runtime_checkable
class Executor(Protocol):
    """Runs one already-validated, already-quoted command line on a host."""

    def run(self, host: str, command: str, timeout_s: float = 30.0) -> CommandResult: ...

    def close(self) -> None: ...




@dataclass
class ToolResult:
    """Structured outcome of one registry tool on one host (HolmesGPT-style: never an exception)."""

    tool: str
    host: str
    status: Status
    findings: list[Finding] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # parsed output, JSON-able
    raw: str = ""  # raw output, capped at RAW_OUTPUT_CAP
    error: str = ""
    command: str = ""
    duration_s: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = self.status.value
        return d


def cap_text(text: str, limit: int = RAW_OUTPUT_CAP) -> tuple[str, bool]:
    """Keep head and tail of an oversized text and say where it was cut."""
    if len(text) <= limit:
        return text, False
    half = limit // 2
    cut = len(text) - 2 * half
    return f"{text[:half]}\n… [{cut} characters cut] …\n{text[-half:]}", True


class ClusterdocError(Exception):
    """Base of every documented error; the message names what was wrong."""


class ValidationError(ClusterdocError):
    """A value (tool parameter, scenario field, config key, case field) is invalid."""
