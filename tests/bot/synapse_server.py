"""Start a real Synapse homeserver on 127.0.0.1 (SQLite, open registration, no federation)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Synapse:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 120.0) -> Synapse:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg_path = self.workdir / "homeserver.yaml"
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        subprocess.run(
            [sys.executable, "-m", "synapse.app.homeserver", "--generate-config", "--server-name", "localhost",
             "--report-stats=no", "-H", "localhost", "-c", str(cfg_path)],
            cwd=self.workdir, check=True, capture_output=True, env=env, timeout=120,
        )
        cfg = yaml.safe_load(cfg_path.read_text())
        cfg["listeners"] = [{"port": self.port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False,
                             "x_forwarded": False, "resources": [{"names": ["client"], "compress": False}]}]
        cfg["database"] = {"name": "sqlite3", "args": {"database": str(self.workdir / "homeserver.db")}}
        cfg["public_baseurl"] = self.url + "/"
        cfg["enable_registration"] = True
        cfg["enable_registration_without_verification"] = True
        cfg["trusted_key_servers"] = []
        cfg["suppress_key_server_warning"] = True
        cfg["federation_domain_whitelist"] = []
        cfg["url_preview_enabled"] = False
        cfg["presence"] = {"enabled": False}
        cfg["report_stats"] = False
        fast = {"per_second": 1000, "burst_count": 1000}
        for key in ("rc_message", "rc_registration", "rc_joins", "rc_invites", "rc_3pid_validation",
                    "rc_admin_redaction", "rc_room_creation"):
            cfg[key] = fast
        cfg["rc_login"] = {"address": fast, "account": fast, "failed_attempts": fast}
        cfg["rc_joins"] = {"local": fast, "remote": fast}
        cfg["rc_invites"] = {"per_room": fast, "per_user": fast, "per_issuer": fast}
        log_cfg = self.workdir / "log.yaml"
        log_cfg.write_text(yaml.safe_dump({
            "version": 1, "formatters": {"f": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
            "handlers": {"file": {"class": "logging.FileHandler", "filename": str(self.workdir / "synapse.log"),
                                  "formatter": "f"}},
            "root": {"level": "WARNING", "handlers": ["file"]}, "disable_existing_loggers": False,
        }))
        cfg["log_config"] = str(log_cfg)
        cfg_path.write_text(yaml.safe_dump(cfg))
        with open(self.workdir / "stderr.log", "wb") as stderr:  # the child keeps its own copy of the fd
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "synapse.app.homeserver", "-c", str(cfg_path)],
                cwd=self.workdir, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"synapse exited: {(self.workdir / 'stderr.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/_matrix/client/versions", timeout=2) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
        raise RuntimeError("synapse did not come up in time")

    def register(self, localpart: str, password: str = "pw-0123456789") -> dict[str, Any]:
        body = {"username": localpart, "password": password, "auth": {"type": "m.login.dummy"},
                "inhibit_login": False, "initial_device_display_name": localpart}
        return self._post("/_matrix/client/v3/register", body)

    def _post(self, path: str, body: dict[str, Any], token: str | None = None) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            return dict(json.loads(r.read()))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
