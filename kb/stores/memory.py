"""Default store: Haystack's InMemoryDocumentStore searched by InMemoryBM25Retriever, saved as JSON.

Haystack scores every stored document on each query (no inverted index), so a query costs time
linear in the store size: fine for the seed set and a few thousand records, slow at 100k. The
``index`` store (kb/stores/index.py) keeps the same contract with an inverted index for that case.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.document_stores.types import DuplicatePolicy

from kb.records import Record
from kb.stores.base import NormFilters, RecordTable
from kb.stores.documents import component_flag, record_to_document


def haystack_filters(filters: NormFilters) -> dict[str, Any] | None:
    """Translate neutral filters to Haystack's filter syntax (components as per-component flags)."""
    conditions: list[dict[str, Any]] = []
    for key, values in filters.items():
        if key == "component":
            flags = [{"field": f"meta.{component_flag(v)}", "operator": "==", "value": True} for v in values]
            conditions.append({"operator": "OR", "conditions": flags})
        else:
            conditions.append({"field": f"meta.{key}", "operator": "in", "value": list(values)})
    if not conditions:
        return None
    return {"operator": "AND", "conditions": conditions}


class MemoryStore(RecordTable):
    name = "memory"

    def __init__(self, data_dir: Path | None) -> None:
        super().__init__(data_dir)
        self._store = InMemoryDocumentStore(shared=False, bm25_algorithm="BM25L")
        self._retriever = InMemoryBM25Retriever(self._store)

    def _index_changes(self, changed: list[tuple[Record, Record | None]]) -> None:
        docs = [record_to_document(record) for record, _ in changed]
        self._store.write_documents(docs, policy=DuplicatePolicy.OVERWRITE)

    def _save(self) -> None:
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_name(f".{self._path.name}.{os.getpid()}.tmp")
        self._store.save_to_disk(str(tmp))
        os.replace(tmp, self._path)

    def search(self, query: str, top_k: int, filters: NormFilters) -> list[tuple[Record, float]]:
        with self._lock:
            docs = self._retriever.run(query=query, top_k=top_k, filters=haystack_filters(filters))[
                "documents"
            ]
        out = []
        for doc in docs:
            known = self._records.get(doc.id)
            if known is not None and doc.score is not None and doc.score > 0:
                out.append((known[0], float(doc.score)))
        return out

    def close(self) -> None:
        self._store.shutdown()
