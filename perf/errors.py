"""Errors raised for bad perf inputs. Each message names the argument that was wrong."""

from __future__ import annotations

from typing import SupportsFloat


class PerfError(Exception):
    """Base of perf's errors (perf is the bottom leaf: it defines its own)."""


class PerfInputError(PerfError, ValueError):
    """An argument to a perf model is invalid (zero/negative size, NaN, wrong length …)."""

    def __init__(self, argument: str, problem: str) -> None:
        self.argument = argument
        super().__init__(f"{argument}: {problem}")


class UnknownPrecisionError(PerfInputError):
    """A precision name the model does not know, or one this GPU has no peak figure for."""


def _to_float(value: object) -> float:
    if isinstance(value, str | SupportsFloat):
        return float(value)
    raise TypeError(f"not a number: {value!r}")


def require_positive(argument: str, value: object) -> float:
    """Return ``value`` as float, or raise naming ``argument`` if it is not a finite number > 0."""
    try:
        number = _to_float(value)
    except (TypeError, ValueError):
        raise PerfInputError(argument, f"must be a number > 0, got {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")) or number <= 0:
        raise PerfInputError(argument, f"must be a finite number > 0, got {value!r}")
    return number


def require_non_negative(argument: str, value: object) -> float:
    try:
        number = _to_float(value)
    except (TypeError, ValueError):
        raise PerfInputError(argument, f"must be a number >= 0, got {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")) or number < 0:
        raise PerfInputError(argument, f"must be a finite number >= 0, got {value!r}")
    return number


def require_whole(argument: str, value: object) -> int:
    """Return ``value`` as an int, or raise naming ``argument`` unless it is a whole number > 0."""
    if isinstance(value, bool):
        raise PerfInputError(argument, f"must be a whole number > 0, got {value!r}")
    number = require_positive(argument, value)
    if number != int(number):
        raise PerfInputError(argument, f"must be a whole number > 0, got {value!r}")
    return int(number)
