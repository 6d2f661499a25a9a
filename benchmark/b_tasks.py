"""The hand-written metric-B tasks: diagnostic programs against a simulated cluster.

Each task has an inline scenario (faults planted on known nodes and GPUs), a task text for the
model, hidden tests that hard-code what the faults imply (so a wrong or empty answer fails), and a
canonical solution (HumanEval's ``canonical_solution``; never shown to the model) that proves
the task is solvable through the project's executor API. ``build_cases`` links each task to a
benchmark-split knowledge record about the same fault for its ``source``.
"""

from __future__ import annotations

from typing import Any

_TK = (
    "from diagnostics.registry import default_registry\n"
    "from diagnostics.toolkit import Toolkit\n"
)


def _scenario(sid: str, faults: list[dict[str, Any]], *, nodes: int = 6, gpus: int = 8,
              gpu: str = "A100-SXM4-80GB", seed: int = 11, **cluster: Any) -> dict[str, Any]:
    # A training job runs on every scenario: idle GPUs sit at idle clocks, which would make
    # "below half of the maximum clock" true everywhere.
    cluster.setdefault("workload", {"kind": "llm_training", "model_params": 7.0e9, "tokens_per_step": 4194304})
    return {
        "id": sid,
        "description": f"benchmark code task {sid}",
        "cluster": {"nodes": nodes, "gpus_per_node": gpus, "gpu": gpu, "interconnect": "infiniband",
                    "scheduler": "slurm", **cluster},
        "seed": seed,
        "faults": faults,
    }


def _pairs_by_kind(entry: str, check: str, kind: str, extra_params: str = "") -> str:
    """A canonical solution: run one check per host, keep (host, gpu) of findings of one kind."""
    return (
        _TK
        + f"def {entry}(executor, hosts):\n"
        "    tk = Toolkit(default_registry(), executor)\n"
        "    out = set()\n"
        "    for h in hosts:\n"
        f"        r = tk.run({check!r}, h{extra_params})\n"
        f"        out.update((h, f.gpu) for f in r.findings if f.kind == {kind!r})\n"
        "    return sorted(out)\n"
    )


def _hosts_by_kind(entry: str, check: str, kind: str, extra_params: str = "") -> str:
    return (
        _TK
        + f"def {entry}(executor, hosts):\n"
        "    tk = Toolkit(default_registry(), executor)\n"
        "    out = set()\n"
        "    for h in hosts:\n"
        f"        r = tk.run({check!r}, h{extra_params})\n"
        f"        if any(f.kind == {kind!r} for f in r.findings):\n"
        "            out.add(h)\n"
        "    return sorted(out)\n"
    )


def _pairs_test(expected: list[tuple[str, int]], call: str = "candidate(executor, hosts)") -> str:
    return (
        "def check(candidate, executor, hosts):\n"
        f"    got = {call}\n"
        "    assert got is not None, 'returned None'\n"
        "    got = sorted(tuple(x) for x in got)\n"
        f"    assert got == {sorted(expected)!r}, got\n"
    )


def _hosts_test(expected: list[str], call: str = "candidate(executor, hosts)") -> str:
    return (
        "def check(candidate, executor, hosts):\n"
        f"    got = {call}\n"
        "    assert got is not None, 'returned None'\n"
        f"    assert sorted(got) == {sorted(expected)!r}, got\n"
        "    assert len(got) == len(set(got)), 'duplicates: %r' % (got,)\n"
    )


def _pair_task(tid: str, fault: str, category: str, entry: str, check: str, text: str,
               faults: list[dict[str, Any]], **scen: Any) -> dict[str, Any]:
    expected = [(f["node"], f["gpu"]) for f in faults if f["kind"] == fault]
    return {
        "id": tid, "fault": fault, "category": category, "entry_point": entry,
        "task": text, "scenario": _scenario(tid, faults, **scen),
        "tests": _pairs_test(expected), "solution": _pairs_by_kind(entry, check, fault),
    }


def _host_task(tid: str, fault: str, category: str, entry: str, check: str, text: str,
               faults: list[dict[str, Any]], extra_params: str = "", **scen: Any) -> dict[str, Any]:
    expected = sorted({f["node"] for f in faults if f["kind"] == fault})
    return {
        "id": tid, "fault": fault, "category": category, "entry_point": entry,
        "task": text, "scenario": _scenario(tid, faults, **scen),
        "tests": _hosts_test(expected), "solution": _hosts_by_kind(entry, check, fault, extra_params),
    }


