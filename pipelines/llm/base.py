"""What every model backend returns and the helpers they share.

A backend never raises for the model's misbehaviour (empty answer, invalid JSON, a server that is
down or slow): it returns an ``LLMReply`` whose ``error`` says what went wrong, so the agent can
count failures and fall back to the evidence-only path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": "..."}


@dataclass
class LLMReply:
    data: dict[str, Any] | None  # the parsed, schema-checked JSON object (generate_json only)
    text: str  # the raw text the model produced
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str = ""  # empty when the call worked
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.error


class LLMError(Exception):
    """A backend could not be set up at all (missing package, bad model path)."""


@runtime_checkable
class LLM(Protocol):
    name: str  # backend name, e.g. "llamacpp"

    def warm_up(self) -> None: ...

    def generate_json(self, messages: Sequence[Message], schema: dict[str, Any], max_tokens: int | None = None) -> LLMReply: ...

    def generate_text(self, messages: Sequence[Message], max_tokens: int | None = None) -> LLMReply: ...


class NoLLM:
    """The ``none`` backend: no model; every call says so and the agent uses evidence only."""

    name = "none"

    def warm_up(self) -> None:
        return None

    def generate_json(self, messages: Sequence[Message], schema: dict[str, Any], max_tokens: int | None = None) -> LLMReply:
        return LLMReply(data=None, text="", error="no model configured (llm backend 'none')")

    def generate_text(self, messages: Sequence[Message], max_tokens: int | None = None) -> LLMReply:
        return LLMReply(data=None, text="", error="no model configured (llm backend 'none')")


def fold_system(messages: Sequence[Message]) -> list[Message]:
    """Models without a system role (gemma) get the system text prepended to the first user turn."""
    system = "\n\n".join(m["content"] for m in messages if m.get("role") == "system")
    rest = [dict(m) for m in messages if m.get("role") != "system"]
    if not system:
        return rest
    for m in rest:
        if m.get("role") == "user":
            m["content"] = f"{system}\n\n{m['content']}"
            return rest
    return [{"role": "user", "content": system}, *rest]


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def extract_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in a model's text (code fences and chatter around it tolerated)."""
    if not text or not text.strip():
        return None
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for cand in candidates:
        start = cand.find("{")
        while start != -1:
            try:
                obj, _ = json.JSONDecoder().raw_decode(cand[start:])
            except json.JSONDecodeError:
                start = cand.find("{", start + 1)
                continue
            if isinstance(obj, dict):
                return obj
            start = cand.find("{", start + 1)
    return None


def _closers(prefix: str) -> str | None:
    """What closes every string/array/object left open at the end of ``prefix`` (None: not JSON-like)."""
    stack: list[str] = []
    in_str = esc = False
    for c in prefix:
        if in_str:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c in "{[":
            stack.append("}" if c == "{" else "]")
        elif c in "}]" and (not stack or stack.pop() != c):
            return None
    return ('"' if in_str else "") + "".join(reversed(stack))


def repair_truncated_json(text: str) -> dict[str, Any] | None:
    """A JSON object cut off by the token limit, closed at the last point where it still parses."""
    start = text.find("{")
    if start == -1:
        return None
    body = text[start:].rstrip()
    for end in range(len(body), max(start, len(body) - 400), -1):
        prefix = body[:end].rstrip().rstrip(",").rstrip(":")
        closers = _closers(prefix)
        if closers is None or closers.startswith('"'):  # never keep a half-written string
            continue
        try:
            obj = json.loads(prefix + closers)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def check_schema(data: Any, schema: dict[str, Any], path: str = "$") -> str:
    """A small JSON-schema subset check (type, required, properties, enum, items, bounds).

    Servers that ignore the schema (or weak models) may return something else; the agent only
    trusts data that passes this. Returns "" when valid, else what is wrong and where.
    """
    typ = schema.get("type")
    types = {
        "object": dict,
        "array": list,
        "string": str,
        "integer": int,
        "number": (int, float),
        "boolean": bool,
        "null": type(None),
    }
    if typ is not None:
        allowed = typ if isinstance(typ, list) else [typ]
        ok = False
        for t in allowed:
            py = types.get(t)
            if py is None:
                continue
            if t in ("integer", "number") and isinstance(data, bool):
                continue
            if isinstance(data, py):  # type: ignore[arg-type]
                ok = True
        if not ok:
            return f"{path}: expected {typ}, got {type(data).__name__}"
    if "enum" in schema and data not in schema["enum"]:
        return f"{path}: {data!r} is not one of {schema['enum']}"
    if isinstance(data, dict):
        for key in schema.get("required", []):
            if key not in data:
                return f"{path}: missing required field {key!r}"
        for key, sub in schema.get("properties", {}).items():
            if key in data:
                err = check_schema(data[key], sub, f"{path}.{key}")
                if err:
                    return err
    if isinstance(data, list):
        item = schema.get("items")
        if isinstance(item, dict):
            for i, v in enumerate(data):
                err = check_schema(v, item, f"{path}[{i}]")
                if err:
                    return err
        if "maxItems" in schema and len(data) > schema["maxItems"]:
            return f"{path}: more than {schema['maxItems']} items"
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        if "minimum" in schema and data < schema["minimum"]:
            return f"{path}: {data} < minimum {schema['minimum']}"
        if "maximum" in schema and data > schema["maximum"]:
            return f"{path}: {data} > maximum {schema['maximum']}"
    return ""


def json_reply(text: str, schema: dict[str, Any], prompt_tokens: int, completion_tokens: int, seconds: float) -> LLMReply:
    """Parse and schema-check a model's text into an LLMReply (error set when it fails)."""
    data = extract_json_object(text)
    if data is None and text.strip():
        data = repair_truncated_json(text)  # cut off by max_tokens: keep what is complete
        if data is not None and check_schema(data, schema):
            data = None
    if data is None:
        why = "empty answer" if not text.strip() else "answer is not a JSON object"
        return LLMReply(None, text, prompt_tokens, completion_tokens, f"model gave invalid JSON: {why}", seconds)
    err = check_schema(data, schema)
    if err:
        return LLMReply(None, text, prompt_tokens, completion_tokens, f"model JSON does not fit the schema: {err}", seconds)
    return LLMReply(data, text, prompt_tokens, completion_tokens, "", seconds)


def rough_token_count(text: str) -> int:
    """Used only where a server reports no usage: ~4 characters per token."""
    return max(1, len(text) // 4) if text else 0
