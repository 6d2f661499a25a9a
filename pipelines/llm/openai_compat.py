"""Any OpenAI-compatible server (vLLM, llama.cpp server, LM Studio …) by base URL.

Structured answers ask for ``response_format={"type": "json_schema", …}`` (vLLM honours it with
guided decoding) and are schema-checked here anyway. The API key comes from the env variable the
config names (never logged). This is the only module that imports ``openai``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from pipelines.config import LLMConfig
from pipelines.llm.base import LLMError, LLMReply, Message, json_reply


class OpenAICompatLLM:
    name = "openai"

    def __init__(self, config: LLMConfig) -> None:
        self.config = config
        self._client: Any = None

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

    def _call(self, messages: Sequence[Message], schema: dict[str, Any] | None, max_tokens: int | None) -> LLMReply:
        started = time.monotonic()
        try:
            self.warm_up()
        except LLMError as exc:
            return LLMReply(None, "", error=str(exc))
        kwargs: dict[str, Any] = {
            "model": self.config.model_name,
            "messages": [dict(m) for m in messages],
            "temperature": self.config.temperature,
            "max_tokens": max_tokens or self.config.max_tokens,
            "seed": self.config.seed,
        }
        if schema is not None:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema},
            }
        try:
            out = self._client.chat.completions.create(**kwargs)
        except Exception as exc:  # down, slow, 4xx/5xx: reported, the evidence path takes over
            return LLMReply(
                None,
                "",
                error=f"openai-compatible server at {self.config.resolved_host} failed: {type(exc).__name__}: {exc}",
                seconds=time.monotonic() - started,
            )
        text = (out.choices[0].message.content or "") if out.choices else ""
        usage = getattr(out, "usage", None)
        pt = int(getattr(usage, "prompt_tokens", 0) or 0)
        ct = int(getattr(usage, "completion_tokens", 0) or 0)
        seconds = time.monotonic() - started
        if schema is None:
            return LLMReply(None, text, pt, ct, "" if text.strip() else "model returned an empty answer", seconds)
        return json_reply(text, schema, pt, ct, seconds)

    def generate_json(self, messages: Sequence[Message], schema: dict[str, Any], max_tokens: int | None = None) -> LLMReply:
        return self._call(messages, schema, max_tokens)

    def generate_text(self, messages: Sequence[Message], max_tokens: int | None = None) -> LLMReply:
        return self._call(messages, None, max_tokens)
