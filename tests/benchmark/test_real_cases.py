"""The held-out real cases (benchmark/cases/real/): they load, have their sources, and share no
thread with what the agent knows (knowledge base records, signatures, shipped cases), so a score
on them measures the general case rather than recall."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from benchmark.cases import load_cases
from diagnostics.faults import CATEGORIES, normalize_category

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT / "benchmark" / "cases" / "real"
_GITHUB = re.compile(r"https?://github\.com/([^/\s]+/[^/\s]+)/(?:issues|pull|discussions)/(\d+)")


def _threads(text: str) -> set[str]:
    return {f"{repo.lower()}#{n}" for repo, n in _GITHUB.findall(text)}


def _known_threads() -> set[str]:
    """Every GitHub thread the agent may have read: KB records, signature sources, shipped cases."""
    text = [(ROOT / "kb" / "data" / "seed.jsonl").read_text(encoding="utf-8")]
    text += [p.read_text(encoding="utf-8") for p in (ROOT / "kb" / "data" / "records").glob("*.jsonl")]
    for p in (ROOT / "diagnostics" / "data" / "signatures").glob("*.yaml"):
        text += [str(s.get("source", "")) for s in yaml.safe_load(p.read_text(encoding="utf-8"))["signatures"]]
    # the shipped A/B/C cases were written from knowledge-base records (scenario files were not)
    text += [p.read_text(encoding="utf-8") for p in (ROOT / "benchmark" / "cases").glob("[abc]_*.jsonl")]
    return _threads("\n".join(text))


def test_real_cases_load_with_sources_and_categories() -> None:
    loaded = load_cases(sorted(REAL.glob("*.jsonl")))
    assert not loaded.problems, [str(p) for p in loaded.problems]
    assert not loaded.duplicates
    assert len(loaded.by_metric("A")) >= 40
    assert len(loaded.by_metric("C")) >= 30
    for case in loaded.cases:
        assert case.source.startswith("http"), case.id
    for path in REAL.glob("c_*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                assert normalize_category(row["category"]) in CATEGORIES, row["id"]


def test_real_cases_share_no_thread_with_what_the_agent_knows() -> None:
    known = _known_threads()
    held_out: set[str] = set()
    for path in REAL.glob("*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                held_out |= _threads(json.loads(line).get("source", ""))
    assert held_out, "no GitHub sources found"
    assert not held_out & known, sorted(held_out & known)
