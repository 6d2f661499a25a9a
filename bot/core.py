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
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

from bot.alerts import alert_request_text, parse_alert_text
from bot.approvals import ApprovalsMixin
from bot.clusters import BotCluster, ClusterMap, split_cluster
from bot.commands import USAGE, CommandError, Subject, parse_command, split_command
from bot.config import BotConfig
from bot.corrections import correction_command
from bot.delivery import DeliveryMixin, Outbox, _no_outbox, _safe_png
from bot.events import (
    Alert,
    Command,
    Event,
    Mention,
    Message,
    Reaction,
    Reply,
)
from bot.history import HistoryMixin
from bot.middleware import ApprovalPolicy, Middleware, MiddlewareMixin, RateLimiter
from bot.render import diagnosis_text, graph_outline
from bot.safeguards import SafeguardsMixin
from bot.services import (
    AgentService,
    Directory,
    Learner,
    NoDirectory,
    Remediator,
    run_agent,
)
from bot.store import Store
from bot.targets import Inventory, JobLookup, resolve_mention
from pipelines.api import AgentEvent, DiagnosisRequest

log = logging.getLogger("clusterdoc.bot")



class Bot(MiddlewareMixin, ApprovalsMixin, DeliveryMixin, SafeguardsMixin, HistoryMixin):
    """The dispatch core: middleware (bot.middleware), routing and background work here, approvals
    (bot.approvals), delivery through the outbox (bot.delivery), targets / circuit breaker / dry run
    (bot.safeguards), node history (bot.history), several clusters (bot.clusters).

    One cluster: pass ``agent``, ``remediator``, ``known_nodes``, ``inventory``, ``jobs``. Several:
    pass ``clusters`` (one ``BotCluster`` each, with its own agent, remediator and nodes) instead."""

    def __init__(
        self,
        config: BotConfig,
        store: Store,
        agent: AgentService | None = None,
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
        inventory: Inventory | None = None,
        jobs: JobLookup | None = None,
        clusters: Sequence[BotCluster] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        if clusters is None:  # one unnamed cluster: messages carry no cluster name
            clusters = [BotCluster("", agent, remediator, list(known_nodes), inventory, jobs,  # type: ignore[arg-type]
                                   default=True)]
        self.clusters = ClusterMap(clusters)  # ValueError: a channel in two clusters, two defaults, …
        self.learner = learner
        self.known_nodes = self.clusters.all_nodes()  # every cluster's nodes (silences name nodes)
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
        self._init_safeguards()
        self._init_history()

    # -- the one (or default) cluster, for a bot built with one --------------------------------
    @property
    def agent(self) -> AgentService:
        return self.clusters.primary.agent

    @agent.setter
    def agent(self, value: AgentService) -> None:
        self.clusters.primary.agent = value

    @property
    def remediator(self) -> Remediator | None:
        return self.clusters.primary.remediator

    @remediator.setter
    def remediator(self, value: Remediator | None) -> None:
        self.clusters.primary.remediator = value

    @property
    def inventory(self) -> Inventory | None:
        """The live node list (a node may leave); None: the nodes known at start."""
        return self.clusters.primary.inventory

    @inventory.setter
    def inventory(self, value: Inventory | None) -> None:
        self.clusters.primary.inventory = value

    @property
    def jobs(self) -> JobLookup | None:
        """Asks the scheduler whether a job exists; None: job ids are not checked."""
        return self.clusters.primary.jobs

    @jobs.setter
    def jobs(self, value: JobLookup | None) -> None:
        self.clusters.primary.jobs = value

    def cluster_of_incident(self, incident_id: int) -> BotCluster | None:
        """The configured cluster an incident is about (None: it names one no longer configured)."""
        return self.clusters.get(self.store.cluster_of(incident_id))

    def _remediator_of(self, incident_id: int) -> Remediator | None:
        cluster = self.cluster_of_incident(incident_id)
        return cluster.remediator if cluster is not None else None

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
            return [self._named(r) for r in call(0, event)]
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
            self._post(Reply("text", row.channel, f"Proposal `{row.id}` expired unapproved; run /diagnose again.",
                             thread=row.thread, proposal_id=row.id))
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
                                 "by a restart; ask again (/diagnose) to re-run it.", thread=incident.thread,
                                 incident_id=str(incident.id)))
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

    # -- middleware --------------------------------------------------------------------------
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
        name = event.name.strip().lstrip("/!").lower()
        text, cluster = event.text, None
        try:
            if name in ("diagnose", "history", "status"):  # the cluster: cluster=<name>, the channel's, the default
                asked, text = split_cluster(event.text)
                try:
                    cluster = self.clusters.pick(event.channel, asked)
                except CommandError:
                    if name != "status" or asked is not None:
                        raise
                    cluster = None  # /status in a channel of no cluster: every cluster
            # node names are resolved against that cluster's inventory only
            parsed = parse_command(event.name, text, cluster.nodes_now() if cluster is not None else [])
        except CommandError as exc:
            return [Reply("error", event.channel, str(exc), thread=event.thread, ephemeral_to=event.user,
                          cluster=cluster.name if cluster is not None else "")]
        if parsed.name == "help":
            return [Reply("text", event.channel, USAGE, thread=event.thread, ephemeral_to=event.user)]
        if parsed.name == "status":
            return [Reply("text", event.channel, self._status_text(cluster), thread=event.thread,
                          cluster=cluster.name if cluster is not None else "")]
        if parsed.name == "wrong":
            return correction_command(self, event, parsed.text)
        assert cluster is not None  # picked above for diagnose and history
        if parsed.name == "history":
            return self._history_command(event, parsed.text, cluster)
        text = f"diagnose {parsed.target.kind} {parsed.target.name}" + (f": {parsed.text}" if parsed.text else "")
        return self._open(event, parsed.target, text, "command", cluster)

    def _on_mention(self, event: Mention) -> list[Reply]:
        split = split_command(event.text, self.command_prefixes)
        if split is not None:
            return self._on_command(Command(event.platform, event.channel, event.user, split[0], split[1],
                                            event.message_id, event.thread))
        words = event.text.split()
        if words and words[0].lower().rstrip(":") in ("diagnose", "status", "help", "history", "wrong"):
            words[0] = words[0].rstrip(":")
            return self._on_command(Command(event.platform, event.channel, event.user, words[0],
                                            " ".join(words[1:]), event.message_id, event.thread))
        if not event.text.strip():
            return [Reply("text", event.channel, USAGE, thread=event.thread or event.message_id or None)]
        asked, text = split_cluster(event.text)
        cluster = None
        try:
            cluster = self.clusters.pick(event.channel, asked)
            # a node-shaped name the cluster's inventory lacks is refused, not turned into a whole-cluster run
            target = resolve_mention(text, cluster.nodes_now())
        except CommandError as exc:
            return [Reply("error", event.channel, str(exc), thread=event.thread or event.message_id or None,
                          cluster=cluster.name if cluster is not None else "")]
        return self._open(event, target, text, "mention", cluster)

    def _open(self, event: Command | Mention, target: Subject, text: str, source: str,
              cluster: BotCluster) -> list[Reply]:
        if self.store.count_open_incidents() >= self.config.max_open_incidents:
            return [Reply("error", event.channel, f"Too many open incidents ({self.config.max_open_incidents}); "
                          "close some first.", thread=event.thread, ephemeral_to=event.user)]
        thread = event.thread or event.message_id or None
        if target.kind == "job" and target.name and cluster.jobs is not None:
            try:
                exists = cluster.jobs.job_exists(target.name)
            except Exception as exc:  # the scheduler cannot be asked: diagnose anyway (read-only), say so
                log.warning("job lookup for %s failed: %s", target.name, exc)
                exists = True
            if not exists:
                return [Reply("error", event.channel, f"unknown job `{target.name}`: the scheduler does not know it. "
                              "Nothing was started.", thread=thread, ephemeral_to=event.user, cluster=cluster.name)]
        incident_id = self.store.create_incident(
            platform=event.platform, channel=event.channel, thread=thread, requester=event.user,
            source=source, target=target.name, text=text, cluster=cluster.name,
        )
        request = DiagnosisRequest(
            text=text, target=target.name, source="mention" if source == "mention" else "command",
            requester=event.user, incident_id=str(incident_id),
        )
        self._submit(self._diagnose, incident_id, request)
        what = f"{target.kind} `{target.name}`" if target.name else "your question"
        return [Reply("ack", event.channel, f"Incident #{incident_id} opened: diagnosing {what}…",
                      thread=thread, incident_id=str(incident_id), ephemeral_to=None, cluster=cluster.name)]

    def _on_alert(self, alert: Alert) -> list[Reply]:
        cluster = self.clusters.for_alert(alert.channel, alert.labels)
        if cluster is None:  # several clusters, none for this channel or label, no default: nothing to run on
            self.store.audit(alert.platform, "alert_no_cluster", alert.fingerprint,
                             {"alert": alert.name, "channel": alert.channel, "status": alert.status})
            if alert.status == "firing":
                self._post_async(Reply("error", alert.channel, f"Alert {alert.name or alert.fingerprint}"
                                       f"{f' on {alert.node}' if alert.node else ''}: which cluster? This channel "
                                       "belongs to none, the alert has no `cluster` label naming one of "
                                       f"{self.clusters.names_text()}, and there is no default cluster; no incident "
                                       "was opened."))
            return []
        # de-duplication is per cluster: the same alert labels in two clusters are two incidents
        key = f"{cluster.name}/{alert.fingerprint}" if cluster.name else alert.fingerprint
        if alert.status == "resolved":
            incident_id = self.store.resolve_alert(key)
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
        known = cluster.known_nodes
        target = alert.node if alert.node in known or not known else None
        # a webhook/scheduled alert lives on the platform of the channel it is posted to, so that
        # reactions there match its proposals
        platform: str = alert.platform
        if platform in ("alertmanager", "schedule"):
            platform = self.platform_of(alert.channel) or platform
        incident_id, created = self.store.open_alert_incident(
            key, platform=platform, channel=alert.channel, source="alert",
            target=target, text=alert_request_text(alert), cluster=cluster.name,
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
        cluster = self.clusters.get(incident.cluster)
        if cluster is None:  # opened for a cluster that is no longer configured (a restart with a new config)
            self.store.set_incident(incident_id, status="failed", summary=f"cluster {incident.cluster!r} not configured")
            self._post(Reply("error", channel, f"Incident #{incident_id}: cluster `{incident.cluster}` is not "
                             "configured any more; nothing was run.", thread=thread, cluster=incident.cluster))
            return
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
            diagnosis = run_agent(cluster.agent, request, on_event=progress)  # that cluster's agent and toolkit
        except Exception as exc:
            log.exception("diagnosis of incident %s failed", incident_id)
            self.store.set_incident(incident_id, status="failed", summary=f"agent error: {type(exc).__name__}")
            self.store.audit("bot", "diagnosis_failed", str(incident_id), repr(exc)[:500])
            self._post(Reply("error", channel, f"Incident #{incident_id}: the diagnosis failed "
                             f"({type(exc).__name__}: {str(exc)[:200]}).", thread=thread,
                             incident_id=str(incident_id)))
            return
        self.store.set_incident(incident_id, diagnosis=diagnosis.to_dict(), summary=diagnosis.summary[:500])
        self.store.audit("agent", "diagnosis", str(incident_id), {"cause": asdict(diagnosis.cause),
                         "confidence": diagnosis.confidence, "llm": diagnosis.llm})
        recurring = self._history_note(incident, diagnosis)  # node history; "3rd Xid 79 on …" (bot.history)
        self._post(Reply("text", channel, diagnosis_text(incident_id, diagnosis) + recurring, thread=thread,
                         incident_id=str(incident_id)))
        outline = graph_outline(diagnosis.graph)
        png = _safe_png(diagnosis.graph, f"incident #{incident_id}")
        self._post(Reply("image" if png else "text", channel, f"Reasoning graph:\n{outline}", thread=thread,
                         image_png=png, filename=f"incident-{incident_id}-graph.png",
                         incident_id=str(incident_id)))
        for proposal in diagnosis.proposals:
            self._propose(incident_id, incident.platform, channel, thread, incident.requester, proposal)
        self.store.set_incident(incident_id, status="proposed" if diagnosis.proposals else "resolved")

    def _status_text(self, cluster: BotCluster | None = None) -> str:
        """Open incidents and the circuit breaker: of ``cluster``, or of every cluster (None)."""
        rows = [r for r in self.store.incidents() if r.status in ("open", "diagnosing", "proposed", "executing")
                and (cluster is None or r.cluster == cluster.name)]
        shown = [cluster] if cluster is not None else list(self.clusters)
        breaker = "\n".join((f"[{c.name}] " if cluster is None and c.name else "") + self.breaker_status(cluster=c.name)
                            for c in shown)
        if not rows:
            return f"No open incidents.\n{breaker}"
        tag = cluster is None and self.clusters.named
        return ("Open incidents:\n" + "\n".join(f"{f'[{r.cluster}] ' if tag and r.cluster else ''}#{r.id} [{r.status}] "
                                                 f"{r.target or ''} {r.text[:80]}" for r in rows[-20:])
                + f"\n{breaker}")


