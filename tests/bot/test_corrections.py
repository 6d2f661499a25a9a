"""An operator corrects a diagnosis from the thread (`/wrong …`): audited, stored in the real
knowledge base as a past incident under the correction's own category, found by the next search."""

from __future__ import annotations

from pathlib import Path

from bot.core import Bot
from bot.events import Command, Mention
from bot.services import KBLearner
from bot.store import Store
from kb.config import KBConfig
from kb.knowledge import KnowledgeBase
from tests.bot.fakes import RecordingOutbox
from tests.bot.test_safeguards import NODES, Clock, DrainAgent, DrainRemediator, diagnose


def _bot(tmp_path: Path, kb: KnowledgeBase) -> Bot:
    from bot.config import BotConfig

    cfg = BotConfig()
    cfg.approvals.approvers = ["U_A"]
    cfg.rate_limit.per_user = 10_000
    return Bot(cfg, Store(tmp_path / "state.sqlite"), DrainAgent(), DrainRemediator(), learner=KBLearner(kb),
               known_nodes=NODES, outbox=RecordingOutbox(), clock=Clock(), send_backoff_s=0.01)


def _kb(tmp_path: Path) -> KnowledgeBase:
    kb = KnowledgeBase(KBConfig(data_dir=tmp_path / "kb", seed_path=None, records_dir=None,
                                include_benchmark_split=False))
    kb.warm_up()
    return kb


def test_a_correction_becomes_a_past_incident_the_next_search_finds(tmp_path: Path) -> None:
    kb = _kb(tmp_path)
    bot = _bot(tmp_path, kb)
    diagnose(bot, "node-05")
    replies = bot.dispatch(Command("slack", "C1", "U_A", "wrong",
                                   "it was the NFS mount /scratch hanging, not the GPU; remounted and it recovered"))
    assert len(replies) == 1 and replies[0].kind == "text" and "storage" in replies[0].text, replies
    hits = kb.search("NFS mount /scratch hanging", top_k=3)
    assert hits and hits[0].record.origin == "incident" and hits[0].record.category == "storage"
    rec = hits[0].record
    assert "operator correction" in rec.result and "node-05" in rec.result and "fell off the bus" in rec.rawtext
    assert any(a["action"] == "diagnosis_corrected" for a in bot.store.audit_log())
    # said as a mention too
    again = bot.dispatch(Mention("slack", "C1", "U_A", "wrong: the PSU of node-05 tripped under load"))
    assert again[0].kind == "text" and "thermal" in again[0].text


def test_bad_corrections_store_nothing(tmp_path: Path) -> None:
    kb = _kb(tmp_path)
    bot = _bot(tmp_path, kb)
    no_incident = bot.dispatch(Command("slack", "C1", "U_A", "wrong", "it was the NFS mount"))
    assert no_incident[0].kind == "error" and "no incident" in no_incident[0].text
    diagnose(bot, "node-05")
    for user, text, why in (("U_A", "", "say what it was"), ("U_A", "x" * 3000, "at most"),
                            ("U_REQ", "it was the NFS mount", "only people who may approve")):
        r = bot.dispatch(Command("slack", "C1", user, "wrong", text))
        assert r[0].kind == "error" and why in r[0].text, (user, r)
    assert kb.stats()["total"] == 0
