"""Alertmanager silences from chat: ``/silence node-17 2h reason``, ``/silences``, ``/unsilence ID``;
and alert intake that respects active silences.

The one module that talks to Alertmanager's HTTP API v2 (``POST /api/v2/silences``,
``GET /api/v2/silences``, ``DELETE /api/v2/silence/{id}``); stdlib HTTP only. A silence made here
has one matcher, ``<node_label>="<node>"`` (``node``: the label clusterdoc's alert rules put on
every alert, ``deploy/prometheus/clusterdoc-gpu.rules.yml``), ``createdBy`` = the chat user and
``comment`` = the reason.

It plugs into the dispatch core as one more middleware link (``install_silences(bot, config)``,
after authz and rate limits), so the core's router is untouched:

- ``/silence`` and ``/unsilence`` change what pages people: only approvers may run them (the
  same ``ApprovalPolicy`` that decides who may approve a remediation: user ids, Slack user
  groups, Matrix power level); ``/silences`` is read-only (anyone allowed to ``/diagnose``).
- Bad input — no duration, zero or negative, unparseable, longer than ``max_duration``, an
  unknown node (answered with the closest names), no reason — and an unreachable Alertmanager
  get one clear line each, and nothing is created.
- A firing alert whose labels an active silence matches (Alertmanager's matcher semantics; an
  alert without the node label is matched on the node the bot reads from it) opens no incident:
  the audit log records ``alert_silenced`` with the silence id, and the log says so. Active
  silences are read from Alertmanager at most every ``cache_s`` seconds; when it cannot be
  reached the last list read is used (silences made or ended here are known at once).

Slack has one slash command: there it is ``/diagnose silence node-17 2h reason`` (and
``/diagnose silences``, ``/diagnose unsilence ID``); Matrix ``!silence …``; console ``/silence …``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.commands import closest_nodes, split_command
from bot.events import Alert, Command, Event, Mention, Reply

if TYPE_CHECKING:
    from bot.core import Bot

log = logging.getLogger("clusterdoc.bot.silences")

API_TOKEN_ENV = "CLUSTERDOC_ALERTMANAGER_API_TOKEN"
SILENCE_COMMANDS = ("silence", "silences", "unsilence")
USAGE = (
    "usage: /silence <node> <duration> <reason>   e.g. `/silence node-17 2h fan replacement`\n"
    "       /silences   (active silences)     /unsilence <id>"
)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_NODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_LABEL_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ID_RE = re.compile(r"^[0-9A-Za-z-]{4,64}$")
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_REASON = 500


class SilenceError(Exception):
    """What the user typed cannot become a silence; the message says why and how to fix it."""


class AlertmanagerAPIError(Exception):
    """Alertmanager answered with an error (the message has the status and its text)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AlertmanagerUnreachable(AlertmanagerAPIError):
    """No answer at all (connection refused, DNS, timeout)."""


def parse_duration(text: str) -> float:
    """``2h``, ``90m``, ``1h30m``, ``1d``, ``1w`` -> seconds; ``SilenceError`` saying what is wrong."""
    raw = text.strip().lower()
    if not raw:
        raise SilenceError("no duration given")
    if raw.startswith("-"):
        raise SilenceError(f"the duration must be positive, got `{text}`")
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(raw):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(raw) or pos == 0:
        raise SilenceError(f"`{text[:40]}` is not a duration: use a number and a unit (s, m, h, d, w), "
                           "e.g. 30m, 2h, 1h30m or 1d")
    if total <= 0:
        raise SilenceError(f"the duration must be positive, got `{text}`")
    return total


def format_duration(seconds: float) -> str:
    left = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return "".join(parts[:2]) or "0s"


