"""The signature catalog: shipped data is valid and broad, real lines are read right, operator
files with bad entries load the rest, and hostile text is read safely and bounded."""

from __future__ import annotations

from pathlib import Path

import pytest

from diagnostics import signatures
from diagnostics.faults import CATEGORIES
from diagnostics.signatures import MAX_TEXT, SignatureCatalog, load_catalog, parse_file

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def catalog() -> SignatureCatalog:
    return load_catalog()


def test_shipped_catalog_is_valid_and_broad(catalog: SignatureCatalog) -> None:
    assert catalog.errors == ()
    assert len(catalog) >= 300
    assert len({s.id for s in catalog.signatures}) == len(catalog)
    assert all(s.source.startswith("http") and s.cause and s.fix for s in catalog.signatures)
    by_category = {c: sum(s.category == c for s in catalog.signatures) for c in CATEGORIES}
    # every domain the issue names is covered, not only GPU faults
    for category in ("network", "gpu-hardware", "storage", "memory", "scheduler", "configuration"):
        assert by_category[category] >= 5, by_category
    prefixes = {s.id.split("-")[0] for s in catalog.signatures}
    assert {"xid", "nccl", "kernel", "slurm"} <= prefixes, prefixes


def _ids(catalog: SignatureCatalog, text: str) -> set[str]:
    return {m.signature.id for m in catalog.match(text)}


def _categories(catalog: SignatureCatalog, text: str) -> set[str]:
    return {m.signature.category for m in catalog.match(text)}


# Real lines as printed (kernel logs, job logs, daemons), each with what it must be read as.
REAL_LINES = [
    ("[Tue Jun 11 03:14:10 2024] NVRM: Xid (PCI:0000:3b:00): 79, pid=1421, name=python, GPU has fallen off the bus.",
     "gpu-hardware", "gpu_fallen_off_bus"),
    ("NVRM: Xid (PCI:0000:b1:00): 48, pid='<unknown>', name=<unknown>, An uncorrectable double bit error (DBE) has "
     "been detected on GPU in the framebuffer at partition 6, subpartition 0.", "gpu-hardware", None),
    ("[Rank 3] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=1, OpType=ALLREDUCE, NumelIn=1, "
     "NumelOut=1, Timeout(ms)=600000) ran for 600081 milliseconds before timing out.", "network", None),
    ("[  123.456789] watchdog: BUG: soft lockup - CPU#12 stuck for 22s! [python:4321]", None, None),
    ("[ 9912.1] INFO: task python3:2211 blocked for more than 120 seconds.", None, None),
    ("[ 5.2] EXT4-fs (nvme0n1p2): Remounting filesystem read-only", "storage", None),
    ("[ 77.0] Out of memory: Killed process 9123 (python) total-vm:812345kB, anon-rss:712345kB", "memory", "host_oom"),
]


@pytest.mark.parametrize(("line", "category", "kind"), REAL_LINES)
def test_real_lines_are_read(catalog: SignatureCatalog, line: str, category: str | None, kind: str | None) -> None:
    matches = catalog.match(line)
    assert matches, f"no signature reads: {line}"
    if category:
        assert category in {m.signature.category for m in matches}
    if kind:
        assert kind in {m.signature.fault_kind for m in matches}
    assert all(m.signature.checks or m.signature.action in ("none", "fix-app", "restart-app") for m in matches)


def test_wrapped_fallen_off_the_bus_without_an_xid_line(catalog: SignatureCatalog) -> None:
    text = (FIX / "real" / "dmesg_fallen_off_bus_wrapped_nvsentinel155.txt").read_text()
    assert "gpu_fallen_off_bus" in {m.signature.fault_kind for m in catalog.match(text)}


def test_healthy_chatter_matches_nothing_severe(catalog: SignatureCatalog) -> None:
    chatter = (
        "node-01:1234:1234 [0] NCCL INFO NET/IB : Using [0]mlx5_0:1/IB [1]mlx5_1:1/IB ; OOB ib0:10.0.0.1<0>\n"
        "node-01:1234:1234 [0] NCCL INFO Channel 00/08 :    0   1   2   3   4   5   6   7\n"
        "[    1.0] EDAC MC: Ver: 3.0.0\n"
        "step 1200 | loss 2.113 | lr 3.0e-4 | 412 ms/step\n"
        "[ 3.1] mlx5_core 0000:17:00.0: firmware version: 28.39.1002\n"
    )
    severe = [m for m in catalog.match(chatter) if m.signature.severity in ("critical", "error")]
    assert severe == [], [m.signature.id for m in severe]


def test_a_specific_signature_hides_the_generic_fallback(tmp_path: Path) -> None:
    f = tmp_path / "sigs.yaml"
    f.write_text(
        "version: 1\nsignatures:\n"
        "  - {id: t-any-xid, title: any Xid, pattern: 'Xid \\(PCI:[^)]*\\): \\d+', category: gpu-hardware,"
        " severity: warning, scope: gpu, cause: c, fix: f, source: 'https://x.invalid/1', fallback: true}\n"
        "  - {id: t-xid-79, title: off the bus, pattern: 'Xid \\(PCI:[^)]*\\): 79\\b', category: gpu-hardware,"
        " severity: critical, scope: gpu, cause: c, fix: f, source: 'https://x.invalid/2'}\n")
    sigs, errors = parse_file(f, set())
    assert errors == []
    cat = SignatureCatalog(sigs)
    assert _ids(cat, "NVRM: Xid (PCI:0000:3b:00): 79, pid=1") == {"t-xid-79"}
    assert _ids(cat, "NVRM: Xid (PCI:0000:3b:00): 31, pid=1") == {"t-any-xid"}
    both = cat.match("NVRM: Xid (PCI:0000:3b:00): 79, x\nNVRM: Xid (PCI:0000:3b:00): 13, y\nNVRM: Xid (PCI:0:0): 79, z")
    assert [(m.signature.id, m.count, m.line_no) for m in both] == [("t-xid-79", 2, 1), ("t-any-xid", 1, 2)]


