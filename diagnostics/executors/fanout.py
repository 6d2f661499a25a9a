"""Run one function per host with bounded concurrency, a per-host deadline and a sweep budget.

Each host gets its own daemon thread while at most ``concurrency`` run at once.

Deadlines measure the node, not this machine:

- A host's deadline counts *node time*: the time its commands were outstanding, from when each
  request went out (the executor reports it through ``current_host_clock()``) until its reply was
  read (for answered commands, less what this process ran late meanwhile). Waiting for a
  concurrency slot, connecting and this machine's work between commands never count. A host
  whose executor reports nothing is timed from when its work began.
- A node is blamed (``on_timeout``) only while a command to it is out and this process is
  keeping up (``ClientLag``: a
  heartbeat thread that notices when it wakes late because the CPU or the GIL was busy). Past the
  deadline with clusterdoc behind, a reply may be sitting unread, so the verdict waits until
  clusterdoc has caught up, for at most ``overload_cap_s(deadline)`` of wall time; after that the
  host gets ``on_overload`` ("not checked: clusterdoc was overloaded"), which says nothing about it.

A host given up on frees its slot at once, so one hung node never stalls the sweep (its thread
ends on its own later, when the executor's own timeouts fire). An exception in ``fn`` becomes
``on_error(host, exc)``. ``budget_s`` bounds the whole fan-out in wall time: when it runs out,
every host not finished yet (never started, still connecting, or with a command still inside its
deadline) gets ``on_overload`` too.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")

OVERLOADED = "not checked: clusterdoc was overloaded"


class ClientOverloaded(Exception):
    """clusterdoc fell behind before it could give a host its full deadline (passed to
    ``on_error`` when the caller gave no ``on_overload``)."""


class ClientLag:
    """How far this process runs behind: a heartbeat thread sleeps ``TICK_S`` at a time and adds
    up how late it wakes. While it is late, every other thread here (the ones reading replies)
    waits for the same GIL or CPU. Runs only while someone holds it (``running()``).

    ``keeping_up()``: over the last ``RECENT_S`` the heartbeat ran late less than ``BEHIND_SHARE``
    of the time, so a reply that had arrived would have been read by now and a missing one was
    not sent. (The lag is not subtracted from deadlines: a busy client delays each reply by a few
    waits for the GIL, not by its whole lag; the gate says when those waits are short.)"""

    TICK_S = 0.01
    NOISE_S = 0.002  # oversleeping by less than this is timer noise, not lag
    LINGER_S = 2.0  # the heartbeat outlives its last user this long (commands run one after another)
    RECENT_S = 1.0
    BEHIND_SHARE = 0.25
    SAMPLE_S = 0.1  # history granularity

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._idle_since = 0.0
        self._thread: threading.Thread | None = None
        self._state = (0.0, time.monotonic() + 3600.0)  # (lag so far, when the next beat is due)
        self._history: deque[tuple[float, float]] = deque()  # (beat time, lag so far), last few seconds

    @contextlib.contextmanager
    def running(self) -> Iterator[ClientLag]:
        self.acquire()
        try:
            yield self
        finally:
            self.release()

    def acquire(self) -> None:
        with self._lock:
            self._users += 1
            if self._thread is None:
                total, _ = self._state
                now = time.monotonic()
                self._state = (total, now + self.TICK_S)
                self._history.clear()
                self._history.append((now, total))
                self._thread = threading.Thread(target=self._beat, name="clusterdoc-lag", daemon=True)
                self._thread.start()

    def release(self) -> None:
        with self._lock:
            self._users = max(0, self._users - 1)
            if self._users == 0:
                self._idle_since = time.monotonic()

    def lag(self) -> float:
        """Seconds this process has run late so far, including a beat overdue right now."""
        total, due = self._state  # one tuple, swapped atomically by the heartbeat
        overdue = time.monotonic() - due - self.NOISE_S
        return total + overdue if overdue > 0 else total

    def recent_lag(self, window_s: float | None = None) -> float:
        """Seconds this process ran late during (at least) the last ``window_s`` (default
        ``RECENT_S``), a beat overdue right now included: a starved heartbeat reads as late."""
        window = self.RECENT_S if window_s is None else window_s
        now_lag = self.lag()
        since = time.monotonic() - window
        with self._lock:
            then = self._history[0][1] if self._history else now_lag
            for t, lag in reversed(self._history):
                if t <= since:
                    then = lag
                    break
        return max(0.0, now_lag - then)

    def keeping_up(self) -> bool:
        """True when this process has not been running late lately: a reply that is missing now
        was not sent, rather than sent and left unread."""
        return self.recent_lag() < self.BEHIND_SHARE * self.RECENT_S

    def _beat(self) -> None:
        while True:
            with self._lock:
                if self._users == 0 and time.monotonic() - self._idle_since >= self.LINGER_S:
                    self._thread = None
                    total, _ = self._state
                    self._state = (total, time.monotonic() + 3600.0)  # idle: nothing is overdue
                    return
            total, due = self._state
            time.sleep(max(0.0, due - time.monotonic()))
            now = time.monotonic()
            late = now - due - self.NOISE_S
            if late > 0:
                total += late
            self._state = (total, now + self.TICK_S)
            with self._lock:
                if not self._history or now - self._history[-1][0] >= self.SAMPLE_S:
                    self._history.append((now, total))
                while len(self._history) > 1 and self._history[1][0] < now - 2 * self.RECENT_S:
                    self._history.popleft()


_CLIENT_LAG = ClientLag()


def overload_cap_s(timeout_s: float) -> float:
    """Wall time a wait with a ``timeout_s`` node-time limit may take while this process runs
    late; past it the host is reported not checked (clusterdoc overloaded) instead of waited for."""
    return 2.0 * timeout_s + 1.0


def verdict(node_s: float, wall_s: float, limit_s: float, lag: ClientLag | None = None) -> str | None:
    """Whose fault a wait is so far. ``node_s``: the node's time against ``limit_s``; ``wall_s``:
    wall time since the node's time started. "timeout": the node had its full limit and this
    process has been keeping up, so a reply would have been read; "not_checked": the overload cap
    passed first (clusterdoc fell behind); None: keep waiting."""
    if node_s >= limit_s and (lag or _CLIENT_LAG).keeping_up():
        return "timeout"
    if wall_s >= overload_cap_s(limit_s):
        return "not_checked"
    return None


def client_lag() -> ClientLag:
    """The process-wide lag monitor."""
    return _CLIENT_LAG


class Stopwatch:
    """Wall time since it was started and how late this process ran meanwhile; ``verdict()``
    says whether a wait with a limit has become the node's fault, clusterdoc's, or neither yet."""

    __slots__ = ("_lag", "lag0", "t0")

    def __init__(self, lag: ClientLag | None = None) -> None:
        self._lag = lag or _CLIENT_LAG
        self.t0 = time.monotonic()
        self.lag0 = self._lag.lag()

    def wall(self) -> float:
        return time.monotonic() - self.t0

    def lag(self) -> float:
        return max(0.0, self._lag.lag() - self.lag0)

    def verdict(self, limit_s: float) -> str | None:
        """``verdict()`` of this wait against ``limit_s``."""
        return verdict(self.wall(), self.wall(), limit_s, self._lag)


class HostClock:
    """Node time of one host in a fan-out: the wall time its commands were outstanding. An
    executor running in the host's thread finds it with ``current_host_clock()`` and calls ``claim()`` when it starts (connecting is not node time),
    ``sent()`` when a command's request goes out and ``answered()`` when its reply is complete or
    it was given up on. Without ``claim()`` the host is timed from when its work began."""

    def __init__(self, lag: ClientLag) -> None:
        self._lag = lag
        self._lock = threading.Lock()
        self._began: Stopwatch | None = None
        self._claimed = False
        self._outstanding = 0
        self._first: Stopwatch | None = None  # since the first command went out
        self._current: Stopwatch | None = None
        self._done_s = 0.0

    def begin(self) -> None:
        self._began = Stopwatch(self._lag)

    @property
    def began(self) -> bool:
        return self._began is not None

    def claim(self) -> None:
        self._claimed = True

    def sent(self) -> None:
        with self._lock:
            self._claimed = True
            if self._outstanding == 0:
                self._current = Stopwatch(self._lag)
                if self._first is None:
                    self._first = self._current
            self._outstanding += 1

    def answered(self) -> None:
        with self._lock:
            if self._outstanding == 0:
                return
            self._outstanding -= 1
            if self._outstanding == 0 and self._current is not None:
                # An answered command's wall time also holds however long this process took to
                # read the answer: what it ran late meanwhile is not the node's.
                self._done_s += max(0.0, self._current.wall() - self._current.lag())
                self._current = None

    def node_s(self) -> float:
        """The node's time so far: what its deadline counts."""
        with self._lock:
            if not self._claimed:
                return self._began.wall() if self._began is not None else 0.0
            return self._done_s + (self._current.wall() if self._current is not None else 0.0)

    @property
    def waiting_on_node(self) -> bool:
        """True while the host's work waits for the node (a command is out, or, for an executor
        that reports nothing, its work has begun); False while it connects or between checks."""
        with self._lock:
            return self._outstanding > 0 if self._claimed else self._began is not None

    def wall_s(self) -> float:
        """Wall time since the node's time started (its first command, or its work began)."""
        watch = self._first if self._claimed else self._began
        return watch.wall() if watch is not None else 0.0


