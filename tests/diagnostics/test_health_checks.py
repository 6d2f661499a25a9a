"""The generic anomaly checks (diagnostics.health_checks): their parsers on real outputs pasted in
public threads (tests/diagnostics/fixtures/health/SOURCES.md), absent tools and garbage, a hung
df, the kernel log against the signature catalogue, the registry, and the simulator's healthy
answers (simulator.health_tools) parsing as ok."""

from __future__ import annotations

import shlex
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from diagnostics import health_checks as hc
from diagnostics.parsers import health
from diagnostics.registry import ParseInput, default_registry, render_commands, validate_params
from diagnostics.types import CommandResult, Status

FIX = Path(__file__).parent / "fixtures" / "health"
BASE_FIX = Path(__file__).parent / "fixtures"
SPECS = {s.name: s for s in hc.HEALTH_CHECKS}
NAMES = ("kernel_errors", "job_log_errors", "failed_units", "hung_tasks", "pcie_aer", "mce_edac", "nic_errors",
         "ib_counters", "mount_health", "lustre_health", "dcgm_diag")


def fx(name: str) -> str:
    return (FIX / name).read_text()


def out(text: str, command: str = "cmd", rc: int | None = 0, stderr: str = "", transport: str = "ok") -> CommandResult:
    return CommandResult("node-01", command, rc, text, stderr, transport=transport)  # type: ignore[arg-type]


def run(tool: str, outputs: list[CommandResult], **params: Any) -> Any:
    spec = SPECS[tool]
    return spec.parse(ParseInput("node-01", validate_params(spec, params), outputs))


def kinds(result: Any) -> list[str]:
    return [f.kind for f in result.findings]


# --------------------------------------------------------------------------- declarations


def test_all_checks_are_declared_read_only_with_levels() -> None:
    assert set(SPECS) == set(NAMES)
    for spec in hc.HEALTH_CHECKS:
        assert spec.kind == "read_only" and spec.description and spec.commands
        assert spec.category in ("compute", "memory", "network", "storage", "system", "job")
        assert spec.level == ("medium" if spec.name == "dcgm_diag" else "quick")
    assert SPECS["kernel_errors"].commands[0].startswith("dmesg")
    assert SPECS["job_log_errors"].commands == ("tail -n 2000 {path}",)


def test_checks_are_in_the_default_registry() -> None:
    registry = default_registry()
    for name in NAMES:
        assert registry.get(name).read_only
    assert registry.get("kernel_errors").commands == ("dmesg -T",)


def test_params_render_quoted_and_refuse_injection() -> None:
    spec = SPECS["mount_health"]
    assert render_commands(spec, validate_params(spec, {}))[1] == "timeout 15 df -P -T"
    assert render_commands(spec, validate_params(spec, {"path": "/home"}))[1] == "timeout 15 df -P -T /home"
    with pytest.raises(Exception, match="path"):
        validate_params(spec, {"path": "/home; reboot"})
    job = SPECS["job_log_errors"]
    assert render_commands(job, validate_params(job, {})) == ["tail -n 2000 /var/log/clusterdoc/train.log"]


# --------------------------------------------------------------------------- failed_units


@pytest.mark.parametrize(("fixture", "unit"), [
    ("systemctl_failed_apache2.txt", "apache2.service"),
    ("systemctl_failed_user975.txt", "user@975.service"),
    ("systemctl_failed_networkd_pager.txt", "systemd-networkd-persistent-storage.service"),
])
def test_failed_units_real_outputs(fixture: str, unit: str) -> None:
    r = run("failed_units", [out(fx(fixture))])
    assert kinds(r) == ["failed_unit"]
    assert r.findings[0].data["unit"] == unit
    assert r.data["failed_units"][0]["active"] == "failed"


