"""One TOML file + environment variables -> the per-layer config dataclasses.

Each layer owns its dataclass (``bot.config.BotConfig``, ``pipelines.config.LLMConfig`` /
``AgentConfig``, ``kb.config.KBConfig``, ``diagnostics.executors.ssh.SSHConfig``); this module only
reads the file once, checks every key (unknown key, wrong type, bad value -> ``ConfigError``
naming ``section.key`` and the reason) and fills secrets from the environment. Secrets are never
accepted from the file.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.config import BotConfig
from diagnostics.types import ValidationError

# env variable -> (section path, field): secrets come only from here
SECRET_ENV: dict[str, tuple[str, str]] = {
    "SLACK_BOT_TOKEN": ("bot.slack", "bot_token"),
    "SLACK_SIGNING_SECRET": ("bot.slack", "signing_secret"),
    "SLACK_APP_TOKEN": ("bot.slack", "app_token"),
    "MATRIX_ACCESS_TOKEN": ("bot.matrix", "access_token"),
    "MATRIX_PASSWORD": ("bot.matrix", "password"),
    "CLUSTERDOC_ALERTMANAGER_TOKEN": ("bot.alertmanager", "token"),
    "CLUSTERDOC_ALERTMANAGER_API_TOKEN": ("bot.silences", "api_token"),
}
SECRET_FIELDS = {f for _, f in SECRET_ENV.values()}


class ConfigError(ValidationError):
    """The config file is unreadable or a key is wrong; the message names the key and why."""


@dataclass
class ClusterConfig:
    """Which cluster the bot works on: a real inventory, or a simulated scenario."""

    inventory: str = ""  # inventory YAML of real nodes (diagnostics.inventory)
    scenario: str = ""  # a scenario YAML: run against the simulated cluster instead
    simulate_over_ssh: bool = True  # serve the simulated nodes over SSH on 127.0.0.1
    scheduler: str = "slurm"  # slurm | kubernetes | none


@dataclass
class NamedClusterConfig(ClusterConfig):
    """One of several clusters (``[[clusters]]``): an inventory or a scenario, a name, its channels."""

    name: str = ""  # how commands (cluster=lab2) and every message ("[lab2] …") name it
    channels: list[str] = field(default_factory=list)  # Slack channel ids / Matrix room ids that belong to it
    default: bool = False  # the cluster of channels that belong to none (at most one)
    report_channel: str = ""  # where its health report goes; default: its first channel, else the bot's


@dataclass
class FaultsConfig:
    """Operator additions to the knowledge of faults (YAML files, same schema as the built-in ones)."""

    catalog_files: list[str] = field(default_factory=list)  # fault kinds (diagnostics/data/faults.yaml schema)
    signature_files: list[str] = field(default_factory=list)  # log signatures (diagnostics/data/signatures/)


@dataclass
class Config:
    source: str = "<defaults>"
    bot: BotConfig = field(default_factory=BotConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    llm: Any = None  # pipelines.config.LLMConfig
    agent: Any = None  # pipelines.config.AgentConfig
    kb: Any = None  # kb.config.KBConfig
    ssh: Any = None  # diagnostics.executors.ssh.SSHConfig
    telemetry: Any = None  # diagnostics.telemetry.config.TelemetryConfig
    faults: FaultsConfig = field(default_factory=FaultsConfig)
    clusters: list[NamedClusterConfig] = field(default_factory=list)  # [[clusters]]; empty: [cluster] alone

    def cluster_list(self) -> list[ClusterConfig]:
        """The clusters the bot serves: each ``[[clusters]]`` entry, else the one ``[cluster]``."""
        return list(self.clusters) if self.clusters else [self.cluster]


def load_config(path: str | Path | None, env: Mapping[str, str] | None = None) -> Config:
    """Read ``path`` (None: defaults only) and the environment; raise ``ConfigError`` on any problem."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"{source}: config file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read: {exc.strerror}") from None
    return config_from_mapping(data, source, env)


