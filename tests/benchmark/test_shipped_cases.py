"""The shipped 150 questions: they load cleanly, come only from the benchmark split, are never
retrievable in a fair run, are rebuilt identically, and every B task is solvable yet not by a
wrong answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark.build_cases import build, load_benchmark_records
from benchmark.cases import BCase, default_case_files, load_cases
from benchmark.results import make_fair_kb
from benchmark.sandbox import run_candidate

CASES = Path(__file__).resolve().parents[2] / "benchmark" / "cases"
SEED = Path(__file__).resolve().parents[2] / "kb" / "data" / "seed.jsonl"


@pytest.fixture(scope="module")
def shipped():
    return load_cases(default_case_files())


def _seed() -> list[dict]:
    return [json.loads(line) for line in SEED.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_shipped_cases_load_without_problems(shipped) -> None:
    assert not shipped.problems, [str(p) for p in shipped.problems]
    assert not shipped.duplicates
    counts = {m: len(shipped.by_metric(m)) for m in "ABCS"}
    assert counts["A"] >= 40 and counts["B"] >= 25 and counts["C"] >= 40 and counts["S"] >= 1, counts


def test_every_question_comes_from_the_benchmark_split(shipped) -> None:
    split_of = {r["source"]: r["split"] for r in _seed()}
    for case in shipped.cases:
        if case.metric == "S":
            continue
        assert case.source, case.id
        assert split_of.get(case.source) == "benchmark", (case.id, case.source)


def test_no_case_source_is_retrievable_in_a_fair_run(shipped) -> None:
    kb = make_fair_kb()
    sources = {c.source for c in shipped.cases if c.metric != "S"}
    queries = []
    for case in shipped.cases:
        queries.append(getattr(case, "conversation", "") or getattr(case, "log", "") or getattr(case, "task", ""))
    for rec in _seed():
        if rec["split"] == "benchmark":
            queries += [rec["rawtext"][:800], " ".join(rec["problemkey"]), rec["result"]]
    leaked = set()
    for query in filter(None, (q.strip() for q in queries)):
        for hit in kb.search(query, top_k=10):
            if hit.record.source in sources or hit.record.split != "perceivable":
                leaked.add((hit.record.source, hit.record.split))
    assert not leaked


def test_builder_is_deterministic(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    counts = build(out_dir=first)
    assert build(out_dir=second) == counts
    for name in ("a_extraction.jsonl", "b_codegen.jsonl", "c_attribution.jsonl", "scenarios.jsonl"):
        assert (first / name).read_text() == (second / name).read_text(), name
    assert counts["A"] > 0 and counts["C"] > 0 and counts["B"] > 0


def test_c_answers_are_the_records_causes_and_letters_spread(shipped) -> None:
    cause_of = {r["source"]: r["result"].strip() for r in load_benchmark_records()}
    letters = set()
    for case in shipped.by_metric("C"):
        assert case.choice_dict()[case.answer] == cause_of[case.source]  # type: ignore[union-attr]
        letters.add(case.answer)  # type: ignore[union-attr]
    assert letters == {"A", "B", "C", "D"}


def _b_cases(shipped) -> list[BCase]:
    return [c for c in shipped.by_metric("B") if isinstance(c, BCase)]


@pytest.mark.slow
def test_every_b_task_is_solvable_and_rejects_a_wrong_answer(shipped) -> None:
    failures = []
    for case in _b_cases(shipped):
        good = run_candidate(case.canonical_solution, case.tests, case.entry_point, scenario=case.scenario,
                             scenario_path=case.scenario_path, timeout_s=case.timeout_s)
        if not good.passed:
            failures.append(f"{case.id}: canonical solution failed: {good.error}")
        # The wrong answer: nothing found; on the healthy cluster, every GPU flagged instead.
        wrong = f"def {case.entry_point}(*args, **kwargs):\n    return []\n"
        if case.id == "b-healthy-no-throttle":
            wrong = f"def {case.entry_point}(executor, hosts):\n    return [(h, 0) for h in hosts]\n"
        bad = run_candidate(wrong, case.tests, case.entry_point, scenario=case.scenario,
                            scenario_path=case.scenario_path, timeout_s=case.timeout_s)
        if bad.passed:
            failures.append(f"{case.id}: a wrong answer passed")
    assert not failures, "\n".join(failures)


def test_three_b_tasks_quickly(shipped) -> None:
    """The fast-suite slice of the test above."""
    for case in _b_cases(shipped)[:3]:
        good = run_candidate(case.canonical_solution, case.tests, case.entry_point, scenario=case.scenario,
                             timeout_s=case.timeout_s)
        assert good.passed, (case.id, good.error)
