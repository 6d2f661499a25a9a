"""The simulated cluster: every shipped scenario's fault is found by the checks through the
in-process executor, actions change state so their verify check passes, telemetry noise is
reproducible from the seed, the case study slows ~3x, and output formats match the fixtures."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from diagnostics.approval import Approval, command_digest
from diagnostics.parsers import infiniband, nccl, nvidia_smi, system
from diagnostics.registry import default_registry
from diagnostics.toolkit import Toolkit
from diagnostics.types import Status
from simulator import SimCluster
from simulator.scenario import Scenario, load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
FIX = Path(__file__).parent / "fixtures"
REGISTRY = default_registry()


def toolkit(sim: SimCluster) -> Toolkit:
    return Toolkit(REGISTRY, sim.executor(), scheduler=sim.scenario.cluster.scheduler)


def approve(tk: Toolkit, tool: str, params: dict[str, Any]) -> Approval:
    return Approval("proposal-test", command_digest(tk.render(tool, params)), "U-tester", 0.0)


def run_action(tk: Toolkit, tool: str, host: str, params: dict[str, Any]) -> tuple[Any, Any]:
    """Execute an approved action, then its verify check; returns both results."""
    result = tk.execute_action(tool, host, params, approval=approve(tk, tool, params))
    verify = REGISTRY.verify_call(tool, params)
    assert verify is not None
    check, check_params = verify
    return result, tk.run(check, host, check_params)


def small(faults: list[dict[str, Any]], **cluster: Any) -> Scenario:
    c = {"nodes": 2, "gpus_per_node": 4, "gpu": "A800-SXM4-80GB", "workload": {"kind": "llm_training"}}
    c.update(cluster)
    return parse_scenario({"id": "t", "seed": 1, "cluster": c, "faults": faults}, "test")


# --------------------------------------------------------------------------- every fault is found


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_quick_sweep_finds_the_expected_fault(path: Path) -> None:
    scenario = load_scenario(path)
    sim = SimCluster(scenario)
    report = toolkit(sim).sweep(sim.hosts, level="quick", concurrency=4)
    findings = report.findings()
    e = scenario.expect
    assert e is not None
    errors = [(r.tool, r.host, r.error) for rs in report.results.values() for r in rs if r.status is Status.ERROR]
    assert not errors, errors
    if e.fault is None:
        assert findings == [], [f.message for f in findings]
        return
    hits = [f for f in findings if f.kind == e.fault and f.host == e.node and (e.gpu is None or f.gpu == e.gpu)]
    assert hits, f"{e.fault} on {e.node}/{e.gpu} not found; got {[(f.kind, f.host, f.gpu) for f in findings]}"
    # nothing is reported on nodes without a fault
    faulty = {f.node for f in scenario.faults}
    assert {f.host for f in findings} <= faulty


def test_case_study_slows_the_job_to_about_a_third() -> None:
    sim = SimCluster(load_scenario(ROOT / "scenarios" / "a800-throttle.yaml"))
    ratio = sim.step_time_s() / sim.baseline_step_time_s()
    assert 2.7 <= ratio <= 3.5
    tk = toolkit(sim)
    result, verify = run_action(tk, "reset_gpu_clocks", "node-05", {"gpu": 3})
    assert result.status is Status.OK and verify.status is Status.OK
    assert sim.step_time_s() / sim.baseline_step_time_s() == pytest.approx(1.0, abs=0.02)


def test_interconnect_faults_lengthen_the_step() -> None:
    # a small batch makes the gradient all-reduce a large part of the step
    job = {"workload": {"kind": "llm_training", "model_params": 7e9, "tokens_per_step": 65536}}
    base = SimCluster(small([], **job)).step_time_s()
    tcp = SimCluster(small([{"kind": "nccl_env_misconfig", "node": "node-01", "env": {"NCCL_IB_DISABLE": "1"}}], **job))
    lat = SimCluster(small([{"kind": "network_latency", "node": "node-02", "added_ms": 20}], **job))
    down = SimCluster(small([{"kind": "ib_port_down", "node": "node-02", "hca": "mlx5_1"}], **job))
    assert tcp.step_time_s() > 1.5 * base
    assert lat.step_time_s() > base and down.step_time_s() > base


def test_job_log_shows_the_slow_rank() -> None:
    sim = SimCluster(load_scenario(ROOT / "scenarios" / "a800-throttle.yaml"))
    r = toolkit(sim).run("job_step_times", "node-05")
    assert r.status is Status.PROBLEM
    (finding,) = r.findings
    assert finding.kind == "slow_rank" and finding.gpu == 3 and finding.data["ratio"] > 2.5
    assert toolkit(sim).run("job_step_times", "node-01").status is Status.OK


# --------------------------------------------------------------------------- actions and verification


def test_power_limit_restored_to_default() -> None:
    sim = SimCluster(small([{"kind": "gpu_power_cap", "node": "node-01", "gpu": 2, "power_limit_w": 150}]))
    tk = toolkit(sim)
    assert tk.run("gpu_power", "node-01", {"gpu": 2}).status is Status.PROBLEM
    result, verify = run_action(tk, "restore_power_limit", "node-01", {"gpu": 2})
    assert result.status is Status.OK, result.error
    assert "400.00 W" in result.data["log"] and verify.status is Status.OK
    assert sim.node("node-01").gpus[2].power_limit_w == 400.0


def test_persistence_mode_enabled() -> None:
    sim = SimCluster(small([]))
    sim.node("node-02").gpus[1].persistence = False
    tk = toolkit(sim)
    assert [f.gpu for f in tk.run("gpu_persistence", "node-02").findings] == [1]
    result, verify = run_action(tk, "enable_persistence_mode", "node-02", {"gpu": 1})
    assert result.status is Status.OK and verify.status is Status.OK


@pytest.mark.parametrize("scheduler", ["slurm", "kubernetes"])
def test_drain_then_reset_gpu_then_resume(scheduler: str) -> None:
    sim = SimCluster(small([{"kind": "gpu_ecc_uncorrectable", "node": "node-02", "gpu": 3, "count": 2}],
                           scheduler=scheduler))
    tk = toolkit(sim)
    # a GPU in use cannot be reset: the action fails and says why
    refused = tk.execute_action("reset_gpu", "node-02", {"gpu": 3}, approval=approve(tk, "reset_gpu", {"gpu": 3}))
    assert refused.status is Status.ERROR and "in use" in refused.error
    # Toolkit.place fills the node's Slurm name (no controller here: it runs on node-02 itself)
    drain = tk.place("drain_node", "node-02", {"reason": "clusterdoc: ECC errors on GPU 3"})
    drained, drained_ok = run_action(tk, "drain_node", drain.run_on, drain.params)
    assert drained.status is Status.OK and drained_ok.status is Status.OK, drained_ok.findings
    assert tk.run("node_state", "node-02").findings[0].kind == "node_drained"
    reset, ecc = run_action(tk, "reset_gpu", "node-02", {"gpu": 3})
    assert reset.status is Status.OK and ecc.status is Status.OK
    resumed, resumed_ok = run_action(tk, "resume_node", "node-02", tk.place("resume_node", "node-02").params)
    assert resumed.status is Status.OK and resumed_ok.status is Status.OK
    assert sim.node("node-02").sched_state == "allocated"


def test_clean_shm_restores_free_space() -> None:
    sim = SimCluster(small([{"kind": "shm_too_small", "node": "node-01", "size_mb": 64}]))
    tk = toolkit(sim)
    assert tk.run("shm_size", "node-01").findings[0].kind == "shm_too_small"
    result, verify = run_action(tk, "clean_shm", "node-01", {})
    assert result.status is Status.OK and "psm_stale" in result.data["log"]
    assert verify.status is Status.OK
    assert "nccl-sh1Xq2" in sim.node("node-01").shm_files  # the running job's segment stays


def test_restart_chronyd_fixes_clock_skew() -> None:
    sim = SimCluster(small([{"kind": "clock_skew", "node": "node-01", "offset_s": -3.5}]))
    tk = toolkit(sim)
    assert tk.run("clock_sync", "node-01").findings[0].data["offset_s"] == pytest.approx(-3.5)
    result, verify = run_action(tk, "restart_service", "node-01", {"service": "chronyd"})
    assert result.status is Status.OK and verify.status is Status.OK
    assert tk.run("clock_sync", "node-01").status is Status.OK


def test_unknown_service_restart_fails_cleanly() -> None:
    sim = SimCluster(small([]))
    tk = toolkit(sim)
    result = tk.execute_action("restart_service", "node-01", {"service": "kubelet"},
                               approval=approve(tk, "restart_service", {"service": "kubelet"}))
    assert result.status is Status.ERROR and "not found" in result.error


# --------------------------------------------------------------------------- shell behaviour


def test_shell_features_and_unknown_commands() -> None:
    sim = SimCluster(small([]))
    h = sim.handle
    assert h("node-01", "frobnicate --now").exit_code == 127
    assert "frobnicate: command not found" in h("node-01", "frobnicate").stderr
    assert h("node-01", "hostname -s").stdout == "node-01\n"
    assert h("node-01", "nvidia-smi -L | wc -l").stdout == "4\n"
    assert h("node-01", "nvidia-smi -L | grep -c 'GPU 3'").stdout == "1\n"
    assert h("node-01", "false || echo fallback").stdout == "fallback\n"
    assert h("node-01", "false && echo never").stdout == ""
    assert h("node-01", "cat /nope 2>/dev/null").stderr == ""
    assert h("node-01", "echo $(hostname)-x").stdout == "node-01-x\n"
    assert h("node-01", "sudo nvidia-smi --query-gpu=index --format=csv,noheader").stdout == "0\n1\n2\n3\n"
    assert h("node-01", "bash -c 'nproc'").stdout == "128\n"
    bad = h("node-01", "nvidia-smi --query-gpu=index,bogus.field --format=csv")
    assert bad.exit_code == 2 and "is not a valid field" in bad.stderr
    assert h("node-09", "true").transport == "unreachable"


def test_equivalent_spellings_give_the_same_answer() -> None:
    sim = SimCluster(small([{"kind": "gpu_clock_throttle", "node": "node-01", "gpu": 1, "sm_clock_mhz": 300}]))
    a = sim.handle("node-01", "nvidia-smi --query-gpu=index,clocks.sm --format=csv,noheader,nounits -i 1").stdout
    b = sim.handle("node-01", "nvidia-smi -i 1 --format=csv,noheader,nounits --query-gpu index,clocks.current.sm").stdout
    assert a == b == "1, 300\n"
    assert sim.handle("node-01", "dmesg -T").stdout.count("\n") == sim.handle("node-01", "journalctl -k").stdout.count("\n")


def test_unreachable_node_times_out_and_is_exposed() -> None:
    sim = SimCluster(small([{"kind": "node_unreachable", "node": "node-02"}]))
    assert sim.node("node-02").unreachable and sim.node("node-02").behaviour == "hang"
    r = sim.handle("node-02", "uptime", timeout_s=2)
    assert r.transport == "timeout" and r.exit_code is None
    assert sim.handle("node-01", "uptime").ok


# --------------------------------------------------------------------------- time and noise


def test_seed_reproducibility_and_time() -> None:
    query = "nvidia-smi --query-gpu=index,clocks.sm,power.draw,temperature.gpu --format=csv"
    a, b = SimCluster(small([])), SimCluster(small([]))
    assert a.handle("node-01", query).stdout == b.handle("node-01", query).stdout
    other = parse_scenario({**small([]).to_dict(), "seed": 2}, "seed2")
    assert SimCluster(other).handle("node-01", query).stdout != a.handle("node-01", query).stdout
    before = a.handle("node-01", query).stdout
    a.advance(30)
    assert a.handle("node-01", query).stdout != before
    b.advance(30)
    assert a.handle("node-01", query).stdout == b.handle("node-01", query).stdout


def test_fault_onset_time() -> None:
    sim = SimCluster(small([{"kind": "gpu_thermal", "node": "node-01", "gpu": 0, "temp_c": 95, "at_s": 600}]))
    tk = toolkit(sim)
    assert tk.run("gpu_temperature", "node-01").status is Status.OK
    sim.advance(601)
    assert tk.run("gpu_temperature", "node-01").findings[0].kind == "gpu_thermal"


def test_gpu_samples_and_dcgm_metrics_agree_with_nvidia_smi() -> None:
    sim = SimCluster(load_scenario(ROOT / "scenarios" / "a800-throttle.yaml"))
    samples = {s.gpu: s for s in sim.gpu_samples("node-05")}
    assert samples[3].sm_clock_mhz == 200.0 and samples[3].max_sm_clock_mhz == 1410.0
    assert samples[0].sm_clock_mhz is not None and samples[0].sm_clock_mhz >= 1395
    text = sim.dcgm_metrics("node-05")
    assert "# HELP DCGM_FI_DEV_SM_CLOCK SM clock frequency (in MHz).\n# TYPE DCGM_FI_DEV_SM_CLOCK gauge\n" in text
    sample = re.compile(r'^(DCGM_FI_\w+)\{((?:\w+="[^"]*",?)+)\} (\S+)$')
    values: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = sample.match(line)
        assert m, line
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        assert {"gpu", "UUID", "device", "modelName", "Hostname", "DCGM_FI_DRIVER_VERSION"} <= set(labels)
        values[(m.group(1), labels["gpu"])] = float(m.group(3))
    assert values[("DCGM_FI_DEV_SM_CLOCK", "3")] == 200.0
    assert int(values[("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "3")]) & 0x40
    smi = nvidia_smi.parse_query_csv(sim.handle("node-05", "nvidia-smi --query-gpu=index,temperature.gpu --format=csv").stdout)
    assert values[("DCGM_FI_DEV_GPU_TEMP", "0")] == float(smi.rows[0]["temperature.gpu"])


def test_lost_gpu_disappears_everywhere() -> None:
    sim = SimCluster(small([{"kind": "gpu_fallen_off_bus", "node": "node-01", "gpu": 2}]))
    assert [s.gpu for s in sim.gpu_samples("node-01")] == [0, 1, 3]
    assert 'gpu="2"' not in sim.dcgm_metrics("node-01")
    listed = sim.handle("node-01", "nvidia-smi -L")
    assert "GPU 2:" not in listed.stdout and "Unable to determine the device handle" in listed.stderr
    assert "(rev ff)" in sim.handle("node-01", "lspci -d 10de::0302").stdout


# --------------------------------------------------------------------------- formats: sim vs real fixtures


def _fixture(name: str) -> str:
    return (FIX / name).read_text()


def test_format_query_csv_header_matches_real_nvidia_smi() -> None:
    sim = SimCluster(small([]))
    fields = ("index,pci.bus_id,clocks.sm,clocks.max.sm,clocks.applications.graphics,utilization.gpu,"
              "temperature.gpu,power.limit,power.default_limit,clocks_throttle_reasons.active")
    out = sim.handle("node-01", f"nvidia-smi --query-gpu={fields} --format=csv").stdout
    assert out.splitlines()[0] == _fixture("nvidia_smi_query_clocks.csv").splitlines()[0]
    cells = out.splitlines()[1].split(", ")
    real = _fixture("nvidia_smi_query_clocks.csv").splitlines()[1].split(", ")
    unit = re.compile(r"^[\d.]+( (MHz|W|%))?$|^0x[0-9A-F]{16}$|^0{8}:[0-9A-F]{2}:00\.0$")
    assert [bool(unit.match(c)) for c in cells] == [bool(unit.match(c)) for c in real]


def test_format_full_query_sections_match_real() -> None:
    sim = SimCluster(small([]))
    ours = nvidia_smi.parse_query(sim.handle("node-01", "nvidia-smi -q").stdout)
    real = nvidia_smi.parse_query(_fixture("nvidia_smi_q.txt"))
    our_gpu = next(iter(ours["gpus"].values()))
    real_gpu = real["gpus"]["00000000:07:00.0"]
    for section in ("Clocks Event Reasons", "Temperature", "GPU Power Readings", "Clocks", "Max Clocks",
                    "Remapped Rows", "ECC Errors", "FB Memory Usage", "Utilization"):
        assert set(our_gpu[section]) <= set(real_gpu[section]), section
    assert set(our_gpu["PCI"]["GPU Link Info"]) == set(real_gpu["PCI"]["GPU Link Info"])
    only_clocks = sim.handle("node-01", "nvidia-smi -q -d CLOCK -i 0").stdout
    assert "Max Clocks" in only_clocks and "Temperature" not in only_clocks


def test_format_ibstat_ibv_devinfo_df_chrony_ping_allreduce_match_real() -> None:
    sim = SimCluster(small([{"kind": "ib_port_down", "node": "node-01", "hca": "mlx5_1"},
                            {"kind": "clock_skew", "node": "node-01", "offset_s": 4.2}]))
    ours = infiniband.parse_ibstat(sim.handle("node-01", "ibstat").stdout)
    real = infiniband.parse_ibstat(_fixture("ibstat.txt"))
    assert {p.state for p in ours} == {"Active", "Down"} and ours[1].physical_state == real[1].physical_state
    dev = infiniband.parse_ibv_devinfo(sim.handle("node-01", "ibv_devinfo").stdout)
    assert [p.state for p in dev][:2] == [p.state for p in infiniband.parse_ibv_devinfo(_fixture("ibv_devinfo.txt"))]
    assert sim.handle("node-01", "df -P").stdout.splitlines()[0].split() == _fixture("df_P.txt").splitlines()[0].split()
    assert sim.handle("node-01", "df -P -i").stdout.splitlines()[0].split() == _fixture("df_Pi.txt").splitlines()[0].split()
    ours_c = sim.handle("node-01", "chronyc tracking").stdout
    keys = [ln.split(":")[0].strip() for ln in ours_c.splitlines()]
    assert keys == [ln.split(":")[0].strip() for ln in _fixture("chronyc_tracking_unsynced.txt").splitlines()]
    assert system.parse_chronyc_tracking(ours_c).leap_status == "Not synchronised"
    ping = sim.handle("node-01", "ping -c 5 -q node-02").stdout
    assert [ln[:4] for ln in ping.splitlines()] == [ln[:4] for ln in _fixture("ping_q.txt").splitlines()]
    ar = sim.handle("node-01", "all_reduce_perf -b 8M -e 1G -f 2 -g 4").stdout
    real_header = [ln for ln in _fixture("all_reduce_perf.txt").splitlines() if "redop" in ln]
    assert [ln for ln in ar.splitlines() if "redop" in ln] == real_header
    assert len(nccl.parse_all_reduce_perf(ar).rows) == 8


def test_xml_query_and_dcgm_endpoint_answer_like_a_real_node() -> None:
    import xml.etree.ElementTree as ET

    sim = SimCluster(load_scenario(ROOT / "scenarios" / "a800-throttle.yaml"))
    root = ET.fromstring(sim.handle("node-05", "nvidia-smi -q -x").stdout)
    gpu3 = root.findall("gpu")[3]
    assert gpu3.findtext("clocks/sm_clock") == "200 MHz"
    assert gpu3.findtext("clocks_event_reasons/clocks_event_reason_hw_thermal_slowdown") == "Active"
    metrics = sim.handle("node-05", "curl -s http://localhost:9400/metrics")
    assert metrics.ok and metrics.stdout == sim.dcgm_metrics("node-05")
    assert sim.handle("node-05", "curl -s http://10.9.9.9/").exit_code == 7


def test_a_generated_program_can_find_the_throttled_gpu_through_the_executor() -> None:
    """What a metric-B candidate does: plain commands through the executor API."""
    sim = SimCluster(load_scenario(ROOT / "scenarios" / "a800-throttle.yaml"))
    executor = sim.executor()

    def find_throttled(executor: Any, hosts: list[str]) -> list[tuple[str, int]]:
        found = []
        for host in hosts:
            res = executor.run(host, "nvidia-smi --query-gpu=index,clocks.sm,clocks.max.sm --format=csv,noheader,nounits")
            for line in res.stdout.strip().splitlines():
                idx, sm, mx = (int(x) for x in line.split(", "))
                if sm < mx / 2:
                    found.append((host, idx))
        return found

    assert find_throttled(executor, sim.hosts) == [("node-05", 3)]
