"""One remote execution for many read-only checks: the batch script and its framed output.

A sweep sends each node one POSIX sh script instead of one SSH channel per command. The script
runs every command of the batch in order, each as ``timeout -k 1 LIMIT "$SHELL" -c 'COMMAND'``
with stdin from /dev/null and stdout/stderr in files of a private ``mktemp -d`` folder (removed
on exit), and after each command writes a framed record::

    \\n<BOUNDARY> R <index> <exit code> <T|-> <centiseconds> <stdout bytes> <stderr bytes>\\n
    <stdout, length-prefixed><stderr, length-prefixed>

``T`` marks a command stopped by ``timeout`` (exit 124/137 after its full limit). Records are
sent as soon as ``FLUSH_S`` has passed since the last send (and at the end), so a node with slow
tools answers in a few packets, not one per command. A stream
longer than twice ``half`` bytes is sent as its first and last ``half`` bytes (the header keeps
the real size), exactly what ``CappedBuffer`` keeps of an unbatched command. The reader never
searches command output for the boundary: it reads each record's header where the previous
record ended and then exactly the announced number of bytes, so output that contains the
boundary text or binary garbage cannot forge a record; the random boundary (new for every batch)
only detects a stream that lost its framing. The commands of one check are chained with ``&&``
on "not timed out", so a check stops at its first timed-out command as it does unbatched.

Safety: a ``BatchItem`` can only be made from a registry ``ToolSpec`` and validated params
(``BatchItem.for_check``), refuses mutating tools, and the script is fixed text plus those
already-validated, shell-quoted command lines, each quoted once more as one literal word for
``sh -c``. No free text reaches the script. Nodes without a working ``timeout`` or ``mktemp``
answer ``UNSUPPORTED`` and are checked one command at a time.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import re
import secrets
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from diagnostics.executors._buffer import CappedBuffer
from diagnostics.registry import ToolSpec, render_commands, validate_params
from diagnostics.types import CommandResult, ValidationError

MAGIC = "# clusterdoc-batch 1"
KILL_AFTER_S = 1  # timeout(1) sends KILL this long after TERM
CLIENT_SLACK_S = 2.0  # past a command's limit, the client waits this long for the node's own verdict
FLUSH_S = 1.0  # the node sends the records gathered so far once this long has passed since it last did
MAX_TIMEOUT_S = 86400.0
MAX_HEADER = 256  # bytes of one record header line
MAX_PREAMBLE = 64 * 1024  # login noise (a chatty .bashrc) tolerated before the first record
_BOUNDARY = re.compile(r"cdb[0-9a-f]{32}")
_SEAL_KEY = secrets.token_bytes(32)  # per process: only for_check can seal an item


def _seal(tool: str, commands: tuple[str, ...], timeout_s: float) -> str:
    return hmac.new(_SEAL_KEY, repr((tool, commands, timeout_s)).encode(), hashlib.sha256).hexdigest()


class BatchProtocolError(ValueError):
    """The node's batch output lost its framing (the caller checks that node unbatched)."""


@dataclass(frozen=True)
class BatchItem:
    """One read-only check as the batch runs it: its rendered registry command lines and its
    per-command time limit. Made only by ``for_check``, which seals it: an item built any other
    way, or copied with other commands (``dataclasses.replace``), is refused."""

    tool: str
    commands: tuple[str, ...]
    timeout_s: float
    seal: str = field(default="", repr=False, compare=False)

    def __post_init__(self) -> None:
        if not hmac.compare_digest(self.seal, _seal(self.tool, self.commands, self.timeout_s)):
            raise TypeError("a BatchItem is made from a registry check only: use BatchItem.for_check")
        if not self.commands:
            raise ValueError(f"{self.tool}: no command to run")
        if not (math.isfinite(self.timeout_s) and 0 < self.timeout_s <= MAX_TIMEOUT_S):
            raise ValueError(f"{self.tool}: timeout {self.timeout_s!r} is not in (0, {MAX_TIMEOUT_S:g}] s")

    @classmethod
    def for_check(cls, spec: ToolSpec, params: Mapping[str, Any] | None, *, scheduler: str = "slurm") -> BatchItem:
        """The check ``spec`` with ``params`` validated and rendered by the registry (every value
        shell-quoted). Raises ValidationError for a mutating tool or bad params."""
        if not spec.read_only:
            raise ValidationError(f"{spec.name} is a mutating tool: only read-only checks are batched")
        commands = tuple(render_commands(spec, validate_params(spec, params), scheduler=scheduler))
        timeout_s = float(spec.timeout_s)
        return cls(spec.name, commands, timeout_s, _seal(spec.name, commands, timeout_s))


