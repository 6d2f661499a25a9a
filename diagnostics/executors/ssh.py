"""SSH executor on paramiko: the only module that imports paramiko.

- Key authentication only (a key file, then the SSH agent); the key passphrase comes from the
  environment variable named by ``SSHConfig.passphrase_env`` and is never logged.
- Host keys are checked against known_hosts. An unknown key is refused unless
  ``accept_new_host_keys`` (then it is trusted on first use and appended to known_hosts); a key
  that differs from the recorded one is always refused.
- One connection per node, reused by every command (thread-safe; reconnects once when the
  transport died), or a fresh connection per command with ``reuse_connections=False``.
- Connect and command timeouts; output capped per stream.
- Timeouts measure the node, not this machine: a command's timeout counts from when its exec
  request went out (connecting has its own timeout), and the node is blamed only while this
  process is keeping up (``fanout.ClientLag``): had the reply come, it would have been read.
  When this process is so far behind that a wait passes ``overload_cap_s(timeout)`` of wall time
  without that, the result is ``not_checked`` ("not checked: clusterdoc was overloaded"), never
  a timeout or an unreachable node. The same holds for the SSH handshake, login and session open.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import paramiko

from diagnostics.executors._buffer import DEFAULT_OUTPUT_CAP, CappedBuffer
from diagnostics.executors.batch import (
    BatchCollector,
    BatchDecoder,
    BatchItem,
    BatchOutcome,
    BatchProtocolError,
    BatchRecord,
    KeepGoing,
    build_script,
    check_items,
    half_cap,
    new_boundary,
)
from diagnostics.executors.fanout import (
    OVERLOADED,
    ClientLag,
    HostClock,
    Stopwatch,
    client_lag,
    current_host_clock,
    overload_cap_s,
)
from diagnostics.inventory import Inventory
from diagnostics.types import CommandResult

log = logging.getLogger(__name__)
# paramiko logs every dropped or stalled connection with a traceback; those are results here
# (status unreachable/timeout), so keep them off a terminal that configured no logging.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


_GATHER_S = 0.1  # a batch's reader waits this long after each read for more records
_IDLE_POLL_S = 5.0  # how often a connection's reader thread looks up from an idle socket


@dataclass
class SSHConfig:
    connect_timeout_s: float = 10.0  # TCP connect + SSH handshake + auth, each
    command_timeout_s: float = 30.0  # used when run() is not given a timeout
    known_hosts: str | Path | None = None  # overrides the inventory's; default ~/.ssh/known_hosts
    accept_new_host_keys: bool = False
    key_file: str | Path | None = None  # overrides the inventory's
    passphrase_env: str = "CLUSTERDOC_SSH_KEY_PASSPHRASE"
    use_agent: bool = True
    reuse_connections: bool = True
    output_cap: int = DEFAULT_OUTPUT_CAP  # bytes kept per stream per command
    keepalive_s: int = 30
    max_idle_s: float = 300.0  # reused connections idle this long are closed (0: never)
    batch_sweeps: bool = True  # a sweep sends each node its checks as one script (False: one channel per command)


class _ConnectError(Exception):
    """Could not open an authenticated connection (message says why and how to fix).
    ``transport``: "unreachable", or "not_checked" when this process was too far behind."""

    def __init__(self, message: str, transport: str = "unreachable") -> None:
        super().__init__(message)
        self.transport = transport
        self.dropped = False  # the node closed the connection before the login was complete


def _overloaded(host: str, what: str, watch: Stopwatch) -> str:
    return (f"{OVERLOADED}: {what} on {host} took {watch.wall():.1f}s, but this process was running "
            f"{watch.lag():.1f}s late meanwhile (the node is not blamed)")


def _closed_by_peer(failure: BaseException | None) -> bool:
    """The node closed the connection (paramiko wraps the EOF, e.g. while reading the banner)."""
    return failure is None or any(isinstance(e, (EOFError, ConnectionResetError))
                                  for e in (failure, failure.__cause__, failure.__context__))


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) or "timeout" in str(exc).lower()


@dataclass
class SSHStats:
    connects: int = 0
    reconnects: int = 0
    commands: int = 0
    batches: int = 0  # exec requests that carried a batch of commands (their commands are counted too)


def fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class _HostKeyStore:
    """known_hosts loaded once, shared by all connections; appends new keys under a lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.keys = paramiko.HostKeys()
        self._lock = threading.Lock()
        if path.exists():
            try:
                self.keys.load(str(path))
            except (OSError, paramiko.SSHException) as exc:
                raise ValueError(f"cannot read known_hosts {path}: {exc}") from exc
        # paramiko's lookup scans every entry: with thousands of nodes, connecting them all is
        # quadratic. Plain (unhashed) names are indexed here; hashed files use paramiko's lookup.
        entries = getattr(self.keys, "_entries", None)
        self._index: dict[str, dict[str, paramiko.PKey]] | None = None
        if entries is not None and not any(h.startswith("|") for e in entries for h in e.hostnames):
            self._index = {}
            for entry in entries:
                for host in entry.hostnames:
                    self._index.setdefault(host, {}).setdefault(entry.key.get_name(), entry.key)

    def _lookup(self, name: str) -> Mapping[str, paramiko.PKey] | None:
        if self._index is not None:
            return self._index.get(name)
        return self.keys.lookup(name)

    def check(self, name: str, node: str, key: paramiko.PKey, accept_new: bool) -> None:
        with self._lock:
            known = self._lookup(name)
            if known is None or key.get_name() not in known:
                if known is not None and len(known):  # host known under another key type
                    recorded = next(iter(known.values()))
                    raise _ConnectError(self._mismatch(name, node, recorded, key))
                if not accept_new:
                    raise _ConnectError(
                        f"host key of {node} ({name}) is not in known_hosts {self.path}; refusing to connect. "
                        f"Check the key ({key.get_name()} {fingerprint(key)}) and add it, e.g. "
                        f"`ssh-keyscan {_keyscan_args(name)} >> {self.path}`, or set "
                        "accept_new_host_keys to trust new hosts on first use."
                    )
                self.keys.add(name, key.get_name(), key)
                if self._index is not None:
                    self._index.setdefault(name, {}).setdefault(key.get_name(), key)
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(f"{name} {key.get_name()} {key.get_base64()}\n")
                log.warning("accepted new host key for %s (%s): %s", node, name, fingerprint(key))
                return
            recorded = known[key.get_name()]
            if recorded != key:
                raise _ConnectError(self._mismatch(name, node, recorded, key))

    def _mismatch(self, name: str, node: str, recorded: paramiko.PKey, offered: paramiko.PKey) -> str:
        return (
            f"HOST KEY MISMATCH for {node} ({name}): known_hosts {self.path} records "
            f"{recorded.get_name()} {fingerprint(recorded)} but the server offered {offered.get_name()} "
            f"{fingerprint(offered)}; refusing to connect (the node was reinstalled, or someone is "
            f"intercepting). If the change is expected, remove the old entry with "
            f"`ssh-keygen -R '{name}' -f {self.path}` and add the new key."
        )


