"""Telemetry without a Prometheus binary: the HTTP client against a stand-in server, the PromQL
rule set, the sample conversion, and the simulated dcgm-exporter endpoints."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from diagnostics.telemetry import (
    PrometheusClient,
    PrometheusError,
    PrometheusTelemetrySource,
    QueryParams,
    Series,
    SimTelemetrySource,
    TelemetrySource,
    alert_rules_yaml,
    decode_reasons,
    rules,
)
from simulator import SimCluster
from simulator.metrics_server import MetricsServer

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class StandIn:
    """Answers /api/v1/* with canned JSON; records each request's path, params and headers."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, bytes]] = {}
        self.requests: list[tuple[str, dict[str, list[str]], dict[str, str]]] = []
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                standin.requests.append((url.path, parse_qs(url.query), dict(self.headers.items())))
                status, body = standin.answers.get(url.path, (404, b"not found"))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path: str, body: Any, status: int = 200) -> None:
        self.answers[path] = (status, body if isinstance(body, bytes) else json.dumps(body).encode())


@pytest.fixture
def standin() -> Iterator[StandIn]:
    s = StandIn()
    yield s
    s.server.shutdown()
    s.server.server_close()


def vector(*items: tuple[dict[str, str], float]) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "vector",
                                          "result": [{"metric": m, "value": [1700000000.5, str(v)]} for m, v in items]}}


# -- client ----------------------------------------------------------------------------------


def test_client_reads_vectors_matrices_and_scalars(standin: StandIn) -> None:
    client = PrometheusClient(standin.url + "/")
    standin.answer("/api/v1/query", vector(({"gpu": "3", "Hostname": "node-05"}, 200.0)))
    [s] = client.query("DCGM_FI_DEV_SM_CLOCK", at=1700000000)
    assert s.labels == {"gpu": "3", "Hostname": "node-05"} and s.value == 200.0 and s.t == 1700000000.5
    path, params, _ = standin.requests[-1]
    assert path == "/api/v1/query"
    assert params["query"] == ["DCGM_FI_DEV_SM_CLOCK"] and params["time"] == ["1700000000.000"]
    standin.answer("/api/v1/query_range", {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"gpu": "0"}, "values": [[1.0, "1410"], [2.0, "1395"]]}]}})
    [m] = client.query_range("x", 1.0, 2.0, 1.0)
    assert m.values == ((1.0, 1410.0), (2.0, 1395.0)) and m.value == 1395.0
    standin.answer("/api/v1/query", {"status": "success", "data": {"resultType": "scalar", "result": [3.0, "8"]}})
    assert client.query("scalar(8)")[0].value == 8.0
    assert client.stats["requests"] == 3


def test_client_errors_say_what_went_wrong(standin: StandIn) -> None:
    client = PrometheusClient(standin.url, bearer_token="s3cret-token")
    standin.answer("/api/v1/query", {"status": "error", "errorType": "bad_data",
                                     "error": "1:5: parse error: unclosed left parenthesis"}, status=400)
    with pytest.raises(PrometheusError, match=r"HTTP 400: bad_data: .*unclosed") as err:
        client.query("sum(x")
    assert "s3cret-token" not in str(err.value) and "'sum(x'" in str(err.value)
    assert standin.requests[-1][2]["Authorization"] == "Bearer s3cret-token"
    standin.answer("/api/v1/query", b"<html>proxy login</html>")
    with pytest.raises(PrometheusError, match="not JSON"):
        client.query("up")
    standin.answer("/api/v1/query", {"status": "success", "data": {"resultType": "string", "result": [1, "a"]}})
    with pytest.raises(PrometheusError, match="cannot be read as numbers"):
        client.query('"a"')
    standin.answer("/api/v1/query", {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}})
    with pytest.raises(PrometheusError, match="malformed result"):
        client.query("up")
    with pytest.raises(PrometheusError, match="step must be > 0"):
        client.query_range("up", 0, 1, 0)


def test_client_unreachable_and_bad_url() -> None:
    with pytest.raises(PrometheusError, match="expected http"):
        PrometheusClient("localhost:9090")
    port = _closed_port()
    client = PrometheusClient(f"http://127.0.0.1:{port}", timeout_s=2)
    assert client.ready() is False
    with pytest.raises(PrometheusError, match=rf"127.0.0.1:{port}.*cannot connect"):
        client.query("up")


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- rule set ----------------------------------------------------------------------------------


def test_decode_reasons_names_known_and_unknown_bits() -> None:
    assert decode_reasons(72) == ["hw_slowdown", "hw_thermal_slowdown"]
    assert decode_reasons(0) == []
    assert decode_reasons(0x1 | 0x400) == ["gpu_idle", "bit_0x400"]


def test_query_params_reject_bad_values() -> None:
    for bad in ({"window": "5 minutes"}, {"selector": "job=dcgm"}, {"clock_ratio": 1.5}, {"power_limit_ratio": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            QueryParams(**bad)  # type: ignore[arg-type]


def test_selector_reaches_every_metric_reference() -> None:
    p = QueryParams(selector='job="dcgm", cluster="a"')
    for r in rules(p):
        for expr in filter(None, (r.expr, r.reference)):
            names = re.findall(r"DCGM_FI_DEV_[A-Z_]+(\{[^}]*\})?", expr)
            assert names and all(sel == '{job="dcgm", cluster="a"}' for sel in names), (r.name, expr)
    kinds = {r.kind for r in rules()}
    assert {"gpu_clock_throttle", "gpu_thermal", "gpu_power_cap", "gpu_xid", "gpu_ecc_uncorrectable",
            "gpu_fallen_off_bus"} <= kinds


def test_alert_rule_file_is_valid_and_labels_the_node(tmp_path: Path) -> None:
    text = alert_rules_yaml(QueryParams(window="1m"), for_="2m")
    data = yaml.safe_load(text)
    alerts = data["groups"][0]["rules"]
    assert len(alerts) == len(rules())
    assert all(a["labels"]["node"] == "{{ $labels.Hostname }}" and a["for"] == "2m" for a in alerts)
    with pytest.raises(ValueError, match="alert 'for'"):
        alert_rules_yaml(for_="soon")
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    path = tmp_path / "rules.yml"
    path.write_text(text)
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_shipped_rule_file_matches_the_rule_set() -> None:
    shipped = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "clusterdoc-gpu.rules.yml"
    assert yaml.safe_load(shipped.read_text()) == yaml.safe_load(alert_rules_yaml())


# -- samples from Prometheus answers ------------------------------------------------------------


class FakeClient:
    """Answers the two sample queries the source makes."""

    def __init__(self, series: list[Series], changes: list[Series]) -> None:
        self.series, self.changes = series, changes
        self.queries: list[str] = []

    def query(self, promql: str, at: float | None = None) -> list[Series]:
        self.queries.append(promql)
        return self.changes if promql.startswith("changes(") else self.series


def s(name: str, value: float, **labels: str) -> Series:
    return Series({"__name__": name, **labels}, ((1700000000.0, value),))


def test_samples_join_metrics_per_gpu_and_fill_the_max_clock() -> None:
    a800 = {"modelName": "NVIDIA A800-SXM4-80GB", "Hostname": "node-05", "gpu": "3"}
    series = [
        s("DCGM_FI_DEV_SM_CLOCK", 200, **a800), s("DCGM_FI_DEV_GPU_TEMP", 84, **a800),
        s("DCGM_FI_DEV_XID_ERRORS", 48, **a800), s("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", 2, **a800),
        s("DCGM_FI_DEV_SM_CLOCK", 1410, gpu="0", instance="10.0.0.7:9400", modelName="Mystery GPU"),
        s("DCGM_FI_DEV_SM_CLOCK", 1, Hostname="node-01"),  # no gpu label: skipped with a note
    ]
    source = PrometheusTelemetrySource(FakeClient(series, []), QueryParams(selector='job="dcgm"'))  # type: ignore[arg-type]
    samples = {(x.host, x.gpu): x for x in source.samples()}
    assert set(samples) == {("node-05", 3), ("10.0.0.7", 0)}
    x = samples[("node-05", 3)]
    assert (x.sm_clock_mhz, x.max_sm_clock_mhz, x.temp_c, x.xid_count, x.ecc_dbe) == (200, 1410, 84, 1, 2)
    assert x.power_w is None and x.power_limit_w is None  # not exported: missing, not zero
    assert samples[("10.0.0.7", 0)].max_sm_clock_mhz is None  # unknown model
    assert any("no gpu/Hostname label" in n for n in source.notes)
    assert 'job="dcgm"' in source.metrics_selector()


def test_history_counts_each_new_xid_once() -> None:
    labels = {"__name__": "DCGM_FI_DEV_XID_ERRORS", "Hostname": "n1", "gpu": "0"}
    values = ((1.0, 0.0), (2.0, 79.0), (3.0, 79.0), (4.0, 48.0))

    class RangeClient(FakeClient):
        def query_range(self, promql: str, start: float, end: float, step_s: float) -> list[Series]:
            return [Series(labels, values)]

    source = PrometheusTelemetrySource(RangeClient([], []))  # type: ignore[arg-type]
    ticks = source.history(1, 4, 1)
    assert [t[0].xid_count for t in ticks] == [0, 1, 1, 2]


def test_sim_source_is_a_telemetry_source() -> None:
    sim = SimCluster(str(SCENARIOS / "a800-throttle.yaml"))
    source = SimTelemetrySource(sim)
    assert isinstance(source, TelemetrySource)
    samples = source.samples()
    assert len(samples) == 64
    assert next(x for x in samples if (x.host, x.gpu) == ("node-05", 3)).sm_clock_mhz == 200


# -- the simulated exporters --------------------------------------------------------------------


def fetch(url: str) -> tuple[int, str, str]:
    try:
        with OPENER.open(url, timeout=10) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


@pytest.mark.parametrize("per_node_ports", [False, True])
def test_metrics_endpoints_speak_dcgm_exporter_format(per_node_ports: bool) -> None:
    sim = SimCluster(str(SCENARIOS / "a800-throttle.yaml"))
    with MetricsServer(sim, per_node_ports=per_node_ports) as server:
        targets = server.targets()
        assert [t.node for t in targets] == sim.hosts
        status, ctype, body = fetch(targets[4].url)
        assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
        families = {f.name: f for f in text_string_to_metric_families(body)}
        for name in ("DCGM_FI_DEV_SM_CLOCK", "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_GPU_UTIL",
                     "DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS"):
            assert name in families, name
        clock = {x.labels["gpu"]: x for x in families["DCGM_FI_DEV_SM_CLOCK"].samples}
        assert clock["3"].value == 200
        assert {"gpu", "UUID", "device", "modelName", "Hostname"} <= set(clock["3"].labels)
        assert clock["3"].labels["Hostname"] == "node-05"
        configs = server.static_configs()
        assert len(configs) == 8 and configs[4]["labels"]["instance"] == "node-05:9400"
        assert ("__metrics_path__" in configs[0]["labels"]) is not per_node_ports
        assert server.scrapes["node-05"] == 1
        bad = targets[0].url.replace("/metrics", "/nope") if per_node_ports else targets[0].url.replace("node-01", "node-99")
        assert fetch(bad)[0] == 404


def test_unreachable_node_answers_503_and_wallclock_moves_sim_time(tmp_path: Path) -> None:
    sim = SimCluster(str(SCENARIOS / "node-unreachable.yaml"))
    dead = next(h for h in sim.hosts if sim.node(h).unreachable)
    with MetricsServer(sim, follow_wallclock=True, time_scale=1000.0) as server:
        url = {t.node: t.url for t in server.targets()}
        assert fetch(url[dead])[0] == 503
        alive = next(h for h in sim.hosts if h != dead)
        assert fetch(url[alive])[0] == 200
        assert sim.time_s > 0  # scrapes advanced the simulated clock
        sd = json.loads(server.write_file_sd(tmp_path / "targets.json").read_text())
        assert len(sd) == len(sim.hosts)


def test_metrics_server_refuses_non_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        MetricsServer(object(), host="0.0.0.0")


class RuleClient:
    """Answers the early-warning rules by name fragment; raises for the ones told to fail."""

    def __init__(self, hits: dict[str, list[Series]], fail: dict[str, Exception] | None = None) -> None:
        self.hits, self.fail = hits, fail or {}

    def query(self, promql: str, at: float | None = None) -> list[Series]:
        for fragment, exc in self.fail.items():
            if promql.startswith(fragment):
                raise exc
        for fragment, series in self.hits.items():
            if promql.startswith(fragment):
                return series
        return []


def test_early_warning_maps_hits_to_findings_and_skips_failing_rules() -> None:
    xid = Series({"Hostname": "node-02", "gpu": "1", "modelName": "NVIDIA H100 80GB HBM3"}, ((5.0, 79.0),))
    ecc = Series({"Hostname": "node-03", "gpu": "0"}, ((5.0, 2.0),))
    client = RuleClient({"DCGM_FI_DEV_XID_ERRORS > 0": [xid], "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL > 0": [ecc]},
                        fail={"DCGM_FI_DEV_POWER_MGMT_LIMIT <": PrometheusError("HTTP 422: execution: boom")})
    source = PrometheusTelemetrySource(client)  # type: ignore[arg-type]
    findings = {(f.kind, f.host, f.gpu): f for f in source.early_warnings()}
    assert set(findings) == {("gpu_fallen_off_bus", "node-02", 1), ("gpu_ecc_uncorrectable", "node-03", 0)}
    assert findings[("gpu_fallen_off_bus", "node-02", 1)].data["xid"] == 79
    assert all(f.severity == "critical" and f.data["source"] == "prometheus" for f in findings.values())
    assert any("GpuPowerLimitBelowPeers skipped" in n and "boom" in n for n in source.notes)
    assert source.early_warnings(hosts=["node-03"])[0].host == "node-03"


def test_early_warning_raises_when_prometheus_is_unreachable() -> None:
    from diagnostics.telemetry import PrometheusUnreachable

    down = RuleClient({}, fail={"": PrometheusUnreachable("prometheus http://x: cannot connect: refused")})
    with pytest.raises(PrometheusUnreachable, match="cannot connect"):
        PrometheusTelemetrySource(down).early_warnings()  # type: ignore[arg-type]


def test_the_kind_that_explains_the_others_comes_first() -> None:
    from diagnostics.telemetry.source import rank_findings
    from diagnostics.types import Finding

    def f(kind: str, rule: str, host: str = "n1", gpu: int | None = 0) -> Finding:
        return Finding(kind=kind, host=host, gpu=gpu, severity="warning", message=rule, data={"rule": rule})

    ranked = rank_findings([f("gpu_clock_throttle", "GpuSmClockBelowPeers"), f("gpu_power_cap", "GpuPowerLimitBelowPeers"),
                            f("gpu_thermal", "GpuTempAbovePeers", gpu=1), f("gpu_clock_throttle", "GpuSmClockBelowPeers", gpu=1)])
    assert [(x.gpu, x.kind, x.data["primary"]) for x in ranked] == [
        (0, "gpu_power_cap", True), (0, "gpu_clock_throttle", False),
        (1, "gpu_clock_throttle", True), (1, "gpu_thermal", False)]  # warmer than peers: a symptom
    at_slowdown = f("gpu_thermal", "GpuTempNearSlowdown")
    at_slowdown.data["at_slowdown"] = True
    hot = rank_findings([f("gpu_clock_throttle", "GpuSmClockBelowPeers"), at_slowdown])
    assert hot[0].kind == "gpu_thermal"  # at the slowdown point, heat explains the clock
    warm = rank_findings([f("gpu_clock_throttle", "GpuSmClockBelowPeers"), f("gpu_thermal", "GpuTempNearSlowdown")])
    assert warm[0].kind == "gpu_clock_throttle"


def test_thermal_findings_carry_the_models_slowdown_temperature() -> None:
    hot = Series({"Hostname": "n1", "gpu": "0", "modelName": "NVIDIA A800-SXM4-80GB"}, ((5.0, 86.0),))
    client = RuleClient({"DCGM_FI_DEV_GPU_TEMP >=": [hot]})
    [finding] = PrometheusTelemetrySource(client).early_warnings()  # type: ignore[arg-type]
    assert finding.kind == "gpu_thermal" and finding.data["slowdown_temp_c"] == 89
    assert finding.data["at_slowdown"] is False  # 86 °C: near, not yet at, the A800's 89 °C
    h800 = Series({"Hostname": "n2", "gpu": "0", "modelName": "NVIDIA H800-SXM5-80GB"}, ((5.0, 94.0),))
    [finding] = PrometheusTelemetrySource(RuleClient({"DCGM_FI_DEV_GPU_TEMP >=": [h800]})).early_warnings()  # type: ignore[arg-type]
    assert finding.data["at_slowdown"] is True and finding.data["slowdown_temp_c"] == 90


def test_standing_xid_says_what_it_suggests() -> None:
    xid = Series({"Hostname": "n3", "gpu": "2"}, ((5.0, 63.0),))
    [finding] = PrometheusTelemetrySource(RuleClient({"DCGM_FI_DEV_XID_ERRORS > 0": [xid]})).early_warnings()  # type: ignore[arg-type]
    assert finding.kind == "gpu_xid" and finding.data["suggests"] == "gpu_row_remap_pending"