def test_failed_units_categories_and_severity() -> None:
    text = ("nvidia-fabricmanager.service loaded failed failed NVIDIA fabric manager service\n"
            "slurmd.service loaded failed failed Slurm node daemon\n"
            "home.mount loaded failed failed /home\n"
            "openibd.service loaded failed failed openibd\n"
            "chronyd.service loaded failed failed NTP client/server\n"
            "apache2.service loaded failed failed The Apache Webserver\n")
    r = run("failed_units", [out(text)])
    cats = {f.data["unit"]: (f.data["category"], f.severity) for f in r.findings}
    assert cats == {
        "nvidia-fabricmanager.service": ("gpu-hardware", "critical"),
        "slurmd.service": ("scheduler", "warning"),
        "home.mount": ("storage", "warning"),
        "openibd.service": ("network", "warning"),
        "chronyd.service": ("configuration", "warning"),
        "apache2.service": ("other", "info"),
    }
    assert r.status is Status.PROBLEM
    assert hc.unit_category("dcgm.service") == "gpu-hardware"
    assert hc.unit_category("nfs-client.target") == "storage"
    assert hc.unit_category("lustre-client.service") == "storage"
    assert hc.unit_category("kubelet.service") == "scheduler"


def test_failed_units_healthy_and_absent() -> None:
    assert run("failed_units", [out("")]).status is Status.OK
    assert run("failed_units", [out("", rc=127, stderr="bash: systemctl: command not found")]).status is Status.NO_DATA
    booted = out("", rc=1, stderr="System has not been booted with systemd as init system (PID 1). Can't operate.")
    assert run("failed_units", [booted]).status is Status.NO_DATA


# --------------------------------------------------------------------------- hung_tasks


def test_hung_tasks_synthetic_exact_format() -> None:
    r = run("hung_tasks", [out(fx("synthetic_ps_d_state.txt"))])
    by_pid = {f.data["pid"]: f for f in r.findings}
    assert set(by_pid) == {51007, 52210}  # cp in D for 12 s is ordinary I/O
    assert by_pid[51007].data["category"] == "storage" and by_pid[51007].severity == "critical"
    assert by_pid[52210].data["wchan"] == "ll_statahead_thread" and by_pid[52210].data["category"] == "storage"
    assert r.status is Status.PROBLEM


def test_hung_tasks_real_headerless_output_without_elapsed_time() -> None:
    r = run("hung_tasks", [out(fx("ps_d_state_zfs_headerless.txt"))])
    assert len(r.findings) == 10
    assert all(f.severity == "info" and f.data["seconds"] is None for f in r.findings)
    nfsd = [f for f in r.findings if f.data["comm"] == "[nfsd]"]
    assert len(nfsd) == 4 and nfsd[0].data["wchan"] == "vfs_fsync_range"


def test_hung_tasks_healthy_garbage_and_absent() -> None:
    healthy = "    PID STAT WCHAN                            ELAPSED COMMAND\n      1 Ss   ep_poll   100 systemd\n"
    assert run("hung_tasks", [out(healthy)]).status is Status.OK
    assert run("hung_tasks", [out("\x1b[31mgarbage\x1b[0m\r\nmore garbage\r\n")]).status is Status.ERROR
    assert run("hung_tasks", [out("", rc=127, stderr="ps: command not found")]).status is Status.NO_DATA


# --------------------------------------------------------------------------- pcie_aer


def test_pcie_aer_errors_flagged_and_gpu_named() -> None:
    r = run("pcie_aer", [out(fx("synthetic_aer_errors.txt"), rc=0), out(fx("synthetic_lspci_d_10de.txt"))])
    by_bus = {f.data["bus"]: f for f in r.findings}
    gpu, switch = by_bus["0000:4c:00.0"], by_bus["0000:47:02.0"]
    assert gpu.severity == "critical" and gpu.data["nonfatal"] == 2 and gpu.data["category"] == "gpu-hardware"
    assert "GH100" in gpu.data["device"] and gpu.message.startswith("GPU ")
    assert switch.severity == "warning" and switch.data["correctable"] == 4211
    assert switch.data["device"] == "PCIe device" and switch.data["nonzero"]["correctable"] == {"BadTLP": 4211}


def test_pcie_aer_healthy_empty_and_absent() -> None:
    assert run("pcie_aer", [out(fx("synthetic_aer_healthy.txt")), out("")]).status is Status.OK
    no_files = out("", rc=2, stderr="grep: /sys/bus/pci/devices/*/aer_dev_correctable: No such file or directory\n")
    r = run("pcie_aer", [no_files, out("")])
    assert r.status is Status.NO_DATA and "no AER counters exposed" in r.error
    assert run("pcie_aer", [out("", rc=127, stderr="grep: command not found"), out("")]).status is Status.NO_DATA
    # lspci missing must not hide the counters
    assert run("pcie_aer", [out(fx("synthetic_aer_errors.txt")), out("", rc=127)]).status is Status.PROBLEM


