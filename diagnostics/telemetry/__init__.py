"""GPU telemetry at scale: dcgm-exporter metrics read through Prometheus.

``prometheus.PrometheusClient`` is the only code that talks to Prometheus's HTTP API;
``source.PrometheusTelemetrySource`` turns its answers into ``perf.detectors.GpuSample``s and
early-warning ``Finding``s; ``queries`` holds the PromQL rule set (also rendered as a rule file).
"""

from diagnostics.telemetry.prometheus import PrometheusClient, PrometheusError, PrometheusUnreachable, Series
from diagnostics.telemetry.queries import QueryParams, alert_rules_yaml, decode_reasons, rules
from diagnostics.telemetry.source import PrometheusTelemetrySource, SimTelemetrySource, TelemetrySource

__all__ = [
    "PrometheusClient",
    "PrometheusError",
    "PrometheusTelemetrySource",
    "PrometheusUnreachable",
    "QueryParams",
    "Series",
    "SimTelemetrySource",
    "TelemetrySource",
    "alert_rules_yaml",
    "decode_reasons",
    "rules",
]
