"""Errors raised for bad perf inputs. Each message names the argument that was wrong."""

from __future__ import annotations


class PerfError(Exception):
    """Base of perf's errors (perf is the bottom leaf: it defines its own)."""


class PerfInputError(PerfError, ValueError):
    """An argument to a perf model is invalid (zero/negative size, NaN, wrong length …)."""

    def __init__(self, argument: str, problem: str) -> None:
        self.argument = argument
        super().__init__(f"{argument}: {problem}")


class UnknownPrecisionError(PerfInputError):
    """A precision name the model does not know, or one this GPU has no peak figure for."""


def require_positive(argument: str, value: float) -> float:
    """Return ``value`` as float, or raise naming ``argument`` if it is not a finite number > 0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PerfInputError(argument, f"must be a number > 0, got {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")) or number <= 0:
        raise PerfInputError(argument, f"must be a finite number > 0, got {value!r}")
    return number


def require_non_negative(argument: str, value: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PerfInputError(argument, f"must be a number >= 0, got {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")) or number < 0:
        raise PerfInputError(argument, f"must be a finite number >= 0, got {value!r}")
    return number


def require_whole(argument: str, value: object) -> int:
    """Return ``value`` as an int, or raise naming ``argument`` unless it is a whole number > 0."""
    if isinstance(value, bool):
        raise PerfInputError(argument, f"must be a whole number > 0, got {value!r}")
    number = require_positive(argument, value)  # type: ignore[arg-type]
    if number != int(number):
        raise PerfInputError(argument, f"must be a whole number > 0, got {value!r}")
    return int(number)
