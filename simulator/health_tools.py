"""Healthy answers of a simulated node to the generic health checks' commands
(``diagnostics.health_checks``): systemctl --failed, ps states, the PCIe AER / EDAC / InfiniBand
sysfs greps, ``ip -s link``, /proc/mounts, ``df -P -T``, ``lfs`` and ``dcgmi diag``.

``health_output(sim, node, argv, command)`` returns ``(stdout, exit_code)`` in the real tools'
formats, or None for any command it does not own (the caller answers those). Everything here is a
healthy node: faults are the caller's business. ``node`` may be any object: attributes are read
with defaults (hostname/name, gpus with ``bus``/``pci_bus_id``, hcas with ``name``).
"""

from __future__ import annotations

import shlex
from typing import Any

_HGX_BUSES = (0x07, 0x0B, 0x48, 0x4C, 0x88, 0x8B, 0xC8, 0xCB)

_AER_NAMES = {
    "correctable": ("RxErr", "BadTLP", "BadDLLP", "Rollover", "Timeout", "NonFatalErr", "CorrIntErr", "HeaderOF",
                    "TOTAL_ERR_COR"),
    "fatal": ("Undefined", "DLP", "SDES", "TLP", "FCP", "CmpltTO", "CmpltAbrt", "UnxCmplt", "RxOF", "MalfTLP", "ECRC",
              "UnsupReq", "ACSViol", "UncorrIntErr", "BlockedTLP", "AtomicOpBlocked", "TLPBlockedErr",
              "TOTAL_ERR_FATAL"),
}
_AER_NAMES["nonfatal"] = (*_AER_NAMES["fatal"][:-1], "TOTAL_ERR_NONFATAL")

_DCGM_ROWS = (
    ("Deployment", ("Denylist", "NVML Library", "CUDA Main Library", "Permissions and OS Blocks", "Persistence Mode",
                    "Environment Variables", "Page Retirement/Row Remap", "Graphics Processes", "Inforom")),
)


def _name(node: Any) -> str:
    return str(getattr(node, "hostname", None) or getattr(node, "name", None) or "node")


def _gpu_buses(node: Any) -> list[str]:
    """'0000:07:00.0'-style bus ids of the node's GPUs that are still on the bus."""
    out = []
    gpus = getattr(node, "gpus", None)
    if gpus is None:
        gpus = [None] * 8
    for i, g in enumerate(gpus):
        if g is not None and getattr(g, "present", True) is False:
            continue
        bus = getattr(g, "bus", None) if g is not None else None
        if isinstance(bus, int):
            out.append(f"0000:{bus:02x}:00.0")
            continue
        text = getattr(g, "pci_bus_id", None) if g is not None else None
        if isinstance(text, str) and text.count(":") == 2:
            dom, b, rest = text.split(":")
            out.append(f"{dom[-4:]}:{b}:{rest}".lower())
            continue
        out.append(f"0000:{_HGX_BUSES[i] if i < len(_HGX_BUSES) else 0x10 + 0x10 * i:02x}:00.0")
    return out


def _hcas(node: Any) -> list[str]:
    hcas = getattr(node, "hcas", None)
    if hcas is None:
        return []
    return [str(getattr(h, "name", None) or f"mlx5_{i}") for i, h in enumerate(hcas)]


def _hca_buses(node: Any) -> list[str]:
    return [f"0000:{0x0c + 0x10 * i:02x}:00.0" for i, _ in enumerate(_hcas(node))]


# --------------------------------------------------------------------------- answers


def _systemctl(argv: list[str]) -> tuple[str, int] | None:
    if "--failed" in argv or any(a.startswith("--state=failed") for a in argv):
        if "--no-legend" in argv:
            return "", 0
        return "  UNIT LOAD ACTIVE SUB DESCRIPTION\n0 loaded units listed.\n", 0
    return None


