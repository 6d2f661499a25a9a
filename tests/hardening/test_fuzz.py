"""Property-based fuzzing of every reader of outside input: the tool-output parsers (each parser
function and each check's parse step), the scenario loader, the benchmark case loader, the chat
command parser and the Alertmanager payload reader (webhook and alert-channel text).

Each target may only fail with its documented error type, and that error must say what was
wrong. Inputs are mostly real samples (simulator output, shipped fixtures and files) mutated line
by line, plus plain random text. ``HARDENING_FUZZ_EXAMPLES`` scales the examples per target.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import os
import pkgutil
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import diagnostics.parsers as parsers_pkg
from diagnostics.parsers import ParseError
from diagnostics.registry import ParseInput, ParseOutput, default_registry
from diagnostics.types import CommandResult, Status
from tests.hardening.figures import record
from tests.hardening.fuzzing import EXAMPLES, JSON, mutated_tree, text_from

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "diagnostics" / "fixtures"
N = int(os.environ.get("HARDENING_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=N, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
SAMPLE_SCENARIOS = ["a800-throttle", "ib-port-down", "disk-full", "host-oom", "nccl-env-misconfig", "gpu-xid",
                    "clock-skew", "nvlink-down", "gpu-row-remap-pending", "cpu-overload"]
REQUIRED_PARAMS: dict[str, dict[str, Any]] = {"service_status": {"service": "slurmd"}, "node_jobs": {"node": "node-01"}}


# ---------------------------------------------------------------------------- samples
@functools.cache
def tool_outputs() -> dict[str, list[list[CommandResult]]]:
    """Real output of every read-only check on the faulty node of several simulated scenarios."""
    from simulator import SimCluster
    from simulator.scenario import load_scenario

    registry = default_registry()
    out: dict[str, list[list[CommandResult]]] = {}
    for name in SAMPLE_SCENARIOS:
        scenario = load_scenario(REPO / "scenarios" / f"{name}.yaml")
        sim = SimCluster(scenario)
        host = scenario.faults[0].node if scenario.faults and scenario.faults[0].node else sim.hosts[0]
        for spec in registry.specs():
            if not spec.read_only:
                continue
            try:
                commands = registry.render(spec.name, REQUIRED_PARAMS.get(spec.name, {}))
            except Exception:  # a check needing a param: skip the sample, not the target
                continue
            out.setdefault(spec.name, []).append([sim.handle(host, c) for c in commands])
    return out


@functools.cache
def text_samples() -> list[str]:
    samples = [p.read_text(encoding="utf-8", errors="replace") for p in sorted(FIXTURES.iterdir()) if p.is_file()]
    samples += [r.stdout for runs in tool_outputs().values() for run in runs for r in run if r.stdout]
    return samples


def parser_functions() -> list[tuple[str, Callable[[str], Any]]]:
    found: list[tuple[str, Callable[[str], Any]]] = []
    for info in pkgutil.iter_modules(parsers_pkg.__path__):
        module = importlib.import_module(f"diagnostics.parsers.{info.name}")
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("parse_") and fn.__module__ == module.__name__:
                found.append((f"{info.name}.{name}", fn))
    return found


PARSERS = parser_functions()


def _count(target: str) -> None:
    EXAMPLES[target] += 1


@pytest.fixture(scope="module", autouse=True)
def _report_examples() -> Any:
    yield
    groups: dict[str, list[int]] = {}
    for target, n in EXAMPLES.items():
        groups.setdefault(target.split(":", 1)[0], []).append(n)
    for group, counts in sorted(groups.items()):
        record(f"fuzz: {group} ({len(counts)} targets, >= {min(counts)} examples each)", sum(counts),
               unit="examples", target="0 undocumented errors", group="fuzzing")


# ---------------------------------------------------------------------------- tool output
def test_every_parser_module_is_fuzzed() -> None:
    assert len(PARSERS) >= 20, [n for n, _ in PARSERS]


@pytest.mark.parametrize("name,fn", PARSERS, ids=[n for n, _ in PARSERS])
def test_parser_raises_only_parse_error(name: str, fn: Callable[[str], Any]) -> None:
    @FUZZ
    @given(text=text_from(text_samples()))
    def run(text: str) -> None:
        _count(f"parsers:{name}")
        try:
            fn(text)
        except ParseError as exc:
            assert str(exc).startswith("cannot parse "), str(exc)
            assert exc.problem, "a ParseError must say what was wrong"

    run()


READ_ONLY = [s.name for s in default_registry().specs() if s.read_only]


@pytest.mark.parametrize("tool", READ_ONLY)
def test_check_parse_step_returns_a_result_or_parse_error(tool: str) -> None:
    spec = default_registry().get(tool)
    runs = tool_outputs().get(tool) or [[CommandResult("node-01", c, 0, "") for c in default_registry().render(tool, REQUIRED_PARAMS.get(tool, {}))]]

    @st.composite
    def outputs(draw: st.DrawFn) -> list[CommandResult]:
        base = draw(st.sampled_from(runs))
        return [
            CommandResult(r.host, r.command, draw(st.sampled_from([0, 0, 0, 1, 2, 127, 255, None])),
                          draw(text_from([r.stdout] if r.stdout else text_samples())),
                          draw(st.sampled_from(["", "", "error: something failed", "command not found"])))
            for r in base
        ]

    @FUZZ
    @given(outs=outputs())
    def run(outs: list[CommandResult]) -> None:
        _count(f"checks:{tool}")
        try:
            parsed = spec.parse(ParseInput(host="node-01", params=REQUIRED_PARAMS.get(tool, {}), outputs=outs))
        except ParseError as exc:
            assert exc.problem
            return
        assert isinstance(parsed, ParseOutput) and isinstance(parsed.status, Status)
        if parsed.status is Status.ERROR:
            assert parsed.error, "status error without a message"
        json.dumps(parsed.data, default=str)  # results must stay JSON-able for logs and chat

    run()


# ---------------------------------------------------------------------------- scenarios
SCENARIO_TEXTS = [p.read_text(encoding="utf-8") for p in sorted((REPO / "scenarios").glob("*.yaml"))]


def test_scenario_loader_text() -> None:
    from simulator.scenario import ScenarioError, parse_scenario_text

    @FUZZ
    @given(text=text_from(SCENARIO_TEXTS))
    def run(text: str) -> None:
        _count("scenario loader:text")
        try:
            parse_scenario_text(text, "fuzz.yaml")
        except ScenarioError as exc:
            assert str(exc).startswith("fuzz.yaml"), str(exc)  # names the file (and line/field when known)
            assert exc.problem

    run()


def test_scenario_loader_tree() -> None:
    from simulator.scenario import ScenarioError, parse_scenario

    trees = [yaml.safe_load(t) for t in SCENARIO_TEXTS]

    @FUZZ
    @given(tree=st.one_of(st.sampled_from(trees).flatmap(mutated_tree), JSON))
    def run(tree: Any) -> None:
        _count("scenario loader:tree")
        try:
            parse_scenario(tree, "fuzz.yaml")
        except ScenarioError as exc:
            assert str(exc).startswith("fuzz.yaml") and exc.problem, str(exc)
            if exc.field:
                assert exc.field in str(exc)

    run()


def test_scenario_loader_files(tmp_path_factory: pytest.TempPathFactory) -> None:
    from simulator.scenario import ScenarioError, load_scenario

    folder = tmp_path_factory.mktemp("scen")

    @FUZZ
    @given(data=st.one_of(text_from(SCENARIO_TEXTS).map(lambda s: s.encode("utf-8", "surrogatepass")),
                          st.binary(max_size=200)))
    def run(data: bytes) -> None:
        _count("scenario loader:file")
        path = folder / "case.yaml"
        path.write_bytes(data)
        try:
            load_scenario(path)
        except ScenarioError as exc:
            assert str(exc).startswith(str(path)), str(exc)

    run()


# ---------------------------------------------------------------------------- benchmark cases
CASE_LINES = [line for p in sorted((REPO / "benchmark" / "cases").glob("*.jsonl"))
              for line in p.read_text(encoding="utf-8").splitlines()[:40] if line.strip()]


def test_benchmark_case_loader(tmp_path_factory: pytest.TempPathFactory) -> None:
    from benchmark.cases import load_cases

    folder = tmp_path_factory.mktemp("cases")
    trees = [json.loads(line) for line in CASE_LINES]

    line_strategy = st.one_of(
        st.sampled_from(trees).flatmap(mutated_tree).map(lambda t: json.dumps(t, default=str)),
        text_from(CASE_LINES),
    )

    @FUZZ
    @given(lines=st.lists(line_strategy, min_size=1, max_size=4))
    def run(lines: list[str]) -> None:
        _count("benchmark case loader:jsonl")
        path = folder / "cases.jsonl"
        path.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
        result = load_cases([path])  # never raises: bad cases become problems naming file:line
        for problem in result.problems:
            assert problem.file == str(path) and problem.line >= 1 and problem.field and problem.message
            assert re.match(rf"{re.escape(str(path))}:\d+: ", str(problem))

    run()


# ---------------------------------------------------------------------------- chat commands
NODES = [f"node-{i:02d}" for i in range(1, 17)]
COMMAND_WORDS = st.sampled_from(["diagnose", "status", "help", "diagnos", "DIAGNOSE", "", "rm", "/diagnose", "!x"])
COMMAND_TEXT = st.one_of(
    st.text(max_size=80),
    st.lists(st.one_of(st.sampled_from([*NODES, "job", "node", "4412", "job-77", "node5", "`node-03`", "'x'",
                                                "node-99", "; rm -rf /", "$(reboot)", "--all", "\n", "🔥"]),
                       st.text(max_size=12)), max_size=5).map(" ".join),
)


def test_command_parser() -> None:
    from bot.commands import CommandError, Parsed, parse_command, split_command, target_from_text

    @FUZZ
    @given(name=COMMAND_WORDS, text=COMMAND_TEXT, known=st.sampled_from([NODES, []]),
           prefix=st.sampled_from(["/", "!", "", " /"]))
    def run(name: str, text: str, known: list[str], prefix: str) -> None:
        _count("command parser:parse_command")
        try:
            parsed = parse_command(name, text, known)
        except CommandError as exc:
            assert str(exc).strip(), "a CommandError must say what is wrong"
        else:
            assert isinstance(parsed, Parsed)
            if parsed.target.kind == "node" and known:
                assert parsed.target.name in known  # never a node outside the inventory
            if parsed.target.name is not None:
                assert re.fullmatch(r"[A-Za-z0-9][\w.:-]{0,127}", parsed.target.name), parsed.target
        split = split_command(prefix + name + " " + text)
        assert split is None or isinstance(split[0], str)
        target = target_from_text(text, known)
        assert target.kind in ("node", "job", "none")

    run()


# ---------------------------------------------------------------------------- alertmanager
WEBHOOK = {
    "version": "4", "groupKey": "{}:{alertname=\"GPUThrottle\"}", "status": "firing", "receiver": "clusterdoc",
    "groupLabels": {"alertname": "GPUThrottle"}, "commonLabels": {"alertname": "GPUThrottle"},
    "commonAnnotations": {}, "externalURL": "http://127.0.0.1:9093",
    "alerts": [{"status": "firing", "labels": {"alertname": "GPUThrottle", "node": "node-05", "gpu": "3"},
                "annotations": {"summary": "GPU 3 clock 210 MHz"}, "startsAt": "2026-11-28T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "a1b2c3"}],
}
DOCUMENTED = {200, 400, 401, 403, 404, 405, 411, 413, 415, 422}


def test_alertmanager_webhook_reader() -> None:
    from bot.alertmanager import AlertmanagerConfig, AlertmanagerReceiver

    dispatched: list[Any] = []

    def dispatch(event: Any) -> list[Any]:
        dispatched.append(event)
        return []

    receiver = AlertmanagerReceiver(AlertmanagerConfig(channel="C1", max_body_bytes=4096), dispatch, env={"CLUSTERDOC_ALERTMANAGER_TOKEN": "t0k"})
    body = st.one_of(
        mutated_tree(WEBHOOK).map(lambda t: json.dumps(t, default=str).encode()),
        JSON.map(lambda t: json.dumps(t, default=str).encode()),
        st.binary(max_size=300),
        st.none(),
    )
    headers = st.fixed_dictionaries({
        "Authorization": st.sampled_from(["Bearer t0k", "Bearer t0k", "Bearer wrong", "Basic t0k", "", "Bearer "]),
        "Content-Type": st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", ""]),
    })

    @FUZZ
    @given(method=st.sampled_from(["POST", "POST", "POST", "GET", "PUT"]),
           path=st.sampled_from(["/alertmanager", "/alertmanager", "/alertmanager?x=1", "/other", "/healthz"]),
           hdrs=headers, payload=body)
    def run(method: str, path: str, hdrs: dict[str, str], payload: bytes | None) -> None:
        _count("alertmanager:webhook")
        before = len(dispatched)
        response = receiver.handle(method, path, hdrs, payload)
        assert response.status in DOCUMENTED, response
        if response.status != 200:
            assert len(dispatched) == before  # nothing dispatched from a refused request
            assert response.body.get("error"), response.body
        if response.status == 422:
            assert all(re.match(r"^(body|version|status|alerts|groupLabels|commonLabels|commonAnnotations)", p)
                       for p in response.body["problems"]), response.body["problems"]
        if hdrs["Authorization"] != "Bearer t0k" and path.startswith("/alertmanager") and method == "POST":
            assert response.status in (401, 403)

    run()


ALERT_TEXTS = [
    "[FIRING:1] GPUThrottle node-05\n- alertname = GPUThrottle\n- node = node-05\n- gpu = 3\nsummary: GPU 3 slow",
    '[RESOLVED] GPUThrottle\nalertname="GPUThrottle" node="node-05"',
    "status: firing\nalertname: XidError\nnode: node-02\nfingerprint: abc123",
]


def test_alert_channel_text_reader() -> None:
    from bot.alerts import parse_alert_text

    @FUZZ
    @given(text=text_from(ALERT_TEXTS))
    def run(text: str) -> None:
        _count("alertmanager:channel text")
        alert = parse_alert_text(text, platform="slack", channel="C1")
        if alert is not None:
            assert alert.status in ("firing", "resolved") and alert.fingerprint

    run()
