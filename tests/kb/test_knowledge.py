from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kb import KBConfig, KnowledgeBase
from kb.config import SEED_PATH
from kb.errors import IngestError, KBError, QueryError, RecordError
from kb.ingest import REPLACED_NOTE, read_jsonl
from kb.records import Record

from .conftest import SAMPLE


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def sample_rows() -> list[dict[str, object]]:
    return [{**d, "source": f"https://github.com/example/repo/issues/{i}"} for i, d in enumerate(SAMPLE, 1)]


@pytest.fixture
def kb(tmp_path: Path) -> KnowledgeBase:
    base = KnowledgeBase(KBConfig(data_dir=tmp_path / "kb", seed_path=None, include_benchmark_split=False))
    base.warm_up()
    return base


# -- the split guarantee ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed_kb() -> KnowledgeBase:
    if not SEED_PATH.exists():
        pytest.skip(f"no seed file yet at {SEED_PATH}")
    base = KnowledgeBase(KBConfig(store="index", data_dir=None, include_benchmark_split=False))  # fair mode
    base.warm_up()
    return base


def test_seed_file_is_valid_and_has_both_splits() -> None:
    if not SEED_PATH.exists():
        pytest.skip(f"no seed file yet at {SEED_PATH}")
    records, _ = read_jsonl(SEED_PATH)
    splits = {r.split for r in records}
    assert splits == {"perceivable", "benchmark"}
    assert len({r.id for r in records}) == len(records)


def test_fair_mode_never_returns_a_benchmark_record(seed_kb: KnowledgeBase) -> None:
    records, _ = read_jsonl(SEED_PATH)
    benchmark = [r for r in records if r.split == "benchmark"]
    assert benchmark, "the seed file has no benchmark split to test against"
    for record in benchmark:
        # The record's own text is the query most likely to pull it back: it must still not come.
        for query in (record.rawtext[:2000], " ".join(record.problemkey), record.result):
            hits = seed_kb.search(query, top_k=20)
            assert all(h.record.split == "perceivable" for h in hits), (record.id, query[:80])
    with pytest.raises(QueryError, match="fair mode"):
        seed_kb.search("nccl", splits=("benchmark",))
    with pytest.raises(QueryError, match="fair mode"):
        seed_kb.search("nccl", filters={"split": "benchmark"})


def test_whole_dataset_mode_returns_benchmark_records(seed_kb: KnowledgeBase) -> None:
    records, _ = read_jsonl(SEED_PATH)
    target = next(r for r in records if r.split == "benchmark")
    whole = KnowledgeBase(replace(seed_kb.config, include_benchmark_split=True))
    hits = whole.search(target.rawtext[:2000], top_k=5)
    assert target.id in [h.record.id for h in hits]
    assert whole.stats()["retrievable"] == whole.stats()["total"]


def test_sample_split_guarantee_on_every_backend(backend_config: KBConfig) -> None:
    kb = KnowledgeBase(replace(backend_config, include_benchmark_split=False))
    kb.ingest(write_jsonl(backend_config.data_dir.parent / "s.jsonl", sample_rows()))  # type: ignore[union-attr]
    hits = kb.search("HW Thermal Slowdown Active SM clock 210 MHz bus error shared memory shm", top_k=10)
    assert hits and all(h.record.split == "perceivable" for h in hits)


# -- search -------------------------------------------------------------------------------------


def test_hits_are_ranked_and_scored(kb: KnowledgeBase, tmp_path: Path) -> None:
    kb.ingest(write_jsonl(tmp_path / "s.jsonl", sample_rows()))
    hits = kb.search("GPU has fallen off the bus", top_k=3)
    assert hits[0].record.id == "gpu-xid79"
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert all(h.score > 0 for h in hits)


@pytest.mark.parametrize("query", ["", "   ", None])
def test_empty_query_is_a_clear_error(kb: KnowledgeBase, query: object) -> None:
    with pytest.raises(QueryError, match="empty query"):
        kb.search(query)  # type: ignore[arg-type]


@pytest.mark.parametrize("top_k", [0, -1, 101, "5", True])
def test_bad_top_k(kb: KnowledgeBase, top_k: object) -> None:
    with pytest.raises(QueryError, match="top_k"):
        kb.search("nccl", top_k=top_k)  # type: ignore[arg-type]


def test_huge_query_is_accepted(kb: KnowledgeBase, tmp_path: Path) -> None:
    kb.ingest(write_jsonl(tmp_path / "s.jsonl", sample_rows()))
    query = "No space left on device " + "noise " * 200_000 + " checkpoint"
    assert kb.search(query, top_k=1)[0].record.id == "disk-full"


# -- ingestion ----------------------------------------------------------------------------------


