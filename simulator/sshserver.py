"""Serve a simulated cluster over real SSH on 127.0.0.1 (asyncssh; the only asyncssh module).

Every node gets its own port and its own host key (made per run); a client key, a known_hosts
file and an inventory are written into a run folder so ``SSHExecutor`` (paramiko) reaches the
simulated nodes exactly as it would real ones. All ports share one asyncio event loop in one
background thread, which keeps the cost of 512 nodes low.

Each exec request becomes ``sim.handle(host, command)``. Per-node behaviours make failures real
at the network level:

- ``ok``      normal SSH;
- ``stall``   TCP accepted but the SSH handshake never happens (what an unreachable node looks
              like; used automatically for nodes the simulator marks unreachable);
- ``hang``    SSH works but every command hangs until the client gives up;
- ``drop``    the connection is closed in the middle of a command;
- ``refuse``  the port is closed (connection refused).

Usage::

    with serve(sim) as server:           # or SimSSHServer(sim).start() / .close()
        executor = server.executor()     # SSHExecutor over server.inventory
        executor.run("node-01", "nvidia-smi -q -d CLOCK")

``python -m simulator.sshserver SCENARIO --workdir DIR`` serves a scenario from a separate
process (used by the benchmark so server and client do not share a GIL); it prints
``READY <inventory path>`` once listening and serves until stdin closes or it is terminated.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import asyncssh

from diagnostics.executors.batch import FLUSH_S as BATCH_FLUSH_S
from diagnostics.executors.batch import MAGIC as BATCH_MAGIC
from diagnostics.executors.batch import encode_begin, encode_end, encode_record, parse_script
from diagnostics.inventory import Inventory, NodeEntry, SSHDefaults
from diagnostics.types import CommandResult

if TYPE_CHECKING:
    from diagnostics.executors.ssh import SSHConfig, SSHExecutor

Behaviour = Literal["ok", "stall", "hang", "drop", "refuse"]
BEHAVIOURS: tuple[str, ...] = ("ok", "stall", "hang", "drop", "refuse")
LOOPBACK = "127.0.0.1"


class SimLike(Protocol):
    """What the server needs from a simulated cluster."""

    @property
    def hosts(self) -> list[str]: ...

    def handle(self, host: str, command: str) -> CommandResult: ...


def _sim_says_unreachable(sim: Any, host: str) -> bool:
    """Whether the simulator currently marks ``host`` unreachable (several spellings accepted)."""
    for name in ("is_unreachable", "unreachable"):
        fn = getattr(sim, name, None)
        if callable(fn):
            with contextlib.suppress(Exception):
                return bool(fn(host))
    node = getattr(sim, "node", None)
    if callable(node):
        with contextlib.suppress(Exception):
            state = node(host)
            return bool(getattr(state, "unreachable", False) or getattr(state, "reachable", True) is False)
    return False


@dataclass
class _Endpoint:
    host: str
    port: int
    key: asyncssh.SSHKey
    behaviour: Behaviour = "ok"
    options: Any = None
    listener: socket.socket | None = None
    reserved: socket.socket | None = None  # a refused node's port, bound (not listening) so no other node gets it
    accept_task: asyncio.Task[None] | None = None
    held: set[socket.socket] = field(default_factory=set)  # stalled sockets kept open
    conns: set[Any] = field(default_factory=set)


class SimSSHServer:
    def __init__(
        self,
        sim: SimLike,
        *,
        workdir: str | Path | None = None,
        port_base: int = 0,
        behaviours: Mapping[str, Behaviour] | None = None,
        hosts: list[str] | None = None,
        command_latency_s: float = 0.0,
    ) -> None:
        self.sim = sim
        # Added to every command (without using CPU): real tools take time (nvidia-smi -q ~0.1 s).
        self.command_latency_s = command_latency_s
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="clusterdoc-sim-"))
        self.port_base = port_base
        self.hosts = list(hosts if hosts is not None else sim.hosts)
        self._initial = dict(behaviours or {})
        for host, b in self._initial.items():
            self._check_behaviour(host, b)
        self._endpoints: dict[str, _Endpoint] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._executors: list[SSHExecutor] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.errors: deque[str] = deque(maxlen=100)  # server-side failures, for diagnosis
        self.inventory_path = self.workdir / "inventory.yaml"
        self.known_hosts_path = self.workdir / "known_hosts"
        self.client_key_path = self.workdir / "client_key"
        self.inventory: Inventory | None = None

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self) -> SimSSHServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        client_key = asyncssh.generate_private_key("ssh-ed25519", comment="clusterdoc-sim-client")
        client_key.write_private_key(str(self.client_key_path), format_name="openssh")
        os.chmod(self.client_key_path, 0o600)
        authorized = asyncssh.import_authorized_keys(client_key.export_public_key().decode())
        loop = asyncio.new_event_loop()
        self._loop = loop
        ready = threading.Event()

        def run_loop() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._thread = threading.Thread(target=run_loop, name="sim-sshd", daemon=True)
        self._thread.start()
        ready.wait()
        try:
            self._call(self._start_all(authorized), timeout=120)
        except BaseException:
            self.close()
            raise
        self._write_client_files()
        return self

    def close(self) -> None:
        for ex in self._executors:
            ex.close()
        self._executors.clear()
        loop = self._loop
        if loop is not None and loop.is_running():
            with contextlib.suppress(Exception):
                self._call(self._stop_all(), timeout=10)
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        if loop is not None and not loop.is_running():
            loop.close()
        self._loop = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> SimSSHServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- public helpers -------------------------------------------------------------------
    def port(self, host: str) -> int:
        return self._endpoints[host].port

    def behaviour(self, host: str) -> Behaviour:
        return self._endpoints[host].behaviour

    def set_behaviour(self, host: str, behaviour: Behaviour) -> None:
        """Change how ``host`` answers from now on (open connections of a refused node close)."""
        self._check_behaviour(host, behaviour)
        if host not in self._endpoints:
            raise KeyError(f"unknown simulated host {host!r}")
        self._call(self._apply_behaviour(self._endpoints[host], behaviour), timeout=10)

    def ssh_config(self, **overrides: Any) -> SSHConfig:
        from diagnostics.executors.ssh import SSHConfig

        cfg: dict[str, Any] = {"connect_timeout_s": 5.0, "command_timeout_s": 10.0, "use_agent": False}
        cfg.update(overrides)
        return SSHConfig(**cfg)

    def executor(self, **config_overrides: Any) -> SSHExecutor:
        """An SSHExecutor (paramiko) for these nodes; closed with the server."""
        from diagnostics.executors.ssh import SSHExecutor

        assert self.inventory is not None, "start() the server first"
        ex = SSHExecutor(self.inventory, self.ssh_config(**config_overrides))
        self._executors.append(ex)
        return ex

    # ---- internals ------------------------------------------------------------------------
    @staticmethod
    def _check_behaviour(host: str, behaviour: str) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"behaviour of {host}: {behaviour!r} is not one of {', '.join(BEHAVIOURS)}")

    def _call(self, coro: Any, timeout: float) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _start_all(self, authorized: Any) -> None:
        for i, host in enumerate(self.hosts):
            key = asyncssh.generate_private_key("ssh-ed25519")
            ep = _Endpoint(host, 0, key, self._initial.get(host, "ok"))
            ep.options = asyncssh.SSHServerConnectionOptions(
                server_host_keys=[key],
                authorized_client_keys=authorized,
                process_factory=lambda process, ep=ep: self._process(ep, process),
                allow_scp=False,
                keepalive_interval=0,
                login_timeout=120,  # OpenSSH's LoginGraceTime default: one process serves the whole fleet
                errors="surrogateescape",  # batch records are bytes: written as str, they come out unchanged
            )
            port = self.port_base + i if self.port_base else 0
            ep.port = port
            self._endpoints[host] = ep
            if ep.behaviour != "refuse":
                self._listen(ep)
            elif not ep.port:  # reserve a port number that nothing listens on
                # kept bound (connections to it are refused) so the OS cannot hand the same port
                # to a node started later, which would put two keys under one known_hosts name
                ep.reserved = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                ep.reserved.bind((LOOPBACK, 0))
                ep.port = ep.reserved.getsockname()[1]

    def _listen(self, ep: _Endpoint) -> None:
        if ep.reserved is not None:
            ep.reserved.close()
            ep.reserved = None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, ep.port))
        except OSError as exc:
            sock.close()
            raise OSError(f"cannot listen for {ep.host} on {LOOPBACK}:{ep.port}: {exc.strerror or exc}") from None
        sock.listen(128)
        sock.setblocking(False)
        ep.port = sock.getsockname()[1]
        ep.listener = sock
        ep.accept_task = asyncio.get_running_loop().create_task(self._accept_loop(ep, sock))

    async def _accept_loop(self, ep: _Endpoint, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, _ = await loop.sock_accept(listener)
            except (asyncio.CancelledError, OSError):
                return
            if ep.behaviour == "stall" or _sim_says_unreachable(self.sim, ep.host):
                self._spawn(self._hold(ep, sock))  # open and silent: the client's handshake times out
                continue
            if ep.behaviour == "refuse":
                sock.close()
                continue
            self._spawn(self._serve_connection(ep, sock))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _hold(self, ep: _Endpoint, sock: socket.socket) -> None:
        """Keep a stalled connection open without answering; forget it once the client leaves."""
        ep.held.add(sock)
        loop = asyncio.get_running_loop()
        try:
            while await loop.sock_recv(sock, 4096):
                pass
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            ep.held.discard(sock)
            with contextlib.suppress(OSError):
                sock.close()

    async def _serve_connection(self, ep: _Endpoint, sock: socket.socket) -> None:
        sock.setblocking(True)  # asyncssh wraps it in its own transport
        # Small packets (output, then exit status) must not wait for delayed ACKs (Nagle).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            conn = await asyncssh.run_server(sock, options=ep.options)
        except (TimeoutError, OSError, asyncssh.Error, EOFError) as exc:
            self.errors.append(f"{ep.host}: handshake failed: {type(exc).__name__}: {exc}")
            with contextlib.suppress(OSError):
                sock.close()
            return
        ep.conns.add(conn)
        with contextlib.suppress(Exception):
            await conn.wait_closed()
        ep.conns.discard(conn)

    async def _process(self, ep: _Endpoint, process: Any) -> None:
        command = process.command or ""
        if ep.behaviour == "hang" or _sim_says_unreachable(self.sim, ep.host):
            # An open connection to a node that stopped answering: the command never returns.
            with contextlib.suppress(Exception):
                await process.channel.wait_closed()  # until the client gives up
            return
        if not command:
            process.stderr.write("simulated node: interactive shells are not supported\n")
            process.exit(1)
            return
        if command.startswith(BATCH_MAGIC):
            await self._batch(ep, process, command)
            return
        if self.command_latency_s > 0:
            await asyncio.sleep(self.command_latency_s)
        try:
            result = self.sim.handle(ep.host, command)
            stdout, stderr = result.stdout, result.stderr
            code = result.exit_code if result.exit_code is not None else 255
            if result.transport != "ok":  # the simulator says this node cannot answer now
                with contextlib.suppress(Exception):
                    await process.channel.wait_closed()
                return
        except Exception as exc:  # a simulator bug becomes that command's failure, not a dead server
            stdout, stderr, code = "", f"simulator error: {type(exc).__name__}: {exc}\n", 255
        if ep.behaviour == "drop":
            process.stdout.write(stdout[: max(1, len(stdout) // 2)])
            await asyncio.sleep(0.01)
            process.channel.get_connection().abort()
            return
        process.stdout.write(stdout)
        if stderr:
            process.stderr.write(stderr)
        process.exit(code)

    async def _batch(self, ep: _Endpoint, process: Any, script_text: str) -> None:
        """Play a clusterdoc batch script (``diagnostics.executors.batch``) as a node's shell would:
        each command through ``sim.handle`` in order, a command the simulator makes hang stopped
        after its limit as ``timeout(1)`` would (exit 124, the rest of its check skipped), and
        the same framed records, sent as the script sends them (once ``FLUSH_S`` has passed since
        the last send, and at the end). The script itself is tested against real shells."""
        script = parse_script(script_text)
        if script is None:
            process.stderr.write("sh: syntax error: not a batch this node understands\n")
            process.exit(2)
            return
        out = process.stdout
        loop = asyncio.get_running_loop()
        out.write(_raw(encode_begin(script.boundary)))
        pending: list[bytes] = []  # records the script holds until FLUSH_S has passed since it last sent
        last = loop.time()

        def flush() -> None:
            nonlocal last
            last = loop.time()
            if pending:
                out.write(_raw(b"".join(pending)))
                pending.clear()

        try:
            for group in script.groups:
                for step in group:
                    if process.is_closing():
                        return
                    if self.command_latency_s > 0:
                        await asyncio.sleep(self.command_latency_s)
                    try:
                        result = self.sim.handle(ep.host, step.command)
                    except Exception as exc:
                        result = CommandResult(ep.host, step.command, 255, "",
                                               f"simulator error: {type(exc).__name__}: {exc}\n")
                    hung = result.transport != "ok"
                    if hung:  # the tool never returns: timeout(1) stops it at the limit
                        await asyncio.sleep(step.timeout_s)
                        code, stdout, stderr = 124, b"", b""
                    else:
                        code = result.exit_code if result.exit_code is not None else 255
                        stdout = result.stdout.encode("utf-8", "surrogateescape")
                        stderr = result.stderr.encode("utf-8", "surrogateescape")
                    record = encode_record(script.boundary, script.half, step.index, code, hung,
                                           round(step.timeout_s * 100) if hung else 0, stdout, stderr)
                    if ep.behaviour == "drop":
                        pending.append(record[: max(1, len(record) // 2)])
                        flush()
                        await asyncio.sleep(0.01)
                        process.channel.get_connection().abort()
                        return
                    pending.append(record)
                    if loop.time() - last >= BATCH_FLUSH_S:
                        flush()
                    if hung:
                        break
            pending.append(encode_end(script.boundary))
            flush()
            process.exit(0)
        except (OSError, asyncssh.Error):  # the client went away
            return

    async def _apply_behaviour(self, ep: _Endpoint, behaviour: Behaviour) -> None:
        previous, ep.behaviour = ep.behaviour, behaviour
        if behaviour == "refuse" and ep.listener is not None:
            await self._stop_endpoint(ep)
        elif behaviour != "refuse" and ep.listener is None:
            self._listen(ep)
        if previous == "stall" and behaviour != "stall":
            self._release_held(ep)
        if behaviour in ("stall", "drop") and previous == "ok":
            for conn in list(ep.conns):  # reused connections must feel the new behaviour too
                conn.abort()

    @staticmethod
    def _release_held(ep: _Endpoint) -> None:
        for sock in list(ep.held):  # the _hold task sees EOF, closes and forgets the socket
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    async def _stop_endpoint(self, ep: _Endpoint) -> None:
        if ep.accept_task is not None:
            ep.accept_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await ep.accept_task
            ep.accept_task = None
        if ep.listener is not None:
            ep.listener.close()
            ep.listener = None
        for conn in list(ep.conns):
            conn.abort()
        ep.conns.clear()
        self._release_held(ep)
        if ep.reserved is not None:
            ep.reserved.close()
            ep.reserved = None

    async def _stop_all(self) -> None:
        for ep in self._endpoints.values():
            await self._stop_endpoint(ep)
        tasks = list(self._tasks)
        for task in tasks:  # handshakes still in progress
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0)

    def _write_client_files(self) -> None:
        lines = []
        for ep in self._endpoints.values():
            lines.append(f"[{LOOPBACK}]:{ep.port} {ep.key.export_public_key().decode().split()[0]} "
                         f"{ep.key.export_public_key().decode().split()[1]}\n")
        self.known_hosts_path.write_text("".join(lines), encoding="utf-8")
        scenario = getattr(self.sim, "scenario", None)
        cluster = getattr(scenario, "cluster", None)
        self.inventory = Inventory(
            cluster=str(getattr(scenario, "id", "simulated")),
            nodes=[NodeEntry(h, LOOPBACK, self._endpoints[h].port) for h in self.hosts],
            scheduler=str(getattr(cluster, "scheduler", "slurm")),
            gpu=getattr(cluster, "gpu", None),
            gpus_per_node=getattr(cluster, "gpus_per_node", None),
            ssh=SSHDefaults(
                user=os.environ.get("USER") or "clusterdoc",
                key_file=self.client_key_path,
                known_hosts=self.known_hosts_path,
            ),
            source=self.inventory_path,
        )
        self.inventory.save(self.inventory_path)


def _raw(data: bytes) -> str:
    """Bytes as the str the session's utf-8/surrogateescape encoding turns back into them."""
    return data.decode("utf-8", "surrogateescape")


