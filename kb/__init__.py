"""Knowledge base of past cluster failures: records, stores, ingestion, retrieval, learning.

Light names import eagerly; ``KnowledgeBase``/``Hit``/``KBRetriever`` load Haystack on first use.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from kb.config import KBConfig
from kb.errors import (
    IngestError,
    KBConfigError,
    KBError,
    QueryError,
    RecordError,
    StoreUnavailableError,
)
from kb.records import Record

# Haystack's usage telemetry would try to reach the internet; clusterdoc runs offline.
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

if TYPE_CHECKING:
    from kb.component import KBRetriever
    from kb.knowledge import Hit, KnowledgeBase

__all__ = [
    "Hit",
    "IngestError",
    "KBConfig",
    "KBConfigError",
    "KBError",
    "KBRetriever",
    "KnowledgeBase",
    "QueryError",
    "Record",
    "RecordError",
    "StoreUnavailableError",
]


def __getattr__(name: str) -> Any:
    if name in ("KnowledgeBase", "Hit"):
        from kb import knowledge

        return getattr(knowledge, name)
    if name == "KBRetriever":
        from kb.component import KBRetriever

        return KBRetriever
    raise AttributeError(f"module 'kb' has no attribute {name!r}")
