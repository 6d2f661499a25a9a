"""The bot layer's configuration dataclasses (assembled from TOML + env by ``clusterdoc.config``).

Secrets are never fields read from the file: ``clusterdoc.config`` fills the ``*_token`` /
``*_secret`` / ``password`` fields from the environment only, and ``__repr__`` hides them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bot.alertmanager import AlertmanagerConfig
from bot.silences import SilenceConfig

SECRET_FIELDS = frozenset({"bot_token", "signing_secret", "app_token", "access_token", "password", "token"})


def _redacted(obj: object) -> str:
    parts = []
    for name, value in vars(obj).items():
        shown = "***" if name in SECRET_FIELDS and value else repr(value)
        parts.append(f"{name}={shown}")
    return f"{type(obj).__name__}({', '.join(parts)})"


@dataclass
class SlackConfig:
    enabled: bool = False
    mode: Literal["socket", "http"] = "socket"  # Socket Mode needs SLACK_APP_TOKEN; http needs a public URL
    http_host: str = "127.0.0.1"
    http_port: int = 3000
    channel: str = ""  # channel id for scheduled reports and early warnings
    alert_channels: list[str] = field(default_factory=list)  # channel ids scanned for Alertmanager posts
    base_url: str = ""  # Web API base URL override (a proxy, or a stand-in in tests)
    command: str = "/diagnose"
    bot_token: str = ""  # env SLACK_BOT_TOKEN
    signing_secret: str = ""  # env SLACK_SIGNING_SECRET
    app_token: str = ""  # env SLACK_APP_TOKEN

    __repr__ = _redacted


@dataclass
class MatrixConfig:
    enabled: bool = False
    homeserver: str = ""  # e.g. https://matrix.example.org
    user_id: str = ""  # @clusterdoc:example.org
    device_id: str = "clusterdoc"
    rooms: list[str] = field(default_factory=list)  # room ids the bot answers in (others ignored)
    alert_rooms: list[str] = field(default_factory=list)  # room ids scanned for alert posts
    report_room: str = ""  # room id for scheduled reports
    command_prefix: str = "!"
    access_token: str = ""  # env MATRIX_ACCESS_TOKEN
    password: str = ""  # env MATRIX_PASSWORD (used when no access token)

    __repr__ = _redacted


@dataclass
class ApprovalConfig:
    approvers: list[str] = field(default_factory=list)  # Slack user ids (U…) / Matrix ids (@u:hs)
    approver_groups: list[str] = field(default_factory=list)  # Slack user group ids (S…)
    min_power_level: int = 0  # Matrix: power level >= this approves; 0 = not used
    expiry_s: float = 3600.0  # a proposal older than this can no longer be approved
    no_self_approval: list[Literal["low", "medium", "high"]] = field(default_factory=lambda: ["high"])
    diagnose_users: list[str] = field(default_factory=list)  # who may /diagnose; empty = anyone


@dataclass
class RateLimitConfig:
    per_user: int = 10  # commands/mentions one user may send per window
    window_s: float = 60.0
    alerts_per_window: int = 30  # new incidents from alerts per window (dedup applies first)


@dataclass
class ScheduleConfig:
    health_report_cron: str = ""  # crontab "m h dom mon dow", e.g. "0 8 * * *"; empty = off
    timezone: str = "UTC"
    early_warning_interval_s: float = 0.0  # seconds between early-warning polls; 0 = off


@dataclass
class BreakerConfig:
    """Circuit breaker across incidents: at most ``min(max_nodes, max_fraction × fleet)`` nodes (never
    fewer than 1) drained or reset by clusterdoc per ``window_s``; above it a proposal needs two
    distinct approvers. Counted from executions recorded in the state file (survives restarts)."""

    max_nodes: int = 2
    max_fraction: float = 0.05  # of the nodes in the inventory
    window_s: float = 3600.0
    actions: list[str] = field(default_factory=lambda: ["drain_node", "reset_gpu"])  # what counts


@dataclass
class HistoryConfig:
    """Node history (incidents, verdicts, actions per node and GPU) kept in the state file."""

    recurring_count: int = 3  # the Nth occurrence of one fault on one node+GPU is flagged …
    recurring_days: float = 30.0  # … when all N fall within this many days
    list_limit: int = 10  # incidents /history lists


@dataclass
class BotConfig:
    name: str = "clusterdoc"
    state_path: str = "clusterdoc-state.sqlite"  # incidents, approvals, audit, scheduler jobs
    workers: int = 4  # concurrent diagnoses
    max_open_incidents: int = 500  # beyond this, new requests are refused with a clear line
    slack: SlackConfig = field(default_factory=SlackConfig)
    matrix: MatrixConfig = field(default_factory=MatrixConfig)
    approvals: ApprovalConfig = field(default_factory=ApprovalConfig)
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    alertmanager: AlertmanagerConfig = field(default_factory=AlertmanagerConfig)  # webhook receiver
    silences: SilenceConfig = field(default_factory=SilenceConfig)  # /silence via Alertmanager's API
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    history: HistoryConfig = field(default_factory=HistoryConfig)
    dry_run: bool = False  # approved actions are shown (exact commands) but never run; env CLUSTERDOC_DRY_RUN=1 too
