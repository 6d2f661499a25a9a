"""Approvals: the proof that an authorised person agreed to run exact commands.

An ``Approval`` binds to the sha256 of the exact rendered command lines (``command_digest``); the
toolkit recomputes the digest right before running a mutating tool and refuses on any difference,
so a proposal edited after approval, or params that render differently, never run.

CONTRACT: Approval(proposal_hash, command_digest, approver, approved_at), command_digest(commands).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable
from dataclasses import dataclass


def command_digest(commands: Iterable[str]) -> str:
    """sha256 (hex) over the exact command lines, each terminated by a newline."""
    h = hashlib.sha256()
    for line in commands:
        h.update(line.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


@dataclass(frozen=True)
class Approval:
    proposal_hash: str
    command_digest: str
    approver: str
    approved_at: float
    # Optional extras (defaults keep the four-field contract):
    # other step digests of the same approved proposal, so one Approval can cover several steps;
    command_digests: tuple[str, ...] = ()
    # hosts the approval is limited to (empty: any host the proposal names);
    hosts: tuple[str, ...] = ()
    # wall-clock expiry (epoch seconds); None: never expires here (the bot enforces its own TTL).
    expires_at: float | None = None

    def covers(self, digest: str) -> bool:
        """True when ``digest`` is one this approval was given for (constant-time compare)."""
        candidates = (self.command_digest, *self.command_digests)
        return any(hmac.compare_digest(digest, c) for c in candidates if c)

    def refusal(self, digest: str, host: str, now: float | None = None) -> str | None:
        """Why this approval does not allow running ``digest`` on ``host``; None when it does."""
        if not self.approver:
            return "approval has no approver"
        if self.expires_at is not None and (now if now is not None else time.time()) > self.expires_at:
            return f"approval by {self.approver} expired"
        if self.hosts and host not in self.hosts:
            return f"approval by {self.approver} does not cover host {host} (covers {', '.join(self.hosts)})"
        if not self.covers(digest):
            return (
                f"approval by {self.approver} was given for other commands "
                f"(approved digest {self.command_digest[:12]}…, rendered {digest[:12]}…)"
            )
        return None