def check_items(items: Sequence[BatchItem]) -> None:
    """Refuse anything that is not a sealed, registry-made BatchItem (raises TypeError)."""
    for item in items:
        if type(item) is not BatchItem or not hmac.compare_digest(
                item.seal, _seal(item.tool, item.commands, item.timeout_s)):
            raise TypeError(f"not a registry check: {item!r}")


def new_boundary() -> str:
    return "cdb" + secrets.token_hex(16)


def half_cap(output_cap: int) -> int:
    """Bytes kept of each end of a stream: what ``CappedBuffer(output_cap)`` keeps."""
    return max(2, output_cap) // 2


def _seconds(t: float) -> str:
    return f"{t:.3f}".rstrip("0").rstrip(".")


_PRELUDE = r"""_cdB={boundary}
_cdH={half}
_cdS=${{SHELL:-/bin/sh}}
_cdn() {{ _cdT=0; [ -r /proc/uptime ] || return 0; read _cdU _cdX </proc/uptime || return 0; case $_cdU in *.[0-9][0-9]) _cdT=$(( ${{_cdU%.*}} * 100 + 1${{_cdU#*.}} - 100 ));; esac; }}
_cde() {{ if [ "$2" -gt $((_cdH * 2)) ]; then head -c "$_cdH" "$1"; tail -c "$_cdH" "$1"; elif [ "$2" -gt 0 ]; then head -c "$2" "$1"; fi; }}
_cdr() {{
_cdn; _cd0=$_cdT
timeout -k {kill} "$2" "$_cdS" -c "$4" </dev/null >"$_cdD/o" 2>"$_cdD/e"
_cdC=$?
_cdn; _cdE=$((_cdT - _cd0)); _cdF=-
if [ "$_cdC" -eq 124 ] || [ "$_cdC" -eq 137 ]; then if [ "$_cdT" -eq 0 ] || [ "$_cdE" -ge "$3" ]; then _cdF=T; fi; fi
wc -c "$_cdD/o" "$_cdD/e" >"$_cdD/n" 2>/dev/null
{{ read _cdO _cdX; read _cdR _cdX; }} <"$_cdD/n"
{{ printf '\n%s R %s %s %s %s %s %s\n' "$_cdB" "$1" "$_cdC" "$_cdF" "$_cdE" "$_cdO" "$_cdR"
_cde "$_cdD/o" "$_cdO"; _cde "$_cdD/e" "$_cdR"; }} >>"$_cdD/r"
if [ "$_cdT" -eq 0 ] || [ $((_cdT - _cdL)) -ge {flush_cs} ]; then cat "$_cdD/r"; : >"$_cdD/r"; _cdL=$_cdT; fi
[ "$_cdF" = - ]
}}
if ! command -v timeout >/dev/null 2>&1 || ! timeout -k 1 5 true >/dev/null 2>&1; then printf '\n%s UNSUPPORTED timeout\n' "$_cdB"; exit 0; fi
_cdD=$(mktemp -d "${{TMPDIR:-/tmp}}/clusterdoc.XXXXXXXX" 2>/dev/null) || {{ printf '\n%s UNSUPPORTED mktemp\n' "$_cdB"; exit 0; }}
trap 'rm -rf "$_cdD"' EXIT
trap 'exit 129' HUP
trap 'exit 141' PIPE
trap 'exit 143' TERM
printf '\n%s BEGIN 1\n' "$_cdB"
: >"$_cdD/r"
_cdn; _cdL=$_cdT
: body
"""


