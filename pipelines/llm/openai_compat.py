"""Any OpenAI-compatible server (vLLM, llama.cpp server, LM Studio …) by base URL.

Structured answers ask for ``response_format={"type": "json_schema", …}`` (vLLM honours it with
guided decoding). A server that refuses that format (llama-cpp-python's server accepts only
``json_object``, with the schema inside) is asked again with ``json_object`` + schema, then with no
``response_format`` at all; the format that worked is kept for later calls. Every answer is
schema-checked here anyway. With ``LLMConfig.stream`` the answer is streamed: ``timeout_s`` then
bounds the whole answer, and a server that dies mid-answer is reported with how much had arrived.
The API key comes from the env variable the config names (never logged; credentials in the base
URL are masked in errors). This is the only module that imports ``openai``.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Sequence
from typing import Any

from pipelines.config import LLMConfig
from pipelines.llm.base import LLMError, LLMReply, Message, fold_system, json_reply, rough_token_count

# How structured answers are asked for, in the order tried.
FORMATS = ("json_schema", "json_object", "prompt")
_FORMAT_REFUSED = re.compile(r"response_format|json_schema|json_object|not supported|unsupported", re.I)


def masked_url(url: str) -> str:
    """The base URL without credentials (``http://user:secret@host`` -> ``http://***@host``)."""
    return re.sub(r"(?<=://)[^/@\s]+@", "***@", url)


def describe_error(exc: BaseException, limit: int = 300) -> str:
    """One line: the exception, its cause (the transport error under an APIConnectionError), capped."""
    parts = [f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}".rstrip(": ")]
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause).strip() and str(cause) not in parts[0]:
        parts.append(f"{type(cause).__name__}: {str(cause).strip().splitlines()[0]}")
    text = " <- ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class OpenAICompatLLM:
    name = "openai"

    def __init__(self, config: LLMConfig) -> None:
        self.config = config
        self._client: Any = None
        self._format = FORMATS[0]  # moves down FORMATS when a server refuses one

    def warm_up(self) -> None:
        if self._client is not None:
            return
        try:
            import openai
        except ImportError as exc:
            raise LLMError("the openai backend needs the 'openai' extra: pip install 'clusterdoc[openai]'") from exc
        self._client = openai.OpenAI(
            base_url=self.config.resolved_host,
            api_key=os.environ.get(self.config.api_key_env) or "not-needed",
            timeout=self.config.timeout_s,
            max_retries=0,
        )

    def _where(self) -> str:
        return f"openai-compatible server at {masked_url(self.config.resolved_host)}"

    def _request(self, messages: Sequence[Message], schema: dict[str, Any] | None, max_tokens: int | None,
                 fmt: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.config.model_name,
            "messages": fold_system(messages) if self.config.fold_system else [dict(m) for m in messages],
            "temperature": self.config.temperature,
            "max_tokens": max_tokens or self.config.max_tokens,
            "seed": self.config.seed,
        }
        if schema is not None and fmt == "json_schema":
            kwargs["response_format"] = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
        elif schema is not None and fmt == "json_object":
            kwargs["response_format"] = {"type": "json_object", "schema": schema}
        if self.config.stream:
            kwargs["stream"] = True
            kwargs["stream_options"] = {"include_usage": True}
        return kwargs

    def _call(self, messages: Sequence[Message], schema: dict[str, Any] | None, max_tokens: int | None) -> LLMReply:
        started = time.monotonic()
        try:
            self.warm_up()
        except LLMError as exc:
            return LLMReply(None, "", error=str(exc))
        while True:
            fmt = self._format
            try:
                out = self._client.chat.completions.create(**self._request(messages, schema, max_tokens, fmt))
                break
            except Exception as exc:  # down, slow, 4xx/5xx: reported, the evidence path takes over
                status = getattr(exc, "status_code", None)
                refused = (schema is not None and status in (400, 422, 500) and fmt != FORMATS[-1]
                           and bool(_FORMAT_REFUSED.search(str(exc))))
                if refused:  # this server does not take that response_format: ask the next way
                    self._format = FORMATS[FORMATS.index(fmt) + 1]
                    continue
                return LLMReply(None, "", error=f"{self._where()} failed: {describe_error(exc)}",
                                seconds=time.monotonic() - started)
        if self.config.stream:
            return self._read_stream(out, messages, schema, started)
        text = (out.choices[0].message.content or "") if out.choices else ""
        usage = getattr(out, "usage", None)
        pt = int(getattr(usage, "prompt_tokens", 0) or 0)
        ct = int(getattr(usage, "completion_tokens", 0) or 0)
        return self._reply(text, schema, pt, ct, started)

    def _read_stream(self, stream: Any, messages: Sequence[Message], schema: dict[str, Any] | None,
                     started: float) -> LLMReply:
        """Collect a streamed answer within ``timeout_s`` overall; usage from the last chunk, or
        estimated when the server sends none (llama.cpp's server does not)."""
        deadline = started + self.config.timeout_s
        chunks: list[str] = []
        pt = ct = 0
        try:
            for chunk in stream:
                for choice in getattr(chunk, "choices", None) or []:
                    delta = getattr(choice, "delta", None)
                    if delta is not None and getattr(delta, "content", None):
                        chunks.append(delta.content)
                usage = getattr(chunk, "usage", None)
                if usage is not None:
                    pt = int(getattr(usage, "prompt_tokens", 0) or 0)
                    ct = int(getattr(usage, "completion_tokens", 0) or 0)
                if time.monotonic() > deadline:
                    text = "".join(chunks)
                    return LLMReply(None, text, pt or rough_token_count(str(messages)), ct or rough_token_count(text),
                                    f"{self._where()} timed out after {self.config.timeout_s:g}s "
                                    f"mid-answer ({len(text)} characters received)", time.monotonic() - started)
        except Exception as exc:  # the connection broke mid-answer (server killed, network gone)
            text = "".join(chunks)
            return LLMReply(None, text, pt or rough_token_count(str(messages)), ct or rough_token_count(text),
                            f"{self._where()} failed mid-answer after {len(text)} characters: {describe_error(exc)}",
                            time.monotonic() - started)
        finally:
            close = getattr(stream, "close", None)
            if callable(close):
                with contextlib.suppress(Exception):  # closing a broken stream must not hide the answer
                    close()
        text = "".join(chunks)
        return self._reply(text, schema, pt or rough_token_count(str(messages)), ct or rough_token_count(text), started)

    def _reply(self, text: str, schema: dict[str, Any] | None, pt: int, ct: int, started: float) -> LLMReply:
        seconds = time.monotonic() - started
        if schema is None:
            return LLMReply(None, text, pt, ct, "" if text.strip() else "model returned an empty answer", seconds)
        return json_reply(text, schema, pt, ct, seconds)

    def generate_json(self, messages: Sequence[Message], schema: dict[str, Any], max_tokens: int | None = None) -> LLMReply:
        return self._call(messages, schema, max_tokens)

    def generate_text(self, messages: Sequence[Message], max_tokens: int | None = None) -> LLMReply:
        return self._call(messages, None, max_tokens)
