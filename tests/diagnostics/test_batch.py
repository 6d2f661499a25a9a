"""Batched sweeps: one remote script per node and its framed output (diagnostics.executors.batch).

- The script itself runs under real shells (dash as /bin/sh, bash, busybox when present): exit
  codes, stderr, per-command timeouts, output caps, quoting, binary output and output that
  forges the boundary all come back as the unbatched path gives them.
- The stream reader never trusts command output: fed byte by byte, with the boundary or garbage
  inside, it splits exactly by the announced lengths.
- Safety: only sealed, registry-made, read-only items are batched.
- On the simulator over real SSH, a quick sweep batched and unbatched gives the same statuses,
  findings, data and raw output, including a check that hangs and one whose command fails.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from diagnostics.executors import batch as batch_module
from diagnostics.executors._buffer import CappedBuffer
from diagnostics.executors.batch import (
    BatchCollector,
    BatchDecoder,
    BatchItem,
    BatchMarker,
    BatchOutcome,
    BatchProtocolError,
    BatchRecord,
    KeepGoing,
    build_script,
    check_items,
    encode_begin,
    encode_end,
    encode_record,
    half_cap,
    new_boundary,
    parse_script,
)
from diagnostics.executors.fanout import Stopwatch
from diagnostics.executors.local import LocalExecutor
from diagnostics.registry import ParseInput, ParseOutput, Registry, ToolSpec, default_registry
from diagnostics.toolkit import Toolkit
from diagnostics.types import CommandResult, Status, ToolResult, ValidationError
from tests.diagnostics.conftest import FakeSim

SHELLS = [s for s in ("/bin/sh", shutil.which("bash"), shutil.which("dash")) if s and os.path.exists(s)]
SHELLS = list(dict.fromkeys(os.path.realpath(s) for s in SHELLS))


def raw_parse(data: ParseInput) -> ParseOutput:
    """Every command's exit code and output, so parity compares what the executor returned."""
    outs = [{"code": o.exit_code, "out": o.stdout, "err": o.stderr, "cut": o.truncated} for o in data.outputs]
    bad = any(o.exit_code != 0 for o in data.outputs)
    return ParseOutput(Status.PROBLEM if bad else Status.OK, data={"outputs": outs})


def spec(name: str, *commands: str, timeout_s: float = 5.0, kind: str = "read_only") -> ToolSpec:
    return ToolSpec(name, name, "system", "quick", kind, (), commands, raw_parse, timeout_s=timeout_s)  # type: ignore[arg-type]


def item(name: str, *commands: str, timeout_s: float = 5.0) -> BatchItem:
    return BatchItem.for_check(spec(name, *commands, timeout_s=timeout_s), None)


