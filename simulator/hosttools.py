"""Every non-nvidia-smi program the simulated nodes answer, in the real tools' output formats.

Each handler takes the cluster, the node and argv and returns (exit code, stdout, stderr).
Dispatch is on the program name and its flags, never on whole command strings, so equivalent
spellings (``df -P /`` vs ``df -Pk /``, ``dmesg -T`` vs ``journalctl -k``) work.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from simulator.job import JOB_ID, JOB_STARTED_S, JOB_USER
from simulator.state import NodeState, stable_uniform

if TYPE_CHECKING:
    from simulator.cluster import SimCluster

Out = tuple[int, str, str]
Handler = Callable[["SimCluster", NodeState, list[str]], Out]

NVIDIA_VENDOR = "10de"

_LSPCI_NAMES = {
    "A800-SXM4-80GB": "GA100 [A800 SXM4 80GB]",
    "A100-SXM4-40GB": "GA100 [A100 SXM4 40GB]",
    "A100-SXM4-80GB": "GA100 [A100 SXM4 80GB]",
    "H100-SXM5-80GB": "GH100 [H100 SXM5 80GB]",
    "H100-PCIe": "GH100 [H100 PCIe]",
    "H800-SXM5-80GB": "GH100 [H800 SXM5 80GB]",
    "H200-SXM-141GB": "GH100 [H200 SXM 141GB]",
    "B200": "GB100 [B200]",
    "L40S": "AD102GL [L40S]",
}


def not_found(prog: str) -> Out:
    return 127, "", f"bash: {prog}: command not found\n"


# --------------------------------------------------------------------------- kernel log


def dmesg(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    human = any(a in ("-T", "--ctime") or (a.startswith("-") and not a.startswith("--") and "T" in a) for a in argv)
    lines = []
    for entry in node.kernel_log:
        if entry.t > sim.time_s:
            continue
        if human:
            lines.append(f"[{sim.wallclock(entry.t).strftime('%a %b %d %H:%M:%S %Y')}] {entry.text}")
        else:
            lines.append(f"[{entry.t + sim.uptime_offset_s:>12.6f}] {entry.text}")
    return 0, "".join(line + "\n" for line in lines), ""


def journalctl(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    if not any(a in ("-k", "--dmesg") for a in argv):
        return 0, "-- No entries --\n", ""
    lines = []
    for entry in node.kernel_log:
        if entry.t > sim.time_s:
            continue
        stamp = sim.wallclock(entry.t).strftime("%b %d %H:%M:%S")
        lines.append(f"{stamp} {node.name} kernel: {entry.text}")
    return 0, "".join(line + "\n" for line in lines) or "-- No entries --\n", ""


def lspci(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    vendor_filter = None
    class_filter = None
    domains = "-D" in argv
    if "-d" in argv:
        i = argv.index("-d")
        if i + 1 < len(argv):
            parts = argv[i + 1].split(":")
            vendor_filter = parts[0] or None
            class_filter = parts[2] if len(parts) > 2 and parts[2] else None
    lines = []
    if node.gpu_spec.vendor == "nvidia" and vendor_filter in (None, NVIDIA_VENDOR) and class_filter in (None, "0302"):
        desc = _LSPCI_NAMES.get(node.gpu_spec.name, "Device 20b5")
        for g in node.gpus:
            rev = "a1" if g.present else "ff"
            addr = f"0000:{g.short_bus}" if domains else g.short_bus
            lines.append(f"{addr} 3D controller: NVIDIA Corporation {desc} (rev {rev})")
    if vendor_filter in (None, "15b3") and class_filter in (None, "0207"):
        for h, _hca in enumerate(node.hcas):
            addr = f"{0x0c + h * 0x10:02x}:00.0"
            lines.append(f"{'0000:' + addr if domains else addr} Infiniband controller: Mellanox Technologies MT28908 Family [ConnectX-6]")
    return 0, "".join(line + "\n" for line in sorted(lines)), ""


# --------------------------------------------------------------------------- InfiniBand


def _fw(node: NodeState) -> str:
    return "20.39.1002" if node.hcas and node.hcas[0].max_rate_gbps <= 200 else "28.39.1002"


def ibstat(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    if not node.hcas:
        if sim.scenario.cluster.interconnect == "ethernet":
            return not_found("ibstat")
        return 0, "", ""
    wanted = [a for a in argv if not a.startswith("-")]
    hcas = [h for h in node.hcas if not wanted or h.name == wanted[0]]
    if wanted and not hcas:
        return 255, "", f"ibpanic: [1]: main: stat of IB device '{wanted[0]}' failed: No such file or directory\n"
    out = []
    for h in hcas:
        ca_type = "MT4123" if h.max_rate_gbps <= 200 else "MT4129"
        state, phys = ("Active", "LinkUp") if h.up else ("Down", "Disabled")
        rate = h.rate_gbps if h.up else 10
        guid = f"0x{h.guid}"
        out += [
            f"CA '{h.name}'",
            f"\tCA type: {ca_type}",
            "\tNumber of ports: 1",
            f"\tFirmware version: {_fw(node)}",
            "\tHardware version: 0",
            f"\tNode GUID: {guid}",
            f"\tSystem image GUID: {guid}",
            "\tPort 1:",
            f"\t\tState: {state}",
            f"\t\tPhysical state: {phys}",
            f"\t\tRate: {int(rate) if float(rate).is_integer() else rate}",
            f"\t\tBase lid: {h.lid}",
            "\t\tLMC: 0",
            f"\t\tSM lid: {1 if h.link_layer == 'InfiniBand' else 0}",
            f"\t\tCapability mask: {'0xa651e848' if h.link_layer == 'InfiniBand' else '0x00010000'}",
            f"\t\tPort GUID: {guid}",
            f"\t\tLink layer: {h.link_layer}",
        ]
    return 0, "\n".join(out) + "\n", ""


def ibv_devinfo(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    if not node.hcas:
        if sim.scenario.cluster.interconnect == "ethernet":
            return not_found("ibv_devinfo")
        return 0, "No IB devices found\n", ""
    want = None
    for i, a in enumerate(argv):
        if a in ("-d", "--ib-dev") and i + 1 < len(argv):
            want = argv[i + 1]
        elif a.startswith("--ib-dev="):
            want = a.split("=", 1)[1]
    hcas = [h for h in node.hcas if want is None or h.name == want]
    if want and not hcas:
        return 255, "", f"IB device '{want}' wasn't found\n"
    out = []
    for h in hcas:
        g = h.guid
        guid = f"{g[0:4]}:{g[4:8]}:{g[8:12]}:{g[12:16]}"
        state = "PORT_ACTIVE (4)" if h.up else "PORT_DOWN (1)"
        out += [
            f"hca_id:\t{h.name}",
            "\ttransport:\t\t\tInfiniBand (0)",
            f"\tfw_ver:\t\t\t\t{_fw(node)}",
            f"\tnode_guid:\t\t\t{guid}",
            f"\tsys_image_guid:\t\t\t{guid}",
            "\tvendor_id:\t\t\t0x02c9",
            f"\tvendor_part_id:\t\t\t{4123 if h.max_rate_gbps <= 200 else 4129}",
            "\thw_ver:\t\t\t\t0x0",
            "\tboard_id:\t\t\tMT_0000000223",
            "\tphys_port_cnt:\t\t\t1",
            "\t\tport:\t1",
            f"\t\t\tstate:\t\t\t{state}",
            "\t\t\tmax_mtu:\t\t4096 (5)",
            f"\t\t\tactive_mtu:\t\t{'4096 (5)' if h.up else '1024 (3)'}",
            f"\t\t\tsm_lid:\t\t\t{1 if h.link_layer == 'InfiniBand' else 0}",
            f"\t\t\tport_lid:\t\t{h.lid}",
            "\t\t\tport_lmc:\t\t0x00",
            f"\t\t\tlink_layer:\t\t{h.link_layer}",
            "",
        ]
    return 0, "\n".join(out) + "\n", ""


# --------------------------------------------------------------------------- storage, memory, cpu


def _mounts(node: NodeState) -> list[tuple[str, str, float, float, float, float]]:
    """(filesystem, mount, size_mb, used_mb, inodes, iused) in df order."""
    rows: list[tuple[str, str, float, float, float, float]] = []
    devs = {"/": "/dev/nvme0n1p2", "/boot": "/dev/nvme0n1p1", "/data": "/dev/md0"}
    for mount, (size, used, inodes, iused) in node.disks.items():
        rows.append((devs.get(mount, f"/dev/nvme1n1p{len(rows) + 1}"), mount, size, used, inodes, iused))
    shm_used = min(sum(node.shm_files.values()), node.shm_size_mb)
    rows.append(("tmpfs", "/dev/shm", node.shm_size_mb, shm_used, node.mem_total_mb * 256, len(node.shm_files)))
    rows.append(("tmpfs", "/run", 206_376.0, 5.6, 25_797_000, 1_400))
    return sorted(rows, key=lambda r: (r[1] != "/", r[0].startswith("tmpfs"), r[1]))


def df(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    flags = "".join(a[1:] for a in argv if a.startswith("-") and not a.startswith("--"))
    inodes = "i" in flags or "--inodes" in argv
    block_mb = "m" in flags or "-BM" in argv or "--block-size=1M" in argv or "-B1M" in argv
    paths = [a for a in argv if not a.startswith("-")]
    rows = _mounts(node)
    if paths:
        chosen = []
        for p in paths:
            best = None
            for r in rows:
                m = r[1]
                if (p == m or p.startswith(m.rstrip("/") + "/")) and (best is None or len(m) > len(best[1])):
                    best = r
            if best is None:
                return 1, "", f"df: {p}: No such file or directory\n"
            chosen.append(best)
        rows = chosen
    lines = []
    if inodes:
        lines.append("Filesystem         Inodes     IUsed      IFree IUse% Mounted on")
        for fs, mount, _s, _u, total, used in rows:
            pct = int(-(-used * 100 // total)) if total else 0
            lines.append(f"{fs:<15} {int(total):>10} {int(used):>9} {int(total - used):>10} {pct:>4}% {mount}")
    else:
        unit = "1M-blocks" if block_mb else "1024-blocks"
        lines.append(f"Filesystem     {unit:>11}      Used  Available Capacity Mounted on")
        for fs, mount, size, used, _i, _iu in rows:
            scale = 1 if block_mb else 1024
            total = int(size * scale)
            u = int(used * scale)
            avail = max(total - u, 0)
            pct = int(-(-u * 100 // total)) if total else 0
            lines.append(f"{fs:<15} {total:>11} {u:>9} {avail:>10} {pct:>7}% {mount}")
    return 0, "\n".join(lines) + "\n", ""


def free(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    div = 1.0
    if "-g" in argv or "--gibi" in argv:
        div = 1024.0
    elif "-m" not in argv and "--mebi" not in argv:
        div = 1 / 1024  # KiB by default
    total = node.mem_total_mb
    used = total * (0.18 if node.job_running else 0.02) + 9_000
    if node.oom_process:
        used = total * 0.97
    shared = sum(node.shm_files.values())
    cache = total * 0.22
    free_mb = max(total - used - cache, 0)
    avail = max(total - used - shared, 0)
    swap = 0

    def n(v: float) -> int:
        return int(v / div)

    lines = [
        "               total        used        free      shared  buff/cache   available",
        f"Mem:      {n(total):>10} {n(used):>11} {n(free_mb):>11} {n(shared):>11} {n(cache):>11} {n(avail):>11}",
        f"Swap:     {swap:>10} {swap:>11} {swap:>11}",
    ]
    return 0, "\n".join(lines) + "\n", ""


def load_values(sim: SimCluster, node: NodeState) -> tuple[float, float, float]:
    base = node.ncpu * (0.18 if node.job_running else 0.01)
    u = stable_uniform(sim.scenario.seed, node.name, "load", int(sim.time_s // 5))
    l1 = base * (0.9 + 0.2 * u) + node.extra_load
    return l1, l1 * 0.97, l1 * 0.93


def loadavg_text(sim: SimCluster, node: NodeState) -> str:
    l1, l5, l15 = load_values(sim, node)
    running = min(int(l1) + 1, node.ncpu)
    return f"{l1:.2f} {l5:.2f} {l15:.2f} {running}/2314 {48_213 + int(sim.time_s)}\n"


def uptime(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    l1, l5, l15 = load_values(sim, node)
    now = sim.wallclock(sim.time_s)
    days = int((sim.time_s + sim.uptime_offset_s) // 86400)
    return 0, f" {now.strftime('%H:%M:%S')} up {days} days,  3:12,  1 user,  load average: {l1:.2f}, {l5:.2f}, {l15:.2f}\n", ""


def nproc(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    return 0, f"{node.ncpu}\n", ""


def ps(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    procs: list[tuple[int, str, float, float, str]] = []  # pid, user, %cpu, %mem, comm
    if node.job_running:
        for i in range(len(node.gpus)):
            procs.append((48_213 + i, "train", 101.5 + i % 3, 1.2, "python"))
    if node.hog_process:
        procs.append((91_337, "root", 100.0 * node.extra_load / 2, 0.1, node.hog_process))
        procs.append((91_338, "root", 100.0 * node.extra_load / 2, 0.1, node.hog_process))
    procs += [(1, "root", 0.0, 0.0, "systemd"), (2311, "root", 0.3, 0.0, "nvidia-persistenced"),
              (1822, "root", 0.1, 0.0, "sshd")]
    procs.sort(key=lambda p: -p[2])
    header = "    PID USER     %CPU %MEM COMMAND"
    lines = [header] + [f"{p[0]:>7} {p[1]:<8} {p[2]:>4.1f} {p[3]:>4.1f} {p[4]}" for p in procs]
    return 0, "\n".join(lines) + "\n", ""


def pgrep(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    pattern = next((a for a in reversed(argv) if not a.startswith("-")), "")
    if node.job_running and pattern and any(pattern in s for s in ("python", "train.py", "torchrun", "train")):
        return 0, "48213\n", ""
    if pattern and node.hog_process and pattern in node.hog_process:
        return 0, "91337\n", ""
    return 1, "", ""


def chronyc(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    if "tracking" not in argv:
        return 1, "", "Unrecognized command\n"
    if node.services.get("chronyd") != "active":
        return 1, "506 Cannot talk to daemon\n", ""
    off = node.ntp_offset_s if not node.ntp_synced else 0.000012 * (2 * stable_uniform(sim.scenario.seed, node.name, "ntp", int(sim.time_s // 64)) - 1)
    direction = "fast" if off >= 0 else "slow"
    ref = sim.wallclock(sim.time_s - 40).strftime("%a %b %d %H:%M:%S %Y")
    leap = "Normal" if node.ntp_synced else "Not synchronised"
    lines = [
        f"Reference ID    : {'0A000001 (ntp1.cluster.local)' if node.ntp_synced else '00000000 ()'}",
        f"Stratum         : {3 if node.ntp_synced else 0}",
        f"Ref time (UTC)  : {ref if node.ntp_synced else 'Thu Jan 01 00:00:00 1970'}",
        f"System time     : {abs(off):.9f} seconds {direction} of NTP time",
        f"Last offset     : {off:+.9f} seconds",
        f"RMS offset      : {abs(off) * 0.8 + 0.000008:.9f} seconds",
        "Frequency       : 9.873 ppm slow",
        "Residual freq   : +0.001 ppm",
        "Skew            : 0.019 ppm",
        "Root delay      : 0.000412318 seconds",
        "Root dispersion : 0.000201443 seconds",
        "Update interval : 64.4 seconds",
        f"Leap status     : {leap}",
    ]
    return 0, "\n".join(lines) + "\n", ""


def ping(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    count = 4
    quiet = "-q" in argv
    target = ""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-c", "-i", "-W", "-w", "-s", "-I", "-t") and i + 1 < len(argv):
            if a == "-c":
                try:
                    count = max(1, min(int(argv[i + 1]), 100))
                except ValueError:
                    return 2, "", f"ping: invalid argument: '{argv[i + 1]}'\n"
            i += 2
            continue
        if not a.startswith("-"):
            target = a
        i += 1
    if not target:
        return 2, "", "ping: usage error: Destination address required\n"
    peer = sim.nodes.get(target)
    ip = sim.ip_of(target) if peer is not None else "10.0.0.1"
    if peer is not None and peer.unreachable:
        lines = [f"PING {target} ({ip}) 56(84) bytes of data.", "", f"--- {target} ping statistics ---",
                 f"{count} packets transmitted, 0 received, 100% packet loss, time {count * 1000 - 1000}ms", ""]
        return 1, "\n".join(lines) + "\n", ""
    extra = node.added_latency_ms + (peer.added_latency_ms if peer is not None else 0.0)
    rtts = []
    for k in range(count):
        u = stable_uniform(sim.scenario.seed, node.name, target, "ping", int(sim.time_s), k)
        rtts.append(0.045 + 0.04 * u + extra * (0.95 + 0.1 * u))
    lines = [f"PING {target} ({ip}) 56(84) bytes of data."]
    if not quiet:
        lines += [f"64 bytes from {target} ({ip}): icmp_seq={k + 1} ttl=64 time={r:.3f} ms" for k, r in enumerate(rtts)]
    mean = sum(rtts) / len(rtts)
    mdev = (sum((r - mean) ** 2 for r in rtts) / len(rtts)) ** 0.5
    lines += [
        "",
        f"--- {target} ping statistics ---",
        f"{count} packets transmitted, {count} received, 0% packet loss, time {max(count - 1, 0) * 200 + 3}ms",
        f"rtt min/avg/max/mdev = {min(rtts):.3f}/{mean:.3f}/{max(rtts):.3f}/{mdev:.3f} ms",
    ]
    return 0, "\n".join(lines) + "\n", ""


# --------------------------------------------------------------------------- nccl-tests


def _size(text: str) -> int:
    mult = {"K": 1024, "M": 1024**2, "G": 1024**3}
    t = text.strip().upper()
    if t and t[-1] in mult:
        return int(float(t[:-1]) * mult[t[-1]])
    return int(t)


def all_reduce_perf(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    opts = {"-b": "8", "-e": "128M", "-f": "2", "-g": "1"}
    i = 0
    while i < len(argv):
        a = argv[i]
        long = {"--minbytes": "-b", "--maxbytes": "-e", "--stepfactor": "-f", "--ngpus": "-g"}
        key = long.get(a.split("=")[0], a)
        if key in opts:
            if "=" in a:
                opts[key] = a.split("=", 1)[1]
            elif i + 1 < len(argv):
                opts[key] = argv[i + 1]
                i += 1
        i += 1
    try:
        lo, hi, factor, ngpus = _size(opts["-b"]), _size(opts["-e"]), int(opts["-f"]), int(opts["-g"])
    except ValueError:
        return 1, "", "Invalid size specified\n"
    if ngpus < 1 or factor < 2 or lo <= 0 or hi < lo:
        return 1, "", "Invalid arguments\n"
    present = [g for g in node.gpus if g.present]
    if ngpus > len(present):
        return 1, "", (
            f"{node.name}: Test CUDA failure common.cu:892 'invalid device ordinal'\n"
            f" .. {node.name} pid 48390: Test failure common.cu:1101\n"
        )
    peak = sim.node_allreduce_busbw_gbs(node, ngpus)
    spec = node.gpu_spec
    lines = [
        f"# nThread 1 nGpus {ngpus} minBytes {lo} maxBytes {hi} step: {factor}(factor) warmup iters: 5 iters: 20 "
        "agg iters: 1 validation: 1 graph: 0",
        "#",
        "# Using devices",
    ]
    for r, g in enumerate(present[:ngpus]):
        lines.append(f"#  Rank {r:>2} Group  0 Pid  48390 on {node.name:>10} device {r:>2} [0x{g.bus:02x}] NVIDIA {spec.name}")
    lines += [
        "#",
        "#                                                              out-of-place                       in-place          ",
        "#       size         count      type   redop    root     time   algbw   busbw #wrong     time   algbw   busbw #wrong",
        "#        (B)    (elements)                               (us)  (GB/s)  (GB/s)            (us)  (GB/s)  (GB/s)       ",
    ]
    size = lo
    total_bus = 0.0
    rows = 0
    half = 16 * 1024**2  # message size at which NCCL reaches half its peak bus bandwidth
    while size <= hi:
        count = max(size // 4, 0)
        row = []
        for k in range(2):
            u = stable_uniform(sim.scenario.seed, node.name, "allreduce", size, k, int(sim.time_s))
            bus = peak * size / (size + half) * (0.98 + 0.04 * u) if ngpus > 1 else 0.0
            alg = bus * ngpus / (2 * (ngpus - 1)) if ngpus > 1 else size / 1e3
            t_us = size / (alg * 1e9) * 1e6 + 8.0 if alg > 0 else 1.0
            alg = size / (t_us * 1e3)
            bus = alg * 2 * (ngpus - 1) / ngpus if ngpus > 1 else 0.0
            row.append((t_us, alg, bus))
            total_bus += bus
        rows += 2
        lines.append(
            f"{size:>12} {count:>13} {'float':>9} {'sum':>7} {-1:>7} "
            f"{row[0][0]:>8.1f} {row[0][1]:>7.2f} {row[0][2]:>7.2f} {0:>6} "
            f"{row[1][0]:>8.1f} {row[1][1]:>7.2f} {row[1][2]:>7.2f} {0:>6}"
        )
        size *= factor
    lines += [
        "# Out of bounds values : 0 OK",
        f"# Avg bus bandwidth    : {total_bus / max(rows, 1):.4f} ",
        "#",
        "",
    ]
    return 0, "\n".join(lines) + "\n", ""


# --------------------------------------------------------------------------- schedulers


def _target(sim: SimCluster, node: NodeState, name: str) -> NodeState | None:
    return sim.nodes.get(name) or sim.nodes.get(name.split(".")[0])


def sinfo(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    if sim.scenario.cluster.scheduler != "slurm":
        return not_found("sinfo")
    fmt = None
    names: list[str] | None = None
    noheader = False
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-o", "--format") and i + 1 < len(argv):
            fmt = argv[i + 1]
            i += 1
        elif a.startswith("--format="):
            fmt = a.split("=", 1)[1]
        elif a in ("-n", "--nodes") and i + 1 < len(argv):
            names = argv[i + 1].split(",")
            i += 1
        elif a in ("-h", "--noheader"):
            noheader = True
        elif a.startswith("-") and not a.startswith("--") and len(a) > 2:
            noheader = noheader or "h" in a
        i += 1
    nodes = [n for n in sim.nodes.values() if names is None or n.name in names]
    if fmt is None:
        fmt = "%N %T %E" if "-N" in argv else "%P %a %l %D %T %N"
    out = []
    if not noheader:
        heads = {"%N": "NODELIST", "%T": "STATE", "%t": "STATE", "%E": "REASON", "%P": "PARTITION",
                 "%a": "AVAIL", "%l": "TIMELIMIT", "%D": "NODES", "%G": "GRES"}
        out.append(" ".join(heads.get(tok, tok) for tok in fmt.split()))
    for n in nodes:
        state = n.sched_state
        short = {"allocated": "alloc", "idle": "idle", "drained": "drain", "draining": "drng", "down": "down"}[state]
        values = {"%N": n.name, "%T": state, "%t": short, "%E": n.drain_reason or "none", "%P": "gpu*",
                  "%a": "up", "%l": "infinite", "%D": "1", "%G": f"gpu:{len(n.gpus)}"}
        line = fmt
        for tok, val in values.items():
            line = line.replace(tok, val)
        out.append(line)
    return 0, "".join(line + "\n" for line in out), ""


def scontrol(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    if sim.scenario.cluster.scheduler != "slurm":
        return not_found("scontrol")
    if not argv:
        return 1, "", "scontrol: error: no command given\n"
    verb = argv[0].lower()
    if verb == "show" and len(argv) >= 2 and argv[1].lower() == "node":
        target = _target(sim, node, argv[2]) if len(argv) > 2 else node
        if target is None:
            return 1, "", f"Node {argv[2]} not found\n"
        return 0, _scontrol_node(sim, target), ""
    if verb == "update":
        kv = {}
        for a in argv[1:]:
            k, _, v = a.partition("=")
            kv[k.lower()] = v
        name = kv.get("nodename") or kv.get("node")
        if not name:
            return 1, "", "scontrol: error: Invalid input: update requires NodeName=\n"
        targets = [_target(sim, node, n) for n in name.split(",")]
        if any(t is None for t in targets):
            return 1, "", f"scontrol: error: Invalid node name specified: {name}\n"
        state = kv.get("state", "").lower()
        if state in ("drain", "down"):
            if not kv.get("reason"):
                return 1, "", "You must specify a reason when DOWNING or DRAINING a node. Request denied\n"
            for t in targets:
                if t is not None:
                    sim.drain(t, kv["reason"], down=state == "down")
        elif state in ("resume", "undrain", "idle"):
            for t in targets:
                if t is not None:
                    sim.resume(t)
        else:
            return 1, "", f"scontrol: error: Invalid node state specified: {kv.get('state', '')}\n"
        return 0, "", ""
    if verb == "ping":
        return 0, "Slurmctld(primary) at head-01 is UP\n", ""
    return 1, "", f"scontrol: error: Invalid command: {argv[0]}\n"


def _scontrol_node(sim: SimCluster, n: NodeState) -> str:
    state = {"allocated": "ALLOCATED", "idle": "IDLE", "drained": "IDLE+DRAIN", "draining": "ALLOCATED+DRAIN",
             "down": "DOWN"}[n.sched_state]
    gres = f"gpu:{n.gpu_spec.name.split('-')[0].lower()}:{len(n.gpus)}"
    lines = [
        f"NodeName={n.name} Arch=x86_64 CoresPerSocket={n.ncpu // 2} ",
        f"   CPUAlloc={n.ncpu if n.job_running else 0} CPUEfctv={n.ncpu} CPUTot={n.ncpu} CPULoad={load_values(sim, n)[0]:.2f}",
        "   AvailableFeatures=(null)",
        "   ActiveFeatures=(null)",
        f"   Gres={gres}",
        f"   NodeAddr={n.name} NodeHostName={n.name} Version=23.02.7",
        "   OS=Linux 5.15.0-105-generic #115-Ubuntu SMP Mon Apr 15 09:52:04 UTC 2024 ",
        f"   RealMemory={n.mem_total_mb} AllocMem=0 FreeMem={int(n.mem_total_mb * 0.6)} Sockets=2 Boards=1",
        f"   State={state} ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A",
        "   Partitions=gpu ",
        f"   BootTime={sim.wallclock(-sim.uptime_offset_s).strftime('%Y-%m-%dT%H:%M:%S')} "
        f"SlurmdStartTime={sim.wallclock(-sim.uptime_offset_s + 60).strftime('%Y-%m-%dT%H:%M:%S')}",
        f"   CfgTRES=cpu={n.ncpu},mem={n.mem_total_mb}M,billing={n.ncpu},gres/gpu={len(n.gpus)}",
    ]
    if n.drain_reason:
        lines.append(f"   Reason={n.drain_reason} [root@{sim.wallclock(sim.time_s).strftime('%Y-%m-%dT%H:%M:%S')}]")
    return "\n".join(lines) + "\n\n"


def _elapsed(seconds: float) -> str:
    """squeue %M: [days-]hours:minutes:seconds, days and hours only when needed."""
    s = int(seconds)
    d, h, m, sec = s // 86400, s // 3600 % 24, s // 60 % 60, s % 60
    if d:
        return f"{d}-{h:02d}:{m:02d}:{sec:02d}"
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def squeue(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    """``squeue [-w NODES] [-h] [-o FORMAT]``: the scenario's one job (simulator.job) on every node
    it runs on; the format letters clusterdoc uses (%i %u %T %t %M %D %b %j %N %P %C %l), with
    optional widths (``%.18i``)."""
    if sim.scenario.cluster.scheduler != "slurm":
        return not_found("squeue")
    fmt, names, noheader = "%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R", None, False
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-o", "--format") and i + 1 < len(argv):
            fmt, i = argv[i + 1], i + 1
        elif a.startswith("--format="):
            fmt = a.split("=", 1)[1]
        elif a in ("-w", "--nodelist") and i + 1 < len(argv):
            names, i = argv[i + 1].split(","), i + 1
        elif a.startswith("--nodelist="):
            names = a.split("=", 1)[1].split(",")
        elif a in ("-h", "--noheader"):
            noheader = True
        i += 1
    if names is not None:
        unknown = [n for n in names if _target(sim, node, n) is None]
        if unknown:
            return 1, "", f"squeue: error: Invalid node name specified: {unknown[0]}\n"
    job_nodes = sim.job_nodes()
    w = sim.scenario.cluster.workload
    on = [n.name for n in job_nodes]
    wanted = names is None or any((t := _target(sim, node, n)) is not None and t.name in on for n in names)
    gpn = sim.scenario.cluster.gpus_per_node
    values = {"i": str(JOB_ID), "u": JOB_USER, "T": "RUNNING", "t": "R", "M": _elapsed(sim.job_elapsed_s()),
              "D": str(len(job_nodes)), "b": f"gres/gpu:{gpn}", "j": w.name if w else "job",
              "N": ",".join(on), "P": "gpu", "C": str(sum(n.ncpu for n in job_nodes)), "l": "UNLIMITED",
              "R": ",".join(on)}
    heads = {"i": "JOBID", "u": "USER", "T": "STATE", "t": "ST", "M": "TIME", "D": "NODES", "b": "TRES_PER_NODE",
             "j": "NAME", "N": "NODELIST", "P": "PARTITION", "C": "CPUS", "l": "TIME_LIMIT", "R": "NODELIST(REASON)"}

    def render(table: dict[str, str]) -> str:
        def one(m: re.Match[str]) -> str:
            text = table.get(m.group(3), "")
            width = int(m.group(2) or 0)
            text = text[:width] if width else text  # squeue cuts a field to its width
            return text.rjust(width) if m.group(1) else text.ljust(width)
        return _SQUEUE_FIELD.sub(one, fmt)

    lines = [] if noheader else [render(heads)]
    if job_nodes and wanted:
        lines.append(render(values))
    return 0, "".join(line + "\n" for line in lines), ""


_SQUEUE_FIELD = re.compile(r"%(\.)?(\d+)?([A-Za-z])")


def _pods(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    """``kubectl get pods -A --field-selector spec.nodeName=N -o json``: the job's worker pod on a
    node it runs on, plus the device plugin's DaemonSet pod every GPU node has."""
    selector = ""
    for k, a in enumerate(argv):
        if a == "--field-selector" and k + 1 < len(argv):
            selector = argv[k + 1]
        elif a.startswith("--field-selector="):
            selector = a.split("=", 1)[1]
    wanted = list(sim.nodes.values())
    if selector.startswith("spec.nodeName="):
        t = _target(sim, node, selector.split("=", 1)[1])
        wanted = [t] if t is not None else []
    w = sim.scenario.cluster.workload
    job = w.name if w else "job"
    started = sim.wallclock(JOB_STARTED_S).strftime("%Y-%m-%dT%H:%M:%SZ")
    booted = sim.wallclock(-sim.uptime_offset_s + 120).strftime("%Y-%m-%dT%H:%M:%SZ")
    on = {n.name for n in sim.job_nodes()}
    items: list[dict[str, object]] = []
    for t in wanted:
        items.append({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"nvidia-device-plugin-daemonset-{t.index:05x}", "namespace": "kube-system",
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "controller": True,
                                              "name": "nvidia-device-plugin-daemonset"}]},
            "spec": {"nodeName": t.name, "containers": [{"name": "nvidia-device-plugin-ctr", "resources": {}}]},
            "status": {"phase": "Running", "startTime": booted},
        })
        if t.name in on:
            gpus = str(len(t.gpus))
            items.append({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"{job}-worker-{t.index}", "namespace": JOB_USER,
                             "labels": {"job-name": job},
                             "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "controller": True,
                                                  "name": job}]},
                "spec": {"nodeName": t.name, "containers": [{"name": "trainer", "resources": {
                    "limits": {"nvidia.com/gpu": gpus}, "requests": {"nvidia.com/gpu": gpus}}}]},
                "status": {"phase": "Running", "startTime": started},
            })
    doc = {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}
    return 0, json.dumps(doc, indent=4) + "\n", ""


