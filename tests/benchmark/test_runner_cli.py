"""The runner, its JSON report, and the bench CLI: run, compare, ablation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clusterdoc.cli import main

from .test_cases_loader import GOOD_A, GOOD_C

C_SHM = GOOD_C | {
    "id": "c-shm",
    "category": "memory",
    "log": "include/shm.h:28 NCCL WARN Call to posix_fallocate failed : No space left on device",
    "choices": ["The GPU overheated.", "The container's /dev/shm is too small: no space left on device for "
                "NCCL shared memory.", "A Python syntax error.", "Slurm wall time ran out."],
    "answer": "B",
}


@pytest.fixture
def case_file(write_cases) -> Path:
    broken = {"id": "a-broken", "metric": "A", "conversation": "x"}  # no expected
    return write_cases([GOOD_A, broken, C_SHM, GOOD_C | {"id": "c-2"}])


def test_run_prints_tables_and_writes_the_report(case_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "r" / "report.json"
    rc = main(["bench", "run", str(case_file), "--llm", "none", "--mode", "plain", "--out", str(out),
               "--per-case"])
    assert rc == 0
    captured = capsys.readouterr()
    assert "Metric A" in captured.out and "Metric C" in captured.out and "Metric B" not in captured.out
    assert "a-broken" in captured.err and "expected" in captured.err and f"{case_file}:2" in captured.err
    report = json.loads(out.read_text())
    assert report["schema"] == "clusterdoc-bench-report/1" and report["llm"] == "none"
    assert report["metrics"]["A"]["n"] == 1 and report["metrics"]["C"]["n"] == 2
    assert set(report["metrics"]["A"]["per_field"]) == {"hosts", "ssh_ports", "needs_execution"}
    assert report["skipped"][0]["id"] == "a-broken" and report["skipped"][0]["field"] == "expected"
    ids = {c["id"]: c for c in report["cases"]}
    assert set(ids) == {"a-1", "c-shm", "c-2"}
    for case in report["cases"]:
        assert {"id", "metric", "score", "answer", "tokens", "seconds", "sub_scores", "error"} <= set(case)
    assert ids["a-1"]["score"] == 1.0 and ids["c-shm"]["score"] == 1.0
    assert report["metrics"]["C"]["by_category"] == {"memory": 1.0} and ids["c-shm"]["category"] == "memory"
    assert captured.out.strip().splitlines()[-1].startswith("bench none/plain:")


def test_only_and_limit_select_cases(case_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "only.json"
    assert main(["bench", "run", str(case_file), "--only", "C", "--limit", "1", "--seed", "3",
                 "--mode", "plain", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert list(report["metrics"]) == ["C"] and report["metrics"]["C"]["n"] == 1


def test_bad_input_is_a_clear_error(tmp_path: Path, capsys) -> None:
    assert main(["bench", "run", str(tmp_path / "nope.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"id": "x"}\n')
    assert main(["bench", "run", str(empty)]) == 2
    assert "no valid cases" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "run", str(empty), "--only", "Q"])


def test_compare_writes_table_and_png(case_file: Path, tmp_path: Path, capsys) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["bench", "run", str(case_file), "--mode", "plain", "--out", str(a)]) == 0
    report = json.loads(a.read_text())
    for case in report["cases"]:  # a second run that got every C case wrong
        if case["metric"] == "C":
            case["score"] = 0.0
    report["metrics"]["C"]["score"] = 0.0
    b.write_text(json.dumps(report))
    capsys.readouterr()
    png = tmp_path / "cmp.png"
    assert main(["bench", "compare", str(a), str(b), "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert "none/plain" in out and "worse" in out and "c-shm" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["bench", "compare", str(bad)]) == 2


def test_ablation_writes_markdown_png_and_reports(case_file: Path, tmp_path: Path, capsys) -> None:
    out_dir = tmp_path / "abl"
    rc = main(["bench", "ablation", str(case_file), "--llm", "none", "--modes", "plain,rag", "--only", "A,C",
               "--out-dir", str(out_dir)])
    assert rc == 0
    md = (out_dir / "ablation.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| none")]
    assert len(rows) == 2 and "| plain |" in rows[0] and "| rag |" in rows[1]
    assert (out_dir / "ablation.png").read_bytes()[:4] == b"\x89PNG"
    for name in ("none-plain.json", "none-rag.json"):
        assert json.loads((out_dir / name).read_text())["metrics"]["A"]["n"] == 1


def test_baseline_puts_the_sweep_next_to_the_agent(write_cases, tmp_path: Path, capsys) -> None:
    from .conftest import THROTTLED

    cases = write_cases([{"id": "s-tiny", "metric": "S", "scenario": THROTTLED}], "s.jsonl")
    out = tmp_path / "baseline.json"
    assert main(["bench", "baseline", str(cases), "--out", str(out)]) == 0
    (row,) = json.loads(out.read_text())
    assert row["id"] == "s-tiny" and row["sweep_found"] is True
    assert row["sweep_invocations"] >= 3 * row["sweep_checks"] > 0  # every check on every node
    assert row["agent_invocations"] is not None and row["agent_invocations"] < row["sweep_invocations"]
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("baseline: 1 scenarios")


def test_bench_without_subcommand_prints_help(capsys) -> None:
    assert main(["bench"]) == 2
    assert "ablation" in capsys.readouterr().out
