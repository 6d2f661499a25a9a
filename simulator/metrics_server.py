"""Serve each simulated node's ``/metrics`` on 127.0.0.1 exactly as dcgm-exporter would.

Two layouts, both scraped by a real Prometheus:

- one port for the whole cluster (default, cheap at 512+ nodes): ``/nodes/<node>/metrics``;
  ``scrape_config()`` gives each node its own target via the ``__metrics_path__`` label;
- one port per node (``per_node_ports=True``), each answering ``/metrics``, like a fleet of real
  exporters on ``<node>:9400``.

All listening sockets share one selector thread; requests are answered on short-lived threads.
With ``follow_wallclock`` the simulated clock advances with real time on each scrape, so the
telemetry noise moves between scrapes as a live cluster's does. A node the simulator marks
unreachable answers 503, so Prometheus reports its target down.
"""

from __future__ import annotations

import json
import selectors
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # Prometheus text exposition format
EXPORTER_PORT = 9400  # dcgm-exporter's default; only used in the instance label


class _QuietServer(ThreadingHTTPServer):
    """A scraper that hangs up mid-request (timeout, shutdown) is normal, not a stack trace."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


@dataclass(frozen=True)
class Target:
    node: str
    address: str  # host:port to scrape
    metrics_path: str

    @property
    def url(self) -> str:
        return f"http://{self.address}{self.metrics_path}"


class MetricsServer:
    def __init__(self, sim: Any, *, host: str = "127.0.0.1", port: int = 0, per_node_ports: bool = False,
                 follow_wallclock: bool = False, time_scale: float = 1.0, cache_bodies: bool = False) -> None:
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError(f"metrics server host {host!r}: the simulator serves loopback only")
        if time_scale <= 0:
            raise ValueError(f"time_scale {time_scale!r}: must be > 0")
        self.sim = sim
        self.host = "127.0.0.1" if host == "localhost" else host
        self.port = port
        self.per_node_ports = per_node_ports
        self.follow_wallclock = follow_wallclock
        self.time_scale = time_scale
        # reuse a node's body while simulated time stands still (benchmarks; nothing may mutate the sim)
        self.cache_bodies = cache_bodies
        self._bodies: dict[str, tuple[float, str]] = {}
        self.scrapes: dict[str, int] = {}
        self._servers: dict[str, ThreadingHTTPServer] = {}  # node ('' = shared) -> server
        self._lock = threading.Lock()
        self._t0 = 0.0
        self._sim_t0 = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> MetricsServer:
        handler = self._handler()
        try:
            if self.per_node_ports:
                for i, node in enumerate(self.sim.hosts):
                    port = self.port + i if self.port else 0
                    self._servers[node] = self._bind(port, handler)
            else:
                self._servers[""] = self._bind(self.port, handler)
        except OSError:
            self._close_sockets()
            raise
        self._t0 = time.monotonic()
        self._sim_t0 = float(getattr(self.sim, "time_s", 0.0))
        self._thread = threading.Thread(target=self._loop, name="sim-metrics", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close_sockets()

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what Prometheus needs -------------------------------------------------------------------
    def targets(self) -> list[Target]:
        out = []
        for node in self.sim.hosts:
            if self.per_node_ports:
                out.append(Target(node, f"{self.host}:{self._servers[node].server_address[1]}", "/metrics"))
            else:
                out.append(Target(node, f"{self.host}:{self._servers[''].server_address[1]}", f"/nodes/{node}/metrics"))
        return out

    def static_configs(self) -> list[dict[str, Any]]:
        """Prometheus ``static_configs`` (also valid file_sd content): one target per node, with
        ``instance`` set to ``<node>:9400`` as a real exporter fleet would have it."""
        out = []
        for t in self.targets():
            labels = {"instance": f"{t.node}:{EXPORTER_PORT}"}
            if not self.per_node_ports:
                labels["__metrics_path__"] = t.metrics_path
            out.append({"targets": [t.address], "labels": labels})
        return out

    def scrape_config(self, job: str = "dcgm-exporter", interval: str = "15s") -> dict[str, Any]:
        return {"job_name": job, "scrape_interval": interval, "scrape_timeout": interval,
                "metrics_path": "/metrics", "static_configs": self.static_configs()}

    def write_file_sd(self, path: str | Path) -> Path:
        """The targets as a Prometheus ``file_sd_configs`` JSON file (reloaded without a restart)."""
        path = Path(path)
        path.write_text(json.dumps(self.static_configs(), indent=1))
        return path

    # -- internals -------------------------------------------------------------------------------
    def _bind(self, port: int, handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
        server = _QuietServer((self.host, port), handler, bind_and_activate=True)
        server.daemon_threads = True
        server.socket.setblocking(False)
        return server

    def _close_sockets(self) -> None:
        for server in self._servers.values():
            server.server_close()

    def _loop(self) -> None:
        with selectors.DefaultSelector() as sel:
            for server in self._servers.values():
                sel.register(server.socket, selectors.EVENT_READ, server)
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=0.2):
                    server = key.data
                    try:
                        server._handle_request_noblock()  # accept + hand to a request thread
                    except OSError:
                        continue

    def _node_for(self, server: Any, path: str) -> str | None:
        path = unquote(path.split("?", 1)[0])
        if self.per_node_ports:
            for node, srv in self._servers.items():
                if srv is server:
                    return node if path in ("/metrics", "/metrics/") else None
            return None
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "nodes" and parts[2] == "metrics":
            return parts[1]
        return None

    def render(self, node: str) -> tuple[int, str]:
        """(HTTP status, body) for one node's scrape."""
        if node not in self.sim.nodes:
            return 404, f"no simulated node {node!r}\n"
        with self._lock:
            if self.follow_wallclock:
                due = self._sim_t0 + (time.monotonic() - self._t0) * self.time_scale - self.sim.time_s
                if due > 0:
                    self.sim.advance(due)
            self.scrapes[node] = self.scrapes.get(node, 0) + 1
        if getattr(self.sim.nodes[node], "unreachable", False):
            return 503, f"{node}: node unreachable\n"
        if self.cache_bodies:
            now = float(self.sim.time_s)
            hit = self._bodies.get(node)
            if hit is None or hit[0] != now:
                hit = (now, self.sim.dcgm_metrics(node))
                self._bodies[node] = hit
            return 200, hit[1]
        return 200, self.sim.dcgm_metrics(node)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                node = owner._node_for(self.server, self.path)
                if node is None:
                    hint = "/metrics" if owner.per_node_ports else "/nodes/<node>/metrics"
                    status, body = 404, f"not found: {self.path}; metrics are at {hint}\n"
                else:
                    status, body = owner.render(node)
                payload = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


