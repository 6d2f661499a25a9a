"""A node's GPU metrics in dcgm-exporter's Prometheus text format (default counters plus the
clock-event-reason, ECC and power-limit fields clusterdoc's detectors read)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator.state import NodeState

if TYPE_CHECKING:
    from simulator.cluster import SimCluster

# (field, type, help) in the order and wording of dcgm-exporter's etc/default-counters.csv
METRICS: tuple[tuple[str, str, str], ...] = (
    ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz)."),
    ("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz)."),
    ("DCGM_FI_DEV_MEMORY_TEMP", "gauge", "Memory temperature (in C)."),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C)."),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W)."),
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "Total energy consumption since boot (in mJ)."),
    ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "Total number of PCIe retries."),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %)."),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %)."),
    ("DCGM_FI_DEV_ENC_UTIL", "gauge", "Encoder utilization (in %)."),
    ("DCGM_FI_DEV_DEC_UTIL", "gauge", "Decoder utilization (in %)."),
    ("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered."),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB)."),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB)."),
    ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "counter", "Total number of single-bit volatile ECC errors."),
    ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "counter", "Total number of double-bit volatile ECC errors."),
    ("DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "counter", "Total number of NVLink bandwidth counters for all lanes"),
    ("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "counter", "Number of remapped rows for uncorrectable errors"),
    ("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "counter", "Number of remapped rows for correctable errors"),
    ("DCGM_FI_DEV_ROW_REMAP_FAILURE", "gauge", "Whether remapping of rows has failed"),
    ("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "gauge", "Current clock throttle reasons."),
    ("DCGM_FI_DEV_POWER_MGMT_LIMIT", "gauge", "Current power limit for the device (in W)."),
)


def _labels(sim: SimCluster, node: NodeState, gpu_index: int, uuid: str, bus: str) -> str:
    model = f"NVIDIA {node.gpu_spec.name}"
    return (
        f'gpu="{gpu_index}",UUID="{uuid}",pci_bus_id="{bus}",device="nvidia{gpu_index}",'
        f'modelName="{model}",Hostname="{node.name}",DCGM_FI_DRIVER_VERSION="{node.driver_version}"'
    )


def render_metrics(sim: SimCluster, node: NodeState) -> str:
    rows: dict[str, list[str]] = {name: [] for name, _t, _h in METRICS}
    uptime = sim.time_s + sim.uptime_offset_s
    spec = node.gpu_spec
    for g in node.gpus:
        if not g.present:
            continue  # DCGM loses the device with the bus
        r = sim.reading(node, g)
        lab = _labels(sim, node, g.index, g.uuid, g.pci_bus_id)
        values: dict[str, float | int] = {
            "DCGM_FI_DEV_SM_CLOCK": int(r.sm_mhz),
            "DCGM_FI_DEV_MEM_CLOCK": int(r.mem_mhz),
            "DCGM_FI_DEV_MEMORY_TEMP": int(r.mem_temp_c),
            "DCGM_FI_DEV_GPU_TEMP": int(r.temp_c),
            "DCGM_FI_DEV_POWER_USAGE": round(r.power_w, 3),
            "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": int(uptime * r.power_w * 1000),
            "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": g.pcie_replays,
            "DCGM_FI_DEV_GPU_UTIL": int(r.util_pct),
            "DCGM_FI_DEV_MEM_COPY_UTIL": int(r.mem_util_pct),
            "DCGM_FI_DEV_ENC_UTIL": 0,
            "DCGM_FI_DEV_DEC_UTIL": 0,
            "DCGM_FI_DEV_XID_ERRORS": g.last_xid,
            "DCGM_FI_DEV_FB_FREE": int(spec.hbm_gb * 1024 - 565 - r.fb_used_mib),
            "DCGM_FI_DEV_FB_USED": int(r.fb_used_mib),
            "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": g.ecc_sbe_volatile,
            "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": g.ecc_dbe_volatile,
            "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL": int(uptime * 1e6 * sum(g.nvlink_up)) if node.job_running else 0,
            "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": g.remap_uncorrectable,
            "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": g.remap_correctable,
            "DCGM_FI_DEV_ROW_REMAP_FAILURE": int(g.remap_failure),
            "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS": r.reason_mask,
            "DCGM_FI_DEV_POWER_MGMT_LIMIT": round(g.power_limit_w, 3),
        }
        for name, value in values.items():
            rows[name].append(f"{name}{{{lab}}} {value}")
    out: list[str] = []
    for name, typ, help_text in METRICS:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {typ}")
        out.extend(rows[name])
    return "\n".join(out) + "\n"