def build_script(items: Sequence[BatchItem], boundary: str, half: int) -> str:
    """The POSIX sh script that runs ``items`` (commands numbered in order from 0)."""
    check_items(items)
    if not _BOUNDARY.fullmatch(boundary):
        raise ValueError(f"bad boundary {boundary!r}")
    if not isinstance(half, int) or half < 1:
        raise ValueError(f"bad half cap {half!r}")
    prelude = _PRELUDE.format(boundary=boundary, half=half, kill=KILL_AFTER_S, flush_cs=round(FLUSH_S * 100))
    return (f"{MAGIC} {boundary} {half}\n" + prelude + _body(tuple(items))
            + ": end\ncat \"$_cdD/r\"\nprintf '\\n%s END\\n' \"$_cdB\"\n")


@functools.lru_cache(maxsize=32)
def _body(items: tuple[BatchItem, ...]) -> str:
    """One line per check (its commands chained on "not timed out"); the same for every node of a
    sweep, so it is built once."""
    lines = []
    k = 0
    for item in items:
        limit, limit_cs = _seconds(item.timeout_s), max(1, math.floor(item.timeout_s * 100) - 1)
        steps = []
        for command in item.commands:
            steps.append(f"_cdr {k} {limit} {limit_cs} {shlex.quote(command)}")
            k += 1
        lines.append(" && ".join(steps) + " ;\n")
    return "".join(lines)


# ---- the script read back (the simulator plays it instead of a real shell) ----------------------
@dataclass(frozen=True)
class ScriptStep:
    index: int
    timeout_s: float
    command: str


@dataclass(frozen=True)
class ParsedScript:
    boundary: str
    half: int
    groups: tuple[tuple[ScriptStep, ...], ...]  # one per check: its commands, run until one times out


def parse_script(text: str) -> ParsedScript | None:
    """The steps of a script made by ``build_script``; None for anything else."""
    head, _, rest = text.partition("\n")
    parts = head.split()
    if not head.startswith(MAGIC + " ") or len(parts) != 5 or not _BOUNDARY.fullmatch(parts[3]):
        return None
    boundary, half = parts[3], int(parts[4]) if parts[4].isdigit() else 0
    _, found, body = rest.partition("\n: body\n")
    body, found_end, _ = body.rpartition(": end\n")
    if not found or not found_end or half < 1:
        return None
    try:
        tokens = shlex.split(body)
    except ValueError:
        return None
    groups: list[tuple[ScriptStep, ...]] = []
    group: list[ScriptStep] = []
    i = 0
    while i < len(tokens):
        if tokens[i] != "_cdr" or i + 5 >= len(tokens) or tokens[i + 5] not in ("&&", ";"):
            return None
        try:
            step = ScriptStep(int(tokens[i + 1]), float(tokens[i + 2]), tokens[i + 4])
        except ValueError:
            return None
        group.append(step)
        if tokens[i + 5] == ";":
            groups.append(tuple(group))
            group = []
        i += 6
    if group:
        return None
    return ParsedScript(boundary, half, tuple(groups))


def encode_begin(boundary: str) -> bytes:
    return f"\n{boundary} BEGIN 1\n".encode()


def encode_end(boundary: str) -> bytes:
    return f"\n{boundary} END\n".encode()


def encode_record(boundary: str, half: int, index: int, exit_code: int, timed_out: bool, duration_cs: int,
                  stdout: bytes, stderr: bytes) -> bytes:
    """One record exactly as the script writes it."""
    def body(data: bytes) -> bytes:
        return data[:half] + data[-half:] if len(data) > 2 * half else data

    flag = "T" if timed_out else "-"
    header = f"\n{boundary} R {index} {exit_code} {flag} {duration_cs} {len(stdout)} {len(stderr)}\n".encode()
    return header + body(stdout) + body(stderr)


# ---- the stream read back ---------------------------------------------------------------------
@dataclass
class BatchRecord:
    index: int
    exit_code: int
    timed_out: bool
    duration_s: float  # as the node measured it (0.0 when it could not)
    stdout: CappedBuffer
    stderr: CappedBuffer


@dataclass(frozen=True)
class BatchMarker:
    kind: str  # "BEGIN", "END" or "UNSUPPORTED"
    detail: str = ""


