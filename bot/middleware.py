"""Middleware of the dispatch core: ignore our own messages, audit, authorize, rate-limit; and the
policies they use (who may diagnose, who may approve)."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING

from bot.config import BotConfig
from bot.events import Command, Event, Mention, Message, Reply
from bot.services import Directory

if TYPE_CHECKING:
    from bot.store import Store

log = logging.getLogger("clusterdoc.bot")

Handler = Callable[[Event], list[Reply]]
Middleware = Callable[[Event, Handler], list[Reply]]


class RateLimiter:
    """Sliding window per key: at most ``limit`` hits per ``window_s``."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self._hits: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = self.clock()
        with self._lock:
            hits = self._hits[key]
            while hits and now - hits[0] >= self.window_s:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now)
            return True


class ApprovalPolicy:
    """Who may approve (user ids, Slack user groups, Matrix power level) and who may diagnose."""

    def __init__(self, config: BotConfig, directory: Directory) -> None:
        self.cfg = config.approvals
        self.directory = directory

    def may_diagnose(self, user: str) -> bool:
        return not self.cfg.diagnose_users or user in self.cfg.diagnose_users

    def is_approver(self, user: str, channel: str) -> bool:
        if user in self.cfg.approvers:
            return True
        if self.cfg.approver_groups and self.directory.groups_of(user) & set(self.cfg.approver_groups):
            return True
        if self.cfg.min_power_level > 0:
            level = self.directory.power_level(user, channel)
            return level is not None and level >= self.cfg.min_power_level
        return False

    def self_approval_forbidden(self, risk: str) -> bool:
        return risk in self.cfg.no_self_approval


class MiddlewareMixin:
    """The middleware chain's links, as methods of the Bot (they read its config, store, limits)."""

    config: BotConfig
    store: Store
    identity: set[str]
    alert_channels: set[str]
    policy: ApprovalPolicy
    rate: RateLimiter
    alert_rate: RateLimiter
    _platforms: dict[str, str]


    def _ignore_own(self, event: Event, nxt: Handler) -> list[Reply]:
        user = getattr(event, "user", None)
        if user is not None and user in self.identity:
            return []
        return nxt(event)

    def _audit_in(self, event: Event, nxt: Handler) -> list[Reply]:
        if isinstance(event, Message) and event.channel not in self.alert_channels:
            return nxt(event)  # chatter is not audited, only what the bot acts on
        detail = {k: v for k, v in asdict(event).items() if k not in ("labels",)}
        if isinstance(detail.get("text"), str):
            detail["text"] = detail["text"][:500]
        self.store.audit(getattr(event, "user", event.platform), f"in_{type(event).__name__.lower()}",
                         getattr(event, "channel", ""), detail)
        return nxt(event)

    def _authorize(self, event: Event, nxt: Handler) -> list[Reply]:
        if isinstance(event, Command | Mention) and not self.policy.may_diagnose(event.user):
            self.store.audit(event.user, "denied_diagnose", event.channel)
            return [Reply("error", event.channel, "You are not allowed to run diagnoses here.",
                          thread=event.thread, ephemeral_to=event.user)]
        return nxt(event)

    def _rate_limit(self, event: Event, nxt: Handler) -> list[Reply]:
        if isinstance(event, Command | Mention) and not self.rate.allow(event.user):
            self.store.audit(event.user, "rate_limited", event.channel)
            window = self.config.rate_limit.window_s
            return [Reply("error", event.channel, f"Rate limit: at most {self.config.rate_limit.per_user} "
                          f"requests per {window:g} s. Try again shortly.", thread=event.thread,
                          ephemeral_to=event.user)]
        return nxt(event)

    # -- routing -----------------------------------------------------------------------------