def test_ingest_is_idempotent_and_persistent(kb: KnowledgeBase, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", sample_rows())
    first = kb.ingest(path)
    assert (first.added, first.unchanged) == (5, 0)
    second = kb.ingest(path)
    assert (second.added, second.updated, second.unchanged) == (0, 0, 5)
    assert kb.stats()["total"] == 5
    reopened = KnowledgeBase(kb.config)
    assert reopened.stats()["total"] == 5


def test_malformed_line_rejects_the_whole_file(kb: KnowledgeBase, tmp_path: Path) -> None:
    rows = [json.dumps(r) for r in sample_rows()]
    rows.insert(3, '{"problemkey": ["x"], "rawtext": broken')
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(rows) + "\n", encoding="utf-8")
    good = write_jsonl(tmp_path / "good.jsonl", [{**sample_rows()[0], "id": "other-1"}])
    with pytest.raises(IngestError) as err:
        kb.ingest(tmp_path)
    assert f"{bad}:4" in str(err.value)
    assert err.value.report.added == 1  # good.jsonl still went in
    assert kb.stats()["total"] == 1 and kb.get("other-1") is not None
    assert kb.get("net-ib-down") is None
    assert good.exists()


def test_invalid_field_names_file_line_and_field(kb: KnowledgeBase, tmp_path: Path) -> None:
    rows = sample_rows()
    rows[1] = {**rows[1], "category": "weather"}
    with pytest.raises(IngestError) as err:
        kb.ingest(write_jsonl(tmp_path / "s.jsonl", rows))
    assert "s.jsonl:2" in str(err.value) and "category" in str(err.value)
    assert kb.stats()["total"] == 0


def test_duplicate_ids_in_one_file(kb: KnowledgeBase, tmp_path: Path) -> None:
    rows = sample_rows()
    rows.append({**rows[0], "result": "another"})
    with pytest.raises(IngestError, match="duplicate id 'net-ib-down' \\(first on line 1\\)"):
        kb.ingest(write_jsonl(tmp_path / "dup.jsonl", rows))
    assert kb.stats()["total"] == 0


def test_non_utf8_bytes_are_replaced_with_a_note(kb: KnowledgeBase, tmp_path: Path) -> None:
    rows = [json.dumps(r).encode() for r in sample_rows()[:2]]
    rows[1] = rows[1].replace(b"fallen off", b"fallen \xff\xfe off")
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b"\n".join(rows) + b"\n")
    report = kb.ingest(path)
    assert report.added == 2
    assert any("latin.jsonl:2" in w for w in report.warnings)
    xid = kb.get("gpu-xid79")
    assert xid is not None and REPLACED_NOTE in xid.notes and "\ufffd" in xid.rawtext
    other = kb.get("net-ib-down")
    assert other is not None and REPLACED_NOTE not in other.notes


def test_five_megabyte_rawtext_is_capped(kb: KnowledgeBase, tmp_path: Path) -> None:
    row = {**sample_rows()[0], "rawtext": "start " + "x" * (5 * 1024 * 1024) + " ibstat mlx5_0 Down"}
    kb.ingest(write_jsonl(tmp_path / "big.jsonl", [row]))
    record = kb.get("net-ib-down")
    assert record is not None and len(record.rawtext) <= 70_000
    assert any("cut" in n for n in record.notes)
    assert kb.search("mlx5_0 Down")[0].record.id == "net-ib-down"  # the tail survived


def test_missing_path_and_wrong_suffix(kb: KnowledgeBase, tmp_path: Path) -> None:
    with pytest.raises(KBError, match="no such file"):
        kb.ingest(tmp_path / "nope.jsonl")
    (tmp_path / "x.csv").write_text("a,b\n", encoding="utf-8")
    with pytest.raises(KBError, match=r"'\.csv'"):
        kb.ingest(tmp_path / "x.csv")
    empty = tmp_path / "empty"
    empty.mkdir()
    report = kb.ingest(empty)
    assert report.files == 0 and "no .jsonl" in report.warnings[0]


THREAD = """---
problemkey: [nccl, ib, timeout]
category: network
components: [nccl, infiniband]
function: [ib_ports, nccl_allreduce]
split: perceivable
---
# NCCL hangs at init on 2 nodes

https://github.com/NVIDIA/nccl/issues/4242

NCCL WARN NET/IB : Got completion with error 12, opcode 0, len 0, vendor err 129

## Resolution
A bad cable on mlx5_1; swapping it fixed the hang.
"""

GH_EXPORT = """title:\tCheckpoint save fails with ENOSPC on rank 0
state:\tCLOSED
url:\thttps://github.com/microsoft/DeepSpeed/issues/777
--
OSError: [Errno 28] No space left on device

### Root cause
The /scratch volume was 100% full with old checkpoints.

### Other notes
unrelated
"""


def test_markdown_threads(kb: KnowledgeBase, tmp_path: Path) -> None:
    folder = tmp_path / "threads"
    folder.mkdir()
    (folder / "a.md").write_text(THREAD, encoding="utf-8")
    (folder / "b.md").write_text(GH_EXPORT + "", encoding="utf-8")
    (folder / "b.md").write_text(
        "---\ncategory: storage\nfault: disk_full\n---\n" + GH_EXPORT, encoding="utf-8"
    )
    (folder / "ignored.txt").write_text("not a thread", encoding="utf-8")
    report = kb.ingest(folder)
    assert (report.files, report.added) == (2, 2)
    hits = kb.search("got completion with error 12 vendor err 129")
    a = hits[0].record
    assert a.source == "https://github.com/NVIDIA/nccl/issues/4242"
    assert a.result == "A bad cable on mlx5_1; swapping it fixed the hang."
    b = kb.search("Errno 28 No space left")[0].record
    assert b.source == "https://github.com/microsoft/DeepSpeed/issues/777"
    assert b.result == "The /scratch volume was 100% full with old checkpoints."
    assert "checkpoint" in b.problemkey and b.components == ["filesystem", "checkpointing"]
    assert kb.ingest(folder).added == 0


