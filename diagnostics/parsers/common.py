"""Shared helpers: the parse error type, tolerant number conversion and the record of lines a
parser skipped because they are not in its tool's format."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from diagnostics.types import ClusterdocError

# What nvidia-smi and friends print where a value is unavailable.
NA_VALUES = frozenset({"[N/A]", "N/A", "[Not Supported]", "Not Supported", "[Unknown Error]", "[Insufficient Permissions]",
                       "[GPU is lost]", "[Requires Pro/Enterprise]", "", "-", "none"})

_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")

# ANSI colour/cursor sequences (CSI, OSC, two-byte escapes) a terminal paste may carry.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
# Control characters other than tab and newline (binary garbage, NULs, backspaces).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# A markdown code fence line (```text, ``` console, ````diff, ~~~).
_FENCE = re.compile(r"^\s*(?:`{3,}|~{3,})\s*[\w+-]*\s*$")
# A fence with text on the same line ('```Allocatable:'), or an inline code span wrapping a whole
# line ('`System clock synchronized: no`'): the backticks go, the text stays.
_TICKS_START = re.compile(r"^(\s*)`+(?=\S)")
_TICKS_END = re.compile(r"(?<=\S)`+\s*$")
# An HTML copy of a terminal (<pre><font color=...><b>user@host</b></font>...): those tags and the
# entities they escape. Only these tags: tool output itself has <inactive>, <none>, <<<NULL>>>.
_HTML_TAG = re.compile(r"</?(?:pre|font|b|i|u|span|code|div|p|br|strong|em|tt|kbd|samp)\b[^<>\n]{0,200}>", re.IGNORECASE)
_HTML_ENTITIES = {"&lt;": "<", "&gt;": ">", "&quot;": '"', "&#39;": "'", "&nbsp;": " "}
_HTML_ENTITY = re.compile("|".join(_HTML_ENTITIES))


class ParseError(ClusterdocError):
    """Tool output that does not have the expected shape; ``line`` is 1-based where known."""

    def __init__(self, tool: str, problem: str, line: int | None = None) -> None:
        self.tool = tool
        self.problem = problem
        self.line = line
        where = f" (line {line})" if line is not None else ""
        super().__init__(f"cannot parse {tool} output{where}: {problem}")


def clean(text: str) -> str:
    """What a terminal, a chat client or a markdown renderer adds to a tool's output, taken away
    without moving any line: CRLF and lone CR become LF, ANSI escapes and other control characters
    go, a markdown fence line becomes an empty line (a fence with text on its line loses the
    backticks), backticks wrapping a whole line (an inline code span) go, an HTML copy loses its
    <pre>/<font>/<b>… tags and &lt;/&gt;/&quot;/&nbsp; entities, and the indentation every line
    shares (a pasted indented code block) is removed. Line numbers stay those of the input. Cleaning is
    idempotent, and the last text cleaned is remembered (a paste is read by several readers)."""
    if _LAST_CLEAN and (text is _LAST_CLEAN[0] or text is _LAST_CLEAN[1]):
        return _LAST_CLEAN[1]
    original = text
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    text = _CONTROL.sub("", text)
    if "<" in text and _HTML_TAG.search(text):
        text = _HTML_TAG.sub("", text)
    if "&" in text and ";" in text:
        text = _HTML_ENTITY.sub(lambda m: _HTML_ENTITIES[m.group(0)], text)
    lines = ["" if _FENCE.match(ln) else ln.rstrip() for ln in text.split("\n")]
    if "`" in text:
        lines = [_TICKS_END.sub("", _TICKS_START.sub(r"\1", ln)).rstrip() if "`" in ln else ln for ln in lines]
    indents = [len(ln) - len(ln.lstrip(" ")) for ln in lines if ln.strip()]
    common = min(indents, default=0)
    if common and all(ln[:common].strip() == "" for ln in lines if ln.strip()):
        lines = [ln[common:] for ln in lines]
    cleaned = "\n".join(lines)
    _LAST_CLEAN[:] = [original, cleaned]
    return cleaned


_LAST_CLEAN: list[str] = []  # [input, output] of the last call


_SIZE = re.compile(r"^(?P<num>\d+(?:[.,]\d+)?)\s*(?P<unit>[KMGTPE]?)(?:i?B?)?$", re.IGNORECASE)
_SIZE_POWER = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}


def parse_size(text: str | None, *, base: int = 1024) -> float | None:
    """Human-readable sizes as df -h, free -h and kubectl print them: '101.4M', '996.0K', '8.2M',
    '0B', '3.6Gi', '13119414984Ki', '64M', '0' -> bytes (powers of ``base``; 1024 as df -h and
    free -h use). A bare number is bytes. None where the text is not a size."""
    if text is None:
        return None
    m = _SIZE.match(text.strip())
    if m is None:
        return None
    return float(m.group("num").replace(",", ".")) * base ** _SIZE_POWER[m.group("unit").upper()]


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


# --------------------------------------------------------------------------- skipped lines
# Real tools print stray lines (driver warnings, ibwarn, NCCL INFO, a shell's motd) and a hostile
# node may print anything. Parsers skip lines that are not in their tool's format and note them
# here (tool, line number, never the text: a stray line's content must not become data); the
# check wrapper reports the count. Outside ``collect_skipped`` nothing is recorded.
_SKIPPED: ContextVar[list[tuple[str, int]] | None] = ContextVar("clusterdoc_skipped_lines", default=None)


def skip_line(tool: str, line: int) -> None:
    """Note that ``line`` (1-based) of ``tool``'s output was skipped as not in its format."""
    record = _SKIPPED.get()
    if record is not None:
        record.append((tool, line))


@contextmanager
def collect_skipped() -> Iterator[list[tuple[str, int]]]:
    """Collect the (tool, line) pairs the parsers called inside the block skipped."""
    record: list[tuple[str, int]] = []
    token = _SKIPPED.set(record)
    try:
        yield record
    finally:
        _SKIPPED.reset(token)


def skipped_summary(record: list[tuple[str, int]]) -> dict[str, object]:
    """{'ignored_lines': N, 'ignored_note': short text} for a result's data ({} when none)."""
    if not record:
        return {}
    by_tool: dict[str, list[int]] = {}
    for tool, line in record:
        by_tool.setdefault(tool, []).append(line)
    parts = []
    for tool, lines in by_tool.items():
        shown = ", ".join(map(str, lines[:8])) + (", ..." if len(lines) > 8 else "")
        parts.append(f"{tool} line(s) {shown}")
    return {"ignored_lines": len(record),
            "ignored_note": f"skipped {len(record)} line(s) not in the tool's format ({'; '.join(parts)})"}
