"""The seed's batch files: valid, one record per thread across the seed and every batch, and split
by the documented sha256 rule within each file."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

import pytest

from kb.batches import assign_splits, clean
from kb.config import RECORDS_DIR, SEED_PATH
from kb.records import Record

BATCHES = sorted(RECORDS_DIR.glob("*.jsonl")) if RECORDS_DIR.is_dir() else []


def _rows(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("path", BATCHES, ids=[p.name for p in BATCHES])
def test_batch_file_is_valid_split_and_disjoint_from_the_seed(path: Path) -> None:
    rows = _rows(path)
    seed_sources = {r["source"].rstrip("/") for r in _rows(SEED_PATH)}
    for n, row in enumerate(rows, 1):
        Record.from_dict(row, where=f"{path}:{n}")
        assert row["source"].startswith("https://"), f"{path}:{n}"
        assert row["source"].rstrip("/") not in seed_sources, f"{path}:{n} repeats a seed thread"
    by_category: dict[str, list[dict]] = defaultdict(list)  # type: ignore[type-arg]
    for row in rows:
        by_category[row["category"]].append(row)
    for members in by_category.values():
        ordered = sorted(members, key=lambda r: hashlib.sha256(r["id"].encode()).hexdigest())
        cut = round(len(ordered) * 0.2)
        assert [r["split"] for r in ordered] == ["perceivable"] * cut + ["benchmark"] * (len(ordered) - cut)


def test_no_thread_appears_twice_across_batches() -> None:
    sources = [r["source"].rstrip("/") for p in BATCHES for r in _rows(p)]
    assert len(sources) == len(set(sources))


def test_clean_drops_duplicates_and_bad_rows_and_assigns_splits(tmp_path: Path) -> None:
    seed = tmp_path / "seed.jsonl"
    base = {"problemkey": ["a", "b"], "rawtext": "x" * 50, "function": [], "result": "r", "category": "network",
            "origin": "seed", "split": "perceivable"}
    seed.write_text(json.dumps({**base, "id": "s1", "source": "https://github.com/o/r/issues/2"}) + "\n")
    batch = tmp_path / "b.jsonl"
    rows = [{**base, "id": f"r{i}", "source": f"https://github.com/o/r/issues/{10 + 2 * i}"} for i in range(10)]
    rows.append({**base, "id": "dup", "source": "https://github.com/o/r/issues/2"})  # a seed thread
    rows.append({**base, "id": "bad", "source": "https://github.com/o/r/issues/99", "category": "plumbing"})
    batch.write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n")
    report = clean([batch], seed)
    kept = _rows(batch)
    assert len(kept) == 10 and sum(1 for r in kept if r["split"] == "perceivable") == 2
    assert sum("dropped" in line for line in report) == 3
    assert assign_splits([]) == []