@dataclass
class SilenceConfig:
    """``[bot.silences]``: where Alertmanager's API is and the limits of silences made from chat."""

    api_url: str = ""  # Alertmanager base URL, e.g. http://alertmanager:9093; empty: /silence is off
    node_label: str = "node"  # the label clusterdoc's alert rules name the node with
    max_duration: str = "7d"  # longest silence a chat command may create
    timeout_s: float = 10.0  # per API request
    cache_s: float = 15.0  # how long a list of active silences is trusted by alert intake
    api_token: str = field(default="", repr=False)  # env CLUSTERDOC_ALERTMANAGER_API_TOKEN (bearer), never the file

    def __post_init__(self) -> None:
        if self.api_url:
            parsed = urllib.parse.urlparse(self.api_url)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise ValueError(f"silences.api_url {self.api_url!r}: expected http(s)://host:port[/prefix]")
            if "@" in parsed.netloc:  # it would show in messages and the audit log
                raise ValueError("silences.api_url: no credentials in the URL; set $CLUSTERDOC_ALERTMANAGER_API_TOKEN")
        if not _LABEL_RE.match(self.node_label):
            raise ValueError(f"silences.node_label {self.node_label!r} is not a Prometheus label name")
        try:
            parse_duration(self.max_duration)
        except SilenceError as exc:
            raise ValueError(f"silences.max_duration: {exc}") from None
        if self.timeout_s <= 0 or self.cache_s < 0:
            raise ValueError("silences: timeout_s must be > 0 and cache_s >= 0")

    @property
    def max_duration_s(self) -> float:
        return parse_duration(self.max_duration)

    def __repr__(self) -> str:
        token = "***" if self.api_token else "''"
        return (f"SilenceConfig(api_url={self.api_url!r}, node_label={self.node_label!r}, "
                f"max_duration={self.max_duration!r}, timeout_s={self.timeout_s}, cache_s={self.cache_s}, "
                f"api_token={token})")


