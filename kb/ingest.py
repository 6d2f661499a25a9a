"""Reading records from files: JSON Lines, and markdown exports of issue threads.

Every reader is all-or-nothing per file: it returns all of a file's records or raises a
RecordError naming the file, the line and the field, and then nothing from that file is stored.
Non-UTF-8 bytes are replaced (U+FFFD) rather than refused, so one stray byte in a pasted log does
not cost a whole file; each affected record gets a note and the report a warning.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kb.errors import KBError, RecordError
from kb.records import RAWTEXT_CAP, Record
from kb.taxonomy import FAULTS

JSONL_SUFFIXES = (".jsonl", ".ndjson")
MARKDOWN_SUFFIXES = (".md", ".markdown")
REPLACED_NOTE = "non-UTF-8 bytes in the source were replaced with U+FFFD"

_STOPWORDS_TEXT = (
    "a an and are as at be but by can do does for from has have how i in is it its of on or "
    "the this to was were when with without after before during not no error issue bug fails "
    "failed failing problem question help"
)
_STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
_ISSUE_URL_RE = re.compile(r"https?://github\.com/[\w.-]+/[\w.-]+/(?:issues|pull|discussions)/\d+")
_URL_RE = re.compile(r"https?://\S+")
_HEADING_RE = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_RESULT_HEADINGS = re.compile(
    r"^(resolution|root cause|established cause|cause|result|answer|fix|solution)\b", re.IGNORECASE
)
_GH_HEADER_RE = re.compile(r"^(title|url|state|author|labels|number):\s*(.*)$", re.IGNORECASE)


@dataclass
class FileIssue:
    path: str
    message: str

    def __str__(self) -> str:
        return self.message if self.message.startswith(self.path) else f"{self.path}: {self.message}"


@dataclass
class IngestReport:
    files: int = 0
    records: int = 0  # valid records read
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: list[FileIssue] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (
            f"{self.files} file(s), {self.records} record(s): {self.added} added, {self.updated} updated, "
            f"{self.unchanged} unchanged"
        )
        if self.failed:
            text += f"; {len(self.failed)} file(s) rejected"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "records": self.records,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "failed": [str(f) for f in self.failed],
            "warnings": list(self.warnings),
        }


def collect_files(path: Path) -> list[Path]:
    """The files ``path`` names: one file, or every .jsonl/.md under a folder (sorted)."""
    if not path.exists():
        raise KBError(f"{path}: no such file or folder")
    suffixes = JSONL_SUFFIXES + MARKDOWN_SUFFIXES
    if path.is_file():
        if path.suffix.lower() not in suffixes:
            raise KBError(f"{path}: cannot ingest a '{path.suffix}' file; give .jsonl records or .md threads")
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)


def read_text(path: Path) -> tuple[str, list[int]]:
    """Decode UTF-8 (BOM allowed); bad bytes become U+FFFD. Returns the text and affected lines."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RecordError(f"cannot read: {exc.strerror or exc}", where=str(path)) from exc
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError:
        text = data.decode("utf-8-sig", errors="replace")
        bad = [n for n, line in enumerate(text.splitlines(), 1) if "\ufffd" in line]
        return text, bad


def read_file(path: Path, rawtext_cap: int = RAWTEXT_CAP) -> tuple[list[Record], list[str]]:
    """All records of one file, or RecordError. Also returns warnings."""
    if path.suffix.lower() in MARKDOWN_SUFFIXES:
        return read_markdown(path, rawtext_cap)
    return read_jsonl(path, rawtext_cap)


def read_jsonl(path: Path, rawtext_cap: int = RAWTEXT_CAP) -> tuple[list[Record], list[str]]:
    text, bad_lines = read_text(path)
    warnings = [f"{path}:{n}: {REPLACED_NOTE}" for n in bad_lines]
    bad = set(bad_lines)
    records: list[Record] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RecordError(f"malformed JSON at column {exc.colno}: {exc.msg}", where=where) from exc
        record = Record.from_dict(data, where=where, rawtext_cap=rawtext_cap)
        if record.id in seen:
            raise RecordError(
                f"duplicate id {record.id!r} (first on line {seen[record.id]})", where=where, field="id"
            )
        seen[record.id] = n
        if n in bad:
            record = record.with_note(REPLACED_NOTE)
        records.append(record)
    return records, warnings


