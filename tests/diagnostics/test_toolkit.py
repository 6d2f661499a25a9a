from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diagnostics.approval import Approval, command_digest
from diagnostics.executors.fanout import OVERLOADED
from diagnostics.registry import Param, ParseInput, ParseOutput, Registry, ToolSpec
from diagnostics.toolkit import Toolkit
from diagnostics.types import CommandResult, Finding, Status, ValidationError


def parse_clock(data: ParseInput) -> ParseOutput:
    text = data.outputs[0].stdout
    mhz = int(text.split("=")[1])  # raises on garbled output on purpose
    if mhz < 1000:
        return ParseOutput(Status.PROBLEM, [Finding("gpu_clock_throttle", data.host, f"{mhz} MHz", gpu=data.params["gpu"])],
                           {"sm_clock_mhz": mhz})
    return ParseOutput(Status.OK, data={"sm_clock_mhz": mhz})


def parse_echo(data: ParseInput) -> ParseOutput:
    return ParseOutput(Status.OK, data={"lines": [o.stdout for o in data.outputs]})


def parse_wrong(data: ParseInput) -> ParseOutput:
    if data.params.get("shape") == "data":
        return ParseOutput(Status.OK, data=None)  # type: ignore[arg-type]
    if data.params.get("shape") == "findings":
        return ParseOutput(Status.PROBLEM, findings=["not a Finding"])  # type: ignore[list-item]
    return "not a ParseOutput"  # type: ignore[return-value]


GPU = Param("gpu", "int", "GPU index", required=False, default=0, min=0, max=7)


def make_registry() -> Registry:
    def s(name: str, commands: tuple[str, ...], parse=parse_echo, **kw: object) -> ToolSpec:  # type: ignore[no-untyped-def]
        base: dict[str, object] = {"category": "compute", "level": "quick", "kind": "read_only", "params": ()}
        base.update(kw)
        return ToolSpec(name=name, description=name, commands=commands, parse=parse, **base)  # type: ignore[arg-type]

    return Registry([
        s("clock", ("clock -i {gpu}",), parse_clock, params=(GPU,)),
        s("two", ("first", "second")),
        s("wrong", ("first",), parse_wrong,
          params=(Param("shape", "choice", "what to get wrong", required=False, choices=("data", "findings")),)),
        s("slowcheck", ("sleep",), level="medium", timeout_s=0.2),
        s("reset_gpu_clocks", ("nvidia-smi -i {gpu} -rgc",), kind="mutating", params=(GPU,)),
    ])