@contextmanager
def serve_metrics(sim: Any, **kwargs: Any) -> Iterator[MetricsServer]:
    server = MetricsServer(sim, **kwargs).start()
    try:
        yield server
    finally:
        server.close()


def _main(argv: list[str] | None = None) -> int:
    """``python -m simulator.metrics_server SCENARIO [--port 9400] [--file-sd targets.json]``:
    serve a scenario's dcgm-exporter endpoints and print the Prometheus scrape config for them."""
    import argparse
    import sys

    import yaml

    parser = argparse.ArgumentParser(prog="python -m simulator.metrics_server", description=_main.__doc__)
    parser.add_argument("scenario", help="scenario YAML")
    parser.add_argument("--port", type=int, default=0, help="listening port (default: a free one)")
    parser.add_argument("--per-node-ports", action="store_true", help="one port per node, /metrics on each")
    parser.add_argument("--interval", default="15s", help="scrape interval written into the printed config")
    parser.add_argument("--file-sd", help="also write the targets as a file_sd JSON file here")
    args = parser.parse_args(argv)
    from simulator import SimCluster
    from simulator.scenario import ScenarioError

    try:
        sim = SimCluster(args.scenario)
    except (ScenarioError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        server = MetricsServer(sim, port=args.port, per_node_ports=args.per_node_ports, follow_wallclock=True).start()
    except OSError as exc:
        print(f"error: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        if args.file_sd:
            server.write_file_sd(args.file_sd)
        sys.stdout.write(yaml.safe_dump({"scrape_configs": [server.scrape_config(interval=args.interval)]},
                                        sort_keys=False))
        print(f"# serving {len(sim.hosts)} nodes; Ctrl-C stops", file=sys.stderr, flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