def config_from_mapping(data: Mapping[str, Any], source: str, env: Mapping[str, str]) -> Config:
    known = {"bot", "cluster", "clusters", "llm", "agent", "kb", "ssh", "telemetry", "faults"}
    for key in data:
        if key not in known:
            raise ConfigError(f"{source}: unknown section [{key}]; known: {', '.join(sorted(known))}")
    _refuse_secrets(data.get("bot", {}), "bot", source)
    bot = build_dataclass(BotConfig, data.get("bot", {}), "bot", source)
    for var, (section, name) in SECRET_ENV.items():
        value = env.get(var, "")
        if value:
            setattr(getattr(bot, section.split(".")[1]), name, value)
            from bot.store import register_secret

            register_secret(value)
    _check_bot(bot, source)
    cfg = Config(source=source, bot=bot, cluster=build_dataclass(ClusterConfig, data.get("cluster", {}), "cluster", source))
    if cfg.cluster.scheduler not in ("slurm", "kubernetes", "none"):
        raise ConfigError(f"{source}: cluster.scheduler: {cfg.cluster.scheduler!r} is not slurm, kubernetes or none")
    cfg.clusters = _clusters(data, cfg.cluster, source)
    cfg.llm, cfg.agent = _pipelines(data, source)
    cfg.kb = _kb(data.get("kb", {}), source)
    cfg.ssh = _optional("diagnostics.executors.ssh", "SSHConfig", data.get("ssh", {}), "ssh", source)
    cfg.telemetry = _optional("diagnostics.telemetry.config", "TelemetryConfig", data.get("telemetry", {}),
                              "telemetry", source)
    cfg.faults = build_dataclass(FaultsConfig, data.get("faults", {}), "faults", source)
    return cfg


def _clusters(data: Mapping[str, Any], single: ClusterConfig, source: str) -> list[NamedClusterConfig]:
    """``[[clusters]]``: each named, with an inventory or a scenario; a channel in one cluster at most,
    one default at most. ``[cluster]``'s ``simulate_over_ssh`` / ``scheduler`` are their defaults."""
    from bot.clusters import CLUSTER_NAME

    raw = data.get("clusters")
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(t, Mapping) for t in raw):
        raise ConfigError(f"{source}: clusters: write each cluster as a [[clusters]] table")
    if not raw:
        raise ConfigError(f"{source}: clusters: list at least one [[clusters]] table, or use [cluster]")
    if single.inventory or single.scenario:
        raise ConfigError(f"{source}: [cluster] inventory/scenario and [[clusters]] are both set: with several "
                          "clusters, give each its inventory (or scenario) under [[clusters]]")
    shared = {k: v for k, v in dict(data.get("cluster", {})).items() if k in ("simulate_over_ssh", "scheduler")}
    clusters = [build_dataclass(NamedClusterConfig, {**shared, **table}, f"clusters[{i}]", source)
                for i, table in enumerate(raw)]
    owner: dict[str, str] = {}
    names: dict[str, str] = {}
    for i, c in enumerate(clusters):
        where = f"clusters[{i}]" + (f" ({c.name})" if c.name else "")
        if not c.name:
            raise ConfigError(f"{source}: {where}.name is required (it names the cluster in commands and messages)")
        if not CLUSTER_NAME.match(c.name):
            raise ConfigError(f"{source}: {where}.name: {c.name!r}: letters, digits, '.', '_', '-' only (at most 64)")
        if c.name.lower() in names:
            raise ConfigError(f"{source}: {where}.name: {c.name!r} is used twice (clusters[{names[c.name.lower()]}])")
        names[c.name.lower()] = str(i)
        if bool(c.inventory) == bool(c.scenario):
            raise ConfigError(f"{source}: {where}: set inventory (real nodes) or scenario (simulated), one of them")
        if c.scheduler not in ("slurm", "kubernetes", "none"):
            raise ConfigError(f"{source}: {where}.scheduler: {c.scheduler!r} is not slurm, kubernetes or none")
        for channel in dict.fromkeys(c.channels):
            if channel in owner:
                raise ConfigError(f"{source}: {where}.channels: channel {channel!r} is mapped to two clusters: "
                                  f"{owner[channel]!r} and {c.name!r}; a channel belongs to one cluster")
            owner[channel] = c.name
    for i, c in enumerate(clusters):
        if c.report_channel and owner.get(c.report_channel, c.name) != c.name:
            raise ConfigError(f"{source}: clusters[{i}] ({c.name}).report_channel: {c.report_channel!r} belongs to "
                              f"cluster {owner[c.report_channel]!r}")
    defaults = [c.name for c in clusters if c.default]
    if len(defaults) > 1:
        raise ConfigError(f"{source}: clusters: two defaults, {defaults[0]!r} and {defaults[1]!r}; at most one")
    return clusters