def kubectl(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    if sim.scenario.cluster.scheduler != "kubernetes":
        return not_found("kubectl")
    words = [a for a in argv if not a.startswith("-")]
    if len(words) >= 2 and words[0] == "get" and words[1] in ("pod", "pods", "po"):
        return _pods(sim, node, argv)
    args = [a for a in argv if not a.startswith("-")]
    if not args:
        return 1, "", "error: You must specify the type of resource to get.\n"
    verb = args[0]
    if verb == "get" and len(args) >= 2 and args[1] in ("node", "nodes", "no"):
        names = args[2:] or list(sim.nodes)
        lines = [] if "--no-headers" in argv else ["NAME      STATUS                     ROLES    AGE   VERSION"]
        for name in names:
            t = _target(sim, node, name)
            if t is None:
                return 1, "", f'Error from server (NotFound): nodes "{name}" not found\n'
            status = "NotReady" if t.unreachable else "Ready"
            if t.drained:
                status += ",SchedulingDisabled"
            lines.append(f"{t.name:<9} {status:<26} <none>   41d   v1.29.3")
        return 0, "\n".join(lines) + "\n", ""
    if verb in ("cordon", "uncordon", "drain") and len(args) >= 2:
        t = _target(sim, node, args[1])
        if t is None:
            return 1, "", f'Error from server (NotFound): nodes "{args[1]}" not found\n'
        if verb == "uncordon":
            sim.resume(t)
            return 0, f"node/{t.name} uncordoned\n", ""
        already = t.drained
        sim.drain(t, "cordoned by clusterdoc", full=verb == "drain")
        if verb == "cordon":
            return 0, f"node/{t.name} {'already cordoned' if already else 'cordoned'}\n", ""
        job = sim.scenario.cluster.workload.name if sim.scenario.cluster.workload else "job"
        return 0, (
            f"node/{t.name} {'already cordoned' if already else 'cordoned'}\n"
            f"evicting pod default/{job}-worker-{t.index}\n"
            f"pod/{job}-worker-{t.index} evicted\n"
            f"node/{t.name} drained\n"
        ), ""
    return 1, "", f'error: unknown command "{verb}" for "kubectl"\n'


# --------------------------------------------------------------------------- services and files


_SERVICE_ALIASES = {"chrony": "chronyd", "ssh": "sshd", "dcgm": "nvidia-dcgm", "fabricmanager": "nvidia-fabricmanager"}


def _unit(name: str) -> str:
    base = name[:-8] if name.endswith(".service") else name
    return _SERVICE_ALIASES.get(base, base)


def systemctl(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    args = [a for a in argv if not a.startswith("-")]
    if not args:
        return 1, "", "Too few arguments.\n"
    verb, units = args[0], [_unit(u) for u in args[1:]]
    if verb == "is-active":
        states = [node.services.get(u, "inactive") for u in units]
        return (0 if all(s == "active" for s in states) else 3), "".join(s + "\n" for s in states), ""
    if verb in ("restart", "start", "reload-or-restart", "try-restart"):
        for u in units:
            if u not in node.services:
                return 5, "", f"Failed to {verb} {u}.service: Unit {u}.service not found.\n"
        for u in units:
            sim.restart_service(node, u)
        return 0, "", ""
    if verb == "status":
        out = []
        rc = 0
        for u in units:
            state = node.services.get(u)
            if state is None:
                return 4, "", f"Unit {u}.service could not be found.\n"
            sub = "running" if state == "active" else "failed" if state == "failed" else "dead"
            rc = rc or (0 if state == "active" else 3)
            out += [
                f"● {u}.service",
                f"     Loaded: loaded (/lib/systemd/system/{u}.service; enabled; vendor preset: enabled)",
                f"     Active: {state} ({sub}) since {sim.wallclock(-3600).strftime('%a %Y-%m-%d %H:%M:%S UTC')}; 1h ago",
            ]
        return rc, "\n".join(out) + "\n", ""
    return 1, "", f"Unknown command verb {verb}.\n"


_CPU_DIR = "/sys/devices/system/cpu/cpu"
_GOVERNOR = "/cpufreq/scaling_governor"


def read_file(sim: SimCluster, node: NodeState, path: str) -> tuple[str | None, str]:
    """Contents of a simulated file, or (None, error)."""
    if path == "/proc/loadavg":
        return loadavg_text(sim, node), ""
    if path.startswith(_CPU_DIR) and path.endswith(_GOVERNOR):
        return node.governor + "\n", ""
    if path == "/proc/driver/nvidia/version" and node.gpu_spec.vendor == "nvidia":
        return (
            f"NVRM version: NVIDIA UNIX x86_64 Kernel Module  {node.driver_version}  Sat Feb 17 01:12:25 UTC 2024\n"
            "GCC version:  gcc version 11.4.0 (Ubuntu 11.4.0-1ubuntu1~22.04) \n"
        ), ""
    if path in ("/etc/hostname",):
        return node.name + "\n", ""
    if path == sim.TRAIN_LOG:
        if not sim.scenario.cluster.workload or sim.scenario.cluster.workload.kind == "none":
            return None, "No such file or directory"
        return sim.train_log(node), ""
    if path.startswith("/proc/") and path.endswith("/environ"):
        pid = path.split("/")[2]
        if node.job_running and pid == "48213":
            env = {"PATH": "/usr/local/cuda/bin:/usr/local/bin:/usr/bin:/bin", "HOME": "/home/train",
                   "MASTER_ADDR": sim.hosts[0], "MASTER_PORT": "29500",
                   "WORLD_SIZE": str(len(sim.hosts) * len(node.gpus)), "LOCAL_WORLD_SIZE": str(len(node.gpus)),
                   "CUDA_DEVICE_MAX_CONNECTIONS": "1", **node.nccl_env}
            return "".join(f"{k}={v}\0" for k, v in env.items()), ""
        return None, "No such file or directory"
    if path.startswith("/dev/shm/") and path[9:] in node.shm_files:
        return "", ""
    return None, "No such file or directory"


def _expand(node: NodeState, sim: SimCluster, pattern: str) -> list[str]:
    if not any(ch in pattern for ch in "*?["):
        return [pattern]
    candidates: list[str] = []
    if pattern.startswith("/sys/"):
        candidates += [f"{_CPU_DIR}{i}{_GOVERNOR}" for i in range(node.ncpu)]
    candidates += [f"/dev/shm/{n}" for n in node.shm_files]
    candidates += [f"/usr/lib/x86_64-linux-gnu/libnccl.so.{v}" for v in (node.nccl_version.split(".")[0], node.nccl_version)]
    hits = [c for c in candidates if fnmatch.fnmatchcase(c, pattern)]
    return hits or [pattern]


def cat(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    paths = [a for a in argv if not a.startswith("-")]
    out, err, rc = [], [], 0
    for pattern in paths:
        for p in _expand(node, sim, pattern):
            text, problem = read_file(sim, node, p)
            if text is None:
                err.append(f"cat: {p}: {problem}")
                rc = 1
            else:
                out.append(text)
    return rc, "".join(out), "".join(e + "\n" for e in err)


def tail(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    n = 10
    paths = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "-n" and i + 1 < len(argv):
            try:
                n = int(argv[i + 1].lstrip("+"))
            except ValueError:
                return 1, "", f"tail: invalid number of lines: '{argv[i + 1]}'\n"
            i += 2
            continue
        if a.startswith("-n"):
            n = int(a[2:] or 10)
        elif a.startswith("-") and a[1:].isdigit():
            n = int(a[1:])
        elif not a.startswith("-"):
            paths.append(a)
        i += 1
    if not paths:
        return 1, "", "tail: no file given\n"
    text, problem = read_file(sim, node, paths[0])
    if text is None:
        return 1, "", f"tail: cannot open '{paths[0]}' for reading: {problem}\n"
    lines = text.splitlines(keepends=True)
    return 0, "".join(lines[-n:] if n else []), ""


def ls(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    long = any(a.startswith("-") and "l" in a for a in argv)
    paths = [a for a in argv if not a.startswith("-")] or ["."]
    out = []
    rc = 0
    err = []
    for pattern in paths:
        if pattern.rstrip("/") == "/dev/shm":
            names = sorted(node.shm_files)
            if long:
                out.append(f"total {int(sum(node.shm_files.values()) * 1024)}")
                for name in names:
                    size = int(node.shm_files[name] * 1024 * 1024)
                    stamp = sim.wallclock(-7200).strftime("%b %d %H:%M")
                    out.append(f"-rw------- 1 train train {size:>11} {stamp} {name}")
            else:
                out += names
            continue
        matches = [p for p in _expand(node, sim, pattern) if p != pattern or not any(c in p for c in "*?[")]
        existing = [p for p in matches if p.startswith(("/usr/lib/", "/dev/shm/", "/sys/"))]
        if not existing:
            err.append(f"ls: cannot access '{pattern}': No such file or directory")
            rc = 2
        out += existing
    return rc, "".join(o + "\n" for o in out), "".join(e + "\n" for e in err)


def find(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    """Only what clean_shm needs: find /dev/shm [-mindepth/-maxdepth N] [-type f] [-name P]
    [-user U] [-mmin +N] [-print] [-delete]."""
    if not argv or argv[0].rstrip("/") != "/dev/shm":
        return 1, "", f"find: '{argv[0] if argv else ''}': Permission denied\n"
    name_pat = "*"
    min_age = None
    delete = "-delete" in argv
    i = 1
    while i < len(argv):
        a = argv[i]
        if a in ("-name", "-user", "-mmin", "-type", "-maxdepth", "-mindepth") and i + 1 < len(argv):
            if a == "-name":
                name_pat = argv[i + 1]
            elif a == "-mmin":
                try:
                    min_age = float(argv[i + 1].lstrip("+"))
                except ValueError:
                    return 1, "", f"find: invalid argument `{argv[i + 1]}' to `-mmin'\n"
            i += 2
            continue
        i += 1
    hits = []
    for name in list(node.shm_files):
        if not fnmatch.fnmatchcase(name, name_pat):
            continue
        # the running job's own segments are fresh; everything else is a crashed job's leftover
        fresh = node.job_running and name.startswith(("nccl-", "torch_"))
        if min_age is not None and fresh:
            continue
        hits.append(name)
    out = [f"/dev/shm/{h}" for h in hits] if not delete or "-print" in argv else []
    if delete:
        for h in hits:
            sim.remove_shm(node, h)
    return 0, "".join(o + "\n" for o in out), ""


def rm(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    err = []
    for pattern in (a for a in argv if not a.startswith("-")):
        for p in _expand(node, sim, pattern):
            if p.startswith("/dev/shm/") and p[9:] in node.shm_files:
                sim.remove_shm(node, p[9:])
            elif "-f" not in argv and not any(a.startswith("-") and "f" in a for a in argv):
                err.append(f"rm: cannot remove '{p}': No such file or directory")
    return (1 if err else 0), "", "".join(e + "\n" for e in err)


def curl(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    """Only dcgm-exporter's endpoint on the node itself (http://localhost:9400/metrics)."""
    urls = [a for a in argv if a.startswith(("http://", "https://", "localhost", "127.0.0.1"))]
    url = urls[0] if urls else ""
    local = any(h in url for h in ("localhost:9400", "127.0.0.1:9400", f"{node.name}:9400"))
    if local and url.rstrip("/").endswith("/metrics") and node.gpu_spec.vendor == "nvidia":
        return 0, sim.dcgm_metrics(node.name), ""
    return 7, "", f"curl: (7) Failed to connect to {url or 'host'}: Connection refused\n"


def hostname(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    if "-I" in argv or "-i" in argv:
        return 0, f"{sim.ip_of(node.name)}\n", ""
    return 0, node.name + "\n", ""


def echo(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    args = [a for a in argv if a != "-n"]
    return 0, " ".join(args) + ("" if "-n" in argv else "\n"), ""


def true_(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    return 0, "", ""


def false_(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    return 1, "", ""


def date(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    now: datetime = sim.wallclock(sim.time_s) + timedelta(seconds=node.ntp_offset_s)
    if any(a.startswith("+%s") for a in argv):
        return 0, f"{now.timestamp():.0f}\n", ""
    fmt = next((a[1:] for a in argv if a.startswith("+")), None)
    if fmt is not None:  # date '+%Y-%m-%dT%H:%M:%S%z' and the like (the simulated clock is UTC)
        return 0, now.strftime(fmt) + "\n", ""
    return 0, now.strftime("%a %b %d %H:%M:%S UTC %Y") + "\n", ""


def uname(sim: SimCluster, node: NodeState, argv: list[str]) -> Out:
    if "-r" in argv:
        return 0, "5.15.0-105-generic\n", ""
    return 0, "Linux\n", ""


HANDLERS: dict[str, Handler] = {
    "dmesg": dmesg,
    "journalctl": journalctl,
    "lspci": lspci,
    "ibstat": ibstat,
    "ibv_devinfo": ibv_devinfo,
    "df": df,
    "free": free,
    "uptime": uptime,
    "nproc": nproc,
    "ps": ps,
    "pgrep": pgrep,
    "chronyc": chronyc,
    "ping": ping,
    "all_reduce_perf": all_reduce_perf,
    "sinfo": sinfo,
    "squeue": squeue,
    "scontrol": scontrol,
    "kubectl": kubectl,
    "systemctl": systemctl,
    "cat": cat,
    "tail": tail,
    "ls": ls,
    "find": find,
    "rm": rm,
    "hostname": hostname,
    "curl": curl,
    "echo": echo,
    "true": true_,
    "false": false_,
    "date": date,
    "uname": uname,
}