def _ps(node: Any, argv: list[str]) -> tuple[str, int] | None:
    spec = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("-o", "-eo")), "")
    if "stat" not in spec or "wchan" not in spec:
        return None
    job = bool(getattr(node, "job_running", True))
    rows = [(1, "Ss", "ep_poll", 1_040_400, "systemd"), (2, "S", "kthreadd", 1_040_400, "kthreadd"),
            (812, "Ss", "ep_poll", 1_040_390, "systemd-journal"), (1822, "Ss", "do_select", 1_040_380, "sshd"),
            (2311, "Ss", "do_select", 1_040_370, "nvidia-persistenced"),
            (2402, "Ssl", "futex_wait_queue", 1_040_360, "chronyd")]
    if job:
        n = len(getattr(node, "gpus", None) or [None] * 8)
        rows += [(48_213 + i, "Rl" if i % 2 == 0 else "Sl", "-" if i % 2 == 0 else "futex_wait_queue", 7_260,
                  "python") for i in range(n)]
    rows.append((99_001, "R+", "-", 0, "ps"))
    lines = ["    PID STAT WCHAN                            ELAPSED COMMAND"]
    lines += [f"{pid:>7} {stat:<4} {wchan:<32} {el:>7} {comm}" for pid, stat, wchan, el, comm in rows]
    return "\n".join(lines) + "\n", 0


def _grep(node: Any, argv: list[str]) -> tuple[str, int] | None:
    paths = [a for a in argv[1:] if a.startswith("/")]
    if not paths:
        return None
    lines: list[str] = []
    missing: list[str] = []
    for pattern in paths:
        hits: list[str] = []
        if "/aer_dev_" in pattern and pattern.startswith("/sys/bus/pci/devices/"):
            kind = pattern.rsplit("aer_dev_", 1)[1]
            for bus in [*_gpu_buses(node), *_hca_buses(node)]:
                hits += [f"/sys/bus/pci/devices/{bus}/aer_dev_{kind}:{n} 0" for n in _AER_NAMES.get(kind, ())]
        elif pattern.startswith("/sys/devices/system/edac/mc/") and pattern.endswith(("ce_count", "ue_count")):
            hits.append(pattern.replace("mc*", "mc0") + ":0")
        elif pattern.startswith("/sys/class/infiniband/") and "/counters/" in pattern:
            counter = pattern.rsplit("/", 1)[1]
            hits += [f"/sys/class/infiniband/{hca}/ports/1/counters/{counter}:0" for hca in _hcas(node)]
        else:
            return None
        if hits:
            lines += hits
        else:
            missing.append(pattern)
    # grep exits 2 when a glob matched no file (its 'No such file or directory' goes to stderr)
    return "".join(ln + "\n" for ln in lines), 2 if missing else 0


def _ip(node: Any, argv: list[str]) -> tuple[str, int] | None:
    args = [a for a in argv[1:] if not a.startswith("-")]
    if not args or args[0] not in ("link", "l", "li", "lin"):
        return None
    i = sum(ord(c) for c in _name(node)) % 200
    blocks = [
        ("1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000",
         "    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00", 81_204_113, 402_117),
        ("2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 9000 qdisc mq state UP mode DEFAULT group default qlen 1000",
         f"    link/ether 3c:ec:ef:00:{i:02x}:10 brd ff:ff:ff:ff:ff:ff", 912_345_678_901, 731_245_112),
    ]
    for h, _hca in enumerate(_hcas(node)[:1]):
        blocks.append((f"{3 + h}: ib{h}: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 4092 qdisc mq state UP mode DEFAULT "
                       "group default qlen 256",
                       f"    link/infiniband 00:00:10:29:fe:80:00:00:00:00:00:00:b8:ce:f6:03:00:{i:02x}:{h:02x}:20 brd "
                       "00:ff:ff:ff:ff:12:40:1b:ff:ff:00:00:00:00:00:00:ff:ff:ff:ff", 48_112_993_201, 9_812_334))
    lines = []
    for head, link, nbytes, packets in blocks:
        lines += [head, link,
                  "    RX:  bytes packets errors dropped  missed   mcast",
                  f"    {nbytes:>10} {packets:>7} {0:>6} {0:>7} {0:>7} {0:>7}",
                  "    TX:  bytes packets errors dropped carrier collsns",
                  f"    {nbytes:>10} {packets:>7} {0:>6} {0:>7} {0:>7} {0:>7}"]
    return "\n".join(lines) + "\n", 0


_PROC_MOUNTS = (
    "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\n"
    "proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n"
    "udev /dev devtmpfs rw,nosuid,relatime,size=1031712564k,nr_inodes=257928141,mode=755,inode64 0 0\n"
    "tmpfs /run tmpfs rw,nosuid,nodev,noexec,relatime,size=206376884k,mode=755,inode64 0 0\n"
    "/dev/nvme0n1p2 / ext4 rw,relatime 0 0\n"
    "tmpfs /dev/shm tmpfs rw,nosuid,nodev,inode64 0 0\n"
    "/dev/nvme0n1p1 /boot/efi vfat rw,relatime,fmask=0077,dmask=0077,codepage=437,iocharset=iso8859-1 0 0\n"
    "10.0.0.5:/export/home /home nfs4 rw,relatime,vers=4.2,rsize=1048576,wsize=1048576,namlen=255,hard,proto=tcp,"
    "timeo=600,retrans=2,sec=sys,clientaddr={ip},local_lock=none,addr=10.0.0.5 0 0\n"
)