_local = threading.local()


def current_host_clock() -> HostClock | None:
    """The clock of the fan-out host this thread works for, or None outside a fan-out."""
    return getattr(_local, "clock", None)


@dataclass
class FanoutResult(Generic[T]):
    results: dict[str, T]
    durations_s: dict[str, float]
    timed_out: list[str]
    wall_s: float
    not_checked: list[str] = field(default_factory=list)  # given on_overload: clusterdoc fell behind
    client_lag_s: float = 0.0  # how long this process ran late during the fan-out


def fanout(
    hosts: Sequence[str],
    fn: Callable[[str], T],
    *,
    concurrency: int = 32,
    deadline_s: float | None = None,
    budget_s: float | None = None,
    on_timeout: Callable[[str], T],
    on_error: Callable[[str, BaseException], T],
    on_overload: Callable[[str], T] | None = None,
    progress: bool = False,
    desc: str = "hosts",
) -> FanoutResult[T]:
    """Call ``fn(host)`` for every host; results keep the order of ``hosts``.

    ``deadline_s``: per host, in node time (see the module doc). ``budget_s``: for the whole
    fan-out, in wall time; hosts not finished by then get ``on_overload`` (default:
    ``on_error(host, ClientOverloaded(...))``)."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    lag = client_lag()
    with lag.running():
        return _fanout(hosts, fn, concurrency, deadline_s, budget_s, on_timeout, on_error, on_overload,
                       progress, desc, lag)


def _fanout(
    hosts: Sequence[str],
    fn: Callable[[str], T],
    concurrency: int,
    deadline_s: float | None,
    budget_s: float | None,
    on_timeout: Callable[[str], T],
    on_error: Callable[[str, BaseException], T],
    on_overload: Callable[[str], T] | None,
    progress: bool,
    desc: str,
    lag: ClientLag,
) -> FanoutResult[T]:
    sweep = Stopwatch(lag)
    start = sweep.t0
    pending = list(dict.fromkeys(hosts))[::-1]  # pop() from the end keeps the given order
    running: dict[str, HostClock] = {}
    started: dict[str, float] = {}
    done_q: queue.Queue[tuple[str, bool, Any]] = queue.Queue()
    results: dict[str, T] = {}
    durations: dict[str, float] = {}
    timed_out: list[str] = []
    not_checked: list[str] = []
    bar = _progress_bar(len(pending), desc) if progress else None
    # The first wave of threads waits at this gate until all of it is started: starting hundreds
    # of threads while earlier ones already work is slow (GIL). (Node time does not run before a
    # host's command goes out anyway; the gate keeps the first commands from competing with it.)
    gate = threading.Event()

    def worker(host: str, clock: HostClock) -> None:
        gate.wait()
        _local.clock = clock
        clock.begin()
        try:
            done_q.put((host, True, fn(host)))
        except BaseException as exc:  # reported as this host's result, never raised
            done_q.put((host, False, exc))
        finally:
            _local.clock = None

    def finish(host: str, value: T) -> None:
        results[host] = value
        running.pop(host, None)
        durations[host] = time.monotonic() - started.get(host, time.monotonic())
        if bar is not None:
            bar.update(1)

    def overload(host: str) -> T:
        not_checked.append(host)
        if on_overload is not None:
            return on_overload(host)
        return on_error(host, ClientOverloaded(OVERLOADED))

    def collect(item: tuple[str, bool, Any]) -> None:
        host, ok, value = item
        if host in running:  # a late answer from a host already given up on is dropped
            finish(host, value if ok else on_error(host, value))

    next_check = start  # no host can reach its deadline before this (node time <= wall time)
    try:
        while pending or running:
            budget_left = None if budget_s is None else budget_s - (time.monotonic() - start)
            if budget_left is not None and budget_left <= 0:
                # Out of time: whatever has not finished was not checked, through no fault of its own.
                for host in list(running):
                    finish(host, overload(host))
                while pending:
                    host = pending.pop()
                    finish(host, overload(host))
                break
            while pending and len(running) < concurrency:
                host = pending.pop()
                clock = HostClock(lag)
                running[host] = clock
                started[host] = time.monotonic()
                threading.Thread(target=worker, args=(host, clock), name=f"fanout-{host}", daemon=True).start()
            if not gate.is_set():
                released = time.monotonic()
                started.update(dict.fromkeys(running, released))
                gate.set()
            wait = 0.5
            if deadline_s is not None and running:
                wait = min(wait, max(0.0, next_check - time.monotonic()))
            if budget_left is not None:
                wait = min(wait, max(0.0, budget_left))
            try:
                collect(done_q.get(timeout=max(wait, 0.001)))
                while True:  # drain whatever else finished meanwhile
                    collect(done_q.get_nowait())
            except queue.Empty:
                pass
            now = time.monotonic()
            if deadline_s is not None and now >= next_check:
                soonest = deadline_s
                keeping_up = lag.keeping_up()
                for host, clock in list(running.items()):
                    node = clock.node_s()
                    # Blame needs the node had its time, we are waiting on it now, and we listened.
                    if node >= deadline_s and keeping_up and clock.waiting_on_node:
                        timed_out.append(host)
                        finish(host, on_timeout(host))
                    elif clock.wall_s() >= overload_cap_s(deadline_s):  # we could not listen
                        finish(host, overload(host))
                    else:
                        soonest = min(soonest, max(deadline_s - node, 0.05))
                next_check = now + soonest
    finally:
        if bar is not None:
            bar.close()
    ordered = {h: results[h] for h in dict.fromkeys(hosts)}
    return FanoutResult(ordered, durations, timed_out, time.monotonic() - start, not_checked, sweep.lag())


def _progress_bar(total: int, desc: str) -> Any:
    from tqdm import tqdm  # imported only when a bar is wanted

    return tqdm(total=total, desc=desc, unit="host", file=sys.stderr, leave=False, dynamic_ncols=True)