def _keyscan_args(name: str) -> str:
    if name.startswith("["):
        host, port = name[1:].split("]:", 1)
        return f"-p {port} {host}"
    return name


def _send_kill(channel: paramiko.Channel) -> None:
    """Ask sshd to SIGKILL the command (RFC 4254 "signal" request; OpenSSH >= 8.1 honours it).
    Best effort: closing the channel alone leaves a non-pty command running on the node."""
    _send_signal(channel, "KILL")


def _send_signal(channel: paramiko.Channel, signal: str) -> None:
    """Best effort RFC 4254 "signal" request. A batch gets TERM when clusterdoc stops it early:
    its shell exits (removing its temp folder) once the running command ends, and that command is
    bounded by its own ``timeout``."""
    with contextlib.suppress(Exception):
        m = paramiko.Message()
        m.add_byte(paramiko.common.cMSG_CHANNEL_REQUEST)
        m.add_int(channel.remote_chanid)
        m.add_string("signal")
        m.add_boolean(False)
        m.add_string(signal)
        send = getattr(channel.get_transport(), "_send_user_message", None)  # no public API for this
        if send is not None:
            send(m)


class _Connection:
    def __init__(self, transport: paramiko.Transport) -> None:
        self.transport = transport
        self.last_used = time.monotonic()
        self.in_use = 0  # commands running on it now (guarded by the executor's stats lock)

    @property
    def alive(self) -> bool:
        return self.transport.is_active()

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a dead transport may raise; nothing to do
            self.transport.close()


