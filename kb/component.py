"""KBRetriever: the knowledge base as a Haystack pipeline component (query in, records out)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from haystack import Document, component

from kb.knowledge import KnowledgeBase
from kb.records import Record
from kb.stores.documents import record_to_document


@component
class KBRetriever:
    """Retrieves past failures for a query. Cheap ``__init__``; the store opens in ``warm_up``."""

    def __init__(self, kb: KnowledgeBase, top_k: int = 5) -> None:
        self.kb = kb
        self.top_k = top_k

    def warm_up(self) -> None:
        self.kb.warm_up()

    @component.output_types(documents=list[Document], records=list[Record])
    def run(
        self, query: str, top_k: int | None = None, filters: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        hits = self.kb.search(query, top_k=top_k or self.top_k, filters=filters)
        documents = [replace(record_to_document(h.record, component_flags=False), score=h.score) for h in hits]
        return {"documents": documents, "records": [hit.record for hit in hits]}
