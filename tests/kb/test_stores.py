"""One store suite, run over every backend (Elasticsearch only where CLUSTERDOC_ES_URL is set)."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from kb.config import KBConfig
from kb.errors import QueryError, StoreUnavailableError
from kb.records import Record
from kb.stores import Store, make_store, normalize_filters


def opened(config: KBConfig) -> Store:
    store = make_store(config)
    store.open()
    return store


def ids(results: list[tuple[Record, float]]) -> list[str]:
    return [r.id for r, _ in results]


def test_upsert_counts_and_idempotence(backend_config: KBConfig, sample_records: list[Record]) -> None:
    store = opened(backend_config)
    first = store.upsert(sample_records)
    assert (first.added, first.updated, first.unchanged) == (5, 0, 0)
    again = store.upsert(sample_records)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 5)
    changed = replace(sample_records[0], result="a different established cause")
    third = store.upsert([changed])
    assert (third.added, third.updated, third.unchanged) == (0, 1, 0)
    assert store.count() == 5
    got = store.get(changed.id)
    assert got is not None and got.result == "a different established cause"
    assert store.get("no-such-id") is None


def test_search_ranks_the_matching_record_first(
    backend_config: KBConfig, sample_records: list[Record]
) -> None:
    store = opened(backend_config)
    store.upsert(sample_records)
    assert ids(store.search("GPU has fallen off the bus Xid 79", 3, {}))[0] == "gpu-xid79"
    assert ids(store.search("No space left on device checkpoint", 3, {}))[0] == "disk-full"
    results = store.search("watchdog collective operation timeout mlx5_0", 5, {})
    assert results[0][0].id == "net-ib-down"
    assert all(a >= b for (_, a), (_, b) in itertools.pairwise(results))
    assert store.search("zzzyzzy qqqxqqq", 5, {}) == []


def test_search_respects_top_k(backend_config: KBConfig, sample_records: list[Record]) -> None:
    store = opened(backend_config)
    store.upsert(sample_records)
    assert len(store.search("nccl gpu error timeout bus shm", 2, {})) == 2


@pytest.mark.parametrize(
    ("filters", "allowed"),
    [
        ({"category": "storage"}, {"disk-full"}),
        ({"category": ["storage", "memory"]}, {"disk-full", "shm-small"}),
        ({"component": "nccl"}, {"net-ib-down", "shm-small"}),
        ({"component": ["pcie", "cooling"]}, {"gpu-xid79", "thermal-throttle"}),
        ({"split": "benchmark"}, {"thermal-throttle", "shm-small"}),
        ({"origin": "incident"}, {"disk-full"}),
        ({"split": "perceivable", "component": "nccl"}, {"net-ib-down"}),
    ],
)
def test_filters(
    backend_config: KBConfig, sample_records: list[Record], filters: dict[str, object], allowed: set[str]
) -> None:
    store = opened(backend_config)
    store.upsert(sample_records)
    # A query that matches every sample record, so only the filter decides.
    query = "nccl gpu timeout bus error shm checkpoint thermal slowdown xid device memory"
    got = set(ids(store.search(query, 10, normalize_filters(filters))))
    assert got == allowed


def test_facets(backend_config: KBConfig, sample_records: list[Record]) -> None:
    store = opened(backend_config)
    store.upsert(sample_records)
    facets = store.facets()
    assert facets["split"] == {"perceivable": 3, "benchmark": 2}
    assert facets["origin"] == {"seed": 4, "incident": 1}
    assert facets["component"]["nccl"] == 2
    assert sum(facets["category"].values()) == 5


def test_persistence_round_trip(backend_config: KBConfig, sample_records: list[Record]) -> None:
    store = opened(backend_config)
    store.upsert(sample_records)
    store.close()
    reopened = opened(backend_config)
    assert reopened.count() == 5
    assert {r.id for r in reopened.records()} == {r.id for r in sample_records}
    assert ids(reopened.search("fallen off the bus", 1, {})) == ["gpu-xid79"]
    assert reopened.get("net-ib-down") == sample_records[0]


def test_memory_and_index_stores_read_each_others_files(tmp_path, sample_records: list[Record]) -> None:
    base = KBConfig(data_dir=tmp_path, seed_path=None)
    opened(replace(base, store="memory")).upsert(sample_records[:3])
    index = opened(replace(base, store="index"))
    assert index.count() == 3
    index.upsert(sample_records[3:])
    assert opened(replace(base, store="memory")).count() == 5


def test_without_data_dir_nothing_is_written(tmp_path, sample_records: list[Record]) -> None:
    for name in ("memory", "index"):
        store = opened(KBConfig(store=name, data_dir=None, seed_path=None))
        store.upsert(sample_records)
        assert store.count() == 5
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["memory", "index"])
def test_corrupt_store_file_is_a_clear_error(tmp_path, name: str) -> None:
    (tmp_path / "kb-store.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(StoreUnavailableError, match=r"kb-store\.json"):
        opened(KBConfig(store=name, data_dir=tmp_path, seed_path=None))


def test_index_store_updates_do_not_leave_stale_hits(sample_records: list[Record]) -> None:
    store = opened(KBConfig(store="index", data_dir=None, seed_path=None))
    store.upsert(sample_records)
    moved = replace(
        sample_records[1], rawtext="completely unrelated text about tokenizers", problemkey=["tok"]
    )
    store.upsert([moved])
    assert "gpu-xid79" not in ids(store.search("NVRM 79 pid", 5, {}))
    assert ids(store.search("tokenizers", 5, {})) == ["gpu-xid79"]
    assert store.count() == 5


@pytest.mark.parametrize(
    "filters",
    [{"colour": "red"}, {"category": "weather"}, {"split": []}, {"component": [3]}, {"origin": "forum"}],
)
def test_bad_filters_are_named(filters: dict[str, object]) -> None:
    with pytest.raises(QueryError) as err:
        normalize_filters(filters)
    assert next(iter(filters)) in str(err.value)


def test_elasticsearch_down_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("CLUSTERDOC_ES_URL", f"http://elastic:hunter2@127.0.0.1:{port}")
    store = make_store(KBConfig(store="elasticsearch", seed_path=None, es_timeout_s=2))
    with pytest.raises(StoreUnavailableError) as err:
        store.open()
    message = str(err.value)
    assert f"127.0.0.1:{port}" in message and "unavailable" in message
    assert "hunter2" not in message and "\n" not in message


def test_elasticsearch_filter_translation_and_redaction() -> None:
    from kb.stores.elasticsearch import es_filters, redact

    assert es_filters({}) is None
    got = es_filters(normalize_filters({"component": ["nccl"], "split": "perceivable"}))
    assert got == {
        "operator": "AND",
        "conditions": [
            {"field": "meta.components", "operator": "in", "value": ["nccl"]},
            {"field": "meta.split", "operator": "in", "value": ["perceivable"]},
        ],
    }
    assert redact("https://user:pw@es.local:9200/x") == "https://***@es.local:9200/x"
    assert redact("http://127.0.0.1:9200") == "http://127.0.0.1:9200"
