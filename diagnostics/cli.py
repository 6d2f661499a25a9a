"""``clusterdoc sim up`` and ``clusterdoc check``.

    clusterdoc sim up SCENARIO [--run-dir DIR] [--inventory OUT] [--port-base N]
    clusterdoc check --inventory FILE [--hosts a,b] [--level quick|medium|long] [--tools t1,t2]
                     [--json] [--concurrency N]
    clusterdoc check --scenario FILE ...   (in-process simulator, no SSH)

``check`` exits 0 when everything is clean, 1 when anything was found (or could not be checked),
2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from diagnostics.registry import LEVELS
from diagnostics.types import ClusterdocError, Executor, Status

EXIT_CLEAN, EXIT_FINDINGS, EXIT_BAD_INPUT = 0, 1, 2


def register(subparsers: Any) -> None:
    sim = subparsers.add_parser("sim", help="serve a simulated cluster")
    sim_sub = sim.add_subparsers(dest="sim_command", metavar="SIM_COMMAND")
    up = sim_sub.add_parser("up", help="serve every node of a scenario over SSH on 127.0.0.1")
    up.add_argument("scenario", help="scenario YAML (formats/scenario.md)")
    up.add_argument("--run-dir", help="folder for inventory, known_hosts and client key (default ./sim-<id>)")
    up.add_argument("--inventory", help="also write the inventory here")
    up.add_argument("--port-base", type=int, default=0, help="first port (node i gets base+i); 0: any free ports")
    up.set_defaults(handler=cmd_sim_up)
    sim.set_defaults(handler=lambda args: _usage(sim))

    check = subparsers.add_parser("check", help="run read-only checks on many nodes")
    src = check.add_mutually_exclusive_group(required=True)
    src.add_argument("--inventory", help="inventory YAML (nodes reached over SSH)")
    src.add_argument("--scenario", help="scenario YAML: check the simulator in-process instead")
    check.add_argument("--hosts", help="comma-separated node names (default: all)")
    check.add_argument("--level", default="quick", choices=LEVELS, help="run checks up to this level")
    check.add_argument("--tools", help="comma-separated check names (default: all up to --level)")
    check.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    check.add_argument("--concurrency", type=int, default=32, help="nodes checked at once (default 32)")
    check.add_argument("--connect-timeout", type=float, default=10.0, help="SSH connect timeout, seconds")
    check.add_argument("--accept-new-host-keys", action="store_true",
                       help="trust unknown host keys on first use (a changed key is always refused)")
    check.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    check.set_defaults(handler=cmd_check)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_BAD_INPUT


def _fail(command: str, message: str) -> int:
    print(f"clusterdoc {command}: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _split(text: str | None) -> list[str] | None:
    if not text:
        return None
    return [t.strip() for t in text.split(",") if t.strip()] or None


def _simulator(scenario_path: str) -> Any:
    from diagnostics.scenario import load_scenario

    scenario = load_scenario(scenario_path)
    try:
        from diagnostics.sim import SimCluster  # type: ignore[attr-defined,unused-ignore]
    except ImportError as exc:
        raise ClusterdocError(f"the simulated cluster is not available: {exc}") from None
    return SimCluster(scenario)


# ---- sim up -------------------------------------------------------------------------------
def cmd_sim_up(args: argparse.Namespace) -> int:
    from diagnostics.sim.sshserver import SimSSHServer

    try:
        sim = _simulator(args.scenario)
    except ClusterdocError as exc:
        return _fail("sim up", str(exc))
    scenario_id = getattr(getattr(sim, "scenario", None), "id", Path(args.scenario).stem)
    run_dir = Path(args.run_dir or f"sim-{scenario_id}")
    try:
        server = SimSSHServer(sim, workdir=run_dir, port_base=args.port_base).start()
    except (OSError, ValueError) as exc:
        return _fail("sim up", str(exc))
    try:
        inventory_path = server.inventory_path
        if args.inventory:
            assert server.inventory is not None
            inventory_path = server.inventory.save(args.inventory)
        ports = [server.port(h) for h in server.hosts]
        print(f"serving {len(ports)} simulated nodes of {scenario_id} on 127.0.0.1 ports {min(ports)}-{max(ports)}")
        print(f"run folder: {run_dir}  (inventory, known_hosts, client_key)")
        print("check them with:")
        print(f"  clusterdoc check --inventory {inventory_path}")
        print("press Ctrl-C to stop", flush=True)
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not stop.wait(0.5):
                pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        print("stopping", file=sys.stderr)
    finally:
        server.close()
    return EXIT_CLEAN


# ---- check --------------------------------------------------------------------------------
def cmd_check(args: argparse.Namespace) -> int:
    from diagnostics.registry import default_registry
    from diagnostics.toolkit import Toolkit

    if args.concurrency < 1:
        return _fail("check", f"--concurrency must be at least 1, got {args.concurrency}")
    executor: Executor
    try:
        if args.scenario:
            sim = _simulator(args.scenario)
            executor = sim.executor()
            hosts_all = list(sim.hosts)
            cluster = sim.scenario.cluster
            scheduler, gpus_per_node = cluster.scheduler, cluster.gpus_per_node
        else:
            from diagnostics.executors.ssh import SSHConfig, SSHExecutor
            from diagnostics.inventory import load_inventory

            inventory = load_inventory(args.inventory)
            config = SSHConfig(connect_timeout_s=args.connect_timeout, accept_new_host_keys=args.accept_new_host_keys)
            executor = SSHExecutor(inventory, config)
            hosts_all = inventory.names
            scheduler, gpus_per_node = inventory.scheduler, inventory.gpus_per_node
        hosts = _split(args.hosts) or hosts_all
        unknown = [h for h in hosts if h not in hosts_all]
        if unknown:
            return _fail("check", f"unknown host(s) {', '.join(unknown)}; known: {', '.join(hosts_all)}")
        toolkit = Toolkit(default_registry(), executor, scheduler=scheduler)
        tools = _split(args.tools)
        specs = toolkit.sweep_specs(tools, args.level)
        if not specs:
            return _fail("check", "no checks to run (diagnostics.checks not installed?)")
        tool_params = _default_tool_params(specs, gpus_per_node)
    except (ClusterdocError, ValueError) as exc:
        return _fail("check", str(exc))
    try:
        report = toolkit.sweep(
            hosts, tools, args.level, args.concurrency, progress=not args.no_progress and not args.json,
            tool_params=tool_params,
        )
    except ClusterdocError as exc:
        return _fail("check", str(exc))
    finally:
        executor.close()
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print_report(report)
    not_clean = report.findings() or any(
        r.status in (Status.ERROR, Status.TIMEOUT, Status.UNREACHABLE) for r in report.all_results()
    )
    return EXIT_FINDINGS if not_clean else EXIT_CLEAN


def _default_tool_params(specs: Sequence[Any], gpus_per_node: int | None) -> dict[str, dict[str, Any]]:
    """Params a sweep can fill from the inventory: the expected GPU count per node."""
    out: dict[str, dict[str, Any]] = {}
    for spec in specs:
        if gpus_per_node is not None and any(p.name == "expected" for p in spec.params):
            out[spec.name] = {"expected": gpus_per_node}
    return out


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def print_report(report: Any) -> None:
    findings = report.findings()
    if findings:
        rows = [
            [f.host, "" if f.gpu is None else str(f.gpu), f.severity, f.kind, f.message.replace("\n", " ")[:100]]
            for f in findings
        ]
        print(_table(rows, ["HOST", "GPU", "SEVERITY", "KIND", "MESSAGE"]))
    else:
        print("no findings")
    failed = [r for r in report.all_results() if r.status in (Status.ERROR, Status.TIMEOUT, Status.UNREACHABLE)]
    if failed:
        print()
        print("checks that did not complete:")
        rows = [[r.host, r.tool, r.status.value, r.error.replace("\n", " ")[:100]] for r in failed]
        print(_table(rows, ["HOST", "CHECK", "STATUS", "WHY"]))
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report.counts().items()))
    print()
    print(f"{len(report.results)} hosts, {report.checks_run} checks ({counts}), "
          f"{len(findings)} findings in {report.wall_s:.1f}s")
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
