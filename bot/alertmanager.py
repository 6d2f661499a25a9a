"""Alertmanager webhook receiver: a second alert input beside channel watching.

Alertmanager POSTs its webhook JSON (version 4) to ``http://<host>:<port><path>``; each alert in
it becomes a ``bot.events.Alert`` handed to ``Bot.dispatch``, where the same fingerprint
de-duplication as for alert-channel posts applies (a repeated notification opens nothing new,
``resolved`` closes the incident).

Security: the receiver binds 127.0.0.1 by default and always requires
``Authorization: Bearer <token>`` with the token from the environment
(``CLUSTERDOC_ALERTMANAGER_TOKEN``); it refuses to start without one. Answers:

- 200 ``{"status": "ok", "alerts": n}``: accepted and dispatched;
- 400 body is not JSON; 401 no/malformed bearer token; 403 wrong token; 404 other path;
  405 not POST; 411 no Content-Length; 413 body too large; 415 not ``application/json``;
  422 JSON that is not an Alertmanager v4 payload (the body lists each bad field by path).

``GET /healthz`` (no auth) answers 200 for liveness probes. The core is ``handle(...)``, a pure
function of the request, so it is tested without sockets; ``start()`` serves it over HTTP.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bot.alerts import alerts_from_webhook
from bot.events import Alert, Event, Reply

log = logging.getLogger("clusterdoc.bot.alertmanager")

TOKEN_ENV = "CLUSTERDOC_ALERTMANAGER_TOKEN"
MAX_ALERTS = 5000
_LABEL_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NODE_LABELS = ("node", "hostname", "host", "nodename")


@dataclass
class AlertmanagerConfig:
    """``[bot.alertmanager]``: where the webhook listens and where its incidents are posted."""

    enabled: bool = False
    host: str = "127.0.0.1"  # put a TLS-terminating proxy in front to expose it beyond the host
    port: int = 9095
    path: str = "/alertmanager"
    channel: str = ""  # Slack channel id / Matrix room id that gets the incidents
    max_body_bytes: int = 1_048_576
    token: str = field(default="", repr=False)  # env CLUSTERDOC_ALERTMANAGER_TOKEN, never from the file


@dataclass(frozen=True)
class Response:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def validate_payload(payload: Any) -> list[str]:
    """Every problem of an Alertmanager v4 webhook payload, each naming its field path."""
    if not isinstance(payload, dict):
        return [f"body: expected a JSON object, got {type(payload).__name__}"]
    errors: list[str] = []
    version = payload.get("version")
    if version is not None and str(version) != "4":
        errors.append(f"version: {version!r} is not supported (Alertmanager webhook version 4)")
    status = payload.get("status")
    if status is not None and status not in ("firing", "resolved"):
        errors.append(f"status: {status!r} is not 'firing' or 'resolved'")
    for name in ("groupLabels", "commonLabels", "commonAnnotations"):
        if name in payload and not isinstance(payload[name], dict):
            errors.append(f"{name}: expected an object")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        errors.append("alerts: missing or not a list")
        return errors
    if not alerts:
        errors.append("alerts: empty list")
    if len(alerts) > MAX_ALERTS:
        errors.append(f"alerts: {len(alerts)} alerts in one payload (at most {MAX_ALERTS})")
        return errors
    for i, alert in enumerate(alerts):
        where = f"alerts[{i}]"
        if not isinstance(alert, dict):
            errors.append(f"{where}: expected an object")
            continue
        st = alert.get("status", status)
        if st not in ("firing", "resolved"):
            errors.append(f"{where}.status: {st!r} is not 'firing' or 'resolved'")
        labels = alert.get("labels")
        if not isinstance(labels, dict) or not labels:
            errors.append(f"{where}.labels: missing, empty or not an object")
        else:
            for key, value in labels.items():
                if not _LABEL_NAME_RE.match(str(key)):
                    errors.append(f"{where}.labels: {key!r} is not a valid label name")
                if not isinstance(value, str):
                    errors.append(f"{where}.labels.{key}: expected a string, got {type(value).__name__}")
        annotations = alert.get("annotations", {})
        if not isinstance(annotations, dict):
            errors.append(f"{where}.annotations: expected an object")
        fp = alert.get("fingerprint")
        if fp is not None and (not isinstance(fp, str) or not re.fullmatch(r"[0-9A-Za-z]{1,64}", fp)):
            errors.append(f"{where}.fingerprint: {fp!r} is not an alphanumeric id")
    return errors


def with_node_label(payload: dict[str, Any]) -> dict[str, Any]:
    """dcgm-exporter names the node in ``Hostname``; give alerts without a node label a ``node``
    one so the bot targets the node, not the exporter's address. Fingerprints are kept."""
    out = dict(payload)
    alerts = []
    for alert in payload.get("alerts") or []:
        labels = dict(alert.get("labels") or {})
        if not any(labels.get(k) for k in _NODE_LABELS) and labels.get("Hostname"):
            labels["node"] = labels["Hostname"]
        alerts.append({**alert, "labels": labels})
    out["alerts"] = alerts
    return out


