"""Run one function per host with bounded concurrency and a per-host deadline.

Each host gets its own daemon thread while at most ``concurrency`` run at once. A host that
passes its deadline is given up on: its slot is freed at once and ``on_timeout(host)`` supplies
its result, so one hung node never stalls the sweep (its thread ends on its own later, when the
executor's socket timeouts fire). An exception in ``fn`` becomes ``on_error(host, exc)``.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass
class FanoutResult(Generic[T]):
    results: dict[str, T]
    durations_s: dict[str, float]
    timed_out: list[str]
    wall_s: float


def fanout(
    hosts: Sequence[str],
    fn: Callable[[str], T],
    *,
    concurrency: int = 32,
    deadline_s: float | None = None,
    on_timeout: Callable[[str], T],
    on_error: Callable[[str, BaseException], T],
    progress: bool = False,
    desc: str = "hosts",
) -> FanoutResult[T]:
    """Call ``fn(host)`` for every host; results keep the order of ``hosts``."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    start = time.monotonic()
    pending = list(dict.fromkeys(hosts))[::-1]  # pop() from the end keeps the given order
    running: dict[str, float] = {}  # host -> start time
    done_q: queue.Queue[tuple[str, bool, Any]] = queue.Queue()
    results: dict[str, T] = {}
    durations: dict[str, float] = {}
    timed_out: list[str] = []
    bar = _progress_bar(len(pending), desc) if progress else None
    # The first wave of threads waits at this gate until all of it is started: starting hundreds
    # of threads while earlier ones already work is slow (GIL), which made late hosts start, and
    # hit their deadline, seconds after the sweep began.
    gate = threading.Event()

    def worker(host: str) -> None:
        gate.wait()
        try:
            done_q.put((host, True, fn(host)))
        except BaseException as exc:  # reported as this host's result, never raised
            done_q.put((host, False, exc))

    def finish(host: str, value: T) -> None:
        results[host] = value
        durations[host] = time.monotonic() - running.pop(host)
        if bar is not None:
            bar.update(1)

    try:
        while pending or running:
            while pending and len(running) < concurrency:
                host = pending.pop()
                running[host] = time.monotonic()
                threading.Thread(target=worker, args=(host,), name=f"fanout-{host}", daemon=True).start()
            if not gate.is_set():
                released = time.monotonic()
                running.update(dict.fromkeys(running, released))
                gate.set()
            wait = 0.5
            if deadline_s is not None and running:
                oldest = min(running.values())
                wait = max(0.0, min(wait, oldest + deadline_s - time.monotonic()))
            try:
                host, ok, value = done_q.get(timeout=wait)
                if host in running:  # a late answer from a host already given up on is dropped
                    finish(host, value if ok else on_error(host, value))
                while True:  # drain whatever else finished meanwhile
                    host, ok, value = done_q.get_nowait()
                    if host in running:
                        finish(host, value if ok else on_error(host, value))
            except queue.Empty:
                pass
            if deadline_s is not None:
                now = time.monotonic()
                for host in [h for h, t0 in running.items() if now - t0 >= deadline_s]:
                    timed_out.append(host)
                    finish(host, on_timeout(host))
    finally:
        if bar is not None:
            bar.close()
    ordered = {h: results[h] for h in dict.fromkeys(hosts)}
    return FanoutResult(ordered, durations, timed_out, time.monotonic() - start)


def _progress_bar(total: int, desc: str) -> Any:
    from tqdm import tqdm  # imported only when a bar is wanted

    return tqdm(total=total, desc=desc, unit="host", file=sys.stderr, leave=False, dynamic_ncols=True)