# --------------------------------------------------------------------------- mce_edac


def test_mce_edac_real_per_rank_counts_are_healthy() -> None:
    r = run("mce_edac", [out(fx("edac_dimm_ce_count.txt"))])
    assert r.status is Status.OK
    assert {c["mc"]: c["ce"] for c in r.data["controllers"]} == {"mc0": 1, "mc1": 0, "mc2": 0, "mc3": 0}


def test_mce_edac_uncorrectable_and_many_corrected() -> None:
    r = run("mce_edac", [out(fx("synthetic_edac_mc_ue.txt"))])
    assert kinds(r) == ["memory_ecc_errors"]
    f = r.findings[0]
    assert f.data["mc"] == "mc1" and f.severity == "critical" and f.data["category"] == "memory"
    many = "/sys/devices/system/edac/mc/mc0/ce_count:5000\n/sys/devices/system/edac/mc/mc0/ue_count:0\n"
    assert [f.severity for f in run("mce_edac", [out(many)]).findings] == ["warning"]


def test_mce_edac_no_controllers_is_no_data() -> None:
    r = run("mce_edac", [out("", rc=2, stderr="grep: /sys/devices/system/edac/mc/mc*/ce_count: No such file or directory")])
    assert r.status is Status.NO_DATA


# --------------------------------------------------------------------------- nic_errors


def test_nic_errors_real_outputs_are_healthy() -> None:
    lo = run("nic_errors", [out(fx("ip_s_link_lo.txt"))])
    assert lo.status is Status.OK and lo.data["interfaces"][0]["rx"]["packets"] == 2
    eth4 = run("nic_errors", [out(fx("ip_s_s_link_eth4_wrapped.txt"))])
    assert eth4.status is Status.OK  # dropped/overrun/missed but zero errors
    row = eth4.data["interfaces"][0]
    assert row["state"] == "UP" and row["rx"]["missed_errors"] == 1725828 and row["rx"]["overrun"] == 47323


def test_nic_errors_flags_errors_and_lost_carrier_only_on_physical_links() -> None:
    r = run("nic_errors", [out(fx("synthetic_ip_s_link_errors.txt"))])
    msgs = {f.data["interface"]: f for f in r.findings}
    assert set(msgs) == {"eth0", "eth1"}  # eth2 is admin-down, docker0 is virtual, lo is skipped
    assert msgs["eth0"].data["rx_errors"] == 20311 and "RX errors 20311" in msgs["eth0"].message
    assert msgs["eth1"].data["link_down"] is True
    assert all(f.data["category"] == "network" for f in r.findings)


def test_nic_errors_garbage_and_absent() -> None:
    assert run("nic_errors", [out("Object \"link\" is unknown, try \"ip help\".", rc=255)]).status is Status.ERROR
    assert run("nic_errors", [out("random words\n")]).status is Status.ERROR
    assert run("nic_errors", [out("", rc=127, stderr="bash: ip: command not found")]).status is Status.NO_DATA


# --------------------------------------------------------------------------- ib_counters


def test_ib_counters_real_iwarp_without_pma_is_no_data() -> None:
    r = run("ib_counters", [out(fx("ib_counters_iwarp_no_pma.txt"))])
    assert r.status is Status.NO_DATA and "no PMA" in r.error
    assert r.data["ports"] == [{"hca": "i40iw0", "port": 1}]


def test_ib_counters_errors_flagged() -> None:
    r = run("ib_counters", [out(fx("synthetic_ib_counters_errors.txt"))])
    assert kinds(r) == ["ib_port_errors"]
    f = r.findings[0]
    assert (f.data["hca"], f.data["port"]) == ("mlx5_1", 1)
    assert f.data["counters"]["link_downed"] == 3 and f.data["category"] == "network"
    assert "symbol errors" in f.message and "receive errors" in f.message


def test_ib_counters_no_hca_is_no_data() -> None:
    r = run("ib_counters", [out("", rc=2, stderr="grep: /sys/class/infiniband/*/ports/*/counters/symbol_error: No such file")])
    assert r.status is Status.NO_DATA


# --------------------------------------------------------------------------- mount_health