def read_markdown(path: Path, rawtext_cap: int = RAWTEXT_CAP) -> tuple[list[Record], list[str]]:
    """One exported issue thread -> one record.

    Fields come from YAML front matter when present; otherwise ``source`` is the first GitHub
    issue URL (or a ``url:`` header as ``gh issue view`` prints it), ``problemkey`` the title's
    keywords, ``result`` the text under a "Resolution" / "Root cause" / "Cause" heading, and
    ``category``/``components`` follow from ``fault`` when that is given.
    """
    text, bad_lines = read_text(path)
    meta, body, body_line = _front_matter(text, path)
    title = _title(body)
    data: dict[str, Any] = dict(meta)
    data.setdefault("rawtext", body.strip())
    if not data.get("source"):
        url = _source_url(body)
        if url is None:
            raise RecordError(
                "missing required field 'source': put it in the front matter or link the issue URL",
                where=str(path),
                field="source",
            )
        data["source"] = url
    if not data.get("problemkey") and title:
        data["problemkey"] = _keywords(title)
    if not data.get("result"):
        section = _result_section(body)
        if section:
            data["result"] = section
    fault = data.get("fault")
    if isinstance(fault, str) and fault in FAULTS:
        category, components, _ = FAULTS[fault]
        data.setdefault("category", category)
        data.setdefault("components", list(components))
    where = f"{path} (front matter)" if meta else f"{path}:{body_line}"
    record = Record.from_dict(data, where=where, rawtext_cap=rawtext_cap)
    warnings = []
    if bad_lines:
        record = record.with_note(REPLACED_NOTE)
        warnings.append(f"{path}:{bad_lines[0]}: {REPLACED_NOTE} ({len(bad_lines)} line(s))")
    return [record], warnings


def _front_matter(text: str, path: Path) -> tuple[dict[str, Any], str, int]:
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return {}, text, 1
    for end in range(1, len(lines)):
        if lines[end].strip() in ("---", "..."):
            break
    else:
        raise RecordError("front matter opened with '---' on line 1 is never closed", where=f"{path}:1")
    try:
        meta = yaml.safe_load("\n".join(lines[1:end])) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise RecordError(f"invalid YAML front matter: {problem}", where=f"{path}:{line}") from exc
    if not isinstance(meta, dict):
        raise RecordError("front matter must be a YAML mapping of record fields", where=f"{path}:2")
    return meta, "\n".join(lines[end + 1 :]), end + 2


def _title(body: str) -> str:
    for line in body.splitlines():
        m = _HEADING_RE.match(line)
        if m:
            return m.group(2)
        h = _GH_HEADER_RE.match(line.strip())
        if h and h.group(1).lower() == "title":
            return h.group(2)
    return ""


def _source_url(body: str) -> str | None:
    for line in body.splitlines():
        h = _GH_HEADER_RE.match(line.strip())
        if h and h.group(1).lower() == "url" and _URL_RE.match(h.group(2)):
            return h.group(2).strip()
    m = _ISSUE_URL_RE.search(body)
    return m.group(0) if m else None


def _keywords(title: str, limit: int = 6) -> list[str]:
    words = re.findall(r"[A-Za-z0-9_.:-]+", title.lower())
    return list(dict.fromkeys(w for w in words if w not in _STOPWORDS and len(w) > 1))[:limit]


def _result_section(body: str) -> str:
    out: list[str] = []
    level = 0
    for line in body.splitlines():
        m = _HEADING_RE.match(line)
        if level:
            if m and len(m.group(1)) <= level:
                break
            out.append(line)
        elif m and _RESULT_HEADINGS.match(m.group(2)):
            level = len(m.group(1))
    return "\n".join(out).strip()


def dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