class AlertmanagerReceiver:
    def __init__(self, config: AlertmanagerConfig, dispatch: Callable[[Event], list[Reply]], *,
                 env: Mapping[str, str] | None = None) -> None:
        token = config.token or (os.environ if env is None else env).get(TOKEN_ENV, "")
        if not token:
            raise ValueError(f"bot.alertmanager: {TOKEN_ENV} is not set; the webhook refuses to run without "
                             "a bearer token (set it here and in Alertmanager's http_config.authorization)")
        if not config.channel:
            raise ValueError("bot.alertmanager.channel: empty; name the channel/room that gets alert incidents")
        if not config.path.startswith("/"):
            raise ValueError(f"bot.alertmanager.path: {config.path!r} must start with '/'")
        self.config = config
        self.dispatch = dispatch
        self._token = token.encode()
        self._server: ThreadingHTTPServer | None = None
        self.received = 0  # alerts accepted since start
        self._lock = threading.Lock()

    # -- the core: a request in, a response out --------------------------------------------------
    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes | None) -> Response:
        path = path.split("?", 1)[0]
        h = {k.lower(): v for k, v in headers.items()}
        if path == "/healthz":
            return Response(200, {"status": "ok"}) if method in ("GET", "HEAD") else _error(405, "use GET", Allow="GET")
        if path != self.config.path:
            return _error(404, f"no such path {path!r}; Alertmanager webhooks go to {self.config.path}")
        if method != "POST":
            return _error(405, f"{method} not allowed; Alertmanager webhooks are POSTed", Allow="POST")
        auth = h.get("authorization", "")
        scheme, _, credentials = auth.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return _error(401, "missing or malformed Authorization header (expected 'Bearer <token>')",
                          **{"WWW-Authenticate": 'Bearer realm="clusterdoc"'})
        if not hmac.compare_digest(credentials.strip().encode(), self._token):
            return _error(403, "bearer token not accepted")
        if body is None:
            return _error(411, "Content-Length required")
        if len(body) > self.config.max_body_bytes:
            return _error(413, f"body of {len(body)} bytes exceeds the limit of {self.config.max_body_bytes}")
        ctype = h.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            return _error(415, f"Content-Type {ctype or '(none)'!r}: expected application/json")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return _error(400, f"body is not valid JSON: {exc}")
        problems = validate_payload(payload)
        if problems:
            return Response(422, {"status": "error", "error": "not an Alertmanager v4 webhook payload",
                                  "problems": problems[:50]})
        alerts = alerts_from_webhook(with_node_label(payload), channel=self.config.channel, platform="alertmanager")
        for alert in alerts:
            self._dispatch(alert)
        with self._lock:
            self.received += len(alerts)
        return Response(200, {"status": "ok", "alerts": len(alerts)})

    def _dispatch(self, alert: Alert) -> None:
        replies = self.dispatch(alert)
        for r in replies:  # the core answers alerts asynchronously; anything immediate is logged
            log.info("alert %s: %s", alert.fingerprint, r.text[:200])

    # -- HTTP -------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("receiver not started")
        port = int(self._server.server_address[1])
        return f"http://{self.config.host}:{port}{self.config.path}"

    def start(self) -> AlertmanagerReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = self.headers.get("Content-Length")
                body: bytes | None = None
                if length is not None:
                    try:
                        n = int(length)
                    except ValueError:
                        n = -1
                    if n < 0:
                        self._send(_error(400, f"bad Content-Length {length!r}"))
                        return
                    if n > receiver.config.max_body_bytes:  # do not read what we refuse
                        self.close_connection = True
                        self._send(_error(413, f"body of {n} bytes exceeds the limit of {receiver.config.max_body_bytes}"))
                        return
                    body = self.rfile.read(n)
                try:
                    response = receiver.handle(self.command, self.path, dict(self.headers.items()), body)
                except Exception as exc:  # a bot bug must not kill the listener; Alertmanager retries 5xx
                    log.exception("alertmanager webhook failed")
                    response = _error(500, f"internal error ({type(exc).__name__}); it is logged")
                self._send(response)

            do_POST = _serve
            do_GET = _serve
            do_HEAD = _serve
            do_PUT = _serve
            do_DELETE = _serve

            def _send(self, response: Response) -> None:
                payload = json.dumps(response.body).encode()
                self.send_response(response.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in response.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return  # no request lines in the log: they could carry tokens in query strings

        self._server = ThreadingHTTPServer((self.config.host, self.config.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="alertmanager-webhook", daemon=True).start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> AlertmanagerReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _error(status: int, message: str, **headers: str) -> Response:
    return Response(status, {"status": "error", "error": message}, dict(headers))