class FakeExecutor:
    """In-process executor scripted per host: a dict command -> stdout, or a transport failure."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.down: set[str] = set()
        self.hang: set[str] = set()
        self.overloaded: set[str] = set()  # the executor could not listen to these in time
        self.raises: set[str] = set()
        self.clock: dict[str, int] = {}
        self.lock = threading.Lock()

    def run(self, host: str, command: str, timeout_s: float = 30.0) -> CommandResult:
        with self.lock:
            self.calls.append((host, command))
        if host in self.raises:
            raise RuntimeError("executor bug")
        if host in self.down:
            return CommandResult(host, command, None, "", "", 0.0, "unreachable", "connection refused")
        if host in self.overloaded:
            return CommandResult(host, command, None, "", "", 0.0, "not_checked", f"{OVERLOADED}: test")
        if host in self.hang or command == "sleep":
            time.sleep(min(timeout_s, 5))
            return CommandResult(host, command, None, "", "", timeout_s, "timeout", f"timed out after {timeout_s}s")
        if command.startswith("clock"):
            return CommandResult(host, command, 0, f"sm={self.clock.get(host, 1410)}")
        return CommandResult(host, command, 0, f"{command} output " * 10)

    def close(self) -> None:
        pass


@pytest.fixture
def ex() -> FakeExecutor:
    return FakeExecutor()


@pytest.fixture
def tk(ex: FakeExecutor) -> Toolkit:
    return Toolkit(make_registry(), ex)


def test_run_ok_and_problem(tk: Toolkit, ex: FakeExecutor) -> None:
    r = tk.run("clock", "n1", {"gpu": 2})
    assert r.status is Status.OK and r.data == {"sm_clock_mhz": 1410} and r.command == "clock -i 2"
    ex.clock["n2"] = 200
    r = tk.run("clock", "n2", {"gpu": 3})
    assert r.status is Status.PROBLEM and r.findings[0].kind == "gpu_clock_throttle" and r.findings[0].gpu == 3
    assert r.params == {"gpu": 3} and r.raw == "sm=200"


def test_run_multiple_commands_keeps_each_output(tk: Toolkit) -> None:
    r = tk.run("two", "n1")
    assert r.status is Status.OK and len(r.data["lines"]) == 2
    assert "$ first" in r.raw and "$ second" in r.raw


def test_garbled_output_is_error_with_raw_kept(tk: Toolkit, ex: FakeExecutor) -> None:
    ex.clock["n1"] = 0
    original = ex.run

    def garbled(host: str, command: str, timeout_s: float = 30.0) -> CommandResult:
        return CommandResult(host, command, 0, "clocks: [N/A]")

    ex.run = garbled  # type: ignore[method-assign]
    r = tk.run("clock", "n1")
    assert r.status is Status.ERROR and "could not parse clock" in r.error and r.raw == "clocks: [N/A]"
    ex.run = original  # type: ignore[method-assign]
    r = tk.run("wrong", "n1")
    assert r.status is Status.ERROR and "not ParseOutput" in r.error
    for shape in ("data", "findings"):
        r = tk.run("wrong", "n1", {"shape": shape})
        assert r.status is Status.ERROR and "malformed" in r.error and r.raw


def test_transport_failures_never_raise(tk: Toolkit, ex: FakeExecutor) -> None:
    ex.down.add("dead")
    r = tk.run("clock", "dead")
    assert r.status is Status.UNREACHABLE and "connection refused" in r.error
    assert [f.kind for f in r.findings] == ["node_unreachable"]
    ex.raises.add("buggy")
    r = tk.run("clock", "buggy")
    assert r.status is Status.ERROR and "executor failed: RuntimeError" in r.error
    r = tk.run("slowcheck", "n1")
    assert r.status is Status.TIMEOUT and r.duration_s < 2


def test_bad_requests_are_error_results(tk: Toolkit, ex: FakeExecutor) -> None:
    r = tk.run("clocks", "n1")
    assert r.status is Status.ERROR and "unknown tool 'clocks'" in r.error and "clock" in r.error
    r = tk.run("clock", "n1", {"gpu": "0; rm -rf /"})
    assert r.status is Status.ERROR and "'gpu'" in r.error
    r = tk.run("clock", "n1", {"gpu": 9})
    assert r.status is Status.ERROR and "<= 7" in r.error
    assert ex.calls == []


def test_mutating_tool_refused_by_run(tk: Toolkit, ex: FakeExecutor) -> None:
    r = tk.run("reset_gpu_clocks", "n1", {"gpu": 3})
    assert r.status is Status.ERROR
    assert r.error == "mutating tool reset_gpu_clocks needs an approved proposal"
    assert ex.calls == []


def _approval(commands: list[str], **kw: object) -> Approval:
    return Approval("p-hash", command_digest(commands), "U123", time.time(), **kw)  # type: ignore[arg-type]


def test_execute_action_runs_only_with_matching_digest(tk: Toolkit, ex: FakeExecutor) -> None:
    commands = tk.render("reset_gpu_clocks", {"gpu": 3})
    assert commands == ["nvidia-smi -i 3 -rgc"]
    r = tk.execute_action("reset_gpu_clocks", "n1", {"gpu": 3}, approval=_approval(commands))
    assert r.status is Status.OK and ex.calls == [("n1", "nvidia-smi -i 3 -rgc")]
    # Approved for GPU 3, asked for GPU 4: refused and never run.
    r = tk.execute_action("reset_gpu_clocks", "n1", {"gpu": 4}, approval=_approval(commands))
    assert r.status is Status.ERROR and "other commands" in r.error and len(ex.calls) == 1


def test_execute_action_refusals(tk: Toolkit, ex: FakeExecutor) -> None:
    commands = tk.render("reset_gpu_clocks", {"gpu": 1})
    expired = _approval(commands, expires_at=time.time() - 1)
    assert "expired" in tk.execute_action("reset_gpu_clocks", "n1", {"gpu": 1}, approval=expired).error
    elsewhere = _approval(commands, hosts=("n2",))
    assert "does not cover host n1" in tk.execute_action("reset_gpu_clocks", "n1", {"gpu": 1}, approval=elsewhere).error
    nobody = Approval("p", command_digest(commands), "", time.time())
    assert "no approver" in tk.execute_action("reset_gpu_clocks", "n1", {"gpu": 1}, approval=nobody).error
    bad = tk.execute_action("reset_gpu_clocks", "n1", {"gpu": "1; reboot"}, approval=_approval(commands))
    assert bad.status is Status.ERROR and bad.error.startswith("not run:")
    assert ex.calls == []


def test_command_digest_is_exact() -> None:
    assert command_digest(["a", "b"]) != command_digest(["a b"])
    assert command_digest(["a", "b"]) != command_digest(["a", "b "])
    assert command_digest(["x"]) == command_digest(["x"])
    assert len(command_digest([])) == 64


def test_output_cap(ex: FakeExecutor) -> None:
    tk = Toolkit(make_registry(), ex, output_cap=50)
    r = tk.run("two", "n1")
    assert "characters cut" in r.raw and len(r.raw) < 120


def test_sweep_counts_findings_and_order(tk: Toolkit, ex: FakeExecutor) -> None:
    hosts = [f"n{i}" for i in range(10)]
    ex.clock["n4"] = 300
    ex.down.add("n7")
    report = tk.sweep(hosts, concurrency=4)
    assert list(report.results) == hosts
    assert report.tools == ["clock", "two", "wrong"]  # quick only, read-only only
    assert report.counts() == {"ok": 9 * 2 - 1, "problem": 1, "error": 9, "unreachable": 3}
    kinds = {(f.host, f.kind) for f in report.findings()}
    assert ("n4", "gpu_clock_throttle") in kinds and ("n7", "node_unreachable") in kinds
    # After the first unreachable check the host is not tried again.
    assert sum(1 for h, _ in ex.calls if h == "n7") == 1
    assert report.to_dict()["counts"] == report.counts()
    try:
        import diagnostics.fleet  # noqa: F401
    except ImportError:
        assert any("fleet comparisons unavailable" in n for n in report.notes)
    else:
        assert not any("fleet" in n for n in report.notes) and report.fleet == []


def test_sweep_survives_a_hung_host(ex: FakeExecutor) -> None:
    tk = Toolkit(make_registry(), ex)
    ex.hang.add("n2")
    start = time.monotonic()
    report = tk.sweep(["n1", "n2", "n3"], tools=["clock", "two"], concurrency=3, host_deadline_s=0.5)
    assert time.monotonic() - start < 5  # given up on, not waited for (the hung host sleeps 5 s)
    assert [r.status for r in report.results["n2"]] == [Status.TIMEOUT, Status.TIMEOUT]
    assert report.results["n1"][0].status is Status.OK and report.results["n3"][0].status is Status.OK
    assert any(f.kind == "node_unreachable" and f.host == "n2" for f in report.findings())


def test_sweep_reports_hosts_clusterdoc_could_not_check(ex: FakeExecutor) -> None:
    ex.overloaded.add("n2")  # its command could not be serviced in time: this machine was behind
    ex.hang.add("n3")  # still running when the sweep's budget runs out
    report = Toolkit(make_registry(), ex).sweep(["n1", "n2", "n3", "n4"], tools=["clock", "two"], concurrency=4,
                                                host_deadline_s=10.0, budget_s=1.0)
    assert [r.status for r in report.results["n1"]] == [Status.OK, Status.OK] == [r.status for r in report.results["n4"]]
    for host in ("n2", "n3"):
        assert [r.status for r in report.results[host]] == [Status.NOT_CHECKED, Status.NOT_CHECKED]
        assert all(r.error.startswith(OVERLOADED) for r in report.results[host])
    assert "budget ran out" in report.results["n3"][0].error
    assert sum(1 for h, _ in ex.calls if h == "n2") == 1  # not loaded further once behind
    # Not checked is not blamed: no finding, no timeout; the summary counts them.
    assert not any(f.host in ("n2", "n3") for f in report.findings())
    assert report.not_checked == ["n2", "n3"] and report.counts()["not_checked"] == 4
    assert any(n.startswith(f"{OVERLOADED} (2 hosts)") for n in report.notes), report.notes
    assert report.to_dict()["not_checked"] == ["n2", "n3"]


def test_sweep_gives_up_after_repeated_timeouts(ex: FakeExecutor) -> None:
    reg = make_registry()
    tk = Toolkit(reg, ex)
    report = tk.sweep(["n1"], tools=["slowcheck", "slowcheck", "clock"], concurrency=1)
    statuses = [r.status for r in report.results["n1"]]
    assert statuses == [Status.TIMEOUT, Status.TIMEOUT, Status.TIMEOUT]
    assert "timed out on 2 checks" in report.results["n1"][2].error
    assert ("n1", "clock -i 0") not in ex.calls


def test_sweep_bad_arguments_raise_validation_error(tk: Toolkit) -> None:
    with pytest.raises(ValidationError, match="mutating"):
        tk.sweep(["n1"], tools=["reset_gpu_clocks"])
    with pytest.raises(ValidationError, match="unknown tool"):
        tk.sweep(["n1"], tools=["nope"])


def test_sweep_skips_checks_needing_params() -> None:
    reg = Registry([ToolSpec("ping", "ping", "network", "quick", "read_only",
                             (Param("target", "str", "peer"),), ("ping -c1 {target}",), parse_echo)])
    ex = FakeExecutor()
    report = Toolkit(reg, ex).sweep(["n1"])
    assert report.tools == [] and any("skipped ping" in n for n in report.notes)
    report = Toolkit(reg, ex).sweep(["n1"], tool_params={"ping": {"target": "n2"}})
    assert report.tools == ["ping"] and ex.calls == [("n1", "ping -c1 n2")]

_values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
                    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


@settings(max_examples=200, deadline=None)
@given(tool=st.sampled_from(["clock", "two", "wrong", "reset_gpu_clocks", "nope", ""]),
       params=st.one_of(st.none(), st.dictionaries(st.sampled_from(["gpu", "x", ""]), _values, max_size=3),
                        st.lists(st.integers(), max_size=2)))
def test_run_never_raises_whatever_the_model_asks(tool: str, params: object) -> None:
    ex = FakeExecutor()
    r = Toolkit(make_registry(), ex).run(tool, "n1", params)  # type: ignore[arg-type]
    assert r.tool == tool and r.host == "n1" and isinstance(r.status, Status)
    if r.status is Status.ERROR and r.error.startswith(("unknown tool", "tool ", "mutating")):
        assert ex.calls == []  # refused requests never reach the executor
    if tool == "reset_gpu_clocks":
        assert r.status is Status.ERROR and ex.calls == []


def test_sweep_adds_fleet_findings_from_the_simulator() -> None:
    sim_module = pytest.importorskip("simulator")
    pytest.importorskip("diagnostics.fleet")
    pytest.importorskip("diagnostics.checks")
    from diagnostics.registry import default_registry
    from simulator.scenario import parse_scenario_text

    scenario = parse_scenario_text(
        "id: t\ncluster: {nodes: 4, gpus_per_node: 2, gpu: A800-SXM4-80GB}\n"
        "faults:\n  - {kind: driver_mismatch, node: node-03, driver_version: '525.85.12'}\n", "t.yaml")
    sim = sim_module.SimCluster(scenario)
    report = Toolkit(default_registry(), sim.executor()).sweep(sim.hosts, tools=["versions"])
    assert [(f.kind, f.host) for f in report.fleet] == [("driver_mismatch", "node-03")]
    assert report.fleet[0] in report.findings()


def test_sweep_keeps_raw_output_of_non_ok_results_by_default(tk: Toolkit, ex: FakeExecutor) -> None:
    ex.clock["n2"] = 100
    report = tk.sweep(["n1", "n2"], tools=["clock"])
    assert report.results["n1"][0].raw == "" and report.results["n2"][0].raw == "sm=100"
    assert tk.sweep(["n1"], tools=["clock"], keep_raw="all").results["n1"][0].raw == "sm=1410"
    assert tk.sweep(["n2"], tools=["clock"], keep_raw="none").results["n2"][0].raw == ""
    with pytest.raises(ValidationError, match="keep_raw"):
        tk.sweep(["n1"], keep_raw="some")  # type: ignore[arg-type]
