"""Delivery: every reply goes through the adapter's outbox with retries and backoff; one that
cannot be delivered is kept in SQLite and re-sent by ``flush_outbox``, so nothing is lost."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

from bot.events import Reply
from bot.render import graph_png
from bot.store import Store

if TYPE_CHECKING:
    from bot.clusters import ClusterMap

log = logging.getLogger("clusterdoc.bot")

Outbox = Callable[[Reply], str | None]


class DeliveryMixin:
    store: Store
    clusters: ClusterMap
    outbox: Outbox
    send_retries: int
    send_backoff_s: float

    if TYPE_CHECKING:  # provided by the Bot; declared for the type checker only
        def _submit(self, fn: Callable[..., Any], *args: Any) -> None: ...

    def flush_outbox(self) -> int:
        """Re-send replies that failed earlier; returns how many went out."""
        sent = 0
        for item_id, data in self.store.outbox_items():
            reply = Reply(**{**data, "image_png": bytes.fromhex(data["image_png"]) if data.get("image_png") else None})
            try:
                message_id = self.outbox(reply)
            except Exception as exc:
                self.store.outbox_failed(item_id, repr(exc))
                continue
            self.store.outbox_done(item_id)
            self._bind(reply, message_id)
            sent += 1
        return sent

    def _post_async(self, reply: Reply) -> None:
        self._submit(self._post, reply)

    def _named(self, reply: Reply) -> Reply:
        """Prefix what is said about an incident with its cluster's name ("[lab2] Incident #12: …"):
        the reply's ``cluster``, else the cluster of its incident or proposal. A bot serving one
        unnamed cluster says nothing more."""
        if not self.clusters.named:
            return reply
        name = reply.cluster
        if not name and reply.incident_id.isdigit():
            name = self.store.cluster_of(int(reply.incident_id))
        if not name and reply.proposal_id:
            row = self.store.proposal(reply.proposal_id)
            name = self.store.cluster_of(row.incident_id) if row is not None else ""
        if not name:
            return reply
        prefix = f"[{name}] "
        text = reply.text if reply.text.startswith(prefix) else prefix + reply.text
        return replace(reply, text=text, cluster=name)

    def _post(self, reply: Reply) -> str | None:
        """Send with retries and backoff; on final failure keep it in the outbox table."""
        reply = self._named(reply)
        error = ""
        for attempt in range(self.send_retries):
            try:
                message_id = self.outbox(reply)
            except Exception as exc:
                error = repr(exc)
                log.warning("sending a %s reply failed (attempt %d): %s", reply.kind, attempt + 1, exc)
                time.sleep(self.send_backoff_s * (2**attempt))
                continue
            self._bind(reply, message_id)
            return message_id if message_id is not None else reply.thread
        data = asdict(reply)
        data["image_png"] = reply.image_png.hex() if reply.image_png else None
        self.store.outbox_put(data, error)
        self.store.audit("bot", "delivery_deferred", reply.key or reply.kind, error[:300])
        return reply.thread

    def _bind(self, reply: Reply, message_id: str | None) -> None:
        if not message_id:
            return
        if reply.key.startswith("proposal:"):
            self.store.bind_proposal_message(reply.key.split(":", 1)[1], message_id)
        elif reply.key.startswith("incident:"):
            incident_id = int(reply.key.split(":", 1)[1])
            self.store.set_incident(incident_id, thread=message_id)
            for p in self.store.proposals(incident_id):
                if p.thread is None:
                    pass  # proposals are created after the root post; nothing to fix up



def _no_outbox(reply: Reply) -> str | None:
    log.info("[%s] %s", reply.kind, reply.text)
    return None


def _safe_png(graph: dict[str, Any], title: str) -> bytes | None:
    try:
        return graph_png(graph, title)
    except Exception:  # a drawing problem never hides the diagnosis; the outline still goes out
        log.exception("graph rendering failed")
        return None
