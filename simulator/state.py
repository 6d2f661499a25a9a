"""Per-node state of the simulated cluster, and how each fault kind changes it.

State is plain mutable dataclasses. Telemetry that varies with time (clocks, power, temperature,
utilisation) is derived from this state plus seeded noise in ``telemetry.py``; mutating commands
change the state here, so the check that runs afterwards sees the fix.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from perf.catalog import GPUSpec, get_gpu, nic_for
from simulator.scenario import CommandOverride, Fault, Scenario, hca_count, strip_wrappers

# PCI bus numbers of the 8 GPUs of an HGX/DGX baseboard, in nvidia-smi index order.
_HGX_BUSES = (0x07, 0x0B, 0x48, 0x4C, 0x88, 0x8B, 0xC8, 0xCB)

# Reason names of formats/scenario.md -> nvidia-smi clock event reason bits (nvml.h values).
REASON_BITS = {
    "gpu_idle": 0x1,
    "applications_clocks_setting": 0x2,
    "sw_power_cap": 0x4,
    "hw_slowdown": 0x8,
    "sync_boost": 0x10,
    "sw_thermal_slowdown": 0x20,
    "hw_thermal_slowdown": 0x40,
    "hw_power_brake_slowdown": 0x80,
    "display_clock_setting": 0x100,
}

# Description lines the driver prints for common Xids (after "NVRM: Xid (PCI:…): N, pid=…, ").
XID_TEXT = {
    13: "Graphics SM Warp Exception on (GPC 1, TPC 0, SM 0): Out Of Range Address",
    31: "Ch 00000008, intr 10000000. MMU Fault: ENGINE GRAPHICS GPCCLIENT_T1_0 faulted @ 0x7f1e_9d000000. "
    "Fault is of type FAULT_PDE ACCESS_TYPE_VIRT_READ",
    43: "Ch 00000010, engmask 00000101",
    45: "Ch 00000010, errorString CTX SWITCH TIMEOUT, Info 0x1c004",
    48: "An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer at partition 6, "
    "subpartition 0.",
    61: "Internal micro-controller breakpoint/warning (PMU halt)",
    62: "Internal micro-controller halt",
    63: "Row Remapper: New row marked for remapping, reset gpu to activate.",
    64: "Row Remapper: Failed to remap row",
    68: "NVDEC0 Exception: Video processor exception",
    74: "NVLink: fatal error detected on link 0(0x0, 0x0, 0x10000, 0x0, 0x0, 0x0, 0x0)",
    79: "GPU has fallen off the bus.",
    92: "High single-bit ECC error rate",
    94: "Contained ECC error.",
    95: "Uncontained ECC error.",
    119: "Timeout after 6s of waiting for RPC response from GPU0 GSP! Expected function 76 (GSP_RM_CONTROL).",
    120: "GSP task exception",
}

# Driver branch -> the CUDA version its nvidia-smi reports.
CUDA_FOR_DRIVER = {
    "470": "11.4", "510": "11.6", "515": "11.7", "520": "11.8", "525": "12.0", "530": "12.1",
    "535": "12.2", "545": "12.3", "550": "12.4", "555": "12.5", "560": "12.6", "565": "12.7",
    "570": "12.8", "575": "12.9", "580": "13.0",
}

BASE_NCCL_ENV = {
    "NCCL_DEBUG": "WARN",
    "NCCL_SOCKET_IFNAME": "bond0",
    "NCCL_IB_GID_INDEX": "3",
    "NCCL_IB_TIMEOUT": "22",
    "NCCL_ASYNC_ERROR_HANDLING": "1",
}

SERVICES = ("nvidia-persistenced", "nvidia-fabricmanager", "nvidia-dcgm", "chronyd", "sshd")


def stable_uniform(*key: object) -> float:
    """A reproducible number in [0, 1) from the key (Python's hash() is salted per process)."""
    digest = hashlib.blake2b("|".join(map(str, key)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass
class GpuState:
    index: int
    bus: int
    uuid: str
    serial: str
    present: bool = True  # False once fallen off the bus
    lost_in_driver: bool = False
    persistence: bool = True
    locked_sm_mhz: float | None = None  # a clock cap that -rgc/-rac/-r clear (throttle faults)
    cap_reasons: set[str] = field(default_factory=set)
    app_sm_mhz: float = 0.0  # applications clock; default = max
    power_limit_w: float = 0.0
    forced_temp_c: float | None = None
    ecc_sbe_volatile: int = 0
    ecc_dbe_volatile: int = 0
    ecc_dbe_aggregate: int = 0
    remap_correctable: int = 0
    remap_uncorrectable: int = 0
    remap_pending: bool = False
    remap_failure: bool = False
    pcie_gen: int = 4
    pcie_width: int = 16
    nvlink_up: list[bool] = field(default_factory=list)
    last_xid: int = 0
    pcie_replays: int = 0

    @property
    def pci_bus_id(self) -> str:  # nvidia-smi spelling
        return f"00000000:{self.bus:02X}:00.0"

    @property
    def short_bus(self) -> str:  # lspci spelling
        return f"{self.bus:02x}:00.0"

    @property
    def xid_bus(self) -> str:  # kernel log spelling
        return f"0000:{self.bus:02x}:00"


@dataclass
class HcaState:
    name: str
    rate_gbps: float
    max_rate_gbps: float
    up: bool = True
    link_layer: str = "InfiniBand"
    guid: str = ""
    lid: int = 0


@dataclass
class KernelLine:
    t: float  # simulated seconds since start (may be negative: before the simulation began)
    text: str


@dataclass
class NodeState:
    name: str
    index: int
    gpu_spec: GPUSpec
    gpus: list[GpuState]
    hcas: list[HcaState]
    driver_version: str
    cuda_version: str
    nccl_version: str
    ncpu: int = 128
    mem_total_mb: int = 2_063_750
    governor: str = "performance"
    ntp_offset_s: float = 0.0
    ntp_synced: bool = True
    added_latency_ms: float = 0.0
    unreachable: bool = False
    behaviour: str = "ok"  # for the SSH server: ok | hang | drop | refuse
    extra_load: float = 0.0
    hog_process: str = ""
    kernel_log: list[KernelLine] = field(default_factory=list)
    oom_process: str = ""
    disks: dict[str, list[float]] = field(default_factory=dict)  # mount -> [size_mb, used_mb, inodes, iused]
    shm_size_mb: float = 0.0
    shm_files: dict[str, float] = field(default_factory=dict)  # name -> size MB
    nccl_env: dict[str, str] = field(default_factory=dict)
    services: dict[str, str] = field(default_factory=dict)  # name -> active | failed | inactive
    sched_state: str = "allocated"  # slurm-ish: idle | allocated | drained | draining
    drain_reason: str = ""
    job_running: bool = True
    job_log: list[str] = field(default_factory=list)  # lines a custom fault appends to the job's log
    overrides: list[CommandOverride] = field(default_factory=list)  # custom faults' command outputs

    def override_for(self, command: str) -> CommandOverride | None:
        """The custom fault's output for a command line starting with its key (latest fault wins)."""
        for o in reversed(self.overrides):
            if command.startswith(strip_wrappers(o.prefix)):  # the tool is run without sudo/timeout here
                return o
        return None

    @property
    def drained(self) -> bool:
        return self.sched_state in ("drained", "draining")

    def log(self, t: float, text: str) -> None:
        self.kernel_log.append(KernelLine(t, text))


def _gpu_bus(i: int) -> int:
    return _HGX_BUSES[i] if i < len(_HGX_BUSES) else 0x10 + 0x10 * i


def build_nodes(scenario: Scenario) -> dict[str, NodeState]:
    c = scenario.cluster
    spec = get_gpu(c.gpu)
    try:
        nic_rate = nic_for(spec, c.interconnect).rate_gbps if c.interconnect != "ethernet" else 0.0
    except ValueError:
        nic_rate = 200.0
    n_hca = hca_count(c) if c.interconnect != "ethernet" else 0
    nodes: dict[str, NodeState] = {}
    for ni, name in enumerate(c.names):
        gpus = []
        for gi in range(c.gpus_per_node):
            u = hashlib.blake2b(f"{scenario.seed}|{name}|{gi}".encode(), digest_size=16).hexdigest()
            gpus.append(
                GpuState(
                    index=gi,
                    bus=_gpu_bus(gi),
                    uuid=f"GPU-{u[:8]}-{u[8:12]}-{u[12:16]}-{u[16:20]}-{u[20:32]}",
                    serial=f"1{int(u[:10], 16) % 10**12:012d}",
                    app_sm_mhz=float(spec.max_sm_clock_mhz),
                    power_limit_w=float(spec.default_power_w),
                    pcie_gen=spec.pcie_gen,
                    pcie_width=spec.pcie_width,
                    nvlink_up=[True] * spec.nvlink_links,
                )
            )
        hcas = [
            HcaState(
                name=f"mlx5_{h}",
                rate_gbps=nic_rate,
                max_rate_gbps=nic_rate,
                link_layer="Ethernet" if c.interconnect == "roce" else "InfiniBand",
                guid=hashlib.blake2b(f"{name}|hca{h}".encode(), digest_size=8).hexdigest(),
                lid=0 if c.interconnect == "roce" else 1 + ni * max(n_hca, 1) + h,
            )
            for h in range(n_hca)
        ]
        mem_mb = 2_063_750 if spec.hbm_gb >= 80 else 1_031_875
        node = NodeState(
            name=name,
            index=ni,
            gpu_spec=spec,
            gpus=gpus,
            hcas=hcas,
            driver_version=c.driver_version,
            cuda_version=c.cuda_version,
            nccl_version=c.nccl_version,
            mem_total_mb=mem_mb,
        )
        node.disks = {
            "/": [447_000.0, 447_000.0 * (0.30 + 0.1 * stable_uniform(scenario.seed, name, "root")), 29_000_000, 410_000],
            "/boot": [1_900.0, 310.0, 128_000, 340],
            "/data": [7_150_000.0, 7_150_000.0 * (0.40 + 0.1 * stable_uniform(scenario.seed, name, "data")),
                      460_000_000, 1_200_000],
        }
        node.shm_size_mb = mem_mb / 2
        node.shm_files = {"nccl-sh1Xq2": 64.0, "torch_1234_3051441953": 512.0}
        node.nccl_env = dict(BASE_NCCL_ENV)
        if c.interconnect != "ethernet":
            node.nccl_env["NCCL_IB_HCA"] = "mlx5"
        node.services = dict.fromkeys(SERVICES, "active")
        if spec.nvlink_links == 0 or c.gpus_per_node < 4:
            node.services.pop("nvidia-fabricmanager", None)
        has_job = c.workload is not None and c.workload.kind != "none"
        node.job_running = has_job
        node.sched_state = "allocated" if has_job else "idle"
        if c.scheduler == "kubernetes":
            node.services["kubelet"] = "active"
        elif c.scheduler == "slurm":
            node.services["slurmd"] = "active"
        # a little history in the kernel log, like any booted node
        node.log(-86_000.0, "Linux version 5.15.0-105-generic (buildd@lcy02-amd64-054) (gcc (Ubuntu 11.4.0-1ubuntu1~22.04) 11.4.0)")
        node.log(-85_990.0, "nvidia: loading out-of-tree module taints kernel.")
        node.log(-85_989.0, f"NVRM: loading NVIDIA UNIX x86_64 Kernel Module  {c.driver_version}  Sat Feb 17 01:12:25 UTC 2024")
        nodes[name] = node
    return nodes


def apply_fault(node: NodeState, fault: Fault, t: float, *, scenario: Scenario) -> None:
    """Change one node's state the way the fault does (formats/scenario.md table)."""
    kind = fault.kind
    if fault.custom is not None:
        for line in fault.custom.kernel_log:
            node.log(t, line)
        node.job_log.extend(fault.custom.job_log)
        node.overrides.extend(fault.custom.commands)
        return
    gpu = node.gpus[fault.gpu] if fault.gpu is not None and fault.gpu < len(node.gpus) else None
    spec = node.gpu_spec
    if kind == "gpu_clock_throttle" and gpu is not None:
        reason = str(fault.get("reason", "hw_slowdown"))
        gpu.locked_sm_mhz = float(fault.get("sm_clock_mhz"))
        gpu.cap_reasons = {reason} | ({"hw_slowdown"} if reason == "hw_thermal_slowdown" else set())
        if reason == "hw_thermal_slowdown":
            node.log(t, f"NVRM: GPU at PCI:{gpu.xid_bus}: GPU-{gpu.uuid[4:]} HW thermal slowdown engaged")
    elif kind == "gpu_power_cap" and gpu is not None:
        gpu.power_limit_w = float(fault.get("power_limit_w"))
    elif kind == "gpu_thermal" and gpu is not None:
        gpu.forced_temp_c = float(fault.get("temp_c"))
    elif kind == "gpu_ecc_uncorrectable" and gpu is not None:
        count = int(fault.get("count", 1))
        gpu.ecc_dbe_volatile += count
        gpu.ecc_dbe_aggregate += count
        gpu.remap_uncorrectable += min(count, 8)
        gpu.last_xid = 48
        node.log(t, _xid_line(gpu, 48, pid=True))
        node.log(t + 0.2, _xid_line(gpu, 63, pid=False))
    elif kind == "gpu_row_remap_pending" and gpu is not None:
        gpu.remap_pending = True
        gpu.remap_uncorrectable += 1
        gpu.last_xid = 63
        node.log(t, _xid_line(gpu, 63, pid=False))
    elif kind == "gpu_xid" and gpu is not None:
        xid = int(fault.get("xid"))
        gpu.last_xid = xid
        node.log(t, _xid_line(gpu, xid, pid=True))
        # Only the log line (formats/scenario.md): ECC, row-remap and NVLink state belong to their own
        # fault kinds, so a gpu_xid scenario stays distinguishable from them. Xid 79 means the GPU
        # is gone, which nothing on the node can hide.
        if xid == 79:
            gpu.present = False
    elif kind == "gpu_fallen_off_bus" and gpu is not None:
        gpu.present = False
        gpu.last_xid = 79
        node.log(t, _xid_line(gpu, 79, pid=False))
    elif kind == "nvlink_down" and gpu is not None:
        link = int(fault.get("link", 0))
        if link < len(gpu.nvlink_up):
            gpu.nvlink_up[link] = False
    elif kind == "pcie_downgrade" and gpu is not None:
        if fault.get("width") is not None:
            gpu.pcie_width = int(fault.get("width"))
        if fault.get("gen") is not None:
            gpu.pcie_gen = int(fault.get("gen"))
        gpu.pcie_replays += 1200
    elif kind in ("ib_port_down", "ib_link_degraded"):
        hca = next((h for h in node.hcas if h.name == fault.get("hca", "mlx5_0")), None)
        if hca is not None:
            if kind == "ib_port_down":
                hca.up = False
                node.log(t, f"mlx5_core 0000:{0x0c + node.hcas.index(hca):02x}:00.0: Port module event: "
                            f"module 0, Cable unplugged")
            else:
                hca.rate_gbps = float(fault.get("rate_gbps"))
    elif kind == "nccl_env_misconfig":
        for key, value in dict(fault.get("env", {})).items():
            node.nccl_env[key] = value
    elif kind == "disk_full":
        mount = str(fault.get("mount", "/"))
        if mount not in node.disks:
            node.disks[mount] = [3_840_000.0, 0.0, 240_000_000, 50_000]
        disk = node.disks[mount]
        disk[1] = disk[0] * float(fault.get("used_pct", 98.0)) / 100.0
    elif kind == "shm_too_small":
        # Stale segments of crashed jobs fill /dev/shm until only size_mb is left for the loader.
        size = float(fault.get("size_mb", 64.0))
        if size < 1024 and node.shm_size_mb - sum(node.shm_files.values()) > size:
            stale = node.shm_size_mb - sum(node.shm_files.values()) - size
            node.shm_files["psm_stale_7f3a21"] = stale
    elif kind == "host_oom":
        proc = str(fault.get("process", "python"))
        node.oom_process = proc
        pid = 40_000 + int(stable_uniform(scenario.seed, node.name, "oom") * 20_000)
        node.log(t - 0.4, f"{proc} invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0")
        node.log(t, f"Out of memory: Killed process {pid} ({proc}) total-vm:1046813184kB, "
                    f"anon-rss:1032004480kB, file-rss:71936kB, shmem-rss:0kB, UID:1000 pgtables:2035448kB oom_score_adj:0")
        node.log(t + 0.1, f"oom_reaper: reaped process {pid} ({proc}), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB")
    elif kind == "cpu_overload":
        load = fault.get("load")
        node.extra_load = float(load) if load is not None else node.ncpu * 3.0
        node.hog_process = "xz"
    elif kind == "cpu_governor_powersave":
        node.governor = "powersave"
    elif kind == "driver_mismatch":
        version = str(fault.get("driver_version"))
        node.driver_version = version
        node.cuda_version = CUDA_FOR_DRIVER.get(version.split(".")[0], node.cuda_version)
    elif kind == "clock_skew":
        node.ntp_offset_s = float(fault.get("offset_s"))
        node.ntp_synced = False
    elif kind == "network_latency":
        node.added_latency_ms += float(fault.get("added_ms"))
    elif kind == "node_unreachable":
        node.unreachable = True
        node.behaviour = "hang"
    _ = spec


def _xid_line(gpu: GpuState, xid: int, *, pid: bool) -> str:
    text = XID_TEXT.get(xid, "Unknown error")
    who = "pid=48213, name=python" if pid else "pid='<unknown>', name=<unknown>"
    return f"NVRM: Xid (PCI:{gpu.xid_bus}): {xid}, {who}, {text}"
