"""Check and action declarations (the whitelist), the checks' parsers over real-format output,
their handling of absent tools and garbage, and the cross-node fleet comparisons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from diagnostics.actions import ACTIONS
from diagnostics.checks import CHECKS, CHECKS_BY_NAME
from diagnostics.fleet import fleet_findings
from diagnostics.registry import ParseInput, Registry, default_registry, render_commands, validate_params
from diagnostics.types import CommandResult, Status, ToolResult, ValidationError
from simulator.scenario import FAULT_KINDS, REMEDIATIONS

FIX = Path(__file__).parent / "fixtures"

CONTRACT_CHECKS = {
    "gpu_clocks", "gpu_power", "gpu_temperature", "gpu_ecc", "gpu_row_remap", "gpu_xid", "gpu_pcie", "gpu_nvlink",
    "gpu_count", "gpu_persistence", "ib_ports", "ib_devinfo", "nccl_env", "net_latency", "nccl_allreduce",
    "disk_usage", "shm_size", "memory_oom", "cpu_load", "cpu_governor", "clock_sync", "versions", "reachability",
    "job_step_times",
}


def out(text: str, command: str = "cmd", rc: int = 0, stderr: str = "") -> CommandResult:
    return CommandResult("node-01", command, rc, text, stderr)


def fx(name: str) -> str:
    return (FIX / name).read_text()


def run_parse(tool: str, outputs: list[CommandResult], **params: Any) -> Any:
    spec = CHECKS_BY_NAME[tool]
    return spec.parse(ParseInput("node-01", validate_params(spec, params), outputs))


# --------------------------------------------------------------------------- declarations


def test_every_contract_name_is_declared_with_valid_metadata() -> None:
    names = {c.name for c in CHECKS}
    assert names >= CONTRACT_CHECKS
    assert {a.name for a in ACTIONS} == set(REMEDIATIONS)
    registry = Registry([*CHECKS, *ACTIONS])
    for spec in CHECKS:
        assert spec.kind == "read_only" and spec.description and spec.commands
        assert spec.category in ("compute", "memory", "network", "storage", "system", "job")
    for spec in ACTIONS:
        assert spec.kind == "mutating" and spec.risk in ("low", "medium", "high")
        assert spec.verify_with and registry.get(spec.verify_with).read_only
    assert len(default_registry()) == len(CHECKS) + len(ACTIONS)


def test_drain_and_resume_render_per_scheduler_and_none_is_refused() -> None:
    drain = next(a for a in ACTIONS if a.name == "drain_node")
    slurm = render_commands(drain, validate_params(drain, {"node": "gpu-05", "reason": "gpu 3 at 200 MHz"}),
                            scheduler="slurm")
    assert slurm == ["scontrol update nodename=gpu-05 state=drain reason='gpu 3 at 200 MHz'"]  # no $(hostname -s)
    with pytest.raises(ValidationError, match="'node' is required"):  # never `nodename= ` with nothing
        render_commands(drain, validate_params(drain, {}), scheduler="slurm")
    k8s = render_commands(drain, validate_params(drain, {}), scheduler="kubernetes")
    assert [c.split()[1] for c in k8s] == ["cordon", "drain"]
    with pytest.raises(ValidationError, match="scheduler"):
        render_commands(drain, validate_params(drain, {}), scheduler="none")
    registry = default_registry()
    assert registry.verify_call("drain_node", {"reason": "x"}) == ("node_state", {"expect": None, "reason": "x"})
    assert registry.verify_call("reset_gpu_clocks", {"gpu": 2}) == ("gpu_clocks", {"gpu": 2})


def test_params_refuse_injection() -> None:
    registry = default_registry()
    for tool, params in (("gpu_clocks", {"gpu": "0; reboot"}), ("net_latency", {"target": "$(reboot)"}),
                         ("restart_service", {"service": "sshd; rm -rf /"}), ("drain_node", {"reason": "`reboot`"}),
                         ("disk_usage", {"mount": "/data && rm -rf /"})):
        with pytest.raises(ValidationError):
            registry.render(tool, params)


def test_fault_kinds_of_checks_are_scenario_kinds_or_documented_extras() -> None:
    extras = {"persistence_mode_off", "low_bus_bandwidth", "slow_rank", "node_drained", "node_schedulable",
              "node_down", "service_down", "job_error"}
    package = Path(__import__("diagnostics.checks").checks.__file__).parent
    text = "\n".join(p.read_text() for p in sorted(package.glob("*.py")))
    import re

    kinds = set(re.findall(r'Finding\(\s*"(\w+)"', text)) | set(re.findall(r'kind(?:, text2)? = "(\w+)"', text))
    assert kinds - set(FAULT_KINDS) <= extras


# --------------------------------------------------------------------------- parsers of checks on real output


def test_gpu_clocks_flags_throttled_but_not_idle_gpu() -> None:
    r = run_parse("gpu_clocks", [out(fx("nvidia_smi_query_clocks.csv"))])
    assert r.status is Status.PROBLEM
    (f,) = r.findings
    assert (f.kind, f.gpu, f.severity) == ("gpu_clock_throttle", 3, "critical")
    assert f.data["reasons"] == ["hw_slowdown", "hw_thermal_slowdown"] and f.data["sm_clock_mhz"] == 210.0
    assert run_parse("gpu_clocks", [out(fx("nvidia_smi_query_clocks.csv"))], gpu=1).status is Status.OK


def test_gpu_power_and_ecc_on_real_output() -> None:
    power = run_parse("gpu_power", [out(fx("nvidia_smi_power_l40s.csv"))])
    assert [(f.kind, f.gpu) for f in power.findings] == [("gpu_power_cap", 1)]
    ecc = run_parse("gpu_ecc", [out(fx("nvidia_smi_query_lost_gpu.txt"))])
    kinds = sorted((f.kind, f.gpu) for f in ecc.findings)
    assert kinds == [("gpu_ecc_uncorrectable", 2), ("gpu_fallen_off_bus", None)]


def test_row_remap_pending_and_failure() -> None:
    r = run_parse("gpu_row_remap", [out(fx("remapped_rows.csv")), out(fx("index_bus.csv"))])
    assert [(f.gpu, f.data["pending"], f.data["failure"]) for f in r.findings] == [(1, True, False), (3, False, True)]
    na = run_parse("gpu_row_remap", [out("[Not Supported]\n"), out(fx("index_bus.csv"))])
    assert na.status is Status.NO_DATA


def test_xid_mapping_to_gpu_index_via_lspci_order() -> None:
    lspci = "\n".join(f"{b}:00.0 3D controller: NVIDIA Corporation GA100 [A100 SXM4 80GB] (rev a1)"
                      for b in ("07", "0b", "48", "4c", "88", "8b", "c8", "cb")) + "\n"
    r = run_parse("gpu_xid", [out(fx("dmesg_T_xid.txt")), out(lspci)])
    got = sorted((f.kind, f.gpu, f.data["xid"], f.data["count"]) for f in r.findings)
    assert got == [("gpu_fallen_off_bus", 7, 79, 1), ("gpu_xid", 3, 13, 2), ("gpu_xid", 5, 48, 1), ("gpu_xid", 5, 63, 1)]
    garbled = run_parse("gpu_xid", [out(fx("dmesg_truncated_xid.txt")), out(lspci)])
    assert garbled.status is Status.ERROR and "malformed Xid" in garbled.error


def test_gpu_count_finds_the_lost_gpu() -> None:
    r = run_parse("gpu_count", [out(fx("nvidia_smi_L.txt")), out(fx("lspci_gpus_lost.txt"))])
    assert r.status is Status.PROBLEM and r.findings[0].gpu == 7 and r.data["visible"] == 7
    assert run_parse("gpu_count", [out(fx("nvidia_smi_L.txt")), out(fx("lspci_gpus_lost.txt"))],
                     expected=7).status is Status.OK


def test_nvlink_ib_and_network_checks() -> None:
    nv = run_parse("gpu_nvlink", [out(fx("nvidia_smi_nvlink_status.txt"))])
    assert nv.findings[0].gpu == 1 and nv.findings[0].data["inactive_links"] == [2, 11]
    ib = run_parse("ib_ports", [out(fx("ibstat.txt"))])
    assert sorted((f.kind, f.data["hca"]) for f in ib.findings) == [("ib_link_degraded", "mlx5_2"), ("ib_port_down", "mlx5_1")]
    assert run_parse("ib_ports", [out(fx("ibstat.txt"))], hca="mlx5_0").status is Status.OK
    dev = run_parse("ib_devinfo", [out(fx("ibv_devinfo.txt"))])
    assert [f.data["hca"] for f in dev.findings] == ["mlx5_1"]
    env = run_parse("nccl_env", [out((FIX / "proc_environ.bin").read_text())])
    assert {f.data["var"] for f in env.findings} == {"NCCL_IB_DISABLE", "NCCL_P2P_DISABLE"}
    ping = run_parse("net_latency", [out(fx("ping_q.txt"))])
    assert ping.findings[0].kind == "network_latency" and ping.data["rtt_avg_ms"] == 5.062
    assert run_parse("net_latency", [out(fx("ping_loss.txt"), rc=1)]).findings[0].severity == "critical"


def test_allreduce_against_the_hardware_model() -> None:
    table = out(fx("all_reduce_perf.txt"))
    healthy = run_parse("nccl_allreduce", [out("NVIDIA A100-SXM4-80GB\n"), table])
    assert healthy.status is Status.OK and healthy.data["expected_busbw_gbs"] > 0
    low = run_parse("nccl_allreduce", [out("NVIDIA A100-SXM4-80GB\n"), table], min_busbw_gbs=300)
    assert low.findings[0].kind == "low_bus_bandwidth"


def test_storage_memory_system_checks() -> None:
    disk = run_parse("disk_usage", [out(fx("df_P.txt")), out(fx("df_Pi.txt"))])
    assert [(f.kind, f.data["mount"]) for f in disk.findings] == [("disk_full", "/data")]  # snap loop ignored
    shm = run_parse("shm_size", [out(fx("df_shm_small.txt"))])
    assert shm.findings[0].kind == "shm_too_small" and shm.data["size_mb"] == 64
    mem = run_parse("memory_oom", [out(fx("free_m.txt")), out(fx("dmesg_T_xid.txt"))])
    assert sorted(f.severity for f in mem.findings) == ["critical", "warning"]
    load = run_parse("cpu_load", [out(fx("loadavg.txt")), out("128\n"), out(fx("ps_hog.txt"))])
    assert load.findings[0].data["hog"] == "xz"
    gov = run_parse("cpu_governor", [out(fx("governors_mixed.txt"))])
    assert gov.findings[0].kind == "cpu_governor_powersave"
    skew = run_parse("clock_sync", [out(fx("chronyc_tracking_unsynced.txt"))])
    assert skew.findings[0].kind == "clock_skew"
    assert run_parse("clock_sync", [out(fx("chronyc_tracking_ok.txt"))]).status is Status.OK
    steps = run_parse("job_step_times", [out(fx("train_log.txt"))])
    assert [(f.kind, f.gpu) for f in steps.findings] == [("slow_rank", 1), ("disk_full", None)]


def test_versions_and_kernel_module_mismatch() -> None:
    libs = out("/usr/lib/x86_64-linux-gnu/libnccl.so.2\n/usr/lib/x86_64-linux-gnu/libnccl.so.2.21.5\n")
    kmod = out("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.161.08  Sat Feb 17 01:12:25 UTC 2024\n")
    r = run_parse("versions", [out(fx("nvidia_smi_version.txt")), libs, kmod])
    assert r.data["driver"] == "550.54.15" and r.data["nccl"] == "2.21.5" and r.data["cuda"] == "12.4"
    assert r.findings[0].kind == "driver_mismatch"


def test_node_state_expectations() -> None:
    drained = [out(fx("sinfo_node.txt"))]
    assert run_parse("node_state", drained).findings[0].kind == "node_drained"
    assert run_parse("node_state", drained, reason="anything").status is Status.OK
    assert run_parse("node_state", [out(fx("kubectl_node.txt"))], expect="drained").status is Status.OK
    assert run_parse("node_state", [out("node-02 allocated none\n")]).status is Status.OK
    assert run_parse("node_state", [out("scheduler: none\n")]).status is Status.NO_DATA


# --------------------------------------------------------------------------- misbehaving nodes never crash a check

NOT_INSTALLED = CommandResult("node-01", "x", 127, "", "bash: x: command not found\n")
GARBAGE = CommandResult("node-01", "x", 0, "\x00\x01 garbage ☃ ,,,\n[N/A]\nPort 1:\n", "")
TRUNCATED = CommandResult("node-01", "x", 0, "index, clocks.current.sm [MHz], clocks.max.sm [MHz]\n0, 1410 MHz", "")


@pytest.mark.parametrize("spec", CHECKS, ids=lambda s: s.name)
def test_check_parsers_turn_bad_output_into_status_not_exceptions(spec: Any) -> None:
    required = {"service_status": {"service": "chronyd"}, "node_jobs": {"node": "node-01"}}
    params = validate_params(spec, required.get(spec.name, {}))
    n = len(spec.commands) or 1
    absent = spec.parse(ParseInput("node-01", params, [NOT_INSTALLED] * n))
    assert absent.status is Status.NO_DATA and "not installed" in absent.error
    for bad in (GARBAGE, TRUNCATED, CommandResult("node-01", "x", 1, "", "Permission denied\n")):
        result = spec.parse(ParseInput("node-01", params, [bad] * n))
        assert result.status in (Status.ERROR, Status.NO_DATA, Status.OK, Status.PROBLEM)
        if result.status is Status.ERROR:
            assert result.error


# --------------------------------------------------------------------------- fleet comparisons


def _versions(host: str, driver: str, cuda: str) -> ToolResult:
    return ToolResult("versions", host, Status.OK, data={"driver": driver, "cuda": cuda, "nccl": "2.18.5"})


def test_fleet_driver_mismatch_and_gpu_count_outlier() -> None:
    results = {f"node-0{i}": [_versions(f"node-0{i}", "535.161.08", "12.2")] for i in range(1, 5)}
    results["node-03"] = [_versions("node-03", "525.147.05", "12.0"),
                          ToolResult("gpu_count", "node-03", Status.OK, data={"visible": 7})]
    for h in ("node-01", "node-02", "node-04"):
        results[h].append(ToolResult("gpu_count", h, Status.OK, data={"visible": 8}))
    found = fleet_findings(results)
    assert [(f.kind, f.host) for f in found] == [("driver_mismatch", "node-03"), ("gpu_fallen_off_bus", "node-03")]
    assert found[0].data["majority"] == "535.161.08"


def test_fleet_needs_a_majority_and_accepts_a_report() -> None:
    tie = {"a": [_versions("a", "535", "12.2")], "b": [_versions("b", "550", "12.4")]}
    assert fleet_findings(tie) == []

    class Report:
        def __init__(self) -> None:
            self.results = {h: [_versions(h, "535.161.08", "12.2")] for h in ("a", "b", "c")}

    assert fleet_findings(Report()) == []


def test_fleet_nccl_env_outlier() -> None:
    def env(h: str, extra: dict[str, str]) -> ToolResult:
        return ToolResult("nccl_env", h, Status.OK, data={"nccl_env": {"NCCL_DEBUG": "WARN", **extra}})

    results = {h: [env(h, {})] for h in ("a", "b", "c")}
    results["d"] = [env("d", {"NCCL_ALGO": "Tree"})]
    (f,) = fleet_findings(results)
    assert (f.kind, f.host, f.data["differs"]) == ("nccl_env_misconfig", "d", {"NCCL_ALGO": "Tree"})


def test_fleet_nccl_version_skew_is_a_software_version_anomaly() -> None:
    results = {h: [_versions(h, "535.161.08", "12.2")] for h in ("a", "b", "c")}
    results["d"] = [ToolResult("versions", "d", Status.OK,
                               data={"driver": "535.161.08", "cuda": "12.2", "nccl": "2.20.5"})]
    (f,) = fleet_findings(results)
    assert (f.kind, f.host, f.severity) == ("version_skew", "d", "warning")
    assert f.data["category"] == "software-version" and f.data["majority"] == "2.18.5"
