"""``python -m diagnostics.telemetry rules`` prints the alert rule file;
``python -m diagnostics.telemetry check --url http://prometheus:9090`` runs the early-warning
PromQL set once and prints what it finds (token from ``PROMETHEUS_BEARER_TOKEN`` if set)."""

from __future__ import annotations

import argparse
import os
import sys

from diagnostics.telemetry.prometheus import PrometheusClient, PrometheusError
from diagnostics.telemetry.queries import QueryParams, alert_rules_yaml
from diagnostics.telemetry.source import PrometheusTelemetrySource

TOKEN_ENV = "PROMETHEUS_BEARER_TOKEN"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m diagnostics.telemetry", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("rules", "check"):
        p = sub.add_parser(name)
        p.add_argument("--window", default=QueryParams.window, help="smoothing window (Prometheus duration)")
        p.add_argument("--selector", default="", help='label matchers for every metric, e.g. job="dcgm"')
        if name == "rules":
            p.add_argument("--for", dest="for_", default="1m", help="how long a rule must hold before it fires")
        else:
            p.add_argument("--url", required=True, help="Prometheus base URL")
    args = parser.parse_args(argv)
    try:
        params = QueryParams(window=args.window, selector=args.selector)
        if args.cmd == "rules":
            sys.stdout.write(alert_rules_yaml(params, for_=args.for_))
            return 0
        source = PrometheusTelemetrySource(PrometheusClient(args.url, bearer_token=os.environ.get(TOKEN_ENV, "")), params)
        findings = source.early_warnings() + source.scrape_health()
    except (ValueError, PrometheusError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for f in findings:
        print(f"{f.severity:8} {f.kind:22} {f.message}")
    for note in source.notes:
        print(f"note: {note}")
    print(f"{len(findings)} finding(s) from {len(source.samples())} GPU(s)")
    return 1 if findings else 0


if __name__ == "__main__":
    raise SystemExit(main())