def test_mount_health_hung_df_is_mount_unresponsive() -> None:
    mounts = out(fx("synthetic_proc_mounts.txt"), "cat /proc/mounts")
    hung = out("", "timeout 15 df -P -T", rc=124)
    r = run("mount_health", [mounts, hung])
    assert kinds(r) == ["mount_unresponsive"]
    f = r.findings[0]
    assert f.severity == "critical" and f.data["category"] == "storage"
    assert {m["mountpoint"] for m in f.data["mounts"]} == {"/home", "/scratch", "/mnt/ckpt store"}
    # the transport's own timeout (a df that ignored the signal) is read the same way
    r2 = run("mount_health", [mounts, out("", rc=None, transport="timeout")])
    assert kinds(r2) == ["mount_unresponsive"]
    # narrowed to one path
    r3 = run("mount_health", [mounts, hung], path="/scratch")
    assert [m["mountpoint"] for m in r3.findings[0].data["mounts"]] == ["/scratch"]


def test_mount_health_stale_handle_and_healthy() -> None:
    mounts = out(fx("synthetic_proc_mounts.txt"))
    df_text = ("Filesystem     Type 1024-blocks   Used Available Capacity Mounted on\n"
               "/dev/nvme0n1p2 ext4  3750745616 412300112 3338445504  11% /\n")
    stale = out(df_text, rc=1, stderr="df: /home: Stale file handle\n")
    r = run("mount_health", [mounts, stale])
    assert kinds(r) == ["mount_unresponsive"] and r.findings[0].data["reason"] == "Stale file handle"
    assert run("mount_health", [mounts, out(df_text)]).status is Status.OK
    assert run("mount_health", [out("garbage\n"), out(df_text)]).status is Status.ERROR


# --------------------------------------------------------------------------- lustre_health


def test_lustre_health_real_lfs_df_and_check_servers_ok() -> None:
    r = run("lustre_health", [out(fx("synthetic_lfs_check_servers_ok.txt")), out(fx("lfs_df_scratch2.txt"))])
    assert r.status is Status.OK and len(r.data["df"]) == 25 and len(r.data["targets"]) == 4


def test_lustre_health_unreachable_and_inactive_targets() -> None:
    check = out(fx("synthetic_lfs_check_servers_down.txt"))
    r = run("lustre_health", [check, out(fx("synthetic_lfs_df_inactive.txt"))])
    targets = {f.data["target"]: f for f in r.findings}
    assert set(targets) == {"scratch-OST0001", "OST0001"}
    assert all(f.kind == "lustre_unhealthy" and f.severity == "critical" for f in r.findings)
    assert "Resource temporarily unavailable" in targets["scratch-OST0001"].message


def test_lustre_health_absent() -> None:
    missing = out("", rc=127, stderr="bash: lfs: command not found")
    assert run("lustre_health", [missing, missing]).status is Status.NO_DATA
    assert run("lustre_health", [out(""), out("")]).status is Status.NO_DATA


# --------------------------------------------------------------------------- dcgm_diag


@pytest.mark.parametrize("fixture", ["dcgmi_diag_pcie_fail_4.2.3.txt", "dcgmi_diag_pcie_fail_4.4.1.txt"])
def test_dcgm_diag_real_failures(fixture: str) -> None:
    r = run("dcgm_diag", [out(fx(fixture))])
    assert kinds(r) == ["dcgm_diag_failed"]
    f = r.findings[0]
    assert f.data["test"] == "pcie" and f.data["section"] == "Integration" and f.severity == "critical"
    assert f.data["category"] == "gpu-hardware" and "internal error" in f.data["messages"][0]


def test_dcgm_diag_real_pass_and_skip() -> None:
    r = run("dcgm_diag", [out(fx("dcgmi_diag_deployment_pass_3.0.4.txt"))])
    assert r.status is Status.OK and len(r.data["tests"]) == 9
    skip = fx("dcgmi_diag_deployment_pass_3.0.4.txt") + "| GPU Memory                | Skip - All                                     |\n"
    assert run("dcgm_diag", [out(skip)]).status is Status.OK


def test_dcgm_diag_no_host_engine_is_no_data_never_ok() -> None:
    for text in ("Error: unable to establish a connection to the specified host: localhost\n"
                 "Error: Unable to connect to host engine. Host engine connection invalid/disconnected.\n",
                 "Unable to connect to host engine. Is the host engine running?\n"):
        assert run("dcgm_diag", [out("", rc=255, stderr=text)]).status is Status.NO_DATA
    assert run("dcgm_diag", [out("", rc=127, stderr="dcgmi: command not found")]).status is Status.NO_DATA
    assert run("dcgm_diag", [out("Error: Diagnostic could not be run\n", rc=226)]).status is Status.ERROR


