"""A local stand-in for Slack's Web API and a signed-request driver (tests and the ack benchmark).

``SlackStandIn`` answers the Web API methods the adapter uses on 127.0.0.1, records every call,
and can be told to fail the next calls of a method (HTTP 429 with Retry-After, or 500).
``signed_post`` sends a request to the Bolt app exactly as Slack would: ``X-Slack-Signature`` =
``v0=`` HMAC-SHA256 of ``v0:<timestamp>:<body>`` with the signing secret.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class SlackStandIn:
    def __init__(self, bot_user: str = "U_BOT", bot_id: str = "B_BOT", groups: dict[str, list[str]] | None = None) -> None:
        self.bot_user, self.bot_id = bot_user, bot_id
        self.groups = groups or {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.failures: dict[str, list[int]] = {}  # method -> statuses to answer next
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/api/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def fail_next(self, method: str, *statuses: int) -> None:
        with self._lock:
            self.failures.setdefault(method, []).extend(statuses)

    def calls_of(self, method: str) -> list[dict[str, Any]]:
        with self._lock:
            return [params for m, params in self.calls if m == method]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _answer(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            pending = self.failures.get(method)
            if pending:
                return pending.pop(0), {"ok": False, "error": "ratelimited" if pending else "internal_error"}
            ts = f"{1700000000 + next(self._ts)}.000100"
            self.calls.append((method, {**params, "_ts": ts}))  # _ts: the ts this call was answered with
        if method == "auth.test":
            return 200, {"ok": True, "user_id": self.bot_user, "bot_id": self.bot_id, "team_id": "T1", "user": "clusterdoc"}
        if method == "chat.postMessage":
            return 200, {"ok": True, "channel": params.get("channel"), "ts": ts, "message": {"text": params.get("text")}}
        if method == "chat.postEphemeral":
            return 200, {"ok": True, "message_ts": ts}
        if method == "files.getUploadURLExternal":
            fid = f"F{ts.split('.')[0]}"
            return 200, {"ok": True, "upload_url": f"http://127.0.0.1:{self.port}/upload/{fid}", "file_id": fid}
        if method == "files.completeUploadExternal":
            files = params.get("files")
            parsed = json.loads(files) if isinstance(files, str) else files or []
            return 200, {"ok": True, "files": [{"id": f.get("id"), "title": f.get("title", "")} for f in parsed]}
        if method == "usergroups.users.list":
            return 200, {"ok": True, "users": self.groups.get(str(params.get("usergroup")), [])}
        return 200, {"ok": True}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if self.path.startswith("/upload/"):
                    with standin._lock:
                        standin.calls.append(("upload", {"path": self.path, "bytes": len(raw), "head": raw[:8]}))
                    self._reply(200, b"OK", "text/plain")
                    return
                method = self.path.split("/api/", 1)[-1].split("?")[0]
                ctype = self.headers.get("Content-Type", "")
                if "json" in ctype:
                    params = json.loads(raw or b"{}")
                else:
                    params = {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode()).items()}
                status, body = standin._answer(method, params)
                extra = {"Retry-After": "0"} if status == 429 else {}
                self._reply(status, json.dumps(body).encode(), "application/json", extra)

            def _reply(self, status: int, payload: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


class _Server(ThreadingHTTPServer):
    request_queue_size = 256
    daemon_threads = True


def sign(secret: str, body: str, timestamp: int) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_post(
    url: str, body: str, secret: str, *, content_type: str, timestamp: int | None = None,
    signature: str | None = None, timeout: float = 10.0,
) -> tuple[int, str, float]:
    """POST like Slack does; returns (status, body, seconds until the response arrived)."""
    ts = int(time.time()) if timestamp is None else timestamp
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": signature or sign(secret, body, ts),
    }
    req = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode(), time.perf_counter() - start
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), time.perf_counter() - start


def slash_command_body(command: str, text: str, user: str, channel: str) -> str:
    return urllib.parse.urlencode({
        "token": "legacy", "team_id": "T1", "team_domain": "t", "channel_id": channel, "channel_name": "ops",
        "user_id": user, "user_name": user.lower(), "command": command, "text": text,
        "api_app_id": "A1", "response_url": "http://127.0.0.1:9/none", "trigger_id": "1.2.3",
    })


_event_ids = itertools.count(1)


def event_body(event: dict[str, Any]) -> str:
    return json.dumps({
        "token": "legacy", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
        "event_id": f"Ev{next(_event_ids):06d}", "event_time": int(time.time()), "event": event,
        "authorizations": [{"team_id": "T1", "user_id": "U_BOT", "is_bot": True}],
    })
