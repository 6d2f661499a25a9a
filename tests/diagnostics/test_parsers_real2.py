"""A second set of real command outputs pasted in public threads (fixtures/real2, sources and the
facts an engineer reads from each in EXPECTED.jsonl, collected without looking at the parsers):
what a user pastes in chat is read (``read_pasted``) or, for kernel lines, matched by the
signature catalog, and the readings state those facts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from diagnostics.parsers.detect import PastedReading, read_pasted
from diagnostics.signatures import load_catalog

DIR = Path(__file__).parent / "fixtures" / "real2"
CASES = [json.loads(line) for line in (DIR / "EXPECTED.jsonl").read_text().splitlines() if line.strip()]
# Read by the signature catalog, not by a tool reader (kernel lines other than Xid/OOM).
BY_SIGNATURES = {"soft_lockups"}
# Formats with nothing for a reader to judge (a process list alone).
NOTHING_TO_JUDGE = {"gpu_section_present"}


def _all_text(readings: list[PastedReading]) -> str:
    return "\n".join([r.summary for r in readings] + [f.message for r in readings for f in r.findings])


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_real_output_is_read_with_its_facts(case: dict[str, Any]) -> None:
    text = (DIR / case["file"]).read_text(encoding="utf-8", errors="replace")
    facts = case["facts"]
    if BY_SIGNATURES & set(facts):
        ids = {m.signature.id for m in load_catalog().match(text)}
        assert any("lockup" in i for i in ids), ids
        return
    if NOTHING_TO_JUDGE & set(facts):
        return
    readings = read_pasted(text)
    assert readings, f"{case['file']}: not recognised as {case['tool']}"
    assert not any(r.summary.startswith("could not read") for r in readings), [r.summary for r in readings]
    said = _all_text(readings)
    findings = [f for r in readings for f in r.findings]
    for port in facts.get("ports_down", []):
        assert port in said and any(port in f.message for f in findings), said
    if facts.get("ports_down") == [] and "ports_active" in facts:
        assert not findings
    if facts.get("gpu_with_error"):
        assert findings, said
    for xid in facts.get("xids", []):
        assert f"Xid {xid}" in said, said
    if facts.get("fallen_off_bus"):
        assert "fallen off the bus" in said and any(f.severity == "critical" for f in findings)
    for key in ("mounts_over_95pct", "mounts_inodes_over_95pct"):
        if facts.get(key):
            assert facts[key][0] in said, said
    for node in facts.get("nodes_drained", []):
        assert node in said or "drain" in said.lower(), said
    if facts.get("remap_pending"):
        assert any(f.severity == "critical" and "remap" in f.message for f in findings), said
    if "synchronized" in facts:
        assert bool(findings) is (not facts["synchronized"]), said
    for gpu, links in (facts.get("inactive_links") or {}).items():
        assert all(str(link) in said for link in links) and f"GPU {gpu}" in said, said
    if "avg_busbw_gbs" in facts:
        assert f"{facts['avg_busbw_gbs']:g}" in said, said
    if facts.get("error") == "Unable to determine the device handle":
        assert any(f.severity == "critical" and facts["bus"].lower() in f.message.lower() for f in findings), said


def test_most_real_outputs_are_recognised() -> None:
    recognised = sum(bool(read_pasted((DIR / c["file"]).read_text(errors="replace"))) for c in CASES)
    judged = [c for c in CASES if not (BY_SIGNATURES | NOTHING_TO_JUDGE) & set(c["facts"])]
    assert recognised >= len(judged)
