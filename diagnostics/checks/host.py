"""Host checks: disk and inode use, /dev/shm, memory and OOM kills, CPU load and governor, clock
sync, driver/CUDA/NCCL versions, reachability and systemd services. Thresholds live here."""

from __future__ import annotations

import re
from typing import Any

from diagnostics.checks._common import _MOUNT_PATTERN, _check, _guard, _result
from diagnostics.parsers import kernel, nvidia_smi, system
from diagnostics.parsers.common import skipped_summary
from diagnostics.registry import Param, ParseInput, ParseOutput, ToolSpec
from diagnostics.types import Finding, Status

# --------------------------------------------------------------------------- thresholds

# Checkpoints of large models are tens of GB: at 90% a filesystem is one checkpoint from full.
DISK_FULL_PCT = 90
INODE_FULL_PCT = 90
# Pseudo and read-only filesystems that are always "100%" (snap squashfs) or not ours to judge.
IGNORED_FS_PREFIXES = ("/dev/loop", "overlay", "devtmpfs", "udev", "efivarfs", "squashfs")
# /dev/shm below 1 GiB free breaks multi-worker data loaders and NCCL's shared-memory transport
# (Docker's 64 MiB default is the classic failure).
SHM_MIN_FREE_MB = 1024.0
# Less than 5% of memory available: the OOM killer is near.
MEM_AVAILABLE_MIN_RATIO = 0.05
# Run queue longer than the CPU count: data loading and NCCL proxy threads starve.
LOAD_PER_CPU_MAX = 1.0
# NTP offsets above 100 ms garble cross-node log correlation and break token/lease checks.
CLOCK_SKEW_MAX_S = 0.1

SERVICES = ("nvidia-persistenced", "nvidia-fabricmanager", "nvidia-dcgm", "dcgm", "nv-hostengine", "chronyd",
            "chrony", "slurmd", "kubelet", "containerd", "docker", "openibd", "sshd")


def _pseudo(fs: str) -> bool:
    return fs.startswith(IGNORED_FS_PREFIXES) or fs == "tmpfs"


@_guard
def parse_disk_usage(inp: ParseInput) -> ParseOutput:
    _u, blocks = system.parse_df(inp.outputs[0].stdout)
    # inode use is a second opinion: no inode output (df -i unsupported, e.g. some FUSE mounts) leaves it unknown
    has_inodes = len(inp.outputs) > 1 and inp.outputs[1].stdout.strip()
    _iu, inodes = system.parse_df(inp.outputs[1].stdout) if has_inodes else ("", [])
    inode_pct = {r.mount: r.use_pct for r in inodes}
    mount = inp.params.get("mount")
    findings = []
    rows = []
    for r in blocks:
        if _pseudo(r.filesystem) or (mount and r.mount != mount):
            continue
        ipct = inode_pct.get(r.mount)
        info = {"mount": r.mount, "filesystem": r.filesystem, "used_pct": r.use_pct, "inodes_used_pct": ipct}
        rows.append(info)
        if r.use_pct is not None and r.use_pct >= DISK_FULL_PCT:
            findings.append(Finding("disk_full", inp.host, f"{r.mount} is {r.use_pct}% full",
                                    severity="critical" if r.use_pct >= 97 else "warning", data=info))
        elif ipct is not None and ipct >= INODE_FULL_PCT:
            findings.append(Finding("disk_full", inp.host, f"{r.mount} has used {ipct}% of its inodes",
                                    severity="warning", data=info))
    if mount and not rows:
        return ParseOutput(Status.NO_DATA, error=f"no filesystem mounted at {mount}")
    return _result(findings, {"filesystems": rows})


@_guard
def parse_shm_size(inp: ParseInput) -> ParseOutput:
    unit, rows = system.parse_df(inp.outputs[0].stdout)
    row = next((r for r in rows if r.mount == "/dev/shm"), None)
    if row is None:
        return ParseOutput(Status.NO_DATA, error="/dev/shm is not mounted")
    scale = 1.0 if unit.startswith("1M") else (1 / 1024 if unit.startswith("1024") or unit.startswith("1K") else 1 / 1024 / 1024)
    size_mb, free_mb = row.total * scale, row.available * scale
    data = {"size_mb": round(size_mb, 1), "available_mb": round(free_mb, 1), "used_pct": row.use_pct,
            "threshold_mb": SHM_MIN_FREE_MB}
    if free_mb < SHM_MIN_FREE_MB:
        why = "is only" if size_mb < SHM_MIN_FREE_MB else "has only"
        text = (f"/dev/shm {why} {size_mb:.0f} MB" if size_mb < SHM_MIN_FREE_MB
                else f"/dev/shm {why} {free_mb:.0f} MB free of {size_mb:.0f} MB ({row.use_pct}% used, stale segments?)")
        return _result([Finding("shm_too_small", inp.host, text, severity="warning", data=data)], data)
    return ParseOutput(Status.OK, data=data)