def _pipelines(data: Mapping[str, Any], source: str) -> tuple[Any, Any]:
    llm = _optional("pipelines.config", "LLMConfig", data.get("llm", {}), "llm", source)
    agent_table = dict(data.get("agent", {}))
    if "llm" in agent_table:
        raise ConfigError(f"{source}: agent.llm: put model settings in the [llm] section")
    agent = _optional("pipelines.config", "AgentConfig", agent_table, "agent", source)
    if agent is not None and llm is not None:
        agent = dataclasses.replace(agent, llm=llm)
    return llm, agent


def _kb(table: Mapping[str, Any], source: str) -> Any:
    try:
        from kb.config import KBConfig
    except ImportError:
        return dict(table)
    try:
        return KBConfig.from_mapping(table, source) if table else KBConfig.from_env()
    except (ValueError, ValidationError) as exc:
        raise ConfigError(str(exc) if str(exc).startswith(source) else f"{source}: {exc}") from None


def _optional(module: str, name: str, table: Mapping[str, Any], section: str, source: str) -> Any:
    """Build another layer's dataclass when that layer is installed; else keep the raw table."""
    try:
        cls = getattr(__import__(module, fromlist=[name]), name)
    except (ImportError, AttributeError):
        return dict(table)
    return build_dataclass(cls, table, section, source)


def _refuse_secrets(table: Any, section: str, source: str) -> None:
    if not isinstance(table, Mapping):
        return
    for key, value in table.items():
        if key in SECRET_FIELDS:
            var = next((v for v, (sec, f) in SECRET_ENV.items() if f == key and sec == section), key.upper())
            raise ConfigError(f"{source}: {section}.{key}: secrets are read from the environment only (set ${var})")
        _refuse_secrets(value, f"{section}.{key}", source)


def _check_bot(bot: BotConfig, source: str) -> None:
    s, m, a = bot.slack, bot.matrix, bot.approvals
    if s.enabled:
        if not s.bot_token:
            raise ConfigError(f"{source}: bot.slack.enabled = true needs $SLACK_BOT_TOKEN")
        if s.mode == "socket" and not s.app_token:
            raise ConfigError(f"{source}: bot.slack.mode = 'socket' needs $SLACK_APP_TOKEN (an xapp- token)")
        if s.mode == "http" and not s.signing_secret:
            raise ConfigError(f"{source}: bot.slack.mode = 'http' needs $SLACK_SIGNING_SECRET")
        if not s.command.startswith("/"):
            raise ConfigError(f"{source}: bot.slack.command: {s.command!r} must start with '/'")
    if m.enabled:
        for key in ("homeserver", "user_id"):
            if not getattr(m, key):
                raise ConfigError(f"{source}: bot.matrix.{key} is required when bot.matrix.enabled = true")
        if not m.rooms:
            raise ConfigError(f"{source}: bot.matrix.rooms: list at least one room id the bot answers in")
        if not (m.access_token or m.password):
            raise ConfigError(f"{source}: bot.matrix.enabled = true needs $MATRIX_ACCESS_TOKEN or $MATRIX_PASSWORD")
        if not m.homeserver.startswith(("http://", "https://")):
            raise ConfigError(f"{source}: bot.matrix.homeserver: {m.homeserver!r} must start with http:// or https://")
        if not m.user_id.startswith("@") or ":" not in m.user_id:
            raise ConfigError(f"{source}: bot.matrix.user_id: {m.user_id!r} is not a Matrix id like @bot:example.org")
    for key in ("http_port",):
        if not 0 <= s.http_port <= 65535:
            raise ConfigError(f"{source}: bot.slack.{key}: {s.http_port} is not a TCP port")
    if a.expiry_s <= 0:
        raise ConfigError(f"{source}: bot.approvals.expiry_s must be > 0, got {a.expiry_s}")
    if a.min_power_level < 0:
        raise ConfigError(f"{source}: bot.approvals.min_power_level must be >= 0, got {a.min_power_level}")
    if bot.workers < 1:
        raise ConfigError(f"{source}: bot.workers must be >= 1, got {bot.workers}")
    if bot.rate_limit.per_user < 1 or bot.rate_limit.window_s <= 0:
        raise ConfigError(f"{source}: bot.rate_limit: per_user must be >= 1 and window_s > 0")
    if bot.schedule.early_warning_interval_s < 0:
        raise ConfigError(f"{source}: bot.schedule.early_warning_interval_s must be >= 0")
    b, h = bot.breaker, bot.history
    if b.max_nodes < 1:
        raise ConfigError(f"{source}: bot.breaker.max_nodes must be >= 1, got {b.max_nodes}")
    if not 0 < b.max_fraction <= 1:
        raise ConfigError(f"{source}: bot.breaker.max_fraction must be in (0, 1], got {b.max_fraction}")
    if b.window_s <= 0:
        raise ConfigError(f"{source}: bot.breaker.window_s must be > 0, got {b.window_s}")
    from diagnostics.actions import ACTIONS_BY_NAME

    unknown = [a for a in b.actions if a not in ACTIONS_BY_NAME]
    if unknown:
        raise ConfigError(f"{source}: bot.breaker.actions: {', '.join(unknown)} not a registry action; "
                          f"known: {', '.join(sorted(ACTIONS_BY_NAME))}")
    if h.recurring_count < 2 or h.recurring_days <= 0 or h.list_limit < 1:
        raise ConfigError(f"{source}: bot.history: recurring_count must be >= 2, recurring_days > 0, list_limit >= 1")
    cron = bot.schedule.health_report_cron
    if cron:
        try:
            from apscheduler.triggers.cron import CronTrigger

            CronTrigger.from_crontab(cron, timezone=bot.schedule.timezone)
        except ImportError:
            if len(cron.split()) != 5:
                raise ConfigError(f"{source}: bot.schedule.health_report_cron: {cron!r} needs 5 fields") from None
        except Exception as exc:
            raise ConfigError(f"{source}: bot.schedule.health_report_cron / timezone: {exc}") from None


