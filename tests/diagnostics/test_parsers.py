"""Parsers over real-format tool output (fixtures copied from the tools' exact formats),
including the odd cases: [N/A], [Not Supported], a lost GPU, truncated output, garbage."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from diagnostics.parsers import ParseError, infiniband, kernel, nccl, nvidia_smi, scheduler, system, train_log
from diagnostics.parsers.common import to_bool, to_float, to_int

FIX = Path(__file__).parent / "fixtures"


def fixture(name: str) -> str:
    return (FIX / name).read_text(encoding="utf-8")


# --------------------------------------------------------------------------- nvidia-smi


def test_query_csv_maps_headers_with_units_to_canonical_names() -> None:
    csv = nvidia_smi.parse_query_csv(fixture("nvidia_smi_query_clocks.csv"))
    assert len(csv.rows) == 8 and not csv.lost
    gpu3 = csv.rows[3]
    assert to_float(gpu3["clocks.sm"]) == 210.0
    assert to_float(gpu3["clocks.max.sm"]) == 1410.0
    assert to_int(gpu3["clocks_event_reasons.active"]) == 0x48
    assert to_float(csv.rows[6]["clocks.applications.gr"]) is None  # [N/A]


def test_query_csv_collects_lost_gpu_and_na_values() -> None:
    csv = nvidia_smi.parse_query_csv(fixture("nvidia_smi_query_lost_gpu.txt"))
    assert [r["index"] for r in csv.rows] == ["0", "1", "2", "4", "5", "6", "7"]
    assert csv.lost == ["0000:5D:00.0"]
    assert nvidia_smi.bus_key(csv.lost[0]) == "5d"
    assert to_int(csv.rows[2]["ecc.errors.uncorrected.volatile.total"]) == 2
    assert to_int(csv.rows[4]["ecc.errors.uncorrected.volatile.total"]) is None


def test_query_csv_noheader_needs_field_list() -> None:
    rows = nvidia_smi.parse_query_csv("0, 1410\n1, 1395\n", ["index", "clocks.current.sm"]).rows
    assert rows[1]["clocks.sm"] == "1395"
    with pytest.raises(ParseError, match="header"):
        nvidia_smi.parse_query_csv("0, 1410\n")


def test_query_csv_truncated_row_is_a_parse_error_naming_the_line() -> None:
    text = fixture("nvidia_smi_query_clocks.csv")
    cut = text[: text.index("4, 00000000:88") + 20]
    with pytest.raises(ParseError) as err:
        nvidia_smi.parse_query_csv(cut)
    assert err.value.line == 6 and "truncated" in str(err.value)


def test_power_csv_with_not_supported() -> None:
    csv = nvidia_smi.parse_query_csv(fixture("nvidia_smi_power_l40s.csv"))
    assert to_bool(csv.rows[1]["clocks_event_reasons.sw_power_cap"]) is True
    assert to_bool(csv.rows[2]["clocks_event_reasons.sw_power_cap"]) is None
    assert to_float(csv.rows[2]["power.draw"]) is None
    assert to_float(csv.rows[1]["enforced.power.limit"]) == 200.0


def test_list_gpus_with_a_lost_one() -> None:
    gpus, lost = nvidia_smi.parse_list(fixture("nvidia_smi_L.txt"))
    assert [g["index"] for g in gpus] == list(range(7))
    assert gpus[0]["name"] == "NVIDIA H100 80GB HBM3"
    assert [nvidia_smi.bus_key(b) for b in lost] == ["db"]


def test_nvlink_status_inactive_links() -> None:
    links = nvidia_smi.parse_nvlink_status(fixture("nvidia_smi_nvlink_status.txt"))
    assert set(links) == {0, 1}
    assert all(v == 25.0 for v in links[0].values()) and len(links[0]) == 12
    assert [k for k, v in links[1].items() if v is None] == [2, 11]


def test_full_query_sections() -> None:
    q = nvidia_smi.parse_query(fixture("nvidia_smi_q.txt"))
    assert q["Driver Version"] == "535.161.08" and q["Attached GPUs"] == "2"
    gpu = q["gpus"]["00000000:07:00.0"]
    assert gpu["Clocks Event Reasons"]["HW Thermal Slowdown"] == "Active"
    assert gpu["Clocks"]["SM"] == "210 MHz"
    assert gpu["PCI"]["GPU Link Info"]["Link Width"]["Current"] == "16x"
    assert gpu["Remapped Rows"]["Pending"] == "No"
    assert gpu["Temperature"]["GPU Slowdown Temp"] == "89 C"
    assert q["gpus"]["00000000:0B:00.0"]["Persistence Mode"] == "Disabled"
    with pytest.raises(ParseError):
        nvidia_smi.parse_query("GPU 0: whatever\n")


def test_version() -> None:
    v = nvidia_smi.parse_version(fixture("nvidia_smi_version.txt"))
    assert v == {"driver": "550.54.15", "cuda": "12.4", "nvml": "550.54"}
    with pytest.raises(ParseError):
        nvidia_smi.parse_version("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")


# --------------------------------------------------------------------------- kernel log, lspci


def test_xids_from_dmesg_T() -> None:
    events = kernel.parse_xids(fixture("dmesg_T_xid.txt"))
    assert [(e.bus, e.xid) for e in events] == [
        ("0000:4c:00", 13), ("0000:4c:00", 13), ("0000:8b:00", 48), ("0000:8b:00", 63), ("0000:cb:00", 79)]
    assert events[2].process == "python" and events[2].pid == "101244"
    assert events[4].pid == "<unknown>" and events[4].message == "GPU has fallen off the bus."
    assert events[0].stamp == "Wed Mar 13 02:41:17 2024"


def test_xids_from_journalctl() -> None:
    events = kernel.parse_xids(fixture("journalctl_k_xid.txt"))
    assert [e.xid for e in events] == [31, 94]
    assert events[1].process == "pt_main_thread" and events[1].stamp == "Mar 14 09:12:40"


def test_truncated_xid_line_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="malformed Xid"):
        kernel.parse_xids(fixture("dmesg_truncated_xid.txt"))


def test_oom_kills() -> None:
    kills = kernel.parse_ooms(fixture("dmesg_T_xid.txt"))
    assert [(k.pid, k.process) for k in kills] == [(77421, "python")]


def test_lspci_marks_lost_device() -> None:
    devices = kernel.parse_lspci(fixture("lspci_gpus_lost.txt"))
    assert len(devices) == 8
    assert [d.address for d in devices if d.lost] == ["db:00.0"]
    with pytest.raises(ParseError):
        kernel.parse_lspci("this is not lspci\n")


# --------------------------------------------------------------------------- InfiniBand


def test_ibstat_states_and_rates() -> None:
    ports = infiniband.parse_ibstat(fixture("ibstat.txt"))
    assert [(p.hca, p.state, p.rate_gbps) for p in ports] == [
        ("mlx5_0", "Active", 200.0), ("mlx5_1", "Down", 10.0), ("mlx5_2", "Active", 100.0), ("mlx5_3", "Active", 200.0)]
    assert ports[1].physical_state == "Disabled" and not ports[1].active


def test_ibstat_truncated_port() -> None:
    text = fixture("ibstat.txt")
    cut = text[: text.index("Port 1:") + len("Port 1:")]
    with pytest.raises(ParseError, match="State"):
        infiniband.parse_ibstat(cut)


def test_ibv_devinfo() -> None:
    ports = infiniband.parse_ibv_devinfo(fixture("ibv_devinfo.txt"))
    assert [(p.hca, p.state, p.active) for p in ports] == [("mlx5_0", "PORT_ACTIVE", True), ("mlx5_1", "PORT_DOWN", False)]
    assert infiniband.parse_ibv_devinfo("No IB devices found\n") == []


# --------------------------------------------------------------------------- system


def test_df_blocks_and_mounts_with_spaces() -> None:
    unit, rows = system.parse_df(fixture("df_P.txt"))
    assert unit == "1024-blocks"
    by_mount = {r.mount: r for r in rows}
    assert by_mount["/data"].use_pct == 99
    assert "/mnt/shared home" in by_mount
    _u, irows = system.parse_df(fixture("df_Pi.txt"))
    inodes = {r.mount: r for r in irows}
    assert inodes["/data"].use_pct == 100 and inodes["/mnt/shared home"].use_pct is None


def test_df_garbage() -> None:
    with pytest.raises(ParseError):
        system.parse_df("df: /nope: No such file or directory\n")
    with pytest.raises(ParseError, match="6 columns"):
        system.parse_df("Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/sda1 100 50\n")


def test_free_loadavg_nproc() -> None:
    mem = system.parse_free(fixture("free_m.txt"))
    assert (mem.total, mem.available, mem.swap_total) == (2063750, 20002, 0)
    assert system.parse_loadavg(fixture("loadavg.txt")) == (412.37, 398.02, 350.11)
    assert system.parse_nproc("128\n") == 128
    for bad, fn in (("x", system.parse_nproc), ("1.0", system.parse_loadavg), ("Swap: 1 2", system.parse_free)):
        with pytest.raises(ParseError):
            fn(bad)


def test_governors() -> None:
    assert system.parse_governors(fixture("governors_mixed.txt")) == {"performance": 2, "powersave": 2}
    path_prefixed = "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor:schedutil\n"
    assert system.parse_governors(path_prefixed) == {"schedutil": 1}
    with pytest.raises(ParseError):
        system.parse_governors("turbo\n")


def test_chronyc() -> None:
    bad = system.parse_chronyc_tracking(fixture("chronyc_tracking_unsynced.txt"))
    assert bad.offset_s == pytest.approx(4.20187312) and bad.leap_status == "Not synchronised"
    good = system.parse_chronyc_tracking(fixture("chronyc_tracking_ok.txt"))
    assert good.offset_s == pytest.approx(-0.000005212) and good.stratum == 4
    with pytest.raises(ParseError, match="506"):
        system.parse_chronyc_tracking("506 Cannot talk to daemon\n")


def test_ping() -> None:
    stats = system.parse_ping(fixture("ping_q.txt"))
    assert (stats.target, stats.received, stats.rtt_avg_ms) == ("node-07", 5, 5.062)
    lost = system.parse_ping(fixture("ping_loss.txt"))
    assert lost.received == 0 and lost.loss_pct == 100.0 and lost.rtt_avg_ms is None
    with pytest.raises(ParseError):
        system.parse_ping("PING node-07 (10.0.0.17) 56(84) bytes of data.\n64 bytes from")


def test_ps_and_is_active() -> None:
    procs = system.parse_ps(fixture("ps_hog.txt"))
    assert procs[0].command == "xz" and procs[0].cpu_pct == 6400.0
    assert system.parse_is_active("failed\n") == ["failed"]
    with pytest.raises(ParseError):
        system.parse_is_active("maybe\n")


# --------------------------------------------------------------------------- NCCL, schedulers, job log


def test_environ_and_rules() -> None:
    env = nccl.parse_environ((FIX / "proc_environ.bin").read_text())
    assert env["NCCL_IB_DISABLE"] == "1" and env["HOME"] == "/home/train"
    issues = {i.var: i for i in nccl.assess_nccl_env({k: v for k, v in env.items() if k.startswith("NCCL_")})}
    assert set(issues) == {"NCCL_IB_DISABLE", "NCCL_P2P_DISABLE"}
    assert issues["NCCL_IB_DISABLE"].effect == "tcp"
    assert nccl.assess_nccl_env({"NCCL_DEBUG": "INFO", "NCCL_IB_HCA": "mlx5"}) == []
    assert nccl.nccl_env_effects({"NCCL_NET": "Socket", "NCCL_MAX_NCHANNELS": "1"}) == {"tcp": 0.05, "channels": 0.25}
    with pytest.raises(ParseError):
        nccl.parse_environ("not an environment at all")


def test_all_reduce_perf_table() -> None:
    result = nccl.parse_all_reduce_perf(fixture("all_reduce_perf.txt"))
    assert len(result.rows) == 8 and result.n_gpus == 8
    assert result.avg_busbw_gbs == pytest.approx(166.992)
    assert result.peak_busbw_gbs == pytest.approx(196.81)
    assert result.rows[0].size_bytes == 8388608 and result.rows[-1].wrong == 0


def test_all_reduce_perf_truncated() -> None:
    text = fixture("all_reduce_perf.txt")
    cut = text[: text.index("   134217728") + 40]
    with pytest.raises(ParseError, match="13 columns"):
        nccl.parse_all_reduce_perf(cut)


def test_schedulers() -> None:
    node = scheduler.parse_sinfo_nodes(fixture("sinfo_node.txt"))[0]
    assert (node.name, node.state, node.reason) == ("node-05", "drained", "clusterdoc: gpu 3 throttled to 200 MHz")
    k8s = scheduler.parse_kubectl_nodes(fixture("kubectl_node.txt"))[0]
    assert (k8s.name, k8s.state) == ("node-12", "drained")
    assert scheduler.parse_sinfo_nodes("node-01 mixed none\n")[0].state == "schedulable"
    assert scheduler.parse_sinfo_nodes("node-01 draining maint\n")[0].state == "draining"
    with pytest.raises(ParseError):
        scheduler.parse_sinfo_nodes("")


def test_train_log() -> None:
    records, errors = train_log.parse_step_log(fixture("train_log.txt"))
    assert len(records) == 8 and len(errors) == 1
    slow = [r for r in records if r.compute_s and r.compute_s > 4]
    assert {(r.rank, r.local_rank) for r in slow} == {(9, 1)}
    with pytest.raises(ParseError):
        train_log.parse_step_log("2024 INFO step=1 rank=2 step_time_s=abc\n")


# --------------------------------------------------------------------------- garbage never crashes

GARBAGE = ["", "\0\0\0", "ÿþ garbage ☃\n" * 3, "a,b,c\n1,2\n", "-" * 500, "Port 1:\nState: Active\n",
           "CA 'x'\n\tfoo\n", "[N/A]\n", "index\n[Not Supported]\n", "hca_id:\n", "#\n# Avg bus bandwidth : x\n"]
PARSERS = [
    nvidia_smi.parse_query_csv, nvidia_smi.parse_list, nvidia_smi.parse_nvlink_status, nvidia_smi.parse_query,
    nvidia_smi.parse_version, kernel.parse_xids, kernel.parse_ooms, kernel.parse_lspci, infiniband.parse_ibstat,
    infiniband.parse_ibv_devinfo, system.parse_df, system.parse_free, system.parse_loadavg, system.parse_nproc,
    system.parse_governors, system.parse_chronyc_tracking, system.parse_ping, system.parse_ps,
    system.parse_is_active, nccl.parse_environ, nccl.parse_all_reduce_perf, scheduler.parse_sinfo_nodes,
    scheduler.parse_scontrol_node, scheduler.parse_kubectl_nodes, train_log.parse_step_log,
    nvidia_smi.parse_table, nvidia_smi.parse_topo, nvidia_smi.parse_nvlink, kernel.parse_fallen_off_bus,
    scheduler.parse_sinfo, scheduler.parse_kubectl_describe_node,
]


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: f"{p.__module__.rsplit('.', 1)[-1]}.{p.__name__}")
def test_garbage_raises_only_parse_error(parser: object) -> None:
    for text in GARBAGE:
        with contextlib.suppress(ParseError):
            parser(text)  # type: ignore[operator]
