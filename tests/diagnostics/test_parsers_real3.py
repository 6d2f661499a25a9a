"""A third set of real command outputs pasted in public threads (fixtures/real3; sources and the
facts an engineer reads from each in EXPECTED.jsonl, written before any parser ran on them; see
FACT_CORRECTIONS.md there for facts later found misread). It favours tools the first two sets
lacked (perfquery, ibqueryerrors, ibportstate, rdma link, ethtool -S, ip -s link, lspci LnkSta,
dcgmi diag/discovery/health, AER/EDAC/MCE kernel lines, ras-mc-ctl, squeue, sinfo -R, chronyc
sources, stat -f, systemctl/journal unit failures, kubectl YAML) and odd variants (prompts, HTML
copies, inline backticks, localized dates and numbers, truncated pastes, NULL/"On" values).

First run, before any parser change: the facts test passed 12 of 61 pastes and failed 49 - 43 not
recognised at all (no reader for the format: only 18 of 61 recognised), 6 read with a fact missing
(a GPU lost without Xid, dcgmi's MIG error, an HTML copy of kubectl describe, sinfo's
NODES(A/I/O/T), the GPU count from a pasted nccl-tests command, an 'On' in the ECC column); the
reader crash test passed 61 of 61. After the fixes: 61 of 61, 61 of 61, and the cut-paste test
(added with the fixes) 14 of 14.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from diagnostics.parsers import detect
from diagnostics.parsers.common import ParseError, clean
from diagnostics.parsers.detect import PastedFinding, read_pasted
from tests.diagnostics.test_parsers_real2 import _all_text

DIR = Path(__file__).parent / "fixtures" / "real3"
CASES = [json.loads(line) for line in (DIR / "EXPECTED.jsonl").read_text().splitlines() if line.strip()]


def _text(case: dict[str, Any]) -> str:
    return (DIR / case["file"]).read_text(encoding="utf-8", errors="replace")


def _finding_text(findings: list[PastedFinding]) -> str:
    return "\n".join(f"{f.message} {f.device or ''}" for f in findings).lower()


def test_every_fixture_has_facts_and_a_source() -> None:
    files = sorted(p.name for p in DIR.glob("*.txt"))
    assert len(files) >= 35
    assert sorted(c["file"] for c in CASES) == files
    for c in CASES:
        assert c["source"].startswith("https://github.com/") and c["tool"] and c["facts"], c


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_real_output_is_read_with_its_facts(case: dict[str, Any]) -> None:
    facts = case["facts"]
    readings = read_pasted(_text(case))
    assert readings, f"{case['file']}: not recognised as {case['tool']}"
    said = _all_text(readings)
    low = said.lower()
    findings = [f for r in readings for f in r.findings]
    ftext = _finding_text(findings)
    if facts.get("unreadable"):
        # a header with no data row: the reading must not pass for a healthy result
        assert any(r.summary.startswith("could not read") for r in readings) or findings, said
        return
    assert not any(r.summary.startswith("could not read") for r in readings), said
    if "anomaly" in facts:
        if facts["anomaly"]:
            assert findings, said
        else:
            assert not [f for f in findings if f.severity in ("critical", "error")], said
    if facts.get("critical") is True:
        assert any(f.severity == "critical" for f in findings), said
    if facts.get("critical") is False:
        assert not any(f.severity == "critical" for f in findings), said
    for device in facts.get("problem_devices", []) + facts.get("ports_down", []):
        assert device.lower() in ftext, said
    for name in facts.get("counters_nonzero", {}):
        assert name.lower() in ftext, said
    for xid in facts.get("xids", []):
        assert f"Xid {xid}" in said, said
    if facts.get("gpu_lost"):
        assert any(f.severity == "critical" and "lost" in f.message.lower() for f in findings), said
    for node in facts.get("nodes_drained", []):
        assert node in said, said
    for job in facts.get("pending_jobs", []):
        assert job in said, said
    if "synchronized" in facts:
        assert bool(findings) is (not facts["synchronized"]), said
    if facts.get("error") == "Unable to determine the device handle":
        assert any(f.severity == "critical" and facts["bus"].lower() in f.message.lower() for f in findings), said
    if "gpus" in facts:
        assert re.search(rf"\b{facts['gpus']} GPUs?\b", said), said
    for link in (facts.get("links") or {}).values():
        assert link in said, said
    if "rows" in facts:
        assert f"{facts['rows']} result row" in said, said
    if "peak_busbw_gbs" in facts:
        assert f"{facts['peak_busbw_gbs']:g}" in said, said
    lnk = facts.get("lnksta")
    if lnk:
        if lnk["speed_downgraded"]:
            assert "downgraded" in ftext and lnk["speed"].lower() in ftext, said
        if lnk["width_downgraded"]:
            assert lnk["width"].lower() in ftext, said
    aer = facts.get("aer")
    if aer:
        assert aer["severity"].lower() in ftext and "aer" in ftext, said
        for dev in aer["devices"]:
            assert dev in ftext, said
    edac = facts.get("edac")
    if edac:
        assert edac["location"].lower() in ftext, said
        if edac["ue"]:
            assert any(f.severity == "critical" for f in findings), said
        if edac["ce"]:
            assert re.search(rf"\b{edac['ce']}\b", said), said
    if facts.get("mce_logged") or facts.get("mce_corrected"):
        assert "machine check" in low, said
    if facts.get("apei"):
        assert facts["apei"]["device"] in said, said
    dcgm = facts.get("dcgm_failed")
    if dcgm:
        assert dcgm["test"].lower() in ftext and all(f"gpu {g}" in ftext for g in dcgm["gpus"]), said
    for unit in facts.get("failed_units", []):
        assert unit.lower() in ftext, said
    if "gpu_capacity" in facts:
        assert str(facts["gpu_capacity"]) in said and str(facts["gpu_allocatable"]) in said, said
    if "node" in facts:
        assert facts["node"] in said, said
    for mount, pct in (facts.get("mounts") or {}).items():
        assert mount in said and f"{pct}%" in said, said
    if "mem_total_kib" in facts:
        assert str(facts["mem_total_kib"]) in said, said
    if "selected_source" in facts:
        assert facts["selected_source"] in said, said
    for value in (facts.get("unknown_values") or {}).values():
        assert value.lower() in ftext, said


def test_every_real_output_is_recognised() -> None:
    missing = [c["file"] for c in CASES if not read_pasted(_text(c))]
    assert not missing, missing


def _variants(text: str) -> list[str]:
    """The paste cut at several points, with CRLF, with binary garbage appended."""
    cuts = [text[: len(text) * k // 5] for k in range(1, 5)]
    return [*cuts, text.replace("\n", "\r\n"), text + "\x00\xff\x1b[31m" + text[:40], text.upper()]


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_readers_raise_only_parse_errors_on_real_and_mangled_pastes(case: dict[str, Any]) -> None:
    """Every reader that recognises a (cut, mangled) paste either reads it or raises ParseError
    with a reason: never another exception (which read_pasted would otherwise hide)."""
    for variant in [_text(case), *_variants(_text(case))]:
        cleaned = clean(variant)
        for tool, reader in detect._recognised(cleaned):
            try:
                summary, findings = reader(cleaned)
            except ParseError as exc:
                assert exc.problem, tool
                continue
            assert isinstance(summary, str) and all(isinstance(f, PastedFinding) for f in findings), tool
        assert isinstance(read_pasted(variant), list)


# What a cut paste of each format read by the readers added with this set can be: a header, a title,
# a key without its value. None holds a reading, so none may read as healthy.
NO_DATA = [
    "NIC statistics:\n",
    "| GPU ID | Device Information |\n+--------+--------------------+\n",
    "             JOBID PARTITION     NAME     USER ST       TIME  NODES NODELIST(REASON)\n",
    "MS Name/IP address         Stratum Poll Reach LastRx Last sample\n=========\n",
    "REASON               USER      TIMESTAMP           NODELIST\n",
    "Successfully ran diagnostic for group.\n+---------------------------+----------+\n| Diagnostic | Result |\n",
    "status:\n  allocatable:\n",
    "SymbolErrorCounter:..............\nPortRcvErrors:...................\n",
    "Link 0: Replay Errors:\n",
    "<nvidia_smi_log>\n",
    "\t\tLnkSta:\tSpeed\n",
    "/sys/devices/system/edac/mc/mc0/ce_count\n",
    "# perfquery 5 1\n",
    "link mlx5_0/1 subnet_prefix fe80:0000:0000:0000 lid 3\n",
]


@pytest.mark.parametrize("text", NO_DATA)
def test_cut_pastes_with_no_value_never_read_as_healthy(text: str) -> None:
    readings = read_pasted(text)
    for r in readings:
        assert r.summary.startswith("could not read") or r.findings, (text, r)
