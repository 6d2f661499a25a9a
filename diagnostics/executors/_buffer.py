"""A byte buffer that keeps the head and tail of a stream and drops the middle past a cap, so a
node that prints gigabytes costs a bounded amount of memory."""

from __future__ import annotations

DEFAULT_OUTPUT_CAP = 1024 * 1024  # bytes kept per stream per command


class CappedBuffer:
    def __init__(self, cap: int = DEFAULT_OUTPUT_CAP) -> None:
        self.cap = max(2, cap)
        self._half = self.cap // 2
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0

    def write(self, data: bytes) -> None:
        self.total += len(data)
        room = self._half - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if data:
            self._tail += data
            if len(self._tail) > 2 * self._half:  # trim lazily: amortised O(1) per byte
                del self._tail[: len(self._tail) - self._half]

    def skip(self, n: int) -> None:
        """Count ``n`` bytes cut from the middle of the stream without having seen them (a batch
        sends only the head and tail of a long output); call it once the head is full."""
        self.total += max(0, n)

    @property
    def truncated(self) -> bool:
        return self.total > len(self._head) + min(len(self._tail), self._half)

    def text(self) -> str:
        tail = self._tail[-self._half :] if len(self._tail) > self._half else self._tail
        head = self._head.decode("utf-8", errors="replace")
        tail_text = bytes(tail).decode("utf-8", errors="replace")
        if not self.truncated:
            return head + tail_text
        cut = self.total - len(self._head) - len(tail)
        return f"{head}\n… [{cut} bytes cut] …\n{tail_text}"