T = typing.TypeVar("T")


def build_dataclass(cls: type[T], table: Any, section: str, source: str) -> T:
    """Build ``cls`` from a TOML table, checking every key and value against the field types."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{source}: [{section}] must be a table, got {type(table).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, raw in table.items():
        if key not in fields:
            raise ConfigError(f"{source}: unknown key {section}.{key}; known: {', '.join(sorted(fields))}")
        values[key] = _coerce(hints[key], raw, f"{section}.{key}", source)
    try:
        return cls(**values)
    except (ValueError, TypeError, ValidationError) as exc:
        raise ConfigError(f"{source}: [{section}]: {exc}") from None


def _coerce(tp: Any, raw: Any, key: str, source: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)

    def fail(expected: str) -> ConfigError:
        return ConfigError(f"{source}: {key}: expected {expected}, got {raw!r}")

    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return build_dataclass(tp, raw, key, source)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if type(None) in args and raw == "":
            return None
        errors: list[ConfigError] = []
        for option in inner:
            try:
                return _coerce(option, raw, key, source)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0] if len(errors) == 1 else fail(" or ".join(getattr(a, "__name__", str(a)) for a in inner))
    if origin is typing.Literal:
        if raw not in args:
            raise ConfigError(f"{source}: {key}: {raw!r} is not one of {', '.join(repr(a) for a in args)}")
        return raw
    if origin in (list, tuple):
        if not isinstance(raw, list):
            raise fail("a list")
        item_tp = args[0] if args else Any
        items = [_coerce(item_tp, item, f"{key}[{i}]", source) for i, item in enumerate(raw)]
        return items if origin is list else tuple(items)
    if origin is dict or tp is dict:
        if not isinstance(raw, Mapping):
            raise fail("a table")
        return dict(raw)
    if tp is bool:
        if not isinstance(raw, bool):
            raise fail("true or false")
        return raw
    if tp is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise fail("an integer")
        return raw
    if tp is float:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise fail("a number")
        return float(raw)
    if tp is str:
        if not isinstance(raw, str):
            raise fail("a string")
        return raw
    if tp is Path:
        if not isinstance(raw, str):
            raise fail("a path string")
        return Path(raw).expanduser()
    return raw