def _parse_time(text: str) -> float:
    """Alertmanager's RFC 3339 times (nanoseconds, ``Z``) -> epoch seconds."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text.strip())
    if m is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    base = datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    return base.timestamp() + (float("0." + m.group(2)) if m.group(2) else 0.0)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class Matcher:
    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.name, "")
        if self.is_regex:
            try:
                hit = re.fullmatch(self.value, value) is not None
            except re.error:
                log.warning("silence matcher %s=~%r is not a regex this bot can read; ignored", self.name, self.value)
                return False
        else:
            hit = value == self.value
        return hit if self.is_equal else not hit

    def text(self) -> str:
        op = ("=~" if self.is_regex else "=") if self.is_equal else ("!~" if self.is_regex else "!=")
        return f'{self.name}{op}"{self.value}"'


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    created_by: str = ""
    comment: str = ""
    state: str = "active"  # Alertmanager's: active | pending | expired

    def active(self, now: float) -> bool:
        return self.state == "active" and self.starts_at <= now < self.ends_at

    def matches(self, labels: Mapping[str, str]) -> bool:
        return bool(self.matchers) and all(m.matches(labels) for m in self.matchers)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Silence:
        matchers = tuple(Matcher(str(m["name"]), str(m.get("value", "")), bool(m.get("isRegex", False)),
                                 bool(m.get("isEqual", True))) for m in data.get("matchers") or ())
        state = str((data.get("status") or {}).get("state") or "active")
        return cls(str(data["id"]), matchers, _parse_time(str(data["startsAt"])), _parse_time(str(data["endsAt"])),
                   str(data.get("createdBy") or ""), str(data.get("comment") or ""), state)


class AlertmanagerAPI:
    """A small client for Alertmanager's API v2 silences. Every failure is an
    ``AlertmanagerAPIError`` naming the URL and what went wrong; the bearer token (when set) is
    sent only in the header and never appears in a message."""

    def __init__(self, base_url: str, *, timeout_s: float = 10.0, bearer_token: str = "") -> None:
        parsed = urllib.parse.urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc or "@" in parsed.netloc:
            raise ValueError("alertmanager url: expected http(s)://host:port[/prefix] without credentials")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._token = bearer_token
        handlers: list[urllib.request.BaseHandler] = []
        if parsed.hostname in _LOOPBACK:
            handlers.append(urllib.request.ProxyHandler({}))  # never send loopback traffic to a proxy
        self._opener = urllib.request.build_opener(*handlers)

    def _call(self, method: str, path: str, body: Any = None, *, timeout_s: float | None = None) -> Any:
        url = self.base_url + path
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with self._opener.open(request, timeout=timeout_s or self.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            text = exc.read().decode("utf-8", "replace").strip()[:300]
            raise AlertmanagerAPIError(f"Alertmanager {method} {url}: HTTP {exc.code} {text}".strip(), exc.code) from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            why = getattr(exc, "reason", None) or exc
            raise AlertmanagerUnreachable(f"Alertmanager at {self.base_url} is unreachable ({why})") from None
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise AlertmanagerAPIError(f"Alertmanager {method} {url}: answer is not JSON") from None

    def create(self, matchers: Sequence[Matcher], starts_at: float, ends_at: float, created_by: str,
               comment: str) -> str:
        body = {"matchers": [{"name": m.name, "value": m.value, "isRegex": m.is_regex, "isEqual": m.is_equal}
                             for m in matchers],
                "startsAt": _iso(starts_at), "endsAt": _iso(ends_at), "createdBy": created_by, "comment": comment}
        answer = self._call("POST", "/api/v2/silences", body)
        sid = answer.get("silenceID") if isinstance(answer, dict) else None
        if not isinstance(sid, str) or not sid:
            raise AlertmanagerAPIError(f"Alertmanager POST {self.base_url}/api/v2/silences: no silenceID in the answer")
        return sid

    def silences(self, *, timeout_s: float | None = None) -> list[Silence]:
        answer = self._call("GET", "/api/v2/silences", timeout_s=timeout_s)
        if not isinstance(answer, list):
            raise AlertmanagerAPIError(f"Alertmanager GET {self.base_url}/api/v2/silences: expected a list")
        out = []
        for item in answer:
            try:
                out.append(Silence.from_api(item))
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("skipping a silence Alertmanager returned that cannot be read: %s", exc)
        return out

    def expire(self, silence_id: str) -> None:
        self._call("DELETE", f"/api/v2/silence/{urllib.parse.quote(silence_id, safe='')}")


class SilenceService:
    """Silences for the bot: create/list/expire through the API, and a cached list of active
    silences for alert intake (refreshed at most every ``cache_s``; stale, not empty, when
    Alertmanager cannot be reached)."""

    def __init__(self, config: SilenceConfig, api: AlertmanagerAPI | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if not config.api_url and api is None:
            raise ValueError("silences: set [bot.silences] api_url (Alertmanager's base URL)")
        self.config = config
        self.api = api or AlertmanagerAPI(config.api_url, timeout_s=config.timeout_s, bearer_token=config.api_token)
        self.clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, Silence] = {}
        self._next_refresh = 0.0

    def refresh(self, *, force: bool = False) -> None:
        now = self.clock()
        with self._lock:
            if not force and now < self._next_refresh:
                return
            self._next_refresh = now + self.config.cache_s
        try:
            fresh = self.api.silences(timeout_s=min(self.config.timeout_s, 3.0))
        except AlertmanagerAPIError as exc:
            log.warning("cannot read silences (%s); alert intake uses the %d known", exc, len(self._cache))
            return
        with self._lock:
            self._cache = {s.id: s for s in fresh if s.state != "expired"}

    def active(self) -> list[Silence]:
        self.refresh()
        now = self.clock()
        with self._lock:
            return sorted((s for s in self._cache.values() if s.active(now)), key=lambda s: s.ends_at)

    def silencing(self, labels: Mapping[str, str], node: str | None) -> Silence | None:
        """The active silence that mutes an alert with ``labels`` (about ``node``), if any."""
        view = dict(labels)
        if node and not view.get(self.config.node_label):
            view[self.config.node_label] = node
        return next((s for s in self.active() if s.matches(view)), None)

    def create(self, node: str, duration_s: float, created_by: str, comment: str) -> Silence:
        now = self.clock()
        matchers = (Matcher(self.config.node_label, node),)
        sid = self.api.create(matchers, now, now + duration_s, created_by, comment)
        silence = Silence(sid, matchers, now, now + duration_s, created_by, comment, "active")
        with self._lock:
            self._cache[sid] = silence
        return silence

    def expire(self, silence_id: str) -> None:
        self.api.expire(silence_id)
        with self._lock:
            self._cache.pop(silence_id, None)


class SilenceCommands:
    """The middleware link: answers the silence commands, drops alerts an active silence mutes."""

    def __init__(self, bot: Bot, service: SilenceService) -> None:
        self.bot = bot
        self.service = service

    def __call__(self, event: Event, nxt: Callable[[Event], list[Reply]]) -> list[Reply]:
        if isinstance(event, Alert):
            return self._alert(event, nxt)
        if isinstance(event, Command | Mention):
            found = self._silence_command(event)
            if found is not None:
                return self._command(event, *found)
            if isinstance(event, Command) and event.name.lstrip("/!").lower() == "help":
                replies = nxt(event)
                return [*replies, Reply("text", event.channel, USAGE, thread=event.thread, ephemeral_to=event.user)]
        return nxt(event)

    # -- alert intake ---------------------------------------------------------------------------
    def _alert(self, alert: Alert, nxt: Callable[[Event], list[Reply]]) -> list[Reply]:
        if alert.status != "firing":
            return nxt(alert)
        silence = self.service.silencing(alert.labels, alert.node)
        if silence is None:
            return nxt(alert)
        matchers = ", ".join(m.text() for m in silence.matchers)
        log.info("alert %s (%s on %s) is silenced by %s [%s]; no incident opened",
                 alert.fingerprint, alert.name or "unnamed", alert.node or "?", silence.id, matchers)
        self.bot.store.audit(alert.platform, "alert_silenced", alert.fingerprint, {
            "silence": silence.id, "matchers": matchers, "alert": alert.name, "node": alert.node,
            "until": _iso(silence.ends_at), "note": "no incident opened"})
        return []

    # -- commands ---------------------------------------------------------------------------------
    @staticmethod
    def _silence_command(event: Command | Mention) -> tuple[str, str] | None:
        if isinstance(event, Command):
            name, text = event.name.lstrip("/!").lower(), event.text.strip()
            if name == "diagnose":  # Slack's one slash command: `/diagnose silence node-17 2h …`
                head, _, rest = text.partition(" ")
                name, text = head.lower(), rest.strip()
        else:
            split = split_command(event.text)
            if split is None:
                head, _, rest = event.text.strip().partition(" ")
                split = (head.lower(), rest.strip())
            name, text = split
        return (name, text) if name in SILENCE_COMMANDS else None

    def _command(self, event: Command | Mention, name: str, text: str) -> list[Reply]:
        def error(message: str) -> list[Reply]:
            return [Reply("error", event.channel, message, thread=event.thread, ephemeral_to=event.user)]

        if name in ("silence", "unsilence") and not self.bot.policy.is_approver(event.user, event.channel):
            self.bot.store.audit(event.user, "denied_silence", event.channel, {"command": name, "text": text[:200]})
            return error(f"Only approvers may create or end silences; nothing was changed.\n{USAGE}")
        try:
            if name == "silence":
                return [self._create(event, text)]
            if name == "silences":
                return [self._list(event)]
            return [self._expire(event, text)]
        except SilenceError as exc:
            self.bot.store.audit(event.user, f"{name}_refused", event.channel, {"why": str(exc), "text": text[:200]})
            return error(str(exc))
        except AlertmanagerAPIError as exc:
            self.bot.store.audit(event.user, f"{name}_failed", event.channel, {"error": str(exc)})
            nothing = {"silence": "no silence was created", "unsilence": "nothing was expired",
                       "silences": "cannot list silences"}[name]
            return error(f"{exc}; {nothing}.")

    def _create(self, event: Command | Mention, text: str) -> Reply:
        words = text.split()
        if not words:
            raise SilenceError(f"`/silence` needs a node, a duration and a reason.\n{USAGE}")
        node = self._node(words[0])
        if len(words) < 2:
            raise SilenceError(f"`/silence {node}` needs a duration such as 30m, 2h or 1d. No silence was created.\n{USAGE}")
        try:
            duration = parse_duration(words[1])
        except SilenceError as exc:
            raise SilenceError(f"{exc}. No silence was created.") from None
        limit = self.service.config.max_duration_s
        if duration > limit:
            raise SilenceError(f"`{words[1]}` is longer than the longest silence allowed from chat "
                               f"({self.service.config.max_duration}); no silence was created.")
        reason = " ".join(words[2:]).strip()
        if not reason:
            raise SilenceError(f"`/silence {node} {words[1]}` needs a reason (Alertmanager keeps it as the "
                               f"silence's comment). No silence was created.\n{USAGE}")
        if len(reason) > MAX_REASON:
            raise SilenceError(f"the reason is {len(reason)} characters; at most {MAX_REASON}. No silence was created.")
        silence = self.service.create(node, duration, event.user, reason)
        label = self.service.config.node_label
        self.bot.store.audit(event.user, "silence_created", silence.id, {
            "node": node, "matchers": [m.text() for m in silence.matchers], "duration_s": duration,
            "until": _iso(silence.ends_at), "comment": reason})
        return Reply("text", event.channel,
                     f"Silence `{silence.id}` created in Alertmanager by {event.user}: alerts with "
                     f'{label}="{node}" are muted for {format_duration(duration)} (until {_iso(silence.ends_at)[:16]} UTC); '
                     f"clusterdoc opens no incidents for them meanwhile. Reason: {reason}\n"
                     f"`/unsilence {silence.id}` ends it early.", thread=event.thread)

    def _node(self, word: str) -> str:
        word = word.strip().strip("`'\"").rstrip(",.;:")
        if not _NODE_RE.match(word):
            raise SilenceError(f"`{word[:40]}` is not a node name. No silence was created.\n{USAGE}")
        known = list(self.bot.known_nodes)
        if not known or word in known:
            return word
        lowered = {n.lower(): n for n in known}
        if word.lower() in lowered:
            return lowered[word.lower()]
        close = closest_nodes(word, known)
        hint = ", ".join(f"`{n}`" for n in (close or known[:5]))
        raise SilenceError(f"unknown node `{word}`; closest known: {hint}. No silence was created.")

    def _list(self, event: Command | Mention) -> Reply:
        self.service.refresh(force=True)
        now = self.service.clock()
        rows = self.service.active()
        if not rows:
            return Reply("text", event.channel, "No active silences in Alertmanager.", thread=event.thread)
        lines = [f"Active silences ({len(rows)}):"]
        for s in rows[:30]:
            lines.append(f"• `{s.id}` {', '.join(m.text() for m in s.matchers)} — {format_duration(s.ends_at - now)} "
                         f"left (until {_iso(s.ends_at)[:16]} UTC), by {s.created_by or '?'}: {s.comment[:120]}")
        if len(rows) > 30:
            lines.append(f"… and {len(rows) - 30} more")
        return Reply("text", event.channel, "\n".join(lines), thread=event.thread)

    def _expire(self, event: Command | Mention, text: str) -> Reply:
        words = text.split()
        if not words:
            raise SilenceError(f"`/unsilence` needs the id of a silence (see `/silences`).\n{USAGE}")
        wanted = words[0].strip("`'\"")
        if not _ID_RE.match(wanted):
            raise SilenceError(f"`{wanted[:40]}` is not a silence id (see `/silences`); nothing was expired.")
        self.service.refresh(force=True)
        candidates = [s for s in self.service.active() if s.id == wanted] or [
            s for s in self.service.active() if s.id.startswith(wanted)]
        if len(candidates) > 1:
            raise SilenceError(f"`{wanted}` matches {len(candidates)} active silences; give more of the id. "
                               "Nothing was expired.")
        if not candidates:
            raise SilenceError(f"no active silence with id `{wanted}` (see `/silences`); nothing was expired.")
        silence = candidates[0]
        self.service.expire(silence.id)
        matchers = ", ".join(m.text() for m in silence.matchers)
        self.bot.store.audit(event.user, "silence_expired", silence.id, {"matchers": matchers})
        return Reply("text", event.channel, f"Silence `{silence.id}` ({matchers}) expired by {event.user}; "
                     "those alerts notify again and open incidents.", thread=event.thread)


def install_silences(bot: Bot, config: SilenceConfig, *, api: AlertmanagerAPI | None = None) -> SilenceCommands:
    """Add the silence commands and the silence-aware alert intake to ``bot``'s middleware chain
    (after authz and rate limits). Called by the composition root when ``api_url`` is set."""
    link = SilenceCommands(bot, SilenceService(config, api, clock=bot.clock))
    bot.middleware.append(link)
    return link
