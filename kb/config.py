"""kb's own config: read once (by clusterdoc/config.py or the kb CLI) and passed down."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from kb.errors import KBConfigError

STORES = ("memory", "index", "elasticsearch")
ES_URL_ENV = "CLUSTERDOC_ES_URL"
ES_API_KEY_ENV = "CLUSTERDOC_ES_API_KEY"
DATA_DIR_ENV = "CLUSTERDOC_DATA_DIR"
SEED_PATH = Path(__file__).resolve().parent / "data" / "seed.jsonl"
# More seed records, one JSONL file per collection batch (each with its own split assignment).
RECORDS_DIR = Path(__file__).resolve().parent / "data" / "records"


_TYPES: dict[str, type | tuple[type, ...]] = {
    "store": str,
    "include_benchmark_split": bool,
    "embeddings": bool,
    "es_index": str,
    "es_timeout_s": (int, float),
    "rawtext_cap": int,
}
_TYPE_NAMES: dict[type | tuple[type, ...], str] = {
    str: "a string",
    bool: "true or false",
    (int, float): "a number",
    int: "an integer",
}


def default_data_dir() -> Path:
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser() / "kb"
    return Path("~/.local/share/clusterdoc/kb").expanduser()


@dataclass(frozen=True)
class KBConfig:
    """Where the knowledge base lives and how it retrieves.

    store: ``memory`` (Haystack InMemoryDocumentStore + BM25, saved as JSON in data_dir),
    ``index`` (clusterdoc's own inverted BM25 index, same persistence; fast at 100k records),
    ``elasticsearch`` (URL from $CLUSTERDOC_ES_URL, API key from $CLUSTERDOC_ES_API_KEY).
    data_dir None keeps an in-memory store ephemeral (tests, benchmarks).
    """

    store: str = "index"  # chosen by measurement (docs/kb.md): same recall, p95 2 ms at 10k records
    data_dir: Path | None = None
    seed_path: Path | None = SEED_PATH
    records_dir: Path | None = RECORDS_DIR  # loaded with the seed (not when seed_path is None)
    include_benchmark_split: bool = True  # production searches every record; the benchmark turns it off (fair mode)
    embeddings: bool = False
    es_index: str = "clusterdoc-kb"
    es_timeout_s: float = 5.0
    rawtext_cap: int = 64 * 1024

    def __post_init__(self) -> None:
        if self.store not in STORES:
            raise KBConfigError(f"kb.store: {self.store!r} is not one of: {', '.join(STORES)}")
        if self.rawtext_cap < 1024:
            raise KBConfigError(f"kb.rawtext_cap: {self.rawtext_cap} is below the minimum of 1024")
        if self.es_timeout_s <= 0:
            raise KBConfigError(f"kb.es_timeout_s: {self.es_timeout_s} must be positive")

    @classmethod
    def from_env(cls, **overrides: Any) -> KBConfig:
        """Defaults with the data dir taken from the environment, then explicit overrides."""
        base = cls(data_dir=default_data_dir())
        return replace(base, **overrides) if overrides else base

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "config") -> KBConfig:
        """Build from a ``[kb]`` TOML table; unknown keys are an error naming the key."""
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {"data_dir": default_data_dir()}
        for key, value in data.items():
            if key not in known:
                raise KBConfigError(f"{source}: unknown key kb.{key}; known: {', '.join(sorted(known))}")
            expected = _TYPES.get(key)
            if key in ("data_dir", "seed_path", "records_dir"):
                if value is not None and not isinstance(value, str):
                    raise KBConfigError(f"{source}: kb.{key} must be a path string, got {value!r}")
                value = None if value in (None, "") else Path(value).expanduser()
            elif expected is not None and (
                not isinstance(value, expected) or isinstance(value, bool) != (expected is bool)
            ):
                raise KBConfigError(f"{source}: kb.{key} must be {_TYPE_NAMES[expected]}, got {value!r}")
            values[key] = value
        try:
            return cls(**values)
        except KBConfigError as exc:
            raise KBConfigError(f"{source}: {exc}") from None

    def es_url(self) -> str:
        url = os.environ.get(ES_URL_ENV, "").strip()
        if not url:
            raise KBConfigError(f"kb.store = 'elasticsearch' needs the Elasticsearch URL in ${ES_URL_ENV}")
        return url