@_guard
def parse_memory_oom(inp: ParseInput) -> ParseOutput:
    mem = system.parse_free(inp.outputs[0].stdout)
    log = inp.outputs[1] if len(inp.outputs) > 1 else None
    kills = kernel.parse_ooms(log.stdout) if log is not None else []
    data = {"total_mb": mem.total, "used_mb": mem.used, "available_mb": mem.available,
            "oom_kills": [{"pid": k.pid, "process": k.process, "when": k.stamp} for k in kills]}
    findings = [
        Finding("host_oom", inp.host, f"OOM killer killed {k.process} (pid {k.pid})" + (f" at {k.stamp}" if k.stamp else ""),
                severity="critical", data={"pid": k.pid, "process": k.process, "when": k.stamp})
        for k in kills
    ]
    if mem.available is not None and mem.total and mem.available < MEM_AVAILABLE_MIN_RATIO * mem.total:
        findings.append(Finding("host_oom", inp.host, f"only {mem.available} of {mem.total} MB memory available",
                                severity="warning", data={"available_mb": mem.available, "total_mb": mem.total}))
    return _result(findings, data)


@_guard
def parse_cpu_load(inp: ParseInput) -> ParseOutput:
    l1, l5, l15 = system.parse_loadavg(inp.outputs[0].stdout)
    ncpu = system.parse_nproc(inp.outputs[1].stdout)
    procs = system.parse_ps(inp.outputs[2].stdout) if len(inp.outputs) > 2 and inp.outputs[2].stdout.strip() else []
    top = [{"pid": p.pid, "user": p.user, "cpu_pct": p.cpu_pct, "command": p.command} for p in procs[:5]]
    data = {"load1": l1, "load5": l5, "load15": l15, "cpus": ncpu, "load_per_cpu": l1 / ncpu, "top": top}
    if l1 / ncpu > LOAD_PER_CPU_MAX:
        hog = next((p for p in procs if p.user != "train" and p.command not in ("python", "python3", "torchrun")), None)
        text = f"load average {l1:.1f} on {ncpu} CPUs ({l1 / ncpu:.1f} per CPU)"
        if hog:
            text += f"; top non-job process: {hog.command} (pid {hog.pid}, {hog.cpu_pct:g}% CPU)"
        return _result([Finding("cpu_overload", inp.host, text, severity="warning",
                                data={**data, "hog": hog.command if hog else None})], data)
    return ParseOutput(Status.OK, data=data)


@_guard
def parse_cpu_governor(inp: ParseInput) -> ParseOutput:
    out = inp.outputs[0]
    if out.exit_code not in (0, None) and not out.stdout.strip():
        return ParseOutput(Status.NO_DATA, error="no cpufreq scaling governor (virtual machine or cpufreq disabled)")
    counts = system.parse_governors(out.stdout)
    data = {"governors": counts}
    if counts.get("powersave"):
        return _result([Finding("cpu_governor_powersave", inp.host,
                                f"{counts['powersave']} of {sum(counts.values())} CPUs use the powersave governor",
                                severity="warning", data=data)], data)
    return ParseOutput(Status.OK, data=data)


@_guard
def parse_clock_sync(inp: ParseInput) -> ParseOutput:
    t = system.parse_chronyc_tracking(inp.outputs[0].stdout)
    data = {"offset_s": t.offset_s, "leap_status": t.leap_status, "stratum": t.stratum, "reference": t.reference,
            "threshold_s": CLOCK_SKEW_MAX_S}
    unsynced = t.leap_status.lower().startswith("not sync")
    if abs(t.offset_s) > CLOCK_SKEW_MAX_S or unsynced:
        text = f"clock {abs(t.offset_s):.3f} s {'ahead of' if t.offset_s >= 0 else 'behind'} NTP time"
        if unsynced:
            text += " and not synchronised"
        return _result([Finding("clock_skew", inp.host, text, severity="warning", data=data)], data)
    return ParseOutput(Status.OK, data=data)


