"""`clusterdoc` command line: the composition root.

Each layer owns its sub-commands in ``<layer>/cli.py`` with a ``register(subparsers)`` function;
this root only wires them together, importing each lazily so ``clusterdoc check`` never pays for
the LLM or chat stacks.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# sub-command -> module that registers it (imported only when that command runs or --help lists it)
LAYERS: dict[str, str] = {
    "sim": "simulator.cli",
    "check": "diagnostics.cli",
    "perf": "pipelines.perfcli",
    "kb": "kb.cli",
    "diagnose": "pipelines.cli",
    "bot": "clusterdoc.botcli",
    "demo": "clusterdoc.botcli",
    "chat": "clusterdoc.botcli",
    "bench": "benchmark.cli",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clusterdoc",
        description="Diagnose and repair GPU training clusters from chat.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = [LAYERS[only]] if only in LAYERS else list(dict.fromkeys(LAYERS.values()))
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:  # an optional extra is missing: say which command needs what
            if only is not None:
                raise SystemExit(f"clusterdoc: cannot load {name}: {exc}") from exc
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import simulator

    simulator.plug()  # the root plugs the simulated cluster in as one more executor backend
    args_list = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in args_list if not a.startswith("-")), None)
    parser = build_parser(first if first in LAYERS else None)
    args = parser.parse_args(args_list)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