def test_markdown_without_source_or_result_is_rejected(kb: KnowledgeBase, tmp_path: Path) -> None:
    (tmp_path / "nosrc.md").write_text(
        "---\ncategory: network\nresult: x\n---\n# t\nbody\n", encoding="utf-8"
    )
    (tmp_path / "nores.md").write_text(
        "---\ncategory: network\n---\n# NCCL error\nhttps://github.com/a/b/issues/1\n", encoding="utf-8"
    )
    (tmp_path / "badyaml.md").write_text("---\ncategory: [network\n---\nbody\n", encoding="utf-8")
    with pytest.raises(IngestError) as err:
        kb.ingest(tmp_path)
    text = str(err.value)
    assert "nosrc.md" in text and "source" in text
    assert "nores.md" in text and "result" in text
    assert "badyaml.md:" in text and "YAML" in text
    assert kb.stats()["total"] == 0


# -- the learning loop --------------------------------------------------------------------------


def test_learned_incident_is_found_by_the_next_search(kb: KnowledgeBase) -> None:
    record = kb.learn_from_incident(
        summary="GPU 3 on node-05 throttled to 200 MHz after an HVAC failure; clocks reset, step time back",
        cause_fault="gpu_clock_throttle",
        node="node-05",
        gpu=3,
        evidence_lines=["clocks_throttle_reasons.hw_thermal_slowdown: Active", "SM 210 MHz / 1410 MHz"],
        actions=["reset_gpu_clocks"],
        verified=True,
    )
    assert (record.origin, record.split, record.fault) == ("incident", "perceivable", "gpu_clock_throttle")
    assert "reset_gpu_clocks" in record.function and "gpu_clocks" in record.function
    hits = kb.search("hw_thermal_slowdown Active SM clock 210 MHz", top_k=1)
    assert hits[0].record.id == record.id
    again = kb.learn_from_incident(
        summary="GPU 3 on node-05 throttled to 200 MHz after an HVAC failure; clocks reset, step time back",
        cause_fault="gpu_clock_throttle",
        node="node-05",
        gpu=3,
        evidence_lines=["clocks_throttle_reasons.hw_thermal_slowdown: Active", "SM 210 MHz / 1410 MHz"],
        actions=["reset_gpu_clocks"],
        verified=True,
    )
    assert again.id == record.id and kb.stats()["total"] == 1
    assert KnowledgeBase(kb.config).get(record.id) == record  # persisted


def test_unverified_or_invalid_incidents_are_refused(kb: KnowledgeBase) -> None:
    args: dict[str, Any] = dict(
        summary="s", cause_fault="disk_full", node="n1", gpu=None, evidence_lines=[], actions=[]
    )
    with pytest.raises(KBError, match="not verified"):
        kb.learn_from_incident(**args, verified=False)  # type: ignore[arg-type]
    with pytest.raises(RecordError, match="cause_fault"):
        kb.learn_from_incident(**{**args, "cause_fault": "gremlins"}, verified=True)  # type: ignore[arg-type]
    with pytest.raises(RecordError, match="unknown action"):
        kb.learn_from_incident(**{**args, "actions": ["rm -rf /"]}, verified=True)  # type: ignore[arg-type]
    assert kb.stats()["total"] == 0


def test_stats(kb: KnowledgeBase, tmp_path: Path) -> None:
    kb.ingest(write_jsonl(tmp_path / "s.jsonl", sample_rows()))
    stats = kb.stats()
    assert stats["total"] == 5 and stats["retrievable"] == 3
    assert stats["by_split"] == {"perceivable": 3, "benchmark": 2}
    assert stats["store"] == "index" and stats["retrievable_splits"] == ["perceivable"]  # the measured default


def test_seed_loads_once_and_survives_restarts(tmp_path: Path) -> None:
    seed = write_jsonl(tmp_path / "seed.jsonl", sample_rows())
    config = KBConfig(data_dir=tmp_path / "kb", seed_path=seed)
    assert KnowledgeBase(config).stats()["total"] == 5
    again = KnowledgeBase(config)
    again.learn_from_incident("disk filled", "disk_full", "n1", None, ["ENOSPC"], ["clean_shm"], True)
    assert KnowledgeBase(config).stats()["total"] == 6


def test_records_are_plain_records(kb: KnowledgeBase, tmp_path: Path) -> None:
    kb.ingest(write_jsonl(tmp_path / "s.jsonl", sample_rows()))
    hit = kb.search("xid 79")[0]
    assert isinstance(hit.record, Record)
    assert hit.to_dict()["record"]["id"] == hit.record.id
