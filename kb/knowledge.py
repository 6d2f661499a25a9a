"""KnowledgeBase: the one object the agent, the bot and the CLI use to reach past failures.

Fair evaluation is enforced here, not left to callers: unless the config says
``include_benchmark_split``, a search can only ever return ``perceivable`` records (the filter goes
to the store, and every hit is checked again before it is returned).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diagnostics.faults import catalog
from kb.config import KBConfig
from kb.errors import IngestError, KBError, QueryError, RecordError
from kb.ingest import FileIssue, IngestReport, collect_files, dedupe, read_file, read_jsonl
from kb.records import Record
from kb.stores import Store, WriteCounts, make_store, normalize_filters
from kb.taxonomy import SPLITS, TOOL_NAMES

MAX_TOP_K = 100
# A pasted log can be huge; BM25 gains nothing from the middle of it.
QUERY_CAP = 16 * 1024


@dataclass(frozen=True)
class Hit:
    record: Record
    score: float
    rank: int  # 1 = best

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "score": round(self.score, 6), "record": self.record.to_dict()}


_STOP_WORDS = frozenset(("the", "was", "were", "that", "this", "with", "from", "for", "not", "but", "its", "into",
                         "then", "than", "which", "when", "while", "had", "has", "have", "are", "it's", "wasn't",
                         "actually", "really", "just"))


def _seen(node: str | None, when: float | None, actions: Sequence[str]) -> str:
    date = time.strftime("%Y-%m-%d", time.gmtime(when if when is not None else time.time()))
    fix = f", fixed by {', '.join(actions)}" if actions else ""
    return f"seen {'on ' + node + ' ' if node else ''}on {date}{fix}"


class KnowledgeBase:
    """Seed records + the data dir, searchable by BM25 (and optionally embeddings, fused by RRF)."""

    def __init__(self, config: KBConfig | None = None) -> None:
        self.config = config or KBConfig()
        self._store: Store | None = None
        self._dense: Any = None
        self._lock = threading.Lock()

    # -- life cycle -------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Open the store, load the seed file (idempotent) and, if configured, the embeddings."""
        with self._lock:
            if self._store is not None:
                return
            store = make_store(self.config)
            store.open()
            for path in self.seed_files():
                records, _ = read_jsonl(path, self.config.rawtext_cap)
                store.upsert(records)
            if self.config.embeddings:
                from kb.embeddings import DenseIndex

                dense = DenseIndex(self.config.data_dir)
                dense.warm_up()
                dense.add(store.records())
                self._dense = dense
            self._store = store

    def seed_files(self) -> list[Path]:
        """The seed file and, with it, every batch file of ``records_dir`` when that folder sits beside
        the seed file (the shipped data; a test's own seed file comes alone)."""
        seed = self.config.seed_path
        if seed is None or not seed.exists():
            return []
        extra = self.config.records_dir
        beside = extra is not None and extra.is_dir() and extra.resolve().parent == seed.resolve().parent
        batches = sorted(extra.glob("*.jsonl")) if beside and extra is not None else []
        return [seed, *batches]

    @property
    def store(self) -> Store:
        if self._store is None:
            self.warm_up()
        assert self._store is not None
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- retrieval --------------------------------------------------------------------------
    def retrievable_splits(self, splits: Sequence[str] | None = None) -> tuple[str, ...]:
        """The splits a search may return: never ``benchmark`` in fair mode."""
        allowed = SPLITS if self.config.include_benchmark_split else ("perceivable",)
        if splits is None:
            return allowed
        if isinstance(splits, str):
            splits = (splits,)
        unknown = [s for s in splits if s not in SPLITS]
        if unknown:
            raise QueryError(f"unknown split(s) {', '.join(unknown)}; known: {', '.join(SPLITS)}")
        refused = [s for s in splits if s not in allowed]
        if refused:
            raise QueryError(
                "the benchmark split is never retrieved in fair mode; set kb.include_benchmark_split = true "
                "(CLI: --all-splits) to search the whole dataset"
            )
        return tuple(dict.fromkeys(splits))

    def search(
        self,
        query: str,
        top_k: int = 5,
        filters: Mapping[str, Any] | None = None,
        splits: Sequence[str] | None = None,
    ) -> list[Hit]:
        if not isinstance(query, str) or not query.strip():
            raise QueryError("empty query: give error lines or symptoms to search for")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise QueryError(f"top_k must be an integer from 1 to {MAX_TOP_K}, got {top_k!r}")
        query = query.strip()
        if len(query) > QUERY_CAP:
            query = query[: QUERY_CAP // 2] + "\n" + query[-QUERY_CAP // 2 :]
        norm = normalize_filters(filters)
        allowed = self.retrievable_splits(splits)
        if "split" in norm:
            allowed = self.retrievable_splits(norm["split"])
        norm["split"] = allowed
        store = self.store
        ranked = store.search(query, top_k, norm) if self._dense is None else self._fused(query, top_k, norm)
        hits = [(r, s) for r, s in ranked if r.split in allowed]  # belt and braces over every backend
        return [Hit(record=r, score=s, rank=i) for i, (r, s) in enumerate(hits[:top_k], 1)]

    def _fused(self, query: str, top_k: int, norm: dict[str, tuple[str, ...]]) -> list[tuple[Record, float]]:
        from kb.embeddings import reciprocal_rank_fusion

        depth = max(top_k * 4, 20)
        bm25 = self.store.search(query, depth, norm)
        dense = self._dense.search(query, depth, norm)
        by_id = {r.id: r for r, _ in bm25 + dense}
        fused = reciprocal_rank_fusion([[r.id for r, _ in bm25], [r.id for r, _ in dense]])
        return [(by_id[rid], score) for rid, score in fused[:top_k]]

    def get(self, record_id: str) -> Record | None:
        return self.store.get(record_id)

    # -- growing ----------------------------------------------------------------------------
    def add_records(self, records: Sequence[Record]) -> WriteCounts:
        counts = self.store.upsert(records)
        if self._dense is not None and (counts.added or counts.updated):
            self._dense.add(records)
        return counts

    def ingest(self, path: str | Path) -> IngestReport:
        """Ingest a JSONL file, a markdown thread, or a folder of them; each file all-or-nothing.

        Raises IngestError (carrying the report) when any file was rejected; the other files are
        ingested all the same.
        """
        report = IngestReport()
        files = collect_files(Path(path).expanduser())
        if not files:
            report.warnings.append(f"{path}: no .jsonl, .ndjson, .md or .markdown files found")
        for file in files:
            report.files += 1
            try:
                records, warnings = read_file(file, self.config.rawtext_cap)
            except RecordError as exc:
                report.failed.append(FileIssue(str(file), str(exc)))
                continue
            report.warnings.extend(warnings)
            report.records += len(records)
            counts = self.add_records(records)
            report.added += counts.added
            report.updated += counts.updated
            report.unchanged += counts.unchanged
        if report.failed:
            lines = "\n".join(f"  {issue}" for issue in report.failed)
            raise IngestError(
                f"{len(report.failed)} file(s) rejected, nothing ingested from them:\n{lines}", report
            )
        return report

    def learn_from_incident(
        self,
        summary: str,
        cause_fault: str | None,
        node: str | None,
        gpu: int | None,
        evidence_lines: Sequence[str],
        actions: Sequence[str],
        verified: bool,
        *,
        incident_id: str | None = None,
        category: str | None = None,
        when: float | None = None,
    ) -> Record:
        """Turn a resolved, verified incident into a record the very next search can find. A cause
        with no fault kind (an open-world fault) is learnt too, under the ``category`` it was given.
        Its result says where and when it was seen here and what fixed it, so the next similar
        alert can cite it ("seen on node-12 on 2026-11-02, fixed by reset_gpu_clocks")."""
        if verified is not True:
            raise KBError("refusing to learn from an incident whose fix was not verified")
        if not isinstance(summary, str) or not summary.strip():
            raise RecordError("incident summary must not be empty", field="summary")
        kind = catalog().get(cause_fault) if cause_fault else None
        if kind is None and not category:
            raise RecordError(
                f"cause_fault {cause_fault!r} is not a fault kind and no category was given; known kinds: "
                f"{', '.join(sorted(catalog().names))}",
                field="cause_fault",
            )
        bad = [a for a in actions if a not in TOOL_NAMES]
        if bad:
            raise RecordError(f"unknown action(s) {', '.join(bad)}", field="actions")
        if kind is not None:
            category, components, checks = kind.category, kind.components, kind.kb_checks
        else:
            components, checks = (), ()
        category = str(category).replace("-", "_")
        label = cause_fault or f"{category} incident"
        parts = ([f"on {node}"] if node else []) + ([f"GPU {gpu}"] if gpu is not None else [])
        where = (" " + " ".join(parts)) if parts else ""
        evidence = [line.rstrip() for line in evidence_lines if line and line.strip()]
        rawtext = "\n".join([f"Incident{where}: {summary.strip()}", "Evidence:", *evidence])
        digest = hashlib.sha256(
            "\x1f".join([label, node or "", str(gpu), summary.strip(), *evidence]).encode("utf-8")
        ).hexdigest()[:12]
        ident = incident_id or digest
        record = Record.from_dict(
            {
                "problemkey": [label, label.replace("_", " ")],
                "rawtext": rawtext,
                "function": dedupe([*checks, *actions]),
                "result": f"{label.replace('_', ' ')}{where}: {summary.strip()} ({_seen(node, when, actions)})",
                "source": f"clusterdoc:incident/{ident}",
                "category": category,
                "components": list(components),
                "origin": "incident",
                "split": "perceivable",
                "fault": cause_fault if kind is not None else None,
            },
            where=f"incident {ident}",
            rawtext_cap=self.config.rawtext_cap,
        )
        self.add_records([record])
        return record

    def learn_correction(
        self,
        incident_text: str,
        said: str,
        correction: str,
        category: str,
        *,
        node: str | None = None,
        author: str = "",
        incident_id: str | None = None,
        when: float | None = None,
    ) -> Record:
        """An operator's correction of a diagnosis ("it was the NFS mount") as a record: what the
        incident showed, what clusterdoc said, and what the operator established, under the
        category of the correction; retrievable at once like a learnt incident."""
        correction = " ".join((correction or "").split())
        if len(correction) < 3:
            raise RecordError("the correction is empty: say what it was (e.g. 'it was the NFS mount')",
                              field="correction")
        category = str(category or "").replace("-", "_")
        date = time.strftime("%Y-%m-%d", time.gmtime(when if when is not None else time.time()))
        where = f" on {node}" if node else ""
        ident = incident_id or hashlib.sha256(f"{incident_text}\x1f{correction}".encode()).hexdigest()[:12]
        words = [w for w in re.findall(r"[A-Za-z][\w./-]{2,}", correction) if w.lower() not in _STOP_WORDS][:5]
        record = Record.from_dict(
            {
                "problemkey": [*(words or [category]), "operator correction"][:6],
                "rawtext": "\n".join([f"Incident{where} ({date}): {' '.join(incident_text.split())[:1500]}",
                                      f"clusterdoc said: {' '.join(said.split())[:600]}",
                                      f"Operator correction{f' by {author}' if author else ''}: {correction}"]),
                "function": [],
                "result": f"{correction} (operator correction{where}, {date}; clusterdoc had said: "
                          f"{' '.join(said.split())[:160]})",
                "source": f"clusterdoc:correction/{ident}",
                "category": category,
                "components": [],
                "origin": "incident",
                "split": "perceivable",
                "fault": None,
            },
            where=f"correction {ident}",
            rawtext_cap=self.config.rawtext_cap,
        )
        self.add_records([record])
        return record

    # -- reporting --------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        store = self.store
        facets = store.facets()
        allowed = self.retrievable_splits()
        return {
            "store": store.name,
            "data_dir": str(self.config.data_dir) if self.config.data_dir else None,
            "total": store.count(),
            "retrievable": sum(n for s, n in facets.get("split", {}).items() if s in allowed),
            "retrievable_splits": list(allowed),
            "embeddings": self._dense is not None,
            "by_split": facets.get("split", {}),
            "by_category": facets.get("category", {}),
            "by_origin": facets.get("origin", {}),
            "by_component": dict(list(facets.get("component", {}).items())[:25]),
        }
