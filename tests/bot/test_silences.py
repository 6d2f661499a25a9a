"""Silence parsing and matching without an Alertmanager (the real one: tests/integration/test_silences.py)."""

from __future__ import annotations

import pytest

from bot.silences import (
    Matcher,
    Silence,
    SilenceConfig,
    SilenceError,
    _parse_time,
    format_duration,
    parse_duration,
)
from clusterdoc.config import ConfigError, config_from_mapping


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30), ("90m", 5400), ("2h", 7200), ("1h30m", 5400), ("1d", 86400), ("1w", 604800), ("1.5h", 5400),
    ("2H", 7200),
])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "why"), [
    ("", "no duration"), ("-2h", "must be positive"), ("0h", "must be positive"), ("0m0s", "must be positive"),
    ("soon", "is not a duration"), ("2", "is not a duration"), ("2x", "is not a duration"), ("h2", "is not a duration"),
    ("2h-1m", "is not a duration"), ("1h 30m", "is not a duration"),
])
def test_bad_durations_say_why(text: str, why: str) -> None:
    with pytest.raises(SilenceError, match=why):
        parse_duration(text)


def test_format_duration() -> None:
    assert (format_duration(7200), format_duration(5400), format_duration(90061)) == ("2h", "1h30m", "1d1h")


def test_matchers_follow_alertmanager_semantics() -> None:
    labels = {"alertname": "GpuXid", "node": "node-05", "gpu": "3"}
    assert Matcher("node", "node-05").matches(labels)
    assert not Matcher("node", "node-0").matches(labels)  # exact, not a prefix
    assert Matcher("node", "node-0[0-9]", is_regex=True).matches(labels)
    assert not Matcher("node", "node-0", is_regex=True).matches(labels)  # regexes are anchored
    assert Matcher("node", "node-06", is_equal=False).matches(labels)
    assert Matcher("rack", "").matches(labels)  # a missing label is the empty string
    assert not Matcher("node", "(", is_regex=True).matches(labels)  # unreadable regex: no match
    s = Silence("id1", (Matcher("node", "node-05"), Matcher("gpu", "3")), 0.0, 10.0)
    assert s.matches(labels) and not s.matches({**labels, "gpu": "4"})
    assert s.active(5.0) and not s.active(10.0) and not Silence("x", (), 0, 10, state="expired").active(5)
    assert not Silence("y", (), 0.0, 10.0).matches(labels)  # no matchers never mutes everything


def test_alertmanager_times_with_nanoseconds() -> None:
    assert _parse_time("1970-01-01T00:01:00.5Z") == 60.5
    assert _parse_time("1970-01-01T00:01:00.123456789Z") == pytest.approx(60.123456789)
    assert _parse_time("1970-01-01T01:01:00+01:00") == 60.0


def test_config_validates_and_keeps_the_token_secret() -> None:
    with pytest.raises(ValueError, match="max_duration"):
        SilenceConfig(max_duration="forever")
    with pytest.raises(ValueError, match="api_url"):
        SilenceConfig(api_url="alertmanager:9093")
    with pytest.raises(ValueError, match="no credentials in the URL"):
        SilenceConfig(api_url="http://admin:hunter2@alertmanager:9093")
    cfg = config_from_mapping({"bot": {"silences": {"api_url": "http://am:9093", "max_duration": "3d"}}}, "c.toml",
                              {"CLUSTERDOC_ALERTMANAGER_API_TOKEN": "am-api-secret-1234"})
    assert cfg.bot.silences.max_duration_s == 3 * 86400
    assert cfg.bot.silences.api_token == "am-api-secret-1234" and "am-api-secret" not in repr(cfg.bot.silences)
    with pytest.raises(ConfigError, match="secrets are read from the environment"):
        config_from_mapping({"bot": {"silences": {"api_token": "x"}}}, "c.toml", {})
    with pytest.raises(ConfigError, match="node_label"):
        config_from_mapping({"bot": {"silences": {"node_label": "no-dashes"}}}, "c.toml", {})
