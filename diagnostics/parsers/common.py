"""Shared helpers: the parse error type and tolerant number conversion."""

from __future__ import annotations

import re

from diagnostics.types import ClusterdocError

# What nvidia-smi and friends print where a value is unavailable.
NA_VALUES = frozenset({"[N/A]", "N/A", "[Not Supported]", "Not Supported", "[Unknown Error]", "[Insufficient Permissions]",
                       "[GPU is lost]", "[Requires Pro/Enterprise]", "", "-", "none"})

_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")


class ParseError(ClusterdocError):
    """Tool output that does not have the expected shape; ``line`` is 1-based where known."""

    def __init__(self, tool: str, problem: str, line: int | None = None) -> None:
        self.tool = tool
        self.problem = problem
        self.line = line
        where = f" (line {line})" if line is not None else ""
        super().__init__(f"cannot parse {tool} output{where}: {problem}")


def is_na(text: str | None) -> bool:
    return text is None or text.strip() in NA_VALUES


def to_float(text: str | None, *, tool: str = "output", field: str = "value") -> float | None:
    """'1410 MHz' -> 1410.0, '250.50 W' -> 250.5, '[N/A]' -> None; other text -> ParseError."""
    if is_na(text):
        return None
    assert text is not None
    s = text.strip()
    m = _NUMBER.match(s)
    if m is None:
        raise ParseError(tool, f"{field}: expected a number, got {s[:40]!r}")
    try:
        return float(m.group(0))
    except ValueError as exc:  # pragma: no cover - the regex only lets numbers through
        raise ParseError(tool, f"{field}: expected a number, got {s[:40]!r}") from exc


def to_int(text: str | None, *, tool: str = "output", field: str = "value") -> int | None:
    """Integers, including hex ('0x0000000000000040')."""
    if is_na(text):
        return None
    assert text is not None
    s = text.strip()
    if s.lower().startswith("0x"):
        try:
            return int(s, 16)
        except ValueError:
            raise ParseError(tool, f"{field}: expected a hex number, got {s[:40]!r}") from None
    value = to_float(s, tool=tool, field=field)
    return None if value is None else int(value)


def to_bool(text: str | None, *, tool: str = "output", field: str = "value") -> bool | None:
    """Enabled/Disabled, Active/Not Active, Yes/No, 1/0, true/false."""
    if is_na(text):
        return None
    assert text is not None
    s = text.strip().lower()
    if s in ("enabled", "active", "yes", "1", "true", "on"):
        return True
    if s in ("disabled", "not active", "no", "0", "false", "off"):
        return False
    raise ParseError(tool, f"{field}: expected a yes/no value, got {text.strip()[:40]!r}")