class EchoCluster:
    """A stand-in cluster whose nodes answer every command with one short line (transport
    benchmarks and tests that need no simulated hardware)."""

    def __init__(self, nodes: int, prefix: str = "node") -> None:
        width = max(2, len(str(nodes)))
        self.hosts = [f"{prefix}-{i:0{width}d}" for i in range(1, nodes + 1)]

    def handle(self, host: str, command: str) -> CommandResult:
        return CommandResult(host, command, 0, f"{host}: ok\n")


@contextlib.contextmanager
def serve(
    sim: SimLike,
    *,
    workdir: str | Path | None = None,
    port_base: int = 0,
    behaviours: Mapping[str, Behaviour] | None = None,
    command_latency_s: float = 0.0,
) -> Iterator[SimSSHServer]:
    """Serve ``sim`` over SSH for the duration of the ``with`` block."""
    server = SimSSHServer(
        sim, workdir=workdir, port_base=port_base, behaviours=behaviours, command_latency_s=command_latency_s
    ).start()
    try:
        yield server
    finally:
        server.close()


def _main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m simulator.sshserver")
    parser.add_argument("scenario", nargs="?", help="scenario YAML (omit with --echo-nodes)")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--port-base", type=int, default=0)
    parser.add_argument("--echo-nodes", type=int, default=0, help="serve N echo nodes instead of a scenario")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every command")
    args = parser.parse_args(argv)
    sim: Any
    if args.echo_nodes:
        sim = EchoCluster(args.echo_nodes)
    elif args.scenario:
        from simulator import SimCluster  # type: ignore[attr-defined,unused-ignore]
        from simulator.scenario import load_scenario

        sim = SimCluster(load_scenario(args.scenario))
    else:
        parser.error("give a scenario or --echo-nodes N")
    with serve(sim, workdir=args.workdir, port_base=args.port_base,
               command_latency_s=args.latency_ms / 1000.0) as server:
        print(f"READY {server.inventory_path}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            sys.stdin.read()  # serve until the parent closes our stdin (or kills us)
        for line in server.errors:
            print(f"server error: {line}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
