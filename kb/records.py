"""Knowledge records: the method's four fields (problemkey, rawtext, function, result) plus where
the record came from, how it is classified and which split it belongs to.

``Record.from_dict`` is the one validating constructor: every loader (seed file, JSONL ingest,
markdown threads, incidents, store read-back) goes through it, so a bad value is reported the same
way everywhere, naming the file, line and field.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from diagnostics.faults import catalog
from kb.errors import RecordError
from kb.taxonomy import CATEGORIES, FAULT_KINDS, ORIGINS, SPLITS, TOOL_NAMES

# Longer rawtext is cut to head + tail: one pasted 5 MB log must not bloat the index or a prompt.
RAWTEXT_CAP = 64 * 1024
# Reading back what a store already holds: it was capped when it was first validated.
NO_CAP = 1 << 40

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_KEYWORD_RE = re.compile(r"\s+")
FIELDS = (
    "id",
    "problemkey",
    "rawtext",
    "function",
    "result",
    "source",
    "category",
    "components",
    "origin",
    "split",
    "fault",
    "notes",
)


def record_id(source: str, problemkey: list[str]) -> str:
    """Stable id: the same source and problem keywords always give the same id."""
    key = source.strip() + "|" + ",".join(sorted(k.strip().lower() for k in problemkey))
    return "kb-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def cap_rawtext(text: str, limit: int = RAWTEXT_CAP) -> tuple[str, str | None]:
    """Keep the head and tail of an oversized rawtext; return the text and a note when cut."""
    if len(text) <= limit:
        return text, None
    half = limit // 2
    cut = len(text) - 2 * half
    note = f"rawtext cut from {len(text)} to {2 * half} characters (head and tail kept)"
    return f"{text[:half]}\n… [{cut} characters cut] …\n{text[-half:]}", note


@dataclass(frozen=True)
class Record:
    """One past failure: what was seen, how to check and fix it, and the established cause."""

    id: str
    problemkey: list[str]
    rawtext: str
    function: list[str]
    result: str
    source: str
    category: str
    components: list[str] = field(default_factory=list)
    origin: str = "seed"
    split: str = "perceivable"
    fault: str | None = None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "", rawtext_cap: int = RAWTEXT_CAP) -> Record:
        """Validate ``data`` and build a record. Unknown extra fields are ignored."""
        if not isinstance(data, Mapping):
            raise RecordError(f"a record must be a JSON object, got {type(data).__name__}", where=where)
        problemkey = _keywords(data, "problemkey", where, required=True)
        rawtext = _text(data, "rawtext", where)
        result = _text(data, "result", where)
        source = _text(data, "source", where)
        category = _choice(data, "category", CATEGORIES, where, default=None)
        origin = _choice(data, "origin", ORIGINS, where, default="seed")
        split = _choice(data, "split", SPLITS, where, default="perceivable")
        function = _keywords(data, "function", where, required=False, lower=False)
        unknown = [name for name in function if name not in TOOL_NAMES]
        if unknown:
            raise RecordError(
                f"field 'function': unknown tool name(s) {', '.join(unknown)}; known: {', '.join(sorted(TOOL_NAMES))}",
                where=where,
                field="function",
            )
        components = _keywords(data, "components", where, required=False)
        fault = data.get("fault")
        if fault in ("", None):
            fault = None
        elif not isinstance(fault, str) or (fault not in FAULT_KINDS and catalog().get(fault) is None):
            raise RecordError(
                f"field 'fault': {fault!r} is not a fault kind; known: {', '.join(sorted(FAULT_KINDS))}",
                where=where,
                field="fault",
            )
        notes_raw = data.get("notes") or []
        if not isinstance(notes_raw, list) or not all(isinstance(n, str) for n in notes_raw):
            raise RecordError("field 'notes': must be a list of strings", where=where, field="notes")
        notes = list(notes_raw)
        rawtext, cut_note = cap_rawtext(rawtext, rawtext_cap)
        if cut_note and cut_note not in notes:
            notes.append(cut_note)
        rid = data.get("id")
        if rid in (None, ""):
            rid = record_id(source, problemkey)
        elif not isinstance(rid, str) or not _ID_RE.match(rid):
            raise RecordError(
                f"field 'id': {rid!r} must be 1-128 characters of letters, digits, '.', '_', ':', '-'",
                where=where,
                field="id",
            )
        assert category is not None  # _choice with default=None raises when missing
        return cls(
            id=rid,
            problemkey=problemkey,
            rawtext=rawtext,
            function=function,
            result=result,
            source=source,
            category=category,
            components=components,
            origin=origin,
            split=split,
            fault=fault,
            notes=notes,
        )

    def to_dict(self) -> dict[str, Any]:
        # Hand-written rather than dataclasses.asdict: this runs per record on every store write.
        data: dict[str, Any] = {
            "id": self.id,
            "problemkey": list(self.problemkey),
            "rawtext": self.rawtext,
            "function": list(self.function),
            "result": self.result,
            "source": self.source,
            "category": self.category,
            "components": list(self.components),
            "origin": self.origin,
            "split": self.split,
        }
        if self.fault is not None:
            data["fault"] = self.fault
        if self.notes:
            data["notes"] = list(self.notes)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    def content_hash(self) -> str:
        """Hash of everything but the id: tells an unchanged re-ingest from an update."""
        data = self.to_dict()
        data.pop("id", None)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode("utf-8")).hexdigest()[:16]

    def index_text(self) -> str:
        """The text BM25 indexes: keywords and components first, then the cause, then the facts."""
        return "\n".join([" ".join(self.problemkey), " ".join(self.components), self.result, self.rawtext])

    def with_note(self, note: str) -> Record:
        return replace(self, notes=[*self.notes, note])


def _text(data: Mapping[str, Any], name: str, where: str) -> str:
    value = data.get(name)
    if value is None:
        raise RecordError(f"missing required field '{name}'", where=where, field=name)
    if not isinstance(value, str):
        raise RecordError(
            f"field '{name}': must be a string, got {type(value).__name__}", where=where, field=name
        )
    if not value.strip():
        raise RecordError(f"field '{name}': must not be empty", where=where, field=name)
    return value.strip()


def _choice(
    data: Mapping[str, Any], name: str, allowed: tuple[str, ...], where: str, *, default: str | None
) -> str:
    value = data.get(name)
    if value in (None, ""):
        if default is None:
            raise RecordError(
                f"missing required field '{name}' (one of: {', '.join(allowed)})", where=where, field=name
            )
        return default
    if not isinstance(value, str) or value not in allowed:
        raise RecordError(
            f"field '{name}': {value!r} is not one of: {', '.join(allowed)}", where=where, field=name
        )
    return value


def _keywords(
    data: Mapping[str, Any], name: str, where: str, *, required: bool, lower: bool = True
) -> list[str]:
    """A list of short strings; a comma-separated string is accepted for hand-written files."""
    value = data.get(name)
    if value is None or value == "" or value == []:
        if required:
            raise RecordError(
                f"missing required field '{name}' (a list of keywords)", where=where, field=name
            )
        return []
    if isinstance(value, str):
        value = [part for part in value.split(",")]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecordError(f"field '{name}': must be a list of strings", where=where, field=name)
    out: list[str] = []
    for item in value:
        item = _KEYWORD_RE.sub(" ", item.strip())
        if lower:
            item = item.lower()
        if item and item not in out:
            out.append(item)
    if required and not out:
        raise RecordError(f"field '{name}': must contain at least one keyword", where=where, field=name)
    return out