# --------------------------------------------------------------------------- garbage, empty, absent: never ok


@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("job_log_errors",)])
def test_command_not_found_is_no_data(name: str) -> None:
    missing = out("", rc=127, stderr="bash: tool: command not found\n")
    assert run(name, [missing] * len(SPECS[name].commands)).status is Status.NO_DATA


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("text", ["", "\x1b[1;31m\x00\xff garbage ☃\r\n|||\r\n", "Segmentation fault (core dumped)\n"])
def test_garbage_and_empty_output_is_never_ok(name: str, text: str) -> None:
    outputs = [out(text, rc=0)] * len(SPECS[name].commands)
    r = run(name, outputs)
    if name == "failed_units" and not text:
        assert r.status is Status.OK  # `systemctl --failed --no-legend` prints nothing when nothing failed
        return
    if name == "job_log_errors" and text:
        return  # any text is a valid job log; what it says is the catalogue's business (tested below)
    assert r.status in (Status.NO_DATA, Status.ERROR, Status.PROBLEM), (name, text, r)


def test_permission_denied_is_no_data() -> None:
    denied = out("", rc=1, stderr="dmesg: read kernel buffer failed: Operation not permitted\n")
    assert run("kernel_errors", [denied]).status is Status.NO_DATA
    assert run("job_log_errors", [out("", rc=1, stderr="tail: cannot open 'x' for reading: Permission denied")]).status \
        is Status.NO_DATA


# --------------------------------------------------------------------------- kernel log and job log


@dataclass(frozen=True)
class _Sig:
    id: str
    title: str
    category: str
    severity: str
    pattern: str
    scope: str = "node"
    cause: str = "c"
    fix: str = "f"
    action: str | None = None
    fault_kind: str | None = None
    checks: tuple[str, ...] = ()
    source: str = "https://example.invalid/doc"


@dataclass
class _Match:
    signature: _Sig
    first_line: str
    line_no: int
    count: int
    groups: dict[str, str] = field(default_factory=dict)


class _FakeCatalog:
    """The signature API the check codes against, with a few signatures."""

    def __init__(self, sigs: list[_Sig]) -> None:
        self.sigs = sigs

    def match(self, text: str) -> list[_Match]:
        import re

        found: dict[str, _Match] = {}
        for no, line in enumerate(text.splitlines(), 1):
            for s in self.sigs:
                if re.search(s.pattern, line):
                    if s.id in found:
                        found[s.id].count += 1
                    else:
                        found[s.id] = _Match(s, line, no, 1)
        return list(found.values())


@pytest.fixture
def fake_catalog(monkeypatch: pytest.MonkeyPatch) -> _FakeCatalog:
    cat = _FakeCatalog([
        _Sig("soft-lockup", "CPU soft lockup", "kernel", "critical", r"soft lockup - CPU#\d+ stuck"),
        _Sig("hung-task", "Task blocked", "storage", "error", r"blocked for more than \d+ seconds"),
        _Sig("nfs-not-responding", "NFS server not responding", "storage", "warning", r"nfs: server \S+ not responding"),
        _Sig("lustre-error", "Lustre client error", "storage", "error", r"LustreError"),
        _Sig("xid-79", "GPU fallen off the bus", "gpu-hardware", "critical", r"Xid .*: 79,", fault_kind="gpu_fallen_off_bus"),
    ])
    module = types.ModuleType("diagnostics.signatures")
    module.load_catalog = lambda: cat  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "diagnostics.signatures", module)
    return cat


def test_kernel_errors_with_catalogue_api(fake_catalog: _FakeCatalog) -> None:
    text = fx("dmesg_T_soft_lockup_harvester.txt") + fx("dmesg_T_lustre_jade.txt") + (BASE_FIX / "dmesg_T_xid.txt").read_text()
    r = run("kernel_errors", [out(text)])
    by_sig = {f.data["signature"]: f for f in r.findings if f.kind == "kernel_error"}
    assert by_sig["soft-lockup"].severity == "critical" and by_sig["soft-lockup"].data["category"] == "kernel"
    assert by_sig["lustre-error"].severity == "warning" and by_sig["lustre-error"].data["category"] == "storage"
    assert by_sig["xid-79"].data["fault_kind"] == "gpu_fallen_off_bus" and by_sig["xid-79"].severity == "critical"
    assert len(by_sig["xid-79"].data["first_line"]) <= 300 and by_sig["xid-79"].data["source"]
    assert r.status is Status.PROBLEM
    unknown = [f for f in r.findings if f.kind == "kernel_error_unknown"]
    assert all(f.severity == "info" for f in unknown)


