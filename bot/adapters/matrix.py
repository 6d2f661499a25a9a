"""Matrix adapter (matrix-nio): ``!diagnose``, mentions, m.thread replies, m.reaction approvals.

The nio client runs on its own asyncio loop in a background thread; the core's worker threads
post through ``send`` (``run_coroutine_threadsafe``). Only the configured rooms are answered;
invites to them are accepted. Approvers are Matrix user ids or members whose room power level
is at least ``approvals.min_power_level``. Events from before the bot's first sync are skipped, so
a restart does not replay history. End-to-end encrypted rooms are not supported.
"""

from __future__ import annotations

import asyncio
import html
import io
import logging
import threading
import time
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    InviteMemberEvent,
    LoginResponse,
    MatrixRoom,
    ReactionEvent,
    RoomMessageText,
    RoomSendResponse,
    SyncError,
    UploadResponse,
)

from bot.config import MatrixConfig
from bot.core import Bot
from bot.events import Mention, Message, Reaction, Reply

log = logging.getLogger("clusterdoc.bot.matrix")


# Room version 12 gives room creators unlimited power without listing them in m.room.power_levels.
CREATOR_LEVEL = 2**53
CREATORS_CACHE_S = 300.0


class MatrixError(RuntimeError):
    """A Matrix API call failed (the core retries and keeps the reply in its outbox)."""


class MatrixDirectory:
    def __init__(self, adapter: MatrixAdapter) -> None:
        self.adapter = adapter

    def groups_of(self, user: str) -> set[str]:
        return set()

    def power_level(self, user: str, channel: str) -> int | None:
        room = self.adapter.client.rooms.get(channel)
        if room is None:
            return None
        if user in self.adapter.creators(channel):
            return CREATOR_LEVEL
        return int(room.power_levels.get_user_level(user))


