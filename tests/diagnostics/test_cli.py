from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import diagnostics.registry as registry_module
from clusterdoc.cli import main
from diagnostics.registry import ParseInput, ParseOutput, Registry, ToolSpec
from diagnostics.types import Finding, Status
from tests.diagnostics.conftest import FakeSim


def parse_marker(data: ParseInput) -> ParseOutput:
    """Flags node-02 so the CLI has a finding to report."""
    if data.host == "node-02":
        return ParseOutput(Status.PROBLEM, [Finding("gpu_clock_throttle", data.host, "GPU 3 at 200 MHz", gpu=3)])
    return ParseOutput(Status.OK)


def small_registry() -> Registry:
    return Registry([
        ToolSpec("gpu_clocks", "clocks", "compute", "quick", "read_only", (), ("nvidia-smi -q -d CLOCK",), parse_marker),
        ToolSpec("cpu_load", "load", "system", "quick", "read_only", (), ("cat /proc/loadavg",),
                 lambda d: ParseOutput(Status.OK)),
    ])


def test_check_bad_inventory_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "inv.yaml"
    bad.write_text("cluster: x\nnodes:\n  - {name: a, port: 0}\n")
    assert main(["check", "--inventory", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "clusterdoc check: error:" in err and "inv.yaml:3: field nodes[0].port" in err
    assert "Traceback" not in err
    assert main(["check", "--inventory", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read inventory" in capsys.readouterr().err


@pytest.mark.ssh
def test_check_inventory_over_ssh_table_and_json(
    sim_ssh: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(registry_module, "default_registry", small_registry)
    server = sim_ssh(FakeSim(3))
    inv = str(server.inventory_path)
    assert main(["check", "--inventory", inv, "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "node-02" in out and "gpu_clock_throttle" in out and "3 hosts, 6 checks" in out
    assert main(["check", "--inventory", inv, "--hosts", "node-01,node-03", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["hosts"]) == {"node-01", "node-03"} and report["findings"] == []
    assert report["counts"] == {"ok": 4}
    assert main(["check", "--inventory", inv, "--tools", "cpu_load", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tools"] == ["cpu_load"]


@pytest.mark.ssh
def test_check_bad_arguments_exit_2(sim_ssh: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(registry_module, "default_registry", small_registry)
    server = sim_ssh(FakeSim(1))
    inv = str(server.inventory_path)
    assert main(["check", "--inventory", inv, "--hosts", "node-09"]) == 2
    assert "unknown host(s) node-09" in capsys.readouterr().err
    assert main(["check", "--inventory", inv, "--tools", "gpu_clock"]) == 2
    assert "did you mean gpu_clocks" in capsys.readouterr().err
    assert main(["check", "--inventory", inv, "--concurrency", "0"]) == 2


@pytest.mark.ssh
def test_check_reports_unreachable_nodes(sim_ssh: Any, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(registry_module, "default_registry", small_registry)
    server = sim_ssh(FakeSim(2), behaviours={"node-01": "refuse"})
    assert main(["check", "--inventory", str(server.inventory_path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert {(f["host"], f["kind"]) for f in report["findings"]} >= {("node-01", "node_unreachable")}
    assert report["counts"]["unreachable"] == 2


def _scenario(scenarios_dir: Path) -> Path:
    pytest.importorskip("diagnostics.checks")
    sim = pytest.importorskip("simulator")
    if not hasattr(sim, "SimCluster"):
        pytest.skip("simulator.SimCluster not available yet")
    path = scenarios_dir / "a800-throttle.yaml"
    if not path.exists():
        pytest.skip("case-study scenario not shipped yet")
    return path


def test_check_scenario_json_finds_the_case_study_fault(scenarios_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _scenario(scenarios_dir)
    assert main(["check", "--scenario", str(path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert len(report["hosts"]) == 8
    throttled = [f for f in report["findings"] if f["kind"] == "gpu_clock_throttle"]
    assert {(f["host"], f["gpu"]) for f in throttled} == {("node-05", 3)}


@pytest.mark.ssh
def test_real_checks_over_ssh_find_the_case_study_fault(scenarios_dir: Path, sim_ssh: Any) -> None:
    path = _scenario(scenarios_dir)
    from diagnostics.registry import default_registry
    from diagnostics.toolkit import Toolkit

    server = sim_ssh(path)
    report = Toolkit(default_registry(), server.executor()).sweep(
        server.hosts, level="quick", tool_params={"gpu_count": {"expected": 8}}
    )
    assert report.counts().get("timeout", 0) == 0 and report.counts().get("unreachable", 0) == 0
    throttled = {(f.host, f.gpu) for f in report.findings() if f.kind == "gpu_clock_throttle"}
    assert throttled == {("node-05", 3)}


@pytest.mark.ssh
def test_sim_up_serves_until_interrupted(scenarios_dir: Path, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    path = _scenario(scenarios_dir)
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "clusterdoc", "sim", "up", str(path), "--run-dir", str(run_dir),
         "--inventory", str(tmp_path / "inv.yaml")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(5)]
        assert any("clusterdoc check --inventory" in ln for ln in lines), lines
        assert main(["check", "--inventory", str(tmp_path / "inv.yaml"), "--tools", "gpu_clocks", "--json"]) == 1
        assert (run_dir / "known_hosts").read_text().count("ssh-ed25519") == 8
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0


def test_sim_up_bad_scenario_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("simulator")
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\ncluster:\n  nodes: 2\n  gpus_per_node: 8\n  gpu: Z9000\n")
    assert main(["sim", "up", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "Z9000" in err and "Traceback" not in err
