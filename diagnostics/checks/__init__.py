"""The read-only checks of the registry (the whitelist's "look" half), one module per domain:

- ``gpu``: clocks, power, temperature, ECC, row remapping, Xid, PCIe, NVLink, GPU count, persistence
- ``network``: ibstat / ibv_devinfo ports, the job's NCCL environment, latency, all-reduce bandwidth
- ``host``: disk, /dev/shm, memory/OOM, CPU load and governor, clock sync, versions, reachability,
  systemd services
- ``job``: per-rank step times from the training log
- ``scheduler``: the node's state in Slurm / Kubernetes
- ``_common``: the parse guard and helpers they share

Each check is data: a ``ToolSpec`` with its typed params, the exact command lines it runs and
a parser. Parsers read the real tools' output through ``diagnostics.parsers`` and turn it into
``Finding``s whose ``kind`` is the fault kind of formats/scenario.md they are evidence of, with
the numbers behind them in ``data``. A parser never raises for a node's misbehaviour: output
it cannot read becomes status error (the toolkit keeps the raw text), a missing tool or device
becomes status no_data.

GPU params filter the parsed output; commands always query every GPU, so one template serves
both "this GPU" and "all GPUs" and nothing optional is ever spliced into a command line.

This package re-exports every name the former ``diagnostics/checks.py`` module exported.
"""

from __future__ import annotations

from diagnostics.checks._common import (
    GPU_QUERY,
    LSPCI_GPUS,
    _check,
    _guard,
    _no_tool,
    _only_message,
    _result,
)
from diagnostics.checks.gpu import (
    APP_CLOCK_RATIO_MIN,
    BUSY_UTIL_PCT,
    CLOCK_RATIO_MIN,
    CRITICAL_XIDS,
    GPU_CHECKS,
    IDLE_BIT,
    POWER_LIMIT_MIN_RATIO,
    TEMP_WARN_C,
    THROTTLE_REASON_BITS,
    parse_gpu_clocks,
    parse_gpu_count,
    parse_gpu_ecc,
    parse_gpu_nvlink,
    parse_gpu_pcie,
    parse_gpu_persistence,
    parse_gpu_power,
    parse_gpu_row_remap,
    parse_gpu_temperature,
    parse_gpu_xid,
)
from diagnostics.checks.host import (
    CLOCK_SKEW_MAX_S,
    DISK_FULL_PCT,
    HOST_CHECKS,
    IGNORED_FS_PREFIXES,
    INODE_FULL_PCT,
    LOAD_PER_CPU_MAX,
    MEM_AVAILABLE_MIN_RATIO,
    SERVICE_CHECKS,
    SERVICES,
    SHM_MIN_FREE_MB,
    parse_clock_sync,
    parse_cpu_governor,
    parse_cpu_load,
    parse_disk_usage,
    parse_memory_oom,
    parse_reachability,
    parse_service_status,
    parse_shm_size,
    parse_versions,
)
from diagnostics.checks.job import JOB_CHECKS, SLOW_RANK_RATIO, TRAIN_LOG, parse_job_step_times
from diagnostics.checks.network import (
    BUSBW_MIN_RATIO,
    LATENCY_MAX_MS,
    NETWORK_CHECKS,
    parse_ib_devinfo,
    parse_ib_ports,
    parse_nccl_allreduce,
    parse_nccl_env,
    parse_net_latency,
)
from diagnostics.checks.scheduler import SCHEDULER_CHECKS, parse_node_state
from diagnostics.health_checks import HEALTH_CHECKS
from diagnostics.registry import ToolSpec

__all__ = [
    "APP_CLOCK_RATIO_MIN", "BUSBW_MIN_RATIO", "BUSY_UTIL_PCT", "CHECKS", "CHECKS_BY_NAME", "CLOCK_RATIO_MIN",
    "CLOCK_SKEW_MAX_S", "CRITICAL_XIDS", "DISK_FULL_PCT", "GPU_QUERY", "HEALTH_CHECKS", "IDLE_BIT",
    "IGNORED_FS_PREFIXES", "INODE_FULL_PCT", "LATENCY_MAX_MS", "LOAD_PER_CPU_MAX", "LSPCI_GPUS",
    "MEM_AVAILABLE_MIN_RATIO", "POWER_LIMIT_MIN_RATIO", "SERVICES", "SHM_MIN_FREE_MB", "SLOW_RANK_RATIO",
    "TEMP_WARN_C", "THROTTLE_REASON_BITS", "TRAIN_LOG", "_check", "_guard", "_no_tool", "_only_message", "_result",
    "parse_clock_sync", "parse_cpu_governor", "parse_cpu_load", "parse_disk_usage", "parse_gpu_clocks",
    "parse_gpu_count", "parse_gpu_ecc", "parse_gpu_nvlink", "parse_gpu_pcie", "parse_gpu_persistence",
    "parse_gpu_power", "parse_gpu_row_remap", "parse_gpu_temperature", "parse_gpu_xid", "parse_ib_devinfo",
    "parse_ib_ports", "parse_job_step_times", "parse_memory_oom", "parse_nccl_allreduce", "parse_nccl_env",
    "parse_net_latency", "parse_node_state", "parse_reachability", "parse_service_status", "parse_shm_size",
    "parse_versions",
]

# the order of the former single module: GPU, network, host, job, scheduler, then services
CHECKS: tuple[ToolSpec, ...] = (GPU_CHECKS + NETWORK_CHECKS + HOST_CHECKS + JOB_CHECKS + SCHEDULER_CHECKS
                                + SERVICE_CHECKS)

CHECKS = CHECKS + HEALTH_CHECKS
CHECKS_BY_NAME: dict[str, ToolSpec] = {c.name: c for c in CHECKS}