class MatrixAdapter:
    def __init__(self, bot: Bot, config: MatrixConfig, *, send_timeout_s: float = 60.0) -> None:
        self.bot = bot
        self.config = config
        self.send_timeout_s = send_timeout_s
        self.client = AsyncClient(
            config.homeserver, config.user_id, device_id=config.device_id,
            config=AsyncClientConfig(max_limit_exceeded=5, max_timeouts=5, request_timeout=30),
        )
        self.rooms = set(config.rooms) | set(config.alert_rooms)
        self.loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._creators: dict[str, tuple[float, frozenset[str]]] = {}
        bot.identity.add(config.user_id)
        bot.alert_channels.update(config.alert_rooms)
        bot.policy.directory = MatrixDirectory(self)
        bot.set_outbox(self.send)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, timeout_s: float = 60.0) -> None:
        """Log in, join the rooms, do the first sync, then keep syncing in a background thread."""
        self._thread = threading.Thread(target=self._run, name="matrix-loop", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise MatrixError("matrix: no first sync within the timeout")
        if self._error is not None:
            raise MatrixError(f"matrix: {self._error}")
        self.bot.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
        finally:
            self.loop.run_until_complete(self.client.close())

    async def _main(self) -> None:
        if self.config.access_token:
            self.client.access_token = self.config.access_token
            self.client.user_id = self.config.user_id
        else:
            resp = await self.client.login(self.config.password, device_name="clusterdoc")
            if not isinstance(resp, LoginResponse):
                raise MatrixError(f"login as {self.config.user_id} failed: {getattr(resp, 'message', resp)}")
        for room in sorted(self.rooms):
            await self.client.join(room)
        first = await self.client.sync(timeout=0, full_state=True)
        if isinstance(first, SyncError):
            raise MatrixError(f"first sync failed: {getattr(first, 'message', first)}")
        self.client.add_event_callback(self._on_text, RoomMessageText)  # type: ignore[arg-type]
        self.client.add_event_callback(self._on_reaction, ReactionEvent)  # type: ignore[arg-type]
        self.client.add_event_callback(self._on_invite, InviteMemberEvent)  # type: ignore[arg-type]
        self._ready.set()
        while not self._stop.is_set():
            await self.client.sync(timeout=1000)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def creators(self, room_id: str) -> frozenset[str]:
        """Creators of a room whose version grants them unlimited power (v12 and later), cached."""
        now = time.monotonic()
        hit = self._creators.get(room_id)
        if hit is not None and now - hit[0] < CREATORS_CACHE_S:
            return hit[1]
        try:
            found = asyncio.run_coroutine_threadsafe(self._fetch_creators(room_id), self.loop).result(30)
        except Exception as exc:  # unknown: fall back to the power-levels event only
            log.warning("cannot read the create event of %s: %s", room_id, exc)
            found = frozenset()
        self._creators[room_id] = (now, found)
        return found

    async def _fetch_creators(self, room_id: str) -> frozenset[str]:
        resp = await self.client.room_get_state(room_id)
        for event in getattr(resp, "events", []) or []:
            if event.get("type") == "m.room.create" and event.get("state_key", "") == "":
                content = event.get("content") or {}
                version = str(content.get("room_version", "1"))
                if not version.isdigit() or int(version) < 12:
                    return frozenset()
                extra = [str(u) for u in content.get("additional_creators") or []]
                return frozenset([str(event.get("sender", "")), *extra])
        return frozenset()

    # -- inbound -------------------------------------------------------------------------------
    async def _on_invite(self, room: MatrixRoom, event: InviteMemberEvent) -> None:
        if event.state_key == self.config.user_id and room.room_id in self.rooms:
            await self.client.join(room.room_id)

    async def _on_text(self, room: MatrixRoom, event: RoomMessageText) -> None:
        if room.room_id not in self.rooms or event.sender == self.config.user_id:
            return
        content = event.source.get("content", {})
        relates = content.get("m.relates_to") or {}
        thread = relates.get("event_id") if relates.get("rel_type") == "m.thread" else None
        body = event.body or ""
        mentioned = self.config.user_id in (content.get("m.mentions") or {}).get("user_ids", []) or (
            self.config.user_id in body
        )
        if mentioned and room.room_id in self.config.rooms:
            text = body.replace(self.config.user_id, "").lstrip(":, ").strip()
            localpart = self.config.user_id.split(":", 1)[0].lstrip("@")
            if text.lower().startswith(localpart.lower()):
                text = text[len(localpart):].lstrip(":, ")
            ev: Message | Mention = Mention("matrix", room.room_id, event.sender, text,
                                            message_id=event.event_id, thread=thread)
        else:
            prefix = self.config.command_prefix
            if room.room_id not in self.bot.alert_channels and not body.startswith(prefix):
                return
            body = "!" + body[len(prefix):] if prefix != "!" and body.startswith(prefix) else body
            ev = Message("matrix", room.room_id, event.sender, body, message_id=event.event_id, thread=thread)
        await self._dispatch(ev)

    async def _on_reaction(self, room: MatrixRoom, event: ReactionEvent) -> None:
        if room.room_id not in self.rooms or event.sender == self.config.user_id:
            return
        await self._dispatch(Reaction("matrix", room.room_id, event.sender, event.key, event.reacts_to))

    async def _dispatch(self, event: Message | Mention | Reaction) -> None:
        # the core may touch SQLite and the directory: run it off the event loop
        replies = await self.loop.run_in_executor(None, self.bot.dispatch, event)
        for reply in replies:
            if reply.ephemeral_to and reply.proposal_id:
                continue  # no ephemeral messages in Matrix: a refused reaction stays silent
            try:
                await self._send(reply)
            except Exception as exc:
                log.warning("matrix reply failed: %s", exc)

    # -- outbound ------------------------------------------------------------------------------
    def send(self, reply: Reply) -> str | None:
        future = asyncio.run_coroutine_threadsafe(self._send(reply), self.loop)
        return future.result(timeout=self.send_timeout_s)

    async def _send(self, reply: Reply) -> str | None:
        relation: dict[str, Any] = {}
        if reply.thread:
            relation = {"m.relates_to": {"rel_type": "m.thread", "event_id": reply.thread, "is_falling_back": True,
                                         "m.in_reply_to": {"event_id": reply.thread}}}
        if reply.image_png:
            upload, _ = await self.client.upload(io.BytesIO(reply.image_png), content_type="image/png",
                                                 filename=reply.filename or "graph.png", filesize=len(reply.image_png))
            if not isinstance(upload, UploadResponse):
                raise MatrixError(f"upload failed: {getattr(upload, 'message', upload)}")
            image = {"msgtype": "m.image", "body": reply.filename or "graph.png", "url": upload.content_uri,
                     "info": {"mimetype": "image/png", "size": len(reply.image_png)}, **relation}
            await self._room_send(reply.channel, image)
        body = reply.text + (f"\n```\n{reply.code}\n```" if reply.code else "")
        formatted = html.escape(reply.text).replace("\n", "<br>")
        if reply.code:
            formatted += f"<pre><code>{html.escape(reply.code)}</code></pre>"
        content = {"msgtype": "m.notice" if reply.kind in ("status", "ack") else "m.text", "body": body,
                   "format": "org.matrix.custom.html", "formatted_body": formatted, **relation}
        return await self._room_send(reply.channel, content)

    async def _room_send(self, room_id: str, content: dict[str, Any]) -> str:
        resp = await self.client.room_send(room_id, "m.room.message", content)
        if not isinstance(resp, RoomSendResponse):
            raise MatrixError(f"send to {room_id} failed: {getattr(resp, 'message', resp)}")
        return str(resp.event_id)