@_guard
def parse_versions(inp: ParseInput) -> ParseOutput:
    smi, libs = inp.outputs[0], inp.outputs[1]
    v = nvidia_smi.parse_version(smi.stdout)
    nccl_version = None
    for line in libs.stdout.split():
        name = line.strip().rsplit("/", 1)[-1]
        if name.startswith("libnccl.so.") and name.count(".") >= 4:
            nccl_version = name[len("libnccl.so."):]
    data: dict[str, Any] = {"driver": v.get("driver"), "cuda": v.get("cuda"), "nccl": nccl_version}
    findings = []
    if len(inp.outputs) > 2 and inp.outputs[2].exit_code == 0:
        kmod = inp.outputs[2].stdout.split("Kernel Module", 1)
        if len(kmod) == 2 and kmod[1].split():
            data["kernel_module"] = kmod[1].split()[0]
            if data["driver"] and data["kernel_module"] != data["driver"]:
                findings.append(Finding("driver_mismatch", inp.host,
                                        f"kernel module {data['kernel_module']} != user-space driver {data['driver']} "
                                        "(Driver/library version mismatch; reboot or reload the module)",
                                        severity="critical", data=dict(data)))
    return _result(findings, data)


_UPTIME = re.compile(r"\bup\b.*\bload averages?: [\d.,]+")


@_guard
def parse_reachability(inp: ParseInput) -> ParseOutput:
    # the node answered: that is the result; only uptime's own line is kept as data (a motd or any
    # other line a node prints must not reach the agent as if it were uptime's)
    lines = [ln.strip() for ln in inp.outputs[0].stdout.splitlines() if ln.strip()]
    uptime = next((ln for ln in lines if _UPTIME.search(ln)), "")
    data: dict[str, Any] = {"uptime": uptime}
    if len(lines) > (1 if uptime else 0):
        data.update(skipped_summary([("uptime", no) for no, ln in enumerate(lines, 1) if ln != uptime]))
    return ParseOutput(Status.OK, data=data)


@_guard
def parse_service_status(inp: ParseInput) -> ParseOutput:
    states = system.parse_is_active(inp.outputs[0].stdout)
    service = inp.params.get("service")
    data = {"service": service, "state": states[0]}
    if states[0] == "active":
        return ParseOutput(Status.OK, data=data)
    return _result([Finding("service_down", inp.host, f"service {service} is {states[0]}", severity="warning",
                            data=data)], data)


HOST_CHECKS: tuple[ToolSpec, ...] = (
    _check("disk_usage", "Space and inode use of every real filesystem (df); finds disk_full", "storage", "quick",
           (Param("mount", "str", "only this mount point", required=False, pattern=_MOUNT_PATTERN),),
           ("df -P", "df -P -i"), parse_disk_usage),
    _check("shm_size", "Size and free space of /dev/shm; finds shm_too_small", "storage", "quick", (),
           ("df -P -m /dev/shm",), parse_shm_size),
    _check("memory_oom", "Free memory and OOM-killer kills in the kernel log; finds host_oom", "memory", "quick", (),
           ("free -m", "dmesg -T"), parse_memory_oom),
    _check("cpu_load", "Load average per CPU and the busiest processes; finds cpu_overload", "system", "quick", (),
           ("cat /proc/loadavg", "nproc", "ps -eo pid,user,pcpu,pmem,comm --sort=-pcpu"), parse_cpu_load),
    _check("cpu_governor", "CPU frequency scaling governor of every CPU; finds cpu_governor_powersave", "system",
           "quick", (), ("cat /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor",), parse_cpu_governor),
    _check("clock_sync", "NTP synchronisation and offset (chronyc tracking); finds clock_skew", "system", "quick", (),
           ("chronyc tracking",), parse_clock_sync),
    _check("versions", "NVIDIA driver, CUDA and NCCL versions (compared across nodes: driver_mismatch); also the "
           "kernel module vs user-space driver", "system", "quick", (),
           ("nvidia-smi --version", "ls /usr/lib/x86_64-linux-gnu/libnccl.so.*", "cat /proc/driver/nvidia/version"),
           parse_versions),
    _check("reachability", "Whether the node answers at all (a timeout or refusal means node_unreachable)", "system",
           "quick", (), ("uptime",), parse_reachability, timeout_s=15.0),
)

# service_status comes last in CHECKS (after the job and scheduler checks)
SERVICE_CHECKS: tuple[ToolSpec, ...] = (
    _check("service_status", "Whether a systemd service is active; finds service_down", "system", "medium",
           (Param("service", "choice", "the systemd unit", choices=SERVICES),),
           ("systemctl is-active {service}",), parse_service_status),
)