class SSHExecutor:
    """Executor over SSH to the nodes of an inventory (``host`` = inventory node name; a name not
    in the inventory is used as the host name itself with the ssh defaults)."""

    def __init__(self, inventory: Inventory, config: SSHConfig | None = None) -> None:
        self.inventory = inventory
        self.config = config or SSHConfig()
        known = self.config.known_hosts or inventory.ssh.known_hosts or Path("~/.ssh/known_hosts").expanduser()
        self.host_keys = _HostKeyStore(Path(known).expanduser())
        self.stats = SSHStats()
        self._conns: dict[str, _Connection] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._stats_lock = threading.Lock()
        self._pkey: paramiko.PKey | None = None
        self._pkey_loaded = False
        self._key_lock = threading.Lock()
        self._closed = False
        self._last_prune = time.monotonic()

    # ---- public ---------------------------------------------------------------------------
    def run(self, host: str, command: str, timeout_s: float | None = None) -> CommandResult:
        timeout = self.config.command_timeout_s if timeout_s is None else timeout_s
        start = time.monotonic()
        clock = current_host_clock()
        if clock is not None:
            clock.claim()  # connecting is not the node's time; the command's is
        with client_lag().running():
            return self._run(host, command, timeout, start, clock)

    def _run(self, host: str, command: str, timeout: float, start: float, clock: HostClock | None) -> CommandResult:
        opened = self._session(host, command, start)
        if isinstance(opened, CommandResult):
            return opened
        conn, channel = opened
        with self._stats_lock:
            self.stats.commands += 1
        try:
            return self._exec(host, command, channel, start, timeout, clock)
        finally:
            self._release(host, conn, channel)

    def _session(self, host: str, command: str, start: float) -> tuple[_Connection, paramiko.Channel] | CommandResult:
        """The node's connection and a new session channel on it (in use until ``_release``), or
        the failure as ``command``'s result."""
        try:
            conn = self._connection(host)
        except _ConnectError as exc:
            return self._fail(host, command, start, exc.transport, str(exc))
        opening = Stopwatch()
        try:
            try:
                channel = self._open_session(conn)
            except (paramiko.SSHException, OSError, EOFError) as exc:
                if conn.alive and _is_timeout(exc):
                    raise  # the transport is fine: the node (or this process) is slow, not gone
                # The transport died between commands: reconnect once (nothing ran yet).
                if not self.config.reuse_connections:
                    conn.close()
                conn = self._connection(host, stale=conn)
                opening = Stopwatch()
                channel = self._open_session(conn)
        except _ConnectError as exc:
            return self._fail(host, command, start, exc.transport, str(exc))
        except (paramiko.SSHException, OSError, EOFError) as exc:
            if not self.config.reuse_connections:
                conn.close()
            if _is_timeout(exc) and opening.verdict(self.config.connect_timeout_s) != "timeout":
                return self._fail(host, command, start, "not_checked", _overloaded(host, "opening a session", opening))
            return self._fail(host, command, start, "error", f"cannot open a session on {host}: {exc}")
        with self._stats_lock:
            conn.in_use += 1
        return conn, channel

    def _release(self, host: str, conn: _Connection, channel: paramiko.Channel) -> None:
        channel.close()
        with self._stats_lock:
            conn.in_use -= 1
            conn.last_used = time.monotonic()
        if not self.config.reuse_connections:
            self._drop(host, conn)

    # ---- batches --------------------------------------------------------------------------
    @property
    def batch_sweeps(self) -> bool:
        """Whether sweeps send each node its checks as one batch (``SSHConfig.batch_sweeps``)."""
        return self.config.batch_sweeps

    def run_batch(self, host: str, items: Sequence[BatchItem], keep_going: KeepGoing | None = None) -> BatchOutcome:
        """Run read-only checks on ``host`` in one remote execution (``diagnostics.executors.batch``).

        Each item's command results come back as ``run`` would give them, in order, stopping at
        the first that did not complete. ``keep_going(i, results)`` is called as each item is
        complete; False stops the batch there. A node that stops answering is judged as ``run``
        judges a command: when no record came for ``BatchCollector.wait_limit_s`` (the longest
        limit left plus ``CLIENT_SLACK_S`` and ``FLUSH_S``: its own ``timeout`` would have
        answered by then) it is ``timeout`` while this process keeps up,
        ``not_checked`` when it could not listen; the items after it come back None. A node that
        cannot run batches (no ``timeout``/``mktemp``, framing lost) returns ``unsupported``."""
        items = list(items)
        check_items(items)  # registry-made, read-only checks only
        if not items:
            return BatchOutcome([])
        start = time.monotonic()
        clock = current_host_clock()
        if clock is not None:
            clock.claim()
        with client_lag().running():
            opened = self._session(host, items[0].commands[0], start)
            if isinstance(opened, CommandResult):
                if keep_going is not None:
                    keep_going(0, [opened])
                return BatchOutcome([[opened]] + [None] * (len(items) - 1))
            conn, channel = opened
            got = BatchCollector(host, items, keep_going, Stopwatch)
            try:
                self._exec_batch(host, channel, clock, got)
            finally:
                self._release(host, conn, channel)
                with self._stats_lock:
                    self.stats.commands += got.received
        return got.outcome

    def _exec_batch(self, host: str, channel: paramiko.Channel, clock: HostClock | None, got: BatchCollector) -> None:
        boundary, half = new_boundary(), half_cap(self.config.output_cap)
        script = build_script(got.items, boundary, half)
        decoder = BatchDecoder(boundary, half, self.config.output_cap)
        script_err = CappedBuffer(4096)  # the script's own complaints, if any
        ended_at: float | None = None
        with self._stats_lock:
            self.stats.batches += 1
        if clock is not None:
            clock.sent()
        try:
            channel.exec_command(script)
            # Waits happen inside paramiko (recv with a timeout, the status event), not on
            # channel.fileno(): no OS pipe per channel to set and clear for every packet.
            wait, eof = 0.05, False
            while True:
                chunk: bytes | None = None
                if eof:
                    channel.status_event.wait(wait)
                else:
                    channel.settimeout(wait)
                    try:
                        chunk = channel.recv(65536)
                    except TimeoutError:
                        chunk = None
                    eof = chunk == b""
                while chunk:
                    for event in decoder.feed(chunk):
                        if isinstance(event, BatchRecord):
                            if not got.record(event) and not got.finished:
                                _send_signal(channel, "TERM")  # asked to stop: the node cleans up
                                return
                        elif event.kind == "UNSUPPORTED":
                            got.outcome.unsupported = f"{host} cannot run batches ({event.detail or 'unknown'})"
                            return
                        elif event.kind == "END" and not got.finished:
                            raise BatchProtocolError(f"batch ended after {got.position} of {got.planned} commands")
                    chunk = channel.recv(65536) if channel.recv_ready() else None
                    if chunk is None and not decoder.ended:
                        # Let the next records gather (a real tool takes tens of ms each): one
                        # wake-up per record costs more than reading them together. Returns at
                        # once when the batch's exit status arrives.
                        channel.status_event.wait(_GATHER_S)
                        chunk = channel.recv(65536) if channel.recv_ready() else None
                while channel.recv_stderr_ready():
                    script_err.write(channel.recv_stderr(65536))
                if decoder.ended:  # every result is in; the exit status follows at once
                    ended_at = ended_at or time.monotonic()
                    if channel.exit_status_ready() or time.monotonic() - ended_at > 1.0:
                        return
                    wait = 0.05
                    continue
                if channel.exit_status_ready() and (eof or not channel.recv_ready()) and not channel.recv_stderr_ready():
                    code = channel.recv_exit_status()
                    if code >= 0 and not decoder.began:  # the node's shell could not run the script
                        why = script_err.text().strip()[:200] or f"exit status {code}"
                        got.outcome.unsupported = f"{host} cannot run batches ({why})"
                        return
                    got.stop("error", f"connection to {host} closed before the command finished"
                         + (f" (batch exit status {code})" if code >= 0 else ""))
                    return
                transport = channel.get_transport()
                if transport is None or not transport.is_active():
                    got.stop("error", f"connection to {host} dropped before the command finished")
                    return
                limit = got.wait_limit_s
                verdict = got.watch.verdict(limit)
                if verdict == "timeout":  # the node had its time and more while we were listening
                    _send_signal(channel, "KILL")
                    got.stop("timeout", f"command timed out after {got.timeout_s:g}s on {host} "
                                        "(no answer from the node; KILL sent, channel closed)")
                    return
                if verdict == "not_checked":
                    _send_signal(channel, "KILL")
                    got.stop("not_checked", _overloaded(host, f"a command with a {got.timeout_s:g}s timeout", got.watch))
                    return
                wait = min(max(limit - got.watch.wall(), 0.05), 1.0)
        except BatchProtocolError as exc:
            _send_signal(channel, "TERM")
            got.outcome.unsupported = f"batch output from {host} could not be read: {exc}"
        except (paramiko.SSHException, OSError, EOFError) as exc:
            got.stop("error", f"SSH error on {host}: {exc}")
        finally:
            if clock is not None:
                clock.answered()

    def close_idle(self, max_idle_s: float | None = None) -> int:
        """Close reused connections unused for ``max_idle_s`` (default: the config's); returns how
        many. Called now and then by ``run`` so a long-lived bot does not hold every node open."""
        limit = self.config.max_idle_s if max_idle_s is None else max_idle_s
        now = time.monotonic()
        idle: list[_Connection] = []
        with self._locks_guard, self._stats_lock:
            for host, conn in list(self._conns.items()):
                if conn.in_use == 0 and now - conn.last_used >= limit:
                    idle.append(self._conns.pop(host))
        for conn in idle:
            conn.close()
        return len(idle)

    def close(self) -> None:
        self._closed = True
        with self._locks_guard:
            conns = list(self._conns.values())
            self._conns.clear()
        for conn in conns:
            conn.close()

    def __enter__(self) -> SSHExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- commands -------------------------------------------------------------------------
    def _open_session(self, conn: _Connection) -> paramiko.Channel:
        # paramiko waits in wall time; the caller judges afterwards whose time it was.
        return conn.transport.open_session(timeout=overload_cap_s(self.config.connect_timeout_s))

    def _exec(
        self, host: str, command: str, channel: paramiko.Channel, start: float, timeout: float,
        clock: HostClock | None = None,
    ) -> CommandResult:
        out, err = CappedBuffer(self.config.output_cap), CappedBuffer(self.config.output_cap)
        # The node's time starts now, as the exec request goes out (not at connect, not at the
        # sweep's start); it is blamed for a late answer only while this process keeps up.
        if clock is not None:
            clock.sent()
        watch = Stopwatch()
        try:
            channel.exec_command(command)
            # poll(), not select(): with hundreds of nodes connected, descriptors exceed FD_SETSIZE.
            poller = select.poll()
            poller.register(channel.fileno(), select.POLLIN)
            wait = min(timeout, 1.0)
            while True:
                poller.poll(max(wait, 0.0) * 1000)
                while channel.recv_ready():
                    out.write(channel.recv(65536))
                while channel.recv_stderr_ready():
                    err.write(channel.recv_stderr(65536))
                if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                    code = channel.recv_exit_status()
                    if code >= 0:
                        return self._result(host, command, start, code, out, err, "ok", "")
                    # Closed without an exit status: the connection dropped or the command was killed.
                    return self._result(host, command, start, None, out, err, "error",
                                        f"connection to {host} closed before the command finished")
                transport = channel.get_transport()
                if transport is None or not transport.is_active():
                    return self._result(host, command, start, None, out, err, "error",
                                        f"connection to {host} dropped before the command finished")
                outcome = watch.verdict(timeout)
                if outcome == "timeout":  # the node had its full timeout while we were listening
                    _send_kill(channel)
                    return self._result(host, command, start, None, out, err, "timeout",
                                        f"command timed out after {timeout:g}s on {host} (KILL sent, channel closed)")
                if outcome == "not_checked":  # we were not listening: not the node's fault
                    _send_kill(channel)
                    return self._result(host, command, start, None, out, err, "not_checked",
                                        _overloaded(host, f"a command with a {timeout:g}s timeout", watch))
                wait = min(max(timeout - watch.wall(), 0.05), 1.0)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            return self._result(host, command, start, None, out, err, "error", f"SSH error on {host}: {exc}")
        finally:
            if clock is not None:
                clock.answered()

    @staticmethod
    def _result(
        host: str, command: str, start: float, code: int | None, out: CappedBuffer, err: CappedBuffer,
        transport: str, error: str,
    ) -> CommandResult:
        return CommandResult(
            host, command, code, out.text(), err.text(), time.monotonic() - start,
            transport,  # type: ignore[arg-type]
            error, out.truncated or err.truncated,
        )

    @staticmethod
    def _fail(host: str, command: str, start: float, transport: str, error: str) -> CommandResult:
        return CommandResult(host, command, None, "", "", time.monotonic() - start, transport, error)  # type: ignore[arg-type]

    # ---- connections ----------------------------------------------------------------------
    def _lock_for(self, host: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(host, threading.Lock())

    def _connection(self, host: str, *, stale: _Connection | None = None) -> _Connection:
        """The node's connection, opened if needed. ``stale``: a connection the caller found dead;
        it is replaced unless another thread already did."""
        if self._closed:
            raise _ConnectError("executor closed")
        if not self.config.reuse_connections:
            return self._connect(host)
        now = time.monotonic()
        if self.config.max_idle_s and now - self._last_prune > min(60.0, self.config.max_idle_s):
            self._last_prune = now
            self.close_idle()
        with self._lock_for(host):
            conn = self._conns.get(host)
            if conn is not None and conn is not stale and conn.alive:
                return conn
            if conn is not None:
                conn.close()
                with self._stats_lock:
                    self.stats.reconnects += 1
            conn = self._connect(host)
            self._conns[host] = conn
            return conn

    def _drop(self, host: str, conn: _Connection) -> None:
        conn.close()

    def _address(self, host: str) -> tuple[str, int, str, str]:
        """(address, port, user, known_hosts name) for a node."""
        try:
            address, port, user = self.inventory.address(host)
        except Exception:
            address, port, user = host, self.inventory.ssh.port, self.inventory.ssh.user
        user = user or os.environ.get("USER") or "root"
        name = address if port == 22 else f"[{address}]:{port}"
        return address, port, user, name

    def _connect(self, host: str) -> _Connection:
        session = Stopwatch()
        try:
            return self._connect_once(host, session)
        except _ConnectError as exc:
            # A node that closed a login early (sshd's MaxStartups drops excess unauthenticated
            # connections at random) gets one more try while its connect time lasts.
            if not exc.dropped or session.wall() >= self.config.connect_timeout_s / 2:
                raise
        with self._stats_lock:
            self.stats.reconnects += 1
        return self._connect_once(host, session)

    def _connect_once(self, host: str, session: Stopwatch) -> _Connection:
        address, port, user, name = self._address(host)
        timeout = self.config.connect_timeout_s
        try:
            sock = socket.create_connection((address, port), timeout=timeout)
        except TimeoutError:
            raise _ConnectError(f"connecting to {host} ({address}:{port}) timed out after {timeout:g}s") from None
        except OSError as exc:
            raise _ConnectError(f"cannot connect to {host} ({address}:{port}): {exc.strerror or exc}") from None
        # Command output, exit status and channel close are small packets: no Nagle delay.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = paramiko.Transport(sock)
        # paramiko's own waits know nothing of this process's lag: give them the overload cap and
        # judge here whether a slow handshake or login was the node's fault or this process's.
        cap = overload_cap_s(timeout)
        transport.banner_timeout = cap
        transport.handshake_timeout = cap
        transport.auth_timeout = cap
        try:
            negotiated = threading.Event()
            handshake = Stopwatch()
            try:
                transport.start_client(event=negotiated)
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise _ConnectError(f"SSH handshake with {host} ({address}:{port}) failed: {exc}") from None
            while not negotiated.wait(min(max(timeout - handshake.wall(), 0.05), 0.5)):
                outcome = handshake.verdict(timeout)
                if outcome == "timeout":
                    raise _ConnectError(
                        f"SSH handshake with {host} ({address}:{port}) timed out after {timeout:g}s (node unresponsive)"
                    )
                if outcome == "not_checked":
                    raise _ConnectError(_overloaded(host, "the SSH handshake", handshake), "not_checked")
            if not transport.is_active():
                failure = transport.get_exception()
                why = f"{type(failure).__name__}: {failure}" if failure is not None else "connection closed"
                closed = _ConnectError(f"SSH handshake with {host} ({address}:{port}) failed: {why}")
                closed.dropped = _closed_by_peer(failure)
                raise closed
            key = transport.get_remote_server_key()
            self.host_keys.check(name, host, key, self.config.accept_new_host_keys)
            login = Stopwatch()
            try:
                self._authenticate(transport, host, user)
            except _ConnectError as exc:
                # paramiko gave up on the wall clock (at the cap): was it the node, or us?
                if login.wall() >= cap and login.verdict(timeout) != "timeout":
                    raise _ConnectError(_overloaded(host, "logging in", login), "not_checked") from None
                if not transport.is_active():
                    # The node closed the login: its grace time ran out while this process ran
                    # late (the wait was ours), or it dropped us early (worth one more try).
                    if session.lag() >= ClientLag.BEHIND_SHARE * session.wall():
                        raise _ConnectError(_overloaded(host, "logging in", session), "not_checked") from None
                    exc.dropped = True
                raise exc from None
        except BaseException:
            transport.close()
            raise
        # paramiko's reader thread wakes every 0.1 s on an idle socket to see whether it was closed;
        # with thousands of nodes connected that alone keeps half a core busy. Once logged in, 5 s.
        with contextlib.suppress(OSError):
            transport.sock.settimeout(_IDLE_POLL_S)
        if self.config.keepalive_s:
            transport.set_keepalive(self.config.keepalive_s)
        with self._stats_lock:
            self.stats.connects += 1
        return _Connection(transport)

    def _key_from_file(self) -> paramiko.PKey | None:
        with self._key_lock:  # many nodes connect at once; load (and decrypt) the key once
            if not self._pkey_loaded:
                self._pkey = self._load_key()
                self._pkey_loaded = True
            return self._pkey

    def _load_key(self) -> paramiko.PKey | None:
        path = self.config.key_file or self.inventory.ssh.key_file
        path = Path(path).expanduser() if path is not None else None
        if path is None:
            return None
        passphrase = os.environ.get(self.config.passphrase_env) or None
        try:
            return paramiko.PKey.from_path(str(path), password=passphrase.encode() if passphrase else None)  # type: ignore[arg-type]
        except FileNotFoundError:
            raise _ConnectError(f"SSH key file {path} does not exist") from None
        except paramiko.PasswordRequiredException:
            raise _ConnectError(f"SSH key {path} is encrypted: set {self.config.passphrase_env}") from None
        except TypeError as exc:  # cryptography: "Key is password-protected, but password was not provided"
            if passphrase is None and "password" in str(exc).lower():
                raise _ConnectError(f"SSH key {path} is encrypted: set {self.config.passphrase_env}") from None
            raise _ConnectError(f"cannot load SSH key {path}: {exc}") from None
        except (paramiko.SSHException, OSError, ValueError) as exc:
            # The message of a failed decrypt never contains the passphrase itself.
            raise _ConnectError(f"cannot load SSH key {path}: {exc}") from None

    def _authenticate(self, transport: paramiko.Transport, host: str, user: str) -> None:
        keys: list[paramiko.PKey] = []
        own = self._key_from_file()
        if own is not None:
            keys.append(own)
        if self.config.use_agent and os.environ.get("SSH_AUTH_SOCK"):
            with contextlib.suppress(paramiko.SSHException):
                keys.extend(paramiko.Agent().get_keys())
        if not keys:
            raise _ConnectError(f"no SSH key to log in to {host}: set ssh.key_file in the inventory or run an agent")
        for key in keys:
            try:
                transport.auth_publickey(user, key)
            except paramiko.AuthenticationException as exc:
                if _is_timeout(exc):  # no answer at all: another key will not get one either
                    raise _ConnectError(f"authentication with {host} timed out: {exc}") from None
                continue
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise _ConnectError(f"authentication with {host} failed: {exc}") from None
            if transport.is_authenticated():
                return
        raise _ConnectError(f"{host} rejected every key for user {user} ({len(keys)} tried)")