SIG = "(executor, hosts)"

TASKS: list[dict[str, Any]] = [
    _pair_task(
        "b-throttled-gpus", "gpu_clock_throttle", "thermal_power", "find_throttled", "gpu_clocks",
        f"Write find_throttled{SIG} returning a sorted list of (host, gpu_index) for every GPU whose current "
        "SM clock is below half of its maximum SM clock.",
        [{"kind": "gpu_clock_throttle", "node": "node-02", "gpu": 1, "sm_clock_mhz": 300, "reason": "hw_slowdown"},
         {"kind": "gpu_clock_throttle", "node": "node-05", "gpu": 6, "sm_clock_mhz": 210,
          "reason": "hw_thermal_slowdown"}],
    ),
    _pair_task(
        "b-throttled-gpus-h100", "gpu_clock_throttle", "thermal_power", "throttled_gpus", "gpu_clocks",
        f"Write throttled_gpus{SIG}: a sorted list of (host, gpu_index) of GPUs running far below their "
        "maximum SM clock (less than half of it).",
        [{"kind": "gpu_clock_throttle", "node": "gpu-a", "gpu": 0, "sm_clock_mhz": 345, "reason": "sw_power_cap"}],
        nodes=4, gpu="H100-SXM5-80GB", names=["gpu-a", "gpu-b", "gpu-c", "gpu-d"],
    ),
    _pair_task(
        "b-power-capped", "gpu_power_cap", "thermal_power", "find_power_capped", "gpu_power",
        f"Write find_power_capped{SIG} returning a sorted list of (host, gpu_index) for GPUs whose enforced "
        "power limit is below their default power limit.",
        [{"kind": "gpu_power_cap", "node": "node-03", "gpu": 2, "power_limit_w": 200},
         {"kind": "gpu_power_cap", "node": "node-03", "gpu": 7, "power_limit_w": 250}],
    ),
    _pair_task(
        "b-hot-gpus", "gpu_thermal", "thermal_power", "find_hot_gpus", "gpu_temperature",
        f"Write find_hot_gpus{SIG} returning a sorted list of (host, gpu_index) of GPUs that are overheating "
        "(temperature high enough to cause thermal slowdown).",
        [{"kind": "gpu_thermal", "node": "node-04", "gpu": 5, "temp_c": 94}],
    ),
    _pair_task(
        "b-ecc-dbe", "gpu_ecc_uncorrectable", "gpu_hardware", "find_ecc_gpus", "gpu_ecc",
        f"Write find_ecc_gpus{SIG} returning a sorted list of (host, gpu_index) of GPUs with uncorrectable "
        "(double-bit) volatile ECC errors.",
        [{"kind": "gpu_ecc_uncorrectable", "node": "node-01", "gpu": 4, "count": 3},
         {"kind": "gpu_ecc_uncorrectable", "node": "node-06", "gpu": 0, "count": 1}],
    ),
    _pair_task(
        "b-row-remap", "gpu_row_remap_pending", "gpu_hardware", "find_remap_pending", "gpu_row_remap",
        f"Write find_remap_pending{SIG} returning a sorted list of (host, gpu_index) of GPUs with a row "
        "remapping pending or failed (they need a reset).",
        [{"kind": "gpu_row_remap_pending", "node": "node-02", "gpu": 3}],
    ),
    _pair_task(
        "b-nvlink-down", "nvlink_down", "gpu_hardware", "find_nvlink_down", "gpu_nvlink",
        f"Write find_nvlink_down{SIG} returning a sorted list of (host, gpu_index) of GPUs with at least one "
        "inactive NVLink link.",
        [{"kind": "nvlink_down", "node": "node-05", "gpu": 2, "link": 3}],
    ),
    _pair_task(
        "b-pcie-downgrade", "pcie_downgrade", "gpu_hardware", "find_pcie_downgraded", "gpu_pcie",
        f"Write find_pcie_downgraded{SIG} returning a sorted list of (host, gpu_index) of GPUs whose current "
        "PCIe link generation or width is below the maximum.",
        [{"kind": "pcie_downgrade", "node": "node-04", "gpu": 1, "width": 8, "gen": 4}],
    ),
    _host_task(
        "b-ib-port-down", "ib_port_down", "network", "hosts_with_ib_down", "ib_ports",
        f"Write hosts_with_ib_down{SIG} returning the sorted list of hosts that have an InfiniBand port "
        "whose state is Down.",
        [{"kind": "ib_port_down", "node": "node-03", "hca": "mlx5_1"},
         {"kind": "ib_port_down", "node": "node-06", "hca": "mlx5_0"}],
    ),
    _host_task(
        "b-ib-degraded", "ib_link_degraded", "network", "hosts_with_slow_ib", "ib_ports",
        f"Write hosts_with_slow_ib{SIG} returning the sorted list of hosts with an InfiniBand port that is "
        "Active but running below the rate of the other ports.",
        [{"kind": "ib_link_degraded", "node": "node-02", "hca": "mlx5_2", "rate_gbps": 100}],
    ),
    _host_task(
        "b-nccl-ib-disabled", "nccl_env_misconfig", "configuration", "hosts_forcing_tcp", "nccl_env",
        f"Write hosts_forcing_tcp{SIG} returning the sorted list of hosts whose training job environment "
        "sets NCCL_IB_DISABLE=1 (NCCL falls back to TCP sockets).",
        [{"kind": "nccl_env_misconfig", "node": "node-04", "env": {"NCCL_IB_DISABLE": "1"}}],
    ),
    _host_task(
        "b-disk-full", "disk_full", "storage", "hosts_with_full_disk", "disk_usage",
        f"Write hosts_with_full_disk{SIG} returning the sorted list of hosts where a filesystem is at least "
        "95% used.",
        [{"kind": "disk_full", "node": "node-01", "mount": "/", "used_pct": 99},
         {"kind": "disk_full", "node": "node-05", "mount": "/", "used_pct": 97}],
    ),
    _host_task(
        "b-shm-small", "shm_too_small", "memory", "hosts_with_small_shm", "shm_size",
        f"Write hosts_with_small_shm{SIG} returning the sorted list of hosts whose /dev/shm is too small "
        "for data loader workers and NCCL (under 1 GiB).",
        [{"kind": "shm_too_small", "node": "node-02", "size_mb": 64}],
    ),
    _host_task(
        "b-oom", "host_oom", "memory", "hosts_with_oom_kills", "memory_oom",
        f"Write hosts_with_oom_kills{SIG} returning the sorted list of hosts whose kernel log shows the OOM "
        "killer killing a process.",
        [{"kind": "host_oom", "node": "node-06", "process": "python"}],
    ),
    _host_task(
        "b-cpu-overload", "cpu_overload", "scheduler", "overloaded_hosts", "cpu_load",
        f"Write overloaded_hosts{SIG} returning the sorted list of hosts whose load average is far above "
        "their CPU count.",
        [{"kind": "cpu_overload", "node": "node-03", "load": 400.0}],
    ),
    _host_task(
        "b-governor", "cpu_governor_powersave", "configuration", "powersave_hosts", "cpu_governor",
        f"Write powersave_hosts{SIG} returning the sorted list of hosts whose CPU frequency governor is "
        "powersave.",
        [{"kind": "cpu_governor_powersave", "node": "node-02"},
         {"kind": "cpu_governor_powersave", "node": "node-04"}],
    ),
    _host_task(
        "b-clock-skew", "clock_skew", "configuration", "skewed_hosts", "clock_sync",
        f"Write skewed_hosts{SIG} returning the sorted list of hosts whose system clock is off from NTP by "
        "more than half a second.",
        [{"kind": "clock_skew", "node": "node-05", "offset_s": 4.5}],
    ),
    _host_task(
        "b-oom-and-shm", "host_oom", "memory", "memory_trouble_hosts", "memory_oom",
        f"Write memory_trouble_hosts{SIG} returning the sorted list of hosts where the kernel OOM killer "
        "fired (a host with only a small /dev/shm does not count).",
        [{"kind": "host_oom", "node": "node-01", "process": "pt_main_thread"},
         {"kind": "shm_too_small", "node": "node-03", "size_mb": 128}],
    ),
    _host_task(
        "b-xid-hosts", "gpu_xid", "gpu_hardware", "hosts_with_xid", "gpu_xid",
        f"Write hosts_with_xid{SIG} returning the sorted list of hosts whose kernel log has an NVIDIA Xid "
        "error.",
        [{"kind": "gpu_xid", "node": "node-02", "gpu": 3, "xid": 31},
         {"kind": "gpu_xid", "node": "node-04", "gpu": 0, "xid": 43}],
    ),
]