def test_kernel_errors_warning_signatures_and_unknown_lines(fake_catalog: _FakeCatalog) -> None:
    r = run("kernel_errors", [out(fx("dmesg_hung_task_nfs_xen.txt"))])
    sev = {f.data["signature"]: f.severity for f in r.findings if f.kind == "kernel_error"}
    assert sev == {"nfs-not-responding": "info", "hung-task": "warning"}  # 3 repeats < 10: info
    assert "kernel_error_unknown" not in kinds(r)  # its Call Trace belongs to the hung task
    many = "".join(f"[ {i}.0] nfs: server x not responding, still trying\n" for i in range(12))
    assert [f.severity for f in run("kernel_errors", [out(many)]).findings] == ["warning"]
    aer = run("kernel_errors", [out(fx("dmesg_aer_correctable.txt"))])
    assert kinds(aer) == ["kernel_error_unknown"] and aer.findings[0].severity == "info"
    assert aer.status is Status.OK and len(aer.findings[0].data["lines"]) <= 5


def test_kernel_errors_without_catalogue_is_never_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "diagnostics.signatures", None)  # import fails
    r = run("kernel_errors", [out(fx("dmesg_soft_lockup_mptcp.txt"))])
    assert r.status is Status.ERROR and "catalogue" in r.error
    assert [f.severity for f in r.findings] == ["info"]


def test_job_log_errors_with_catalogue_api(fake_catalog: _FakeCatalog) -> None:
    fake_catalog.sigs.append(_Sig("nccl-timeout", "NCCL watchdog timeout", "network", "critical",
                                  r"Watchdog caught collective operation timeout"))
    log = ("step 10 rank 0 loss 2.1\n"
           "[Rank 3] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=1, OpType=ALLREDUCE) ran for "
           "600000 milliseconds before timing out.\n")
    r = run("job_log_errors", [out(log)])
    assert kinds(r) == ["job_log_error"] and r.findings[0].severity == "critical"
    assert r.data["path"] == "/var/log/clusterdoc/train.log"
    assert run("job_log_errors", [out("", rc=1, stderr="tail: cannot open: No such file")]).status is Status.NO_DATA


def test_kernel_errors_real_catalogue_categories() -> None:
    signatures = pytest.importorskip("diagnostics.signatures")
    catalog = signatures.load_catalog()
    if not getattr(catalog, "match", None):
        pytest.skip("signature catalogue has no match() yet")
    text = (fx("dmesg_T_soft_lockup_harvester.txt") + fx("dmesg_T_lustre_jade.txt")
            + (BASE_FIX / "dmesg_T_xid.txt").read_text())
    r = run("kernel_errors", [out(text)])
    cats = {f.data["category"] for f in r.findings if f.kind == "kernel_error"}
    assert r.status is Status.PROBLEM, r
    assert "storage" in cats and "gpu-hardware" in cats, cats
    xid = [f for f in r.findings if f.kind == "kernel_error" and f.data["category"] == "gpu-hardware"]
    assert any(f.severity == "critical" for f in xid)
    lockup = [f for f in r.findings if "lockup" in (f.data.get("title", "") + f.data.get("signature", "")).lower()]
    assert lockup and lockup[0].severity in ("warning", "critical")


# --------------------------------------------------------------------------- the simulator's healthy answers


class _Gpu:
    def __init__(self, bus: int) -> None:
        self.bus = bus
        self.present = True


class _Hca:
    def __init__(self, name: str) -> None:
        self.name = name


class _Node:
    def __init__(self) -> None:
        self.name = self.hostname = "gpu-node-01"
        self.driver_version = "550.54.15"
        self.job_running = True
        self.gpus = [_Gpu(b) for b in (0x07, 0x0B, 0x48, 0x4C, 0x88, 0x8B, 0xC8, 0xCB)]
        self.hcas = [_Hca(f"mlx5_{i}") for i in range(4)]


