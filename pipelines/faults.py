"""What the agent knows about fault kinds: which checks reveal them, which symptoms hint at them,
which faults explain which other findings, and which registry actions repair them.

These tables are the agent's domain knowledge in data form. They use the stable fault-kind names of
formats/scenario.md and the registry tool names of docs/CONTRACTS.md.
"""

from __future__ import annotations

FAULT_KINDS: tuple[str, ...] = (
    "gpu_clock_throttle", "gpu_power_cap", "gpu_thermal", "gpu_ecc_uncorrectable", "gpu_row_remap_pending",
    "gpu_xid", "gpu_fallen_off_bus", "nvlink_down", "pcie_downgrade", "ib_port_down", "ib_link_degraded",
    "nccl_env_misconfig", "disk_full", "shm_too_small", "host_oom", "cpu_overload", "cpu_governor_powersave",
    "driver_mismatch", "clock_skew", "network_latency", "node_unreachable",
)
# Findings that are symptoms, not root causes: they point at where to look, they never end a diagnosis.
SYMPTOM_KINDS: frozenset[str] = frozenset({"slow_rank", "slow_job", "low_bus_bandwidth", "straggler"})
# Findings that are faults outside the scenario table but still actionable.
EXTRA_FAULT_KINDS: tuple[str, ...] = ("persistence_mode_off",)

# fault kind -> read-only checks that establish it (first: the cheapest decisive one)
FAULT_CHECKS: dict[str, tuple[str, ...]] = {
    "gpu_clock_throttle": ("gpu_clocks",),
    "gpu_power_cap": ("gpu_power",),
    "gpu_thermal": ("gpu_temperature",),
    "gpu_ecc_uncorrectable": ("gpu_ecc", "gpu_xid"),
    "gpu_row_remap_pending": ("gpu_row_remap",),
    "gpu_xid": ("gpu_xid",),
    "gpu_fallen_off_bus": ("gpu_count", "gpu_xid"),
    "nvlink_down": ("gpu_nvlink",),
    "pcie_downgrade": ("gpu_pcie",),
    "ib_port_down": ("ib_ports", "ib_devinfo"),
    "ib_link_degraded": ("ib_ports",),
    "nccl_env_misconfig": ("nccl_env",),
    "disk_full": ("disk_usage",),
    "shm_too_small": ("shm_size",),
    "host_oom": ("memory_oom",),
    "cpu_overload": ("cpu_load",),
    "cpu_governor_powersave": ("cpu_governor",),
    "driver_mismatch": ("versions",),
    "clock_skew": ("clock_sync",),
    "network_latency": ("net_latency",),
    "node_unreachable": ("reachability",),
    "persistence_mode_off": ("gpu_persistence",),
}

