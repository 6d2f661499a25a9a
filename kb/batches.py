"""Maintenance of the seed's batch files (``kb/data/records/*.jsonl``):

    python -m kb.batches kb/data/records/*.jsonl

For each file: drop records whose thread is already in the seed or an earlier file (one record per
root cause per thread, so a repeated source URL is a duplicate), drop invalid records (reported
with file:line), and assign the split by the seed's documented rule (within each category, ordered
by sha256(id), the first round(20%) are ``perceivable``). Files are rewritten in place.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kb.config import SEED_PATH
from kb.errors import RecordError
from kb.records import Record

PERCEIVABLE_SHARE = 0.2


def assign_splits(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_category: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_category[str(row.get("category"))].append(row)
    for members in by_category.values():
        ordered = sorted(members, key=lambda r: hashlib.sha256(str(r["id"]).encode("utf-8")).hexdigest())
        cut = round(len(ordered) * PERCEIVABLE_SHARE)
        for i, row in enumerate(ordered):
            row["split"] = "perceivable" if i < cut else "benchmark"
    return rows


def _sources(path: Path) -> set[str]:
    out: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.add(str(json.loads(line).get("source", "")).rstrip("/"))
    return out


def clean(paths: Sequence[Path], seed: Path = SEED_PATH) -> list[str]:
    """Rewrite each batch file de-duplicated, validated and split; returns what was dropped."""
    seen = _sources(seed) if seed.exists() else set()
    ids: set[str] = set()
    report: list[str] = []
    for path in paths:
        kept: list[dict[str, Any]] = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                row = json.loads(line)
                Record.from_dict(row, where=where)
            except (json.JSONDecodeError, RecordError) as exc:
                report.append(f"{where}: dropped: {exc}")
                continue
            source = str(row.get("source", "")).rstrip("/")
            if source in seen or row["id"] in ids:
                report.append(f"{where}: dropped: duplicate of {source or row['id']}")
                continue
            seen.add(source)
            ids.add(row["id"])
            kept.append(row)
        assign_splits(kept)
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), encoding="utf-8")
        report.append(f"{path}: {len(kept)} records kept")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kb.batches", description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    args = ap.parse_args(argv)
    for line in clean(args.files):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
