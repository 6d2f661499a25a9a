"""`clusterdoc kb ingest|search|stats`: the knowledge base from the command line."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from diagnostics.types import ClusterdocError
from kb.config import STORES, KBConfig
from kb.errors import IngestError, KBConfigError
from kb.taxonomy import CATEGORIES


def register(subparsers: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        type=Path,
        help="knowledge base folder (default $CLUSTERDOC_DATA_DIR/kb or ~/.local/share/clusterdoc/kb)",
    )
    common.add_argument(
        "--store", choices=STORES, help="store backend (default: config kb.store, else memory)"
    )
    common.add_argument(
        "--config", type=Path, help="TOML file whose [kb] table configures the knowledge base"
    )
    common.add_argument(
        "--embeddings",
        action="store_true",
        default=None,
        help="fuse BM25 with MiniLM embeddings (needs the 'embeddings' extra)",
    )

    kb = subparsers.add_parser("kb", help="knowledge base of past failures: ingest, search, stats")
    sub = kb.add_subparsers(dest="kb_command", metavar="KB_COMMAND")
    kb.set_defaults(handler=lambda args: _usage(kb))

    ingest = sub.add_parser(
        "ingest", parents=[common], help="add records (JSONL) or issue threads (markdown)"
    )
    ingest.add_argument("path", type=Path, help="a .jsonl file, a .md thread, or a folder of them")
    ingest.add_argument("--json", action="store_true", help="print the report as JSON")
    ingest.set_defaults(handler=cmd_ingest)

    search = sub.add_parser("search", parents=[common], help="find past failures like this one")
    search.add_argument("query", help='error lines or symptoms, e.g. "NCCL timeout after 1800s"')
    search.add_argument("--top-k", type=int, default=5, help="how many records (default 5)")
    search.add_argument(
        "--category", action="append", choices=CATEGORIES, help="only this category (repeatable)"
    )
    search.add_argument(
        "--component", action="append", help="only records naming this component (repeatable)"
    )
    search.add_argument(
        "--fair",
        action="store_true",
        help="benchmark mode: search only the perceivable split (production searches every record)",
    )
    search.add_argument("--all-splits", action="store_true", help="every record (the default; kept for old scripts)")
    search.add_argument("--json", action="store_true", help="print hits as JSON")
    search.set_defaults(handler=cmd_search)

    stats = sub.add_parser("stats", parents=[common], help="what the knowledge base holds")
    stats.add_argument("--fair", action="store_true", help="benchmark mode: count only the perceivable split")
    stats.add_argument("--all-splits", action="store_true", help="every record (the default; kept for old scripts)")
    stats.add_argument("--json", action="store_true", help="print as JSON")
    stats.set_defaults(handler=cmd_stats)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def config_from_args(args: argparse.Namespace) -> KBConfig:
    if args.config is not None:
        try:
            data = tomllib.loads(args.config.read_text(encoding="utf-8"))
        except OSError as exc:
            raise KBConfigError(f"{args.config}: cannot read: {exc.strerror or exc}") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise KBConfigError(f"{args.config}: invalid TOML: {exc}") from exc
        table = data.get("kb", {})
        if not isinstance(table, dict):
            raise KBConfigError(f"{args.config}: [kb] must be a table")
        config = KBConfig.from_mapping(table, source=str(args.config))
    else:
        config = KBConfig.from_env()
    overrides: dict[str, Any] = {}
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir.expanduser()
    if args.store is not None:
        overrides["store"] = args.store
    if args.embeddings:
        overrides["embeddings"] = True
    if getattr(args, "fair", False):
        overrides["include_benchmark_split"] = False
    elif getattr(args, "all_splits", False):
        overrides["include_benchmark_split"] = True
    return replace(config, **overrides) if overrides else config


def _run(fn: Any, args: argparse.Namespace) -> int:
    """User mistakes and unavailable stores end as one line on stderr, never a traceback."""
    try:
        return int(fn(args))
    except IngestError as exc:
        report = exc.report
        if getattr(args, "json", False):
            print(json.dumps(report.to_dict(), indent=2))
        else:
            print(f"ingested {report.summary()}")
        print(f"clusterdoc kb: error: {exc}", file=sys.stderr)
        return 1
    except ClusterdocError as exc:
        print(f"clusterdoc kb: error: {exc}", file=sys.stderr)
        return 1


def cmd_ingest(args: argparse.Namespace) -> int:
    return _run(_ingest, args)


def cmd_search(args: argparse.Namespace) -> int:
    return _run(_search, args)


def cmd_stats(args: argparse.Namespace) -> int:
    return _run(_stats, args)


def _kb(args: argparse.Namespace) -> Any:
    from kb.knowledge import KnowledgeBase

    kb = KnowledgeBase(config_from_args(args))
    kb.warm_up()
    return kb


def _ingest(args: argparse.Namespace) -> int:
    kb = _kb(args)
    try:
        report = kb.ingest(args.path)
    finally:
        kb.close()
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(f"ingested {report.summary()}")
        for warning in report.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    return 0


def _search(args: argparse.Namespace) -> int:
    filters: dict[str, list[str]] = {}
    if args.category:
        filters["category"] = args.category
    if args.component:
        filters["component"] = args.component
    kb = _kb(args)
    try:
        hits = kb.search(args.query, top_k=args.top_k, filters=filters or None)
    finally:
        kb.close()
    if args.json:
        print(json.dumps([h.to_dict() for h in hits], indent=2, ensure_ascii=False))
        return 0
    if not hits:
        print("no matching records")
        return 0
    for hit in hits:
        r = hit.record
        print(f"{hit.rank}. [{r.category}] {r.id}  score {hit.score:.2f}  ({r.split}, {r.origin})")
        print(f"   problem: {', '.join(r.problemkey)}")
        print(textwrap.indent(textwrap.fill("cause: " + " ".join(r.result.split()), 100), "   "))
        if r.function:
            print(f"   check/fix: {', '.join(r.function)}")
        print(f"   source: {r.source}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    kb = _kb(args)
    try:
        stats = kb.stats()
    finally:
        kb.close()
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    print(f"store: {stats['store']}   data dir: {stats['data_dir']}")
    print(
        f"records: {stats['total']}   retrievable ({', '.join(stats['retrievable_splits'])}): "
        f"{stats['retrievable']}"
    )
    for key in ("by_split", "by_origin", "by_category", "by_component"):
        items = ", ".join(f"{k} {v}" for k, v in stats[key].items()) or "-"
        print(f"{key[3:]}: {items}")
    return 0