# Tasks whose answers are not a plain list of findings: written out in full.
TASKS += [
    {
        "id": "b-xid-codes", "fault": "gpu_xid", "category": "gpu_hardware", "entry_point": "xid_events",
        "task": f"Write xid_events{SIG} returning a sorted list of (host, xid_code) pairs, one per distinct "
                "Xid code seen in each host's kernel log.",
        "scenario": _scenario("b-xid-codes", [
            {"kind": "gpu_xid", "node": "node-01", "gpu": 2, "xid": 13},
            {"kind": "gpu_xid", "node": "node-03", "gpu": 5, "xid": 63}]),
        "tests": _pairs_test([("node-01", 13), ("node-03", 63)]),
        "solution": _TK + "def xid_events(executor, hosts):\n"
                    "    tk = Toolkit(default_registry(), executor)\n"
                    "    out = set()\n"
                    "    for h in hosts:\n"
                    "        for f in tk.run('gpu_xid', h).findings:\n"
                    "            if f.data.get('xid') is not None:\n"
                    "                out.add((h, int(f.data['xid'])))\n"
                    "    return sorted(out)\n",
    },
    {
        "id": "b-missing-gpus", "fault": "gpu_fallen_off_bus", "category": "gpu_hardware",
        "entry_point": "missing_gpus",
        "task": "Write missing_gpus(executor, hosts, expected) returning a dict {host: number_of_visible_gpus} "
                "for the hosts that show fewer than `expected` GPUs.",
        "scenario": _scenario("b-missing-gpus", [{"kind": "gpu_fallen_off_bus", "node": "node-04", "gpu": 6}]),
        "tests": "def check(candidate, executor, hosts):\n"
                 "    got = candidate(executor, hosts, 8)\n"
                 "    assert dict(got) == {'node-04': 7}, got\n",
        "solution": "def missing_gpus(executor, hosts, expected):\n"
                    "    out = {}\n"
                    "    for h in hosts:\n"
                    "        r = executor.run(h, 'nvidia-smi -L', 30.0)\n"
                    "        n = sum(1 for line in r.stdout.splitlines() if line.startswith('GPU '))\n"
                    "        if n < expected:\n"
                    "            out[h] = n\n"
                    "    return out\n",
    },
    {
        "id": "b-total-gpus", "fault": "gpu_fallen_off_bus", "category": "gpu_hardware",
        "entry_point": "total_visible_gpus",
        "task": f"Write total_visible_gpus{SIG} returning the total number of GPUs the driver lists across all "
                "hosts (an int).",
        "scenario": _scenario("b-total-gpus", [{"kind": "gpu_fallen_off_bus", "node": "node-02", "gpu": 1}],
                              nodes=4),
        "tests": "def check(candidate, executor, hosts):\n"
                 "    got = candidate(executor, hosts)\n"
                 "    assert got == 31, got\n",
        "solution": "def total_visible_gpus(executor, hosts):\n"
                    "    total = 0\n"
                    "    for h in hosts:\n"
                    "        r = executor.run(h, 'nvidia-smi -L', 30.0)\n"
                    "        total += sum(1 for line in r.stdout.splitlines() if line.startswith('GPU '))\n"
                    "    return total\n",
    },
    {
        "id": "b-driver-outliers", "fault": "driver_mismatch", "category": "software_version",
        "entry_point": "driver_outliers",
        "task": f"Write driver_outliers{SIG} returning the sorted list of hosts whose NVIDIA driver version "
                "differs from the version most hosts run.",
        "scenario": _scenario("b-driver-outliers",
                              [{"kind": "driver_mismatch", "node": "node-03", "driver_version": "525.105.17"}]),
        "tests": _hosts_test(["node-03"]),
        "solution": _TK + "from collections import Counter\n"
                    "def driver_outliers(executor, hosts):\n"
                    "    tk = Toolkit(default_registry(), executor)\n"
                    "    ver = {h: tk.run('versions', h).data.get('driver') for h in hosts}\n"
                    "    common = Counter(v for v in ver.values() if v).most_common(1)[0][0]\n"
                    "    return sorted(h for h, v in ver.items() if v != common)\n",
    },
    {
        "id": "b-driver-map", "fault": "driver_mismatch", "category": "software_version",
        "entry_point": "driver_versions",
        "task": f"Write driver_versions{SIG} returning a dict {{host: driver_version_string}} (as nvidia-smi "
                "reports it, e.g. '535.161.08').",
        "scenario": _scenario("b-driver-map",
                              [{"kind": "driver_mismatch", "node": "node-02", "driver_version": "550.54.15"}],
                              nodes=3),
        "tests": "def check(candidate, executor, hosts):\n"
                 "    got = dict(candidate(executor, hosts))\n"
                 "    assert got == {'node-01': '535.161.08', 'node-02': '550.54.15', 'node-03': '535.161.08'}, got\n",
        "solution": _TK + "def driver_versions(executor, hosts):\n"
                    "    tk = Toolkit(default_registry(), executor)\n"
                    "    return {h: tk.run('versions', h).data.get('driver') for h in hosts}\n",
    },
    {
        "id": "b-unreachable", "fault": "node_unreachable", "category": "network",
        "entry_point": "unreachable_hosts",
        "task": f"Write unreachable_hosts{SIG} returning the sorted list of hosts that do not answer commands "
                "(connection timeouts or refusals). Use short timeouts.",
        "scenario": _scenario("b-unreachable", [{"kind": "node_unreachable", "node": "node-05"}]),
        "tests": _hosts_test(["node-05"]),
        "solution": "def unreachable_hosts(executor, hosts):\n"
                    "    out = []\n"
                    "    for h in hosts:\n"
                    "        r = executor.run(h, 'hostname', 5.0)\n"
                    "        if r.transport != 'ok':\n"
                    "            out.append(h)\n"
                    "    return sorted(out)\n",
    },
    {
        "id": "b-healthy-no-throttle", "fault": "gpu_clock_throttle", "category": "thermal_power",
        "entry_point": "find_throttled",
        "task": f"Write find_throttled{SIG} returning a sorted list of (host, gpu_index) for every GPU whose "
                "current SM clock is below half of its maximum SM clock (an empty list when none is).",
        "scenario": _scenario("b-healthy-no-throttle", [], nodes=4, gpu="H800-SXM5-80GB"),
        "tests": "def check(candidate, executor, hosts):\n"
                 "    got = candidate(executor, hosts)\n"
                 "    assert got is not None and list(got) == [], got\n"
                 "    assert len(hosts) == 4\n"
                 "    assert isinstance(got, (list, tuple))\n",
        "solution": _pairs_by_kind("find_throttled", "gpu_clocks", "gpu_clock_throttle"),
    },
    {
        "id": "b-gpu-problem-hosts", "fault": "gpu_ecc_uncorrectable", "category": "gpu_hardware",
        "entry_point": "hosts_with_gpu_faults",
        "task": f"Write hosts_with_gpu_faults{SIG} returning the sorted list of hosts with any GPU hardware "
                "problem: a throttled GPU, uncorrectable ECC errors, or an Xid error in the kernel log. Hosts "
                "whose only problem is not a GPU (e.g. a full disk) must not be listed.",
        "scenario": _scenario("b-gpu-problem-hosts", [
            {"kind": "gpu_clock_throttle", "node": "node-01", "gpu": 7, "sm_clock_mhz": 250, "reason": "hw_slowdown"},
            {"kind": "gpu_ecc_uncorrectable", "node": "node-04", "gpu": 2, "count": 2},
            {"kind": "disk_full", "node": "node-05", "mount": "/", "used_pct": 99}]),
        "tests": _hosts_test(["node-01", "node-04"]),
        "solution": _TK + "def hosts_with_gpu_faults(executor, hosts):\n"
                    "    tk = Toolkit(default_registry(), executor)\n"
                    "    kinds = {'gpu_clock_throttle', 'gpu_ecc_uncorrectable', 'gpu_xid', 'gpu_fallen_off_bus'}\n"
                    "    out = set()\n"
                    "    for h in hosts:\n"
                    "        for check in ('gpu_clocks', 'gpu_ecc', 'gpu_xid'):\n"
                    "            if any(f.kind in kinds for f in tk.run(check, h).findings):\n"
                    "                out.add(h)\n"
                    "    return sorted(out)\n",
    },
    {
        "id": "b-classify-slowdown", "fault": "gpu_power_cap", "category": "thermal_power",
        "entry_point": "classify_slow_gpus",
        "task": f"Write classify_slow_gpus{SIG} returning a dict mapping 'host:gpu_index' to 'thermal' for "
                "GPUs that overheat and to 'power' for GPUs whose power limit was lowered below the default.",
        "scenario": _scenario("b-classify-slowdown", [
            {"kind": "gpu_thermal", "node": "node-02", "gpu": 4, "temp_c": 95},
            {"kind": "gpu_power_cap", "node": "node-05", "gpu": 1, "power_limit_w": 180}]),
        "tests": "def check(candidate, executor, hosts):\n"
                 "    got = dict(candidate(executor, hosts))\n"
                 "    assert got == {'node-02:4': 'thermal', 'node-05:1': 'power'}, got\n",
        "solution": _TK + "def classify_slow_gpus(executor, hosts):\n"
                    "    tk = Toolkit(default_registry(), executor)\n"
                    "    out = {}\n"
                    "    for h in hosts:\n"
                    "        for f in tk.run('gpu_temperature', h).findings:\n"
                    "            if f.kind == 'gpu_thermal':\n"
                    "                out[f'{h}:{f.gpu}'] = 'thermal'\n"
                    "        for f in tk.run('gpu_power', h).findings:\n"
                    "            if f.kind == 'gpu_power_cap':\n"
                    "                out[f'{h}:{f.gpu}'] = 'power'\n"
                    "    return out\n",
    },
    {
        "id": "b-min-sm-clock", "fault": "gpu_clock_throttle", "category": "thermal_power",
        "entry_point": "min_sm_clock",
        "task": f"Write min_sm_clock{SIG} returning a dict {{host: lowest current SM clock in MHz among the "
                "host's GPUs}} (ints), read with nvidia-smi --query-gpu.",
        "scenario": _scenario("b-min-sm-clock", [
            {"kind": "gpu_clock_throttle", "node": "node-03", "gpu": 5, "sm_clock_mhz": 240, "reason": "hw_slowdown"}],
            nodes=4),
        "tests": "def check(candidate, executor, hosts):\n"
                 "    got = dict(candidate(executor, hosts))\n"
                 "    assert sorted(got) == sorted(hosts), got\n"
                 "    assert 150 <= int(got['node-03']) <= 400, got\n"
                 "    assert all(int(v) > 900 for h, v in got.items() if h != 'node-03'), got\n",
        "solution": "def min_sm_clock(executor, hosts):\n"
                    "    out = {}\n"
                    "    for h in hosts:\n"
                    "        r = executor.run(h, 'nvidia-smi --query-gpu=clocks.sm --format=csv,noheader,nounits', 30.0)\n"
                    "        vals = [int(float(x.strip())) for x in r.stdout.splitlines() if x.strip()]\n"
                    "        out[h] = min(vals)\n"
                    "    return out\n",
    },
    {
        "id": "b-slowest-rank-host", "fault": "gpu_clock_throttle", "category": "thermal_power",
        "entry_point": "slowest_host",
        "task": f"Write slowest_host{SIG} returning the host whose training ranks report the longest step "
                "times in the job's log (the straggler that slows the synchronous job).",
        "scenario": _scenario("b-slowest-rank-host", [
            {"kind": "gpu_clock_throttle", "node": "node-06", "gpu": 2, "sm_clock_mhz": 200,
             "reason": "hw_thermal_slowdown"}]),
        "tests": "def check(candidate, executor, hosts):\n"
                 "    assert candidate(executor, hosts) == 'node-06'\n",
        "solution": _TK + "def slowest_host(executor, hosts):\n"
                    "    tk = Toolkit(default_registry(), executor)\n"
                    "    for h in hosts:\n"
                    "        for f in tk.run('job_step_times', h).findings:\n"
                    "            if f.kind == 'slow_rank':\n"
                    "                return f.host\n"
                    "    return None\n",
    },
]
