"""``[telemetry]`` in the config file: checked like every section, and turned into a source."""

from __future__ import annotations

import pytest

from clusterdoc.config import ConfigError, config_from_mapping
from diagnostics.telemetry import PrometheusTelemetrySource
from diagnostics.telemetry.config import TelemetryConfig, make_source


def test_telemetry_section_builds_a_prometheus_source() -> None:
    cfg = config_from_mapping({"telemetry": {"prometheus_url": "http://127.0.0.1:9090", "window": "1m",
                                             "selector": 'job="dcgm"'}}, "c.toml", {})
    assert isinstance(cfg.telemetry, TelemetryConfig) and cfg.telemetry.enabled
    source = make_source(cfg.telemetry, env={"PROMETHEUS_BEARER_TOKEN": "tok"})
    assert isinstance(source, PrometheusTelemetrySource)
    assert source.params.window == "1m" and source.params.selector == 'job="dcgm"'
    assert source.client.bearer_token == "tok" and "tok" not in repr(source.client)
    assert make_source(TelemetryConfig()) is None  # no Prometheus configured: no source


@pytest.mark.parametrize(("table", "message"), [
    ({"prometheus_url": "prometheus:9090"}, r"telemetry\.prometheus_url: 'prometheus:9090' must start with http"),
    ({"window": "2 minutes"}, r"telemetry window '2 minutes'"),
    ({"timeout_s": 0}, r"telemetry\.timeout_s: must be > 0"),
    ({"bearer_token": "x"}, r"unknown key telemetry\.bearer_token"),
])
def test_bad_telemetry_values_are_named(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_mapping({"telemetry": table}, "c.toml", {})
