"""``clusterdoc sim up``: serve a scenario's nodes as real SSH endpoints on 127.0.0.1.

    clusterdoc sim up SCENARIO [--run-dir DIR] [--inventory OUT] [--port-base N]
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from diagnostics.types import ClusterdocError
from simulator.cluster import SimCluster
from simulator.scenario import load_scenario
from simulator.sshserver import SimSSHServer

EXIT_CLEAN, EXIT_BAD_INPUT = 0, 2


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



def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_BAD_INPUT


def _fail(command: str, message: str) -> int:
    print(f"clusterdoc {command}: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _simulator(scenario_path: str) -> SimCluster:
    return SimCluster(load_scenario(scenario_path))


# ---- sim up -------------------------------------------------------------------------------
def cmd_sim_up(args: argparse.Namespace) -> int:
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


