"""The bot core: neutral events in, replies out; diagnoses and executions run in the background.

``Bot.dispatch(event)`` runs the middleware chain (ignore own messages, audit, authz, rate
limits) and returns what to answer *now* (an ack). Long work — a diagnosis, an approved
execution — runs on a worker pool and posts through the outbox (``send(reply) -> message id``)
that the adapter provides; a reply that cannot be delivered after retries is kept in SQLite and
re-sent by ``flush_outbox``, so nothing is lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

from bot.alerts import alert_request_text, parse_alert_text
from bot.commands import USAGE, CommandError, Subject, parse_command, split_command, target_from_text
from bot.config import BotConfig
from bot.events import (
    APPROVE_EMOJI,
    REJECT_EMOJI,
    Alert,
    Command,
    Event,
    Mention,
    Message,
    Reaction,
    Reply,
    normalize_emoji,
)
from bot.render import diagnosis_text, graph_outline, graph_png, proposal_code, proposal_text, result_text
from bot.services import (
    AgentService,
    Directory,
    Learner,
    NoDirectory,
    Remediator,
    diagnosis_from_dict,
    proposal_from_dict,
    run_agent,
)
from bot.store import ProposalRow, Store
from pipelines.api import AgentEvent, DiagnosisRequest, Proposal

log = logging.getLogger("clusterdoc.bot")

Outbox = Callable[[Reply], str | None]
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


class Bot:
    def __init__(
        self,
        config: BotConfig,
        store: Store,
        agent: AgentService,
        remediator: Remediator | None = None,
        *,
        learner: Learner | None = None,
        known_nodes: Sequence[str] = (),
        directory: Directory | None = None,
        outbox: Outbox | None = None,
        identity: Sequence[str] = (),
        alert_channels: Sequence[str] = (),
        command_prefixes: Sequence[str] = ("/", "!"),
        clock: Callable[[], float] = time.time,
        send_retries: int = 3,
        send_backoff_s: float = 0.5,
    ) -> None:
        self.config = config
        self.store = store
        self.agent = agent
        self.remediator = remediator
        self.learner = learner
        self.known_nodes = list(known_nodes)
        self.policy = ApprovalPolicy(config, directory or NoDirectory())
        self.outbox: Outbox = outbox or _no_outbox
        self.identity = set(identity)
        self.alert_channels = set(alert_channels) | set(config.slack.alert_channels) | set(config.matrix.alert_rooms)
        self.command_prefixes = tuple(command_prefixes)
        self.clock = clock
        self.send_retries = send_retries
        self.send_backoff_s = send_backoff_s
        self.rate = RateLimiter(config.rate_limit.per_user, config.rate_limit.window_s)
        self.alert_rate = RateLimiter(config.rate_limit.alerts_per_window, config.rate_limit.window_s)
        self._pool = ThreadPoolExecutor(max_workers=max(1, config.workers), thread_name_prefix="bot-worker")
        self._inflight: set[Future[None]] = set()
        self._idle = threading.Condition()
        self._started = False
        self._boot_time = time.time()  # incidents older than this process and still open were cut off
        self._platforms: dict[str, str] = {}  # channel -> platform, learnt from events
        self.middleware: list[Middleware] = [self._ignore_own, self._audit_in, self._authorize, self._rate_limit]

    # -- public entry points ----------------------------------------------------------------
    def dispatch(self, event: Event) -> list[Reply]:
        """Handle one event; returns the immediate replies (acks). Never raises for bad input."""

        if event.channel and event.platform not in ("alertmanager", "schedule"):
            self._platforms.setdefault(event.channel, event.platform)

        def call(index: int, ev: Event) -> list[Reply]:
            if index == len(self.middleware):
                return self._route(ev)
            return self.middleware[index](ev, lambda e: call(index + 1, e))

        try:
            return call(0, event)
        except Exception as exc:  # a bug must not take the adapter down; say so and keep going
            log.exception("dispatch failed for %s", type(event).__name__)
            self.store.audit("bot", "dispatch_error", type(event).__name__, repr(exc))
            channel = getattr(event, "channel", "")
            return [Reply("error", channel, f"internal error handling that ({type(exc).__name__}); it is logged")]

    def start(self) -> None:
        """After a (re)start: expire overdue proposals, report interrupted executions, re-send.
        Idempotent: with several adapters, only the first call does the recovery."""
        with self._idle:
            if self._started:
                return
            self._started = True
        for row in self.store.expire_due(self.clock()):
            self.store.audit("bot", "proposal_expired", row.id)
            self._post(Reply("text", row.channel, f"Proposal `{row.id}` expired unapproved; run /diagnose again.", thread=row.thread))
        for row in self.store.mark_interrupted():
            self.store.audit("bot", "execution_interrupted", row.id, "bot restarted during execution; not retried")
            self._post(
                Reply(
                    "error", row.channel, thread=row.thread, proposal_id=row.id,
                    text=f"Execution of proposal `{row.id}` was interrupted by a restart. It is NOT retried "
                    "automatically: check the node's state, then run /diagnose again.",
                )
            )
            incident = self.store.incident(row.incident_id)
            if incident is not None:
                self.store.set_incident(incident.id, status="interrupted")
        for incident in self.store.interrupt_diagnoses(before=self._boot_time):
            self.store.audit("bot", "diagnosis_interrupted", str(incident.id))
            if incident.thread or incident.source != "alert":
                self._post(Reply("error", incident.channel, f"Incident #{incident.id}: the diagnosis was interrupted "
                                 "by a restart; ask again (/diagnose) to re-run it.", thread=incident.thread))
        self.flush_outbox()

    def platform_of(self, channel: str) -> str | None:
        """Which platform a channel belongs to (for routing replies when several adapters run)."""
        if channel in self._platforms:
            return self._platforms[channel]
        if channel in self.config.slack.alert_channels or channel == self.config.slack.channel:
            return "slack"
        if channel in self.config.matrix.rooms or channel in self.config.matrix.alert_rooms or (
            channel == self.config.matrix.report_room
        ):
            return "matrix"
        known = self.store.platform_of(channel)
        if known is not None:
            return known
        if channel.startswith("!") and ":" in channel:  # Matrix room ids look like !abc:server
            return "matrix"
        return "slack" if self.config.slack.enabled else None

    def set_outbox(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block until no background work is left (tests, the demo, graceful shutdown)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._inflight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)

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

    # -- middleware --------------------------------------------------------------------------
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
    def _route(self, event: Event) -> list[Reply]:
        if isinstance(event, Reaction):
            return self._on_reaction(event)
        if isinstance(event, Alert):
            return self._on_alert(event)
        if isinstance(event, Command):
            return self._on_command(event)
        if isinstance(event, Mention):
            return self._on_mention(event)
        return self._on_message(event)

    def _on_message(self, event: Message) -> list[Reply]:
        if event.channel in self.alert_channels:
            alert = parse_alert_text(event.text, platform=event.platform, channel=event.channel,
                                     message_id=event.message_id)
            return self.dispatch(alert) if alert is not None else []
        if event.from_bot:
            return []
        split = split_command(event.text, self.command_prefixes)
        if split is None:
            return []
        return self.dispatch(Command(event.platform, event.channel, event.user, split[0], split[1],
                                     message_id=event.message_id, thread=event.thread))

    def _on_command(self, event: Command) -> list[Reply]:
        try:
            parsed = parse_command(event.name, event.text, self.known_nodes)
        except CommandError as exc:
            return [Reply("error", event.channel, str(exc), thread=event.thread, ephemeral_to=event.user)]
        if parsed.name == "help":
            return [Reply("text", event.channel, USAGE, thread=event.thread, ephemeral_to=event.user)]
        if parsed.name == "status":
            return [Reply("text", event.channel, self._status_text(), thread=event.thread)]
        text = f"diagnose {parsed.target.kind} {parsed.target.name}" + (f": {parsed.text}" if parsed.text else "")
        return self._open(event, parsed.target, text, "command")

    def _on_mention(self, event: Mention) -> list[Reply]:
        split = split_command(event.text, self.command_prefixes)
        if split is not None:
            return self._on_command(Command(event.platform, event.channel, event.user, split[0], split[1],
                                            event.message_id, event.thread))
        words = event.text.split()
        if words and words[0].lower() in ("diagnose", "status", "help"):
            return self._on_command(Command(event.platform, event.channel, event.user, words[0],
                                            " ".join(words[1:]), event.message_id, event.thread))
        if not event.text.strip():
            return [Reply("text", event.channel, USAGE, thread=event.thread or event.message_id or None)]
        return self._open(event, target_from_text(event.text, self.known_nodes), event.text, "mention")

    def _open(self, event: Command | Mention, target: Subject, text: str, source: str) -> list[Reply]:
        if self.store.count_open_incidents() >= self.config.max_open_incidents:
            return [Reply("error", event.channel, f"Too many open incidents ({self.config.max_open_incidents}); "
                          "close some first.", thread=event.thread, ephemeral_to=event.user)]
        thread = event.thread or event.message_id or None
        incident_id = self.store.create_incident(
            platform=event.platform, channel=event.channel, thread=thread, requester=event.user,
            source=source, target=target.name, text=text,
        )
        request = DiagnosisRequest(
            text=text, target=target.name, source="mention" if source == "mention" else "command",
            requester=event.user, incident_id=str(incident_id),
        )
        self._submit(self._diagnose, incident_id, request)
        what = f"{target.kind} `{target.name}`" if target.name else "your question"
        return [Reply("ack", event.channel, f"Incident #{incident_id} opened: diagnosing {what}…",
                      thread=thread, incident_id=str(incident_id), ephemeral_to=None)]

    def _on_alert(self, alert: Alert) -> list[Reply]:
        if alert.status == "resolved":
            incident_id = self.store.resolve_alert(alert.fingerprint)
            if incident_id is None:
                return []
            incident = self.store.incident(incident_id)
            if incident is None:
                return []
            if not self.store.proposals(incident_id, state="pending") and incident.status in ("open", "diagnosing", "proposed"):
                self.store.set_incident(incident_id, status="resolved")
            self.store.audit("alertmanager", "alert_resolved", alert.fingerprint, {"incident": incident_id})
            self._post_async(Reply("text", incident.channel, f"Alert {alert.name} resolved.", thread=incident.thread,
                                   incident_id=str(incident_id)))
            return []
        target = alert.node if alert.node in self.known_nodes or not self.known_nodes else None
        # a webhook/scheduled alert lives on the platform of the channel it is posted to, so that
        # reactions there match its proposals
        platform: str = alert.platform
        if platform in ("alertmanager", "schedule"):
            platform = self.platform_of(alert.channel) or platform
        incident_id, created = self.store.open_alert_incident(
            alert.fingerprint, platform=platform, channel=alert.channel, source="alert",
            target=target, text=alert_request_text(alert),
        )
        if not created:
            return []  # the same alert again: counted on its incident, nothing new posted
        if not self.alert_rate.allow("alerts"):
            self.store.set_incident(incident_id, status="deferred", summary="alert rate limit reached")
            self.store.audit("alertmanager", "alert_rate_limited", alert.fingerprint)
            return []
        if alert.message_id:
            self.store.set_incident(incident_id, thread=alert.message_id)
        request = DiagnosisRequest(text=alert_request_text(alert), target=target, source="alert",
                                   incident_id=str(incident_id))
        self._submit(self._diagnose, incident_id, request)
        return []

    def _on_reaction(self, event: Reaction) -> list[Reply]:
        emoji = normalize_emoji(event.emoji)
        approve, reject = emoji in APPROVE_EMOJI, emoji in REJECT_EMOJI
        if not (approve or reject):
            return []
        row = self.store.proposal_by_message(event.platform, event.channel, event.message_id)
        if row is None:
            return []  # a reaction on some unrelated message
        decision = "approve" if approve else "reject"
        if not self.policy.is_approver(event.user, event.channel):
            self.store.record_decision(row.id, row.hash, event.user, decision, "not_approver")
            self.store.audit(event.user, "approval_refused", row.id, "not an approver")
            return [Reply("error", event.channel, f"{event.user} is not an approver; reaction ignored.",
                          thread=row.thread, ephemeral_to=event.user, proposal_id=row.id)]
        if row.state != "pending":
            self.store.record_decision(row.id, row.hash, event.user, decision, f"already_{row.state}")
            if row.state in ("executing", "executed") and row.decided_by != event.user:
                return []  # a second approver of a fix already running: nothing to add
            return [Reply("text", event.channel, f"Proposal `{row.id}` is already {row.state}; nothing runs.",
                          thread=row.thread, ephemeral_to=event.user, proposal_id=row.id)]
        now = self.clock()
        if now >= row.expires_at:
            self.store.expire_due(now)
            self.store.record_decision(row.id, row.hash, event.user, decision, "expired")
            self.store.audit(event.user, "approval_expired", row.id)
            return [Reply("error", event.channel, f"Proposal `{row.id}` has expired; run /diagnose again.",
                          thread=row.thread, proposal_id=row.id)]
        if reject:
            if self.store.reject(row.id, event.user):
                self.store.record_decision(row.id, row.hash, event.user, "reject", "rejected")
                self.store.audit(event.user, "proposal_rejected", row.id)
                return [Reply("text", event.channel, f"Proposal `{row.id}` rejected by {event.user}.",
                              thread=row.thread, proposal_id=row.id)]
            return []
        if event.user == row.requester and self.policy.self_approval_forbidden(row.risk):
            self.store.record_decision(row.id, row.hash, event.user, "approve", "self_approval")
            self.store.audit(event.user, "approval_refused", row.id, f"requester may not approve {row.risk}-risk")
            return [Reply("error", event.channel, f"{row.risk}-risk proposals need an approver other than the "
                          "requester.", thread=row.thread, proposal_id=row.id)]
        proposal = proposal_from_dict(row.body)
        if proposal.hash != row.hash:  # the stored body no longer matches what was shown
            self.store.record_decision(row.id, row.hash, event.user, "approve", "hash_mismatch")
            self.store.audit(event.user, "approval_refused", row.id, "hash mismatch")
            return [Reply("error", event.channel, f"Proposal `{row.id}` changed since it was posted; not run.",
                          thread=row.thread, proposal_id=row.id)]
        if not self.store.claim_for_execution(row.id, row.hash, event.user, now):
            self.store.record_decision(row.id, row.hash, event.user, "approve", "duplicate")
            return []  # someone else's approval won the race, or it just expired
        self.store.record_decision(row.id, row.hash, event.user, "approve", "executing")
        self.store.audit(event.user, "proposal_approved", row.id, {"hash": row.hash, "commands": proposal.commands()})
        self.store.set_incident(row.incident_id, status="executing")
        self._submit(self._execute, row, proposal, event.user, now)
        return [Reply("text", event.channel, f"Approved by {event.user}: executing proposal `{row.id}`…",
                      thread=row.thread, proposal_id=row.id)]

    # -- background work ---------------------------------------------------------------------
    def _submit(self, fn: Callable[..., Any], *args: Any) -> None:
        def guarded() -> None:
            try:
                fn(*args)
            except Exception:  # keep the worker alive; the job itself reports to chat
                log.exception("background job %s failed", fn.__name__)

        with self._idle:
            future = self._pool.submit(guarded)
            self._inflight.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._idle:
            self._inflight.discard(future)
            if not self._inflight:
                self._idle.notify_all()

    def _diagnose(self, incident_id: int, request: DiagnosisRequest) -> None:
        incident = self.store.incident(incident_id)
        if incident is None:
            return
        channel, thread = incident.channel, incident.thread
        if thread is None:  # slash command / webhook alert: start a thread with a root post
            who = f" (asked by {incident.requester})" if incident.requester else ""
            thread = self._post(Reply("status", channel, f"Incident #{incident_id}: {incident.text}{who}",
                                      incident_id=str(incident_id), key=f"incident:{incident_id}"))
        self.store.set_incident(incident_id, status="diagnosing")
        statuses: list[str] = []

        def progress(event: AgentEvent) -> None:
            text = str(event.data.get("text") or event.data.get("message") or "")
            if event.kind == "status" and len(statuses) < 3 and text:
                statuses.append(text)
                self._post(Reply("status", channel, text[:300], thread=thread, incident_id=str(incident_id)))

        try:
            diagnosis = run_agent(self.agent, request, on_event=progress)
        except Exception as exc:
            log.exception("diagnosis of incident %s failed", incident_id)
            self.store.set_incident(incident_id, status="failed", summary=f"agent error: {type(exc).__name__}")
            self.store.audit("bot", "diagnosis_failed", str(incident_id), repr(exc)[:500])
            self._post(Reply("error", channel, f"Incident #{incident_id}: the diagnosis failed "
                             f"({type(exc).__name__}: {str(exc)[:200]}).", thread=thread))
            return
        self.store.set_incident(incident_id, diagnosis=diagnosis.to_dict(), summary=diagnosis.summary[:500])
        self.store.audit("agent", "diagnosis", str(incident_id), {"cause": asdict(diagnosis.cause),
                         "confidence": diagnosis.confidence, "llm": diagnosis.llm})
        self._post(Reply("text", channel, diagnosis_text(incident_id, diagnosis), thread=thread,
                         incident_id=str(incident_id)))
        outline = graph_outline(diagnosis.graph)
        png = _safe_png(diagnosis.graph, f"incident #{incident_id}")
        self._post(Reply("image" if png else "text", channel, f"Reasoning graph:\n{outline}", thread=thread,
                         image_png=png, filename=f"incident-{incident_id}-graph.png",
                         incident_id=str(incident_id)))
        for proposal in diagnosis.proposals:
            self._propose(incident_id, incident.platform, channel, thread, incident.requester, proposal)
        self.store.set_incident(incident_id, status="proposed" if diagnosis.proposals else "resolved")

    def _propose(self, incident_id: int, platform: str, channel: str, thread: str | None, requester: str,
                 proposal: Proposal) -> None:
        pid = f"{incident_id}.{proposal.id}"
        stored = proposal_from_dict({**proposal.to_dict(), "id": pid})
        self.store.add_proposal(
            proposal_id=pid, incident_id=incident_id, hash=stored.hash, risk=stored.risk, title=stored.title,
            body=stored.to_dict(), platform=platform, channel=channel, thread=thread, requester=requester,
            expires_at=self.clock() + self.config.approvals.expiry_s,
        )
        self.store.audit("agent", "proposal_posted", pid, {"hash": stored.hash, "commands": stored.commands()})
        self._post(Reply("proposal", channel, proposal_text(stored, self.config.approvals.expiry_s),
                         thread=thread, code=proposal_code(stored), incident_id=str(incident_id),
                         proposal_id=pid, key=f"proposal:{pid}"))

    def _execute(self, row: ProposalRow, proposal: Proposal, approver: str, approved_at: float) -> None:
        if self.remediator is None:
            self.store.finish_execution(row.id, False, False, {"message": "no remediator configured"})
            self._post(Reply("error", row.channel, "This bot has no executor configured; nothing ran.", thread=row.thread))
            return
        try:
            result = self.remediator.execute(proposal, approver, approved_at)
        except Exception as exc:
            log.exception("execution of %s failed", row.id)
            self.store.finish_execution(row.id, False, False, {"error": repr(exc)[:1000]})
            self.store.audit("bot", "execution_failed", row.id, repr(exc)[:500])
            self.store.set_incident(row.incident_id, status="failed")
            self._post(Reply("error", row.channel, f"Execution of `{row.id}` failed: {type(exc).__name__}: "
                             f"{str(exc)[:200]}", thread=row.thread, proposal_id=row.id))
            return
        self.store.finish_execution(row.id, result.ok, result.verified, asdict(result))
        self.store.audit(approver, "proposal_executed", row.id,
                         {"ok": result.ok, "verified": result.verified, "steps": result.step_results,
                          "verification": result.verification})
        self.store.set_incident(row.incident_id, status="resolved" if result.verified else "failed")
        self._post(Reply("result", row.channel, result_text(proposal, result), thread=row.thread,
                         proposal_id=row.id, incident_id=str(row.incident_id)))
        if result.verified and self.learner is not None:
            incident = self.store.incident(row.incident_id)
            data = self.store.diagnosis_json(row.incident_id)
            try:
                self.learner.learn(incident.text if incident else "", diagnosis_from_dict(data) if data else None,
                                   proposal, result)
                self.store.audit("bot", "learned", row.id)
            except Exception as exc:  # learning is best effort; the fix itself is done
                log.exception("learning from %s failed", row.id)
                self.store.audit("bot", "learn_failed", row.id, repr(exc)[:500])

    # -- delivery ----------------------------------------------------------------------------
    def _post_async(self, reply: Reply) -> None:
        self._submit(self._post, reply)

    def _post(self, reply: Reply) -> str | None:
        """Send with retries and backoff; on final failure keep it in the outbox table."""
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

    def _status_text(self) -> str:
        rows = [r for r in self.store.incidents() if r.status in ("open", "diagnosing", "proposed", "executing")]
        if not rows:
            return "No open incidents."
        return "Open incidents:\n" + "\n".join(f"#{r.id} [{r.status}] {r.target or ''} {r.text[:80]}" for r in rows[-20:])


def _no_outbox(reply: Reply) -> str | None:
    log.info("[%s] %s", reply.kind, reply.text)
    return None


def _safe_png(graph: dict[str, Any], title: str) -> bytes | None:
    try:
        return graph_png(graph, title)
    except Exception:  # a drawing problem never hides the diagnosis; the outline still goes out
        log.exception("graph rendering failed")
        return None
