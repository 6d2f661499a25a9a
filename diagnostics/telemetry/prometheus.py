"""The one module that talks to Prometheus's HTTP API (``/api/v1/query``, ``/api/v1/query_range``).

Stdlib HTTP only (no client library to pin). Every failure becomes a ``PrometheusError`` whose
message says which URL, which query and what went wrong (connection refused, HTTP status, the
``errorType``/``error`` Prometheus returned, a body that is not Prometheus JSON), so a caller can
show it to an operator as is. A bearer token, when used, comes from the caller (env), is sent
only in the ``Authorization`` header and never appears in a message.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from diagnostics.types import ClusterdocError

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class PrometheusError(ClusterdocError):
    """Prometheus could not be reached or refused/failed a query; the message says which and why."""


class PrometheusUnreachable(PrometheusError):
    """No answer at all (connection refused, DNS, timeout): nothing can be queried."""


@dataclass(frozen=True)
class Series:
    """One labelled series of a query result: ``values`` are (unix time, value) pairs, oldest first."""

    labels: dict[str, str]
    values: tuple[tuple[float, float], ...]

    @property
    def value(self) -> float:
        """The newest value (NaN for an empty series)."""
        return self.values[-1][1] if self.values else math.nan

    @property
    def t(self) -> float:
        return self.values[-1][0] if self.values else math.nan


@dataclass
class PrometheusClient:
    """A small client for one Prometheus server (or anything speaking its query API: Thanos, Mimir)."""

    base_url: str
    timeout_s: float = 10.0
    bearer_token: str = field(default="", repr=False)
    stats: dict[str, float] = field(default_factory=lambda: {"requests": 0, "seconds": 0.0, "series": 0})

    def __post_init__(self) -> None:
        parsed = urllib.parse.urlparse(self.base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise PrometheusError(f"prometheus url {self.base_url!r}: expected http(s)://host:port[/prefix]")
        self.base_url = self.base_url.rstrip("/")
        handlers: list[urllib.request.BaseHandler] = []
        if parsed.hostname in LOOPBACK_HOSTS:
            handlers.append(urllib.request.ProxyHandler({}))  # never send loopback traffic to a proxy
        self._opener = urllib.request.build_opener(*handlers)

    # -- the API -------------------------------------------------------------------------------
    def ready(self) -> bool:
        """True once the server answers ``/-/ready`` with 200 (it is up and has loaded its TSDB)."""
        try:
            with self._opener.open(self._request("/-/ready"), timeout=self.timeout_s) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def query(self, promql: str, *, at: float | None = None) -> list[Series]:
        """An instant query; a scalar result comes back as one series with no labels."""
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return self._series(self._get("/api/v1/query", params, promql), promql)

    def query_range(self, promql: str, start: float, end: float, step_s: float) -> list[Series]:
        if step_s <= 0:
            raise PrometheusError(f"query_range {promql!r}: step must be > 0 s (got {step_s:g})")
        if end < start:
            raise PrometheusError(f"query_range {promql!r}: end {end:.3f} is before start {start:.3f}")
        params = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step_s:g}"}
        return self._series(self._get("/api/v1/query_range", params, promql), promql)

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets (``/api/v1/targets``) with their health and last error."""
        data = self._get("/api/v1/targets", {"state": "active"}, "targets")
        targets = data.get("activeTargets") if isinstance(data, dict) else None
        return [t for t in targets or [] if isinstance(t, dict)]

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts the server's rules currently hold (pending or firing)."""
        data = self._get("/api/v1/alerts", {}, "alerts")
        alerts = data.get("alerts") if isinstance(data, dict) else None
        return [a for a in alerts or [] if isinstance(a, dict)]

    # -- plumbing ------------------------------------------------------------------------------
    def _request(self, path: str, params: Mapping[str, str] | None = None) -> urllib.request.Request:
        url = self.base_url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        headers = {"Accept": "application/json"}
        if self.bearer_token:
            headers["Authorization"] = f"Bearer {self.bearer_token}"
        return urllib.request.Request(url, headers=headers)

    def _get(self, path: str, params: Mapping[str, str], what: str) -> Any:
        where = f"prometheus {self.base_url}{path} ({what!r})"
        start = time.perf_counter()
        try:
            with self._opener.open(self._request(path, params), timeout=self.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            # Prometheus answers 400/422/503 with its JSON error body: surface its reason
            raw = exc.read()
            reason = _error_text(raw) or exc.reason
            raise PrometheusError(f"{where}: HTTP {exc.code}: {reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            why: object = getattr(exc, "reason", None) or exc
            raise PrometheusUnreachable(f"{where}: cannot connect: {why}") from None
        finally:
            self.stats["requests"] += 1
            self.stats["seconds"] += time.perf_counter() - start
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise PrometheusError(f"{where}: answer is not JSON (is this a Prometheus server?): {raw[:120]!r}") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            reason = _error_text(raw) or "status is not 'success'"
            raise PrometheusError(f"{where}: {reason}")
        return body.get("data")

    def _series(self, data: Any, promql: str) -> list[Series]:
        if not isinstance(data, dict) or "resultType" not in data:
            raise PrometheusError(f"prometheus {self.base_url}: query {promql!r}: no resultType in the answer")
        kind, result = data["resultType"], data.get("result")
        out: list[Series] = []
        try:
            if kind == "vector":
                for item in result or []:
                    t, v = item["value"]
                    out.append(Series(_labels(item.get("metric")), ((float(t), float(v)),)))
            elif kind == "matrix":
                for item in result or []:
                    values = tuple((float(t), float(v)) for t, v in item.get("values") or [])
                    out.append(Series(_labels(item.get("metric")), values))
            elif kind == "scalar":
                t, v = list(result or ())
                out.append(Series({}, ((float(t), float(v)),)))
            else:
                raise PrometheusError(f"prometheus {self.base_url}: query {promql!r}: result type {kind!r} "
                                      "cannot be read as numbers")
        except (KeyError, TypeError, ValueError) as exc:
            raise PrometheusError(f"prometheus {self.base_url}: query {promql!r}: malformed result ({exc})") from None
        self.stats["series"] += len(out)
        return out


def _labels(metric: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (metric or {}).items()} if isinstance(metric, dict) else {}


def _error_text(raw: bytes) -> str:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return ""
    if isinstance(body, dict) and body.get("error"):
        return f"{body.get('errorType', 'error')}: {body['error']}"
    return ""