# Symptom vocabulary: regex (matched case-insensitively on the alert/log) -> {fault: weight}.
# Weights are priors for choosing what to check first, never evidence.
SYMPTOMS: tuple[tuple[str, dict[str, float]], ...] = (
    (r"step[- ]?time|slow(er|down|ed)?\b|throughput|tokens?/s|samples?/s|iteration time|\d+(\.\d+)?x\b|mfu|tflops",
     {"gpu_clock_throttle": 1.0, "gpu_power_cap": 0.7, "gpu_thermal": 0.7, "ib_link_degraded": 0.4,
      "nccl_env_misconfig": 0.4, "network_latency": 0.35, "pcie_downgrade": 0.3, "cpu_governor_powersave": 0.25,
      "cpu_overload": 0.25, "nvlink_down": 0.3, "ib_port_down": 0.3}),
    (r"thermal|temperature|overheat|\bhot\b|hvac|cooling|fan\b|°c|degrees", {"gpu_thermal": 1.0, "gpu_clock_throttle": 0.8}),
    (r"clock|mhz|throttl", {"gpu_clock_throttle": 1.0, "gpu_thermal": 0.3, "gpu_power_cap": 0.4}),
    (r"power|watt|\bpl\b|power[- ]cap|power limit", {"gpu_power_cap": 1.0, "gpu_clock_throttle": 0.3}),
    (r"\becc\b|double[- ]bit|uncorrectable|dbe\b|xid[^0-9]{0,20}48\b", {"gpu_ecc_uncorrectable": 1.0, "gpu_xid": 0.5}),
    (r"row[- ]?remap|remapp", {"gpu_row_remap_pending": 1.0}),
    (r"\bxid\b|nvrm", {"gpu_xid": 1.0, "gpu_fallen_off_bus": 0.4, "gpu_ecc_uncorrectable": 0.3}),
    (r"fallen off the bus|fell off the bus|xid[^0-9]{0,20}79\b|gpu (is )?lost|no devices were found|unable to determine the device handle",
     {"gpu_fallen_off_bus": 1.2, "gpu_xid": 0.4}),
    (r"nvlink|nvswitch|fabric ?manager", {"nvlink_down": 1.0}),
    (r"pcie|pci-e|link width|gen ?[1-5]\b|aer\b", {"pcie_downgrade": 1.0}),
    (r"infiniband|\bib\b|mlx5|ibstat|hca|rdma|ibv_|port (state )?down|linkdown|completion with error|net/ib",
     {"ib_port_down": 1.0, "ib_link_degraded": 0.8}),
    (r"nccl|all[- ]?reduce|collective|bus ?bw|busbw|net/socket|ib_disable|ncc?l_", {"nccl_env_misconfig": 0.9, "ib_port_down": 0.5, "ib_link_degraded": 0.5, "network_latency": 0.3}),
    (r"timeout|timed out|watchdog|hang|stuck", {"network_latency": 0.4, "ib_port_down": 0.4, "nccl_env_misconfig": 0.3, "node_unreachable": 0.3}),
    (r"latency|\brtt\b|ping|packet loss", {"network_latency": 1.0}),
    (r"no space left|disk (is )?full|filesystem full|checkpoint.*(fail|error)|enospc|quota", {"disk_full": 1.0, "shm_too_small": 0.4}),
    (r"/dev/shm|shared memory|\bshm\b|bus error|sigbus|dataloader worker", {"shm_too_small": 1.0}),
    (r"\boom\b|out of memory|oom[- ]kill|killed process|cannot allocate memory|memory cgroup", {"host_oom": 1.0}),
    (r"load average|cpu (usage|load)|\bhog\b|high load|cpu-bound|run queue", {"cpu_overload": 1.0}),
    (r"governor|powersave|cpufreq|cpu freq", {"cpu_governor_powersave": 1.0}),
    (r"driver version|driver/library version mismatch|cuda driver version is insufficient|version mismatch|nvml.*mismatch",
     {"driver_mismatch": 1.0}),
    (r"clock skew|\bntp\b|chrony|time (is )?(out of sync|drift)|offset", {"clock_skew": 1.0}),
    (r"unreachable|not responding|no route to host|connection (refused|timed out)|ssh.*(timeout|fail)|node (is )?down|heartbeat",
     {"node_unreachable": 1.0}),
    (r"persistence", {"persistence_mode_off": 1.0}),
)

# When a finding of kind A and one of kind B sit on the same GPU (or node), A explains B:
# B's evidence supports A instead of competing with it (a power cap lowers clocks, not vice versa).
EXPLAINS: dict[str, frozenset[str]] = {
    "gpu_power_cap": frozenset({"gpu_clock_throttle"}),
    "gpu_thermal": frozenset({"gpu_clock_throttle"}),
    "gpu_ecc_uncorrectable": frozenset({"gpu_xid", "gpu_row_remap_pending"}),
    "gpu_row_remap_pending": frozenset({"gpu_xid"}),
    "gpu_fallen_off_bus": frozenset({"gpu_xid", "nvlink_down", "pcie_downgrade", "gpu_clock_throttle", "gpu_power_cap",
                                     "gpu_thermal", "gpu_ecc_uncorrectable", "persistence_mode_off"}),
    "ib_port_down": frozenset({"ib_link_degraded", "low_bus_bandwidth", "network_latency"}),
    "nccl_env_misconfig": frozenset({"low_bus_bandwidth"}),
    "node_unreachable": frozenset(FAULT_KINDS) - {"node_unreachable"},
    "host_oom": frozenset({"cpu_overload"}),
}

