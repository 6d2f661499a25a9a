"""The closed vocabularies a knowledge record is validated against.

Tool names and fault kinds are read from diagnostics (the registry and the scenario format), so a
record can never name a tool the toolkit does not have; only the kb's own vocabularies (categories,
splits, origins, the fault -> category table) are defined here.
"""

from __future__ import annotations

from diagnostics.checks import CHECKS
from diagnostics.scenario import REMEDIATIONS

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

# Tool names come from the registry itself (one source of truth): a record's `function` may name
# any read-only check and any remediation action the toolkit declares.
CHECK_TOOLS: tuple[str, ...] = tuple(spec.name for spec in CHECKS)
ACTION_TOOLS: tuple[str, ...] = REMEDIATIONS

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
