"""The Store protocol every backend implements, and the neutral filter type they translate."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from kb.errors import QueryError, RecordError, StoreUnavailableError
from kb.records import NO_CAP, Record
from kb.taxonomy import CATEGORIES, FAULT_KINDS, FILTER_KEYS, ORIGINS, SPLITS

# A validated filter: key -> allowed values (OR within a key, AND across keys).
NormFilters = dict[str, tuple[str, ...]]
STORE_FILE = "kb-store.json"
_CLOSED_VALUES: dict[str, tuple[str, ...]] = {
    "category": CATEGORIES,
    "split": SPLITS,
    "origin": ORIGINS,
    "fault": tuple(sorted(FAULT_KINDS)),
}


def normalize_filters(filters: Mapping[str, Any] | None) -> NormFilters:
    """Validate ``{"category": "network", "component": ["nccl", "infiniband"], ...}``."""
    out: NormFilters = {}
    if not filters:
        return out
    if not isinstance(filters, Mapping):
        raise QueryError(f"filters must be a mapping of {', '.join(FILTER_KEYS)} to values")
    for key, value in filters.items():
        if key not in FILTER_KEYS:
            raise QueryError(f"unknown filter {key!r}; known: {', '.join(FILTER_KEYS)}")
        values = (value,) if isinstance(value, str) else tuple(value) if isinstance(value, Iterable) else None
        if values is None or not all(isinstance(v, str) and v for v in values) or not values:
            raise QueryError(f"filter {key!r}: give a non-empty string or list of strings, got {value!r}")
        values = tuple(v.strip().lower() if key == "component" else v.strip() for v in values)
        allowed = _CLOSED_VALUES.get(key)
        bad = [v for v in values if allowed is not None and v not in allowed]
        if bad:
            raise QueryError(f"filter {key!r}: {', '.join(bad)} not one of: {', '.join(allowed or ())}")
        out[key] = values
    return out


def record_matches(record: Record, filters: NormFilters) -> bool:
    for key, values in filters.items():
        if key == "component":
            if not any(c in record.components for c in values):
                return False
        elif getattr(record, key) not in values:
            return False
    return True


@dataclass
class WriteCounts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0

    def __iadd__(self, other: WriteCounts) -> WriteCounts:
        self.added += other.added
        self.updated += other.updated
        self.unchanged += other.unchanged
        return self


@runtime_checkable
class Store(Protocol):
    """A searchable set of records. Search never returns a record that fails ``filters``."""

    name: str

    def open(self) -> None:
        """Load or connect; raises StoreUnavailableError with a one-line reason."""

    def upsert(self, records: Sequence[Record]) -> WriteCounts:
        """Add new ids, overwrite changed ones, skip identical ones; persist before returning."""

    def get(self, record_id: str) -> Record | None: ...

    def count(self) -> int: ...

    def search(self, query: str, top_k: int, filters: NormFilters) -> list[tuple[Record, float]]:
        """Best first, at most top_k, only records with a positive score."""

    def records(self) -> Iterator[Record]: ...

    def facets(self) -> dict[str, dict[str, int]]:
        """Counts per split, category, origin and component."""

    def close(self) -> None: ...


def facets_of(records: Iterable[Record]) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter[str]] = {k: Counter() for k in ("split", "category", "origin", "component")}
    for r in records:
        counts["split"][r.split] += 1
        counts["category"][r.category] += 1
        counts["origin"][r.origin] += 1
        counts["component"].update(r.components)
    return {k: dict(v.most_common()) for k, v in counts.items()}


def read_store_file(path: Path) -> list[Record]:
    """Records from a store file in Haystack's InMemoryDocumentStore disk format."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        documents = data["documents"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise StoreUnavailableError(f"cannot read the knowledge base store {path}: {exc}") from exc
    out: list[Record] = []
    for n, doc in enumerate(documents, 1):
        try:
            out.append(
                Record.from_dict(doc["meta"]["record"], where=f"{path} document {n}", rawtext_cap=NO_CAP)
            )
        except (KeyError, TypeError) as exc:
            raise StoreUnavailableError(f"{path} document {n}: no record in its meta ({exc})") from exc
        except RecordError as exc:
            raise StoreUnavailableError(f"corrupt knowledge base store: {exc}") from exc
    return out


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON to a temporary file and rename it, so a crash never leaves half a store."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".kb-store-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(payload, f, ensure_ascii=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RecordTable:
    """What both in-memory stores share: records by id with their content hash, the store file and
    a lock. A write counts added/updated/unchanged records; subclasses index what changed
    (``_index_changes``, given (new, old-or-None) pairs) and persist it (``_save``)."""

    def __init__(self, data_dir: Path | None) -> None:
        self._path = data_dir / STORE_FILE if data_dir is not None else None
        self._records: dict[str, tuple[Record, str]] = {}  # id -> (record, content hash)
        self._lock = threading.RLock()

    def open(self) -> None:
        if self._path is not None and self._path.exists():
            self._write(read_store_file(self._path), persist=False)

    def upsert(self, records: Sequence[Record]) -> WriteCounts:
        return self._write(records, persist=True)

    def _write(self, records: Sequence[Record], *, persist: bool) -> WriteCounts:
        counts = WriteCounts()
        changed: list[tuple[Record, Record | None]] = []
        with self._lock:
            for record in records:
                digest = record.content_hash()
                known = self._records.get(record.id)
                if known is not None and known[1] == digest:
                    counts.unchanged += 1
                    continue
                if known is None:
                    counts.added += 1
                else:
                    counts.updated += 1
                self._records[record.id] = (record, digest)
                changed.append((record, known[0] if known is not None else None))
            if changed:
                self._index_changes(changed)
                if persist:
                    self._save()
        return counts

    def _index_changes(self, changed: list[tuple[Record, Record | None]]) -> None:
        raise NotImplementedError

    def _save(self) -> None:
        raise NotImplementedError

    def get(self, record_id: str) -> Record | None:
        known = self._records.get(record_id)
        return known[0] if known else None

    def count(self) -> int:
        return len(self._records)

    def records(self) -> Iterator[Record]:
        return iter([r for r, _ in self._records.values()])

    def facets(self) -> dict[str, dict[str, int]]:
        return facets_of(self.records())
