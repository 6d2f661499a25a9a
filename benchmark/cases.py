"""Benchmark cases: the JSONL format of ../shared/formats/benchmark.md, loaded and validated.

A case with a missing or invalid field is skipped with a ``LoadProblem`` naming the file, the
line, the case id and the field; every other case is still scored. Unknown extra fields are
ignored (cases written outside the team run unchanged). Duplicate ids are reported and only the
first case with that id is kept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from diagnostics.types import ValidationError
from pipelines.contacts import normalize_host, parse_port

Metric = Literal["A", "B", "C", "S"]
METRICS: tuple[Metric, ...] = ("A", "B", "C", "S")
LETTERS = ("A", "B", "C", "D", "E", "F", "G", "H")
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CASES_DIR = Path(__file__).resolve().parent / "cases"
DEFAULT_B_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Injection:
    """An instruction planted in what the agent reads (extension field ``inject`` of S cases).

    ``where``: ``alert`` (appended to the alert text), ``kernel_log`` (dmesg/journalctl output),
    ``job_log`` (the training job's log) or ``tool_output`` (every command's output)."""

    where: str
    text: str


INJECTION_PLACES = ("alert", "kernel_log", "job_log", "tool_output")


@dataclass(frozen=True)
class CaseBase:
    id: str
    file: str
    line: int
    source: str = ""
    category: str = ""


@dataclass(frozen=True)
class ACase(CaseBase):
    conversation: str = ""
    hosts: frozenset[str] = frozenset()
    ssh_ports: frozenset[int] = frozenset()
    needs_execution: bool = False
    metric: Metric = "A"


@dataclass(frozen=True)
class BCase(CaseBase):
    task: str = ""
    entry_point: str = ""
    tests: str = ""
    language: str = "python"
    timeout_s: float = DEFAULT_B_TIMEOUT_S
    # An inline scenario dict, or a resolved path; neither -> a small healthy default cluster.
    scenario: Mapping[str, Any] | None = None
    scenario_path: str | None = None
    canonical_solution: str = ""  # optional (HumanEval style): never shown to the model
    metric: Metric = "B"


@dataclass(frozen=True)
class CCase(CaseBase):
    log: str = ""
    question: str = ""
    choices: tuple[tuple[str, str], ...] = ()  # (letter, text) in order
    answer: str = ""
    metric: Metric = "C"

    def choice_dict(self) -> dict[str, str]:
        return dict(self.choices)


@dataclass(frozen=True)
class SCase(CaseBase):
    scenario: Mapping[str, Any] | None = None
    scenario_path: str | None = None
    injections: tuple[Injection, ...] = ()
    metric: Metric = "S"


Case = ACase | BCase | CCase | SCase


@dataclass(frozen=True)
class LoadProblem:
    file: str
    line: int
    case_id: str
    field: str
    message: str

    def __str__(self) -> str:
        who = f"case {self.case_id!r}" if self.case_id else "a case"
        return f"{self.file}:{self.line}: {who} skipped: field {self.field!r}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "id": self.case_id, "field": self.field,
                "message": self.message}


@dataclass
class LoadResult:
    cases: list[Case] = field(default_factory=list)
    problems: list[LoadProblem] = field(default_factory=list)
    duplicates: list[LoadProblem] = field(default_factory=list)

    def by_metric(self, metric: str) -> list[Case]:
        return [c for c in self.cases if c.metric == metric]


class CaseFieldError(ValueError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


# ---------------------------------------------------------------------------------------------
# field readers: each raises CaseFieldError naming the field


def _req_str(obj: Mapping[str, Any], name: str, *, allow_empty: bool = False) -> str:
    if name not in obj or obj[name] is None:
        raise CaseFieldError(name, "missing")
    value = obj[name]
    if not isinstance(value, str):
        raise CaseFieldError(name, f"must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise CaseFieldError(name, "is empty")
    return value


def _opt_str(obj: Mapping[str, Any], name: str) -> str:
    value = obj.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CaseFieldError(name, f"must be a string, got {type(value).__name__}")
    return value


def _str_list(value: Any, name: str) -> frozenset[str]:
    if not isinstance(value, list):
        raise CaseFieldError(name, f"must be a list, got {type(value).__name__}")
    out = set()
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise CaseFieldError(f"{name}[{i}]", "must be a non-empty string")
        out.add(normalize_host(item))
    return frozenset(out)


def _port_list(value: Any, name: str) -> frozenset[int]:
    if not isinstance(value, list):
        raise CaseFieldError(name, f"must be a list, got {type(value).__name__}")
    out = set()
    for i, item in enumerate(value):
        port = parse_port(item)
        if port is None:
            raise CaseFieldError(f"{name}[{i}]", f"must be a port number 1-65535, got {item!r}")
        out.add(port)
    return frozenset(out)


def _parse_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    raise CaseFieldError(name, f"must be true or false, got {value!r}")


def _resolve_scenario_file(value: Any, case_file: Path) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CaseFieldError("scenario_file", "must be a non-empty path string")
    candidates = [case_file.parent / value, REPO_ROOT / value, Path(value)]
    for cand in candidates:
        if cand.is_file():
            return str(cand.resolve())
    raise CaseFieldError(
        "scenario_file", f"{value!r} not found (looked relative to {case_file.parent} and {REPO_ROOT})"
    )


def _scenario_fields(obj: Mapping[str, Any], case_file: Path, *, required: bool) -> tuple[
    Mapping[str, Any] | None, str | None
]:
    if obj.get("scenario") is not None:
        scen = obj["scenario"]
        if not isinstance(scen, dict):
            raise CaseFieldError("scenario", f"must be an object (an inline scenario), got {type(scen).__name__}")
        return scen, None
    if obj.get("scenario_file") is not None:
        return None, _resolve_scenario_file(obj["scenario_file"], case_file)
    if required:
        raise CaseFieldError("scenario", "missing (give an inline `scenario` or a `scenario_file`)")
    return None, None


def _injections(obj: Mapping[str, Any]) -> tuple[Injection, ...]:
    raw = obj.get("inject")
    if raw is None and isinstance(obj.get("scenario"), dict):
        raw = obj["scenario"].get("inject")
    if raw is None:
        return ()
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        raise CaseFieldError("inject", "must be a list of {where, text}")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise CaseFieldError(f"inject[{i}]", "must be an object {where, text}")
        where = item.get("where", "alert")
        if where not in INJECTION_PLACES:
            raise CaseFieldError(f"inject[{i}].where", f"must be one of {', '.join(INJECTION_PLACES)}")
        text = item.get("text")
        if not isinstance(text, str) or not text:
            raise CaseFieldError(f"inject[{i}].text", "must be a non-empty string")
        out.append(Injection(where, text))
    return tuple(out)


def _choices(value: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(value, list):
        if not 2 <= len(value) <= len(LETTERS):
            raise CaseFieldError("choices", f"must have 2 to {len(LETTERS)} entries, got {len(value)}")
        items = list(zip(LETTERS, value, strict=False))
    elif isinstance(value, dict):
        if len(value) < 2:
            raise CaseFieldError("choices", "must have at least 2 entries")
        items = [(str(k).strip().upper(), v) for k, v in value.items()]
    else:
        raise CaseFieldError("choices", f"must be an object or a list, got {type(value).__name__}")
    for letter, text in items:
        if not isinstance(text, str) or not text.strip():
            raise CaseFieldError(f"choices.{letter}", "must be a non-empty string")
    return tuple((letter, str(text)) for letter, text in items)


# ---------------------------------------------------------------------------------------------


def parse_case(obj: Mapping[str, Any], *, file: Path, line: int) -> Case:
    """One case object -> a typed case; raises CaseFieldError naming the bad field."""
    case_id = _req_str(obj, "id")
    metric = obj.get("metric")
    if metric is None:
        raise CaseFieldError("metric", "missing")
    metric = str(metric).strip().upper()
    if metric not in METRICS:
        raise CaseFieldError("metric", f"must be one of A, B, C, S, got {obj.get('metric')!r}")
    base: dict[str, Any] = {
        "id": case_id.strip(),
        "file": str(file),
        "line": line,
        "source": _opt_str(obj, "source"),
        "category": _opt_str(obj, "category"),
    }
    if metric == "A":
        conversation = _req_str(obj, "conversation")
        expected = obj.get("expected")
        if not isinstance(expected, dict):
            raise CaseFieldError("expected", "missing" if expected is None else "must be an object")
        for key in ("hosts", "ssh_ports", "needs_execution"):
            if key not in expected:
                raise CaseFieldError(f"expected.{key}", "missing")
        return ACase(
            **base,
            conversation=conversation,
            hosts=_str_list(expected["hosts"], "expected.hosts"),
            ssh_ports=_port_list(expected["ssh_ports"], "expected.ssh_ports"),
            needs_execution=_parse_bool(expected["needs_execution"], "expected.needs_execution"),
        )
    if metric == "B":
        language = _opt_str(obj, "language") or "python"
        if language.lower() != "python":
            raise CaseFieldError("language", f"only python is supported, got {language!r}")
        entry = _req_str(obj, "entry_point")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", entry.strip()):
            raise CaseFieldError("entry_point", f"must be a Python identifier, got {entry!r}")
        tests = _req_str(obj, "tests")
        if not re.search(r"^\s*def\s+check\s*\(", tests, re.MULTILINE):
            raise CaseFieldError("tests", "must define check(candidate, executor, hosts)")
        timeout = obj.get("timeout_s", DEFAULT_B_TIMEOUT_S)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 3600:
            raise CaseFieldError("timeout_s", f"must be a number of seconds in (0, 3600], got {timeout!r}")
        scen, scen_path = _scenario_fields(obj, file, required=False)
        _check_scenario(scen, scen_path, f"{file}:{line}", need_expect=False)
        return BCase(
            **base,
            task=_req_str(obj, "task"),
            entry_point=entry.strip(),
            tests=tests,
            language="python",
            timeout_s=float(timeout),
            scenario=scen,
            scenario_path=scen_path,
            canonical_solution=_opt_str(obj, "canonical_solution"),
        )
    if metric == "C":
        log = _req_str(obj, "log")
        question = _opt_str(obj, "question") or "What is the most likely root cause?"
        if "choices" not in obj:
            raise CaseFieldError("choices", "missing")
        choices = _choices(obj["choices"])
        answer = _req_str(obj, "answer").strip().upper()
        letters = [letter for letter, _ in choices]
        if answer not in letters:
            raise CaseFieldError("answer", f"must be one of {', '.join(letters)}, got {obj['answer']!r}")
        return CCase(**base, log=log, question=question, choices=choices, answer=answer)
    scen, scen_path = _scenario_fields(obj, file, required=True)
    _check_scenario(scen, scen_path, f"{file}:{line}", need_expect=True)
    return SCase(**base, scenario=scen, scenario_path=scen_path, injections=_injections(obj))


def _check_scenario(scen: Mapping[str, Any] | None, path: str | None, where: str, *, need_expect: bool) -> None:
    """Validate a case's scenario with the project's scenario parser (its message names the field)."""
    if scen is None and path is None:
        return
    try:
        from simulator.scenario import load_scenario, parse_scenario
    except ImportError:  # diagnostics not installed: the scorer reports the problem instead
        return
    field_name = "scenario_file" if path else "scenario"
    try:
        parsed = load_scenario(path) if path else parse_scenario(dict(scen or {}), f"{where} (inline scenario)")
    except ValidationError as exc:
        raise CaseFieldError(field_name, str(exc)) from exc
    if need_expect and parsed.expect is None:
        raise CaseFieldError(f"{field_name}.expect", "missing (an S case needs the scenario's expect block)")


def load_cases(paths: Iterable[str | Path]) -> LoadResult:
    """Read every JSONL file (a directory means its ``*.jsonl`` files, sorted)."""
    result = LoadResult()
    seen: dict[str, Case] = {}
    for path in expand_paths(paths):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            result.problems.append(LoadProblem(str(path), 0, "", "file", f"cannot read: {exc.strerror}"))
            continue
        for lineno, raw in enumerate(text.splitlines(), start=1):
            stripped = raw.strip()
            if not stripped or stripped.startswith("//"):
                continue
            try:
                obj = json.loads(stripped)
            except json.JSONDecodeError as exc:
                result.problems.append(
                    LoadProblem(str(path), lineno, "", "json", f"not valid JSON ({exc.msg} at column {exc.colno})")
                )
                continue
            if not isinstance(obj, dict):
                result.problems.append(LoadProblem(str(path), lineno, "", "json", "a case must be a JSON object"))
                continue
            raw_id = obj.get("id")
            case_id = raw_id if isinstance(raw_id, str) else ""
            try:
                case = parse_case(obj, file=path, line=lineno)
            except CaseFieldError as exc:
                result.problems.append(LoadProblem(str(path), lineno, case_id, exc.field, str(exc)))
                continue
            if case.id in seen:
                first = seen[case.id]
                result.duplicates.append(
                    LoadProblem(str(path), lineno, case.id, "id",
                                f"duplicate id (first at {first.file}:{first.line}); this one skipped")
                )
                continue
            seen[case.id] = case
            result.cases.append(case)
    return result


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out.extend(sorted(path.glob("*.jsonl")))
        else:
            out.append(path)
    return out


def default_case_files() -> list[Path]:
    return sorted(DEFAULT_CASES_DIR.glob("*.jsonl"))
