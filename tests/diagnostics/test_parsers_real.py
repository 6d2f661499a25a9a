"""Real command outputs pasted in public threads (tests/diagnostics/fixtures/real, sources in
SOURCES.md there): each test asserts what a person reading the paste sees - GPU count, the ERR! GPU,
link states, bus bandwidth, the wrong count, the fallen-off GPU's bus id, the full filesystem - and
that ``read_pasted`` recognises the tool and reports the anomaly."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diagnostics.checks import CHECKS_BY_NAME
from diagnostics.parsers import ParseError, infiniband, kernel, nccl, nvidia_smi, scheduler, system
from diagnostics.parsers.common import clean, parse_size
from diagnostics.registry import ParseInput, validate_params
from diagnostics.types import CommandResult, Status

REAL = Path(__file__).parent / "fixtures" / "real"
FIXTURES = sorted(p.name for p in REAL.glob("*.txt"))


def fx(name: str) -> str:
    return (REAL / name).read_text()


def check(tool: str, *outputs: str, commands: tuple[str, ...] = (), **params: Any) -> Any:
    spec = CHECKS_BY_NAME[tool]
    cmds = list(commands) or list(spec.commands)[: len(outputs)] or ["cmd"] * len(outputs)
    results = [CommandResult("node-01", c, 0, t) for c, t in zip(cmds, outputs, strict=True)]
    return spec.parse(ParseInput("node-01", validate_params(spec, params), results))


def test_every_fixture_has_a_source() -> None:
    sources = (REAL / "SOURCES.md").read_text()
    assert len(FIXTURES) >= 40
    for name in FIXTURES:
        row = next((ln for ln in sources.splitlines() if ln.startswith(f"| {name} |")), None)
        assert row is not None, f"{name} has no row in SOURCES.md"
        assert "https://github.com/" in row or "same file as above" in row, row


# --------------------------------------------------------------------------- nvidia-smi default table


def test_table_396_three_gtx_1080ti() -> None:
    t = nvidia_smi.parse_table(fx("nvsmi_table_396_gtx1080ti_gpustat62.txt"))
    assert t.driver == "396.37" and [g.index for g in t.gpus] == [0, 1, 2]
    g = t.gpus[2]
    assert (g.bus_id, g.temp_c, g.perf, g.power_w, g.power_cap_w) == ("00000000:81:00.0", 68, "P2", 76, 250)
    assert (g.mem_used_mib, g.mem_total_mib, g.util_pct, g.fan_pct) == (10781, 11178, 17, 51)
    assert not any(g.errors for g in t.gpus)


def test_table_err_power_is_flagged() -> None:
    t = nvidia_smi.parse_table(fx("nvsmi_table_err_power_v100_azhpc77.txt"))
    (g,) = t.gpus
    assert (g.index, g.bus_id, g.temp_c, g.power_cap_w, g.ecc_uncorrected) == (1, "00008ED0:00:00.0", 29, 250, 0)
    assert g.power_w is None and g.errors == ["power_draw"]


def test_table_440_eight_p100_in_fence_with_processes() -> None:
    t = nvidia_smi.parse_table(fx("nvsmi_table_440_p100x8_procs.txt"))
    assert (t.driver, t.cuda) == ("440.33.01", "10.2")
    assert [g.index for g in t.gpus] == list(range(8)) and t.gpus[7].mem_used_mib == 13684
    assert [p.gpu for p in t.processes] == [4, 5, 6, 7, 7] and t.processes[-1].mem_mib == 3439


def test_table_555_indented_no_processes() -> None:
    t = nvidia_smi.parse_table(fx("nvsmi_table_555_a100x2_noproc_indented.txt"))
    assert (t.driver, t.cuda, len(t.gpus)) == ("555.42.02", "12.5", 2)
    assert {g.name for g in t.gpus} == {"NVIDIA A100-PCIE-40GB"} and {g.mig_mode for g in t.gpus} == {"Disabled"}
    assert t.no_processes and t.processes == []
    assert [g.bus_id for g in t.gpus] == ["00000000:12:00.0", "00000000:8A:00.0"]


def test_table_325_old_layout() -> None:
    t = nvidia_smi.parse_table(fx("nvsmi_table_325_titan_lost_cbio39.txt"))
    assert t.driver == "325.15" and [g.index for g in t.gpus] == [0, 1, 2]
    assert t.gpus[0].bus_id == "0000:03:00.0" and t.gpus[0].mem_total_mib == 6143 and t.gpus[0].power_w is None


def test_table_mig_devices_only() -> None:
    t = nvidia_smi.parse_table(fx("nvsmi_mig_devices_nvitop8.txt"))
    assert t.gpus == [] and [(m.gpu, m.gi) for m in t.mig_devices] == [(1, 3), (1, 5), (1, 6)]
    assert t.mig_devices[0].mem_used_mib == 14366


def test_table_580_cut_mid_border() -> None:
    t = nvidia_smi.parse_table(fx("nvsmi_table_580_a800_hami1903.txt"))
    assert (t.driver, t.cuda, [g.index for g in t.gpus]) == ("580.119.02", "13.0", [0, 1])


def test_table_without_rows_is_an_error() -> None:
    with pytest.raises(ParseError):
        nvidia_smi.parse_table("+-----+\n| NVIDIA-SMI 550.1 Driver Version: 550.1 |\n+-----+\n")


def test_list_indented() -> None:
    gpus, lost = nvidia_smi.parse_list(fx("nvsmi_L_a100x2_indented.txt"))
    assert [g["index"] for g in gpus] == [0, 1] and lost == []


# --------------------------------------------------------------------------- nvlink


def test_nvlink_all_inactive_is_not_a_gpu_without_links() -> None:
    r = nvidia_smi.parse_nvlink(fx("nvlink_all_inactive_a100_indented.txt"))
    assert r.all_inactive == [0, 1] and r.names[0] == "NVIDIA A100-PCIE-40GB"
    out = check("gpu_nvlink", fx("nvlink_all_inactive_a100_indented.txt"))
    assert out.status is Status.NO_DATA and "inactive" in (out.error or "").lower()


def test_nvlink_b200_all_links_inactive_is_a_finding() -> None:
    out = check("gpu_nvlink", fx("nvlink_b200_one_gpu_inactive_gpud1085.txt"))
    assert out.status is Status.PROBLEM
    (f,) = out.findings
    assert (f.kind, f.gpu, f.severity) == ("nvlink_down", 2, "critical")


def test_nvlink_v100_two_links_inactive() -> None:
    out = check("gpu_nvlink", fx("nvlink_v100_two_links_inactive_azhpc73.txt"))
    (f,) = out.findings
    assert (f.gpu, f.data["inactive_links"], f.data["links"]) == (3, [3, 5], 6)


def test_nvlink_gb200_all_up() -> None:
    links = nvidia_smi.parse_nvlink_status(fx("nvlink_gb200_all_up_k8s371.txt"))
    assert len(links[0]) == 18 and set(links[0].values()) == {53.125}
    assert check("gpu_nvlink", fx("nvlink_gb200_all_up_k8s371.txt")).status is Status.OK


# --------------------------------------------------------------------------- nvidia-smi -q


def _only_gpu(q: dict[str, Any]) -> dict[str, Any]:
    (gpu,) = q["gpus"].values()
    return gpu  # type: ignore[no-any-return]


def test_q_performance_indented() -> None:
    q = nvidia_smi.parse_query(fx("nvsmi_q_performance_555_indented.txt"))
    assert q["Attached GPUs"] == "2" and set(q["gpus"]) == {"00000000:12:00.0", "00000000:8A:00.0"}
    gpu = q["gpus"]["00000000:8A:00.0"]
    assert gpu["Performance State"] == "P0" and gpu["Clocks Event Reasons"]["Idle"] == "Active"
    assert gpu["Clocks Event Reasons"]["HW Slowdown"] == "Not Active"


def test_q_ecc_indented() -> None:
    q = nvidia_smi.parse_query(fx("nvsmi_q_ecc_555_indented.txt"))
    gpu = q["gpus"]["00000000:12:00.0"]
    assert gpu["ECC Mode"]["Current"] == "Enabled" and gpu["ECC Errors"]["Volatile"]["DRAM Uncorrectable"] == "0"


def test_q_excerpt_without_banner_power_and_clocks() -> None:
    gpu = _only_gpu(nvidia_smi.parse_query(fx("nvsmi_q_excerpt_power_clocks_docker957.txt")))
    assert gpu["Power Readings"]["Power Draw"] == "11.95 W" and gpu["Max Clocks"]["SM"] == "1999 MHz"
    assert gpu["Clocks"]["SM"] == "139 MHz"


def test_q_excerpt_without_banner_pci() -> None:
    gpu = _only_gpu(nvidia_smi.parse_query(fx("nvsmi_q_excerpt_pci_vgpu25.txt")))
    assert gpu["PCI"]["Bus Id"] == "00000000:82:00.0" and gpu["VBIOS Version"] == "88.00.36.00.01"


def test_q_excerpt_without_banner_temperature() -> None:
    gpu = _only_gpu(nvidia_smi.parse_query(fx("nvsmi_q_excerpt_ecc_temp_docker564.txt")))
    assert gpu["Temperature"]["GPU Current Temp"] == "43 C" and gpu["Power Readings"]["Power Draw"] == "10.85 W"


def test_q_excerpt_starting_mid_section() -> None:
    q = nvidia_smi.parse_query(fx("nvsmi_q_excerpt_second_gpu_docker1671.txt"))
    gpu = q["gpus"]["00000000:02:00.0"]
    assert gpu["Product Name"] == "NVIDIA GeForce RTX 2080 Ti" and gpu["Persistence Mode"] == "Disabled"


# --------------------------------------------------------------------------- --query-gpu CSV


def test_csv_indented_with_command_line() -> None:
    csv = nvidia_smi.parse_query_csv(fx("nvsmi_csv_no_index_a100_indented.txt"))
    assert [r["pci.bus_id"] for r in csv.rows] == ["00000000:12:00.0", "00000000:8A:00.0"]
    assert csv.rows[0]["temperature.gpu"] == "39"


def test_csv_unknown_error_value() -> None:
    csv = nvidia_smi.parse_query_csv(fx("nvsmi_csv_unknown_error_mindminer627.txt"))
    (row,) = csv.rows
    assert row["power.default_limit"] == "[Unknown Error]" and row["power.draw"] == "228.82"


def test_csv_noheader_fields_from_the_pasted_command() -> None:
    csv = nvidia_smi.parse_query_csv(fx("nvsmi_csv_fan_na_noheader_nvsmi2.txt"))
    assert csv.rows == [{"fan.speed": "[N/A]"}]


def test_csv_check_with_header_but_no_rows_is_not_ok() -> None:
    out = check("gpu_temperature", "index, temperature.gpu, temperature.memory\n")
    assert out.status in (Status.ERROR, Status.NO_DATA)


# --------------------------------------------------------------------------- topo -m


def test_topo_two_gpus_phb_tabs() -> None:
    t = nvidia_smi.parse_topo(fx("topo_2gpu_phb_tabs_club3090_1229.txt"))
    assert t.gpus == ["GPU0", "GPU1"] and t.link("GPU0", "GPU1") == "PHB"
    assert (t.cpu_affinity["GPU1"], t.numa_affinity["GPU1"]) == ("0-63", "0")
    assert nvidia_smi.assess_topo(t) == []


def test_topo_two_gpus_nv3() -> None:
    t = nvidia_smi.parse_topo(fx("topo_2gpu_nv3_tabs_nccl557.txt"))
    assert t.link("GPU1", "GPU0") == "NV3" and t.cpu_affinity["GPU0"] == "0-47" and t.numa_affinity["GPU0"] == "N/A"


def test_topo_h100_with_nics() -> None:
    t = nvidia_smi.parse_topo(fx("topo_4xh100_nv6_nics_nccl1617.txt"))
    assert t.gpus == ["GPU0", "GPU1", "GPU2", "GPU3"] and t.nics == ["NIC0", "NIC1", "NIC2", "NIC3"]
    assert t.link("GPU2", "NIC2") == "PIX" and t.link("GPU2", "NIC0") == "SYS"
    assert t.numa_affinity == {"GPU0": "3", "GPU1": "1", "GPU2": "7", "GPU3": "5"}
    assert nvidia_smi.assess_topo(t) == []


def test_topo_pcie_only_partial_rows() -> None:
    t = nvidia_smi.parse_topo(fx("topo_8gpu_pix_phb_sys_mlx4_k8s53497.txt"))
    assert len(t.gpus) == 8 and t.nics == ["mlx4_0"] and t.link("GPU4", "GPU5") == "PIX"
    assert t.cpu_affinity["GPU4"] == "10-19,30-39" and nvidia_smi.assess_topo(t) == []


def test_topo_dgx_a100_all_nv12() -> None:
    t = nvidia_smi.parse_topo(fx("topo_dgx_a100_nv12_dcgm149.txt"))
    assert {t.link(a, b) for a in t.rows for b in t.gpus if a != b and a.startswith("GPU")} == {"NV12"}
    assert nvidia_smi.assess_topo(t) == []


def test_topo_dgx1_hybrid_cube_mesh_sys_is_by_design() -> None:
    t = nvidia_smi.parse_topo(fx("nccl_old_allgather_failed_with_topo_nccltests37.txt"))
    assert len(t.gpus) == 8 and t.link("GPU0", "GPU4") == "SYS" and t.link("GPU0", "GPU3") == "NV2"
    assert nvidia_smi.assess_topo(t) == []


def test_topo_gpu_dropped_off_nvswitch_is_a_finding() -> None:
    # the DGX A100 paste with GPU5's NVLinks gone: NVSwitch systems link every pair, so SYS is a fault
    text = fx("topo_dgx_a100_nv12_dcgm149.txt").splitlines()
    broken = []
    for line in text:
        cells = line.split()
        if not cells or cells[0] == "#" or cells[1] == "GPU1":
            pass  # the command line and the header stay
        elif cells[0].startswith("GPU") and cells[0] != "GPU5":
            cells[6] = "SYS"  # column GPU5
        elif cells[0] == "GPU5":
            cells[1:9] = ["SYS"] * 5 + ["X"] + ["SYS"] * 2
        broken.append("  ".join(cells))
    issues = nvidia_smi.assess_topo(nvidia_smi.parse_topo("\n".join(broken)))
    assert issues and {i.gpu for i in issues} == {5} and all(i.link == "SYS" for i in issues)


def test_topo_empty_matrix_is_an_error() -> None:
    with pytest.raises(ParseError):
        nvidia_smi.parse_topo("\tGPU0\tGPU1\tCPU Affinity\n\nLegend:\n\n  X    = Self\n")


# --------------------------------------------------------------------------- kernel log


def test_fallen_off_bus_wrapped_without_xid_79() -> None:
    (ev,) = kernel.parse_fallen_off_bus(fx("dmesg_fallen_off_bus_wrapped_nvsentinel155.txt"))
    assert (ev.bus, ev.pci_id) == ("0000:b3:00.0", "10de:26b5")
    out = check("gpu_xid", fx("dmesg_fallen_off_bus_wrapped_nvsentinel155.txt"), "")
    (f,) = out.findings
    assert (f.kind, f.severity, f.data["pci_bus"]) == ("gpu_fallen_off_bus", "critical", "0000:b3:00.0")


def test_fallen_off_bus_old_one_line_form() -> None:
    events = kernel.parse_fallen_off_bus(fx("dmesg_fallen_off_bus_old_bumblebee554.txt"))
    assert {e.bus for e in events} == {"0000:01:00.0"}
    out = check("gpu_xid", fx("dmesg_fallen_off_bus_old_bumblebee554.txt"), "")
    assert [f.kind for f in out.findings] == ["gpu_fallen_off_bus"]


def test_xid_45_journal_lines_without_stamps() -> None:
    events = kernel.parse_xids(fx("journalctl_xid45_no_stamp_ogkm1150.txt"))
    assert len(events) == 7 and {nvidia_smi.bus_key(e.bus) for e in events} == {"dc", "ed", "ba", "97"}
    out = check("gpu_xid", fx("journalctl_xid45_no_stamp_ogkm1150.txt"), "")
    assert len(out.findings) == 4 and {f.data["xid"] for f in out.findings} == {45}


def test_xid_32_31_dmesg() -> None:
    assert [e.xid for e in kernel.parse_xids(fx("dmesg_xid32_31_bumblebee677.txt"))] == [32, 32, 31]


def test_xid_62_is_critical() -> None:
    out = check("gpu_xid", fx("journalctl_xid62_45_trex680.txt"), "")
    sev = {f.data["xid"]: f.severity for f in out.findings}
    assert sev == {62: "critical", 45: "warning"}


# --------------------------------------------------------------------------- InfiniBand


def test_ibstat_down_with_physical_linkup_after_prompt() -> None:
    out = check("ib_ports", fx("ibstat_down_linkup_prompt_mellanox249.txt"))
    (f,) = out.findings
    assert (f.kind, f.data["hca"], f.data["physical_state"]) == ("ib_port_down", "mlx5_7", "LinkUp")


def test_ibstat_roce_three_hcas_one_down() -> None:
    ports = infiniband.parse_ibstat(fx("ibstat_roce_multi_hca_mooncake1999.txt"))
    assert [(p.hca, p.active) for p in ports] == [("mlx5_0", True), ("mlx5_1", True), ("mlx5_10", False)]
    assert {p.link_layer for p in ports[:2]} == {"Ethernet"} and ports[0].rate_gbps == 200


def test_ibv_devinfo_port_down() -> None:
    out = check("ib_devinfo", fx("ibv_devinfo_port_down_deepep60.txt"))
    (f,) = out.findings
    assert (f.kind, f.data["hca"], f.data["state"]) == ("ib_port_down", "mlx5_0", "PORT_DOWN")


def test_ibv_devinfo_excerpt_starting_mid_port() -> None:
    ports = infiniband.parse_ibv_devinfo(fx("ibv_devinfo_roce_excerpt_deepep38.txt"))
    assert [(p.hca, p.state, p.link_layer) for p in ports] == [("mlx5_2", "PORT_ACTIVE", "Ethernet")]


# --------------------------------------------------------------------------- df


def test_df_h_root_full_is_found() -> None:
    out = check("disk_usage", fx("df_h_busybox_root_full_ha755.txt"), "")
    full = [f for f in out.findings if f.kind == "disk_full"]
    assert [(f.data["mount"], f.data["used_pct"], f.severity) for f in full] == [("/", 100, "critical")]
    _unit, rows = system.parse_df(fx("df_h_busybox_root_full_ha755.txt"))
    root = next(r for r in rows if r.mount == "/")
    assert root.total == pytest.approx(101.4 * 2**20, rel=1e-3) and root.available == 0


def test_df_h_rows_are_read_not_skipped() -> None:
    out = check("disk_usage", fx("df_h_docker_moby28404.txt"), "")
    assert out.status is Status.OK
    mounts = {r["mount"]: r["used_pct"] for r in out.data["filesystems"]}
    assert mounts["/boot"] == 29 and mounts["/"] == 16


def test_df_1k_after_prompt() -> None:
    out = check("disk_usage", fx("df_1k_prompt_ue4docker115.txt"), "")
    assert out.status is Status.OK and {r["mount"] for r in out.data["filesystems"]} >= {"/var/lib"}


def test_df_rows_without_header() -> None:
    _unit, rows = system.parse_df(fx("df_h_k8s_shm_coreos2427.txt"))
    assert len(rows) == 9 and rows[0].use_pct == 42 and rows[1].total == 64 * 2**20


def test_df_check_that_read_no_row_is_not_ok() -> None:
    out = check("disk_usage", "Filesystem      Size  Used Avail Use% Mounted on\n", "")
    assert out.status in (Status.ERROR, Status.NO_DATA)


# --------------------------------------------------------------------------- free


@pytest.mark.parametrize(("name", "total", "available"), [
    ("free_m_proxmox18.txt", 31966, 21095),
    ("free_h_cloudera35.txt", 3686, 3379),
    ("free_hwt_total_wangkai64.txt", 7782, 5018),
    ("free_m_old_buffers_interana4.txt", 7983, 2345),
    ("free_m_prompt_trailing_freemius4.txt", 128817, 112742),
    ("free_g_firemotd152.txt", 31, 13),
])
def test_free(name: str, total: int, available: int) -> None:
    mem = system.parse_free(fx(name))
    assert (mem.total, mem.available) == (total, available)


# --------------------------------------------------------------------------- chronyc


def test_chronyc_seven_seconds_slow() -> None:
    out = check("clock_sync", fx("chronyc_7s_slow_omnios2576.txt"))
    assert out.status is Status.PROBLEM and out.data["offset_s"] == pytest.approx(-7.810536861)


def test_chronyc_normal() -> None:
    assert check("clock_sync", fx("chronyc_normal_rockstor2098.txt")).status is Status.OK


def test_chronyc_local_reference_without_leap_line() -> None:
    t = system.parse_chronyc_tracking(fx("chronyc_local_ref_no_leap_omicron5192.txt"))
    assert t.offset_s == pytest.approx(0.120790944) and t.stratum == 10 and t.reference.startswith("7F7F0101")


# --------------------------------------------------------------------------- nccl-tests


def test_nccl_old_11_columns_without_headers() -> None:
    r = nccl.parse_all_reduce_perf(fx("nccl_old_11col_nccl340.txt"))
    assert len(r.rows) == 12 and r.avg_busbw_gbs == pytest.approx(6.6972)
    assert r.peak_busbw_gbs == pytest.approx(21.86) and r.out_of_bounds == 0


def test_nccl_old_allgather_out_of_bounds_failed() -> None:
    r = nccl.parse_all_reduce_perf(fx("nccl_old_allgather_failed_with_topo_nccltests37.txt"))
    assert len(r.rows) == 1 and r.out_of_bounds == 2 and r.avg_busbw_gbs == pytest.approx(128.942)
    out = check("nccl_allreduce", "Tesla V100-SXM2-32GB\n", fx("nccl_old_allgather_failed_with_topo_nccltests37.txt"),
                min_busbw_gbs=10)
    assert out.status is Status.PROBLEM and out.findings[0].severity == "critical"


def test_nccl_h200_single_row() -> None:
    r = nccl.parse_all_reduce_perf(fx("nccl_h200_single_row_azure142.txt"))
    assert len(r.rows) == 1 and r.n_gpus == 8 and r.peak_busbw_gbs == pytest.approx(480.26)
    assert r.avg_busbw_gbs == pytest.approx(480.11) and r.rows[0].wrong == 0 and r.rows[0].inplace_wrong == 0


def test_nccl_stray_inplace_line() -> None:
    r = nccl.parse_all_reduce_perf(fx("nccl_ring_stray_inplace_nccl252.txt"))
    assert len(r.rows) == 5 and r.avg_busbw_gbs == pytest.approx(95.3009)


def test_nccl_alltoall_inplace_na() -> None:
    r = nccl.parse_all_reduce_perf(fx("nccl_alltoall_inplace_na_nccltests287.txt"))
    (row,) = r.rows
    assert row.wrong == 0 and row.inplace_wrong is None and r.avg_busbw_gbs == 0


def test_nccl_info_chatter() -> None:
    r = nccl.parse_all_reduce_perf(fx("nccl_info_chatter_nccl1706.txt"))
    assert len(r.rows) == 1 and r.avg_busbw_gbs == pytest.approx(8.62002)


def test_nccl_12_columns_error_values_are_not_wrong_counts() -> None:
    r = nccl.parse_all_reduce_perf(fx("nccl_12col_error_column_npkit19.txt"))
    assert len(r.rows) == 3 and r.rows[0].wrong is None and r.rows[0].error == pytest.approx(1e-07)


def test_nccl_12_columns_na_errors() -> None:
    r = nccl.parse_all_reduce_perf(fx("nccl_12col_na_error_256gpu_nccltests78.txt"))
    assert len(r.rows) == 6 and r.peak_busbw_gbs == pytest.approx(74.36)


def test_nccl_mpirun_tagged_lines() -> None:
    r = nccl.parse_all_reduce_perf(fx("nccl_mpirun_tagged_p5_aws503.txt"))
    assert [row.size_bytes for row in r.rows] == [8, 16, 32]


def test_nccl_16_ranks_in_markdown() -> None:
    r = nccl.parse_all_reduce_perf(fx("nccl_16rank_h100_markdown_ztan.txt"))
    assert len(r.rows) == 31 and r.peak_busbw_gbs == pytest.approx(338.82)
    assert r.avg_busbw_gbs == pytest.approx(70.742) and r.out_of_bounds == 0 and r.ranks == 16


def test_nccl_inplace_wrong_is_a_failure() -> None:
    # the H200 paste with the in-place #wrong column set: the check must not miss it
    text = fx("nccl_h200_single_row_azure142.txt").replace("480.26      0", "480.26     12")
    r = nccl.parse_all_reduce_perf(text)
    assert r.rows[0].inplace_wrong == 12
    out = check("nccl_allreduce", "NVIDIA H200\n", text, min_busbw_gbs=10)
    assert out.status is Status.PROBLEM and out.findings[0].severity == "critical"


# --------------------------------------------------------------------------- schedulers, lspci


def test_scontrol_idle_drain_gres() -> None:
    n = scheduler.parse_scontrol_node(fx("scontrol_idle_drain_gres_awsome195.txt"))
    assert (n.name, n.state) == ("yigou-dev-102-68", "drained")
    assert n.reason == "gres/gpu count reported lower than configured (0 < 1)"


def test_sinfo_partition_summary() -> None:
    rows = scheduler.parse_sinfo(fx("sinfo_partitions_drng_fail_arjuna69.txt"))
    by_state: dict[str, int] = {}
    for r in rows:
        by_state[r.state] = by_state.get(r.state, 0) + r.nodes
    assert by_state == {"drng@": 67, "fail*": 4, "maint": 5, "mix": 9, "idle": 4}


def test_sinfo_drain_after_prompt() -> None:
    (row,) = scheduler.parse_sinfo(fx("sinfo_drain_prompt_citc11.txt"))
    assert (row.partition, row.state, row.nodes, row.nodelist) == ("compute*", "drain", 3, "compute[001-003]")


def test_kubectl_describe_node_gpus() -> None:
    d = scheduler.parse_kubectl_describe_node(fx("kubectl_describe_node_gpu_hami477.txt"))
    assert (d.name, d.gpu_capacity, d.gpu_allocatable, d.gpu_requests) == ("gpu-000-001", 80, 70, 5)


def test_lspci_rev_ff_gpu() -> None:
    devices = kernel.parse_lspci(fx("lspci_gpu_rev_ff_shine171.txt"))
    assert [d.address for d in devices if d.lost] == ["1c:00.0", "1c:00.1", "1c:00.2", "1c:00.3"]


# --------------------------------------------------------------------------- read_pasted on every paste

TOOL_BY_PREFIX = {
    "nvsmi_table_": "nvidia-smi", "nvsmi_mig_": "nvidia-smi", "nvsmi_L_": "nvidia-smi -L",
    "nvlink_": "nvidia-smi nvlink", "nvsmi_q_": "nvidia-smi -q", "nvsmi_csv_": "nvidia-smi --query-gpu",
    "topo_": "nvidia-smi topo -m", "nccl_": "nccl-tests", "dmesg_": "kernel log", "journalctl_": "kernel log",
    "ibstat_": "ibstat", "ibv_devinfo_": "ibv_devinfo", "df_": "df", "free_": "free",
    "chronyc_": "chronyc tracking", "scontrol_": "scontrol show node", "sinfo_": "sinfo",
    "kubectl_describe_": "kubectl describe node", "lspci_": "lspci",
}


def _expected_tool(name: str) -> str:
    return next(tool for prefix, tool in TOOL_BY_PREFIX.items() if name.startswith(prefix))


@pytest.mark.parametrize("name", FIXTURES)
def test_read_pasted_recognises_every_paste(name: str) -> None:
    from diagnostics.parsers.detect import read_pasted

    readings = read_pasted(fx(name))
    tools = [r.tool for r in readings]
    assert _expected_tool(name) in tools, tools
    mine = next(r for r in readings if r.tool == _expected_tool(name))
    assert not mine.summary.startswith("could not read"), mine.summary
    for r in readings:
        assert r.summary and isinstance(r.skipped_lines, int) and r.skipped_lines >= 0
        assert all(f.severity in ("critical", "error", "warning") and f.message for f in r.findings)


def _findings(name: str, tool: str) -> list[Any]:
    from diagnostics.parsers.detect import read_pasted

    return [f for r in read_pasted(fx(name)) if r.tool == tool for f in r.findings]


@pytest.mark.parametrize(("name", "tool", "gpu", "device", "severity", "words"), [
    ("nvsmi_table_err_power_v100_azhpc77.txt", "nvidia-smi", 1, "00008ED0:00:00.0", "error", "ERR!"),
    ("nvlink_b200_one_gpu_inactive_gpud1085.txt", "nvidia-smi nvlink", 2, None, "critical", "inactive"),
    ("nvlink_v100_two_links_inactive_azhpc73.txt", "nvidia-smi nvlink", 3, None, "critical", "3, 5"),
    ("nvsmi_csv_unknown_error_mindminer627.txt", "nvidia-smi --query-gpu", None, None, "error", "power.default_limit"),
    ("dmesg_fallen_off_bus_wrapped_nvsentinel155.txt", "kernel log", None, "0000:b3:00.0", "critical", "fallen off"),
    ("dmesg_fallen_off_bus_old_bumblebee554.txt", "kernel log", None, "0000:01:00.0", "critical", "fallen off"),
    ("journalctl_xid62_45_trex680.txt", "kernel log", None, "0000:06:00", "critical", "Xid 62"),
    ("ibstat_down_linkup_prompt_mellanox249.txt", "ibstat", None, "mlx5_7/1", "critical", "Down"),
    ("ibv_devinfo_port_down_deepep60.txt", "ibv_devinfo", None, "mlx5_0/1", "critical", "PORT_DOWN"),
    ("df_h_busybox_root_full_ha755.txt", "df", None, "/", "critical", "100%"),
    ("chronyc_7s_slow_omnios2576.txt", "chronyc tracking", None, None, "warning", "slow"),
    ("nccl_old_allgather_failed_with_topo_nccltests37.txt", "nccl-tests", None, None, "critical", "out of bounds"),
    ("scontrol_idle_drain_gres_awsome195.txt", "scontrol show node", None, "yigou-dev-102-68", "warning", "gres/gpu"),
    ("sinfo_drain_prompt_citc11.txt", "sinfo", None, "compute[001-003]", "warning", "drain"),
    ("kubectl_describe_node_gpu_hami477.txt", "kubectl describe node", None, "gpu-000-001", "warning", "70"),
    ("lspci_gpu_rev_ff_shine171.txt", "lspci", None, "1c:00.0", "critical", "rev ff"),
])
def test_read_pasted_reports_what_a_person_sees(name: str, tool: str, gpu: int | None, device: str | None,
                                                severity: str, words: str) -> None:
    found = _findings(name, tool)
    assert any(f.severity == severity and words.lower() in f.message.lower() and (gpu is None or f.gpu == gpu)
               and (device is None or f.device == device) for f in found), found


@pytest.mark.parametrize("name", [
    "nvsmi_table_555_a100x2_noproc_indented.txt", "nvsmi_table_440_p100x8_procs.txt", "nvlink_gb200_all_up_k8s371.txt",
    "topo_dgx_a100_nv12_dcgm149.txt", "nccl_16rank_h100_markdown_ztan.txt", "chronyc_normal_rockstor2098.txt",
    "free_m_proxmox18.txt", "df_h_docker_moby28404.txt", "ibv_devinfo_roce_excerpt_deepep38.txt",
    "nvsmi_q_ecc_555_indented.txt",
])
def test_read_pasted_healthy_pastes_have_no_findings(name: str) -> None:
    from diagnostics.parsers.detect import read_pasted

    assert [f for r in read_pasted(fx(name)) for f in r.findings] == []


def test_read_pasted_summaries_say_what_is_there() -> None:
    from diagnostics.parsers.detect import read_pasted

    (r,) = read_pasted(fx("nvsmi_table_440_p100x8_procs.txt"))
    assert "8 GPU" in r.summary and "440.33.01" in r.summary
    (n,) = read_pasted(fx("nccl_h200_single_row_azure142.txt"))
    assert "480" in n.summary
    tools = {r.tool for r in read_pasted(fx("nccl_old_allgather_failed_with_topo_nccltests37.txt"))}
    assert tools == {"nccl-tests", "nvidia-smi topo -m"}


def test_read_pasted_crlf_and_ansi_read_the_same() -> None:
    from diagnostics.parsers.detect import read_pasted

    for name in ("nvsmi_table_err_power_v100_azhpc77.txt", "df_h_busybox_root_full_ha755.txt",
                 "dmesg_fallen_off_bus_wrapped_nvsentinel155.txt"):
        plain = read_pasted(fx(name))
        crlf = read_pasted(fx(name).replace("\n", "\r\n"))
        ansi = read_pasted(re.sub(r"(?m)^", "\x1b[0m", fx(name)).replace("ERR!", "\x1b[31mERR!\x1b[0m"))
        assert [(r.tool, r.findings) for r in crlf] == [(r.tool, r.findings) for r in plain]
        assert [(r.tool, r.findings) for r in ansi] == [(r.tool, r.findings) for r in plain]


def test_read_pasted_never_raises() -> None:
    from diagnostics.parsers.detect import read_pasted

    for text in ("", "\0" * 100, bytes(range(256)).decode("latin-1") * 50, "hello, can you help?",
                 "| GPU |\n|  0  x | y |\n", "GPU0\tGPU1\nGPU0\t X\n", "Mem: a b c\n", "CA 'x'\n Port 1:\n"):
        assert isinstance(read_pasted(text), list)


def test_read_pasted_cuts_at_ten_megabytes_with_a_note() -> None:
    from diagnostics.parsers.detect import MAX_PASTE_CHARS, read_pasted

    big = fx("df_h_busybox_root_full_ha755.txt") + "x" * (MAX_PASTE_CHARS + 10)
    readings = read_pasted(big)
    assert readings and all("10 MB" in r.summary for r in readings)
    assert any("100%" in f.message for r in readings for f in r.findings)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FIXTURES), st.integers(min_value=0, max_value=4000), st.integers(min_value=0, max_value=4000),
       st.text(max_size=60))
def test_read_pasted_never_raises_on_cut_and_spliced_pastes(name: str, start: int, length: int, junk: str) -> None:
    from diagnostics.parsers.detect import read_pasted

    text = fx(name)
    cut = text[start:start + length] + junk + text[: length // 3]
    readings = read_pasted(cut)
    assert all(r.tool and isinstance(r.findings, list) for r in readings)


# --------------------------------------------------------------------------- what a paste adds


def test_clean_takes_away_what_a_paste_adds_without_moving_lines() -> None:
    text = "```text\r\n    $ df -h\r\n    \x1b[1mFilesystem\x1b[0m Size\r\n```"
    assert clean(text).split("\n") == ["", "$ df -h", "Filesystem Size", ""]
    assert clean("  a\n    b\n") == "a\n  b\n"


@pytest.mark.parametrize(("text", "value"), [
    ("101.4M", 101.4 * 2**20), ("996.0K", 996 * 1024), ("0", 0), ("0B", 0), ("3.6Gi", 3.6 * 2**30),
    ("13119414984Ki", 13119414984 * 1024), ("1.5T", 1.5 * 2**40), ("2PiB", 2 * 2**50), ("7,6G", 7.6 * 2**30),
    ("N/A", None), ("-", None), ("12 apples", None),
])
def test_parse_size(text: str, value: float | None) -> None:
    got = parse_size(text)
    assert got == (pytest.approx(value) if value is not None else None)