class BatchDecoder:
    """Splits a batch's stdout into records as bytes arrive (``feed``). Raises
    BatchProtocolError when the stream does not follow the framing."""

    def __init__(self, boundary: str, half: int, output_cap: int) -> None:
        self._prefix = f"\n{boundary} ".encode()
        self._half = half
        self._cap = output_cap
        self._buf = bytearray()
        self._begun = False
        self._ended = False
        self._record: BatchRecord | None = None
        self._todo: list[tuple[CappedBuffer, int, int]] = []  # (buffer, bytes left, of which to skip after the head)
        self.preamble = 0

    @property
    def began(self) -> bool:
        """True once the script's first record (BEGIN or UNSUPPORTED) arrived."""
        return self._begun or self._ended

    @property
    def ended(self) -> bool:
        return self._ended

    def feed(self, data: bytes) -> list[BatchRecord | BatchMarker]:
        self._buf += data
        out: list[BatchRecord | BatchMarker] = []
        while True:
            if self._record is not None:
                if not self._take_body():
                    break
                out.append(self._record)
                self._record = None
                continue
            if self._ended and self._buf:
                raise BatchProtocolError(f"{len(self._buf)} bytes after the end of the batch")
            item = self._take_header()
            if item is None:
                break
            if isinstance(item, BatchMarker):
                out.append(item)
        return out

    def _take_header(self) -> BatchRecord | BatchMarker | None:
        if not self._begun:
            at = self._buf.find(self._prefix)
            if at < 0:
                if len(self._buf) > MAX_PREAMBLE:
                    raise BatchProtocolError(f"no batch output within the first {MAX_PREAMBLE} bytes")
                return None
            self.preamble += at
            del self._buf[:at]
        if len(self._buf) < len(self._prefix):
            return None
        if not self._buf.startswith(self._prefix):
            raise BatchProtocolError("a record does not start where the previous one ended")
        end = self._buf.find(b"\n", len(self._prefix))
        if end < 0:
            if len(self._buf) > MAX_HEADER:
                raise BatchProtocolError("record header too long")
            return None
        line = bytes(self._buf[len(self._prefix):end]).decode("ascii", "replace")
        del self._buf[:end + 1]
        fields = line.split(" ")
        if not self._begun:
            if fields == ["BEGIN", "1"]:
                self._begun = True
                return BatchMarker("BEGIN")
            if fields[0] == "UNSUPPORTED":
                self._ended = True
                return BatchMarker("UNSUPPORTED", " ".join(fields[1:])[:100])
            raise BatchProtocolError(f"unexpected first record {line[:60]!r}")
        if fields == ["END"]:
            self._ended = True
            return BatchMarker("END")
        if len(fields) != 7 or fields[0] != "R" or fields[3] not in ("T", "-") \
                or not all(f.isdigit() for f in (fields[1], fields[2], fields[4], fields[5], fields[6])):
            raise BatchProtocolError(f"bad record header {line[:80]!r}")
        index, code, cs, n_out, n_err = (int(fields[i]) for i in (1, 2, 4, 5, 6))
        if code > 255:
            raise BatchProtocolError(f"bad exit code {code}")
        out, err = CappedBuffer(self._cap), CappedBuffer(self._cap)
        self._record = BatchRecord(index, code, fields[3] == "T", cs / 100.0, out, err)
        self._todo = [self._plan(out, n_out), self._plan(err, n_err)]
        return self._record

    def _plan(self, buf: CappedBuffer, total: int) -> tuple[CappedBuffer, int, int]:
        if total > 2 * self._half:
            return buf, 2 * self._half, total - 2 * self._half
        return buf, total, 0

    def _take_body(self) -> bool:
        """Move announced bytes from the stream into the record; True once it is complete."""
        while self._todo:
            buf, left, skip = self._todo[0]
            if skip and left <= self._half:
                buf.skip(skip)  # the middle of the stream, which the node did not send
                skip = 0
            if not left:
                self._todo.pop(0)
                continue
            if not self._buf:
                self._todo[0] = (buf, left, skip)
                return False
            n = min(left - self._half if skip else left, len(self._buf))
            buf.write(bytes(self._buf[:n]))
            del self._buf[:n]
            self._todo[0] = (buf, left - n, skip)
        return True


# ---- what a sweep asks of an executor ---------------------------------------------------------
KeepGoing = Callable[[int, list[CommandResult]], bool]