def test_operator_file_bad_entries_are_file_line_errors_and_the_rest_loads(tmp_path: Path) -> None:
    f = tmp_path / "ops.yaml"
    f.write_text(
        "version: 1\n"
        "signatures:\n"
        "  - id: ops-good\n"
        "    title: our storage appliance lost a path\n"
        "    pattern: 'multipathd: .*: remaining active paths: 0'\n"
        "    category: storage\n"
        "    severity: error\n"
        "    scope: node\n"
        "    cause: every path to the LUN is down\n"
        "    fix: check the SAN fabric\n"
        "    checks: [mount_health]\n"
        "    source: https://wiki.example.invalid/runbooks/multipath\n"
        "  - id: ops-backref\n"
        "    title: bad regex\n"
        "    pattern: '(a)\\1'\n"
        "    category: other\n"
        "    severity: error\n"
        "    cause: c\n"
        "    fix: f\n"
        "    source: https://x.invalid\n"
        "  - id: ops-bad-check\n"
        "    title: unknown check\n"
        "    pattern: 'foo'\n"
        "    category: nonsense\n"
        "    severity: error\n"
        "    cause: c\n"
        "    fix: f\n"
        "    source: https://x.invalid\n"
        "  - id: ops-everything\n"
        "    title: matches every line\n"
        "    pattern: '.*'\n"
        "    category: other\n"
        "    severity: info\n"
        "    cause: c\n"
        "    fix: f\n"
        "    source: https://x.invalid\n")
    cat = load_catalog([f])
    assert cat.get("ops-good") is not None and len(cat) > 300
    errs = [e for e in cat.errors if str(f) in e]
    assert len(errs) == 3, cat.errors
    assert f"{f}:13: field 'pattern'" in errs[0]
    assert f"{f}:21: field 'category'" in errs[1]
    assert f"{f}:29: field 'pattern': matches the empty line" in errs[2]
    assert _ids(cat, "multipathd: mpatha: remaining active paths: 0") == {"ops-good"}
    missing = load_catalog([tmp_path / "absent.yaml"])
    assert any("absent.yaml: cannot read" in e for e in missing.errors)
    broken = tmp_path / "broken.yaml"
    broken.write_text("signatures:\n  - id: x\n    pattern: [unclosed\n")
    assert any(e.startswith(f"{broken}:") and "YAML error" in e for e in load_catalog([broken]).errors)


def test_catastrophic_pattern_on_hostile_text_is_linear(tmp_path: Path) -> None:
    f = tmp_path / "evil.yaml"
    f.write_text("signatures:\n  - {id: evil, title: t, pattern: '^(a+)+$', category: other, severity: info,"
                 " cause: c, fix: f, source: 'https://x.invalid'}\n")
    sigs, errors = parse_file(f, set())
    assert errors == [] and signatures._re2 is not None  # RE2 runs it in linear time
    cat = SignatureCatalog(sigs)
    assert cat.match("a" * 1500 + "!") == []  # exponential for a backtracking engine


def test_without_re2_nested_quantifiers_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signatures, "_re2", None)
    f = tmp_path / "evil.yaml"
    f.write_text("signatures:\n  - {id: evil, title: t, pattern: '^(a+)+$', category: other, severity: info,"
                 " cause: c, fix: f, source: 'https://x.invalid'}\n"
                 "  - {id: fine, title: t, pattern: 'soft lockup', category: other, severity: info,"
                 " cause: c, fix: f, source: 'https://x.invalid'}\n")
    sigs, errors = parse_file(f, set())
    assert [s.id for s in sigs] == ["fine"] and "backtrack" in errors[0] and errors[0].startswith(f"{f}:2:")


def test_bad_text_ansi_crlf_binary_and_oversize(catalog: SignatureCatalog) -> None:
    line = "watchdog: BUG: soft lockup - CPU#3 stuck for 23s! [kworker/3:1:99]"
    plain = _ids(catalog, line)
    assert plain
    assert _ids(catalog, f"\x1b[31m{line}\x1b[0m\r\n") == plain
    assert _ids(catalog, b"\x00\xff\xfe" + line.encode() + b"\r\n\x00garbage\x89PNG") == plain
    assert catalog.match(bytes(range(256)) * 1000) == [] or all(
        m.signature.severity != "critical" for m in catalog.match(bytes(range(256)) * 1000))
    assert catalog.match("Журнал: ошибок нет\n日志正常\n") == []
    big = ("x" * 99 + "\n") * (MAX_TEXT // 100 + 10) + line
    scan = catalog.scan(big)
    assert scan.truncated and "first 10 MB" in scan.note
    assert not {m.signature.id for m in scan.matches} & plain  # the line past the bound is not read
    long_line = "y" * 1_000_000 + line  # one enormous line: cut, never matched past the cap
    assert catalog.scan(long_line).matches == []


def test_cli_check_and_match(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("signatures:\n  - {id: Bad ID, title: t, pattern: x, category: other, severity: info,"
                   " cause: c, fix: f, source: 'https://x.invalid'}\n")
    assert signatures.main(["--check", str(bad)]) == 1
    assert f"{bad}:2: field 'id'" in capsys.readouterr().out
    log = tmp_path / "kern.log"
    log.write_text("[ 1.0] NVRM: Xid (PCI:0000:3b:00): 79, pid=1, GPU has fallen off the bus.\n")
    assert signatures.main(["--match", str(log)]) == 0
    assert "critical" in capsys.readouterr().out
    assert signatures.main([]) == 0
