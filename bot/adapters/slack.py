"""Slack adapter (slack-bolt / slack-sdk): Socket Mode or the HTTP Events API over one Bolt app.

* ``/diagnose <node|job>`` is acknowledged at once (Slack allows 3 s); the diagnosis runs on the
  core's worker pool and its replies go to a thread under a root post.
* ``app_mention`` opens an incident in the mention's thread.
* ``message`` events in the configured alert channels are read as Alertmanager posts
  (text and attachments), so a bot-posted alert opens an incident; resolved closes it.
* ``reaction_added`` on a proposal post is an approval (✅) or a rejection (❌).
* Outgoing calls go through a WebClient with slack_sdk retry handlers (connection errors, 429 with
  Retry-After, 5xx); what still fails is kept by the core's outbox and re-sent later.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from slack_bolt import App, BoltRequest
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot.config import SlackConfig
from bot.core import Bot
from bot.events import Command, Mention, Message, Reaction, Reply

log = logging.getLogger("clusterdoc.bot.slack")
REPLAY_WINDOW_S = 300.0  # Bolt refuses older timestamps; within this window a copy is a replay


class ReplayGuard:
    """Refuses a signed HTTP request seen before: Bolt's timestamp check stops old copies, but a
    request captured in transit could be re-sent unchanged within its five minutes."""

    def __init__(self, window_s: float = REPLAY_WINDOW_S) -> None:
        self.window_s = window_s
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def first_time(self, timestamp: str, signature: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen = {k: t for k, t in self._seen.items() if now - t < 2 * self.window_s}
            key = (timestamp, signature)
            if not signature or key in self._seen:
                return not signature  # unsigned requests are left to Bolt, which refuses them
            self._seen[key] = now
            return True

    def forget(self, timestamp: str, signature: str) -> None:
        """A request Bolt refused (bad signature) does not block a later genuine one."""
        with self._lock:
            self._seen.pop((timestamp, signature), None)
_MENTION_RE = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")
GROUP_CACHE_S = 300.0


def make_client(config: SlackConfig, timeout_s: int = 30) -> WebClient:
    handlers = [
        ConnectionErrorRetryHandler(max_retry_count=3),
        RateLimitErrorRetryHandler(max_retry_count=5),
        ServerErrorRetryHandler(max_retry_count=3),
    ]
    kwargs: dict[str, Any] = {"token": config.bot_token, "timeout": timeout_s, "retry_handlers": handlers}
    if config.base_url:
        kwargs["base_url"] = config.base_url if config.base_url.endswith("/") else config.base_url + "/"
    return WebClient(**kwargs)


class SlackDirectory:
    """Members of the configured approver user groups (``usergroups.users.list``), cached."""

    def __init__(self, client: WebClient, groups: list[str]) -> None:
        self.client, self.groups = client, groups
        self._cache: dict[str, tuple[float, set[str]]] = {}
        self._lock = threading.Lock()

    def groups_of(self, user: str) -> set[str]:
        found = set()
        for group in self.groups:
            if user in self._members(group):
                found.add(group)
        return found

    def power_level(self, user: str, channel: str) -> int | None:
        return None

    def _members(self, group: str) -> set[str]:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(group)
            if hit and now - hit[0] < GROUP_CACHE_S:
                return hit[1]
        try:
            users = set(self.client.usergroups_users_list(usergroup=group).get("users") or [])
        except Exception as exc:  # no scope / network: nobody from this group approves, and say why
            log.warning("cannot list user group %s: %s", group, exc)
            users = set()
        with self._lock:
            self._cache[group] = (now, users)
        return users


class SlackAdapter:
    def __init__(self, bot: Bot, config: SlackConfig, *, client: WebClient | None = None) -> None:
        self.bot = bot
        self.config = config
        self.client = client or make_client(config)
        socket = config.mode == "socket"
        self.app = App(
            client=self.client,
            signing_secret=config.signing_secret or ("unused-in-socket-mode" if socket else None),
            request_verification_enabled=not socket,
            token_verification_enabled=False,
            process_before_response=False,
            # acks wait for a listener thread: enough of them that a burst of commands is not queued
            listener_executor=ThreadPoolExecutor(max_workers=64, thread_name_prefix="slack-listener"),
        )
        self.bot_user_id = ""
        try:
            auth = self.client.auth_test()
            self.bot_user_id = str(auth.get("user_id") or "")
            bot.identity.update(x for x in (self.bot_user_id, str(auth.get("bot_id") or "")) if x)
        except Exception as exc:  # the app still starts; Slack's own self-event filter applies
            log.warning("auth.test failed: %s", exc)
        bot.policy.directory = SlackDirectory(self.client, list(bot.config.approvals.approver_groups))
        bot.alert_channels.update(config.alert_channels)
        bot.set_outbox(self.send)
        self._server: ThreadingHTTPServer | None = None
        self._socket_handler: Any = None
        self._register()

    # -- inbound -------------------------------------------------------------------------------
    def _register(self) -> None:
        app = self.app

        @app.command(self.config.command)
        def on_command(ack: Any, command: dict[str, Any]) -> None:
            text = str(command.get("text") or "").strip()
            first = text.split(" ", 1)[0].lower()
            # `/diagnose history node-17`: a sub-command; anything else is what to diagnose
            name, rest = (first, text[len(first):].strip()) if first in ("help", "status", "history") else ("diagnose", text)
            replies = self.bot.dispatch(Command("slack", str(command.get("channel_id", "")),
                                                str(command.get("user_id", "")), name, rest))
            ack(text="\n".join(r.text for r in replies) or "ok")

        @app.event("app_mention")
        def on_mention(event: dict[str, Any]) -> None:
            text = _MENTION_RE.sub("", str(event.get("text") or "")).strip()
            replies = self.bot.dispatch(Mention("slack", str(event.get("channel", "")), str(event.get("user", "")),
                                                text, message_id=str(event.get("ts", "")),
                                                thread=event.get("thread_ts") or event.get("ts")))
            self._send_all(replies)

        @app.event("message")
        def on_message(event: dict[str, Any]) -> None:
            channel = str(event.get("channel", ""))
            if event.get("subtype") in ("message_changed", "message_deleted"):
                return
            if channel not in self.bot.alert_channels and not str(event.get("text") or "").startswith("!"):
                return
            from_bot = bool(event.get("bot_id")) or event.get("subtype") == "bot_message"
            user = str(event.get("user") or event.get("bot_id") or "")
            replies = self.bot.dispatch(Message("slack", channel, user, message_text(event),
                                                message_id=str(event.get("ts", "")),
                                                thread=event.get("thread_ts"), from_bot=from_bot))
            self._send_all(replies)

        @app.event("reaction_added")
        def on_reaction(event: dict[str, Any]) -> None:
            item = event.get("item") or {}
            if item.get("type") != "message":
                return
            replies = self.bot.dispatch(Reaction("slack", str(item.get("channel", "")), str(event.get("user", "")),
                                                 str(event.get("reaction", "")), str(item.get("ts", ""))))
            self._send_all(replies)

        @app.event("reaction_removed")
        def on_reaction_removed() -> None:  # an approval, once counted, stays counted
            return

    def _send_all(self, replies: list[Reply]) -> None:
        for reply in replies:
            try:
                self.send(reply)
            except Exception as exc:  # ephemeral notes are best effort; the core's posts use its outbox
                log.warning("reply failed: %s", exc)

    # -- outbound ------------------------------------------------------------------------------
    def send(self, reply: Reply) -> str | None:
        text = reply.text
        if reply.code:
            text = f"{text}\n```\n{reply.code}\n```"
        if reply.ephemeral_to:
            self.client.chat_postEphemeral(channel=reply.channel, user=reply.ephemeral_to, text=text,
                                           thread_ts=reply.thread)
            return None
        if reply.image_png:
            self.client.files_upload_v2(
                channel=reply.channel, thread_ts=reply.thread, content=reply.image_png,
                filename=reply.filename or "graph.png", title=reply.filename or "reasoning graph",
                initial_comment=text[:3500],
            )
            if len(text) > 3500:  # the outline did not fit the upload comment: post it in full
                self.client.chat_postMessage(channel=reply.channel, thread_ts=reply.thread, text=text)
            return None
        kwargs: dict[str, Any] = {"channel": reply.channel, "text": text}
        if reply.thread:
            kwargs["thread_ts"] = reply.thread
        response = self.client.chat_postMessage(**kwargs)
        return str(response.get("ts") or "") or None

    # -- serving -------------------------------------------------------------------------------
    def serve_http(self, host: str | None = None, port: int | None = None) -> ThreadingHTTPServer:
        """Serve the Events API / slash commands on ``host:port`` (path ``/slack/events``) in a thread."""
        app = self.app
        guard = ReplayGuard()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8") if length else ""
                headers: dict[str, str | Sequence[str]] = {k.lower(): [v] for k, v in self.headers.items()}
                stamp = self.headers.get("X-Slack-Request-Timestamp", "")
                signature = self.headers.get("X-Slack-Signature", "")
                if not guard.first_time(stamp, signature):
                    log.warning("refused a replayed Slack request (timestamp %s)", stamp)
                    payload = b"replayed request"
                    self.send_response(401)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                resp = app.dispatch(BoltRequest(body=body, headers=headers, query=self.path.partition("?")[2]))
                if resp.status == 401:
                    guard.forget(stamp, signature)
                payload = (resp.body or "").encode("utf-8")
                self.send_response(resp.status)
                for name, values in resp.headers.items():
                    for value in values:
                        if name.lower() != "content-length":
                            self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("http: " + format, *args)

        server = _Server((host or self.config.http_host, self.config.http_port if port is None else port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="slack-http", daemon=True).start()
        self._server = server
        return server

    def start_socket_mode(self, block: bool = False) -> None:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        self._socket_handler = SocketModeHandler(self.app, self.config.app_token)
        if block:
            self._socket_handler.start()
        else:
            self._socket_handler.connect()

    def start(self, block: bool = True) -> None:
        self.bot.start()
        if self.config.mode == "socket":
            self.start_socket_mode(block=block)
        else:
            server = self.serve_http()
            log.info("slack HTTP endpoint on http://%s:%d/slack/events", *server.server_address[:2])
            if block:
                threading.Event().wait()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._socket_handler is not None:
            self._socket_handler.close()


class _Server(ThreadingHTTPServer):
    # the default listen backlog (5) drops connections in a burst of commands; clients then retry
    # their SYN after a second, which alone would blow the 3-second ack budget under load
    request_queue_size = 256
    daemon_threads = True


def message_text(event: dict[str, Any]) -> str:
    """A message's text plus its attachments' titles, texts and fields (Alertmanager uses them)."""
    parts = [str(event.get("text") or "")]
    for att in event.get("attachments") or []:
        for key in ("pretext", "title", "text", "fallback"):
            if att.get(key):
                parts.append(str(att[key]))
        for f in att.get("fields") or []:
            parts.append(f"{f.get('title', '')}: {f.get('value', '')}")
    return "\n".join(p for p in parts if p)
