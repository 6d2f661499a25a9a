"""Validates kb/data/seed.jsonl: the seed records built from public GitHub issue threads.

Reads the file directly (no kb code; tool names and fault kinds come from the registry and
the scenario format), so it guards the data contract on its own:
field presence and types, vocabularies (categories, registry tool names, fault kinds),
uniqueness, URL shape, size bounds and the stratified perceivable/benchmark split.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from diagnostics.registry import default_registry
from simulator.scenario import FAULT_KINDS as SCENARIO_FAULT_KINDS

SEED_PATH = Path(__file__).resolve().parents[2] / "kb" / "data" / "seed.jsonl"

MIN_RECORDS = 250
MIN_PER_CATEGORY = 15
PERCEIVABLE_RANGE = (0.15, 0.25)
RAWTEXT_CHARS = (400, 2500)
PROBLEMKEY_LEN = (2, 6)

CATEGORIES = frozenset(
    {
        "network",
        "gpu_hardware",
        "thermal_power",
        "memory",
        "storage",
        "software_version",
        "configuration",
        "scheduler",
    }
)
# The registry and the scenario format are the sources of truth for tool names and fault kinds.
CHECKS = frozenset(spec.name for spec in default_registry().specs(kind="read_only"))
ACTIONS = frozenset(spec.name for spec in default_registry().specs(kind="mutating"))
FAULT_KINDS = frozenset(SCENARIO_FAULT_KINDS)
SPLITS = frozenset({"perceivable", "benchmark"})
SOURCE_URL = re.compile(
    r"^https://github\.com/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/(issues|pull|discussions)/\d+$"
)
ID_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")

FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "id": str,
    "problemkey": list,
    "rawtext": str,
    "function": list,
    "result": str,
    "source": str,
    "category": str,
    "components": list,
    "origin": str,
    "split": str,
    "fault": (str, type(None)),
}


def _load() -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    with SEED_PATH.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:  # pragma: no cover - message is the point
                pytest.fail(f"{SEED_PATH}:{line_no}: not valid JSON ({exc})")
            assert isinstance(record, dict), f"{SEED_PATH}:{line_no}: a record must be a JSON object"
            records.append(record)
    return records


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    assert SEED_PATH.is_file(), f"missing seed file {SEED_PATH}"
    return _load()


def _where(record: dict[str, Any]) -> str:
    return f"record {record.get('id', '?')!r}"


def test_enough_records(records: list[dict[str, Any]]) -> None:
    assert len(records) >= MIN_RECORDS, f"only {len(records)} seed records, need {MIN_RECORDS}"


def test_every_field_present_and_typed(records: list[dict[str, Any]]) -> None:
    for record in records:
        missing = set(FIELD_TYPES) - set(record)
        assert not missing, f"{_where(record)}: missing fields {sorted(missing)}"
        for field, expected in FIELD_TYPES.items():
            assert isinstance(record[field], expected), f"{_where(record)}: field {field!r} has wrong type"
        for field in ("problemkey", "function", "components"):
            items = record[field]
            assert items, f"{_where(record)}: {field!r} is empty"
            assert all(isinstance(x, str) and x.strip() for x in items), (
                f"{_where(record)}: {field!r} must hold non-empty strings"
            )
            assert len(set(items)) == len(items), f"{_where(record)}: {field!r} has duplicates"
        assert record["result"].strip(), f"{_where(record)}: empty result"


def test_ids_are_unique_slugs(records: list[dict[str, Any]]) -> None:
    ids = Counter(r["id"] for r in records)
    duplicated = [i for i, n in ids.items() if n > 1]
    assert not duplicated, f"duplicate ids: {duplicated}"
    bad = [r["id"] for r in records if not ID_SLUG.match(r["id"])]
    assert not bad, f"ids are not lowercase slugs: {bad}"


def test_sources_are_unique_github_thread_urls(records: list[dict[str, Any]]) -> None:
    sources = Counter(r["source"] for r in records)
    duplicated = [s for s, n in sources.items() if n > 1]
    assert not duplicated, f"duplicate sources: {duplicated}"
    bad = [(r["id"], r["source"]) for r in records if not SOURCE_URL.match(r["source"])]
    assert not bad, f"sources that are not GitHub issue/PR/discussion URLs: {bad}"


def test_function_names_are_registry_tools(records: list[dict[str, Any]]) -> None:
    known = CHECKS | ACTIONS
    for record in records:
        unknown = set(record["function"]) - known
        assert not unknown, f"{_where(record)}: unknown tool names {sorted(unknown)}"
        assert set(record["function"]) & CHECKS, f"{_where(record)}: needs at least one diagnostic check"


def test_vocabularies(records: list[dict[str, Any]]) -> None:
    for record in records:
        assert record["category"] in CATEGORIES, f"{_where(record)}: bad category {record['category']!r}"
        assert record["origin"] == "seed", f"{_where(record)}: origin must be 'seed'"
        assert record["split"] in SPLITS, f"{_where(record)}: bad split {record['split']!r}"
        fault = record["fault"]
        assert fault is None or fault in FAULT_KINDS, f"{_where(record)}: unknown fault kind {fault!r}"


def test_sizes(records: list[dict[str, Any]]) -> None:
    low, high = RAWTEXT_CHARS
    for record in records:
        assert low <= len(record["rawtext"]) <= high, (
            f"{_where(record)}: rawtext has {len(record['rawtext'])} chars, want {low}-{high}"
        )
        assert PROBLEMKEY_LEN[0] <= len(record["problemkey"]) <= PROBLEMKEY_LEN[1], (
            f"{_where(record)}: problemkey needs {PROBLEMKEY_LEN[0]}-{PROBLEMKEY_LEN[1]} keywords"
        )
        assert len(record["result"]) < len(record["rawtext"]), f"{_where(record)}: result longer than facts"


def test_every_category_is_covered(records: list[dict[str, Any]]) -> None:
    counts = Counter(r["category"] for r in records)
    thin = {c: counts.get(c, 0) for c in CATEGORIES if counts.get(c, 0) < MIN_PER_CATEGORY}
    assert not thin, f"categories under {MIN_PER_CATEGORY} records: {thin}"


def test_split_ratio_overall_and_per_category(records: list[dict[str, Any]]) -> None:
    low, high = PERCEIVABLE_RANGE
    share = sum(r["split"] == "perceivable" for r in records) / len(records)
    assert low <= share <= high, f"perceivable share {share:.2%} outside {low:.0%}-{high:.0%}"
    by_category: dict[str, list[str]] = defaultdict(list)
    for record in records:
        by_category[record["category"]].append(record["split"])
    for category, splits in by_category.items():
        assert "perceivable" in splits and "benchmark" in splits, f"{category}: both splits needed"


def test_split_is_the_documented_deterministic_assignment(records: list[dict[str, Any]]) -> None:
    """Within each category, records ordered by sha256(id): the first round(20%) are perceivable."""
    by_category: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_category[record["category"]].append(record)
    for category, members in by_category.items():
        ordered = sorted(members, key=lambda r: hashlib.sha256(r["id"].encode("utf-8")).hexdigest())
        cut = round(len(ordered) * 0.2)
        expected = ["perceivable"] * cut + ["benchmark"] * (len(ordered) - cut)
        actual = [r["split"] for r in ordered]
        assert actual == expected, f"{category}: split differs from the sha256 rule in kb/data/README.md"


def test_benchmark_records_carry_log_evidence(records: list[dict[str, Any]]) -> None:
    """Benchmark questions are built from the facts, so most benchmark records must quote log lines,
    command output or concrete measurements (a few scheduler/design cases only describe symptoms)."""
    evidence = re.compile(
        r"(WARN|ERROR|[Ee]rror|Xid|NCCL|Killed|[Ff]ailed|fatal|CUDA|dmesg|nvidia-smi|ibstat|lspci|ethtool"
        r"|Out of memory|timed out|\w+\.(?:cc|cpp|py|c|h|go):\d+"
        r"|\d+(?:\.\d+)? ?(?:GB/s|Gb/s|MB/s|Gbps|MHz|W|ms|GiB|GB| C)\b)"
    )
    bench = [r for r in records if r["split"] == "benchmark"]
    with_evidence = [r for r in bench if evidence.search(r["rawtext"])]
    assert len(with_evidence) >= 0.85 * len(bench), (
        f"only {len(with_evidence)}/{len(bench)} benchmark records quote log lines or measurements"
    )
