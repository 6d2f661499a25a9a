"""Record <-> Haystack Document mapping shared by the Haystack-backed stores and KBRetriever."""

from __future__ import annotations

import re
from typing import Any

from haystack import Document

from kb.records import NO_CAP, Record

_FLAG_RE = re.compile(r"[^a-z0-9]+")


def component_flag(component: str) -> str:
    """Meta key marking one component: Haystack's in-memory filters have no 'list contains'."""
    return "has_" + _FLAG_RE.sub("_", component.lower()).strip("_")


def record_to_document(record: Record, *, component_flags: bool = True) -> Document:
    meta: dict[str, Any] = {
        "record": record.to_dict(),
        "category": record.category,
        "split": record.split,
        "origin": record.origin,
        "fault": record.fault or "",
        "components": list(record.components),
        "content_hash": record.content_hash(),
    }
    if component_flags:
        for comp in record.components:
            meta[component_flag(comp)] = True
    return Document(id=record.id, content=record.index_text(), meta=meta)


def document_to_record(doc: Document) -> Record:
    return Record.from_dict(doc.meta["record"], where=f"document {doc.id}", rawtext_cap=NO_CAP)
