"""Serve a simulated cluster over SSH from a separate process, with per-node behaviours.

``python -m tests.hardening.sim_server_child SCENARIO --workdir DIR [--behaviours FILE.json]``
prints ``READY <inventory path>`` once listening and serves until stdin closes. Like
``python -m simulator.sshserver`` but it also takes behaviours (hang/drop/refuse/stall per
node), so a 512-node sweep's client does not share a GIL with 512 simulated sshd endpoints.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.hardening.sim_server_child")
    parser.add_argument("scenario")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--behaviours", help="JSON file {host: behaviour}")
    args = parser.parse_args(argv)
    from simulator import SimCluster
    from simulator.scenario import load_scenario
    from simulator.sshserver import serve

    behaviours = json.loads(Path(args.behaviours).read_text()) if args.behaviours else {}
    sim = SimCluster(load_scenario(args.scenario))
    with serve(sim, workdir=args.workdir, behaviours=behaviours) as server:
        print(f"READY {server.inventory_path}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            sys.stdin.read()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
