"""Start a real Prometheus (and Alertmanager) on 127.0.0.1 in a temporary folder.

Used by the integration tests, the scale benchmark and local demos: the Debian packages
``prometheus`` and ``prometheus-alertmanager`` (or upstream binaries on PATH) are enough.
Each process gets a free port, its own storage under the run folder, and is stopped (then
killed if needed) on ``close()``. A process that dies at start raises ``ServiceError`` with the
tail of its log, so a bad config is reported, not waited on.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from diagnostics.types import ClusterdocError

PROMETHEUS_BINARIES = ("prometheus",)
ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")  # Debian's name, upstream's name


class ServiceError(ClusterdocError):
    """A local Prometheus/Alertmanager could not be started; the message says why."""


def find_binary(names: tuple[str, ...]) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Process:
    name = "service"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, argv: list[str], timeout_s: float) -> None:
        log = open(self.log_path, "wb")  # noqa: SIM115 - the process owns it until close()
        self._log = log
        # everything it talks to is on loopback: a proxy from the environment must not intercept it
        env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost,::1"
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + timeout_s
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.close()
                raise ServiceError(f"{self.name} exited with status {self.proc.returncode} at start: {self.log_tail()}")
            with contextlib.suppress(urllib.error.URLError, OSError), \
                    opener.open(f"{self.url}/-/ready", timeout=1) as resp:
                if resp.status == 200:
                    return
            time.sleep(0.1)
        self.close()
        raise ServiceError(f"{self.name} not ready on {self.url} within {timeout_s:g} s: {self.log_tail()}")

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:].strip() or "(empty log)"
        except OSError:
            return "(no log)"

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        log = getattr(self, "_log", None)
        if log is not None:
            log.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalPrometheus(_Process):
    """``prometheus`` with the given scrape configs, rule files and Alertmanager, on a free port."""

    name = "prometheus"

    def __init__(self, scrape_configs: list[dict[str, Any]], *, workdir: str | Path | None = None,
                 rule_files: Sequence[str | Path] = (), alertmanager_url: str = "",
                 scrape_interval: str = "1s", evaluation_interval: str = "1s", binary: str | None = None,
                 timeout_s: float = 30.0, extra_args: list[str] | None = None) -> None:
        binary = binary or find_binary(PROMETHEUS_BINARIES)
        if binary is None:
            raise ServiceError("prometheus binary not found on PATH (Debian: apt-get install prometheus)")
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="clusterdoc-prom-")
        root = Path(workdir or self._tmp.name)  # type: ignore[union-attr]
        root.mkdir(parents=True, exist_ok=True)
        super().__init__(root)
        config: dict[str, Any] = {
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
            "scrape_configs": scrape_configs,
        }
        if rule_files:
            config["rule_files"] = [str(p) for p in rule_files]
        if alertmanager_url:
            config["alerting"] = {"alertmanagers": [{"static_configs": [
                {"targets": [alertmanager_url.split("://", 1)[-1].rstrip("/")]}]}]}
        self.config_path = root / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        argv = [binary, f"--config.file={self.config_path}", f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=2h",
                "--log.level=warn", *(extra_args or [])]
        self._spawn(argv, timeout_s)

    def close(self) -> None:
        super().close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


class LocalAlertmanager(_Process):
    """``alertmanager`` routing every alert to one webhook, with a bearer token from a file."""

    name = "alertmanager"

    def __init__(self, webhook_url: str, *, token: str = "", workdir: str | Path | None = None,
                 group_by: tuple[str, ...] = ("alertname", "node", "gpu"), group_wait: str = "1s",
                 binary: str | None = None, timeout_s: float = 30.0) -> None:
        binary = binary or find_binary(ALERTMANAGER_BINARIES)
        if binary is None:
            raise ServiceError("alertmanager binary not found on PATH (Debian: apt-get install prometheus-alertmanager)")
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="clusterdoc-am-")
        root = Path(workdir or self._tmp.name)  # type: ignore[union-attr]
        root.mkdir(parents=True, exist_ok=True)
        super().__init__(root)
        webhook: dict[str, Any] = {"url": webhook_url, "send_resolved": True}
        if token:
            token_file = root / "webhook.token"
            token_file.write_text(token)
            token_file.chmod(0o600)
            webhook["http_config"] = {"authorization": {"type": "Bearer", "credentials_file": str(token_file)}}
        config = {
            "route": {"receiver": "clusterdoc", "group_by": list(group_by), "group_wait": group_wait,
                      "group_interval": "5s", "repeat_interval": "1h"},
            "receivers": [{"name": "clusterdoc", "webhook_configs": [webhook]}],
        }
        self.config_path = root / "alertmanager.yml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        argv = [binary, f"--config.file={self.config_path}", f"--storage.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=", "--log.level=warn"]
        self._spawn(argv, timeout_s)

    def close(self) -> None:
        super().close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
