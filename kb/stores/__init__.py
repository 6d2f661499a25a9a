"""Record stores behind one Protocol, built by one factory from the kb config."""

from __future__ import annotations

from kb.config import KBConfig
from kb.stores.base import NormFilters, Store, WriteCounts, normalize_filters, record_matches

__all__ = ["NormFilters", "Store", "WriteCounts", "make_store", "normalize_filters", "record_matches"]


def make_store(config: KBConfig) -> Store:
    """The store ``config.store`` names (not yet opened: call ``open()``, which may fail cleanly)."""
    if config.store == "elasticsearch":
        from kb.stores.elasticsearch import ElasticsearchStore

        return ElasticsearchStore(config)
    if config.store == "index":
        from kb.stores.index import IndexStore

        return IndexStore(config.data_dir)
    from kb.stores.memory import MemoryStore

    return MemoryStore(config.data_dir)
