"""Neutral chat events in, replies out: the only vocabulary the bot core speaks.

Adapters (Slack, Matrix, console, the Alertmanager webhook) translate their platform's payloads
into these frozen dataclasses and turn ``Reply`` objects back into platform calls, so the core
is testable with no chat platform at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Platform = Literal["slack", "matrix", "console", "alertmanager", "schedule", "test"]
AlertStatus = Literal["firing", "resolved"]
ReplyKind = Literal["ack", "text", "status", "image", "proposal", "result", "error", "report"]


@dataclass(frozen=True)
class Message:
    """A plain message in a watched channel (alert channels are scanned for alert posts)."""

    platform: Platform
    channel: str
    user: str
    text: str
    message_id: str = ""
    thread: str | None = None
    from_bot: bool = False  # posted by some bot (ours or e.g. an Alertmanager integration)


@dataclass(frozen=True)
class Command:
    """``/diagnose node-05`` (Slack slash command, console) or ``!diagnose node-05`` (Matrix)."""

    platform: Platform
    channel: str
    user: str
    name: str  # "diagnose"
    text: str  # everything after the command name
    message_id: str = ""  # the message that carried it, when there is one (Matrix, console)
    thread: str | None = None


@dataclass(frozen=True)
class Mention:
    """``@clusterdoc why is job 4412 slow?``: free text addressed to the bot."""

    platform: Platform
    channel: str
    user: str
    text: str
    message_id: str = ""
    thread: str | None = None


@dataclass(frozen=True)
class Reaction:
    """An emoji reaction added to a message (``message_id`` is the reacted-to message)."""

    platform: Platform
    channel: str
    user: str
    emoji: str  # platform name ("white_check_mark") or the character ("✅")
    message_id: str


@dataclass(frozen=True)
class Alert:
    """An Alertmanager-style alert: from a webhook, an alert-channel post or an early warning."""

    platform: Platform
    channel: str
    status: AlertStatus
    fingerprint: str
    name: str = ""
    summary: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    message_id: str = ""

    @property
    def node(self) -> str | None:
        """The node the alert is about: ``node``/``hostname`` label, else ``instance`` minus port."""
        for key in ("node", "hostname", "host", "nodename"):
            if self.labels.get(key):
                return self.labels[key]
        instance = self.labels.get("instance", "")
        if instance:
            host = instance.rsplit(":", 1)[0] if instance.count(":") == 1 else instance
            return host or None
        return None

    @property
    def gpu(self) -> int | None:
        raw = self.labels.get("gpu") or self.labels.get("GPU") or ""
        return int(raw) if raw.isdigit() else None


Event = Message | Command | Mention | Reaction | Alert


@dataclass(frozen=True)
class Reply:
    """One thing to post. ``thread`` None means "post at top level" (it may become a thread root).

    ``key`` lets the core learn the platform id of what it posted (``proposal:<id>``,
    ``incident:<id>``): the outbox hands it back with the id the platform returned.
    """

    kind: ReplyKind
    channel: str
    text: str
    thread: str | None = None
    image_png: bytes | None = None
    filename: str = ""
    code: str = ""  # shown as a code block under the text (proposal scripts)
    ephemeral_to: str | None = None  # only this user sees it, where the platform can do that
    incident_id: str = ""
    proposal_id: str = ""
    key: str = ""
    cluster: str = ""  # the cluster it is about; a named one prefixes the text ("[lab2] Incident #12: …")


APPROVE_EMOJI = frozenset({"white_check_mark", "heavy_check_mark", "✅", "✔️", "✔", "☑️"})
REJECT_EMOJI = frozenset({"x", "❌", "negative_squared_cross_mark", "❎", "heavy_multiplication_x", "✖️"})


def normalize_emoji(emoji: str) -> str:
    """Slack sends names (``white_check_mark``, ``:x:``), Matrix the character; strip colons
    and skin-tone suffixes so both compare equal to the sets above."""
    name = emoji.strip().strip(":")
    return name.split("::", 1)[0]
