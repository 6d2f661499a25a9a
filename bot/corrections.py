"""Operators correct a diagnosis from the thread: ``/wrong it was the NFS mount`` (or
``@clusterdoc wrong: …``). The correction is audited and stored in the knowledge base as a past
incident (origin ``incident``) under the category its words name, so the next similar alert
retrieves it with the operator's answer. Only people allowed to approve fixes may correct.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.events import Command, Reply
from bot.store import IncidentRow
from pipelines.attribution import categorize

if TYPE_CHECKING:
    from bot.core import Bot

log = logging.getLogger("clusterdoc.bot")

MAX_CORRECTION_CHARS = 2000


def correction_category(text: str, fallback: str | None) -> str:
    """The category a correction's own words speak of ("it was the NFS mount" -> storage); the
    diagnosis's category when the words name none."""
    cues = categorize(text)
    if cues:
        return max(cues, key=lambda c: cues[c])
    return fallback or "other"


def incident_for(core: Bot, event: Command) -> IncidentRow | None:
    """The incident whose thread the command was typed in (the latest in the channel when the
    platform gives no thread)."""
    rows = [r for r in core.store.incidents() if r.platform == event.platform and r.channel == event.channel]
    if event.thread:
        rows = [r for r in rows if r.thread == event.thread or str(r.id) == event.thread]
    return rows[-1] if rows else None


def correction_command(core: Bot, event: Command, text: str) -> list[Reply]:
    where = event.thread
    text = " ".join(text.replace("\x00", "").split()).lstrip(":").strip()
    if len(text) < 3:
        return [Reply("error", event.channel, "say what it was, e.g. `/wrong it was the NFS mount on node-07`",
                      thread=where, ephemeral_to=event.user)]
    if len(text) > MAX_CORRECTION_CHARS:
        return [Reply("error", event.channel, f"a correction is at most {MAX_CORRECTION_CHARS} characters "
                      f"(this one has {len(text)}); nothing was stored", thread=where, ephemeral_to=event.user)]
    if not core.policy.is_approver(event.user, event.channel):
        return [Reply("error", event.channel, "only people who may approve fixes can correct a diagnosis; "
                      "nothing was stored", thread=where, ephemeral_to=event.user)]
    incident = incident_for(core, event)
    if incident is None:
        return [Reply("error", event.channel, "no incident in this thread to correct: reply in the incident's "
                      "thread", thread=where, ephemeral_to=event.user)]
    data: dict[str, Any] = core.store.diagnosis_json(incident.id) or {}
    cause = data.get("cause") or {}
    said = str(data.get("summary") or incident.summary or "")
    category = correction_category(text, cause.get("category"))
    core.store.audit(event.user, "diagnosis_corrected", str(incident.id), {"correction": text, "category": category})
    correct = getattr(core.learner, "correct", None)  # the KB learner stores corrections; a test fake may not
    if correct is None:
        return [Reply("text", event.channel, f"Noted in the audit log for incident #{incident.id} (no knowledge "
                      "base to store it in).", thread=where, incident_id=str(incident.id))]
    try:
        record_id = correct(incident.text, said, text, category, node=cause.get("node") or incident.target,
                            author=event.user, incident_id=f"{incident.id}")
    except Exception as exc:  # the correction is audited; say why it is not in the KB
        log.warning("storing the correction of incident %s failed: %s", incident.id, exc)
        return [Reply("error", event.channel, f"Noted in the audit log, but the knowledge base refused it: {exc}",
                      thread=where, incident_id=str(incident.id))]
    return [Reply("text", event.channel, f"Thanks — stored as a past incident ({category}, `{record_id}`): the next "
                  "similar alert will show your answer.", thread=where, incident_id=str(incident.id))]