# Remediation plans: fault -> ordered proposals, each a list of (action, params-from-cause).
# "gpu" in a params tuple means: the cause's GPU index. Second and later plans are alternatives
# (e.g. drain the node if a clock reset does not hold).
REMEDIATIONS: dict[str, tuple[tuple[tuple[str, tuple[str, ...]], ...], ...]] = {
    "gpu_clock_throttle": ((("reset_gpu_clocks", ("gpu",)),), (("drain_node", ()),)),
    "gpu_power_cap": ((("restore_power_limit", ("gpu",)),),),
    "gpu_thermal": ((("drain_node", ()),),),
    "gpu_ecc_uncorrectable": ((("drain_node", ()), ("reset_gpu", ("gpu",))),),
    "gpu_row_remap_pending": ((("drain_node", ()), ("reset_gpu", ("gpu",))),),
    "gpu_xid": ((("drain_node", ()), ("reset_gpu", ("gpu",))),),
    "gpu_fallen_off_bus": ((("drain_node", ()),),),
    "nvlink_down": ((("drain_node", ()), ("reset_gpu", ("gpu",))),),
    "pcie_downgrade": ((("drain_node", ()),),),
    "ib_port_down": ((("drain_node", ()),),),
    "ib_link_degraded": ((("drain_node", ()),),),
    "nccl_env_misconfig": ((("drain_node", ()),),),
    "disk_full": ((("drain_node", ()),),),
    "shm_too_small": ((("clean_shm", ()),), (("drain_node", ()),)),
    "host_oom": ((("drain_node", ()),),),
    "cpu_overload": ((("drain_node", ()),),),
    "cpu_governor_powersave": ((("drain_node", ()),),),
    "driver_mismatch": ((("drain_node", ()),),),
    "clock_skew": ((("restart_service", ("service=chronyd",)),), (("drain_node", ()),)),
    "network_latency": ((("drain_node", ()),),),
    "node_unreachable": ((("drain_node", ()),),),
    "persistence_mode_off": ((("enable_persistence_mode", ("gpu",)),),),
}

# Pre-planned runbooks (the method's "pre-plan" ablation): alert type -> checks, all run in order.
RUNBOOKS: dict[str, tuple[str, ...]] = {
    "performance": ("job_step_times", "gpu_clocks", "gpu_power", "gpu_temperature", "gpu_pcie", "gpu_nvlink",
                    "ib_ports", "nccl_env", "cpu_load", "cpu_governor", "net_latency"),
    "gpu_error": ("gpu_xid", "gpu_ecc", "gpu_row_remap", "gpu_count", "gpu_nvlink", "gpu_pcie", "gpu_temperature"),
    "network": ("ib_ports", "ib_devinfo", "nccl_env", "net_latency", "reachability"),
    "storage": ("disk_usage", "shm_size"),
    "memory": ("memory_oom", "shm_size", "cpu_load"),
    "node": ("reachability", "clock_sync", "versions", "cpu_load"),
}
RUNBOOK_OF_FAULT: dict[str, str] = {
    "gpu_clock_throttle": "performance", "gpu_power_cap": "performance", "gpu_thermal": "performance",
    "cpu_governor_powersave": "performance", "cpu_overload": "performance", "pcie_downgrade": "performance",
    "gpu_ecc_uncorrectable": "gpu_error", "gpu_row_remap_pending": "gpu_error", "gpu_xid": "gpu_error",
    "gpu_fallen_off_bus": "gpu_error", "nvlink_down": "gpu_error", "ib_port_down": "network",
    "ib_link_degraded": "network", "nccl_env_misconfig": "network", "network_latency": "network",
    "disk_full": "storage", "shm_too_small": "storage", "host_oom": "memory", "driver_mismatch": "node",
    "clock_skew": "node", "node_unreachable": "node", "persistence_mode_off": "gpu_error",
}


# Faults of one GPU: a finding without a GPU index is localized with the fault's other checks.
GPU_LEVEL_FAULTS: frozenset[str] = frozenset({
    "gpu_clock_throttle", "gpu_power_cap", "gpu_thermal", "gpu_ecc_uncorrectable", "gpu_row_remap_pending",
    "gpu_xid", "gpu_fallen_off_bus", "nvlink_down", "pcie_downgrade", "persistence_mode_off",
})
# Faults that stop jobs outright (crashes, hangs, lost nodes) outrank ones that only slow them
# when nothing else separates two candidates.
DISRUPTIVE_FAULTS: frozenset[str] = frozenset({
    "gpu_ecc_uncorrectable", "gpu_row_remap_pending", "gpu_xid", "gpu_fallen_off_bus", "nvlink_down",
    "ib_port_down", "disk_full", "shm_too_small", "host_oom", "node_unreachable", "driver_mismatch",
})
# Checks whose findings come from comparing nodes (driver_mismatch): always run on every host.
FLEET_TOOLS: frozenset[str] = frozenset({"versions"})
# A host is called unreachable after this many timeouts/refusals with no answer at all.
UNREACHABLE_AFTER = 2


def is_fault(kind: str) -> bool:
    return kind in FAULT_KINDS or kind in EXTRA_FAULT_KINDS


def checks_for(fault: str) -> tuple[str, ...]:
    return FAULT_CHECKS.get(fault, ())