@dataclass
class BatchOutcome:
    """Per item, its command results (as ``Toolkit`` would get them one by one: they stop at
    the first that did not complete), or None when the batch stopped before it. ``unsupported``:
    why this node cannot run batches (its unreached items are to be run one at a time)."""

    results: list[list[CommandResult] | None]
    unsupported: str = ""


class BatchCollector:
    """Turns a batch's records into per-item command results, in order, for any executor that
    ran ``build_script(items, …)``: checks each record is the command due next, ends an item at
    its first timed-out command (the script skipped the rest of it), and calls ``keep_going``
    as each item completes. ``watch``: a Stopwatch since the node began the current command."""

    def __init__(self, host: str, items: Sequence[BatchItem], keep_going: KeepGoing | None,
                 watch: Callable[[], Any]) -> None:
        self.host = host
        self.items = list(items)
        self.outcome = BatchOutcome([None] * len(self.items))
        self._keep_going = keep_going
        self._plan = [(i, j) for i, item in enumerate(self.items) for j in range(len(item.commands))]
        self._at = 0  # position in the plan of the command the node runs now
        self._done: list[CommandResult] = []
        self._new_watch = watch
        self.watch = watch()
        self.received = 0  # records taken

    @property
    def finished(self) -> bool:
        return self._at >= len(self._plan)

    @property
    def position(self) -> int:
        return self._at

    @property
    def planned(self) -> int:
        return len(self._plan)

    @property
    def timeout_s(self) -> float:
        """The time limit of the first command whose record has not come yet."""
        return self.items[self._plan[min(self._at, len(self._plan) - 1)][0]].timeout_s

    @property
    def wait_limit_s(self) -> float:
        """How long the next records may take to come before the node is judged: the node sends
        them at most ``FLUSH_S`` plus one command (the longest limit left, its KILL grace) apart."""
        left = {i for i, _ in self._plan[self._at:]} or {len(self.items) - 1}
        return max(self.items[i].timeout_s for i in left) + CLIENT_SLACK_S + FLUSH_S

    def record(self, rec: BatchRecord) -> bool:
        """Take the next record; False when reading should stop (all in, or asked to stop)."""
        if self.finished or rec.index != self._at:
            raise BatchProtocolError(f"record {rec.index} where command {self._at} was due")
        self.received += 1
        duration = rec.duration_s or self.watch.wall()
        if rec.timed_out:
            return self._finish(self._result("timeout", f"command timed out after {self.timeout_s:g}s on {self.host} "
                                             "(stopped on the node by timeout(1))", None, rec.stdout, rec.stderr, duration))
        return self._finish(self._result("ok", "", rec.exit_code, rec.stdout, rec.stderr, duration))

    def stop(self, transport: str, error: str) -> None:
        """The command the node runs now ends as ``transport`` (the items after it stay None)."""
        if not self.finished:
            self._finish(self._result(transport, error))

    def _result(self, transport: str, error: str, code: int | None = None, out: CappedBuffer | None = None,
                err: CappedBuffer | None = None, duration: float | None = None) -> CommandResult:
        i, j = self._plan[self._at]
        out, err = out or CappedBuffer(2), err or CappedBuffer(2)
        return CommandResult(self.host, self.items[i].commands[j], code, out.text(), err.text(),
                             self.watch.wall() if duration is None else duration,
                             transport, error, out.truncated or err.truncated)  # type: ignore[arg-type]

    def _finish(self, last: CommandResult) -> bool:
        i, j = self._plan[self._at]
        self._done.append(last)
        self.watch = self._new_watch()
        if last.transport == "ok" and j < len(self.items[i].commands) - 1:
            self._at += 1
            return True
        results, self._done = self._done, []
        self.outcome.results[i] = results
        self._at += len(self.items[i].commands) - j
        go = self._keep_going(i, results) if self._keep_going is not None else True
        return go and last.transport in ("ok", "timeout") and not self.finished


@runtime_checkable
class BatchExecutor(Protocol):
    """An executor that can run a node's checks as one batch."""

    @property
    def batch_sweeps(self) -> bool: ...

    def run_batch(self, host: str, items: Sequence[BatchItem], keep_going: KeepGoing | None = None) -> BatchOutcome: ...
