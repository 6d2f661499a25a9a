"""The closed vocabularies a knowledge record is validated against.

kb is a leaf package, so it cannot import the diagnostics registry; these names are copied from
docs/CONTRACTS.md (tool names) and formats/scenario.md (fault kinds) and a test keeps them in step
with the registry whenever the registry defines them.
"""

from __future__ import annotations

CATEGORIES: tuple[str, ...] = (
    "network",
    "gpu_hardware",
    "thermal_power",
    "memory",
    "storage",
    "software_version",
    "configuration",
    "scheduler",
)

ORIGINS: tuple[str, ...] = ("seed", "incident")
SPLITS: tuple[str, ...] = ("perceivable", "benchmark")

CHECK_TOOLS: tuple[str, ...] = (
    "gpu_clocks",
    "gpu_power",
    "gpu_temperature",
    "gpu_ecc",
    "gpu_row_remap",
    "gpu_xid",
    "gpu_pcie",
    "gpu_nvlink",
    "gpu_count",
    "gpu_persistence",
    "ib_ports",
    "ib_devinfo",
    "nccl_env",
    "net_latency",
    "nccl_allreduce",
    "disk_usage",
    "shm_size",
    "memory_oom",
    "cpu_load",
    "cpu_governor",
    "clock_sync",
    "versions",
    "reachability",
    "job_step_times",
)

ACTION_TOOLS: tuple[str, ...] = (
    "reset_gpu_clocks",
    "restore_power_limit",
    "enable_persistence_mode",
    "reset_gpu",
    "drain_node",
    "resume_node",
    "clean_shm",
    "restart_service",
)

TOOL_NAMES: frozenset[str] = frozenset(CHECK_TOOLS + ACTION_TOOLS)

# fault kind -> (category, components, checks that show it)
FAULTS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "gpu_clock_throttle": ("thermal_power", ("gpu", "nvidia-driver"), ("gpu_clocks", "job_step_times")),
    "gpu_power_cap": ("thermal_power", ("gpu",), ("gpu_power", "gpu_clocks")),
    "gpu_thermal": ("thermal_power", ("gpu", "cooling"), ("gpu_temperature", "gpu_clocks")),
    "gpu_ecc_uncorrectable": ("gpu_hardware", ("gpu", "hbm"), ("gpu_ecc", "gpu_xid")),
    "gpu_row_remap_pending": ("gpu_hardware", ("gpu", "hbm"), ("gpu_row_remap", "gpu_ecc")),
    "gpu_xid": ("gpu_hardware", ("gpu", "nvidia-driver"), ("gpu_xid",)),
    "gpu_fallen_off_bus": ("gpu_hardware", ("gpu", "pcie"), ("gpu_count", "gpu_xid")),
    "nvlink_down": ("gpu_hardware", ("gpu", "nvlink"), ("gpu_nvlink", "nccl_allreduce")),
    "pcie_downgrade": ("gpu_hardware", ("gpu", "pcie"), ("gpu_pcie",)),
    "ib_port_down": ("network", ("infiniband", "nccl"), ("ib_ports", "ib_devinfo")),
    "ib_link_degraded": ("network", ("infiniband", "nccl"), ("ib_ports", "nccl_allreduce")),
    "nccl_env_misconfig": ("configuration", ("nccl",), ("nccl_env", "nccl_allreduce")),
    "disk_full": ("storage", ("filesystem", "checkpointing"), ("disk_usage",)),
    "shm_too_small": ("memory", ("shm", "dataloader", "nccl"), ("shm_size",)),
    "host_oom": ("memory", ("host-memory", "oom-killer"), ("memory_oom",)),
    "cpu_overload": ("configuration", ("cpu",), ("cpu_load",)),
    "cpu_governor_powersave": ("configuration", ("cpu",), ("cpu_governor",)),
    "driver_mismatch": ("software_version", ("nvidia-driver", "cuda"), ("versions",)),
    "clock_skew": ("configuration", ("ntp",), ("clock_sync",)),
    "network_latency": ("network", ("ethernet", "nccl"), ("net_latency", "nccl_allreduce")),
    "node_unreachable": ("network", ("ssh",), ("reachability",)),
}

FAULT_KINDS: frozenset[str] = frozenset(FAULTS)

# Filter keys a search accepts, and the record field each one tests.
FILTER_KEYS: tuple[str, ...] = ("category", "component", "split", "origin", "fault")
