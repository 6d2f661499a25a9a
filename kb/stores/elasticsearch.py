"""Elasticsearch store (the only module that talks to Elasticsearch), via elasticsearch-haystack.

URL from $CLUSTERDOC_ES_URL, optional API key from $CLUSTERDOC_ES_API_KEY. An Elasticsearch that
is down or refuses us is reported as one line (StoreUnavailableError), never a stack trace, and
credentials in the URL are blanked out of every message.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import Any

from haystack.document_stores.types import DuplicatePolicy
from haystack.utils import Secret

from kb.config import ES_API_KEY_ENV, KBConfig
from kb.errors import StoreUnavailableError
from kb.records import Record
from kb.stores.base import NormFilters, WriteCounts
from kb.stores.documents import document_to_record, record_to_document

# Meta fields are keywords (exact filters); the record itself is kept in _source only.
MAPPING: dict[str, Any] = {
    "properties": {
        "content": {"type": "text"},
        "record": {"type": "object", "enabled": False},
        "category": {"type": "keyword"},
        "split": {"type": "keyword"},
        "origin": {"type": "keyword"},
        "fault": {"type": "keyword"},
        "components": {"type": "keyword"},
        "content_hash": {"type": "keyword"},
    },
    "dynamic_templates": [
        {"strings": {"path_match": "*", "match_mapping_type": "string", "mapping": {"type": "keyword"}}}
    ],
}
_CREDENTIALS_RE = re.compile(r"//[^/@]*@")


def redact(url: str) -> str:
    return _CREDENTIALS_RE.sub("//***@", url)


def es_filters(filters: NormFilters) -> dict[str, Any] | None:
    conditions = [
        {
            "field": f"meta.{'components' if key == 'component' else key}",
            "operator": "in",
            "value": list(values),
        }
        for key, values in filters.items()
    ]
    return {"operator": "AND", "conditions": conditions} if conditions else None


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "…"


class ElasticsearchStore:
    name = "elasticsearch"

    def __init__(self, config: KBConfig) -> None:
        self._url = config.es_url()
        self._index_name = config.es_index
        self._timeout = config.es_timeout_s
        self._store: Any = None
        self._retriever: Any = None

    def _fail(self, doing: str, exc: BaseException) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"Elasticsearch at {redact(self._url)} is unavailable ({doing}): {redact(_reason(exc))}"
        )

    def open(self) -> None:
        from haystack_integrations.components.retrievers.elasticsearch import ElasticsearchBM25Retriever
        from haystack_integrations.document_stores.elasticsearch import ElasticsearchDocumentStore

        try:
            self._store = ElasticsearchDocumentStore(
                hosts=self._url,
                index=self._index_name,
                custom_mapping=MAPPING,
                api_key=Secret.from_env_var(ES_API_KEY_ENV, strict=False),
                api_key_id=None,
                request_timeout=self._timeout,
                max_retries=1,
            )
            self._store.count_documents()  # connects and creates the index now, not mid-search
        except Exception as exc:  # the client raises many types; all mean "cannot use it"
            raise self._fail("connect", exc) from exc
        self._retriever = ElasticsearchBM25Retriever(document_store=self._store, fuzziness="0")

    def upsert(self, records: Sequence[Record]) -> WriteCounts:
        counts = WriteCounts()
        if not records:
            return counts
        try:
            existing = {
                doc.id: doc.meta.get("content_hash")
                for doc in self._store.filter_documents(
                    {"field": "id", "operator": "in", "value": [r.id for r in records]}
                )
            }
            changed = []
            for record in records:
                digest = record.content_hash()
                if existing.get(record.id) == digest:
                    counts.unchanged += 1
                    continue
                if record.id in existing:
                    counts.updated += 1
                else:
                    counts.added += 1
                changed.append(record_to_document(record, component_flags=False))
            if changed:
                self._store.write_documents(changed, policy=DuplicatePolicy.OVERWRITE, refresh="wait_for")
        except Exception as exc:
            raise self._fail("write", exc) from exc
        return counts

    def get(self, record_id: str) -> Record | None:
        try:
            docs = self._store.filter_documents({"field": "id", "operator": "==", "value": record_id})
        except Exception as exc:
            raise self._fail("read", exc) from exc
        return document_to_record(docs[0]) if docs else None

    def count(self) -> int:
        try:
            return int(self._store.count_documents())
        except Exception as exc:
            raise self._fail("count", exc) from exc

    def search(self, query: str, top_k: int, filters: NormFilters) -> list[tuple[Record, float]]:
        try:
            docs = self._retriever.run(query=query, top_k=top_k, filters=es_filters(filters))["documents"]
        except Exception as exc:
            raise self._fail("search", exc) from exc
        return [(document_to_record(d), float(d.score or 0.0)) for d in docs if (d.score or 0.0) > 0]

    def records(self) -> Iterator[Record]:
        try:
            docs = self._store.filter_documents()
        except Exception as exc:
            raise self._fail("read", exc) from exc
        return iter([document_to_record(d) for d in docs])

    def facets(self) -> dict[str, dict[str, int]]:
        fields = {"split": "split", "category": "category", "origin": "origin", "component": "components"}
        aggs = {name: {"terms": {"field": field, "size": 200}} for name, field in fields.items()}
        try:
            resp = self._store.client.search(index=self._index_name, size=0, aggs=aggs)
        except Exception as exc:
            raise self._fail("stats", exc) from exc
        return {
            name: {b["key"]: int(b["doc_count"]) for b in resp["aggregations"][name]["buckets"]}
            for name in fields
        }

    def close(self) -> None:
        if self._store is not None:
            with contextlib.suppress(Exception):  # closing a dead connection is not worth reporting
                self._store.close()
