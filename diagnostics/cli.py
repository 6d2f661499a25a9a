"""``clusterdoc check``.

    clusterdoc check --inventory FILE [--hosts a,b] [--level quick|medium|long] [--tools t1,t2]
                     [--json] [--concurrency N]
    clusterdoc check --scenario FILE ...   (in-process simulator, no SSH; the root plugs it in)

``check`` exits 0 when everything is clean, 1 when anything was found (or could not be checked),
2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from diagnostics.backends import open_cluster
from diagnostics.registry import LEVELS
from diagnostics.types import ClusterdocError, Executor, Status

EXIT_CLEAN, EXIT_FINDINGS, EXIT_BAD_INPUT = 0, 1, 2


def register(subparsers: Any) -> None:
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


# ---- check --------------------------------------------------------------------------------
def cmd_check(args: argparse.Namespace) -> int:
    from diagnostics.registry import default_registry
    from diagnostics.toolkit import Toolkit

    if args.concurrency < 1:
        return _fail("check", f"--concurrency must be at least 1, got {args.concurrency}")
    executor: Executor
    try:
        if args.scenario:
            opened = open_cluster("scenario", args.scenario)
        else:
            from diagnostics.executors.ssh import SSHConfig

            config = SSHConfig(connect_timeout_s=args.connect_timeout, accept_new_host_keys=args.accept_new_host_keys)
            opened = open_cluster("inventory", args.inventory, ssh_config=config)
        executor = opened.executor
        hosts_all = list(opened.hosts)
        scheduler, gpus_per_node = opened.scheduler, opened.gpus_per_node
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
        opened.close()
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print_report(report)
    not_clean = report.findings() or any(
        r.status in (Status.ERROR, Status.TIMEOUT, Status.UNREACHABLE, Status.NOT_CHECKED) for r in report.all_results()
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
    failed = [r for r in report.all_results() if r.status in (Status.ERROR, Status.TIMEOUT, Status.UNREACHABLE, Status.NOT_CHECKED)]
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
