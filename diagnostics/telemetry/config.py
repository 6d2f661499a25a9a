"""``[telemetry]``: where GPU telemetry comes from when the cluster already runs Prometheus."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from diagnostics.telemetry.queries import QueryParams

TOKEN_ENV = "PROMETHEUS_BEARER_TOKEN"  # only when Prometheus sits behind an authenticating proxy


@dataclass
class TelemetryConfig:
    prometheus_url: str = ""  # e.g. http://prometheus.monitoring.svc:9090; empty = no Prometheus
    selector: str = ""  # label matchers for dcgm-exporter's series, e.g. job="dcgm-exporter"
    window: str = "2m"  # smoothing window of the early-warning rules (a few scrape intervals)
    timeout_s: float = 10.0  # the bearer token, if any, comes from env PROMETHEUS_BEARER_TOKEN only

    def __post_init__(self) -> None:
        if self.prometheus_url and not self.prometheus_url.startswith(("http://", "https://")):
            raise ValueError(f"telemetry.prometheus_url: {self.prometheus_url!r} must start with http:// or https://")
        if self.timeout_s <= 0:
            raise ValueError(f"telemetry.timeout_s: must be > 0, got {self.timeout_s}")
        QueryParams(window=self.window, selector=self.selector)  # raises naming the bad value

    @property
    def enabled(self) -> bool:
        return bool(self.prometheus_url)


def make_source(config: TelemetryConfig, env: Mapping[str, str] | None = None) -> object | None:
    """A ``PrometheusTelemetrySource`` for the config, or None when no Prometheus is configured."""
    if not config.enabled:
        return None
    from diagnostics.telemetry.prometheus import PrometheusClient
    from diagnostics.telemetry.source import PrometheusTelemetrySource

    token = (os.environ if env is None else env).get(TOKEN_ENV, "")
    client = PrometheusClient(config.prometheus_url, timeout_s=config.timeout_s, bearer_token=token)
    return PrometheusTelemetrySource(client, QueryParams(window=config.window, selector=config.selector))
