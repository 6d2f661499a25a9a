from __future__ import annotations

from pathlib import Path

from haystack import Document, Pipeline

from kb import KBConfig, KBRetriever, KnowledgeBase
from kb.records import Record

from .test_knowledge import sample_rows, write_jsonl


def test_kb_retriever_in_a_pipeline(tmp_path: Path) -> None:
    kb = KnowledgeBase(KBConfig(data_dir=None, seed_path=write_jsonl(tmp_path / "seed.jsonl", sample_rows()),
                                include_benchmark_split=False))  # fair mode: only perceivable records
    pipeline = Pipeline()
    pipeline.add_component("kb", KBRetriever(kb, top_k=2))
    out = pipeline.run({"kb": {"query": "GPU has fallen off the bus Xid 79"}})["kb"]
    assert isinstance(out["documents"][0], Document) and isinstance(out["records"][0], Record)
    assert out["records"][0].id == "gpu-xid79" == out["documents"][0].id
    assert (out["documents"][0].score or 0) > 0 and len(out["records"]) <= 2
    assert all(r.split == "perceivable" for r in out["records"])


def test_kb_retriever_filters_and_top_k(tmp_path: Path) -> None:
    kb = KnowledgeBase(KBConfig(data_dir=None, seed_path=write_jsonl(tmp_path / "seed.jsonl", sample_rows())))
    retriever = KBRetriever(kb)
    retriever.warm_up()
    out = retriever.run(query="nccl timeout bus error checkpoint", top_k=5, filters={"category": "storage"})
    assert [r.id for r in out["records"]] == ["disk-full"]
