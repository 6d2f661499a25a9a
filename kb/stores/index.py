"""clusterdoc's own in-memory BM25 store: an inverted index, so a query only touches the postings of
its own terms instead of scoring every record (what Haystack's in-memory retriever does).

Postings are ``array.array`` buffers viewed by numpy without copying; scores are summed with
``np.bincount``; filters become boolean masks. Okapi BM25 with Lucene's non-negative idf.
Updates tombstone the old entry; the index is rebuilt once tombstones outnumber live entries.
"""

from __future__ import annotations

import math
import re
from array import array
from collections import Counter
from pathlib import Path

import numpy as np

from kb.records import Record
from kb.stores.base import NormFilters, RecordTable, write_json_atomic

# Same tokens as Haystack's default BM25 regex (word characters), lowercased.
_TOKEN_RE = re.compile(r"\w+")
K1 = 1.2
B = 0.75
# Each query term costs one pass over its postings; beyond this many, only the rarest are scored.
MAX_QUERY_TERMS = 64


def tokenize(text: str) -> list[str]:
    return _TOKEN_RE.findall(text.lower())


class _Field:
    """One categorical field as an int code per document, for mask filters."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.values = array("i")

    def append(self, value: str) -> None:
        code = self.codes.setdefault(value, len(self.codes))
        self.values.append(code)

    def mask(self, wanted: tuple[str, ...]) -> np.ndarray:
        codes = [self.codes[v] for v in wanted if v in self.codes]
        view = np.frombuffer(self.values, dtype=np.int32)
        return np.isin(view, np.asarray(codes, dtype=np.int32))


class InvertedIndex:
    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.ids: list[str] = []  # docno -> record id
        self.docno: dict[str, int] = {}  # record id -> live docno
        self.alive = array("b")
        self.doc_len = array("i")
        self.post_docs: dict[str, array] = {}
        self.post_tf: dict[str, array] = {}
        self.df: dict[str, int] = {}
        self.total_len = 0
        self.live = 0
        self.fields = {name: _Field() for name in ("category", "split", "origin", "fault")}
        self.components: dict[str, array] = {}
        self._norm = np.zeros(0)
        self._norm_key: tuple[int, int, int] = (-1, -1, -1)

    def add(self, record: Record) -> None:
        """Index a record whose id is not live (call ``remove`` with the old version first)."""
        n = len(self.ids)
        self.ids.append(record.id)
        self.docno[record.id] = n
        tokens = tokenize(record.index_text())
        post_docs, post_tf, df = self.post_docs, self.post_tf, self.df
        for tok, c in Counter(tokens).items():
            docs = post_docs.get(tok)
            if docs is None:
                post_docs[tok] = array("i", (n,))
                post_tf[tok] = array("i", (c,))
                df[tok] = 1
            else:
                docs.append(n)
                post_tf[tok].append(c)
                df[tok] += 1
        self.alive.append(1)
        self.doc_len.append(len(tokens))
        self.total_len += len(tokens)
        self.live += 1
        self.fields["category"].append(record.category)
        self.fields["split"].append(record.split)
        self.fields["origin"].append(record.origin)
        self.fields["fault"].append(record.fault or "")
        for comp in record.components:
            self.components.setdefault(comp, array("i")).append(n)

    def remove(self, record: Record) -> None:
        """Tombstone the live entry of ``record``: masked by ``alive``, dropped from df and lengths."""
        n = self.docno.pop(record.id, None)
        if n is None:
            return
        self.alive[n] = 0
        self.live -= 1
        self.total_len -= self.doc_len[n]
        for tok in set(tokenize(record.index_text())):
            self.df[tok] -= 1

    def _length_norm(self) -> np.ndarray:
        """K1 * (1 - B + B * len / avglen) per document, cached until the index changes."""
        key = (len(self.ids), self.live, self.total_len)
        if self._norm_key != key:
            avgdl = max(self.total_len / max(self.live, 1), 1.0)
            dl = np.frombuffer(self.doc_len, dtype=np.int32).astype(np.float64)
            self._norm = K1 * (1.0 - B + B * dl / avgdl)
            self._norm_key = key
        return self._norm

    @property
    def dead(self) -> int:
        return len(self.ids) - self.live

    def search(self, query: str, top_k: int, filters: NormFilters) -> list[tuple[str, float]]:
        n_docs = len(self.ids)
        if self.live == 0 or n_docs == 0:
            return []
        terms = [t for t in dict.fromkeys(tokenize(query)) if t in self.post_docs]
        if not terms:
            return []
        if len(terms) > MAX_QUERY_TERMS:  # a pasted log: its rarest terms carry the signal
            terms = sorted(terms, key=lambda t: self.df.get(t, 0))[:MAX_QUERY_TERMS]
        norm = self._length_norm()
        scores = np.zeros(n_docs, dtype=np.float64)
        for term in terms:
            docs = np.frombuffer(self.post_docs[term], dtype=np.int32)
            tf = np.frombuffer(self.post_tf[term], dtype=np.int32).astype(np.float64)
            df = self.df.get(term, 0)
            idf = math.log(1.0 + (self.live - df + 0.5) / (df + 0.5))
            # Per-term bincount measured faster than concatenating all postings into one.
            scores += np.bincount(docs, weights=idf * tf * (K1 + 1.0) / (tf + norm[docs]), minlength=n_docs)
        mask = np.frombuffer(self.alive, dtype=np.int8).astype(bool) & (scores > 0)
        for key, values in filters.items():
            if key == "component":
                comp_mask = np.zeros(n_docs, dtype=bool)
                for comp in values:
                    if comp in self.components:
                        comp_mask[np.frombuffer(self.components[comp], dtype=np.int32)] = True
                mask &= comp_mask
            else:
                mask &= self.fields[key].mask(values)
        candidates = np.flatnonzero(mask)
        if candidates.size == 0:
            return []
        cand_scores = scores[candidates]
        if candidates.size > top_k:
            part = np.argpartition(-cand_scores, top_k - 1)[:top_k]
            candidates, cand_scores = candidates[part], cand_scores[part]
        order = np.lexsort((candidates, -cand_scores))  # best first, ties by insertion order
        return [(self.ids[int(candidates[i])], float(cand_scores[i])) for i in order]


class IndexStore(RecordTable):
    name = "index"

    def __init__(self, data_dir: Path | None) -> None:
        super().__init__(data_dir)
        self._index = InvertedIndex()

    def _index_changes(self, changed: list[tuple[Record, Record | None]]) -> None:
        for record, old in changed:
            if old is not None:
                self._index.remove(old)
            self._index.add(record)
        if self._index.dead > max(1000, self._index.live):
            self._rebuild()

    def _rebuild(self) -> None:
        self._index.clear()
        for record, _ in self._records.values():
            self._index.add(record)

    def _save(self) -> None:
        if self._path is None:
            return
        documents = [{"id": r.id, "meta": {"record": r.to_dict()}} for r, _ in self._records.values()]
        write_json_atomic(self._path, {"type": "kb.stores.index.IndexStore", "documents": documents})

    def search(self, query: str, top_k: int, filters: NormFilters) -> list[tuple[Record, float]]:
        with self._lock:
            ranked = self._index.search(query, top_k, filters)
            return [(self._records[rid][0], score) for rid, score in ranked]

    def close(self) -> None:
        pass