def _df_t(paths: list[str]) -> str:
    rows = [("udev", "devtmpfs", 1_031_712_564, 0, "/dev"), ("tmpfs", "tmpfs", 206_376_884, 5_744, "/run"),
            ("/dev/nvme0n1p2", "ext4", 3_750_745_616, 412_300_112, "/"),
            ("tmpfs", "tmpfs", 1_031_884_420, 0, "/dev/shm"),
            ("/dev/nvme0n1p1", "vfat", 1_098_628, 6_220, "/boot/efi"),
            ("10.0.0.5:/export/home", "nfs4", 21_474_836_480, 9_123_456_000, "/home")]
    if paths:
        def best(p: str) -> str:
            return max((r[4] for r in rows if p == r[4] or p.startswith(r[4].rstrip("/") + "/")), key=len)
        wanted = {best(p) for p in paths}
        rows = [r for r in rows if r[4] in wanted]
    lines = ["Filesystem            Type      1024-blocks       Used   Available Capacity Mounted on"]
    for fs, typ, total, used, mount in rows:
        pct = -(-used * 100 // total) if total else 0
        lines.append(f"{fs:<21} {typ:<9} {total:>11} {used:>10} {total - used:>11} {pct:>7}% {mount}")
    return "\n".join(lines) + "\n"


def _dcgmi(node: Any, argv: list[str]) -> tuple[str, int] | None:
    if len(argv) < 2 or argv[1] != "diag":
        return None
    if not getattr(node, "gpus", None) and getattr(node, "gpus", None) is not None:
        return "Error: No GPUs found on this system.\n", 255
    sep = "+---------------------------+------------------------------------------------+"
    lines = ["Successfully ran diagnostic for group.", sep,
             "| Diagnostic                | Result                                         |",
             "+===========================+================================================+",
             "|-----  Metadata  ----------+------------------------------------------------|",
             f"| {'DCGM Version':<25} | {'3.3.5':<46} |",
             f"| {'Driver Version Detected':<25} | {getattr(node, 'driver_version', '550.54.15'):<46} |"]
    for section, tests in _DCGM_ROWS:
        lines.append(f"|-----  {section}  {'-' * (18 - len(section))}+{'-' * 48}|")
        lines += [f"| {t:<25} | {'Pass':<46} |" for t in tests]
    lines.append(sep)
    return "\n".join(lines) + "\n", 0


def _strip_wrappers(argv: list[str]) -> list[str]:
    argv = list(argv)
    while argv and argv[0] in ("sudo", "env", "nice", "command", "exec"):
        argv = argv[1:]
    if argv and argv[0] == "timeout":
        argv = argv[1:]
        while argv and argv[0].startswith("-"):
            argv = argv[2:] if argv[0] in ("-s", "-k", "--signal", "--kill-after") else argv[1:]
        argv = argv[1:]  # the duration
    return argv


def health_output(sim: Any, node: Any, argv: list[str], command: str) -> tuple[str, int] | None:
    """(stdout, exit code) of a healthy node for one of the health checks' commands, else None.
    ``argv`` may still start with ``sudo``/``timeout N``; ``command`` is used when argv is empty."""
    try:
        argv = _strip_wrappers(argv if argv else shlex.split(command))
    except ValueError:
        return None
    if not argv:
        return None
    prog = argv[0].rsplit("/", 1)[-1]
    if prog == "systemctl":
        return _systemctl(argv)
    if prog == "ps":
        return _ps(node, argv)
    if prog == "grep":
        return _grep(node, argv)
    if prog == "ip":
        return _ip(node, argv)
    if prog == "cat" and argv[1:] == ["/proc/mounts"]:
        ip = sim.ip_of(_name(node)) if hasattr(sim, "ip_of") else "10.0.0.21"
        return _PROC_MOUNTS.replace("{ip}", str(ip)), 0
    if prog == "df" and ("-T" in argv[1:] or "--print-type" in argv[1:]):
        return _df_t([a for a in argv[1:] if a.startswith("/")]), 0
    if prog == "lfs":
        return "", 127
    if prog == "dcgmi":
        return _dcgmi(node, argv)
    return None
