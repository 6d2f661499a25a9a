"""Calibrating the resource models on this machine's CPU, and running mixed tasks to test them.

Three equivalent resources, each with a micro-task whose work is known from its formula:

* compute — a float64 GEMM of n×n matrices: 2·n³ FLOPs.
* memory  — copying slices that walk round two arrays larger than the last-level cache: each byte
  is read once and written once, so 2·bytes move.
* io      — bytes sent over a local socket to a receiver that drains at a fixed line rate, the way a
  NIC or a PCIe DMA engine drains a transfer. The sender blocks in the kernel (releasing the GIL)
  while the link, not the CPU, is busy.

A mixed task runs its compute and memory sub-tasks in one thread, interleaved (like kernels in one
CUDA stream), and its I/O on a second thread (like a copy engine / NCCL transfer), and takes the
time until both finish.

Compute and memory are timed on a *task clock*: wall time minus the time the thread sat in the run
queue, ready to run while another process held the CPU (``/proc/thread-self/schedstat``). On a
machine shared with other jobs that removes their load from our figures. I/O is timed in wall time:
the link keeps draining while the sender waits for a CPU, so that wait belongs to the transfer.
Where schedstat is missing the task clock is plain wall time.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from perf.errors import require_non_negative, require_positive
from perf.resource_model import RateEstimate, measure_rate


def _runqueue_wait_s() -> float:
    try:
        with open("/proc/thread-self/schedstat", encoding="ascii") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def task_clock() -> float:
    """This thread's wall clock less its run-queue wait (seconds; only differences matter).

    The wait counter is read on both sides of the wall clock and the pair retried if the thread was
    preempted in between, so the clock never steps backwards."""
    for _ in range(10):
        before = _runqueue_wait_s()
        now = time.perf_counter()
        if _runqueue_wait_s() == before:
            return now - before
    return now - _runqueue_wait_s()


def has_task_clock() -> bool:
    try:
        with open("/proc/thread-self/schedstat", encoding="ascii") as f:
            return len(f.read().split()) >= 2
    except OSError:
        return False


class ThrottledLink:
    """A loopback socket whose far end drains at ``rate_bytes_s`` (a stand-in for a slow link)."""

    def __init__(self, rate_bytes_s: float = 200e6, chunk: int = 256 * 1024) -> None:
        self.rate = require_positive("rate_bytes_s", rate_bytes_s)
        self.chunk = chunk
        self._tx, self._rx = socket.socketpair()
        self._buf = bytearray(chunk)
        self._payload = bytes(4 * 1024 * 1024)
        self._thread = threading.Thread(target=self._drain, name="throttled-link", daemon=True)
        self._thread.start()

    def _recv_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            part = self._rx.recv(n - len(data))
            if not part:
                raise ConnectionError("link closed")
            data += part
        return data

    def _drain(self) -> None:
        view = memoryview(self._buf)
        try:
            while True:
                (length,) = struct.unpack("!Q", self._recv_exact(8))
                start = time.perf_counter()
                got = 0
                while got < length:
                    n = self._rx.recv_into(view, min(self.chunk, length - got))
                    if n == 0:
                        return
                    got += n
                    ahead = got / self.rate - (time.perf_counter() - start)
                    if ahead > 0:
                        time.sleep(ahead)
                self._rx.sendall(b"k")
        except OSError:
            return

    def send(self, nbytes: float) -> None:
        """Transfer ``nbytes`` and wait until the far end has drained them."""
        remaining = int(require_non_negative("nbytes", nbytes))
        if remaining == 0:
            return
        self._tx.sendall(struct.pack("!Q", remaining))
        while remaining > 0:
            part = min(remaining, len(self._payload))
            self._tx.sendall(memoryview(self._payload)[:part])
            remaining -= part
        if self._tx.recv(1) != b"k":
            raise ConnectionError("link closed before the transfer was acknowledged")

    def close(self) -> None:
        self._tx.close()
        self._rx.close()


@dataclass
class Calibration:
    compute: RateEstimate  # FLOP/s
    memory: RateEstimate  # bytes/s (read + write)
    io: RateEstimate  # bytes/s

    def rates(self) -> dict[str, float]:
        return {"compute": self.compute.mean, "memory": self.memory.mean, "io": self.io.mean}


class CpuLab:
    """The three micro-tasks and mixed tasks built from them."""

    def __init__(self, gemm_n: int = 192, buffer_mb: int = 64, slice_mb: int = 4, io_rate_mbs: float = 200.0,
                 clock: Callable[[], float] = task_clock) -> None:
        self.clock = clock
        self.gemm_n = int(require_positive("gemm_n", gemm_n))
        rng = np.random.default_rng(0)
        self._a = rng.standard_normal((gemm_n, gemm_n))
        self._b = rng.standard_normal((gemm_n, gemm_n))
        self._c = np.empty((gemm_n, gemm_n))
        elems = int(require_positive("buffer_mb", buffer_mb)) * 1024 * 1024 // 8
        self._src = np.ones(elems)
        self._dst = np.ones(elems)  # written now, so no first-touch page faults land in a measurement
        self._slice = int(require_positive("slice_mb", slice_mb)) * 1024 * 1024 // 8
        self._pos = 0
        self.link = ThrottledLink(io_rate_mbs * 1e6)

    @property
    def gemm_flops(self) -> float:
        return 2.0 * self.gemm_n**3

    @property
    def slice_bytes(self) -> float:
        return 2.0 * self._slice * 8  # read + write

    def gemm(self, count: int = 1) -> None:
        for _ in range(count):
            np.matmul(self._a, self._b, out=self._c)

    def copy(self, count: int = 1) -> None:
        for _ in range(count):
            end = self._pos + self._slice
            np.copyto(self._dst[self._pos:end], self._src[self._pos:end])
            self._pos = 0 if end + self._slice > self._src.size else end

    def calibrate(self, rel_tol: float = 0.03, max_seconds: float = 6.0) -> Calibration:
        # timed runs of ~20 ms, the grain of the mixed tasks, so both see the same sustained rates
        self.gemm(3)
        t0 = self.clock()
        self.gemm(3)
        gemms = max(1, round(0.02 / max((self.clock() - t0) / 3, 1e-6)))
        compute = measure_rate(lambda: self.gemm(gemms), gemms * self.gemm_flops, unit="FLOP/s", warmup=2,
                               min_runs=8, rel_tol=rel_tol, max_seconds=max_seconds, clock=self.clock)
        self.copy(2)
        t0 = self.clock()
        self.copy(2)
        copies = max(1, round(0.02 / max((self.clock() - t0) / 2, 1e-6)))
        memory = measure_rate(lambda: self.copy(copies), copies * self.slice_bytes, unit="B/s", warmup=2,
                              min_runs=8, rel_tol=rel_tol, max_seconds=max_seconds, clock=self.clock)
        io_bytes = self.link.rate * 0.02
        io = measure_rate(lambda: self.link.send(io_bytes), io_bytes, unit="B/s", warmup=2,
                          rel_tol=rel_tol, max_seconds=max_seconds)
        return Calibration(compute, memory, io)

    def run_mixed(self, gemms: int, copies: int, io_bytes: float) -> float:
        """Seconds for one mixed task on the task clock: compute+memory interleaved on this thread,
        I/O alongside on another; the task ends when both have (each path on its own thread's clock)."""
        io_time: list[float] = []

        def io_path() -> None:
            # wall time: the link drains while the sending thread waits for a CPU, so that wait is
            # part of the transfer, not something to subtract
            t = time.perf_counter()
            self.link.send(io_bytes)
            io_time.append(time.perf_counter() - t)

        io_thread = threading.Thread(target=io_path) if io_bytes > 0 else None
        t0 = self.clock()
        if io_thread is not None:
            io_thread.start()
        g, c = gemms, copies
        while g or c:  # interleave in proportion, like a stream of mixed kernels
            if g and (not c or g * copies >= c * gemms):
                self.gemm()
                g -= 1
            else:
                self.copy()
                c -= 1
        stream = self.clock() - t0
        if io_thread is not None:
            io_thread.join()
            return max(stream, io_time[0] if io_time else 0.0)
        return stream

    def close(self) -> None:
        self.link.close()