def _sim_outputs(name: str, node: Any, params: dict[str, Any] | None = None) -> list[CommandResult]:
    from simulator.health_tools import health_output

    spec = SPECS[name]
    outputs = []
    for command in render_commands(spec, validate_params(spec, params or {})):
        answer = health_output(object(), node, shlex.split(command), command)
        if answer is None and command.startswith("lspci"):
            answer = ("07:00.0 3D controller: NVIDIA Corporation GH100 [H100 SXM5 80GB] (rev a1)\n", 0)
        assert answer is not None, command
        stdout, rc = answer
        outputs.append(CommandResult("gpu-node-01", command, rc, stdout,
                                     "bash: lfs: command not found\n" if rc == 127 else ""))
    return outputs


@pytest.mark.parametrize("name", ["failed_units", "hung_tasks", "pcie_aer", "mce_edac", "nic_errors", "ib_counters",
                                  "mount_health", "dcgm_diag"])
def test_simulator_healthy_outputs_parse_ok(name: str) -> None:
    r = run(name, _sim_outputs(name, _Node()))
    assert r.status is Status.OK, (name, r)
    assert r.findings == []


def test_simulator_lustre_absent_and_robust_to_bare_nodes() -> None:
    assert run("lustre_health", _sim_outputs("lustre_health", _Node())).status is Status.NO_DATA
    bare = types.SimpleNamespace()  # no attributes at all
    for name in ("failed_units", "hung_tasks", "pcie_aer", "mce_edac", "nic_errors", "mount_health", "dcgm_diag"):
        assert run(name, _sim_outputs(name, bare)).status is Status.OK, name
    assert run("ib_counters", _sim_outputs("ib_counters", bare)).status is Status.NO_DATA  # no HCAs
    assert run("mount_health", _sim_outputs("mount_health", _Node(), {"path": "/home"})).status is Status.OK


def test_simulator_answers_only_its_own_commands() -> None:
    from simulator.health_tools import health_output

    for command in ("nvidia-smi -L", "ps -eo pid,user,pcpu,pmem,comm --sort=-pcpu", "cat /proc/loadavg", "df -P",
                    "dmesg -T", "grep -c foo", "systemctl is-active chronyd"):
        assert health_output(object(), _Node(), shlex.split(command), command) is None, command
    assert health_output(object(), _Node(), ["timeout", "15", "df", "-P", "-T"], "timeout 15 df -P -T") is not None


def test_simulator_cluster_nodes_parse_ok() -> None:
    sim_mod = pytest.importorskip("simulator.cluster")
    scenarios = sorted(Path(__file__).resolve().parents[2].joinpath("scenarios").glob("*.yaml"))
    if not scenarios:
        pytest.skip("no scenarios")
    sim = sim_mod.SimCluster(str(scenarios[0]))
    node = sim.nodes[sim.hosts[0]]
    for name in ("failed_units", "hung_tasks", "pcie_aer", "mce_edac", "nic_errors", "ib_counters", "mount_health",
                 "dcgm_diag"):
        from simulator.health_tools import health_output

        outputs = []
        for command in render_commands(SPECS[name], validate_params(SPECS[name], {})):
            answer = health_output(sim, node, shlex.split(command), command)
            outputs.append(sim.handle(sim.hosts[0], command) if answer is None
                           else CommandResult(sim.hosts[0], command, answer[1], answer[0]))
        r = run(name, outputs)
        assert r.status in (Status.OK, Status.NO_DATA) and not r.findings, (name, r)


# --------------------------------------------------------------------------- parser details


def test_parsers_strip_ansi_and_crlf() -> None:
    text = "\x1b[1mapache2.service\x1b[0m loaded failed failed The Apache Webserver\r\n"
    assert health.parse_systemctl_failed(text)[0].unit == "apache2.service"
    links = health.parse_ip_s_link(fx("ip_s_link_lo.txt").replace("\n", "\r\n"))
    assert links[0].rx["packets"] == 2


def test_sysfs_grep_paths_with_colons() -> None:
    v = health.parse_sysfs_grep("/sys/bus/pci/devices/0000:4c:00.0/aer_dev_fatal:TLP 0\n")[0]
    assert v.path.endswith("0000:4c:00.0/aer_dev_fatal") and v.attr == "aer_dev_fatal" and v.value == "TLP 0"
