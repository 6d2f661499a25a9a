"""The toolkit: runs registry tools on hosts through an executor and returns structured results.

HolmesGPT style: whatever a node does (hangs, refuses, prints garbage), ``run`` returns a
``ToolResult`` and never raises. Invalid tool names or params come back as status ``error``
naming the problem, so a model that picked badly sees why. Mutating tools run only through
``execute_action`` with an ``Approval`` whose digest matches the commands about to run.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from diagnostics.approval import Approval, command_digest
from diagnostics.executors.batch import BatchExecutor, BatchItem
from diagnostics.executors.fanout import OVERLOADED, Stopwatch, client_lag, fanout, overload_cap_s
from diagnostics.registry import (
    Level,
    ParseInput,
    ParseOutput,
    Registry,
    ToolSpec,
    render_commands,
    validate_params,
)
from diagnostics.scheduling import Placed, SlurmPlacement, place
from diagnostics.types import (
    RAW_OUTPUT_CAP,
    CommandResult,
    Executor,
    Finding,
    Status,
    ToolResult,
    ValidationError,
    cap_text,
)

_TRANSPORT_STATUS = {
    "timeout": Status.TIMEOUT, "unreachable": Status.UNREACHABLE, "error": Status.ERROR,
    "not_checked": Status.NOT_CHECKED,
}
KeepRaw = Literal["all", "non_ok", "none"]
# After this many consecutive command timeouts on one host a sweep stops trying that host.
SWEEP_TIMEOUTS_BEFORE_GIVING_UP = 2


@dataclass
class SweepReport:
    """Results of many tools on many hosts."""

    results: dict[str, list[ToolResult]]
    level: str
    tools: list[str]
    wall_s: float = 0.0
    host_s: dict[str, float] = field(default_factory=dict)
    fleet: list[Finding] = field(default_factory=list)  # cross-node findings (driver_mismatch …)
    notes: list[str] = field(default_factory=list)  # e.g. fleet comparison unavailable
    # Hosts not checked because clusterdoc itself fell behind (status not_checked): not their fault.
    not_checked: list[str] = field(default_factory=list)
    client_lag_s: float = 0.0  # how long this process ran late during the sweep

    def all_results(self) -> list[ToolResult]:
        return [r for rs in self.results.values() for r in rs]

    def findings(self) -> list[Finding]:
        """Per-host findings followed by fleet findings."""
        return [f for r in self.all_results() for f in r.findings] + list(self.fleet)

    def counts(self) -> dict[str, int]:
        """Number of tool results by status value."""
        return dict(Counter(r.status.value for r in self.all_results()))

    @property
    def checks_run(self) -> int:
        return sum(len(rs) for rs in self.results.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "tools": self.tools,
            "wall_s": round(self.wall_s, 3),
            "counts": self.counts(),
            "not_checked": list(self.not_checked),
            "client_lag_s": round(self.client_lag_s, 3),
            "findings": [f.to_dict() for f in self.findings()],
            "hosts": {h: [r.to_dict() for r in rs] for h, rs in self.results.items()},
            "notes": self.notes,
        }


class Toolkit:
    def __init__(
        self,
        registry: Registry,
        executor: Executor,
        *,
        scheduler: str = "slurm",
        output_cap: int = RAW_OUTPUT_CAP,
        slurm: SlurmPlacement | None = None,
    ) -> None:
        self.registry = registry
        self.executor = executor
        self.scheduler = scheduler
        self.output_cap = output_cap
        self.slurm = slurm or SlurmPlacement()  # controller + Slurm names, from the inventory

    # ---- single tools -------------------------------------------------------------------
    def run(self, tool: str, host: str, params: Mapping[str, Any] | None = None) -> ToolResult:
        """Run a read-only tool; a mutating one is refused (it needs an approved proposal)."""
        try:
            spec = self.registry.get(tool)
            if not spec.read_only:
                return _error(tool, host, params, f"mutating tool {tool} needs an approved proposal")
            checked = validate_params(spec, params)
            commands = render_commands(spec, checked, scheduler=self.scheduler)
        except ValidationError as exc:
            return _error(tool, host, params, str(exc))
        return self._execute(spec, host, checked, commands)

    def render(self, tool: str, params: Mapping[str, Any] | None = None) -> list[str]:
        """The exact command lines ``tool`` would run here (what a proposal shows and digests)."""
        return self.registry.render(tool, params, scheduler=self.scheduler)

    def place(self, tool: str, node: str, params: Mapping[str, Any] | None = None) -> Placed:
        """An action about ``node`` made ready to propose: where it runs (a Slurm scheduler action:
        the inventory's controller, else the node), its params (plus the node's validated Slurm
        name) and its exact command lines. Raises ValidationError (nothing can run) on bad input."""
        spec = self.registry.get(tool)
        run_on, full, note = place(spec, node, params, scheduler=self.scheduler, placement=self.slurm)
        commands = render_commands(spec, validate_params(spec, full), scheduler=self.scheduler)
        return Placed(tool, node, run_on, full, commands, note)

    def execute_action(
        self, tool: str, host: str, params: Mapping[str, Any] | None, *, approval: Approval
    ) -> ToolResult:
        """Run a tool (normally mutating) only if ``approval`` covers its exact rendered commands."""
        try:
            spec = self.registry.get(tool)
            checked = validate_params(spec, params)
            commands = render_commands(spec, checked, scheduler=self.scheduler)
        except ValidationError as exc:
            return _error(tool, host, params, f"not run: {exc}")
        if not isinstance(approval, Approval):
            return _error(tool, host, checked, f"not run: {tool} needs an Approval, got {type(approval).__name__}")
        why = approval.refusal(command_digest(commands), host)
        if why is not None:
            return _error(tool, host, checked, f"not run: {why}", command="\n".join(commands))
        return self._execute(spec, host, checked, commands)

    def _execute(self, spec: ToolSpec, host: str, params: dict[str, Any], commands: list[str]) -> ToolResult:
        start = time.monotonic()
        outputs = self._run_commands(spec, host, commands)
        base, complete = _unparsed(spec, host, params, commands, outputs)
        base.raw, _ = cap_text(_raw_text(outputs), self.output_cap)
        if complete:
            _parse_into(base, spec, params, outputs)
        base.duration_s = time.monotonic() - start
        return base

    def _run_commands(self, spec: ToolSpec, host: str, commands: list[str]) -> list[CommandResult]:
        """Run ``commands`` in order, stopping at the first that did not complete."""
        outputs: list[CommandResult] = []
        for command in commands:
            result = self._run_command(host, command, spec.timeout_s)
            outputs.append(result)
            if result.transport != "ok":
                break
        return outputs

    def _run_command(self, host: str, command: str, timeout_s: float) -> CommandResult:
        try:
            return self.executor.run(host, command, timeout_s)
        except Exception as exc:  # an executor bug must not escape as a node's failure
            return CommandResult(host, command, None, "", "", 0.0, "error", f"executor failed: {type(exc).__name__}: {exc}")

    # ---- sweeps -------------------------------------------------------------------------
    def sweep_specs(self, tools: Iterable[str] | None = None, level: Level = "quick") -> list[ToolSpec]:
        """Read-only specs a sweep runs: the named ones, or every check up to ``level``."""
        if tools is None:
            return self.registry.up_to_level(level)
        specs = [self.registry.get(t) for t in tools]
        mutating = [s.name for s in specs if not s.read_only]
        if mutating:
            raise ValidationError(f"a sweep runs read-only checks only; mutating: {', '.join(mutating)}")
        return specs

    def sweep(
        self,
        hosts: Sequence[str],
        tools: Iterable[str] | None = None,
        level: Level = "quick",
        concurrency: int = 32,
        progress: bool = False,
        *,
        tool_params: Mapping[str, Mapping[str, Any]] | None = None,
        host_deadline_s: float | None = None,
        keep_raw: KeepRaw = "non_ok",
        budget_s: float | None = None,
        batch: bool | None = None,
        parse: ParseMode = "thread",
    ) -> SweepReport:
        """Run checks on every host in parallel (checks on one host run in sequence, over its one
        connection). A check whose required params are not given in ``tool_params`` is skipped.
        ``keep_raw``: raw output kept for "all" results, only "non_ok" ones (default: a 2,000-node
        sweep would otherwise hold gigabytes of healthy nvidia-smi text), or "none".

        ``host_deadline_s`` measures the node: the time its commands were outstanding, counted
        from when each was sent (connecting and waiting for a slot do not count). A host past it
        is ``timeout`` only while clusterdoc is keeping up (a reply would have been read).
        ``budget_s`` bounds the whole sweep in wall time (default: per wave of ``concurrency``
        hosts, twice the deadline plus a second, plus 30 s). Hosts unfinished when it runs out,
        or that clusterdoc could not listen to in time, are ``not_checked`` ("not checked:
        clusterdoc was overloaded"), listed in ``report.not_checked`` and counted in a note, never
        blamed. Raises ValidationError only for bad arguments (unknown tool names, a mutating
        tool).

        ``batch``: send each host its checks as one remote script (``diagnostics.executors.batch``;
        same commands, quoting, per-command time limits and results as one at a time); default:
        the executor's own setting (``SSHConfig.batch_sweeps``), never for executors without
        ``run_batch``. ``parse``: where outputs are parsed: "thread" (default: one background
        thread, as results come in, off the hosts' reading threads), "inline" (in each host's
        thread, as ``run`` does) or "after" (once the fan-out is over)."""
        if keep_raw not in ("all", "non_ok", "none"):
            raise ValidationError(f"keep_raw must be all, non_ok or none, got {keep_raw!r}")
        if parse not in ("thread", "inline", "after"):
            raise ValidationError(f"parse must be thread, inline or after, got {parse!r}")
        batching = isinstance(self.executor, BatchExecutor) and (
            self.executor.batch_sweeps if batch is None else batch)
        specs = self.sweep_specs(tools, level)
        tool_params = tool_params or {}
        planned: list[tuple[ToolSpec, dict[str, Any]]] = []
        notes: list[str] = []
        for spec in specs:
            try:
                planned.append((spec, validate_params(spec, tool_params.get(spec.name))))
            except ValidationError as exc:
                if tools is not None:
                    raise
                notes.append(f"skipped {spec.name}: {exc}")
        if host_deadline_s is None:
            host_deadline_s = max(60.0, sum(s.timeout_s for s, _ in planned) + 30.0)
        if budget_s is None:
            waves = math.ceil(len(dict.fromkeys(hosts)) / max(1, concurrency))
            budget_s = waves * overload_cap_s(host_deadline_s) + 30.0
        sweep_budget_s = budget_s

        parses = _Parses(self.output_cap, keep_raw, parse)
        unbatched: list[str] = []  # hosts that could not run batches, and why

        items = self._batch_items(planned) if batching else None  # the same for every host

        def on_host(host: str) -> list[ToolResult]:
            return self._sweep_host(host, planned, parses, items, unbatched)

        def on_timeout(host: str) -> list[ToolResult]:
            msg = (f"host gave no answer within the sweep's {host_deadline_s:g}s per-host deadline "
                   "(counted from when its commands were sent; clusterdoc was keeping up)")
            return [_status_result(s.name, host, p, Status.TIMEOUT, msg) for s, p in planned]

        def on_overload(host: str) -> list[ToolResult]:
            msg = (f"{OVERLOADED}: the sweep's {sweep_budget_s:g}s budget ran out before this host's checks "
                   f"finished (clusterdoc ran {watch.lag():.1f}s late); the host is not blamed")
            return [_status_result(s.name, host, p, Status.NOT_CHECKED, msg) for s, p in planned]

        def on_error(host: str, exc: BaseException) -> list[ToolResult]:
            msg = f"internal error: {type(exc).__name__}: {exc}"
            return [_status_result(s.name, host, p, Status.ERROR, msg) for s, p in planned]

        with client_lag().running():
            watch = Stopwatch()
            try:
                out = fanout(
                    hosts, on_host, concurrency=concurrency, deadline_s=host_deadline_s, budget_s=budget_s,
                    on_timeout=on_timeout, on_error=on_error, on_overload=on_overload, progress=progress,
                    desc=f"{level} sweep",
                )
            finally:
                parses.close()  # every kept result is parsed before anything reads it
        not_checked = [h for h, rs in out.results.items() if any(r.status is Status.NOT_CHECKED for r in rs)]
        report = SweepReport(
            results=out.results, level=level, tools=[s.name for s, _ in planned], wall_s=out.wall_s,
            host_s=out.durations_s, notes=notes, not_checked=not_checked, client_lag_s=out.client_lag_s,
        )
        if not_checked:
            report.notes.append(
                f"{OVERLOADED} ({len(not_checked)} host{'s' if len(not_checked) != 1 else ''}): this machine ran "
                f"{out.client_lag_s:.1f}s late during the {out.wall_s:.1f}s sweep; they are not blamed. "
                "Re-run them with lower concurrency or on a less busy machine."
            )
        if unbatched:
            report.notes.append(f"{len(unbatched)} host{'s' if len(unbatched) != 1 else ''} checked one command at a "
                                f"time instead of in one batch: {unbatched[0]}")
        for host in out.timed_out:
            report.results[host][0].findings.append(
                _unreachable_finding(host, f"no answer within the {host_deadline_s:g}s per-host deadline")
            )
        report.fleet = _fleet_findings(report)
        return report

    def _batch_items(self, planned: list[tuple[ToolSpec, dict[str, Any]]]) -> list[BatchItem | str]:
        """Each planned check as a batch item, or why it cannot render."""
        items: list[BatchItem | str] = []
        for spec, params in planned:
            try:
                items.append(BatchItem.for_check(spec, params, scheduler=self.scheduler))
            except ValidationError as exc:
                items.append(str(exc))
        return items

    def _sweep_host(
        self, host: str, planned: list[tuple[ToolSpec, dict[str, Any]]], parses: _Parses,
        items: list[BatchItem | str] | None, unbatched: list[str],
    ) -> list[ToolResult]:
        """One host's checks in order: as batches (given ``items``) while the node can run them,
        then one command at a time. The same rules give up on the host either way."""
        run = _HostRun(host)
        if items is not None:
            self._sweep_batched(host, planned, items, run, parses, unbatched)
        for spec, params in planned[len(run.results):]:
            if run.give_up is not None:
                run.results.append(_status_result(spec.name, host, params, run.give_up_status, run.give_up))
                continue
            try:
                commands = render_commands(spec, params, scheduler=self.scheduler)
            except ValidationError as exc:
                run.results.append(_error(spec.name, host, params, str(exc)))
                continue
            run.add(self._collect(spec, host, params, commands, self._run_commands(spec, host, commands), parses))
        return run.results

    def _sweep_batched(
        self, host: str, planned: list[tuple[ToolSpec, dict[str, Any]]], items: list[BatchItem | str],
        run: _HostRun, parses: _Parses, unbatched: list[str],
    ) -> None:
        """Run the host's checks as batches, in order, until all are done, the host is given up
        on, or the node cannot run batches (the caller then goes on one command at a time)."""
        prepared: list[BatchItem | ToolResult] = [
            it if isinstance(it, BatchItem) else _error(spec.name, host, params, it)
            for it, (spec, params) in zip(items, planned, strict=True)]
        executor = self.executor
        assert isinstance(executor, BatchExecutor)

        def catch_up(index: int) -> None:
            """Render errors before check ``index`` take their place in the results."""
            while len(run.results) < index:
                error = prepared[len(run.results)]
                assert isinstance(error, ToolResult)
                run.results.append(error)

        while len(run.results) < len(planned) and run.give_up is None:
            chunk = [i for i in range(len(run.results), len(planned)) if isinstance(prepared[i], BatchItem)]
            if not chunk:
                catch_up(len(planned))
                return
            catch_up(chunk[0])
            before = len(run.results)

            def keep_going(j: int, outputs: list[CommandResult], chunk: list[int] = chunk) -> bool:
                index = chunk[j]
                catch_up(index)
                spec, params = planned[index]
                item = prepared[index]
                assert isinstance(item, BatchItem)
                run.add(self._collect(spec, host, params, list(item.commands), outputs, parses))
                return run.give_up is None

            batch = [item for i in chunk if isinstance(item := prepared[i], BatchItem)]
            try:
                outcome = executor.run_batch(host, batch, keep_going)
            except Exception as exc:  # an executor bug: go on one command at a time
                unbatched.append(f"{host}: batch failed: {type(exc).__name__}: {exc}")
                return
            if outcome.unsupported:
                unbatched.append(outcome.unsupported)
                return
            if len(run.results) == before:  # nothing came back: do not try the same batch again
                return

    def _collect(
        self, spec: ToolSpec, host: str, params: dict[str, Any], commands: list[str], outputs: list[CommandResult],
        parses: _Parses,
    ) -> ToolResult:
        """A sweep's result from a check's outputs; parsing is handed to ``parses``."""
        result, complete = _unparsed(spec, host, params, commands, outputs)
        result.duration_s = sum(o.duration_s for o in outputs)
        if complete:
            parses.add(result, spec, params, outputs)
        elif parses.keep_raw != "none":
            result.raw, _ = cap_text(_raw_text(outputs), self.output_cap)
        return result


ParseMode = Literal["thread", "inline", "after"]


class _HostRun:
    """One host's results so far and the sweep's rules for giving up on it: unreachable once,
    not checked once (this machine is behind: do not add to its load), or timed out on
    ``SWEEP_TIMEOUTS_BEFORE_GIVING_UP`` checks in a row."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.results: list[ToolResult] = []
        self.give_up: str | None = None
        self.give_up_status = Status.TIMEOUT
        self.timeouts = 0

    def add(self, result: ToolResult) -> None:
        self.results.append(result)
        host = self.host
        if result.status is Status.UNREACHABLE:
            self.give_up, self.give_up_status = f"not run: {host} unreachable ({result.error})", Status.UNREACHABLE
        elif result.status is Status.NOT_CHECKED:
            self.give_up = f"{OVERLOADED} (an earlier check of {host} could not be serviced)"
            self.give_up_status = Status.NOT_CHECKED
        elif result.status is Status.TIMEOUT:
            self.timeouts += 1
            if self.timeouts >= SWEEP_TIMEOUTS_BEFORE_GIVING_UP:
                self.give_up = f"not run: {host} timed out on {self.timeouts} checks in a row"
                result.findings.append(_unreachable_finding(host, self.give_up.removeprefix("not run: ")))
        else:  # a result still to be parsed counts here: parsing never makes a timeout
            self.timeouts = 0


class _Parses:
    """Parses a sweep's command outputs into their results. "thread": one background thread
    parses as results come in, so the hosts' threads only read replies (and a lazily loaded
    catalog is loaded once, not by every host thread at the same moment); "inline": in the
    host's own thread; "after": all at once when ``close`` is called."""

    def __init__(self, output_cap: int, keep_raw: KeepRaw, mode: ParseMode) -> None:
        self.output_cap = output_cap
        self.keep_raw = keep_raw
        self.mode = mode
        self._jobs: queue.SimpleQueue[_ParseJob | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        if mode == "thread":
            self._thread = threading.Thread(target=self._work, name="clusterdoc-parse", daemon=True)
            self._thread.start()

    def add(self, result: ToolResult, spec: ToolSpec, params: dict[str, Any], outputs: list[CommandResult]) -> None:
        if self.mode == "inline":
            self._finish((result, spec, params, outputs))
        else:
            self._jobs.put((result, spec, params, outputs))

    def close(self) -> None:
        """Return once every result added so far is parsed."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None
        elif self.mode == "after":
            while True:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    return
                if job is not None:
                    self._finish(job)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            self._finish(job)

    def _finish(self, job: _ParseJob) -> None:
        result, spec, params, outputs = job
        try:
            _parse_into(result, spec, params, outputs)
        except Exception as exc:  # never lose the result (or the parse thread)
            result.status, result.error = Status.ERROR, f"could not parse {spec.name} output: {exc}"
        if self.keep_raw == "all" or (self.keep_raw == "non_ok" and result.status not in (Status.OK, Status.NO_DATA)):
            result.raw, _ = cap_text(_raw_text(outputs), self.output_cap)


_ParseJob = tuple[ToolResult, ToolSpec, dict[str, Any], list[CommandResult]]


def _unparsed(
    spec: ToolSpec, host: str, params: dict[str, Any], commands: list[str], outputs: list[CommandResult],
) -> tuple[ToolResult, bool]:
    """The result of a check's outputs before parsing, and whether every command completed (then
    the parser decides the status); otherwise the transport failure is the result."""
    base = ToolResult(tool=spec.name, host=host, status=Status.OK, command="\n".join(commands), params=params)
    failed = next((o for o in outputs if o.transport != "ok"), None)
    if failed is None:
        return base, True
    base.status = _TRANSPORT_STATUS.get(failed.transport, Status.ERROR)
    base.error = failed.error or f"transport {failed.transport}"
    if base.status is Status.UNREACHABLE:
        base.findings.append(_unreachable_finding(host, base.error))
    return base, False


def _parse_into(result: ToolResult, spec: ToolSpec, params: dict[str, Any], outputs: list[CommandResult]) -> None:
    parsed = _safe_parse(spec, ParseInput(host=result.host, params=params, outputs=outputs))
    result.status, result.findings, result.data, result.error = (
        parsed.status, list(parsed.findings), dict(parsed.data), parsed.error,
    )


def _raw_text(outputs: list[CommandResult]) -> str:
    parts: list[str] = []
    for r in outputs:
        text = r.stdout
        if r.stderr:
            text = f"{text}\n[stderr]\n{r.stderr}" if text else f"[stderr]\n{r.stderr}"
        if len(outputs) > 1:
            text = f"$ {r.command}\n{text}"
        parts.append(text)
    return "\n".join(parts)


def _safe_parse(spec: ToolSpec, data: ParseInput) -> ParseOutput:
    try:
        parsed = spec.parse(data)
    except Exception as exc:  # garbled output: status error, raw text kept by the caller
        return ParseOutput(Status.ERROR, error=f"could not parse {spec.name} output: {type(exc).__name__}: {exc}")
    if not isinstance(parsed, ParseOutput) or not isinstance(parsed.status, Status):
        return ParseOutput(Status.ERROR, error=f"parser of {spec.name} returned {type(parsed).__name__}, not ParseOutput")
    findings = parsed.findings if isinstance(parsed.findings, list | tuple) else None
    if findings is None or not all(isinstance(f, Finding) for f in findings) or not isinstance(parsed.data, Mapping):
        return ParseOutput(Status.ERROR, error=f"parser of {spec.name} returned malformed findings or data")
    return parsed


def _unreachable_finding(host: str, why: str) -> Finding:
    lowered = why.lower()
    if "host key" in lowered:  # refusing a key is a security event, not a dead node
        return Finding("ssh_host_key_refused", host, why, severity="critical")
    return Finding("node_unreachable", host, f"{host} unreachable: {why}", severity="critical")


def _status_result(
    tool: str, host: str, params: Mapping[str, Any] | None, status: Status, message: str
) -> ToolResult:
    return ToolResult(tool=tool, host=host, status=status, error=message, params=dict(params or {}))


def _error(
    tool: str, host: str, params: Mapping[str, Any] | None, message: str, *, command: str = ""
) -> ToolResult:
    safe_params = dict(params) if isinstance(params, Mapping) else {}
    return ToolResult(tool=tool, host=host, status=Status.ERROR, error=message, params=safe_params, command=command)


def _fleet_findings(report: SweepReport) -> list[Finding]:
    """Cross-node comparisons from diagnostics.fleet, when that module is present."""
    try:
        from diagnostics.fleet import fleet_findings  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        report.notes.append("fleet comparisons unavailable (diagnostics.fleet not installed)")
        return []
    try:
        return list(fleet_findings(report))
    except Exception as exc:  # a comparison bug must not lose the per-host results
        report.notes.append(f"fleet comparisons failed: {type(exc).__name__}: {exc}")
        return []
