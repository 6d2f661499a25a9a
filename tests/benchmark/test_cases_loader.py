"""Case loading: the outside format exactly, bad cases skipped and named, the rest kept."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark.cases import ACase, BCase, CCase, SCase, load_cases

from .conftest import HEALTHY, THROTTLED

GOOD_A = {"id": "a-1", "metric": "A", "conversation": "job died on 10.0.3.17 (ssh on 2222)",
          "expected": {"hosts": ["10.0.3.17"], "ssh_ports": [2222], "needs_execution": True}}
GOOD_C = {"id": "c-1", "metric": "C", "log": "NCCL WARN NET/IB : Got completion with error 12",
          "question": "cause?", "choices": {"A": "x", "B": "y", "C": "z", "D": "w"}, "answer": "C"}


def test_every_metric_loads_with_its_fields(write_cases, tmp_path: Path) -> None:
    (tmp_path / "scen.yaml").write_text(json.dumps(THROTTLED), encoding="utf-8")
    path = write_cases([
        GOOD_A,
        {"id": "b-1", "metric": "B", "task": "t", "entry_point": "f", "scenario": HEALTHY,
         "tests": "def check(candidate, executor, hosts):\n    pass\n", "timeout_s": 5},
        GOOD_C,
        {"id": "s-1", "metric": "S", "scenario_file": "scen.yaml"},
    ])
    loaded = load_cases([path])
    assert not loaded.problems and not loaded.duplicates
    a, b, c, s = loaded.cases
    assert isinstance(a, ACase) and a.hosts == {"10.0.3.17"} and a.ssh_ports == {2222} and a.needs_execution
    assert isinstance(b, BCase) and b.timeout_s == 5.0 and b.scenario == HEALTHY
    assert isinstance(c, CCase) and c.answer == "C" and c.choice_dict()["D"] == "w"
    assert isinstance(s, SCase) and s.scenario_path == str((tmp_path / "scen.yaml").resolve())


def test_missing_field_is_skipped_with_file_line_id_and_field(write_cases) -> None:
    broken = dict(GOOD_A, id="a-broken")
    broken["expected"] = {"hosts": ["h1"], "needs_execution": True}  # no ssh_ports
    no_log = {k: v for k, v in GOOD_C.items() if k != "log"} | {"id": "c-nolog"}
    path = write_cases([GOOD_A, broken, no_log, GOOD_C | {"id": "c-2"}])
    loaded = load_cases([path])
    assert [c.id for c in loaded.cases] == ["a-1", "c-2"]
    first, second = loaded.problems
    assert (first.line, first.case_id, first.field) == (2, "a-broken", "expected.ssh_ports")
    assert (second.line, second.case_id, second.field) == (3, "c-nolog", "log")
    assert f"{path}:2" in str(first) and "a-broken" in str(first) and "expected.ssh_ports" in str(first)


def test_unknown_fields_are_ignored(write_cases) -> None:
    path = write_cases([GOOD_A | {"difficulty": "hard", "notes": {"x": 1}}])
    loaded = load_cases([path])
    assert not loaded.problems and loaded.cases[0].id == "a-1"


def test_list_choices_read_as_letters(write_cases) -> None:
    path = write_cases([GOOD_C | {"choices": ["first", "second", "third", "fourth"], "answer": "b"}])
    case = load_cases([path]).cases[0]
    assert isinstance(case, CCase)
    assert case.choice_dict() == {"A": "first", "B": "second", "C": "third", "D": "fourth"}
    assert case.answer == "B"


def test_invalid_values_are_named(write_cases) -> None:
    path = write_cases([
        GOOD_C | {"id": "c-bad-answer", "answer": "E"},
        GOOD_A | {"id": "a-bad-port", "expected": {"hosts": [], "ssh_ports": [70000], "needs_execution": False}},
        {"id": "x-1", "metric": "Z"},
        {"id": "b-lang", "metric": "B", "language": "rust", "task": "t", "entry_point": "f",
         "tests": "def check(c, e, h): pass"},
        {"id": "b-notests", "metric": "B", "task": "t", "entry_point": "f", "tests": "assert True"},
        {"id": "s-none", "metric": "S"},
        {"id": "s-missing-file", "metric": "S", "scenario_file": "nowhere.yaml"},
        "{not json",
        "[1, 2]",
    ])
    loaded = load_cases([path])
    assert loaded.cases == []
    fields = [(p.case_id, p.field) for p in loaded.problems]
    assert fields == [
        ("c-bad-answer", "answer"), ("a-bad-port", "expected.ssh_ports[0]"), ("x-1", "metric"),
        ("b-lang", "language"), ("b-notests", "tests"), ("s-none", "scenario"),
        ("s-missing-file", "scenario_file"), ("", "json"), ("", "json"),
    ]
    assert [p.line for p in loaded.problems] == list(range(1, 10))


def test_duplicate_ids_are_reported_and_the_first_kept(write_cases, tmp_path: Path) -> None:
    one = write_cases([GOOD_A], "one.jsonl")
    two = write_cases([GOOD_A | {"conversation": "other"}, GOOD_C], "two.jsonl")
    loaded = load_cases([one, two])
    assert [c.id for c in loaded.cases] == ["a-1", "c-1"]
    assert loaded.cases[0].conversation == GOOD_A["conversation"]  # type: ignore[union-attr]
    (dup,) = loaded.duplicates
    assert dup.case_id == "a-1" and dup.file == str(two) and f"{one}:1" in dup.message


def test_a_directory_means_its_jsonl_files(write_cases, tmp_path: Path) -> None:
    write_cases([GOOD_A], "x.jsonl")
    write_cases([GOOD_C], "y.jsonl")
    (tmp_path / "ignored.txt").write_text("not a case")
    loaded = load_cases([tmp_path])
    assert sorted(c.id for c in loaded.cases) == ["a-1", "c-1"]


def test_unreadable_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    loaded = load_cases([tmp_path / "missing.jsonl"])
    assert loaded.cases == [] and loaded.problems[0].field == "file"


def test_a_broken_scenario_is_named_with_the_scenario_parsers_message(write_cases, tmp_path: Path) -> None:
    bad_fault = dict(THROTTLED, faults=[{"kind": "gpu_on_fire", "node": "node-02"}])
    (tmp_path / "noexpect.yaml").write_text(json.dumps(HEALTHY), encoding="utf-8")
    path = write_cases([
        {"id": "s-bad", "metric": "S", "scenario": bad_fault},
        {"id": "s-noexpect", "metric": "S", "scenario_file": "noexpect.yaml"},
        {"id": "b-ok-without-expect", "metric": "B", "task": "t", "entry_point": "f", "scenario": HEALTHY,
         "tests": "def check(candidate, executor, hosts):\n    pass\n"},
    ])
    loaded = load_cases([path])
    assert [c.id for c in loaded.cases] == ["b-ok-without-expect"]
    bad, noexpect = loaded.problems
    assert bad.field == "scenario" and "gpu_on_fire" in bad.message
    assert noexpect.field == "scenario_file.expect"