def run_script(shell: str, script: str, env: dict[str, str] | None = None) -> bytes:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SHELL": shell}
    proc = subprocess.run([shell, "-c", script], capture_output=True, env={**base, **(env or {})}, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def decode(stream: bytes, boundary: str, cap: int, chunk: int | None = None) -> list[BatchRecord | BatchMarker]:
    dec = BatchDecoder(boundary, half_cap(cap), cap)
    step = chunk or len(stream) or 1
    events: list[BatchRecord | BatchMarker] = []
    for i in range(0, len(stream), step):
        events += dec.feed(stream[i:i + step])
    return events


def capped(data: bytes, cap: int) -> CappedBuffer:
    buf = CappedBuffer(cap)
    buf.write(data)
    return buf


class ShellBatchExecutor(LocalExecutor):
    """LocalExecutor plus ``run_batch`` through a real shell: the script as a node runs it."""

    batch_sweeps = True

    def __init__(self, shell: str, output_cap: int = 1 << 20) -> None:
        super().__init__(output_cap=output_cap, shell=shell)
        self.batches = 0

    def run_batch(self, host: str, items: Sequence[BatchItem], keep_going: KeepGoing | None = None) -> BatchOutcome:
        check_items(items)
        self.batches += 1
        boundary, half = new_boundary(), half_cap(self.output_cap)
        stream = run_script(self.shell, build_script(items, boundary, half))
        got = BatchCollector(host, items, keep_going, Stopwatch)
        for event in BatchDecoder(boundary, half, self.output_cap).feed(stream):
            if isinstance(event, BatchRecord):
                if not got.record(event):
                    break
            elif event.kind == "UNSUPPORTED":
                got.outcome.unsupported = event.detail
        return got.outcome


# ---- the script under real shells ----------------------------------------------------------------
@pytest.mark.parametrize("shell", SHELLS)
def test_script_keeps_exit_codes_streams_timeouts_and_caps(shell: str, tmp_path: Path) -> None:
    boundary, cap = new_boundary(), 64
    items = [
        item("a", "echo hello; echo oops >&2"),
        item("b", "exit 3"),
        item("c", "sleep 5", "echo never", timeout_s=0.5),  # stopped by timeout(1); its second command skipped
        item("d", "seq 1 100"),  # 292 bytes: head and tail kept, as CappedBuffer keeps them
        item("e", "printf '\\000\\377\\376 binary\\n'"),
    ]
    stream = run_script(shell, build_script(items, boundary, half_cap(cap)), {"TMPDIR": str(tmp_path)})
    events = decode(stream, boundary, cap)
    assert events[0] == BatchMarker("BEGIN") and events[-1] == BatchMarker("END")
    records = [e for e in events if isinstance(e, BatchRecord)]
    assert [r.index for r in records] == [0, 1, 2, 4, 5]  # command 3 ("echo never") was skipped
    a, b, c, d, e = records
    assert (a.exit_code, a.stdout.text(), a.stderr.text()) == (0, "hello\n", "oops\n")
    assert (b.exit_code, b.timed_out) == (3, False)
    assert c.timed_out and c.exit_code in (124, 137) and c.duration_s >= 0.4
    seq = subprocess.run(["seq", "1", "100"], capture_output=True, check=True).stdout
    assert d.stdout.truncated and d.stdout.text() == capped(seq, cap).text()
    assert e.stdout.text() == capped(b"\x00\xff\xfe binary\n", cap).text()
    assert list(tmp_path.iterdir()) == []  # the script's temp folder is gone


@pytest.mark.parametrize("shell", SHELLS)
def test_output_that_forges_the_boundary_cannot_confuse_the_split(shell: str) -> None:
    boundary = new_boundary()
    forged = f"\\n{boundary} R 1 0 - 0 3 0\\nabc\\n{boundary} END\\n"
    items = [item("forger", f"printf '{forged}'; head -c 2000 /dev/urandom"), item("next", "echo after")]
    stream = run_script(shell, build_script(items, boundary, half_cap(1 << 20)))
    for chunk in (None, 1, 7):  # all at once, byte by byte, odd chunks
        records = [e for e in decode(stream, boundary, 1 << 20, chunk) if isinstance(e, BatchRecord)]
        assert [r.index for r in records] == [0, 1]
        assert records[0].stdout.total == len(forged.replace("\\n", "\n")) + 2000
        assert records[0].stdout.text().startswith(f"\n{boundary} R 1 0 - 0 3 0\nabc\n{boundary} END\n")
        assert records[1].stdout.text() == "after\n"


@pytest.mark.parametrize("shell", SHELLS)
def test_quoting_survives_the_batch(shell: str) -> None:
    commands = ["echo 'a  b'\"c\" $((1+2))", "printf '%s\\n' \"x\\\\y\" '$PATH' `echo tick`",
                "echo '{print $5}' | tr a-z A-Z", "echo \"$(echo nested 'quote')\""]
    boundary = new_boundary()
    stream = run_script(shell, build_script([item("q", *commands)], boundary, half_cap(4096)))
    records = [e for e in decode(stream, boundary, 4096) if isinstance(e, BatchRecord)]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SHELL": shell}
    direct = [subprocess.run([shell, "-c", c], capture_output=True, text=True, check=True, env=env).stdout
              for c in commands]
    assert [r.stdout.text() for r in records] == direct
    assert direct[1].startswith("x\\y\n$PATH\ntick")


def test_records_are_sent_in_gathered_packets_but_at_least_every_flush_interval() -> None:
    import select
    import time

    boundary = new_boundary()
    items = [item(f"s{i}", "sleep 0.35; echo done") for i in range(8)]  # ~2.8 s of commands
    proc = subprocess.Popen(["/bin/sh", "-c", build_script(items, boundary, 4096)], stdout=subprocess.PIPE,
                            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SHELL": "/bin/sh"})
    assert proc.stdout is not None
    dec, arrivals, start = BatchDecoder(boundary, 4096, 8192), [], time.monotonic()
    while not dec.ended:
        select.select([proc.stdout], [], [], 10)
        records = [e for e in dec.feed(os.read(proc.stdout.fileno(), 65536)) if isinstance(e, BatchRecord)]
        arrivals += [(round(time.monotonic() - start, 1), r.index) for r in records]
    proc.wait(10)
    assert [i for _, i in arrivals] == list(range(8))
    times = sorted({t for t, _ in arrivals})
    assert 2 <= len(times) < 8  # gathered, yet streaming: the client hears from the node every ~FLUSH_S
    assert all(b - a <= batch_module.FLUSH_S + 0.8 for a, b in zip([0.0, *times], times, strict=False))


@pytest.mark.parametrize("shell", SHELLS)
def test_node_without_timeout_says_unsupported(shell: str, tmp_path: Path) -> None:
    boundary = new_boundary()
    proc = subprocess.run([shell, "-c", build_script([item("a", "true")], boundary, 8)], capture_output=True,
                          env={"PATH": str(tmp_path), "SHELL": shell}, timeout=30, check=False)
    assert decode(proc.stdout, boundary, 16) == [BatchMarker("UNSUPPORTED", "timeout")]


@pytest.mark.parametrize("shell", SHELLS)
def test_toolkit_results_are_the_same_batched_and_unbatched_under_a_real_shell(shell: str) -> None:
    registry = Registry([
        spec("hello", "echo hello; echo warn >&2"),
        spec("fails", "ls /nonexistent-clusterdoc-path"),
        spec("hangs", "sleep 10", "echo never", timeout_s=0.5),
        spec("big", "seq 1 5000"),
        spec("binary", "printf 'ok\\000\\377\\n'", "exit 7"),
        spec("quotes", "echo 'a b' \"$((6*7))\""),
    ])
    cap = 256
    unbatched = Toolkit(registry, LocalExecutor(output_cap=cap, shell=shell)).sweep(["local"], keep_raw="all")
    executor = ShellBatchExecutor(shell, output_cap=cap)
    batched = Toolkit(registry, executor).sweep(["local"], keep_raw="all")
    assert executor.batches == 1
    view = [(r.tool, r.status, r.data, r.raw, [f.to_dict() for f in r.findings]) for r in batched.results["local"]]
    assert view == [(r.tool, r.status, r.data, r.raw, [f.to_dict() for f in r.findings])
                    for r in unbatched.results["local"]]
    statuses = {r.tool: r.status for r in batched.results["local"]}
    assert statuses == {"hello": Status.OK, "fails": Status.PROBLEM, "hangs": Status.TIMEOUT, "big": Status.OK,
                        "binary": Status.PROBLEM, "quotes": Status.OK}


def test_checks_that_cannot_render_keep_their_place_in_a_batched_sweep() -> None:
    from diagnostics.registry import Param

    def unrenderable(name: str) -> ToolSpec:  # an optional param its command needs: refused at render time
        return ToolSpec(name, name, "system", "quick", "read_only", (Param("x", "str", "x", required=False),),
                        ("echo {x}",), raw_parse)

    registry = Registry([unrenderable("c0"), spec("c1", "echo a"), unrenderable("c2"), spec("c3", "echo b"),
                         unrenderable("c4")])  # a sweep runs them by name
    shell = SHELLS[0]
    expect = Toolkit(registry, LocalExecutor(shell=shell)).sweep(["local"])
    executor = ShellBatchExecutor(shell)
    got = Toolkit(registry, executor).sweep(["local"])
    assert [(r.tool, r.status, r.error) for r in got.results["local"]] == \
        [(r.tool, r.status, r.error) for r in expect.results["local"]]
    assert [r.status for r in got.results["local"]] == [Status.ERROR, Status.OK, Status.ERROR, Status.OK, Status.ERROR]
    assert executor.batches == 1


# ---- the stream reader --------------------------------------------------------------------------
def test_decoder_reads_by_length_not_by_searching() -> None:
    boundary, half = new_boundary(), 8
    evil = f"\n{boundary} END\n".encode() + b"\x00\xff" * 40
    stream = (b"motd from a chatty .bashrc\n" + encode_begin(boundary)
              + encode_record(boundary, half, 0, 0, False, 3, evil, b"e")
              + encode_record(boundary, half, 1, 124, True, 50, b"", b"")
              + encode_end(boundary))
    for chunk in (1, 3, len(stream)):
        events = decode(stream, boundary, 2 * half, chunk)
        assert [type(e).__name__ for e in events] == ["BatchMarker", "BatchRecord", "BatchRecord", "BatchMarker"]
        rec = events[1]
        assert isinstance(rec, BatchRecord)
        assert rec.stdout.total == len(evil) and rec.stdout.text() == capped(evil, 2 * half).text()
        assert rec.stderr.text() == "e" and rec.duration_s == 0.03
        assert isinstance(events[2], BatchRecord) and events[2].timed_out


@pytest.mark.parametrize("bad", [
    b"{B} R 0 0 - 0 1 0\nx",  # a record before BEGIN
    b"{B} BEGIN 1\n\n{B} R 0 0 - 0 99999999999999999999 0\n",  # absurd but numeric is fine: needs bytes
    b"{B} BEGIN 1\n\n{B} R 0 300 - 0 0 0\n",  # exit code out of range
    b"{B} BEGIN 1\n\n{B} R x 0 - 0 0 0\n",  # not a number
    b"{B} BEGIN 1\nstray text where a record must start\n",
])
def test_decoder_refuses_a_stream_out_of_frame(bad: bytes) -> None:
    boundary = new_boundary()
    stream = b"\n" + bad.replace(b"{B}", boundary.encode())
    dec = BatchDecoder(boundary, 8, 16)
    if b"9999999" in bad:
        events = dec.feed(stream)  # waits for bytes that never come: the caller's timers decide
        assert events == [BatchMarker("BEGIN")]
        return
    with pytest.raises(BatchProtocolError):
        dec.feed(stream + b"\n" * 300)


def test_decoder_gives_up_on_endless_login_noise() -> None:
    dec = BatchDecoder(new_boundary(), 8, 16)
    assert dec.feed(b"welcome\n" * 100) == []
    with pytest.raises(BatchProtocolError, match="no batch output"):
        dec.feed(b"x" * (batch_module.MAX_PREAMBLE + 1))


def test_collector_maps_records_to_checks_and_refuses_out_of_order() -> None:
    items = [item("a", "x", "y"), item("b", "z", timeout_s=1.0), item("c", "w")]
    seen: list[tuple[int, list[str]]] = []
    got = BatchCollector("n1", items, lambda i, rs: seen.append((i, [r.transport for r in rs])) is None, Stopwatch)
    boundary = new_boundary()
    events = decode(encode_begin(boundary) + encode_record(boundary, 8, 0, 0, False, 1, b"1", b"")
                    + encode_record(boundary, 8, 1, 2, False, 1, b"", b"e")
                    + encode_record(boundary, 8, 2, 124, True, 100, b"", b""), boundary, 16)
    for event in events:
        if isinstance(event, BatchRecord):
            assert got.record(event)
    assert seen == [(0, ["ok", "ok"]), (1, ["timeout"])]
    assert got.outcome.results[1] is not None and "stopped on the node" in got.outcome.results[1][0].error
    with pytest.raises(BatchProtocolError):
        got.record(BatchRecord(7, 0, False, 0.0, CappedBuffer(2), CappedBuffer(2)))
    got.stop("error", "connection dropped")
    assert got.outcome.results[2] is not None and got.outcome.results[2][0].transport == "error"


# ---- safety ----------------------------------------------------------------------------------------
def test_only_sealed_read_only_registry_checks_are_batched() -> None:
    with pytest.raises(ValidationError, match="mutating"):
        BatchItem.for_check(spec("drain", "scontrol update", kind="mutating"), None)
    with pytest.raises(TypeError):
        BatchItem("free", ("rm -rf /",), 5.0)
    good = item("ok", "uptime")
    with pytest.raises(TypeError):
        dataclasses.replace(good, commands=("reboot",))
    object.__setattr__(good, "commands", ("reboot",))  # tampering after the fact
    with pytest.raises(TypeError):
        build_script([good], new_boundary(), 8)
    with pytest.raises(TypeError):
        check_items([object()])  # type: ignore[list-item]


def test_every_registry_check_batches_to_exactly_its_rendered_commands() -> None:
    registry = default_registry()
    items = []
    for s in registry.specs(kind="read_only"):
        try:
            items.append(BatchItem.for_check(s, None))
        except ValidationError:
            continue  # required params: not part of a default sweep
    boundary = new_boundary()
    parsed = parse_script(build_script(items, boundary, 512))
    assert parsed is not None and parsed.boundary == boundary and parsed.half == 512
    assert [tuple(st.command for st in g) for g in parsed.groups] == [it.commands for it in items]
    assert [g[0].timeout_s for g in parsed.groups] == [it.timeout_s for it in items]
    assert all(it.commands == tuple(registry.render(it.tool, None)) for it in items)
    assert parse_script("echo hello") is None and parse_script(batch_module.MAGIC + " x 1\n") is None


def test_a_sweep_never_batches_a_mutating_tool(sim_ssh: Any) -> None:
    registry = Registry([spec("look", "x"), spec("change", "y", kind="mutating")])
    server = sim_ssh(FakeSim(1))
    with pytest.raises(ValidationError, match="read-only"):
        Toolkit(registry, server.executor()).sweep(["node-01"], tools=["look", "change"])


# ---- over SSH on the simulator ---------------------------------------------------------------------
PARITY_SCENARIO = """
id: batch-parity
cluster: {nodes: 4, gpus_per_node: 8, gpu: A800-SXM4-80GB, interconnect: infiniband, scheduler: slurm}
seed: 4
faults:
  - {kind: gpu_clock_throttle, node: node-02, gpu: 3, sm_clock_mhz: 210}
  - {kind: disk_full, node: node-03, mount: /}
  - {kind: driver_mismatch, node: node-04, driver_version: "535.104.05"}
  - kind: custom
    node: node-01
    category: configuration
    commands:
      "nvidia-smi nvlink": {hang: true}
      "chronyc tracking": {exit: 1, stderr: "506 Cannot talk to daemon\\n"}
"""


def _view(r: ToolResult) -> tuple[Any, ...]:
    return (r.tool, r.status, [f.to_dict() for f in r.findings], r.data, r.raw)


@pytest.mark.ssh
def test_quick_sweep_is_the_same_batched_and_unbatched_on_the_simulator(sim_ssh: Any) -> None:
    sim_module = pytest.importorskip("simulator")
    from simulator.scenario import parse_scenario_text

    registry = Registry(dataclasses.replace(s, timeout_s=1.0) for s in default_registry().specs())
    reports = {}
    for batched in (True, False):
        server = sim_ssh(sim_module.SimCluster(parse_scenario_text(PARITY_SCENARIO, "parity.yaml")))
        executor = server.executor()
        reports[batched] = Toolkit(registry, executor).sweep(
            server.hosts, level="quick", tool_params={"gpu_count": {"expected": 8}}, keep_raw="all", batch=batched)
        assert (executor.stats.batches > 0) == batched
    a, b = reports[True], reports[False]
    assert list(a.results) == list(b.results)
    for host in a.results:
        assert [_view(r) for r in a.results[host]] == [_view(r) for r in b.results[host]], host
    assert [f.to_dict() for f in a.fleet] == [f.to_dict() for f in b.fleet]
    node1 = {r.tool: r for r in a.results["node-01"]}
    assert node1["gpu_nvlink"].status is Status.TIMEOUT and "timed out after 1s" in node1["gpu_nvlink"].error
    assert node1["clock_sync"].status is Status.ERROR and "Cannot talk to daemon" in node1["clock_sync"].raw
    found = {(f.kind, f.host) for f in a.findings()}
    assert {("gpu_clock_throttle", "node-02"), ("disk_full", "node-03")} <= found


@pytest.mark.ssh
def test_batched_sweep_gives_up_after_two_timeouts_like_the_unbatched_one(sim_ssh: Any) -> None:
    sim = FakeSim(1)
    hung = {"slow-1", "slow-2"}

    class Sim:
        hosts = sim.hosts

        def handle(self, host: str, command: str) -> CommandResult:
            if command in hung:
                return CommandResult(host, command, None, "", "", 0.0, "timeout", "hangs")
            return sim.handle(host, command)

    registry = Registry([spec("a", "fast"), spec("b", "slow-1", timeout_s=0.5), spec("c", "slow-2", timeout_s=0.5),
                         spec("d", "fast again")])
    server = sim_ssh(Sim())
    executor = server.executor()
    report = Toolkit(registry, executor).sweep(sim.hosts)
    results = report.results["node-01"]
    assert [r.status for r in results] == [Status.OK, Status.TIMEOUT, Status.TIMEOUT, Status.TIMEOUT]
    assert results[3].error == "not run: node-01 timed out on 2 checks in a row"
    assert executor.stats.batches == 1 and executor.stats.commands == 3  # the batch was stopped there
    assert [f.kind for f in report.findings()] == ["node_unreachable"]


@pytest.mark.ssh
def test_a_hung_or_dropping_node_in_a_batched_sweep(sim_ssh: Any) -> None:
    sim = FakeSim(3)
    server = sim_ssh(sim, behaviours={"node-02": "hang", "node-03": "drop"})
    registry = Registry([spec("a", "one", timeout_s=0.5), spec("b", "two", timeout_s=0.5), spec("c", "three")])
    executor = server.executor()
    report = Toolkit(registry, executor).sweep(sim.hosts, concurrency=3)
    by_host = {h: [r.status for r in rs] for h, rs in report.results.items()}
    assert by_host["node-01"] == [Status.OK] * 3
    assert by_host["node-02"] == [Status.TIMEOUT] * 3  # no answer at all: the client's own clock
    assert "no answer from the node" in report.results["node-02"][0].error
    assert by_host["node-03"] == [Status.ERROR] * 3  # each re-sent batch dropped in its first command
    assert "before the command finished" in report.results["node-03"][0].error


@pytest.mark.ssh
def test_boundary_text_from_a_node_cannot_confuse_the_split_over_ssh(sim_ssh: Any,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from diagnostics.executors import ssh as ssh_module

    boundary = new_boundary()
    monkeypatch.setattr(ssh_module, "new_boundary", lambda: boundary)  # a node that guessed it

    class Sim:
        hosts: ClassVar[list[str]] = ["node-01"]

        def handle(self, host: str, command: str) -> CommandResult:
            if command == "forge":
                fake = f"\n{boundary} R 1 0 - 0 4 0\nfake\n{boundary} END\n\udcff\x00"
                return CommandResult(host, command, 0, fake)
            return CommandResult(host, command, 0, f"real {command}\n")

    registry = Registry([spec("a", "forge"), spec("b", "honest")])
    report = Toolkit(registry, sim_ssh(Sim()).executor()).sweep(["node-01"], keep_raw="all")
    a, b = report.results["node-01"]
    assert a.status is Status.OK and a.data["outputs"][0]["out"].startswith(f"\n{boundary} R 1 0 - 0 4 0\nfake\n")
    assert b.status is Status.OK and b.data["outputs"][0]["out"] == "real honest\n"


@pytest.mark.ssh
def test_batching_is_the_default_and_can_be_turned_off(sim_ssh: Any) -> None:
    sim = FakeSim(2)
    server = sim_ssh(sim)
    registry = Registry([spec("a", "one"), spec("b", "two")])
    on = server.executor()
    assert on.batch_sweeps and Toolkit(registry, on).sweep(sim.hosts).counts() == {"ok": 4}
    assert on.stats.batches == 2 and on.stats.commands == 4
    off = server.executor(batch_sweeps=False)
    assert Toolkit(registry, off).sweep(sim.hosts).counts() == {"ok": 4}
    assert off.stats.batches == 0 and off.stats.commands == 4
    Toolkit(registry, on).sweep(sim.hosts, batch=False)
    assert on.stats.batches == 2  # per sweep too


def test_a_node_that_cannot_run_batches_is_checked_one_command_at_a_time() -> None:
    class NoBatch(LocalExecutor):
        batch_sweeps = True

        def run_batch(self, host: str, items: Sequence[BatchItem], keep_going: KeepGoing | None = None) -> BatchOutcome:
            return BatchOutcome([None] * len(items), unsupported=f"{host} cannot run batches (mktemp)")

    registry = Registry([spec("a", "echo one"), spec("b", "echo two")])
    report = Toolkit(registry, NoBatch()).sweep(["local"])
    assert report.counts() == {"ok": 2}
    assert any("one command at a time" in n and "mktemp" in n for n in report.notes)


@pytest.mark.parametrize("mode", ["thread", "inline", "after"])
def test_every_parse_mode_gives_the_same_report(mode: str) -> None:
    registry = Registry([spec("a", "echo one"), spec("b", "exit 2"), spec("c", "echo three")])
    report = Toolkit(registry, LocalExecutor()).sweep(["h1", "h2"], parse=mode)  # type: ignore[arg-type]
    assert {h: [r.status for r in rs] for h, rs in report.results.items()} == {
        h: [Status.OK, Status.PROBLEM, Status.OK] for h in ("h1", "h2")}
    assert all(r.raw == "" for r in report.all_results() if r.status is Status.OK)  # keep_raw="non_ok"
    assert report.results["h1"][1].raw == ""  # exit 2 prints nothing
    with pytest.raises(ValidationError, match="parse"):
        Toolkit(registry, LocalExecutor()).sweep(["h1"], parse="later")  # type: ignore[arg-type]
